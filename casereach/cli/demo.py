"""The demo project: cases whose contact properties exercise every rule of SPEC 3."""

from __future__ import annotations

from casereach.cases.actions import do_apply_case_changes
from casereach.cases.changes import CaseChange
from casereach.cases.models import Case
from casereach.gateways.actions import do_create_gateway, do_set_routes
from casereach.gateways.base import InboundMessage
from casereach.gateways.models import GatewayConfig
from casereach.messaging.actions import SendRequest, do_send
from casereach.messaging.inbound import do_receive, do_save_keyword
from casereach.messaging.models import Message
from casereach.projects.actions import do_create_api_key, do_create_project
from casereach.projects.models import Project
from casereach.workers.actions import do_create_worker
from casereach.workers.models import MobileWorker

DEMO_USER = "demo@example.org"

# (external_id, name, properties) — each row shows one rule to a newcomer.
DEMO_CASES: list[tuple[str, str, dict[str, str]]] = [
    (
        "demo-two-way",
        "Amina (two-way)",
        {
            "contact_phone_number": "+254 712 345 678",
            "contact_phone_number_is_verified": "1",
            "time_zone": "africa/nairobi",
            "language_code": "sw",
            "commcare_email_address": "amina@example.org",
        },
    ),
    (
        "demo-conflict",
        "Baraka (same number, two-way conflict)",
        {
            "contact_phone_number": "254712345678",
            "contact_phone_number_is_verified": "yes",
        },
    ),
    (
        "demo-one-way",
        "Chege (one-way)",
        {
            "contact_phone_number": "254722000111",
            "language_code": "en",
        },
    ),
    (
        "demo-invalid-number",
        "Dalia (invalid number)",
        {
            "contact_phone_number": "12a45",
            "contact_phone_number_is_verified": "1",
        },
    ),
    ("demo-too-short", "Eli (too short)", {"contact_phone_number": "123"}),
    ("demo-national", "Fatuma (national format)", {"contact_phone_number": "0712345999"}),
    (
        "demo-unknown-zone",
        "Gitau (unknown time zone)",
        {
            "contact_phone_number": "254733000222",
            "time_zone": "Mars/Olympus_Mons",
        },
    ),
    (
        "demo-unknown-language",
        "Hawa (unknown language)",
        {
            "contact_phone_number": "254733000333",
            "language_code": "xx",
        },
    ),
    (
        "demo-gateway-override",
        "Imani (gateway override)",
        {
            "contact_phone_number": "254733000444",
            "contact_backend_id": "AT-KE",
        },
    ),
    (
        "demo-bad-email",
        "Juma (invalid email)",
        {
            "contact_phone_number": "254733000555",
            "commcare_email_address": "juma@",
        },
    ),
    ("demo-no-phone", "Kesi (email only)", {"commcare_email_address": "kesi@example.org"}),
]


def load_demo() -> tuple[str, str]:
    """Create (or refresh) the demo project; returns (username, new API key)."""
    project = Project.objects.filter(name="demo").first()
    if project is None:
        project = do_create_project("demo", time_zone="Africa/Nairobi", languages=["en", "sw"])
    changes = [
        CaseChange(
            op="upsert",
            row=i,
            external_id=ext,
            case_type="patient",
            case_name=name,
            owner_id="demo-clinic",
            properties=props,
            user=DEMO_USER,
        )
        for i, (ext, name, props) in enumerate(DEMO_CASES, start=1)
    ]
    do_apply_case_changes(project, changes)
    if not MobileWorker.objects.filter(project=project).exists():
        do_create_worker(
            project,
            {
                "username": "nurse.wanjiru",
                "password": "demo-password",
                "first_name": "Wanjiru",
                "last_name": "Kamau",
                "phone_numbers": ["+254700100200"],
                "verified_numbers": ["254700100200"],
                "language": "sw",
                "time_zone": "Africa/Nairobi",
            },
        )
    _demo_messaging(project)
    return DEMO_USER, do_create_api_key(project, DEMO_USER)


def _demo_messaging(project: Project) -> None:
    """A test gateway as the project default and a few messages, some of which fail on
    purpose so the message log shows its explanations."""
    if not GatewayConfig.objects.filter(project=project, name_key="demo-test").exists():
        do_create_gateway(project, {"name": "DEMO-TEST", "type": "test"})
        do_set_routes(project, {"default_gateway": "DEMO-TEST", "prefixes": []}, {"demo-test"})
        project.refresh_from_db()
    if Message.objects.filter(project=project).exists():
        return
    welcome = {
        "en": "Welcome to the clinic reminders. Reply STOP to stop.",
        "sw": "Karibu kwa vikumbusho vya kliniki. Jibu STOP kusitisha.",
    }
    for case_id in Case.objects.filter(
        project=project, external_id__in=["demo-two-way", "demo-one-way", "demo-invalid-number"]
    ).values_list("case_id", flat=True):
        do_send(project, SendRequest(contact_id=case_id, sms=welcome, triggered_by=DEMO_USER))
    gw = GatewayConfig.objects.get(project=project, name_key="demo-test")
    do_save_keyword(
        project,
        {
            "keyword": "WEIGHT",
            "description": "A mother reports her baby's weight in kg",
            "reply": {"en": "Weight saved, thank you.", "sw": "Uzito umehifadhiwa, asante."},
            "fields": [{"property": "baby_weight_kg", "type": "decimal", "required": True}],
        },
    )
    # Amina (two-way) answers; a stranger sends STOP: both show in the message log.
    do_receive(gw, InboundMessage(sender="254712345678", to="5550000", text="WEIGHT 3.4"))
    do_receive(gw, InboundMessage(sender="254799999999", to="5550000", text="STOP"))
