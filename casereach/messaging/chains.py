"""Fallback chains (issue 21): one logical message to a contact, one attempt per channel.

A project's ``channel_order`` (e.g. whatsapp, sms, email) — or a contact's own, the case
property ``contact_channel_order`` — is the chain. A message to a contact whose channel is in
the chain starts on the first channel of the chain that can reach the contact
(``plan_drafts``): a number for WhatsApp and SMS, a valid address for email, not opted out
in that channel's scope, a gateway to carry it. Each attempt is a message row; the first
attempt's id is the chain's id and ``chain_next`` lists the channels still to try.

The chain moves on (``move_on``), in the same transaction as what causes it, when the
attempt fails for good — the number is not on WhatsApp, no template fits outside the
24-hour window, the provider refused it or its retries ran out — or when no ``delivered``
came within the project's ``fallback_after_minutes`` for its channel (``move_on_waiting``,
the due scan of ``serve`` and of Celery beat). Moving on writes the next attempt on the next
channel that can reach the contact; with none left, the chain ends there. An attempt the
chain moved on from keeps what happens to it later (a late ``delivered`` is recorded on it)
but nothing acts on it: it never moves the chain again nor closes its sub-event.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from casereach.cases.models import Case
from casereach.contacts.models import Contact, PhoneEntry
from casereach.contacts.queries import send_order
from casereach.core import bulk
from casereach.core.segments import analyse
from casereach.core.timeutil import now
from casereach.gateways.models import GatewayConfig, GlobalRoutes
from casereach.gateways.queries import (
    GatewayIndex,
    email_gateway,
    gateway_index,
    global_routes,
    project_settings,
    route,
)
from casereach.messaging import log
from casereach.messaging.log import MessageDraft
from casereach.messaging.log import chains as chain_log
from casereach.messaging.models import FAILED, IN_PROGRESS, QUEUED
from casereach.messaging.optouts import OptedOut, opted_out_pairs
from casereach.messaging.whatsapp import whatsapp_gateway
from casereach.projects.models import Project
from casereach.projects.settings_schema import CHANNELS, ProjectSettings

# The case property with a contact's own channel order ("sms,email"), over the project's.
ORDER_PROPERTY = "contact_channel_order"

# Why a chain moved on from an attempt (``Message.fallback_reason``).
NOT_A_WHATSAPP_USER = "not_a_whatsapp_user"
OUTSIDE_WINDOW = "outside_window"
PERMANENT_FAILURE = "failed"
RETRIES_EXHAUSTED = "retries_exhausted"
NOT_DELIVERED_IN_TIME = "not_delivered_in_time"
REASONS = (
    NOT_A_WHATSAPP_USER,
    OUTSIDE_WINDOW,
    PERMANENT_FAILURE,
    RETRIES_EXHAUSTED,
    NOT_DELIVERED_IN_TIME,
)
_BY_CODE = {
    "WHATSAPP_NOT_A_USER": NOT_A_WHATSAPP_USER,
    "WHATSAPP_OUTSIDE_WINDOW": OUTSIDE_WINDOW,
    "TOO_MANY_UNSUCCESSFUL_ATTEMPTS": RETRIES_EXHAUSTED,
}
# Failures that are not the channel's: another channel would fail the same way (or must
# not be tried), so the chain ends with them.
STAYS = frozenset(
    {
        "MESSAGE_IS_STALE",
        "CONTACT_IS_INACTIVE",
        "MESSAGE_BLANK",
        "NO_MESSAGE",
        "MONTHLY_BUDGET_REACHED",
    }
)
# Failures of a channel at creation (no number, opted out, no gateway, …): a chain skips
# such a channel and starts on the next one.
UNREACHABLE = frozenset(
    {
        "NO_PHONE_NUMBER",
        "PHONE_NUMBER_OPTED_OUT",
        "NO_SUITABLE_GATEWAY",
        "GATEWAY_NOT_FOUND",
        "NO_EMAIL_ADDRESS",
        "ERROR_INVALID_EMAIL_ADDRESS",
    }
)
MOVE_BATCH = 500


def reason_for(error_code: str | None) -> str | None:
    """Why a failure with ``error_code`` moves a chain on; None when it ends the chain."""
    if error_code in STAYS:
        return None
    return _BY_CODE.get(error_code or "", PERMANENT_FAILURE)


def parse_order(raw: Any) -> list[str] | None:
    """A contact's ``contact_channel_order`` ("whatsapp, sms"): its known channels in order,
    once each; None when it names none (the project's order applies)."""
    if not isinstance(raw, str):
        return None
    out: list[str] = []
    for part in raw.split(","):
        channel = part.strip().lower()
        if channel in CHANNELS and channel not in out:
            out.append(channel)
    return out or None


# -- who can be reached on which channel -------------------------------------------------------


@dataclass
class Reach:
    """What choosing a contact's channel needs of it."""

    number: str = ""  # its first phone entry in send order
    override: str = ""  # that entry's gateway override (contact_backend_id)
    email: str = ""
    email_status: str = "missing"
    active: bool = True
    order: list[str] | None = None  # its own channel order


@dataclass
class Choice:
    """A channel that can reach a contact: its address and gateway."""

    channel: str
    gateway: GatewayConfig
    gateway_source: str
    phone_number: str = ""
    email_address: str = ""


@dataclass
class Reaches:
    """Everything choosing channels for a batch of one project's contacts reads, once each."""

    project: Project
    settings: ProjectSettings
    contacts: dict[str, Reach]
    index: GatewayIndex
    routes: GlobalRoutes
    email_gateway: GatewayConfig | None
    opted: dict[str, OptedOut] = field(default_factory=dict)  # channel → opt-outs

    @classmethod
    def load(cls, project: Project, contact_ids: Iterable[str]) -> Reaches:
        ids = sorted(set(contact_ids))
        settings = project_settings(project)
        contacts = _contacts(project, ids)
        numbers = [r.number for r in contacts.values() if r.number]
        index = gateway_index(project)
        return cls(
            project=project,
            settings=settings,
            contacts=contacts,
            index=index,
            routes=global_routes(),
            email_gateway=email_gateway(project),
            opted={
                channel: opted_out_pairs(numbers, [project.pk], channel=channel)
                for channel in ("sms", "whatsapp")
            }
            if numbers
            else {},
        )

    def order_of(self, contact_id: str) -> list[str]:
        reach = self.contacts.get(contact_id)
        if reach is not None and reach.order is not None:
            return reach.order
        return list(self.settings.channel_order)

    def choose(self, contact_id: str, channel: str) -> Choice | None:
        """How ``channel`` reaches the contact; None when it cannot."""
        reach = self.contacts.get(contact_id)
        if reach is None or not reach.active:
            return None
        if channel == "email":
            if reach.email_status != "ok" or self.email_gateway is None:
                return None
            return Choice("email", self.email_gateway, "email", email_address=reach.email)
        number = reach.number
        if not number:
            return None
        opted = self.opted.get(channel, OptedOut())
        if opted.in_project(number, self.project.pk):
            return None
        if channel == "whatsapp":  # as a WhatsApp send picks it (``messaging.whatsapp``)
            gw, source, _ = whatsapp_gateway(self.project.pk, self.index, reach.override)
        else:
            found = route(
                self.project,
                number,
                reach.override,
                routes=self.routes,
                index=self.index,
                settings=self.settings,
            )
            gw, source = found.gateway, found.source
        if gw is None or opted.refuses(number, None, gw.pk):
            return None
        return Choice(channel, gw, source, phone_number=number)

    def first(self, contact_id: str, channels: Sequence[str]) -> tuple[Choice, list[str]] | None:
        """The first of ``channels`` that reaches the contact, and the channels after it."""
        for i, channel in enumerate(channels):
            choice = self.choose(contact_id, channel)
            if choice is not None:
                return choice, list(channels[i + 1 :])
        return None


def _contacts(project: Project, ids: Sequence[str]) -> dict[str, Reach]:
    """Each contact's reach: one query per chunk each for contacts, phone entries and the
    channel-order case property."""
    out: dict[str, Reach] = {}
    for chunk in bulk.in_chunks(ids):
        for contact_id, email, status, active in Contact.objects.filter(
            bulk.is_in("contact_id", chunk), project=project
        ).values_list("contact_id", "email", "email_status", "active"):
            out[contact_id] = Reach(email=email, email_status=status, active=active)
        entries = (
            PhoneEntry.objects.filter(bulk.is_in("contact_id", chunk))
            .order_by("contact_id", *send_order())
            .values_list("contact_id", "number", "gateway")
        )
        seen: set[str] = set()
        for contact_id, number, override in entries:
            reach = out.get(contact_id)
            if reach is not None and contact_id not in seen:
                seen.add(contact_id)
                reach.number, reach.override = number, override
        for case_id, properties in Case.objects.filter(
            bulk.is_in("case_id", chunk), project=project
        ).values_list("case_id", "properties"):
            if case_id in out and isinstance(properties, dict):
                out[case_id].order = parse_order(properties.get(ORDER_PROPERTY))
    return out


# -- a new message's first channel --------------------------------------------------------------


def chained(settings: ProjectSettings) -> bool:
    """Whether a project's messages to contacts follow chains (it set a channel order)."""
    return bool(settings.channel_order)


def plan_drafts(
    project: Project, drafts: Sequence[MessageDraft], *, default_subject: str = ""
) -> list[MessageDraft]:
    """Put each draft to a contact whose channel is in its chain on the chain's first channel
    that reaches the contact (a draft that failed for want of its own channel is queued on
    another); those are returned. Nothing at all in a project without a channel order."""
    settings = project_settings(project)
    if not chained(settings):
        return []
    candidates = [d for d in drafts if _plannable(d)]
    if not candidates:
        return []
    reaches = Reaches.load(project, (d.contact_id for d in candidates))
    planned: list[MessageDraft] = []
    for d in candidates:
        order = reaches.order_of(d.contact_id)
        if d.channel not in order:
            continue
        found = reaches.first(d.contact_id, order)
        if found is None:
            continue  # no channel reaches the contact: the draft keeps its own failure
        choice, rest = found
        _on_channel(d, choice, default_subject or project.name)
        d.chain_id, d.chain_step, d.chain_next = d.id, 1, ",".join(rest)
        if d.status == FAILED:
            d.status, d.error_code, d.failed_on = QUEUED, None, None
            d.next_attempt_at = d.created_on
        planned.append(d)
    return planned


def plan_sends(project: Project, sent: Sequence[tuple[Any, list[MessageDraft]]]) -> None:
    """``plan_drafts`` for a batch of sends ((event, [message]) each): a message that failed
    for want of its own channel and is queued on another leaves its event open."""
    planned = {m.id for m in plan_drafts(project, [m for _, ms in sent for m in ms])}
    for event, messages in sent:
        if any(m.id in planned for m in messages):
            event.status, event.error_code = IN_PROGRESS, None
            event.sub.status, event.sub.error_code = IN_PROGRESS, None


def _plannable(d: MessageDraft) -> bool:
    values = d.__dict__
    if not values.get("contact_id") or values.get("allow_opted_out"):
        return False
    if values.get("gateway_source") in ("chosen", "inbound"):
        return False  # the sender named the gateway, or it answers an inbound message
    if values.get("status", QUEUED) == FAILED:
        return values.get("error_code") in UNREACHABLE
    return True


def _on_channel(d: MessageDraft, choice: Choice, default_subject: str) -> None:
    """The draft rewritten to go on ``choice``'s channel, address and gateway."""
    d.channel = choice.channel
    d.phone_number, d.email_address = choice.phone_number, choice.email_address
    d.gateway_name, d.gateway_id = choice.gateway.name, choice.gateway.pk
    d.gateway_source = choice.gateway_source
    if choice.channel != "whatsapp":
        d.payload = None  # a WhatsApp template or interactive part goes on WhatsApp only
    text = d.__dict__.get("text", "") or ""
    if choice.channel == "email":
        d.segments, d.encoding = 0, ""
        if not d.__dict__.get("subject"):
            d.subject = default_subject[:998]
    else:
        info = analyse(text) if text else None
        d.segments, d.encoding = (info.segments, info.encoding) if info else (0, "")


# -- moving on ----------------------------------------------------------------------------------


def move_on(failed: Mapping[str, str | None], at: dt.datetime) -> list[str]:
    """The attempts ``failed`` (id → error code) failed just now, in the caller's
    transaction: each whose chain has a channel left moves on to the next one that reaches
    the contact. The ids of the attempts moved on (their next attempt is written)."""
    by_reason: dict[str, list[str]] = defaultdict(list)
    for message_id, code in failed.items():
        reason = reason_for(code)
        if reason is not None:
            by_reason[reason].append(message_id)
    moved: list[str] = []
    for reason, ids in sorted(by_reason.items()):
        moved.extend(_move(ids, reason, at, timed_out_before=None))
    return moved


def move_on_waiting(at: dt.datetime | None = None, limit: int = MOVE_BATCH) -> int:
    """The due scan (``serve``'s loop, the ``casereach.chain_timeouts`` task): up to
    ``limit`` sent attempts that had no ``delivered`` within their project's wait for their
    channel move on, in one transaction, each claimed by a guarded update (a concurrent scan
    moves none of them twice). How many moved on."""
    at = at or now()
    pairs = chain_log.waiting_pairs()
    if not pairs:
        return 0
    projects = {p.pk: p for p in Project.objects.filter(pk__in={p for p, _ in pairs})}
    waits: dict[tuple[int, str], int] = {}
    for project_id, channel in pairs:
        project = projects.get(project_id)
        if project is None:
            continue
        minutes = project_settings(project).fallback_after_minutes.get(channel)  # type: ignore[call-overload]
        if minutes:
            waits[(project_id, channel)] = minutes
    moved = 0
    with bulk.process_writer_turn(), transaction.atomic():
        for (project_id, channel), minutes in sorted(waits.items()):
            ids = chain_log.waiting(at, {(project_id, channel): minutes}, limit)
            if ids:
                before = at - dt.timedelta(minutes=minutes)
                moved += len(_move(ids, NOT_DELIVERED_IN_TIME, at, timed_out_before=before))
    return moved


def _move(
    ids: Sequence[str], reason: str, at: dt.datetime, *, timed_out_before: dt.datetime | None
) -> list[str]:
    """Plan the next attempt of each chain, claim the attempts (guarded), write the next
    attempts of those this call claimed; chains with no channel left that reaches the
    contact end where they are."""
    rows = chain_log.move_rows(ids)
    if not rows:
        return []
    by_project: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["project_id"] is not None and r["contact_id"]:
            by_project[r["project_id"]].append(r)
    projects = {p.pk: p for p in Project.objects.filter(pk__in=list(by_project))}
    drafts: dict[str, MessageDraft] = {}
    ended: list[str] = []
    for project_id, group in by_project.items():
        project = projects[project_id]
        reaches = Reaches.load(project, (r["contact_id"] for r in group))
        for r in group:
            found = reaches.first(r["contact_id"], r["chain_next"].split(","))
            if found is None:
                ended.append(r["id"])
                continue
            drafts[r["id"]] = _next_attempt(r, found[0], found[1], at, project.name)
    claimed = chain_log.claim_moves(list(drafts), reason, at, timed_out_before=timed_out_before)
    chain_log.end_chains(ended)
    log.add_messages([drafts[i] for i in claimed])
    claimed_ids = set(claimed)
    chain_log.reopen([r for r in rows if r["id"] in claimed_ids])
    return claimed


def _next_attempt(
    row: Mapping[str, Any], choice: Choice, rest: Sequence[str], at: dt.datetime, subject: str
) -> MessageDraft:
    d = MessageDraft(
        project_id=row["project_id"],
        event_id=row["event_id"],
        subevent_id=row["subevent_id"],
        contact_id=row["contact_id"],
        contact_type=row["contact_type"],
        text=row["text"],
        subject=row["subject"],
        language=row["language"],
        status=QUEUED,
        error_code=None,
        created_on=at,
        updated_on=at,
        next_attempt_at=at,
        chain_id=row["chain_id"] or row["id"],
        chain_step=int(row["chain_step"] or 1) + 1,
        chain_next=",".join(rest),
    )
    _on_channel(d, choice, subject)
    return d
