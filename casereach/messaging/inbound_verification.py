"""Two-way number verification of mobile workers (SPEC 3.8).

Starting reserves the number (a pending holder) and texts it; a reply containing ``123``
from that number completes it. The phone entries and the worker's verified numbers are
written by ``contacts.actions`` and ``workers.actions``; this module decides and replies.
"""

from __future__ import annotations

from django.db import transaction

from casereach.contacts.actions import do_confirm_number, do_reserve_number
from casereach.contacts.models import Contact, PhoneEntry
from casereach.core import bulk
from casereach.core.errors import BadRequest, NotFound
from casereach.gateways.models import GatewayConfig
from casereach.messaging import log as message_log
from casereach.messaging.inbound_replies import Ctx, close_event, queue_sms, reply
from casereach.messaging.keywords import DEFAULT_VERIFY_DONE, DEFAULT_VERIFY_REQUEST
from casereach.messaging.models import Message
from casereach.projects.actions import lock_project
from casereach.projects.models import Project
from casereach.projects.settings_schema import effective_settings
from casereach.workers.actions import do_add_verified_number
from casereach.workers.models import MobileWorker

VERIFY_CODE = "123"


def _chosen_entry(project: Project, worker_id: str, number: str | None) -> PhoneEntry:
    """The worker's entry to verify: the one of ``number``, else the first usable one."""
    worker = MobileWorker.objects.filter(project=project, id=worker_id).first()
    if worker is None:
        raise NotFound(f"worker '{worker_id}' not found")
    if not worker.is_active:
        raise BadRequest("the worker is deactivated")
    entries = list(PhoneEntry.objects.filter(contact_id=worker.id).order_by("position", "id"))
    if not entries:
        raise BadRequest("the worker has no usable phone number")
    if not number:
        return entries[0]
    wanted = number.strip().removeprefix("+")
    chosen = next((e for e in entries if e.number == wanted), None)
    if chosen is None:
        raise BadRequest(f"{number!r} is not one of the worker's usable numbers")
    return chosen


def do_start_verification(
    project: Project, worker_id: str, number: str | None = None
) -> tuple[str, str]:
    """(result, number): ``started``, ``resent_pending``, ``already_verified`` or
    ``already_in_use``. Starting reserves the number (a pending holder) and texts it."""
    with transaction.atomic():
        locked = lock_project(project.pk)
        chosen = _chosen_entry(locked, worker_id, number)
        bulk.lock_keys("phone", [chosen.number])
        current = PhoneEntry.objects.filter(number=chosen.number, holder=True).first()
        if current is not None and current.pk == chosen.pk:
            if not current.pending:
                return "already_verified", chosen.number
            result = "resent_pending"
        elif current is not None:
            return "already_in_use", chosen.number
        else:
            do_reserve_number(chosen)
            result = "started"
        contact = Contact.objects.filter(contact_id=chosen.contact_id).first()
        s = effective_settings(locked.settings)
        event = message_log.new_event(
            locked, source="verification", content_type="sms", triggered_by="verification"
        )
        sub = message_log.new_subevent(locked, event, contact)
        ctx = Ctx(
            gw=GatewayConfig(),
            msg=Message(phone_number=chosen.number),
            project=locked,
            settings=s,
            entry=chosen,
            contact=contact,
            event=event,
            subevent=sub,
        )
        queue_sms(ctx, s.verification_text, DEFAULT_VERIFY_REQUEST, pinned=False)
        close_event(ctx)
    return result, chosen.number


def complete_verification(ctx: Ctx) -> None:
    """The pending holder replied with the code: its number is confirmed, and thanked."""
    entry = ctx.entry
    assert entry is not None and ctx.project is not None
    do_confirm_number(entry)
    do_add_verified_number(entry.contact_id, entry.number)
    reply(ctx, "verification", ctx.settings.verification_done_text, DEFAULT_VERIFY_DONE)
