"""The test phone, shared by the API and the web UI: one place that picks the test gateway,
checks the sender, receives the message and reads the conversation back. The test phone acts
as the project's own gateway: it reaches only the project's contacts and keywords, and its
STOP and START apply to the project's scope only."""

from __future__ import annotations

from typing import Any

from django.db.models import Q

from casereach.contacts.models import PhoneEntry
from casereach.contacts.rules import ProjectRules, check_phone
from casereach.core.errors import BadRequest
from casereach.gateways.base import InboundMessage
from casereach.gateways.inbound import checked_inbound
from casereach.gateways.queries import visible_gateways
from casereach.messaging.inbound import InboundResult, do_receive
from casereach.messaging.models import Message
from casereach.projects.models import Project


def usable_number(value: Any, project: Project, what: str = "phone_number") -> str:
    """``value`` as the project's rules store a number; BadRequest naming ``what`` if not."""
    if not isinstance(value, str):
        raise BadRequest(f"{what} must be a string")
    check = check_phone(value, ProjectRules(project_id=project.pk))
    if check.number is None:
        raise BadRequest(f"{what} is not a usable number ({check.reason})")
    return check.number


def test_gateway(project: Project, name: str | None = None) -> Any:
    """The project's active test gateway (its own before a global one), or the named one."""
    qs = visible_gateways(project).filter(type="test", is_active=True)
    if name:
        qs = qs.filter(name_key=name.lower())
    gw = qs.order_by("project_id", "pk").first()
    if gw is None:
        raise BadRequest("the project has no test gateway: add one of type 'test' first")
    return gw


def do_test_phone_receive(
    project: Project,
    sender: Any,
    text: Any,
    *,
    to: Any = None,
    gateway: str | None = None,
) -> tuple[Any, InboundResult]:
    """An SMS from ``sender`` received through the project's test gateway, handled exactly as
    a provider's would be; (gateway, result)."""
    number = usable_number(sender, project, "from")
    if not isinstance(text, str):
        raise BadRequest("text must be a string")
    gw = test_gateway(project, gateway)
    to = to or (gw.sender_numbers[0] if gw.sender_numbers else "000")
    try:
        inbound = checked_inbound(number, str(to), text, "")
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    received = InboundMessage(inbound.sender, inbound.to, inbound.text)
    return gw, do_receive(gw, received, as_project=project)


def conversation(project: Project, number: str, limit: int = 100) -> list[Message]:
    """The last ``limit`` messages of ``number`` on the project's test gateways, oldest first."""
    gateway_ids = list(visible_gateways(project).filter(type="test").values_list("pk", flat=True))
    qs = Message.objects.filter(
        Q(project=project) | Q(project__isnull=True),
        phone_number=number,
        gateway_id__in=gateway_ids,
    ).order_by("-created_on", "-id")[:limit]
    return list(reversed(list(qs)))


def knows_number(project: Project, number: str) -> bool:
    """Whether ``number`` is one of the project's contacts' or has traffic with it."""
    return (
        PhoneEntry.objects.filter(project=project, number=number).exists()
        or Message.objects.filter(phone_number=number, project=project).exists()
    )
