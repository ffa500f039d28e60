"""Request guards that answer before any view: a body over the size limit is a JSON 413 on
the API and gateway URLs, and text that is not valid UTF-8 is a JSON 400 everywhere.

Both sit before ``RejectNulMiddleware`` (which reads the body) in settings.MIDDLEWARE.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from django.conf import settings
from django.core.handlers.wsgi import get_bytes_from_wsgi
from django.http import HttpRequest, HttpResponse, JsonResponse

from casereach.core import text

# The API (every project's and the global one) and the provider callbacks: their errors are
# JSON. The web UI's pages never start with these.
API_PATH = re.compile(r"^/(a/[^/]+/api/|api/|gateways/)")


def is_api_path(path: str) -> bool:
    return API_PATH.match(path) is not None


def body_limit() -> int:
    """The largest request body the API and gateway URLs read (DATA_UPLOAD_MAX_MEMORY_SIZE)."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return int(limit) if limit is not None else 2**62


def too_large(limit: int) -> JsonResponse:
    return JsonResponse(
        {
            "error": f"request body too large: at most {limit} bytes",
            "detail": {"max_bytes": limit},
        },
        status=413,
    )


class RejectOversizeBodyMiddleware:
    """A body larger than DATA_UPLOAD_MAX_MEMORY_SIZE on an API or gateway URL is a JSON 413,
    decided on its declared length before a byte of it is read (Django would raise
    RequestDataTooBig, an HTML 400, as soon as anything read it)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if is_api_path(request.path):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            limit = body_limit()
            if length > limit:
                return too_large(limit)
        return self.get_response(request)


class RejectInvalidTextMiddleware:
    """A query string, form body or JSON body that is not valid UTF-8 text (raw bytes,
    percent-escapes, or JSON ``\\ud800`` escapes that decode to a lone surrogate) is a JSON
    400 naming what was wrong, whatever the view (core.text is the decoder). A multipart body
    is text only on the gateway URLs (providers post fields, never files); elsewhere its files
    are checked by their readers (the import)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        problem = invalid_text(request)
        if problem is not None:
            return JsonResponse({"error": problem[0], "detail": problem[1]}, status=400)
        return self.get_response(request)


def invalid_text(request: HttpRequest) -> tuple[str, str | None] | None:
    """(error, detail) saying why the request's text is not valid UTF-8, or None. A JSON body
    gets the API's usual "Payload must be valid JSON" (CommCare clients match on it) with the
    reason as its detail."""
    is_json = False
    try:
        text.check_argument(request.path, "the path")
        text.check_query_string(get_bytes_from_wsgi(request.META, "QUERY_STRING", ""))
        if request.method in ("POST", "PUT", "PATCH"):
            media = (request.META.get("CONTENT_TYPE") or "").split(";", 1)[0].strip().lower()
            if media == "application/x-www-form-urlencoded":
                text.percent_decoded(request.body, "the form body")
            elif media.startswith("multipart/"):
                if request.path.startswith("/gateways/"):  # providers post text fields only
                    text.decode(request.body, "the form body")
            else:
                # JSON whatever the declared type (views parse the body as JSON regardless).
                is_json = True
                text.check_json_bytes(request.body, "the body")
    except text.InvalidText as exc:
        return ("Payload must be valid JSON", exc.message) if is_json else (exc.message, None)
    return None
