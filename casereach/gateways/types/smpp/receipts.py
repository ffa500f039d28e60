"""SMSC delivery receipts (parsed and matched to the message a part belongs to) and the
reassembly of concatenated inbound SMS, for the ``smpp`` gateway."""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence

from casereach.gateways.base import GATEWAY_ERROR, Status, StatusUpdate

# Receipt "stat:" words → our statuses (SMPP 3.4 Appendix B).
RECEIPT_STATUS: dict[str, Status] = {
    "DELIVRD": "delivered",
    "UNDELIV": "failed",
    "EXPIRED": "failed",
    "REJECTD": "failed",
    "DELETED": "failed",
    "ACCEPTD": "sent",
    "ENROUTE": "sent",
    "UNKNOWN": "sent",
}

_RECEIPT_KEY = re.compile(
    r"\b(id|sub|dlvrd|submit date|done date|stat|err|text)\s*:", re.IGNORECASE
)
_TRACKED_MAX = 100_000  # part ids remembered for matching receipts (oldest forgotten first)
_INBOUND_PARTS_TTL_S = 3600.0


def parse_receipt(short_message: bytes) -> StatusUpdate:
    """Parse an SMSC delivery receipt (``id:… sub:… dlvrd:… stat:DELIVRD err:… text:…``).

    Returns:
        The update for the *part* named by ``id`` (``provider_id``); failed receipts carry
        ``GATEWAY_ERROR`` and the ``stat``/``err`` words as ``provider_code``.

    Raises:
        ValueError: the text has no ``id`` or no ``stat``.
    """
    text = short_message.decode("latin-1")
    keys = list(_RECEIPT_KEY.finditer(text))
    fields: dict[str, str] = {}
    for i, match in enumerate(keys):
        end = keys[i + 1].start() if i + 1 < len(keys) else len(text)
        fields.setdefault(match.group(1).lower(), text[match.end() : end].strip())
    receipt_id = fields.get("id", "")
    stat = fields.get("stat", "").upper()
    if not receipt_id or not stat:
        raise ValueError("not a delivery receipt: no id or no stat")
    status = RECEIPT_STATUS.get(stat, "sent")
    err = fields.get("err", "")
    if status == "failed":
        provider_code = f"{stat} err:{err}" if err else stat
        return StatusUpdate(
            receipt_id, status, error_code=GATEWAY_ERROR, provider_code=provider_code
        )
    return StatusUpdate(receipt_id, status, provider_code=stat)


@dataclasses.dataclass
class _Tracked:
    provider_id: str
    parts: frozenset[str]
    delivered: set[str] = dataclasses.field(default_factory=set)
    final: bool = False


class ReceiptTracker:
    """Remembers every part id of recent messages so a receipt for any part finds its message."""

    def __init__(self, capacity: int = _TRACKED_MAX) -> None:
        self._capacity = capacity
        self._by_part: OrderedDict[str, _Tracked] = OrderedDict()
        self._lock = threading.Lock()

    def register(self, part_ids: Sequence[str]) -> None:
        tracked = _Tracked(provider_id=part_ids[-1], parts=frozenset(part_ids))
        with self._lock:
            for part_id in part_ids:
                self._by_part[part_id] = tracked
                self._by_part.move_to_end(part_id)
            while len(self._by_part) > self._capacity:
                self._by_part.popitem(last=False)

    def resolve(self, update: StatusUpdate) -> tuple[bool, StatusUpdate | None]:
        """``(matched, message-level update or None when nothing is to be reported yet)``."""
        with self._lock:
            tracked = self._by_part.get(update.provider_id)
            if tracked is None:
                return False, None
            if tracked.final:
                return True, None  # already delivered or failed: later receipts change nothing
            if update.status == "delivered":
                tracked.delivered.add(update.provider_id)
                if tracked.delivered != tracked.parts:
                    return True, None
            if update.status in ("delivered", "failed"):
                tracked.final = True
        return True, dataclasses.replace(update, provider_id=tracked.provider_id)


class Reassembler:
    """Joins the parts of a concatenated inbound SMS."""

    def __init__(self) -> None:
        self._parts: dict[tuple[str, str, int, int], tuple[float, dict[int, str]]] = {}

    def add(self, key: tuple[str, str, int, int], seq: int, text: str) -> str | None:
        now = time.monotonic()
        for stale in [k for k, (t, _) in self._parts.items() if now - t > _INBOUND_PARTS_TTL_S]:
            del self._parts[stale]
        _, parts = self._parts.setdefault(key, (now, {}))
        parts[seq] = text
        total = key[3]
        if len(parts) < total:
            return None
        del self._parts[key]
        return "".join(parts[i] for i in sorted(parts))
