"""Reading what a provider answers the ``http`` gateway: the reply to a send (success check,
provider id) and status callbacks (see the module docstring of ``gateway``)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from casereach.core import text as core_text
from casereach.gateways import netpolicy
from casereach.gateways.base import GATEWAY_ERROR, GatewayError, SendResult, Status, StatusUpdate
from casereach.gateways.types.http.config import HttpConfig

# Status words providers use in callbacks (compared case-insensitively) → ours; SMPP-style
# receipt words included. ``status_map`` in the config adds to or overrides these.
STATUS_WORDS: dict[str, Status] = {
    "delivered": "delivered",
    "delivrd": "delivered",
    "sent": "sent",
    "accepted": "sent",
    "acceptd": "sent",
    "submitted": "sent",
    "queued": "sent",
    "enroute": "sent",
    "buffered": "sent",
    "failed": "failed",
    "undelivered": "failed",
    "undeliv": "failed",
    "rejected": "failed",
    "rejectd": "failed",
    "expired": "failed",
}


def _dig(data: Any, path: str) -> str | None:
    """The scalar at a dotted ``path`` in parsed JSON (list items by index), or None."""
    for segment in path.split("."):
        if isinstance(data, dict) and segment in data:
            data = data[segment]
        elif isinstance(data, list) and segment.isdigit() and int(segment) < len(data):
            data = data[int(segment)]
        else:
            return None
    if isinstance(data, bool) or not isinstance(data, str | int):
        return None
    text = str(data).strip()
    return text or None


def _callback_items(
    form: Mapping[str, str], body: bytes, content_type: str
) -> list[Mapping[str, Any]]:
    if form:
        return [form]
    if not body:
        raise ValueError("empty status callback: send 'id' and 'status'")
    media = content_type.split(";")[0].strip().lower()
    if media == "application/json" or body.lstrip()[:1] in (b"{", b"["):
        try:
            data = core_text.parse_json(body)
        except core_text.InvalidText:
            raise
        except ValueError:
            raise ValueError("status callback body is not valid JSON") from None
        items = data if isinstance(data, list) else [data]
        if not items or not all(isinstance(item, dict) for item in items):
            raise ValueError("status callback JSON must be an object or a list of objects")
        return items
    try:
        pairs = core_text.parse_form(body)
    except core_text.InvalidText:
        raise
    except ValueError:
        raise ValueError("status callback body is neither a form nor JSON") from None
    return [dict(pairs)]


def judge(
    cfg: HttpConfig, status: int, retry_after: str | None, content: bytes, text: Callable[[], str]
) -> SendResult:
    """Read a reply (status, ``Retry-After``, body) per the gateway's module docstring."""
    accepted = status in cfg.success_status if cfg.success_status else 200 <= status <= 299
    if not accepted:
        retry = netpolicy.retryable_status(status, retry_after)
        if retry is not None:
            raise retry
        raise GatewayError(
            GATEWAY_ERROR,
            retryable=False,
            provider_code=str(status),
            detail=f"provider replied HTTP {status}",
        )
    if cfg.success_regex is not None and not re.search(cfg.success_regex, text()):
        raise GatewayError(
            GATEWAY_ERROR,
            retryable=False,
            provider_code=str(status),
            detail="the reply does not match success_regex",
        )
    if cfg.provider_id_path is None:
        return SendResult(provider_id=None, status="sent")
    try:
        data = json.loads(content)
    except ValueError:
        return SendResult(provider_id=None, status="sent", detail="reply is not JSON")
    provider_id = _dig(data, cfg.provider_id_path)
    if provider_id is None:
        return SendResult(
            provider_id=None, status="sent", detail=f"no id at {cfg.provider_id_path}"
        )
    return SendResult(provider_id=provider_id, status="sent")


def status_updates(
    cfg: HttpConfig, form: Mapping[str, str], body: bytes, content_type: str
) -> list[StatusUpdate]:
    """The updates of one status callback (``id``, ``status``, optional ``code``)."""
    words: dict[str, Status] = {**STATUS_WORDS, **cfg.status_map}
    updates = []
    for item in _callback_items(form, body, content_type):
        raw_id, raw_status = item.get("id"), item.get("status")
        if raw_id is None or isinstance(raw_id, bool) or not str(raw_id).strip():
            raise ValueError("status callback has no 'id'")
        if not isinstance(raw_status, str) or not raw_status.strip():
            raise ValueError("status callback has no 'status'")
        word = raw_status.strip()
        status = words.get(word.lower())
        if status is None:
            raise ValueError(f"unknown status {word!r}; add it to the gateway's status_map")
        code = item.get("code")
        provider_code = str(code).strip() if code not in (None, "") else word
        updates.append(
            StatusUpdate(
                provider_id=str(raw_id).strip(),
                status=status,
                error_code=GATEWAY_ERROR if status == "failed" else None,
                provider_code=provider_code if status == "failed" else "",
                is_our_id=cfg.provider_id_path is None,
            )
        )
    return updates
