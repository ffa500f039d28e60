"""A survey body as the builder's form posts it (``web/survey_form.py`` reads it back), for
the UI tests and the tenant walks."""

from __future__ import annotations

import json
from typing import Any


def survey_form_data(body: dict[str, Any], langs: list[str]) -> dict[str, str]:
    """The POST data of the builder for the survey ``body``, in the languages ``langs``."""
    settings = body.get("settings") or {}
    data: dict[str, str] = {
        "name": body["name"],
        "write_mode": settings.get("write_mode", "end"),
        "reask_after_minutes": str(settings.get("reask_after_minutes", 240)),
        "reask_max": str(settings.get("reask_max", 2)),
        "expire_after_minutes": str(settings.get("expire_after_minutes", 10080)),
        "expect_reply_within_minutes": str(settings.get("expect_reply_within_minutes") or ""),
        "question_count": str(len(body["questions"])),
    }
    if body.get("active", True):
        data["active"] = "on"
    if settings.get("write_on_expiry"):
        data["write_on_expiry"] = "on"
    for lang in langs:
        data[f"closing-{lang}"] = (body.get("closing") or {}).get(lang, "")
    for i, q in enumerate(body["questions"]):
        p = f"q-{i}-"
        c = q.get("constraints") or {}
        data.update(
            {
                p + "id": q["id"],
                p + "type": q["type"],
                p + "min": "" if c.get("min") is None else str(c["min"]),
                p + "max": "" if c.get("max") is None else str(c["max"]),
                p + "regex": c.get("regex") or "",
                p + "max_retries": str(q.get("max_retries", 3)),
                p + "on_max_retries": q.get("on_max_retries", "fail"),
                p + "case_property": q.get("case_property") or "",
                p + "show_if": json.dumps(q["show_if"]) if q.get("show_if") else "",
                p + "choice_count": str(len(q.get("choices") or [])),
            }
        )
        if c.get("required", True):
            data[p + "required"] = "on"
        for lang in langs:
            data[f"{p}prompt-{lang}"] = q["prompt"].get(lang, "")
            data[f"{p}retry-{lang}"] = (q.get("retry_prompt") or {}).get(lang, "")
        for j, choice in enumerate(q.get("choices") or []):
            data[f"{p}c-{j}-value"] = choice["value"]
            for lang in langs:
                data[f"{p}c-{j}-label-{lang}"] = choice["label"].get(lang, "")
    return data
