"""The alerts API's documents: the request body's JSON schema (with examples), the response
schemas, and ``serialize_alert`` — what the API and the web pages show of an alert."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from casereach.alerts.models import Alert, ScheduleInstance
from casereach.alerts.spec import spec_of
from casereach.alerts.templates import UNKNOWN, estimate, unknown_placeholders
from casereach.core.openapi import OpenSchema
from casereach.core.timeutil import iso
from casereach.messaging.costs import alert_cost

_TEXTS = {"type": "object", "additionalProperties": {"type": "string"}}
# An alert's and a survey's ``no_reply`` (alerts.replyspec / surveys.spec), as documented.
NO_REPLY_SCHEMA = {
    "type": ["object", "null"],
    "required": ["action"],
    "properties": {
        "action": {
            "type": "string",
            "enum": ["set_property", "message_owner", "other_gateway"],
        },
        "property": {"type": "string"},
        "value": {"type": "string"},
        "message": _TEXTS,
        "gateway": {"type": "string"},
    },
}
_CRITERIA = {
    "type": "object",
    "properties": {
        "match": {"type": "string", "enum": ["all", "any"]},
        "rules": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["property", "op"],
                "properties": {
                    "property": {"type": "string", "description": "a property, or parent/<name>"},
                    "op": {
                        "type": "string",
                        "enum": [
                            "equal",
                            "not_equal",
                            "has_value",
                            "has_no_value",
                            "regex",
                            "days_after",
                            "days_before",
                        ],
                    },
                    "value": {"type": "string"},
                    "days": {"type": "integer"},
                },
            },
        },
    },
}
ALERT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "kind", "content", "schedule", "recipients"],
    "properties": {
        "name": {"type": "string"},
        "kind": {"type": "string", "enum": ["broadcast", "conditional"]},
        "active": {"type": "boolean", "description": "activate now (default false)"},
        "channel": {"type": "string", "enum": ["sms", "email"]},
        "content": {
            "type": "object",
            "properties": {
                "type": {
                    "type": "string",
                    "enum": ["message", "survey"],
                    "description": "message (default): the texts below; survey: start the "
                    "survey survey_id for each recipient (channel sms, no texts needed)",
                },
                "survey_id": {"type": "integer", "description": "a survey of this project"},
                "sms": _TEXTS,
                "email": {
                    "type": "object",
                    "properties": {"subject": _TEXTS, "body": _TEXTS},
                },
            },
        },
        "default_language": {"type": "string"},
        "case_type": {"type": "string"},
        "criteria": _CRITERIA,
        "schedule": {
            "type": "object",
            "required": ["type"],
            "properties": {
                "type": {"type": "string", "enum": ["immediate", "timed", "alert"]},
                "events": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "day": {"type": "integer"},
                            "time": {"type": "string", "description": "HH:MM local"},
                            "window_start": {"type": "string"},
                            "window_end": {"type": "string"},
                            "time_property": {"type": "string"},
                            "wait_minutes": {"type": "integer"},
                        },
                    },
                },
                "repeat": {
                    "type": "object",
                    "properties": {
                        "unit": {"type": "string", "enum": ["once", "days", "weeks", "months"]},
                        "interval": {"type": "integer"},
                        "weekdays": {"type": "array", "items": {"type": "integer"}},
                        "day_of_month": {"type": "integer"},
                        "iterations": {"type": ["integer", "null"]},
                    },
                },
                "iterations": {"type": ["integer", "null"]},
                "start": {
                    "type": "object",
                    "properties": {
                        "from": {"type": "string", "enum": ["match", "date", "property"]},
                        "date": {"type": "string", "format": "date"},
                        "property": {"type": "string"},
                    },
                },
            },
        },
        "recipients": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["type"],
                "properties": {
                    "type": {
                        "type": "string",
                        "enum": [
                            "case",
                            "case_group",
                            "worker",
                            "user_group",
                            "self",
                            "owner",
                            "parent",
                            "children",
                            "user_property",
                            "email_property",
                        ],
                    },
                    "id": {"type": "string"},
                    "case_type": {"type": "string"},
                    "criteria": _CRITERIA,
                    "property": {"type": "string"},
                },
            },
        },
        "stop_property": {"type": "string"},
        "reset_property": {"type": "string"},
        "late_limit_hours": {"type": "integer"},
        "expect_reply_within_minutes": {
            "type": ["integer", "null"],
            "minimum": 1,
            "maximum": 40320,
            "description": "SMS only: no reply within this long runs no_reply (docs/alerts.md)",
        },
        "no_reply": NO_REPLY_SCHEMA,
    },
}
EXAMPLES = {
    "immediate broadcast": {
        "value": {
            "name": "Clinic closed today",
            "kind": "broadcast",
            "active": True,
            "content": {
                "sms": {"en": "The clinic is closed today.", "sw": "Kliniki imefungwa leo."}
            },
            "schedule": {"type": "immediate"},
            "recipients": [{"type": "case_group", "case_type": "mother"}],
        }
    },
    "weekly broadcast": {
        "value": {
            "name": "Monday and Thursday reminder",
            "kind": "broadcast",
            "content": {"sms": {"en": "Hello {recipient.name}, remember your clinic card."}},
            "schedule": {
                "type": "timed",
                "events": [{"day": 0, "time": "08:30"}],
                "repeat": {"unit": "weeks", "weekdays": [0, 3], "iterations": 8},
                "start": {"from": "date", "date": "2027-01-04"},
            },
            "recipients": [{"type": "user_group", "id": "chw-north"}],
        }
    },
    "conditional alert, daily at 09:00 from a date property": {
        "value": {
            "name": "ANC visit reminders",
            "kind": "conditional",
            "case_type": "mother",
            "criteria": {
                "match": "all",
                "rules": [{"property": "edd", "op": "has_value"}],
            },
            "content": {
                "sms": {
                    "en": "{case.name}, your visit is due. Due date {case.edd}.",
                    "sw": "{case.name}, ziara yako inakaribia.",
                }
            },
            "schedule": {
                "type": "timed",
                "events": [{"day": 0, "time": "09:00"}],
                "repeat": {"unit": "days", "interval": 1, "iterations": 7},
                "start": {"from": "property", "property": "next_visit"},
            },
            "recipients": [{"type": "self"}, {"type": "owner"}],
            "stop_property": "delivery_date",
            "reset_property": "next_visit",
        }
    },
    "weekly survey to every case of a type": {
        "value": {
            "name": "Weekly adherence survey",
            "kind": "conditional",
            "case_type": "patient",
            "channel": "sms",
            "content": {"type": "survey", "survey_id": 12},
            "schedule": {
                "type": "timed",
                "events": [{"day": 0, "time": "10:00"}],
                "repeat": {"unit": "weeks", "iterations": None},
            },
            "recipients": [{"type": "self"}],
        }
    },
    "conditional alert schedule with waits": {
        "value": {
            "name": "Missed dose follow-up",
            "kind": "conditional",
            "case_type": "patient",
            "criteria": {"rules": [{"property": "missed_dose", "op": "equal", "value": "yes"}]},
            "content": {"sms": {"en": "Please take your dose, {case.name}."}},
            "schedule": {
                "type": "alert",
                "events": [{"wait_minutes": 0}, {"wait_minutes": 120}, {"wait_minutes": 1440}],
                "iterations": 1,
            },
            "recipients": [{"type": "self"}],
        }
    },
}
ALERT_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": ALERT_SCHEMA, "examples": EXAMPLES}},
    }
}
PATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {**ALERT_SCHEMA, "required": []},
                "examples": EXAMPLES,
            }
        },
    }
}


# Response documents. The views answer JsonResponse, which ninja passes through untouched, so
# these schemas only document (they never filter a field out); every one allows more fields.


class AlertProgress(OpenSchema):
    state: str = Field(description="evaluation of candidate recipients: its state")
    processed: int
    total: int


class AlertSummary(OpenSchema):
    id: int
    name: str
    kind: str = Field(json_schema_extra={"enum": ["broadcast", "conditional"]})
    active: bool
    version: int
    case_type: str | None
    progress: AlertProgress
    created_on: str = Field(json_schema_extra={"format": "date-time"})
    updated_on: str = Field(json_schema_extra={"format": "date-time"})


class AlertList(OpenSchema):
    objects: list[AlertSummary]


class UnknownPlaceholder(OpenSchema):
    placeholder: str = Field(description="as written, e.g. {case.host.village}")
    renders: str = Field(description="always (?)")
    hint: str = Field(description="what is available instead")


class SegmentEstimate(OpenSchema):
    language: str
    characters: int
    encoding: str
    segments: int


_AS_STORED = "as in the request body, with defaults filled in (null where not set)"


class AlertCost(OpenSchema):
    currency: str
    estimated: str
    actual: str
    cost: str = Field(description="actual where known, else estimated")
    messages_with_actual_cost: int


class DryRunCost(OpenSchema):
    currency: str
    total: str = Field(description="at today's fees, in the project's currency")
    unpriced_messages: int = Field(description="messages no fee applies to")


class AlertOut(AlertSummary):
    """An alert: its summary, the definition as stored (the request body's fields, with
    defaults filled in), a segment estimate per language and its active instance count."""

    channel: str = Field(json_schema_extra={"enum": ["sms", "email"]})
    content: dict[str, Any] = Field(description=_AS_STORED)
    default_language: str | None = None
    schedule: dict[str, Any] = Field(description=_AS_STORED)
    recipients: list[dict[str, Any]] = Field(description=_AS_STORED)
    criteria: dict[str, Any] = Field(description=_AS_STORED)
    stop_property: str | None = None
    reset_property: str | None = None
    late_limit_hours: int
    expect_reply_within_minutes: int | None = None
    no_reply: dict[str, Any] | None = None
    estimates: list[SegmentEstimate]
    missing_translations: list[str] = Field(
        description="project languages the content has no (or an empty) translation for"
    )
    unknown_placeholders: list[UnknownPlaceholder] = Field(
        description="placeholders that name nothing known: each renders (?)"
    )
    instances: int = Field(description="active schedule instances of the current version")
    cost: AlertCost = Field(description="what its messages cost so far (docs/costs.md)")


class DryRunDay(OpenSchema):
    date: str = Field(json_schema_extra={"format": "date"})
    messages: int
    survey_starts: int | None = Field(default=None, description="survey content: as messages")
    estimated_cost: str | None = Field(default=None, description="that day's estimated cost")


class DryRunSurvey(OpenSchema):
    id: int
    name: str | None = Field(description="null when the survey no longer exists")
    active: bool


class DryRunUnreachable(OpenSchema):
    contact_id: str | None
    name: str | None
    case_id: str | None
    reason: str = Field(description="an error code such as NO_PHONE_NUMBER or NO_MESSAGE")
    description: str
    gets_messages: bool = Field(description="the contact still gets other messages")


class DryRunOut(OpenSchema):
    alert_id: int
    days: int
    from_: str = Field(alias="from", json_schema_extra={"format": "date-time"})
    until: str = Field(json_schema_extra={"format": "date-time"})
    time_zone: str = Field(description="the project's time zone, which per_day dates are in")
    recipients: int = Field(description="candidate recipients considered")
    contacts: int = Field(description="contacts that would get at least one message")
    messages: int
    per_day: list[DryRunDay]
    unreachable_count: int
    unreachable_by_reason: dict[str, int]
    unreachable: list[DryRunUnreachable] = Field(description="the first few, with the reason")
    notes: list[str] = Field(description="e.g. months that lack the monthly day")
    content: str = Field(
        description="message, or survey: the alert starts a survey per recipient",
        json_schema_extra={"enum": ["message", "survey"]},
    )
    survey: DryRunSurvey | None = Field(description="survey content: the survey, else null")
    survey_starts: int | None = Field(
        description="survey content: the sessions that would start (counted as messages are)"
    )
    whatsapp_template_problems: list[dict[str, Any]] = Field(
        default_factory=list,
        description="WhatsApp alerts: the template's languages that are not APPROVED on the "
        "gateway (each: template, language, problem); activation is refused while any remain",
    )
    first_channel_contacts: dict[str, int] = Field(
        default_factory=dict,
        description="Reached contacts by the channel each would get first (a fallback "
        "chain's first channel that reaches it; otherwise the alert's channel)",
    )
    estimated_cost: DryRunCost | None = Field(
        default=None, description="what it would send, priced from the fee table (docs/costs.md)"
    )


class UpcomingSend(OpenSchema):
    alert_id: int
    alert_name: str
    due_utc: str = Field(json_schema_extra={"format": "date-time"})
    due_local: str = Field(
        description="in the contact's zone, with its UTC offset",
        json_schema_extra={"format": "date-time"},
    )
    time_zone: str
    language: str | None
    text: str = Field(description="the SMS text, or the email's subject")
    channel: str = Field(json_schema_extra={"enum": ["sms", "email", "whatsapp"]})
    first_channel: str | None = Field(
        default=None,
        description="the channel the contact would get first (its fallback chain's first "
        "channel that reaches it; otherwise the alert's)",
        json_schema_extra={"enum": ["sms", "email", "whatsapp"]},
    )
    error_code: str | None = Field(description="why this send would fail, when it would")
    warning: str | None = Field(
        default=None,
        description="alert_time_default: sent at 12:00 local because the case property the "
        "time is read from holds no time",
    )


class UpcomingList(OpenSchema):
    objects: list[UpcomingSend]


def serialize_alert(alert: Alert, *, full: bool = True) -> dict[str, Any]:
    spec = spec_of(alert)
    out: dict[str, Any] = {
        "id": alert.pk,
        "name": alert.name,
        "kind": alert.kind,
        "active": alert.active,
        "version": alert.version,
        "case_type": alert.case_type or None,
        "progress": {
            "state": alert.eval_state,
            "processed": alert.eval_processed,
            "total": alert.eval_total,
        },
        "created_on": iso(alert.created_on),
        "updated_on": iso(alert.updated_on),
    }
    if full:
        out.update({k: v for k, v in alert.spec.items() if k not in out})
        content = spec.content.sms if spec.channel == "sms" else {}
        if spec.channel == "whatsapp" and spec.content.whatsapp is not None:
            content = spec.content.whatsapp.text
        if spec.channel == "email" and spec.content.email is not None:
            content = spec.content.email.body
        out["estimates"] = [
            {
                "language": e.language,
                "characters": e.characters,
                "encoding": e.encoding,
                "segments": e.segments,
            }
            for e in estimate(content)
        ]
        project_languages = [] if spec.content.is_survey else alert.project.languages
        out["missing_translations"] = [  # a survey's texts are the survey's own
            lang for lang in project_languages if not (content.get(lang) or "").strip()
        ]
        texts = dict(content)
        if spec.channel == "email" and spec.content.email is not None:
            texts.update({f"subject:{k}": v for k, v in spec.content.email.subject.items()})
        out["unknown_placeholders"] = [
            {"placeholder": p.text, "renders": UNKNOWN, "hint": p.hint}
            for p in unknown_placeholders(texts)
        ]
        out["instances"] = ScheduleInstance.objects.filter(
            alert=alert, alert_version=alert.version, active=True
        ).count()
        out["cost"] = alert_cost(alert.project, alert.pk)  # what its messages cost so far
    return out
