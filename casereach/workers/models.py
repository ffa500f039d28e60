"""Mobile workers: project users with phone numbers, a language and a time zone."""

from __future__ import annotations

import uuid

from django.db import models

from casereach.projects.models import Project


def _new_id() -> str:
    return uuid.uuid4().hex


class MobileWorker(models.Model):
    id = models.CharField(max_length=64, primary_key=True, default=_new_id)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="workers")
    username = models.CharField(max_length=255)
    first_name = models.CharField(max_length=150, null=True)
    last_name = models.CharField(max_length=150, null=True)
    email = models.CharField(max_length=320, default="")
    password = models.CharField(max_length=255, default="")
    # Ordered; the first is the default number. Stored without "+".
    phone_numbers = models.JSONField(default=list)
    # Numbers an admin marked verified (or that completed the verification workflow).
    verified_numbers = models.JSONField(default=list)
    language = models.CharField(max_length=32, default="")
    time_zone = models.CharField(max_length=100, default="")
    user_data = models.JSONField(default=dict)
    groups = models.JSONField(default=list)
    is_active = models.BooleanField(default=True)
    created_on = models.DateTimeField(auto_now_add=True)
    modified_on = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "username"], name="worker_username_unique")
        ]
