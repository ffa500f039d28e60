"""Inbound-SMS management under ``/a/{project}/api/messaging/v1/``: the test phone, the
opt-out list, keywords and worker verification."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from ninja import Router

from casereach.core.errors import BadRequest, NotFound
from casereach.core.openapi import ApiError, query_param
from casereach.core.requests import json_object, page_args
from casereach.messaging.inbound import (
    do_delete_keyword,
    do_save_keyword,
    do_start_verification,
)
from casereach.messaging.models import Keyword, Message
from casereach.messaging.optouts import do_admin_set_opt_out, project_opt_outs
from casereach.messaging.serializers import (
    ConversationOut,
    KeywordList,
    KeywordOut,
    OptOutList,
    OptOutOut,
    TestPhoneOut,
    VerifyOut,
    opt_out_csv_rows,
    serialize_keyword,
    serialize_message,
    serialize_opt_out,
)
from casereach.messaging.testphone import (
    conversation,
    do_test_phone_receive,
    knows_number,
    usable_number,
)
from casereach.projects.auth import principal_of, project_for, requires
from casereach.projects.models import Role

router = Router(tags=["inbound SMS"])
BASE = "/a/{project}/api/messaging/v1"

# Response documents: the schemas are in casereach.messaging.serializers.


AUTH_ERRORS: dict[int, Any] = {401: ApiError, 403: ApiError, 429: ApiError}
ERRORS: dict[int, Any] = {400: ApiError, **AUTH_ERRORS}
NOT_FOUND: dict[int, Any] = {404: ApiError}
CONFLICT: dict[int, Any] = {409: ApiError}
CSV_TOO = {"text/csv": {"schema": {"type": "string"}}}


def _optional_body(request: HttpRequest) -> Any:
    """A JSON object, or nothing at all (an empty body or an empty form)."""
    media = (request.content_type or "").lower()
    if not request.body.strip():
        return {}
    if media.startswith("multipart/"):
        try:
            empty = not request.POST
        except Exception:  # Django's multipart parser: a bad boundary, too many fields, …
            empty = False
        if empty:
            return {}
        raise BadRequest("send a JSON object (Content-Type: application/json)")
    return json_object(request)


# -- test phone ----------------------------------------------------------------------------------


TEST_PHONE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["from", "text"],
                    "properties": {
                        "from": {"type": "string"},
                        "text": {"type": "string"},
                        "to": {"type": "string"},
                        "gateway": {"type": "string"},
                    },
                }
            }
        },
    }
}


@router.api_operation(
    ["POST"],
    BASE + "/test-phone",
    operation_id="test_phone_send",
    summary="Send an inbound SMS as any number through the project's test gateway",
    response={201: TestPhoneOut, **ERRORS},
    openapi_extra=TEST_PHONE_BODY,
)
@requires(Role.MEMBER)
def test_phone_send(request: HttpRequest, project: str) -> JsonResponse:
    proj = project_for(request, project)
    data = json_object(request)
    unknown = sorted(set(data) - {"from", "text", "to", "gateway"})
    if unknown:
        raise BadRequest(f"unknown fields: {', '.join(unknown)}")
    gw_name = data.get("gateway")
    if gw_name is not None and not isinstance(gw_name, str):
        raise BadRequest("gateway must be a gateway name")
    gw, result = do_test_phone_receive(
        proj, data.get("from"), data.get("text"), to=data.get("to"), gateway=gw_name
    )
    replies = [serialize_message(m) for m in Message.objects.filter(id__in=result.replies)]
    return JsonResponse(
        {
            "message_id": result.message_id,
            "action": result.action,
            "contact_id": result.contact_id,
            "detail": result.detail or None,
            "gateway": gw.name,
            "replies": replies,
        },
        status=201,
    )


@router.api_operation(
    ["GET"],
    BASE + "/test-phone",
    operation_id="test_phone_conversation",
    summary="The conversation of one number on the test gateways, oldest first",
    response={200: ConversationOut, **ERRORS},
    openapi_extra={
        "parameters": [
            {**query_param("number", "The number whose conversation to show."), "required": True},
            query_param(
                "limit", "At most this many messages, default 100, 1 to 1000.", {"type": "integer"}
            ),
        ]
    },
)
@requires(Role.VIEWER)
def test_phone_conversation(request: HttpRequest, project: str) -> JsonResponse:
    proj = project_for(request, project)
    number = usable_number(request.GET.get("number"), proj, "number")
    limit, _ = page_args(request)
    rows = [serialize_message(m) for m in conversation(proj, number, limit)]
    return JsonResponse({"number": number, "objects": rows})


# -- opt-outs ------------------------------------------------------------------------------------


@router.api_operation(
    ["GET"],
    BASE + "/opt-outs",
    operation_id="opt_outs_list",
    summary="The project's own opt-out list: its scope only (JSON or CSV)",
    response={200: OptOutList, **ERRORS},
    openapi_extra={"responses": {200: {"content": CSV_TOO}}},
)
@requires(Role.VIEWER)
def opt_outs_list(request: HttpRequest, project: str) -> Any:
    proj = project_for(request, project)
    qs = project_opt_outs(proj)
    state = request.GET.get("opted_out", "true")
    if state not in ("true", "false", "all"):
        raise BadRequest("opted_out must be true, false or all")
    if state != "all":
        qs = qs.filter(opted_out=state == "true")
    number = request.GET.get("phone_number")
    if number:
        qs = qs.filter(phone_number=usable_number(number, proj))
    qs = qs.order_by("-changed_on", "phone_number")
    if request.GET.get("format") == "csv" or "text/csv" in request.headers.get("Accept", ""):
        response = StreamingHttpResponse(opt_out_csv_rows(qs, proj.name), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="{proj.name}-opt-outs.csv"'
        return response
    limit, offset = page_args(request)
    total = qs.count()
    rows = [serialize_opt_out(r, proj.name) for r in qs[offset : offset + limit]]
    return JsonResponse(
        {"meta": {"total_count": total, "limit": limit, "offset": offset}, "objects": rows}
    )


OPT_OUT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["phone_number", "opted_out"],
                    "properties": {
                        "phone_number": {"type": "string"},
                        "opted_out": {"type": "boolean"},
                    },
                }
            }
        },
    }
}


@router.api_operation(
    ["POST"],
    BASE + "/opt-outs",
    operation_id="opt_outs_set",
    summary="An admin opts a number out of this project, or back in when it may opt in",
    response={200: OptOutOut, **ERRORS, **NOT_FOUND, **CONFLICT},
    openapi_extra=OPT_OUT_BODY,
)
@requires(Role.ADMIN)
def opt_outs_set(request: HttpRequest, project: str) -> JsonResponse:
    proj = project_for(request, project)
    data = json_object(request)
    unknown = sorted(set(data) - {"phone_number", "opted_out"})
    if unknown:
        raise BadRequest(f"unknown fields: {', '.join(unknown)}")
    number = usable_number(data.get("phone_number"), proj)
    opted_out = data.get("opted_out")
    if not isinstance(opted_out, bool):
        raise BadRequest("opted_out must be true or false")
    if not knows_number(proj, number):
        # An admin's opt-out applies to the admin's project only (SPEC 2); it is still kept
        # to numbers the project knows.
        raise NotFound(
            f"{number} is not a number of this project's contacts, nor one it has sent to or "
            "received from"
        )
    row = do_admin_set_opt_out(proj, number, opted_out, by=principal_of(request).username)
    return JsonResponse(serialize_opt_out(row, proj.name))


# -- keywords ------------------------------------------------------------------------------------


KEYWORD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "keyword": {"type": "string"},
                        "description": {"type": "string"},
                        "reply": {"type": "object", "additionalProperties": {"type": "string"}},
                        "error_reply": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                        },
                        "fields": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "property": {"type": "string"},
                                    "type": {
                                        "type": "string",
                                        "enum": ["text", "integer", "decimal", "date", "choice"],
                                    },
                                    "choices": {"type": "array", "items": {"type": "string"}},
                                    "required": {"type": "boolean"},
                                    "label": {"type": "string"},
                                },
                            },
                        },
                        "action": {"type": "string", "enum": ["reply", "survey"]},
                        "survey_id": {"type": ["integer", "null"]},
                    },
                }
            }
        },
    }
}


@router.api_operation(
    ["GET"],
    BASE + "/keywords",
    operation_id="keywords_list",
    summary="The project's keywords",
    response={200: KeywordList, **AUTH_ERRORS},
)
@requires(Role.VIEWER)
def keywords_list(request: HttpRequest, project: str) -> JsonResponse:
    proj = project_for(request, project)
    rows = [serialize_keyword(k) for k in Keyword.objects.filter(project=proj).order_by("keyword")]
    return JsonResponse({"objects": rows})


@router.api_operation(
    ["POST"],
    BASE + "/keywords",
    operation_id="keywords_create",
    summary="Add a keyword (reply and/or structured SMS, or start a survey)",
    response={201: KeywordOut, **ERRORS, **CONFLICT},
    openapi_extra=KEYWORD_BODY,
)
@requires(Role.MEMBER)
def keywords_create(request: HttpRequest, project: str) -> JsonResponse:
    proj = project_for(request, project)
    kw = do_save_keyword(proj, json_object(request))
    return JsonResponse(serialize_keyword(kw), status=201)


@router.api_operation(
    ["GET"],
    BASE + "/keywords/{keyword_id}",
    operation_id="keywords_get",
    summary="One keyword",
    response={200: KeywordOut, **ERRORS, **NOT_FOUND},
)
@requires(Role.VIEWER)
def keywords_get(request: HttpRequest, project: str, keyword_id: int) -> JsonResponse:
    proj = project_for(request, project)
    kw = Keyword.objects.filter(project=proj, pk=keyword_id).first()
    if kw is None:
        raise NotFound(f"keyword {keyword_id} not found")
    return JsonResponse(serialize_keyword(kw))


@router.api_operation(
    ["PUT"],
    BASE + "/keywords/{keyword_id}",
    operation_id="keywords_update",
    summary="Change a keyword (fields not given stay as they are)",
    response={200: KeywordOut, **ERRORS, **NOT_FOUND, **CONFLICT},
    openapi_extra=KEYWORD_BODY,
)
@requires(Role.MEMBER)
def keywords_update(request: HttpRequest, project: str, keyword_id: int) -> JsonResponse:
    proj = project_for(request, project)
    kw = do_save_keyword(proj, json_object(request), keyword_id)
    return JsonResponse(serialize_keyword(kw))


@router.api_operation(
    ["PATCH"],
    BASE + "/keywords/{keyword_id}",
    operation_id="keywords_patch",
    summary="Change a keyword (the same as PUT: fields not given stay as they are)",
    response={200: KeywordOut, **ERRORS, **NOT_FOUND, **CONFLICT},
    openapi_extra=KEYWORD_BODY,
)
@requires(Role.MEMBER)
def keywords_patch(request: HttpRequest, project: str, keyword_id: int) -> JsonResponse:
    return keywords_update(request, project, keyword_id)


@router.api_operation(
    ["DELETE"],
    BASE + "/keywords/{keyword_id}",
    operation_id="keywords_delete",
    summary="Delete a keyword",
    response={204: None, **ERRORS, **NOT_FOUND},
)
@requires(Role.MEMBER)
def keywords_delete(request: HttpRequest, project: str, keyword_id: int) -> HttpResponse:
    proj = project_for(request, project)
    do_delete_keyword(proj, keyword_id)
    return HttpResponse(status=204)


# -- worker verification -------------------------------------------------------------------------

VERIFY_BODY = {
    "requestBody": {
        "required": False,
        "content": {
            "application/json": {
                "schema": {"type": "object", "properties": {"phone_number": {"type": "string"}}}
            }
        },
    }
}


@router.api_operation(
    ["POST"],
    BASE + "/workers/{worker_id}/verify",
    operation_id="worker_verify",
    summary="Start (or resend) the verification of a worker's phone number",
    response={200: VerifyOut, **ERRORS, **NOT_FOUND},
    openapi_extra=VERIFY_BODY,
)
@requires(Role.MEMBER)
def worker_verify(request: HttpRequest, project: str, worker_id: str) -> JsonResponse:
    proj = project_for(request, project)
    data = _optional_body(request)
    unknown = sorted(set(data) - {"phone_number"})
    if unknown:
        raise BadRequest(f"unknown fields: {', '.join(unknown)}")
    number = data.get("phone_number")
    if number is not None and not isinstance(number, str):
        raise BadRequest("phone_number must be a string")
    result, verified_number = do_start_verification(proj, worker_id, number)
    return JsonResponse({"result": result, "phone_number": verified_number})
