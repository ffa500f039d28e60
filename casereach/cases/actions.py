"""The only writers of cases. Every write, one case or ten thousand, takes the same path:

resolve targets with a few batched reads → apply the changes in memory → lock the project →
stamp strictly increasing ``indexed_on`` → bulk upsert → re-derive contacts in the same
transaction.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from django.db import transaction

from casereach.cases.changes import CaseChange, ChangeError, IndexSpec, require_create_fields
from casereach.cases.models import Case, CaseIndex
from casereach.cases.state import (
    CASE_COLUMNS,
    CaseState,
    load_states,
    load_states_by,
)
from casereach.cases.writeback import enqueue_writes
from casereach.contacts.actions import do_sync_contacts, project_rules
from casereach.contacts.rules import (
    EMAIL_PROP,
    GATEWAY_PROP,
    LANG_PROP,
    PHONE_PROP,
    VERIFIED_PROP,
    ZONE_PROP,
    ContactSource,
    is_verified,
)
from casereach.core import bulk
from casereach.core.bulk import IN_CHUNK
from casereach.core.errors import BadRequest, NotFound
from casereach.core.ids import time_ordered_uuid
from casereach.core.timeutil import ONE_MICROSECOND, now
from casereach.projects.actions import lock_project, tick_clock
from casereach.projects.models import Project

CASE_TABLE = Case._meta.db_table
INDEX_TABLE = CaseIndex._meta.db_table


CaseChangeHook = Callable[[Project, Sequence["CaseState"]], None]
CASE_CHANGE_HOOKS: list[CaseChangeHook] = []


def register_case_change_hook(hook: CaseChangeHook) -> None:
    """Called with every batch of written cases, inside the writing transaction (higher
    layers, such as alert rules, react to case changes without cases importing them)."""
    if hook not in CASE_CHANGE_HOOKS:
        CASE_CHANGE_HOOKS.append(hook)


# A new case id: a UUIDv7 (RFC 9562), random but ordered by creation time (see core.ids:
# time-ordered ids append at the right edge of the case, contact and phone-entry indexes).
new_case_id = time_ordered_uuid


@dataclass
class ApplyResult:
    """Per change (in request order) the resulting case, or None when that row failed."""

    cases: list[CaseState | None]
    errors: dict[int, str]
    written: int
    changed: frozenset[str] = frozenset()  # the ids of the cases written


class _Batch:
    """Resolution context for one batch: what exists, and what this request created."""

    def __init__(self, project: Project, changes: Sequence[CaseChange]) -> None:
        self.project = project
        ids: set[str] = set()
        exts: set[str] = set()
        for c in changes:
            if c.case_id:
                ids.add(c.case_id)
            if c.external_id and c.op != "create":
                exts.add(c.external_id)
            for spec in c.indices.values():
                if spec.case_id:
                    ids.add(spec.case_id)
                if spec.external_id:
                    exts.add(spec.external_id)
        self.by_id: dict[str, CaseState] = {}
        for chunk in bulk.in_chunks(sorted(ids)):
            for state in load_states_by("case_id", chunk):
                self.by_id[state.case_id] = state
        self.by_ext: dict[str, list[str]] = {}
        for chunk in bulk.in_chunks(sorted(exts)):
            for state in load_states_by("external_id", chunk, project.pk):
                self.by_id.setdefault(state.case_id, state)
                assert state.external_id is not None
                self.by_ext.setdefault(state.external_id, []).append(state.case_id)
        self.request_ext: dict[str, str] = {}
        self.temp: dict[str, str] = {}
        self.order: dict[str, None] = {}  # changed case ids, in order (a dict: O(1) lookups)

    def mine(self, case_id: str) -> CaseState | None:
        state = self.by_id.get(case_id)
        if state is None or state.project_id != self.project.pk or state.deleted:
            return None
        return state

    def find_external(self, external_id: str, *, for_index: bool = False) -> CaseState | None:
        if external_id in self.request_ext:
            return self.mine(self.request_ext[external_id])
        matches = [cid for cid in self.by_ext.get(external_id, []) if self.mine(cid)]
        if len(matches) > 1:
            if for_index:
                raise ChangeError(f"There are multiple cases with external_id {external_id}")
            raise ChangeError(
                f"Multiple cases found with external_id '{external_id}': {', '.join(matches)}"
            )
        return self.mine(matches[0]) if matches else None

    def new_case(self, change: CaseChange, case_id: str | None = None) -> CaseState:
        require_create_fields(change)
        state = CaseState(
            case_id=case_id or new_case_id(),
            project_id=self.project.pk,
            is_new=True,
            id_generated=case_id is None,
            opened_by=change.user,
        )
        self.by_id[state.case_id] = state
        return state

    def target(self, change: CaseChange) -> CaseState:
        if change.op == "create":
            return self.new_case(change)
        if change.op == "upsert_id":
            assert change.case_id
            existing = self.by_id.get(change.case_id)
            if existing is not None and existing.project_id != self.project.pk:
                raise ChangeError(f"case_id '{change.case_id}' belongs to another project")
            if existing is not None and not existing.deleted:
                return existing
            if existing is not None:
                raise ChangeError(f"case '{change.case_id}' was deleted")
            return self.new_case(change, change.case_id)
        if change.case_id:
            found = self.mine(change.case_id)
            if found is None:
                raise ChangeError(f"No case found with ID '{change.case_id}'")
            return found
        assert change.external_id is not None
        found = self.find_external(change.external_id)
        if found is not None:
            return found
        if change.op == "upsert":
            return self.new_case(change)
        raise ChangeError(f"Could not find a case with external_id '{change.external_id}'")

    def resolve_index(self, name: str, spec: IndexSpec) -> dict[str, str]:
        if spec.case_id:
            ref = self.mine(spec.case_id)
            if ref is None and spec.may_dangle:
                return {
                    "case_id": spec.case_id,
                    "case_type": spec.case_type,
                    "relationship": spec.relationship,
                }
            if ref is None:
                raise ChangeError(
                    f"InvalidCaseIndex: Case '{spec.case_id}' referenced by index '{name}' not found"
                )
        elif spec.external_id:
            ref = self.find_external(spec.external_id, for_index=True)
            if ref is None:
                raise ChangeError(f"Could not find a case with external_id '{spec.external_id}'")
        else:
            assert spec.temporary_id
            ref_id = self.temp.get(spec.temporary_id)
            ref = self.mine(ref_id) if ref_id else None
            if ref is None:
                raise ChangeError(f"Could not find a case with temporary_id '{spec.temporary_id}'")
        return {
            "case_id": ref.case_id,
            "case_type": spec.case_type,
            "relationship": spec.relationship,
        }

    def apply(self, change: CaseChange) -> CaseState:
        state = self.target(change)
        if (
            change.last_modified is not None
            and not state.is_new
            and state.last_modified is not None
            and change.last_modified < state.last_modified
        ):
            return state  # an older change never overwrites a newer one
        resolved = {
            name: (None if spec.removes else self.resolve_index(name, spec))
            for name, spec in change.indices.items()
        }
        if change.whole_state:
            resolved.update({name: None for name in state.indices if name not in resolved})
        if change.temporary_id is not None:
            if change.temporary_id in self.temp:
                raise ChangeError(f"temporary_id '{change.temporary_id}' is used twice")
            self.temp[change.temporary_id] = state.case_id
        before = None if state.is_new else copy.deepcopy(state.content())
        if change.case_type is not None:
            state.case_type = change.case_type
        if change.case_name is not None:
            state.case_name = change.case_name
        if change.owner_id is not None:
            state.owner_id = change.owner_id
        if change.external_id is not None:
            state.external_id = change.external_id or None
        if change.op == "upsert" and state.is_new and state.external_id is None:
            state.external_id = change.external_id
        if state.external_id:
            self.request_ext[state.external_id] = state.case_id
        state.properties = {**state.properties, **change.properties}
        if resolved:
            indices = dict(state.indices)
            for name, value in resolved.items():
                if value is None:
                    indices.pop(name, None)
                else:
                    indices[name] = value
            if indices != state.indices:
                state.indices = indices
                state.indices_dirty = True
        if change.close and not state.closed:
            state.closed = True
        if change.reopen and state.closed:
            state.closed = False
            state.date_closed = None
            state.reopened = True
        if change.date_opened is not None and not (  # HQ's, on a forwarded case
            change.date_opened_date_only
            and state.date_opened is not None
            and state.date_opened.date() == change.date_opened.date()
        ):
            state.date_opened = change.date_opened
        if before is None or before != state.content():
            state.dirty = True
            state.user_id = change.user
            state.client_modified = change.last_modified
            self.order.setdefault(state.case_id, None)
        return state


def do_apply_case_changes(
    project: Project,
    changes: Sequence[CaseChange],
    *,
    partial: bool = False,
    single: bool = False,
    write_back: bool = False,
) -> ApplyResult:
    """Apply ``changes`` in one transaction.

    ``partial=False`` (the API): any bad change refuses the whole batch with CommCare's
    "Error in row n: …" message. ``partial=True`` (imports): bad rows are reported in
    ``errors`` and the good ones are written. ``write_back=True``: the change is
    casereach's own (a keyword, a self-registration), queued in the same transaction for
    the project's CommCare HQ (``cases.writeback``).
    """
    with transaction.atomic():
        locked = lock_project(project.pk)
        batch = _Batch(locked, changes)
        results: list[CaseState | None] = []
        errors: dict[int, str] = {}
        for change in changes:
            try:
                results.append(batch.apply(change))
            except ChangeError as exc:
                errors[change.row] = str(exc)
                results.append(None)
        if errors and not partial:
            if single:
                raise BadRequest(next(iter(errors.values())))
            raise BadRequest("; ".join(f"Error in row {r}: {m}" for r, m in errors.items()))
        dirty = [batch.by_id[cid] for cid in batch.order]
        if write_back:
            enqueue_writes(
                locked, changes, [r if r is not None and r.dirty else None for r in results]
            )
        _persist(locked, dirty)
        project.last_indexed_on = locked.last_indexed_on
    return ApplyResult(results, errors, len(dirty), frozenset(s.case_id for s in dirty))


def _persist(project: Project, states: Sequence[CaseState]) -> None:
    """Stamp and write ``states`` (the project row is locked by the caller)."""
    if not states:
        return
    tick = tick_clock(project, len(states))
    for state in states:
        state.indexed_on = tick
        state.server_last_modified = tick
        state.last_modified = state.client_modified or tick
        if state.is_new and state.date_opened is None:
            state.date_opened = tick
        if state.closed and state.date_closed is None:
            state.date_closed = tick
        if state.deleted and state.deleted_on is None:
            state.deleted_on = tick
        tick += ONE_MICROSECOND
    adapt = bulk.adapt_datetime
    rows = [
        (
            s.case_id,
            s.project_id,
            s.case_type,
            s.case_name,
            s.owner_id,
            s.external_id,
            bulk.adapt_json(s.properties),
            bulk.adapt_json(s.indices),
            s.closed,
            adapt(s.date_closed),
            s.deleted,
            adapt(s.deleted_on),
            adapt(s.date_opened),
            adapt(s.last_modified),
            adapt(s.server_last_modified),
            adapt(s.indexed_on),
            s.opened_by,
            s.user_id,
        )
        for s in states
    ]
    # Cases created under a freshly generated id cannot conflict: a plain INSERT (on SQLite
    # with foreign keys on, an upsert costs about a third more per row, conflict or not).
    fresh = [s.is_new and s.id_generated for s in states]
    bulk.insert(CASE_TABLE, CASE_COLUMNS, [r for r, f in zip(rows, fresh, strict=True) if f])
    bulk.upsert(
        CASE_TABLE,
        CASE_COLUMNS,
        [r for r, f in zip(rows, fresh, strict=True) if not f],
        conflict=("case_id",),
        update=CASE_COLUMNS[2:],
    )
    reindex = [s for s in states if s.indices_dirty or (s.is_new and s.indices)]
    stale = [s.case_id for s in reindex if not s.is_new]
    for chunk in bulk.chunks(stale, IN_CHUNK):
        CaseIndex.objects.filter(case_id__in=chunk).delete()
    bulk.insert(
        INDEX_TABLE,
        ("case_id", "project_id", "name", "referenced_id", "referenced_type", "relationship"),
        (
            (s.case_id, s.project_id, name, idx["case_id"], idx["case_type"], idx["relationship"])
            for s in reindex
            for name, idx in s.indices.items()
        ),
    )
    do_sync_contacts([contact_source(s) for s in states], {project.pk: project_rules(project)})
    for hook in CASE_CHANGE_HOOKS:  # alert rules, in the same transaction
        hook(project, states)
    for s in states:
        s.is_new = False
        s.dirty = False
        s.indices_dirty = False
        s.reopened = False


def contact_source(state: CaseState) -> ContactSource:
    props = state.properties
    assert state.server_last_modified is not None
    return ContactSource(
        contact_id=state.case_id,
        contact_type="case",
        project_id=state.project_id,
        name=state.case_name,
        active=not (state.closed or state.deleted),
        modified=state.server_last_modified,
        phones=[(props.get(PHONE_PROP), is_verified(props.get(VERIFIED_PROP)))],
        email=props.get(EMAIL_PROP),
        time_zone=props.get(ZONE_PROP),
        language=props.get(LANG_PROP),
        gateway=props.get(GATEWAY_PROP),
        new=state.is_new and state.id_generated,
    )


def do_delete_case(project: Project, case_id: str) -> CaseState:
    """Soft delete: the case disappears from every read, its contact becomes inactive."""
    with transaction.atomic():
        locked = lock_project(project.pk)
        states = load_states({"case_id": case_id, "project_id": locked.pk, "deleted": False})
        if not states:
            raise NotFound(f"Case '{case_id}' not found")
        state = states[0]
        state.deleted = True
        _persist(locked, [state])
    return state


def do_resync_project_contacts(project: Project, case_ids: Iterable[str] | None = None) -> int:
    """Re-derive contacts of a project's cases (after a settings change), in batches."""
    qs = Case.objects.filter(project=project, deleted=False)
    if case_ids is not None:
        qs = qs.filter(case_id__in=list(case_ids))
    count = 0
    ids = list(qs.values_list("case_id", flat=True))
    for chunk in bulk.chunks(ids, IN_CHUNK):
        with transaction.atomic():
            # Under the project lock, so a case write cannot land between read and write
            # (the forced version below would otherwise overwrite it with older data).
            locked = lock_project(project.pk)
            rules = {project.pk: project_rules(locked)}
            states = load_states({"case_id__in": chunk, "project_id": project.pk})
            # Re-derivation under new settings: force past the version guard.
            stamp = now()
            forced = [
                ContactSource(**{**contact_source(s).__dict__, "modified": stamp}) for s in states
            ]
            do_sync_contacts(forced, rules)
            count += len(states)
    return count
