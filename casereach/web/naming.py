"""Names instead of raw ids in the text the UI shows.

A ``two_way_conflict`` warning of the API names the number's two-way holder in its
``holder_id`` field (and, for API clients, in its text: "held by contact 01a24a04-…"); the UI
shows that contact's name instead, linked to its page. The text is never parsed for the id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from django.urls import reverse
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString

from casereach.contacts.queries import contact_names
from casereach.contacts.rules import WARNING_TEXT
from casereach.projects.models import Project


def link_holders(project: Project, warnings: Iterable[Mapping[str, str]]) -> list[SafeString]:
    """Each warning's message as HTML; one whose ``holder_id`` is a contact of this project
    reads "… (held by <the contact's name>)", linked to the contact."""
    items = list(warnings)
    ids = {w["holder_id"] for w in items if w.get("holder_id")}
    names = contact_names(project, ids) if ids else {}
    out: list[SafeString] = []
    for w in items:
        holder = w.get("holder_id") or ""
        if holder not in names or w.get("code") not in WARNING_TEXT:
            out.append(escape(w["message"]))
            continue
        url = reverse("web:contact", args=[project.name, holder])
        out.append(
            format_html(
                '{} (held by <a href="{}">{}</a>)',
                WARNING_TEXT[w["code"]],
                url,
                names[holder] or holder,
            )
        )
    return out
