"""``{to_national}``: a destination as the national number of its own country, for providers
that refuse the country code (courier's ``use_national``)."""

from __future__ import annotations

import phonenumbers


def national(digits: str) -> str | None:
    """The E.164 ``digits`` formatted nationally by libphonenumber for the number's country,
    with only its digits kept (``254712345678`` → ``0712345678``, ``12025550123`` →
    ``2025550123``); None when the number belongs to no country."""
    try:
        parsed = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException:
        return None
    if phonenumbers.region_code_for_number(parsed) is None:
        return None
    text = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    return "".join(c for c in text if c.isascii() and c.isdigit()) or None
