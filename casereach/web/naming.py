"""Names instead of raw ids in the text the UI shows.

The API's warnings name a two-way holder by its contact id ("held by contact 01a24a04-…");
the UI shows that contact's name instead, linked to its page.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from django.urls import reverse
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

from casereach.contacts.queries import contact_names
from casereach.projects.models import Project

HELD_BY = re.compile(r"held by contact ([^\s()]+)")


def link_holders(project: Project, messages: Iterable[str]) -> list[SafeString]:
    """Each message as HTML, with every "held by contact <id>" of this project turned into
    "held by <the contact's name>", linked to the contact."""
    texts = list(messages)
    ids = {m.group(1) for text in texts for m in HELD_BY.finditer(text)}
    names = contact_names(project, ids) if ids else {}
    out: list[SafeString] = []
    for text in texts:
        parts: list[str] = []
        last = 0
        for match in HELD_BY.finditer(text):
            contact_id = match.group(1)
            if contact_id not in names:
                continue
            parts.append(escape(text[last : match.start()]))
            url = reverse("web:contact", args=[project.name, contact_id])
            name = names[contact_id] or contact_id
            parts.append(format_html('held by <a href="{}">{}</a>', url, name))
            last = match.end()
        parts.append(escape(text[last:]))
        out.append(mark_safe("".join(parts)))  # noqa: S308 (every part is escaped above)
    return out
