"""CommCare write-back in tests: the project connected to a fake HQ's Case API, and the
sender run until nothing is left it can send."""

from __future__ import annotations

import time

from casereach.cases.models import CommCareWrite
from casereach.cases.writeback_send import WriteBackSender
from casereach.testing.commcare_hq import CaseApi, FakeHq, client_sender
from casereach.testing.world import Api

HQ_USER, HQ_KEY = "hq-user@example.org", "s3cret-hq-key"
SETTINGS = "/a/{project}/api/messaging/v1/settings"


def connected_hq(api: Api, *, slow_s: float = 3.0) -> CaseApi:
    """A fake HQ (its Case API on a local port, its forwarding into ``api``'s project) set as
    the project's write-back connection (``slow_s``: how slowly its slow faults answer). The
    caller closes it."""
    fake = FakeHq(api.project.name, client_sender(api.client, api.auth), real_clock=True)
    server = CaseApi(fake, username=HQ_USER, api_key=HQ_KEY, slow_s=slow_s)
    connection = {
        "url": server.url,
        "domain": api.project.name,
        "username": HQ_USER,
        "api_key": HQ_KEY,
    }
    r = api.call("PATCH", SETTINGS, {"commcare": connection})
    assert 200 == r.status, r.body
    return server


def drain(sender: WriteBackSender, rounds: int = 50) -> None:
    """Run the sender until nothing is left it can send (retries are due at once here)."""
    idle = 0
    for _ in range(rounds):
        if not CommCareWrite.objects.filter(status__in=["queued", "sending"]).exists():
            return
        idle = 0 if sender.run_once() else idle + 1
        if idle >= 3:
            return  # what is left waits behind a failed write
        time.sleep(0.005)
    raise AssertionError("write-back did not drain")
