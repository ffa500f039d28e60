"""WhatsApp messages: the gateway a message goes through, its content (texts and/or a
template), the 24-hour customer-service window, and ``Message.payload``.

- **Gateway**: the contact's ``contact_backend_id`` when it names a WhatsApp gateway the project
  may use; else the gateway the send names; else the project's WhatsApp gateway — its own
  active one, else one shared with it, else a global one. Two at the same level and none
  named: ``NO_SUITABLE_GATEWAY`` (name one).
- **Content**: ``{"text": {lang: text}, "template": name, "params": [...]}`` — free text, a
  template, or both (the shorthand ``{lang: text}`` is the texts alone). The template's
  language is chosen when the message is queued, with the fallbacks of texts, among the
  gateway's APPROVED templates of that name; its params (placeholders rendered) are stored in
  ``Message.payload``.
- **The window**: the last inbound message of the number on the gateway, read from the
  message log (the partial index ``message_inbound_window``: inbound rows only, so no send
  and no other write pays for it), once per dispatched batch, at send time. Inside the
  window the text goes; outside it, the template; with none, ``WHATSAPP_OUTSIDE_WINDOW``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Max

from casereach.core import bulk
from casereach.core.errors import BadRequest
from casereach.gateways.base import Interactive, TemplateRef
from casereach.gateways.models import GatewayConfig
from casereach.gateways.queries import GatewayIndex
from casereach.gateways.registry import gateway_class
from casereach.messaging.content import pick_translation
from casereach.messaging.models import Message, WhatsAppTemplate

WINDOW = dt.timedelta(hours=24)
OUTSIDE_WINDOW = "WHATSAPP_OUTSIDE_WINDOW"
APPROVED = "APPROVED"
MAX_PARAMS = 20
MAX_TEXT = 4096  # WhatsApp's limit for a text message body
CONTENT_KEYS = frozenset({"text", "template", "params"})


def is_whatsapp(gateway_type: str) -> bool:
    """Whether gateways of this type send WhatsApp messages (their type's ``channel``)."""
    try:
        return gateway_class(gateway_type).channel == "whatsapp"
    except KeyError:
        return False


def channel_of(gateway_type: str) -> str:
    """The channel a gateway type sends on ("sms" for an unknown type)."""
    try:
        return str(gateway_class(gateway_type).channel)
    except KeyError:
        return "sms"


# -- content -------------------------------------------------------------------------------------


@dataclass
class WhatsAppContent:
    """What a WhatsApp message says: free texts (language → text), a template, its params
    (placeholders such as ``{case.name}`` allowed, rendered when queued)."""

    text: dict[str, str] = field(default_factory=dict)
    template: str = ""
    params: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"text": dict(self.text)}
        if self.template:
            out["template"] = self.template
            out["params"] = list(self.params)
        return out

    @property
    def blank(self) -> bool:
        return not self.template and all(not t.strip() for t in self.text.values())


def parse_content(raw: Any, what: str = "content.whatsapp") -> WhatsAppContent:
    """``raw`` checked: an object with ``text`` (language → text), ``template`` (a name) and
    ``params`` (strings), or the shorthand language → text. BadRequest naming the field."""
    if not isinstance(raw, Mapping):
        raise BadRequest(f"{what} must be an object")
    if not (set(raw) & CONTENT_KEYS):
        raw = {"text": dict(raw)}
    unknown = sorted(set(raw) - CONTENT_KEYS)
    if unknown:
        raise BadRequest(f"'{what}.{unknown[0]}' is not a valid field.")
    texts = raw.get("text", {})
    if not isinstance(texts, Mapping):
        raise BadRequest(f"{what}.text must be an object of language → text")
    out = WhatsAppContent()
    for lang, text in texts.items():
        if not isinstance(text, str):
            raise BadRequest(f"{what}.text[{lang}] must be a string")
        if len(text) > MAX_TEXT:
            raise BadRequest(f"{what}.text[{lang}] is longer than {MAX_TEXT} characters")
        out.text[str(lang)] = text
    template = raw.get("template", "")
    if not isinstance(template, str) or (
        template and not re.fullmatch(r"[a-z0-9_]{1,512}", template)
    ):
        raise BadRequest(f"{what}.template must be a template name (a-z, 0-9 and _)")
    params = raw.get("params", [])
    if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
        raise BadRequest(f"{what}.params must be a list of strings")
    if len(params) > MAX_PARAMS:
        raise BadRequest(f"{what}.params takes at most {MAX_PARAMS} values")
    if params and not template:
        raise BadRequest(f"{what}.params go with a template")
    out.template, out.params = template, list(params)
    return out


# -- templates at queue time ---------------------------------------------------------------------

# (gateway id, template name) → {language: (params, body)} of its APPROVED versions
Approved = dict[tuple[int, str], dict[str, tuple[int, str]]]


def approved_templates(pairs: Iterable[tuple[int, str]]) -> Approved:
    """The APPROVED, not removed, languages of each (gateway, template name): one query."""
    wanted = set(pairs)
    out: Approved = {pair: {} for pair in wanted}
    if not wanted:
        return out
    rows = WhatsAppTemplate.objects.filter(
        gateway_id__in={g for g, _ in wanted},
        name__in={n for _, n in wanted},
        status=APPROVED,
        removed_on__isnull=True,
    ).values_list("gateway_id", "name", "language", "params", "body")
    for gateway_id, name, language, params, body in rows:
        if (gateway_id, name) in out:
            out[(gateway_id, name)][language] = (params, body)
    return out


def template_language(
    languages: Iterable[str],
    contact_language: str | None,
    *,
    project_languages: list[str],
    fallback: str,
    alert_default: str | None = None,
) -> str | None:
    """The template language for a contact, with the fallbacks of texts: a template language
    matches a language equal to it or to its part before "_" ("en_US" serves "en")."""
    by_lang: dict[str, str] = {}
    for code in sorted(languages):
        by_lang.setdefault(code, code)
    for code in sorted(languages):
        by_lang.setdefault(code.split("_")[0], code)
    chosen, _ = pick_translation(
        by_lang,
        contact_language,
        project_languages=project_languages,
        fallback="project" if fallback == "untranslated" else fallback,
        alert_default=alert_default,
    )
    return chosen


def fill_body(body: str, params: Sequence[str]) -> str:
    """A template body with its {{n}} variables replaced (the text the message log shows)."""

    def one(m: re.Match[str]) -> str:
        n = int(m.group(1))
        return params[n - 1] if 1 <= n <= len(params) else m.group(0)

    return re.sub(r"\{\{\s*(\d+)\s*\}\}", one, body)


def template_payload(name: str, language: str, params: Sequence[str]) -> dict[str, Any]:
    return {"template": {"name": name, "language": language, "params": list(params)}}


# -- the gateway ---------------------------------------------------------------------------------


def whatsapp_gateway(
    project_id: int, index: GatewayIndex, override: str = ""
) -> tuple[GatewayConfig | None, str, str | None]:
    """(gateway, source, error code) for a WhatsApp message: the contact's override when it
    names a WhatsApp gateway of ``index``, else the project's one WhatsApp gateway (its own,
    else shared, else global); two at the same level → NO_SUITABLE_GATEWAY."""
    named = index.get(override.strip().lower()) if override.strip() else None
    if named is not None and is_whatsapp(named.type):
        return named, "contact", None
    tiers: dict[int, list[GatewayConfig]] = {}
    for gw in index.values():
        if is_whatsapp(gw.type):
            tier = 0 if gw.project_id == project_id else 2 if gw.project_id is None else 1
            tiers.setdefault(tier, []).append(gw)
    if not tiers:
        return None, "whatsapp", "NO_SUITABLE_GATEWAY"
    best = tiers[min(tiers)]
    if len({g.pk for g in best}) > 1:
        return None, "whatsapp", "NO_SUITABLE_GATEWAY"
    return best[0], "whatsapp", None


# -- the window, at send time --------------------------------------------------------------------


def last_inbound(pairs: Iterable[tuple[int, str]]) -> dict[tuple[int, str], dt.datetime]:
    """The time of each (gateway id, number)'s last inbound message: one grouped query per
    chunk of numbers (the partial index ``message_inbound_window``)."""
    wanted = set(pairs)
    out: dict[tuple[int, str], dt.datetime] = {}
    if not wanted:
        return out
    gateways = {g for g, _ in wanted}
    for chunk in bulk.in_chunks(sorted({n for _, n in wanted})):
        rows = (
            Message.objects.filter(
                bulk.is_in("phone_number", chunk), direction="in", gateway_id__in=gateways
            )
            .values_list("gateway_id", "phone_number")
            .annotate(last=Max("created_on"))
        )
        for gateway_id, number, last in rows:
            if (gateway_id, number) in wanted and last is not None:
                out[(gateway_id, number)] = last
    return out


def inside_window(last: dt.datetime | None, at: dt.datetime) -> bool:
    return last is not None and at - last < WINDOW


def outgoing_parts(
    payload: Mapping[str, Any] | None,
) -> tuple[TemplateRef | None, Interactive | None]:
    """What ``OutgoingMessage.template`` / ``.interactive`` get from a payload."""
    if not payload:
        return None, None
    tpl = payload.get("template")
    template = (
        TemplateRef(
            name=str(tpl["name"]),
            language=str(tpl["language"]),
            params=tuple(str(p) for p in tpl.get("params", [])),
        )
        if isinstance(tpl, Mapping)
        else None
    )
    raw = payload.get("interactive")
    interactive = None
    if isinstance(raw, Mapping):
        interactive = Interactive(
            kind="list" if raw.get("kind") == "list" else "buttons",
            body=str(raw.get("body", "")),
            options=tuple((str(o[0]), str(o[1])) for o in raw.get("options", [])),
            button=str(raw.get("button", "")),
        )
    return template, interactive
