"""The webhooks ``FakeWhatsApp`` posts, signed as Meta (``X-Hub-Signature-256``) or Turn
(``X-Turn-Hook-Signature``) sign them: statuses with pricing, inbound text, reply-button and
list replies, template quick replies, media captions. See ``casereach.testing.fake_whatsapp``.

Tests only: the wheel does not ship ``casereach.testing``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from casereach.testing.fake_whatsapp import SentMessage

NOT_A_USER_LATER = "not_a_user_later"


class WebhookPoster:
    """What the fake posts to us; the fake holds the state it reads."""

    flavour: str
    app_secret: str
    hook_secret: str
    business_number: str
    phone_number_id: str
    waba_id: str
    sent: list[SentMessage]
    reported: set[str]
    behaviours: dict[str, str]
    _lock: threading.Lock
    _ids: itertools.count[int]

    def open_window(self, number: str) -> None:
        raise NotImplementedError

    def sign(self, body: bytes) -> dict[str, str]:
        """The signature header the provider sends with ``body``."""
        if self.flavour == "cloud":
            digest = hmac.new(self.app_secret.encode(), body, hashlib.sha256).hexdigest()
            return {"X-Hub-Signature-256": "sha256=" + digest}
        raw = hmac.new(self.hook_secret.encode(), body, hashlib.sha256).digest()
        return {"X-Turn-Hook-Signature": base64.b64encode(raw).decode()}

    def webhook_body(
        self, *, statuses: Iterable[dict[str, Any]] = (), messages: Iterable[dict[str, Any]] = ()
    ) -> bytes:
        """A webhook body as the provider posts it (Meta's envelope, or Turn's bare value)."""
        value: dict[str, Any] = {}
        messages = list(messages)
        if messages:
            value["contacts"] = [
                {"profile": {"name": "Fake Person"}, "wa_id": m["from"]} for m in messages
            ]
            value["messages"] = messages
        statuses = list(statuses)
        if statuses:
            value["statuses"] = statuses
        if self.flavour == "turn":
            return json.dumps(value).encode()
        value = {
            "messaging_product": "whatsapp",
            "metadata": {
                "display_phone_number": self.business_number,
                "phone_number_id": self.phone_number_id,
            },
            **value,
        }
        envelope = {
            "object": "whatsapp_business_account",
            "entry": [{"id": self.waba_id, "changes": [{"value": value, "field": "messages"}]}],
        }
        return json.dumps(envelope).encode()

    def post(self, url: str, body: bytes, *, signed: bool = True) -> httpx.Response:
        headers = {"Content-Type": "application/json", **(self.sign(body) if signed else {})}
        return httpx.post(url, content=body, headers=headers, timeout=30)

    def status(
        self,
        wamid: str,
        status: str,
        *,
        recipient: str = "",
        category: str = "",
        error_code: int | None = None,
    ) -> dict[str, Any]:
        """One status object (``pricing`` when a category is given)."""
        item: dict[str, Any] = {
            "id": wamid,
            "status": status,
            "timestamp": str(int(time.time())),
            "recipient_id": recipient or self._recipient(wamid),
        }
        if category:
            item["conversation"] = {"id": "conv-" + wamid, "origin": {"type": category}}
            item["pricing"] = {"billable": True, "pricing_model": "PMP", "category": category}
        if error_code is not None:
            item["errors"] = [
                {"code": error_code, "title": _ERROR_TITLES.get(error_code, "Failed")}
            ]
        return item

    def _recipient(self, wamid: str) -> str:
        with self._lock:
            return next((m.to for m in self.sent if m.wamid == wamid), "254700000000")

    def post_statuses(
        self,
        url: str,
        wamid: str,
        *statuses: str,
        category: str = "",
        error_code: int | None = None,
    ) -> httpx.Response:
        """Post one webhook with ``statuses`` of ``wamid`` in order."""
        items = [
            self.status(
                wamid, s, category=category, error_code=error_code if s == "failed" else None
            )
            for s in statuses
        ]
        return self.post(url, self.webhook_body(statuses=items))

    def deliver(
        self, url: str, statuses: tuple[str, ...] = ("sent", "delivered"), category: str = "utility"
    ) -> list[httpx.Response]:
        """Report every accepted message not yet reported: ``statuses`` in order, or a
        ``failed`` 131026 for a ``NOT_A_USER_LATER`` recipient."""
        with self._lock:
            pending = [m for m in self.sent if m.wamid not in self.reported]
            self.reported.update(m.wamid for m in pending)
        responses = []
        for message in pending:
            if self.behaviours.get(message.to) == NOT_A_USER_LATER:
                responses.append(
                    self.post_statuses(url, message.wamid, "failed", error_code=131026)
                )
            else:
                responses.append(
                    self.post_statuses(url, message.wamid, *statuses, category=category)
                )
        return responses

    def _inbound(self, sender: str, kind: str, part: dict[str, Any]) -> dict[str, Any]:
        self.open_window(sender)
        return {
            "from": sender,
            "id": f"wamid.IN{next(self._ids):08d}",
            "timestamp": str(int(time.time())),
            "type": kind,
            kind: part,
        }

    def post_text(self, url: str, sender: str, text: str) -> httpx.Response:
        message = self._inbound(sender, "text", {"body": text})
        return self.post(url, self.webhook_body(messages=[message]))

    def post_button_reply(self, url: str, sender: str, reply_id: str, title: str) -> httpx.Response:
        part = {"type": "button_reply", "button_reply": {"id": reply_id, "title": title}}
        return self.post(
            url, self.webhook_body(messages=[self._inbound(sender, "interactive", part)])
        )

    def post_list_reply(self, url: str, sender: str, reply_id: str, title: str) -> httpx.Response:
        part = {"type": "list_reply", "list_reply": {"id": reply_id, "title": title}}
        return self.post(
            url, self.webhook_body(messages=[self._inbound(sender, "interactive", part)])
        )

    def post_template_button(
        self, url: str, sender: str, text: str, payload: str
    ) -> httpx.Response:
        part = {"text": text, "payload": payload}
        return self.post(url, self.webhook_body(messages=[self._inbound(sender, "button", part)]))

    def post_caption(
        self, url: str, sender: str, caption: str, kind: str = "image"
    ) -> httpx.Response:
        part = {"caption": caption, "mime_type": "image/jpeg", "sha256": "0" * 64, "id": "media1"}
        return self.post(url, self.webhook_body(messages=[self._inbound(sender, kind, part)]))


_ERROR_TITLES = {
    131026: "Message undeliverable",
    131047: "Re-engagement message",
    131049: "Meta chose not to deliver",
}
