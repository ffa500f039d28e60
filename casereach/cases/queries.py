"""Read helpers for cases: lookups by id and external id, and the v2 list filters."""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Sequence
from urllib.parse import parse_qsl, urlencode

from dateutil import parser as dateparser
from django.db.models import Q, QuerySet

from casereach.cases.models import Case, CaseIndex
from casereach.cases.props import prop_equals
from casereach.cases.xpath import QueryError, parse_query
from casereach.core.errors import BadRequest, NotFound
from casereach.core.timeutil import as_utc
from casereach.projects.models import Project

MAX_LIST = 5000
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def live_cases(project: Project) -> QuerySet[Case]:
    return Case.objects.filter(project=project, deleted=False)


def case_types(project: Project) -> list[str]:
    """The case types the project's live cases use, in name order."""
    return list(
        live_cases(project).order_by("case_type").values_list("case_type", flat=True).distinct()
    )


def get_case(project: Project, case_id: str) -> Case:
    case = live_cases(project).filter(case_id=case_id).first()
    if case is None:
        raise NotFound(f"Case '{case_id}' not found")
    return case


def get_case_by_external_id(project: Project, external_id: str) -> Case:
    found = list(live_cases(project).filter(external_id=external_id)[:10])
    if not found:
        raise NotFound(f"Case '{external_id}' not found")
    if len(found) > 1:
        ids = ", ".join(c.case_id for c in found)
        raise BadRequest(f"Multiple cases found with external_id '{external_id}': {ids}")
    return found[0]


def bulk_fetch(
    project: Project, case_ids: Sequence[str], external_ids: Sequence[str]
) -> tuple[list[Case | dict[str, str]], int, int]:
    """One entry per requested id in request order (case ids first); stubs for missing."""
    if len(case_ids) + len(external_ids) > MAX_LIST:
        raise BadRequest("You cannot request more than 5000 cases per request.")
    by_id = {c.case_id: c for c in live_cases(project).filter(case_id__in=list(case_ids))}
    by_ext: dict[str, Case] = {}
    for c in live_cases(project).filter(external_id__in=list(external_ids)):
        assert c.external_id is not None
        by_ext.setdefault(c.external_id, c)
    out: list[Case | dict[str, str]] = []
    matching = missing = 0
    for cid in case_ids:
        case = by_id.get(cid)
        if case is None:
            out.append({"case_id": cid, "error": "not found"})
            missing += 1
        else:
            out.append(case)
            matching += 1
    for ext in external_ids:
        case = by_ext.get(ext)
        if case is None:
            out.append({"external_id": ext, "error": "not found"})
            missing += 1
        else:
            out.append(case)
            matching += 1
    return out, matching, missing


def parse_date_bound(value: str, qualifier: str) -> tuple[str, dt.datetime]:
    """A v2 date filter value → (ORM lookup, UTC datetime); a date means the whole day."""
    try:
        if _DATE_ONLY.match(value):
            day = dt.datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=dt.UTC)
            if qualifier in ("lte", "gt"):  # the day's last instant (no overflow on 9999-12-31)
                return qualifier, day.replace(hour=23, minute=59, second=59, microsecond=999_999)
            return qualifier, day
        return qualifier, as_utc(dateparser.parse(value))
    except (ValueError, OverflowError):
        raise BadRequest(f"Cannot parse datetime '{value}'") from None


LIST_PARAMS = {"external_id", "case_type", "owner_id", "case_name"}
DATE_PARAMS = {"last_modified", "server_last_modified", "indexed_on", "date_opened", "date_closed"}
FALSE_WORDS = {"", "false", "f", "no", "n", "0"}


def v2_filter(project: Project, params: list[tuple[str, str]]) -> QuerySet[Case]:
    """Build the v2 list query from (name, value) pairs; repeats OR, names AND."""
    qs = live_cases(project)
    grouped: dict[str, list[str]] = {}
    for name, value in params:
        grouped.setdefault(name, []).append(value)
    for name, values in grouped.items():
        if name in ("limit", "cursor", "fields", "exclude", "last_case_id") or name.startswith(
            ("fields.", "exclude.")
        ):
            continue
        if name in LIST_PARAMS:
            qs = qs.filter(**{f"{name}__in": values})
        elif name == "closed":
            qs = qs.filter(closed=values[-1].strip().lower() not in FALSE_WORDS)
        elif name == "include_deprecated":
            continue
        elif name == "query":
            for v in values:
                try:
                    qs = qs.filter(parse_query(v))
                except QueryError as exc:
                    raise BadRequest(f"Bad query: {exc}") from None
        elif name.startswith("properties.") and len(name) > len("properties."):
            prop_name = name[len("properties.") :]
            cond = Q(pk__in=[])
            for v in values:
                cond |= prop_equals(prop_name, v)
            qs = qs.filter(cond)
        elif name.startswith("indices.") and len(name) > len("indices."):
            index = name[len("indices.") :]
            refs = CaseIndex.objects.filter(
                project=project, name=index, referenced_id__in=values
            ).values("case_id")
            qs = qs.filter(case_id__in=refs)
        elif "." in name and name.split(".", 1)[0] in DATE_PARAMS:
            field, qualifier = name.split(".", 1)
            if qualifier not in ("gt", "gte", "lt", "lte"):
                raise BadRequest(f"'{qualifier}' is not a valid type of date range.")
            for v in values:
                lookup, bound = parse_date_bound(v, qualifier)
                qs = qs.filter(**{f"{field}__{lookup}": bound})
        else:
            raise BadRequest(f"'{name}' is not a valid parameter.")
    return qs


def encode_cursor(params: list[tuple[str, str]]) -> str:
    return base64.urlsafe_b64encode(urlencode(params).encode()).decode()


def decode_cursor(cursor: str) -> list[tuple[str, str]]:
    try:
        raw = base64.urlsafe_b64decode(cursor.encode() + b"=" * (-len(cursor) % 4)).decode()
        return parse_qsl(raw, keep_blank_values=True, strict_parsing=True)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("Invalid cursor") from None


def find_case(project: Project, case_id: str) -> Case | None:
    """The case with this id (deleted or not), or None."""
    return Case.objects.filter(project=project, case_id=case_id).first()


def search_cases(
    project: Project, *, q: str = "", case_type: str = "", state: str = "", owner: str = ""
) -> QuerySet[Case]:
    """The web case list: live cases whose name, external id or id contains ``q``, of a case
    type, ``open`` or ``closed`` (anything else: both), of an owner; empty means any."""
    qs = live_cases(project)
    if q:
        qs = qs.filter(
            Q(case_name__icontains=q) | Q(external_id__icontains=q) | Q(case_id__icontains=q)
        )
    if case_type:
        qs = qs.filter(case_type=case_type)
    if state == "open":
        qs = qs.filter(closed=False)
    elif state == "closed":
        qs = qs.filter(closed=True)
    if owner:
        qs = qs.filter(owner_id=owner)
    return qs


def case_choices(project: Project, case_type: str = "", limit: int = 200) -> list[tuple[str, str]]:
    """(case id, case name) of the project's open live cases, of ``case_type`` when given, by
    name: the first ``limit`` (a page's pick list)."""
    qs = live_cases(project).filter(closed=False)
    if case_type:
        qs = qs.filter(case_type=case_type)
    return list(qs.order_by("case_name").values_list("case_id", "case_name")[:limit])
