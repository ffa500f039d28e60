"""Encryption of stored secrets (gateway credentials) with a key derived from SECRET_KEY."""

from __future__ import annotations

import base64
import hashlib
import json
from functools import cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


@cache
def _fernet(secret_key: str) -> Fernet:
    digest = hashlib.sha256(b"casereach-secrets:" + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt_json(value: dict[str, Any]) -> str:
    if not value:
        return ""
    raw = json.dumps(value, separators=(",", ":")).encode()
    return _fernet(settings.SECRET_KEY).encrypt(raw).decode()


def decrypt_json(token: str) -> dict[str, Any]:
    """The stored secrets; ValueError when the key changed (CASEREACH_SECRET_KEY lost)."""
    if not token:
        return {}
    try:
        raw = _fernet(settings.SECRET_KEY).decrypt(token.encode())
    except InvalidToken:
        raise ValueError(
            "stored gateway credentials cannot be decrypted: the secret key changed"
        ) from None
    value: dict[str, Any] = json.loads(raw)
    return value
