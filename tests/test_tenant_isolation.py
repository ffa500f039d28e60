"""Projects are isolated (SPEC 10, issue 15): project B — its API key, its admin's web session
(with a valid CSRF token, so CSRF is not what stops it), its test phone, its gateways' provider
URLs and a gateway it shares — walks every API operation and every UI page and form with A's
ids, names and numbers, on its own URL prefix and on A's.

Afterwards every row A owns and everything A's admin sees over the API is as it was (0
changes), and no response B got showed one of A's values B had not sent itself (0 reads).
A change is pinned to the request that made it: A's rows are compared after every request.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from casereach.projects import auth
from casereach.testing.isolation_api import operations, walk_api
from casereach.testing.isolation_ui import walk_ui
from casereach.testing.snapshot import (
    api_state,
    owned_rows,
    row_changes,
    state_changes,
    write_count,
)
from casereach.testing.tenants import Tenant, build_tenant
from casereach.testing.walker import Sent, Walker
from casereach.web import urls as web_urls

A_FIRST = 7_310_001  # A's rows get ids from here on, B's from B_FIRST: see tenants.py
B_FIRST = 9_520_001
MIN_API_REQUESTS = 700  # a floor, so the walk cannot silently shrink to nothing
MIN_UI_REQUESTS = 120
MIN_PROVIDER_REQUESTS = 100


@pytest.fixture
def tenants(db: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Tenant, Tenant]]:
    # The walk sends far more than CASEREACH_API_RATE a second with B's key: not a 429.
    monkeypatch.setattr(auth.BUCKET, "rate", 1e9)
    monkeypatch.setattr(auth.BUCKET, "burst", 1e9)
    a = build_tenant("amani", "11000", A_FIRST)
    b = build_tenant("baraka", "22000", B_FIRST)
    yield a, b


def web_url_names() -> set[str]:
    return {p.name for p in web_urls.urlpatterns if p.name}


def test_project_b_can_neither_change_nor_read_project_a(tenants: tuple[Tenant, Tenant]) -> None:
    a, b = tenants
    schema: dict[str, Any] = Client().get("/api/openapi.json").json()
    values = a.typable() | a.private()
    gateway_ids = set(a.gateway_ids())

    def rows() -> dict[str, Any]:
        return owned_rows(a.project, b.project, values, gateway_ids)

    state_before = api_state(a)  # A's own reads first: they may stamp A's key as used
    rows_before = rows()
    a_ints = {
        int(pk)
        for table in rows_before.values()
        for pk in table
        if pk.isdigit() and A_FIRST <= int(pk) < B_FIRST
    }
    walker = Walker(a, b, a_ints)
    changes: list[str] = []
    last = [rows_before]
    writes = [write_count()]

    def compare(sent: Sent) -> None:
        if write_count() == writes[0]:
            return  # nothing written at all: A's rows cannot have changed
        writes[0] = write_count()
        now = rows()
        if now != last[0]:
            changes.extend(f"{sent.line()}\n      {c}" for c in row_changes(last[0], now))
            last[0] = now

    walker.on_sent = compare
    covered = walk_api(walker, schema)
    walked_ui = walk_ui(walker)
    rows_after = rows()
    state_after = api_state(a)

    counts = walker.counts()
    api_count = sum(1 for s in walker.sent if s.who != "provider" and "/api/" in s.url)
    ui_count = counts["session"] + counts["key"] - api_count
    print(
        f"\ntenant isolation: {sum(counts.values())} requests by B: {api_count} API calls "
        f"({counts['key']} with its key, {counts['session'] - ui_count} with its session) over "
        f"{len(covered)} operations, {ui_count} UI requests over {len(walked_ui)} pages, "
        f"{counts['provider']} to its gateways' provider URLs; A's rows: {sum(map(len, rows_before.values()))}"
        f" in {sum(1 for t in rows_before.values() if t)} tables; A's values watched: "
        f"{len(walker.typable) + len(walker.private)} strings, {len(a_ints)} ids"
    )
    all_ops = {op for op, _ in operations(schema)}
    assert set() == all_ops - covered, "API operations the walk missed"
    assert set() == web_url_names() - walked_ui, "UI pages the walk missed"
    assert api_count >= MIN_API_REQUESTS
    assert ui_count >= MIN_UI_REQUESTS
    assert counts["provider"] >= MIN_PROVIDER_REQUESTS

    problems = {
        "A's rows changed (by the request before each)": changes,
        "A's rows differ from before the walk": row_changes(rows_before, rows_after),
        "what A's admin sees over the API changed": state_changes(state_before, state_after),
        "responses to B that showed A's values": walker.reads,
        "system administrator's operations B's admin was not refused (403)": walker.results.get(
            "admin_not_refused", []
        ),
        "server errors": walker.server_errors(),
    }
    report = "\n".join(
        f"\n{title} ({len(lines)}):\n" + "\n".join(f"  {line}" for line in lines)
        for title, lines in problems.items()
        if lines
    )
    assert {title: 0 for title in problems} == {t: len(v) for t, v in problems.items()}, report
