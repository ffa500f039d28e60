"""Each project's messages sent today, for the daily limit: counted in the database, kept for
a few seconds, and kept up to date with what this dispatcher sends meanwhile."""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from collections.abc import Iterable
from zoneinfo import ZoneInfo

from casereach.messaging.dispatch.jobs import SEND, Job
from casereach.messaging.models import Message
from casereach.projects.models import Project
from casereach.projects.settings_schema import ProjectSettings

SENT_COUNT_TTL_S = 5.0  # how long a project's sent-today count is trusted (see ``sent_today``)


class DailyCounts:
    def __init__(self) -> None:
        # project → (start of its day, when counted, messages sent that day)
        self._counts: dict[int, tuple[dt.datetime, float, int]] = {}
        # project → messages this dispatcher prepared to send and has not completed yet: a
        # fresh count cannot see them (``stream`` prepares while earlier sends run)
        self.unsent: dict[int, int] = defaultdict(int)

    def sent_today(self, project: Project, s: ProjectSettings, at: dt.datetime, batch: int) -> int:
        """Messages the project sent since its local midnight, for the daily limit.

        Counting scans the project's messages of the day, so the count is kept for
        SENT_COUNT_TTL_S and this dispatcher's own sends are added to it; it is counted
        afresh once it is that old, when the day changes, and whenever the limit is within
        two batches (so near the limit it is exact, as other dispatchers send too)."""
        local = at.astimezone(ZoneInfo(s.time_zone))
        start = local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(dt.UTC)
        cached = self._counts.get(project.pk)
        mono = time.monotonic()
        if (
            cached is not None
            and cached[0] == start
            and mono - cached[1] < SENT_COUNT_TTL_S
            and cached[2] + 2 * batch < s.daily_limit
        ):
            return cached[2]
        count = Message.objects.filter(project=project, direction="out", sent_on__gte=start).count()
        count += self.unsent.get(project.pk, 0)
        self._counts[project.pk] = (start, mono, count)
        return count

    def prepared(self, jobs: list[Job]) -> None:
        """What a batch is about to send counts toward the kept counts from now on."""
        for j in jobs:
            pk = j.project_id
            if j.action == SEND and pk is not None and pk in self._counts:
                start, counted, count = self._counts[pk]
                self._counts[pk] = (start, counted, count + 1)

    def sending(self, jobs: Iterable[Job]) -> None:
        """Jobs that will be sent (after the rates): unsent until completed."""
        for j in jobs:
            if j.action == SEND and j.project_id is not None:
                j.unsent = True
                self.unsent[j.project_id] += 1

    def completed(self, jobs: Iterable[Job]) -> None:
        for j in jobs:
            if j.unsent:
                j.unsent = False
                self.unsent[j.row["project_id"]] -= 1
