"""An alert's reply settings (issue 20): ``expect_reply_within_minutes`` and ``no_reply``,
the same shapes as a survey's settings (pure: no database). ``alerts.spec`` holds them;
``alerts.replywait`` acts on them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from casereach.alerts.templates import TemplateError, validate_content
from casereach.cases.changes import valid_xml_name


class NoReply(BaseModel):
    """What happens when ``expect_reply_within_minutes`` passes with no reply (the survey
    setting's shape; ``alerts.replywait`` runs it). ``set_property``: ``property`` =
    ``value`` on the case; ``message_owner``: ``message`` to the case owner;
    ``other_gateway``: the same message again through ``gateway``."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["set_property", "message_owner", "other_gateway"]
    property: str | None = None
    value: str | None = None
    message: dict[str, str] = Field(default_factory=dict)
    gateway: str | None = None


MAX_REPLY_WAIT = 4 * 10080  # minutes: four weeks


def check_reply(channel: str, within: int | None, nr: NoReply | None) -> None:
    """``expect_reply_within_minutes`` and ``no_reply``: SMS only, the action complete;
    ValueError naming the problem."""
    if within is not None and channel != "sms":
        raise ValueError("expect_reply_within_minutes is for SMS alerts (channel 'sms') only")
    if nr is None:
        return
    if within is None:
        raise ValueError("no_reply needs expect_reply_within_minutes")
    if nr.action == "set_property":
        if not nr.property or not valid_xml_name(nr.property) or len(nr.property) > 255:
            raise ValueError("no_reply.property: set_property needs a valid case property name")
        if nr.value is None:
            raise ValueError("no_reply.value: set_property needs a value")
    elif nr.action == "message_owner":
        try:
            validate_content(nr.message, what="no_reply.message")
        except TemplateError as exc:
            raise ValueError(str(exc)) from None
    elif not nr.gateway or not nr.gateway.strip():
        raise ValueError("no_reply.gateway: other_gateway needs the gateway's name")
