"""What CommCare HQ and its phones post to us (reference/commcare-api.md 6):

- ``POST /a/{project}/api/commcare/case-forwarding/``: HQ's Data Forwarding (case repeater),
  one case's whole state per POST, XML or JSON. A stale or repeated state is a 2xx that
  changes nothing, so HQ stops resending it; a body that cannot be read is a 4xx JSON error.
- ``POST /a/{project}/receiver/`` (and ``receiver/api/``): an XForm submission, raw or as the
  multipart file ``xml_submission_file``; its case blocks all apply or none do. Answers are
  OpenRosa documents.

Authentication is the API's (``casereach.api.main``): these views only declare their role.
"""

from __future__ import annotations

from typing import Any, Literal
from xml.sax.saxutils import escape

from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja import Router
from pydantic import Field

from casereach.cases.caseblock import (
    MAX_XML_BYTES,
    Forwarded,
    PayloadError,
    form_submission,
    forwarded_json,
    forwarded_xml,
)
from casereach.cases.changes import ChangeError, parse_timestamp
from casereach.cases.forwarding import do_receive_form, receive_forwarded
from casereach.cases.writeback import do_retry_write
from casereach.cases.writeback_queries import backlog, list_writes, serialize_write
from casereach.core.errors import BadRequest, CasereachError, NotFound
from casereach.core.openapi import ApiError, OpenSchema, query_param
from casereach.projects.auth import principal_of, project_for, requires
from casereach.projects.models import Role

router = Router(tags=["CommCare data forwarding and form submissions"])

FORWARDING = "/a/{project}/api/commcare/case-forwarding/"
RECEIVER = "/a/{project}/receiver/"
OPENROSA_NS = "http://openrosa.org/http/response"
# A multipart submission may carry the form's attachments, which we do not keep.
MAX_SUBMISSION_BYTES = 4 * MAX_XML_BYTES
XML_TYPES = ("text/xml", "application/xml")


class TooLarge(CasereachError):
    status = 413


class ForwardOut(OpenSchema):
    case_id: str
    outcome: Literal["applied", "unchanged", "stale", "echo"] = Field(
        description="applied: the state was written; unchanged: it equals what we have; "
        "stale: HQ sent this state or a newer one before (nothing written); echo: HQ "
        "sending back casereach's own write-back (nothing written)"
    )


ERRORS: dict[int, Any] = {400: ApiError, 401: ApiError, 403: ApiError, 413: ApiError, 429: ApiError}

_CASE_XML_EXAMPLE = (
    '<case xmlns="http://commcarehq.org/case/transaction/v2" case_id="c1" user_id="u1" '
    'date_modified="2015-04-17T16:04:54.950000Z"><create><case_type>mother</case_type>'
    "<case_name>Amina</case_name><owner_id>u1</owner_id></create><update>"
    "<contact_phone_number>254712345678</contact_phone_number></update></case>"
)
FORWARDING_DOC: dict[str, Any] = {
    "description": "One case per POST, its whole current state, as CommCare HQ's case "
    "repeater sends it. The header `server-modified-on` (else the JSON "
    "`server_date_modified`) orders the states: an older or repeated one is answered 200 "
    "with outcome `stale` and changes nothing.",
    "parameters": [
        {
            "name": "server-modified-on",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "format": "date-time"},
            "description": "HQ's server modification time of the case",
        }
    ],
    "requestBody": {
        "required": True,
        "content": {
            "text/xml": {
                "schema": {"type": "string", "maxLength": MAX_XML_BYTES},
                "example": _CASE_XML_EXAMPLE,
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["case_id"],
                    "properties": {
                        "case_id": {"type": "string"},
                        "closed": {"type": "boolean"},
                        "user_id": {"type": "string"},
                        "date_modified": {"type": "string", "format": "date-time"},
                        "server_date_modified": {"type": "string", "format": "date-time"},
                        "properties": {"type": "object"},
                        "indices": {"type": "object"},
                    },
                }
            },
        },
    },
}

_XML_ANSWER = {"text/xml": {"schema": {"type": "string"}}}
RECEIVER_DOC: dict[str, Any] = {
    "description": "An XForm submission with case blocks (CaseBlock v2): the XML as the body, "
    "or as the multipart file `xml_submission_file`. Every case block applies, or none does. "
    "A form whose `meta/instanceID` was received before changes nothing and is answered 201 "
    "again. Answers are OpenRosa documents.",
    "requestBody": {
        "required": True,
        "content": {
            "text/xml": {"schema": {"type": "string", "maxLength": MAX_XML_BYTES}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["xml_submission_file"],
                    "properties": {"xml_submission_file": {"type": "string", "format": "binary"}},
                }
            },
        },
    },
    "responses": {
        201: {"description": "submit_success", "content": _XML_ANSWER},
        400: {"description": "not a well-formed XML form", "content": _XML_ANSWER},
        413: {"description": "too large", "content": _XML_ANSWER},
        422: {
            "description": "processing_failure: a case block cannot be applied",
            "content": _XML_ANSWER,
        },
    },
}


def _media(request: HttpRequest) -> str:
    return (request.META.get("CONTENT_TYPE") or "").split(";", 1)[0].strip().lower()


def _is_xml(request: HttpRequest, raw: bytes) -> bool:
    media = _media(request)
    if media in XML_TYPES or media.endswith("+xml"):
        return True
    if media == "application/json":
        return False
    return raw.lstrip()[:1] == b"<"


def read_forwarded(request: HttpRequest, user: str) -> Forwarded:
    raw = request.body
    try:
        forwarded = (
            forwarded_xml(raw, user=user)
            if _is_xml(request, raw)
            else forwarded_json(raw, user=user)
        )
        header = request.headers.get("server-modified-on")
        if header and header.strip():
            forwarded.server_modified = parse_timestamp(header.strip())
    except PayloadError as exc:
        raise (TooLarge if exc.too_large else BadRequest)(str(exc)) from None
    except ChangeError as exc:
        raise BadRequest(str(exc)) from None
    return forwarded


@router.api_operation(
    ["POST"],
    FORWARDING,
    operation_id="commcare_case_forwarding",
    summary="Receive a case from CommCare HQ's Data Forwarding",
    response={200: ForwardOut, **ERRORS},
    openapi_extra=FORWARDING_DOC,
)
@requires(Role.MEMBER)
def case_forwarding(request: HttpRequest, project: str) -> JsonResponse:
    proj = project_for(request, project)
    forwarded = read_forwarded(request, principal_of(request).username)
    outcome = receive_forwarded(proj, forwarded)
    return JsonResponse({"case_id": forwarded.change.case_id, "outcome": outcome})


def openrosa(status: int, nature: str, message: str) -> HttpResponse:
    body = (
        f'<OpenRosaResponse xmlns="{OPENROSA_NS}">'
        f'<message nature="{nature}">{escape(message)}</message></OpenRosaResponse>'
    )
    response = HttpResponse(body, status=status, content_type="text/xml; charset=utf-8")
    response["X-OpenRosa-Version"] = "1.0"
    return response


def _form_bytes(request: HttpRequest) -> bytes:
    """The form's XML: the body, or the multipart file ``xml_submission_file``."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > MAX_SUBMISSION_BYTES:
        raise PayloadError(
            f"submission too large: at most {MAX_SUBMISSION_BYTES} bytes", too_large=True
        )
    if not _media(request).startswith("multipart/"):
        return request.body
    try:
        upload = request.FILES.get("xml_submission_file")
    except Exception as exc:  # Django's multipart parser: a malformed body
        raise PayloadError(f"malformed multipart body: {type(exc).__name__}") from None
    if upload is None:
        raise PayloadError("a multipart submission needs the file xml_submission_file")
    if (upload.size or 0) > MAX_XML_BYTES:
        raise PayloadError(f"XML document too large: at most {MAX_XML_BYTES} bytes", too_large=True)
    data: bytes = upload.read()
    return data


def receive_form(request: HttpRequest, project: str) -> HttpResponse:
    proj = project_for(request, project)
    user = principal_of(request).username
    try:
        submission = form_submission(_form_bytes(request), user=user)
    except PayloadError as exc:
        return openrosa(413 if exc.too_large else 400, "submit_error", str(exc))
    except ChangeError as exc:
        return openrosa(422, "processing_failure", str(exc))
    try:
        outcome = do_receive_form(proj, submission)
    except BadRequest as exc:
        return openrosa(422, "processing_failure", exc.message)
    if outcome.duplicate:
        return openrosa(201, "submit_success", "Form already received; nothing changed.")
    return openrosa(
        201,
        "submit_success",
        f"Thanks for submitting: {outcome.cases} case block(s), {outcome.written} case(s) changed.",
    )


@router.api_operation(
    ["POST"],
    RECEIVER,
    operation_id="commcare_form_receiver",
    summary="Receive an XForm submission with case blocks",
    response={401: ApiError, 403: ApiError, 429: ApiError},
    openapi_extra=RECEIVER_DOC,
)
@requires(Role.MEMBER)
def form_receiver(request: HttpRequest, project: str) -> HttpResponse:
    return receive_form(request, project)


@router.api_operation(["POST"], RECEIVER + "api/", include_in_schema=False)
@requires(Role.MEMBER)
def form_receiver_api(request: HttpRequest, project: str) -> HttpResponse:
    return receive_form(request, project)


# -- write-back (cases.writeback): what casereach sent to HQ, and a retry ------------------------

WRITEBACK = "/a/{project}/api/commcare/writeback"


class WriteOut(OpenSchema):
    id: int
    case_id: str
    op: Literal["create", "update", "reopen"]
    status: Literal["queued", "sending", "sent", "failed"]
    attempts: int
    unknown_outcomes: int
    last_error: str
    last_status: int | None = None
    body: dict[str, Any]
    hq_case_id: str | None = None
    created_on: str
    next_attempt_at: str | None = None


class WriteListOut(OpenSchema):
    objects: list[WriteOut]
    total_count: int
    backlog: dict[str, int] = Field(description="writes per status, all of the project's")


def _int_param(request: HttpRequest, name: str, default: int) -> int:
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number") from None


@router.api_operation(
    ["GET"],
    WRITEBACK,
    operation_id="commcare_writeback_list",
    summary="List case changes written back to CommCare HQ (newest first)",
    response={200: WriteListOut, 400: ApiError, 401: ApiError, 403: ApiError, 429: ApiError},
    openapi_extra={
        "parameters": [
            query_param("case_id", "only this case's writes"),
            query_param("status", "queued, sending, sent or failed"),
            query_param("limit", "at most this many (1-500, default 100)", {"type": "integer"}),
            query_param("offset", "skip this many", {"type": "integer"}),
        ]
    },
)
@requires(Role.VIEWER)
def writeback_list(request: HttpRequest, project: str) -> JsonResponse:
    proj = project_for(request, project)
    page = list_writes(
        proj,
        case_id=request.GET.get("case_id") or None,
        status=request.GET.get("status") or None,
        limit=_int_param(request, "limit", 100),
        offset=_int_param(request, "offset", 0),
    )
    return JsonResponse(
        {"objects": page.objects, "total_count": page.total, "backlog": backlog(proj)}
    )


@router.api_operation(
    ["POST"],
    WRITEBACK + "/{write_id}/retry",
    operation_id="commcare_writeback_retry",
    summary="Send a failed (or waiting) write-back again now",
    response={
        200: WriteOut,
        400: ApiError,
        401: ApiError,
        403: ApiError,
        404: ApiError,
        409: ApiError,
        429: ApiError,
    },
)
@requires(Role.MEMBER)
def writeback_retry(request: HttpRequest, project: str, write_id: str) -> JsonResponse:
    proj = project_for(request, project)
    if not write_id.isascii() or not write_id.isdigit() or len(write_id) > 18:
        raise NotFound(f"write-back {write_id[:40]!r} not found")
    return JsonResponse(serialize_write(do_retry_write(proj, int(write_id))))
