"""The settings that are lists and maps, as form fields a program manager can fill in:
texts and keywords per language, lists as comma-separated values, sending windows as rows
of weekdays and times. Each turns the form's fields into the value the API takes (the same
``ProjectSettings`` validation decides) and back.
"""

from __future__ import annotations

import re
from typing import Any

from django.http import QueryDict

TEXTS = (
    "help_text",
    "default_inbound_response",
    "opt_out_reply",
    "opt_in_reply",
    "verification_text",
    "verification_done_text",
)
KEYWORDS = ("opt_out_keywords", "opt_in_keywords", "help_keywords")
LISTS = {"languages": str, "retry_delays_minutes": int, "channel_order": str}
WINDOWS = "restricted_windows"
SELF_REGISTRATION = "self_registration"
MINUTES = "fallback_after_minutes"  # channel → minutes: one number field per channel
CHANNELS = ("whatsapp", "sms", "email")
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_ITEM = re.compile(r"[^\s,\[\]\"']+")  # words between commas or spaces (JSON's too)


def kind_of(name: str) -> str | None:
    """How the form shows ``name`` (None: the generic field of its JSON-schema type)."""
    if name in TEXTS:
        return "texts"
    if name in KEYWORDS:
        return "keywords"
    if name in LISTS:
        return "list"
    if name == WINDOWS:
        return "windows"
    if name == SELF_REGISTRATION:
        return "registration"
    if name == MINUTES:
        return "minutes"
    return None


def _languages(current: dict[str, Any], value: dict[str, Any]) -> list[str]:
    langs = list(current.get("languages") or [])
    return langs + [lang for lang in value if lang not in langs]


def field(
    name: str,
    kind: str,
    current: dict[str, Any],
    typed: QueryDict | None,
    errors: dict[str, str],
) -> dict[str, Any]:
    """What the template needs to draw ``name``: one entry per language, the list as text,
    or the windows as rows (with the error of each row)."""
    value = current.get(name)
    out: dict[str, Any] = {"name": name, "kind": kind}
    if kind in ("texts", "keywords"):
        stored = value or {}
        rows = []
        for lang in _languages(current, stored):
            key = f"{name}.{lang}"
            if typed is not None:
                shown = typed.get(key, "")
            elif kind == "keywords":
                shown = ", ".join(stored.get(lang, []))
            else:
                shown = stored.get(lang, "")
            rows.append({"lang": lang, "key": key, "value": shown})
        out["rows"] = rows
    elif kind == "list":
        out["value"] = (
            typed.get(name, "") if typed is not None else ", ".join(str(v) for v in value or [])
        )
    elif kind == "minutes":
        stored = value or {}
        out["rows"] = [
            {
                "lang": channel,
                "key": f"{name}.{channel}",
                "value": typed.get(f"{name}.{channel}", "")
                if typed is not None
                else str(stored.get(channel, "")),
            }
            for channel in CHANNELS
        ]
    elif kind == "registration":
        reg = value or {}
        p = name + "."
        welcome = reg.get("welcome_text") or {}
        if typed is not None:
            out["enabled"] = bool(typed.get(p + "enabled"))
            out["case_type"] = typed.get(p + "case_type", "")
            out["owner_id"] = typed.get(p + "owner_id", "")
        else:
            out["enabled"] = bool(reg.get("enabled"))
            out["case_type"] = reg.get("case_type") or ""
            out["owner_id"] = reg.get("owner_id") or ""
        out["rows"] = [
            {
                "lang": lang,
                "key": f"{p}welcome_text.{lang}",
                "value": typed.get(f"{p}welcome_text.{lang}", "")
                if typed is not None
                else welcome.get(lang, ""),
            }
            for lang in _languages(current, welcome)
        ]
    else:
        out["rows"] = _window_rows(value or [], typed, errors)
    return out


def _window_rows(
    stored: list[dict[str, Any]], typed: QueryDict | None, errors: dict[str, str]
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if typed is not None:
        for i in range(_row_count(typed)):
            p = f"{WINDOWS}.{i}."
            rows.append(
                {
                    "days": {int(d) for d in typed.getlist(p + "days") if d.isdigit()},
                    "start": typed.get(p + "start", ""),
                    "end": typed.get(p + "end", ""),
                }
            )
    else:
        rows = [
            {"days": set(w.get("days", [])), "start": w.get("start"), "end": w.get("end")}
            for w in stored
        ]
        rows.append({"days": set(), "start": "", "end": ""})  # a blank row adds a window
    for i, row in enumerate(rows):
        row["index"] = i
        row["error"] = errors.get(f"{WINDOWS}.{i}")
        row["day_boxes"] = [
            {"value": d, "label": label, "checked": d in row["days"]}
            for d, label in enumerate(DAYS)
        ]
    return rows


def _row_count(post: QueryDict) -> int:
    try:
        return max(0, min(50, int(post.get(f"{WINDOWS}.rows", "0"))))
    except ValueError:
        return 0


def on_form(name: str, kind: str, post: QueryDict) -> bool:
    """Whether the form has ``name`` at all (a setting not on it stays unchanged)."""
    if kind == "windows":
        return f"{WINDOWS}.rows" in post
    if kind == "registration":
        return f"{name}.on_form" in post
    if kind == "list":
        return name in post
    return any(key.startswith(name + ".") for key in post)


def parse(
    name: str, kind: str, post: QueryDict, current: dict[str, Any], errors: dict[str, str]
) -> tuple[Any, list[int]]:
    """The value of ``name`` from the form, and for windows the form row of each window kept
    (to put a validation error next to its row). Errors found here go into ``errors``."""
    if kind in ("texts", "keywords"):
        stored = current.get(name) or {}
        value: dict[str, Any] = {}
        for lang in _languages(current, stored):
            raw = post.get(f"{name}.{lang}", "")
            if kind == "texts":
                if raw.strip():
                    value[lang] = raw.strip()
            else:
                words = _ITEM.findall(raw)
                if words:
                    value[lang] = words
        return value, []
    if kind == "list":
        items = _ITEM.findall(post.get(name, ""))
        if LISTS[name] is int:
            if not all(v.isdigit() for v in items):
                errors[name] = "enter whole numbers separated by commas, e.g. 5, 10"
                return None, []
            return [int(v) for v in items], []
        return items, []
    if kind == "minutes":
        minutes: dict[str, int] = {}
        for channel in CHANNELS:
            raw = post.get(f"{name}.{channel}", "").strip()
            if not raw:
                continue
            if not raw.isdigit():
                errors[name] = "enter whole minutes, or leave the channel empty"
                return None, []
            minutes[channel] = int(raw)
        return minutes, []
    if kind == "registration":
        p = name + "."
        reg = current.get(name) or {}
        welcome = {
            lang: text.strip()
            for lang in _languages(current, reg.get("welcome_text") or {})
            if (text := post.get(f"{p}welcome_text.{lang}", "")).strip()
        }
        return {
            "enabled": bool(post.get(p + "enabled")),
            "case_type": post.get(p + "case_type", "").strip() or "contact",
            "owner_id": post.get(p + "owner_id", "").strip() or None,
            "welcome_text": welcome,
        }, []
    windows: list[dict[str, Any]] = []
    rows: list[int] = []
    for i in range(_row_count(post)):
        p = f"{WINDOWS}.{i}."
        days = [int(d) for d in post.getlist(p + "days") if d.isdigit()]
        start, end = post.get(p + "start", "").strip(), post.get(p + "end", "").strip()
        if not days and not start and not end:
            continue  # a blank row
        if not start or not end:
            errors[f"{WINDOWS}.{i}"] = "give both a start and an end time"
        windows.append({"days": days, "start": start, "end": end})
        rows.append(i)
    return windows, rows


def error_key(loc: tuple[Any, ...], window_rows: list[int], message: str) -> str:
    """Which field (or window row) a validation error of the settings model is about."""
    if not loc:
        # A check of the whole model names its setting first ("help_keywords: …").
        return message.split(":", 1)[0] if ":" in message else ""
    name = str(loc[0])
    if name == WINDOWS and len(loc) > 1 and isinstance(loc[1], int) and loc[1] < len(window_rows):
        return f"{WINDOWS}.{window_rows[loc[1]]}"
    return name
