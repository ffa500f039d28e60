"""Segment counting: tables of known answers plus gsm0338 as an oracle for the encoding."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from casereach.core.segments import GSM_BASIC, GSM_EXTENSION, analyse, costed, encoding_of


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ("GSM", 0, 0)),
        ("Hello", ("GSM", 5, 1)),
        ("a" * 160, ("GSM", 160, 1)),
        ("a" * 161, ("GSM", 161, 2)),
        ("a" * 306, ("GSM", 306, 2)),
        ("a" * 307, ("GSM", 307, 3)),
        ("€" * 80, ("GSM", 160, 1)),
        ("€" * 81, ("GSM", 162, 2)),
        ("Ç", ("GSM", 1, 1)),
        ("ç", ("UCS2", 1, 1)),
        ("Habari ya asubuhi 😀", ("UCS2", 20, 1)),
        ("я" * 70, ("UCS2", 70, 1)),
        ("я" * 71, ("UCS2", 71, 2)),
        ("я" * 134, ("UCS2", 134, 2)),
        ("я" * 135, ("UCS2", 135, 3)),
        ("😀" * 35, ("UCS2", 70, 1)),
        ("😀" * 36, ("UCS2", 72, 2)),
    ],
)
def test_known_answers(text: str, expected: tuple[str, int, int]) -> None:
    info = analyse(text)
    assert expected == (info.encoding, info.units, info.segments)
    assert text == "".join(info.parts)


def test_escape_pair_never_split() -> None:
    text = "a" * 152 + "€" + "b" * 10
    info = analyse(text)
    assert ("a" * 152, "€" + "b" * 10) == info.parts


def test_surrogate_pair_never_split() -> None:
    text = "я" * 66 + "😀" + "b" * 5
    info = analyse(text)
    assert ("я" * 66, "😀bbbbb") == info.parts


@settings(max_examples=300, derandomize=True)
@given(
    st.text(
        alphabet=st.sampled_from([*sorted(GSM_BASIC | GSM_EXTENSION), "ç", "я", "😀"]), max_size=400
    )
)
def test_gsm0338_oracle(text: str) -> None:
    gsm0338 = pytest.importorskip("gsm0338")
    try:
        encoded = text.encode("gsm03.38")
        oracle = ("GSM", len(encoded))
    except UnicodeEncodeError:
        oracle = ("UCS2", len(text.encode("utf-16-le")) // 2)
    info = analyse(text)
    assert oracle == (info.encoding, info.units)
    assert gsm0338 is not None
    single, multi = (160, 153) if info.encoding == "GSM" else (70, 67)
    for part in info.parts:
        assert analyse(part).units <= (single if info.segments == 1 else multi)


@settings(max_examples=300, derandomize=True)
@given(
    st.text(
        alphabet=st.sampled_from([*sorted(GSM_BASIC | GSM_EXTENSION), "ç", "я", "😀", "\ud800"]),
        max_size=400,
    )
    | st.text(max_size=400)
)
def test_the_fast_paths_answer_as_the_character_by_character_count(text: str) -> None:
    assert costed(text, encoding_of(text)) == analyse(text)
