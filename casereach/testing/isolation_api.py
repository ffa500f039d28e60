"""Every operation of the OpenAPI document, called by B (API key, then web session) with A's
ids, names and numbers: first on B's own URL prefix, then on A's. Then B's test phone and
B's gateways' provider URLs with A's numbers and message ids, and a gateway B shares with A.

Bodies are written per operation (``BODIES``) so that each one is a real attempt: a case
update naming A's case id, a send to A's contact, a route to A's gateway. An operation the
catalogue does not know fails the walk, so a new endpoint cannot go unwalked.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

from casereach.testing.isolation_costs import COST_BODIES, COST_QUERIES, cost_paths, write_ids
from casereach.testing.surveys import survey_body
from casereach.testing.tenants import Tenant
from casereach.testing.walker import Walker

Op = tuple[str, str]  # (METHOD, path template)
Bodies = Callable[[Tenant, Tenant, Walker], list[Any]]

C2 = "/a/{project}/api/case/v2/"
MV = "/a/{project}/api/messaging/v1/"
V05 = "/a/{project}/api/v0.5/"
SV = "/a/{project}/api/surveys/v1/"
ADMIN = "/api/admin/v1/"  # the system administrator's: B's admin must get 403 on each
CB = "/gateways/{gateway_type}/{inbound_key}/"  # GET: Kannel; …/webhook: WhatsApp
CALLBACKS = {(m, CB + end) for m in ("POST", "GET") for end in ("status", "inbound", "webhook")}


# What B sends from A's numbers: opt-out words, opt-in words, A's keyword, self-registration
# into A, a worker verification reply, help.
def inbound_texts(a: Tenant) -> list[str]:
    return ["STOP", "START", "YES", f"{a.keywords[0]} 99", f"JOIN {a.name}", "123", "HELP"]


def path_values(a: Tenant) -> dict[str, list[str]]:
    """A's values for each path parameter name."""
    return {
        "case_id": [a.case_ids["mother"], f"{a.case_ids['patient']},{a.case_ids['child']}"],
        "external_id": [a.external_ids[0]],
        "gateway_id": [str(i) for i in a.gateway_ids()],
        "message_id": a.message_ids[:2],
        "event_id": a.event_ids[:2],
        "keyword_id": [str(i) for i in a.keyword_ids],
        "worker_id": a.worker_ids,
        "user_id": a.worker_ids,
        "alert_id": [str(i) for i in a.alert_ids],
        "survey_id": [str(i) for i in a.survey_ids],
        "session_id": [str(i) for i in a.session_ids],
        "contact_id": [a.case_ids["mother"], a.worker_ids[0]],
        "number": [a.numbers["mother"], a.numbers["stopped"]],
        "prefix": ["254", "2547"],
        "write_id": write_ids(a),
        **cost_paths(a),
    }


def query_values(a: Tenant) -> dict[str, str]:
    """A's value for each query parameter name that takes one."""
    return {
        "case_id": a.case_ids["mother"],
        "contact_id": a.case_ids["mother"],
        "phone_number": a.numbers["mother"],
        "contact_phone_number": a.numbers["mother"],
        "number": a.numbers["mother"],
        "email_address": a.emails[0],
        "external_id": a.external_ids[0],
        "owner_id": a.owner_ids[0],
        "user_id": a.worker_ids[0],
        "name": a.case_names[0],
        "case_name": a.case_names[0],
        "gateway": a.gateway_names()[0],
        "alert": str(a.alert_ids[0]),
    }


# Queries beyond the declared parameters (filters the document lists as free-form).
EXTRA_QUERIES: dict[Op, Callable[[Tenant], list[dict[str, str]]]] = {
    ("GET", C2): lambda a: [
        {"query": f"@case_id = '{a.case_ids['mother']}'"},
        {"indices.parent": a.case_ids["mother"]},
        {"properties.contact_phone_number": a.numbers["mother"]},
        {"external_id": a.external_ids[0]},
        {"case_name": a.case_names[0]},
        {"owner_id": a.owner_ids[0]},
    ],
    ("GET", MV + "messages"): lambda a: [
        {"contact_id": a.case_ids["mother"]},
        {"phone_number": a.numbers["mother"]},
        {"gateway": a.gateway_names()[0]},
        {"alert": str(a.alert_ids[0])},
        {"format": "csv", "phone_number": a.numbers["mother"]},
    ],
    ("GET", MV + "test-phone"): lambda a: [{"number": n} for n in a.numbers.values()],
    ("GET", SV + "survey-sessions"): lambda a: [
        {"contact_id": a.case_ids["mother"], "survey": str(a.survey_ids[0]), "status": "active"}
    ],
    ("GET", MV + "opt-outs"): lambda a: [{"format": "csv"}],
    **COST_QUERIES,
    ("GET", MV + "data-quality"): lambda a: [{"format": "csv"}],
    ("GET", MV + "phone-numbers"): lambda a: [{"number": n} for n in a.numbers.values()],
}


def _case_with(a: Tenant, b: Tenant, role: str, **extra: Any) -> dict[str, Any]:
    """A case of B's with A's number (B "knows" the number afterwards)."""
    return {
        "case_type": "patient",
        "case_name": f"{b.tag} copy of {role}",
        "owner_id": b.owner_ids[0],
        "properties": {
            "contact_phone_number": a.numbers[role],
            "contact_phone_number_is_verified": "1",
        },
        **extra,
    }


def _alert(a: Tenant, b: Tenant, **over: Any) -> dict[str, Any]:
    return {
        "name": f"{b.tag} alert to A",
        "kind": "broadcast",
        "content": {"sms": {"en": "from B"}},
        "schedule": {"type": "immediate"},
        "recipients": [
            {"type": "case", "id": a.case_ids["mother"]},
            {"type": "worker", "id": a.worker_ids[0]},
        ],
        **over,
    }


def _case_bodies(a: Tenant, b: Tenant, w: Walker) -> list[Any]:
    mother = a.case_ids["mother"]
    return [
        *(_case_with(a, b, role) for role in ("mother", "patient", "stopped", "admin_out")),
        _case_with(
            a,
            b,
            "child",
            external_id=a.external_ids[0],
            indices={"parent": {"case_id": mother, "case_type": "mother", "relationship": "child"}},
        ),
        {"case_id": mother, "case_type": "mother", "case_name": "taken", "owner_id": "b", **_P},
        [
            {"create": False, "case_id": mother, **_P},
            {"create": None, "external_id": a.external_ids[1], "case_type": "patient", **_P},
            {"create": False, "case_id": a.case_ids["patient"], "close": True},
        ],
    ]


_P = {"properties": {"weight": "1", "contact_phone_number": "0"}}


def _send_bodies(a: Tenant, b: Tenant, w: Walker) -> list[Any]:
    return [
        {"contact_id": a.case_ids["mother"], "text": "hi"},
        {"contact_id": a.worker_ids[0], "text": "hi"},
        {"phone_number": a.numbers["mother"], "text": "hi"},
        {"phone_number": a.numbers["stopped"], "text": "hi"},
        {"email_address": a.emails[0], "channel": "email", "content": _EMAIL},
        {"contact_id": a.case_ids["mother"], "channel": "email", "content": _EMAIL},
        {"phone_number": b.numbers["mother"], "text": "hi", "gateway": a.gateway_names()[0]},
        {"phone_number": b.numbers["mother"], "text": "hi", "gateway": a.gateway_names()[1]},
    ]


_EMAIL = {"email": {"subject": {"en": "s"}, "body": {"en": "b"}}}


def _gateway(b: Tenant, a: Tenant, name: str, kind: str) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "type": kind, "shared_with": [a.name]}
    if kind == "http":
        body["config"] = {
            "url": f"https://sms.{b.tag}-provider.example.org/send",
            "params": {"to": "{to}", "text": "{text}"},
        }
    return body


BODIES: dict[Op, Bodies] = {
    ("POST", C2): _case_bodies,
    ("PUT", C2): lambda a, b, w: [
        {"case_id": a.case_ids["mother"], **_P},
        {"external_id": a.external_ids[0], **_P},
        [{"case_id": a.case_ids["patient"], "close": True}],
    ],
    ("POST", C2 + "bulk-fetch/"): lambda a, b, w: [
        {"case_ids": list(a.case_ids.values()), "external_ids": a.external_ids}
    ],
    ("PUT", C2 + "ext/{external_id}/"): lambda a, b, w: [
        {"case_type": "mother", "case_name": "taken", "owner_id": "b", **_P},
        {"case_id": a.case_ids["mother"], **_P},
    ],
    ("PUT", C2 + "{case_id}"): lambda a, b, w: [
        {**_P, "case_name": "taken"},
        {"close": True},
        {"indices": {"parent": {"case_id": a.case_ids["child"], "case_type": "child"}}},
    ],
    ("POST", "/a/{project}/api/commcare/case-forwarding/"): lambda a, b, w: _forwarded(a, b),
    ("POST", "/a/{project}/receiver/"): lambda a, b, w: _forms(a, b),
    ("POST", "/a/{project}/sms/api/send_sms/"): lambda a, b, w: _send_sms_forms(a, b, w),
    ("POST", MV + "gateways"): lambda a, b, w: [
        _gateway(b, a, f"{b.tag.upper()}-SHARED", "http"),
        _gateway(b, a, a.wanted_gateway, "test"),
        _gateway(b, a, a.gateway_names()[0], "test"),
    ],
    ("PUT", MV + "gateways/{gateway_id}"): lambda a, b, w: [
        {**_gateway(b, a, f"{b.tag.upper()}-RENAMED", "test"), "is_active": False},
    ],
    ("PUT", MV + "routes"): lambda a, b, w: [
        {
            "default_gateway": a.gateway_names()[0],
            "prefixes": [{"prefix": "2547", "gateway": a.gateway_names()[1]}],
        },
        {"default_gateway": None, "prefixes": []},
    ],
    ("POST", MV + "send"): _send_bodies,
    ("POST", MV + "send-batch"): lambda a, b, w: [
        {"messages": _send_bodies(a, b, w)},
        *({"messages": [body]} for body in _send_bodies(a, b, w)),
    ],
    ("POST", MV + "test-phone"): lambda a, b, w: [
        *(
            {"from": a.numbers[role], "text": text}
            for role in ("mother", "patient", "stopped", "admin_out", "worker")
            for text in inbound_texts(a)
        ),
        {"from": a.numbers["stopped"], "text": "START", "gateway": a.gateway_names()[0]},
        {"from": a.numbers["mother"], "text": "STOP", "gateway": a.gateway_names()[0]},
    ],
    ("POST", MV + "opt-outs"): lambda a, b, w: [
        {"phone_number": a.numbers[role], "opted_out": out}
        for role in ("mother", "patient", "stopped", "admin_out", "worker")
        for out in (True, False)
    ],
    ("POST", MV + "keywords"): lambda a, b, w: [
        {"keyword": a.keywords[0], "reply": {"en": "B's"}},
    ],
    ("PUT", MV + "keywords/{keyword_id}"): lambda a, b, w: [
        {"keyword": f"{b.tag.upper()}X", "reply": {"en": "taken"}},
    ],
    ("PATCH", MV + "keywords/{keyword_id}"): lambda a, b, w: [{"reply": {"en": "taken"}}],
    ("POST", MV + "workers/{worker_id}/verify"): lambda a, b, w: [
        {"phone_number": a.numbers["worker"]},
        {},
    ],
    ("POST", MV + "alerts"): lambda a, b, w: [_alert(a, b)],
    ("PUT", MV + "alerts/{alert_id}"): lambda a, b, w: [_alert(a, b, name="taken")],
    ("PATCH", MV + "alerts/{alert_id}"): lambda a, b, w: [{"active": False}, {"name": "taken"}],
    # Surveys are addressed by id only: the attack is A's survey id in B's path.
    ("POST", SV + "surveys"): lambda a, b, w: [survey_body(name=f"{b.tag} survey")],
    ("PUT", SV + "surveys/{survey_id}"): lambda a, b, w: [
        survey_body(name="taken", active=False),
    ],
    ("POST", SV + "surveys/{survey_id}/start"): lambda a, b, w: [
        {"contact_id": c, "gateway": a.gateway_names()[0]}
        for c in (a.case_ids["mother"], a.worker_ids[0])
    ],
    ("POST", SV + "surveys/{survey_id}/preview"): lambda a, b, w: [
        {"replies": ["2", "1", "12", "1/1/2027"]},
        {"replies": []},
    ],
    ("POST", V05 + "user/"): lambda a, b, w: [
        {
            "username": a.worker_usernames[0],
            "password": "s3cret-pass",
            "email": a.emails[1],
            "phone_numbers": [a.numbers["worker"]],
            "verified_numbers": [a.numbers["worker"]],
        }
    ],
    ("PUT", V05 + "user/{user_id}/"): lambda a, b, w: [
        {"phone_numbers": [b.numbers["worker"]], "is_active": False, "email": "x@example.org"}
    ],
    ("POST", MV + "phone-numbers/{number}/transfer"): lambda a, b, w: [
        {"contact_id": a.case_ids["mother"]},
        *({"contact_id": c} for c in w.results.get("b_cases", [])),
    ],
    ("PUT", MV + "settings"): lambda a, b, w: [
        {"default_gateway": a.gateway_names()[0]},
        {"prefix_routes": {"2547": a.gateway_names()[1]}},
    ],
    ("PATCH", MV + "settings"): lambda a, b, w: [
        {"default_gateway": a.gateway_names()[0]},
        {"daily_limit": 1},
    ],
    **COST_BODIES,
    ("POST", ADMIN + "gateways"): lambda a, b, w: [
        {"name": f"{b.tag.upper()}-GLOBAL", "type": "test"},
        {"name": a.wanted_gateway, "type": "test"},
    ],
    ("PUT", ADMIN + "gateways/{gateway_id}"): lambda a, b, w: [
        {"name": f"{b.tag.upper()}-RENAMED", "is_active": False},
    ],
    ("PUT", ADMIN + "routes"): lambda a, b, w: [
        {
            "default_gateway": a.gateway_names()[0],
            "prefixes": [{"prefix": "2547", "gateway": a.gateway_names()[1]}],
        },
        {"default_gateway": None, "prefixes": []},
    ],
    ("PUT", ADMIN + "routes/default"): lambda a, b, w: [{"gateway": a.gateway_names()[0]}],
    ("PUT", ADMIN + "routes/prefixes/{prefix}"): lambda a, b, w: [
        {"gateway": a.gateway_names()[1]}
    ],
}


_CASE_NS = "http://commcarehq.org/case/transaction/v2"


def _forwarded(a: Tenant, b: Tenant) -> list[Any]:
    """HQ forwarding A's case ids into B (JSON; XML ones are in ``RAW``)."""
    return [
        {
            "case_id": a.case_ids[role],
            "closed": role == "patient",
            "server_date_modified": "2099-01-01T00:00:00.000000Z",
            "properties": {
                "case_name": "taken",
                "case_type": "mother",
                "owner_id": b.owner_ids[0],
                "contact_phone_number": a.numbers["mother"],
            },
            "indices": {"parent": {"case_id": a.case_ids["child"], "case_type": "child"}},
        }
        for role in ("mother", "patient")
    ] + [
        RawXml(_case_xml(a.case_ids["mother"], create=True, extra="<close/>")),
        RawXml(_case_xml(a.case_ids["child"], create=False)),
    ]


def _case_xml(case_id: str, *, create: bool, extra: str = "") -> str:
    create_xml = (
        "<create><case_type>mother</case_type><case_name>taken</case_name>"
        "<owner_id>b</owner_id></create>"
        if create
        else ""
    )
    return (
        f'<case xmlns="{_CASE_NS}" case_id="{case_id}">{create_xml}'
        f"<update><contact_phone_number>0</contact_phone_number></update>{extra}</case>"
    )


def _forms(a: Tenant, b: Tenant) -> list[Any]:
    """Forms (sent raw as XML) whose case blocks name A's cases."""
    mother = a.case_ids["mother"]
    blocks = [
        _case_xml(mother, create=False, extra="<close/>"),
        _case_xml(mother, create=True),
        _case_xml(
            f"{b.tag}-new",
            create=True,
            extra=f'<index><parent case_type="mother">{mother}</parent></index>',
        ),
    ]
    return [
        RawXml(f"<data><meta><instanceID>{b.tag}-{n}</instanceID></meta>{block}</data>")
        for n, block in enumerate(blocks)
    ] + [RawXml(_case_xml(a.case_ids["patient"], create=True, extra="<close/>"))]


class RawXml(str):
    """A body sent as it is, as text/xml (not as JSON)."""


class FormBody(dict[str, str]):
    """A body sent as a form (CommCare's send-SMS API), not as JSON."""


def _send_sms_forms(a: Tenant, b: Tenant, w: Walker) -> list[Any]:
    """HQ's send-SMS API naming A's contacts, numbers and gateways."""
    return [
        FormBody(contact_id=a.case_ids["mother"], text="hi"),
        FormBody(contact_id=a.worker_ids[0], text="hi"),
        FormBody(phone_number=a.numbers["mother"], text="hi"),
        FormBody(phone_number=a.numbers["stopped"], text="hi"),
        FormBody(phone_number=b.numbers["mother"], text="hi", backend_id=a.gateway_names()[0]),
        FormBody(phone_number=b.numbers["mother"], text="hi", backend_id=a.gateway_names()[1]),
    ]


def operations(schema: dict[str, Any]) -> list[tuple[Op, dict[str, Any]]]:
    return [
        ((method.upper(), path), op)
        for path, ops in schema["paths"].items()
        for method, op in ops.items()
    ]


def _requests(
    a: Tenant, b: Tenant, w: Walker, op: Op, spec: dict[str, Any]
) -> Iterator[tuple[str, dict[str, str] | None, Any]]:
    """(path with A's ids, query, body) for one operation, on B's prefix."""
    method, template = op
    params = [p for p in spec.get("parameters", []) if p["in"] == "path" and p["name"] != "project"]
    values = path_values(a)
    choices = [values[p["name"]] for p in params]
    paths = []
    for combo in itertools.product(*choices) if choices else [()]:
        path = template.replace("{project}", b.name)
        for p, v in zip(params, combo, strict=True):
            path = path.replace("{" + p["name"] + "}", v)
        paths.append(path)
    qvalues = query_values(a)
    queries: list[dict[str, str] | None] = [None]
    for p in spec.get("parameters", []):
        if p["in"] == "query" and p["name"] in qvalues:
            queries.append({p["name"]: qvalues[p["name"]]})
    if op in EXTRA_QUERIES:
        queries.extend(EXTRA_QUERIES[op](a))
    has_body = "requestBody" in spec
    if has_body and op not in BODIES:
        raise AssertionError(f"no attack bodies for {method} {template}: add them to BODIES")
    for path in paths:
        if has_body:
            for body in BODIES[op](a, b, w):
                yield path, None, body
        else:
            for query in queries if method == "GET" else [None]:
                yield path, query, None


def walk_api(w: Walker, schema: dict[str, Any]) -> set[Op]:
    """Every operation with B's key and B's session, on B's prefix and then on A's."""
    a, b = w.a, w.b
    covered: set[Op] = set()
    # First B "knows" A's numbers: cases of its own with them (kept for the transfer tries).
    for role in ("mother", "stopped"):
        r = w.call("key", "POST", C2.replace("{project}", b.name), body=_case_with(a, b, role))
        if r.status in (200, 201):
            w.results.setdefault("b_cases", []).append(_case_id(r.text))
    for prefix in (b.name, a.name):
        for op, spec in operations(schema):
            if op in CALLBACKS:
                continue
            for who in ("key", "session"):
                for path, query, body in _requests(a, b, w, op, spec):
                    path = path.replace(f"/a/{b.name}/", f"/a/{prefix}/", 1)
                    if isinstance(body, RawXml):
                        r = w.call(who, op[0], path, raw=str(body), content_type="text/xml")
                    elif isinstance(body, FormBody):
                        r = w.call(who, op[0], path, form=dict(body))
                    else:
                        r = w.call(who, op[0], path, query=query, body=body)
                    if op[1].startswith(ADMIN) and r.status != 403:
                        w.results.setdefault("admin_not_refused", []).append(r.line())
                    if op == ("POST", MV + "gateways") and r.status == 201:
                        w.results.setdefault("b_gateways", []).append(r.text)
                covered.add(op)
    covered |= walk_callbacks(w)
    return covered


def _case_id(text: str) -> str:
    return str(json.loads(text)["case"]["case_id"])


def walk_callbacks(w: Walker) -> set[Op]:
    """B's gateways' provider URLs (its own, and any it created in the walk, shared with A)
    receiving SMS from A's numbers and delivery reports for A's message ids."""
    a, b = w.a, w.b
    urls = [(str(g["inbound_url"]), str(g["status_url"])) for g in b.gateways.values()]
    for text in w.results.get("b_gateways", []):
        g = json.loads(text)
        if g.get("inbound_url"):
            urls.append((str(g["inbound_url"]), str(g.get("status_url", ""))))
    n = 0
    for inbound, status in urls:
        for role in ("mother", "patient", "stopped", "admin_out", "worker"):
            for text in inbound_texts(a):
                n += 1
                form = {"from": a.numbers[role], "to": "5550000", "text": text, "id": f"9{n}"}
                w.call("provider", "POST", urlsplit(inbound).path, form=form)
                w.call("provider", "GET", urlsplit(inbound).path, query=form)
        for m in ("GET", "POST"):  # B's keys on the WhatsApp webhook: 404 for SMS types
            w.call("provider", m, urlsplit(inbound).path.replace("/inbound", "/webhook"))
        if not status:
            continue
        for mid in a.message_ids:
            for word in ("delivered", "failed"):
                form = {"id": mid, "status": word, "code": "21610"}
                w.call("provider", "POST", urlsplit(status).path, form=form)
                w.call("provider", "GET", urlsplit(status).path, query=form)
    return set(CALLBACKS)
