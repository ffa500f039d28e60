"""The survey builder's form: its values from a stored definition or from a POST, and the
survey body ``surveys.actions`` takes, built from them.

Field names are flat and numbered so that the form posts whole without JavaScript:
``q-<i>-<field>`` for question ``i`` (``q-<i>-prompt-<lang>`` per language), and
``q-<i>-c-<j>-value`` / ``q-<i>-c-<j>-label-<lang>`` for its choice ``j``. A question whose id,
type-specific fields and texts are all blank is dropped, as is a blank choice row, so the
blank rows offered below the last one cost nothing. The script ``survey_builder.js`` only
adds, removes and moves these blocks and renumbers them.

Nothing here checks the survey: ``surveys.spec`` does, when it is saved or previewed, and
names each problem by its path (``questions[2].choices[0].label[sw]``).
"""

from __future__ import annotations

import json
from typing import Any

from django.http import QueryDict

from casereach.alerts.templates import TemplateError, estimate
from casereach.core.errors import BadRequest
from casereach.projects.models import Project

TYPES = [
    ("text", "text"),
    ("integer", "whole number"),
    ("decimal", "number with decimals"),
    ("date", "date"),
    ("single_select", "one choice"),
    ("multi_select", "several choices"),
    ("phone", "phone number"),
]
SELECTS = ("single_select", "multi_select")
MAX_QUESTIONS = 100  # the form reads at most this many blocks (spec.MAX_QUESTIONS)
MAX_CHOICES = 50
BLANK_CHOICES = 2  # blank choice rows offered below a question's choices

Values = dict[str, Any]


def languages_of(project: Project, *texts: dict[str, str]) -> list[str]:
    """The project's languages, then any other language a stored text has."""
    langs = list(project.languages or ["en"])
    for mapping in texts:
        for lang in mapping:
            if lang not in langs:
                langs.append(lang)
    return langs


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def blank_question() -> Values:
    return {
        "id": "",
        "type": "text",
        "prompt": {},
        "retry_prompt": {},
        "choices": [],
        "min": "",
        "max": "",
        "regex": "",
        "required": True,
        "max_retries": "3",
        "on_max_retries": "fail",
        "case_property": "",
        "show_if": "",
    }


def form_from_spec(spec: dict[str, Any]) -> Values:
    """The form's values for a stored survey definition."""
    settings = spec.get("settings") or {}
    questions = []
    for q in spec.get("questions") or []:
        c = q.get("constraints") or {}
        questions.append(
            {
                "id": q.get("id", ""),
                "type": q.get("type", "text"),
                "prompt": dict(q.get("prompt") or {}),
                "retry_prompt": dict(q.get("retry_prompt") or {}),
                "choices": [
                    {"value": ch.get("value", ""), "label": dict(ch.get("label") or {})}
                    for ch in q.get("choices") or []
                ],
                "min": _text(c.get("min")),
                "max": _text(c.get("max")),
                "regex": _text(c.get("regex")),
                "required": bool(c.get("required", True)),
                "max_retries": _text(q.get("max_retries", 3)),
                "on_max_retries": q.get("on_max_retries", "fail"),
                "case_property": _text(q.get("case_property")),
                "show_if": json.dumps(q["show_if"]) if q.get("show_if") is not None else "",
            }
        )
    no_reply = settings.get("no_reply")
    return {
        "name": spec.get("name", ""),
        "active": bool(spec.get("active", True)),
        "closing": dict(spec.get("closing") or {}),
        "write_mode": settings.get("write_mode", "end"),
        "reask_after_minutes": _text(settings.get("reask_after_minutes", 240)),
        "reask_max": _text(settings.get("reask_max", 2)),
        "expire_after_minutes": _text(settings.get("expire_after_minutes", 7 * 24 * 60)),
        "write_on_expiry": bool(settings.get("write_on_expiry", False)),
        "expect_reply_within_minutes": _text(settings.get("expect_reply_within_minutes")),
        "no_reply": json.dumps(no_reply) if no_reply is not None else "",
        "questions": questions,
    }


def _count(post: QueryDict, key: str, limit: int) -> int:
    try:
        return max(0, min(int(post.get(key, "0") or 0), limit))
    except ValueError:
        return 0


def _texts(post: QueryDict, prefix: str, langs: list[str]) -> dict[str, str]:
    return {lang: post.get(f"{prefix}-{lang}", "") for lang in langs}


def _blank(values: dict[str, str]) -> bool:
    return not any(v.strip() for v in values.values())


def form_from_post(post: QueryDict, langs: list[str]) -> Values:
    """The form's values as typed (kept as they are when the survey is refused); blank
    questions and blank choice rows are dropped."""
    v: Values = {
        key: post.get(key, "").strip()
        for key in (
            "name",
            "write_mode",
            "reask_after_minutes",
            "reask_max",
            "expire_after_minutes",
            "expect_reply_within_minutes",
            "no_reply",
        )
    }
    v["active"] = bool(post.get("active"))
    v["write_on_expiry"] = bool(post.get("write_on_expiry"))
    v["closing"] = _texts(post, "closing", langs)
    questions = []
    for i in range(_count(post, "question_count", MAX_QUESTIONS)):
        p = f"q-{i}-"
        q: Values = {
            key: post.get(p + key, "").strip()
            for key in (
                "id",
                "type",
                "min",
                "max",
                "regex",
                "max_retries",
                "on_max_retries",
                "case_property",
                "show_if",
            )
        }
        q["required"] = bool(post.get(p + "required"))
        q["prompt"] = _texts(post, p + "prompt", langs)
        q["retry_prompt"] = _texts(post, p + "retry", langs)
        choices = []
        for j in range(_count(post, p + "choice_count", MAX_CHOICES)):
            value = post.get(f"{p}c-{j}-value", "").strip()
            label = _texts(post, f"{p}c-{j}-label", langs)
            if value or not _blank(label):
                choices.append({"value": value, "label": label})
        q["choices"] = choices
        typed = [q["id"], q["min"], q["max"], q["regex"], q["case_property"], q["show_if"]]
        if any(typed) or choices or not _blank(q["prompt"]) or not _blank(q["retry_prompt"]):
            questions.append(q)
    v["questions"] = questions
    return v


def _int(value: str) -> int | str:
    """A whole number, or the text as typed (the definition check names the path)."""
    try:
        return int(value)
    except ValueError:
        return value


def _bound(value: str) -> str | int | float:
    """A min/max as the definition takes it: a number when it reads as one, else the text
    (a date, or something the check refuses by its path)."""
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        return value


def _json(value: str, where: str) -> Any:
    try:
        return json.loads(value)
    except ValueError as exc:
        raise BadRequest(f"invalid survey: {where}: not valid JSON ({exc.args[0]})") from None
    except RecursionError:
        raise BadRequest(f"invalid survey: {where}: nested too deeply") from None


def _filled(texts: dict[str, str]) -> dict[str, str]:
    return {lang: t for lang, t in texts.items() if t.strip()}


def body_from_form(v: Values) -> dict[str, Any]:
    """The survey body (``surveys.actions``' input) from the form's values. Raises
    BadRequest only for a JSON field that does not parse; everything else is left to the
    definition check."""
    questions = []
    for i, q in enumerate(v["questions"]):
        out: dict[str, Any] = {"id": q["id"], "type": q["type"] or "text"}
        out["prompt"] = _filled(q["prompt"])
        if out["type"] in SELECTS or q["choices"]:
            out["choices"] = [
                {"value": c["value"], "label": _filled(c["label"])} for c in q["choices"]
            ]
        constraints: dict[str, Any] = {"required": q["required"]}
        if q["min"]:
            constraints["min"] = _bound(q["min"])
        if q["max"]:
            constraints["max"] = _bound(q["max"])
        if q["regex"]:
            constraints["regex"] = q["regex"]
        out["constraints"] = constraints
        retry = _filled(q["retry_prompt"])
        if retry:
            out["retry_prompt"] = retry
        out["max_retries"] = _int(q["max_retries"] or "3")
        out["on_max_retries"] = q["on_max_retries"] or "fail"
        if q["case_property"]:
            out["case_property"] = q["case_property"]
        if q["show_if"]:
            out["show_if"] = _json(q["show_if"], f"questions[{i}].show_if")
        questions.append(out)
    settings: dict[str, Any] = {
        "write_mode": v["write_mode"] or "end",
        "reask_after_minutes": _int(v["reask_after_minutes"] or "240"),
        "reask_max": _int(v["reask_max"] or "2"),
        "expire_after_minutes": _int(v["expire_after_minutes"] or str(7 * 24 * 60)),
        "write_on_expiry": v["write_on_expiry"],
    }
    if v["expect_reply_within_minutes"]:
        settings["expect_reply_within_minutes"] = _int(v["expect_reply_within_minutes"])
    if v["no_reply"]:
        settings["no_reply"] = _json(v["no_reply"], "settings.no_reply")
    body: dict[str, Any] = {"name": v["name"], "questions": questions, "settings": settings}
    closing = _filled(v["closing"])
    if closing:
        body["closing"] = closing
    return body


def segment_estimate(text: str) -> dict[str, Any]:
    """Characters, encoding and SMS segments of one text, counted as the alert form counts
    them (``alerts.templates.estimate``: each placeholder as 10 characters)."""
    if not text.strip():
        return {"characters": 0, "encoding": "GSM", "segments": 0, "error": None}
    try:
        (e,) = estimate({"text": text})
    except TemplateError as exc:
        message = exc.message.removeprefix("content[text]: ")
        return {"characters": 0, "encoding": "", "segments": 0, "error": message}
    return {
        "characters": e.characters,
        "encoding": e.encoding,
        "segments": e.segments,
        "error": None,
    }
