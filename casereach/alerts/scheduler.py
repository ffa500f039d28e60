"""The scheduler: due schedule instances → firings → messages in the outbox.

One transaction per batch: claim due instances (``FOR UPDATE SKIP LOCKED`` on PostgreSQL;
SQLite's write lock serialises schedulers), record one ``Firing`` per occurrence under a unique
key (so a re-run, a crash or a second scheduler can never fire it twice), write one messaging
event per firing, one sub-event and one message per recipient — failed at once with its error
code when it cannot be sent — and advance each instance to its next occurrence. Everything is
read in bulk for the whole batch.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from django.db import connection, transaction
from django.db.models import Model

from casereach.alerts.actions import (
    GRACE,
    INSTANCE_TABLE,
    Plan,
    last_fired,
    load_views,
    per_recipient_times,
    resolve_user_refs,
    schedule_next,
    spec_of,
)
from casereach.alerts.criteria import CaseView
from casereach.alerts.engine import next_after
from casereach.alerts.models import Alert, Firing
from casereach.alerts.spec import AlertSpec
from casereach.alerts.templates import RenderContext, parse_template, render
from casereach.cases.models import CaseIndex
from casereach.contacts.models import Contact, PhoneEntry
from casereach.contacts.queries import send_order
from casereach.contacts.rules import check_email
from casereach.core import bulk
from casereach.core.ids import time_ordered_id
from casereach.core.segments import analyse
from casereach.core.timeutil import ONE_MICROSECOND, now
from casereach.messaging.content import pick_translation
from casereach.messaging.models import Message, MessagingEvent, MessagingSubEvent
from casereach.projects.actions import lock_project
from casereach.projects.models import Project
from casereach.projects.settings_schema import ProjectSettings, effective_settings

log = logging.getLogger(__name__)

BATCH = 500
EVENT_TABLE = MessagingEvent._meta.db_table
CONTACT_FIELDS = (
    "contact_id",
    "contact_type",
    "name",
    "active",
    "lang_effective",
    "email",
    "email_status",
)


@dataclass
class Target:
    """One recipient of one firing."""

    contact: dict[str, Any] | None = None
    email: str = ""  # an address read from a case property
    error: str | None = None  # NO_RECIPIENT when a recipient rule found nobody


def _source(alert: Alert, spec: AlertSpec) -> str:
    if alert.kind == "conditional":
        return "conditional_alert"
    return "immediate_broadcast" if spec.schedule.type == "immediate" else "scheduled_broadcast"


CLAIM_FIELDS = (
    "id",
    "alert_id",
    "alert_version",
    "project_id",
    "recipient_key",
    "case_id",
    "contact_id",
    "time_zone",
    "start",
    "period",
    "event",
    "next_due",
    "active",
    "start_value",
    "time_value",
    "reset_value",
    "stop_value",
)


class Claimed:
    """A claimed schedule instance: the columns the scheduler reads and writes, without a
    model object (cheaper by far at 500 a batch)."""

    __slots__ = (*CLAIM_FIELDS, "updated_on")
    id: int
    alert_id: int
    alert_version: int
    project_id: int
    recipient_key: str
    case_id: str | None
    contact_id: str | None
    time_zone: str
    start: dt.datetime
    period: int
    event: int
    next_due: dt.datetime | None
    active: bool
    start_value: str
    time_value: str
    reset_value: str
    stop_value: str
    updated_on: dt.datetime | None

    def __init__(self, **values: Any) -> None:
        self.updated_on = None
        self.period = 0
        self.event = 0
        self.next_due = None
        self.active = True
        self.start_value = self.time_value = self.reset_value = self.stop_value = ""
        self.case_id = self.contact_id = None
        for name, value in values.items():
            setattr(self, "id" if name == "pk" else name, value)

    @property
    def pk(self) -> int:
        return self.id


def firing_key(inst: Claimed, due: dt.datetime) -> str:
    stamp = due.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S.%f")
    return f"{inst.alert_id}:{inst.alert_version}:{inst.recipient_key}:{stamp}"


def fire_due(at: dt.datetime | None = None, limit: int = BATCH) -> int:
    """Fire one batch of due instances; returns how many instances were handled."""
    at = at or now()
    with transaction.atomic():
        instances = _claim(at, limit)
        if not instances:
            return 0
        _fire(instances, at)
    return len(instances)


_CLAIM_SQL = (
    f"SELECT {', '.join(CLAIM_FIELDS)} FROM {INSTANCE_TABLE} "
    "WHERE active AND next_due <= %s ORDER BY next_due, id LIMIT %s"
)


def _stamp(value: Any) -> Any:
    """A datetime column as read raw: naive UTC (or its text) on SQLite, aware on
    PostgreSQL."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def _claim(at: dt.datetime, limit: int) -> list[Claimed]:
    """The due instances, oldest first; on PostgreSQL locked, skipping ones another
    scheduler holds (SQLite's write transaction already excludes other schedulers)."""
    sql = _CLAIM_SQL + (" FOR UPDATE SKIP LOCKED" if bulk.is_postgres() else "")
    with connection.cursor() as cursor:
        cursor.execute(sql, [bulk.adapt_datetime(at), limit])
        rows = cursor.fetchall()
    out = []
    for row in rows:
        inst = Claimed(**dict(zip(CLAIM_FIELDS, row, strict=True)))
        inst.start, inst.next_due = _stamp(inst.start), _stamp(inst.next_due)
        inst.active = bool(inst.active)
        out.append(inst)
    return out


def run_until_idle(at: dt.datetime | None = None, max_batches: int = 10_000) -> int:
    total = 0
    for _ in range(max_batches):
        done = fire_due(at)
        total += done
        if done == 0:
            break
    return total


def _fire(instances: Sequence[Claimed], at: dt.datetime) -> None:
    alerts = {a.pk: a for a in Alert.objects.filter(pk__in={i.alert_id for i in instances})}
    keys = {i.pk: firing_key(i, i.next_due or at) for i in instances}
    already = set(
        Firing.objects.filter(bulk.is_in("key", list(keys.values()))).values_list("key", flat=True)
    )
    by_project: dict[int, list[Claimed]] = defaultdict(list)
    stale: list[Claimed] = []
    for inst in instances:
        alert = alerts.get(inst.alert_id)
        if alert is None or not alert.active or alert.version != inst.alert_version:
            stale.append(inst)
            continue
        by_project[inst.project_id].append(inst)
    for inst in stale:
        inst.active, inst.next_due, inst.updated_on = False, None, at
    advanced: list[Claimed] = list(stale)
    for project_id, group in by_project.items():
        project = lock_project(project_id)
        advanced.extend(_fire_project(project, group, alerts, keys, already, at))
    adapt = bulk.adapt_datetime
    bulk.execute_many(
        f"UPDATE {INSTANCE_TABLE} SET next_due = %s, active = %s, period = %s, event = %s, "
        "updated_on = %s WHERE id = %s",
        [
            (adapt(i.next_due), i.active, i.period, i.event, adapt(i.updated_on), i.pk)
            for i in advanced
        ],
    )


def _fire_project(
    project: Project,
    group: Sequence[Claimed],
    alerts: Mapping[int, Alert],
    keys: Mapping[int, str],
    already: set[str],
    at: dt.datetime,
) -> list[Claimed]:
    settings = effective_settings(project.settings)
    case_ids = sorted({i.case_id for i in group if i.case_id})
    views = {v.case_id: v for v in load_views(project.pk, case_ids)} if case_ids else {}
    targets = _targets(project, group, alerts, views)
    contact_ids = {str(t.contact["contact_id"]) for ts in targets.values() for t in ts if t.contact}
    owner_ids = {v.owner_id for v in views.values() if v.owner_id}
    names = (
        dict(
            Contact.objects.filter(bulk.is_in("contact_id", sorted(owner_ids))).values_list(
                "contact_id", "name"
            )
        )
        if owner_ids
        else {}
    )
    phones: dict[str, str] = {}
    for chunk in bulk.in_chunks(sorted(contact_ids)):
        for cid, number in (
            PhoneEntry.objects.filter(bulk.is_in("contact_id", chunk))
            .order_by(*send_order(last_wins=True))
            .values_list("contact_id", "number")
        ):
            phones[cid] = number  # ordered so that the first entry wins
    firings: list[FiringDraft] = []
    events: list[EventDraft] = []
    memo: dict[tuple[Any, ...], tuple[int, int, dt.datetime | None]] = {}
    plans: list[tuple[Claimed, list[tuple[Target, MessageDraft]]]] = []
    advanced: list[Claimed] = []
    for inst in group:
        alert = alerts[inst.alert_id]
        spec = spec_of(alert)
        due = inst.next_due or at
        key = keys[inst.pk]
        late = at - due > dt.timedelta(hours=spec.late_limit_hours)
        if key not in already:
            firings.append(
                FiringDraft(
                    key=key,
                    alert_id=alert.pk,
                    project_id=project.pk,
                    recipient_key=inst.recipient_key,
                    due=due,
                    outcome="skipped_late" if late else "fired",
                    created_on=at,
                )
            )
            events.append(
                EventDraft(
                    project_id=project.pk,
                    source=_source(alert, spec),
                    source_id=str(alert.pk),
                    source_name=alert.name[:255],
                    content_type=spec.channel,
                    triggered_by=f"alert:{alert.pk}",
                    created_on=at,
                )
            )
            view = views.get(inst.case_id or "")
            rows = []
            for target in targets.get(inst.pk, []):
                msg = message_for(project, settings, spec, view, target, names, phones, at)
                if late:
                    hours = (at - due).total_seconds() / 3600
                    msg.status, msg.error_code, msg.failed_on = "failed", "MESSAGE_IS_STALE", at
                    msg.next_attempt_at = None
                    msg.error_detail = (
                        f"skipped: {hours:.1f} h overdue (the alert's late limit is "
                        f"{spec.late_limit_hours} h)"
                    )
                rows.append((target, msg))
            plans.append((inst, rows))
        advanced.append(_advance(alert, spec, inst, due, project, at, memo))
    if not firings:
        return advanced
    EventDraft.insert(events)
    created = events
    for f, e in zip(firings, created, strict=True):
        f.event_id = e.pk
    # The unique key is the last guard: a firing recorded twice fails the whole batch.
    FiringDraft.insert(firings)
    stamp = _stamps(project, sum(len(rows) for _, rows in plans))
    subs: list[SubEventDraft] = []
    msgs: list[MessageDraft] = []
    for (_, rows), event in zip(plans, created, strict=True):
        for target, msg in rows:
            contact = target.contact
            sub = SubEventDraft(
                event_id=event.pk,
                project_id=project.pk,
                contact_id=contact["contact_id"] if contact else None,
                contact_type=contact["contact_type"] if contact else "",
                recipient_name=(contact["name"] if contact else target.email)[:255],
                created_on=at,
                date_last_activity=next(stamp),
            )
            if msg.status == "failed":
                sub.status, sub.error_code = "error", msg.error_code
            subs.append(sub)
    SubEventDraft.insert(subs)
    it = iter(subs)
    for (_, rows), event in zip(plans, created, strict=True):
        statuses = []
        for _, msg in rows:
            sub = next(it)
            msg.event_id, msg.subevent_id = event.pk, sub.pk
            msgs.append(msg)
            statuses.append(msg.status)
        if not rows:
            event.status, event.error_code = "error", "NO_RECIPIENT"
        elif all(s == "failed" for s in statuses):
            event.status, event.error_code = "error", "SUBEVENT_ERROR"
    MessageDraft.insert(msgs)
    failed = [(e.status, e.error_code, e.pk) for e in created if e.status == "error"]
    bulk.execute_many(
        f"UPDATE {EVENT_TABLE} SET status = %s, error_code = %s WHERE id = %s", failed
    )
    return advanced


def _stamps(project: Project, count: int) -> Any:
    """Strictly increasing sub-event activity stamps for this project (locked by the caller)."""
    tick = now()
    if project.last_indexed_on is not None:
        tick = max(tick, project.last_indexed_on + ONE_MICROSECOND)
    last = tick + ONE_MICROSECOND * max(count - 1, 0)
    project.last_indexed_on = last
    project.save(update_fields=["last_indexed_on"])
    return (tick + ONE_MICROSECOND * i for i in range(count))


def _advance(
    alert: Alert,
    spec: AlertSpec,
    inst: Claimed,
    due: dt.datetime,
    project: Project,
    at: dt.datetime,
    memo: dict[tuple[Any, ...], tuple[int, int, dt.datetime | None]],
) -> Claimed:
    memo_key = (
        (alert.pk, inst.start, inst.time_zone, inst.time_value, inst.stop_value, due)
        + (last_fired(inst) or ())
        if not per_recipient_times(spec)
        else None
    )
    if memo_key is not None and memo_key in memo:
        inst.period, inst.event, inst.next_due = memo[memo_key]
        inst.active = inst.next_due is not None
        inst.updated_on = at
        return inst
    plan = Plan(inst.start, inst.start_value, inst.time_value, inst.reset_value, inst.stop_value)
    # Remember which occurrence this was (its local date and event), so that a later zone or
    # time change cannot make the same occurrence due again.
    current = next_after(
        spec,
        plan.start,
        inst.time_zone,
        due - ONE_MICROSECOND,
        time_value=plan.time_value or None,
        key=f"{alert.pk}:{inst.recipient_key}",
    )
    if current is not None and current.due == due and current.local_day is not None:
        inst.period, inst.event = current.local_day.toordinal(), current.event
    # After the occurrence just handled; a long outage does not replay every missed one,
    # only the most recent ones within the grace period are still due next.
    after = max(due, at - dt.timedelta(hours=spec.late_limit_hours) - GRACE)
    nxt = schedule_next(
        alert,
        spec,
        inst.recipient_key,
        plan,
        inst.time_zone,
        after,
        project.time_zone,
        last_fired(inst),
    )
    inst.next_due = nxt
    inst.active = nxt is not None
    inst.updated_on = at
    if memo_key is not None:
        memo[memo_key] = (inst.period, inst.event, nxt)
    return inst


# -- recipients --------------------------------------------------------------------------------


def _targets(
    project: Project,
    group: Sequence[Claimed],
    alerts: Mapping[int, Alert],
    views: Mapping[str, CaseView],
) -> dict[int, list[Target]]:
    """Every instance's recipients, resolved with a fixed number of queries."""
    wanted: dict[int, list[tuple[str, str]]] = {}  # instance → [(kind, contact id or email)]
    children: dict[str, list[str]] = defaultdict(list)
    need_children = {
        inst.case_id
        for inst in group
        if inst.case_id
        and any(r.type == "children" for r in spec_of(alerts[inst.alert_id]).recipients)
    }
    if need_children:
        for chunk in bulk.in_chunks(sorted(need_children)):
            for child, parent in CaseIndex.objects.filter(
                project_id=project.pk, name="parent", referenced_id__in=chunk
            ).values_list("case_id", "referenced_id"):
                children[parent].append(child)
    user_refs: set[str] = set()
    for inst in group:
        alert = alerts[inst.alert_id]
        spec = spec_of(alert)
        if alert.kind == "broadcast":
            wanted[inst.pk] = [("contact", inst.recipient_key)]
            continue
        view = views.get(inst.case_id or "")
        out: list[tuple[str, str]] = []
        for r in spec.recipients:
            if view is None:
                out.append(("none", ""))
            elif r.type == "self":
                out.append(("contact", view.case_id))
            elif r.type == "owner":
                out.append(("contact", view.owner_id) if view.owner_id else ("none", ""))
            elif r.type == "parent":
                out.append(("contact", view.parent_id) if view.parent_id else ("none", ""))
            elif r.type == "children":
                kids = children.get(view.case_id, [])
                out.extend(("contact", k) for k in kids) if kids else out.append(("none", ""))
            elif r.type == "user_property":
                ref = (view.get(r.property or "") or "").strip()
                if ref:
                    user_refs.add(ref)
                    out.append(("user", ref))
                else:
                    out.append(("none", ""))
            elif r.type == "email_property":
                address = (view.get(r.property or "") or "").strip()
                out.append(("email", address) if address else ("none", ""))
        wanted[inst.pk] = out
    users = resolve_user_refs(project, user_refs)
    ids = {v for pairs in wanted.values() for k, v in pairs if k == "contact"}
    ids |= set(users.values())
    contacts: dict[str, dict[str, Any]] = {}
    for chunk in bulk.in_chunks(sorted(ids)):
        for row in Contact.objects.filter(bulk.is_in("contact_id", chunk)).values(*CONTACT_FIELDS):
            contacts[row["contact_id"]] = row
    result: dict[int, list[Target]] = {}
    for inst_pk, pairs in wanted.items():
        targets: list[Target] = []
        seen: set[str] = set()
        for kind, value in pairs:
            if kind == "user":
                value, kind = users.get(value, ""), "contact"
            if kind == "contact":
                contact = contacts.get(value)
                if contact is None:
                    targets.append(Target(error="NO_RECIPIENT"))
                elif value not in seen:
                    seen.add(value)
                    targets.append(Target(contact=contact))
            elif kind == "email":
                targets.append(Target(email=value))
            else:
                targets.append(Target(error="NO_RECIPIENT"))
        result[inst_pk] = targets
    return result


_PARSED: dict[str, list[Any]] = {}


def _render(template: str, ctx: RenderContext) -> str:
    parsed = _PARSED.get(template)
    if parsed is None:
        if len(_PARSED) > 5000:
            _PARSED.clear()
        parsed = _PARSED[template] = parse_template(template)
    return render(parsed, ctx)


class Draft:
    """A row to write, without the cost of a model instance (the due scan builds several per
    recipient). Attribute names are the model's; ``row()`` lays them out as its columns, with
    the model's defaults for the ones never set."""

    model: ClassVar[type[Model]]
    _columns: ClassVar[list[str]]
    _layout: ClassVar[list[tuple[str, Any]]]  # (attname, default) in column order
    _stamp_at: ClassVar[list[int]]  # positions of the datetime columns
    _defaults: ClassVar[dict[str, Any]]
    _auto_id: ClassVar[bool]

    def __init_subclass__(cls) -> None:
        fields = list(cls.model._meta.concrete_fields)
        cls._auto_id = fields[0].get_internal_type() in ("AutoField", "BigAutoField")
        if cls._auto_id:
            fields = fields[1:]
        cls._columns = [str(f.column) for f in fields]
        cls._defaults = {f.attname: (None if f.primary_key else f.get_default()) for f in fields}
        cls._layout = [(f.attname, cls._defaults[f.attname]) for f in fields]
        cls._stamp_at = [
            i for i, f in enumerate(fields) if f.get_internal_type() == "DateTimeField"
        ]

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:  # only reached for a name never set
        try:
            return self._defaults[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self.__dict__[name] = value

    def row(self) -> list[Any]:
        get = self.__dict__.get
        row = [get(n, d) for n, d in self._layout]
        adapt = bulk.adapt_datetime
        for i in self._stamp_at:
            row[i] = adapt(row[i])
        return row

    @classmethod
    def insert(cls, drafts: Sequence[Draft]) -> None:
        """One batch write; with an auto id, each draft gets its ``pk`` back."""
        if not drafts:
            return
        table = cls.model._meta.db_table
        rows = [d.row() for d in drafts]
        if not cls._auto_id:
            bulk.insert(table, cls._columns, rows)
            return
        ids = bulk.insert_rows_returning_ids(table, cls._columns, rows)
        for d, new_id in zip(drafts, ids, strict=True):
            d.pk = new_id


def new_message_id() -> str:
    """A message id, time-ordered as every message's (``core.ids``)."""
    return time_ordered_id()


class MessageDraft(Draft):
    model = Message

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)
        if values.get("id") is None:
            self.__dict__["id"] = new_message_id()


class EventDraft(Draft):
    model = MessagingEvent


class SubEventDraft(Draft):
    model = MessagingSubEvent


class FiringDraft(Draft):
    model = Firing


def message_for(
    project: Project,
    settings: ProjectSettings,
    spec: AlertSpec,
    view: CaseView | None,
    target: Target,
    names: Mapping[str, str],
    phones: Mapping[str, str],
    at: dt.datetime,
) -> Any:
    """The message for one recipient (a Draft): queued, or failed with the reason."""
    contact = target.contact
    msg = MessageDraft(
        project_id=project.pk,
        channel=spec.channel,
        contact_id=contact["contact_id"] if contact else None,
        contact_type=contact["contact_type"] if contact else "",
        created_on=at,
        updated_on=at,
        next_attempt_at=at,
    )
    error = target.error
    language = contact["lang_effective"] if contact else None
    if error is None and contact is not None and not contact["active"]:
        error = "CONTACT_IS_INACTIVE"
    if spec.channel == "sms":
        texts = spec.content.sms
        if error is None:
            if contact is None:
                error = "NO_PHONE_NUMBER"
            else:
                number = phones.get(contact["contact_id"])
                if number is None:
                    error = "NO_PHONE_NUMBER"
                else:
                    msg.phone_number = number
    else:
        assert spec.content.email is not None
        texts = spec.content.email.body
        if error is None:
            if contact is not None:
                msg.email_address = contact["email"]
                if contact["email_status"] == "missing":
                    error = "NO_EMAIL_ADDRESS"
                elif contact["email_status"] == "invalid":
                    error = "ERROR_INVALID_EMAIL_ADDRESS"
            else:
                address, status = check_email(target.email)
                msg.email_address = address or target.email[:320]
                if status != "ok":
                    error = "ERROR_INVALID_EMAIL_ADDRESS"
    template, used = pick_translation(
        texts,
        language,
        project_languages=settings.languages,
        fallback=settings.language_fallback,
        alert_default=spec.default_language,
    )
    if error is None and template is None:
        error = "NO_MESSAGE"
    if template is not None:
        parent = view.parent if view is not None else None
        ctx = RenderContext(
            case_name=view.name if view else None,
            case_properties=view.properties if view else {},
            owner_name=names.get(view.owner_id) if view and view.owner_id else None,
            parent_name=parent.name if parent else None,
            parent_properties=parent.properties if parent else None,
            recipient_name=contact["name"] if contact else None,
        )
        try:
            msg.text = _render(template, ctx)
            if spec.channel == "email" and spec.content.email is not None:
                subject, _ = pick_translation(
                    spec.content.email.subject,
                    used if used != "*" else language,
                    project_languages=settings.languages,
                    fallback="untranslated",
                )
                msg.subject = _render(subject, ctx)[:998] if subject else ""
        except Exception:  # a template that passed validation must render; log if not
            log.exception("alert template failed to render")
            error = error or "CANNOT_RENDER_MESSAGE"
        msg.language = "" if used == "*" else used
    if spec.channel == "sms" and msg.text:
        info = analyse(msg.text)
        msg.segments, msg.encoding = info.segments, info.encoding
    if error is not None:
        msg.status, msg.error_code, msg.failed_on, msg.next_attempt_at = "failed", error, at, None
    return msg
