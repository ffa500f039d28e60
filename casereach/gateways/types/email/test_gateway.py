"""The email gateway against a real aiosmtpd SMTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import email
import email.policy
import faulthandler
import logging
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from casereach.gateways.base import (
    EMAIL_GATEWAY_ERROR,
    ERROR_INVALID_EMAIL_ADDRESS,
    GatewayError,
    OutgoingMessage,
)
from casereach.gateways.types.email.gateway import (
    EmailConfig,
    EmailGateway,
    config_from_settings,
    message_id_header,
)
from casereach.testing.gateway_tables import ConfigCase, run_config_case

USER = "mailer"
PASSWORD = "Sm7p-Pa55"  # noqa: S105 - the local test server's credential
TO = "amina@example.org"

Factory = Callable[..., EmailGateway]


@pytest.fixture(autouse=True)
def _no_hang() -> Iterator[None]:
    """No test may hang: dump the stacks and exit if one runs for 60 s."""
    faulthandler.dump_traceback_later(60, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@dataclass
class Received:
    peer: Any
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    login: bytes | None

    @property
    def message(self) -> email.message.EmailMessage:
        parsed = email.message_from_bytes(self.content, policy=email.policy.default)
        assert isinstance(parsed, email.message.EmailMessage)
        return parsed


@dataclass
class Recorder:
    """An aiosmtpd handler that records messages and replies as scripted."""

    messages: list[Received] = field(default_factory=list)
    mail_reply: str = ""
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_reply: str = ""
    data_delay_s: float = 0.0
    port: int = 0

    async def handle_MAIL(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.mail_reply:
            return self.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        if self.data_delay_s:
            await asyncio.sleep(self.data_delay_s)
        if self.data_reply:
            return self.data_reply
        login = session.auth_data.login if isinstance(session.auth_data, LoginPassword) else None
        content = envelope.original_content or b""
        self.messages.append(
            Received(
                session.peer, envelope.mail_from or "", list(envelope.rcpt_tos), content, login
            )
        )
        return "250 2.0.0 OK queued as Q1"


def _authenticate(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    # handled=False: aiosmtpd then answers a refusal with 535 itself.
    return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def handler() -> Iterator[Recorder]:
    recorder = Recorder()
    controller = Controller(
        recorder,
        hostname="127.0.0.1",
        port=_free_port(),
        authenticator=_authenticate,
        auth_require_tls=False,
    )
    controller.start()
    recorder.port = controller.port
    yield recorder
    controller.stop()


@pytest.fixture
def connect(handler: Recorder) -> Iterator[Factory]:
    made: list[EmailGateway] = []

    def factory(**overrides: Any) -> EmailGateway:
        config = {
            "host": "127.0.0.1",
            "port": handler.port,
            "from_address": "Clinic <noreply@clinic.example.org>",
            "timeout_s": 5,
        }
        gateway = EmailGateway(config | overrides)
        made.append(gateway)
        return gateway

    yield factory
    for gateway in made:
        gateway.close()


def msg(
    *, to: str = TO, subject: str = "Your visit", text: str = "See you at 09:00.", mid: str = "m-1"
) -> OutgoingMessage:
    return OutgoingMessage(message_id=mid, channel="email", text=text, subject=subject, email_to=to)


# -- sending ---------------------------------------------------------------------------------


def test_send(handler: Recorder, connect: Factory) -> None:
    gateway = connect(username=USER, password=PASSWORD)

    result = gateway.send(msg(subject="Ziara yako 😊", text="Karibu, Amina — 09:00\nAsante."))

    [received] = handler.messages
    parsed = received.message
    assert ("noreply@clinic.example.org", [TO], USER.encode()) == (
        received.mail_from,
        received.rcpt_tos,
        received.login,
    )
    assert "Clinic <noreply@clinic.example.org>" == parsed["From"]
    assert TO == parsed["To"]
    assert "Ziara yako 😊" == parsed["Subject"]
    assert "<m-1@clinic.example.org>" == parsed["Message-ID"]
    assert parsed["Date"]
    body = parsed.get_body()
    assert body is not None
    assert "Karibu, Amina — 09:00\nAsante.\n" == body.get_content().replace("\r\n", "\n")
    assert ("<m-1@clinic.example.org>", "sent") == (result.provider_id, result.status)
    assert "250 2.0.0 OK queued as Q1" == result.detail


def test_connection_is_reused_and_closed(handler: Recorder, connect: Factory) -> None:
    gateway = connect()
    gateway.send(msg(mid="m-1"))
    gateway.send(msg(mid="m-2"))

    gateway.close()

    assert 1 == len({m.peer for m in handler.messages})
    assert ["<m-1@clinic.example.org>", "<m-2@clinic.example.org>"] == [
        m.message["Message-ID"] for m in handler.messages
    ]


def test_sender_override(handler: Recorder, connect: Factory) -> None:
    message = OutgoingMessage(
        message_id="m-1", channel="email", text="Hi", email_to=TO, email_from="nurse@example.org"
    )
    assert "<m-1@example.org>" == connect().send(message).provider_id
    assert "nurse@example.org" == handler.messages[0].mail_from


# -- errors ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorCase:
    label: str
    script: Callable[[Recorder], None]
    code: str
    retryable: bool
    provider_code: str = ""
    outcome_unknown: bool = False


ERROR_CASES = [
    ErrorCase(
        "unknown user at RCPT",
        lambda h: h.rcpt_replies.__setitem__(TO, "550 5.1.1 <amina@example.org>: User unknown"),
        ERROR_INVALID_EMAIL_ADDRESS,
        False,
        "550 5.1.1",
    ),
    ErrorCase(
        "refused at RCPT without enhanced code",
        lambda h: h.rcpt_replies.__setitem__(TO, "550 No such mailbox"),
        ERROR_INVALID_EMAIL_ADDRESS,
        False,
        "550",
    ),
    ErrorCase(
        "relaying denied",
        lambda h: h.rcpt_replies.__setitem__(TO, "550 5.7.1 Relaying denied"),
        EMAIL_GATEWAY_ERROR,
        False,
        "550 5.7.1",
    ),
    ErrorCase(
        "greylisted at RCPT",
        lambda h: h.rcpt_replies.__setitem__(TO, "450 4.2.0 Greylisted, try again"),
        EMAIL_GATEWAY_ERROR,
        True,
        "450 4.2.0",
    ),
    ErrorCase(
        "try later at DATA",
        lambda h: setattr(h, "data_reply", "451 4.3.0 Try again later"),
        EMAIL_GATEWAY_ERROR,
        True,
        "451 4.3.0",
    ),
    ErrorCase(
        "content rejected",
        lambda h: setattr(h, "data_reply", "554 5.6.0 Message rejected"),
        EMAIL_GATEWAY_ERROR,
        False,
        "554 5.6.0",
    ),
    ErrorCase(
        "user unknown after DATA",
        lambda h: setattr(h, "data_reply", "550 5.1.1 No such user"),
        ERROR_INVALID_EMAIL_ADDRESS,
        False,
        "550 5.1.1",
    ),
    ErrorCase(
        "sender refused",
        lambda h: setattr(h, "mail_reply", "553 5.1.8 Sender address rejected"),
        EMAIL_GATEWAY_ERROR,
        False,
        "553 5.1.8",
    ),
    ErrorCase(
        "no answer after DATA",
        lambda h: setattr(h, "data_delay_s", 3.0),
        EMAIL_GATEWAY_ERROR,
        True,
        outcome_unknown=True,
    ),
]


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.label)
def test_send_errors(handler: Recorder, connect: Factory, case: ErrorCase) -> None:
    case.script(handler)
    # Short enough for the 3 s silence after DATA, long enough that a loaded machine does not
    # time out earlier in the conversation (which would be a different, known outcome).
    gateway = connect(timeout_s=1.5)

    with pytest.raises(GatewayError) as raised:
        gateway.send(msg())

    error = raised.value
    assert (case.code, case.retryable, case.provider_code, case.outcome_unknown) == (
        error.code,
        error.retryable,
        error.provider_code,
        error.outcome_unknown,
    )
    # The gateway recovers (a fresh connection) once the server behaves.
    handler.rcpt_replies.clear()
    handler.mail_reply = handler.data_reply = ""
    handler.data_delay_s = 0
    assert gateway.send(msg(mid="m-2")).provider_id == "<m-2@clinic.example.org>"


@pytest.mark.parametrize(
    ("overrides", "code", "retryable", "provider_code"),
    [
        pytest.param(
            {"username": USER, "password": "wrong-pw"},
            EMAIL_GATEWAY_ERROR,
            False,
            "535 5.7.8",
            id="bad password",
        ),
        pytest.param({"use_tls": True}, EMAIL_GATEWAY_ERROR, False, "", id="no STARTTLS"),
    ],
)
def test_connection_setup_errors(
    handler: Recorder,
    connect: Factory,
    overrides: dict[str, Any],
    code: str,
    retryable: bool,
    provider_code: str,
) -> None:
    with pytest.raises(GatewayError) as raised:
        connect(**overrides).send(msg())
    assert (code, retryable, provider_code) == (
        raised.value.code,
        raised.value.retryable,
        raised.value.provider_code,
    )
    assert [] == handler.messages


def test_connection_refused_is_retryable() -> None:
    gateway = EmailGateway(
        {"host": "127.0.0.1", "port": _free_port(), "from_address": "a@example.org"}
    )
    with pytest.raises(GatewayError) as raised:
        gateway.send(msg())
    assert (EMAIL_GATEWAY_ERROR, True, False) == (
        raised.value.code,
        raised.value.retryable,
        raised.value.outcome_unknown,
    )


def test_silent_server_times_out() -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never greets
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        gateway = EmailGateway(
            {
                "host": "127.0.0.1",
                "port": silent.getsockname()[1],
                "from_address": "a@example.org",
                "timeout_s": 0.3,
            }
        )
        with pytest.raises(GatewayError) as raised:
            gateway.send(msg())
    assert (EMAIL_GATEWAY_ERROR, True, False) == (
        raised.value.code,
        raised.value.retryable,
        raised.value.outcome_unknown,
    )


@pytest.mark.parametrize("to", ["", "amina", "amina@", "@example.org", "a b@example.org"])
def test_invalid_address_refused_before_connecting(to: str) -> None:
    gateway = EmailGateway({"host": "127.0.0.1", "port": 1, "from_address": "a@example.org"})
    with pytest.raises(GatewayError) as raised:
        gateway.send(msg(to=to))
    assert (ERROR_INVALID_EMAIL_ADDRESS, False) == (raised.value.code, raised.value.retryable)


def test_secrets_never_logged(
    handler: Recorder, connect: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="casereach.gateways")
    gateway = connect(username=USER, password=PASSWORD)
    gateway.send(msg(text="Call +254700000001"))
    ok_exchange = gateway.last_exchange
    refused = connect(username=USER, password=PASSWORD + "x")
    with pytest.raises(GatewayError) as raised:
        refused.send(msg())

    logged = caplog.text + str(ok_exchange) + str(refused.last_exchange) + str(raised.value)
    assert "RCPT TO:<amina@example.org>" in caplog.text
    assert "AUTH as mailer" in logged
    assert PASSWORD not in logged


# -- configuration -----------------------------------------------------------------------------


CONFIG_CASES = [
    ConfigCase("minimal config", {}),
    ConfigCase(
        "STARTTLS with login",
        {"port": 587, "use_tls": True, "username": USER, "password": PASSWORD},
    ),
    ConfigCase("implicit TLS", {"port": 465, "use_ssl": True}),
    ConfigCase("named sender", {"from_address": "Clinic <noreply@example.org>"}),
    ConfigCase("no host", {"host": ""}, expect_error="bare host name"),
    ConfigCase("URL as host", {"host": "smtp://mail.example.org"}, expect_error="bare host name"),
    ConfigCase("no sender", drop=["from_address"], expect_error="Field required"),
    ConfigCase(
        "sender not an address",
        {"from_address": "noreply"},
        expect_error="from_address must be an email address",
    ),
    ConfigCase(
        "both TLS modes", {"use_tls": True, "use_ssl": True}, expect_error="cannot both be on"
    ),
    ConfigCase("password alone", {"password": "x"}, expect_error="a password needs a username"),
    ConfigCase("port 0", {"port": 0}, expect_error="greater than or equal to 1"),
    ConfigCase("zero timeout", {"timeout_s": 0}, expect_error="greater than 0"),
    ConfigCase("unknown key", {"tls": True}, expect_error="Extra inputs are not permitted"),
]


@pytest.mark.parametrize("case", CONFIG_CASES, ids=lambda c: c.label)
def test_config_validation(case: ConfigCase) -> None:
    run_config_case(
        EmailGateway, {"host": "smtp.example.org", "from_address": "a@example.org"}, case
    )


def test_config_from_server_settings() -> None:
    settings = SimpleNamespace(
        EMAIL_HOST="smtp.example.org",
        EMAIL_PORT=587,
        EMAIL_HOST_USER=USER,
        EMAIL_HOST_PASSWORD=PASSWORD,
        EMAIL_USE_TLS=True,
        EMAIL_USE_SSL=False,
        EMAIL_TIMEOUT=None,
        DEFAULT_FROM_EMAIL="CaseReach <noreply@example.org>",
    )
    config = EmailConfig.model_validate(config_from_settings(settings))
    assert ("smtp.example.org", 587, USER, True, 30.0) == (
        config.host,
        config.port,
        config.username,
        config.use_tls,
        config.timeout_s,
    )
    assert ("password",) == EmailGateway.secret_fields
    assert "email" == EmailGateway.channel


@pytest.mark.parametrize(
    ("message_id", "sender", "expected"),
    [
        ("0b9f-42", "a@example.org", "<0b9f-42@example.org>"),
        ("id with <spaces>", "Clinic <a@example.org>", "<id-with--spaces-@example.org>"),
        ("m1", "a@bücher.example", "<m1@xn--bcher-kva.example>"),
        ("m1", "", "<m1@casereach.invalid>"),
    ],
)
def test_message_id_header(message_id: str, sender: str, expected: str) -> None:
    assert expected == message_id_header(message_id, sender)
