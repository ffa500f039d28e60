"""The message templates of a WhatsApp Business Account, as Meta's Graph API lists them (Turn
proxies the same endpoint): every page, each template's name, language, status, category, body
text and how many variables the body has. Shared by ``whatsapp_cloud`` and ``turn``."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx

from casereach.gateways import netpolicy
from casereach.gateways.base import GATEWAY_ERROR, Exchange, GatewayError, ProviderTemplate
from casereach.gateways.types.whatsapp_common import error_for, json_object

MAX_TEMPLATE_PAGES = 100

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
TEMPLATE_FIELDS = "name,language,status,category,components"


def template_params(body: str) -> int:
    """How many distinct {{n}} variables ``body`` has."""
    return len(set(PLACEHOLDER.findall(body)))


def parse_template(item: object) -> ProviderTemplate | None:
    if not isinstance(item, dict):
        return None
    name, language, status = item.get("name"), item.get("language"), item.get("status")
    if not (isinstance(name, str) and isinstance(language, str) and isinstance(status, str)):
        return None
    body = ""
    components = item.get("components")
    for component in components if isinstance(components, list) else []:
        if (
            isinstance(component, dict)
            and str(component.get("type", "")).upper() == "BODY"
            and isinstance(component.get("text"), str)
        ):
            body = component["text"]
    category = item.get("category")
    return ProviderTemplate(
        name=name,
        language=language,
        status=status.upper(),
        body=body,
        category=category.upper() if isinstance(category, str) else "",
        params=template_params(body),
    )


def list_templates(
    client: httpx.Client,
    url: str,
    *,
    token: str,
    timeout_s: float,
    secrets: list[str],
    record: Callable[[Exchange], None],
) -> list[ProviderTemplate]:
    """Every template, following ``paging.next`` while it stays on the same host.

    Raises:
        GatewayError: a transport failure or an error reply (classified as a send's).
    """
    origin = urlsplit(url)[:2]
    templates: list[ProviderTemplate] = []
    params: dict[str, str] | None = {"fields": TEMPLATE_FIELDS, "limit": "100"}
    next_url: str | None = url
    pages = 0
    while next_url and pages < MAX_TEMPLATE_PAGES:
        pages += 1
        netpolicy.check_url_before_send(next_url)
        request = client.build_request(
            "GET",
            next_url,
            params=params,
            headers={"Accept": "application/json", "Authorization": f"Bearer {token}"},
            timeout=timeout_s,
        )
        response = netpolicy.send_logged(client, request, secrets=secrets, record=record)
        data = json_object(response.content)
        if not 200 <= response.status_code <= 299:
            raise error_for(
                response.status_code, data, response.headers.get("retry-after"), secrets
            )
        if data is None or not isinstance(data.get("data"), list):
            raise GatewayError(
                GATEWAY_ERROR,
                retryable=True,
                provider_code=str(response.status_code),
                detail="the template list reply has no 'data' list",
            )
        templates += [t for t in map(parse_template, data["data"]) if t is not None]
        paging = data.get("paging")
        candidate = paging.get("next") if isinstance(paging, dict) else None
        next_url = None
        if isinstance(candidate, str) and urlsplit(candidate)[:2] == origin:
            next_url, params = candidate, None  # the next URL carries its own query
    return templates
