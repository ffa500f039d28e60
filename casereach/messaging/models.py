"""The message log and the outbox: events, sub-events, messages, send attempts, opt-outs.

Message status moves forward only::

    queued → sending → sent → delivered → read   (read: WhatsApp's read receipt)
       ↑        │        └──→ failed   (a late failure report)
       └────────┘ (retry, or a lease that expired: outcome unknown)
    queued/sending → failed            (a check or the gateway refused it)
"""

from __future__ import annotations

from typing import Final, Literal

from django.db import models
from django.db.models import Q

from casereach.core.ids import time_ordered_id
from casereach.gateways.models import GatewayConfig
from casereach.projects.models import Project

# The status vocabularies. Columns hold the plain strings; code names them through these
# constants (typed with the ``Literal`` aliases) rather than spelling the strings again.
MessageStatus = Literal["queued", "sending", "sent", "delivered", "read", "failed"]
QUEUED: Final = "queued"
SENDING: Final = "sending"
SENT: Final = "sent"
DELIVERED: Final = "delivered"
READ: Final = "read"
FAILED: Final = "failed"
MESSAGE_STATUSES: tuple[MessageStatus, ...] = (QUEUED, SENDING, SENT, DELIVERED, READ, FAILED)

# Events and sub-events: in progress until every message is final, then completed or error.
EventStatus = Literal["in_progress", "completed", "error"]
IN_PROGRESS: Final = "in_progress"
COMPLETED: Final = "completed"
ERROR: Final = "error"
EVENT_STATUSES: tuple[EventStatus, ...] = (IN_PROGRESS, COMPLETED, ERROR)

# "read" ranks above "failed": a failure report after a read receipt changes nothing, and a read
# receipt never turns a failed message into a read one (``log.status.set_status``).
STATUS_RANK: dict[str, int] = {QUEUED: 0, SENDING: 1, SENT: 2, DELIVERED: 3, FAILED: 3, READ: 4}
FINAL = (DELIVERED, READ, FAILED)


def _uuid() -> str:
    """A message's id: time-ordered (see ``core.ids``); the name is the migrations'."""
    return time_ordered_id()


class MessagingEvent(models.Model):
    """One action: an ad-hoc send, an alert firing, a keyword reply, a broadcast."""

    # Indexed first in ``event_project_created``; a separate index would only cost writes.
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="events", db_index=False
    )
    source = models.CharField(max_length=20, default="send")  # send|alert|keyword|broadcast
    source_id = models.CharField(max_length=64, default="")
    # What the messaging-event API shows as the source's name, as CommCare does: the alert's
    # name when it fired, the keyword; empty for ad-hoc sends (shown as the content type).
    source_name = models.CharField(max_length=255, default="")
    content_type = models.CharField(max_length=10, default="sms")  # sms|email
    status = models.CharField(max_length=20, default="in_progress")
    error_code = models.CharField(max_length=64, null=True)
    triggered_by = models.CharField(max_length=150, default="")
    created_on = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["project", "created_on"], name="event_project_created")]


class MessagingSubEvent(models.Model):
    """The event for one recipient."""

    event = models.ForeignKey(MessagingEvent, on_delete=models.CASCADE, related_name="subevents")
    # Indexed first in ``subevent_activity``.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    contact_id = models.CharField(max_length=64, null=True)
    contact_type = models.CharField(max_length=10, default="")
    recipient_name = models.CharField(max_length=255, default="")
    status = models.CharField(max_length=20, default="in_progress")
    error_code = models.CharField(max_length=64, null=True)
    created_on = models.DateTimeField()
    # Strictly increasing per project (commcare-export pages on it).
    date_last_activity = models.DateTimeField()
    # An SMS survey's conversation (issue 20, ``log.surveys``): the session id on each of its
    # sub-events; the session's own event (its first question's) also has the survey and
    # the session's status as the messaging-event API shows it ("" on the others).
    survey_session_id = models.BigIntegerField(null=True)
    survey_status = models.CharField(max_length=24, default="")
    survey_form = models.JSONField(null=True)

    class Meta:
        indexes = [
            models.Index(fields=["project", "date_last_activity", "id"], name="subevent_activity"),
            models.Index(
                fields=["survey_session_id"],
                condition=models.Q(survey_session_id__isnull=False),
                name="subevent_survey_session",
            ),
        ]


class Message(models.Model):
    """One SMS, email or WhatsApp message, inbound or outbound. ``id`` is the gateway
    idempotency key."""

    id = models.CharField(max_length=32, primary_key=True, default=_uuid)
    # Null only for traffic on a global gateway from or to a number no project knows.
    # Indexed first in ``message_project_created`` (and two more); every message written
    # paid for a separate index too.
    project = models.ForeignKey(
        Project, null=True, on_delete=models.CASCADE, related_name="messages", db_index=False
    )
    event = models.ForeignKey(
        MessagingEvent, null=True, on_delete=models.CASCADE, related_name="messages"
    )
    subevent = models.ForeignKey(
        MessagingSubEvent, null=True, on_delete=models.CASCADE, related_name="messages"
    )
    direction = models.CharField(max_length=3, default="out")  # out|in
    channel = models.CharField(max_length=10, default="sms")  # sms|email|whatsapp
    contact_id = models.CharField(max_length=64, null=True)
    contact_type = models.CharField(max_length=10, default="")
    phone_number = models.CharField(max_length=32, default="")
    email_address = models.CharField(max_length=320, default="")
    subject = models.CharField(max_length=998, default="")
    text = models.TextField(default="")
    language = models.CharField(max_length=32, default="")
    segments = models.IntegerField(default=0)
    encoding = models.CharField(max_length=5, default="")
    gateway_name = models.CharField(max_length=100, default="")
    gateway_id = models.BigIntegerField(null=True)
    gateway_source = models.CharField(max_length=20, default="")
    sender = models.CharField(max_length=64, default="")
    status = models.CharField(max_length=10, default="queued")
    error_code = models.CharField(max_length=64, null=True)
    provider_code = models.CharField(max_length=64, default="")
    error_detail = models.CharField(max_length=500, default="")
    provider_id = models.CharField(max_length=128, null=True)
    attempts = models.IntegerField(default=0)
    unknown_outcomes = models.IntegerField(default=0)
    allow_opted_out = models.BooleanField(default=False)
    next_attempt_at = models.DateTimeField(null=True)
    lease_until = models.DateTimeField(null=True)
    lease_token = models.CharField(max_length=32, null=True)
    created_on = models.DateTimeField()
    sent_on = models.DateTimeField(null=True)
    delivered_on = models.DateTimeField(null=True)
    read_on = models.DateTimeField(null=True)  # WhatsApp's read receipt
    failed_on = models.DateTimeField(null=True)
    updated_on = models.DateTimeField()
    # Inbound only: which handler took the message (opt_out, keyword, default_response, …).
    inbound_action = models.CharField(max_length=40, default="")
    # A fallback chain (``messaging.chains``): one logical message, one attempt per channel.
    # ``chain_id`` is the first attempt's id (null outside a chain), ``chain_step`` counts
    # from 1, ``chain_next`` the channels still to try ("sms,email"; "" at the last step).
    # An attempt the chain moved on from has ``moved_on_at`` and ``fallback_reason``.
    chain_id = models.CharField(max_length=32, null=True)
    chain_step = models.SmallIntegerField(default=0)
    chain_next = models.CharField(max_length=40, default="")
    fallback_reason = models.CharField(max_length=40, default="")
    moved_on_at = models.DateTimeField(null=True)
    # WhatsApp: what a message needs besides its text (``messaging.whatsapp``):
    # {"template": {"name", "language", "params": [...]}} or {"interactive": {...}}.
    payload = models.JSONField(null=True)
    # What it costs (ADR 0013), in millionths of ``cost_currency`` (the project's currency):
    # estimated from the fee table when queued, actual when the provider reports a price
    # (``cost_source`` "provider") or a pricing category priced from the fee table
    # ("fee_table"). ``price_due_at``: when to ask the provider for its price next (types
    # with ``fetch_price``, after a final status), null when not waiting for one.
    estimated_cost_micros = models.BigIntegerField(null=True)
    actual_cost_micros = models.BigIntegerField(null=True)
    cost_currency = models.CharField(max_length=3, default="")
    cost_source = models.CharField(max_length=12, default="")
    price_due_at = models.DateTimeField(null=True)

    class Meta:
        constraints = [
            # A provider re-delivering the same inbound message is stored once.
            models.UniqueConstraint(
                fields=["gateway_id", "provider_id"],
                condition=Q(direction="in", provider_id__isnull=False),
                name="message_inbound_once",
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"], condition=Q(status="queued"), name="message_due"
            ),
            models.Index(
                fields=["lease_until"], condition=Q(status="sending"), name="message_leased"
            ),
            models.Index(fields=["project", "created_on"], name="message_project_created"),
            models.Index(fields=["project", "status"], name="message_project_status"),
            models.Index(fields=["gateway_id", "provider_id"], name="message_provider_id"),
            models.Index(fields=["project", "contact_id"], name="message_contact"),
            models.Index(fields=["phone_number", "created_on"], name="message_number_created"),
            models.Index(
                fields=["chain_id"], condition=Q(chain_id__isnull=False), name="message_chain"
            ),
            # The fallback due scan: sent attempts still waiting for ``delivered``.
            models.Index(
                fields=["project", "channel", "sent_on"],
                condition=Q(status="sent", moved_on_at__isnull=True) & ~Q(chain_next=""),
                name="message_chain_waiting",
            ),
            # WhatsApp's 24-hour window: a number's last inbound message per gateway
            # (``messaging.whatsapp.last_inbound``); inbound rows only, so sends never pay.
            models.Index(
                fields=["gateway_id", "phone_number", "created_on"],
                condition=Q(direction="in"),
                name="message_inbound_window",
            ),
            models.Index(
                fields=["price_due_at"],
                condition=Q(price_due_at__isnull=False),
                name="message_price_due",
            ),
        ]


class SendAttempt(models.Model):
    """Every gateway call (or lease lost mid-call), with masked request and response."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="send_attempts")
    number = models.IntegerField()
    gateway_name = models.CharField(max_length=100, default="")
    outcome = models.CharField(max_length=10)  # sent|retry|failed|unknown
    error_code = models.CharField(max_length=64, null=True)
    provider_code = models.CharField(max_length=64, default="")
    detail = models.CharField(max_length=500, default="")
    request = models.TextField(default="")
    response = models.TextField(default="")
    duration_ms = models.IntegerField(default=0)
    created_on = models.DateTimeField()


class OptOut(models.Model):
    """Per number, channel *and scope* (SPEC 2): opted out or not, in one project
    (``project``) or for one global gateway (``gateway``), never both. Written only by
    ``messaging.optouts``."""

    phone_number = models.CharField(max_length=32)
    # The channel the opt-out is for (issue 21): STOP over WhatsApp opts out of WhatsApp,
    # over SMS of SMS. Rows from before channels existed are SMS.
    channel = models.CharField(max_length=10, default="sms")
    # Indexed first in ``optout_per_project_channel``.
    project = models.ForeignKey(
        Project, null=True, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    gateway = models.ForeignKey(
        GatewayConfig, null=True, on_delete=models.CASCADE, related_name="+"
    )
    opted_out = models.BooleanField(default=True)
    can_opt_in = models.BooleanField(default=True)
    changed_on = models.DateTimeField()
    source = models.CharField(max_length=30, default="")

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(project__isnull=False, gateway__isnull=True)
                | Q(project__isnull=True, gateway__isnull=False),
                name="optout_one_scope",
            ),
            models.UniqueConstraint(
                fields=["project", "phone_number", "channel"],
                condition=Q(project__isnull=False),
                name="optout_per_project_channel",
            ),
            models.UniqueConstraint(
                fields=["gateway", "phone_number", "channel"],
                condition=Q(gateway__isnull=False),
                name="optout_per_gateway_channel",
            ),
        ]
        indexes = [models.Index(fields=["phone_number"], name="optout_number")]


class Keyword(models.Model):
    """A project keyword: the first word of an inbound SMS from an active two-way holder."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="keywords")
    keyword = models.CharField(max_length=64)  # upper case, one word
    description = models.CharField(max_length=500, default="")
    reply = models.JSONField(default=dict)  # language → text
    # Structured SMS: [{"property", "type", "choices", "required", "label"}]
    fields = models.JSONField(default=list)
    error_reply = models.JSONField(default=dict)  # language → prefix before the problem
    # What the keyword does: "reply" (the reply and/or structured SMS above) or "survey"
    # (start survey ``survey_id`` for the sender; ``messaging.keyword_actions``). A plain id:
    # surveys sit above messaging, so the surveys app guards it (no deleting a named survey).
    action = models.CharField(max_length=16, default="reply")
    survey_id = models.BigIntegerField(null=True)
    created_on = models.DateTimeField()
    updated_on = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "keyword"], name="keyword_per_project")
        ]


class InboundQueue(models.Model):
    """Scale-out mode: an inbound SMS a web replica accepted and a worker has yet to handle.

    The webhook answers the provider once the row is committed; a worker claims rows (``FOR
    UPDATE SKIP LOCKED``), handles each with ``do_receive`` and deletes it in the same
    transaction, so a crash leaves the row for the next claim and nothing is handled twice.
    """

    gateway_id = models.BigIntegerField()
    sender = models.CharField(max_length=64)
    to = models.CharField(max_length=64, default="")
    text = models.TextField(default="")
    provider_id = models.CharField(max_length=128, default="")
    received_on = models.DateTimeField()
    # Handling that failed (a bug, not bad input: that is answered in the message log) is
    # retried; after MAX_INBOUND_ATTEMPTS the row stays as a dead letter with its error.
    attempts = models.IntegerField(default=0)
    last_error = models.CharField(max_length=500, default="")


class WhatsAppTemplate(models.Model):
    """A WhatsApp message template of one gateway in one language, as its provider last
    listed it (``messaging.whatsapp_templates`` syncs them and is their one writer)."""

    gateway = models.ForeignKey(GatewayConfig, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=512)
    language = models.CharField(max_length=32)
    # As the provider says it: APPROVED, PENDING, REJECTED, PAUSED, DISABLED.
    status = models.CharField(max_length=20)
    category = models.CharField(max_length=40, default="")
    body = models.TextField(default="")
    params = models.IntegerField(default=0)  # how many {{n}} variables the body has
    synced_on = models.DateTimeField()
    # Set when a sync no longer found it at the provider (cleared if it comes back).
    removed_on = models.DateTimeField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["gateway", "name", "language"], name="whatsapp_template_once"
            )
        ]
