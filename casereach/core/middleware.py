"""Refuse NUL characters anywhere in a request before any view sees them.

PostgreSQL text cannot hold NUL (0x00); without this guard a NUL in a path, a query
parameter or a JSON string would surface as a database error (a 500) instead of a clear 400.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import unquote_to_bytes

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve

NUL_MESSAGE = "NUL characters (\\u0000) are not allowed in requests"


class RejectNulMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if has_nul(request):
            return JsonResponse({"error": NUL_MESSAGE, "detail": None}, status=400)
        return self.get_response(request)


def has_nul(request: HttpRequest) -> bool:
    if "\x00" in request.path:
        return True
    if b"\x00" in unquote_to_bytes(request.META.get("QUERY_STRING", "")):
        return True
    content_type = request.META.get("CONTENT_TYPE", "")
    if request.method in ("POST", "PUT", "PATCH") and not content_type.startswith("multipart/"):
        body = request.body
        return b"\x00" in body or b"\\u0000" in body
    return False


# Every page, script and style comes from this server (the UI has no inline script or style;
# Swagger UI at /api/docs loads its files from /static/ninja/). ``data:`` images and fonts are
# what Swagger UI's stylesheet embeds. Nothing may frame the UI.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)


class ContentSecurityPolicyMiddleware:
    """Send ``CONTENT_SECURITY_POLICY`` with every response that does not set its own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        return response


class ProviderCallbackMiddleware:
    """Provider callbacks (``/gateways/{type}/{key}/…``: inbound messages, delivery reports,
    webhooks) skip the browser-facing middleware after this one — sessions, CSRF, login and its
    throttling, flash messages, the frame header — none of which a machine-to-machine callback
    uses (its credential is the key in its URL; its views are CSRF-exempt and read no user).
    Those callbacks arrive by the thousand, and that part of the chain was about a tenth of a
    survey answer's request handling (decision 0015). The security, size, text and NUL guards
    before it still apply. A path under ``/gateways/`` that resolves to no view goes on down the
    chain (its 404 is the API's JSON one)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path_info.startswith(CALLBACK_PREFIX):
            return self.get_response(request)
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return self.get_response(request)
        request.resolver_match = match
        response: HttpResponse = match.func(request, *match.args, **match.kwargs)
        if not response.streaming and not response.has_header("Content-Length"):
            # What CommonMiddleware adds: a keep-alive connection needs the length.
            response.headers["Content-Length"] = str(len(response.content))
        return response


CALLBACK_PREFIX = "/gateways/"
