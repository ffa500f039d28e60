"""The writer scan (casereach.testing.writers) on small snippets: what counts as a write."""

from __future__ import annotations

import textwrap

from casereach.testing.writers import UNKNOWN, Schema, scan_source, scan_sources, writer_table

SCHEMA = Schema(
    models={
        "Message": "messaging.Message",
        "OptOut": "messaging.OptOut",
        "Project": "projects.Project",
    },
    tables={"messaging_message": "messaging.Message", "messaging_optout": "messaging.OptOut"},
    relations={("messaging.Message", "project"): "projects.Project"},
)
HEAD = "from casereach.messaging.models import Message, OptOut\n"


def found(body: str, module: str = "casereach.x") -> set[tuple[str, str]]:
    return {(w.model, w.how) for w in scan_source(HEAD + textwrap.dedent(body), module, SCHEMA)}


def test_manager_and_queryset_writes() -> None:
    assert {("messaging.OptOut", "orm")} == found("OptOut.objects.create(phone_number='1')")
    assert {("messaging.OptOut", "orm")} == found(
        "OptOut.objects.filter(pk=1).exclude(x=2).update(opted_out=True)"
    )
    assert {("messaging.Message", "orm")} == found(
        """
        def f():
            qs = Message.objects.filter(status="queued")
            qs.delete()
        """
    )


def test_reads_are_not_writes() -> None:
    assert set() == found("Message.objects.filter(pk=1).values('id').first()")
    assert set() == found("d = {}\nd.update(a=1)\ncache.delete('k')")


def test_save_and_delete_on_an_inferred_instance() -> None:
    assert {("messaging.Message", "instance")} == found(
        """
        def f(m: Message) -> None:
            m.save(update_fields=["status"])
        """
    )
    assert {("messaging.OptOut", "instance")} == found(
        """
        def f():
            row = OptOut.objects.filter(pk=1).first() or OptOut()
            row.save()
        """
    )
    assert {("messaging.Message", "orm")} == found(
        """
        def f():
            for m in Message.objects.filter(status="queued"):
                m.delete()
        """
    )


def test_a_relation_of_an_instance() -> None:
    assert {("projects.Project", "instance")} == found(
        """
        def f(m: Message) -> None:
            m.project.save()
        """
    )


def test_a_save_of_an_unknown_object_is_flagged() -> None:
    assert {(UNKNOWN, "instance")} == found(
        """
        def f(thing):
            thing.save()
        """
    )


def test_raw_sql_literal_fstring_and_percent() -> None:
    assert {("messaging.Message", "sql")} == found(
        "cursor.execute('UPDATE messaging_message SET status = %s', ['sent'])"
    )
    assert {("messaging.Message", "sql")} == found(
        """
        TABLE = Message._meta.db_table
        sql = f"INSERT INTO {TABLE} (id) VALUES (%s) ON CONFLICT (id) DO UPDATE SET id = 1"
        """
    )
    assert {("messaging.OptOut", "sql")} == found(
        "sql = 'DELETE FROM %s WHERE id = 1' % OptOut._meta.db_table"
    )
    assert {(UNKNOWN, "sql")} == found(
        "def f(meta):\n    return f'INSERT INTO {meta.db_table} (a)'"
    )


def test_sql_that_only_reads_or_locks_is_not_a_write() -> None:
    assert set() == found("q = 'SELECT id FROM messaging_message FOR UPDATE SKIP LOCKED'")
    assert set() == found('def f():\n    """UPDATE messaging_message: not SQL, a docstring."""')


def test_the_raw_row_layer_with_a_model_or_a_table() -> None:
    source = """
        from casereach.core import bulk
        from casereach.core.rows import insert_rows
        bulk.insert(Message._meta.db_table, ["id"], [])
        insert_rows(OptOut, [])
        bulk.is_in("id", [1])
    """
    assert {("messaging.Message", "rows"), ("messaging.OptOut", "rows")} == found(source)


def test_the_generic_layer_itself_is_no_writer_of_unknown_tables() -> None:
    source = "def insert(table):\n    return f'INSERT INTO {table} (a) VALUES (1)'\n"
    assert [] == scan_source(HEAD + source, "casereach.core.bulk", SCHEMA)


def test_table_constants_and_annotated_returns_cross_modules() -> None:
    sources = {
        "casereach.a": HEAD + "TABLE = OptOut._meta.db_table\ndef lock() -> Message: ...\n",
        "casereach.b": (
            "from casereach.a import TABLE, lock\n"
            "SQL = f'DELETE FROM {TABLE}'\n"
            "def f():\n    m = lock()\n    m.save()\n"
        ),
    }
    table = writer_table(scan_sources(sources, SCHEMA))
    assert {"messaging.Message": ["casereach.b"], "messaging.OptOut": ["casereach.b"]} == table


def test_a_writes_comment_names_the_model_of_a_raw_row_call() -> None:
    body = """
        from casereach.core import rows

        def f(drafts):
            rows.insert(drafts)
        """
    assert {(UNKNOWN, "rows")} == found(body)
    noted = body.replace("rows.insert(drafts)", "rows.insert(drafts)  # writes: messaging.Message")
    assert {("messaging.Message", "rows")} == found(noted)
    above = body.replace(
        "            rows.insert(drafts)",
        "            # writes: messaging.Message, messaging.OptOut\n            rows.insert(drafts)",
    )
    assert {("messaging.Message", "rows"), ("messaging.OptOut", "rows")} == found(above)
