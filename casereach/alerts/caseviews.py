"""Case views: the cases an alert looks at, read in bulk as ``CaseView`` (with their parent),
and the few contact columns read alongside them (time zones, send-order phone numbers, names).

Two queries per chunk of cases and no model objects: evaluation, the scheduler's batch and the
dry run read thousands at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connection

from casereach.alerts.criteria import CaseView
from casereach.cases.models import Case
from casereach.contacts.models import Contact, PhoneEntry
from casereach.contacts.queries import send_order
from casereach.core import bulk, rows

BATCH = 2000  # cases read (and evaluated) at a time
CASE_TABLE = Case._meta.db_table
CONTACT_TABLE = Contact._meta.db_table


def _parent_id(indices: dict[str, Any]) -> str | None:
    parent = indices.get("parent") if isinstance(indices, dict) else None
    if isinstance(parent, dict):
        value = parent.get("case_id")
        return str(value) if value else None
    return None


def open_case_ids(project_id: int, case_type: str) -> list[str]:
    """Ids of the project's open cases of one type, read in one index scan (paging through
    them by case id would sort every matching case again for every page)."""
    return list(
        Case.objects.filter(
            project_id=project_id, case_type=case_type, closed=False, deleted=False
        ).values_list("case_id", flat=True)
    )


# The columns a CaseView is made of, decoded as the ORM loads them (JSON parsed, booleans).
_CASE = rows.decoder(
    Case,
    "case_id",
    "case_type",
    "case_name",
    "owner_id",
    "properties",
    "indices",
    "closed",
    "deleted",
)
CASE_COLUMNS = _CASE.columns("c")


def _views(found: Iterable[Sequence[Any]], parents: dict[str, CaseView]) -> list[CaseView]:
    """CaseViews of decoded ``_CASE`` rows."""
    out = []
    for case_id, case_type, name, owner_id, properties, indices, closed, deleted in found:
        pid = _row_parent_id(indices)
        out.append(
            CaseView(
                case_id=case_id,
                case_type=case_type,
                properties=properties or {},
                name=name,
                owner_id=owner_id,
                closed=closed,
                deleted=deleted,
                parent_id=pid,
                parent=parents.get(pid) if pid else None,
            )
        )
    return out


def _row_parent_id(indices: Any) -> str | None:
    """The parent case id of a decoded ``indices`` value (most cases have none)."""
    return _parent_id(indices) if indices else None


def _with_parents(found: Sequence[Sequence[Any]], project_id: int | None) -> list[CaseView]:
    parent_ids = {pid for r in found if (pid := _row_parent_id(r[5]))}
    parents: dict[str, CaseView] = {}
    if parent_ids:
        parents = {v.case_id: v for v in load_views(project_id, sorted(parent_ids), parents=False)}
    return _views(found, parents)


def load_views(
    project_id: int | None, case_ids: Sequence[str], *, parents: bool = True
) -> list[CaseView]:
    """Cases (and their parents) as CaseViews: two queries per chunk, no model objects."""
    found: list[Sequence[Any]] = []
    with connection.cursor() as cursor:
        for chunk in bulk.in_chunks(list(case_ids)):
            where, params = bulk.in_sql("c.case_id", chunk)
            cursor.execute(f"SELECT {CASE_COLUMNS} FROM {CASE_TABLE} c WHERE {where}", params)
            found.extend(_CASE.all(cursor.fetchall()))
    if not parents:
        return _views(found, {})
    return _with_parents(found, project_id)


def load_open_views(case_ids: Sequence[str]) -> tuple[list[CaseView], dict[str, str]]:
    """The open cases among ``case_ids`` as CaseViews (with parents), and the effective time
    zone of each one's contact (absent when it has none), read together."""
    found: list[Sequence[Any]] = []
    zones: dict[str, str] = {}
    with connection.cursor() as cursor:
        for chunk in bulk.in_chunks(list(case_ids)):
            where, params = bulk.in_sql("c.case_id", chunk)
            cursor.execute(
                f"SELECT {CASE_COLUMNS}, k.tz_effective FROM {CASE_TABLE} c "
                f"LEFT JOIN {CONTACT_TABLE} k ON k.contact_id = c.case_id "
                f"WHERE {where} AND NOT c.closed AND NOT c.deleted",
                params,
            )
            for row in cursor.fetchall():
                found.append(row[:8])
                if row[8]:
                    zones[row[0]] = row[8]
    return _with_parents(_CASE.all(found), None), zones


def contact_zones(contact_ids: Iterable[str], default: str) -> dict[str, str]:
    out: dict[str, str] = {}
    ids = list(contact_ids)
    for chunk in bulk.in_chunks(ids):
        out.update(
            Contact.objects.filter(bulk.is_in("contact_id", chunk)).values_list(
                "contact_id", "tz_effective"
            )
        )
    return {cid: out.get(cid) or default for cid in ids}


def first_phones(
    contact_ids: Iterable[str], gateways: dict[str, str] | None = None
) -> dict[str, str]:
    """Each contact's number to send to (the first in send order), for those that have one;
    ``gateways``, when given, gets that entry's gateway override ("" for none)."""
    phones: dict[str, str] = {}
    for chunk in bulk.in_chunks(sorted(set(contact_ids))):
        for cid, number, gateway in (
            PhoneEntry.objects.filter(bulk.is_in("contact_id", chunk))
            .order_by(*send_order(last_wins=True))
            .values_list("contact_id", "number", "gateway")
        ):
            phones[cid] = number  # ordered so that the first entry wins
            if gateways is not None:
                gateways[cid] = gateway
    return phones


def contact_names(contact_ids: Iterable[str]) -> dict[str, str]:
    """Contact id → name (a case's owner named in a message), no query when there are none."""
    ids = sorted(set(contact_ids))
    if not ids:
        return {}
    return dict(
        Contact.objects.filter(bulk.is_in("contact_id", ids)).values_list("contact_id", "name")
    )


def contact_warnings(contact_ids: Iterable[str]) -> dict[str, list[Any]]:
    """Contact id → its stored warnings (an unknown time zone, ...)."""
    out: dict[str, list[Any]] = {}
    for chunk in bulk.in_chunks(sorted(set(contact_ids))):
        out.update(
            Contact.objects.filter(bulk.is_in("contact_id", chunk)).values_list(
                "contact_id", "warnings"
            )
        )
    return out
