"""Read helpers for mobile workers."""

from __future__ import annotations

from casereach.projects.models import Project
from casereach.workers.models import MobileWorker


def get_worker(project: Project, worker_id: str) -> MobileWorker | None:
    return MobileWorker.objects.filter(project=project, pk=worker_id).first()
