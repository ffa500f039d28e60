"""The demo project: cases whose contact properties exercise every rule of SPEC 3."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from casereach.cases.actions import do_apply_case_changes
from casereach.cases.changes import CaseChange
from casereach.cases.models import Case
from casereach.gateways.actions import do_create_gateway, do_set_routes
from casereach.gateways.base import InboundMessage
from casereach.gateways.models import GatewayConfig
from casereach.messaging.actions import SendRequest, do_send
from casereach.messaging.inbound import do_receive, do_save_keyword
from casereach.messaging.models import Message
from casereach.projects.actions import (
    do_create_api_key,
    do_create_project,
    do_revoke_other_api_keys,
)
from casereach.projects.models import Project
from casereach.projects.queries import find_api_key
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


@dataclass(frozen=True)
class DemoKey:
    """The demo's API key and what happened to get it."""

    username: str
    key: str
    reused: bool  # the key kept from the last run still works
    revoked: int  # earlier demo keys switched off because a new one was made
    path: Path  # where the key is kept between runs

    def describe(self) -> str:
        if self.reused:
            return f"reused, kept in {self.path}"
        note = f"new, kept in {self.path}"
        if self.revoked:
            note += f"; {self.revoked} earlier demo key(s) revoked"
        return note


def demo_key_path() -> Path:
    """Beside the SQLite file (like the secret key), else in the home folder."""
    db = settings.DATABASES["default"]
    if str(db["ENGINE"]).endswith("sqlite3"):
        return Path(str(db["NAME"]) + ".demo-key")
    return Path.home() / f".casereach-demo-key-{db.get('NAME') or 'casereach'}"


def _demo_key(project: Project) -> DemoKey:
    """Reuse the key of the last run while it is still active; otherwise make one, revoke the
    demo user's other keys (so keys never pile up) and keep the new one for the next run."""
    path = demo_key_path()
    try:
        kept = path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        kept = ""
    found = find_api_key(DEMO_USER, kept) if kept else None
    if found is not None and found.project_id == project.pk:
        return DemoKey(DEMO_USER, kept, reused=True, revoked=0, path=path)
    key = do_create_api_key(project, DEMO_USER)
    revoked = do_revoke_other_api_keys(project, DEMO_USER, keep=key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(key + "\n")
    except OSError:
        pass  # the key is still printed; the next run makes (and revokes) again
    return DemoKey(DEMO_USER, key, reused=False, revoked=revoked, path=path)


def load_demo() -> DemoKey:
    """Create (or refresh) the demo project; returns its API key (reused or new)."""
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
    return _demo_key(project)


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
