"""A persistent SMPP 3.4 transceiver session: bind, windowed requests, enquire_link, reconnect.

Threads (all daemons, all stopped by ``SmppClient.close()``)::

    caller threads ── submit() ─┬─ window slot (at most ``window`` submit_sm unanswered)
                                └─ write PDU ─ wait for its response (matched by sequence)
    reader thread   ── reads every PDU: responses wake their caller; deliver_sm goes to
                       ``on_deliver`` and is acknowledged; enquire_link/unbind are answered
    keepalive thread ─ enquire_link every ``enquire_link_s``; rebinds a dead session so
                       delivery receipts keep arriving even when nothing is being sent

Nothing here logs a PDU in raw form: ``describe()`` summarises it without the password, and
every line goes through ``mask_text`` (secrets and phone numbers).
"""

from __future__ import annotations

import contextlib
import logging
import re
import select
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from casereach.gateways import addresses
from casereach.gateways.masking import mask_text
from casereach.gateways.types.smpp import pdu as pdus
from casereach.gateways.types.smpp.codec import ESM_UDHI, split_udh
from casereach.gateways.types.smpp.pdu import Pdu, ProtocolError

log = logging.getLogger("casereach.gateways.smpp")

_POLL_S = 0.2  # how often the reader notices that the session was closed
_JOIN_S = 2.0
_MAX_SEQUENCE = 0x7FFFFFFF


@dataclass(frozen=True)
class SessionSettings:
    host: str
    port: int
    system_id: str
    password: str
    system_type: str = ""
    window: int = 10
    enquire_link_s: float = 30.0
    bind_timeout_s: float = 10.0
    response_timeout_s: float = 10.0
    reconnect_delay_s: float = 5.0


class SmppError(Exception):
    """A request did not get an answer; the subclass says whether it may have reached the SMSC."""

    written = False


class BindFailed(SmppError):
    """Could not connect or bind; ``status`` is the SMSC's command_status when it answered."""

    def __init__(self, message: str, status: int | None = None, *, refused: bool = False) -> None:
        super().__init__(message)
        self.status = status
        # The host is forbidden by CASEREACH_GATEWAY_ALLOW_PRIVATE: retrying will not help.
        self.refused = refused


class NotConnected(SmppError):
    """The session is down; nothing was written."""


class WindowTimeout(SmppError):
    """No free window slot in time; nothing was written."""


class SessionClosed(SmppError):
    """The client was closed by its owner."""


class OutcomeUnknown(SmppError):
    """The PDU was written but no response came (timeout or lost connection)."""

    written = True


def describe(command: str, fields: Mapping[str, object], secrets: tuple[str, ...] = ()) -> str:
    """A one-line summary of a PDU for logs and the message log.

    Never the password nor the message text; addresses and receipt text go through
    ``mask_text`` (phone numbers), while message ids stay whole so support staff can match
    them with the SMSC's records.
    """
    parts = [command]
    for name in ("system_id", "system_type", "message_id", "receipted_message_id"):
        value = fields.get(name)
        if value:
            parts.append(f"{name}={_str(value)}")
    if "destination_addr" in fields or "source_addr" in fields:
        parts.append(f"from={mask_text(_str(fields.get('source_addr', '')))}")
        parts.append(f"to={mask_text(_str(fields.get('destination_addr', '')))}")
        esm = _int(fields.get("esm_class"))
        parts.append(f"esm_class=0x{esm:02X}")
        parts.append(f"data_coding={_int(fields.get('data_coding'))}")
        if command == "submit_sm":
            parts.append(f"registered_delivery={_int(fields.get('registered_delivery'))}")
        message = fields.get("short_message")
        if isinstance(message, bytes):
            parts.append(f"sm_length={len(message)}")
            if esm & ESM_UDHI:
                parts.append(f"udh={split_udh(message)[0].hex(' ')}")
            if esm & 0x3C:  # a receipt: which message and what happened, without its "text:"
                receipt = re.split(r"\btext:", message.decode("latin-1"), flags=re.I)[0]
                parts.append(f"receipt={mask_text(receipt.strip())!r}")
    line = " ".join(parts)
    for secret in secrets:
        if secret and len(secret) >= 4:  # the same rule as mask_text
            line = line.replace(secret, "***")
    return line


def _str(value: object) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


class _Pending:
    __slots__ = ("error", "event", "response")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.response: Pdu | None = None
        self.error: SmppError | None = None


class Session:
    """One TCP connection bound as a transceiver. Use ``SmppClient`` rather than this directly."""

    def __init__(self, settings: SessionSettings, on_deliver: Callable[[Pdu], None]) -> None:
        self.settings = settings
        self._on_deliver = on_deliver
        self._secrets = (settings.password,)
        self._sock: socket.socket | None = None
        self._buffer = bytearray()
        # Re-entrant: a failed write aborts the session, and abort() takes the lock again.
        self._write_lock = threading.RLock()
        self._pending: dict[int, _Pending] = {}
        self._sequence = 0
        self._dead = threading.Event()
        self._reader: threading.Thread | None = None
        self._closing = False
        self.bound = False

    @property
    def alive(self) -> bool:
        return self.bound and not self._dead.is_set()

    # -- opening -------------------------------------------------------------------------------

    def open(self) -> None:
        """Connect and bind_transceiver; starts the reader thread.

        Raises:
            BindFailed: the connection failed, the SMSC refused the bind or did not answer.
        """
        s = self.settings
        try:
            # Resolved once, checked against CASEREACH_GATEWAY_ALLOW_PRIVATE, connected to.
            self._sock = addresses.open_tcp(s.host, s.port, s.bind_timeout_s)
        except addresses.AddressRefused as exc:
            self._dead.set()
            raise BindFailed(str(exc), refused=True) from exc
        except OSError as exc:
            self._dead.set()
            raise BindFailed(f"cannot connect to {s.host}:{s.port}: {exc}") from exc
        fields: dict[str, object] = {
            "system_id": s.system_id,
            "password": s.password,
            "system_type": s.system_type,
            "addr_ton": 0,
            "addr_npi": 0,
            "address_range": "",
        }
        sequence = self._next_sequence()
        log.info("smpp >> %s", describe("bind_transceiver", fields, self._secrets))
        try:
            self._sock.sendall(pdus.encode("bind_transceiver", sequence, fields))
            response = self._read_until(time.monotonic() + s.bind_timeout_s)
        except (OSError, ProtocolError) as exc:
            self._shutdown()
            raise BindFailed(f"bind failed: {exc}") from exc
        if response is None:
            self._shutdown()
            raise BindFailed(f"no bind_transceiver_resp within {s.bind_timeout_s:g}s")
        log.info(
            "smpp << %s status=%s",
            describe(response.command, response.fields),
            pdus.status_name(response.status),
        )
        if response.status != pdus.ESME_ROK or response.command != "bind_transceiver_resp":
            self._shutdown()
            raise BindFailed(
                f"bind refused: {response.command} {pdus.status_name(response.status)}",
                status=response.status,
            )
        self._sock.settimeout(s.response_timeout_s)  # bounds sendall from now on
        self.bound = True
        self._reader = threading.Thread(
            target=self._read_loop, name=f"smpp-reader-{s.host}:{s.port}", daemon=True
        )
        self._reader.start()

    # -- requests ------------------------------------------------------------------------------

    def request(self, command: str, timeout: float, **fields: object) -> Pdu:
        """Write one request PDU and wait for the response with the same sequence number.

        Raises:
            NotConnected: the session is down (nothing written).
            OutcomeUnknown: written, but no response within ``timeout`` or the connection broke.
        """
        pending = _Pending()
        with self._write_lock:
            if not self.alive or self._sock is None:
                raise NotConnected("SMPP session is not bound")
            sequence = self._next_sequence()
            data = pdus.encode(command, sequence, fields)
            self._pending[sequence] = pending
            log.debug("smpp >> seq=%d %s", sequence, describe(command, fields, self._secrets))
            try:
                self._sock.sendall(data)
            except OSError as exc:
                # sendall may have written part of the PDU before failing.
                error = OutcomeUnknown(f"connection failed while writing {command}: {exc}")
                self.abort(error)
                raise error from exc
        if not pending.event.wait(timeout):
            with self._write_lock:
                self._pending.pop(sequence, None)
            raise OutcomeUnknown(f"no {command}_resp within {timeout:g}s (sequence {sequence})")
        if pending.error is not None:  # the session died after our PDU was written
            raise OutcomeUnknown(f"{command}: {pending.error}")
        assert pending.response is not None
        return pending.response

    def send_response(self, command: str, sequence: int, status: int = pdus.ESME_ROK) -> None:
        with self._write_lock:
            if self._sock is None:
                return
            log.debug("smpp >> seq=%d %s status=%s", sequence, command, pdus.status_name(status))
            try:
                self._sock.sendall(pdus.encode(command, sequence, status=status))
            except OSError as exc:
                self.abort(NotConnected(f"connection failed while writing {command}: {exc}"))

    def _next_sequence(self) -> int:
        self._sequence = self._sequence % _MAX_SEQUENCE + 1
        return self._sequence

    # -- reading -------------------------------------------------------------------------------

    def _read_until(self, deadline: float) -> Pdu | None:
        """Read one PDU, waiting at most until ``deadline``; None on timeout."""
        while True:
            found = self._take_pdu()
            if found is not None:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._fill(min(remaining, _POLL_S))

    def _fill(self, timeout: float) -> None:
        sock = self._sock
        if sock is None:
            raise ConnectionError("socket closed")
        readable, _, _ = select.select([sock], [], [], timeout)
        if not readable:
            return
        chunk = sock.recv(65_536)
        if not chunk:
            raise ConnectionError("connection closed by the SMSC")
        self._buffer += chunk

    def _take_pdu(self) -> Pdu | None:
        if len(self._buffer) < 4:
            return None
        length = pdus.frame_length(bytes(self._buffer[:4]))
        if len(self._buffer) < length:
            return None
        data = bytes(self._buffer[:length])
        del self._buffer[:length]
        try:
            return pdus.decode(data)
        except ProtocolError as exc:
            if exc.sequence is None:
                raise
            log.warning("smpp: %s; answering generic_nack", exc)
            self.send_response("generic_nack", exc.sequence, pdus.ESME_RINVCMDID)
            return self._take_pdu()

    def _read_loop(self) -> None:
        while not self._dead.is_set():
            try:
                found = self._take_pdu()
                if found is None:
                    self._fill(_POLL_S)
                    continue
                self._dispatch(found)
            except (OSError, ValueError, ProtocolError) as exc:
                # ValueError: select() on a socket closed under us by close().
                self.abort(OutcomeUnknown(f"SMPP connection lost: {exc}"))
                return

    def _dispatch(self, pdu: Pdu) -> None:
        if pdu.is_response:
            log.debug(
                "smpp << seq=%d %s status=%s",
                pdu.sequence,
                describe(pdu.command, pdu.fields),
                pdus.status_name(pdu.status),
            )
            with self._write_lock:
                pending = self._pending.pop(pdu.sequence, None)
            if pending is None:
                log.warning("smpp: late or unknown %s seq=%d ignored", pdu.command, pdu.sequence)
                return
            pending.response = pdu
            pending.event.set()
            return
        log.debug("smpp << seq=%d %s", pdu.sequence, describe(pdu.command, pdu.fields))
        if pdu.command == "deliver_sm":
            try:
                self._on_deliver(pdu)
            except Exception:  # the receipt must still be acknowledged; the bug is logged
                log.exception("smpp: deliver_sm handler failed")
            self.send_response("deliver_sm_resp", pdu.sequence)
        elif pdu.command == "enquire_link":
            self.send_response("enquire_link_resp", pdu.sequence)
        elif pdu.command == "unbind":
            self.send_response("unbind_resp", pdu.sequence)
            self.abort(NotConnected("the SMSC unbound the session"))
        elif pdu.command != "alert_notification":
            self.send_response("generic_nack", pdu.sequence, pdus.ESME_RINVCMDID)

    # -- closing -------------------------------------------------------------------------------

    def abort(self, error: SmppError) -> None:
        """Drop the connection now; every waiting request gets ``error``."""
        if self._dead.is_set():
            return
        self._dead.set()
        if self.bound and not self._closing:
            s = self.settings
            log.warning("smpp: session to %s:%s ended: %s", s.host, s.port, error)
        with self._write_lock:
            pending, self._pending = self._pending, {}
        for waiter in pending.values():
            waiter.error = error
            waiter.event.set()
        self._shutdown()

    def close(self) -> None:
        """Unbind politely (bounded wait), then drop the connection."""
        self._closing = True
        if self.alive:
            with contextlib.suppress(SmppError):
                self.request("unbind", timeout=min(self.settings.response_timeout_s, _JOIN_S))
        self.abort(SessionClosed("session closed"))
        reader = self._reader
        if reader is not None and reader is not threading.current_thread():
            reader.join(_JOIN_S)

    def _shutdown(self) -> None:
        self._dead.set()
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


class SmppClient:
    """Keeps one bound transceiver session alive and hands out windowed requests."""

    def __init__(self, settings: SessionSettings, on_deliver: Callable[[Pdu], None]) -> None:
        self.settings = settings
        self._on_deliver = on_deliver
        self._lock = threading.Lock()
        self._session: Session | None = None
        self._window = threading.BoundedSemaphore(settings.window)
        self._stop = threading.Event()
        self._keepalive: threading.Thread | None = None
        self._last_bind_error: tuple[float, BindFailed] | None = None

    def session(self) -> Session:
        """The bound session, binding (again) when there is none.

        A failed bind is remembered for ``reconnect_delay_s``: callers in that time get the same
        error without a new attempt, so a wrong password cannot hammer the SMSC (or lock the
        account).
        """
        with self._lock:
            if self._stop.is_set():
                raise SessionClosed("the SMPP client was closed")
            current = self._session
            if current is not None and current.alive:
                return current
            failed = self._last_bind_error
            if (
                failed is not None
                and time.monotonic() - failed[0] < self.settings.reconnect_delay_s
            ):
                raise failed[1]
            fresh = Session(self.settings, self._on_deliver)
            try:
                fresh.open()
            except BindFailed as exc:
                self._last_bind_error = (time.monotonic(), exc)
                raise
            self._last_bind_error = None
            self._session = fresh
            if self._keepalive is None:
                self._keepalive = threading.Thread(
                    target=self._keepalive_loop, name="smpp-keepalive", daemon=True
                )
                self._keepalive.start()
            return fresh

    def submit(self, **fields: object) -> Pdu:
        """submit_sm within the window; returns the submit_sm_resp (or generic_nack).

        Raises:
            SmppError: see ``Session.request``; ``WindowTimeout`` when no slot frees in time.
        """
        wait = max(2 * self.settings.response_timeout_s, 1.0)
        if not self._window.acquire(timeout=wait):
            raise WindowTimeout(f"{self.settings.window} submit_sm unanswered for {wait:g}s")
        try:
            session = self.session()
            response = session.request("submit_sm", self.settings.response_timeout_s, **fields)
            if response.status == pdus.ESME_RINVBNDSTS:
                session.abort(NotConnected("SMSC says the session is not bound"))
            return response
        finally:
            self._window.release()

    def _keepalive_loop(self) -> None:
        s = self.settings
        while True:
            current = self._session
            alive = current is not None and current.alive
            if self._stop.wait(s.enquire_link_s if alive else max(s.reconnect_delay_s, _POLL_S)):
                return
            current = self._session
            if current is not None and current.alive:
                try:
                    current.request("enquire_link", s.response_timeout_s)
                except SmppError as exc:
                    current.abort(OutcomeUnknown(f"enquire_link unanswered: {exc}"))
                continue
            try:
                self.session()
            except SmppError as exc:
                log.warning("smpp: reconnect to %s:%s failed: %s", s.host, s.port, exc)

    def close(self) -> None:
        """Unbind and stop every thread (bounded); later requests raise ``SessionClosed``."""
        self._stop.set()
        with self._lock:
            current, self._session = self._session, None
        if current is not None:
            current.close()
        keepalive = self._keepalive
        if keepalive is not None and keepalive is not threading.current_thread():
            keepalive.join(_JOIN_S)
