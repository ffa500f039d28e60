"""Schemathesis over our OpenAPI document, through the WSGI app, with the project's API key.

- Stateless: every operation of the document, a bounded number of positive and negative
  examples each; every answer is no 5xx, has a documented status code and content type, and
  fits its documented schema.
- Stateful: scenarios that follow the document's links (create → read / update / delete), the
  same checks at every step.

A fixed seed (derandomize) makes the stateless run reproducible; the stateful one is only
bounded (schemathesis picks some of its steps with true randomness). The bounds keep the whole
file inside CI's time budget. Run with ``-s`` to see the counts.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from django.test import Client
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.generation.stateful.state_machine import APIStateMachine
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from casereach.api.links import LINKS
from casereach.gateways.types.twilio.gateway import twilio_signature
from casereach.messaging.models import Message
from casereach.projects import auth
from casereach.testing.gateways import create_gateway
from casereach.testing.surveys import survey_body
from casereach.testing.world import Api, case_body, conditional_alert_body
from casereach.wsgi import application

M = "/a/{project}/api/messaging/v1"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = 10  # per operation and generation mode
SCENARIOS = 10  # per stateful run
STEPS = 8  # at most, per scenario
NUMBER = "254712345678"


def bounded(max_examples: int, **kw: Any) -> settings:
    return settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
        **kw,
    )


@dataclass
class Tally:
    """What a run sent and what came back."""

    operations: set[str] = field(default_factory=set)
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    linked: collections.Counter[str] = field(default_factory=collections.Counter)

    def record(self, case: schemathesis.Case, status: int) -> None:
        self.operations.add(case.operation.label)
        self.statuses[status] += 1

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    def summary(self, name: str) -> str:
        codes = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items()))
        links = f", {sum(self.linked.values())} through links" if self.linked else ""
        return (
            f"schemathesis {name}: {len(self.operations)} operations, {self.requests} requests"
            f" ({codes}){links}, {self.server_errors} server errors"
        )


@pytest.fixture(autouse=True)
def no_throttles(monkeypatch: pytest.MonkeyPatch) -> None:
    """The run sends far more than the per-key rate, and its negative examples send many bad
    keys from one address: without this, a 429 would hide what the operation itself answers."""
    monkeypatch.setattr(auth, "BUCKET", auth._Bucket(rate=1e9, burst=1e9))
    monkeypatch.setattr(auth, "KEY_FAILURES", auth._KeyFailures(limit=10**9, window=1))


@pytest.fixture
def gateway(api: Api) -> dict[str, Any]:
    """The project's test gateway, so that sends succeed."""
    return create_gateway(api)


@pytest.fixture
def wsgi_schema(gateway: dict[str, Any]) -> Iterator[schemathesis.BaseSchema]:
    # Like Django's test client: keep the test transaction's connection open across requests
    # (and make no test-client request after this: it connects the handlers again).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/openapi.json", application)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def fixed_path(api: Api, path: str, gateway: dict[str, Any]) -> dict[str, Any]:
    """The path parameters every example keeps: the key's project, and a real inbound key
    for the provider webhooks (a random key only ever gets 401)."""
    if path.startswith("/gateways/"):
        return {"gateway_type": "test", "inbound_key": gateway["inbound_url"].split("/")[-2]}
    return {"project": api.project.name}


def test_stateless_run_over_every_operation(
    api: Api, gateway: dict[str, Any], wsgi_schema: schemathesis.BaseSchema
) -> None:
    operations = [result.ok() for result in wsgi_schema.get_all_operations()]
    tally = Tally()
    for operation, mode in itertools.product(operations, GenerationMode):
        strategy = operation.as_strategy(
            mode,
            path_parameters=fixed_path(api, operation.path, gateway),
            headers={"Authorization": api.auth},
        )

        @given(case=strategy)
        @bounded(EXAMPLES)
        def run(case: schemathesis.Case) -> None:
            response = case.call()
            tally.record(case, response.status_code)
            case.validate_response(response, checks=CHECKS)

        try:
            run()
        except Unsatisfiable:
            # Nothing of the operation can be made invalid (every parameter is fixed or any
            # string): there is no negative example to send.
            assert GenerationMode.NEGATIVE == mode, operation.label
    print("\n" + tally.summary("stateless"))
    documented = {
        f"{method.upper()} {path}"
        for path, item in wsgi_schema.raw_schema["paths"].items()
        for method in item
    }
    assert 62 <= len(documented)
    assert documented == tally.operations
    assert 0 == tally.server_errors
    assert 5 * len(documented) <= tally.requests
    assert {200, 201, 400, 404} <= set(tally.statuses)


# --- stateful ---------------------------------------------------------------------------------


def valid_bodies() -> dict[str, Callable[[int], Any]]:
    """For each operation that creates, a body it accepts (the n-th of them): random bodies
    seldom pass validation, and a chain needs something created to walk."""
    return {
        f"POST {M}/gateways": lambda n: {"name": f"gw-{n}", "type": "test"},
        f"POST {M}/keywords": lambda n: {"keyword": f"KW{n}", "reply": {"en": "Thanks"}},
        f"POST {M}/alerts": lambda n: conditional_alert_body(name=f"alert {n}"),
        "POST /a/{project}/api/surveys/v1/surveys": lambda n: survey_body(name=f"survey {n}"),
        "POST /a/{project}/api/surveys/v1/surveys/{survey_id}/preview": lambda n: {
            "replies": ["2", "1 3", str(n), "1/2/2027"][: n % 5]
        },
        f"POST {M}/send": lambda n: {"phone_number": NUMBER, "text": f"hello {n}"},
        f"POST {M}/send-batch": lambda n: {
            "messages": [{"phone_number": NUMBER, "text": f"hello {n}.{i}"} for i in range(3)]
        },
        "POST /a/{project}/api/case/v2/": lambda n: case_body(name=f"case {n}", phone=NUMBER),
        "PUT /a/{project}/api/case/v2/ext/{external_id}/": lambda n: case_body(name=f"ext {n}"),
        "POST /a/{project}/api/v0.5/user/": lambda n: {"username": f"w{n}", "password": "pw"},
    }


def scenarios(schema: schemathesis.BaseSchema, api: Api, tally: Tally) -> type[APIStateMachine]:
    """Schemathesis's state machine over ``schema``, as the project's key holder, counting in
    ``tally``; each scenario runs in a savepoint rolled back at its end, so that it starts from
    the same data whenever Hypothesis replays it."""
    bodies = valid_bodies()
    made = collections.Counter[str]()

    class Scenarios(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            made.clear()
            self.savepoint = transaction.atomic()
            self.savepoint.__enter__()

        def teardown(self) -> None:
            transaction.set_rollback(True)
            self.savepoint.__exit__(None, None, None)

        def step(self, input: Any) -> Any:
            if input.transition is not None and input.is_applied:
                tally.linked[input.transition.id] += 1
            return super().step(input)

        def before_call(self, case: schemathesis.Case) -> None:
            if case.path_parameters and "project" in case.path_parameters:
                case.path_parameters["project"] = api.project.name
            label = case.operation.label
            if label in bodies:
                made[label] += 1
                if made[label] % 2:  # every other one: half the creates stay fuzzed
                    case.body = bodies[label](made[label])

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"headers": {"Authorization": api.auth}}

        def validate_response(
            self, response: Any, case: schemathesis.Case, *args: Any, **kwargs: Any
        ) -> None:
            tally.record(case, response.status_code)
            case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs)

    return Scenarios


def test_stateful_runs_follow_every_link(api: Api, wsgi_schema: schemathesis.BaseSchema) -> None:
    """One run per creating operation, over it and the operations it links to (one run over
    all of them would seldom start from a create that has an unlinked id in its body, such
    as a case's owner_id or a send's contact_id)."""
    tally = Tally()
    for link in LINKS:
        chain = wsgi_schema.include(operation_id=[link.source, *link.targets])
        scenarios(chain, api, tally).run(settings=bounded(SCENARIOS, stateful_step_count=STEPS))
    print("\n" + tally.summary("stateful"))
    assert 0 == tally.server_errors
    assert len(LINKS) * SCENARIOS <= tally.requests
    # Transition ids read "<source> -> [<status>] <link name> -> <target>"; ours are named
    # after their target's operationId. Which links a run takes is partly random (schemathesis
    # draws some choices from true randomness), so each chain must only be walked.
    followed = collections.Counter(
        tid.split(" -> ")[1].split("] ")[1] for tid in tally.linked.elements()
    )
    for link in LINKS:
        assert sum(followed[target] for target in link.targets), (link.source, followed)
    assert 5 * len(LINKS) <= sum(tally.linked.values())


# --- Twilio signatures ------------------------------------------------------------------------


TWILIO_TOKEN = "t0k3n-0123456789abcdef0123456789ab"
TO = "+15550001111"


def flipped(text: str, at: int) -> str:
    """``text`` with the character at ``at`` replaced by another of the same alphabet."""
    char = text[at]
    other = "B" if char == "A" else "A"
    return text[:at] + other + text[at + 1 :]


def test_twilio_signature_tampering_is_403(api: Api) -> None:
    config = {
        "account_sid": "AC" + "0" * 32,
        "auth_token": TWILIO_TOKEN,
        "from_number": TO,
    }
    r = api.post(M + "/gateways", {"name": "TW", "type": "twilio", "config": config})
    assert 201 == r.status, r.body
    client = Client()
    for url, form in [
        (
            r.body["inbound_url"],
            {"MessageSid": "SM1", "From": "+" + NUMBER, "To": TO, "Body": "STOP"},
        ),
        (r.body["status_url"], {"MessageSid": "SM1", "MessageStatus": "delivered"}),
    ]:
        path = url.replace("http://testserver", "")
        good = twilio_signature(url, form, TWILIO_TOKEN)
        for at in range(len(good)):
            answer = client.post(path, form, HTTP_X_TWILIO_SIGNATURE=flipped(good, at))
            assert 403 == answer.status_code, (path, at)
        for name, value in form.items():
            tampered = {**form, name: flipped(value, len(value) - 1)}
            answer = client.post(path, tampered, HTTP_X_TWILIO_SIGNATURE=good)
            assert 403 == answer.status_code, (path, name)
        assert 0 == Message.objects.count()
    path = r.body["inbound_url"].replace("http://testserver", "")
    form = {"MessageSid": "SM1", "From": "+" + NUMBER, "To": TO, "Body": "hi"}
    good = twilio_signature(r.body["inbound_url"], form, TWILIO_TOKEN)
    assert 200 == client.post(path, form, HTTP_X_TWILIO_SIGNATURE=good).status_code
    assert 1 == Message.objects.count()
