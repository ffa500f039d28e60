"""The shared test runner (``casereach/testing/gateway_tables.py``) fails when it should.

Kept next to the ``http`` type until ``gateways/tests/`` takes it: every gateway's table relies
on these guards, so a runner that silently passed would hide real bugs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, ConfigDict

from casereach.gateways.base import Exchange, Gateway, OutgoingMessage, SendResult
from casereach.testing.gateway_tables import (
    OutgoingCase,
    ProviderServer,
    Reply,
    run_outgoing_case,
)

LEAKY_SECRET = "leaky-5ecret-value"  # noqa: S105 (made-up test secret)


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str
    token: str = LEAKY_SECRET
    leak: bool = False
    leak_number: bool = False


class _Probe(Gateway):
    """Sends one GET to ``url`` and logs it, optionally leaking what it must not."""

    slug = "probe"
    label = "probe"
    config_model = _Config
    secret_fields = ("token",)

    def __init__(self, config: Mapping[str, Any], http: httpx.Client | None = None) -> None:
        super().__init__(config, http)
        self.last_exchange: Exchange | None = None

    def send(self, message: OutgoingMessage) -> SendResult:
        cfg = self.config
        assert isinstance(cfg, _Config)
        assert self.http is not None
        response = self.http.get(cfg.url)
        logged = "GET " + cfg.url
        if cfg.leak:
            logged += " token=" + cfg.token
        if cfg.leak_number:
            logged += " to=" + message.to
        self.last_exchange = Exchange(request=logged, response=str(response.status_code))
        return SendResult(provider_id="p1")


@pytest.fixture(scope="module")
def server() -> Iterator[ProviderServer]:
    with ProviderServer() as provider:
        yield provider


def test_clean_case_passes(server: ProviderServer) -> None:
    case = OutgoingCase(label="clean", replies={"/x": [Reply(200)]}, expect_result=SendResult("p1"))
    run_outgoing_case(_Probe, {"url": server.url + "/x"}, case, server)


@pytest.mark.parametrize(
    ("label", "config", "replies", "path", "message"),
    [
        ("unused reply", {}, {"/x": [Reply(200), Reply(200)]}, "/x", "never requested"),
        ("unscripted request", {}, {}, "/y", "unscripted requests"),
        ("secret in the log", {"leak": True}, {"/x": [Reply(200)]}, "/x", "a secret leaked"),
        ("number in the log", {"leak_number": True}, {"/x": [Reply(200)]}, "/x", "full number"),
    ],
)
def test_runner_fails(
    label: str,
    config: dict[str, Any],
    replies: dict[str, list[Reply]],
    path: str,
    message: str,
    server: ProviderServer,
) -> None:
    case = OutgoingCase(label=label, replies=replies, expect_result=SendResult("p1"))
    with pytest.raises(AssertionError, match=message):
        run_outgoing_case(_Probe, {"url": server.url + path, **config}, case, server)


def test_runner_refuses_real_network(server: ProviderServer) -> None:
    case = OutgoingCase(label="elsewhere", expect_result=SendResult("p1"))
    with pytest.raises(AssertionError, match="real network call attempted"):
        run_outgoing_case(_Probe, {"url": "http://192.0.2.1/x"}, case, server)
