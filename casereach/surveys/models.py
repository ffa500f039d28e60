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
