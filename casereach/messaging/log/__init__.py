"""The message log's one writer: events, sub-events, messages and send attempts.

Every module that records a send, a reply, an alert firing, a claim or a delivery outcome
calls this package; none writes these tables itself. Its modules:

- ``events``: one at a time, with model instances (an API send, an inbound reply) —
  ``new_event``, ``new_subevent``, ``add_message``, ``close_event`` — or set-based, with
  ``core.rows`` drafts (the due scan) — ``add_events``, ``add_subevents``, ``add_messages``,
  ``add_attempts``, ``set_event_outcomes``: a fixed number of statements per batch;
- ``status``: ``set_status``, a message's status moved forward (delivery reports);
- ``costs``: ``set_actual_costs``, ``set_price_due`` (what a message cost, ADR 0013);
- ``leases``: the dispatcher's outbox — ``claim``/``claim_rows`` under a lease, ``reap``
  for expired leases, ``complete_leased`` (named rows ``Sent``, ``Failed``, ``Requeued``)
  and ``close_after_send``.

Closing follows one rule (``outcome``): a set of messages is ``error`` when all failed,
``completed`` when none is still queued or sending, and stays open otherwise. Sub-events are
stamped with the project's clock (``projects.actions.tick_clock``), under the project lock the
caller holds.
"""

from casereach.messaging.log.costs import set_actual_costs, set_price_due
from casereach.messaging.log.events import (
    INBOUND_ONCE,
    SUBEVENT_ERROR,
    AttemptDraft,
    AttemptOutcome,
    EventDraft,
    MessageDraft,
    SubEventDraft,
    add_attempts,
    add_events,
    add_inbound,
    add_message,
    add_messages,
    add_received,
    add_subevents,
    close_event,
    new_event,
    new_subevent,
    outcome,
    set_event_outcomes,
)
from casereach.messaging.log.leases import (
    CLAIM_COLUMNS,
    LEASE_EXPIRED,
    Failed,
    Requeued,
    Sent,
    claim,
    claim_rows,
    close_after_send,
    complete_leased,
    raw_before,
    reap,
)
from casereach.messaging.log.status import set_status

__all__ = [
    "CLAIM_COLUMNS",
    "INBOUND_ONCE",
    "LEASE_EXPIRED",
    "SUBEVENT_ERROR",
    "AttemptDraft",
    "AttemptOutcome",
    "EventDraft",
    "Failed",
    "MessageDraft",
    "Requeued",
    "Sent",
    "SubEventDraft",
    "add_attempts",
    "add_events",
    "add_inbound",
    "add_message",
    "add_messages",
    "add_received",
    "add_subevents",
    "claim",
    "claim_rows",
    "close_after_send",
    "close_event",
    "complete_leased",
    "new_event",
    "new_subevent",
    "outcome",
    "raw_before",
    "reap",
    "set_actual_costs",
    "set_event_outcomes",
    "set_price_due",
    "set_status",
]
