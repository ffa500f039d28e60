"""Statements generated from a row type: each column named once, placeholders in order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import pytest

from casereach.core.sqlgen import RowUpdate, field_names, update_sql
from casereach.projects.models import Project


def test_update_sql_sets_then_keys() -> None:
    assert (
        "UPDATE t SET a = %s, b = b + %s, c = NULL WHERE id = %s AND k = %s AND x = 1"
    ) == update_sql(
        "t", ("a", "b"), ("id", "k"), exprs={"b": "b + %s"}, fixed=("c = NULL",), condition="x = 1"
    )
    assert "UPDATE t SET a = %s WHERE id = %s" == update_sql("t", ("a",), ("id",))
    with pytest.raises(ValueError, match="one %s"):
        update_sql("t", ("a",), ("id",), exprs={"a": "a"})


class Pair(NamedTuple):
    id: int
    name: str


@dataclass
class Renamed:
    id: int
    name: str
    settings: str


def test_field_names_of_named_tuples_and_dataclasses() -> None:
    assert ("id", "name") == field_names(Pair)
    assert ("id", "name", "settings") == field_names(Renamed)
    with pytest.raises(TypeError):
        field_names(int)


def test_a_row_update_is_checked_against_the_columns_and_fills_its_placeholders() -> None:
    update = RowUpdate(Project, Renamed, key=("id",), shared=("last_indexed_on",))
    assert ("name", "settings", "last_indexed_on", "id") == update.placeholders
    assert (
        "UPDATE projects_project SET name = %s, settings = %s, last_indexed_on = %s WHERE id = %s"
    ) == update.sql
    assert [("n", "s", "T", 7)] == update.params([Renamed(7, "n", "s")], last_indexed_on="T")
    with pytest.raises(ValueError, match="shared"):
        update.params([Renamed(7, "n", "s")])
    with pytest.raises(ValueError, match="no column"):
        RowUpdate(Project, Pair, key=("id",), shared=("nonsense",))
    with pytest.raises(ValueError, match="no key field"):
        RowUpdate(Project, Pair, key=("pk",))
