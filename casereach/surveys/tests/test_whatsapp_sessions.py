"""Survey sessions on a WhatsApp gateway, against the local fake of Meta's Cloud API: a
single-select question goes out as reply buttons (≤ 3 choices) or a list (≤ 10, titles cut
to WhatsApp's limits), plain text beyond; a signed webhook tap answers it by its id, text
answers still work, the retry prompt and the re-ask are interactive too, and a tap on
another project's (another session's) button answers nothing."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from casereach.gateways.models import GatewayConfig
from casereach.messaging.models import Message
from casereach.surveys.sessions import run_due_sessions
from casereach.testing.cases import create_case_id as case
from casereach.testing.fake_whatsapp import FakeWhatsApp
from casereach.testing.sending import drain
from casereach.testing.world import Api

S = "/a/{project}/api/surveys/v1/surveys"
SESSIONS = "/a/{project}/api/surveys/v1/survey-sessions"
K = "/a/{project}/api/messaging/v1/keywords"
GATEWAYS = "/a/{project}/api/messaging/v1/gateways"
V2 = "/a/{project}/api/case/v2/"
NUMBER = "254712345678"
WAMIDS = itertools.count(1)


def texts(en: str, sw: str | None = None) -> dict[str, str]:
    return {"en": en, "sw": sw if sw is not None else en}


def choice(value: str, en: str) -> dict[str, Any]:
    return {"value": value, "label": texts(en)}


FEEL: dict[str, Any] = {
    "id": "feel",
    "type": "single_select",
    "prompt": texts("Are you well today?", "Uko salama leo?"),
    "choices": [choice("yes", "Yes"), choice("no", "No, I feel unwell today")],
    "retry_prompt": texts("Please tap a button."),
    "case_property": "feels_well",
}
WHERE: dict[str, Any] = {
    "id": "where",
    "type": "single_select",
    "prompt": texts("Where did you go?"),
    "choices": [
        choice("clinic", "Clinic"),
        choice("hospital", "The district hospital in town"),
        choice("chw", "Community health worker visit"),
        choice("pharmacy", "Pharmacy"),
        choice("none", "Nowhere"),
    ],
    "case_property": "went_to",
}
DAY: dict[str, Any] = {
    "id": "day",
    "type": "single_select",
    "prompt": texts("Which day of the month?"),
    "choices": [choice(f"d{n}", f"Day {n}") for n in range(1, 13)],
    "case_property": "day_of_month",
}


def survey_def(*questions: dict[str, Any], name: str = "Check") -> dict[str, Any]:
    return {
        "name": name,
        "questions": list(questions),
        "closing": texts("Thank you."),
        "settings": {"reask_after_minutes": 60, "reask_max": 1},
    }


def en_only(data: Any) -> Any:
    """``data`` for a project whose only language is English."""
    if isinstance(data, dict):
        if set(data) == {"en", "sw"}:
            return {"en": data["en"]}
        return {k: en_only(v) for k, v in data.items()}
    if isinstance(data, list):
        return [en_only(v) for v in data]
    return data


@pytest.fixture
def fake() -> Iterator[FakeWhatsApp]:
    with FakeWhatsApp(enforce_window=True) as server:
        yield server


def wa_gateway(api: Api, fake: FakeWhatsApp, name: str = "WA") -> dict[str, Any]:
    r = api.post(
        GATEWAYS, {"name": name, "type": "whatsapp_cloud", "config": fake.gateway_config()}
    )
    assert 201 == r.status, r.body
    body: dict[str, Any] = r.body
    return body


def hook(gw: dict[str, Any]) -> str:
    key = GatewayConfig.objects.get(pk=gw["id"]).inbound_key
    return f"/gateways/whatsapp_cloud/{key}/webhook"


def webhook(fake: FakeWhatsApp, gw: dict[str, Any], kind: str, part: dict[str, Any]) -> Any:
    """One signed webhook POST carrying one message from NUMBER (it opens its window)."""
    fake.open_window(NUMBER)
    message = {"from": NUMBER, "id": f"wamid.IN{next(WAMIDS)}", "type": kind, kind: part}
    body = fake.webhook_body(messages=[message])
    r = Client().post(hook(gw), body, content_type="application/json", headers=fake.sign(body))
    assert 200 == r.status_code, r.content
    return r.json()


def text(fake: FakeWhatsApp, gw: dict[str, Any], body: str) -> Any:
    return webhook(fake, gw, "text", {"body": body})


def tap(fake: FakeWhatsApp, gw: dict[str, Any], reply_id: str, title: str) -> Any:
    part = {"type": "button_reply", "button_reply": {"id": reply_id, "title": title}}
    return webhook(fake, gw, "interactive", part)


def pick(fake: FakeWhatsApp, gw: dict[str, Any], reply_id: str, title: str) -> Any:
    part = {"type": "list_reply", "list_reply": {"id": reply_id, "title": title}}
    return webhook(fake, gw, "interactive", part)


def start_by_keyword(
    api: Api, fake: FakeWhatsApp, gw: dict[str, Any], survey: dict[str, Any]
) -> int:
    r = api.post(S, survey)
    assert 201 == r.status, r.body
    r = api.post(K, {"keyword": "check", "action": "survey", "survey_id": r.body["id"]})
    assert 201 == r.status, r.body
    text(fake, gw, "CHECK")
    found = api.get(SESSIONS).body["objects"]
    assert [("active", "WA")] == [(s["status"], s["gateway"]) for s in found]
    return int(found[0]["id"])


def session(api: Api, session_id: int) -> dict[str, Any]:
    r = api.get(f"{SESSIONS}/{session_id}")
    assert 200 == r.status, r.body
    body: dict[str, Any] = r.body
    return body


def last_sent(fake: FakeWhatsApp) -> dict[str, Any]:
    """What the fake accepted last, after the dispatcher ran."""
    drain()
    assert fake.sent, [r for _, _, r in fake.refused]
    payload: dict[str, Any] = fake.sent[-1].payload
    return payload


def buttons(payload: dict[str, Any]) -> list[tuple[str, str]]:
    assert ("interactive", "button") == (payload["type"], payload["interactive"]["type"])
    return [
        (b["reply"]["id"], b["reply"]["title"]) for b in payload["interactive"]["action"]["buttons"]
    ]


def rows(payload: dict[str, Any]) -> list[tuple[str, str, str]]:
    assert ("interactive", "list") == (payload["type"], payload["interactive"]["type"])
    sections = payload["interactive"]["action"]["sections"]
    return [(r["id"], r["title"], r.get("description", "")) for s in sections for r in s["rows"]]


def properties(api: Api, case_id: str) -> dict[str, Any]:
    found: dict[str, Any] = api.get(V2 + case_id).body["properties"]
    return found


# -- sending ------------------------------------------------------------------------------------


def test_a_keyword_starts_the_survey_on_whatsapp_with_buttons_then_a_list(
    api: Api, fake: FakeWhatsApp
) -> None:
    gw = wa_gateway(api, fake)
    cid = case(api, name="Amina", phone=NUMBER, verified="yes", language_code="en")
    sid = start_by_keyword(api, fake, gw, survey_def(FEEL, WHERE, DAY))

    first = last_sent(fake)
    assert (NUMBER, "Are you well today?") == (first["to"], first["interactive"]["body"]["text"])
    # Titles cut to WhatsApp's 20 characters for a button; ids name the session, question, choice.
    assert [
        (f"survey.{sid}.feel.yes", "Yes"),
        (f"survey.{sid}.feel.no", "No, I feel unwell t…"),
    ] == buttons(first)
    # The log keeps the SMS rendering, on the WhatsApp channel.
    out = Message.objects.filter(direction="out").order_by("created_on", "id").last()
    assert out is not None
    assert ("whatsapp", "Are you well today? 1 Yes 2 No, I feel unwell today") == (
        out.channel,
        out.text,
    )

    tap(fake, gw, f"survey.{sid}.feel.no", "No, I feel unwell t…")  # the cut title: the id counts
    second = last_sent(fake)
    assert "Where did you go?" == second["interactive"]["body"]["text"]
    assert [
        (f"survey.{sid}.where.clinic", "Clinic", ""),
        (
            f"survey.{sid}.where.hospital",
            "The district hospital i…",
            "The district hospital in town",
        ),
        (
            f"survey.{sid}.where.chw",
            "Community health worker…",
            "Community health worker visit",
        ),
        (f"survey.{sid}.where.pharmacy", "Pharmacy", ""),
        (f"survey.{sid}.where.none", "Nowhere", ""),
    ] == rows(second)

    pick(fake, gw, f"survey.{sid}.where.hospital", "The district hospital i…")
    third = last_sent(fake)  # twelve choices: plain text, as on SMS
    assert "text" == third["type"]
    assert third["text"]["body"].startswith("Which day of the month? 1 Day 1 2 Day 2 3 Day 3")
    text(fake, gw, "Day 12")  # answered by its label
    assert "Thank you." == last_sent(fake)["text"]["body"]

    done = session(api, sid)
    assert "completed" == done["status"]
    assert [("feel", "no"), ("where", "hospital"), ("day", "d12")] == [
        (a["question_id"], a["value"]) for a in done["answers"]
    ]
    assert ("no", "hospital", "d12") == tuple(
        properties(api, cid)[p] for p in ("feels_well", "went_to", "day_of_month")
    )


def test_text_answers_still_work_and_retry_and_reask_are_interactive(
    api: Api, fake: FakeWhatsApp
) -> None:
    gw = wa_gateway(api, fake)
    cid = case(api, name="Amina", phone=NUMBER, verified="yes", language_code="sw")
    sid = start_by_keyword(api, fake, gw, survey_def(FEEL))
    first = last_sent(fake)
    assert ("Uko salama leo?", [f"survey.{sid}.feel.yes", f"survey.{sid}.feel.no"]) == (
        first["interactive"]["body"]["text"],
        [i for i, _ in buttons(first)],
    )

    text(fake, gw, "maybe")  # invalid: the retry prompt, with the buttons again
    retry = last_sent(fake)
    assert "Please tap a button." == retry["interactive"]["body"]["text"]
    assert [f"survey.{sid}.feel.yes", f"survey.{sid}.feel.no"] == [i for i, _ in buttons(retry)]

    # No reply for an hour: the re-ask is the question with its buttons.
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=61)
    assert 1 == run_due_sessions(later)
    reask = last_sent(fake)
    assert "Uko salama leo?" == reask["interactive"]["body"]["text"]
    assert 3 == len(fake.sent)

    text(fake, gw, "1")  # typed: the choice's number still answers
    assert "completed" == session(api, sid)["status"]
    assert "yes" == properties(api, cid)["feels_well"]


def test_a_tap_on_another_projects_button_answers_nothing(
    api: Api, other_api: Api, fake: FakeWhatsApp
) -> None:
    gw = wa_gateway(api, fake)
    case(api, name="Amina", phone=NUMBER, verified="yes", language_code="en")
    sid = start_by_keyword(api, fake, gw, survey_def(FEEL))
    last_sent(fake)
    # Another project's session of the same survey, on its own WhatsApp gateway.
    wa_gateway(other_api, fake, name="THEIRS")
    their_case = case(other_api, name="Baraka", phone="254722000111", language_code="en")
    r = other_api.post(S, en_only(survey_def(FEEL, name="Theirs")))
    assert 201 == r.status, r.body
    r = other_api.post(f"{S}/{r.body['id']}/start", {"contact_id": their_case, "gateway": "THEIRS"})
    assert (201, "THEIRS") == (r.status, r.body["gateway"]), r.body
    their_sid = int(r.body["id"])
    drain()  # theirs is refused by Meta: that number never wrote (outside the window)
    theirs = other_api.get(f"{SESSIONS}/{their_sid}").body
    # Its question could not be sent: it ends instead of holding the pair for 7 days.
    assert ("failed", "the survey's message could not be sent: WHATSAPP_OUTSIDE_WINDOW") == (
        theirs["status"],
        theirs["detail"],
    )
    before = len(fake.sent)

    tap(fake, gw, f"survey.{their_sid}.feel.yes", "Yes")  # the title is a label: no matter
    mine = session(api, sid)
    assert ("active", 1, []) == (mine["status"], mine["retries"], mine["answers"])
    retry = last_sent(fake)
    assert before + 1 == len(fake.sent)
    assert "Please tap a button." == retry["interactive"]["body"]["text"]
    inbound = Message.objects.filter(direction="in").order_by("created_on", "id").last()
    assert inbound is not None
    assert ({"reply_id": f"survey.{their_sid}.feel.yes"}, "survey_invalid") == (
        inbound.payload,
        inbound.inbound_action.split("+")[-1],  # "Yes" is an opt-in word too (silent)
    )
    theirs = other_api.get(f"{SESSIONS}/{their_sid}").body
    assert ("failed", 0, []) == (theirs["status"], theirs["retries"], theirs["answers"])

    tap(fake, gw, f"survey.{sid}.where.clinic", "Yes")  # our session, another question
    mine = session(api, sid)
    assert (2, []) == (mine["retries"], mine["answers"])
    tap(fake, gw, f"survey.{sid}.feel.yes", "Yes")
    assert "completed" == session(api, sid)["status"]


def test_the_api_starts_a_survey_on_a_whatsapp_gateway_and_refuses_another_projects(
    api: Api, other_api: Api, fake: FakeWhatsApp
) -> None:
    gw = wa_gateway(api, fake)
    theirs = wa_gateway(other_api, fake, name="THEIRS")
    cid = case(api, name="Amina", phone=NUMBER, verified="yes", language_code="en")
    r = api.post(S, survey_def(FEEL))
    assert 201 == r.status, r.body
    start = f"{S}/{r.body['id']}/start"

    r = api.post(start, {"contact_id": cid, "gateway": theirs["name"]})
    assert (400, "gateway 'THEIRS' not found (or not active) for this project") == (
        r.status,
        r.body["error"],
    )
    assert [] == api.get(SESSIONS).body["objects"]

    text(fake, gw, "hello")  # the number wrote: its 24-hour window is open
    r = api.post(start, {"contact_id": cid, "gateway": "WA"})
    assert (201, "active", "WA") == (r.status, r.body["status"], r.body["gateway"])
    first = last_sent(fake)
    assert [(f"survey.{r.body['id']}.feel.yes", "Yes")] == buttons(first)[:1]
