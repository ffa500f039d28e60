"""Worker-specific contact rules: verified numbers match whatever their formatting."""

from __future__ import annotations

from casereach.contacts.models import PhoneEntry
from casereach.testing.world import Api

USERS = "/a/{project}/api/v0.5/user/"


def test_verified_number_matches_after_normalisation(api: Api) -> None:
    r = api.post(
        USERS,
        {
            "username": "nurse",
            "password": "secret-pass",
            "phone_numbers": ["+254 711-000-111"],
            "verified_numbers": ["254711000111"],
        },
    )
    assert 201 == r.status, r.body
    entry = PhoneEntry.objects.get(contact_id=r.body["id"])
    assert ("254711000111", True) == (entry.number, entry.holder)


def test_username_of_another_domain_is_refused(api: Api) -> None:
    r = api.post(USERS, {"username": "bob@other.commcarehq.org", "password": "secret-pass"})
    assert (400, "mobile worker usernames must end with @demo.commcarehq.org") == (
        r.status,
        r.body["error"],
    )
    r = api.post(USERS, {"username": "bob@demo.commcarehq.org", "password": "secret-pass"})
    assert (201, "bob@demo.commcarehq.org") == (r.status, r.body["username"])
