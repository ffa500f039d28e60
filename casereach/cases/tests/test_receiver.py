"""Form submissions with case blocks into ``/a/{project}/receiver/``: OpenRosa answers, every
case block of a form applied or none, a repeated instanceID a no-op."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from casereach.testing.world import Api

V2 = "/a/{project}/api/case/v2/"
NS = "http://commcarehq.org/case/transaction/v2"
OPENROSA = "{http://openrosa.org/http/response}"


def block(case_id: str, *, create: bool = False, prefix: str = "n0", **parts: str) -> str:
    """A case block with the ``n0:``-style prefix phones use; ``parts``: update properties,
    and ``close``/``index`` as raw inner XML."""
    p = f"{prefix}:" if prefix else ""
    xmlns = f'xmlns:{prefix}="{NS}"' if prefix else f'xmlns="{NS}"'
    close = parts.pop("close", None)
    index = parts.pop("index", None)
    inner = ""
    if create:
        inner += (
            f"<{p}create><{p}case_type>mother</{p}case_type><{p}case_name>{case_id} name"
            f"</{p}case_name><{p}owner_id>owner-1</{p}owner_id></{p}create>"
        )
    if parts:
        inner += f"<{p}update>" + "".join(f"<{p}{k}>{v}</{p}{k}>" for k, v in parts.items())
        inner += f"</{p}update>"
    if close is not None:
        inner += f"<{p}close/>"
    if index is not None:
        inner += f"<{p}index>{index}</{p}index>"
    return (
        f'<{p}case {xmlns} case_id="{case_id}" date_modified="2025-03-01T10:00:00.000+03:00" '
        f'user_id="worker-1">{inner}</{p}case>'
    )


def form(*blocks: str, instance_id: str | None = "uuid:form-1") -> bytes:
    meta = (
        f"<instanceID>{instance_id}</instanceID>" if instance_id is not None else ""
    ) + "<userID>worker-1</userID><username>nurse</username>"
    return (
        '<?xml version="1.0"?><data xmlns="http://openrosa.org/formdesigner/ABC" '
        'xmlns:jrm="http://dev.commcarehq.org/jr/xforms">'
        "<question1>yes</question1>"
        f"<group><repeat>{''.join(blocks[1:])}</repeat></group>{blocks[0] if blocks else ''}"
        f'<meta xmlns="http://openrosa.org/jr/xforms">{meta}</meta></data>'
    ).encode()


def submit(
    api: Api, body: bytes, *, path: str = "/a/{project}/receiver/", **kw: Any
) -> tuple[int, str, str]:
    """(status, nature, message) of the OpenRosa answer."""
    r = api.client.post(
        path.replace("{project}", api.project.name),
        body,
        content_type=kw.pop("content_type", "text/xml"),
        HTTP_AUTHORIZATION=kw.pop("auth", api.auth),
    )
    assert r["Content-Type"].startswith("text/xml"), r.content
    root = ET.fromstring(r.content)  # noqa: S314  # our own answer
    assert f"{OPENROSA}OpenRosaResponse" == root.tag
    message = root.find(f"{OPENROSA}message")
    assert message is not None
    return r.status_code, message.get("nature", ""), message.text or ""


def cases(api: Api) -> dict[str, dict[str, Any]]:
    r = api.get(V2, limit="100")
    assert 200 == r.status
    return {
        c["case_id"]: {
            "name": c["case_name"],
            "closed": c["closed"],
            "properties": c["properties"],
            "indices": {k: v["case_id"] for k, v in c["indices"].items()},
        }
        for c in r.body["cases"]
    }


def test_every_case_block_of_a_form_is_applied(api: Api) -> None:
    body = form(
        block("mother-1", create=True, contact_phone_number="254712345678"),
        block(
            "child-1", create=True, prefix="", index='<parent case_type="mother">mother-1</parent>'
        ),
        block("child-2", create=True, prefix="x", weight="3.1"),
    )
    status, nature, _ = submit(api, body)
    assert (201, "submit_success") == (status, nature)
    assert {
        "mother-1": {
            "name": "mother-1 name",
            "closed": False,
            "properties": {"contact_phone_number": "254712345678"},
            "indices": {},
        },
        "child-1": {
            "name": "child-1 name",
            "closed": False,
            "properties": {},
            "indices": {"parent": "mother-1"},
        },
        "child-2": {
            "name": "child-2 name",
            "closed": False,
            "properties": {"weight": "3.1"},
            "indices": {},
        },
    } == cases(api)
    profile = api.get("/a/{project}/api/messaging/v1/contacts/mother-1")
    assert "254712345678" == profile.body["phone"]["number"]


def test_update_close_and_index_removal_in_a_later_form(api: Api) -> None:
    submit(
        api,
        form(
            block("m", create=True),
            block("c", create=True, index='<parent case_type="mother">m</parent>'),
        ),
    )
    later = form(
        block("m", visit="2", close=""),
        block("c", index='<parent case_type="mother"></parent>'),
        instance_id="uuid:form-2",
    )
    assert 201 == submit(api, later)[0]
    assert {
        "m": {"name": "m name", "closed": True, "properties": {"visit": "2"}, "indices": {}},
        "c": {"name": "c name", "closed": False, "properties": {}, "indices": {}},
    } == cases(api)


def test_one_block_that_cannot_apply_fails_the_whole_form(api: Api) -> None:
    body = form(
        block("new-1", create=True),
        block("unknown-case", visit="1"),  # an update of a case that does not exist
    )
    status, nature, message = submit(api, body)
    assert (422, "processing_failure") == (status, nature)
    assert "unknown-case" in message
    assert {} == cases(api)
    body = form(
        block("new-1", create=True),
        block("c2", create=True, index='<parent case_type="x">nowhere</parent>'),
        instance_id="uuid:2",
    )
    status, nature, message = submit(api, body)
    assert (422, "processing_failure", True) == (status, nature, "nowhere" in message)
    assert {} == cases(api)
    # The same instanceID, once it can apply, is applied (a failed form is not remembered).
    assert 201 == submit(api, form(block("new-1", create=True)))[0]
    assert ["new-1"] == list(cases(api))


def test_a_repeated_instance_id_changes_nothing_and_succeeds(api: Api) -> None:
    assert 201 == submit(api, form(block("m", create=True, visit="1")))[0]
    api.put(V2 + "m", {"properties": {"visit": "2"}})
    status, nature, message = submit(api, form(block("m", create=True, visit="1")))
    assert (201, "submit_success") == (status, nature)
    assert "already" in message
    assert "2" == cases(api)["m"]["properties"]["visit"]
    # Another project may use the same instanceID: receipts are per project.


def test_a_form_without_case_blocks_is_a_success(api: Api) -> None:
    assert (201, "submit_success") == submit(api, form())[:2]


def test_the_receiver_api_path_and_multipart(api: Api) -> None:
    assert 201 == submit(api, form(block("a", create=True)), path="/a/{project}/receiver/api/")[0]
    upload = SimpleUploadedFile(
        "form.xml", form(block("b", create=True), instance_id="uuid:b"), "text/xml"
    )
    r = api.client.post(
        f"/a/{api.project.name}/receiver/",
        {"xml_submission_file": upload},
        HTTP_AUTHORIZATION=api.auth,
    )
    assert 201 == r.status_code, r.content
    assert {"a", "b"} == set(cases(api))
    r = api.client.post(
        f"/a/{api.project.name}/receiver/", {"other": "x"}, HTTP_AUTHORIZATION=api.auth
    )
    assert 400 == r.status_code
    assert b"xml_submission_file" in r.content


BAD_FORMS = [
    pytest.param(b"", id="empty"),
    pytest.param(b"<data><meta>", id="not well-formed"),
    pytest.param(b"\xef\xbb\xbfnot xml", id="not xml"),
    pytest.param(
        b'<!DOCTYPE data [<!ENTITY a "xxxxxxxxxx"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b"<data><q>&b;</q></data>",
        id="entity expansion",
    ),
    pytest.param(b'<!DOCTYPE data SYSTEM "http://example.org/x.dtd"><data/>', id="external DTD"),
]


@pytest.mark.parametrize("body", BAD_FORMS)
def test_a_malformed_form_is_a_400_openrosa_answer(api: Api, body: bytes) -> None:
    status, nature, message = submit(api, body)
    assert (400, "submit_error") == (status, nature)
    assert message


def test_bad_case_blocks_are_a_422(api: Api) -> None:
    no_id = f'<n0:case xmlns:n0="{NS}"><n0:close/></n0:case>'
    assert (422, "processing_failure") == submit(api, form(no_id))[:2]
    bad_date = block("m", create=True).replace("2025-03-01T10:00:00.000+03:00", "later")
    assert (422, "processing_failure") == submit(api, form(bad_date))[:2]
    bad_rel = block(
        "m", create=True, index='<parent case_type="x" relationship="cousin">p</parent>'
    )
    assert (422, "processing_failure") == submit(api, form(bad_rel))[:2]
    assert {} == cases(api)


def test_an_oversized_form_is_refused(api: Api) -> None:
    body = form(block("m", create=True, note="x" * (5 * 1024 * 1024)))
    assert (413, "submit_error") == submit(api, body)[:2]
    assert {} == cases(api)


def test_another_projects_key_is_refused(api: Api, other_api: Api) -> None:
    r = other_api.client.post(
        f"/a/{api.project.name}/receiver/",
        form(block("m", create=True)),
        content_type="text/xml",
        HTTP_AUTHORIZATION=other_api.auth,
    )
    assert 403 == r.status_code
    assert {} == cases(api)
    # B submitting a block for A's case under its own project cannot touch it.
    submit(api, form(block("m", create=True)))
    status, nature, _ = submit(other_api, form(block("m", visit="9"), instance_id="uuid:b"))
    assert (422, "processing_failure") == (status, nature)
    status, nature, _ = submit(
        other_api, form(block("m", create=True, visit="9"), instance_id="uuid:c")
    )
    assert (422, "processing_failure") == (status, nature)
    assert {} == cases(api)["m"]["properties"]
