"""Cases as received from the case-management system (CommCare's case model)."""

from __future__ import annotations

from django.db import models

from casereach.projects.models import Project


class Case(models.Model):
    """A case. ``properties`` holds only the project-defined string properties."""

    case_id = models.CharField(max_length=64, primary_key=True)
    # No index of its own: every index below starts with the project (one less B-tree to
    # update per written case).
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="cases", db_index=False
    )
    case_type = models.CharField(max_length=255, default="")
    case_name = models.CharField(max_length=255, default="")
    owner_id = models.CharField(max_length=255, null=True)
    external_id = models.CharField(max_length=255, null=True)
    properties = models.JSONField(default=dict)
    # {"parent": {"case_id", "case_type", "relationship"}}; CaseIndex mirrors it for lookups.
    indices = models.JSONField(default=dict)
    closed = models.BooleanField(default=False)
    date_closed = models.DateTimeField(null=True)
    deleted = models.BooleanField(default=False)
    deleted_on = models.DateTimeField(null=True)
    date_opened = models.DateTimeField()
    last_modified = models.DateTimeField()
    server_last_modified = models.DateTimeField()
    indexed_on = models.DateTimeField()
    opened_by = models.CharField(max_length=150, default="")
    user_id = models.CharField(max_length=150, default="")

    class Meta:
        indexes = [
            models.Index(fields=["project", "indexed_on", "case_id"], name="case_paging"),
            models.Index(fields=["project", "external_id"], name="case_external_id"),
            models.Index(fields=["project", "case_type"], name="case_type_idx"),
            models.Index(fields=["project", "owner_id"], name="case_owner_idx"),
            models.Index(fields=["project", "server_last_modified"], name="case_server_modified"),
        ]


class CaseIndex(models.Model):
    """One row per index of a case, for reverse lookups (``indices.parent=<id>``)."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="index_rows")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=255)
    referenced_id = models.CharField(max_length=64)
    referenced_type = models.CharField(max_length=255, default="")
    relationship = models.CharField(max_length=20, default="child")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["case", "name"], name="case_index_unique")]
        indexes = [
            models.Index(fields=["project", "name", "referenced_id"], name="case_index_reverse")
        ]


class FormReceipt(models.Model):
    """A form submission whose case blocks were applied, by its ``meta/instanceID``: the same
    form again is answered as a success and changes nothing (phones and integrations retry)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    instance_id = models.CharField(max_length=255)
    received_on = models.DateTimeField()
    case_count = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "instance_id"], name="form_receipt_unique")
        ]


class ForwardedVersion(models.Model):
    """HQ's ``server-modified-on`` of the last forwarded state applied to a case: an older or
    repeated forwarding POST (repeaters resend and reorder) changes nothing."""

    case = models.OneToOneField(
        Case, on_delete=models.CASCADE, primary_key=True, related_name="forwarded"
    )
    server_modified_on = models.DateTimeField()


class LastForwarded(models.Model):
    """The last case HQ's Data Forwarding sent to a project and what became of it (shown on
    the Connect page): one row per project, overwritten by every forwarding POST."""

    project = models.OneToOneField(
        Project, on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    case_id = models.CharField(max_length=255)
    received_on = models.DateTimeField()
    outcome = models.CharField(max_length=16)  # applied, unchanged, stale or echo


class CommCareWrite(models.Model):
    """One case change casereach made, to write back to the project's CommCare HQ (Case API
    v2), in the order made: a case's writes go out one at a time, oldest (lowest id) first.
    Written only by ``casereach.cases.writeback``."""

    QUEUED, SENDING, SENT, FAILED = "queued", "sending", "sent", "failed"
    STATUSES = (QUEUED, SENDING, SENT, FAILED)

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    case_id = models.CharField(max_length=64)  # ours (HQ's may differ: CommCareCaseLink)
    op = models.CharField(max_length=10)  # create | update | reopen (v2 has none: HQ is read)
    body = models.JSONField(default=dict)  # the Case API v2 body (2.3)
    status = models.CharField(max_length=10, default=QUEUED)
    attempts = models.IntegerField(default=0)
    unknown_outcomes = models.IntegerField(default=0)  # calls that may or may not have landed
    next_attempt_at = models.DateTimeField(null=True)
    lease_until = models.DateTimeField(null=True)
    lease_token = models.CharField(max_length=64, null=True)
    last_error = models.TextField(default="")
    last_status = models.IntegerField(null=True)  # HQ's HTTP status of the last attempt
    hq_case_id = models.CharField(max_length=64, default="")
    hq_form_id = models.CharField(max_length=64, default="")
    hq_modified_on = models.DateTimeField(null=True)  # HQ's server_last_modified after it
    created_on = models.DateTimeField()
    updated_on = models.DateTimeField()
    sent_on = models.DateTimeField(null=True)

    class Meta:
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="cc_write_due"),
            models.Index(fields=["project", "case_id", "id"], name="cc_write_case"),
            models.Index(fields=["project", "status", "id"], name="cc_write_status"),
        ]


class CommCareCaseLink(models.Model):
    """HQ's id of a case casereach created and wrote back (HQ makes its own ids on create):
    later writes go to it, and HQ forwarding it back lands on our case. Written only by
    ``casereach.cases.writeback``."""

    case = models.OneToOneField(
        Case, on_delete=models.CASCADE, primary_key=True, related_name="commcare_link"
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    hq_case_id = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "hq_case_id"], name="cc_link_unique")
        ]
