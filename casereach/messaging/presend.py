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
from casereach.messaging.whatsapp import (
    OUTSIDE_WINDOW,
    Approved,
    approved_templates,
    inside_window,
    last_inbound,
    template_language,
    whatsapp_gateway,
)
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
    "text",  # WhatsApp's window (may be left out elsewhere)
    "payload",
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
    # WhatsApp: what goes besides the text ({"template": …} outside the 24-hour window, or the
    # message's {"interactive": …}); None: the text alone.
    payload: dict[str, Any] | None = None


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
    # WhatsApp opt-outs (issue 21), read only when the batch has WhatsApp messages.
    opted_whatsapp: OptedOut = field(default_factory=OptedOut)
    # Read on first use, once per project: the gateways a project's SMS may be routed to,
    # and its email gateway (filled in advance, ``check`` reads no database at all).
    indexes: dict[int, GatewayIndex] = field(default_factory=dict)
    email_gateways: dict[int, GatewayConfig | None] = field(default_factory=dict)
    # WhatsApp (``messaging.whatsapp``): each (gateway, number)'s last inbound message, and the
    # APPROVED languages of the templates the rows name — read once per batch.
    last_inbound: dict[tuple[int, str], dt.datetime] = field(default_factory=dict)
    approved: Approved = field(default_factory=dict)

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
            if (r["gateway_source"] in PINNED_SOURCES or r["channel"] == "whatsapp")
            and r["gateway_id"]
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
                    "contact_id", "active", "tz_effective", "lang_effective"
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
        whatsapp = [r["phone_number"] for r in rows if r["channel"] == "whatsapp"]
        opted_whatsapp = (
            opted_out_pairs(whatsapp, projects, channel="whatsapp") if whatsapp else OptedOut()
        )
        ctx = cls(
            opted_whatsapp=opted_whatsapp,
            projects=dict(projects),
            settings=settings,
            pinned=pinned,
            contacts=contacts,
            overrides=overrides,
            opted=opted,
            routes=global_routes(),
        )
        ctx.load_whatsapp([r for r in rows if r["channel"] == "whatsapp"])
        return ctx

    def load_whatsapp(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """The numbers' last inbound message on each row's WhatsApp gateway, and the APPROVED
        languages of the templates the rows name: two queries for the batch."""
        if not rows:
            return
        gateways = [self.whatsapp_gateway(r)[0] for r in rows]
        pairs = [(g.pk, r["phone_number"]) for g, r in zip(gateways, rows, strict=True) if g]
        self.last_inbound = last_inbound(pairs)
        self.approved = approved_templates(
            (g.pk, str(t["name"]))
            for g, r in zip(gateways, rows, strict=True)
            if g is not None and (t := _template_of(r)) is not None
        )

    def whatsapp_gateway(self, row: Mapping[str, Any]) -> tuple[GatewayConfig | None, str, str]:
        """(gateway, source, error code) of a WhatsApp message: the one chosen when it was
        queued (pinned), else the contact's override or the project's WhatsApp gateway."""
        if row["gateway_id"]:
            gw = self.pinned.get(row["gateway_id"])
            return gw, row["gateway_source"], "" if gw is not None else "NO_SUITABLE_GATEWAY"
        project = self.projects.get(row["project_id"])
        if project is None:
            return None, "", "NO_SUITABLE_GATEWAY"
        override = self.overrides.get((row["contact_id"] or "", row["phone_number"]), "")
        gw, source, error = whatsapp_gateway(project.pk, self.index(project), override)
        return gw, source, error or ""

    def opted_out(self, row: Mapping[str, Any], gateway: GatewayConfig | None = None) -> bool:
        """Whether the row's number has opted out in its project's scope, or (``gateway``)
        for the gateway it would go through: the one opt-out check (SPEC 2)."""
        opted = self.opted_whatsapp if row["channel"] == "whatsapp" else self.opted
        if gateway is None:
            return opted.in_project(row["phone_number"], row["project_id"])
        return opted.refuses(row["phone_number"], None, gateway.pk)

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
    check_opt_out = row["channel"] in ("sms", "whatsapp") and not row["allow_opted_out"]
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
    if row["channel"] == "whatsapp" and verdict.gateway is not None:
        return _window(ctx, row, at, verdict)
    return verdict


def _template_of(row: Mapping[str, Any]) -> Mapping[str, Any] | None:
    payload = row.get("payload")
    template = payload.get("template") if isinstance(payload, Mapping) else None
    return template if isinstance(template, Mapping) and template.get("name") else None


def _window(ctx: PresendContext, row: Mapping[str, Any], at: dt.datetime, v: Verdict) -> Verdict:
    """A WhatsApp message inside its number's 24-hour window goes as it is (its text, or its
    interactive part); outside it, or with no text, as its template — APPROVED now in the
    language chosen when it was queued; else it fails ``WHATSAPP_OUTSIDE_WINDOW`` (final)."""
    assert v.gateway is not None
    payload = row.get("payload") if isinstance(row.get("payload"), Mapping) else None
    has_text = not (payload and payload.get("template_only")) and (
        bool((row.get("text") or "").strip()) or bool(payload and "interactive" in payload)
    )
    if has_text and inside_window(ctx.last_inbound.get((v.gateway.pk, row["phone_number"])), at):
        if payload and "interactive" in payload:
            v.payload = {"interactive": payload["interactive"]}
        return v
    template = _template_of(row)
    if template is not None:
        languages = ctx.approved.get((v.gateway.pk, str(template["name"])), {})
        language = str(template.get("language") or "")
        if not language:  # an alert's: chosen now, with the fallbacks of texts
            s = ctx.settings[row["project_id"]]
            contact = ctx.contacts.get(row["contact_id"]) if row["contact_id"] else None
            language = (
                template_language(
                    languages,
                    contact.get("lang_effective") if contact else None,
                    project_languages=s.languages,
                    fallback=s.language_fallback,
                    alert_default=str(template.get("default_language") or "") or None,
                )
                or ""
            )
        if language in languages:
            v.payload = {
                "template": {
                    "name": str(template["name"]),
                    "language": language,
                    "params": list(template.get("params", [])),
                }
            }
            return v
    return Verdict(FAIL, OUTSIDE_WINDOW, gateway=v.gateway, gateway_source=v.gateway_source)


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
    if row["channel"] == "whatsapp":
        gw, source, error = ctx.whatsapp_gateway(row)
        if gw is None:
            return Verdict(FAIL, error or "NO_SUITABLE_GATEWAY", gateway_source=source)
        return Verdict(gateway=gw, gateway_source=source)
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
