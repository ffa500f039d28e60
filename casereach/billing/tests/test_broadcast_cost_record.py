"""The record of a 1,000-contact broadcast's cost: what its dry run estimated, and what the
message log totals once it went out through Twilio (a real local HTTP server standing in for
it), the status callbacks marked it delivered and the price fetch recorded what Twilio
charged. Writes build/cost-record.md, the table the closing note quotes."""

from __future__ import annotations

import csv
import io
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.test import Client

from casereach.alerts.scheduler import run_until_idle
from casereach.core.segments import analyse
from casereach.core.timeutil import now
from casereach.gateways.types.twilio.gateway import twilio_signature
from casereach.messaging.costs import fetch_due_prices
from casereach.testing.provider import ProviderServer, Reply
from casereach.testing.sending import drain
from casereach.testing.world import Api, case_body

M = "/a/{project}/api/messaging/v1/"
V2 = "/a/{project}/api/case/v2/"
ACCOUNT = "AC" + "0123456789abcdef" * 2
TOKEN = "f00dfeedcafe42deadbeefc0ffee77aa"
SEND_PATH = f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
CONTACTS = 1000
TANZANIA = range(900, 1000)  # numbers outside the "2547" prefix: the default fee applies
# The fee table (per SMS segment) and what the stand-in for Twilio charges (per segment).
FEES = {"": Decimal("0.0500"), "2547": Decimal("0.0075")}
CHARGED = {"": Decimal("0.0520"), "2547": Decimal("0.0079")}
# The project counts in Kenyan shillings: fees and Twilio's prices (in USD) are converted.
RATE = Decimal("129.5")
TEXT = "Clinic closed on Friday, {recipient.name}. Come on Monday."
RECORD = Path("build/cost-record.md")


def _name(n: int) -> str:
    # Every fourth contact has a long name: the message needs two segments.
    if n % 4 == 0:
        return f"Mother {n} " + "Wanjiku Achieng Nyambura " * 5
    return f"Mother {n}"


def _phone(n: int) -> str:
    return f"2556{n:08d}" if n in TANZANIA else f"2547{n:08d}"


def _cases(api: Api) -> None:
    for start in range(0, CONTACTS, 100):
        bodies = [
            {**case_body(name=_name(n), case_type="mother", phone=_phone(n)), "create": True}
            for n in range(start, start + 100)
        ]
        r = api.post(V2, bodies)
        assert 200 == r.status, r.body


def _sum(values: list[str]) -> Decimal:
    return sum((Decimal(v) for v in values if v), Decimal(0))


def _deliver(gw: dict[str, Any], sid: str) -> None:
    path = gw["status_url"].replace("http://testserver", "")
    form = {"MessageSid": sid, "MessageStatus": "delivered", "AccountSid": ACCOUNT}
    sig = twilio_signature("http://testserver" + path, form, TOKEN)
    r = Client().post(path, form, HTTP_X_TWILIO_SIGNATURE=sig)
    assert 200 == r.status_code, r.content


def test_a_1000_contact_broadcast_costs_what_the_log_totals(api: Api) -> None:
    with ProviderServer() as twilio:
        config = {
            "account_sid": ACCOUNT,
            "auth_token": TOKEN,
            "from_number": "+15005550006",
            "base_url": twilio.url,
        }
        r = api.post(M + "gateways", {"name": "TWILIO", "type": "twilio", "config": config})
        assert 201 == r.status, r.body
        gw = r.body
        assert 200 == api.put(M + "routes", {"default_gateway": "TWILIO", "prefixes": []}).status
        today = now().date().isoformat()
        assert 200 == api.call("PATCH", M + "settings", {"currency": "KES"}).status
        conversion = {"currency": "USD", "rate": str(RATE), "valid_from": today}
        assert 201 == api.post(M + "conversion-rates", conversion).status
        for prefix, amount in FEES.items():
            fee = {"prefix": prefix, "amount": str(amount), "currency": "USD", "valid_from": today}
            assert 201 == api.post(M + f"gateways/{gw['id']}/fees", fee).status
        _cases(api)
        alert = {
            "name": "Clinic closed",
            "kind": "broadcast",
            "active": False,
            "content": {"sms": {"en": TEXT}},
            "schedule": {"type": "immediate"},
            "recipients": [{"type": "case_group", "case_type": "mother"}],
        }
        r = api.post(M + "alerts", alert)
        assert 201 == r.status, r.body
        alert_id = r.body["id"]

        # What the message texts will be, and so the estimate the dry run must give.
        rendered = [TEXT.replace("{recipient.name}", _name(n)) for n in range(CONTACTS)]
        segments = [analyse(t).segments for t in rendered]
        assert 1 == segments[1] and 2 == segments[0]
        fee_of = [FEES["" if n in TANZANIA else "2547"] for n in range(CONTACTS)]
        usd = sum((f * s for f, s in zip(fee_of, segments, strict=True)), Decimal(0))
        expected = usd * RATE

        dry = api.post(M + f"alerts/{alert_id}/dry-run?days=1")
        assert 200 == dry.status, dry.body
        assert (CONTACTS, f"{expected:.6f}", 0) == (
            dry.body["messages"],
            dry.body["estimated_cost"]["total"],
            dry.body["estimated_cost"]["unpriced_messages"],
        )
        dry_per_day = [(d["date"], d["estimated_cost"]) for d in dry.body["per_day"]]
        assert f"{expected:.6f}" == str(
            _sum([c for _, c in dry_per_day if c]).quantize(Decimal("0.000001"))
        )

        # Fire it, and send everything through the stand-in for Twilio.
        sids = [f"SM{n:032x}" for n in range(CONTACTS)]
        twilio.script(SEND_PATH, *(Reply(201, {"sid": s, "status": "queued"}) for s in sids))
        assert 200 == api.post(M + f"alerts/{alert_id}/activate").status
        run_until_idle()
        assert CONTACTS == drain()
        sent = [q for q in twilio.requests if q.path == SEND_PATH]
        assert CONTACTS == len(sent)
        # The i-th send got the i-th sid: Twilio charges per segment of what it received.
        charged = Decimal(0)
        for sid, request in zip(sids, sent, strict=True):
            form = request.form()
            rate = CHARGED["2547" if form["To"].startswith("+2547") else ""]
            price = rate * analyse(form["Body"]).segments
            charged += price * RATE
            body = {"sid": sid, "status": "delivered", "price": f"-{price}", "price_unit": "USD"}
            twilio.script(f"/2010-04-01/Accounts/{ACCOUNT}/Messages/{sid}.json", Reply(200, body))
        for sid in sids:
            _deliver(gw, sid)
        asked = 0
        while n := fetch_due_prices(limit=500):
            asked += n
        assert CONTACTS == asked
        assert {} == twilio.unused()

        cost = api.get(M + "costs", alert=str(alert_id)).body
        total = cost["total"]
        assert (f"{expected:.6f}", f"{charged:.6f}", f"{charged:.6f}", CONTACTS) == (
            total["estimated"],
            total["actual"],
            total["cost"],
            total["messages_with_actual_cost"],
        )
        assert {k: v for k, v in total.items()} == api.get(M + f"alerts/{alert_id}").body["cost"]

        path = M.replace("{project}", api.project.name) + "messages?format=csv"
        streamed = api.client.get(path, HTTP_AUTHORIZATION=api.auth).streaming_content
        rows = list(csv.DictReader(io.StringIO(b"".join(streamed).decode())))
        assert CONTACTS == len(rows)
        assert (expected, charged) == (
            _sum([r["estimated_cost"] for r in rows]),
            _sum([r["actual_cost"] for r in rows]),
        )
        assert {"KES"} == {r["cost_currency"] for r in rows}

    total_segments = sum(segments)
    database = (
        "PostgreSQL" if "postgres" in os.environ.get("CASEREACH_DATABASE_URL", "") else "SQLite"
    )
    lines = [
        "# The cost of a 1,000-contact broadcast",
        "",
        "An immediate broadcast to 1,000 cases through a `twilio` gateway (a real local HTTP",
        "server standing in for Twilio): 900 numbers start with 2547, 100 with 2556, and one",
        "message in four needs two segments.",
        "",
        f"- Fee table, per SMS segment: default {FEES['']} USD, prefix 2547 {FEES['2547']} USD.",
        f"- Twilio charged, per segment: default {CHARGED['']} USD, prefix 2547 "
        f"{CHARGED['2547']} USD.",
        f"- The project's currency is KES, at {RATE} KES to the USD (the dry-run estimate in",
        f"  USD: {usd:.6f}; Twilio's bill in USD: {charged / RATE:.6f}).",
        f"- Written by casereach/billing/tests/test_broadcast_cost_record.py on {now():%Y-%m-%d}"
        f" ({database}).",
        "",
        "| contacts | messages | segments | dry-run estimate | log estimate | log actual | "
        "log cost | currency |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
        f"| {CONTACTS:,} | {len(rows):,} | {total_segments:,} | "
        f"{dry.body['estimated_cost']['total']} | {total['estimated']} | {total['actual']} | "
        f"{total['cost']} | {cost['currency']} |",
        "",
        "Per day:",
        "",
        "| day | dry-run estimate | log estimate | log actual | messages |",
        "|---|---:|---:|---:|---:|",
    ]
    dry_by_day = dict(dry_per_day)
    for d in cost["per_day"]:
        lines.append(
            f"| {d['day']} | {dry_by_day.get(d['day'], '—')} | {d['estimated']} | "
            f"{d['actual']} | {d['messages']} |"
        )
    RECORD.parent.mkdir(exist_ok=True)
    RECORD.write_text("\n".join(lines) + "\n")
    print(RECORD.resolve())
