"""The dispatcher, split by concern: ``dispatcher`` (claim, batch, sessions), ``prepare`` (the
pure decision per claimed message), ``breaker`` (circuits and rates), ``calls`` (the gateway
calls), ``stream`` (the pipelined loop), ``complete`` (the writes), ``daily`` (the daily
limit's counts)."""

from casereach.messaging.dispatch.dispatcher import Dispatcher, dispatch_sizes
from casereach.messaging.dispatch.jobs import Job

__all__ = ["Dispatcher", "Job", "dispatch_sizes"]
