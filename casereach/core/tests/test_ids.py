from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from casereach.core.ids import time_ordered_id, uuid7_hex


@settings(max_examples=300)
@given(st.integers(min_value=0, max_value=2**48 - 1), st.binary(min_size=10, max_size=10))
def test_uuid7_hex_is_a_version_7_uuid_of_its_millisecond(ms: int, noise: bytes) -> None:
    made = uuid7_hex(ms, noise)
    parsed = uuid.UUID(made)
    assert (7, uuid.RFC_4122, made) == (parsed.version, parsed.variant, parsed.hex)
    assert ms == parsed.int >> 80


def test_time_ordered_ids_differ_and_sort_by_time() -> None:
    made = [time_ordered_id() for _ in range(2000)]
    assert 2000 == len(set(made))
    assert [m[:12] for m in made] == sorted(m[:12] for m in made)
