"""CommCare HQ's send-SMS API (reference/commcare-api.md 7.1), for integrations written
against CommCare: ``POST /a/{project}/sms/api/send_sms/``, form-encoded, plain-text answers.

It sends as ``POST …/messaging/v1/send`` does (``actions.do_send``, the same checks, rows and
routing; the same role), so the message and its event show in the message log and the
messaging-event API (source ``other``). Authentication is the API's: HQ integrations send
Basic (or Digest) with a username and a password or API key.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja import Router

from casereach.core.errors import CasereachError, NotFound
from casereach.core.openapi import ApiError
from casereach.messaging.actions import SendRequest, do_send
from casereach.projects.auth import principal_of, project_for, requires
from casereach.projects.models import Role

router = Router(tags=["CommCare send-SMS API"])

SEND_SMS = "/a/{project}/sms/api/send_sms/"
FIELDS = ("phone_number", "contact_id", "text", "backend_id")

_TEXT = {"text/plain": {"schema": {"type": "string"}}}
SEND_SMS_DOC: dict[str, Any] = {
    "description": "CommCare HQ's send-SMS API: one SMS to `contact_id` (a case id: the "
    "contact's number) or else `phone_number`, through the gateway named `backend_id` (else "
    "the project's routing). The answer is plain text: `OK` when the message was queued, "
    "`ERROR: <error code>` (still 200, as HQ answers) when a check stopped it (opt-out, no "
    "gateway…: the message log shows it), or a 400 with HQ's message.",
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["text"],
                    "properties": {
                        "phone_number": {"type": "string", "example": "254712345678"},
                        "contact_id": {"type": "string", "description": "a case id"},
                        "text": {"type": "string", "maxLength": 1600},
                        "backend_id": {"type": "string", "description": "a gateway name"},
                    },
                }
            }
        },
    },
    "responses": {
        200: {"description": "`OK`, or `ERROR: <error code>`", "content": _TEXT},
        400: {
            "description": "`Not enough arguments.`, `Contact not found.`, "
            "`Contact has no phone number.` or what is wrong with the request",
            "content": _TEXT,
        },
    },
}


def _text(status: int, body: str) -> HttpResponse:
    return HttpResponse(body, status=status, content_type="text/plain; charset=utf-8")


@router.api_operation(
    ["POST"],
    SEND_SMS,
    operation_id="commcare_send_sms",
    summary="Send one SMS (CommCare HQ's send-SMS API)",
    response={401: ApiError, 403: ApiError, 429: ApiError},
    openapi_extra=SEND_SMS_DOC,
)
@requires(Role.MEMBER)
def send_sms(request: HttpRequest, project: str) -> HttpResponse:
    proj = project_for(request, project)
    form = request.POST
    text = form.get("text", "")
    contact_id = form.get("contact_id", "").strip()
    phone_number = form.get("phone_number", "").strip()
    if not text or not (contact_id or phone_number):
        return _text(400, "Not enough arguments.")
    req = SendRequest(
        channel="sms",
        contact_id=contact_id or None,
        phone_number=None if contact_id else phone_number,
        sms={"*": text},
        triggered_by=principal_of(request).username,
        gateway=form.get("backend_id", "").strip() or None,
    )
    try:
        _event, messages = do_send(proj, req)
    except NotFound:
        return _text(400, "Contact not found.")
    except CasereachError as exc:
        return _text(400, exc.message)
    errors = [m.error_code for m in messages if m.error_code]
    if not errors:
        return _text(200, "OK")
    if contact_id and errors[0] == "NO_PHONE_NUMBER":
        return _text(400, "Contact has no phone number.")
    return _text(200, f"ERROR: {errors[0]}")
