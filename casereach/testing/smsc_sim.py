"""A small SMSC that really speaks SMPP 3.4 over TCP, for tests and local development.

It binds transceivers (checking the password), answers submit_sm with incrementing message
ids, enquire_link and unbind, sends a delivery receipt for each accepted submit_sm that asked
for one, and records what it received so tests can assert on the bytes. Scripted behaviours::

    sim.reject["254700000009"] = 0x0B     # answer submit_sm with this command_status
    sim.silent.add("254700000008")        # never answer (the client must time out)
    sim.receipt_stat["254700000007"] = "UNDELIV"
    sim.response_delay_s = 0.2            # answer late (responses are still sent in parallel)
    sim.deliver("254700000001", "12345", "yes")   # a reply SMS (mobile originated)

Usage::

    with SmscSimulator(system_id="casereach", password="pw") as sim:
        config = {"host": sim.host, "port": sim.port, "system_id": "casereach", "password": "pw"}
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType

from casereach.gateways.types.smpp import pdu as pdus
from casereach.gateways.types.smpp.codec import (
    ESM_UDHI,
    decode_text,
    gsm_encode,
    split_udh,
)
from casereach.gateways.types.smpp.pdu import Pdu

_POLL_S = 0.1


@dataclass(frozen=True)
class ReceivedSubmit:
    """One submit_sm as the SMSC saw it."""

    sequence: int
    system_id: str
    source_addr: str
    destination_addr: str
    data_coding: int
    esm_class: int
    registered_delivery: int
    short_message: bytes
    udh: bytes  # with its length octet; b"" when the UDHI bit is not set
    payload: bytes  # short_message without the UDH
    text: str  # the payload decoded by data_coding
    status: int  # the command_status the SMSC answered (or will answer)
    message_id: str  # "" when not accepted


@dataclass
class _Connection:
    sock: socket.socket
    lock: threading.Lock = field(default_factory=threading.Lock)
    system_id: str = ""
    bound: bool = False
    sequence: int = 0


class SmscSimulator:
    """A threaded SMPP server on 127.0.0.1 (an ephemeral port unless given)."""

    def __init__(
        self,
        *,
        system_id: str,
        password: str,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.credentials = {system_id: password}
        self.reject: dict[str, int] = {}
        self.silent: set[str] = set()
        self.receipt_stat: dict[str, str] = {}
        self.response_delay_s = 0.0
        self.send_receipts = True
        self.receipt_tlvs = True  # add receipted_message_id/message_state TLVs to receipts
        # Records, for assertions.
        self.submits: list[ReceivedSubmit] = []
        self.binds: list[tuple[str, int]] = []  # (system_id, command_status answered)
        self.enquire_links = 0
        self.unbinds = 0
        self.deliver_sm_resps: list[Pdu] = []
        self.outstanding = 0
        self.max_outstanding = 0
        self._next_message_id = 1
        self._lock = threading.Lock()
        self._connections: list[_Connection] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server = socket.create_server((host, port))
        self._server.settimeout(_POLL_S)
        self.host, self.port = self._server.getsockname()[:2]

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> SmscSimulator:
        self._spawn(self._accept_loop, "smsc-accept")
        return self

    def stop(self) -> None:
        self._stop.set()
        self.drop_connections()
        self._server.close()
        for thread in list(self._threads):
            if thread is not threading.current_thread():
                thread.join(2.0)

    def __enter__(self) -> SmscSimulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def drop_connections(self) -> None:
        """Cut every client connection (as a network failure would)."""
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)
            conn.sock.close()

    @property
    def bound_sessions(self) -> int:
        with self._lock:
            return sum(1 for c in self._connections if c.bound)

    def wait_for(self, condition: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Poll ``condition`` until it holds or ``timeout`` passes (for tests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.01)
        return condition()

    # -- mobile-originated messages --------------------------------------------------------------

    def deliver(
        self,
        source: str,
        destination: str,
        text: str = "",
        *,
        short_message: bytes = b"",
        data_coding: int = 0,
        esm_class: int = 0,
    ) -> None:
        """Send a deliver_sm (an SMS from a phone) to every bound session."""
        body = short_message or gsm_encode(text)
        for conn in self._bound():
            fields = {
                "source_addr": source,
                "destination_addr": destination,
                "esm_class": esm_class,
                "data_coding": data_coding,
                "short_message": body,
            }
            self._send(conn, "deliver_sm", fields=fields)

    # -- internals -----------------------------------------------------------------------------

    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _bound(self) -> list[_Connection]:
        with self._lock:
            return [c for c in self._connections if c.bound]

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sock.settimeout(5.0)
            conn = _Connection(sock)
            with self._lock:
                self._connections.append(conn)
            self._spawn(self._serve, "smsc-conn", conn)

    def _serve(self, conn: _Connection) -> None:
        buffer = bytearray()
        try:
            while not self._stop.is_set():
                readable, _, _ = select.select([conn.sock], [], [], _POLL_S)
                if not readable:
                    continue
                chunk = conn.sock.recv(65_536)
                if not chunk:
                    return
                buffer += chunk
                while len(buffer) >= 4 and len(buffer) >= pdus.frame_length(bytes(buffer[:4])):
                    length = pdus.frame_length(bytes(buffer[:4]))
                    data = bytes(buffer[:length])
                    del buffer[:length]
                    if not self._handle(conn, pdus.decode(data)):
                        return
        except (OSError, ValueError, pdus.ProtocolError):
            return
        finally:
            with self._lock:
                if conn in self._connections:
                    self._connections.remove(conn)
            conn.sock.close()

    def _handle(self, conn: _Connection, pdu: Pdu) -> bool:
        """Answer one PDU; False ends the connection."""
        if pdu.command == "bind_transceiver":
            system_id = pdu.text("system_id")
            ok = self.credentials.get(system_id) == pdu.text("password")
            status = pdus.ESME_ROK if ok else pdus.ESME_RBINDFAIL
            with self._lock:
                self.binds.append((system_id, status))
            conn.system_id, conn.bound = system_id, ok
            fields = {"system_id": "SIMSMSC"}
            self._send(conn, "bind_transceiver_resp", pdu.sequence, status, fields)
        elif pdu.command == "enquire_link":
            with self._lock:
                self.enquire_links += 1
            self._send(conn, "enquire_link_resp", pdu.sequence)
        elif pdu.command == "unbind":
            with self._lock:
                self.unbinds += 1
            self._send(conn, "unbind_resp", pdu.sequence)
            return False
        elif pdu.command == "submit_sm":
            self._submit(conn, pdu)
        elif pdu.command == "deliver_sm_resp":
            with self._lock:
                self.deliver_sm_resps.append(pdu)
        elif not pdu.is_response:
            self._send(conn, "generic_nack", pdu.sequence, pdus.ESME_RINVCMDID)
        return True

    def _submit(self, conn: _Connection, pdu: Pdu) -> None:
        destination = pdu.text("destination_addr")
        message = pdu.octets("short_message")
        esm_class = pdu.number("esm_class")
        udh, payload = split_udh(message) if esm_class & ESM_UDHI else (b"", message)
        if not conn.bound:
            status = pdus.ESME_RINVBNDSTS
        else:
            status = self.reject.get(destination, pdus.ESME_ROK)
        with self._lock:
            message_id = ""
            if status == pdus.ESME_ROK:
                message_id = str(self._next_message_id)
                self._next_message_id += 1
            record = ReceivedSubmit(
                sequence=pdu.sequence,
                system_id=conn.system_id,
                source_addr=pdu.text("source_addr"),
                destination_addr=destination,
                data_coding=pdu.number("data_coding"),
                esm_class=esm_class,
                registered_delivery=pdu.number("registered_delivery"),
                short_message=message,
                udh=udh,
                payload=payload,
                text=decode_text(payload, pdu.number("data_coding")),
                status=status,
                message_id=message_id,
            )
            self.submits.append(record)
            self.outstanding += 1
            self.max_outstanding = max(self.max_outstanding, self.outstanding)
        if destination in self.silent:
            return
        if self.response_delay_s > 0:
            timer = threading.Timer(self.response_delay_s, self._answer, (conn, record))
            timer.daemon = True
            timer.start()
        else:
            self._answer(conn, record)

    def _answer(self, conn: _Connection, record: ReceivedSubmit) -> None:
        with self._lock:
            self.outstanding -= 1
        fields = {"message_id": record.message_id}
        self._send(conn, "submit_sm_resp", record.sequence, record.status, fields)
        if record.status == pdus.ESME_ROK and record.registered_delivery & 1 and self.send_receipts:
            self._receipt(conn, record)

    def _receipt(self, conn: _Connection, record: ReceivedSubmit) -> None:
        stat = self.receipt_stat.get(record.destination_addr, "DELIVRD")
        delivered = stat == "DELIVRD"
        stamp = datetime.now(tz=UTC).strftime("%y%m%d%H%M")
        text = (
            f"id:{record.message_id} sub:001 dlvrd:{'001' if delivered else '000'} "
            f"submit date:{stamp} done date:{stamp} stat:{stat} "
            f"err:{'000' if delivered else '001'} text:{record.text[:20]}"
        )
        fields: dict[str, object] = {
            "source_addr": record.destination_addr,
            "destination_addr": record.source_addr,
            "esm_class": 0x04,  # SMSC delivery receipt
            "data_coding": 0,
            "short_message": text.encode("latin-1", errors="replace"),
        }
        if self.receipt_tlvs:
            fields["receipted_message_id"] = record.message_id
            fields["message_state"] = 2 if delivered else 5  # DELIVERED / UNDELIVERABLE
        self._send(conn, "deliver_sm", fields=fields)

    def _send(
        self,
        conn: _Connection,
        command: str,
        sequence: int | None = None,
        status: int = pdus.ESME_ROK,
        fields: Mapping[str, object] | None = None,
    ) -> None:
        with conn.lock:
            if sequence is None:
                conn.sequence += 1
                sequence = conn.sequence
            with contextlib.suppress(OSError):
                conn.sock.sendall(pdus.encode(command, sequence, fields, status=status))
