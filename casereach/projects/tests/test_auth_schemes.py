"""Basic, Bearer and HTTP Digest on every API operation, besides ``ApiKey`` (issue 19 item 3):
a web user's password or an API key as the password; challenges, stale and replayed nonces,
and the throttles every failed credential counts toward."""

# Expected values come first in assertions (project convention).

from __future__ import annotations

import base64
import hashlib
import time
import urllib.request
from typing import Any

import pytest
from django.test import Client

from casereach.projects import auth, digest
from casereach.projects.actions import do_create_api_key, do_create_web_user
from casereach.projects.models import ApiKey, Project, Role
from casereach.testing.world import Api

CASES = "/a/demo/api/v0.5/case/"
NURSE = "nurse@example.org"
PASSWORD = "correct horse battery"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def get(authorization: str | None, path: str = CASES, **extra: Any) -> Any:
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    return Client().get(path, **headers, **extra)


def challenge_fields(header: str) -> dict[str, str]:
    assert header.startswith("Digest ")
    items = urllib.request.parse_http_list(header[len("Digest ") :])
    return urllib.request.parse_keqv_list(items)


def digest_header(
    user: str,
    password: str,
    *,
    nonce: str,
    nc: int = 1,
    uri: str = CASES,
    method: str = "GET",
    algorithm: str = "MD5",
    opaque: str | None = None,
) -> str:
    h = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}[algorithm]

    def hx(text: str) -> str:
        return h(text.encode()).hexdigest()

    ha1 = hx(f"{user}:casereach:{password}")
    ha2 = hx(f"{method}:{uri}")
    cnonce, count = "0a4f113b", f"{nc:08x}"
    response = hx(f"{ha1}:{nonce}:{count}:{cnonce}:auth:{ha2}")
    return (
        f'Digest username="{user}", realm="casereach", nonce="{nonce}", uri="{uri}", '
        f'response="{response}", qop=auth, nc={count}, cnonce="{cnonce}", '
        f'algorithm={algorithm}, opaque="{opaque or digest.opaque()}"'
    )


@pytest.fixture
def nurse(project: Project) -> str:
    """A web user, member of demo, with a password; returns an API key of theirs."""
    do_create_web_user(project, NURSE, PASSWORD, role=Role.MEMBER)
    return do_create_api_key(project, NURSE)


def test_uncredentialed_request_gets_a_digest_challenge_and_the_json_error(
    project: Project,
) -> None:
    r = get(None)
    assert 401 == r.status_code
    fields = challenge_fields(r["WWW-Authenticate"])
    assert ("casereach", "auth", "MD5") == (fields["realm"], fields["qop"], fields["algorithm"])
    assert fields["nonce"] and fields["opaque"]
    assert "stale" not in fields
    assert "authentication required" in r.json()["error"]
    # Every refusal carries a fresh challenge
    r = get("ApiKey nobody:nothing")
    assert 401 == r.status_code
    assert fields["nonce"] != challenge_fields(r["WWW-Authenticate"])["nonce"]


def test_basic_with_an_api_key_or_the_web_password(nurse: str) -> None:
    assert 200 == get(basic(NURSE, nurse)).status_code
    assert 200 == get(basic(NURSE, PASSWORD)).status_code
    assert 200 == get(basic(NURSE, PASSWORD)).status_code  # verified lately: no PBKDF2 again
    r = get(basic(NURSE, "wrong password"))
    assert (401, "invalid username or password") == (r.status_code, r.json()["error"])
    assert r["WWW-Authenticate"].startswith('Digest realm="casereach"')
    assert 401 == get(basic("someone@example.org", nurse)).status_code  # not the key's owner
    assert 401 == get("Basic !!!not-base64").status_code
    assert 401 == get(basic(NURSE, "")).status_code


def test_a_changed_password_is_checked_afresh(project: Project, nurse: str) -> None:
    assert 200 == get(basic(NURSE, PASSWORD)).status_code
    do_create_web_user(project, NURSE, "another password!")
    assert 401 == get(basic(NURSE, PASSWORD)).status_code
    assert 200 == get(basic(NURSE, "another password!")).status_code


def test_bearer_with_the_key_alone_or_with_its_owner(nurse: str) -> None:
    assert 200 == get(f"Bearer {nurse}").status_code
    assert 200 == get(f"bearer {NURSE}:{nurse}").status_code
    assert 401 == get(f"Bearer someone@example.org:{nurse}").status_code
    assert 401 == get("Bearer not-a-key").status_code
    assert 401 == get("Bearer ").status_code


def test_other_projects_and_roles_are_403(api: Api, other_project: Project, nurse: str) -> None:
    other = CASES.replace("demo", other_project.name)
    assert 403 == get(basic(NURSE, PASSWORD), other).status_code
    assert 403 == get(basic(NURSE, nurse), other).status_code
    assert 403 == get(f"Bearer {nurse}", other).status_code
    # a member may not do what needs admin, whichever scheme signs the request
    r = Client().put(
        "/a/demo/api/messaging/v1/settings",
        "{}",
        content_type="application/json",
        HTTP_AUTHORIZATION=basic(NURSE, PASSWORD),
    )
    assert (403, "admin") == (r.status_code, r.json()["detail"]["required_role"])


def test_digest_with_the_password_or_a_key(nurse: str) -> None:
    nonce = challenge_fields(get(None)["WWW-Authenticate"])["nonce"]
    assert 200 == get(digest_header(NURSE, PASSWORD, nonce=nonce, nc=1)).status_code
    assert 200 == get(digest_header(NURSE, nurse, nonce=nonce, nc=2)).status_code
    sha = digest_header(NURSE, PASSWORD, nonce=nonce, nc=3, algorithm="SHA-256")
    assert 200 == get(sha).status_code
    query = CASES + "?limit=1"
    assert 200 == get(digest_header(NURSE, nurse, nonce=nonce, nc=4, uri=query), query).status_code


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"password": "wrong"}, "invalid username or password"),
        ({"uri": "/a/demo/api/v0.5/user/"}, "the Digest uri is not this request's"),
        ({"opaque": "0" * 32}, "malformed Digest authorization (qop=auth, MD5 or SHA-256)"),
        ({"nonce": "1.2.3"}, "unknown Digest nonce"),
    ],
)
def test_digest_refusals(nurse: str, change: dict[str, str], message: str) -> None:
    nonce = challenge_fields(get(None)["WWW-Authenticate"])["nonce"]
    kw: dict[str, Any] = {"nonce": nonce, **change}
    password = kw.pop("password", PASSWORD)
    r = get(digest_header(NURSE, password, **kw))
    assert (401, message) == (r.status_code, r.json()["error"])
    assert "stale" not in challenge_fields(r["WWW-Authenticate"])


def test_a_replayed_nonce_count_is_refused(nurse: str) -> None:
    nonce = challenge_fields(get(None)["WWW-Authenticate"])["nonce"]
    first = digest_header(NURSE, PASSWORD, nonce=nonce, nc=5)
    assert 200 == get(first).status_code
    r = get(first)
    assert (401, "the Digest nonce count was used before (a replay)") == (
        r.status_code,
        r.json()["error"],
    )
    assert 401 == get(digest_header(NURSE, PASSWORD, nonce=nonce, nc=4)).status_code
    assert 200 == get(digest_header(NURSE, PASSWORD, nonce=nonce, nc=6)).status_code


def test_an_expired_nonce_gets_a_stale_challenge(nurse: str) -> None:
    old = digest.new_nonce(at=time.time() - digest.NONCE_LIFETIME_S - 5)
    r = get(digest_header(NURSE, PASSWORD, nonce=old))
    assert (401, "the Digest nonce expired") == (r.status_code, r.json()["error"])
    assert "true" == challenge_fields(r["WWW-Authenticate"])["stale"]
    # a wrong password with an expired nonce is a plain failure, not stale
    r = get(digest_header(NURSE, "wrong", nonce=old))
    assert "stale" not in challenge_fields(r["WWW-Authenticate"])


def test_keys_made_before_digest_work_with_every_other_scheme(nurse: str) -> None:
    ApiKey.objects.filter(username=NURSE).update(digest_secret="")
    nonce = challenge_fields(get(None)["WWW-Authenticate"])["nonce"]
    assert 401 == get(digest_header(NURSE, nurse, nonce=nonce)).status_code
    assert 200 == get(basic(NURSE, nurse)).status_code
    assert 200 == get(digest_header(NURSE, PASSWORD, nonce=nonce, nc=2)).status_code


def test_a_user_without_a_password_has_no_digest_secret(api: Api) -> None:
    nonce = challenge_fields(get(None)["WWW-Authenticate"])["nonce"]
    assert 200 == get(digest_header(api.username, api.key, nonce=nonce)).status_code
    assert 401 == get(basic(api.username, "")).status_code
    assert 401 == get(digest_header(api.username, "", nonce=nonce, nc=2)).status_code


def test_bad_passwords_lock_the_login_and_answer_429(
    nurse: str, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.AXES_FAILURE_LIMIT = 3
    monkeypatch.setattr(auth, "KEY_FAILURES", auth._KeyFailures(limit=10**6, window=60))
    nonce = challenge_fields(get(None)["WWW-Authenticate"])["nonce"]
    statuses = [
        get(basic(NURSE, "guess-1"), REMOTE_ADDR="10.0.0.1").status_code,
        get(digest_header(NURSE, "guess-2", nonce=nonce), REMOTE_ADDR="10.0.0.2").status_code,
        get(basic(NURSE, "guess-3"), REMOTE_ADDR="10.0.0.3").status_code,
        get(basic(NURSE, PASSWORD), REMOTE_ADDR="10.0.0.4").status_code,
    ]
    assert [401, 401, 429, 429] == statuses
    r = get(basic(NURSE, PASSWORD), REMOTE_ADDR="10.0.0.5")
    assert 429 == r.status_code
    assert int(r["Retry-After"]) >= 60
    assert "Too many requests; retry later" == r.json()["error"]
    # the web login of that user is locked too (one throttle for every login)
    login = Client().post(
        "/login", {"username": NURSE, "password": PASSWORD}, REMOTE_ADDR="10.0.0.6"
    )
    assert 429 == login.status_code
    assert "Logging in is locked for now" in login.content.decode()
    # a valid API key is never refused for others' guesses
    assert 200 == get(basic(NURSE, nurse), REMOTE_ADDR="10.0.0.7").status_code


def test_bad_credentials_of_every_scheme_count_per_address(
    nurse: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "KEY_FAILURES", auth._KeyFailures(limit=4, window=300))
    nonce = challenge_fields(get(None)["WWW-Authenticate"])["nonce"]
    tries = [
        get("Bearer guess", REMOTE_ADDR="10.1.0.1"),
        get(basic("x@example.org", "guess"), REMOTE_ADDR="10.1.0.1"),
        get(digest_header("x@example.org", "guess", nonce=nonce), REMOTE_ADDR="10.1.0.1"),
        get("Negotiate abc", REMOTE_ADDR="10.1.0.1"),
        get("ApiKey x:guess", REMOTE_ADDR="10.1.0.1"),
        get(basic("y@example.org", "guess"), REMOTE_ADDR="10.1.0.1"),
    ]
    assert [401, 401, 401, 401, 429, 429] == [r.status_code for r in tries]
    assert 1 <= int(tries[-1]["Retry-After"]) <= 300
    assert 200 == get(f"Bearer {nurse}", REMOTE_ADDR="10.1.0.1").status_code
    assert 401 == get("Bearer guess", REMOTE_ADDR="10.1.0.2").status_code
