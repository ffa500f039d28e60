"""Models of the web app: what one web process must be able to tell another."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from casereach.projects.models import Project


class ImportProgress(models.Model):
    """A user's last import started in the browser: how far it has got, then its result.

    The import runs in the background of one web process; the page's polls may reach any other
    (several ``serve`` replicas behind a load balancer), so the state lives in the database,
    not in a process's memory. One row per project and user: the last import."""

    RUNNING, DONE, FAILED = "running", "done", "failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    state = models.CharField(max_length=10, default=RUNNING)
    file_name = models.CharField(max_length=255, default="")
    rows = models.IntegerField(default=0)
    percent = models.IntegerField(null=True)
    written = models.IntegerField(default=0)
    errors_total = models.IntegerField(default=0)
    error = models.TextField(default="")  # why the whole file was refused or the import stopped
    started_on = models.DateTimeField(null=True)
    updated_on = models.DateTimeField()
    finished_on = models.DateTimeField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="import_progress_once")
        ]
