"""CommCare's case XML and forwarded case JSON, parsed into the changes the case write path
takes (reference/commcare-api.md 6). Pure: no database, no request.

- ``forwarded_xml`` / ``forwarded_json``: one case per body, its whole current state, as HQ's
  case repeaters send it (data forwarding).
- ``form_submission``: every case block of an XForm submission, with its ``meta/instanceID``.

XML is read only without a DTD (so no entity can be declared, expanded or fetched) and only
up to ``MAX_XML_BYTES``: the checks defusedxml makes, with the standard library's expat.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from casereach.cases.changes import (
    MAX_FIELD,
    CaseChange,
    ChangeError,
    IndexSpec,
    parse_properties,
    parse_timestamp,
)
from casereach.core import text

CASE_NS = "http://commcarehq.org/case/transaction/v2"
MAX_XML_BYTES = 5 * 1024 * 1024  # a form with many case blocks; far past one case's state
MAX_CASE_ID = 64
MAX_USER = 150
CREATE_FIELDS = ("case_type", "case_name", "owner_id")
BUILTINS = frozenset({*CREATE_FIELDS, "external_id"})
# Not a property: HQ's opening date, which a forwarded case's ``date_opened`` takes (a form's
# or a partial block's is ignored: the case's opening stamp is then ours).
IGNORED_UPDATES = frozenset({"date_opened"})


class PayloadError(ValueError):
    """A body that cannot be read at all (not XML, not JSON, a DTD, too large); its text is
    shown to the client. ``too_large`` is a 413, the rest are 400s."""

    def __init__(self, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


@dataclass
class Forwarded:
    """One forwarded case: its whole state as a change, and HQ's server modification time
    (the stale guard; None when HQ sent neither the header nor ``server_date_modified``)."""

    change: CaseChange
    server_modified: dt.datetime | None


@dataclass
class Submission:
    """A form's case blocks, in document order, and its ``instanceID`` (None when absent)."""

    instance_id: str | None
    changes: list[CaseChange] = field(default_factory=list)


# --- XML ------------------------------------------------------------------------------------


def parse_xml(raw: bytes) -> ET.Element:
    """The document's root element; PayloadError for a document that is too large, not
    well-formed, or has a DOCTYPE (entities are declared only there)."""
    if len(raw) > MAX_XML_BYTES:
        raise PayloadError(f"XML document too large: at most {MAX_XML_BYTES} bytes", too_large=True)
    if not raw.strip():
        raise PayloadError("empty body: an XML document is required")
    try:
        # defusedxml: a DOCTYPE (where entities are declared), an entity or an external
        # reference is refused before anything is expanded.
        root: ET.Element = SafeET.fromstring(raw, forbid_dtd=True)
    except DefusedXmlException:
        raise PayloadError("DTDs and XML entity declarations are not accepted") from None
    except ET.ParseError as exc:
        raise PayloadError(f"malformed XML: {exc}") from None
    return root


def local(tag: Any) -> str:
    """An element's name without its namespace (``{ns}update`` → ``update``)."""
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def namespace(tag: Any) -> str:
    return tag[1:].split("}", 1)[0] if isinstance(tag, str) and tag.startswith("{") else ""


def is_case_block(elem: ET.Element) -> bool:
    return local(elem.tag) == "case" and namespace(elem.tag) == CASE_NS


def _limited(name: str, value: str, limit: int = MAX_FIELD) -> str:
    if len(value) > limit:
        raise ChangeError(f"Property {name} must be at most {limit} characters.")
    return value


def _opt_limited(name: str, value: str | None) -> str | None:
    return None if value is None else _limited(name, value)


def _timestamp(value: str | None, name: str) -> dt.datetime | None:
    if value is None or not value.strip():
        return None
    try:
        return parse_timestamp(value.strip())
    except ChangeError:
        raise ChangeError(f"{name}: cannot parse datetime '{value[:100]}'") from None


def _xml_indices(index: ET.Element, *, dangle: bool) -> dict[str, IndexSpec]:
    out: dict[str, IndexSpec] = {}
    for child in index:
        name = local(child.tag)
        target = (child.text or "").strip()
        if not target:
            out[name] = IndexSpec()
            continue
        relationship = child.get("relationship") or "child"
        if relationship not in ("child", "extension"):
            raise ChangeError(
                f"Error with index '{name}'. relationship must be 'child' or 'extension'"
            )
        out[name] = IndexSpec(
            case_id=_limited(f"index {name}", target, MAX_CASE_ID),
            case_type=_limited("case_type", child.get("case_type") or ""),
            relationship=relationship,
            may_dangle=dangle,
        )
    return out


def block_change(
    elem: ET.Element, *, row: int = 1, user: str = "", forwarded: bool = False
) -> CaseChange:
    """One ``<case>`` block → a change. With ``create`` it creates the case or, when it
    exists, updates it (HQ's forwarding sends ``create`` with every state); without, the case
    must exist. ``forwarded``: the block is the case's whole state (HQ's repeater)."""
    case_id = (elem.get("case_id") or "").strip()
    if not case_id:
        raise ChangeError("a case block needs a case_id attribute")
    parts: dict[str, ET.Element] = {}
    for child in elem:
        parts.setdefault(local(child.tag), child)
    create, update, index = parts.get("create"), parts.get("update"), parts.get("index")
    builtins: dict[str, str] = {}
    props: dict[str, str] = {}
    opened: str | None = None
    if create is not None:
        for child in create:
            if local(child.tag) in CREATE_FIELDS:
                builtins[local(child.tag)] = child.text or ""
        for name in CREATE_FIELDS:
            builtins.setdefault(name, "")  # as HQ's CaseBlock writes an unset one
    for child in update if update is not None else ():
        name = local(child.tag)
        if name in BUILTINS:
            builtins[name] = child.text or ""
        elif name == "date_opened":
            opened = child.text
        elif name not in IGNORED_UPDATES:
            props[name] = child.text or ""
    whole = forwarded and create is not None
    if whole:
        builtins.setdefault("external_id", "")  # absent from the state: the case has none
    close = "close" in parts
    date_opened = _timestamp(opened, "date_opened") if whole else None
    return CaseChange(
        op="upsert_id" if create is not None else "update",
        row=row,
        case_id=_limited("case_id", case_id, MAX_CASE_ID),
        case_type=_opt_limited("case_type", builtins.get("case_type")),
        case_name=_opt_limited("case_name", builtins.get("case_name")),
        owner_id=_opt_limited("owner_id", builtins.get("owner_id")),
        external_id=_opt_limited("external_id", builtins.get("external_id")),
        properties=parse_properties(props),
        indices=_xml_indices(index, dangle=forwarded) if index is not None else {},
        close=close,
        reopen=whole and not close,
        last_modified=_timestamp(elem.get("date_modified"), "date_modified"),
        user=(elem.get("user_id") or user)[:MAX_USER],
        whole_state=whole,
        date_opened=date_opened,
        date_opened_date_only=date_opened is not None and _date_only(opened),
    )


def _date_only(value: str | None) -> bool:
    return value is not None and "T" not in value.strip() and " " not in value.strip()


def forwarded_xml(raw: bytes, *, user: str = "") -> Forwarded:
    """HQ's XML case forwarding body: one ``<case>`` element of the v2 namespace."""
    root = parse_xml(raw)
    if not is_case_block(root):
        raise PayloadError(f"the XML body must be one <case> element of the namespace {CASE_NS}")
    return Forwarded(block_change(root, user=user, forwarded=True), None)


def form_submission(raw: bytes, *, user: str = "") -> Submission:
    """Every case block of an XForm (anywhere in its tree, any prefix), in document order."""
    root = parse_xml(raw)
    instance_id = None
    meta_user = ""
    for elem in root.iter():
        if local(elem.tag) != "meta":
            continue
        for child in elem:
            name, value = local(child.tag), (child.text or "").strip()
            if name == "instanceID" and value and instance_id is None:
                instance_id = _limited("instanceID", value)
            elif name == "userID" and value and not meta_user:
                meta_user = value
    blocks = [e for e in root.iter() if is_case_block(e)]
    changes = []
    for row, block in enumerate(blocks, start=1):
        try:
            changes.append(block_change(block, row=row, user=meta_user or user))
        except ChangeError as exc:
            raise ChangeError(f"case block {row}: {exc}") from None
    # A block may index a case that another block of the same form creates, before or after
    # it (HQ checks indices once the whole form is applied): those references stand as they are.
    created = {c.case_id for c in changes if c.op == "upsert_id"}
    for change in changes:
        for spec in change.indices.values():
            spec.may_dangle = spec.case_id in created
    return Submission(instance_id, changes)


# --- JSON -----------------------------------------------------------------------------------


def _json_string(data: dict[str, Any], key: str, *, limit: int = MAX_FIELD) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ChangeError(f"Property {key} must be a string.")
    return _limited(key, value, limit)


def _json_indices(raw: Any) -> dict[str, IndexSpec]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ChangeError("Property indices must be an object.")
    out: dict[str, IndexSpec] = {}
    for name, spec in raw.items():
        if not isinstance(spec, dict):
            raise ChangeError(f"Error with index '{name}'. An index must be an object.")
        target = _json_string(spec, "case_id", limit=MAX_CASE_ID)
        if not target:
            out[name] = IndexSpec()
            continue
        relationship = _json_string(spec, "relationship") or "child"
        if relationship not in ("child", "extension"):
            raise ChangeError(
                f"Error with index '{name}'. relationship must be 'child' or 'extension'"
            )
        out[name] = IndexSpec(
            case_id=target,
            case_type=_json_string(spec, "case_type") or "",
            relationship=relationship,
            may_dangle=True,
        )
    parse_properties({name: "" for name in out})  # names: the same rule as properties
    return out


def forwarded_json(raw: bytes, *, user: str = "") -> Forwarded:
    """HQ's JSON case forwarding body (the lite case serializer)."""
    try:
        data = text.parse_json(raw)
    except ValueError:
        raise PayloadError("Payload must be valid JSON") from None
    if not isinstance(data, dict):
        raise PayloadError("Payload must be a single JSON object")
    case_id = _json_string(data, "case_id", limit=MAX_CASE_ID)
    if not case_id:
        raise ChangeError("Property case_id is required.")
    closed = data.get("closed", False)
    if not isinstance(closed, bool):
        raise ChangeError("Property closed must be a boolean.")
    raw_props = data.get("properties", {})
    if not isinstance(raw_props, dict):
        raise ChangeError("Property properties must be an object of string values.")
    builtins = {k: _json_string(raw_props, k) for k in (*CREATE_FIELDS, "external_id")}
    opened = _json_string(raw_props, "date_opened")
    dynamic = {
        k: v
        for k, v in raw_props.items()
        if k not in BUILTINS and k not in IGNORED_UPDATES and v is not None
    }
    change = CaseChange(
        op="upsert_id",
        case_id=case_id,
        case_type=builtins["case_type"] or "",
        case_name=builtins["case_name"] or "",
        owner_id=builtins["owner_id"] or "",
        external_id=builtins["external_id"] or "",
        properties=parse_properties(dynamic),
        indices=_json_indices(data.get("indices")),
        close=closed,
        reopen=not closed,
        last_modified=_timestamp(_json_string(data, "date_modified"), "date_modified"),
        user=(_json_string(data, "user_id") or user)[:MAX_USER],
        whole_state=True,
        date_opened=_timestamp(opened, "date_opened"),
        date_opened_date_only=_date_only(opened),
    )
    server = _timestamp(_json_string(data, "server_date_modified"), "server_date_modified")
    return Forwarded(change, server)
