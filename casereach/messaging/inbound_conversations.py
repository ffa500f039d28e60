"""Conversations that hold a (gateway, number) pair between messages — SMS surveys (issue 20)
— plugged into inbound handling by the layer that owns them (messaging cannot import it).

A hook is called with the message's context and what happened:

- ``"message"``: a message no reserved word took, after a pending worker verification and
  before ``JOIN`` and the project keywords. A conversation that takes it (an answer to the
  current question) returns its action name; the message is then done.
- ``"help"``: a help word. A conversation that takes it (re-sending its current question)
  returns its action, and the project's help text is not sent.
- ``"stop"``: an opt-out word, after the opt-out was recorded and confirmed. Conversations of
  that pair end; the return value is not used.

Hooks run inside the message's transaction, in registration order; the first action wins.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from casereach.messaging.inbound_replies import Ctx

Happening = Literal["message", "help", "stop"]
ConversationHook = Callable[[Ctx, Happening], str | None]
CONVERSATION_HOOKS: list[ConversationHook] = []


def register_conversation_hook(hook: ConversationHook) -> None:
    if hook not in CONVERSATION_HOOKS:
        CONVERSATION_HOOKS.append(hook)


def run_conversations(ctx: Ctx, happening: Happening) -> str | None:
    """The action of the first conversation that took the message, else None."""
    for hook in CONVERSATION_HOOKS:
        action = hook(ctx, happening)
        if action:
            return action
    return None
