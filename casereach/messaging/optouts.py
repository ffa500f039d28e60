"""The opt-out list (SPEC 2): the only writer of ``OptOut``, and its scoped reads.

An opt-out belongs to a number *and* a scope: one project, or one global gateway.

- A STOP (or START) received through a gateway applies to the projects the gateway serves: its
  owner and the projects that accepted it; a global gateway's applies to the gateway itself,
  so to every project that sends through it.
- The test phone acts as the project's own gateway: its STOP applies to that project only.
- An admin's opt-out or opt-in applies to the admin's project only, and an admin never undoes
  the person's own STOP (``can_opt_in`` false): only the person's START in that scope does.
- A send is refused when the number is opted out in the sending project's scope or for the
  gateway it would use.

**(differs: CommCare keeps one global list, which lets any tenant silence another's contacts.)**

And to a channel (issue 21): a STOP over WhatsApp opts the number out of WhatsApp in that
scope, a STOP by SMS out of SMS; an admin's opt-out is SMS. Every read below is for one
channel, SMS unless it says otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction
from django.db.models import Q, QuerySet

from casereach.core import bulk
from casereach.core.errors import Conflict, NotFound
from casereach.core.timeutil import iso, now
from casereach.gateways.models import GatewayConfig
from casereach.gateways.queries import serving_projects, visible_gateways
from casereach.messaging.models import Message, OptOut
from casereach.messaging.whatsapp import is_whatsapp
from casereach.projects.models import Project

SOURCE_CHARS = 30
SMS = "sms"


def channel_of(gateway_type: str) -> str:
    """The channel of a STOP received through a gateway of this type: WhatsApp for the
    WhatsApp types, else SMS."""
    return "whatsapp" if is_whatsapp(gateway_type) else SMS


@dataclass(frozen=True)
class Scope:
    """Where an opt-out applies: some projects, or one global gateway."""

    projects: tuple[int, ...] = ()
    gateway_id: int | None = None
    channel: str = SMS

    def q(self) -> Q:
        if self.gateway_id is not None:
            return Q(gateway_id=self.gateway_id, channel=self.channel)
        return Q(project_id__in=self.projects, channel=self.channel)

    def parts(self) -> list[tuple[int | None, int | None]]:
        """(project_id, gateway_id) of each row this scope is made of."""
        if self.gateway_id is not None:
            return [(None, self.gateway_id)]
        return [(p, None) for p in self.projects]


def gateway_scope(gw: GatewayConfig, as_project: int | None = None) -> Scope:
    """The scope of a STOP received (or reported by the provider) through ``gw``;
    ``as_project``: the test phone of that project, which acts as its own gateway."""
    channel = channel_of(gw.type)
    if as_project is not None:
        return Scope(projects=(as_project,), channel=channel)
    serving = serving_projects(gw)
    if serving is None:
        return Scope(gateway_id=gw.pk, channel=channel)
    return Scope(projects=tuple(sorted(serving)), channel=channel)


# -- writers -------------------------------------------------------------------------------------


def _locked(number: str, scope: Scope) -> dict[tuple[int | None, int | None], OptOut]:
    rows = OptOut.objects.select_for_update().filter(scope.q(), phone_number=number)
    return {(r.project_id, r.gateway_id): r for r in rows}


def do_person_opt_out(number: str, scope: Scope, *, source: str) -> bool:
    """The person asked to stop (STOP, or the provider says so): opted out in every part of
    ``scope``, and only the person may opt back in there. True when anything changed."""
    stamp, source = now(), source[:SOURCE_CHARS]
    rows = _locked(number, scope)
    changed = False
    for row in rows.values():
        if not row.opted_out or row.can_opt_in:
            row.opted_out, row.can_opt_in, row.changed_on, row.source = True, False, stamp, source
            row.save(update_fields=["opted_out", "can_opt_in", "changed_on", "source"])
            changed = True
    missing = [
        OptOut(
            phone_number=number,
            channel=scope.channel,
            project_id=project_id,
            gateway_id=gateway_id,
            opted_out=True,
            can_opt_in=False,
            changed_on=stamp,
            source=source,
        )
        for project_id, gateway_id in scope.parts()
        if (project_id, gateway_id) not in rows
    ]
    if missing:
        # A concurrent STOP may have written the same row: it says the same thing.
        OptOut.objects.bulk_create(missing, ignore_conflicts=True)
        changed = True
    return changed


def do_person_opt_in(number: str, scope: Scope, *, source: str) -> bool:
    """The person's START (or YES) in ``scope``: opted back in there, whoever opted it out.
    True when anything changed."""
    stamp, source = now(), source[:SOURCE_CHARS]
    changed = False
    for row in _locked(number, scope).values():
        if row.opted_out:
            row.opted_out, row.can_opt_in, row.changed_on, row.source = False, True, stamp, source
            row.save(update_fields=["opted_out", "can_opt_in", "changed_on", "source"])
            changed = True
    return changed


def do_admin_set_opt_out(project: Project, number: str, opted_out: bool, *, by: str) -> OptOut:
    """An admin opts a number out of the admin's project (it may opt back in), or back in —
    only when the person did not opt out themselves (409 then)."""
    source = f"admin:{by}"[:SOURCE_CHARS]
    with transaction.atomic():
        row = (
            OptOut.objects.select_for_update()
            .filter(project=project, phone_number=number, channel=SMS)
            .first()
        )
        if opted_out:
            if row is None:
                return OptOut.objects.create(
                    phone_number=number,
                    project=project,
                    opted_out=True,
                    can_opt_in=True,
                    changed_on=now(),
                    source=source,
                )
            if row.opted_out:
                return row  # the person's own STOP stays theirs
            row.opted_out, row.can_opt_in, row.changed_on, row.source = True, True, now(), source
            row.save(update_fields=["opted_out", "can_opt_in", "changed_on", "source"])
            return row
        if row is None or not row.opted_out:
            gateway = _gateway_opt_out(project, number)
            if gateway is not None:
                raise Conflict(
                    f"this number opted out itself through the gateway {gateway}; only the "
                    "person can opt back in, by replying START through it"
                )
            if row is None:
                raise NotFound("this number is not on the project's opt-out list")
            return row
        if not row.can_opt_in:
            raise Conflict(
                "this number opted out itself (by replying STOP or through the provider); "
                "only the person can opt back in, by replying START"
            )
        row.opted_out, row.changed_on, row.source = False, now(), source
        row.save(update_fields=["opted_out", "changed_on", "source"])
        return row


def _gateway_opt_out(project: Project, number: str) -> str | None:
    """The name of a gateway the project may use through which the number opted out."""
    row = (
        OptOut.objects.filter(
            phone_number=number,
            channel=SMS,
            opted_out=True,
            gateway_id__in=visible_gateways(project).values("pk"),
        )
        .select_related("gateway")
        .first()
    )
    return row.gateway.name if row is not None and row.gateway is not None else None


def keep_opt_outs_of(gw: GatewayConfig) -> int:
    """Before a global gateway is deleted: every STOP received through it stays in force as
    an opt-out of each project that messaged the number through it (the projects its STOP
    applied to in practice), so a gateway set up again for the same provider never messages
    someone who said STOP. A project row the admin or the person changed after that STOP is
    left as it is. Returns how many project rows were written."""
    channel = channel_of(gw.type)
    stops = {
        r.phone_number: r
        for r in OptOut.objects.filter(gateway_id=gw.pk, opted_out=True, channel=channel).only(
            "phone_number", "changed_on", "can_opt_in"
        )
    }
    if not stops:
        return 0
    pairs = _projects_that_messaged(gw.pk, list(stops))
    existing = {
        (r.project_id, r.phone_number): r
        for r in OptOut.objects.select_for_update().filter(
            project_id__in={p for p, _ in pairs},
            phone_number__in={n for _, n in pairs},
            channel=channel,
        )
    }
    source = f"STOP via {gw.name} (deleted)"[:SOURCE_CHARS]
    new: list[OptOut] = []
    written = 0
    for project_id, number in sorted(pairs):
        stop = stops[number]
        row = existing.get((project_id, number))
        if row is None:
            new.append(
                OptOut(
                    phone_number=number,
                    channel=channel,
                    project_id=project_id,
                    opted_out=True,
                    can_opt_in=stop.can_opt_in,
                    changed_on=stop.changed_on,
                    source=source,
                )
            )
        elif not row.opted_out and row.changed_on < stop.changed_on:
            row.opted_out, row.can_opt_in = True, stop.can_opt_in
            row.changed_on, row.source = stop.changed_on, source
            # writes: messaging.OptOut
            row.save(update_fields=["opted_out", "can_opt_in", "changed_on", "source"])
            written += 1
    OptOut.objects.bulk_create(new)
    return written + len(new)


def _projects_that_messaged(gateway_id: int, numbers: list[str]) -> set[tuple[int, str]]:
    """(project, number) for every message either way between the gateway and the numbers."""
    found: set[tuple[int, str]] = set()
    for start in range(0, len(numbers), 500):
        rows = (
            Message.objects.filter(
                gateway_id=gateway_id,
                phone_number__in=numbers[start : start + 500],
                project_id__isnull=False,
            )
            .values_list("project_id", "phone_number")
            .distinct()
        )
        found.update((p, n) for p, n in rows if p is not None)
    return found


# -- reads ---------------------------------------------------------------------------------------


def is_opted_out(
    number: str, project_id: int | None, gateway_id: int | None = None, channel: str = SMS
) -> bool:
    """Whether a send to ``number`` by the project, through the gateway, is refused."""
    return _opted_out_sql(number, project_id, gateway_id, channel)


# ``is_opted_out`` as one SQL scalar (1 or NULL) of (number, channel, project id, gateway id).
OPTED_OUT_SQL = (
    "SELECT 1 FROM messaging_optout WHERE phone_number = %s AND opted_out"
    " AND channel = %s AND (project_id = %s OR gateway_id = %s) LIMIT 1"
)


def _opted_out_sql(
    number: str, project_id: int | None, gateway_id: int | None, channel: str
) -> bool:
    """Without the ORM: inbound replies ask this on the hot webhook path."""
    with connection.cursor() as cursor:
        cursor.execute(OPTED_OUT_SQL, [number, channel, project_id, gateway_id])
        return cursor.fetchone() is not None


@dataclass
class OptedOut:
    """Opted-out (number, project) and (number, gateway) pairs of a batch of numbers."""

    projects: set[tuple[str, int]] = field(default_factory=set)
    gateways: set[tuple[str, int]] = field(default_factory=set)
    gateway_numbers: set[str] = field(default_factory=set)  # numbers with gateway-scope rows

    def refuses(self, number: str, project_id: int | None, gateway_id: int | None) -> bool:
        return (project_id is not None and (number, project_id) in self.projects) or (
            gateway_id is not None and (number, gateway_id) in self.gateways
        )

    def in_project(self, number: str, project_id: int | None) -> bool:
        return project_id is not None and (number, project_id) in self.projects

    def has_gateway_rows(self, number: str) -> bool:
        """Whether routing must be known to tell (rare: global gateways' STOPs only)."""
        return number in self.gateway_numbers


_OPTOUT_TABLE = OptOut._meta.db_table


def opted_out_pairs(
    numbers: Iterable[str], project_ids: Iterable[int], *, channel: str = SMS
) -> OptedOut:
    """Set-based: one query per chunk of numbers, for the projects' scopes and every gateway
    scope (the gateway a message takes is known only once it is routed). Raw SQL: a single
    send runs this on every request, and building the ORM query cost more than running it."""
    pids = sorted(set(project_ids))
    out = OptedOut()
    for chunk in bulk.in_chunks(sorted({n for n in numbers if n})):
        numbers_sql, params = bulk.in_sql("phone_number", chunk)
        pids_sql, pid_params = bulk.in_sql("project_id", pids)
        sql = (
            f"SELECT phone_number, project_id, gateway_id FROM {_OPTOUT_TABLE} "
            f"WHERE {numbers_sql} AND opted_out = %s AND channel = %s "
            f"AND ({pids_sql} OR gateway_id IS NOT NULL)"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [*params, True, channel, *pid_params])
            rows: Sequence[tuple[str, int | None, int | None]] = cursor.fetchall()
        for number, project_id, gateway_id in rows:
            if project_id is not None:
                out.projects.add((number, project_id))
            elif gateway_id is not None:
                out.gateways.add((number, gateway_id))
                out.gateway_numbers.add(number)
    return out


def project_opt_outs(project: Project) -> QuerySet[OptOut]:
    """The project's own scope: its admins' opt-outs and the STOPs received through its
    gateways, test phone and accepted shares. Nothing of another project's scope."""
    return OptOut.objects.filter(project=project)


def serialize_scope(row: OptOut) -> dict[str, Any]:
    """One opt-out as the contact profile shows it."""
    scope = "project" if row.project_id is not None else "gateway"
    return {
        "scope": scope,
        "channel": row.channel,
        "gateway": row.gateway.name if scope == "gateway" and row.gateway is not None else None,
        "opted_out": row.opted_out,
        "source": row.source,
        "at": iso(row.changed_on),
        "can_opt_in": row.can_opt_in,
    }


def scopes_of(project: Project, number: str) -> list[OptOut]:
    """The opt-outs that bind the project's sends to ``number``: its own scope and the
    scopes of the gateways it may use (opted out or not; own scope first)."""
    rows = (
        OptOut.objects.filter(phone_number=number)
        .filter(Q(project=project) | Q(gateway_id__in=visible_gateways(project).values("pk")))
        .select_related("gateway")
    )
    return sorted(rows, key=lambda r: (r.project_id is None, r.gateway_id or 0))
