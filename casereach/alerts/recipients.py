"""Who an alert reaches: one implementation for the scheduler, the dry run and previews.

A recipient slot is an alert, a recipient key (the case of a conditional alert, the contact of
a broadcast) and the case it reads. ``targets_of`` turns a batch of slots into their contacts
(or email addresses, or NO_RECIPIENT) with a fixed number of queries; ``addresses`` reads what
building their messages needs (numbers, owners' names). Also here: the zone a schedule follows
when it names one person other than the case, and a broadcast's recipient list.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from casereach.alerts.caseviews import BATCH, contact_names, contact_zones, first_phones, load_views
from casereach.alerts.criteria import CaseView, matching
from casereach.alerts.models import BROADCAST, CONDITIONAL, Alert
from casereach.alerts.spec import AlertSpec, Recipient, spec_of
from casereach.cases.models import Case, CaseIndex
from casereach.contacts.models import Contact
from casereach.core import bulk
from casereach.core.errors import BadRequest
from casereach.core.timeutil import now
from casereach.projects.models import Project
from casereach.workers.actions import full_username
from casereach.workers.models import MobileWorker

# The contact columns building a message reads.
CONTACT_FIELDS = (
    "contact_id",
    "contact_type",
    "name",
    "active",
    "lang_effective",
    "email",
    "email_status",
    "project_id",
)
NO_RECIPIENT = "NO_RECIPIENT"


class Reaching(Protocol):
    """One recipient slot: a claimed schedule instance, or a dry run's ``Candidate``."""

    @property
    def alert_id(self) -> int: ...
    @property
    def recipient_key(self) -> str: ...
    @property
    def case_id(self) -> str | None: ...


@dataclass(frozen=True)
class Candidate:
    """A recipient slot that has no schedule instance (yet): the dry run's."""

    alert_id: int
    recipient_key: str
    case_id: str | None


@dataclass
class Target:
    """One recipient of one firing."""

    contact: dict[str, Any] | None = None
    email: str = ""  # an address read from a case property
    error: str | None = None  # NO_RECIPIENT when a recipient rule found nobody


@dataclass
class Addresses:
    """What building the messages of a batch reads besides the contacts themselves."""

    phones: dict[str, str] = field(default_factory=dict)  # contact id → number to send to
    names: dict[str, str] = field(default_factory=dict)  # case owner id → name
    # contact id → the gateway override of its number's entry (a survey session's route)
    gateways: dict[str, str] = field(default_factory=dict)


# A recipient rule's answer for one slot, before contacts are read: ("contact", id),
# ("user", a reference read from a case property), ("email", address) or ("none", "").
Wanted = tuple[str, str]
NOBODY: Wanted = ("none", "")


def targets_of(
    project: Project,
    alerts: Mapping[int, Alert],
    slots: Sequence[Reaching],
    views: Mapping[str, CaseView],
) -> list[list[Target]]:
    """Every slot's recipients (in the order of ``slots``), resolved with a fixed number of
    queries: children, named users, then the contacts."""
    children = _children(project, alerts, slots)
    wanted: list[list[Wanted]] = []
    for slot in slots:
        alert = alerts[slot.alert_id]
        if alert.kind == BROADCAST:
            wanted.append([("contact", slot.recipient_key)])
            continue
        view = views.get(slot.case_id or "")
        wanted.append([w for r in spec_of(alert).recipients for w in _wanted(r, view, children)])
    flat = [pair for pairs in wanted for pair in pairs]
    users = resolve_user_refs(project, {v for k, v in flat if k == "user"})
    ids = {v for k, v in flat if k == "contact"} | set(users.values())
    contacts = contact_rows(ids)
    return [_targets(pairs, users, contacts) for pairs in wanted]


def _children(
    project: Project, alerts: Mapping[int, Alert], slots: Sequence[Reaching]
) -> dict[str, list[str]]:
    """Parent case id → its child case ids, for the slots whose alert sends to children."""
    children: dict[str, list[str]] = defaultdict(list)
    need = {
        slot.case_id
        for slot in slots
        if slot.case_id
        and any(r.type == "children" for r in spec_of(alerts[slot.alert_id]).recipients)
    }
    for chunk in bulk.in_chunks(sorted(need)):
        for child, parent in CaseIndex.objects.filter(
            project_id=project.pk, name="parent", referenced_id__in=chunk
        ).values_list("case_id", "referenced_id"):
            children[parent].append(child)
    return children


def _wanted(
    rule: Recipient, view: CaseView | None, children: Mapping[str, list[str]]
) -> list[Wanted]:
    """What one conditional recipient rule names for one case (children: one each)."""
    if view is None:
        return [NOBODY]
    found: Wanted | None = None
    if rule.type == "self":
        found = ("contact", view.case_id)
    elif rule.type == "owner" and view.owner_id:
        found = ("contact", view.owner_id)
    elif rule.type == "parent" and view.parent_id:
        found = ("contact", view.parent_id)
    elif rule.type == "children":
        return [("contact", k) for k in children.get(view.case_id, [])] or [NOBODY]
    elif rule.type == "user_property":
        ref = (view.get(rule.property or "") or "").strip()
        found = ("user", ref) if ref else None
    elif rule.type == "email_property":
        address = (view.get(rule.property or "") or "").strip()
        found = ("email", address) if address else None
    elif rule.type not in ("owner", "parent"):
        return []  # a broadcast's rule type: never on a conditional alert
    return [found or NOBODY]


def _targets(
    pairs: list[Wanted], users: Mapping[str, str], contacts: Mapping[str, dict[str, Any]]
) -> list[Target]:
    """One slot's targets: each contact once, NO_RECIPIENT for every rule that found nobody."""
    targets: list[Target] = []
    seen: set[str] = set()
    for kind, value in pairs:
        if kind == "user":
            value, kind = users.get(value, ""), "contact"
        if kind == "contact":
            contact = contacts.get(value)
            if contact is None:
                targets.append(Target(error=NO_RECIPIENT))
            elif value not in seen:
                seen.add(value)
                targets.append(Target(contact=contact))
        elif kind == "email":
            targets.append(Target(email=value))
        else:
            targets.append(Target(error=NO_RECIPIENT))
    return targets


def contact_rows(contact_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Contact id → its CONTACT_FIELDS, for those that exist."""
    contacts: dict[str, dict[str, Any]] = {}
    for chunk in bulk.in_chunks(sorted(set(contact_ids))):
        for row in Contact.objects.filter(bulk.is_in("contact_id", chunk)).values(*CONTACT_FIELDS):
            contacts[row["contact_id"]] = row
    return contacts


def contact_ids(targets: Iterable[Sequence[Target]]) -> set[str]:
    """The ids of the contacts among a batch's targets."""
    return {str(t.contact["contact_id"]) for ts in targets for t in ts if t.contact}


def addresses(targets: Sequence[Sequence[Target]], views: Iterable[CaseView]) -> Addresses:
    """The numbers of the contacts reached and the names of the cases' owners."""
    gateways: dict[str, str] = {}
    return Addresses(
        names=contact_names(v.owner_id for v in views if v.owner_id),
        phones=first_phones(contact_ids(targets), gateways),
        gateways=gateways,
    )


def resolve_user_refs(project: Project, refs: Iterable[str]) -> dict[str, str]:
    """Mobile-worker references read from case properties → worker ids: a worker id, a full
    username, or a username without the project's domain."""
    wanted = sorted(set(refs))
    users: dict[str, str] = {}
    if not wanted:
        return users
    for wid in MobileWorker.objects.filter(project=project, id__in=wanted).values_list(
        "id", flat=True
    ):
        users[wid] = wid
    full = {full_username(project, r): r for r in wanted if "@" not in r}
    full.update({r: r for r in wanted if "@" in r})
    for wid, username in MobileWorker.objects.filter(
        project=project, username__in=list(full)
    ).values_list("id", "username"):
        users.setdefault(full[username], wid)
    return users


# -- the zone a schedule follows ------------------------------------------------------------------

# Recipient rules naming one person other than the case: an alert with exactly one such rule
# computes its occurrences in that person's zone (SPEC 5: the recipient's time zone).
ZONE_FROM_RECIPIENT = frozenset({"owner", "parent", "user_property"})


def sole_recipient_rule(spec: AlertSpec) -> Any:
    """The recipient rule whose person's zone a conditional alert's times follow, or None when
    they follow the case's zone (the case itself, several rules, children, an email)."""
    if spec.kind != CONDITIONAL or len(spec.recipients) != 1:
        return None
    rule = spec.recipients[0]
    return rule if rule.type in ZONE_FROM_RECIPIENT else None


def recipient_zones(
    project: Project, spec: AlertSpec, views: Sequence[CaseView], case_zones: dict[str, str]
) -> dict[str, str]:
    """Each case's schedule zone: its sole recipient's (owner, parent case or named user) when
    the alert has one such rule, the project's when that person is unknown; else the case's."""
    rule = sole_recipient_rule(spec)
    if rule is None:
        return case_zones
    person: dict[str, str | None] = {}
    if rule.type == "owner":
        person = {v.case_id: v.owner_id for v in views}
    elif rule.type == "parent":
        person = {v.case_id: v.parent_id for v in views}
    else:
        refs = {v.case_id: (v.get(rule.property or "") or "").strip() for v in views}
        users = resolve_user_refs(project, [r for r in refs.values() if r])
        person = {cid: users.get(ref) for cid, ref in refs.items()}
    zones = contact_zones(sorted({p for p in person.values() if p}), project.time_zone)
    return {v.case_id: zones.get(person.get(v.case_id) or "", project.time_zone) for v in views}


# -- broadcasts ------------------------------------------------------------------------------------


def check_recipients(project: Project, spec: AlertSpec) -> None:
    """A broadcast's listed cases and workers must exist: BadRequest naming the first that
    does not (checked when an alert is saved and again when it is activated)."""
    if spec.kind != BROADCAST:
        return
    cases = {str(r.id) for r in spec.recipients if r.type == "case"}
    workers = {str(r.id) for r in spec.recipients if r.type == "worker"}
    known_cases = set(
        Contact.objects.filter(
            project=project, contact_type="case", contact_id__in=sorted(cases)
        ).values_list("contact_id", flat=True)
    )
    known_workers = set(
        MobileWorker.objects.filter(project=project, id__in=sorted(workers)).values_list(
            "id", flat=True
        )
    )
    for r in spec.recipients:
        if r.type == "case" and str(r.id) not in known_cases:
            raise BadRequest(f"recipient case '{r.id}' not found")
        if r.type == "worker" and str(r.id) not in known_workers:
            raise BadRequest(f"recipient worker '{r.id}' not found")


def broadcast_contacts(project: Project, spec: AlertSpec) -> list[str]:
    """The contact ids a broadcast goes to, each once, in the order given."""
    check_recipients(project, spec)
    ids: list[str] = []
    for r in spec.recipients:
        if r.type in ("case", "worker"):
            ids.append(str(r.id))
        elif r.type == "user_group":
            for wid, groups in MobileWorker.objects.filter(
                project=project, is_active=True
            ).values_list("id", "groups"):
                if r.id in (groups or []):
                    ids.append(wid)
        elif r.type == "case_group":
            ids.extend(_case_group(project, r))
    seen: set[str] = set()
    return [i for i in ids if not (i in seen or seen.add(i))]  # type: ignore[func-returns-value]


def _case_group(project: Project, rule: Recipient) -> list[str]:
    """The open cases of a case group's type that match its criteria (all without any)."""
    case_ids = list(
        Case.objects.filter(
            project=project, case_type=rule.case_type, closed=False, deleted=False
        ).values_list("case_id", flat=True)
    )
    today: dt.date = now().astimezone(ZoneInfo(project.time_zone)).date()
    ids: list[str] = []
    for start in range(0, len(case_ids), BATCH):
        views = load_views(project.pk, case_ids[start : start + BATCH])
        if rule.criteria is None:
            ids.extend(v.case_id for v in views)
            continue
        ok = matching(rule.criteria, views, today)
        ids.extend(v.case_id for v, yes in zip(views, ok, strict=True) if yes)
    return ids
