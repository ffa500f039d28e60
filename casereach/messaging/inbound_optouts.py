"""The reserved words of an inbound SMS (SPEC 6.3): opt-out, opt-in, help.

They apply for every gateway and every sender, before anything else; ``YES`` opts in
silently and lets the message go on. The opt-out list itself is written by
``messaging.optouts`` only; this module decides and replies.
"""

from __future__ import annotations

from casereach.messaging.inbound_conversations import run_conversations
from casereach.messaging.inbound_replies import Ctx, reply
from casereach.messaging.keywords import (
    DEFAULT_HELP_REPLY,
    DEFAULT_OPT_IN_REPLY,
    DEFAULT_OPT_OUT_REPLY,
    all_words,
    reserved_word,
)
from casereach.messaging.optouts import do_person_opt_in, do_person_opt_out, gateway_scope

SILENT_PREFIX = "opt_in_silent+"


def handle_reserved(ctx: Ctx) -> tuple[str | None, str]:
    """(action, prefix): the action when a reserved word took the message (``opt_out``,
    ``opt_in``, ``help``), else None and the prefix of the action that will (``YES``: the
    silent opt-in)."""
    s = ctx.settings
    word = reserved_word(
        ctx.msg.text,
        opt_out=all_words(s.opt_out_keywords),
        opt_in=all_words(s.opt_in_keywords),
        help_words=all_words(s.help_keywords),
    )
    number = ctx.msg.phone_number
    source = f"keyword:{ctx.gw.name}"
    if word == "opt_out":
        do_person_opt_out(number, gateway_scope(ctx.gw, ctx.as_project), source=source)
        reply(ctx, "opt_out", s.opt_out_reply, DEFAULT_OPT_OUT_REPLY, allow_opted_out=True)
        run_conversations(ctx, "stop")
        return "opt_out", ""
    if word == "opt_in":
        do_person_opt_in(number, gateway_scope(ctx.gw, ctx.as_project), source=source)
        reply(ctx, "opt_in", s.opt_in_reply, DEFAULT_OPT_IN_REPLY)
        return "opt_in", ""
    if word == "help":
        action = run_conversations(ctx, "help")
        if action:
            return action, ""
        reply(ctx, "help", s.help_text, DEFAULT_HELP_REPLY, allow_opted_out=True)
        return "help", ""
    if word == "opt_in_silent":
        if do_person_opt_in(number, gateway_scope(ctx.gw, ctx.as_project), source=source):
            ctx.notes.append("opted in by YES")
        return None, SILENT_PREFIX
    return None, ""
