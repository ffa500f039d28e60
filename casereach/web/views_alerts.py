"""Alert pages: list, the create/edit form (criteria, schedule and recipient builders and the
side-by-side translation editor), the dry run chart and activation.

The form is only a way of writing the alert body the API takes; ``alerts.actions`` validates
and saves it, so an error message here is the same one the API returns.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import render
from django.urls import reverse

from casereach.alerts.actions import (
    do_activate,
    do_create_alert,
    do_deactivate,
    do_update_alert,
)
from casereach.alerts.dryrun import dry_run
from casereach.alerts.models import Alert
from casereach.alerts.queries import get_alert, preview
from casereach.alerts.serializers import serialize_alert
from casereach.alerts.templates import TemplateError, estimate
from casereach.cases.queries import case_choices, case_types
from casereach.core.errors import CasereachError
from casereach.projects.models import Project, Role
from casereach.web.access import project_page
from casereach.web.alert_content import survey_choices
from casereach.web.charts import stacked_bars
from casereach.web.queries import project_alerts

OPS = [
    ("equal", "is equal to"),
    ("not_equal", "is not equal to"),
    ("has_value", "has a value"),
    ("has_no_value", "has no value"),
    ("regex", "matches the pattern"),
    ("days_after", "is a date, and today is at least N days after it"),
    ("days_before", "is a date, and today is at most N days before it"),
]
RELATIVE = [
    ("self", "the case itself"),
    ("owner", "the case's owner (mobile worker)"),
    ("parent", "the parent case"),
    ("children", "the child cases"),
]
WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
UNITS = [
    ("once", "once"),
    ("days", "every N days"),
    ("weeks", "every N weeks"),
    ("months", "every N months"),
]
RULE_ROWS = 2  # blank criteria rows offered below the existing ones


def _languages(project: Project, content: dict[str, str] | None = None) -> list[str]:
    langs = list(project.languages or ["en"])
    for lang in content or {}:
        if lang not in langs:
            langs.append(lang)
    return langs


def form_from_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The form's values for a stored alert body."""
    sched = spec.get("schedule") or {"type": "immediate"}
    events = sched.get("events") or [{}]
    repeat = sched.get("repeat") or {}
    start = sched.get("start") or {}
    content = spec.get("content") or {}
    email = content.get("email") or {}
    recipients = spec.get("recipients") or []
    v: dict[str, Any] = {
        "name": spec.get("name", ""),
        "kind": spec.get("kind", "conditional"),
        "channel": spec.get("channel", "sms"),
        "case_type": spec.get("case_type") or "",
        "match": (spec.get("criteria") or {}).get("match", "all"),
        "rules": [
            {
                "property": r.get("property", ""),
                "op": r.get("op", "equal"),
                "value": r.get("value") or "",
                "days": "" if r.get("days") is None else str(r["days"]),
            }
            for r in (spec.get("criteria") or {}).get("rules", [])
        ],
        "default_language": spec.get("default_language") or "",
        "sched_type": sched.get("type", "immediate"),
        "time": events[0].get("time") or "",
        "day": str(events[0].get("day") or 0),
        "time_property": events[0].get("time_property") or "",
        "repeat_unit": repeat.get("unit", "once"),
        "repeat_interval": str(repeat.get("interval", 1)),
        "weekdays": [str(d) for d in repeat.get("weekdays", [])],
        "day_of_month": "" if repeat.get("day_of_month") is None else str(repeat["day_of_month"]),
        "iterations": _iter_text(
            repeat.get("iterations", 1)
            if sched.get("type") == "timed"
            else sched.get("iterations", 1)
        ),
        "waits": ", ".join(str(e.get("wait_minutes", 0)) for e in events)
        if sched.get("type") == "alert"
        else "0",
        "start_from": start.get("from", "match"),
        "start_date": start.get("date") or "",
        "start_property": start.get("property") or "",
        "relative": [r["type"] for r in recipients if r.get("type") in dict(RELATIVE)],
        "case_groups": ", ".join(
            r.get("case_type") or "" for r in recipients if r.get("type") == "case_group"
        ),
        "workers": ", ".join(r.get("id") or "" for r in recipients if r.get("type") == "worker"),
        "user_groups": ", ".join(
            r.get("id") or "" for r in recipients if r.get("type") == "user_group"
        ),
        "cases": ", ".join(r.get("id") or "" for r in recipients if r.get("type") == "case"),
        "content_type": content.get("type") or "message",
        "survey_id": str(content.get("survey_id") or ""),
        "sms": dict(content.get("sms") or {}),
        "subject": dict(email.get("subject") or {}),
        "body": dict(email.get("body") or {}),
        "stop_property": spec.get("stop_property") or "",
        "reset_property": spec.get("reset_property") or "",
        "late_limit_hours": str(spec.get("late_limit_hours", 48)),
    }
    return v


def _iter_text(value: Any) -> str:
    return "" if value is None else str(value)


def form_from_post(post: QueryDict, langs: list[str]) -> dict[str, Any]:
    """The form's values as the user typed them (kept on a validation error)."""
    v: dict[str, Any] = {
        k: post.get(k, "").strip()
        for k in [
            "name",
            "kind",
            "channel",
            "case_type",
            "match",
            "default_language",
            "sched_type",
            "time",
            "day",
            "time_property",
            "repeat_unit",
            "repeat_interval",
            "day_of_month",
            "iterations",
            "waits",
            "start_from",
            "start_date",
            "start_property",
            "case_groups",
            "workers",
            "user_groups",
            "cases",
            "stop_property",
            "reset_property",
            "late_limit_hours",
            "content_type",
            "survey_id",
        ]
    }
    v["weekdays"] = post.getlist("weekdays")
    v["relative"] = post.getlist("relative")
    rules = []
    count = int(post.get("rule_count", "0") or 0)
    for i in range(min(count, 60)):
        rule = {
            k: post.get(f"rule-{i}-{k}", "").strip() for k in ("property", "op", "value", "days")
        }
        if rule["property"]:
            rules.append(rule)
    v["rules"] = rules
    v["sms"] = {lang: post.get(f"sms-{lang}", "") for lang in langs}
    v["subject"] = {lang: post.get(f"subject-{lang}", "") for lang in langs}
    v["body"] = {lang: post.get(f"body-{lang}", "") for lang in langs}
    return v


def _int(value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise CasereachError(f"{what}: enter a whole number") from None


def _split(value: str) -> list[str]:
    return [p.strip() for p in value.split(",") if p.strip()]


def spec_from_form(v: dict[str, Any]) -> dict[str, Any]:
    """The alert body the API takes, from the form's values."""
    spec: dict[str, Any] = {"name": v["name"], "kind": v["kind"] or "conditional"}
    spec["channel"] = v["channel"] or "sms"
    if v.get("content_type") == "survey":
        if not v.get("survey_id"):
            raise CasereachError("invalid alert: content.survey_id: choose a survey")
        spec["content"] = {"type": "survey", "survey_id": _int(v["survey_id"], "content.survey_id")}
    elif spec["channel"] == "email":
        spec["content"] = {
            "email": {
                "subject": {k: t for k, t in v["subject"].items() if t.strip()},
                "body": {k: t for k, t in v["body"].items() if t.strip()},
            }
        }
    else:
        spec["content"] = {"sms": {k: t for k, t in v["sms"].items() if t.strip()}}
    if v["default_language"]:
        spec["default_language"] = v["default_language"]
    if spec["kind"] == "conditional":
        spec["case_type"] = v["case_type"]
        rules = []
        for r in v["rules"]:
            rule: dict[str, Any] = {"property": r["property"], "op": r["op"] or "equal"}
            if r["op"] in ("equal", "not_equal", "regex"):
                rule["value"] = r["value"]
            if r["op"] in ("days_after", "days_before"):
                rule["days"] = _int(r["days"] or "0", f"criteria: days for {r['property']}")
            rules.append(rule)
        spec["criteria"] = {"match": v["match"] or "all", "rules": rules}
    stype = v["sched_type"] or "immediate"
    start: dict[str, Any] = {"from": v["start_from"] or "match"}
    if start["from"] == "date":
        start["date"] = v["start_date"] or None
    if start["from"] == "property":
        start["property"] = v["start_property"]
    iterations = None if v["iterations"] == "" else _int(v["iterations"], "schedule: repeat count")
    if stype == "timed":
        event: dict[str, Any] = {"day": _int(v["day"] or "0", "schedule: day")}
        if v["time_property"]:
            event["time_property"] = v["time_property"]
        else:
            event["time"] = v["time"] or None
        repeat: dict[str, Any] = {
            "unit": v["repeat_unit"] or "once",
            "interval": _int(v["repeat_interval"] or "1", "schedule: every"),
            "iterations": iterations,
        }
        if repeat["unit"] == "weeks" and v["weekdays"]:
            repeat["weekdays"] = [_int(d, "schedule: weekday") for d in v["weekdays"]]
        if repeat["unit"] == "months" and v["day_of_month"]:
            repeat["day_of_month"] = _int(v["day_of_month"], "schedule: day of the month")
        spec["schedule"] = {"type": "timed", "events": [event], "repeat": repeat, "start": start}
    elif stype == "alert":
        waits = [_int(w, "schedule: wait minutes") for w in _split(v["waits"] or "0")]
        spec["schedule"] = {
            "type": "alert",
            "events": [{"wait_minutes": w} for w in waits],
            "iterations": iterations,
            "start": start,
        }
    else:
        spec["schedule"] = {"type": "immediate"}
    recipients: list[dict[str, Any]] = [{"type": t} for t in v["relative"]]
    recipients += [{"type": "case_group", "case_type": t} for t in _split(v["case_groups"])]
    recipients += [{"type": "worker", "id": t} for t in _split(v["workers"])]
    recipients += [{"type": "user_group", "id": t} for t in _split(v["user_groups"])]
    recipients += [{"type": "case", "id": t} for t in _split(v["cases"])]
    spec["recipients"] = recipients
    for key in ("stop_property", "reset_property"):
        if v[key]:
            spec[key] = v[key]
    if v["late_limit_hours"]:
        spec["late_limit_hours"] = _int(v["late_limit_hours"], "late limit hours")
    return spec


def _section(message: str) -> str:
    """Which part of the form an error message is about."""
    text = message.removeprefix("invalid alert: ")
    for prefix, section in (
        ("name", "name"),
        ("content", "content"),
        ("criteria", "criteria"),
        ("case_type", "criteria"),
        ("schedule", "schedule"),
        ("recipients", "recipients"),
    ):
        if text.startswith(prefix):
            return section
    return "form"


def _estimates(v: dict[str, Any], langs: list[str]) -> tuple[list[dict[str, Any]], str | None]:
    texts = v["body"] if v.get("channel") == "email" else v["sms"]
    try:
        rows = [
            {
                "language": e.language,
                "characters": e.characters,
                "encoding": e.encoding,
                "segments": e.segments,
                "missing": not texts.get(e.language, "").strip(),
            }
            for e in estimate({lang: texts.get(lang, "") for lang in langs})
        ]
    except TemplateError as exc:
        return [], exc.message
    return rows, None


def _form_page(
    request: HttpRequest,
    project: Project,
    alert: Alert | None,
    v: dict[str, Any],
    error: str | None,
) -> HttpResponse:
    texts = v["body"] if v.get("channel") == "email" else v["sms"]
    langs = _languages(project, texts)
    estimates, template_error = _estimates(v, langs)
    rules = list(v["rules"]) + [
        {"property": "", "op": "equal", "value": "", "days": ""} for _ in range(RULE_ROWS)
    ]
    types = case_types(project)
    return render(
        request,
        "web/alert_form.html",
        {
            "project": project,
            "alert": alert,
            "v": v,
            "langs": langs,
            "translations": [
                {
                    "lang": lang,
                    "sms": v["sms"].get(lang, ""),
                    "subject": v["subject"].get(lang, ""),
                    "body": v["body"].get(lang, ""),
                    "missing": not texts.get(lang, "").strip(),
                }
                for lang in langs
            ],
            "rules": rules,
            "rule_count": len(rules),
            "ops": OPS,
            "relative": RELATIVE,
            "weekdays": list(enumerate(WEEKDAYS)),
            "units": UNITS,
            "case_types": types,
            "surveys": survey_choices(project, v.get("survey_id") or ""),
            "estimates": estimates,
            "template_error": template_error,
            "error": error,
            "error_section": _section(error) if error else None,
            "nav": "alerts",
        },
        status=400 if error else 200,
    )


@project_page(get=Role.VIEWER)
def alerts(request: HttpRequest, project: Project) -> HttpResponse:
    rows = [serialize_alert(a, full=False) for a in project_alerts(project, newest_first=True)]
    return render(request, "web/alerts.html", {"project": project, "rows": rows, "nav": "alerts"})


@project_page(get=Role.MEMBER)
def alert_new(request: HttpRequest, project: Project) -> HttpResponse:
    langs = _languages(project)
    if request.method == "POST":
        v = form_from_post(request.POST, langs)
        try:
            alert = do_create_alert(project, spec_from_form(v))
        except CasereachError as exc:
            return _form_page(request, project, None, v, exc.message)
        return HttpResponseRedirect(reverse("web:alert", args=[project.name, alert.pk]))
    kind = request.GET.get("kind", "conditional")
    v = form_from_spec(
        {
            "kind": kind if kind in ("broadcast", "conditional") else "conditional",
            "schedule": {"type": "timed", "events": [{"day": 0, "time": "09:00"}]},
            "recipients": [{"type": "self"}],
        }
    )
    return _form_page(request, project, None, v, None)


def _alert(project: Project, alert_id: int) -> Alert:
    try:
        return get_alert(project, alert_id)
    except CasereachError:
        raise Http404("no such alert") from None


@project_page(get=Role.MEMBER)
def alert_edit(request: HttpRequest, project: Project, alert_id: int) -> HttpResponse:
    alert = _alert(project, alert_id)
    if request.method == "POST":
        v = form_from_post(
            request.POST, _languages(project, alert.spec.get("content", {}).get("sms"))
        )
        try:
            do_update_alert(alert, spec_from_form(v))
        except CasereachError as exc:
            return _form_page(request, project, alert, v, exc.message)
        return HttpResponseRedirect(reverse("web:alert", args=[project.name, alert.pk]))
    return _form_page(request, project, alert, form_from_spec(alert.spec), None)


@project_page(get=Role.MEMBER)
def alert_estimate(request: HttpRequest, project: Project) -> HttpResponse:
    """The segment/encoding estimate of the texts being typed (an htmx partial)."""
    v = form_from_post(request.POST, _languages(project))
    langs = _languages(project, v["sms"])
    estimates, template_error = _estimates(v, langs)
    return render(
        request,
        "web/alert_estimates.html",
        {"estimates": estimates, "template_error": template_error, "oob": True},
    )


@project_page(get=Role.VIEWER)
def alert_detail(request: HttpRequest, project: Project, alert_id: int) -> HttpResponse:
    alert = _alert(project, alert_id)
    chosen = request.GET.get("preview", "")
    shown = preview(project, alert, chosen) if chosen else None
    choices = case_choices(project, alert.case_type, 200)
    try:
        days = min(90, max(1, int(request.GET.get("days", "14"))))
    except ValueError:
        days = 14
    result = dry_run(alert, days)
    chart = stacked_bars(
        "Messages per day if activated now",
        [d["date"] for d in result["per_day"]],
        {"messages": [d["messages"] for d in result["per_day"]]},
        ["messages"],
    )
    shown_alert = serialize_alert(alert)
    return render(
        request,
        "web/alert_detail.html",
        {
            "project": project,
            "alert": shown_alert,
            "texts": _texts(shown_alert),
            "dry": result,
            "days": days,
            "chart": chart,
            "preview": shown,
            "preview_id": chosen,
            "preview_choices": choices,
            "nav": "alerts",
        },
    )


def _texts(shown: dict[str, Any]) -> list[dict[str, Any]]:
    """The alert's message in each language (subject and body for email), with its estimate;
    the languages of the project that have no text are listed as missing."""
    content = shown.get("content") or {}
    email = content.get("email") or {}
    bodies: dict[str, str] = email.get("body") or content.get("sms") or {}
    subjects: dict[str, str] = email.get("subject") or {}
    estimates = {e["language"]: e for e in shown.get("estimates", [])}
    languages = [
        *estimates,
        *(m for m in shown.get("missing_translations", []) if m not in estimates),
    ]
    return [
        {
            "language": lang,
            "subject": subjects.get(lang, ""),
            "text": bodies.get(lang, ""),
            "estimate": estimates.get(lang),
            "missing": not (bodies.get(lang) or "").strip(),
        }
        for lang in languages
    ]


@project_page(get=Role.VIEWER, post=Role.MEMBER)
def alert_status(request: HttpRequest, project: Project, alert_id: int) -> HttpResponse:
    """Activate, deactivate (POST) or show the re-evaluation progress (GET); htmx partial."""
    alert = _alert(project, alert_id)
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "activate":
            alert = do_activate(alert)
        elif action == "deactivate":
            alert = do_deactivate(alert)
        if not request.headers.get("HX-Request"):
            return HttpResponseRedirect(reverse("web:alert", args=[project.name, alert.pk]))
    return render(
        request,
        "web/alert_status.html",
        {"project": project, "alert": serialize_alert(alert, full=False)},
    )
