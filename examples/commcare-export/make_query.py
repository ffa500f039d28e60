"""Writes casereach-query.xlsx, the commcare-export query workbook of docs/commcare-export.md.

    python examples/commcare-export/make_query.py   (rewrites the committed workbook)

Three sheets, one table each: ``cases`` (data source ``case``, patients only), ``events``
(``messaging-event``: one row per messaging sub-event) and ``messages``
(``messaging-event.messages[*]``: one row per SMS or email). Every sheet has an ``id`` column,
which commcare-export's SQL output needs as the primary key of its table.
"""

from __future__ import annotations

import sys
from pathlib import Path

import openpyxl

HERE = Path(__file__).resolve().parent

CASES = [
    ("id", "id"),
    ("case_name", "properties.case_name"),
    ("case_type", "properties.case_type"),
    ("owner_id", "properties.owner_id"),
    ("external_id", "properties.external_id"),
    ("contact_phone_number", "properties.contact_phone_number"),
    ("time_zone", "properties.time_zone"),
    ("language_code", "properties.language_code"),
    ("edd", "properties.edd"),
    ("closed", "closed"),
    ("date_modified", "date_modified"),
    ("indexed_on", "indexed_on"),
]
EVENTS = [
    ("id", "id"),
    ("date", "date"),
    ("date_last_activity", "date_last_activity"),
    ("content_type", "content_type"),
    ("status", "status"),
    ("source_type", "source.type"),
    ("recipient_id", "recipient.recipient_id"),
    ("recipient_type", "recipient.type"),
    ("recipient_name", "recipient.name"),
    ("case_id", "case_id"),
    ("error_code", "error.code"),
    ("error_message", "error.message"),
]
MESSAGES = [
    ("id", "message_id"),
    ("date", "date"),
    ("content_type", "type"),
    ("direction", "direction"),
    ("phone_number", "phone_number"),
    ("email_address", "email_address"),
    ("content", "content"),
    ("status", "status"),
    ("backend", "backend"),
    ("error_message", "error_message"),
]


def write(path: Path) -> Path:
    book = openpyxl.Workbook()
    sheets = [
        ("cases", "case", ("type", "patient"), CASES),
        ("events", "messaging-event", None, EVENTS),
        ("messages", "messaging-event.messages[*]", None, MESSAGES),
    ]
    for n, (title, source, filt, fields) in enumerate(sheets):
        sheet = book.active if n == 0 else book.create_sheet()
        assert sheet is not None
        sheet.title = title
        sheet.append(["Data Source", "Filter Name", "Filter Value", "Field", "Source Field"])
        for i, (field, source_field) in enumerate(fields):
            first = i == 0
            sheet.append(
                [
                    source if first else None,
                    filt[0] if first and filt else None,
                    filt[1] if first and filt else None,
                    field,
                    source_field,
                ]
            )
    book.save(path)
    return path


if __name__ == "__main__":
    print(write(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "casereach-query.xlsx"))
