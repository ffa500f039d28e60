"""Seed the database of the browser tests: the demo project with a web user and an active
alert, and a second project (with its own case, gateway, alert and message) whose pages the
demo user must never see, and an empty project ``chain`` (web user ``cm``) that
test_browser_chain sets up with its own gateways and channel order. Run as ``python -m casereach.web.tests.seed_browser OUT.json``."""

from __future__ import annotations

import json
import sys


def _superuser() -> None:
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_superuser("root", "root@example.org", "root-password-1")


def main(out: str) -> None:
    import django

    django.setup()
    from django.core.management import call_command

    from casereach.alerts.actions import do_create_alert
    from casereach.cases.actions import do_apply_case_changes
    from casereach.cases.changes import CaseChange
    from casereach.cases.models import Case
    from casereach.cli.demo import load_demo
    from casereach.gateways.actions import do_create_gateway, do_set_routes
    from casereach.messaging.actions import SendRequest, do_send
    from casereach.projects.actions import do_create_project, do_create_web_user
    from casereach.projects.models import Project, Role

    call_command("migrate", interactive=False, verbosity=0)
    load_demo()
    demo = Project.objects.get(name="demo")
    do_create_web_user(demo, "pm", "pm-password-1", role=Role.ADMIN)
    _superuser()  # the system administrator (test_browser_sysadmin)
    reminder = do_create_alert(
        demo,
        {
            "name": "Daily clinic reminder",
            "kind": "conditional",
            "active": True,
            "case_type": "patient",
            "criteria": {"rules": [{"property": "contact_phone_number", "op": "has_value"}]},
            "content": {"sms": {"en": "Hello {case.name}, visit the clinic.", "sw": "Habari"}},
            "schedule": {
                "type": "timed",
                "events": [{"day": 0, "time": "09:00"}],
                "repeat": {"unit": "days", "interval": 1, "iterations": 5},
            },
            "recipients": [{"type": "self"}],
        },
    )

    other = do_create_project("other", time_zone="UTC", languages=["en"])
    do_create_web_user(other, "bo", "bo-password-1", role=Role.ADMIN)
    do_apply_case_changes(
        other,
        [
            CaseChange(
                op="upsert",
                row=1,
                external_id="other-1",
                case_type="pupil",
                case_name="Other pupil",
                owner_id="school",
                properties={"contact_phone_number": "+254 733 000 111"},
                user="bo",
            )
        ],
    )
    gw = do_create_gateway(other, {"name": "OTHER-TEST", "type": "test"})
    do_set_routes(other, {"default_gateway": "OTHER-TEST", "prefixes": []}, {"other-test"})
    other.refresh_from_db()
    alert = do_create_alert(
        other,
        {
            "name": "Other alert",
            "kind": "broadcast",
            "content": {"sms": {"en": "Hello"}},
            "schedule": {"type": "immediate"},
            "recipients": [{"type": "case_group", "case_type": "pupil"}],
        },
    )
    other_case = Case.objects.get(project=other, external_id="other-1")
    do_send(other, SendRequest(contact_id=other_case.case_id, sms={"en": "Hello from B"}))
    chain = do_create_project("chain", time_zone="UTC", languages=["en"])
    do_create_web_user(chain, "cm", "cm-password-1", role=Role.ADMIN)
    demo_case = Case.objects.get(project=demo, external_id="demo-two-way")
    with open(out, "w") as fh:
        json.dump(
            {
                "demo_alert": reminder.pk,
                "demo_contact": demo_case.case_id,
                "other_alert": alert.pk,
                "other_contact": other_case.case_id,
                "other_gateway": gw.pk,
            },
            fh,
        )


if __name__ == "__main__":
    main(sys.argv[1])
