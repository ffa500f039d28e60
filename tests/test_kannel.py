"""The ``kannel`` gateway type against a REAL Kannel (Debian's package: bearerbox + smsbox,
``scripts/ensure-kannel`` installs it), in front of the SMPP SMSC simulator, with a real
``casereach serve`` on a SQLite file.

An SMS out (GSM and UCS-2): casereach → sendsms → Kannel → SMPP submit_sm → the simulator's
receipt → Kannel's dlr-url → our status URL → ``delivered``. An SMS in (GSM and UCS-2, which
Kannel recodes to UTF-8): the simulator's deliver_sm → Kannel → the sms-service get-url → our
inbound webhook → stored with its text and handled (STOP: opted out, a confirmation sent back
through Kannel). Kannel missing or not starting fails the test: it never skips.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from casereach.testing.kannel import PASSWORD, USERNAME, KannelBoxes, require_kannel
from casereach.testing.smsc_sim import SmscSimulator
from casereach.testing.world import case_body
from tests.scaleout.harness import free_port
from tests.serve_process import Serve, cli, serve_env

PROJECT = "kannel"
M = f"/a/{PROJECT}/api/messaging/v1/"
PHONE = "254700000001"
SHORT_CODE = "22384"
GET_URL_QUERY = "?from=%p&to=%P&text=%b&id=%I&coding=%c&charset=%C"


def rows(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(db, timeout=30)
    try:
        return list(con.execute(sql, args))
    finally:
        con.close()


def wait(what: str, ok: Callable[[], bool], kannel: KannelBoxes, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not ok():
        assert time.monotonic() < deadline, f"{what}: not after {timeout_s:.0f} s\n{kannel.logs()}"
        time.sleep(0.1)


def test_kannel_delivers_reports_and_receives_gsm_and_ucs2(tmp_path: Path) -> None:
    require_kannel()  # raises (the test fails) when Kannel is not installed
    db = tmp_path / "kannel.sqlite3"
    port = free_port()
    env = serve_env(db, CASEREACH_PUBLIC_URL=f"http://127.0.0.1:{port}")
    cli(env, "init")
    cli(env, "project", "create", PROJECT)
    key = cli(env, "apikey", "create", "--project", PROJECT, "--username", "ops@example.org")
    auth = {"Authorization": f"ApiKey ops@example.org:{key.strip().splitlines()[-1]}"}
    serve = Serve(env, port=port)
    sim = SmscSimulator(system_id="kannel", password="smsc-pw").start()
    sendsms_port = free_port()
    kannel: KannelBoxes | None = None
    api = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=auth, timeout=30)
    try:
        serve.wait_healthy(serve.start())
        config = {
            "send_url": f"http://127.0.0.1:{sendsms_port}/cgi-bin/sendsms",
            "username": USERNAME,
            "password": PASSWORD,
            "sender": SHORT_CODE,
        }
        r = api.post(M + "gateways", json={"name": "KANNEL", "type": "kannel", "config": config})
        assert 201 == r.status_code, r.text
        inbound_url = r.json()["inbound_url"]
        assert r.json()["status_url"].endswith("/status")
        r = api.put(M + "routes", json={"default_gateway": "KANNEL", "prefixes": []})
        assert 200 == r.status_code, r.text
        r = api.post(f"/a/{PROJECT}/api/case/v2/", json=case_body(phone=PHONE, verified="yes"))
        assert r.status_code in (200, 201), r.text

        kannel = KannelBoxes(
            tmp_path / "kannel",
            smsc_port=sim.port,
            smsc_user="kannel",
            smsc_password="smsc-pw",
            get_url=inbound_url + GET_URL_QUERY,
            sendsms_port=sendsms_port,
        )
        kannel.start()

        # Out: one GSM and one UCS-2 message, each to `delivered` through Kannel's dlr-url,
        # and one the phone never gets (the SMSC's receipt says UNDELIV): `failed`.
        sim.receipt_stat["254711000003"] = "UNDELIV"
        for number, text in (
            ("254711000001", "Clinic visit @ 9, bring card"),
            ("254711000002", "Habari 😀 kesho"),
            ("254711000003", "Never arrives"),
        ):
            r = api.post(M + "send", json={"phone_number": number, "text": text})
            assert r.status_code in (200, 201, 202), r.text
        outcome = "SELECT phone_number, status, provider_code FROM messaging_message"
        expected = {
            ("254711000001", "delivered", ""),
            ("254711000002", "delivered", ""),
            ("254711000003", "failed", "err:001"),
        }
        wait("two delivered, one failed", lambda: expected == set(rows(db, outcome)), kannel)
        sent = ["254711000001", "254711000002", "254711000003"]
        submits = {s.destination_addr: s for s in sim.submits}
        assert sorted(sent) == sorted(submits)
        gsm, ucs2 = submits["254711000001"], submits["254711000002"]
        assert (0, "Clinic visit @ 9, bring card", SHORT_CODE) == (
            gsm.data_coding,
            gsm.text,
            gsm.source_addr,
        )
        assert (8, "Habari 😀 kesho") == (ucs2.data_coding, ucs2.text)
        encodings = dict(rows(db, "SELECT phone_number, encoding FROM messaging_message"))
        assert {"254711000001": "GSM", "254711000002": "UCS2", "254711000003": "GSM"} == encodings

        # In: a UCS-2 message (Kannel recodes it to UTF-8 for the get-url), then STOP.
        sim.deliver(
            PHONE, SHORT_CODE, short_message="Jambo 😀 ñé".encode("utf-16-be"), data_coding=8
        )
        wait(
            "the UCS-2 message stored",
            lambda: bool(rows(db, "SELECT 1 FROM messaging_message WHERE direction='in'")),
            kannel,
        )
        sim.deliver(PHONE, SHORT_CODE, "STOP")
        inbound = lambda: rows(  # noqa: E731
            db,
            "SELECT text, phone_number, inbound_action, provider_id FROM messaging_message"
            " WHERE direction='in' ORDER BY created_on",
        )
        wait("STOP stored", lambda: len(inbound()) == 2, kannel)
        (first, stop) = inbound()
        assert ("Jambo 😀 ñé", PHONE) == first[:2]
        assert ("STOP", PHONE, "opt_out") == stop[:3]
        assert first[3] and stop[3], "Kannel's own id (%I) is the provider id"
        # Handled: the opt-out confirmation goes back out through Kannel to the phone; the
        # webhook's empty answers made Kannel send nothing of its own.
        wait("the STOP confirmation submitted", lambda: len(sim.submits) == 4, kannel)
        assert [PHONE] == [s.destination_addr for s in sim.submits[3:]]
        wait(
            "the confirmation delivered",
            lambda: (
                [("delivered",)]
                == rows(
                    db,
                    "SELECT status FROM messaging_message WHERE phone_number=? AND direction='out'",
                    PHONE,
                )
            ),
            kannel,
        )
        assert 4 == len(sim.submits), "Kannel sent something of its own"
    finally:
        api.close()
        if kannel is not None:
            kannel.stop()
        sim.stop()
        serve.close()
