"""Contacts (a case or mobile worker seen as a recipient) and their phone entries."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from casereach.projects.models import Project


class Contact(models.Model):
    """The derived messaging profile of one case or worker, rewritten on every change.

    The phone *status* is not stored here: whether this contact holds its number for two-way
    depends on other contacts, so it is read from PhoneEntry when needed.
    """

    CASE = "case"
    WORKER = "worker"

    contact_id = models.CharField(max_length=64, primary_key=True)
    contact_type = models.CharField(max_length=10)
    # Indexed by contact_project_type, which starts with it.
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="contacts", db_index=False
    )
    name = models.CharField(max_length=255, default="")
    active = models.BooleanField(default=True)
    # Version of the source (case server_last_modified / worker modified) this was derived from.
    source_modified = models.DateTimeField()
    phone_raw = models.CharField(max_length=255, default="")
    phone_number = models.CharField(max_length=32, null=True)
    phone_reason = models.CharField(max_length=32, null=True)
    verified_requested = models.BooleanField(default=False)
    email = models.CharField(max_length=320, default="")
    email_status = models.CharField(max_length=10, default="missing")
    tz_requested = models.CharField(max_length=100, default="")
    tz_effective = models.CharField(max_length=100, default="UTC")
    tz_source = models.CharField(max_length=10, default="default")
    lang_requested = models.CharField(max_length=32, default="")
    lang_effective = models.CharField(max_length=32, null=True)
    lang_source = models.CharField(max_length=10, default="default")
    gateway_requested = models.CharField(max_length=100, default="")
    # Warnings from this contact's own data (two_way_conflict is derived at read time).
    warnings = models.JSONField(default=list)
    has_warnings = models.BooleanField(default=False)
    updated_on = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["project", "contact_type"], name="contact_project_type"),
            models.Index(
                fields=["project"], condition=Q(has_warnings=True), name="contact_warnings"
            ),
        ]


class PhoneEntry(models.Model):
    """One row per (contact, number).

    ``holder`` marks the one contact allowed to use the number for two-way (or waiting for a
    worker verification reply when ``pending``); the partial unique index makes a second
    holder impossible whatever the application code does.
    """

    number = models.CharField(max_length=32)
    # Neither key has an index of its own: phone_entry_unique starts with the contact and
    # phone_project_number with the project (each index costs every imported number).
    contact = models.ForeignKey(
        Contact,
        on_delete=models.CASCADE,
        related_name="phone_entries",
        db_column="contact_id",
        db_index=False,
    )
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="phone_entries", db_index=False
    )
    contact_type = models.CharField(max_length=10)
    position = models.PositiveIntegerField(default=0)
    gateway = models.CharField(max_length=100, default="")
    verified_requested = models.BooleanField(default=False)
    requested_on = models.DateTimeField(null=True)
    holder = models.BooleanField(default=False)
    pending = models.BooleanField(default=False)
    registered_on = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["contact", "number"], name="phone_entry_unique"),
            models.UniqueConstraint(
                fields=["number"], condition=Q(holder=True), name="phone_one_two_way_holder"
            ),
        ]
        indexes = [
            models.Index(fields=["number"], name="phone_number_idx"),
            models.Index(fields=["project", "number"], name="phone_project_number"),
        ]
