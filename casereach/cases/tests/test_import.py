"""``casereach import-cases`` through the command line: good rows land, bad rows are reported."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from openpyxl import Workbook
from typer.testing import CliRunner

from casereach.cases.importer import RowError, SourceRow, import_cases, iter_rows
from casereach.cases.models import Case
from casereach.cli.main import app
from casereach.contacts.models import Contact, PhoneEntry
from casereach.projects.models import Project
from casereach.testing.world import Api

pytestmark = pytest.mark.django_db(transaction=True)

HEADER = (
    b"external_id,case_type,case_name,owner_id,contact_phone_number,"
    b"contact_phone_number_is_verified,note,bad name\n"
)


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def report(path: Path) -> list[tuple[int, str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["row", "column", "reason"]
    return [(int(r[0]), r[1], r[2]) for r in rows[1:]]


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_good_rows_land_and_malformed_rows_are_reported(
    project: Project, api: Api, tmp_path: Path
) -> None:
    long_ok = "a" * 10_000
    too_long = "b" * 100_001
    data = b"".join(
        [
            b"\xef\xbb\xbf" + HEADER,  # row 1 (with a UTF-8 BOM)
            b"e1,patient,Amina,o1,254712345678,1,first,\n",  # 2: good
            b"e2,patient,Bad \xff\xfe bytes,o1,254712345679,0,x,\n",  # 3: not UTF-8
            b",patient,No key,o1,254712345670,0,x,\n",  # 4: neither key
            b"e5,patient,Long,o1,254712345671,0," + long_ok.encode() + b",\n",  # 5: good
            b"e6,patient,Too long,o1,254712345672,0," + too_long.encode() + b",\n",  # 6
            b'e7,patient,"Broken quote,o1,254712345673,0,x,\n',  # 7: quote never closed
            b"e8,patient,After the break,o1,254712345674,0,x,\n",  # 8: good
            b"e9,patient,Bad property,o1,254712345675,0,x,oops\n",  # 9: bad column name
            b"e10,patient,Last,o1,254712345676,0,x,\n",  # 10: good
        ]
    )
    source = tmp_path / "cases.csv"
    source.write_bytes(data)

    code, output = run_cli("import-cases", str(source), "--project", project.name)

    assert code == 1, output
    report_path = tmp_path / "cases.csv.errors.csv"
    assert f"imported 4 cases, 5 rows failed; error report: {report_path}" in output
    errors = report(report_path)
    assert [e[0] for e in errors] == [3, 4, 6, 7, 9]
    by_row = {row: (column, reason) for row, column, reason in errors}
    assert by_row[3] == ("", "bad encoding (not UTF-8)")
    assert by_row[4] == ("external_id", "case_id or external_id is required")
    assert by_row[6][0] == "note" and "100000" in by_row[6][1]
    assert by_row[7][0] == "" and "broken quotes" in by_row[7][1]
    assert by_row[9] == ("bad name", "case property names must be valid XML identifiers")

    landed = dict(Case.objects.filter(project=project).values_list("external_id", "case_name"))
    assert landed == {"e1": "Amina", "e5": "Long", "e8": "After the break", "e10": "Last"}
    body = api.get("/a/{project}/api/case/v2/ext/e5/").body
    assert body["properties"]["note"] == long_ok
    assert api.get("/a/{project}/api/case/v2/ext/e1/").body["properties"] == {
        "contact_phone_number": "254712345678",
        "contact_phone_number_is_verified": "1",
        "note": "first",
    }


def test_contacts_are_derived_for_imported_cases(project: Project, tmp_path: Path) -> None:
    source = write_csv(
        tmp_path / "contacts.csv",
        [
            "external_id",
            "case_type",
            "case_name",
            "owner_id",
            "contact_phone_number",
            "contact_phone_number_is_verified",
            "language_code",
            "time_zone",
        ],
        [
            ["c1", "patient", "Amina", "o1", "+254 712 345 678", "1", "sw", "africa/nairobi"],
            ["c2", "patient", "Baraka", "o1", "254722000111", "0", "en", ""],
            ["c3", "patient", "No phone", "o1", "", "", "", ""],
        ],
    )

    code, output = run_cli("import-cases", str(source), "--project", project.name)

    assert code == 0, output
    cases = dict(Case.objects.filter(project=project).values_list("external_id", "case_id"))
    entries = {
        e.contact_id: e for e in PhoneEntry.objects.filter(project=project, contact_type="case")
    }
    assert entries[cases["c1"]].number == "254712345678"
    assert entries[cases["c1"]].holder is True
    assert entries[cases["c2"]].number == "254722000111"
    assert entries[cases["c2"]].holder is False
    assert cases["c3"] not in entries
    contact = Contact.objects.get(contact_id=cases["c1"])
    assert (contact.lang_effective, contact.tz_effective) == ("sw", "Africa/Nairobi")
    assert Contact.objects.get(contact_id=cases["c3"]).phone_reason == "missing"


def test_imported_numbers_go_to_the_first_requester_in_file_order(
    project: Project, tmp_path: Path
) -> None:
    header = [
        "external_id",
        "case_type",
        "case_name",
        "owner_id",
        "contact_phone_number",
        "contact_phone_number_is_verified",
    ]
    first = write_csv(
        tmp_path / "first.csv", header, [["held", "patient", "Held", "o1", "254700000001", "1"]]
    )
    assert run_cli("import-cases", str(first), "--project", project.name)[0] == 0
    second = write_csv(
        tmp_path / "second.csv",
        header,
        [
            ["a", "patient", "A", "o1", "254700000002", "0"],  # one-way only: never holds
            ["b", "patient", "B", "o1", "254700000002", "1"],  # first requester: holds
            ["c", "patient", "C", "o1", "254700000002", "yes"],  # later requester: waits
            ["d", "patient", "D", "o1", "254700000001", "1"],  # held by an earlier case
        ],
    )

    code, output = run_cli("import-cases", str(second), "--project", project.name)

    assert code == 0, output
    ids = dict(Case.objects.filter(project=project).values_list("case_id", "external_id"))
    holders = {
        (ids[e.contact_id], e.number, e.verified_requested)
        for e in PhoneEntry.objects.filter(project=project, holder=True)
    }
    assert {("held", "254700000001", True), ("b", "254700000002", True)} == holders
    requesters = sorted(
        ids[e.contact_id]
        for e in PhoneEntry.objects.filter(project=project, verified_requested=True)
    )
    assert ["b", "c", "d", "held"] == requesters


def test_reimport_upserts_by_external_id_and_close_closes(project: Project, tmp_path: Path) -> None:
    header = ["external_id", "case_type", "case_name", "owner_id", "contact_phone_number"]
    first = write_csv(
        tmp_path / "first.csv",
        header,
        [["u1", "patient", "Old name", "o1", "254712000001"], ["u2", "patient", "Two", "o1", ""]],
    )
    assert run_cli("import-cases", str(first), "--project", project.name)[0] == 0
    ids = dict(Case.objects.filter(project=project).values_list("external_id", "case_id"))

    second = write_csv(
        tmp_path / "second.csv",
        [*header, "close"],
        [
            ["u1", "", "New name", "", "254712000001", "yes"],
            ["u2", "", "", "", "", "0"],
            ["u3", "patient", "Three", "o1", "", "TRUE"],
        ],
    )
    code, output = run_cli("import-cases", str(second), "--project", project.name)

    assert code == 0, output
    cases = {c.external_id: c for c in Case.objects.filter(project=project)}
    assert sorted(cases) == ["u1", "u2", "u3"]
    assert cases["u1"].case_id == ids["u1"]
    assert (cases["u1"].case_name, cases["u1"].case_type) == ("New name", "patient")
    assert cases["u1"].closed is True
    assert cases["u2"].closed is False
    assert cases["u3"].closed is True
    assert not PhoneEntry.objects.filter(contact_id=ids["u1"]).exists()
    assert Contact.objects.get(contact_id=ids["u1"]).active is False


def test_case_id_column_is_the_key(project: Project, tmp_path: Path) -> None:
    header = ["case_id", "external_id", "case_type", "case_name", "owner_id", "status"]
    first = write_csv(
        tmp_path / "ids.csv", header, [["case-0001", "x1", "patient", "One", "o1", "new"]]
    )
    assert run_cli("import-cases", str(first), "--project", project.name)[0] == 0
    again = write_csv(
        tmp_path / "ids2.csv",
        header,
        [
            ["case-0001", "", "", "", "", "seen"],
            ["", "", "", "", "", "orphan"],
            ["", "", "", "", "", ""],
        ],
    )
    code, output = run_cli("import-cases", str(again), "--project", project.name)

    assert code == 1, output
    case = Case.objects.get(case_id="case-0001")
    assert (case.external_id, case.properties) == ("x1", {"status": "seen"})
    assert report(tmp_path / "ids2.csv.errors.csv") == [
        (3, "case_id", "case_id or external_id is required")
    ]


def test_missing_create_fields_and_case_type_option(project: Project, tmp_path: Path) -> None:
    source = write_csv(
        tmp_path / "create.csv",
        ["external_id", "case_name", "owner_id"],
        [["t1", "Typed by option", "o1"], ["t2", "", "o1"]],
    )
    errors = tmp_path / "out" / "errors.csv"
    errors.parent.mkdir()

    code, output = run_cli(
        "import-cases",
        str(source),
        "--project",
        project.name,
        "--case-type",
        "household",
        "--errors",
        str(errors),
    )

    assert code == 1, output
    assert Case.objects.get(external_id="t1").case_type == "household"
    assert report(errors) == [(3, "case_name", "Property case_name is required.")]


def test_xlsx_import(project: Project, tmp_path: Path) -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(
        ["external_id", "case_type", "case_name", "owner_id", "contact_phone_number", "visits"]
    )
    sheet.append(["x1", "patient", "Amina", "o1", 254712345678, 3])
    sheet.append([None, "patient", "No key", "o1", None, None])
    sheet.append(["x3", "patient", "Chege", "o1", "254722000111", 1.5])
    path = tmp_path / "cases.xlsx"
    book.save(path)

    code, output = run_cli("import-cases", str(path), "--project", project.name)

    assert code == 1, output
    cases = {c.external_id: c for c in Case.objects.filter(project=project)}
    assert sorted(cases) == ["x1", "x3"]
    assert cases["x1"].properties == {"contact_phone_number": "254712345678", "visits": "3"}
    assert cases["x3"].properties["visits"] == "1.5"
    assert PhoneEntry.objects.filter(contact_id=cases["x1"].case_id, number="254712345678").exists()
    assert report(tmp_path / "cases.xlsx.errors.csv") == [
        (3, "external_id", "case_id or external_id is required")
    ]


def test_file_level_problems_are_one_clear_line(project: Project, tmp_path: Path) -> None:
    no_key = write_csv(tmp_path / "nokey.csv", ["case_name", "owner_id"], [["A", "o1"]])
    code, output = run_cli("import-cases", str(no_key), "--project", project.name)
    assert code == 1
    assert "error: the file has no case_id or external_id column" in output
    assert "Traceback" not in output

    other = tmp_path / "cases.json"
    other.write_text("[]")
    code, output = run_cli("import-cases", str(other), "--project", project.name)
    assert code == 1
    assert "unknown file type '.json'" in output

    code, output = run_cli("import-cases", str(tmp_path / "missing.csv"), "--project", project.name)
    assert code == 1
    assert "no such file" in output


def test_import_cases_streams_errors_in_row_order(project: Project, tmp_path: Path) -> None:
    rows = [[f"s{i}", "patient", f"P{i}", "o1", "oops" if i % 3 == 0 else ""] for i in range(50)]
    source = write_csv(
        tmp_path / "stream.csv", ["external_id", "case_type", "case_name", "owner_id", "1bad"], rows
    )
    seen: list[RowError] = []

    result = import_cases(project, source, batch_size=7, on_error=seen.append)

    assert (result.rows_read, result.rows_failed, result.written) == (50, 17, 33)
    assert [e.row for e in seen] == [i + 2 for i in range(50) if i % 3 == 0]
    assert {e.column for e in seen} == {"1bad"}
    assert Case.objects.filter(project=project).count() == 33


def test_iter_rows_multiline_values_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "multi.csv"
    path.write_bytes(
        b'external_id,note\r\nm1,"two\r\nlines"\r\n\r\nm2,"say ""hi"""\r\nm3,x,extra\n'
    )

    rows = list(iter_rows(path))

    assert rows == [
        SourceRow(1, ["external_id", "note"]),
        SourceRow(2, ["m1", "two\r\nlines"]),
        SourceRow(5, ["m2", 'say "hi"']),
        SourceRow(6, None, "the row has 3 values but the header has 2 columns"),
    ]


def test_imported_contacts_with_warnings_show_in_the_check_report(
    project: Project, tmp_path: Path
) -> None:
    source = write_csv(
        tmp_path / "quality.csv",
        ["external_id", "case_type", "case_name", "owner_id", "contact_phone_number", "time_zone"],
        [
            ["q1", "patient", "Fine", "o1", "254712345678", ""],
            ["q2", "patient", "National", "o1", "0712345678", ""],
            ["q3", "patient", "=Formula", "o1", "254722000111", "Mars/Olympus"],
        ],
    )
    assert run_cli("import-cases", str(source), "--project", project.name)[0] == 0

    code, output = run_cli("check", "--project", project.name, "--csv")

    assert code == 0, output
    rows = list(csv.reader(output.splitlines()))
    assert rows[0] == ["contact_id", "contact_type", "name", "phone", "warnings", "messages"]
    by_name = {r[2]: r for r in rows[1:]}
    assert sorted(by_name) == ["'=Formula", "National"]
    assert by_name["National"][4] == "national_format"
    assert by_name["'=Formula"][4] == "unknown_time_zone"

    code, output = run_cli("check", "--project", project.name)
    assert code == 0, output
    assert "national_format" in output and "unknown_time_zone" in output
