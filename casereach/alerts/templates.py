"""Alert message templates: a tiny grammar of our own, checked when saved, rendered as data.

Pure: no Django, no database. A template is plain text with placeholders, and nothing else::

    {case.name}                 the case's name
    {case.<property>}           a case property
    {case.owner.name}           the name of the case's owner
    {case.parent.name}          the parent case's name
    {case.parent.<property>}    a property of the parent case
    {recipient.name}            the name of the person the message goes to

A ``<property>`` is 1-64 ASCII letters, digits, ``_`` and ``-``, starting with a letter or
``_`` (case properties are XML-name-like). Names are case-sensitive. Any name starting with
``__`` is refused outright, whatever follows.

A placeholder made of such names and dots that names nothing above (``{case.host.x}``,
``{recipient.phone_number}``, ``{case.owner}``) is an *unknown* placeholder: it is accepted,
renders ``(?)`` as CommCare's do (SPEC 5), and carries a hint on what is available
(:func:`unknown_placeholders` lists them for the API).

**Braces: there is no escaping.** Every ``{`` must open one of the placeholders above and the
next brace after it must be the ``}`` that closes it; every ``}`` must close one. A lone brace,
a doubled brace (``{{`` / ``}}``), a nested one, or an unclosed one is an error. So
``{{7*7}}`` is refused, and a template can never contain a literal brace. (This differs on
purpose from the ``http`` gateway's parameter templates, where ``{{`` is a literal brace:
alert texts are typed by programme staff, and "refuse anything brace-like" is the rule that
cannot be misread.)

Templates are never code: no ``str.format``, ``string.Template``, ``eval`` or template engine
is involved. Parsing happens once (at save time via :func:`validate_template` /
:func:`validate_content`, and again when sending, cached); :func:`render` then only looks
values up in a :class:`RenderContext` and joins strings. Substituted values are inserted
literally and never parsed again, so a property value of ``{case.name}`` stays that text.

A placeholder whose value is unknown (missing, ``None``, empty or whitespace-only; no owner;
no parent) renders as :data:`UNKNOWN`, ``(?)``.

Errors are :class:`TemplateError` (a ``ValueError``) whose message names the offending text
and its 1-based character position, e.g. ``unknown placeholder {case.__class__} at 12: names
starting with '__' are not allowed``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from casereach.core.segments import analyse

MAX_TEMPLATE_CHARS = 10_000
MAX_NAME_CHARS = 64
UNKNOWN = "(?)"
SAMPLE_VALUE = "x" * 10  # how a placeholder is counted by estimate()

Scope = Literal["case", "parent", "owner", "recipient", "unknown"]

ALLOWED = (
    "{case.name}, {case.<property>}, {case.owner.name}, {case.parent.name}, "
    "{case.parent.<property>}, {recipient.name}"
)

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*", re.ASCII)
_BODY_CHARS = re.compile(r"[A-Za-z0-9_.-]*", re.ASCII)
_RESERVED = frozenset({"owner", "parent"})
_SNIPPET_MAX = 60


class TemplateError(ValueError):
    """A template (or a content map) that cannot be saved.

    ``position`` is the 1-based character position of the problem in the template, or
    ``None`` when the problem is not in one place (e.g. an empty content map).
    """

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.position = position

    def prefixed(self, where: str) -> TemplateError:
        """The same error with ``where: `` in front of its message."""
        return TemplateError(f"{where}: {self.message}", self.position)


def _name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid property name, or ``None`` when it is."""
    if name.startswith("__"):
        return f"names starting with '__' are not allowed ({name!r})"
    if not _NAME.fullmatch(name):
        return (
            f"{name!r} is not a valid name: use letters, digits, '_' and '-', "
            "starting with a letter or '_'"
        )
    if len(name) > MAX_NAME_CHARS:
        return f"property names are at most {MAX_NAME_CHARS} characters ({len(name)} given)"
    return None


@dataclass(frozen=True)
class Placeholder:
    """One placeholder: ``scope`` says whose value, ``name`` which (a property, or ``"name"``).

    ``case``/``parent`` take ``"name"`` or a property name; ``owner`` and ``recipient`` only
    ``"name"``. Constructing anything else raises :class:`TemplateError`, so a pre-parsed
    template handed to :func:`render` can only ever contain valid placeholders.
    """

    scope: Scope
    name: str
    hint: str = ""  # for an unknown placeholder: what is available instead

    def __post_init__(self) -> None:
        scope: object = self.scope
        name: object = self.name
        if scope == "unknown":  # a well-formed name we have no value for: renders (?)
            if not isinstance(name, str) or not _BODY_CHARS.fullmatch(name):
                raise TemplateError("an unknown placeholder is a dotted name")
            return
        if scope not in ("case", "parent", "owner", "recipient"):
            raise TemplateError(f"unknown placeholder scope {scope!r}")
        if not isinstance(name, str):
            raise TemplateError(f"placeholder name must be text, not {type(name).__name__}")
        if scope in ("owner", "recipient"):
            if name != "name":
                raise TemplateError(f"only {{{self._prefix()}.name}} is available")
            return
        problem = _name_problem(name)
        if problem is None and name in _RESERVED:
            problem = f"{name!r} is a reserved word, not a property name"
        if problem is not None:
            raise TemplateError(f"invalid placeholder {{{self._prefix()}.{name}}}: {problem}")

    def _prefix(self) -> str:
        return {
            "case": "case",
            "parent": "case.parent",
            "owner": "case.owner",
            "recipient": "recipient",
        }[self.scope]

    @property
    def text(self) -> str:
        """The placeholder as written in a template, e.g. ``{case.parent.village}``."""
        if self.scope == "unknown":
            return f"{{{self.name}}}"
        return f"{{{self._prefix()}.{self.name}}}"

    def __str__(self) -> str:
        return self.text


def _show(snippet: str) -> str:
    """``snippet`` for an error message: control characters escaped, long ones shortened."""
    if len(snippet) > _SNIPPET_MAX:
        snippet = snippet[: _SNIPPET_MAX - 1] + "…"
    if snippet.isprintable():
        return snippet
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in snippet
    )


def _body_problem(body: str) -> str | Placeholder:
    """The placeholder that ``body`` (the text between the braces) names, or why it is none."""
    if not body:
        return "it is empty; write e.g. {case.name}"
    if not _BODY_CHARS.fullmatch(body):
        if "!" in body or ":" in body:
            return "conversions and format specs ('!', ':') are not allowed"
        if any(ch.isspace() for ch in body):
            return "spaces and line breaks are not allowed inside a placeholder"
        if "[" in body or "]" in body:
            return "indexing ('[', ']') is not allowed"
        return "only letters, digits, '_', '-' and '.' may appear in a placeholder"
    parts = body.split(".")
    for part in parts:
        if not part:
            return "empty name between dots"
        problem = _name_problem(part)
        if problem is not None:
            return problem
    # Well-formed from here on: a name we do not know renders (?), as in CommCare (SPEC 5),
    # with a hint on what is available.
    known = _known_placeholder(parts)
    return Placeholder("unknown", body, hint=known) if isinstance(known, str) else known


def _known_placeholder(parts: list[str]) -> str | Placeholder:
    """The placeholder that well-formed dotted ``parts`` name, or what is available instead."""
    head, rest = parts[0], parts[1:]
    if head == "recipient":
        if rest == ["name"]:
            return Placeholder("recipient", "name")
        return "only {recipient.name} is available for the recipient"
    if head != "case":
        return f"placeholders start with 'case.' or 'recipient.'; allowed: {ALLOWED}"
    if not rest:
        return "name what to show, e.g. {case.name} or {case.<property>}"
    first = rest[0]
    if first == "owner":
        if rest == ["owner", "name"]:
            return Placeholder("owner", "name")
        return "only {case.owner.name} is available for the owner"
    if first == "parent":
        if len(rest) == 1:
            return "write {case.parent.name} or {case.parent.<property>}"
        if rest[1] == "parent" or len(rest) > 2:
            return "only one level of parent is available: {case.parent.<property>}"
        if rest[1] == "owner":
            return "the parent case's owner is not available"
        return Placeholder("parent", rest[1])
    if len(rest) > 1:
        return "case properties have no sub-properties; write {case.<property>}"
    return Placeholder("case", first)


def _brace_run(text: str, start: int, end: int) -> str:
    """``text`` from the ``{`` at ``start`` through the ``}`` at ``end`` and any ``}`` after it."""
    stop = end + 1
    while stop < len(text) and text[stop] == "}":
        stop += 1
    return text[start:stop]


@lru_cache(maxsize=512)
def _parse_cached(text: str) -> tuple[str | Placeholder, ...]:
    if len(text) > MAX_TEMPLATE_CHARS:
        raise TemplateError(
            f"template is too long: {len(text):,} characters, at most {MAX_TEMPLATE_CHARS:,} "
            f"allowed (the excess starts at {MAX_TEMPLATE_CHARS + 1})",
            MAX_TEMPLATE_CHARS + 1,
        )
    parts: list[str | Placeholder] = []
    pos = 0
    size = len(text)
    while pos < size:
        opening = text.find("{", pos)
        closing = text.find("}", pos)
        if closing != -1 and (opening == -1 or closing < opening):
            raise TemplateError(
                f"unmatched '}}' at {closing + 1}: every '}}' must close a placeholder "
                "(there is no brace escaping; literal braces are not allowed)",
                closing + 1,
            )
        if opening == -1:
            parts.append(text[pos:])
            break
        if opening > pos:
            parts.append(text[pos:opening])
        where = opening + 1
        end = closing  # the first '}' after pos is also the first after the '{'
        if end == -1:
            raise TemplateError(
                f"unclosed placeholder {_show(text[opening:])} at {where}: missing '}}' "
                "(there is no brace escaping; literal braces are not allowed)",
                where,
            )
        if text.find("{", opening + 1, end) != -1:
            snippet = _show(_brace_run(text, opening, end))
            raise TemplateError(
                f"unknown placeholder {snippet} at {where}: a placeholder cannot contain '{{' "
                "(there is no brace escaping; '{{' and '}}' are not literal braces)",
                where,
            )
        found = _body_problem(text[opening + 1 : end])
        if isinstance(found, str):
            snippet = _show(text[opening : end + 1])
            raise TemplateError(f"unknown placeholder {snippet} at {where}: {found}", where)
        parts.append(found)
        pos = end + 1
    return tuple(parts)


def parse_template(text: str) -> list[str | Placeholder]:
    """Literal strings and placeholders in order; raises TemplateError.

    Adjacent literal text is one string; an empty template gives ``[]``. Templates longer
    than 10,000 characters are refused here too, so nothing ever parses unbounded input.
    """
    return list(_parse_cached(text))


def validate_template(text: str) -> list[Placeholder]:
    """The placeholders used; raises TemplateError (also for > 10,000 characters)."""
    return [part for part in _parse_cached(text) if isinstance(part, Placeholder)]


def validate_content(
    content: Mapping[str, str], *, what: str, required: bool = True
) -> dict[str, list[Placeholder]]:
    """Every language's template checked; TemplateError messages are prefixed by what[lang].

    E.g. ``content.sms[sw]: unknown placeholder {case.__class__} at 12: ...``. Raises
    TemplateError when the map is empty or every text is blank (a single blank language
    among others is allowed; see :func:`blank_languages`). Languages are checked in the
    map's order and the first error is raised.

    ``required=False`` is for content that is stored but not sent (e.g. the SMS texts of an
    email alert): an empty or all-blank map is then allowed, but every text present is still
    checked exactly as above.
    """
    if not content and required:
        raise TemplateError(f"{what}: at least one language's text is required")
    checked: dict[str, list[Placeholder]] = {}
    for lang, text in content.items():
        value: object = text
        if not isinstance(value, str):
            raise TemplateError(f"{what}[{lang}]: must be text, not {type(value).__name__}")
        try:
            checked[lang] = validate_template(value)
        except TemplateError as exc:
            raise exc.prefixed(f"{what}[{lang}]") from None
    if required and not any(text.strip() for text in content.values()):
        raise TemplateError(f"{what}: every language's text is blank")
    return checked


def unknown_placeholders(content: Mapping[str, str]) -> list[Placeholder]:
    """The placeholders across languages that name nothing we know (each renders ``(?)``),
    each once, in order of appearance; raises TemplateError for an invalid template."""
    seen: dict[str, Placeholder] = {}
    for text in content.values():
        for part in validate_template(text):
            if part.scope == "unknown":
                seen.setdefault(part.name, part)
    return list(seen.values())


def blank_languages(content: Mapping[str, str]) -> list[str]:
    """The languages whose text is empty or whitespace-only, in the map's order."""
    return [lang for lang, text in content.items() if not text.strip()]


@dataclass(frozen=True)
class RenderContext:
    """The values a message can show.

    A parent exists when ``parent_properties`` is not ``None`` (an empty mapping is a parent
    with no properties fetched) or ``parent_name`` is set; with neither, every parent
    placeholder renders as ``(?)``.
    """

    case_name: str | None = None
    case_properties: Mapping[str, str] = field(default_factory=dict)
    owner_name: str | None = None
    parent_name: str | None = None
    parent_properties: Mapping[str, str] | None = None  # None = no parent
    recipient_name: str | None = None


def _shown(value: object) -> str:
    """``value`` as message text, or ``(?)`` when it is missing or blank."""
    if isinstance(value, str):
        return value if value.strip() else UNKNOWN
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)  # a JSON number stored as a property
    return UNKNOWN


def _value(part: Placeholder, ctx: RenderContext) -> str:
    scope, name = part.scope, part.name
    if scope == "case":
        if name == "name":
            return _shown(ctx.case_name)
        return _shown(ctx.case_properties.get(name))
    if scope == "parent":
        if name == "name":
            return _shown(ctx.parent_name)
        if ctx.parent_properties is None:
            return UNKNOWN
        return _shown(ctx.parent_properties.get(name))
    if scope == "owner":
        return _shown(ctx.owner_name)
    if scope == "recipient":
        return _shown(ctx.recipient_name)
    return UNKNOWN  # a name we have no value for


def render(template: str | Sequence[str | Placeholder], ctx: RenderContext) -> str:
    """Substitute; missing or empty values → "(?)".

    Pass the result of :func:`parse_template` to render many messages without parsing again
    (a ``str`` template is parsed through a small cache, and raises TemplateError when
    invalid). Values are inserted as they are, never parsed or evaluated.
    """
    parts = _parse_cached(template) if isinstance(template, str) else template
    return "".join(part if isinstance(part, str) else _value(part, ctx) for part in parts)


def needed_properties(content: Mapping[str, str]) -> tuple[set[str], set[str], bool, bool]:
    """(case properties, parent properties, needs owner name, needs parent) across languages.

    So the caller can fetch only what is needed, in bulk. The case's and the parent's own
    names are not properties and are not listed (``{case.parent.name}`` alone still sets
    "needs parent"); the recipient's name is always known. Raises TemplateError for an
    invalid template.
    """
    case_props: set[str] = set()
    parent_props: set[str] = set()
    needs_owner = False
    needs_parent = False
    for lang, text in content.items():
        try:
            used = validate_template(text)
        except TemplateError as exc:
            raise exc.prefixed(f"content[{lang}]") from None
        for part in used:
            if part.scope == "case" and part.name != "name":
                case_props.add(part.name)
            elif part.scope == "parent":
                needs_parent = True
                if part.name != "name":
                    parent_props.add(part.name)
            elif part.scope == "owner":
                needs_owner = True
    return case_props, parent_props, needs_owner, needs_parent


@dataclass(frozen=True)
class Estimate:
    """Size of one language's message with every placeholder counted as 10 GSM characters.

    ``characters`` is in the encoding's units, as phones count them: GSM septets (an
    extension character such as ``€`` counts 2) or UTF-16 code units (an emoji counts 2).
    Real values may be longer, or non-GSM (a name in Ge'ez script makes the message UCS-2).
    """

    language: str
    characters: int
    encoding: str  # "GSM" or "UCS2"
    segments: int
    placeholders: int


def estimate(content: Mapping[str, str]) -> list[Estimate]:
    """Per language, in the map's order: encoding and segments of the template, with each
    placeholder counted as ``xxxxxxxxxx``. Raises TemplateError (prefixed ``content[lang]``)
    for an invalid template; a blank text gives 0 characters and 0 segments."""
    result: list[Estimate] = []
    for lang, text in content.items():
        try:
            parts = _parse_cached(text)
        except TemplateError as exc:
            raise exc.prefixed(f"content[{lang}]") from None
        sample = "".join(part if isinstance(part, str) else SAMPLE_VALUE for part in parts)
        info = analyse(sample)
        count = sum(1 for part in parts if isinstance(part, Placeholder))
        result.append(Estimate(lang, info.units, info.encoding, info.segments, count))
    return result
