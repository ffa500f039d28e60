"""What a no-reply action does outside the wait's own row: the case write and the two sends.

Each returns what it did (for the wait's ``detail``) and never raises for a refusal: a case
the write path refuses, an owner that is no contact, a gateway that does not exist are
recorded, not retried. Sends go through ``messaging.actions.do_send`` (every pre-send check)
in a messaging event of the alert's own source whose ``source_id`` is the alert id, so the
message log's ``alert`` filter shows them with the alert's messages.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from casereach.alerts.caseviews import load_views
from casereach.alerts.criteria import CaseView
from casereach.alerts.models import AlertReplyWait
from casereach.alerts.templates import RenderContext, render
from casereach.cases.actions import do_apply_case_changes
from casereach.cases.changes import CaseChange
from casereach.contacts.queries import contact_names
from casereach.core.errors import CasereachError
from casereach.gateways.queries import project_settings
from casereach.messaging.actions import SendRequest, do_send
from casereach.messaging.models import Message, MessagingEvent
from casereach.projects.models import Project

log = logging.getLogger(__name__)


def set_property(project: Project, wait: AlertReplyWait, name: str, value: str) -> str:
    """``name`` = ``value`` on the wait's case through the case path (stale guard, CommCare
    write-back)."""
    if not wait.case_id:
        return f"set_property {name}: no case (the message went to a mobile worker)"
    change = CaseChange(op="update", case_id=wait.case_id, properties={name: value})
    try:
        do_apply_case_changes(project, [change], single=True, write_back=True)
    except CasereachError as exc:
        log.info("alert reply wait %s: case write refused: %s", wait.pk, exc)
        return f"set_property {name}: not written: {exc}"
    return f"set_property {name}={value} on case {wait.case_id}"


def _request(wait: AlertReplyWait, **values: object) -> SendRequest:
    """A send in the alert's own event source (that of the message waited on)."""
    source = (
        MessagingEvent.objects.filter(pk=wait.event_id).values_list("source", flat=True).first()
    )
    return SendRequest(
        source=source or "conditional_alert",
        source_id=str(wait.alert_id),
        triggered_by=f"alert_reply_wait:{wait.pk}",
        **values,  # type: ignore[arg-type]
    )


def _sent(project: Project, req: SendRequest, what: str) -> str:
    try:
        _, messages = do_send(project, req)
    except CasereachError as exc:  # the gateway or the contact is gone
        return f"{what}: not sent: {exc}"
    msg = messages[0]
    if msg.status == "failed":
        return f"{what}: message {msg.id} failed: {msg.error_code}"
    return f"{what}: message {msg.id} queued"


def _context(project: Project, view: CaseView, recipient: str | None) -> RenderContext:
    names = contact_names(project, [i for i in (view.owner_id, recipient) if i])
    parent = view.parent
    return RenderContext(
        case_name=view.name,
        case_properties=view.properties,
        owner_name=names.get(view.owner_id) if view.owner_id else None,
        parent_name=parent.name if parent else None,
        parent_properties=parent.properties if parent else None,
        recipient_name=names.get(recipient) if recipient else None,
    )


def message_owner(project: Project, wait: AlertReplyWait, message: Mapping[str, str]) -> str:
    """The alert's no-reply message, rendered for the case, to the case's owner."""
    views = load_views(project.pk, [wait.case_id]) if wait.case_id else []
    view = views[0] if views else None
    if view is None or not view.owner_id:
        return "message_owner: the case has no owner"
    ctx = _context(project, view, wait.contact_id)
    texts = {lang: render(text, ctx) for lang, text in message.items()}
    req = _request(wait, contact_id=view.owner_id, sms=texts)
    return _sent(project, req, f"message_owner to {view.owner_id}")


def other_gateway(project: Project, wait: AlertReplyWait, gateway: str) -> str:
    """The same rendered text to the same contact again, through ``gateway``."""
    original = Message.objects.filter(pk=wait.message_id).only("text", "language").first()
    if original is None or not original.text:
        return "other_gateway: the message is no longer in the log"
    text = original.text
    languages = project_settings(project).languages
    texts = {**dict.fromkeys(languages, text), "*": text}  # the language is already chosen
    who = (
        {"contact_id": wait.contact_id} if wait.contact_id else {"phone_number": wait.phone_number}
    )
    req = _request(wait, sms=texts, gateway=gateway, **who)
    return _sent(project, req, f"other_gateway {gateway}")
