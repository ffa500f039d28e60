"""Case change requests: CommCare's JSON case bodies parsed into typed changes.

Error texts are CommCare's, verbatim, because clients match on them
(reference/commcare-api.md 2.3-2.5).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from dateutil import parser as dateparser

from casereach.core.timeutil import as_utc

Op = Literal["create", "update", "upsert", "upsert_id"]

_XML_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-.]*$")
BASE_FIELDS = frozenset(
    {
        "case_id",
        "case_type",
        "case_name",
        "owner_id",
        "external_id",
        "temporary_id",
        "properties",
        "indices",
        "close",
        "create",
        "last_modified",
        "reopen",
    }
)
MAX_FIELD = 255
MAX_VALUE = 100_000


class ChangeError(ValueError):
    """A problem with one change; its text is shown to the client as is."""


@dataclass
class IndexSpec:
    """An index entry; all ids None means "remove this index"."""

    case_id: str | None = None
    external_id: str | None = None
    temporary_id: str | None = None
    case_type: str = ""
    relationship: str = "child"
    # A forwarded case's index names a case HQ may forward later, or never (repeaters filter
    # by case type): it is kept as it is, not checked against the cases we have.
    may_dangle: bool = False

    @property
    def removes(self) -> bool:
        return not (self.case_id or self.external_id or self.temporary_id)


@dataclass
class CaseChange:
    op: Op
    row: int = 1
    case_id: str | None = None
    external_id: str | None = None
    temporary_id: str | None = None
    case_type: str | None = None
    case_name: str | None = None
    owner_id: str | None = None
    properties: dict[str, str] = field(default_factory=dict)
    indices: dict[str, IndexSpec] = field(default_factory=dict)
    close: bool = False
    reopen: bool = False
    last_modified: dt.datetime | None = None
    user: str = ""
    # The change is the case's whole state (data forwarding): indices it lacks are removed.
    whole_state: bool = False
    # When the case was opened, as HQ says (data forwarding only; the API never sets it): a
    # new case is otherwise stamped with the time it reached us. ``date_only``: HQ sent a
    # date without a time (XML), so a stored stamp of that same day is kept.
    date_opened: dt.datetime | None = None
    date_opened_date_only: bool = False


def valid_xml_name(name: str) -> bool:
    return bool(_XML_NAME.match(name)) and not name.lower().startswith("xml")


def _string(data: dict[str, Any], key: str, *, limit: int = MAX_FIELD) -> str | None:
    if key not in data or data[key] is None:
        return None
    value = data[key]
    if not isinstance(value, str):
        raise ChangeError(f"Property {key} must be a string.")
    if len(value) > limit:
        raise ChangeError(f"Property {key} must be at most {limit} characters.")
    return value


def parse_properties(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ChangeError("Property properties must be an object of string values.")
    out: dict[str, str] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not valid_xml_name(name) or len(name) > MAX_FIELD:
            raise ChangeError(
                f"Error with case property '{name}'. "
                "Case property names must be valid XML identifiers."
            )
        if not isinstance(value, str):
            raise ChangeError(
                f"Error with case property '{name}'. Values must be strings, received '{value}'"
            )
        if len(value) > MAX_VALUE:
            raise ChangeError(
                f"Error with case property '{name}'. Values must be at most {MAX_VALUE} characters."
            )
        out[name] = value
    return out


def parse_indices(raw: Any) -> dict[str, IndexSpec]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ChangeError("Property indices must be an object.")
    out: dict[str, IndexSpec] = {}
    for name, spec in raw.items():
        if not isinstance(name, str) or not valid_xml_name(name):
            raise ChangeError(
                f"Error with index '{name}'. Index names must be valid XML identifiers."
            )
        if not isinstance(spec, dict):
            raise ChangeError(f"Error with index '{name}'. An index must be an object.")
        unknown = set(spec) - {
            "case_id",
            "external_id",
            "temporary_id",
            "case_type",
            "relationship",
        }
        if unknown:
            raise ChangeError(f"'{sorted(unknown)[0]}' is not a valid field.")
        ids = {}
        for key in ("case_id", "external_id", "temporary_id"):
            value = spec.get(key)
            if value is not None and not isinstance(value, str):
                raise ChangeError(f"Property {key} must be a string.")
            if value:
                ids[key] = value
        if len(ids) > 1:
            raise ChangeError(
                "Indices must specify case_id, external_id, or temporary ID, and only one"
            )
        if not ids:
            out[name] = IndexSpec()
            continue
        for key in ("case_type", "relationship"):
            if not isinstance(spec.get(key), str):
                raise ChangeError(
                    f"Property {key} is required when creating or updating case indices"
                )
        relationship = spec["relationship"]
        if relationship not in ("child", "extension"):
            raise ChangeError(
                f"Error with index '{name}'. relationship must be 'child' or 'extension'"
            )
        out[name] = IndexSpec(
            case_id=ids.get("case_id"),
            external_id=ids.get("external_id"),
            temporary_id=ids.get("temporary_id"),
            case_type=spec["case_type"][:MAX_FIELD],
            relationship=relationship,
        )
    return out


def parse_timestamp(value: Any) -> dt.datetime:
    if not isinstance(value, str):
        raise ChangeError("Property last_modified must be a string.")
    try:
        # The standard library's parser first: HQ's forms (…T16:04:54.950000Z) are ISO 8601
        # as it reads them, at a tenth of dateutil's cost (every forwarded case has several).
        return as_utc(dt.datetime.fromisoformat(value))
    except ValueError:
        pass
    try:
        return as_utc(dateparser.isoparse(value))
    except (ValueError, OverflowError):
        raise ChangeError(f"Cannot parse datetime '{value}'") from None


def parse_change(data: Any, *, op: Op, row: int = 1, user: str = "") -> CaseChange:
    """One JSON object → a CaseChange for ``op`` (create / update / upsert)."""
    if not isinstance(data, dict):
        raise ChangeError("Payload must be a single JSON object")
    for key in data:
        if key not in BASE_FIELDS:
            raise ChangeError(f"'{key}' is not a valid field.")
    close = data.get("close", False)
    if not isinstance(close, bool):
        raise ChangeError("Property close must be a boolean.")
    reopen = data.get("reopen", False)
    if not isinstance(reopen, bool):
        raise ChangeError("Property reopen must be a boolean.")
    change = CaseChange(
        op=op,
        row=row,
        case_id=_string(data, "case_id", limit=64),
        external_id=_string(data, "external_id"),
        temporary_id=_string(data, "temporary_id"),
        case_type=_string(data, "case_type"),
        case_name=_string(data, "case_name"),
        owner_id=_string(data, "owner_id"),
        properties=parse_properties(data.get("properties")),
        indices=parse_indices(data.get("indices")),
        close=close,
        reopen=reopen,
        last_modified=(
            parse_timestamp(data["last_modified"])
            if data.get("last_modified") is not None
            else None
        ),
        user=user,
    )
    if op == "create":
        if change.case_id is not None:
            raise ChangeError("You cannot specify case_id when creating a new case")
        require_create_fields(change)
    else:
        if change.temporary_id is not None:
            raise ChangeError("'temporary_id' is not a valid field.")
        if op == "update" and not change.case_id and change.external_id is None:
            raise ChangeError("Case updates must provide either a case_id or external_id")
    return change


def require_create_fields(change: CaseChange) -> None:
    for key in ("case_type", "case_name", "owner_id"):
        if getattr(change, key) is None:
            raise ChangeError(f"Property {key} is required.")


def parse_bulk(items: Any, *, user: str = "") -> list[CaseChange]:
    """A bulk array → changes; every item's error is reported, prefixed by its row."""
    if not isinstance(items, list):
        raise ChangeError("Payload must be a JSON array")
    if len(items) > 100:
        raise ChangeError("You cannot submit more than 100 updates in a single request")
    changes: list[CaseChange] = []
    errors: list[str] = []
    for row, item in enumerate(items, start=1):
        try:
            if not isinstance(item, dict):
                raise ChangeError("Each update must be a JSON object")
            if "create" not in item:
                raise ChangeError("A 'create' flag is required for each update.")
            flag = item["create"]
            body = {k: v for k, v in item.items() if k != "create"}
            if flag is True:
                changes.append(parse_change(body, op="create", row=row, user=user))
            elif flag is False:
                changes.append(parse_change(body, op="update", row=row, user=user))
            elif flag is None:
                if not body.get("external_id") or body.get("case_id") is not None:
                    raise ChangeError(
                        'The UPSERT operation requires "create": null with "external_id" '
                        'set and "case_id" not set'
                    )
                changes.append(parse_change(body, op="upsert", row=row, user=user))
            else:
                raise ChangeError("'create' must be true, false or null")
        except ChangeError as exc:
            errors.append(f"Error in row {row}: {exc}")
    if errors:
        raise ChangeError("; ".join(errors))
    return changes
