"""OpenAPI links: how the id a create answers with addresses the operations on that resource.

django-ninja writes no ``links``; these are added to the generated document so that clients
(and stateful API fuzzers) can follow create → read / update / delete chains.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PROJECT = "$request.path.project"


@dataclass(frozen=True)
class Link:
    """The answer ``status`` of operation ``source`` names a resource that ``targets`` take as
    their path parameter ``parameter``, found in the answer at ``expression``."""

    source: str
    status: str
    parameter: str
    expression: str
    targets: tuple[str, ...]


LINKS: tuple[Link, ...] = (
    Link(
        "case_v2_create",
        "200",
        "case_id",
        "$response.body#/case/case_id",
        ("case_v2_get", "case_v2_update", "case_v2_delete", "case_v05_get"),
    ),
    Link(
        "case_v2_upsert_ext",
        "200",
        "case_id",
        "$response.body#/case/case_id",
        ("case_v2_get", "case_v2_update", "case_v2_delete"),
    ),
    Link(
        "gateways_create",
        "201",
        "gateway_id",
        "$response.body#/id",
        ("gateways_get", "gateways_update", "gateways_delete"),
    ),
    Link(
        "keywords_create",
        "201",
        "keyword_id",
        "$response.body#/id",
        ("keywords_get", "keywords_update", "keywords_patch", "keywords_delete"),
    ),
    Link(
        "alerts_create",
        "201",
        "alert_id",
        "$response.body#/id",
        (
            "alerts_get",
            "alerts_update",
            "alerts_patch",
            "alerts_delete",
            "alerts_activate",
            "alerts_deactivate",
            "alerts_dry_run",
        ),
    ),
    Link(
        "surveys_create",
        "201",
        "survey_id",
        "$response.body#/id",
        ("surveys_get", "surveys_update", "surveys_delete", "surveys_preview"),
    ),
    Link("send", "202", "message_id", "$response.body#/messages/0/id", ("messages_get",)),
    Link(
        "user_create",
        "201",
        "user_id",
        "$response.body#/id",
        ("user_get", "user_update", "user_retire", "user_activate", "user_deactivate"),
    ),
)


def add_links(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with every link of ``LINKS`` whose source answer it documents."""
    answers: dict[tuple[str, str], dict[str, Any]] = {}
    for item in document.get("paths", {}).values():
        for op in item.values():
            for status, answer in op.get("responses", {}).items():
                answers[(op.get("operationId", ""), str(status))] = answer
    for link in LINKS:
        answer = answers.get((link.source, link.status))
        if answer is None:
            continue
        links = answer.setdefault("links", {})
        for target in link.targets:
            links[target] = {
                "operationId": target,
                "parameters": {"project": PROJECT, link.parameter: link.expression},
                "description": f"`{link.expression}` is the `{link.parameter}` of {target}.",
            }
    return document
