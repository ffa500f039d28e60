"""SMS encoding and segment counting per GSM 03.38 / UCS-2 (our own; gsm0338 is only a
test oracle).

GSM-7: 160 septets in one part, 153 per part when split; characters of the extension table
cost 2 septets (escape + character) and an escape pair is never split across parts.
Anything outside the GSM-7 set makes the whole message UCS-2: 70 UTF-16 units in one part,
67 per part; characters outside the BMP cost 2 units and a surrogate pair is never split.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = frozenset("^{}\\[~]|€\f")

Encoding = Literal["GSM", "UCS2"]


@dataclass(frozen=True)
class SegmentInfo:
    encoding: Encoding
    units: int  # septets (GSM) or UTF-16 code units (UCS2)
    segments: int
    parts: tuple[str, ...]


def encoding_of(text: str) -> Encoding:
    for ch in text:
        if ch not in GSM_BASIC and ch not in GSM_EXTENSION:
            return "UCS2"
    return "GSM"


def _cost(ch: str, encoding: Encoding) -> int:
    if encoding == "GSM":
        return 2 if ch in GSM_EXTENSION else 1
    return 2 if ord(ch) > 0xFFFF else 1


# Texts of one unit per character: GSM-7's basic set, and (for UCS-2) the Basic Multilingual
# Plane. Their parts are plain slices, so ``analyse`` skips the per-character costing.
_ONE_SEPTET = re.compile("[" + re.escape("".join(sorted(GSM_BASIC))) + "]*")
_ONE_UNIT = re.compile("[\u0000-\uffff]*")


def _sliced(text: str, encoding: Encoding, single: int, multi: int) -> SegmentInfo:
    n = len(text)
    if n <= single:
        return SegmentInfo(encoding, n, 1 if text else 0, (text,) if text else ())
    parts = tuple(text[i : i + multi] for i in range(0, n, multi))
    return SegmentInfo(encoding, n, len(parts), parts)


def analyse(text: str) -> SegmentInfo:
    """Encoding, length in units, number of parts, and the parts themselves."""
    if _ONE_SEPTET.fullmatch(text):  # the usual SMS: one septet a character
        return _sliced(text, "GSM", 160, 153)
    encoding = encoding_of(text)
    if encoding == "UCS2" and _ONE_UNIT.fullmatch(text):
        return _sliced(text, "UCS2", 70, 67)
    return costed(text, encoding)


def costed(text: str, encoding: Encoding) -> SegmentInfo:
    """``analyse`` character by character (any text; its fast paths give the same answer)."""
    single, multi = (160, 153) if encoding == "GSM" else (70, 67)
    costs = [_cost(ch, encoding) for ch in text]
    units = sum(costs)
    if units <= single:
        return SegmentInfo(encoding, units, 1 if text else 0, (text,) if text else ())
    parts: list[str] = []
    start = 0
    used = 0
    for i, cost in enumerate(costs):
        if used + cost > multi:  # a 2-unit character moves whole to the next part
            parts.append(text[start:i])
            start, used = i, 0
        used += cost
    parts.append(text[start:])
    return SegmentInfo(encoding, units, len(parts), tuple(parts))


def count_segments(text: str) -> int:
    return analyse(text).segments
