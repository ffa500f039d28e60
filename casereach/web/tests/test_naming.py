"""A two-way conflict names its holder in a field of its own (issue 16 item 4): the API's
warning and the data-quality report's details carry ``holder_id``, and the UI links the
holder's name from that field (the text is not parsed for it)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from casereach.testing.world import Api, case_body

CASES = "/a/{project}/api/case/v2/"
M = "/a/{project}/api/messaging/v1/"


@pytest.fixture
def web(api: Api) -> Client:
    from casereach.projects.actions import do_create_web_user

    do_create_web_user(api.project, "pm@example.org", "pm-password-1")
    client = Client()
    client.force_login(get_user_model().objects.get(username="pm@example.org"))
    return client


def test_the_warning_names_the_holder_in_a_field_and_the_ui_links_it(api: Api, web: Client) -> None:
    r = api.post(CASES, case_body(name="Baraka", phone="254700111222", verified="1"))
    holder_id = r.body["case"]["case_id"]
    other = api.post(CASES, case_body(name="Imani", phone="254700111222", verified="1"))
    other_id = other.body["case"]["case_id"]
    warning = next(
        w
        for w in api.get(M + f"contacts/{other_id}").body["warnings"]
        if w["code"] == "two_way_conflict"
    )
    assert holder_id == warning["holder_id"]
    report = api.get(M + "data-quality").body["objects"]
    row = next(r for r in report if r["contact_id"] == other_id)
    assert [holder_id] == [d.get("holder_id") for d in row["details"]]

    link = f'<a href="/a/demo/contacts/{holder_id}">Baraka</a>'
    for page in (f"/a/demo/contacts/{other_id}", "/a/demo/"):
        html = web.get(page).content.decode()
        assert f"(held by {link})" in html, page
        assert "held by contact" not in html, page
