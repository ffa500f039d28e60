"""Every gateway type folder is registered and has its table tests (docs/gateways.md,
"Adding a gateway type"): ``test_gateway.py`` runs the shared send / status / configuration
tables, and a type that takes inbound webhooks has ``test_inbound.py`` on the inbound tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from casereach.gateways.base import Gateway
from casereach.gateways.registry import GATEWAY_TYPES, gateway_class

TYPES = Path(__file__).resolve().parents[1] / "casereach" / "gateways" / "types"
FOLDERS = sorted(p.name for p in TYPES.iterdir() if p.is_dir() and (p / "__init__.py").exists())
TABLES = "casereach.testing.gateway_tables"
INBOUND_TABLES = "casereach.testing.inbound_tables"
RUNNERS = ("run_outgoing_case", "run_status_case", "run_config_case")


def test_every_folder_is_registered_and_every_registered_type_has_a_folder() -> None:
    assert sorted(GATEWAY_TYPES) == FOLDERS


@pytest.mark.parametrize("slug", FOLDERS)
def test_the_folder_declares_its_type(slug: str) -> None:
    assert (TYPES / slug / "gateway.py").is_file()
    cls = gateway_class(slug)  # raises when the folder's class declares another slug
    assert issubclass(cls, Gateway)


@pytest.mark.parametrize("slug", FOLDERS)
def test_the_folder_runs_the_shared_tables(slug: str) -> None:
    tests = TYPES / slug / "test_gateway.py"
    assert tests.is_file(), f"{slug}: no test_gateway.py"
    text = tests.read_text(encoding="utf-8")
    assert TABLES in text, f"{slug}: test_gateway.py does not use {TABLES}"
    assert any(runner in text for runner in RUNNERS), f"{slug}: no table runner in test_gateway.py"


def takes_inbound(slug: str) -> bool:
    return gateway_class(slug).parse_inbound is not Gateway.parse_inbound


@pytest.mark.parametrize("slug", [s for s in FOLDERS if s in GATEWAY_TYPES and takes_inbound(s)])
def test_a_type_that_takes_inbound_webhooks_has_inbound_tables(slug: str) -> None:
    tests = TYPES / slug / "test_inbound.py"
    assert tests.is_file(), f"{slug}: parses inbound webhooks but has no test_inbound.py"
    text = tests.read_text(encoding="utf-8")
    assert INBOUND_TABLES in text and "run_inbound_case" in text, (
        f"{slug}: test_inbound.py does not run the inbound table ({INBOUND_TABLES})"
    )
