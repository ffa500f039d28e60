"""The smpp gateway against a local SMSC that speaks SMPP 3.4 over real TCP."""

from __future__ import annotations

import faulthandler
import logging
import socket
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

from casereach.core.segments import GSM_BASIC, GSM_EXTENSION
from casereach.gateways.base import (
    GATEWAY_ERROR,
    INVALID_DESTINATION_NUMBER,
    MESSAGE_FORMAT_INVALID,
    MESSAGE_TOO_LONG,
    GatewayError,
    InboundMessage,
    OutgoingMessage,
    StatusUpdate,
)
from casereach.gateways.types.smpp.codec import concat_info, gsm_decode, gsm_encode
from casereach.gateways.types.smpp.gateway import (
    ReceiptTracker,
    SmppConfig,
    SmppGateway,
    parse_receipt,
)
from casereach.testing.gateway_tables import ConfigCase, run_config_case
from casereach.testing.smsc_sim import SmscSimulator

PASSWORD = "Pw7#kq2Z"  # noqa: S105 - the local simulator's test credential
WRONG_PASSWORD = "Wr0ngPw!"  # noqa: S105 - refused by the simulator
TO = "254700000001"

Factory = Callable[..., SmppGateway]


@pytest.fixture(autouse=True)
def _no_hang() -> Iterator[None]:
    """No test may hang: dump the stacks and exit if one runs for 60 s."""
    faulthandler.dump_traceback_later(60, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def sim() -> Iterator[SmscSimulator]:
    with SmscSimulator(system_id="casereach", password=PASSWORD) as simulator:
        yield simulator


@pytest.fixture
def connect(sim: SmscSimulator) -> Iterator[Factory]:
    made: list[SmppGateway] = []

    def factory(**overrides: Any) -> SmppGateway:
        config = {
            "host": sim.host,
            "port": sim.port,
            "system_id": "casereach",
            "password": PASSWORD,
            "source_addr": "CaseReach",
            "source_ton": 5,
            "source_npi": 0,
            "bind_timeout_s": 2,
            "response_timeout_s": 2,
        }
        gateway = SmppGateway(config | overrides)
        made.append(gateway)
        return gateway

    yield factory
    for gateway in made:
        gateway.close()


def msg(
    text: str = "Clinic visit tomorrow", *, to: str = TO, message_id: str = "m-1"
) -> OutgoingMessage:
    return OutgoingMessage(message_id=message_id, channel="sms", text=text, to=to)


# -- binding ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "bind_status"),
    [
        pytest.param(PASSWORD, 0x00, id="right password"),
        pytest.param("wrong", 0x0D, id="bad password"),
    ],
)
def test_bind(sim: SmscSimulator, connect: Factory, password: str, bind_status: int) -> None:
    gateway = connect(password=password, reconnect_delay_s=60)
    if bind_status == 0:
        assert "1" == gateway.send(msg()).provider_id
    else:
        with pytest.raises(GatewayError) as raised:
            gateway.send(msg())
        assert (GATEWAY_ERROR, True, "0x0000000D") == (
            raised.value.code,
            raised.value.retryable,
            raised.value.provider_code,
        )
        # A failed bind is not retried at once (a wrong password must not hammer the SMSC).
        with pytest.raises(GatewayError):
            gateway.send(msg())
        assert [] == sim.submits
    assert [("casereach", bind_status)] == sim.binds


def test_connection_refused_is_retryable(connect: Factory) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    gateway = connect(port=free_port)
    with pytest.raises(GatewayError) as raised:
        gateway.connect()
    assert (GATEWAY_ERROR, True, False) == (
        raised.value.code,
        raised.value.retryable,
        raised.value.outcome_unknown,
    )


# -- sending ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendCase:
    label: str
    text: str
    data_coding: int
    payloads: list[bytes]  # each part's short_message without its UDH
    esm_class: int = 0


SEND_CASES = [
    SendCase("plain GSM", "Clinic visit at 09:00", 0, [b"Clinic visit at 09:00"]),
    SendCase("GSM specials", "Pay £5 @ desk §1", 0, [b"Pay \x015 \x00 desk _1"]),
    SendCase("GSM extension", "Bring {card} €5", 0, [b"Bring \x1b(card\x1b) \x1be5"]),
    SendCase("UCS-2", "Habari 😊", 8, ["Habari 😊".encode("utf-16-be")]),
    SendCase("UCS-2 for a non-GSM letter", "ça va", 8, ["ça va".encode("utf-16-be")]),
    SendCase("long GSM", "a" * 200, 0, [b"a" * 153, b"a" * 47], esm_class=0x40),
    SendCase(
        "escape pair never split",
        "a" * 152 + "€" + "b" * 10,
        0,
        [b"a" * 152, b"\x1be" + b"b" * 10],
        esm_class=0x40,
    ),
    SendCase(
        "long UCS-2",
        "ሰላም " * 40,
        8,
        [("ሰላም " * 40)[i : i + 67].encode("utf-16-be") for i in (0, 67, 134)],
        esm_class=0x40,
    ),
]


@pytest.mark.parametrize("case", SEND_CASES, ids=lambda c: c.label)
def test_send(sim: SmscSimulator, connect: Factory, case: SendCase) -> None:
    gateway = connect()

    result = gateway.send(msg(case.text))

    assert case.payloads == [s.payload for s in sim.submits]
    assert {case.data_coding} == {s.data_coding for s in sim.submits}
    assert {case.esm_class} == {s.esm_class for s in sim.submits}
    assert case.text == "".join(s.text for s in sim.submits)
    assert {("CaseReach", TO, 1)} == {
        (s.source_addr, s.destination_addr, s.registered_delivery) for s in sim.submits
    }
    assert sim.submits[-1].message_id == result.provider_id
    assert "sent" == result.status
    total = len(case.payloads)
    if total > 1:
        concats = [concat_info(s.udh) for s in sim.submits]
        assert all(c is not None for c in concats)
        assert [(total, seq) for seq in range(1, total + 1)] == [
            (c.total, c.seq) for c in concats if c
        ]
        assert 1 == len({c.ref for c in concats if c})  # one reference for all parts
        assert [s.message_id for s in sim.submits] == gateway.last_exchange.extra["part_ids"]  # type: ignore[union-attr]
    else:
        assert [b""] == [s.udh for s in sim.submits]


@pytest.mark.parametrize(
    ("message", "code"),
    [
        pytest.param(msg(""), MESSAGE_FORMAT_INVALID, id="empty text"),
        pytest.param(msg(to="clinic"), INVALID_DESTINATION_NUMBER, id="destination not digits"),
        pytest.param(msg(to=""), INVALID_DESTINATION_NUMBER, id="no destination"),
        pytest.param(msg("x" * 153 * 256), MESSAGE_TOO_LONG, id="more than 255 parts"),
    ],
)
def test_refused_before_sending(
    sim: SmscSimulator, connect: Factory, message: OutgoingMessage, code: str
) -> None:
    with pytest.raises(GatewayError) as raised:
        connect().send(message)
    assert (code, False) == (raised.value.code, raised.value.retryable)
    assert [] == sim.binds


@dataclass(frozen=True)
class ErrorCase:
    label: str
    script: Callable[[SmscSimulator], None]
    code: str
    retryable: bool
    provider_code: str = ""
    outcome_unknown: bool = False


ERROR_CASES = [
    ErrorCase(
        "rejected destination",
        lambda sim: sim.reject.__setitem__(TO, 0x0B),
        INVALID_DESTINATION_NUMBER,
        False,
        "0x0000000B",
    ),
    ErrorCase(
        "throttled", lambda sim: sim.reject.__setitem__(TO, 0x58), GATEWAY_ERROR, True, "0x00000058"
    ),
    ErrorCase(
        "queue full",
        lambda sim: sim.reject.__setitem__(TO, 0x14),
        GATEWAY_ERROR,
        True,
        "0x00000014",
    ),
    ErrorCase(
        "invalid source address",
        lambda sim: sim.reject.__setitem__(TO, 0x0A),
        GATEWAY_ERROR,
        False,
        "0x0000000A",
    ),
    ErrorCase(
        "no response", lambda sim: sim.silent.add(TO), GATEWAY_ERROR, True, outcome_unknown=True
    ),
]


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.label)
def test_send_errors(sim: SmscSimulator, connect: Factory, case: ErrorCase) -> None:
    case.script(sim)
    gateway = connect(response_timeout_s=0.3)

    with pytest.raises(GatewayError) as raised:
        gateway.send(msg())

    error = raised.value
    assert (case.code, case.retryable, case.provider_code, case.outcome_unknown) == (
        error.code,
        error.retryable,
        error.provider_code,
        error.outcome_unknown,
    )
    assert 1 == len(sim.submits)
    # The session survives a refused message.
    sim.reject.clear()
    sim.silent.clear()
    assert gateway.send(msg(message_id="m-2")).provider_id
    assert 1 == len(sim.binds)


# -- receipts and inbound messages ------------------------------------------------------------


@pytest.mark.parametrize("tlvs", [True, False], ids=["receipted_message_id TLV", "text only"])
def test_receipts_are_matched_to_messages(sim: SmscSimulator, connect: Factory, tlvs: bool) -> None:
    sim.receipt_tlvs = tlvs
    sim.receipt_stat["254700000009"] = "UNDELIV"
    gateway = connect()

    single = gateway.send(msg("Short", message_id="m-1"))
    long = gateway.send(msg("z" * 400, message_id="m-2"))  # 3 parts, 3 receipts
    failed = gateway.send(msg("Short", to="254700000009", message_id="m-3"))
    assert sim.wait_for(lambda: 5 == len(sim.deliver_sm_resps))

    events = gateway.drain_events()

    assert [
        StatusUpdate(single.provider_id or "", "delivered", provider_code="DELIVRD"),
        StatusUpdate(long.provider_id or "", "delivered", provider_code="DELIVRD"),
        StatusUpdate(
            failed.provider_id or "",
            "failed",
            error_code=GATEWAY_ERROR,
            provider_code="UNDELIV err:001",
        ),
    ] == events
    assert "3 parts: 2, 3, 4" == long.detail
    assert [] == gateway.drain_events()


def test_receipts_for_a_message_still_sending_are_held(
    sim: SmscSimulator, connect: Factory
) -> None:
    sim.response_delay_s = 0.3  # part 1's receipt arrives while part 2 is still unanswered
    gateway = connect()
    gateway.connect()

    with ThreadPoolExecutor(max_workers=1) as pool:
        sending = pool.submit(gateway.send, msg("y" * 200))
        assert sim.wait_for(lambda: 1 == len(sim.deliver_sm_resps))
        assert [] == gateway.drain_events()  # part 1 is not known yet, but a send is running
        result = sending.result(timeout=5)
    assert sim.wait_for(lambda: 2 == len(sim.deliver_sm_resps))

    assert [StatusUpdate(result.provider_id or "", "delivered", provider_code="DELIVRD")] == (
        gateway.drain_events()
    )


def test_receipt_tracker_aggregates_parts() -> None:
    tracker = ReceiptTracker()
    tracker.register(["a1", "a2", "a3"])
    tracker.register(["b1", "b2"])

    def resolve(part: str, status: Any) -> tuple[bool, StatusUpdate | None]:
        return tracker.resolve(StatusUpdate(part, status))

    assert (True, StatusUpdate("a3", "sent")) == resolve("a1", "sent")
    assert (True, None) == resolve("a1", "delivered")
    assert (True, None) == resolve("a3", "delivered")
    assert (True, StatusUpdate("a3", "delivered")) == resolve("a2", "delivered")
    assert (True, None) == resolve("a2", "failed")  # final already
    assert (True, StatusUpdate("b2", "failed")) == resolve("b1", "failed")
    assert (False, None) == resolve("zz", "delivered")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            b"id:1234 sub:001 dlvrd:001 submit date:2501011200 done date:2501011201 stat:DELIVRD err:000 text:Hello",
            StatusUpdate("1234", "delivered", provider_code="DELIVRD"),
        ),
        (
            b"id:ab-9 sub:001 dlvrd:000 submit date:2501011200 done date:2501011201 stat:UNDELIV err:012 text:",
            StatusUpdate(
                "ab-9", "failed", error_code=GATEWAY_ERROR, provider_code="UNDELIV err:012"
            ),
        ),
        (
            b"id:7 stat:EXPIRED err:000",
            StatusUpdate("7", "failed", GATEWAY_ERROR, "EXPIRED err:000"),
        ),
        (b"id:7 stat:REJECTD", StatusUpdate("7", "failed", GATEWAY_ERROR, "REJECTD")),
        (b"id:7 stat:DELETED err:0", StatusUpdate("7", "failed", GATEWAY_ERROR, "DELETED err:0")),
        (b"ID:7 SUB:001 STAT:acceptd", StatusUpdate("7", "sent", provider_code="ACCEPTD")),
        (b"id:7 stat:ENROUTE", StatusUpdate("7", "sent", provider_code="ENROUTE")),
    ],
    ids=["delivered", "undeliverable", "expired", "rejected", "deleted", "accepted", "enroute"],
)
def test_parse_receipt(text: bytes, expected: StatusUpdate) -> None:
    assert expected == parse_receipt(text)


@pytest.mark.parametrize(
    "text", [b"", b"hello there", b"id:12 sub:001"], ids=["empty", "text", "no stat"]
)
def test_parse_receipt_refuses_other_text(text: bytes) -> None:
    with pytest.raises(ValueError, match="not a delivery receipt"):
        parse_receipt(text)


def test_inbound_messages(sim: SmscSimulator, connect: Factory) -> None:
    gateway = connect()
    gateway.connect()
    udh = b"\x05\x00\x03\x2a\x02"

    sim.deliver("+254700000001", "12345", "Yes, thank you €")
    sim.deliver(TO, "12345", short_message="Asante 😊".encode("utf-16-be"), data_coding=8)
    sim.deliver(TO, "12345", short_message=udh + b"\x02" + b" world", esm_class=0x40)
    sim.deliver(TO, "12345", short_message=udh + b"\x01" + b"Hello", esm_class=0x40)
    assert sim.wait_for(lambda: 4 == len(sim.deliver_sm_resps))

    assert [
        InboundMessage(sender=TO, to="12345", text="Yes, thank you €"),
        InboundMessage(sender=TO, to="12345", text="Asante 😊"),
        InboundMessage(sender=TO, to="12345", text="Hello world"),
    ] == gateway.drain_events()
    assert {0} == {p.status for p in sim.deliver_sm_resps}


def test_non_receipt_deliver_sm_is_inbound_receipt_is_status(
    sim: SmscSimulator, connect: Factory
) -> None:
    """The SMPP inbound path: a deliver_sm without the receipt bit is an incoming SMS (sender
    and destination normalised to digits without '+'); one with it is a delivery report."""
    gateway = connect()
    gateway.connect()
    receipt = b"id:77 sub:001 dlvrd:001 submit date:2405021011 done date:2405021012 stat:DELIVRD"

    sim.deliver("+254700000002", "+12345", "STOP")
    sim.deliver("12345", TO, short_message=receipt + b" err:000 text:", esm_class=0x04)
    sim.deliver("254700000003", "12345", "id:1 stat:DELIVRD but a person typed it")
    assert sim.wait_for(lambda: 3 == len(sim.deliver_sm_resps))

    assert [
        InboundMessage(sender="254700000002", to="12345", text="STOP"),
        StatusUpdate(provider_id="77", status="delivered", provider_code="DELIVRD"),
        InboundMessage(
            sender="254700000003", to="12345", text="id:1 stat:DELIVRD but a person typed it"
        ),
    ] == gateway.drain_events()
    assert [] == gateway.drain_events()


# -- session behaviour -----------------------------------------------------------------------


def test_enquire_link_keeps_the_session(sim: SmscSimulator, connect: Factory) -> None:
    gateway = connect(enquire_link_s=0.1)
    gateway.send(msg())

    assert sim.wait_for(lambda: sim.enquire_links >= 3)
    assert gateway.send(msg(message_id="m-2")).provider_id
    assert 1 == len(sim.binds)


def test_rebinds_after_the_connection_drops(sim: SmscSimulator, connect: Factory) -> None:
    gateway = connect(enquire_link_s=0.1, reconnect_delay_s=0.1)
    gateway.send(msg())

    sim.drop_connections()

    assert sim.wait_for(lambda: 2 == len(sim.binds) and 1 == sim.bound_sessions)
    assert gateway.send(msg(message_id="m-2")).provider_id


def test_connection_lost_while_waiting_is_an_unknown_outcome(
    sim: SmscSimulator, connect: Factory
) -> None:
    sim.silent.add(TO)
    gateway = connect(response_timeout_s=10)
    gateway.connect()

    with ThreadPoolExecutor(max_workers=1) as pool:
        sending = pool.submit(gateway.send, msg())
        assert sim.wait_for(lambda: 1 == len(sim.submits))
        sim.drop_connections()
        with pytest.raises(GatewayError) as raised:
            sending.result(timeout=5)  # well before response_timeout_s

    assert (GATEWAY_ERROR, True, True) == (
        raised.value.code,
        raised.value.retryable,
        raised.value.outcome_unknown,
    )


@pytest.mark.parametrize("window", [1, 2, 4])
def test_window_limits_unanswered_submits(
    sim: SmscSimulator, connect: Factory, window: int
) -> None:
    sim.response_delay_s = 0.1
    gateway = connect(window=window)
    gateway.connect()

    def send(i: int) -> tuple[str | None, list[str]]:
        result = gateway.send(msg(message_id=f"m-{i}"))
        assert gateway.last_exchange is not None
        return result.provider_id, gateway.last_exchange.extra["part_ids"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(send, range(8)))

    assert 8 == len({provider_id for provider_id, _ in results})
    assert all([provider_id] == part_ids for provider_id, part_ids in results)  # per thread
    assert window == sim.max_outstanding


def test_close_unbinds_and_stops(sim: SmscSimulator, connect: Factory) -> None:
    gateway = connect()
    gateway.send(msg())

    gateway.close()

    assert sim.wait_for(lambda: 1 == sim.unbinds)
    with pytest.raises(GatewayError) as raised:
        gateway.send(msg(message_id="m-2"))
    assert (GATEWAY_ERROR, True) == (raised.value.code, raised.value.retryable)


def test_secrets_and_numbers_never_logged(
    sim: SmscSimulator, connect: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="casereach.gateways")
    gateway = connect()
    gateway.send(msg("Visit Dr Amina " * 12))  # two parts, two receipts
    assert sim.wait_for(lambda: 2 == len(sim.deliver_sm_resps))
    refused = connect(password=WRONG_PASSWORD)
    with pytest.raises(GatewayError) as raised:
        refused.send(msg())

    logged = caplog.text + str(gateway.last_exchange) + str(refused.last_exchange)
    logged += str(raised.value) + raised.value.detail
    assert "submit_sm" in caplog.text and "bind_transceiver" in caplog.text
    for secret in (PASSWORD, WRONG_PASSWORD, TO, "Dr Amina"):
        assert secret not in logged
    assert "2547*****001" in logged


# -- configuration and encoding ----------------------------------------------------------------


CONFIG_CASES = [
    ConfigCase("minimal config", {}),
    ConfigCase(
        "alphanumeric sender", {"source_addr": "CaseReach", "source_ton": 5, "source_npi": 0}
    ),
    ConfigCase("no host", {"host": ""}, expect_error="bare host name"),
    ConfigCase("URL as host", {"host": "smpp://smsc.example.org"}, expect_error="bare host name"),
    ConfigCase("no system_id", drop=["system_id"], expect_error="Field required"),
    ConfigCase("empty system_id", {"system_id": ""}, expect_error="system_id is required"),
    ConfigCase(
        "long system_id", {"system_id": "a" * 16}, expect_error="at most 15 characters in system_id"
    ),
    ConfigCase(
        "long password", {"password": "123456789"}, expect_error="at most 8 characters in password"
    ),
    ConfigCase(
        "non-ASCII password", {"password": "pässwort"}, expect_error="must be printable ASCII"
    ),
    ConfigCase(
        "long sender",
        {"source_addr": "x" * 21},
        expect_error="at most 20 characters in source_addr",
    ),
    ConfigCase("bad TON", {"source_ton": 9}, expect_error="type of number (TON) must be 0-6"),
    ConfigCase("bad NPI", {"dest_npi": 2}, expect_error="numbering plan (NPI)"),
    ConfigCase("window 0", {"window": 0}, expect_error="greater than or equal to 1"),
    ConfigCase("port too big", {"port": 70000}, expect_error="less than or equal to 65535"),
    ConfigCase("zero timeout", {"response_timeout_s": 0}, expect_error="greater than 0"),
    ConfigCase("unknown key", {"smsc": "x"}, expect_error="Extra inputs are not permitted"),
]


@pytest.mark.parametrize("case", CONFIG_CASES, ids=lambda c: c.label)
def test_config_validation(case: ConfigCase) -> None:
    run_config_case(SmppGateway, {"host": "smsc.example.org", "system_id": "casereach"}, case)


def test_config_defaults() -> None:
    config = SmppConfig.model_validate({"host": "smsc.example.org", "system_id": "casereach"})
    assert (2775, 10, 30.0, True, ("password",)) == (
        config.port,
        config.window,
        config.enquire_link_s,
        config.registered_delivery,
        SmppGateway.secret_fields,
    )


def test_gsm_codec_matches_the_gsm0338_oracle() -> None:
    gsm0338 = pytest.importorskip("gsm0338")
    assert gsm0338
    for ch in sorted(GSM_BASIC | GSM_EXTENSION):
        assert ch.encode("gsm03.38") == gsm_encode(ch), repr(ch)
        if ch != "\x1b":  # the escape itself only has meaning before an extension code
            assert ch == gsm_decode(gsm_encode(ch))
    with pytest.raises(ValueError, match="U\\+00E7"):
        gsm_encode("ç")
