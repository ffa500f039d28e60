"""What ``FakeWhatsApp`` checks in a message before it accepts it, as Meta does: the text, the
template (exists, approved in that language, the right number of parameters) and the
interactive limits. A failed check raises ``Refused`` with Meta's HTTP status and code.

Tests only: the wheel does not ship ``casereach.testing``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from casereach.testing.fake_whatsapp import FakeTemplate


class Refused(Exception):
    """A request the provider refuses: HTTP ``status``, Meta's ``code`` and message."""

    def __init__(self, status: int, code: int, message: str, retry_after: str = "") -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after


def check_text(data: Mapping[str, Any]) -> None:
    text = data.get("text")
    body = text.get("body") if isinstance(text, dict) else None
    if not isinstance(body, str) or not body.strip():
        raise Refused(400, 100, "The parameter text['body'] is required.")
    if len(body) > 4096:
        raise Refused(400, 100, "text['body'] is longer than 4096 characters")


def check_template(data: Mapping[str, Any], templates: list[FakeTemplate]) -> None:
    template = data.get("template")
    if not isinstance(template, dict):
        raise Refused(400, 100, "The parameter template is required.")
    name, language = template.get("name"), template.get("language")
    code = language.get("code") if isinstance(language, dict) else None
    found = next(
        (t for t in templates if t.name == name and t.language == code and t.status == "APPROVED"),
        None,
    )
    if found is None:
        raise Refused(
            404, 132001, f"Template name does not exist in the translation: {name} ({code})"
        )
    params: list[Any] = []
    for component in template.get("components") or []:
        if isinstance(component, dict) and component.get("type") == "body":
            params = list(component.get("parameters") or [])
    if len(params) != found.params:
        raise Refused(
            400,
            132000,
            f"Number of parameters does not match: expected {found.params}, received {len(params)}",
        )
    for param in params:
        if not (
            isinstance(param, dict)
            and param.get("type") == "text"
            and isinstance(param.get("text"), str)
            and param["text"].strip()
        ):
            raise Refused(400, 132012, "Parameter format does not match")


def check_interactive(data: Mapping[str, Any]) -> None:
    interactive = data.get("interactive")
    if not isinstance(interactive, dict):
        raise Refused(400, 100, "The parameter interactive is required.")
    body = interactive.get("body")
    text = body.get("text") if isinstance(body, dict) else None
    if not isinstance(text, str) or not text or len(text) > 1024:
        raise Refused(400, 100, "interactive body text must be 1 to 1024 characters")
    action = interactive.get("action")
    if not isinstance(action, dict):
        raise Refused(400, 100, "The parameter interactive['action'] is required.")
    if interactive.get("type") == "button":
        buttons = action.get("buttons")
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
            raise Refused(400, 100, "buttons must hold 1 to 3 buttons")
        titles = []
        for button in buttons:
            reply = button.get("reply") if isinstance(button, dict) else None
            if not isinstance(reply, dict) or button.get("type") != "reply":
                raise Refused(400, 100, "each button is a reply button")
            _check_str(reply.get("id"), 256, "button id")
            titles.append(_check_str(reply.get("title"), 20, "button title"))
        if len(set(titles)) != len(titles):
            raise Refused(400, 100, "button titles must be unique")
    elif interactive.get("type") == "list":
        _check_str(action.get("button"), 20, "list button")
        sections = action.get("sections")
        if not isinstance(sections, list) or not sections:
            raise Refused(400, 100, "a list needs sections")
        rows = [
            row
            for section in sections
            if isinstance(section, dict)
            for row in (section.get("rows") or [])
        ]
        if not 1 <= len(rows) <= 10:
            raise Refused(400, 100, "a list holds 1 to 10 rows")
        for row in rows:
            if not isinstance(row, dict):
                raise Refused(400, 100, "each row is an object")
            _check_str(row.get("id"), 200, "row id")
            _check_str(row.get("title"), 24, "row title")
            if "description" in row:
                _check_str(row["description"], 72, "row description")
    else:
        raise Refused(400, 100, f"unsupported interactive type {interactive.get('type')!r}")


def _check_str(value: object, limit: int, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise Refused(400, 100, f"{what} must be 1 to {limit} characters")
    return value
