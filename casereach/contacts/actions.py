"""The only writers of contacts and phone entries.

``do_sync_contacts`` is the one path from a batch of case/worker changes to contacts: it is
set-based (a fixed number of statements per batch, whatever its size) and must run inside the
transaction that wrote the cases, so a contact never disagrees with its case.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from django.db import connection, transaction

from casereach.contacts.models import Contact, PhoneEntry
from casereach.contacts.rules import ContactSource, DerivedContact, ProjectRules, derive
from casereach.core import bulk, rows
from casereach.core.bulk import IN_CHUNK
from casereach.core.errors import BadRequest, Conflict, NotFound
from casereach.core.timeutil import now
from casereach.projects.models import Project
from casereach.projects.settings_schema import effective_settings

CONTACT_TABLE = Contact._meta.db_table
ENTRY_TABLE = PhoneEntry._meta.db_table

CONTACT_COLUMNS = (
    "contact_id",
    "contact_type",
    "project_id",
    "name",
    "active",
    "source_modified",
    "phone_raw",
    "phone_number",
    "phone_reason",
    "verified_requested",
    "email",
    "email_status",
    "tz_requested",
    "tz_effective",
    "tz_source",
    "lang_requested",
    "lang_effective",
    "lang_source",
    "gateway_requested",
    "warnings",
    "has_warnings",
    "updated_on",
)


def project_rules(project: Project) -> ProjectRules:
    s = effective_settings(project.settings)
    return ProjectRules(
        project_id=project.pk,
        time_zone=s.time_zone,
        languages=tuple(s.languages),
        strict_phone_validation=s.strict_phone_validation,
        default_country=s.default_country,
    )


@dataclass
class _Entry:
    id: int
    contact_id: str
    number: str
    position: int
    gateway: str
    verified_requested: bool
    requested_on: dt.datetime | None
    holder: bool
    pending: bool


_VERSION_VIEW = rows.decoder(Contact, "contact_id", "source_modified", "tz_effective")


def _existing_versions(ids: Sequence[str]) -> tuple[dict[str, dt.datetime], dict[str, str]]:
    """Each existing contact's source version and its effective time zone, in one read (raw
    SQL: every case write runs it, and the ORM's query building cost more than the query)."""
    found: dict[str, dt.datetime] = {}
    zones: dict[str, str] = {}
    for chunk in bulk.in_chunks(ids):
        where, params = bulk.in_sql("contact_id", chunk)
        for cid, modified, zone in _VERSION_VIEW.all(
            rows.fetch_all(
                f"SELECT {_VERSION_VIEW.columns()} FROM {CONTACT_TABLE} WHERE {where}", params
            )
        ):
            found[cid] = modified
            zones[cid] = zone
    return found, zones


# Called with (project id, contact ids) whose effective time zone a sync changed, inside the
# writing transaction: higher layers (alert schedules) follow the new zone without contacts
# importing them.
ZoneChangeHook = Callable[[int, Sequence[str]], None]
ZONE_CHANGE_HOOKS: list[ZoneChangeHook] = []


def register_zone_change_hook(hook: ZoneChangeHook) -> None:
    if hook not in ZONE_CHANGE_HOOKS:
        ZONE_CHANGE_HOOKS.append(hook)


_ENTRY_VIEW = rows.decoder(
    PhoneEntry,
    "id",
    "contact_id",
    "number",
    "position",
    "gateway",
    "verified_requested",
    "requested_on",
    "holder",
    "pending",
)


def _existing_entries(ids: Sequence[str]) -> list[_Entry]:
    found: list[_Entry] = []
    for chunk in bulk.in_chunks(ids):
        where, params = bulk.in_sql("contact_id", chunk)
        found.extend(
            _Entry(*values)
            for values in _ENTRY_VIEW.all(
                rows.fetch_all(
                    f"SELECT {_ENTRY_VIEW.columns()} FROM {ENTRY_TABLE} WHERE {where}", params
                )
            )
        )
    return found


def do_sync_contacts(sources: Sequence[ContactSource], rules: dict[int, ProjectRules]) -> None:
    """Re-derive the contacts of ``sources`` and their phone entries, set-based.

    Must be called inside the transaction that changed the sources. A source older than the
    version its contact was last derived from is ignored (stale-update guard).
    """
    if not sources:
        return
    assert connection.in_atomic_block, "contact sync must share the case transaction"
    stamp = now()
    latest: dict[str, ContactSource] = {}
    for source in sources:
        prior = latest.get(source.contact_id)
        if prior is None or source.modified >= prior.modified:
            latest[source.contact_id] = source
    versions, zones = _existing_versions([cid for cid, s in latest.items() if not s.new])
    derived = [
        derive(s, rules[s.project_id])
        for s in latest.values()
        if s.contact_id not in versions or s.modified >= versions[s.contact_id]
    ]
    if not derived:
        return
    _write_contacts(derived, stamp)
    touched = _write_entries(derived, stamp)
    resolve_ownership(touched)
    moved: dict[int, list[str]] = defaultdict(list)
    for d in derived:
        cid = d.source.contact_id
        if cid in zones and zones[cid] != d.tz_effective:
            moved[d.source.project_id].append(cid)
    for project_id, ids in moved.items():
        for hook in ZONE_CHANGE_HOOKS:
            hook(project_id, ids)


def _write_contacts(derived: Sequence[DerivedContact], stamp: dt.datetime) -> None:
    adapt = bulk.adapt_datetime
    stamp_param = adapt(stamp)
    rows = [
        (
            d.source.contact_id,
            d.source.contact_type,
            d.source.project_id,
            d.source.name[:255],
            d.source.active,
            adapt(d.source.modified),
            d.phone_raw,
            d.phone_number,
            d.phone_reason,
            d.verified_requested,
            d.email,
            d.email_status,
            d.tz_requested,
            d.tz_effective,
            d.tz_source,
            d.lang_requested,
            d.lang_effective,
            d.lang_source,
            d.gateway_requested,
            bulk.adapt_json(d.warnings),
            bool(d.warnings),
            stamp_param,
        )
        for d in derived
    ]
    # Contacts that cannot exist yet are plainly inserted: on SQLite with foreign keys on, an
    # upsert costs about a third more per row than an INSERT, even when nothing conflicts.
    bulk.insert(
        CONTACT_TABLE,
        CONTACT_COLUMNS,
        [r for r, d in zip(rows, derived, strict=True) if d.source.new],
    )
    bulk.upsert(
        CONTACT_TABLE,
        CONTACT_COLUMNS,
        [r for r, d in zip(rows, derived, strict=True) if not d.source.new],
        conflict=("contact_id",),
        update=CONTACT_COLUMNS[1:],
    )


def _write_entries(derived: Sequence[DerivedContact], stamp: dt.datetime) -> set[str]:
    """Bring phone entries in line with ``derived``; returns the numbers whose two-way
    ownership may have changed."""
    ids = [d.source.contact_id for d in derived if not d.source.new]
    existing, stamp = _lock_contested(derived, ids, stamp)
    by_contact: dict[str, dict[str, _Entry]] = defaultdict(dict)
    for e in existing:
        by_contact[e.contact_id][e.number] = e
    adapt = bulk.adapt_datetime
    stamp_param = adapt(stamp)
    touched: set[str] = set()
    deletes: list[int] = []
    updates: list[tuple[object, ...]] = []
    inserts: list[tuple[object, ...]] = []
    for d in derived:
        current = by_contact.get(d.source.contact_id, {})
        wanted = {w.number: w for w in d.entries}
        for number, old in current.items():
            if number not in wanted:
                deletes.append(old.id)
                if old.holder or old.verified_requested:
                    touched.add(number)
        for number, w in wanted.items():
            found = current.get(number)
            if found is None:
                inserts.append(
                    (
                        number,
                        d.source.contact_id,
                        d.source.project_id,
                        d.source.contact_type,
                        w.position,
                        w.gateway,
                        w.verified_requested,
                        stamp_param if w.verified_requested else None,
                        False,
                        False,
                        stamp_param,
                    )
                )
                if w.verified_requested:
                    touched.add(number)
                continue
            e = found
            holder, pending, requested_on = e.holder, e.pending, e.requested_on
            if w.verified_requested and not e.verified_requested:
                requested_on = stamp
                touched.add(number)
            elif not w.verified_requested and e.verified_requested:
                requested_on = None
                if holder and not pending:
                    holder = False
                    touched.add(number)
            if (
                w.gateway != e.gateway
                or w.position != e.position
                or w.verified_requested != e.verified_requested
                or holder != e.holder
            ):
                updates.append(
                    (
                        w.gateway,
                        w.position,
                        w.verified_requested,
                        adapt(requested_on),
                        holder,
                        e.id,
                    )
                )
    _store_entries(deletes, updates, inserts, touched)
    return touched


def _lock_contested(
    derived: Sequence[DerivedContact], ids: Sequence[str], stamp: dt.datetime
) -> tuple[list[_Entry], dt.datetime]:
    """The existing entries of ``ids`` and the stamp of new requests, read under the locks of
    the numbers whose ownership this batch may change (where rows can be written
    concurrently: SQLite's IMMEDIATE transaction already serialises every writer).

    The locks are taken *before* stamping requests, all at once (sorted, so writers cannot
    deadlock), then the entries are re-read under them: ``requested_on`` then follows lock
    order, so "earliest request" and "first to be granted" agree, and no holder flag is
    written back from a stale read."""
    existing = _existing_entries(ids)
    if bulk.one_writer_database():
        return existing, stamp
    contested = {w.number for d in derived for w in d.entries if w.verified_requested}
    contested.update(e.number for e in existing if e.holder or e.verified_requested)
    if not contested:
        return existing, stamp
    bulk.lock_keys("phone", contested)
    if existing:
        # (With none, there is nothing to re-read: only a writer holding this project's
        # lock, as we do, adds entries to these contacts.)
        existing = _existing_entries(ids)
    return existing, now()


_ENTRY_COLUMNS = (
    "number",
    "contact_id",
    "project_id",
    "contact_type",
    "position",
    "gateway",
    "verified_requested",
    "requested_on",
    "holder",
    "pending",
    "registered_on",
)


def _store_entries(
    deletes: Sequence[int],
    updates: Sequence[tuple[object, ...]],
    inserts: list[tuple[object, ...]],
    touched: set[str],
) -> None:
    with connection.cursor() as cursor:
        for chunk in bulk.chunks(deletes, IN_CHUNK):
            marks = ", ".join(["%s"] * len(chunk))
            cursor.execute(f"DELETE FROM {ENTRY_TABLE} WHERE id IN ({marks})", list(chunk))
    bulk.execute_many(
        f"UPDATE {ENTRY_TABLE} SET gateway = %s, position = %s, verified_requested = %s, "
        "requested_on = %s, holder = %s WHERE id = %s",
        updates,
    )
    _claim_free_numbers(inserts, touched)
    bulk.insert(ENTRY_TABLE, _ENTRY_COLUMNS, inserts)


def _claim_free_numbers(inserts: list[tuple[object, ...]], touched: set[str]) -> None:
    """Make new entries holders at once where ``resolve_ownership`` would promote them.

    A number that, after this batch's deletes and updates, has no holder and no requester
    goes to its earliest new requester: all new entries share one ``requested_on`` and ids
    follow insertion order, so that is the first requesting row here. Those rows are written
    as holders (saving a second write of each) and their numbers leave ``touched``; every
    other number is still resolved afterwards. Call with the numbers' locks held.
    """
    wanted = {str(row[0]) for row in inserts if row[6]}  # number, verified_requested
    if not wanted:
        return
    taken: set[str] = set()
    with connection.cursor() as cursor:
        for chunk in bulk.in_chunks(sorted(wanted)):
            where, params = bulk.in_sql("number", chunk)
            cursor.execute(
                f"SELECT DISTINCT number FROM {ENTRY_TABLE} "
                f"WHERE {where} AND (holder = %s OR verified_requested = %s)",
                [*params, True, True],
            )
            taken.update(number for (number,) in cursor.fetchall())
    free = wanted - taken
    if not free:
        return
    for i, row in enumerate(inserts):
        number = row[0]
        if row[6] and number in free:
            free.discard(number)  # later rows for the same number stay requesters
            touched.discard(number)
            inserts[i] = (*row[:8], True, *row[9:])


def resolve_ownership(numbers: Iterable[str]) -> None:
    """Give every number that has no two-way holder to its earliest remaining requester.

    Runs under a per-number lock (PostgreSQL advisory locks; SQLite's write transaction), and
    the partial unique index on ``holder`` is the last line of defence.
    """
    todo = sorted(set(numbers))
    if not todo:
        return
    bulk.lock_keys("phone", todo)
    held: set[str] = set()
    best: dict[str, tuple[dt.datetime, int]] = {}
    for chunk in bulk.in_chunks(todo):
        rows = PhoneEntry.objects.filter(bulk.is_in("number", chunk)).filter(
            verified_requested=True
        ) | PhoneEntry.objects.filter(bulk.is_in("number", chunk), holder=True)
        for number, entry_id, holder, requested_on in rows.values_list(
            "number", "id", "holder", "requested_on"
        ):
            if holder:
                held.add(number)
                continue
            key = (requested_on or dt.datetime.max.replace(tzinfo=dt.UTC), entry_id)
            if number not in best or key < best[number]:
                best[number] = key
    promote = [entry_id for number, (_, entry_id) in best.items() if number not in held]
    with connection.cursor() as cursor:
        for chunk in bulk.in_chunks(promote):  # one statement per chunk, not one per row
            where, params = bulk.in_sql("id", chunk)
            cursor.execute(f"UPDATE {ENTRY_TABLE} SET holder = %s WHERE {where}", [True, *params])


def do_transfer_ownership(project: Project, number: str, contact_id: str) -> PhoneEntry:
    """Move two-way ownership of ``number`` to ``contact_id`` (an admin decision).

    The previous holder keeps its request and so shows ``two_way_conflict``; a holder in
    another project cannot be displaced from here.
    """
    with transaction.atomic():
        bulk.lock_keys("phone", [number])
        target = PhoneEntry.objects.filter(
            project=project, number=number, contact_id=contact_id
        ).first()
        if target is None:
            raise NotFound(f"contact '{contact_id}' has no phone entry for this number")
        current = PhoneEntry.objects.filter(number=number, holder=True).first()
        if current is not None and current.pk == target.pk:
            return target
        if current is not None and current.project_id != project.pk:
            raise Conflict("the number is held for two-way by a contact in another project")
        if current is not None and current.pending:
            raise Conflict("the holder's verification is pending; wait for it or cancel it")
        if not Contact.objects.filter(contact_id=contact_id, active=True).exists():
            raise BadRequest("the contact is inactive and cannot hold a number")
        if not target.verified_requested:
            # SPEC 3.2: only a verified contact requests two-way, and clearing the flag
            # releases it; an unverified holder would contradict its own case.
            raise Conflict(
                "the contact has not verified this number (a case: set "
                "contact_phone_number_is_verified; a worker: complete verification), so it "
                "cannot hold it for two-way"
            )
        if current is not None:
            PhoneEntry.objects.filter(pk=current.pk).update(holder=False)
        PhoneEntry.objects.filter(pk=target.pk).update(
            holder=True,
            verified_requested=True,
            requested_on=target.requested_on or now(),
        )
        target.refresh_from_db()
        return target


def do_reserve_number(entry: PhoneEntry) -> None:
    """Make ``entry`` the pending holder of its number (a worker's verification started; the
    caller holds the number's lock and found no other holder)."""
    PhoneEntry.objects.filter(pk=entry.pk).update(holder=True, pending=True)


def do_confirm_number(entry: PhoneEntry) -> None:
    """A pending holder confirmed its number (the verification reply): it now holds it as a
    verified, requesting entry."""
    PhoneEntry.objects.filter(pk=entry.pk).update(
        pending=False, verified_requested=True, requested_on=now()
    )
