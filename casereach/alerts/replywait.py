"""Expecting a reply to an alert (issue 20): the only writer of ``AlertReplyWait``.

- **Recording** (``record_waits``): the scheduler calls it with the batch it has just
  written, in the same transaction; one wait per SMS queued for an alert with
  ``expect_reply_within_minutes``, in one INSERT for the batch. A message that failed at once
  (no number, opted out, stale) gets no wait.
- **A reply** (``on_inbound``, a ``messaging.inbound_conversations`` hook read through its
  probe): any inbound SMS from the number on the gateway the message went out through, after
  it was sent and before it is due, marks the wait ``replied``. The hook never takes the
  message: STOP, keywords and surveys handle it as usual. STOP ends the pair's waits
  ``cancelled``.
- **The due scan** (``run_due_waits``): a wait whose ``due_at`` passed is settled once (a
  guarded update claims it): ``cancelled`` when its message was never sent, ``replied`` when
  a reply the hook did not see is in the log, otherwise ``no_reply`` and the alert's action
  runs. A message not sent yet (a send window, a retry) moves ``due_at`` to its send time
  plus the wait: the deadline counts from the send, as an absolute UTC instant.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from django.db import transaction

from casereach.alerts.models import (
    CANCELLED,
    NO_REPLY,
    REPLIED,
    WAITING,
    Alert,
    AlertReplyWait,
)
from casereach.alerts.replyspec import NoReply
from casereach.alerts.replywait_queries import PROBE, due_wait_ids, reply_seen, waiting_for_pair
from casereach.alerts.replywait_send import message_owner, other_gateway, set_property
from casereach.alerts.spec import spec_of
from casereach.core import bulk, rows
from casereach.core.timeutil import now
from casereach.messaging.inbound_replies import Ctx
from casereach.messaging.log import MessageDraft
from casereach.messaging.models import FAILED, Message
from casereach.projects.actions import lock_project

log = logging.getLogger(__name__)
DUE_BATCH = 100
MISSING = object()  # ctx.held without the probe: the message did not come through do_receive
STOPPED = "the number opted out (STOP)"


class ReplyWaitDraft(rows.Draft):
    model = AlertReplyWait


# -- recording -------------------------------------------------------------------------------


def record_waits(
    alerts: Mapping[int, Alert],
    firings: Sequence[Any],
    messages: Sequence[Sequence[tuple[Any, MessageDraft]]],
    at: dt.datetime,
) -> None:
    """A wait for every SMS of the batch queued by an alert that expects a reply (``firings``
    and ``messages`` in step, as the scheduler writes them); one INSERT, none when no alert
    of the batch expects a reply."""
    drafts: list[ReplyWaitDraft] = []
    for firing, msgs in zip(firings, messages, strict=True):
        alert = alerts[firing.alert_id]
        spec = spec_of(alert)
        within = spec.expect_reply_within_minutes
        if within is None or spec.channel != "sms":
            continue
        action = spec.no_reply.model_dump(mode="json") if spec.no_reply else None
        case_id = firing.recipient_key if alert.kind == "conditional" else None
        for _, msg in msgs:
            if msg.status == FAILED or not msg.phone_number:
                continue
            drafts.append(_draft(alert, msg, case_id, within, action, at))
    rows.insert(drafts)  # writes: alerts.AlertReplyWait


def _draft(
    alert: Alert,
    msg: MessageDraft,
    case_id: str | None,
    within: int,
    action: dict[str, Any] | None,
    at: dt.datetime,
) -> ReplyWaitDraft:
    if case_id is None and msg.contact_type == "case":
        case_id = msg.contact_id  # a broadcast to a case: the contact is the case
    return ReplyWaitDraft(
        project_id=alert.project_id,
        alert_id=alert.pk,
        alert_version=alert.version,
        event_id=msg.event_id,
        message_id=msg.id,
        contact_id=msg.contact_id,
        case_id=case_id,
        phone_number=msg.phone_number,
        within_minutes=within,
        no_reply=action,
        due_at=at + dt.timedelta(minutes=within),  # moved to sent_on + within once sent
        status=WAITING,
        created_on=at,
    )


# -- a reply (the inbound hook) ----------------------------------------------------------------


def on_inbound(ctx: Ctx, happening: str) -> str | None:
    """Mark the pair's waits replied (or cancelled by STOP); never takes the message."""
    probed = ctx.held.get(PROBE[0], MISSING)
    if probed is None:
        return None  # no wait holds the pair (read with the sender: no statement)
    # The test phone acts as its project's own gateway; a message a project took answers
    # only that project's waits; one no project took, any project's.
    project_id = ctx.as_project or (ctx.project.pk if ctx.project is not None else None)
    stamp = ctx.msg.created_on
    waits = waiting_for_pair(ctx.gw.pk, ctx.msg.phone_number, project_id).select_for_update()
    for wait in waits:
        if happening == "stop":
            _settle(wait, CANCELLED, stamp, STOPPED)
            continue
        sent_on = wait.msg_sent_on  # type: ignore[attr-defined]
        if sent_on is None or stamp < sent_on or stamp > _due(wait, sent_on):
            continue
        _settle(wait, REPLIED, stamp, "", reply=ctx.msg)
    return None


def _due(wait: AlertReplyWait, sent_on: dt.datetime) -> dt.datetime:
    return sent_on + dt.timedelta(minutes=wait.within_minutes)


def _settle(
    wait: AlertReplyWait,
    status: str,
    at: dt.datetime,
    detail: str,
    *,
    reply: Message | None = None,
) -> bool:
    """End a waiting wait (the guarded update: False when another scan or message ended it
    first)."""
    values: dict[str, Any] = {"status": status, "ended_on": at, "detail": detail[:500]}
    if reply is not None:
        values.update(replied_on=reply.created_on, reply_message_id=reply.id)
    gateway_name = getattr(wait, "msg_gateway_name", None)
    if gateway_name:
        values.update(gateway_name=gateway_name, sent_on=getattr(wait, "msg_sent_on", None))
        values.update(gateway_id=getattr(wait, "msg_gateway_id", None))
    done = AlertReplyWait.objects.filter(pk=wait.pk, status=WAITING).update(**values)
    return bool(done)


# -- the due scan ----------------------------------------------------------------------------


def run_due_waits(at: dt.datetime | None = None, limit: int = DUE_BATCH) -> int:
    """Settle up to ``limit`` due waits, each in its own transaction; how many were handled
    (settled, or moved to their message's send time)."""
    at = at or now()
    handled = 0
    for wait_id in due_wait_ids(at, limit):
        try:
            with bulk.process_writer_turn(), transaction.atomic():
                handled += _fire(wait_id, at)
        except Exception:  # one wait's failure does not stop the others
            log.exception("alert reply wait %s: due scan failed", wait_id)
    return handled


def _fire(wait_id: int, at: dt.datetime) -> int:
    wait = AlertReplyWait.objects.filter(pk=wait_id, status=WAITING).first()
    if wait is None or wait.due_at > at:
        return 0
    msg = (
        Message.objects.filter(pk=wait.message_id)
        .only("status", "error_code", "sent_on", "gateway_id", "gateway_name", "next_attempt_at")
        .first()
    )
    if msg is None or msg.status == FAILED:
        code = msg.error_code if msg is not None else "the message is no longer in the log"
        return int(_settle(wait, CANCELLED, at, f"the message was not sent: {code}"))
    if msg.sent_on is None or msg.gateway_id is None:  # queued: due from the send, not now
        start = max(at, msg.next_attempt_at or at)
        return _move(wait, start + dt.timedelta(minutes=wait.within_minutes))
    due = _due(wait, msg.sent_on)
    if due > at:
        return _move(wait, due, msg)
    wait.msg_gateway_name, wait.msg_sent_on = msg.gateway_name, msg.sent_on  # type: ignore[attr-defined]
    wait.msg_gateway_id = msg.gateway_id  # type: ignore[attr-defined]
    seen = reply_seen(wait, msg.gateway_id, msg.sent_on, due)
    if seen is not None:
        return int(_settle(wait, REPLIED, at, "", reply=seen))
    if not _settle(wait, NO_REPLY, at, "no reply"):
        return 0  # another scan claimed it first
    _run_action(wait, at)
    return 1


def _move(wait: AlertReplyWait, due: dt.datetime, msg: Message | None = None) -> int:
    """The deadline moved to ``due`` (guarded on the one read)."""
    values: dict[str, Any] = {"due_at": due}
    if msg is not None:
        values.update(sent_on=msg.sent_on, gateway_id=msg.gateway_id, gateway_name=msg.gateway_name)
    qs = AlertReplyWait.objects.filter(pk=wait.pk, status=WAITING, due_at=wait.due_at)
    return qs.update(**values)


def _run_action(wait: AlertReplyWait, at: dt.datetime) -> None:
    """The no-reply action frozen in the wait; what it did goes to ``detail``."""
    if not wait.no_reply:
        return
    action = NoReply.model_validate(wait.no_reply)
    project = lock_project(wait.project_id)
    if action.action == "set_property" and action.property and action.value is not None:
        outcome = set_property(project, wait, action.property, action.value)
    elif action.action == "message_owner":
        outcome = message_owner(project, wait, action.message)
    else:
        outcome = other_gateway(project, wait, action.gateway or "")
    detail = f"no reply: {outcome}"
    AlertReplyWait.objects.filter(pk=wait.pk).update(detail=detail[:500])
