"""Everything one project owns, as rows and as its own API shows it, to compare before and
after another project has had its go.

A row belongs to the project when a chain of foreign keys leads from it to the project (and
none to the other project: a gateway B offers to share with A is B's row). A table without
such a chain (the opt-out list keyed by number, the inbound queue keyed by gateway id) keeps
the rows that mention one of the project's values; global routing is kept whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from django.apps import apps
from django.db import connection, models
from django.db.models import Q

from casereach.projects.models import Membership, Project
from casereach.testing.tenants import M, Tenant, dumps

# Tables of the framework that say nothing about a project's data.
SKIPPED = {"sessions.session", "contenttypes.contenttype", "auth.permission", "admin.logentry"}
WHOLE = {"gateways.globalroutes"}  # global settings every project lives under
Row = dict[str, Any]
Snapshot = dict[str, dict[str, Row]]


def project_paths(model: type[models.Model], depth: int = 3) -> list[str]:
    """Lookup paths (``event__project``) from ``model`` to Project through foreign keys."""
    if model is Project:
        return ["pk"]
    paths: list[str] = []
    if depth == 0:
        return paths
    for f in model._meta.concrete_fields:
        if not f.is_relation or f.related_model is None:
            continue
        target = f.related_model
        if target is Project:
            paths.append(f.name)
        elif isinstance(target, type) and issubclass(target, models.Model):
            paths.extend(f"{f.name}__{p}" for p in project_paths(target, depth - 1))
    return paths


def _row(obj: models.Model) -> Row:
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}


def _mentions(row: Row, strings: set[str], ints: set[int]) -> bool:
    for value in row.values():
        if isinstance(value, bool):
            continue
        if isinstance(value, int) and value in ints:
            return True
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        if any(s in text for s in strings):
            return True
    return False


def owned_rows(owner: Project, other: Project, strings: set[str], ints: set[int]) -> Snapshot:
    """Every row of every table that belongs to ``owner`` (see the module docstring)."""
    snapshot: Snapshot = {}
    user_model = apps.get_model("auth", "User")
    for model in apps.get_models(include_auto_created=True):
        label = model._meta.label_lower
        if label in SKIPPED:
            continue
        manager = model._base_manager
        if model is user_model:
            members = Membership.objects.filter(project=owner).values("user_id")
            rows: Iterable[models.Model] = manager.filter(pk__in=members)
        elif label in WHOLE:
            rows = manager.all()
        else:
            paths = project_paths(model)
            if paths:
                mine = Q()
                theirs = Q()
                for p in paths:
                    mine |= Q(**{p: owner.pk})
                    theirs |= Q(**{p: other.pk})
                rows = manager.filter(mine).exclude(theirs)
            else:
                rows = [o for o in manager.all() if _mentions(_row(o), strings, ints)]
        snapshot[label] = {str(o.pk): _row(o) for o in rows}
    return snapshot


def write_count() -> int:
    """Rows this connection has written so far (any table): a cheap "did anything change"."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)"
                " FROM pg_stat_xact_user_tables"
            )
            return int(cursor.fetchone()[0])
    connection.ensure_connection()
    return int(connection.connection.total_changes)


def row_changes(before: Snapshot, after: Snapshot) -> list[str]:
    """One line per row added, removed or changed, naming the fields that changed."""
    lines = []
    for table in sorted(set(before) | set(after)):
        old, new = before.get(table, {}), after.get(table, {})
        for pk in sorted(set(old) | set(new)):
            if pk not in old:
                lines.append(f"{table} #{pk} added: {dumps(new[pk])[:240]}")
            elif pk not in new:
                lines.append(f"{table} #{pk} removed: {dumps(old[pk])[:240]}")
            elif old[pk] != new[pk]:
                changed = {
                    k: (old[pk].get(k), new[pk].get(k))
                    for k in sorted(set(old[pk]) | set(new[pk]))
                    if old[pk].get(k) != new[pk].get(k)
                }
                lines.append(f"{table} #{pk} changed: {dumps(changed)[:240]}")
    return lines


def api_state(t: Tenant) -> dict[str, Any]:
    """What the project's own admin sees over the API: every list, every contact profile and
    case (properties included), the opt-outs, settings and routes."""
    reads = {
        "cases": ("/a/{project}/api/case/v2/", {"limit": 100}),
        "cases_v05": ("/a/{project}/api/v0.5/case/", {"limit": 100}),
        "users": ("/a/{project}/api/v0.5/user/", {}),
        "events": ("/a/{project}/api/v0.5/messaging-event/", {"limit": 100}),
        "gateways": (M + "gateways", {}),
        "routes": (M + "routes", {}),
        "settings": (M + "settings", {}),
        "keywords": (M + "keywords", {}),
        "alerts": (M + "alerts", {}),
        "surveys": ("/a/{project}/api/surveys/v1/surveys", {}),
        "survey_sessions": ("/a/{project}/api/surveys/v1/survey-sessions", {"limit": 100}),
        "messages": (M + "messages", {"limit": 100}),
        "opt_outs": (M + "opt-outs", {}),
        "phone_numbers": (M + "phone-numbers", {"limit": 100}),
        "data_quality": (M + "data-quality", {}),
    }
    state: dict[str, Any] = {}
    for name, (path, query) in reads.items():
        r = t.api.get(path, **query)
        state[name] = (r.status, r.body)
    for role, case_id in [*t.case_ids.items(), *(("worker", w) for w in t.worker_ids)]:
        r = t.api.get(M + f"contacts/{case_id}")
        state[f"contact:{role}"] = (r.status, r.body)
    for number in t.numbers.values():
        r = t.api.get(M + "test-phone", number=number)
        state[f"conversation:{number}"] = (r.status, r.body)
    return state


def state_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    lines = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old != new:
            lines.append(f"{key}: {_first_difference(old, new)}")
    return lines


def _first_difference(old: Any, new: Any, where: str = "") -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new), key=str):
            if old.get(k) != new.get(k):
                return _first_difference(old.get(k), new.get(k), f"{where}.{k}")
    if isinstance(old, list | tuple) and isinstance(new, list | tuple) and len(old) == len(new):
        for i, (o, n) in enumerate(zip(old, new, strict=True)):
            if o != n:
                return _first_difference(o, n, f"{where}[{i}]")
    return f"{where or '.'}: {dumps(old)[:300]} -> {dumps(new)[:300]}"
