"""Project B's requests against project A, recorded: what was sent, what came back, and
which of A's values came back that B had not sent itself (a read).

B "knows" a value it has sent: a number it texts, a gateway name it picks, A's project name
in a URL. Those A values that B may legitimately type into its own data (``typable``: numbers,
emails, names it picks) stay known once sent; A's ids, case names, message texts, keys
(``private``) and A's integer ids count as known only in the very request that carried them
(an error that echoes the id it was asked about reads nothing).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus, urlencode

from django.test import Client

from casereach.testing.tenants import Tenant

SHOWN_HEADERS = ("Location", "Content-Disposition")


@dataclass
class Sent:
    who: str  # key | session | provider
    method: str
    url: str
    body: str
    status: int
    text: str  # the response: body and the headers that carry values

    def line(self) -> str:
        body = f" {self.body[:160]}" if self.body else ""
        return f"[{self.who}] {self.method} {self.url}{body} -> {self.status}"


def _shown(value: Any) -> str:
    """A form value as sent: an upload's content, read without using it up."""
    if hasattr(value, "read") and hasattr(value, "seek"):
        content = value.read()
        value.seek(0)
        return content.decode("utf-8", "replace") if isinstance(content, bytes) else str(content)
    return str(value)


def _alternation(values: set[str]) -> re.Pattern[str] | None:
    if not values:
        return None
    return re.compile("|".join(re.escape(v) for v in sorted(values, key=len, reverse=True)))


def _ints(values: set[int]) -> re.Pattern[str] | None:
    if not values:
        return None
    return re.compile(r"(?<!\d)(" + "|".join(str(v) for v in sorted(values)) + r")(?!\d)")


class Walker:
    """Sends B's requests (API key, web session with its CSRF token, or as a provider)."""

    def __init__(self, a: Tenant, b: Tenant, a_ints: set[int]) -> None:
        self.a = a
        self.b = b
        self.typable = a.typable() - b.typable()
        self.private = a.private() - b.private()
        self._typable = _alternation(self.typable)
        self._private = _alternation(self.private)
        self._ints = _ints(a_ints)
        self.known: set[str] = set()
        self.sent: list[Sent] = []
        self.reads: list[str] = []
        self.key_client = Client()
        self.provider = Client()
        self.results: dict[str, Any] = {}  # what B's own requests created, for later ones
        self.on_sent: Callable[[Sent], None] | None = None  # called after every request

    # --- sending -----------------------------------------------------------------------
    def call(
        self,
        who: str,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
        form: dict[str, Any] | None = None,
        raw: bytes | str | None = None,
        content_type: str = "application/json",
    ) -> Sent:
        """One request as ``who``; ``body`` is JSON, ``form`` a form (multipart)."""
        headers: dict[str, str] = {}
        if who == "key":
            client = self.key_client
            headers["HTTP_AUTHORIZATION"] = self.b.api.auth
        elif who == "session":
            client = self.b.web
            headers["HTTP_X_CSRFTOKEN"] = self.b.csrf
        else:
            client = self.provider
        url = path + (f"?{urlencode(query, doseq=True)}" if query else "")
        fn = getattr(client, method.lower())
        sent_body = ""
        if form is not None:
            data = dict(form)
            if who == "session":
                data["csrfmiddlewaretoken"] = self.b.csrf
            sent_body = json.dumps({k: _shown(v) for k, v in form.items()})
            response = fn(url, data, **headers)
        elif body is not None or raw is not None:
            payload = raw if raw is not None else json.dumps(body)
            response = fn(url, payload, content_type=content_type, **headers)
            sent_body = payload if isinstance(payload, str) else payload.decode("utf-8", "replace")
        else:
            response = fn(url, **headers)
        content = b"".join(response) if response.streaming else response.content
        text = content.decode("utf-8", "replace")
        text += "".join(f"\n{h}: {response[h]}" for h in SHOWN_HEADERS if response.has_header(h))
        sent = Sent(who, method.upper(), url, sent_body, response.status_code, text)
        self.sent.append(sent)
        self._check_reads(sent)
        if self.on_sent is not None:
            self.on_sent(sent)
        return sent

    # --- reads -------------------------------------------------------------------------
    def _check_reads(self, sent: Sent) -> None:
        request = f"{unquote_plus(sent.url)} {sent.body}"
        found: set[str] = set()
        if self._typable is not None:
            self.known.update(m for m in self._typable.findall(request))
            found.update(v for v in self._typable.findall(sent.text) if v not in self.known)
        if self._private is not None:
            echoed = set(self._private.findall(request))
            found.update(v for v in self._private.findall(sent.text) if v not in echoed)
        if self._ints is not None:
            echoed = set(self._ints.findall(request))
            found.update(v for v in self._ints.findall(sent.text) if v not in echoed)
        if found:
            self.reads.append(f"{sent.line()} showed {sorted(found)}")

    # --- summary -----------------------------------------------------------------------
    def counts(self) -> Counter[str]:
        return Counter(s.who for s in self.sent)

    def server_errors(self) -> list[str]:
        return [f"{s.line()}: {s.text[:200]}" for s in self.sent if s.status >= 500]
