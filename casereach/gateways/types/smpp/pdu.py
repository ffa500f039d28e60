"""Typed access to smpplib's SMPP 3.4 PDU classes: the only module that imports smpplib.

We use smpplib for what it does well (the PDU field layouts, packing and parsing) and keep the
session (socket, sequence numbers, windowing, response matching) in ``client.py``: smpplib's own
``Client`` is single-threaded, logs raw PDUs in hex (the bind password included) and cannot match
responses to requests.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from smpplib import (  # type: ignore[import-untyped]  # smpplib ships no type hints
    command_codes,
    consts,
    exceptions,
    smpp,
)

HEADER_SIZE = 16
MAX_PDU_SIZE = 65_536  # far above any real PDU; a bigger length means a broken stream

ESME_ROK = 0x00000000
ESME_RINVMSGLEN = 0x00000001
ESME_RINVCMDID = 0x00000003
ESME_RINVBNDSTS = 0x00000004
ESME_RSYSERR = 0x00000008
ESME_RINVSRCADR = 0x0000000A
ESME_RINVDSTADR = 0x0000000B
ESME_RBINDFAIL = 0x0000000D
ESME_RINVPASWD = 0x0000000E
ESME_RINVSYSID = 0x0000000F
ESME_RMSGQFUL = 0x00000014
ESME_RSUBMITFAIL = 0x00000045
ESME_RTHROTTLED = 0x00000058
ESME_RX_T_APPN = 0x00000064

_STATUS_NAMES: dict[int, str] = {
    value: name.removeprefix("SMPP_")
    for name, value in vars(consts).items()
    if name.startswith("SMPP_ESME_") and isinstance(value, int)
}


def status_name(status: int) -> str:
    """``ESME_RTHROTTLED`` for 0x58; the hex value for codes smpplib does not know."""
    return _STATUS_NAMES.get(status, f"0x{status:08X}")


def status_code(status: int) -> str:
    """The provider code we keep verbatim: the command_status in hex."""
    return f"0x{status:08X}"


class ProtocolError(Exception):
    """The byte stream is not SMPP (bad length, unknown command)."""

    def __init__(self, message: str, sequence: int | None = None) -> None:
        super().__init__(message)
        self.sequence = sequence


class _NoSequence:
    """smpplib asks its 'client' for sequence numbers; ours are always set explicitly."""

    sequence = 0

    def next_sequence(self) -> int:
        return 0


_CLIENT = _NoSequence()


@dataclass(frozen=True)
class Pdu:
    """A parsed PDU with its fields (strings and octet strings as bytes, integers as int)."""

    command: str
    status: int
    sequence: int
    fields: Mapping[str, object] = field(default_factory=dict)

    @property
    def is_response(self) -> bool:
        return self.command.endswith("_resp") or self.command == "generic_nack"

    def text(self, name: str) -> str:
        value = self.fields.get(name)
        if isinstance(value, bytes):
            return value.decode("latin-1")
        return value if isinstance(value, str) else ""

    def octets(self, name: str) -> bytes:
        value = self.fields.get(name)
        if isinstance(value, bytes):
            return value
        return value.encode("latin-1") if isinstance(value, str) else b""

    def number(self, name: str) -> int:
        value = self.fields.get(name)
        return value if isinstance(value, int) else 0


def encode(
    command: str,
    sequence: int,
    fields: Mapping[str, object] | None = None,
    *,
    status: int = ESME_ROK,
) -> bytes:
    """Pack one PDU. Strings are ``str`` (ASCII/latin-1), ``short_message`` is ``bytes``."""
    kwargs: dict[str, Any] = {k: v for k, v in (fields or {}).items() if v is not None}
    raw = smpp.make_pdu(command, client=_CLIENT, status=status, sequence=sequence, **kwargs)
    raw.sequence = sequence
    raw.status = status
    data: bytes = raw.generate()
    return data


def frame_length(header: bytes) -> int:
    """The command_length of a PDU from its first four octets (validated)."""
    (length,) = struct.unpack(">I", header[:4])
    if not HEADER_SIZE <= length <= MAX_PDU_SIZE:
        raise ProtocolError(f"implausible command_length {length}")
    return int(length)


def decode(data: bytes) -> Pdu:
    """Parse one complete PDU.

    Raises:
        ProtocolError: unknown command id or malformed body (``sequence`` set when readable).
    """
    _, command_id, status, sequence = struct.unpack(">IIII", data[:HEADER_SIZE])
    try:
        command_codes.get_command_name(command_id)
        raw = smpp.parse_pdu(data, client=_CLIENT, allow_unknown_opt_params=True)
    except (exceptions.UnknownCommandError, struct.error, IndexError, ValueError) as exc:
        raise ProtocolError(
            f"cannot parse PDU 0x{command_id:08X}: {exc}", sequence=int(sequence)
        ) from exc
    fields = {name: getattr(raw, name, None) for name in getattr(raw, "params_order", ())}
    return Pdu(
        command=str(raw.command),
        status=int(status),
        sequence=int(sequence),
        fields={k: v for k, v in fields.items() if v is not None},
    )
