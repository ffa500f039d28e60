"""HTTP Digest (RFC 7616 / 2617, ``qop="auth"``) without state between requests except
the nonce counts: what a challenge says, what a client's answer means, and the secrets
(HA1) it is checked against (decisions/0011).

Nonces are ``<time>.<random>.<HMAC(SECRET_KEY)>``: any process can check one it did not
make. A nonce older than ``NONCE_LIFETIME_S`` gets a ``stale=true`` challenge (the client
answers it without asking its user again). Replays are refused by the nonce count: each use of
a nonce must bring a higher ``nc`` than the last one accepted, kept in the database
(``projects.actions.do_use_nonce``) so every process sees it.

The secrets: HA1 = H(username:realm:password) for MD5 and SHA-256, kept encrypted
(``core.crypto``) per web user (``PasswordDigest``, written whenever the password is set:
``DigestPasswordHook`` is a Django password validator whose ``password_changed`` sees the
password in clear) and per API key (``ApiKey.digest_secret``, written when the key is made).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from casereach.core import crypto

REALM = "casereach"
NONCE_LIFETIME_S = 300
# The highest nc a client may send (8 hex digits, RFC 7616).
MAX_NC = 0xFFFFFFFF
_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
_NONCE = re.compile(r"^([0-9a-f]{1,12})\.([0-9a-f]{16})\.([0-9a-f]{64})$")


def _h(algorithm: str, text: str) -> str:
    return _HASHES[algorithm](text.encode("utf-8", "surrogatepass")).hexdigest()


def ha1(algorithm: str, username: str, password: str) -> str:
    return _h(algorithm, f"{username}:{REALM}:{password}")


def seal(username: str, password: str) -> str:
    """The encrypted Digest secrets (both algorithms' HA1) of ``username``/``password``."""
    return crypto.encrypt_json({a: ha1(a, username, password) for a in _HASHES})


def unseal(secret: str, algorithm: str) -> str | None:
    """The HA1 for ``algorithm`` in a sealed secret; None when unreadable (SECRET_KEY
    changed) or absent."""
    try:
        value = crypto.decrypt_json(secret).get(algorithm)
    except (ValueError, json.JSONDecodeError):
        return None
    return value if isinstance(value, str) else None


def _sign(text: str) -> str:
    key = hashlib.sha256(b"casereach-digest-nonce:" + settings.SECRET_KEY.encode()).digest()
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def new_nonce(at: float | None = None) -> str:
    body = f"{int(at if at is not None else time.time()):x}.{secrets.token_hex(8)}"
    return f"{body}.{_sign(body)}"


def nonce_age(nonce: str) -> float | None:
    """Seconds since the nonce was made; None when we did not make it."""
    match = _NONCE.match(nonce)
    if match is None:
        return None
    body = f"{match[1]}.{match[2]}"
    if not hmac.compare_digest(_sign(body), match[3]):
        return None
    return time.time() - int(match[1], 16)


def opaque() -> str:
    return _sign("opaque")[:32]


def challenge(*, stale: bool = False) -> str:
    """The ``WWW-Authenticate`` value of a 401 from the API."""
    extra = ", stale=true" if stale else ""
    return (
        f'Digest realm="{REALM}", nonce="{new_nonce()}", qop="auth", '
        f'opaque="{opaque()}", algorithm=MD5{extra}'
    )


@dataclass(frozen=True)
class Answer:
    """A client's ``Authorization: Digest …`` fields."""

    username: str
    nonce: str
    uri: str
    response: str
    nc: int
    cnonce: str
    algorithm: str
    fields: dict[str, str]


def parse(data: str) -> Answer | None:
    """The fields after ``Digest``; None when a required one is missing or malformed (only
    ``qop=auth`` and the algorithms MD5 and SHA-256 are spoken)."""
    try:
        items = urllib.request.parse_http_list(data)
        fields = {k.strip().lower(): v for k, v in urllib.request.parse_keqv_list(items).items()}
    except ValueError:
        return None
    algorithm = fields.get("algorithm", "MD5").upper()
    needed = ("username", "realm", "nonce", "uri", "response", "nc", "cnonce", "qop")
    if any(not fields.get(k) for k in needed) or algorithm not in _HASHES:
        return None
    if fields["qop"] != "auth" or fields["realm"] != REALM:
        return None
    if fields.get("opaque", opaque()) != opaque():
        return None
    try:
        nc = int(fields["nc"], 16)
    except ValueError:
        return None
    if not 0 < nc <= MAX_NC:
        return None
    return Answer(
        username=fields["username"],
        nonce=fields["nonce"],
        uri=fields["uri"],
        response=fields["response"].lower(),
        nc=nc,
        cnonce=fields["cnonce"],
        algorithm=algorithm,
        fields=fields,
    )


def expected(answer: Answer, method: str, secret_ha1: str) -> str:
    """The ``response`` a client knowing the password behind ``secret_ha1`` sends."""
    ha2 = _h(answer.algorithm, f"{method}:{answer.uri}")
    raw_nc = answer.fields["nc"]
    return _h(answer.algorithm, f"{secret_ha1}:{answer.nonce}:{raw_nc}:{answer.cnonce}:auth:{ha2}")


def matches(answer: Answer, method: str, secret: str) -> bool:
    value = unseal(secret, answer.algorithm)
    return value is not None and hmac.compare_digest(
        expected(answer, method, value).encode(), answer.response.encode("utf-8", "replace")
    )


class DigestPasswordHook:
    """Not a rule on passwords: a Django password validator only for ``password_changed``,
    which Django calls with the new password in clear each time a user's password is saved
    (``set_password`` then ``save``: our actions, ``createsuperuser``, ``changepassword``)."""

    def validate(self, password: str, user: Any = None) -> None:
        return None

    def password_changed(self, password: str, user: Any = None) -> None:
        if user is None or getattr(user, "pk", None) is None:
            return
        from casereach.projects.actions import do_store_password_digest

        do_store_password_digest(user, password)

    def get_help_text(self) -> str:
        return ""
