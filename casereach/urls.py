"""URL map: health, metrics, the web UI and the API (one OpenAPI document, with the gateway
callbacks)."""

from __future__ import annotations

import re

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path
from django.views import defaults

from casereach.api.main import api
from casereach.scaleout import config, health, metrics
from casereach.web import views as web_views


def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database (and the broker, when one is configured) answers, 503 otherwise."""
    db = health.database()
    body: dict[str, str] = {"status": "ok"}
    if db.ok:
        from django.db import connection

        body["database"] = connection.vendor
    else:
        body["database"] = db.detail[:200]
    ok = db.ok
    if config.broker_mode():
        broker = health.broker(timeout_s=2.0)
        body["broker"] = "ok" if broker.ok else broker.detail[:200]
        ok = ok and broker.ok
    if not ok:
        body["status"] = "error"
    return JsonResponse(body, status=200 if ok else 503)


def prometheus(request: HttpRequest) -> HttpResponse:
    refused = metrics.access(request.META)
    if refused is not None:
        status, message = refused
        response = JsonResponse({"error": message, "detail": None}, status=status)
        if status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(metrics.render(), content_type="text/plain; version=0.0.4; charset=utf-8")


urlpatterns = [
    path("healthz", healthz),
    path("metrics", prometheus),
    # The UI's home before the API's root; then the API (its paths and the UI's never
    # overlap), so that an API request does not first fail through every UI pattern (Django
    # lists each one tried: about a tenth of a forwarding POST's request handling).
    path("", web_views.home, name="home"),
    path("", api.urls),
    path("", include("casereach.web.urls")),
]

# Paths of the API and the provider callbacks: a 404 there is JSON like every API error; the
# web UI keeps its HTML page.
_API_PATH = re.compile(r"^/(a/[^/]+/api/|api/|gateways/)")


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _API_PATH.match(request.path):
        return JsonResponse(
            {"error": "no such API path", "detail": {"path": request.path[:300]}}, status=404
        )
    return defaults.page_not_found(request, exception)


handler404 = not_found
