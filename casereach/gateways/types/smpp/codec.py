"""SMS payload encoding for SMPP: GSM 03.38 (unpacked septets), UCS-2, and the concatenation UDH.

SMPP carries GSM text with ``data_coding`` 0 as one septet per octet (unpacked); the SMSC packs
it for the air interface. Our own table rather than ``smpplib.gsm``: smpplib's table maps
position 0x5F to a backtick instead of ``§`` and splits long messages on byte counts, which can
cut an escape pair in half.

A long message is split by ``casereach.core.segments.analyse`` (153 septets / 67 UTF-16 units
per part, never splitting an escape or surrogate pair) and each part gets a 6-octet UDH::

    05 00 03 <ref> <total> <seq>      UDHL=5, IE 0x00 (8-bit reference concatenated SMS)
"""

from __future__ import annotations

from dataclasses import dataclass

from casereach.core.segments import analyse

DATA_CODING_GSM = 0x00
DATA_CODING_LATIN1 = 0x03
DATA_CODING_UCS2 = 0x08
ESM_UDHI = 0x40  # esm_class: short_message starts with a user data header

# The GSM 03.38 default alphabet; index = septet value. 0x1B is the escape to the extension table.
GSM_BASIC_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION_TABLE = {
    0x0A: "\f",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}
_ESC = 0x1B
_BASIC_CODE = {ch: code for code, ch in enumerate(GSM_BASIC_TABLE)}
_EXTENSION_CODE = {ch: code for code, ch in GSM_EXTENSION_TABLE.items()}

assert len(GSM_BASIC_TABLE) == 128


def gsm_encode(text: str) -> bytes:
    """Text → unpacked GSM 03.38 septets (extension characters as ESC + code).

    Raises:
        ValueError: a character has no GSM 03.38 representation.
    """
    out = bytearray()
    for ch in text:
        code = _BASIC_CODE.get(ch)
        if code is not None:
            out.append(code)
            continue
        ext = _EXTENSION_CODE.get(ch)
        if ext is None:
            raise ValueError(f"character U+{ord(ch):04X} is not in the GSM 03.38 alphabet")
        out += bytes((_ESC, ext))
    return bytes(out)


def gsm_decode(data: bytes) -> str:
    """Unpacked GSM 03.38 septets → text (an unknown extension shows its basic character)."""
    chars: list[str] = []
    escaped = False
    for octet in data:
        code = octet & 0x7F
        if escaped:
            chars.append(GSM_EXTENSION_TABLE.get(code, GSM_BASIC_TABLE[code]))
            escaped = False
        elif code == _ESC:
            escaped = True
        else:
            chars.append(GSM_BASIC_TABLE[code])
    return "".join(chars)


def decode_text(data: bytes, data_coding: int) -> str:
    """Decode a ``short_message`` (without UDH) by its ``data_coding``."""
    if data_coding == DATA_CODING_UCS2:
        return data.decode("utf-16-be", errors="replace")
    if data_coding in (DATA_CODING_GSM, 0x01):  # 0x01 is IA5/ASCII, a GSM subset in practice
        return gsm_decode(data)
    return data.decode("latin-1")


@dataclass(frozen=True)
class EncodedMessage:
    """What goes into the submit_sm PDUs for one message."""

    data_coding: int
    esm_class: int
    parts: tuple[bytes, ...]  # each part's short_message, UDH included when split


def concat_udh(ref: int, total: int, seq: int) -> bytes:
    """The 6-octet UDH of part ``seq`` (1-based) of ``total``."""
    return bytes((0x05, 0x00, 0x03, ref & 0xFF, total, seq))


def encode_message(text: str, ref: int) -> EncodedMessage:
    """Encode ``text`` into one or more short_message payloads.

    Args:
        text: the message; empty text gives no parts.
        ref: the concatenation reference (0-255) shared by all parts of this message.

    Raises:
        ValueError: more than 255 parts.
    """
    info = analyse(text)
    if info.encoding == "GSM":
        data_coding, encode = DATA_CODING_GSM, gsm_encode
    else:
        data_coding, encode = DATA_CODING_UCS2, _ucs2_encode
    if len(info.parts) <= 1:
        return EncodedMessage(data_coding, 0, tuple(encode(p) for p in info.parts))
    total = len(info.parts)
    if total > 255:
        raise ValueError(f"{total} parts; a concatenated SMS has at most 255")
    parts = tuple(
        concat_udh(ref, total, seq) + encode(part) for seq, part in enumerate(info.parts, start=1)
    )
    return EncodedMessage(data_coding, ESM_UDHI, parts)


def _ucs2_encode(text: str) -> bytes:
    return text.encode("utf-16-be")


@dataclass(frozen=True)
class Concat:
    """The concatenation information element of a UDH."""

    ref: int
    total: int
    seq: int


def split_udh(short_message: bytes) -> tuple[bytes, bytes]:
    """``(udh, payload)`` of a short_message sent with the UDHI bit (UDHL octet included)."""
    if not short_message:
        return b"", b""
    end = 1 + short_message[0]
    return short_message[:end], short_message[end:]


def concat_info(udh: bytes) -> Concat | None:
    """The 8-bit (IE 0x00) or 16-bit (IE 0x08) concatenation element, if the UDH has one."""
    pos = 1
    while pos + 2 <= len(udh):
        iei, length = udh[pos], udh[pos + 1]
        body = udh[pos + 2 : pos + 2 + length]
        if iei == 0x00 and length == 3 and len(body) == 3:
            return Concat(body[0], body[1], body[2])
        if iei == 0x08 and length == 4 and len(body) == 4:
            return Concat((body[0] << 8) | body[1], body[2], body[3])
        pos += 2 + length
    return None
