"""Read helpers for contacts: the contact profile (SPEC 3.9), the phone-entry list and the
data-quality report.

Two-way *status* is not stored on the contact (it depends on other contacts), so every reader
here derives it from PhoneEntry rows with a fixed number of queries, whatever the size of the
project.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import BooleanField, ExpressionWrapper, OrderBy, Q, QuerySet

from casereach.contacts.models import Contact, PhoneEntry
from casereach.contacts.rules import UNUSABLE_PHONE, warning
from casereach.core import bulk
from casereach.core.bulk import IN_CHUNK
from casereach.core.errors import BadRequest, NotFound
from casereach.core.timeutil import iso
from casereach.projects.models import Project
from casereach.projects.settings_schema import ProjectSettings, effective_settings

ANOTHER_PROJECT = "another project"
ENTRY_STATUSES = ("two_way", "one_way", "pending", "conflict")
MAX_LIMIT = 1000
_NUMBER_STRIP = str.maketrans("", "", " \t\r\n\v\f()-.+\u00a0")


_TWO_WAY = ExpressionWrapper(Q(holder=True, pending=False), output_field=BooleanField())


def send_order(*, last_wins: bool = False) -> tuple[OrderBy | str, ...]:
    """The order of a contact's phone entries in which the first is the one SMS go to: its
    two-way number (held, verification done) when it has one, otherwise its first number
    (CommCare's rule for a mobile worker with several numbers; a case has one entry).

    ``last_wins`` reverses it, for loops that keep the last entry seen per contact.
    """
    if last_wins:
        return (_TWO_WAY.asc(), "-position", "-id")
    return (_TWO_WAY.desc(), "position", "id")


def normalise_number_filter(value: str) -> str:
    """A number as typed by a person (``+254 712-345 678``) in stored form (digits only)."""
    return value.translate(_NUMBER_STRIP)


@dataclass(frozen=True)
class _Holder:
    contact_id: str
    project_id: int
    project_name: str
    pending: bool


def _holders(numbers: Iterable[str]) -> dict[str, _Holder]:
    """The two-way holder of each number, in any project (one query per 900 numbers)."""
    todo = sorted(set(numbers))
    found: dict[str, _Holder] = {}
    for chunk in bulk.chunks(todo, IN_CHUNK):
        rows = PhoneEntry.objects.filter(number__in=chunk, holder=True).values_list(
            "number", "contact_id", "project_id", "project__name", "pending"
        )
        for number, contact_id, project_id, project_name, pending in rows:
            found[number] = _Holder(contact_id, project_id, project_name, pending)
    return found


def _held_by(holder: _Holder | None, project: Project) -> dict[str, str | None] | None:
    if holder is None:
        return None
    if holder.project_id == project.pk:
        return {"contact_id": holder.contact_id, "project": project.name}
    return {"contact_id": None, "project": ANOTHER_PROJECT}


def _conflict_warning(held_by: dict[str, str | None] | None) -> dict[str, str]:
    if held_by is None:
        return warning("two_way_conflict")
    if held_by["contact_id"] is None:
        return warning("two_way_conflict", "held by a contact in another project")
    return warning("two_way_conflict", f"held by contact {held_by['contact_id']}")


def contact_warnings(
    stored: Iterable[dict[str, str]] | None,
    phone_reason: str | None,
    phone_raw: str,
    conflicts: Iterable[dict[str, str | None] | None],
    unknown_gateway: str,
) -> list[dict[str, str]]:
    """Every warning of one contact, in order: the one decision behind the profile's
    ``warnings``, the data-quality report and the badges of the UI's lists.

    ``stored`` come from the contact's own data; a number that was given but refused (its
    ``phone_reason`` one of UNUSABLE_PHONE) warns with that reason; each of ``conflicts``
    (the holder of a number this contact asks two-way for) is a ``two_way_conflict``;
    ``unknown_gateway`` is the override naming no usable gateway, or empty.
    """
    found: list[dict[str, str]] = list(stored or [])
    if phone_reason in UNUSABLE_PHONE:
        codes = {w["code"] for w in found}
        if phone_reason not in codes:
            found.append(warning(phone_reason, _masked(phone_raw)))
    for held_by in conflicts:
        found.append(_conflict_warning(held_by))
    if unknown_gateway:
        found.append(warning("unknown_gateway", unknown_gateway[:64]))
    return found


def _masked(raw: str) -> str:
    value = raw.strip()
    return value if len(value) <= 6 else value[:3] + "…" + value[-3:]


@dataclass(frozen=True)
class _EntryState:
    status: str
    reason: str | None
    held_by: dict[str, str | None] | None

    @property
    def conflict(self) -> bool:
        return self.reason == "two_way_conflict"


def _entry_state(entry: PhoneEntry, holders: dict[str, _Holder], project: Project) -> _EntryState:
    if entry.holder:
        return _EntryState("pending" if entry.pending else "two_way", None, None)
    if entry.verified_requested:
        return _EntryState(
            "one_way", "two_way_conflict", _held_by(holders.get(entry.number), project)
        )
    return _EntryState("one_way", "not_verified", None)


def resolve_gateway_for_profile(
    gateway_requested: str, settings: ProjectSettings
) -> tuple[dict[str, str | None], list[dict[str, str]]]:
    """The gateway a contact's SMS would use, as the profile shows it, plus its warnings.

    Placeholder until gateways exist: the gateways issue will replace this with the real
    lookup (contact override by name → prefix route → project default → global routes), so no
    name can be found yet and every named gateway is ``unknown_gateway``.
    """
    if gateway_requested:
        return (
            {"name": gateway_requested, "source": "contact", "status": "unknown_gateway"},
            [warning("unknown_gateway", gateway_requested[:64])],
        )
    if settings.default_gateway:
        return (
            {
                "name": settings.default_gateway,
                "source": "project_default",
                "status": "unknown_gateway",
            },
            [],
        )
    return {"name": None, "source": "none", "status": "no_gateway"}, []


# Apps above contacts (gateways, messaging) extend the profile without contacts importing
# them: each hook may amend the profile dict in place (see their AppConfig.ready()).
ProfileHook = Callable[[Project, Contact, dict[str, Any]], None]
UnknownGatewaysHook = Callable[[Project, set[str]], set[str]]
PROFILE_HOOKS: list[ProfileHook] = []
UNKNOWN_GATEWAYS_HOOK: list[UnknownGatewaysHook] = []


def register_profile_hook(hook: ProfileHook) -> None:
    if hook not in PROFILE_HOOKS:
        PROFILE_HOOKS.append(hook)


def register_unknown_gateways_hook(hook: UnknownGatewaysHook) -> None:
    UNKNOWN_GATEWAYS_HOOK[:] = [hook]


def _unknown_gateways(project: Project, names: Iterable[str]) -> set[str]:
    """Which contact gateway overrides name no gateway available to the project."""
    wanted = {n for n in names if n}
    if UNKNOWN_GATEWAYS_HOOK:
        return UNKNOWN_GATEWAYS_HOOK[0](project, wanted)
    return wanted


def _entry_row(
    entry: PhoneEntry, project: Project, state: _EntryState | None = None
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "number": entry.number,
        "position": entry.position,
        "verified_requested": entry.verified_requested,
        "gateway": entry.gateway or None,
        "registered_on": iso(entry.registered_on),
    }
    if state is not None:
        row.update(status=state.status, reason=state.reason, held_by=state.held_by)
    return row


def contact_profile(project: Project, contact_id: str) -> dict[str, Any]:
    """The effective messaging profile of one contact (SPEC 3.9); three queries."""
    contact = Contact.objects.filter(project=project, contact_id=contact_id).first()
    if contact is None:
        raise NotFound(f"Contact '{contact_id}' not found")
    entries = list(PhoneEntry.objects.filter(contact=contact).order_by("position", "number"))
    two_way = next((e for e in entries if e.holder and not e.pending), None)
    holders = _holders(e.number for e in entries if e.verified_requested and not e.holder)
    states = {e.number: _entry_state(e, holders, project) for e in entries}
    settings = effective_settings(project.settings)

    unknown = _unknown_gateways(project, {contact.gateway_requested})
    warnings = contact_warnings(
        contact.warnings,
        contact.phone_reason,
        contact.phone_raw,
        [states[n].held_by for n in sorted(states) if states[n].conflict],
        contact.gateway_requested if contact.gateway_requested in unknown else "",
    )

    # The number SMS go to (send_order): the two-way one, else the first.
    primary = two_way or next((e for e in entries if e.number == contact.phone_number), None)
    if primary is not None:
        state = states[primary.number]
        phone_status, reason, held_by = state.status, state.reason, state.held_by
    else:
        reason = contact.phone_reason
        phone_status = "invalid" if reason == "strict_invalid" else "none"
        held_by = None
    phone = {
        "number": primary.number if primary is not None else contact.phone_number,
        "status": phone_status,
        "reason": reason,
        "verified_requested": contact.verified_requested,
        "held_by": held_by,
        "raw": contact.phone_raw,
    }

    gateway, _ = resolve_gateway_for_profile(contact.gateway_requested, settings)

    profile: dict[str, Any] = {
        "contact_id": contact.contact_id,
        "contact_type": contact.contact_type,
        "project": project.name,
        "name": contact.name,
        "active": contact.active,
        # Filled in by the messaging app's profile hook (in the viewing project's scope).
        "opted_out": False,
        "opt_outs": [],
        "phone": phone,
        "email": {"address": contact.email or None, "status": contact.email_status},
        "time_zone": {
            "effective": contact.tz_effective,
            "source": contact.tz_source,
            "requested": contact.tz_requested or None,
        },
        "language": {
            "effective": contact.lang_effective,
            "source": contact.lang_source,
            "requested": contact.lang_requested or None,
        },
        "gateway": gateway,
        "warnings": warnings,
        "upcoming": [],
    }
    if contact.contact_type == Contact.WORKER:
        profile["phones"] = [_entry_row(e, project, states[e.number]) for e in entries]
    for hook in PROFILE_HOOKS:
        hook(project, contact, profile)
    return profile


def _entries_query(
    project: Project, number: str | None, status: str | None
) -> QuerySet[PhoneEntry]:
    qs = PhoneEntry.objects.filter(project=project)
    if number is not None and number.strip():
        qs = qs.filter(number=normalise_number_filter(number))
    if status is None or status == "":
        return qs
    if status == "two_way":
        return qs.filter(holder=True, pending=False)
    if status == "pending":
        return qs.filter(pending=True)
    if status == "one_way":
        return qs.filter(holder=False)
    if status == "conflict":
        return qs.filter(holder=False, verified_requested=True)
    raise BadRequest(
        f"unknown status {status!r}; use one of {', '.join(ENTRY_STATUSES)}",
        {"status": status, "allowed": list(ENTRY_STATUSES)},
    )


def entry_row(entry: PhoneEntry, project: Project) -> dict[str, Any]:
    """One phone entry as the phone-numbers API shows it."""
    return {
        "number": entry.number,
        "contact_id": entry.contact_id,
        "contact_type": entry.contact_type,
        "project": project.name,
        "two_way": entry.holder and not entry.pending,
        "pending": entry.pending,
        "verified_requested": entry.verified_requested,
        "registered_on": iso(entry.registered_on),
        "gateway": entry.gateway or None,
    }


def contact_names(project: Project, contact_ids: Iterable[str]) -> dict[str, str]:
    """The names of these contacts of ``project`` (ids it does not have are left out)."""
    return dict(
        Contact.objects.filter(project=project, contact_id__in=list(contact_ids)).values_list(
            "contact_id", "name"
        )
    )


def phone_entries(
    project: Project,
    number: str | None = None,
    status: str | None = None,
    limit: int = 20,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """This project's phone entries (never another project's), filtered and paged; returns
    (rows, total_count)."""
    if limit < 1 or limit > MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}")
    if offset < 0:
        raise BadRequest("offset must not be negative")
    qs = _entries_query(project, number, status)
    total = qs.count()
    page = qs.order_by("number", "registered_on", "id")[offset : offset + limit]
    return [entry_row(e, project) for e in page], total


_WARNING_FIELDS = ("contact_id", "phone_reason", "phone_raw", "gateway_requested", "warnings")


def _conflicts(entries: QuerySet[PhoneEntry]) -> dict[str, list[str]]:
    """The numbers each contact asks two-way for without holding them."""
    found: dict[str, list[str]] = defaultdict(list)
    for contact_id, number in entries.filter(verified_requested=True, holder=False).values_list(
        "contact_id", "number"
    ):
        found[contact_id].append(number)
    return found


def _decide(
    project: Project, contacts: list[dict[str, Any]], conflicts: dict[str, list[str]]
) -> dict[str, list[dict[str, str]]]:
    """``contact_warnings`` for a batch of contact rows (two queries)."""
    holders = _holders(n for numbers in conflicts.values() for n in numbers)
    unknown = _unknown_gateways(project, {c["gateway_requested"] for c in contacts})
    return {
        c["contact_id"]: contact_warnings(
            c["warnings"],
            c["phone_reason"],
            c["phone_raw"],
            [
                _held_by(holders.get(number), project)
                for number in sorted(conflicts.get(c["contact_id"], []))
            ],
            c["gateway_requested"] if c["gateway_requested"] in unknown else "",
        )
        for c in contacts
    }


def warnings_of(project: Project, contacts: Sequence[Contact]) -> dict[str, list[dict[str, str]]]:
    """The warnings of each of these contacts (a page of a list), exactly as their profiles
    and the data-quality report give them; a few queries whatever the page size."""
    rows = [{f: getattr(c, f) for f in _WARNING_FIELDS} for c in contacts if c.active]
    ids = [r["contact_id"] for r in rows]
    conflicts: dict[str, list[str]] = {}
    for chunk in bulk.chunks(ids, IN_CHUNK):
        conflicts.update(_conflicts(PhoneEntry.objects.filter(contact_id__in=chunk)))
    return _decide(project, rows, conflicts)


def data_quality(project: Project) -> list[dict[str, Any]]:
    """Every active contact of ``project`` with a warning, set-based (a handful of queries).

    The warnings are ``contact_warnings``'s, as in the profile: stored ones from the contact's
    own data, a refused number (``not_digits``, ``too_short``, …), ``two_way_conflict`` (which
    depends on other contacts) and ``unknown_gateway`` (which depends on the gateways).
    """
    fields = (
        "contact_id",
        "contact_type",
        "name",
        "phone_number",
        "phone_raw",
        "phone_reason",
        "gateway_requested",
        "warnings",
    )
    active = Contact.objects.filter(project=project, active=True)
    contacts: dict[str, dict[str, Any]] = {
        row["contact_id"]: row for row in active.filter(has_warnings=True).values(*fields)
    }
    for row in active.filter(~Q(gateway_requested="") | Q(phone_reason__in=UNUSABLE_PHONE)).values(
        *fields
    ):
        contacts.setdefault(row["contact_id"], row)

    conflicts = _conflicts(PhoneEntry.objects.filter(project=project))
    missing = sorted(set(conflicts) - set(contacts))
    for chunk in bulk.chunks(missing, IN_CHUNK):
        for row in active.filter(contact_id__in=chunk).values(*fields):
            contacts[row["contact_id"]] = row
    decided = _decide(project, list(contacts.values()), conflicts)

    rows: list[dict[str, Any]] = []
    for c in contacts.values():
        found = decided[c["contact_id"]]
        if not found:
            continue
        rows.append(
            {
                "contact_id": c["contact_id"],
                "contact_type": c["contact_type"],
                "name": c["name"],
                "phone": c["phone_number"] or c["phone_raw"] or None,
                "warnings": [w["code"] for w in found],
                "messages": [w["message"] for w in found],
            }
        )
    rows.sort(key=lambda r: (r["name"].lower(), r["contact_id"]))
    return rows


DATA_QUALITY_COLUMNS: Sequence[str] = (
    "contact_id",
    "contact_type",
    "name",
    "phone",
    "warnings",
    "messages",
)
