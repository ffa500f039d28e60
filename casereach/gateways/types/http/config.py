"""The ``http`` gateway's config: URL, method, parameters (templates), headers, basic auth,
the idempotency header and how to read a reply; validated once when the gateway is saved."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from casereach.gateways import netpolicy
from casereach.gateways.base import max_in_flight_field
from casereach.gateways.types.http import template

_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_MIN_SECRET = 4


def _check_header_name(name: str) -> None:
    if not _HEADER_NAME.match(name):
        raise ValueError(f"{name!r} is not a valid HTTP header name")


class HttpConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="http(s) URL of the provider's send endpoint")
    method: Literal["GET", "POST"] = "POST"
    encoding: Literal["form", "json"] = Field(default="form", description="POST body encoding")
    params: dict[str, str] = Field(
        description="Request parameters; values may use {to}, {to_plus}, {to_national}, {from}, "
        "{text}, {message_id}"
    )
    headers: dict[str, str] = Field(default_factory=dict)
    secret_headers: list[str] = Field(
        default_factory=list, description="Names of headers whose values are secrets"
    )
    secret_params: list[str] = Field(
        default_factory=list, description="Names of params whose (fixed) values are secrets"
    )
    username: str | None = Field(default=None, description="Basic auth user")
    password: str | None = Field(default=None, description="Basic auth password (secret)")
    sender: str = Field(default="", description="Default {from} when the message has none")
    success_status: list[int] | None = Field(
        default=None, description="Statuses that mean accepted (default: any 2xx)"
    )
    success_regex: str | None = Field(
        default=None, description="If set, the reply body must contain a match"
    )
    provider_id_path: str | None = Field(
        default=None, description="Dotted path to the provider's message id in a JSON reply"
    )
    idempotency_header: str | None = Field(
        default="Idempotency-Key", description="Header carrying our message id; null for none"
    )
    status_map: dict[str, Literal["sent", "delivered", "failed"]] = Field(
        default_factory=dict, description="Extra callback status words"
    )
    timeout_s: float = Field(default=netpolicy.DEFAULT_TIMEOUT_S, gt=0, le=netpolicy.MAX_TIMEOUT_S)
    # The asyncio client holds hundreds of requests open at once at little cost.
    max_in_flight: int = max_in_flight_field(500)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return netpolicy.check_url(value.strip())

    @field_validator("method", mode="before")
    @classmethod
    def _method(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("params")
    @classmethod
    def _params(cls, value: dict[str, str]) -> dict[str, str]:
        used: set[str] = set()
        for name, text in value.items():
            if not name:
                raise ValueError("params has an empty name")
            try:
                used |= template.placeholders(text)
            except ValueError as exc:
                raise ValueError(f"params[{name!r}]: {exc}") from None
        if "text" not in used:
            raise ValueError("params must put the message somewhere: use {text} in a value")
        if not used & {"to", "to_plus", "to_national"}:
            raise ValueError(
                "params must put the destination somewhere: use {to}, {to_plus} or {to_national}"
            )
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            _check_header_name(name)
            if "\r" in text or "\n" in text:
                raise ValueError(f"header {name!r} contains a line break")
        return value

    @field_validator("idempotency_header")
    @classmethod
    def _idempotency_header(cls, value: str | None) -> str | None:
        if value is not None:
            _check_header_name(value)
        return value

    @field_validator("success_status", mode="before")
    @classmethod
    def _success_status_one(cls, value: object) -> object:
        return [value] if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("success_status")
    @classmethod
    def _success_status(cls, value: list[int] | None) -> list[int] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("success_status must list at least one status (or be omitted)")
        for status in value:
            if not 100 <= status <= 599:
                raise ValueError(f"success_status {status} is not an HTTP status")
        return value

    @field_validator("success_regex")
    @classmethod
    def _success_regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(
                    f"success_regex is not a valid regular expression: {exc}"
                ) from None
        return value

    @field_validator("provider_id_path")
    @classmethod
    def _provider_id_path(cls, value: str | None) -> str | None:
        if value is not None and (not value or any(not seg for seg in value.split("."))):
            raise ValueError("provider_id_path must be dotted names like 'data.message_id'")
        return value

    @field_validator("status_map")
    @classmethod
    def _status_map(cls, value: dict[str, str]) -> dict[str, str]:
        return {word.strip().lower(): status for word, status in value.items()}

    @model_validator(mode="after")
    def _consistent(self) -> HttpConfig:
        if self.method == "GET" and self.encoding == "json":
            raise ValueError("encoding 'json' needs method POST (GET sends params in the URL)")
        if (self.username is None) != (self.password is None):
            raise ValueError("basic auth needs both username and password")
        if self.password is not None and len(self.password) < _MIN_SECRET:
            raise ValueError(f"password must be at least {_MIN_SECRET} characters")
        header_names = {h.lower() for h in self.headers}
        for name in self.secret_headers:
            if name.lower() not in header_names:
                raise ValueError(f"secret_headers names {name!r}, which is not in headers")
            value = next(v for k, v in self.headers.items() if k.lower() == name.lower())
            if len(value) < _MIN_SECRET:
                raise ValueError(
                    f"secret header {name!r} must be at least {_MIN_SECRET} characters"
                )
        for name in self.secret_params:
            if name not in self.params:
                raise ValueError(f"secret_params names {name!r}, which is not in params")
            value = self.params[name]
            if template.placeholders(value):
                raise ValueError(f"secret param {name!r} must be a fixed value, not a template")
            if len(template.render(value, {})) < _MIN_SECRET:
                raise ValueError(f"secret param {name!r} must be at least {_MIN_SECRET} characters")
        if self.idempotency_header is not None:
            if self.idempotency_header.lower() in header_names:
                raise ValueError(
                    f"{self.idempotency_header} is set both in headers and as idempotency_header"
                )
            if self.username is not None and self.idempotency_header.lower() == "authorization":
                raise ValueError("idempotency_header cannot be Authorization")
        return self
