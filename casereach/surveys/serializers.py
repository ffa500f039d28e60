"""The surveys API's documents: the request bodies' JSON schemas (with an example), the
response schemas, and ``serialize_survey``."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from casereach.alerts.serializers import NO_REPLY_SCHEMA
from casereach.alerts.templates import estimate
from casereach.core.openapi import OpenSchema
from casereach.core.timeutil import iso
from casereach.surveys.models import Survey
from casereach.surveys.queries import spec_of

_TEXTS = {
    "type": "object",
    "additionalProperties": {"type": "string"},
    "description": "language → text (every project language)",
}
_SCALAR = {"type": ["string", "number"]}
_CONDITION = {
    "type": "object",
    "description": (
        '{"ref": "answer.<id>" | "case.<property>", "op": "eq|ne|in|gt|lt", "value": ...}, '
        'or {"all": [...]}, or {"any": [...]}'
    ),
}
_QUESTION = {
    "type": "object",
    "required": ["id", "type", "prompt"],
    "properties": {
        "id": {"type": "string"},
        "type": {
            "type": "string",
            "enum": [
                "text",
                "integer",
                "decimal",
                "date",
                "single_select",
                "multi_select",
                "phone",
            ],
        },
        "prompt": _TEXTS,
        "choices": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["value", "label"],
                "properties": {"value": {"type": "string"}, "label": _TEXTS},
            },
        },
        "constraints": {
            "type": "object",
            "properties": {
                "required": {"type": "boolean"},
                "min": _SCALAR,
                "max": _SCALAR,
                "regex": {"type": "string"},
            },
        },
        "retry_prompt": _TEXTS,
        "max_retries": {"type": "integer", "minimum": 0, "maximum": 10},
        "on_max_retries": {"type": "string", "enum": ["fail", "skip"]},
        "case_property": {"type": ["string", "null"]},
        "show_if": {**_CONDITION, "type": ["object", "null"]},
    },
}
SURVEY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "questions"],
    "properties": {
        "name": {"type": "string"},
        "active": {"type": "boolean", "description": "may be started (default true)"},
        "questions": {"type": "array", "items": _QUESTION},
        "closing": _TEXTS,
        "settings": {
            "type": "object",
            "properties": {
                "write_mode": {"type": "string", "enum": ["end", "per_answer"]},
                "reask_after_minutes": {"type": "integer"},
                "reask_max": {"type": "integer"},
                "expire_after_minutes": {"type": "integer"},
                "write_on_expiry": {"type": "boolean"},
                "expect_reply_within_minutes": {"type": ["integer", "null"]},
                "no_reply": NO_REPLY_SCHEMA,
            },
        },
    },
}
EXAMPLE = {
    "name": "Medicine follow-up",
    "questions": [
        {
            "id": "took",
            "type": "single_select",
            "prompt": {"en": "Did you take your medicine today, {case.name}?"},
            "choices": [
                {"value": "yes", "label": {"en": "Yes"}},
                {"value": "no", "label": {"en": "No"}},
            ],
            "case_property": "took_medicine",
        },
        {
            "id": "why",
            "type": "text",
            "prompt": {"en": "Why not?"},
            "show_if": {"ref": "answer.took", "op": "eq", "value": "no"},
            "case_property": "missed_reason",
        },
    ],
    "closing": {"en": "Thank you"},
}
SURVEY_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": SURVEY_SCHEMA,
                "examples": {"follow-up": {"summary": "Two questions", "value": EXAMPLE}},
            }
        },
    }
}
PREVIEW_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["replies"],
                    "properties": {
                        "replies": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "the contact's replies, in order",
                        },
                        "language": {
                            "type": "string",
                            "description": "default: the project's first language",
                        },
                        "case": {
                            "type": "object",
                            "description": "the case the texts are rendered for",
                            "properties": {
                                "name": {"type": "string"},
                                "owner_name": {"type": "string"},
                                "properties": {
                                    "type": "object",
                                    "additionalProperties": {"type": "string"},
                                },
                            },
                        },
                    },
                },
                "examples": {
                    "play": {"summary": "Two replies", "value": {"replies": ["2", "too far"]}}
                },
            }
        },
    }
}


class SurveyOut(OpenSchema):
    """A survey: the definition as stored (defaults filled in) and its bookkeeping."""

    id: int
    name: str
    active: bool
    version: int
    questions: list[dict[str, Any]]
    closing: dict[str, str]
    settings: dict[str, Any]
    created_on: str = Field(json_schema_extra={"format": "date-time"})
    updated_on: str = Field(json_schema_extra={"format": "date-time"})
    missing_translations: list[str] = Field(
        description="project languages some text of the survey lacks (added since it was saved)"
    )
    segments: dict[str, dict[str, int]] = Field(
        description="question id → language → SMS segments of the prompt (placeholders "
        "counted as 10 characters; choices not appended)"
    )


class SurveyList(OpenSchema):
    objects: list[SurveyOut]


class PreviewOut(OpenSchema):
    """The survey played with the replies, nothing stored."""

    status: str = Field(json_schema_extra={"enum": ["completed", "failed", "waiting"]})
    messages: list[dict[str, Any]]
    answers: dict[str, Any]
    skipped: list[str]
    current_question: str | None
    properties: dict[str, str]
    unused_replies: int


def serialize_survey(survey: Survey) -> dict[str, Any]:
    spec = spec_of(survey)
    languages = survey.project.languages
    texts = [q.prompt for q in spec.questions] + ([spec.closing] if spec.closing else [])
    texts += [q.retry_prompt for q in spec.questions if q.retry_prompt]
    texts += [c.label for q in spec.questions for c in q.choices]
    missing = [lang for lang in languages if any(not (t.get(lang) or "").strip() for t in texts)]
    return {
        "id": survey.pk,
        **survey.definition,
        "active": survey.active,
        "version": survey.version,
        "created_on": iso(survey.created_on),
        "updated_on": iso(survey.updated_on),
        "missing_translations": missing,
        "segments": {
            q.id: {e.language: e.segments for e in estimate(q.prompt)} for q in spec.questions
        },
    }
