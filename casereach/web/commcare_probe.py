"""The Connect page's test button: one read of HQ's Case API v2 (``GET …/case/v2/?limit=1``)
with the project's write-back credentials, through the same HTTP client and outbound network
policy as the write-back sender (``gateways.netpolicy.make_client``). Nothing is stored and no
write is sent; every failure is a result to show, never an exception."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import quote

import httpx

from casereach.gateways.base import GatewayError
from casereach.gateways.netpolicy import make_client
from casereach.projects.settings_schema import CommCareSettings

TIMEOUT_S = 10.0


@dataclass
class ProbeResult:
    ok: bool
    kind: str  # ok, not_configured, unauthorized, forbidden, not_found, http, unreachable, tls
    message: str
    url: str = ""
    status: int | None = None


def probe_url(cc: CommCareSettings) -> str:
    return f"{cc.url}/a/{quote(cc.domain, safe='')}/api/case/v2/?limit=1"


def _is_tls(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError) or "CERTIFICATE" in str(seen).upper():
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def probe(cc: CommCareSettings, client: httpx.Client | None = None) -> ProbeResult:
    """Call HQ once and say what happened."""
    if not cc.configured:
        return ProbeResult(
            False, "not_configured", "Fill in the URL, project space, username and API key first."
        )
    url = probe_url(cc)
    try:
        key = cc.plain_api_key()
    except ValueError:
        return ProbeResult(
            False, "not_configured", "The stored API key cannot be read: enter it again.", url
        )
    headers = {"Authorization": f"ApiKey {cc.username}:{key}", "User-Agent": "casereach-probe"}
    own = client is None
    http = client or make_client(TIMEOUT_S)
    try:
        response = http.get(url, headers=headers)
    except httpx.TimeoutException as exc:
        return ProbeResult(
            False, "unreachable", f"HQ did not answer in time ({type(exc).__name__}).", url
        )
    except (httpx.HTTPError, GatewayError, OSError, ValueError) as exc:
        if _is_tls(exc):
            return ProbeResult(
                False,
                "tls",
                f"TLS error: the certificate of HQ could not be verified ({exc}).",
                url,
            )
        return ProbeResult(False, "unreachable", f"Could not connect to HQ: {exc}", url)
    finally:
        if own:
            http.close()
    status = response.status_code
    if 200 <= status < 300:
        return ProbeResult(
            True, "ok", f"Connected: HQ answered {status} and accepted the API key.", url, status
        )
    if status == 401:
        return ProbeResult(
            False, "unauthorized", "HQ answered 401: the username or API key is wrong.", url, status
        )
    if status == 403:
        return ProbeResult(
            False,
            "forbidden",
            "HQ answered 403: this user may not use the Case API of this project space.",
            url,
            status,
        )
    if status == 404:
        return ProbeResult(
            False, "not_found", "HQ answered 404: check the URL and the project space.", url, status
        )
    return ProbeResult(
        False, "http", f"HQ answered {status}: {response.text.strip()[:200]}", url, status
    )
