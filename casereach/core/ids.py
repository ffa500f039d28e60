"""Time-ordered ids (UUID version 7, RFC 9562): the one generator, in two spellings.

Messages and cases are keyed by such an id. A random (version 4) key lands anywhere in the
primary-key index, so every insert touches a different page once the table outgrows the cache
(writing a due scan's rows took a third longer in ``casereach bench alerts``' write floor;
ingest's case, contact and phone-entry indexes dirtied thousands of pages a batch); a key that
starts with the time lands on the index's last pages. The 74 random bits keep ids unguessable
and unique across processes."""

from __future__ import annotations

import os
import threading
import time

_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}
_RANDOM = threading.local()
_RANDOM_POOL = 512


def _random80() -> int:
    """80 random bits from the OS, drawn 512 values per system call (one getrandom per id
    cost more than the rest of the id). The pool is per thread, and a forked child starts
    with none, so no two processes or threads ever hand out the same bits."""
    pool: list[int] | None = getattr(_RANDOM, "pool", None)
    if not pool:
        data = os.urandom(10 * _RANDOM_POOL)
        pool = _RANDOM.pool = [
            int.from_bytes(data[i : i + 10], "big") for i in range(0, len(data), 10)
        ]
    return pool.pop()


def _forget_random_pool() -> None:
    global _RANDOM
    _RANDOM = threading.local()


os.register_at_fork(after_in_child=_forget_random_pool)


def _uuid7_int() -> int:
    rand = _random80()  # 74 of the 80 bits are used
    return (
        (time.time_ns() // 1_000_000) << 80  # unix_ts_ms
        | 0x7 << 76  # version 7
        | (rand >> 68) << 64  # rand_a (12 bits)
        | 0b10 << 62  # variant
        | (rand & (2**62 - 1))  # rand_b (62 bits)
    )


def time_ordered_id() -> str:
    """A version 7 UUID as 32 hex digits (``uuid.UUID(...).hex``): message ids."""
    return f"{_uuid7_int():032x}"  # formatted by hand: uuid.UUID() costs another microsecond


def time_ordered_uuid() -> str:
    """A version 7 UUID in its dashed form (``str(uuid.UUID(...))``): case ids."""
    h = f"{_uuid7_int():032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def uuid7_hex(ms: int, noise: bytes) -> str:
    """The version 7 UUID of millisecond ``ms`` with random bits from ``noise`` (10 bytes)."""
    r = noise.hex()
    return f"{ms:012x}7{r[:3]}{_VARIANT[r[3]]}{r[4:19]}"
