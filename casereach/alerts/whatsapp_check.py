"""A WhatsApp alert's template must be APPROVED, on the gateway it would go through, in every
language the alert needs, before the alert may be activated; the dry run lists what is not.

The languages an alert needs: those its WhatsApp texts are written in (not "*"), its default
language and the project's default language (where the fallbacks land) — at least one.
A template language serves a language equal to it or to its part before "_" ("en_US" → "en").
The gateway is the project's WhatsApp gateway (``messaging.whatsapp.whatsapp_gateway``); a
contact whose ``contact_backend_id`` names another WhatsApp gateway is checked when sending.
"""

from __future__ import annotations

from typing import Any

from casereach.alerts.spec import AlertSpec
from casereach.core.errors import BadRequest
from casereach.gateways.queries import gateway_index, project_settings
from casereach.messaging.whatsapp import approved_templates, template_language, whatsapp_gateway
from casereach.projects.models import Project


def needed_languages(project: Project, spec: AlertSpec) -> list[str]:
    wa = spec.content.whatsapp
    settings = project_settings(project)
    wanted = [lang for lang in (wa.text if wa else {}) if lang != "*"]
    wanted += [spec.default_language or "", *(settings.languages[:1] or [])]
    out: list[str] = []
    for lang in wanted:
        if lang and lang not in out:
            out.append(lang)
    return out or ["en"]


def template_problems(project: Project, spec: AlertSpec) -> list[dict[str, Any]]:
    """What keeps a WhatsApp alert's template from being sent: [] when nothing does (or the
    alert names no template). Each: template, language (None: any), problem."""
    wa = spec.content.whatsapp
    if spec.channel != "whatsapp" or wa is None or not wa.template:
        return []
    gw, _, _ = whatsapp_gateway(project.pk, gateway_index(project))
    if gw is None:
        return [
            {
                "template": wa.template,
                "language": None,
                "problem": "the project has no single WhatsApp gateway (NO_SUITABLE_GATEWAY)",
            }
        ]
    approved = approved_templates([(gw.pk, wa.template)])[(gw.pk, wa.template)]
    return [
        {
            "template": wa.template,
            "language": lang,
            "problem": f"not APPROVED in language '{lang}' on gateway '{gw.name}' "
            "(sync the templates, or wait for the provider's approval)",
        }
        for lang in needed_languages(project, spec)
        if template_language(approved, lang, project_languages=[], fallback="none") is None
    ]


def check_whatsapp_templates(project: Project, spec: AlertSpec) -> None:
    """BadRequest (400) naming the template and language when the alert may not be activated."""
    problems = template_problems(project, spec)
    if problems:
        first = problems[0]
        raise BadRequest(
            f"cannot activate: content.whatsapp.template '{first['template']}': {first['problem']}",
            {"whatsapp_templates": problems},
        )
