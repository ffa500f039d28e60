"""The one NinjaAPI instance: every app's router, auth, and errors as 4xx JSON."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.urls import URLPattern, URLResolver
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.openapi.schema import OpenAPISchema
from ninja.parser import Parser

from casereach.alerts.api import router as alerts_router
from casereach.alerts.replywait_api import router as alert_reply_waits_router
from casereach.api.links import add_links
from casereach.billing.api import router as billing_router
from casereach.cases.api import router as cases_router
from casereach.cases.api_commcare import router as commcare_router
from casereach.cases.api_v05 import router as cases_v05_router
from casereach.contacts.api import router as contacts_router
from casereach.core.errors import CasereachError
from casereach.core.text import parse_json
from casereach.gateways.api import router as gateways_router
from casereach.gateways.api_admin import router as gateways_admin_router
from casereach.messaging.api import router as messaging_router
from casereach.messaging.api_commcare_sms import router as commcare_sms_router
from casereach.messaging.api_events import router as events_router
from casereach.messaging.api_inbound import router as inbound_router
from casereach.messaging.api_whatsapp import router as whatsapp_router
from casereach.messaging.callbacks import inbound_sms, status_callback
from casereach.messaging.callbacks import router as callbacks_router
from casereach.messaging.callbacks_webhook import router as webhook_router
from casereach.projects.api import router as projects_router
from casereach.projects.auth import ApiKeyAuth, Throttled, Unauthorized
from casereach.surveys.api import router as surveys_router
from casereach.surveys.session_api import router as survey_sessions_router
from casereach.workers.api import router as workers_router

log = logging.getLogger(__name__)


class CasereachApi(NinjaAPI):
    """ninja answers a method a path does not take with a text/html "Method not allowed"
    (PathView._not_allowed, before any exception handler); ours is 405 JSON with Allow.
    Its OpenAPI document has no links; ours has those of ``casereach.api.links``."""

    def get_openapi_schema(
        self, *, path_prefix: str | None = None, path_params: dict[str, Any] | None = None
    ) -> OpenAPISchema:
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        add_links(schema)
        return schema

    @property
    def urls(self) -> tuple[list[URLResolver | URLPattern], str, str]:
        patterns, app_name, namespace = super().urls
        for pattern in patterns:
            if isinstance(pattern, URLPattern):
                pattern.callback = _json_not_allowed(pattern.callback)
                direct = DIRECT_POSTS.get(str(pattern.pattern))
                if direct is not None:
                    pattern.callback = _direct_post(pattern.callback, direct)
        # The providers' callbacks first: the busiest paths (a survey answer, a delivery
        # report) then resolve without walking the API's hundreds of patterns before them
        # (about 5% of an answer's server time). No other path starts with "gateways/".
        patterns.sort(key=lambda p: not str(p.pattern).startswith("gateways/"))
        return patterns, app_name, namespace


# The providers' busiest callbacks, posted by the thousand: a POST goes straight to the
# operation's own function (its path values are plain strings, it has no auth, no body schema
# and answers an HttpResponse), past ninja's per-request steps (a temporal response, the path
# values validated, the result checked: about 5% of a survey answer's server time). Errors
# still become the API's JSON answers; other methods take the ninja view.
DIRECT_POSTS: dict[str, Callable[..., HttpResponse]] = {
    "gateways/<gateway_type>/<inbound_key>/inbound": inbound_sms,
    "gateways/<gateway_type>/<inbound_key>/status": status_callback,
}


def _direct_post(
    view: Callable[..., Any], operation: Callable[..., HttpResponse]
) -> Callable[..., Any]:
    @functools.wraps(view)  # keeps csrf_exempt
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        if request.method != "POST":
            return view(request, *args, **kwargs)
        try:
            return operation(request, **kwargs)
        except Exception as exc:  # as ninja does: the API's exception handlers answer
            return api.on_exception(request, exc)

    return wrapped


def _json_not_allowed(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)  # keeps csrf_exempt
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        response = view(request, *args, **kwargs)
        if not isinstance(response, HttpResponseNotAllowed):
            return response
        allowed = sorted(m.strip() for m in response.get("Allow", "").split(",") if m.strip())
        answer = error_response(
            request, 405, f"method {request.method} not allowed", {"allowed": allowed}
        )
        answer["Allow"] = ", ".join(allowed)
        return answer

    return wrapped


class StrictJsonParser(Parser):
    """Schema bodies read through core.text, the one decoder: strict UTF-8, no lone
    surrogates (ninja's default json.loads lets encoded surrogates through)."""

    def parse_body(self, request: HttpRequest) -> dict[str, Any]:
        data: dict[str, Any] = parse_json(request.body)
        return data


api = CasereachApi(
    title="casereach API",
    version="1",
    description=(
        "CommCare-compatible case, case-list and user APIs plus casereach's messaging API. "
        "Authenticate with `Authorization: ApiKey <username>:<key>`."
    ),
    auth=ApiKeyAuth(),
    parser=StrictJsonParser(),
    urls_namespace="api",
    docs_url="/api/docs",
    openapi_url="/api/openapi.json",
)


def error_response(
    request: HttpRequest, status: int, message: str, detail: object = None
) -> HttpResponse:
    return api.create_response(request, {"error": message, "detail": detail}, status=status)


@api.exception_handler(CasereachError)
def _casereach_error(request: HttpRequest, exc: CasereachError) -> HttpResponse:
    response = error_response(request, exc.status, exc.message, exc.detail)
    if isinstance(exc, Throttled):
        response["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, Unauthorized):
        response["WWW-Authenticate"] = exc.challenge
    return response


@api.exception_handler(ValidationError)
def _validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    parts = []
    for err in exc.errors:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "payload"))
        parts.append(f"{loc or 'body'}: {err.get('msg', 'invalid')}")
    return error_response(request, 400, "; ".join(parts) or "invalid request", exc.errors)


@api.exception_handler(AuthenticationError)
def _auth_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return error_response(request, 401, "authentication required")


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return error_response(request, 404, str(exc) or "not found")


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    return error_response(request, exc.status_code, str(exc))


@api.exception_handler(Exception)
def _unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return error_response(request, 500, "internal server error")


api.add_router("", cases_router)
api.add_router("", gateways_router)
api.add_router("", gateways_admin_router)  # the system administrator's /api/admin/v1/
api.add_router("", billing_router)  # fees and conversion rates (and their admin side)
api.add_router("", messaging_router)
api.add_router("", callbacks_router)
api.add_router("", webhook_router)  # WhatsApp: statuses and inbound messages in one POST
api.add_router("", whatsapp_router)  # a WhatsApp gateway's templates
api.add_router("", cases_v05_router)
api.add_router("", commcare_router)  # data forwarding and form submissions from CommCare HQ
api.add_router("", events_router)
api.add_router("", commcare_sms_router)  # CommCare HQ's send-SMS API (form body, plain text)
api.add_router("", inbound_router)
api.add_router("", alerts_router)
api.add_router("", alert_reply_waits_router)
api.add_router("", surveys_router)
api.add_router("", survey_sessions_router)
api.add_router("", workers_router)
api.add_router("", contacts_router)
api.add_router("", projects_router)  # messaging v1 settings
