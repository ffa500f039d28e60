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

A hook may come with a **probe**: a name and one SQL scalar subquery taking the gateway id and
the sender's number (``%s`` twice, in that order), whose value says which conversation holds
the pair (NULL: none). The probe is read in the statement that finds the sender, so that the
common path costs no statement more; its value is in ``ctx.held[name]``, and a hook whose probe
found nothing is not called for ``"message"`` or ``"help"`` (it is for ``"stop"``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

from casereach.messaging.inbound_replies import Ctx

Happening = Literal["message", "help", "stop"]
ConversationHook = Callable[[Ctx, Happening], str | None]
CONVERSATION_HOOKS: list[ConversationHook] = []
PROBES: dict[ConversationHook, tuple[str, str]] = {}


def register_conversation_hook(
    hook: ConversationHook, probe: tuple[str, str] | None = None
) -> None:
    if hook not in CONVERSATION_HOOKS:
        CONVERSATION_HOOKS.append(hook)
    if probe is not None:
        PROBES[hook] = probe


def active_probes() -> tuple[tuple[str, str], ...]:
    """(name, SQL) of the registered hooks' probes, in registration order."""
    return tuple(PROBES[hook] for hook in CONVERSATION_HOOKS if hook in PROBES)


def holder(held: Mapping[str, Any]) -> str | None:
    """The probe name of the one conversation holding the pair, by the probes read with the
    sender (``held``); None when none or several do, or a registered hook has no probe (it
    would be asked whatever the probes say)."""
    if any(hook not in PROBES for hook in CONVERSATION_HOOKS):
        return None
    found = [name for name, _ in active_probes() if held.get(name) is not None]
    return found[0] if len(found) == 1 else None


def run_conversations(ctx: Ctx, happening: Happening) -> str | None:
    """The action of the first conversation that took the message, else None."""
    for hook in CONVERSATION_HOOKS:
        probe = PROBES.get(hook)
        if (
            probe is not None
            and happening != "stop"
            and probe[0] in ctx.held
            and ctx.held[probe[0]] is None
        ):
            continue  # the probe found no conversation of this hook holding the pair
        action = hook(ctx, happening)
        if action:
            return action
    return None
