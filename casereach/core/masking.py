"""Masking for logs: secrets never appear, phone numbers show only their ends.

``MaskPhoneNumbers`` is the logging filter that ``settings.LOGGING`` puts on every handler and
on Django's and waitress's loggers, so that no log line — a 404 naming a number in its URL, a
traceback, a gateway exchange — carries a full phone number.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

# A leading "+" is left in place by ``mask_number`` anyway, so matching the digits alone gives
# the same text, and the regex does not try an optional "+" at every position (twice as fast).
_DIGITS = re.compile(r"\d{7,}")


def mask_number(number: str) -> str:
    """``254712345678`` → ``2547*****678``: the country code and last digits stay readable."""
    digits = number.lstrip("+")
    if len(digits) <= 6:
        return "*" * len(digits)
    return number[: len(number) - len(digits)] + digits[:4] + "*" * (len(digits) - 7) + digits[-3:]


def mask_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace every secret value and every long digit run (phone numbers) in ``text``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return _DIGITS.sub(lambda m: mask_number(m.group(0)), text)


class MaskPhoneNumbers(logging.Filter):
    """A logging filter that masks phone numbers (digit runs of 7 or more) in a record's
    message and traceback; it never drops a record."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a bad format: leave it for the handler to report
            return True
        masked = mask_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_text(record.stack_info)
        return True
