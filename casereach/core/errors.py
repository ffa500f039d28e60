"""Typed base errors shared by every app; the API layer turns them into 4xx JSON."""

from __future__ import annotations

from typing import Any


class CasereachError(Exception):
    """A failure caused by the caller's input or state, never by a bug."""

    status = 400

    def __init__(self, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class BadRequest(CasereachError):
    status = 400


class NotFound(CasereachError):
    status = 404


class Conflict(CasereachError):
    status = 409
