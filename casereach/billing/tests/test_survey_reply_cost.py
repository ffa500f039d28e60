"""A survey's next question, queued in reply to an inbound answer (written with the inbound
message in one statement), is priced like every other queued message."""

from __future__ import annotations

from casereach.bench.survey_answers import survey_definition
from casereach.core.timeutil import now
from casereach.messaging.models import Message
from casereach.surveys.tests.test_sessions import NUMBER, create_survey, start
from casereach.testing.cases import create_case_id as case
from casereach.testing.gateways import default_gateway, post_inbound
from casereach.testing.world import Api

M = "/a/{project}/api/messaging/v1/"


def test_the_next_question_after_an_answer_has_its_estimated_cost(api: Api) -> None:
    gw = default_gateway(api)
    fee = {"prefix": "", "amount": "0.0075", "currency": "USD", "valid_from": str(now().date())}
    assert 201 == api.post(M + f"gateways/{gw['id']}/fees", fee).status
    survey = create_survey(api, survey_definition(3))
    start(api, survey, case(api, phone=NUMBER, verified="yes"))

    r = post_inbound(gw, "1")

    assert 200 == r.status_code, r.content
    inbound = Message.objects.get(direction="in", text="1")
    reply = Message.objects.filter(direction="out", created_on__gte=inbound.created_on).get()
    assert (7500, "USD") == (reply.estimated_cost_micros, reply.cost_currency)
