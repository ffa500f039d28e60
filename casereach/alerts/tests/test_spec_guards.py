"""Save-time guards on an alert's definition, through the API (SPEC 5, issue 4).

Each refusal is a 400 JSON error naming the problem, and nothing is stored:
* regexes whose evaluation can take exponential time (nested repetition, a repeated
  alternation with a repeat in a branch, a backreference inside a repeat);
* templates of the channel the alert does not use (every template present is checked);
* fixed dates outside 1900-01-01..2199-12-31, and finite schedules lasting over 100 years or
  running past 2199-12-31.
"""

from __future__ import annotations

from typing import Any

import pytest

from casereach.testing.world import Api, conditional_alert_body

M = "/a/{project}/api/messaging/v1/"


def conditional(**over: Any) -> dict[str, Any]:
    return conditional_alert_body(
        **{
            **{
                "active": False,
                "content": {"sms": {"en": "Hello {case.name}", "sw": "Habari {case.name}"}},
            },
            **over,
        }
    )


def broadcast(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Clinic news",
        "kind": "broadcast",
        "active": False,
        "content": {"sms": {"en": "Clinic open, {recipient.name}"}},
        "schedule": {
            "type": "timed",
            "events": [{"time": "09:00"}],
            "start": {"from": "date", "date": "2030-01-01"},
        },
        "recipients": [{"type": "case_group", "case_type": "mother"}],
    }
    body.update(over)
    return body


def regex_rule(pattern: str) -> dict[str, Any]:
    return {"match": "all", "rules": [{"property": "x", "op": "regex", "value": pattern}]}


def refused(api: Api, body: dict[str, Any], *fragments: str) -> str:
    r = api.post(M + "alerts", body)
    assert 400 == r.status, r.body
    assert "application/json" == r.headers["Content-Type"].split(";")[0]
    error: str = r.body["error"]
    for fragment in fragments:
        assert fragment in error, error
    assert [] == api.get(M + "alerts").body["objects"]
    return error


def saved(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    r = api.post(M + "alerts", body)
    assert 201 == r.status, r.body
    out: dict[str, Any] = r.body
    return out


# -- 1. regexes that can backtrack exponentially -------------------------------------------------

NESTED = "nested repetition like (a+)+ can take exponential time"
ALTERNATION = "repeated alternation with a repeat in one of its branches"
BACKREF = "backreference"


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        ("(a+)+$", NESTED),
        ("(a*)*", NESTED),
        ("^(a+)+b", NESTED),
        ("(?:x{2,})+", NESTED),
        ("([a-z]+\\s?)*!", NESTED),
        ("(a+?)+", NESTED),
        ("(?>a+)+", NESTED),
        ("((?=(a+))b)+", NESTED),
        ("(\\d{1,3}\\.){3}", NESTED),
        ("(a|b+)*", ALTERNATION),
        ("^(x|\\d{2})+$", ALTERNATION),
        ("(a)\\1*", BACKREF),
        ("((a)\\2)+", BACKREF),
        ("(?P<c>a)(?P=c)+", BACKREF),
        ("(a)((?(1)a|b))+", BACKREF),
    ],
)
def test_regexes_that_can_take_exponential_time_are_refused(
    api: Api, pattern: str, fragment: str
) -> None:
    error = refused(api, conditional(criteria=regex_rule(pattern)), "regex: ", fragment)
    assert repr(pattern) in error


def test_a_slow_regex_in_a_case_group_recipient_is_refused_too(api: Api) -> None:
    body = broadcast(
        schedule={"type": "immediate"},
        recipients=[{"type": "case_group", "case_type": "mother", "criteria": regex_rule("(a+)+")}],
    )
    refused(api, body, NESTED)


def test_regex_errors_keep_their_messages(api: Api) -> None:
    refused(api, conditional(criteria=regex_rule("(")), "invalid regex")
    refused(api, conditional(criteria=regex_rule("a" * 501)), "longer than 500 characters")


@pytest.mark.parametrize(
    "pattern",
    [
        "^\\d{4}-\\d{2}-\\d{2}$",
        "^(yes|no)$",
        "[A-Z]+\\d*",
        "^(\\+?254)?7\\d{8}$",
        "^(anc|pnc)[0-9]+$",
        "(?i)^positive",
        "(\\d{2}-)+\\d{2}",
        ".*x.*y",
        "^\\w+@\\w+\\.\\w+$",
        "(a)\\1",
        "(" * 100 + "a" + ")" * 100,
    ],
)
def test_usual_regexes_are_saved(api: Api, pattern: str) -> None:
    alert = saved(api, conditional(criteria=regex_rule(pattern)))
    assert [alert["id"]] == [a["id"] for a in api.get(M + "alerts").body["objects"]]


# -- 2. templates of the channel the alert does not use ------------------------------------------


def email_content(**over: Any) -> dict[str, Any]:
    email: dict[str, Any] = {
        "subject": {"en": "About {case.name}"},
        "body": {"en": "Hello {case.name}"},
    }
    email.update(over)
    return email


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ({"sms": {"en": "{{7*7}}"}, "email": email_content()}, "content.sms[en]"),
        ({"sms": {"en": "ok", "sw": "{case.__class__}"}, "email": email_content()}, "[sw]"),
        ({"sms": {"en": "x" * 10_001}, "email": email_content()}, "too long"),
        ({"email": email_content(subject={"en": "ok", "sw": "{0.__globals__}"})}, "subject[sw]"),
        ({"email": email_content(body={"en": "Hi {case.__dict__}"})}, "content.email.body[en]"),
    ],
)
def test_every_template_of_an_email_alert_is_checked(
    api: Api, content: dict[str, Any], fragment: str
) -> None:
    body = conditional(
        channel="email",
        content=content,
        recipients=[{"type": "email_property", "property": "email"}],
    )
    refused(api, body, fragment)


@pytest.mark.parametrize(
    ("email", "fragment"),
    [
        (email_content(body={"en": "{{7*7}}"}), "content.email.body[en]"),
        (email_content(subject={"en": "{case.__class__}"}), "content.email.subject[en]"),
        (email_content(subject={"fr": "ok", "sw": "{recipient.name!r}"}), "subject[sw]"),
    ],
)
def test_every_template_of_an_sms_alert_is_checked(
    api: Api, email: dict[str, Any], fragment: str
) -> None:
    refused(api, conditional(content={"sms": {"en": "Hi"}, "email": email}), fragment)


def test_an_edit_with_a_bad_unused_template_changes_nothing(api: Api) -> None:
    alert = saved(api, conditional())
    content = {"sms": {"en": "Hi"}, "email": email_content(body={"en": "{{7*7}}"})}
    r = api.put(M + f"alerts/{alert['id']}", {"content": content})
    assert 400 == r.status, r.body
    assert "content.email.body[en]" in r.body["error"]
    stored = api.get(M + f"alerts/{alert['id']}").body
    assert (alert["version"], alert["content"]) == (stored["version"], stored["content"])


def test_valid_templates_of_both_channels_are_saved(api: Api) -> None:
    both = {"sms": {"en": "Hi {case.name}", "sw": ""}, "email": email_content()}
    saved(api, conditional(content=both))
    saved(
        api,
        conditional(
            name="email",
            channel="email",
            content={"sms": {}, "email": email_content(subject={})},
            recipients=[{"type": "email_property", "property": "email"}],
        ),
    )
    assert 2 == len(api.get(M + "alerts").body["objects"])


def test_existing_content_rules_still_hold(api: Api) -> None:
    refused(api, conditional(content={"sms": {}}), "content.sms: at least one language")
    refused(api, conditional(content={"sms": {"en": " "}}), "every language's text is blank")
    refused(
        api,
        conditional(channel="email", recipients=[{"type": "email_property", "property": "e"}]),
        "content.email needs subject and body",
    )


# -- 3. dates and how far a schedule reaches -----------------------------------------------------

DATE_RANGE = "use a date from 1900-01-01 to 2199-12-31"


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01", "1899-12-31", "2200-01-01"])
def test_fixed_start_dates_out_of_range_are_refused(api: Api, day: str) -> None:
    start = {"from": "date", "date": day}
    sched = {"type": "timed", "events": [{"time": "09:00"}], "start": start}
    refused(api, broadcast(schedule=sched), f"start date {day} is out of range", DATE_RANGE)
    alert_sched = {"type": "alert", "events": [{"wait_minutes": 0}], "start": start}
    refused(api, conditional(schedule=alert_sched), f"start date {day}", DATE_RANGE)


@pytest.mark.parametrize(
    ("schedule", "fragment"),
    [
        (  # one day after the last allowed date
            {
                "type": "timed",
                "events": [{"day": 1, "time": "09:00"}],
                "start": {"from": "date", "date": "2199-12-31"},
            },
            "would run until 2200-01-01, past 2199-12-31",
        ),
        (
            {
                "type": "timed",
                "events": [{"time": "09:00"}],
                "repeat": {"unit": "months", "iterations": 13},
                "start": {"from": "date", "date": "2199-01-01"},
            },
            "past 2199-12-31",
        ),
        (
            {
                "type": "timed",
                "events": [{"time": "09:00"}],
                "repeat": {"unit": "days", "interval": 1000, "iterations": 100_000},
            },
            "at most 36,525 days (100 years)",
        ),
        (
            {
                "type": "timed",
                "events": [{"time": "09:00"}],
                "repeat": {"unit": "months", "interval": 1000, "iterations": 100_000},
            },
            "at most 36,525 days (100 years)",
        ),
        (
            {
                "type": "timed",
                "events": [{"time": "09:00"}],
                "repeat": {"unit": "weeks", "iterations": 5300},
            },
            "at most 36,525 days (100 years)",
        ),
        (
            {"type": "alert", "events": [{"wait_minutes": 525_600}] * 20, "iterations": 100_000},
            "at most 36,525 days (100 years)",
        ),
    ],
)
def test_schedules_reaching_too_far_are_refused(
    api: Api, schedule: dict[str, Any], fragment: str
) -> None:
    refused(api, conditional(schedule=schedule), "schedule", fragment)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"schedule": {"type": "timed", "events": [{"day": 3651, "time": "09:00"}]}}, "3650"),
        (
            {
                "schedule": {
                    "type": "timed",
                    "events": [{"time": "09:00"}],
                    "repeat": {"unit": "days", "interval": 1001},
                }
            },
            "1000",
        ),
        (
            {
                "schedule": {
                    "type": "timed",
                    "events": [{"time": "09:00"}],
                    "repeat": {"unit": "days", "iterations": 100_001},
                }
            },
            "100000",
        ),
        ({"schedule": {"type": "alert", "events": [{"wait_minutes": 525_601}]}}, "525600"),
        ({"criteria": {"rules": [{"property": "d", "op": "days_after", "days": 36501}]}}, "36500"),
    ],
)
def test_existing_bounds_keep_their_messages(
    api: Api, change: dict[str, Any], fragment: str
) -> None:
    refused(api, conditional(**change), fragment)


@pytest.mark.parametrize(
    ("body", "schedule"),
    [
        (
            "broadcast",
            {
                "type": "timed",
                "events": [{"time": "09:00"}],
                "start": {"from": "date", "date": "1900-01-01"},
            },
        ),
        (
            "broadcast",
            {
                "type": "timed",
                "events": [{"time": "09:00"}],
                "start": {"from": "date", "date": "2199-12-31"},
            },
        ),
        (
            "broadcast",
            {
                "type": "timed",
                "events": [{"time": "09:00"}],
                "repeat": {"unit": "months", "iterations": 12},
                "start": {"from": "date", "date": "2199-01-01"},
            },
        ),
        (
            "broadcast",
            {
                "type": "timed",
                "events": [{"time": "09:00"}],
                "repeat": {"unit": "weeks", "interval": 1000, "iterations": None},
                "start": {"from": "date", "date": "2199-12-31"},
            },
        ),
        (
            "conditional",
            {
                "type": "timed",
                "events": [{"day": 3650, "time": "09:00"}],
                "repeat": {"unit": "days", "iterations": 30_000},
            },
        ),
        (
            "conditional",
            {
                "type": "timed",
                "events": [{"time": "09:00"}],
                "repeat": {"unit": "months", "iterations": 1200},
            },
        ),
        (
            "conditional",
            {"type": "alert", "events": [{"wait_minutes": 525_600}] * 20, "iterations": 5},
        ),
        (
            "conditional",
            {"type": "alert", "events": [{"wait_minutes": 525_600}], "iterations": None},
        ),
    ],
)
def test_schedules_within_range_are_saved(api: Api, body: str, schedule: dict[str, Any]) -> None:
    make = broadcast if body == "broadcast" else conditional
    saved(api, make(schedule=schedule))
    assert 1 == len(api.get(M + "alerts").body["objects"])


def test_an_email_address_recipient_needs_the_email_channel(api: Api) -> None:
    body = conditional(recipients=[{"type": "email_property", "property": "family_email"}])
    refused(api, body, "email_property", "channel 'email'")
