"""One claimed message on its way through the dispatcher, and the action decided for it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from casereach.gateways.base import GatewayError, SendResult
from casereach.gateways.models import GatewayConfig
from casereach.messaging.presend import FAIL, POSTPONE, SEND, Action

__all__ = ["FAIL", "POSTPONE", "SEND", "Action", "Job"]


@dataclass
class Job:
    """One claimed message (``row``: the claim's columns, see ``log.CLAIM_COLUMNS``) and
    what to do with it; after the call, its result or error."""

    row: dict[str, Any]
    action: Action = SEND
    error_code: str | None = None
    until: dt.datetime | None = None  # when a postponed message is due again
    cfg: GatewayConfig | None = None  # the configured gateway it goes through
    sender: str = ""
    gateway_source: str = ""
    payload: dict[str, Any] | None = None  # WhatsApp: template or interactive (presend)
    result: SendResult | None = None
    error: GatewayError | None = None
    duration_ms: int = 0
    request_log: str = ""
    response_log: str = ""
    unsent: bool = False  # counted in ``DailyCounts.unsent`` until completed

    def postpone(self, until: dt.datetime, error_code: str | None = None) -> None:
        self.action, self.until, self.error_code = POSTPONE, until, error_code

    @property
    def project_id(self) -> int | None:
        project_id: int | None = self.row["project_id"]
        return project_id

    @property
    def segments(self) -> int:
        return max(1, int(self.row["segments"] or 1))
