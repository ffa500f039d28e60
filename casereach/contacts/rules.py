"""The rules of SPEC section 3 as pure functions: case properties in, contact profile out.

Nothing here touches the database, so the same code serves one API call or a batch of
10,000 imported rows, and every rule is tested as a table.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import phonenumbers
from phonenumbers.phonemetadata import PhoneMetadata

from casereach.core.zones import canonical_zone

PHONE_PROP = "contact_phone_number"
VERIFIED_PROP = "contact_phone_number_is_verified"
EMAIL_PROP = "commcare_email_address"
ZONE_PROP = "time_zone"
LANG_PROP = "language_code"
GATEWAY_PROP = "contact_backend_id"

TRUE_WORDS = frozenset({"1", "true", "yes", "y", "on"})
_STRIP = str.maketrans("", "", " \t\r\n\v\f()-.\u00a0")
_EMAIL = re.compile(
    r"^[^@\s<>(),;:\"\[\]]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)

WARNING_TEXT = {
    "not_e164": "The number is not a possible international number for its country code; check the country code and length.",
    "national_format": "The number starts with 0, so it looks like a national number; store it with its country code (E.164).",
    "converted_from_national": "The number was in national format and was converted with the project's default country.",
    "two_way_conflict": "Another contact already holds this number for two-way SMS, so this contact can only receive messages.",
    "invalid_email": "The email address is not valid, so email to this contact will fail.",
    "unknown_time_zone": "The time zone is not a known IANA name; the project's time zone is used instead.",
    "unknown_language": "The language code is not one of the project's SMS languages.",
    "unknown_gateway": "The gateway named in contact_backend_id does not exist for this project; sends will fail.",
    # A number that was given but refused: the contact has no phone entry, so no SMS reaches it.
    "not_digits": "The phone number holds something other than digits, so it was refused; no SMS can reach this contact.",
    "too_short": "The phone number has fewer than 4 digits, so it was refused; no SMS can reach this contact.",
    "too_long": "The phone number has more than 32 digits, so it was refused; no SMS can reach this contact.",
}

UNUSABLE_PHONE = ("not_digits", "too_short", "too_long")
"""Phone reasons of a number that was given but refused: each is also a warning code.
(``strict_invalid`` is not: such a number already warns ``national_format`` or ``not_e164``.)"""


def warning(code: str, detail: str = "") -> dict[str, str]:
    text = WARNING_TEXT[code]
    return {"code": code, "message": f"{text} ({detail})" if detail else text}


@dataclass(frozen=True)
class ProjectRules:
    """The project settings that contact derivation depends on."""

    project_id: int
    time_zone: str = "UTC"
    languages: tuple[str, ...] = ("en",)
    strict_phone_validation: bool = False
    default_country: str | None = None


@dataclass(frozen=True)
class PhoneCheck:
    number: str | None
    reason: str | None
    warnings: tuple[str, ...] = ()


def is_verified(value: str | None) -> bool:
    """Trimmed, case-insensitive 1/true/yes/y/on; anything else (even "0") is not verified."""
    return value is not None and value.strip().lower() in TRUE_WORDS


def normalize_digits(raw: str) -> str:
    """Step 1 of SPEC 3.1 alone: blanks and ( ) - . removed, then one leading +."""
    value = raw.translate(_STRIP)
    return value[1:] if value.startswith("+") else value


def check_phone(raw: str | None, rules: ProjectRules) -> PhoneCheck:
    """Normalise and validate one number (SPEC 3.1)."""
    if raw is None:
        return PhoneCheck(None, "missing")
    value = raw.translate(_STRIP)
    if value.startswith("+"):
        value = value[1:]
    if value == "" or value == "0":
        return PhoneCheck(None, "missing")
    if not value.isascii() or not value.isdigit():
        return PhoneCheck(None, "not_digits")
    if len(value) < 4:
        return PhoneCheck(None, "too_short")
    warnings: list[str] = []
    if value.startswith("0") and not value.startswith("00") and rules.default_country:
        try:
            parsed = phonenumbers.parse(value, rules.default_country)
        except phonenumbers.NumberParseException:
            parsed = None
        if parsed is not None and phonenumbers.is_possible_number(parsed):
            value = f"{parsed.country_code}{parsed.national_number}"
            warnings.append("converted_from_national")
    if value.startswith("0"):
        warnings.append("national_format")
    elif not _possible(value):
        warnings.append("not_e164")
    if rules.strict_phone_validation and ("national_format" in warnings or "not_e164" in warnings):
        return PhoneCheck(None, "strict_invalid", tuple(warnings))
    if len(value) > 32:
        return PhoneCheck(None, "too_long", tuple(warnings))
    return PhoneCheck(value, None, tuple(warnings))


def _possible(digits: str) -> bool:
    """Whether ``+digits`` is a possible number for its country code (libphonenumber's
    ``is_possible_number`` after ``parse``), answered from a cache when that is exact.

    libphonenumber decides this from the country code and the *length* of the national
    number, unless the region's national-prefix pattern matches the start of the national
    number (then it may strip digits, depending on the digits). So when the pattern does not
    match, the answer for (country code, national length) is the answer for every number of
    that shape: the first such number is asked of libphonenumber and the answer is kept.
    Anything else (no country code, a national prefix to consider) always asks it; ingest
    calls this once per number and libphonenumber's parse costs ~50 µs.
    """
    shape = _number_shape(digits)
    if shape is None:
        return _possible_slow(digits)
    known = _POSSIBLE_BY_SHAPE.get(shape)
    if known is None:
        known = _POSSIBLE_BY_SHAPE[shape] = _possible_slow(digits)
    return known


def _possible_slow(digits: str) -> bool:
    try:
        parsed = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException:
        return False
    return bool(phonenumbers.is_possible_number(parsed))


_POSSIBLE_BY_SHAPE: dict[tuple[int, int], bool] = {}
_COUNTRY_CODES = {
    str(code): code for code in phonenumbers.phonenumberutil.COUNTRY_CODE_TO_REGION_CODE
}


def _number_shape(digits: str) -> tuple[int, int] | None:
    """(country code, national number length) of ASCII ``digits`` when libphonenumber's
    answer depends on nothing else; None when it might."""
    if not digits or digits[0] == "0":
        return None
    for size in range(1, min(3, len(digits)) + 1):  # the first valid code wins, as in parse
        code = _COUNTRY_CODES.get(digits[:size])
        if code is not None:
            break
    else:
        return None
    prefix = _national_prefix(code)
    if prefix is False or (prefix is not None and prefix.match(digits[size:])):
        return None
    return code, len(digits) - size


@functools.cache
def _national_prefix(code: int) -> re.Pattern[str] | Literal[False] | None:
    """The compiled national-prefix-for-parsing pattern of a country code's metadata, None
    when it has none, False when there is no metadata to go by."""
    region = phonenumbers.region_code_for_country_code(code)
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, region)
    if metadata is None:
        return False
    pattern = metadata.national_prefix_for_parsing
    return re.compile(pattern) if pattern else None


def check_email(raw: str | None) -> tuple[str, str]:
    """(trimmed address, status ok|missing|invalid)."""
    value = (raw or "").strip()
    if not value:
        return "", "missing"
    if len(value) > 320 or not _EMAIL.match(value):
        return value, "invalid"
    return value, "ok"


@dataclass(frozen=True)
class ContactSource:
    """One case or worker as the sync sees it."""

    contact_id: str
    contact_type: str
    project_id: int
    name: str
    active: bool
    modified: dt.datetime
    phones: Sequence[tuple[str | None, bool]] = ()
    email: str | None = None
    time_zone: str | None = None
    language: str | None = None
    gateway: str | None = None
    # True when the contact cannot exist yet (a case just created under a freshly generated
    # id): the sync then does not look for its current version and phone entries.
    new: bool = False


@dataclass
class DesiredEntry:
    number: str
    position: int
    gateway: str
    verified_requested: bool


@dataclass
class DerivedContact:
    source: ContactSource
    phone_raw: str
    phone_number: str | None
    phone_reason: str | None
    verified_requested: bool
    email: str
    email_status: str
    tz_requested: str
    tz_effective: str
    tz_source: str
    lang_requested: str
    lang_effective: str | None
    lang_source: str
    gateway_requested: str
    warnings: list[dict[str, str]] = field(default_factory=list)
    entries: list[DesiredEntry] = field(default_factory=list)


def derive(source: ContactSource, rules: ProjectRules) -> DerivedContact:
    """Apply every rule of SPEC 3 to one source."""
    warnings: list[dict[str, str]] = []
    entries: list[DesiredEntry] = []
    gateway = (source.gateway or "").strip()
    first_raw = source.phones[0][0] if source.phones else None
    first: PhoneCheck | None = None
    seen: set[str] = set()
    for position, (raw, verified) in enumerate(source.phones):
        check = check_phone(raw, rules)
        if first is None:
            first = check
        for code in check.warnings:
            warnings.append(warning(code, _mask(check.number or (raw or ""))))
        if check.number is not None and check.number not in seen and source.active:
            seen.add(check.number)
            entries.append(DesiredEntry(check.number, position, gateway, verified))
    if first is None:
        first = PhoneCheck(None, "missing")
    verified_first = bool(source.phones and source.phones[0][1])

    email, email_status = check_email(source.email)
    if email_status == "invalid":
        warnings.append(warning("invalid_email"))

    tz_requested = (source.time_zone or "").strip()
    project_zone = canonical_zone(rules.time_zone)
    if tz_requested:
        zone = canonical_zone(tz_requested)
        if zone is not None:
            tz_effective, tz_source = zone, "contact"
        else:
            warnings.append(warning("unknown_time_zone", tz_requested[:64]))
            tz_effective, tz_source = (
                (project_zone, "project") if project_zone else ("UTC", "default")
            )
    elif project_zone:
        tz_effective, tz_source = project_zone, "project"
    else:
        tz_effective, tz_source = "UTC", "default"

    lang_requested = (source.language or "").strip()
    default_lang = rules.languages[0] if rules.languages else None
    if lang_requested and lang_requested in rules.languages:
        lang_effective, lang_source = lang_requested, "contact"
    else:
        if lang_requested:
            warnings.append(warning("unknown_language", lang_requested[:32]))
        if default_lang:
            lang_effective, lang_source = default_lang, "project"
        else:
            lang_effective, lang_source = None, "default"

    return DerivedContact(
        source=source,
        phone_raw=(first_raw or "")[:255],
        phone_number=first.number,
        phone_reason=first.reason,
        verified_requested=verified_first,
        email=email[:320],
        email_status=email_status,
        tz_requested=tz_requested[:100],
        tz_effective=tz_effective,
        tz_source=tz_source,
        lang_requested=lang_requested[:32],
        lang_effective=lang_effective,
        lang_source=lang_source,
        gateway_requested=gateway[:100],
        warnings=warnings,
        entries=entries,
    )


def _mask(number: str) -> str:
    """Numbers in warning texts are shown with the middle hidden (they end up in reports)."""
    if len(number) <= 6:
        return number
    return number[:3] + "…" + number[-3:]
