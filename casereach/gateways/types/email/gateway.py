"""The ``email`` gateway: SMTP with ``smtplib``, a project's own server or the server's settings.

Django's mail backends are off limits here (gateway types never import django), so this is
the same idea in ~200 lines: one connection kept open between sends (checked with NOOP before
reuse), STARTTLS or implicit TLS, AUTH, and an SMTP conversation we drive step by step so a
failure says *where* it happened. ``config_from_settings`` turns Django's ``EMAIL_*`` settings
into a config for a gateway that uses "the server's SMTP settings".

The ``Message-ID`` header carries our message id (``<message_id@sender-domain>``); it is also
the ``provider_id``, so a bounce or a reply can be traced back to the message.

Error mapping (the SMTP reply code and enhanced status are kept as ``provider_code``)::

    connection refused / timeout / disconnect ─ EMAIL_GATEWAY_ERROR retryable
                       (during DATA: outcome_unknown, the server may have taken the message)
    any 4xx reply (greylisting, 451 try later) ─ EMAIL_GATEWAY_ERROR retryable
    5xx at RCPT, or 5.1.x at RCPT/DATA ──────── ERROR_INVALID_EMAIL_ADDRESS permanent
                       (except 5.7.x policy refusals, e.g. relaying denied: a gateway problem)
    other 5xx, AUTH refused, TLS unsupported ── EMAIL_GATEWAY_ERROR permanent
"""

from __future__ import annotations

import logging
import re
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8
from email.utils import formatdate, parseaddr
from typing import Any, ClassVar, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from casereach.gateways import addresses
from casereach.gateways.base import (
    EMAIL_GATEWAY_ERROR,
    ERROR_INVALID_EMAIL_ADDRESS,
    Exchange,
    Gateway,
    GatewayError,
    OutgoingMessage,
    SendResult,
    max_in_flight_field,
)
from casereach.gateways.masking import mask_text

Stage = Literal["connect", "mail", "rcpt", "data"]

log = logging.getLogger("casereach.gateways.email")

_ENHANCED = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})\b")
_LOCAL_ID = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]")


class EmailConfig(BaseModel):
    """An SMTP server and the account to send from."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(description="SMTP server host name or IP address")
    port: int = Field(25, ge=1, le=65535, description="25 or 587 (STARTTLS), 465 (SSL)")
    username: str = ""
    password: str = ""
    use_tls: bool = Field(False, description="upgrade the connection with STARTTLS")
    use_ssl: bool = Field(False, description="implicit TLS from the first byte (port 465)")
    from_address: str = Field(description='the sender, e.g. "Clinic <noreply@example.org>"')
    timeout_s: float = Field(30.0, gt=0, le=600)
    # One SMTP session per dispatch thread: a handful, as mail servers like it.
    max_in_flight: int = max_in_flight_field(4)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        value = value.strip()
        if not value or "://" in value or " " in value or "/" in value:
            raise ValueError("host must be a bare host name or IP address, like smtp.example.org")
        return addresses.check_host(value)

    @field_validator("from_address")
    @classmethod
    def _from_address(cls, value: str) -> str:
        value = value.strip()
        if not _is_address(parseaddr(value)[1]):
            raise ValueError('from_address must be an email address, like "Clinic <a@b.org>"')
        return value

    @model_validator(mode="after")
    def _consistent(self) -> EmailConfig:
        if self.use_tls and self.use_ssl:
            raise ValueError(
                "use_tls (STARTTLS, usually port 587) and use_ssl (implicit TLS, usually "
                "port 465) cannot both be on"
            )
        if self.password and not self.username:
            raise ValueError("a password needs a username")
        return self


def config_from_settings(settings: object) -> dict[str, Any]:
    """A config dict from Django-style ``EMAIL_*`` settings (the server's own SMTP server).

    Takes the settings object (``django.conf.settings``) from the caller, so this module does not
    import django. Validate the result with ``EmailConfig`` like any stored config.
    """

    def get(name: str, default: Any) -> Any:
        value = getattr(settings, name, default)
        return default if value is None else value

    return {
        "host": get("EMAIL_HOST", "localhost"),
        "port": int(get("EMAIL_PORT", 25)),
        "username": get("EMAIL_HOST_USER", ""),
        "password": get("EMAIL_HOST_PASSWORD", ""),
        "use_tls": bool(get("EMAIL_USE_TLS", False)),
        "use_ssl": bool(get("EMAIL_USE_SSL", False)),
        "from_address": get("DEFAULT_FROM_EMAIL", "webmaster@localhost"),
        "timeout_s": float(get("EMAIL_TIMEOUT", 30.0)),
    }


def _is_address(address: str) -> bool:
    local, at, domain = address.rpartition("@")
    return bool(at and local and domain) and not any(c.isspace() for c in address)


def message_id_header(message_id: str, sender: str) -> str:
    """``<our-message-id@sender-domain>``: RFC 5322 msg-id carrying our stable id."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "casereach.invalid"
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        domain = "casereach.invalid"
    local = _LOCAL_ID.sub("-", message_id).strip(".") or "message"
    return f"<{local}@{domain}>"


class _CheckedSMTP(smtplib.SMTP):
    """``smtplib.SMTP`` whose socket goes to the address ``addresses.open_tcp`` checked
    (STARTTLS still verifies the certificate against the host name, ``self._host``)."""

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return addresses.open_tcp(host, port, timeout)


class _CheckedSMTPSSL(smtplib.SMTP_SSL):
    """``smtplib.SMTP_SSL`` connecting as ``_CheckedSMTP`` does, TLS for the host name."""

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = addresses.open_tcp(host, port, timeout)
        return self.context.wrap_socket(sock, server_hostname=host)


class EmailGateway(Gateway):
    """Sends one email per message over a reused SMTP connection."""

    slug = "email"
    label = "Email (SMTP)"
    channel = "email"
    config_model = EmailConfig
    secret_fields: ClassVar[tuple[str, ...]] = ("password",)

    def __init__(self, config: Mapping[str, Any], http: httpx.Client | None = None) -> None:
        self._local = threading.local()  # before super(): it sets last_exchange
        super().__init__(config, http)
        self._secrets = tuple(self.secret_values())
        self._conn: smtplib.SMTP | None = None
        self._lock = threading.Lock()

    @property
    def last_exchange(self) -> Exchange | None:
        """The masked exchange of *this thread's* last ``send()`` (sends may run in parallel)."""
        exchange: Exchange | None = getattr(self._local, "exchange", None)
        return exchange

    @last_exchange.setter
    def last_exchange(self, exchange: Exchange | None) -> None:
        self._local.exchange = exchange

    def _compose(self, message: OutgoingMessage) -> tuple[EmailMessage, str, str]:
        """The email for ``message``, its recipient and its envelope sender."""
        cfg = self.config
        assert isinstance(cfg, EmailConfig)
        to = message.email_to.strip()
        if not _is_address(to):
            raise GatewayError(
                ERROR_INVALID_EMAIL_ADDRESS, retryable=False, detail="not an email address"
            )
        sender = message.email_from.strip() or cfg.from_address
        email = EmailMessage()
        try:
            email["From"] = sender
            email["To"] = to
            email["Subject"] = " ".join(message.subject.split())
            email["Date"] = formatdate(usegmt=True)
            email["Message-ID"] = message_id_header(message.message_id, sender)
            email.set_content(message.text)
        except (ValueError, IndexError) as exc:  # the header parser refuses the address
            raise GatewayError(
                ERROR_INVALID_EMAIL_ADDRESS, retryable=False, detail=f"cannot address email: {exc}"
            ) from exc
        return email, to, parseaddr(sender)[1]

    def send(self, message: OutgoingMessage) -> SendResult:
        email, to, envelope_from = self._compose(message)
        requests: list[str] = []
        responses: list[str] = []
        stage: Stage = "connect"
        started = time.monotonic()
        with self._lock:
            try:
                conn = self._connection(requests, responses)
                options: list[str] = []
                if not (envelope_from + to).isascii():  # non-ASCII headers are RFC 2047-encoded
                    if not conn.has_extn("smtputf8"):
                        raise GatewayError(
                            EMAIL_GATEWAY_ERROR,
                            retryable=False,
                            detail="the server does not accept non-ASCII addresses (SMTPUTF8)",
                        )
                    options.append("SMTPUTF8")
                data = email.as_bytes(policy=SMTPUTF8 if "SMTPUTF8" in options else SMTP)

                stage = "mail"
                requests.append(f"MAIL FROM:<{envelope_from}>")
                code, reply = conn.mail(envelope_from, options)
                responses.append(_reply(code, reply))
                if code != 250:
                    raise smtplib.SMTPSenderRefused(code, reply, envelope_from)

                stage = "rcpt"
                requests.append(f"RCPT TO:<{to}>")
                code, reply = conn.rcpt(to)
                responses.append(_reply(code, reply))
                if code not in (250, 251):
                    raise smtplib.SMTPRecipientsRefused({to: (code, reply)})

                stage = "data"
                requests.append(f"DATA ({len(data)} bytes, Message-ID {email['Message-ID']})")
                code, reply = conn.data(data)
                responses.append(_reply(code, reply))
                if code != 250:
                    raise smtplib.SMTPDataError(code, reply)
            except GatewayError:
                self._drop()
                raise
            except addresses.AddressRefused as exc:
                responses.append(self._mask(str(exc)))
                self._drop()
                raise GatewayError(
                    EMAIL_GATEWAY_ERROR, retryable=False, detail=self._mask(str(exc))
                ) from exc
            except (smtplib.SMTPException, OSError) as exc:
                responses.append(self._mask(f"{type(exc).__name__}: {exc}"))
                self._drop()
                raise self._error(exc, stage) from exc
            finally:
                exchange = Exchange(
                    request=self._mask("\n".join(requests)),
                    response=self._mask("\n".join(responses)),
                    duration_ms=int((time.monotonic() - started) * 1000),
                    extra={"stage": stage},
                )
                self.last_exchange = exchange
                log.debug("smtp >> %s", exchange.request.replace("\n", " | "))
                log.debug("smtp << %s", exchange.response.replace("\n", " | "))
        return SendResult(provider_id=str(email["Message-ID"]), status="sent", detail=responses[-1])

    def close(self) -> None:
        """QUIT the kept connection, if any."""
        with self._lock:
            self._drop(polite=True)

    # -- connection ----------------------------------------------------------------------------

    def _connection(self, requests: list[str], responses: list[str]) -> smtplib.SMTP:
        if self._conn is not None:
            try:
                if self._conn.noop()[0] == 250:
                    return self._conn
            except (smtplib.SMTPException, OSError):
                pass
            self._drop()
        cfg = self.config
        assert isinstance(cfg, EmailConfig)
        mode = "ssl" if cfg.use_ssl else "starttls" if cfg.use_tls else "plain"
        requests.append(f"CONNECT {cfg.host}:{cfg.port} ({mode})")
        helo = socket.gethostname() or "localhost"
        conn: smtplib.SMTP
        if cfg.use_ssl:
            conn = _CheckedSMTPSSL(
                cfg.host,
                cfg.port,
                local_hostname=helo,
                timeout=cfg.timeout_s,
                context=ssl.create_default_context(),
            )
        else:
            conn = _CheckedSMTP(cfg.host, cfg.port, local_hostname=helo, timeout=cfg.timeout_s)
        try:
            conn.ehlo_or_helo_if_needed()
            if cfg.use_tls:
                requests.append("STARTTLS")
                conn.starttls(context=ssl.create_default_context())
                conn.ehlo()
            if cfg.username:
                requests.append(f"AUTH as {cfg.username}")
                code, reply = conn.login(cfg.username, cfg.password)
                responses.append(_reply(code, reply))
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _drop(self, *, polite: bool = False) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if polite:
                conn.quit()
        except (smtplib.SMTPException, OSError):
            pass
        finally:
            conn.close()

    # -- errors --------------------------------------------------------------------------------

    def _mask(self, text: str) -> str:
        return mask_text(text, self._secrets)

    def _error(self, exc: smtplib.SMTPException | OSError, stage: Stage) -> GatewayError:
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            code, reply = next(iter(exc.recipients.values()))
            return self._from_reply(code, reply, "rcpt")
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            return self._from_reply(exc.smtp_code, exc.smtp_error, "auth")
        if isinstance(exc, smtplib.SMTPResponseException):  # sender refused, data error, greeting
            return self._from_reply(exc.smtp_code, exc.smtp_error, stage)
        detail = self._mask(f"{type(exc).__name__}: {exc}")
        if isinstance(exc, smtplib.SMTPNotSupportedError | ssl.SSLCertVerificationError):
            return GatewayError(EMAIL_GATEWAY_ERROR, retryable=False, detail=detail)
        # SMTPException subclasses OSError: only a disconnect or a socket-level error is transient.
        if isinstance(exc, smtplib.SMTPServerDisconnected) or not isinstance(
            exc, smtplib.SMTPException
        ):
            return GatewayError(
                EMAIL_GATEWAY_ERROR,
                retryable=True,
                detail=f"{detail} (during {stage})",
                outcome_unknown=stage == "data",
            )
        return GatewayError(EMAIL_GATEWAY_ERROR, retryable=False, detail=detail)

    def _from_reply(self, code: int, reply: bytes | str, stage: str) -> GatewayError:
        text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
        match = _ENHANCED.match(text)
        enhanced = match.group(1) if match else ""
        provider_code = f"{code} {enhanced}".strip()
        detail = self._mask(f"{stage}: {code} {text}")
        if 400 <= code < 500:
            return GatewayError(
                EMAIL_GATEWAY_ERROR, retryable=True, provider_code=provider_code, detail=detail
            )
        if 500 <= code < 600:
            about_recipient = stage == "rcpt" or (stage == "data" and enhanced.startswith("5.1."))
            if about_recipient and not enhanced.startswith("5.7."):
                return GatewayError(
                    ERROR_INVALID_EMAIL_ADDRESS,
                    retryable=False,
                    provider_code=provider_code,
                    detail=detail,
                )
            return GatewayError(
                EMAIL_GATEWAY_ERROR, retryable=False, provider_code=provider_code, detail=detail
            )
        # -1 and other non-replies: smtplib's way of saying the connection misbehaved.
        return GatewayError(
            EMAIL_GATEWAY_ERROR,
            retryable=True,
            provider_code=provider_code,
            detail=detail,
            outcome_unknown=stage == "data",
        )


def _reply(code: int, reply: bytes) -> str:
    return f"{code} {reply.decode('utf-8', 'replace')}".replace("\n", " ")


GATEWAY = EmailGateway
