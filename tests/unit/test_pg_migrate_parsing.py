"""The migration parser without a server: statement splitting, versions, directives, collection."""

from __future__ import annotations

import re

import pytest

from ansible_collections.dualboot.db.plugins.module_utils import pg_migrate
from ansible_collections.dualboot.db.plugins.module_utils.errors import InvalidInput


def texts(sql: str) -> list[str]:
    return [s.text for s in pg_migrate.split_sql(sql)]


def test_plain_statements_and_line_numbers():
    stmts = pg_migrate.split_sql("CREATE TABLE a (id int);\n\n  INSERT INTO a VALUES (1);\nSELECT 1")
    assert [s.text for s in stmts] == ["CREATE TABLE a (id int)", "INSERT INTO a VALUES (1)", "SELECT 1"]
    assert [s.line for s in stmts] == [1, 3, 4]


def test_semicolons_in_strings_identifiers_and_comments_do_not_split():
    sql = """
    INSERT INTO t VALUES ('a;b', 'it''s; fine');  -- comment; with semicolon
    /* block; /* nested; */ still comment; */ SELECT "we;ird"".col" FROM t;
    SELECT E'escaped \\' quote; here', e'x\\\\';
    SELECT U&'d\\0061t\\+000061;' , B'1010', X'1F';
    """
    assert texts(sql) == [
        "INSERT INTO t VALUES ('a;b', 'it''s; fine')",
        'SELECT "we;ird"".col" FROM t',
        "SELECT E'escaped \\' quote; here', e'x\\\\'",
        "SELECT U&'d\\0061t\\+000061;' , B'1010', X'1F'",
    ]


def test_standard_string_backslash_is_literal():
    # standard_conforming_strings: a backslash does not escape the closing quote of '...'
    assert texts("SELECT 'C:\\'; SELECT 2;") == ["SELECT 'C:\\'", "SELECT 2"]


def test_identifier_ending_in_e_is_not_an_escape_string_prefix():
    assert texts("SELECT 1 FROM t WHERE name LIKE'a\\'; SELECT 2") == ["SELECT 1 FROM t WHERE name LIKE'a\\'", "SELECT 2"]


def test_dollar_quotes_with_and_without_tags():
    sql = """
    CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      NEW.x := 'a;b'; RETURN NEW;
    END $$;
    DO $body$ BEGIN PERFORM 1; RAISE NOTICE '$$;'; END $body$;
    SELECT $1, a$b$c FROM t;
    """
    out = texts(sql)
    assert len(out) == 3
    assert out[0].startswith("CREATE FUNCTION") and out[0].endswith("END $$")
    assert out[1].startswith("DO $body$") and out[1].endswith("$body$")
    assert out[2] == "SELECT $1, a$b$c FROM t"


def test_begin_atomic_bodies_like_psql():
    sql = """
    CREATE OR REPLACE FUNCTION add(a int, b int) RETURNS int LANGUAGE sql
    BEGIN ATOMIC
      SELECT CASE WHEN a > 0 THEN a ELSE 0 END + b;
      SELECT 1;
    END;
    CREATE PROCEDURE p() BEGIN ATOMIC INSERT INTO t VALUES (1); END;
    SELECT 3;
    """
    out = texts(sql)
    assert len(out) == 3
    assert out[0].endswith("END") and "SELECT 1;" in out[0]
    assert out[1] == "CREATE PROCEDURE p() BEGIN ATOMIC INSERT INTO t VALUES (1); END"
    assert out[2] == "SELECT 3"


def test_begin_in_ordinary_statements_is_not_a_body():
    assert texts("BEGIN; SELECT 1; COMMIT;") == ["BEGIN", "SELECT 1", "COMMIT"]


def test_parentheses_keep_semicolons_like_psql():
    assert texts("SELECT (1;2); SELECT 3") == ["SELECT (1;2)", "SELECT 3"]


def test_empty_statements_and_trailing_comments_are_dropped():
    assert texts(";;  -- only a comment\n ; /* x */") == []
    assert texts("SELECT 1;;\n-- end\n") == ["SELECT 1"]


@pytest.mark.parametrize(
    "sql, fragment",
    [
        ("SELECT 'open", "unterminated string starting at line 1"),
        ('SELECT "open', "unterminated quoted identifier"),
        ("SELECT 1;\nSELECT $x$ open", "unterminated dollar-quoted string $x$ starting at line 2"),
        ("/* open", "unterminated /* comment"),
        ("SELECT 1;\n\\i other.sql\n", "line 2 holds a psql meta-command (\\i)"),
    ],
)
def test_malformed_sql_is_refused_with_its_line(sql, fragment):
    with pytest.raises(InvalidInput, match=re.escape(fragment)):
        pg_migrate.split_sql(sql)


def test_versions_compare_numerically_and_ignore_trailing_zeros():
    pv = pg_migrate.parse_version
    assert pv("1.9", "x") < pv("1.10", "x") < pv("2", "x")
    assert pv("2", "x") == pv("2.0", "x") == pv("2_0_0", "x")
    assert pv(3, "x") == (3,)
    with pytest.raises(InvalidInput, match="YAML reads 1.10 as the number 1.1"):
        pv(1.1, "x")
    with pytest.raises(InvalidInput, match="not a dotted number"):
        pv("1.a", "x")


def test_directives():
    text = "-- dualboot: transactional=false\nCREATE INDEX CONCURRENTLY i ON t (x);"
    assert pg_migrate.parse_directives(text, "f") == {"transactional": False}
    assert pg_migrate.parse_directives("SELECT 1; -- not a directive line start", "f") == {}
    with pytest.raises(InvalidInput, match="unknown directive"):
        pg_migrate.parse_directives("-- dualboot: transaction=off", "f")


def test_collect_orders_and_finds_duplicates(tmp_path):
    (tmp_path / "V1__create.sql").write_text("CREATE TABLE a (id int);")
    (tmp_path / "V1_10__later.sql").write_text("SELECT 1;")
    (tmp_path / "V1_9__earlier.sql").write_text("-- dualboot: transactional=false\nSELECT 1;")
    (tmp_path / "notes.txt").write_text("ignored")
    found = pg_migrate.collect([{"version": "2", "sql": "SELECT 2"}], str(tmp_path))
    assert [m.version for m in found] == ["1", "1.9", "1.10", "2"]
    assert [m.transactional for m in found] == [True, False, True, True]
    assert found[1].description == "earlier" and found[3].script == "inline"
    (tmp_path / "V1.0__again.sql").write_text("SELECT 3;")
    with pytest.raises(InvalidInput, match=r"duplicate migration version\(s\): version 1 in V1.0__again.sql and V1__create.sql"):
        pg_migrate.collect(None, str(tmp_path))


def test_misnamed_sql_file_is_an_error_not_skipped(tmp_path):
    (tmp_path / "V1__ok.sql").write_text("SELECT 1;")
    (tmp_path / "V2_missing_separator.sql").write_text("SELECT 2;")
    with pytest.raises(InvalidInput, match="V2_missing_separator.sql"):
        pg_migrate.collect(None, str(tmp_path))


def test_transaction_control_in_transactional_migration_is_refused():
    with pytest.raises(InvalidInput, match="line 2: COMMIT controls the transaction"):
        pg_migrate.collect([{"version": "1", "sql": "CREATE TABLE a (id int);\nCOMMIT;"}], None)
    ok = pg_migrate.collect([{"version": "1", "sql": "SAVEPOINT s; ROLLBACK TO s;"}], None)
    assert ok[0].transactional


def test_checksum_ignores_line_endings_and_bom():
    assert pg_migrate.checksum("SELECT 1;\r\n") == pg_migrate.checksum("\ufeffSELECT 1;\n")
    assert pg_migrate.checksum("SELECT 1;") != pg_migrate.checksum("SELECT 2;")


def test_list_items_are_checked():
    with pytest.raises(InvalidInput, match="exactly one of sql or file"):
        pg_migrate.collect([{"version": "1", "sql": "SELECT 1", "file": "/x.sql"}], None)
    with pytest.raises(InvalidInput, match="unknown key"):
        pg_migrate.collect([{"version": "1", "sql": "SELECT 1", "transactionnal": False}], None)
    with pytest.raises(InvalidInput, match="no migrations given"):
        pg_migrate.collect([], None)
