"""Real clients against a live server (issue 19 item 3): commcare-export 1.16.0 in its
default ``--auth-mode password`` (HTTP Digest through requests' ``HTTPDigestAuth``) reading
cases and messaging events with a web user's password and with an API key as the password;
the standard library's Digest client; the send-SMS API and the CommCare receivers with Basic.
"""

# Expected values come first in assertions (project convention).

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from casereach.messaging.models import MessagingSubEvent
from casereach.projects.actions import do_create_api_key, do_create_web_user
from casereach.projects.models import Project, Role
from casereach.testing.cases import create_case_id
from casereach.testing.commcare_export import CLI, USER, CommCareExport, csv_rows
from casereach.testing.gateways import default_gateway
from casereach.testing.sending import drain
from casereach.testing.world import Api, make_project

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PASSWORD = "export password 1"
EXPORT = CommCareExport(source="case", batch_size=3, timeout_s=120)


@pytest.fixture
def world(db: None) -> tuple[Project, str]:
    """Project "digest" with 4 cases and 4 sends; ``USER`` a member with a password and an
    API key (returned)."""
    project = make_project(name="digest")
    admin = Api(project)
    default_gateway(admin)
    cases = [create_case_id(admin, name=f"Patient {i}", phone=f"25471200000{i}") for i in range(4)]
    for case_id in cases:
        r = admin.post("/a/{project}/api/messaging/v1/send", {"contact_id": case_id, "text": "hi"})
        assert 202 == r.status, r.body
    drain()
    do_create_web_user(project, USER, PASSWORD, role=Role.MEMBER)
    return project, do_create_api_key(project, USER)


def digest_opener(url: str, username: str, password: str) -> urllib.request.OpenerDirector:
    """The standard library's Digest client (no proxies)."""
    passwords = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    passwords.add_password(None, url, username, password)
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPDigestAuthHandler(passwords)
    )


def call(
    opener: urllib.request.OpenerDirector,
    url: str,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes, Any]:
    assert url.startswith("http://")
    request = urllib.request.Request(url, data=data, headers=headers or {})  # noqa: S310
    try:
        with opener.open(request, timeout=30) as r:
            return r.status, r.read(), r.headers
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read(), exc.headers


def basic(username: str, password: str) -> dict[str, str]:
    pair = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


PLAIN = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def test_a_digest_client_with_the_password_and_with_a_key(
    live_server: Any, world: tuple[Project, str]
) -> None:
    project, key = world
    url = f"{live_server.url}/a/{project.name}/api/v0.5/case/"
    status, body, headers = call(PLAIN, url)
    assert 401 == status
    assert headers["WWW-Authenticate"].startswith('Digest realm="casereach"')
    assert "error" in json.loads(body)
    for password in (PASSWORD, key):
        opener = digest_opener(url, USER, password)
        pages = [call(opener, f"{url}?limit=2&offset={o}") for o in (0, 2)]
        assert [200, 200] == [status for status, _, _ in pages]
        assert 4 == sum(len(json.loads(body)["objects"]) for _, body, _ in pages)
    assert 401 == call(digest_opener(url, USER, "wrong"), url)[0]


def write_query(path: Path) -> Path:
    """Sheet "cases" (data source ``case``) and sheet "events" (``messaging-event``)."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "cases"
    sheet.append(["Data Source", "Field", "Source Field"])
    sheet.append(["case", "id", "id"])
    sheet.append([None, "name", "properties.case_name"])
    sheet = book.create_sheet("events")
    sheet.append(["Data Source", "Field", "Source Field"])
    sheet.append(["messaging-event", "id", "id"])
    sheet.append([None, "status", "status"])
    book.save(path)
    return path


@pytest.mark.skipif(CLI is None, reason="commcare-export is not installed")
@pytest.mark.parametrize("secret", ["password", "api key"])
def test_commcare_export_in_its_default_digest_mode_reads_cases_and_events(
    live_server: Any, world: tuple[Project, str], tmp_path: Path, secret: str
) -> None:
    project, key = world
    password = PASSWORD if secret == "password" else key
    query = write_query(tmp_path / "query.xlsx")
    archive = tmp_path / "out.zip"
    out = ("--output-format", "csv", "--output", str(archive))

    proc = EXPORT.run(live_server.url, project, password, query, tmp_path, *out, auth_mode=None)

    assert "--auth-mode" not in " ".join(str(a) for a in proc.args)
    names = sorted(r["name"] for r in csv_rows(archive, "cases"))
    assert [f"Patient {i}" for i in range(4)] == names, proc.stderr[-3000:]
    subs = MessagingSubEvent.objects.filter(project=project)
    assert sorted(str(s.pk) for s in subs) == sorted(r["id"] for r in csv_rows(archive, "events"))
    assert len(EXPORT.fetches(proc)) >= 2  # pages of 3: the nonce is used again with nc + 1


def test_send_sms_and_the_receivers_with_basic(
    live_server: Any, world: tuple[Project, str]
) -> None:
    project, key = world
    base = f"{live_server.url}/a/{project.name}"
    form = urllib.parse.urlencode({"phone_number": "254712000009", "text": "from HQ"}).encode()
    for password in (PASSWORD, key):
        status, body, _ = call(PLAIN, f"{base}/sms/api/send_sms/", form, basic(USER, password))
        assert (200, b"OK") == (status, body)
    opener = digest_opener(f"{base}/sms/api/send_sms/", USER, PASSWORD)
    assert (200, b"OK") == call(opener, f"{base}/sms/api/send_sms/", form)[:2]
    forwarded = {"case_id": "hq-1", "properties": {"case_name": "From HQ", "case_type": "p"}}
    status, body, _ = call(
        PLAIN,
        f"{base}/api/commcare/case-forwarding/",
        json.dumps(forwarded).encode(),
        {**basic(USER, key), "Content-Type": "application/json"},
    )
    assert (200, "applied") == (status, json.loads(body)["outcome"])
    xml = (
        "<data><meta><instanceID>f-1</instanceID></meta>"
        '<case xmlns="http://commcarehq.org/case/transaction/v2" case_id="hq-2">'
        "<create><case_type>p</case_type><case_name>Form</case_name></create></case></data>"
    )
    headers = {**basic(USER, PASSWORD), "Content-Type": "text/xml"}
    status, body, _ = call(PLAIN, f"{base}/receiver/", xml.encode(), headers)
    assert 201 == status, body
