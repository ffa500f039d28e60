"""Messages a benchmark left postponed or failed: a bench stops and says so (naming the error
codes and counts) instead of waiting for a timeout or reporting a rate over what was not sent."""

from __future__ import annotations

from collections.abc import Iterable

# (status, error code) of every message not sent, with how many: one GROUP BY of the outbox.
STUCK_SQL = (
    "SELECT status, COALESCE(error_code, ''), COUNT(*) FROM messaging_message "
    "WHERE status = 'failed' OR (status = 'queued' AND COALESCE(error_code, '') <> '') "
    "GROUP BY status, COALESCE(error_code, '') ORDER BY 3 DESC"
)


class BenchStalled(ValueError):
    """Messages ended up postponed or failed (a ValueError: the CLI prints it on one line)."""


def describe(rows: Iterable[tuple[str, str, int]]) -> str:
    """``42 failed (INVALID_DESTINATION_NUMBER), 46,000 postponed (DAILY_LIMIT_REACHED)``."""
    parts = []
    for status, code, count in rows:
        what = "postponed" if status == "queued" else status
        parts.append(f"{count:,} {what} ({code or 'no error code'})")
    return ", ".join(parts)


def check(rows: Iterable[tuple[str, str, int]], bench: str) -> None:
    """Raises BenchStalled when ``rows`` (see ``STUCK_SQL``) hold any message."""
    stuck = [r for r in rows if r[2]]
    if stuck:
        raise BenchStalled(
            f"bench {bench}: messages were postponed or failed instead of sent: {describe(stuck)}"
        )
