"""docs/errors.md stays true: every code, with its description."""

from __future__ import annotations

from pathlib import Path

from casereach.messaging.errors import ERRORS

DOC = Path(__file__).resolve().parents[3] / "docs" / "errors.md"


def test_every_code_is_documented() -> None:
    text = DOC.read_text()
    missing = [e.code for e in ERRORS if f"| `{e.code}` | {e.description} |" not in text]
    assert [] == missing
