"""Models of the web app: what one web process must be able to tell another."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from casereach.projects.models import Project


class ImportProgress(models.Model):
    """How far a user's running import in the browser has got.

    The upload runs in one web process; the progress polls may reach any other (several
    ``serve`` replicas behind a load balancer), so the progress lives in the database, not in
    a process's memory. One row per project and user, removed when the import ends."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    rows = models.IntegerField(default=0)
    percent = models.IntegerField(null=True)
    updated_on = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="import_progress_once")
        ]
