"""Importing from the browser: the upload returns at once, the import runs in the background
of the web process, and its progress and result are read from the database by whichever web
process answers the page's polls."""

from __future__ import annotations

import csv
import datetime as dt
import io
import time
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from casereach.projects.actions import do_create_web_user
from casereach.projects.models import Project, Role
from casereach.testing.world import Api

# The background import runs on its own database connection: it must see committed data.
pytestmark = pytest.mark.django_db(transaction=True)

HEADER = b"external_id,case_type,case_name,owner_id\n"


@pytest.fixture
def web(project: Project, settings: Any, tmp_path: Any) -> Client:
    settings.IMPORT_DIR = str(tmp_path / "imports")
    do_create_web_user(project, "pm", "pm-password-1", role=Role.ADMIN)
    client = Client()
    client.force_login(get_user_model().objects.get(username="pm"))
    return client


def upload(web: Client, data: bytes, *, htmx: bool = False) -> Any:
    extra = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    return web.post(
        "/a/demo/import", {"file": SimpleUploadedFile("cases.csv", data, "text/csv")}, **extra
    )


def finished(web: Client, timeout: float = 60) -> str:
    """Poll the progress partial as the page does until the import is no longer running."""
    deadline = time.monotonic() + timeout
    while True:
        page = web.get("/a/demo/import/progress").content.decode()
        if 'id="import-progress"' not in page or time.monotonic() > deadline:
            return page
        time.sleep(0.05)


def user_id() -> int:
    pk = get_user_model().objects.get(username="pm").pk
    assert isinstance(pk, int)
    return pk


def test_the_upload_returns_and_the_result_follows(web: Client, api: Api) -> None:
    response = upload(web, HEADER + b"P-1,patient,Neema,o1\n,patient,,o1\n")
    assert (302, "/a/demo/import") == (response.status_code, response["Location"])

    page = finished(web)

    assert "2 rows read, 1 case written, 1 row error." in page
    assert "case_id or external_id is required" in page
    report = b"".join(web.get("/a/demo/import/errors.csv").streaming_content).decode()
    rows = list(csv.reader(io.StringIO(report)))
    assert [
        ["row", "column", "reason"],
        ["3", "external_id", "case_id or external_id is required"],
    ] == rows
    assert 200 == api.get("/a/{project}/api/case/v2/ext/P-1/").status
    assert "Result of cases.csv" in web.get("/a/demo/import").content.decode()  # a later visit


def test_an_htmx_upload_answers_with_the_polling_partial(web: Client) -> None:
    page = upload(web, HEADER + b"P-1,patient,Neema,o1\n", htmx=True).content.decode()
    assert 'id="import-progress"' in page or "1 case written" in page
    assert "1 case written" in finished(web)


def test_progress_is_read_from_the_database_by_every_web_process(
    web: Client, project: Project
) -> None:
    from casereach.web.actions import do_set_import_progress, do_start_import

    assert "" == web.get("/a/demo/import/progress").content.decode().strip()
    # as the process running the import would record it
    do_start_import(project, user_id(), "big.xlsx")
    do_set_import_progress(project, user_id(), 12345, 40)

    page = web.get("/a/demo/import/progress").content.decode()

    assert "Importing big.xlsx… 12345 rows read" in page
    assert '<progress max="100" value="40">' in page
    assert 'hx-trigger="every 1s"' in page  # the partial keeps polling while it runs
    # one import at a time per user and project
    second = upload(web, HEADER + b"P-9,patient,Neema,o1\n", htmx=True).content.decode()
    assert "your last import is still running" in second


def test_an_import_that_stopped_moving_is_shown_as_interrupted(
    web: Client, project: Project
) -> None:
    from casereach.web.actions import do_start_import
    from casereach.web.models import ImportProgress

    do_start_import(project, user_id(), "big.csv")
    stale = ImportProgress.objects.get().updated_on - dt.timedelta(minutes=11)
    ImportProgress.objects.update(rows=700, updated_on=stale)

    page = web.get("/a/demo/import/progress").content.decode()

    assert "The import of big.csv was interrupted after 700 rows" in page
    response = upload(web, HEADER + b"P-2,patient,Neema,o1\n")  # a new one may start
    assert 302 == response.status_code
    assert "1 case written" in finished(web)


def test_a_refused_file_says_why(web: Client) -> None:
    upload(web, b"name,phone\nNeema,254700111222\n")
    page = finished(web)
    assert "cases.csv was not imported:" in page
    assert "case_id" in page


def test_an_upload_over_the_limit_is_refused_before_it_is_read(
    web: Client, api: Api, settings: Any
) -> None:
    settings.IMPORT_MAX_BYTES = 1024 * 1024
    data = HEADER + b"P-1,patient,Neema,o1\n" * 60_000
    response = upload(web, data)
    assert 200 == response.status_code
    assert "the file is too large: at most 1 MB can be imported" in response.content.decode()
    assert "" == web.get("/a/demo/import/progress").content.decode().strip()
    assert 404 == api.get("/a/{project}/api/case/v2/ext/P-1/").status


def test_the_page_keeps_the_first_errors_and_the_report_has_them_all(web: Client) -> None:
    bad = 500
    upload(web, HEADER + b",patient,,o1\n" * bad)
    page = finished(web)
    assert f"{bad} row errors" in page
    assert 50 == page.count('<td data-label="Row">')
    assert "import_errors" not in web.session
    report = web.get("/a/demo/import/errors.csv")
    rows = list(csv.reader(io.StringIO(b"".join(report.streaming_content).decode())))
    assert ["row", "column", "reason"] == rows[0]
    assert bad == len(rows) - 1
