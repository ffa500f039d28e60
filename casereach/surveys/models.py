"""SMS surveys: their definitions, stored per project (sessions come later, issue 20)."""

from __future__ import annotations

from django.db import models

from casereach.projects.models import Project


class Survey(models.Model):
    """A survey definition. ``definition`` is validated by ``surveys.spec`` (the whole
    request body but ``active``); every edit bumps ``version`` so that sessions can tell
    which definition they were started with."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="surveys")
    name = models.CharField(max_length=200)
    definition = models.JSONField(default=dict)
    version = models.IntegerField(default=1)
    active = models.BooleanField(default=True)
    created_on = models.DateTimeField()
    updated_on = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="survey_name_per_project")
        ]

    def __str__(self) -> str:
        return self.name


# Session statuses. Only ``active`` holds its (gateway, number) pair; ``queued`` waits for it.
QUEUED = "queued"
ACTIVE = "active"
ENDED = ("completed", "failed", "expired", "no_reply", "cancelled", "opted_out")
SESSION_STATUSES = (QUEUED, ACTIVE, *ENDED)


class SurveySession(models.Model):
    """One survey played with one contact over one (gateway, number) pair (written only by
    ``surveys.sessions``). ``definition`` is the survey as it was when the session was
    created: editing the survey does not change a session under way.

    Timers: ``next_reask_at``, ``expires_at`` and ``reply_due_at``; ``next_timer_at`` is the
    earliest of them, what the due scan reads (indexed for active sessions only)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    survey = models.ForeignKey(
        Survey, null=True, on_delete=models.SET_NULL, related_name="sessions"
    )
    survey_name = models.CharField(max_length=200, default="")
    survey_version = models.IntegerField()
    definition = models.JSONField(default=dict)
    contact_id = models.CharField(max_length=64)
    case_id = models.CharField(max_length=64, null=True)
    gateway_id = models.BigIntegerField()
    gateway_name = models.CharField(max_length=100)
    phone_number = models.CharField(max_length=32)
    language = models.CharField(max_length=32, default="")
    status = models.CharField(max_length=12, default=QUEUED)
    detail = models.CharField(max_length=500, default="")
    current_question = models.CharField(max_length=64, null=True)
    retries = models.IntegerField(default=0)
    reask_count = models.IntegerField(default=0)
    next_reask_at = models.DateTimeField(null=True)
    expires_at = models.DateTimeField(null=True)
    reply_due_at = models.DateTimeField(null=True)
    next_timer_at = models.DateTimeField(null=True)
    created_on = models.DateTimeField()
    started_on = models.DateTimeField(null=True)
    ended_on = models.DateTimeField(null=True)
    last_reply_on = models.DateTimeField(null=True)
    event_id = models.BigIntegerField(null=True)  # the messaging event of the first question
    triggered_by = models.CharField(max_length=150, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["gateway_id", "phone_number"],
                condition=models.Q(status=ACTIVE),
                name="survey_session_one_active",
            )
        ]
        indexes = [
            models.Index(fields=["project", "created_on"], name="survey_session_project"),
            models.Index(
                fields=["next_timer_at"],
                condition=models.Q(status=ACTIVE),
                name="survey_session_due",
            ),
            models.Index(
                fields=["gateway_id", "phone_number", "id"],
                condition=models.Q(status=QUEUED),
                name="survey_session_queue",
            ),
        ]


class SurveyAnswer(models.Model):
    """One question's answer in a session (``skipped``: too many invalid replies and the
    question said skip; ``value`` is then empty)."""

    session = models.ForeignKey(SurveySession, on_delete=models.CASCADE, related_name="answers")
    question_id = models.CharField(max_length=64)
    raw_text = models.TextField(default="")
    value = models.TextField(default="")
    display = models.TextField(default="")
    skipped = models.BooleanField(default=False)
    message_id = models.CharField(max_length=32, null=True)
    provider_id = models.CharField(max_length=255, null=True)
    received_on = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["session", "question_id"], name="survey_answer_once")
        ]
