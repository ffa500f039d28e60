"""SMS over a real SMPP session and email over a real SMTP server, through the dispatcher."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from casereach.messaging.dispatch import Dispatcher
from casereach.messaging.models import Message
from casereach.testing.smsc_sim import SmscSimulator
from casereach.testing.world import Api, case_body

M = "/a/{project}/api/messaging/v1/"


@pytest.fixture
def smsc() -> Iterator[SmscSimulator]:
    sim = SmscSimulator(system_id="casereach", password="secretpw").start()
    try:
        yield sim
    finally:
        sim.stop()


def test_sms_over_smpp_is_sent_and_its_receipt_delivers_it(api: Api, smsc: SmscSimulator) -> None:
    r = api.post(
        M + "gateways",
        {
            "name": "SMSC",
            "type": "smpp",
            "config": {
                "host": smsc.host,
                "port": smsc.port,
                "system_id": "casereach",
                "password": "secretpw",
                "source_addr": "CLINIC",
                "source_ton": 5,
                "source_npi": 0,
            },
        },
    )
    assert 201 == r.status, r.body
    api.put(M + "routes", {"default_gateway": "SMSC", "prefixes": []})
    sent = api.post(M + "send", {"phone_number": "254712345678", "text": "Habari 😀 " * 10}).body
    mid = sent["messages"][0]["id"]
    d = Dispatcher(concurrency=2)
    try:
        d.drain()
        m = Message.objects.get(id=mid)
        # The receipt may already have been applied by the drain's next batch.
        assert ("UCS2", 2) == (m.encoding, m.segments)
        assert m.status in ("sent", "delivered")
        assert 2 == len(smsc.submits)
        deadline = time.monotonic() + 10
        while Message.objects.get(id=mid).status != "delivered":
            assert time.monotonic() < deadline, "no receipt applied"
            d.poll_events()
            time.sleep(0.05)
    finally:
        d.close()


class _Recorder:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"


def test_email_to_a_contact_over_smtp(api: Api) -> None:
    recorder = _Recorder()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        r = api.post(
            M + "gateways",
            {
                "name": "MAIL",
                "type": "email",
                "config": {"host": "127.0.0.1", "port": port, "from_address": "clinic@example.org"},
            },
        )
        assert 201 == r.status, r.body
        cid = api.post(
            "/a/{project}/api/case/v2/",
            case_body(commcare_email_address="amina@example.org", language_code="sw"),
        ).body["case"]["case_id"]
        body = {
            "contact_id": cid,
            "content": {
                "email": {
                    "subject": {"en": "Visit", "sw": "Ziara"},
                    "body": {"en": "Tomorrow", "sw": "Kesho"},
                }
            },
        }
        mid = api.post(M + "send", body).body["messages"][0]["id"]
        d = Dispatcher(concurrency=1)
        try:
            d.drain()
        finally:
            d.close()
        m = Message.objects.get(id=mid)
        assert ("sent", "Ziara", "Kesho") == (m.status, m.subject, m.text)
        assert 1 == len(recorder.messages)
        assert ["amina@example.org"] == recorder.messages[0].rcpt_tos
        assert b"Subject: Ziara" in recorder.messages[0].content
    finally:
        controller.stop()


def test_sms_from_a_phone_over_smpp_is_received_and_answered(api: Api, smsc: SmscSimulator) -> None:
    r = api.post(
        M + "gateways",
        {
            "name": "SMSC",
            "type": "smpp",
            "config": {
                "host": smsc.host,
                "port": smsc.port,
                "system_id": "casereach",
                "password": "secretpw",
                "source_addr": "12345",
            },
        },
    )
    assert 201 == r.status, r.body
    cid = api.post(
        "/a/{project}/api/case/v2/", case_body(phone="254700000001", verified="yes")
    ).body["case"]["case_id"]
    d = Dispatcher(concurrency=2)
    try:
        assert 1 == d.open_sessions()  # bound before any send: MO traffic flows at once
        assert smsc.wait_for(lambda: smsc.bound_sessions == 1)
        smsc.deliver("254700000001", "12345", "STOP")
        deadline = time.monotonic() + 10
        while not Message.objects.filter(direction="in").exists():
            assert time.monotonic() < deadline, "the deliver_sm was not stored"
            d.poll_events()
            time.sleep(0.05)
        m = Message.objects.get(direction="in")
        assert (cid, "opt_out", "STOP") == (m.contact_id, m.inbound_action, m.text)
        d.drain()
        reply = Message.objects.get(direction="out")
        # The simulator's delivery receipt may already have been read by drain().
        assert ("SMSC", True) == (reply.gateway_name, reply.status in ("sent", "delivered"))
        assert ["254700000001"] == [s.destination_addr for s in smsc.submits]
    finally:
        d.close()
