"""SPEC 3 rules as tables, through the pure rule functions (no database)."""

from __future__ import annotations

import datetime as dt

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from casereach.contacts.rules import (
    ContactSource,
    ProjectRules,
    _possible,
    _possible_slow,
    check_email,
    check_phone,
    derive,
    is_verified,
)

RULES = ProjectRules(project_id=1, time_zone="Africa/Nairobi", languages=("en", "sw"))
STRICT = ProjectRules(project_id=1, strict_phone_validation=True)
KENYA = ProjectRules(project_id=1, default_country="KE")


@pytest.mark.parametrize(
    ("raw", "rules", "number", "reason", "warnings"),
    [
        pytest.param("254712345678", RULES, "254712345678", None, (), id="e164 digits"),
        pytest.param("+254 (712) 345-678", RULES, "254712345678", None, (), id="punctuation"),
        pytest.param("+1.555.123.4567", RULES, "15551234567", None, (), id="dots"),
        pytest.param(None, RULES, None, "missing", (), id="absent"),
        pytest.param("", RULES, None, "missing", (), id="empty"),
        pytest.param("   ", RULES, None, "missing", (), id="blank"),
        pytest.param("0", RULES, None, "missing", (), id="zero"),
        pytest.param("+", RULES, None, "missing", (), id="plus only"),
        pytest.param("12a45", RULES, None, "not_digits", (), id="letters"),
        pytest.param("++254712345678", RULES, None, "not_digits", (), id="two plus"),
        pytest.param("２５４７１２", RULES, None, "not_digits", (), id="fullwidth digits"),
        pytest.param("123", RULES, None, "too_short", (), id="three digits"),
        pytest.param("1234", RULES, "1234", None, ("not_e164",), id="four digits"),
        pytest.param("0712345678", RULES, "0712345678", None, ("national_format",), id="national"),
        pytest.param("999123456789", RULES, "999123456789", None, ("not_e164",), id="bad cc"),
        pytest.param(
            "0712345678", STRICT, None, "strict_invalid", ("national_format",), id="strict national"
        ),
        pytest.param(
            "999123456789", STRICT, None, "strict_invalid", ("not_e164",), id="strict bad cc"
        ),
        pytest.param("254712345678", STRICT, "254712345678", None, (), id="strict good"),
        pytest.param(
            "0712345678",
            KENYA,
            "254712345678",
            None,
            ("converted_from_national",),
            id="default country",
        ),
        pytest.param("1" * 40, RULES, None, "too_long", ("not_e164",), id="too long"),
    ],
)
def test_check_phone(
    raw: str | None,
    rules: ProjectRules,
    number: str | None,
    reason: str | None,
    warnings: tuple[str, ...],
) -> None:
    result = check_phone(raw, rules)
    assert (number, reason, warnings) == (result.number, result.reason, result.warnings)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", True),
        ("true", True),
        (" TRUE ", True),
        ("yes", True),
        ("Y", True),
        ("on", True),
        ("0", False),
        ("no", False),
        ("", False),
        (None, False),
        ("false", False),
        ("2", False),
        ("verified", False),
    ],
)
def test_verified_flag(value: str | None, expected: bool) -> None:
    assert expected == is_verified(value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("amina@example.org", ("amina@example.org", "ok")),
        ("  amina@example.org ", ("amina@example.org", "ok")),
        ("", ("", "missing")),
        (None, ("", "missing")),
        ("amina@", ("amina@", "invalid")),
        ("amina example.org", ("amina example.org", "invalid")),
        ("a@b", ("a@b", "invalid")),
    ],
)
def test_check_email(raw: str | None, expected: tuple[str, str]) -> None:
    assert expected == check_email(raw)


def _source(**kw: object) -> ContactSource:
    base: dict[str, object] = {
        "contact_id": "c1",
        "contact_type": "case",
        "project_id": 1,
        "name": "Amina",
        "active": True,
        "modified": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        "phones": [("254712345678", True)],
    }
    base.update(kw)
    return ContactSource(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        ("africa/nairobi", ("Africa/Nairobi", "contact", [])),
        ("America/New_York", ("America/New_York", "contact", [])),
        ("Mars/Olympus", ("Africa/Nairobi", "project", ["unknown_time_zone"])),
        ("", ("Africa/Nairobi", "project", [])),
        (None, ("Africa/Nairobi", "project", [])),
    ],
)
def test_time_zone(zone: str | None, expected: tuple[str, str, list[str]]) -> None:
    d = derive(_source(time_zone=zone), RULES)
    assert expected == (d.tz_effective, d.tz_source, [w["code"] for w in d.warnings])


def test_time_zone_defaults_to_utc_without_project_zone() -> None:
    d = derive(_source(), ProjectRules(project_id=1, time_zone=""))
    assert ("UTC", "default") == (d.tz_effective, d.tz_source)


@pytest.mark.parametrize(
    ("lang", "expected"),
    [
        ("sw", ("sw", "contact", [])),
        ("SW", ("en", "project", ["unknown_language"])),
        ("fr", ("en", "project", ["unknown_language"])),
        ("", ("en", "project", [])),
    ],
)
def test_language(lang: str, expected: tuple[str, str, list[str]]) -> None:
    d = derive(_source(language=lang), RULES)
    assert expected == (d.lang_effective, d.lang_source, [w["code"] for w in d.warnings])


def test_inactive_contact_has_no_entries() -> None:
    assert [] == derive(_source(active=False), RULES).entries


def test_gateway_override_is_kept_on_the_entry() -> None:
    d = derive(_source(gateway=" AT-KE "), RULES)
    assert ["AT-KE"] == [e.gateway for e in d.entries]
    assert "AT-KE" == d.gateway_requested


def test_worker_numbers_keep_order_and_drop_duplicates() -> None:
    d = derive(
        _source(
            contact_type="worker",
            phones=[("+254700000001", False), ("254700000002", True), ("254700000001", True)],
        ),
        RULES,
    )
    assert [("254700000001", 0, False), ("254700000002", 1, True)] == [
        (e.number, e.position, e.verified_requested) for e in d.entries
    ]


def test_invalid_email_warns() -> None:
    d = derive(_source(email="bad@"), RULES)
    assert ("invalid", ["invalid_email"]) == (d.email_status, [w["code"] for w in d.warnings])


# --- the cached possible-number check agrees with libphonenumber ---------------------------

_COUNTRY_CODE_TEXT = sorted(
    str(c) for c in phonenumbers.phonenumberutil.COUNTRY_CODE_TO_REGION_CODE
)


@settings(max_examples=1000, deadline=None, derandomize=True)
@given(
    code=st.sampled_from(_COUNTRY_CODE_TEXT) | st.text("0123456789", min_size=1, max_size=3),
    rest=st.text("0123456789", min_size=0, max_size=20),
)
def test_possible_number_cache_agrees_with_libphonenumber(code: str, rest: str) -> None:
    digits = code + rest
    expected = _possible_slow(digits)
    # Asked twice: the first answer may fill the cache, the second comes from it.
    assert (expected, expected) == (_possible(digits), _possible(digits))


@pytest.mark.parametrize(
    "digits",
    [
        "254712345678",  # Kenya, no national prefix in the number
        "2540712345678",  # Kenya with its national prefix 0 kept after the country code
        "11555123456",  # NANP, national prefix 1 after the country code
        "15551234567",
        "4402079460000",  # UK with a trunk 0
        "390612345678",  # Italy (leading zero is significant)
        "80012345678",  # non-geographic toll-free
        "99912345",  # no such country code
        "8821234",
        "5491112345678",  # Argentina (national prefix transform rule)
    ],
)
def test_possible_number_cache_agrees_on_tricky_shapes(digits: str) -> None:
    expected = _possible_slow(digits)
    assert (expected, expected) == (_possible(digits), _possible(digits))
