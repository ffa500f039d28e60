"""Two tenants on one server for the cross-project isolation tests.

``build_tenant`` gives a project everything a real program has, through the same HTTP API
and web login its people use: an admin (web session and API key), cases and a child case
with phone numbers and emails, a mobile worker, a test and an http gateway, a keyword, a
broadcast and a conditional alert, messages in the log (sent, received, a keyword run), an
opt-out by the person and one by the admin, and the phone-number entries these make.

Every row a tenant owns gets an id from its own range (``start_ids_at``), so an integer in
a response can be told apart from a count or a page size: 7,310,001+ is A's, 9,520,001+ B's.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.apps import apps
from django.db import connection, models
from django.test import Client

from casereach.core.timeutil import now
from casereach.projects.actions import do_create_web_user
from casereach.projects.models import Project, Role
from casereach.testing.sending import drain
from casereach.testing.surveys import survey_body
from casereach.testing.world import Api, Response, conditional_alert_body, make_project

M = "/a/{project}/api/messaging/v1/"
SURVEYS = "/a/{project}/api/surveys/v1/surveys"
V2 = "/a/{project}/api/case/v2/"
USERS = "/a/{project}/api/v0.5/user/"
PASSWORD = "tenant-password-1"  # noqa: S105 (a test login)


def start_ids_at(first: int) -> None:
    """Make the next integer primary key of every table ``first`` or more."""
    tables = [
        (m._meta.db_table, m._meta.pk.column)
        for m in apps.get_models(include_auto_created=True)
        if isinstance(m._meta.pk, models.AutoField)  # BigAutoField and SmallAutoField too
    ]
    with connection.cursor() as cursor:
        for table, column in tables:
            if connection.vendor == "postgresql":
                cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [table, column])
                seq = cursor.fetchone()[0]
                if seq:
                    cursor.execute("SELECT setval(%s, %s, false)", [seq, first])
            else:
                cursor.execute("DELETE FROM sqlite_sequence WHERE name = %s", [table])
                cursor.execute(
                    "INSERT INTO sqlite_sequence (name, seq) VALUES (%s, %s)", [table, first - 1]
                )


def web_login(username: str, password: str) -> tuple[Client, str]:
    """A browser-like client (CSRF enforced) logged in through the login form, and the CSRF
    token its session now carries."""
    client = Client(enforce_csrf_checks=True)
    client.get("/login")
    token = client.cookies["csrftoken"].value
    response = client.post(
        "/login", {"username": username, "password": password, "csrfmiddlewaretoken": token}
    )
    assert 302 == response.status_code, response.content[:500]
    client.get("/")  # the CSRF token is rotated at login; a page sets the new one
    return client, client.cookies["csrftoken"].value


def ok(response: Response, *expected: int) -> Any:
    assert response.status in (expected or (200, 201, 202)), (response.status, response.body)
    return response.body


@dataclass
class Tenant:
    """One project and the identifying values of everything it holds."""

    tag: str
    project: Project
    api: Api
    admin: str
    web: Client
    csrf: str
    numbers: dict[str, str]  # role → number
    emails: list[str]
    case_ids: dict[str, str] = field(default_factory=dict)  # role → case id
    external_ids: list[str] = field(default_factory=list)
    case_names: list[str] = field(default_factory=list)
    owner_ids: list[str] = field(default_factory=list)
    worker_ids: list[str] = field(default_factory=list)
    worker_usernames: list[str] = field(default_factory=list)
    gateways: dict[str, dict[str, Any]] = field(default_factory=dict)  # type → API body
    keyword_ids: list[int] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    alert_ids: list[int] = field(default_factory=list)
    alert_names: list[str] = field(default_factory=list)
    survey_ids: list[int] = field(default_factory=list)
    session_ids: list[int] = field(default_factory=list)
    survey_names: list[str] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)
    fee_ids: list[int] = field(default_factory=list)  # a fee in use, one not yet
    rate_ids: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)  # phrases only this tenant's messages hold
    wanted_gateway: str = ""  # a gateway name a contact asks for that the project lacks

    @property
    def name(self) -> str:
        return self.project.name

    def gateway_ids(self) -> list[int]:
        return [int(g["id"]) for g in self.gateways.values()]

    def gateway_names(self) -> list[str]:
        return [str(g["name"]) for g in self.gateways.values()]

    def inbound_path(self, kind: str, which: str = "inbound_url") -> str:
        return urlsplit(str(self.gateways[kind][which])).path

    def inbound_keys(self) -> list[str]:
        return [self.inbound_path(k).split("/")[3] for k in self.gateways]

    def typable(self) -> set[str]:
        """Values another project may legitimately type into its own data (a number it
        texts, a gateway or worker name it picks): known to it once it has sent them."""
        return {
            self.name,
            self.admin,
            *self.numbers.values(),
            *self.emails,
            *self.external_ids,
            *self.owner_ids,
            *self.worker_usernames,
            *self.gateway_names(),
            *self.keywords,
        }

    def private(self) -> set[str]:
        """Values nobody outside the project can know unless it is shown them."""
        values = {
            self.api.key,
            *self.case_ids.values(),
            *self.case_names,
            *self.worker_ids,
            *self.alert_names,
            *self.survey_names,
            *self.message_ids,
            *self.texts,
            *self.inbound_keys(),
        }
        for gw in self.gateways.values():
            values.update(v for v in _strings(gw.get("config", {})) if len(v) >= 8 and "{" not in v)
        return {v for v in values if v}


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def build_tenant(tag: str, digits: str, first_id: int) -> Tenant:
    """A project named ``tag`` whose numbers are ``2547<digits>0<n>`` and whose rows have
    ids from ``first_id`` on."""
    start_ids_at(first_id)
    project = make_project(name=tag, time_zone="Africa/Nairobi", languages=["en", "sw"])
    admin = f"{tag}-admin"
    do_create_web_user(project, admin, PASSWORD, role=Role.ADMIN)
    web, csrf = web_login(admin, PASSWORD)
    numbers = {r: f"2547{digits}0{n}" for n, r in enumerate(("mother", "patient", "child"), 1)}
    numbers |= {"worker": f"2547{digits}07", "stopped": f"2547{digits}08", "admin_out": ""}
    numbers["admin_out"] = f"2547{digits}09"
    t = Tenant(
        tag=tag,
        project=project,
        api=Api(project, username=admin),
        admin=admin,
        web=web,
        csrf=csrf,
        numbers=numbers,
        emails=[f"{tag}.mother@{tag}-mail.example.org", f"{tag}.chw@{tag}-mail.example.org"],
        wanted_gateway=f"{tag.upper()}-WANTED",
    )
    _add_gateways(t)
    _add_cases(t)
    _add_worker_keyword_and_alerts(t)
    _add_traffic(t)
    return t


def _call(t: Tenant, method: str, path: str, body: Any = None, *expected: int, **q: Any) -> Any:
    return ok(t.api.call(method, path, body, **q), *expected)


def _add_gateways(t: Tenant) -> None:
    """A test gateway (the default, and the test phone's) and an http one."""
    tag, up = t.tag, t.tag.upper()
    test = _call(t, "POST", M + "gateways", {"name": f"{up}-TEST", "type": "test"}, 201)
    http_config = {
        "url": f"https://sms.{tag}-provider.example.org/send",
        "params": {"to": "{to}", "text": "{text}", "ref": "{message_id}"},
        "username": f"{tag}-provider-user",
        "password": f"{tag}-provider-password",
    }
    http = _call(
        t,
        "POST",
        M + "gateways",
        {"name": f"{up}-HTTP", "type": "http", "config": http_config},
        201,
    )
    t.gateways = {"test": test, "http": {**http, "config": http_config}}
    _call(t, "PATCH", M + "settings", {"default_gateway": f"{up}-TEST"}, 200)
    today = now().date()
    for day in (today, today + dt.timedelta(days=40)):
        fee = {"amount": "0.0123", "currency": "USD", "valid_from": day.isoformat()}
        t.fee_ids.append(_call(t, "POST", M + f"gateways/{test['id']}/fees", fee, 201)["id"])
    later = (today + dt.timedelta(days=40)).isoformat()
    rate = {"currency": "KES", "rate": "0.0077", "valid_from": later}
    t.rate_ids.append(_call(t, "POST", M + "conversion-rates", rate, 201)["id"])


def _add_case(t: Tenant, role: str, case_type: str, **props: str) -> str:
    tag = t.tag
    name = f"{tag.title()} {role.title()} Zawadi"
    body: dict[str, Any] = {
        "case_type": case_type,
        "case_name": name,
        "owner_id": f"{tag}-owner",
        "external_id": f"{tag}-ext-{role}",
        "properties": props,
    }
    if role == "child":
        body["indices"] = {
            "parent": {
                "case_id": t.case_ids["mother"],
                "case_type": "mother",
                "relationship": "child",
            }
        }
    created = _call(t, "POST", V2, body, 200, 201)["case"]
    t.case_ids[role] = created["case_id"]
    t.case_names.append(name)
    t.external_ids.append(f"{tag}-ext-{role}")
    return str(created["case_id"])


def _add_cases(t: Tenant) -> None:
    """A mother (two-way, email, a due date), a patient asking for a gateway the project
    lacks, a child of the mother (one-way), and people who opted out."""
    numbers, verified = t.numbers, {"contact_phone_number_is_verified": "1"}
    _add_case(
        t,
        "mother",
        "mother",
        contact_phone_number=numbers["mother"],
        commcare_email_address=t.emails[0],
        edd="2031-01-15",
        **verified,
    )
    _add_case(
        t,
        "patient",
        "patient",
        contact_phone_number=numbers["patient"],
        contact_backend_id=t.wanted_gateway,
        **verified,
    )
    _add_case(t, "child", "child", contact_phone_number=numbers["child"])
    _add_case(t, "stopped", "patient", contact_phone_number=numbers["stopped"], **verified)
    _add_case(t, "admin_out", "patient", contact_phone_number=numbers["admin_out"], **verified)
    t.owner_ids = [f"{t.tag}-owner"]


def _add_worker_keyword_and_alerts(t: Tenant) -> None:
    tag, up, numbers = t.tag, t.tag.upper(), t.numbers
    worker = _call(
        t,
        "POST",
        USERS,
        {
            "username": f"{tag}-chw",
            "password": "s3cret-pass",
            "first_name": f"{tag.title()}chw",
            "email": t.emails[1],
            "phone_numbers": [numbers["worker"]],
        },
        201,
    )
    t.worker_ids = [str(worker["id"])]
    t.worker_usernames = [f"{tag}-chw"]

    keyword = _call(
        t,
        "POST",
        M + "keywords",
        {
            "keyword": f"{up}WT",
            "reply": {"en": f"{tag} weight saved"},
            "fields": [{"property": "weight", "type": "decimal", "required": True}],
        },
        201,
    )
    t.keyword_ids = [int(keyword["id"])]
    t.keywords = [f"{up}WT"]

    broadcast = _call(
        t,
        "POST",
        M + "alerts",
        {
            "name": f"{tag}-broadcast-alert",
            "kind": "broadcast",
            "content": {"sms": {"en": f"{tag}-broadcast-text"}},
            "schedule": {"type": "immediate"},
            "recipients": [{"type": "case", "id": t.case_ids["mother"]}],
        },
        201,
    )
    conditional = _call(
        t, "POST", M + "alerts", conditional_alert_body(name=f"{tag}-conditional-alert"), 201
    )
    t.alert_ids = [int(broadcast["id"]), int(conditional["id"])]
    t.alert_names = [f"{tag}-broadcast-alert", f"{tag}-conditional-alert"]

    t.survey_names = [f"{tag}-survey"]
    survey = _call(t, "POST", SURVEYS, survey_body(name=t.survey_names[0]), 201)
    t.survey_ids = [int(survey["id"])]


def _add_traffic(t: Tenant) -> None:
    """Ad-hoc sends, a keyword run and a STOP through the test phone, an admin opt-out, a
    survey started for the mother; then the dispatcher sends what is due through the test
    gateway."""
    tag, up, numbers = t.tag, t.tag.upper(), t.numbers
    t.texts = [f"{tag}-broadcast-text", f"{tag}-adhoc-text", f"{tag}-worker-text"]
    _call(t, "POST", M + "send", {"contact_id": t.case_ids["mother"], "text": t.texts[1]}, 202)
    _call(t, "POST", M + "send", {"contact_id": t.worker_ids[0], "text": t.texts[2]}, 202)
    _call(t, "POST", M + "test-phone", {"from": numbers["patient"], "text": f"{up}WT 71"}, 201)
    _call(t, "POST", M + "test-phone", {"from": numbers["stopped"], "text": "STOP"}, 201)
    _call(t, "POST", M + "opt-outs", {"phone_number": numbers["admin_out"], "opted_out": True}, 200)
    started = _call(
        t, "POST", f"{SURVEYS}/{t.survey_ids[0]}/start", {"contact_id": t.case_ids["mother"]}, 201
    )
    t.session_ids = [int(started["id"])]
    drain(concurrency=1)
    t.message_ids = [m["id"] for m in _call(t, "GET", M + "messages", None, 200)["objects"]]
    events = _call(t, "GET", "/a/{project}/api/v0.5/messaging-event/", None, 200)["objects"]
    t.event_ids = [str(e["id"]) for e in events]


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)
