"""Project keywords (SPEC 6): the one writer of ``Keyword``, and the handlers of a
message naming one — a keyword reply, a structured SMS updating the sender's case, and
``JOIN <project>`` self-registration from a number no contact holds.
"""

from __future__ import annotations

from django.db import transaction

from casereach.cases.actions import do_apply_case_changes
from casereach.cases.changes import CaseChange
from casereach.contacts.models import Contact
from casereach.core.errors import BadRequest, CasereachError, Conflict, NotFound
from casereach.core.timeutil import now
from casereach.messaging.inbound_replies import NOT_LOADED, Ctx, reply, scope, translated
from casereach.messaging.keyword_actions import REPLY, action_names, keyword_action
from casereach.messaging.keywords import (
    DEFAULT_JOIN_REPLY,
    HELP_WORDS,
    OPT_IN_WORDS,
    OPT_OUT_WORDS,
    SILENT_OPT_IN_WORDS,
    StructuredError,
    all_words,
    parse_field_specs,
    parse_structured,
)
from casereach.messaging.models import Keyword
from casereach.projects.actions import lock_project
from casereach.projects.models import Project
from casereach.projects.settings_schema import effective_settings

JOIN_WORD = "JOIN"


def find_keyword(ctx: Ctx, word: str) -> Keyword | None:
    """The project keyword ``word`` of the sender's project (looked up with the sender when
    it could be)."""
    assert ctx.project is not None and ctx.entry is not None
    if ctx.keyword is not NOT_LOADED and ctx.project.pk == ctx.entry.project_id:
        return ctx.keyword
    return Keyword.objects.filter(project=ctx.project, keyword=word).first()


# -- handling ------------------------------------------------------------------------------------


def run_keyword(ctx: Ctx, kw: Keyword, rest: str) -> str:
    assert ctx.project is not None and ctx.contact is not None
    name = kw.keyword
    if kw.action != REPLY:
        action = keyword_action(kw.action)
        if action is not None:
            return action.run(ctx, kw, rest)
        ctx.notes.append(f"{name}: the action {kw.action!r} is not available")
        return f"keyword_error:{name}"
    fields = parse_field_specs(kw.fields)
    if fields:
        try:
            props = parse_structured(rest, fields)
            if ctx.contact.contact_type != Contact.CASE:
                raise StructuredError(f"{name} updates a case; this number belongs to a worker")
            if props:
                do_apply_case_changes(
                    ctx.project,
                    [
                        CaseChange(
                            op="update",
                            case_id=ctx.contact.contact_id,
                            properties=props,
                            user=f"sms:{ctx.msg.phone_number}",
                        )
                    ],
                    single=True,
                    write_back=True,
                )
                ctx.notes.append("updated " + ", ".join(sorted(props)))
        except (StructuredError, CasereachError) as exc:
            problem = exc.message if isinstance(exc, CasereachError) else str(exc)
            ctx.notes.append(f"structured SMS refused: {problem}")
            prefix = translated(ctx, kw.error_reply) or "Error:"
            reply(ctx, "keyword", {"*": f"{prefix} {problem}"}, None, source_id=name)
            return f"keyword_error:{name}"
    if any(isinstance(t, str) and t.strip() for t in kw.reply.values()):  # stored: may be bad
        reply(ctx, "keyword", kw.reply, None, source_id=name)
    return f"keyword:{name}"


def self_register(ctx: Ctx, rest: str) -> bool:
    target_name = rest.strip().lower()
    target = Project.objects.filter(name=target_name).first() if target_name else None
    if target is None:
        ctx.notes.append(f"JOIN: no project named {rest.strip()[:50]!r}")
        return False
    served = scope(ctx.gw, ctx.as_project)
    if served is not None and target.pk not in served:
        ctx.notes.append("JOIN: this gateway does not serve that project")
        return False
    s = effective_settings(target.settings)
    reg = s.self_registration
    if not reg.enabled:
        ctx.notes.append("JOIN: the project does not allow self-registration")
        return False
    number = ctx.msg.phone_number
    result = do_apply_case_changes(
        target,
        [
            CaseChange(
                op="create",
                case_type=reg.case_type,
                case_name=f"+{number}",
                owner_id=reg.owner_id or "",
                properties={
                    "contact_phone_number": number,
                    "contact_phone_number_is_verified": "yes",
                },
                user=f"sms:{number}",
            )
        ],
        single=True,
        write_back=True,
    )
    case = result.cases[0] if result.cases else None
    ctx.project = lock_project(target.pk)
    ctx.settings = s
    ctx.msg.project = ctx.project
    if case is not None:
        ctx.contact = Contact.objects.filter(contact_id=case.case_id).first()
        if ctx.contact is not None:  # the message is written at the end, with these
            ctx.msg.contact_id, ctx.msg.contact_type = ctx.contact.contact_id, "case"
    reply(ctx, "self_registration", reg.welcome_text, DEFAULT_JOIN_REPLY)
    return True


# -- the writer ----------------------------------------------------------------------------------

KEYWORD_FIELDS = frozenset(
    {"keyword", "description", "reply", "fields", "error_reply", "action", "survey_id"}
)
MAX_REPLY_CHARS = 1600
MAX_ID = 2**63 - 1  # a larger id cannot be looked up (a bigint column)


def _texts(value: object, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be an object of language → text")
    out: dict[str, str] = {}
    for lang, text in value.items():
        if not isinstance(text, str):
            raise BadRequest(f"{what}[{lang}] must be a string")
        if len(text) > MAX_REPLY_CHARS:
            raise BadRequest(f"{what}[{lang}] is longer than {MAX_REPLY_CHARS} characters")
        out[str(lang)] = text
    return out


def _reserved_for(project: Project) -> set[str]:
    s = effective_settings(project.settings)
    return {
        *OPT_OUT_WORDS,
        *OPT_IN_WORDS,
        *SILENT_OPT_IN_WORDS,
        *HELP_WORDS,
        JOIN_WORD,
        *all_words(s.opt_out_keywords),
        *all_words(s.opt_in_keywords),
        *all_words(s.help_keywords),
    }


def _apply_keyword(project: Project, kw: Keyword, data: object, *, creating: bool) -> None:
    if not isinstance(data, dict):
        raise BadRequest("Payload must be a single JSON object")
    unknown = sorted(set(data) - KEYWORD_FIELDS)
    if unknown:
        raise BadRequest(f"unknown fields: {', '.join(unknown)}")
    if creating or "keyword" in data:
        word = data.get("keyword")
        if not isinstance(word, str) or not word.strip() or len(word.split()) != 1:
            raise BadRequest("keyword must be one word")
        word = word.strip().upper()
        if len(word) > 64:
            raise BadRequest("keyword is longer than 64 characters")
        if word in _reserved_for(project):
            raise BadRequest(f"{word} is reserved (opt-out, opt-in, help or JOIN)")
        kw.keyword = word
    if "description" in data:
        desc = data["description"]
        if not isinstance(desc, str) or len(desc) > 500:
            raise BadRequest("description must be a string of at most 500 characters")
        kw.description = desc
    if "reply" in data:
        kw.reply = _texts(data["reply"], "reply")
    if "error_reply" in data:
        kw.error_reply = _texts(data["error_reply"], "error_reply")
    if "fields" in data:
        try:
            specs = parse_field_specs(data["fields"])
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        kw.fields = [
            {
                "property": f.prop,
                "type": f.type,
                "choices": list(f.choices),
                "required": f.required,
                "label": f.label,
            }
            for f in specs
        ]
    _apply_action(project, kw, data, creating=creating)


def _apply_action(
    project: Project, kw: Keyword, data: dict[str, object], *, creating: bool
) -> None:
    """``action`` and its ``survey_id``; a target is checked (``validate``) when either is
    given, so editing another field of a keyword whose survey was since deactivated works."""
    if "action" in data:
        name = data["action"]
        if name not in action_names():
            raise BadRequest(f"action must be one of: {', '.join(action_names())}")
        assert isinstance(name, str)
        kw.action = name
    if "survey_id" in data:
        target = data["survey_id"]
        if target is not None and (isinstance(target, bool) or not isinstance(target, int)):
            raise BadRequest("survey_id must be a survey's id (an integer) or null")
        if target is not None and not 0 < target <= MAX_ID:
            raise BadRequest(f"survey_id: survey {target} not found in this project")
        kw.survey_id = target
    if kw.action == REPLY:
        if "survey_id" in data and kw.survey_id is not None:
            raise BadRequest('survey_id is only for "action": "survey"')
        kw.survey_id = None
        if not kw.fields and not any(t.strip() for t in kw.reply.values()):
            raise BadRequest("a keyword needs a reply, fields to update, or both")
        return
    if kw.fields or any(t.strip() for t in kw.reply.values()):
        raise BadRequest(
            f'a keyword with "action": "{kw.action}" has no reply and no fields'
            ' (its first message is the reply): send "reply": {} and "fields": []'
        )
    if kw.survey_id is None:
        raise BadRequest(f'"action": "{kw.action}" needs survey_id')
    action = keyword_action(kw.action)
    if action is not None and (creating or "action" in data or "survey_id" in data):
        problem = action.validate(project, kw.survey_id)
        if problem:
            raise BadRequest(f"survey_id: {problem}")


def do_save_keyword(project: Project, data: object, keyword_id: int | None = None) -> Keyword:
    with transaction.atomic():
        if keyword_id is None:
            kw = Keyword(project=project, created_on=now())
        else:
            found = Keyword.objects.select_for_update().filter(project=project, pk=keyword_id)
            kw_or_none = found.first()
            if kw_or_none is None:
                raise NotFound(f"keyword {keyword_id} not found")
            kw = kw_or_none
        _apply_keyword(project, kw, data, creating=keyword_id is None)
        clash = Keyword.objects.filter(project=project, keyword=kw.keyword)
        if kw.pk is not None:
            clash = clash.exclude(pk=kw.pk)
        if clash.exists():
            raise Conflict(f"the keyword {kw.keyword} already exists")
        kw.updated_on = now()
        kw.save()
    return kw


def do_delete_keyword(project: Project, keyword_id: int) -> None:
    deleted, _ = Keyword.objects.filter(project=project, pk=keyword_id).delete()
    if not deleted:
        raise NotFound(f"keyword {keyword_id} not found")
