"""Every error code of SPEC 4.4 with a one-line description and what to do about it.

The same texts are served by ``…/messaging/v1/error-codes``, shown in the UI and written
in docs/errors.md.
"""

from __future__ import annotations

from typing import NamedTuple


class ErrorInfo(NamedTuple):
    code: str
    description: str
    hint: str


ERRORS: tuple[ErrorInfo, ...] = (
    ErrorInfo(
        "NO_RECIPIENT",
        "The alert or broadcast resolved to no contacts.",
        "Check the recipients: an empty group, or a case with no owner or parent.",
    ),
    ErrorInfo(
        "NO_MESSAGE",
        "There is no text in the contact's language after the language fallbacks.",
        "Add a translation for that language, or change the project's language fallback.",
    ),
    ErrorInfo(
        "CANNOT_RENDER_MESSAGE",
        "The message template could not be filled in.",
        "Fix the template; check that every placeholder names a real property.",
    ),
    ErrorInfo(
        "NO_PHONE_NUMBER",
        "The contact has no usable phone number.",
        "Set contact_phone_number to a number in international format, e.g. 254712345678.",
    ),
    ErrorInfo(
        "NO_TWO_WAY_PHONE_NUMBER",
        "This needs a two-way number and the contact has none.",
        "Verify the number, or resolve the two-way conflict on the phone numbers page.",
    ),
    ErrorInfo(
        "PHONE_NUMBER_OPTED_OUT",
        "The number has opted out of messages from this project, or from the gateway the "
        "message would use.",
        "Nothing is sent until the person texts START in that scope (or an admin opts them back "
        "in, when they did not opt out themselves).",
    ),
    ErrorInfo(
        "CONTACT_IS_INACTIVE",
        "The contact is a closed or deleted case, or a deactivated worker.",
        "Reopen the case or reactivate the worker if messages should go out.",
    ),
    ErrorInfo(
        "GATEWAY_NOT_FOUND",
        "The gateway named for this contact does not exist or is not available to the project.",
        "Fix contact_backend_id, or add a gateway with that name, or accept one shared with the "
        "project.",
    ),
    ErrorInfo(
        "NO_SUITABLE_GATEWAY",
        "No gateway could be chosen for this number.",
        "Set a default gateway or a prefix route for the number's country code.",
    ),
    ErrorInfo(
        "GATEWAY_ERROR",
        "The gateway refused the message.",
        "Read the provider's code on the message; check the gateway's credentials and account.",
    ),
    ErrorInfo(
        "TOO_MANY_UNSUCCESSFUL_ATTEMPTS",
        "Every attempt to hand the message to the gateway failed.",
        "Check that the gateway is reachable and its account works, then resend.",
    ),
    ErrorInfo(
        "MESSAGE_IS_STALE",
        "The message waited longer than the stale limit and was not sent.",
        "Look for a gateway outage or daily limit that held it back; resend if still useful.",
    ),
    ErrorInfo(
        "INVALID_DESTINATION_NUMBER",
        "The gateway says the number cannot receive SMS.",
        "The number is probably mistyped, a landline, or no longer exists: check it.",
    ),
    ErrorInfo(
        "MESSAGE_TOO_LONG",
        "The message is longer than the gateway accepts.",
        "Shorten the text (each extra 153 or 67 characters is another part).",
    ),
    ErrorInfo("MESSAGE_BLANK", "The message text is empty.", "Write some content for the message."),
    ErrorInfo(
        "MESSAGE_FORMAT_INVALID",
        "The gateway could not accept the message's format.",
        "Check for characters or a sender id the provider does not support.",
    ),
    ErrorInfo(
        "NO_EMAIL_ADDRESS",
        "The contact has no email address.",
        "Set commcare_email_address on the case (or the worker's email).",
    ),
    ErrorInfo(
        "ERROR_INVALID_EMAIL_ADDRESS",
        "The email address is not valid.",
        "Correct the address; the mail server refused it or its syntax is wrong.",
    ),
    ErrorInfo("EMAIL_BOUNCED", "The email bounced.", "Check the address with the person."),
    ErrorInfo(
        "EMAIL_GATEWAY_ERROR",
        "The mail server did not accept the email.",
        "Check the SMTP settings and that the server is reachable.",
    ),
    ErrorInfo(
        "WHATSAPP_NOT_A_USER",
        "The number is not on WhatsApp.",
        "Reach the person by SMS or email (a fallback channel does this on its own), or check "
        "the number with them.",
    ),
    ErrorInfo(
        "WHATSAPP_OUTSIDE_WINDOW",
        "The person has not written in the last 24 hours and no approved template fits, so "
        "WhatsApp allows no free text; it is not retried.",
        "Give the content an approved template in the contact's language, or send by SMS.",
    ),
    ErrorInfo(
        "DAILY_LIMIT_REACHED",
        "The project's daily outbound limit was reached; sending resumes later.",
        "Raise daily_limit in the project settings if the volume is expected.",
    ),
    ErrorInfo(
        "MONTHLY_BUDGET_REACHED",
        "The project's message cost this month reached its monthly budget; sending resumes "
        "when the budget is raised or the month ends.",
        "Raise monthly_budget in the project settings (or clear it), or wait for next month.",
    ),
    ErrorInfo(
        "INTERNAL_SERVER_ERROR",
        "An unexpected error happened while sending; it is retried.",
        "If it persists, report it with the message id.",
    ),
)

BY_CODE = {e.code: e for e in ERRORS}


def describe(code: str | None) -> ErrorInfo | None:
    return BY_CODE.get(code) if code else None
