"""A conversation holding a number (SMS surveys plug in this way) takes the messages of that
number before the keywords, takes HELP, and hears of STOP after the opt-out
(``messaging.inbound_conversations``)."""

from __future__ import annotations

from typing import Any

import pytest

from casereach.messaging import inbound_conversations
from casereach.messaging.inbound_replies import Ctx, reply
from casereach.messaging.models import Message, OptOut
from casereach.testing.cases import create_case_id as case
from casereach.testing.gateways import create_gateway as gateway
from casereach.testing.gateways import post_inbound as inbound
from casereach.testing.world import Api

M = "/a/{project}/api/messaging/v1/"
NUMBER = "254712345678"


class Survey:
    """A fake conversation holding NUMBER: answers anything but "skip", records what it heard."""

    def __init__(self) -> None:
        self.heard: list[tuple[str, str]] = []

    def __call__(self, ctx: Ctx, happening: str) -> str | None:
        self.heard.append((happening, ctx.msg.text))
        if ctx.msg.phone_number != NUMBER or ctx.msg.text == "skip":
            return None
        if happening == "stop":
            return None
        reply(ctx, "survey", {"en": f"Q1 ({happening})"}, None)
        return "survey_help" if happening == "help" else "survey_answer"


@pytest.fixture
def survey(monkeypatch: pytest.MonkeyPatch) -> Survey:
    hook = Survey()
    monkeypatch.setattr(inbound_conversations, "CONVERSATION_HOOKS", [hook])
    return hook


@pytest.fixture
def gw(api: Api) -> dict[str, Any]:
    g = gateway(api)
    assert 200 == api.put(M + "routes", {"default_gateway": "TEST", "prefixes": []}).status
    return g


def last_inbound() -> Message:
    found = Message.objects.filter(direction="in").order_by("-created_on", "-id").first()
    assert found is not None
    return found


def replies() -> list[str]:
    return list(
        Message.objects.filter(direction="out")
        .order_by("created_on", "id")
        .values_list("text", flat=True)
    )


def test_an_answer_is_taken_before_the_project_keywords(
    api: Api, gw: dict[str, Any], survey: Survey
) -> None:
    case(api, phone=NUMBER, verified="yes")
    r = api.post(M + "keywords", {"keyword": "WEIGHT", "reply": {"en": "Weight noted"}})
    assert 201 == r.status, r.body

    inbound(gw, "WEIGHT 3")

    assert "survey_answer" == last_inbound().inbound_action
    assert ["Q1 (message)"] == replies()
    assert [("message", "WEIGHT 3")] == survey.heard


def test_help_resends_the_question_instead_of_the_help_text(
    api: Api, gw: dict[str, Any], survey: Survey
) -> None:
    case(api, phone=NUMBER, verified="yes")

    inbound(gw, "HELP")

    assert "survey_help" == last_inbound().inbound_action
    assert ["Q1 (help)"] == replies()


def test_stop_opts_out_and_ends_the_conversation(
    api: Api, gw: dict[str, Any], survey: Survey
) -> None:
    case(api, phone=NUMBER, verified="yes")

    inbound(gw, "STOP")

    assert "opt_out" == last_inbound().inbound_action
    assert OptOut.objects.get(phone_number=NUMBER).opted_out
    assert [("stop", "STOP")] == survey.heard


def test_a_message_no_conversation_takes_goes_on_as_before(
    api: Api, gw: dict[str, Any], survey: Survey
) -> None:
    case(api, phone=NUMBER, verified="yes")
    r = api.call("PATCH", M + "settings", {"default_inbound_response": {"en": "Thanks"}})
    assert 200 == r.status, r.body

    inbound(gw, "skip")

    assert "default_response" == last_inbound().inbound_action
    assert ["Thanks"] == replies()
