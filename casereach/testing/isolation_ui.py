"""Every UI page and form, as B's logged-in user, with A's ids, names and numbers: on B's
prefix (``/a/B/contacts/<A's case id>``) and on A's (``/a/A/…``)."""

from __future__ import annotations

from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import resolve

from casereach.testing.isolation_api import inbound_texts
from casereach.testing.survey_form import survey_form_data
from casereach.testing.surveys import survey_body
from casereach.testing.tenants import Tenant
from casereach.testing.walker import Walker

Page = tuple[str, dict[str, str] | None]  # path under /a/<project>/, query


def pages(a: Tenant) -> list[Page]:
    n = a.numbers["mother"]
    alert = a.alert_ids[0]
    return [
        ("", None),
        ("cases", {"q": a.case_names[0]}),
        ("cases", {"owner": a.owner_ids[0], "state": "all"}),
        ("cases", {"q": a.external_ids[0]}),
        (f"contacts/{a.case_ids['mother']}", None),
        (f"contacts/{a.worker_ids[0]}", None),
        ("phone-numbers", {"number": n}),
        (f"phone-numbers/{n}/transfer", {"contact_id": a.case_ids["mother"]}),
        ("messages", {"contact_id": a.case_ids["mother"]}),
        ("messages", {"phone_number": n, "format": "csv"}),
        ("messages", {"gateway": a.gateway_names()[0], "alert": str(alert)}),
        ("test-phone", {"number": n}),
        ("test-phone/conversation", {"number": n}),
        ("import", None),
        ("import/errors.csv", None),
        ("import/progress", None),
        ("alerts", None),
        ("alerts/new", None),
        (f"alerts/{alert}", {"preview": a.case_ids["mother"]}),
        (f"alerts/{a.alert_ids[1]}", None),
        (f"alerts/{alert}/edit", None),
        (f"alerts/{alert}/status", None),
        ("surveys", None),
        ("surveys/new", None),
        ("surveys/preview", None),
        ("surveys/segments", None),
        *((f"surveys/{i}/edit", None) for i in a.survey_ids),
        *((f"surveys/{i}/sessions", {"status": "active"}) for i in a.survey_ids),
        *((f"survey-sessions/{i}", None) for i in a.session_ids),
        ("settings", None),
        ("connect", None),
        ("gateways", None),
        ("gateways/new", {"type": "http"}),
        *((f"gateways/{g}", None) for g in a.gateway_ids()),
    ]


def _alert_form(a: Tenant) -> dict[str, str]:
    return {
        "name": "B alert to A",
        "kind": "broadcast",
        "channel": "sms",
        "sched_type": "immediate",
        "cases": a.case_ids["mother"],
        "workers": a.worker_ids[0],
        "sms-en": "from B",
        "rule_count": "0",
    }


def _survey_form(b: Tenant, name: str | None = None) -> dict[str, str]:
    body = survey_body(name=name or f"{b.tag} survey")
    return survey_form_data(body, ["en", "sw"])


def forms(a: Tenant, b: Tenant, w: Walker) -> list[tuple[str, dict[str, Any]]]:
    n = a.numbers["mother"]
    csv = (
        "case_id,external_id,case_type,case_name,owner_id,contact_phone_number,"
        "contact_phone_number_is_verified\n"
        f"{a.case_ids['mother']},,mother,taken,b,{n},1\n"
        f",{a.external_ids[1]},patient,taken,b,{a.numbers['patient']},1\n"
    ).encode()
    out: list[tuple[str, dict[str, Any]]] = [
        *(
            ("test-phone", {"from": a.numbers[role], "text": text})
            for role in ("mother", "stopped", "admin_out")
            for text in inbound_texts(a)
        ),
        *(
            (f"phone-numbers/{a.numbers[role]}/transfer", {"contact_id": c, "confirm": "yes"})
            for role in ("mother", "stopped")
            for c in [a.case_ids["mother"], *w.results.get("b_cases", [])]
        ),
        ("settings", {"daily_limit": "1", "default_country": "KE"}),
        ("connect", {"action": "save", "url": "http://127.0.0.1:9", "domain": a.name}),
        ("connect", {"action": "create_key"}),
        *(("connect", {"action": "retry", "write_id": str(i)}) for i in range(1, 4)),
        (
            "gateways",
            {
                "form": "routes",
                "default_gateway": a.gateway_names()[0],
                "prefixes": f"2547 {a.gateway_names()[1]}",
            },
        ),
        ("gateways", {"form": "test", "number": n, "text": "hi", "gateway": a.gateway_names()[0]}),
        (
            "gateways/new",
            {"type": "test", "name": a.wanted_gateway, "is_active": "on", "shared_with": a.name},
        ),
        *((f"gateways/{g}", {"name": "taken", "is_active": ""}) for g in a.gateway_ids()),
        ("alerts/new", _alert_form(a)),
        ("alerts/estimate", _alert_form(a)),
        *((f"alerts/{i}/edit", {**_alert_form(a), "name": "taken"}) for i in a.alert_ids),
        *((f"alerts/{i}/status", {"action": "deactivate"}) for i in a.alert_ids),
        ("surveys/new", _survey_form(b)),
        ("surveys/preview", {**_survey_form(b), "preview_replies": "1\n2"}),
        ("surveys/segments", {"text": "from B"}),
        *((f"surveys/{i}/edit", _survey_form(b, "taken")) for i in a.survey_ids),
        *((f"survey-sessions/{i}", {"action": "cancel"}) for i in a.session_ids),
        *(
            (page, {"action": "start_survey", "from": n, "survey": str(survey)})
            for page in (f"contacts/{a.case_ids['mother']}", "test-phone")
            for survey in [*a.survey_ids, *b.survey_ids]
        ),
        (
            "import",
            {"file": SimpleUploadedFile("cases.csv", csv, "text/csv"), "case_type": "patient"},
        ),
    ]
    return out


def walk_ui(w: Walker) -> set[str]:
    """Every page and form on B's prefix and on A's; the URL names walked."""
    a, b = w.a, w.b
    names: set[str] = set()
    for path in ("/", "/login", "/favicon.ico"):
        w.call("session", "GET", path, query={"pick": "1"} if path == "/" else None)
        names.add(resolve(path).url_name or path)
    for prefix in (b.name, a.name):
        for sub, query in pages(a):
            path = f"/a/{prefix}/{sub}"
            w.call("session", "GET", path, query=query)
            names.add(resolve(path).url_name or path)
        for sub, form in forms(a, b, w):
            path = f"/a/{prefix}/{sub}"
            fresh = {k: _fresh(v) for k, v in form.items()}
            w.call("session", "POST", path, form=fresh)
            names.add(resolve(path).url_name or path)
    names |= walk_sysadmin(w)
    w.call("session", "POST", "/logout", form={})
    names.add("logout")
    return names


def walk_sysadmin(w: Walker) -> set[str]:
    """The system administrator's pages and forms, as B's admin (no superuser): each a 403."""
    a = w.a
    gid = str(a.gateway_ids()[0])
    requests: list[tuple[str, str, dict[str, str] | None]] = [
        ("GET", "/sysadmin/gateways", None),
        ("GET", "/sysadmin/gateways/new", {"type": "http"}),
        ("GET", f"/sysadmin/gateways/{gid}", None),
        (
            "POST",
            "/sysadmin/gateways",
            {"form": "routes", "default_gateway": a.gateway_names()[0], "prefixes": ""},
        ),
        ("POST", "/sysadmin/gateways", {"form": "delete", "gateway": gid}),
        ("POST", "/sysadmin/gateways/new", {"type": "test", "name": a.wanted_gateway}),
        ("POST", f"/sysadmin/gateways/{gid}", {"name": "taken", "is_active": ""}),
    ]
    names: set[str] = set()
    for method, path, data in requests:
        if method == "GET":
            r = w.call("session", method, path, query=data)
        else:
            r = w.call("session", method, path, form=data)
        if r.status != 403:
            w.results.setdefault("admin_not_refused", []).append(r.line())
        names.add(resolve(path).url_name or path)
    return names


def _fresh(value: object) -> object:
    """An upload can be read once: a new one for every request."""
    if isinstance(value, SimpleUploadedFile):
        value.seek(0)
        return SimpleUploadedFile(
            value.name or "upload.csv", value.read(), value.content_type or "text/csv"
        )
    return value
