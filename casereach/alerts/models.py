"""Alerts (broadcasts and conditional alerts), their materialised schedule instances and
the firings that make every occurrence happen at most once."""

from __future__ import annotations

from typing import Final, Literal

from django.db import models
from django.db.models import Q

from casereach.projects.models import Project

# The vocabularies of the columns below, named once (code uses these, not the strings).
AlertKind = Literal["broadcast", "conditional"]
BROADCAST: Final = "broadcast"
CONDITIONAL: Final = "conditional"

# An alert's evaluation after an activation or an edit.
EvalState = Literal["idle", "queued", "running", "done"]
EVAL_IDLE: Final = "idle"
EVAL_QUEUED: Final = "queued"
EVAL_RUNNING: Final = "running"
EVAL_DONE: Final = "done"

# What became of one occurrence.
FiringOutcome = Literal["fired", "skipped_late", "stopped"]
FIRED: Final = "fired"
SKIPPED_LATE: Final = "skipped_late"
STOPPED: Final = "stopped"


class Alert(models.Model):
    """A broadcast or a conditional alert. ``spec`` is validated by ``alerts.spec``; every
    edit bumps ``version`` so instances of the old definition are replaced, never mixed."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="alerts")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20)  # broadcast | conditional
    case_type = models.CharField(max_length=255, default="")  # conditional alerts only
    active = models.BooleanField(default=False)
    version = models.IntegerField(default=1)
    spec = models.JSONField(default=dict)
    # Re-evaluation progress of the last activation or edit.
    eval_state = models.CharField(max_length=20, default=EVAL_IDLE)  # idle|queued|running|done
    eval_processed = models.IntegerField(default=0)
    eval_total = models.IntegerField(default=0)
    created_on = models.DateTimeField()
    updated_on = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["project", "case_type", "active"], name="alert_case_type"),
        ]


class ScheduleInstance(models.Model):
    """One per (alert, alert version, recipient): where its schedule stands.

    ``next_due`` is the next occurrence in UTC; "what is due" is the partial index below.
    ``period``/``event`` locate that occurrence in the schedule; ``start`` is the local
    start date (or instant, for alert schedules) it counts from.
    """

    # Indexed by the unique (alert, alert_version, recipient_key) constraint, which starts
    # with it: a second index would only slow every write.
    alert = models.ForeignKey(
        Alert, on_delete=models.CASCADE, related_name="instances", db_index=False
    )
    alert_version = models.IntegerField()
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    recipient_key = models.CharField(max_length=64)  # case id (conditional) or contact id
    case_id = models.CharField(max_length=64, null=True)
    contact_id = models.CharField(max_length=64, null=True)
    time_zone = models.CharField(max_length=100, default="UTC")
    start = models.DateTimeField()  # start date at local midnight (timed) or start instant
    period = models.IntegerField(default=0)
    event = models.IntegerField(default=0)
    next_due = models.DateTimeField(null=True)
    active = models.BooleanField(default=True)
    # What the schedule was computed from: a change recomputes or restarts it.
    start_value = models.CharField(max_length=255, default="")
    time_value = models.CharField(max_length=255, default="")
    reset_value = models.CharField(max_length=255, default="")
    stop_value = models.CharField(max_length=255, default="")
    created_on = models.DateTimeField()
    updated_on = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["alert", "alert_version", "recipient_key"], name="instance_once"
            )
        ]
        indexes = [
            models.Index(fields=["next_due"], condition=Q(active=True), name="instance_due"),
            models.Index(fields=["contact_id"], name="instance_contact"),
            models.Index(fields=["case_id"], name="instance_case"),
        ]


class Firing(models.Model):
    """One occurrence of one instance, fired or skipped. The unique ``key`` is what makes a
    re-run, a crash or two schedulers unable to fire it twice."""

    key = models.CharField(max_length=200, unique=True)
    # Indexed by firing_alert_due (alert, due), which starts with it.
    alert = models.ForeignKey(
        Alert, on_delete=models.CASCADE, related_name="firings", db_index=False
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    recipient_key = models.CharField(max_length=64)
    due = models.DateTimeField()
    outcome = models.CharField(max_length=20)  # fired | skipped_late | stopped
    event_id = models.BigIntegerField(null=True)
    created_on = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["alert", "due"], name="firing_alert_due")]


# Where an alert message's expected reply stands (``alerts.replywait``).
ReplyWaitStatus = Literal["waiting", "replied", "no_reply", "cancelled"]
WAITING: Final = "waiting"
REPLIED: Final = "replied"
NO_REPLY: Final = "no_reply"
CANCELLED: Final = "cancelled"
REPLY_WAIT_STATUSES: tuple[ReplyWaitStatus, ...] = (WAITING, REPLIED, NO_REPLY, CANCELLED)


class AlertReplyWait(models.Model):
    """One SMS of an alert with ``expect_reply_within_minutes``, waiting for its reply.

    ``due_at`` is an absolute UTC instant: first the queueing time plus the wait, then (once
    the message is sent) its ``sent_on`` plus the wait. ``no_reply`` is the alert's action
    as it was when the message was queued (an edit does not change a wait under way)."""

    # Indexed first in ``replywait_project``.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    alert = models.ForeignKey(
        Alert, on_delete=models.CASCADE, related_name="reply_waits", db_index=False
    )
    alert_version = models.IntegerField()
    event_id = models.BigIntegerField()
    message_id = models.CharField(max_length=32)
    contact_id = models.CharField(max_length=64, null=True)
    case_id = models.CharField(max_length=64, null=True)
    phone_number = models.CharField(max_length=32)
    within_minutes = models.IntegerField()
    no_reply = models.JSONField(null=True)
    gateway_id = models.BigIntegerField(null=True)  # known once the message is sent
    gateway_name = models.CharField(max_length=100, default="")
    sent_on = models.DateTimeField(null=True)
    due_at = models.DateTimeField()
    status = models.CharField(max_length=20, default=WAITING)
    detail = models.CharField(max_length=500, default="")
    reply_message_id = models.CharField(max_length=32, null=True)
    replied_on = models.DateTimeField(null=True)
    ended_on = models.DateTimeField(null=True)
    created_on = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["due_at"], condition=Q(status="waiting"), name="replywait_due"),
            models.Index(
                fields=["phone_number"], condition=Q(status="waiting"), name="replywait_number"
            ),
            models.Index(fields=["project", "created_on"], name="replywait_project"),
            models.Index(fields=["alert"], name="replywait_alert"),
        ]
