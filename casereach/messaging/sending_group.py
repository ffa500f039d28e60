"""Group commit of single sends: concurrent ``POST …/send`` requests of one process are
recorded by one ``sending.send_each`` (one lock, one statement set, one commit), through the
leader/follower combiner of ``core.groupcommit``. Each caller gets exactly its own result
or its own error:

- a request that is bad input without the database (texts, recipient) never joins a group
  (the caller sends it alone and gets its own 400), and one naming a wrong gateway or
  contact gets its own error while the others are recorded;
- a database failure fails that group's callers, each with the error (a 5xx);
- every caller returns only after its group committed: an acknowledged send survives
  ``kill -9``.

Inside a transaction the caller's own (a test, a management command) there is no group: the
send runs there, on the caller's connection.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from django.db import connection

from casereach.core.groupcommit import Combiner as _Combiner
from casereach.messaging.sending import Sent, bad_input, do_send_one, send_each
from casereach.messaging.sending_request import SendRequest
from casereach.projects.models import Project

# ``CASEREACH_SEND_GROUP_COMMIT=0`` sends each request in its own transaction.
ENABLED = os.environ.get("CASEREACH_SEND_GROUP_COMMIT", "1") != "0"


def _record(project: Project, reqs: Sequence[SendRequest]) -> Sequence[Sent | BaseException]:
    return send_each(project, reqs)  # looked up per call: tests replace it


class Combiner(_Combiner[Project, SendRequest, Sent]):
    def __init__(self) -> None:
        super().__init__(_record, key=lambda project: project.pk)

    def send(self, project: Project, req: SendRequest) -> Sent:
        return self.submit(project, req)


_COMBINER = Combiner()


def send_single(project: Project, req: SendRequest) -> Sent:
    """One send, recorded with the concurrent ones of this process (see the module)."""
    if not ENABLED or connection.in_atomic_block or bad_input(project, req):
        return do_send_one(project, req)
    return _COMBINER.send(project, req)
