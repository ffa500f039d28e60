"""The ``smpp`` gateway: SMPP 3.4 transceiver with delivery receipts matched to messages.

``send()`` submits each part of a message (GSM 03.38 ``data_coding`` 0 or UCS-2 ``data_coding``
8, long messages with a concatenation UDH) over one persistent session kept by ``client.py``.
What arrives on the session is collected for the owner, who polls ``drain_events()``::

    deliver_sm with a receipt esm_class ─ parse_receipt() ─ matched to the message ─ StatusUpdate
    any other deliver_sm (a reply SMS)  ─ reassembled when concatenated ────────── InboundMessage

A receipt names one *part*; the message's provider id is its last part's id. The message is
``delivered`` once every part is, ``failed`` as soon as one part fails.

command_status mapping (the status is kept verbatim as ``provider_code``, e.g. ``0x0000000B``)::

    ESME_RINVDSTADR 0x0B ──────────────────────── INVALID_DESTINATION_NUMBER   permanent
    ESME_RINVMSGLEN 0x01 ──────────────────────── MESSAGE_TOO_LONG             permanent
    ESME_RTHROTTLED 0x58, ESME_RMSGQFUL 0x14,
    ESME_RSYSERR 0x08, ESME_RSUBMITFAIL 0x45,
    ESME_RINVBNDSTS 0x04, ESME_RX_T_APPN 0x64 ─── GATEWAY_ERROR                retryable
    anything else ─────────────────────────────── GATEWAY_ERROR                permanent
    bind failed / connection down ─────────────── GATEWAY_ERROR                retryable
    written, no response in response_timeout_s ── GATEWAY_ERROR retryable, outcome_unknown
"""

from __future__ import annotations

import dataclasses
import threading
import time
import zlib
from collections import deque
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx

from casereach.gateways.base import (
    GATEWAY_ERROR,
    INVALID_DESTINATION_NUMBER,
    MESSAGE_FORMAT_INVALID,
    MESSAGE_TOO_LONG,
    Exchange,
    Gateway,
    GatewayError,
    InboundMessage,
    OutgoingMessage,
    SendResult,
    StatusUpdate,
)
from casereach.gateways.masking import mask_text
from casereach.gateways.types.smpp import pdu as pdus
from casereach.gateways.types.smpp.client import (
    BindFailed,
    SessionSettings,
    SmppClient,
    SmppError,
    describe,
    log,
)
from casereach.gateways.types.smpp.codec import (
    ESM_UDHI,
    concat_info,
    decode_text,
    encode_message,
    split_udh,
)
from casereach.gateways.types.smpp.config import PRINTABLE, SmppConfig
from casereach.gateways.types.smpp.pdu import Pdu
from casereach.gateways.types.smpp.receipts import (
    RECEIPT_STATUS,
    Reassembler,
    ReceiptTracker,
    parse_receipt,
)

__all__ = [
    "GATEWAY",
    "RECEIPT_STATUS",
    "ReceiptTracker",
    "SmppConfig",
    "SmppGateway",
    "parse_receipt",
]

ESM_MESSAGE_TYPE = 0x3C  # esm_class bits 2-5: 0 = a normal message; 0x04 = SMSC delivery receipt
ESM_RECEIPT = 0x04
_EVENTS_MAX = 100_000  # events kept for an owner that does not poll (oldest dropped first)
_HOLD_MAX_S = 600.0  # an unmatched receipt waits at most this long for its send to finish

# command_status → (our code, retryable). Anything not listed is a permanent GATEWAY_ERROR.
STATUS_ERRORS: dict[int, tuple[str, bool]] = {
    pdus.ESME_RINVDSTADR: (INVALID_DESTINATION_NUMBER, False),
    pdus.ESME_RINVMSGLEN: (MESSAGE_TOO_LONG, False),
    pdus.ESME_RTHROTTLED: (GATEWAY_ERROR, True),
    pdus.ESME_RMSGQFUL: (GATEWAY_ERROR, True),
    pdus.ESME_RSYSERR: (GATEWAY_ERROR, True),
    pdus.ESME_RSUBMITFAIL: (GATEWAY_ERROR, True),
    pdus.ESME_RINVBNDSTS: (GATEWAY_ERROR, True),
    pdus.ESME_RX_T_APPN: (GATEWAY_ERROR, True),
}

Event = StatusUpdate | InboundMessage


class SmppGateway(Gateway):
    """SMPP 3.4 transceiver. One instance = one session; keep it for the life of the process."""

    slug = "smpp"
    label = "SMPP 3.4 (SMSC)"
    config_model = SmppConfig
    secret_fields: ClassVar[tuple[str, ...]] = ("password",)
    persistent = True  # one session per process: ``connect`` and ``drain_events``

    @classmethod
    def max_in_flight(cls, config: Mapping[str, Any]) -> int:
        """Never more than the session's ``window`` of unanswered submit_sm."""
        window = config.get("window", 10)
        window = window if isinstance(window, int) and not isinstance(window, bool) else 10
        return max(1, min(super().max_in_flight(config), window))

    def __init__(self, config: Mapping[str, Any], http: httpx.Client | None = None) -> None:
        self._local = threading.local()  # before super(): it sets last_exchange
        super().__init__(config, http)
        cfg = self.config
        assert isinstance(cfg, SmppConfig)
        self._secrets = tuple(self.secret_values())
        self._tracker = ReceiptTracker()
        self._reassembler = Reassembler()
        self._events: deque[tuple[float, Event]] = deque(maxlen=_EVENTS_MAX)
        self._events_lock = threading.Lock()
        self._inflight: dict[int, float] = {}
        self._client = SmppClient(
            SessionSettings(
                host=cfg.host,
                port=cfg.port,
                system_id=cfg.system_id,
                password=cfg.password,
                system_type=cfg.system_type,
                window=cfg.window,
                enquire_link_s=cfg.enquire_link_s,
                bind_timeout_s=cfg.bind_timeout_s,
                response_timeout_s=cfg.response_timeout_s,
                reconnect_delay_s=cfg.reconnect_delay_s,
            ),
            on_deliver=self._on_deliver,
        )

    @property
    def last_exchange(self) -> Exchange | None:
        """The masked exchange of *this thread's* last ``send()`` (sends may run in parallel)."""
        exchange: Exchange | None = getattr(self._local, "exchange", None)
        return exchange

    @last_exchange.setter
    def last_exchange(self, exchange: Exchange | None) -> None:
        self._local.exchange = exchange

    # -- sending -------------------------------------------------------------------------------

    def connect(self) -> None:
        """Bind now (the SMPP worker calls this at start so receipts flow before any send).

        Raises:
            GatewayError: retryable ``GATEWAY_ERROR`` when the bind fails.
        """
        try:
            self._client.session()
        except SmppError as exc:
            raise self._transport_error(exc, accepted=0) from exc

    def send(self, message: OutgoingMessage) -> SendResult:
        cfg = self.config
        assert isinstance(cfg, SmppConfig)
        destination = message.to.removeprefix("+")
        if not destination.isdigit() or len(destination) > 20:
            raise GatewayError(
                INVALID_DESTINATION_NUMBER,
                retryable=False,
                detail="SMPP needs a destination of 1-20 digits",
            )
        source = message.sender or cfg.source_addr
        if len(source) > 20 or not PRINTABLE.match(source):
            raise GatewayError(
                GATEWAY_ERROR, retryable=False, detail="sender must be at most 20 ASCII characters"
            )
        if not message.text:
            raise GatewayError(MESSAGE_FORMAT_INVALID, retryable=False, detail="empty message")
        try:
            encoded = encode_message(message.text, ref=zlib.crc32(message.message_id.encode()))
        except ValueError as exc:
            raise GatewayError(MESSAGE_TOO_LONG, retryable=False, detail=str(exc)) from exc

        requests: list[str] = []
        responses: list[str] = []
        part_ids: list[str] = []
        started = time.monotonic()
        token = id(requests)
        with self._events_lock:
            self._inflight[token] = started
        try:
            for payload in encoded.parts:
                fields: dict[str, object] = {
                    "source_addr_ton": cfg.source_ton,
                    "source_addr_npi": cfg.source_npi,
                    "source_addr": source,
                    "dest_addr_ton": cfg.dest_ton,
                    "dest_addr_npi": cfg.dest_npi,
                    "destination_addr": destination,
                    "esm_class": encoded.esm_class,
                    "registered_delivery": 1 if cfg.registered_delivery else 0,
                    "data_coding": encoded.data_coding,
                    "short_message": payload,
                }
                requests.append(describe("submit_sm", fields, self._secrets))
                try:
                    response = self._client.submit(**fields)
                except SmppError as exc:
                    responses.append(self._mask(str(exc)))
                    raise self._transport_error(exc, accepted=len(part_ids)) from exc
                responses.append(
                    describe(response.command, response.fields, self._secrets)
                    + f" status={pdus.status_name(response.status)}"
                )
                if response.status != pdus.ESME_ROK or response.command != "submit_sm_resp":
                    raise self._status_error(response, accepted=len(part_ids))
                part_ids.append(response.text("message_id"))
            if cfg.registered_delivery and all(part_ids):
                self._tracker.register(part_ids)
        finally:
            with self._events_lock:
                self._inflight.pop(token, None)
            self.last_exchange = Exchange(
                request="\n".join(requests),
                response="\n".join(responses),
                duration_ms=int((time.monotonic() - started) * 1000),
                extra={"parts": len(encoded.parts), "part_ids": list(part_ids)},
            )
        detail = f"{len(part_ids)} parts: {', '.join(part_ids)}" if len(part_ids) > 1 else ""
        return SendResult(provider_id=part_ids[-1] or None, status="sent", detail=detail)

    def _mask(self, text: str) -> str:
        return mask_text(text, self._secrets)

    def _transport_error(self, exc: SmppError, *, accepted: int) -> GatewayError:
        provider_code = ""
        if isinstance(exc, BindFailed) and exc.status is not None:
            provider_code = pdus.status_code(exc.status)
        detail = self._mask(str(exc))
        if accepted:
            detail += f" (after {accepted} part(s) were accepted)"
        return GatewayError(
            GATEWAY_ERROR,
            retryable=not (isinstance(exc, BindFailed) and exc.refused),
            provider_code=provider_code,
            detail=detail,
            # Some part may have reached the SMSC: the PDU was written, or earlier parts were.
            outcome_unknown=exc.written or accepted > 0,
        )

    def _status_error(self, response: Pdu, *, accepted: int) -> GatewayError:
        code, retryable = STATUS_ERRORS.get(response.status, (GATEWAY_ERROR, False))
        detail = f"{response.command} {pdus.status_name(response.status)}"
        if accepted:
            detail += f" (after {accepted} part(s) were accepted)"
        return GatewayError(
            code,
            retryable=retryable,
            provider_code=pdus.status_code(response.status),
            detail=detail,
            outcome_unknown=retryable and accepted > 0,
        )

    # -- receiving -----------------------------------------------------------------------------

    def drain_events(self) -> list[StatusUpdate | InboundMessage]:
        """Everything received since the last call: receipts (matched to the message's provider
        id) and inbound SMS, oldest first. Poll it; storing them is the messaging app's job.

        A receipt whose part id is not known yet is held back while a send that started before
        it arrived is still running (its submit_sm_resp may not have been recorded); receipts for
        ids this process never sent are returned as they are.
        """
        now = time.monotonic()
        with self._events_lock:
            pending = list(self._events)
            self._events.clear()
            oldest_send = min(self._inflight.values(), default=float("inf"))
        out: list[StatusUpdate | InboundMessage] = []
        held: list[tuple[float, Event]] = []
        for arrived, event in pending:
            if isinstance(event, InboundMessage):
                out.append(event)
                continue
            matched, update = self._tracker.resolve(event)
            if matched:
                if update is not None:
                    out.append(update)
            elif oldest_send <= arrived and now - arrived < _HOLD_MAX_S:
                held.append((arrived, event))
            else:
                out.append(event)
        if held:
            with self._events_lock:
                self._events.extendleft(reversed(held))
        return out

    def _on_deliver(self, pdu: Pdu) -> None:
        """Runs on the session's reader thread for every deliver_sm."""
        esm_class = pdu.number("esm_class")
        message = pdu.octets("short_message") or pdu.octets("message_payload")
        event: Event | None
        if esm_class & ESM_MESSAGE_TYPE:
            event = self._receipt(pdu, message)
        else:
            event = self._inbound(pdu, message, esm_class)
        if event is not None:
            with self._events_lock:
                self._events.append((time.monotonic(), event))

    def _receipt(self, pdu: Pdu, message: bytes) -> StatusUpdate | None:
        try:
            update = parse_receipt(message)
        except ValueError:
            log.warning("smpp: unreadable delivery receipt ignored: %s", self._mask(repr(message)))
            return None
        receipted = pdu.text("receipted_message_id")
        if receipted:  # the TLV is authoritative where the SMSC sends it
            update = dataclasses.replace(update, provider_id=receipted)
        return update

    def _inbound(self, pdu: Pdu, message: bytes, esm_class: int) -> InboundMessage | None:
        sender = pdu.text("source_addr").removeprefix("+")
        to = pdu.text("destination_addr").removeprefix("+")
        data_coding = pdu.number("data_coding")
        if not esm_class & ESM_UDHI:
            return InboundMessage(sender=sender, to=to, text=decode_text(message, data_coding))
        udh, payload = split_udh(message)
        text = decode_text(payload, data_coding)
        concat = concat_info(udh)
        if concat is None or concat.total <= 1:
            return InboundMessage(sender=sender, to=to, text=text)
        whole = self._reassembler.add((sender, to, concat.ref, concat.total), concat.seq, text)
        return None if whole is None else InboundMessage(sender=sender, to=to, text=whole)

    def close(self) -> None:
        """Unbind and stop the session threads; the instance cannot send afterwards."""
        self._client.close()


GATEWAY = SmppGateway
