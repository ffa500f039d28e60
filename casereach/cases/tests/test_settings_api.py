"""Project settings over HTTP (GET/PUT /a/{project}/api/messaging/v1/settings) and the
re-derivation of contacts when a setting they depend on changes."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from casereach.projects import settings_change
from casereach.projects.models import Project
from casereach.testing.cases import create_case_id as create
from casereach.testing.world import Api
from casereach.workers.actions import do_create_worker

SETTINGS = "/a/{project}/api/messaging/v1/settings"
CASES = "/a/{project}/api/case/v2/"


WIRED = """
import sys
import django
django.setup()
from casereach.projects.settings_change import settings_resyncs
assert "casereach.api.main" not in sys.modules, "the API was imported"
print(",".join(settings_resyncs()))
"""


def test_resyncs_are_wired_by_the_apps_without_the_api() -> None:
    """cases and workers register their re-derivation from AppConfig.ready: a settings change
    made from any entry point (CLI, web, a worker) resyncs both, without importing the API."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "casereach.settings"}
    out = subprocess.run(
        [sys.executable, "-c", WIRED],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env=env,
    )
    assert out.stdout.strip() == "cases,workers"


def profile(api: Api, contact_id: str) -> dict[str, Any]:
    r = api.get(f"/a/{{project}}/api/messaging/v1/contacts/{contact_id}")
    assert r.status == 200, r.body
    assert isinstance(r.body, dict)
    return r.body


def put(api: Api, body: Any) -> Any:
    return api.put(SETTINGS, body)


def test_get_returns_every_setting_with_defaults(api: Api) -> None:
    r = api.get(SETTINGS)
    assert r.status == 200
    assert r.body == {
        "time_zone": "Africa/Nairobi",
        "languages": ["en", "sw"],
        "language_fallback": "untranslated",
        "default_gateway": None,
        "prefix_routes": {},
        "restricted_windows": [],
        "daily_limit": 50000,
        "stale_after_hours": 168,
        "retry_delays_minutes": [5, 10],
        "strict_phone_validation": False,
        "default_country": None,
        "currency": "USD",
        "monthly_budget": None,
        "channel_order": [],
        "fallback_after_minutes": {},
        "opt_out_keywords": {},
        "opt_in_keywords": {},
        "help_keywords": {},
        "help_text": {},
        "default_inbound_response": {},
        "opt_out_reply": {},
        "opt_in_reply": {},
        "verification_text": {},
        "verification_done_text": {},
        "reply_loop_limit": 5,
        "reply_loop_minutes": 10,
        "self_registration": {
            "enabled": False,
            "case_type": "contact",
            "owner_id": None,
            "welcome_text": {},
        },
        "commcare": {
            "url": "",
            "domain": "",
            "username": "",
            "api_key": None,
            "api_key_set": False,
        },
    }


def test_put_partial_changes_only_those_settings(api: Api, project: Project) -> None:
    r = put(
        api,
        {
            "daily_limit": 10,
            "default_country": "ke",
            "opt_out_keywords": {"en": [" stop ", "quit"]},
            "restricted_windows": [{"start": "08:00", "end": "18:00", "days": [4, 0, 0]}],
        },
    )
    assert r.status == 200, r.body
    assert r.body["daily_limit"] == 10
    assert r.body["default_country"] == "KE"
    assert r.body["opt_out_keywords"] == {"en": ["STOP", "QUIT"]}
    assert r.body["restricted_windows"] == [{"days": [0, 4], "start": "08:00", "end": "18:00"}]
    assert r.body["time_zone"] == "Africa/Nairobi"
    assert api.get(SETTINGS).body == r.body
    project.refresh_from_db()
    assert project.settings["daily_limit"] == 10


def test_put_full_object_round_trips(api: Api) -> None:
    current = api.get(SETTINGS).body
    r = put(api, {**current, "language_fallback": "project"})
    assert r.status == 200, r.body
    assert r.body == {**current, "language_fallback": "project"}


def test_zone_is_stored_canonically(api: Api) -> None:
    r = put(api, {"time_zone": "america/new_york"})
    assert r.status == 200
    assert r.body["time_zone"] == "America/New_York"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"time_zone": "Mars/Base"}, "time_zone"),
        ({"time_zone": None}, "time_zone"),
        ({"languages": []}, "languages"),
        ({"languages": ["en", "en"]}, "languages"),
        ({"language_fallback": "sometimes"}, "language_fallback"),
        ({"daily_limit": -1}, "daily_limit"),
        ({"default_country": "XX"}, "default_country"),
        ({"restricted_windows": [{"start": "08:00", "end": "08:00"}]}, "restricted_windows"),
        ({"prefix_routes": {"+1": "x"}}, "prefix_routes"),
        ({"self_registration": {"enabled": True, "surprise": 1}}, "self_registration"),
    ],
)
def test_invalid_values_are_400_and_change_nothing(
    api: Api, project: Project, body: dict[str, Any], needle: str
) -> None:
    before = api.get(SETTINGS).body
    r = put(api, {"daily_limit": 5, **body})
    assert r.status == 400, r.body
    assert needle in r.body["error"]
    assert api.get(SETTINGS).body == before


def test_unknown_key_is_400(api: Api) -> None:
    r = put(api, {"time_zone": "UTC", "timezone": "UTC", "colour": "blue"})
    assert r.status == 400
    assert r.body["error"] == "unknown settings: colour, timezone"
    assert "time_zone" in r.body["detail"]["known"]
    assert api.get(SETTINGS).body["time_zone"] == "Africa/Nairobi"


@pytest.mark.parametrize("raw", ["{nope", "", "\xff"])
def test_malformed_json_is_400(api: Api, raw: str) -> None:
    r = api.put(SETTINGS, raw=raw.encode("latin-1"))
    assert r.status == 400
    assert r.body["error"] == "Payload must be valid JSON"
    assert "detail" in r.body


@pytest.mark.parametrize("body", [[], ["time_zone"], "UTC", 5])
def test_non_object_is_400(api: Api, body: Any) -> None:
    r = put(api, body)
    assert r.status == 400
    assert "JSON object" in r.body["error"]


def test_auth(api: Api, other_api: Api) -> None:
    assert api.get("/a/demo/api/messaging/v1/settings", auth=None).status == 401
    assert api.put("/a/demo/api/messaging/v1/settings", {"daily_limit": 1}, auth=None).status == 401
    assert other_api.get("/a/demo/api/messaging/v1/settings").status == 403
    r = other_api.put("/a/demo/api/messaging/v1/settings", {"daily_limit": 1})
    assert r.status == 403
    assert api.get(SETTINGS).body["daily_limit"] == 50000


# --- re-derivation -----------------------------------------------------------------------


def test_changing_the_project_zone_updates_contacts(api: Api, project: Project) -> None:
    follows = create(api, phone="254712345678")
    own = create(api, phone="254712345679", time_zone="Asia/Tokyo")
    unknown = create(api, time_zone="Nowhere/Land")
    worker = do_create_worker(project, {"username": "nurse", "password": "secret-pw"})
    assert profile(api, follows)["time_zone"]["effective"] == "Africa/Nairobi"

    assert put(api, {"time_zone": "europe/london"}).status == 200

    assert profile(api, follows)["time_zone"] == {
        "effective": "Europe/London",
        "source": "project",
        "requested": None,
    }
    assert profile(api, own)["time_zone"]["effective"] == "Asia/Tokyo"
    assert profile(api, unknown)["time_zone"]["effective"] == "Europe/London"
    assert profile(api, str(worker.pk))["time_zone"]["effective"] == "Europe/London"


def test_changing_languages_updates_contacts(api: Api, project: Project) -> None:
    sw = create(api, language_code="sw")
    fr = create(api, language_code="fr")
    worker = do_create_worker(
        project, {"username": "nurse", "password": "secret-pw", "language": "fr"}
    )
    assert [w["code"] for w in profile(api, fr)["warnings"]] == ["unknown_language"]

    assert put(api, {"languages": ["fr", "en"]}).status == 200

    p_sw, p_fr = profile(api, sw), profile(api, fr)
    assert p_sw["language"] == {"effective": "fr", "source": "project", "requested": "sw"}
    assert [w["code"] for w in p_sw["warnings"]] == ["unknown_language"]
    assert p_fr["language"]["effective"] == "fr"
    assert p_fr["warnings"] == []
    assert profile(api, str(worker.pk))["language"]["source"] == "contact"


def test_strict_validation_toggles_entries_and_two_way(api: Api) -> None:
    holder = create(api, phone="0712345678", verified="1")
    waiting = create(api, phone="0712345678", verified="1")
    assert profile(api, holder)["phone"]["status"] == "two_way"

    assert put(api, {"strict_phone_validation": True}).status == 200
    for cid in (holder, waiting):
        p = profile(api, cid)
        assert (p["phone"]["status"], p["phone"]["reason"]) == ("invalid", "strict_invalid")
    assert api.get("/a/{project}/api/messaging/v1/phone-numbers").body["objects"] == []

    assert put(api, {"strict_phone_validation": False}).status == 200
    statuses = sorted(profile(api, cid)["phone"]["status"] for cid in (holder, waiting))
    assert statuses == ["one_way", "two_way"]


def test_default_country_converts_existing_contacts(api: Api, project: Project) -> None:
    cid = create(api, phone="0712345678", verified="1")
    worker = do_create_worker(
        project, {"username": "nurse", "password": "secret-pw", "phone_numbers": ["0712000001"]}
    )
    assert put(api, {"default_country": "KE"}).status == 200
    p = profile(api, cid)
    assert p["phone"]["number"] == "254712345678"
    assert p["phone"]["status"] == "two_way"
    assert [w["code"] for w in p["warnings"]] == ["converted_from_national"]
    assert profile(api, str(worker.pk))["phone"]["number"] == "254712000001"


def test_other_settings_do_not_resync(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def spy(project: Project) -> int:
        calls.append(project.name)
        return 0

    monkeypatch.setattr(settings_change, "_RESYNC", {"spy": spy})
    assert (
        put(api, {"daily_limit": 7, "default_gateway": "x", "time_zone": "Africa/Nairobi"}).status
        == 200
    )
    assert calls == []
    assert put(api, {"time_zone": "UTC"}).status == 200
    assert calls == ["demo"]
    assert put(api, {"default_country": "ke"}).status == 200
    assert put(api, {"default_country": "KE"}).status == 200  # same value: no resync
    assert calls == ["demo", "demo"]


def test_resync_does_not_touch_other_projects(api: Api, other_api: Api) -> None:
    theirs = create(other_api, phone="254712345678")
    assert profile(other_api, theirs)["time_zone"]["effective"] == "UTC"
    assert put(api, {"time_zone": "Asia/Tokyo"}).status == 200
    assert profile(other_api, theirs)["time_zone"]["effective"] == "UTC"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"opt_in_keywords": {"en": ["STOP"]}}, "STOP is already one of the opt_out_keywords"),
        ({"help_keywords": {"en": ["STOP"]}}, "STOP is already one of the opt_out_keywords"),
        ({"opt_out_keywords": {"en": ["START"]}}, "START is already one of the opt_in_keywords"),
        ({"opt_out_keywords": {"en": ["JOIN"]}}, "JOIN is reserved"),
        (
            {"opt_out_keywords": {"en": ["ACHA"]}, "help_keywords": {"en": ["ACHA"]}},
            "ACHA is already one of the opt_out_keywords",
        ),
        ({"opt_out_keywords": {"xx": ["FOO"]}}, "'xx' is not one of the project's languages"),
        ({"strict_phone_validation": "yes"}, "strict_phone_validation"),
        ({"self_registration": {"enabled": 1}}, "enabled"),
    ],
)
def test_settings_that_contradict_themselves_are_refused(
    api: Api, body: dict[str, Any], message: str
) -> None:
    before = api.get(SETTINGS).body
    r = put(api, body)
    assert 400 == r.status, r.body
    assert message in str(r.body)
    assert before == api.get(SETTINGS).body


def test_keywords_of_their_own_in_each_language_are_kept(api: Api) -> None:
    r = put(
        api,
        {
            "languages": ["en", "sw"],
            "opt_out_keywords": {"sw": ["ACHA"]},
            "opt_in_keywords": {"sw": ["ANZA"]},
            "help_keywords": {"en": ["AID"], "sw": ["MSAADA"]},
        },
    )
    assert 200 == r.status, r.body
    assert {"sw": ["ANZA"]} == api.get(SETTINGS).body["opt_in_keywords"]
