"""The system administrator's pages (``/sysadmin/…``): global gateways and the global routes.

Only a superuser sees them (anyone else signed in gets a 403 page, whatever their project
roles); every change goes through ``gateways.actions_global``, the same writers as the admin
API and the CLI. Routing order (CommCare's): contact override → project prefix → project
default → global prefix → global default.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse

from casereach.core.errors import CasereachError
from casereach.gateways.actions_global import (
    do_create_global_gateway,
    do_delete_global_gateway,
    do_replace_global_routes,
    do_update_global_gateway,
)
from casereach.gateways.models import GatewayConfig
from casereach.gateways.queries import global_gateway, global_gateways, global_routes
from casereach.gateways.registry import available_types, gateway_class
from casereach.gateways.serializers import serialize_global
from casereach.web.gateway_form import gateway_body, type_fields

SysadminView = Callable[..., HttpResponse]
DONE = "sysadmin_done"  # what the last change did, shown once on the list page


def sysadmin_page(view: SysadminView) -> SysadminView:
    """Log-in required, then the system administrator (a superuser) only: anyone else gets
    the 403 page, whatever their roles in projects."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not (request.user.is_active and request.user.is_superuser):
            return render(request, "web/sysadmin_forbidden.html", status=403)
        return view(request, *args, **kwargs)

    wrapper.sysadmin_only = True  # type: ignore[attr-defined]
    return wrapper


def _routes_text(prefixes: dict[str, str]) -> str:
    return "\n".join(f"{p} {g}" for p, g in sorted(prefixes.items()))


def _save_routes(request: HttpRequest) -> None:
    prefixes = []
    for line in request.POST.get("prefixes", "").splitlines():
        parts = line.split()
        if parts:
            prefixes.append({"prefix": parts[0], "gateway": " ".join(parts[1:])})
    do_replace_global_routes(
        {"default_gateway": request.POST.get("default_gateway") or None, "prefixes": prefixes}
    )


def _gateway_action(request: HttpRequest, form: str) -> str:
    """Activate, deactivate or delete the posted gateway; what was done, for the page."""
    raw = request.POST.get("gateway", "")
    gw = global_gateway(int(raw) if raw.isdigit() and len(raw) < 20 else 0)
    if form == "delete":
        do_delete_global_gateway(gw)
        return f"gateway {gw.name} deleted"
    do_update_global_gateway(gw, {"is_active": form == "activate"})
    return f"gateway {gw.name} {'activated' if form == 'activate' else 'deactivated'}"


@sysadmin_page
def gateways(request: HttpRequest) -> HttpResponse:
    routes = global_routes()
    error = None
    done = str(request.session.pop(DONE, "")) if request.method == "GET" else ""
    if request.method == "POST":
        form = request.POST.get("form", "")
        try:
            if form == "routes":
                _save_routes(request)
                done = "global routes saved"
            elif form in ("activate", "deactivate", "delete"):
                done = _gateway_action(request, form)
            else:
                raise CasereachError("unknown form")
        except CasereachError as exc:
            error = exc.message
        else:
            request.session[DONE] = done
            return HttpResponseRedirect(reverse("web:sysadmin_gateways"))
    routes = global_routes()
    gws = global_gateways()
    typed = request.POST if error and request.POST.get("form") == "routes" else None
    return render(
        request,
        "web/sysadmin_gateways.html",
        {
            "rows": [serialize_global(request, g, routes) for g in gws],
            "types": [(c.slug, c.label) for c in available_types()],
            "default_gateway": typed.get("default_gateway", "")
            if typed
            else routes.default_gateway,
            "routes_text": typed.get("prefixes", "") if typed else _routes_text(routes.prefixes),
            "error": error,
            "done": "" if error else done,
            "nav": "sysadmin",
        },
        status=400 if error else 200,
    )


def _form(
    request: HttpRequest, gw: GatewayConfig | None, slug: str, error: str | None
) -> HttpResponse:
    typed = request.POST if request.method == "POST" else None
    cls = gateway_class(slug)
    shown = serialize_global(request, gw) if gw is not None else None
    rate = "" if gw is None or gw.rate_limit_per_s is None else str(gw.rate_limit_per_s)
    return render(
        request,
        "web/sysadmin_gateway_form.html",
        {
            "gw": gw,
            "shown": shown,
            "slug": slug,
            "label": cls.label,
            "fields": type_fields(slug, cls.public_config(gw.config) if gw else {}, typed),
            "secrets_set": shown["secrets_set"] if shown else [],
            "name": typed.get("name", "") if typed else (gw.name if gw else ""),
            "senders": typed.get("sender_numbers", "")
            if typed
            else ", ".join(gw.sender_numbers if gw else []),
            "rate": typed.get("rate_limit_per_s", "") if typed else rate,
            "is_active": bool(typed.get("is_active")) if typed else (gw.is_active if gw else True),
            "error": error,
            "nav": "sysadmin",
        },
        status=400 if error else 200,
    )


@sysadmin_page
def gateway_new(request: HttpRequest) -> HttpResponse:
    slug = request.POST.get("type") or request.GET.get("type", "test")
    try:
        gateway_class(slug)
    except KeyError:
        raise Http404("no such gateway type") from None
    if request.method == "POST":
        try:
            gw = do_create_global_gateway({**gateway_body(slug, request.POST), "type": slug})
        except CasereachError as exc:
            return _form(request, None, slug, exc.message)
        return HttpResponseRedirect(reverse("web:sysadmin_gateway", args=[gw.pk]))
    return _form(request, None, slug, None)


@sysadmin_page
def gateway_edit(request: HttpRequest, gateway_id: int) -> HttpResponse:
    try:
        gw = global_gateway(gateway_id)
    except CasereachError:
        raise Http404("no such global gateway") from None
    if request.method == "POST":
        try:
            do_update_global_gateway(gw, gateway_body(gw.type, request.POST))
        except CasereachError as exc:
            gw.refresh_from_db()
            return _form(request, gw, gw.type, exc.message)
        request.session[DONE] = f"gateway {gw.name} saved"
        return HttpResponseRedirect(reverse("web:sysadmin_gateways"))
    return _form(request, gw, gw.type, None)
