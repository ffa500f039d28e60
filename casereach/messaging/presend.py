"""The checks a message passes before its gateway call (SPEC 4.3), in one place.

The dispatcher runs them on every claimed message; an alert's dry run and a contact's upcoming
sends run the very same function on the messages they predict, so what they say would fail is
what sending fails with. ``PresendContext.load`` reads what the checks need for a whole batch
with a fixed number of queries; ``check`` then decides one message without touching the
database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from casereach.contacts.models import Contact, PhoneEntry
from casereach.core import bulk
from casereach.gateways.models import GatewayConfig, GlobalRoutes
from casereach.gateways.queries import (
    GatewayIndex,
    email_gateway,
    gateway_index,
    global_routes,
    pick_sender,
    project_settings,
    route,
)
from casereach.messaging import log as message_log
from casereach.messaging.actions import CHOSEN
from casereach.messaging.optouts import OptedOut, opted_out_pairs
from casereach.messaging.windows import next_allowed
from casereach.projects.models import Project
from casereach.projects.settings_schema import ProjectSettings

# Messages that go out through the gateway they name (a reply through the gateway that
# received the message; a send whose sender chose the gateway), not through routing.
PINNED_SOURCES = frozenset({"inbound", CHOSEN})

# The fields of a message row the checks read (the dispatcher's claimed rows have them all).
ROW_FIELDS = (
    "project_id",
    "contact_id",
    "channel",
    "phone_number",
    "allow_opted_out",
    "gateway_source",
    "gateway_id",
    "created_on",
)


# What the checks decide for one message.
Action = Literal["send", "fail", "postpone"]
SEND: Final = "send"
FAIL: Final = "fail"
POSTPONE: Final = "postpone"


@dataclass
class Verdict:
    """What to do with one message: send it (through ``gateway``), fail it with
    ``error_code``, or postpone it until ``until``."""

    action: Action = SEND
    error_code: str | None = None
    until: dt.datetime | None = None
    gateway: GatewayConfig | None = None
    gateway_source: str = ""
    sender: str = ""


@dataclass
class PresendContext:
    """Everything the checks read for a batch of message rows."""

    projects: dict[int, Project]
    settings: dict[int | None, ProjectSettings]
    pinned: dict[int, GatewayConfig]
    contacts: Mapping[str, Mapping[str, Any]]
    overrides: dict[tuple[str, str], str]
    opted: OptedOut
    routes: GlobalRoutes
    # Read on first use, once per project: the gateways a project's SMS may be routed to,
    # and its email gateway (filled in advance, ``check`` reads no database at all).
    indexes: dict[int, GatewayIndex] = field(default_factory=dict)
    email_gateways: dict[int, GatewayConfig | None] = field(default_factory=dict)

    @classmethod
    def load(
        cls, rows: Sequence[Mapping[str, Any]], projects: Mapping[int, Project] | None = None
    ) -> PresendContext:
        if projects is None:
            projects = {
                p.pk: p for p in Project.objects.filter(pk__in={r["project_id"] for r in rows})
            }
        # Validated once per configuration generation, not per batch (the drain loads a
        # context for every batch it claims).
        settings: dict[int | None, ProjectSettings] = {
            pk: project_settings(p) for pk, p in projects.items()
        }
        settings[None] = ProjectSettings()  # traffic on a global gateway that no project owns
        pinned_ids = {
            r["gateway_id"]
            for r in rows
            if r["gateway_source"] in PINNED_SOURCES and r["gateway_id"]
        }
        pinned = (
            {g.pk: g for g in GatewayConfig.objects.filter(pk__in=pinned_ids, is_active=True)}
            if pinned_ids
            else {}
        )
        contact_ids = [r["contact_id"] for r in rows if r["contact_id"]]
        contacts = (
            {
                c["contact_id"]: c
                for c in Contact.objects.filter(bulk.is_in("contact_id", contact_ids)).values(
                    "contact_id", "active", "tz_effective"
                )
            }
            if contact_ids
            else {}
        )
        overrides = (
            {
                (e["contact_id"], e["number"]): e["gateway"]
                for e in PhoneEntry.objects.filter(bulk.is_in("contact_id", contact_ids)).values(
                    "contact_id", "number", "gateway"
                )
            }
            if contact_ids
            else {}
        )
        # Opted out in the sending project's scope, or for the gateway a message would use
        # (known once it is routed): one query per chunk of numbers.
        opted = opted_out_pairs((r["phone_number"] for r in rows), projects)
        return cls(
            projects=dict(projects),
            settings=settings,
            pinned=pinned,
            contacts=contacts,
            overrides=overrides,
            opted=opted,
            routes=global_routes(),
        )

    def opted_out(self, row: Mapping[str, Any], gateway: GatewayConfig | None = None) -> bool:
        """Whether the row's number has opted out in its project's scope, or (``gateway``)
        for the gateway it would go through: the one opt-out check (SPEC 2)."""
        if gateway is None:
            return self.opted.in_project(row["phone_number"], row["project_id"])
        return self.opted.refuses(row["phone_number"], None, gateway.pk)

    def index(self, project: Project) -> GatewayIndex:
        """The project's routable gateways by name (read once per context)."""
        index = self.indexes.get(project.pk)
        if index is None:
            index = self.indexes[project.pk] = gateway_index(project)
        return index

    def email_gateway(self, project: Project) -> GatewayConfig | None:
        """The project's email gateway (read once per context)."""
        if project.pk not in self.email_gateways:
            self.email_gateways[project.pk] = email_gateway(project)
        return self.email_gateways[project.pk]


def check(
    ctx: PresendContext,
    row: Mapping[str, Any],
    at: dt.datetime,
    *,
    limit_reached: bool = False,
    budget_reached: bool = False,
) -> Verdict:
    """The pre-send checks of one message, in order: stale, inactive contact, opted out, the
    daily limit (``limit_reached``: the dispatcher's count), the monthly budget
    (``budget_reached``), the restricted windows, then the gateway (pinned, routed, or the
    email gateway)."""
    s = ctx.settings[row["project_id"]]
    contact = ctx.contacts.get(row["contact_id"]) if row["contact_id"] else None
    if message_log.raw_before(row["created_on"], at - dt.timedelta(hours=s.stale_after_hours)):
        return Verdict(FAIL, "MESSAGE_IS_STALE")
    if row["contact_id"] and (contact is None or not contact["active"]):
        return Verdict(FAIL, "CONTACT_IS_INACTIVE")
    check_opt_out = row["channel"] == "sms" and not row["allow_opted_out"]
    if check_opt_out and ctx.opted_out(row):
        return Verdict(FAIL, "PHONE_NUMBER_OPTED_OUT")
    reply = row["gateway_source"] == "inbound"  # answers a person who just wrote
    if not reply and limit_reached:
        return Verdict(POSTPONE, "DAILY_LIMIT_REACHED", until=at + dt.timedelta(hours=1))
    if not reply and budget_reached:
        return Verdict(POSTPONE, "MONTHLY_BUDGET_REACHED", until=at + dt.timedelta(hours=1))
    zone = contact["tz_effective"] if contact else s.time_zone
    later = None if reply else next_allowed(at, s.restricted_windows, zone or "UTC")
    if later is not None:
        return Verdict(POSTPONE, until=later)
    verdict = _gateway(ctx, row, s)
    if check_opt_out and verdict.gateway is not None and ctx.opted_out(row, verdict.gateway):
        return Verdict(
            FAIL,
            "PHONE_NUMBER_OPTED_OUT",
            gateway=verdict.gateway,
            gateway_source=verdict.gateway_source,
        )
    return verdict


def _gateway(ctx: PresendContext, row: Mapping[str, Any], s: ProjectSettings) -> Verdict:
    """The gateway the message goes through: pinned, routed, or the email gateway."""
    project = ctx.projects.get(row["project_id"])
    if row["gateway_source"] == "inbound":
        # A reply goes out through the gateway that received the message.
        gw = ctx.pinned.get(row["gateway_id"] or 0)
        if gw is None:
            return Verdict(FAIL, "NO_SUITABLE_GATEWAY")
        return Verdict(
            gateway=gw, gateway_source="inbound", sender=pick_sender(gw, row["phone_number"])
        )
    if row["gateway_source"] == CHOSEN:
        # The sender named the gateway; it must still exist and be active.
        gw = ctx.pinned.get(row["gateway_id"] or 0)
        if gw is None:
            return Verdict(FAIL, "GATEWAY_NOT_FOUND")
        sender = pick_sender(gw, row["phone_number"]) if row["channel"] == "sms" else ""
        return Verdict(gateway=gw, gateway_source=CHOSEN, sender=sender)
    if project is None:
        return Verdict(FAIL, "NO_SUITABLE_GATEWAY")
    if row["channel"] == "sms":
        override = ctx.overrides.get((row["contact_id"] or "", row["phone_number"]), "")
        chosen = route(
            project,
            row["phone_number"],
            override,
            routes=ctx.routes,
            index=ctx.index(project),
            settings=s,
        )
        if chosen.gateway is None:
            return Verdict(FAIL, chosen.error_code, gateway_source=chosen.source)
        return Verdict(
            gateway=chosen.gateway,
            gateway_source=chosen.source,
            sender=pick_sender(chosen.gateway, row["phone_number"]),
        )
    gw = ctx.email_gateway(project)
    if gw is None:
        return Verdict(FAIL, "NO_SUITABLE_GATEWAY")
    return Verdict(gateway=gw, gateway_source="email")
