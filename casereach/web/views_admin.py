"""Project settings and gateways & routes pages.

Settings are validated by the same ``ProjectSettings`` model as the API (errors are shown
next to the field they are about); gateways are saved through ``gateways.actions``.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import render
from django.urls import reverse
from pydantic import ValidationError

from casereach.core.errors import CasereachError
from casereach.gateways.actions import do_create_gateway, do_set_routes, do_update_gateway
from casereach.gateways.models import GatewayConfig
from casereach.gateways.queries import owned_gateways, visible_gateways
from casereach.gateways.registry import available_types, gateway_class
from casereach.gateways.serializers import serialize_gateway
from casereach.messaging.actions import SendRequest, do_send
from casereach.projects.models import Project, Role
from casereach.projects.settings_change import do_change_settings
from casereach.projects.settings_schema import ProjectSettings, effective_settings
from casereach.web import settings_form
from casereach.web.access import project_page
from casereach.web.gateway_form import (
    field_kind,
    gateway_body,
    shown,
    type_fields,
)

# -- settings ------------------------------------------------------------------------------------

ROUTE_SETTINGS = {"default_gateway", "prefix_routes"}  # edited on the gateways page
# Not on the settings page: the CommCare connection gets its own page (issue 19, item 6).
ROUTE_SETTINGS |= {"commcare"}


HELP = {
    "time_zone": "IANA name, e.g. Africa/Nairobi: used for contacts without a valid zone.",
    "languages": "SMS languages, separated by commas; the first is the default, e.g. en, sw.",
    "language_fallback": "When a contact's language has no text: none = do not send, "
    "alert = the alert's default language, project = the project's first language, "
    "untranslated = any text there is.",
    "restricted_windows": "SMS are sent only inside these windows of the contact's local "
    "time: tick the days and give the times; an end before the start runs past midnight "
    "(23:00 to 01:00). No window = any time. Fill in the empty row to add a window; "
    "untick every day and clear the times to remove one.",
    "daily_limit": "At most this many outgoing messages per day (replies are not counted).",
    "currency": "Three-letter ISO 4217 code (e.g. USD, KES): message costs and the monthly "
    "budget are in it (see the fee table).",
    "monthly_budget": "At most this much message cost per calendar month, in the currency "
    "above; empty = no budget. Sending stops when it is reached; a warning shows at 80%.",
    "stale_after_hours": "A queued message older than this is not sent (it fails as stale).",
    "retry_delays_minutes": "Waits in minutes between retries of a failed send, separated "
    "by commas, e.g. 5, 10.",
    "strict_phone_validation": "Refuse numbers not stored in international format "
    "(e.g. 0712…) instead of only warning about them.",
    "default_country": "Two-letter country (e.g. KE) used to convert national numbers "
    "that start with 0.",
    "opt_out_keywords": "Extra STOP words per language, separated by commas, e.g. ACHA.",
    "opt_in_keywords": "Extra START words per language, separated by commas, e.g. ANZA.",
    "help_keywords": "Extra HELP words per language, separated by commas, e.g. MSAADA.",
    "help_text": "The reply to HELP, in each language.",
    "default_inbound_response": "The reply to an SMS no keyword matches, in each language "
    "(empty: no reply).",
    "opt_out_reply": "The confirmation of an opt-out (STOP), in each language.",
    "opt_in_reply": "The confirmation of an opt-in (START), in each language.",
    "verification_text": "The text asking a mobile worker to reply 123, in each language.",
    "verification_done_text": "The confirmation of a verified number, in each language.",
    "self_registration": "Whether unknown numbers may register by SMS, and as what.",
    "channel_order": "Fallback chain: the channels a message to a contact tries, in order, "
    "separated by commas, e.g. whatsapp, sms, email. Empty = every message goes on its own "
    "channel only.",
    "fallback_after_minutes": "Per channel, minutes without a delivery report before the "
    "chain moves on to the next channel, e.g. 30 for WhatsApp. Empty: only a failure moves "
    "it on.",
}


def _settings_fields(
    current: dict[str, Any], typed: QueryDict | None, errors: dict[str, str]
) -> list[dict[str, Any]]:
    schema = ProjectSettings.model_json_schema()
    fields = []
    for name, info in ProjectSettings.model_fields.items():
        if name in ROUTE_SETTINGS:
            continue
        prop = schema["properties"].get(name, {})
        label = name.replace("_", " ").capitalize()
        help_text = HELP.get(name) or info.description or prop.get("description") or ""
        special = settings_form.kind_of(name)
        if special is not None:
            fd = settings_form.field(name, special, current, typed, errors)
            fd.update({"label": label, "help": help_text, "error": errors.get(name)})
            fields.append(fd)
            continue
        kind = field_kind(name, prop)
        if typed is not None:
            value = "on" if kind == "checkbox" and typed.get(name) else typed.get(name, "")
        else:
            value = shown(current.get(name), kind)
            if kind == "checkbox":
                value = "on" if current.get(name) else ""
        fields.append(
            {
                "name": name,
                "label": label,
                "kind": kind,
                "value": value,
                "choices": prop.get("enum", []),
                "help": help_text,
                "error": errors.get(name),
            }
        )
    return fields


def _parse_settings(
    post: QueryDict, current: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, str], list[int]]:
    """The changed settings, the errors found in the form and the form row of each sending
    window kept."""
    schema = ProjectSettings.model_json_schema()
    changes: dict[str, Any] = {}
    errors: dict[str, str] = {}
    window_rows: list[int] = []
    for name in ProjectSettings.model_fields:
        if name in ROUTE_SETTINGS:
            continue
        special = settings_form.kind_of(name)
        if special is not None:
            if settings_form.on_form(name, special, post):
                value, rows = settings_form.parse(name, special, post, current, errors)
                if name not in errors:
                    changes[name] = value
                    window_rows = rows or window_rows
            continue
        kind = field_kind(name, schema["properties"].get(name, {}))
        if kind != "checkbox" and name not in post:
            continue  # not on the form: unchanged
        raw = post.get(name, "")
        if kind == "checkbox":
            changes[name] = bool(post.get(name))
        elif kind == "json":
            try:
                changes[name] = json.loads(raw or "null")
            except json.JSONDecodeError as exc:
                errors[name] = f"not valid JSON: {exc.msg} (line {exc.lineno})"
        elif kind == "number":
            try:
                changes[name] = int(raw)
            except ValueError:
                errors[name] = "enter a whole number"
        elif kind == "text" and raw.strip() == "":
            changes[name] = None if "anyOf" in schema["properties"].get(name, {}) else ""
        else:
            changes[name] = raw.strip()
    return changes, errors, window_rows


@project_page(get=Role.VIEWER, post=Role.ADMIN)
def settings_page(request: HttpRequest, project: Project) -> HttpResponse:
    errors: dict[str, str] = {}
    saved = None
    typed = None
    form_error = None
    if request.method == "POST":
        typed = request.POST
        stored = effective_settings(project.settings).model_dump(mode="json")
        changes, errors, window_rows = _parse_settings(request.POST, stored)
        if not errors:
            try:
                _, resynced = do_change_settings(project, changes)
            except CasereachError as exc:
                cause = exc.__cause__
                if isinstance(cause, ValidationError):
                    for err in cause.errors():
                        msg = str(err.get("msg", "")).removeprefix("Value error, ")
                        key = settings_form.error_key(tuple(err.get("loc") or ()), window_rows, msg)
                        errors.setdefault(key, msg)
                    if "" in errors:  # about no one field: said at the top
                        form_error = errors.pop("")
                if not errors:
                    form_error = exc.message
            else:
                project.refresh_from_db()
                saved = resynced
                typed = None
    current = effective_settings(project.settings).model_dump(mode="json")
    return render(
        request,
        "web/settings.html",
        {
            "project": project,
            "fields": _settings_fields(current, typed, errors),
            "errors": errors,
            "form_error": form_error,
            "saved": saved,
            "nav": "settings",
        },
        status=400 if errors or form_error else 200,
    )


# -- gateways ------------------------------------------------------------------------------------


@project_page(get=Role.VIEWER, post=Role.ADMIN)
def gateways(request: HttpRequest, project: Project) -> HttpResponse:
    rows = [
        serialize_gateway(request, gw, project) for gw in visible_gateways(project).order_by("name")
    ]
    settings = effective_settings(project.settings)
    routes_text = "\n".join(f"{p} {g}" for p, g in sorted(settings.prefix_routes.items()))
    error = None
    test_result = None
    if request.method == "POST" and request.POST.get("form") == "routes":
        routes_text = request.POST.get("prefixes", "")
        prefixes = []
        for line in routes_text.splitlines():
            parts = line.split()
            if parts:
                prefixes.append({"prefix": parts[0], "gateway": " ".join(parts[1:])})
        known = set(visible_gateways(project).values_list("name_key", flat=True))
        try:
            do_set_routes(
                project,
                {
                    "default_gateway": request.POST.get("default_gateway") or None,
                    "prefixes": prefixes,
                },
                known,
            )
        except CasereachError as exc:
            error = exc.message
        else:
            return HttpResponseRedirect(reverse("web:gateways", args=[project.name]))
    if request.method == "POST" and request.POST.get("form") == "test":
        number = request.POST.get("number", "")
        text = request.POST.get("text", "") or "casereach test message"
        try:
            _, msgs = do_send(
                project,
                SendRequest(
                    phone_number=number,
                    sms={"*": text},
                    triggered_by=request.user.get_username(),
                    gateway=request.POST.get("gateway", "").strip() or None,
                ),
            )
            test_result = msgs
        except CasereachError as exc:
            error = exc.message
    return render(
        request,
        "web/gateways.html",
        {
            "project": project,
            "rows": rows,
            "types": [(c.slug, c.label) for c in available_types()],
            "default_gateway": request.POST.get("default_gateway", settings.default_gateway or ""),
            "routes_text": routes_text,
            "error": error,
            "test_result": test_result,
            "test_gateway": request.POST.get("gateway", ""),
            "nav": "gateways",
        },
        status=400 if error else 200,
    )


def _gateway_form(
    request: HttpRequest,
    project: Project,
    gw: GatewayConfig | None,
    slug: str,
    error: str | None,
) -> HttpResponse:
    typed = request.POST if request.method == "POST" else None
    cls = gateway_class(slug)
    secrets_set: list[str] = []
    if gw is not None:
        secrets_set = serialize_gateway(request, gw, project).get("secrets_set", [])
    return render(
        request,
        "web/gateway_form.html",
        {
            "project": project,
            "gw": gw,
            "urls": serialize_gateway(request, gw, project) if gw is not None else None,
            "slug": slug,
            "label": cls.label,
            "fields": type_fields(slug, cls.public_config(gw.config) if gw else {}, typed),
            "secrets_set": secrets_set,
            "name": typed.get("name", "") if typed else (gw.name if gw else ""),
            "senders": typed.get("sender_numbers", "")
            if typed
            else ", ".join(gw.sender_numbers if gw else []),
            "rate": typed.get("rate_limit_per_s", "")
            if typed
            else ("" if gw is None or gw.rate_limit_per_s is None else str(gw.rate_limit_per_s)),
            "is_active": (
                bool(typed.get("is_active")) if typed else (gw.is_active if gw else True)
            ),
            "error": error,
            "nav": "gateways",
        },
        status=400 if error else 200,
    )


@project_page(get=Role.ADMIN)
def gateway_new(request: HttpRequest, project: Project) -> HttpResponse:
    slug = request.POST.get("type") or request.GET.get("type", "test")
    try:
        gateway_class(slug)
    except KeyError:
        raise Http404("no such gateway type") from None
    if request.method == "POST":
        try:
            body = gateway_body(slug, request.POST)
            body["type"] = slug
            gw = do_create_gateway(project, body)
        except CasereachError as exc:
            return _gateway_form(request, project, None, slug, exc.message)
        return HttpResponseRedirect(reverse("web:gateway", args=[project.name, gw.pk]))
    return _gateway_form(request, project, None, slug, None)


@project_page(get=Role.ADMIN)
def gateway_edit(request: HttpRequest, project: Project, gateway_id: int) -> HttpResponse:
    gw = owned_gateways(project).filter(pk=gateway_id).first()
    if gw is None:
        raise Http404("no such gateway")
    if request.method == "POST":
        try:
            do_update_gateway(gw, gateway_body(gw.type, request.POST))
        except CasereachError as exc:
            return _gateway_form(request, project, gw, gw.type, exc.message)
        return HttpResponseRedirect(reverse("web:gateways", args=[project.name]))
    return _gateway_form(request, project, gw, gw.type, None)
