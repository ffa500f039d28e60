"""A five-question survey in English and Swahili (the one docs/surveys.md shows), for tests
and for the tenant walks."""

from __future__ import annotations

import copy
from typing import Any

FIVE_QUESTIONS: dict[str, Any] = {
    "name": "Postnatal follow-up",
    "questions": [
        {
            "id": "took",
            "type": "single_select",
            "prompt": {
                "en": "Hello {case.name}. Did you take your medicine today?",
                "sw": "Habari {case.name}. Umekunywa dawa leo?",
            },
            "choices": [
                {"value": "yes", "label": {"en": "Yes", "sw": "Ndiyo"}},
                {"value": "no", "label": {"en": "No", "sw": "Hapana"}},
            ],
            "retry_prompt": {"en": "Please reply 1 or 2.", "sw": "Tafadhali jibu 1 au 2."},
            "case_property": "took_medicine",
        },
        {
            "id": "why_not",
            "type": "multi_select",
            "prompt": {"en": "Why not?", "sw": "Kwa nini?"},
            "choices": [
                {"value": "forgot", "label": {"en": "Forgot", "sw": "Nilisahau"}},
                {"value": "side_effects", "label": {"en": "Side effects", "sw": "Madhara"}},
                {"value": "no_stock", "label": {"en": "None left", "sw": "Imeisha"}},
            ],
            "show_if": {"ref": "answer.took", "op": "eq", "value": "no"},
            "on_max_retries": "skip",
            "max_retries": 1,
            "case_property": "missed_reason",
        },
        {
            "id": "days",
            "type": "integer",
            "prompt": {
                "en": "How many days since the birth?",
                "sw": "Ni siku ngapi tangu kujifungua?",
            },
            "constraints": {"min": 0, "max": 60},
            "retry_prompt": {
                "en": "Please send a number from 0 to 60.",
                "sw": "Tafadhali tuma namba kutoka 0 hadi 60.",
            },
            "case_property": "days_since_birth",
        },
        {
            "id": "weight",
            "type": "decimal",
            "prompt": {
                "en": "Baby's weight in kg?",
                "sw": "Uzito wa mtoto kwa kilo?",
            },
            "constraints": {"min": 0.5, "max": 8, "required": False},
            "show_if": {"ref": "answer.days", "op": "lt", "value": 29},
            "case_property": "baby_weight",
        },
        {
            "id": "visit",
            "type": "date",
            "prompt": {
                "en": "{case.name}, when is your next clinic visit? (day/month/year)",
                "sw": "{case.name}, ziara yako ijayo ni lini? (siku/mwezi/mwaka)",
            },
            "case_property": "next_visit",
        },
    ],
    "closing": {
        "en": "Thank you {case.name}. Next visit: {answer.visit}.",
        "sw": "Asante {case.name}. Ziara ijayo: {answer.visit}.",
    },
    "settings": {"write_mode": "end", "reask_after_minutes": 240, "reask_max": 2},
}


def survey_body(**over: Any) -> dict[str, Any]:
    """A fresh copy of :data:`FIVE_QUESTIONS` with ``over`` applied on top."""
    return {**copy.deepcopy(FIVE_QUESTIONS), **over}


# One question in English and Swahili, for the session tests and pages.
ONE_QUESTION: dict[str, Any] = {
    "name": "Quick check",
    "questions": [
        {
            "id": "ok",
            "type": "single_select",
            "prompt": {"en": "Are you well?", "sw": "Uko salama?"},
            "choices": [
                {"value": "yes", "label": {"en": "Yes", "sw": "Ndiyo"}},
                {"value": "no", "label": {"en": "No", "sw": "Hapana"}},
            ],
            "case_property": "feels_well",
        }
    ],
    "closing": {"en": "Thanks.", "sw": "Asante."},
}
