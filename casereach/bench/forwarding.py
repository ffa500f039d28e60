"""``casereach bench forwarding``: the Data Forwarding receiver against ``GET /healthz`` on the
same ``casereach serve`` (``--no-workers``): one case per ``POST …/api/commcare/case-forwarding/``
(half XML, half JSON, as HQ's case repeaters send them, each a new case with its
``server-modified-on``) from C keep-alive connections in a closed loop, then the same number
of ``GET /healthz``. Afterwards the Case API must count every case sent.

The target (issue 19): ``forwarding_healthz_ratio`` ≥ 0.4."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from casereach.bench.httpload import closed_loop, get
from casereach.bench.sendserver import Instance
from casereach.bench.workspace import PROJECT, BenchError, Workspace, machine_info
from casereach.testing.commcare_hq import HqCase, Record

PATH = f"/a/{PROJECT}/api/commcare/case-forwarding/"
WARMUP = 100
TARGET_RATIO = 0.4
START = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def forwarding_post(i: int, auth: str) -> bytes:
    """Case ``i`` as one forwarding POST: XML for even ``i``, JSON for odd."""
    when = START + dt.timedelta(milliseconds=i)
    case = HqCase(
        case_id=f"fwd-{i:08d}",
        case_type="mother",
        case_name=f"Mother {i}",
        owner_id="owner-1",
        properties={"village": f"v{i % 50}", "visit": str(i % 7)},
        date_opened=when,
        date_modified=when,
        server_modified_on=when,
    )
    body, headers = Record(case, "xml" if i % 2 == 0 else "json").payload(PROJECT)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n{head}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def _load() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def _cpu_s(pid: int | None) -> float:
    """CPU seconds (user + system) the process has used so far; 0 when unknown."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measure(inst: Instance, n: int, clients: int, r: dict[str, Any]) -> None:
    posts = [forwarding_post(i, inst.auth) for i in range(n + WARMUP)]
    warm = asyncio.run(closed_loop(inst.port, lambda i: posts[n + i], WARMUP, clients))
    asyncio.run(closed_loop(inst.port, lambda i: get("/healthz"), WARMUP, clients))
    if warm.failures():
        raise BenchError(f"forwarding warm-up: {warm.failures()}")
    pid = inst.proc.pid if inst.proc is not None else None
    cpu = _cpu_s(pid)
    fwd = asyncio.run(closed_loop(inst.port, lambda i: posts[i], n, clients))
    if fwd.failures():
        raise BenchError(f"forwarding: {fwd.failures()}")
    cpu_fwd, cpu = _cpu_s(pid) - cpu, _cpu_s(pid)
    health = asyncio.run(closed_loop(inst.port, lambda i: get("/healthz"), n, clients))
    if health.failures():
        raise BenchError(f"GET /healthz: {health.failures()}")
    cpu_health = _cpu_s(pid) - cpu
    # The server's CPU per request: less sensitive to other load on the machine than rates.
    r["forwarding_server_cpu_ms"] = round(cpu_fwd / n * 1000, 3)
    r["healthz_server_cpu_ms"] = round(cpu_health / n * 1000, 3)
    r["forwarding_cases_per_s"] = round(fwd.rate, 1)
    r["forwarding_p50_ms"] = fwd.percentile_ms(50)
    r["forwarding_p99_ms"] = fwd.percentile_ms(99)
    r["healthz_per_s"] = round(health.rate, 1)
    r["forwarding_healthz_ratio"] = round(fwd.rate / health.rate, 3) if health.rate else None
    resp = inst.client.get(f"/a/{PROJECT}/api/case/v2/", params={"limit": "1"})
    if resp.status_code != 200:
        raise BenchError(f"GET case/v2 answered {resp.status_code}: {resp.text[:200]}")
    r["cases_counted"] = int(resp.json()["matching_records"])
    if r["cases_counted"] != n + WARMUP:
        raise BenchError(
            f"{n + WARMUP:,} cases forwarded, the Case API counts {r['cases_counted']:,}"
        )


def run_forwarding_suite(
    *, n: int = 5_000, clients: int = 8, json_out: Path | None = None
) -> dict[str, Any]:
    """Measure, print, optionally write JSON; ValueError (after writing) when a check failed."""
    if n < 1 or clients < 1:
        raise ValueError("--n and --clients must be at least 1")
    ws = Workspace(Path(tempfile.mkdtemp(prefix="casereach-bench-fwd-")), None)
    r: dict[str, Any] = {
        "database": ws.vendor,
        "cases": n,
        "clients": clients,
        "formats": "half XML, half JSON",
        "load_average_before": _load(),
        "problems": [],
    }
    document = {"suite": "forwarding", "results": r, "machine": machine_info(ws.vendor)}
    inst = Instance(ws, "forwarding")
    try:
        inst.serve(workers=False)
        _measure(inst, n, clients, r)
    except BenchError as exc:
        r["problems"].append(str(exc))
    finally:
        inst.close()
        ws.cleanup()
    r["load_average_after"] = _load()
    ratio = r.get("forwarding_healthz_ratio")
    document["targets"] = {
        "forwarding_healthz_ratio": {
            "target": TARGET_RATIO,
            "met": bool(ratio and ratio >= TARGET_RATIO),
        }
    }
    ws.console.print(json.dumps(r, indent=2))
    if json_out is not None:
        json_out.write_text(json.dumps(document, indent=2) + "\n")
        ws.console.print(f"results written to {json_out}")
    if r["problems"]:
        raise ValueError("bench forwarding: " + "; ".join(r["problems"]))
    return document
