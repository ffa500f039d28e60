"""What a project keyword can do beyond replying, plugged in by the layer that owns it
(messaging cannot import it): today ``"survey"``, starting an SMS survey for the sender
(registered by ``SurveysConfig.ready``, code in ``surveys.keyword_start``).

An action comes with two functions:

- ``validate(project, target_id)``: called when a keyword naming the action is saved, inside
  the writer's transaction; the problem (the keyword is refused with a 400, nothing stored)
  or None. It must find the target in ``project`` only and may lock it, so that deleting the
  target and saving a keyword naming it are serialised.
- ``run(ctx, keyword, rest)``: called for an inbound message whose first word is the
  keyword, inside the message's transaction (so it is applied once and a crash loses
  nothing); returns the message's ``inbound_action``. It replies through ``ctx`` itself.

``"reply"`` is the built-in action (the keyword's reply and structured SMS) and is not in the
registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from casereach.messaging.inbound_replies import Ctx
from casereach.messaging.models import Keyword
from casereach.projects.models import Project

REPLY = "reply"


@dataclass(frozen=True)
class KeywordAction:
    validate: Callable[[Project, int], str | None]
    run: Callable[[Ctx, Keyword, str], str]


KEYWORD_ACTIONS: dict[str, KeywordAction] = {}


def register_keyword_action(
    name: str,
    validate: Callable[[Project, int], str | None],
    run: Callable[[Ctx, Keyword, str], str],
) -> None:
    KEYWORD_ACTIONS[name] = KeywordAction(validate, run)


def keyword_action(name: str) -> KeywordAction | None:
    return KEYWORD_ACTIONS.get(name)


def action_names() -> list[str]:
    """The actions a keyword may have: ``reply`` and the registered ones."""
    return [REPLY, *sorted(KEYWORD_ACTIONS)]
