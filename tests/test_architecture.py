"""Contracts a tool enforces (issue 17): one writer per table, small modules and functions.

``pytest -s tests/test_architecture.py`` prints the writer table (model → the modules that
write it, with line numbers) and the modules and functions over the size limits.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from casereach.testing import writers

ROOT = Path(__file__).resolve().parents[1]
MODULE_LINES = 500
FUNCTION_LINES = 80
LONG = "# long:"

# The benchmark harness seeds the tables it measures and writes the raw "floor" rows on
# purpose (reference/bench); it is not a path any request or task takes.
NOT_WRITERS = ("casereach.bench", "casereach.cli.bench")

# The target of issue 17: every table has one writer.
EXPECTED_WRITERS = {
    "alerts.Alert": "casereach.alerts.actions",
    "alerts.AlertReplyWait": "casereach.alerts.replywait",
    "alerts.Firing": "casereach.alerts.actions",
    "alerts.ScheduleInstance": "casereach.alerts.actions",
    "auth.User": "casereach.projects.actions",
    "billing.ConversionRate": "casereach.billing.actions",
    "billing.Fee": "casereach.billing.actions",
    "cases.Case": "casereach.cases.actions",
    "cases.CaseIndex": "casereach.cases.actions",
    "cases.FormReceipt": "casereach.cases.forwarding",
    "cases.ForwardedVersion": "casereach.cases.forwarding",
    "cases.LastForwarded": "casereach.cases.forwarding",
    "cases.CommCareWrite": "casereach.cases.writeback",
    "cases.CommCareCaseLink": "casereach.cases.writeback",
    "contacts.Contact": "casereach.contacts.actions",
    "contacts.PhoneEntry": "casereach.contacts.actions",
    "gateways.GatewayConfig": "casereach.gateways.actions",
    "gateways.GatewayShare": "casereach.gateways.actions",
    "gateways.GatewayState": "casereach.gateways.state",
    "gateways.GlobalRoutes": "casereach.gateways.actions",
    "gateways.RateWindow": "casereach.gateways.state",
    "messaging.InboundQueue": "casereach.messaging.inbound_queue",
    "messaging.Keyword": "casereach.messaging.inbound_keywords",
    "messaging.Message": "casereach.messaging.log",
    "messaging.MessagingEvent": "casereach.messaging.log",
    "messaging.MessagingSubEvent": "casereach.messaging.log",
    "messaging.OptOut": "casereach.messaging.optouts",
    "messaging.SendAttempt": "casereach.messaging.log",
    "messaging.WhatsAppTemplate": "casereach.messaging.whatsapp_templates",
    "projects.ApiKey": "casereach.projects.actions",
    "projects.ConfigGeneration": "casereach.projects.actions",
    "projects.DigestNonce": "casereach.projects.actions",
    "projects.Membership": "casereach.projects.actions",
    "projects.PasswordDigest": "casereach.projects.actions",
    "projects.Project": "casereach.projects.actions",
    "surveys.Survey": "casereach.surveys.actions",
    "surveys.SurveyAnswer": "casereach.surveys.sessions",
    "surveys.SurveySession": "casereach.surveys.sessions",
    "web.ImportProgress": "casereach.web.actions",
    "workers.MobileWorker": "casereach.workers.actions",
}


def _sizes() -> ModuleType:
    """scripts/sizes.py, which measures what this test limits."""
    spec = importlib.util.spec_from_file_location("sizes", ROOT / "scripts" / "sizes.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("sizes", module)
    spec.loader.exec_module(module)
    return module


def shipped_sources() -> dict[str, str]:
    """Module name → text of every module the wheel ships (as scripts/sizes.py counts them,
    without ``casereach.testing``, which the wheel leaves out)."""
    out = {}
    for path in _sizes().shipped(ROOT):
        name = writers.module_name(ROOT, path)
        if name == "casereach.testing" or name.startswith("casereach.testing."):
            continue
        out[name] = path.read_text(encoding="utf-8")
    return out


# A writer may be a package: its modules split one writer by concern (the message log).
WRITER_PACKAGES = ("casereach.messaging.log", "casereach.surveys.sessions")


def _writer_unit(module: str) -> str:
    for package in WRITER_PACKAGES:
        if module.startswith(package + "."):
            return package
    return module


@pytest.fixture(scope="module")
def writes() -> list[writers.Write]:
    sources = shipped_sources()
    found = writers.scan_sources(sources, writers.django_schema())
    return [
        dataclasses.replace(w, module=_writer_unit(w.module))
        for w in found
        if not w.module.startswith(NOT_WRITERS)
    ]


def test_every_table_has_one_writer(writes: list[writers.Write]) -> None:
    table = writers.writer_table(writes)
    print("\n## Writers (model → module, line numbers)\n")
    print(writers.markdown(table, writes))
    assert writers.UNKNOWN not in table, "writes whose model the scan cannot tell (annotate them)"
    assert {model: [module] for model, module in EXPECTED_WRITERS.items()} == table


def test_the_scan_finds_the_writers_it_must(writes: list[writers.Write]) -> None:
    """The scanner sees the writes it exists for (a guard against a scan that finds nothing)."""
    table = writers.writer_table(writes)
    assert "casereach.messaging.optouts" in table["messaging.OptOut"]
    assert "casereach.cases.actions" in table["cases.Case"]
    assert "casereach.workers.actions" in table["workers.MobileWorker"]
    assert set(table) - {writers.UNKNOWN} <= set(EXPECTED_WRITERS)


def _long_reason(lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A ``# long: why`` comment on the line above the ``def`` or above its first decorator."""
    starts = {node.lineno} | {d.lineno for d in node.decorator_list}
    return any(n >= 2 and lines[n - 2].strip().startswith(LONG) for n in starts)


def oversized() -> tuple[list[str], list[str]]:
    modules, functions, _ = _sizes().measure(ROOT)
    big_modules = [f"{n:5}  {name}" for n, name in modules if n > MODULE_LINES]
    big_functions = []
    for n, name in functions:
        if n <= FUNCTION_LINES:
            continue
        where = name.split(" ", 1)[0]
        rel, line = where.rsplit(":", 1)
        text = (ROOT / rel).read_text(encoding="utf-8")
        lines = text.splitlines()
        node = next(
            f
            for f in ast.walk(ast.parse(text))
            if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and f.lineno == int(line)
        )
        if not _long_reason(lines, node):
            big_functions.append(f"{n:5}  {name}")
    return big_modules, big_functions


def test_modules_and_functions_are_small() -> None:
    big_modules, big_functions = oversized()
    print(f"\n## Modules over {MODULE_LINES} lines\n")
    print("\n".join(big_modules) or "none")
    print(f"\n## Functions over {FUNCTION_LINES} lines without a `{LONG}` comment\n")
    print("\n".join(big_functions) or "none")
    assert ([], []) == (big_modules, big_functions)
