"""``casereach bench send``'s targets (issue 18), the Kannel figures of a peer run
(``peer-kannel/run.sh --json F``) it is compared with, and its table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

# figure → the least it should be. The *_kannel_* ratios need --peer-json; the batch rate's
# absolute target is PostgreSQL's (on SQLite the target is the ratio to Kannel's enqueue).
TARGETS: dict[str, float] = {
    "single_healthz_ratio": 0.5,
    "latency300_msgs_per_s": 1_000.0,
}
POSTGRES_TARGETS = {"send_batch_per_s": 5_000.0}
PEER_TARGETS = {
    "batch_kannel_enqueue_ratio": 1.0,
    "drain_kannel_ratio": 0.5,
    "e2e_kannel_ratio": 0.5,
}
# our figure, Kannel's figure in the peer JSON, the ratio's name
PEER_RATIOS = (
    ("send_batch_per_s", "enqueue_msgs_per_s", "batch_kannel_enqueue_ratio"),
    ("serve_drain_msgs_per_s", "drain_msgs_per_s", "drain_kannel_ratio"),
    ("e2e_batch_msgs_per_s", "e2e_msgs_per_s", "e2e_kannel_ratio"),
)


def load_peer(path: Path) -> dict[str, Any]:
    """Kannel's figures from a peer run's JSON; ValueError when it has none."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"--peer-json {path}: {exc}") from None
    kannel = (doc.get("systems") or {}).get("kannel") if isinstance(doc, dict) else None
    peer: dict[str, Any] = {"file": str(path), "n": doc.get("n") if isinstance(doc, dict) else None}
    for _ours, theirs, _ratio in PEER_RATIOS:
        value = kannel.get(theirs) if isinstance(kannel, dict) else None
        if not isinstance(value, int | float) or value <= 0:
            raise ValueError(f"--peer-json {path} has no Kannel {theirs} (a failed peer run?)")
        peer[f"kannel_{theirs}"] = round(float(value), 1)
    casereach = (doc.get("systems") or {}).get("casereach") or {}
    for key in ("enqueue_msgs_per_s", "drain_msgs_per_s", "e2e_msgs_per_s"):
        if isinstance(casereach.get(key), int | float):
            peer[f"casereach_{key}"] = round(float(casereach[key]), 1)
    return peer


def peer_ratios(results: dict[str, Any], peer: dict[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for ours, theirs, name in PEER_RATIOS:
        value = results.get(ours)
        out[name] = round(value / peer[f"kannel_{theirs}"], 3) if value else None
    return out


def targets(vendor: str, peer: dict[str, Any] | None) -> dict[str, float]:
    out = dict(TARGETS)
    if vendor == "postgresql":
        out.update(POSTGRES_TARGETS)
    if peer is not None:
        out.update(PEER_TARGETS)
    return out


def _num(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _verdict(value: Any, target: float | None) -> str:
    if target is None:
        return ""
    if value is None:
        return "[yellow]not run[/yellow]"
    return "[green]pass[/green]" if value >= target else "[red]FAIL[/red]"


def _checks(r: dict[str, Any]) -> str:
    seen = [
        f"{phase} {'ok' if r[f'{phase}_check']['exactly_once'] else 'NO'}"
        for phase in ("drain", "latency300", "e2e")
        if f"{phase}_check" in r
    ]
    return ", ".join(seen) or "-"


def _rows(doc: dict[str, Any]) -> list[tuple[str, str, str, str, str, str]]:
    """(figure, value, compared with, ratio, target, ok) for each row."""
    r, goal, peer = doc["results"], doc["targets"], doc.get("peer")
    clients, n = r["clients"], r["messages"]
    kannel = peer or {}
    rows = [
        (f"GET /healthz ({clients} conns, req/s)", _num(r.get("healthz_per_s")), "", "", "", ""),
        (
            f"POST …/send, accept only ({clients} conns, msgs/s)",
            _num(r.get("send_single_per_s")),
            f"healthz {_num(r.get('healthz_per_s'))}",
            _num(r.get("single_healthz_ratio"), 2),
            f"≥ {goal['single_healthz_ratio']}",
            _verdict(r.get("single_healthz_ratio"), goal["single_healthz_ratio"]),
        ),
    ]
    labels = {
        "send_batch_per_s": "POST …/send-batch, 1,000 a request, 4 conns (msgs/s)",
        "serve_drain_msgs_per_s": f"drain inside serve, {n:,} queued (msgs/s)",
        "e2e_batch_msgs_per_s": f"end to end, {r.get('e2e_sent_by', 'send-batch')} while serve "
        "dispatches (msgs/s)",
    }
    for ours, theirs, name in PEER_RATIOS:
        wanted = [f"≥ {goal[name]}x Kannel"] if name in goal else []
        verdicts = [_verdict(r.get(name), goal[name])] if name in goal else []
        if ours in goal:  # an absolute target too (the batch rate on PostgreSQL)
            wanted.append(f"≥ {_num(goal[ours])}")
            verdicts.append(_verdict(r.get(ours), goal[ours]))
        rows.append(
            (
                labels[ours],
                _num(r.get(ours)),
                f"Kannel {_num(kannel.get(f'kannel_{theirs}'))}" if peer else "",
                _num(r.get(name), 3) if peer else "",
                ", ".join(wanted),
                " ".join(verdicts),
            )
        )
    rows.append(
        (
            "drain incl. serve's start-up (msgs/s)",
            _num(r.get("serve_drain_incl_startup_msgs_per_s")),
            "",
            "",
            "",
            "",
        )
    )
    taken = r.get("latency300_max_in_flight", 1_000) is not None
    rows.append(
        (
            "provider answers in 300 ms, gateway 2,000/s, max_in_flight "
            f"{'1,000' if taken else 'not taken'} (msgs/s)",
            _num(r.get("latency300_msgs_per_s")),
            "",
            "",
            f"≥ {_num(goal['latency300_msgs_per_s'])}",
            _verdict(r.get("latency300_msgs_per_s"), goal["latency300_msgs_per_s"]),
        )
    )
    rows.append(("every message exactly once at the provider", _checks(r), "", "", "", ""))
    return rows


def print_table(doc: dict[str, Any]) -> None:
    r = doc["results"]
    console = Console()
    if not console.is_terminal:
        console = Console(width=150)
    table = Table(
        title=f"casereach bench send: {r['messages']:,} messages a phase, {r['database']}, "
        f"load average {r['load_average_before']} → {r.get('load_average_after')}"
    )
    for column in ("figure", "value", "compared with", "ratio", "target", "ok"):
        table.add_column(column, justify="left" if column == "figure" else "right")
    for row in _rows(doc):
        table.add_row(*row)
    console.print(table)
    for note in r.get("notes", []):
        console.print(f"note: {note}")
    for problem in r["problems"]:
        console.print(f"[red]FAILED[/red]: {problem}")
