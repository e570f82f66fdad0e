"""postgresql_migrate against a real server, and the reference changes R1, R2, R3 end to end (clone, migrate, check)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from integration.data.pg.staging import fingerprint, make_users

from ansible_collections.dualboot.db.plugins.module_utils import pg_clone, pg_migrate
from ansible_collections.dualboot.db.plugins.module_utils.errors import IntegrityError, InvalidInput, OperationFailed, SafetyRefusal

MIGRATIONS = Path(__file__).parent / "data" / "pg" / "migrations"
R1 = "ALTER TABLE users RENAME COLUMN user_name TO full_name;\nALTER TABLE users ALTER COLUMN full_name TYPE text;\n"


@pytest.fixture
def live(pg):
    db = pg.create_database()
    make_users(db)
    yield db
    pg.drop_database(db.name)


@pytest.fixture
def staged(pg, live):
    """The staged entry: a clone of live, as the stage role makes it."""
    name = f"{live.name}_green"
    pg_clone.clone(live.conn, live.conn.with_db(name))
    yield pg.db(name)
    pg.drop_database(name)


def history(db) -> list[tuple]:
    if db.scalar("SELECT to_regclass('dualboot.schema_history')") is None:
        return []
    return db.query("SELECT version, script, transactional FROM dualboot.schema_history ORDER BY installed_rank")


def test_r1_rename_with_type_change_end_to_end(pg, live, staged, run_module):
    before_live = fingerprint(live)
    args = {**staged.params, "migrations": [{"version": "1", "description": "R1 full_name", "sql": R1}]}
    r = run_module("postgresql_migrate", args, check=True, diff=True)
    assert not r.failed and r.changed and [p["version"] for p in r["pending"]] == ["1"] and r["applied"] == []
    assert history(staged) == [] and staged.scalar("SELECT to_regclass('dualboot.schema_history')") is None

    r = run_module("postgresql_migrate", args, diff=True)
    assert not r.failed, r.msg
    assert r.changed and r["current_version"] == "1" and r["applied"][0]["statements"] == 2
    assert r["diff"] == {"before": {"applied": []}, "after": {"applied": ["1"]}}
    assert pg.password not in r.output
    cols = dict(staged.query("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'users'"))
    assert cols == {"user_id": "integer", "full_name": "text", "creation_date": "timestamp without time zone"}
    live_names = dict(live.query("SELECT user_id, user_name FROM users"))
    assert dict(staged.query("SELECT user_id, full_name FROM users")) == live_names and len(live_names) == 2000
    assert fingerprint(live) == before_live  # the default entry is untouched

    again = pg_migrate.migrate(staged.conn, migrations=args["migrations"])
    assert not again["changed"] and again["already_applied"] == 1 and again["applied"] == []


def test_r2_and_r3_from_a_flyway_directory(live, staged):
    r = pg_migrate.migrate(staged.conn, migrations_dir=str(MIGRATIONS / "reference"))
    assert [a["version"] for a in r["applied"]] == ["1", "2", "3"] and r["current_version"] == "3"
    assert [a["script"] for a in r["applied"]][1] == "V2__user_profiles.sql"
    # R2: one profile per user, named like the live entry's user; the old columns are gone
    assert staged.scalar("SELECT count(*) FROM user_profiles") == staged.scalar("SELECT count(*) FROM users") == 2000
    live_names = dict(live.query("SELECT user_id, user_name FROM users"))
    assert dict(staged.query("SELECT user_id, profile_data->>'name' FROM user_profiles")) == live_names
    created = staged.scalar("SELECT profile_data->>'created' FROM user_profiles WHERE user_id = 1")
    assert created == live.scalar("SELECT to_jsonb(creation_date)->>0 FROM users WHERE user_id = 1")
    # R3: additive column
    cols = [
        c
        for (c,) in staged.query("SELECT column_name FROM information_schema.columns WHERE table_name = 'users' ORDER BY ordinal_position")
    ]
    assert cols == ["user_id", "last_login"]
    assert history(staged) == [
        ("1", "V1__rename_user_name_to_full_name.sql", True),
        ("2", "V2__user_profiles.sql", True),
        ("3", "V3__last_login.sql", True),
    ]
    assert not pg_migrate.migrate(staged.conn, migrations_dir=str(MIGRATIONS / "reference"))["changed"]


def test_edited_applied_migration_fails_naming_version_file_and_checksums(staged, tmp_path):
    d = tmp_path / "m"
    shutil.copytree(MIGRATIONS / "reference", d)
    pg_migrate.migrate(staged.conn, migrations_dir=str(d))
    original = pg_migrate.checksum((d / "V2__user_profiles.sql").read_text())
    (d / "V2__user_profiles.sql").write_text((d / "V2__user_profiles.sql").read_text() + "\n-- edited afterwards\n")
    (d / "V4__more.sql").write_text("CREATE TABLE more (id int);")
    edited = pg_migrate.checksum((d / "V2__user_profiles.sql").read_text())
    with pytest.raises(IntegrityError) as exc:
        pg_migrate.migrate(staged.conn, migrations_dir=str(d))
    assert f"version 2 (V2__user_profiles.sql) was applied with checksum {original} but now has {edited}" in str(exc.value)
    assert staged.scalar("SELECT to_regclass('more')") is None  # nothing ran


def test_failing_migration_reports_file_statement_line_and_server_error(staged, run_module):
    r = run_module("postgresql_migrate", {**staged.params, "migrations_dir": str(MIGRATIONS / "broken")})
    assert r.failed and r["error"] == "OperationFailed"
    assert 'migration 2 (V2__typo.sql), statement 3 of 3 at line 5 failed: syntax error at or near "TABEL"' in r.msg
    assert "Statement: CREATE TABEL oops (id int)" in r.msg and "rolled back; earlier migrations stay applied and recorded" in r.msg
    assert r["failed_migration"]["sqlstate"] == "42601" and r["failed_migration"]["line"] == 5
    assert [a["version"] for a in r["applied"]] == ["1"]
    assert history(staged) == [("1", "V1__create_audit.sql", True)]
    assert staged.scalar("SELECT to_regclass('audit_archive')") is None and staged.scalar("SELECT count(*) FROM audit") == 0
    assert staged.scalar("SELECT to_regclass('never_created')") is None


def test_duplicate_version_in_a_directory_fails_before_anything_runs(staged):
    with pytest.raises(InvalidInput) as exc:
        pg_migrate.migrate(staged.conn, migrations_dir=str(MIGRATIONS / "duplicate"))
    assert "duplicate migration version(s): version 1 in V1_0__same_version.sql and V1__first.sql" in str(exc.value)
    assert "nothing was run" in exc.value.hint
    assert staged.scalar("SELECT to_regclass('first')") is None and history(staged) == []


def test_non_transactional_migration_for_concurrent_index(staged):
    r = pg_migrate.migrate(staged.conn, migrations_dir=str(MIGRATIONS / "concurrent"))
    assert r["applied"][0]["transactional"] is False and r["applied"][0]["statements"] == 2
    assert staged.scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_user_name'::regclass") is True
    assert history(staged) == [("1", "V1__index_without_blocking_writes.sql", False)]


def test_concurrent_index_in_a_transaction_gets_a_hint(staged):
    sql = "CREATE INDEX CONCURRENTLY users_cd ON users (creation_date)"
    with pytest.raises(OperationFailed) as exc:
        pg_migrate.migrate(staged.conn, migrations=[{"version": "1", "sql": sql}])
    assert "cannot run inside a transaction block" in str(exc.value)
    assert "mark the migration non-transactional (-- dualboot: transactional=false)" in exc.value.hint
    r = pg_migrate.migrate(staged.conn, migrations=[{"version": "1", "sql": sql, "transactional": False}])
    assert r["applied"][0]["transactional"] is False


def test_non_transactional_failure_says_what_stayed_committed(staged):
    sql = "CREATE TABLE a1 (id int);\nCREATE TABLE a2 (id int);\nSELECT no_such_function();\n"
    with pytest.raises(OperationFailed, match="statement 3 of 3 at line 3 failed: function no_such_function\\(\\) does not exist") as exc:
        pg_migrate.migrate(staged.conn, migrations=[{"version": "1", "sql": sql, "transactional": False}])
    assert "NOT transactional: its statements 1 to 2 were committed and stay; it was not recorded" in str(exc.value)
    assert staged.scalar("SELECT to_regclass('a2')") is not None and history(staged) == []


DUPLICATES = "INSERT INTO users (user_name) SELECT user_name FROM users WHERE user_id <= 3"


def invalid_indexes(db) -> list[str]:
    return [r[0] for r in db.query("SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid ORDER BY 1")]


@pytest.mark.parametrize("first", ["", "CREATE TABLE a1 (id int);\n"], ids=["alone", "after-a-committed-statement"])
def test_failed_concurrent_unique_index_names_the_invalid_index_it_left(staged, first):
    """CREATE UNIQUE INDEX CONCURRENTLY failing on duplicates leaves an INVALID index: the message says so, never 'nothing'."""
    staged.execute(DUPLICATES)
    sql = first + "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS users_name_key ON users (user_name);\n"
    with pytest.raises(OperationFailed, match="could not create unique index") as exc:
        pg_migrate.migrate(staged.conn, migrations=[{"version": "1", "sql": sql, "transactional": False}])
    assert invalid_indexes(staged) == ["users_name_key"]
    text = str(exc.value)
    assert "nothing of it was committed" not in text
    assert "left the INVALID index public.users_name_key" in text and "not recorded as applied" in text
    assert "DROP INDEX CONCURRENTLY public.users_name_key;" in exc.value.hint
    assert exc.value.details["failed_migration"]["invalid_indexes"] == ["public.users_name_key"]
    assert history(staged) == []


def test_rerun_does_not_record_a_migration_whose_index_is_invalid(staged):
    """The re-run's IF NOT EXISTS skips the invalid leftover: the migration fails instead of being recorded as applied."""
    staged.execute(DUPLICATES)
    migration = {
        "version": "1",
        "sql": "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS users_name_key ON users (user_name)",
        "transactional": False,
    }
    with pytest.raises(OperationFailed):
        pg_migrate.migrate(staged.conn, migrations=[migration])
    staged.execute("DELETE FROM users WHERE user_id > 2000")  # the duplicates are fixed, the invalid index stays
    with pytest.raises(OperationFailed, match="index public.users_name_key .* is INVALID") as exc:
        pg_migrate.migrate(staged.conn, migrations=[migration])
    assert "not recorded as applied" in str(exc.value) and "DROP INDEX CONCURRENTLY public.users_name_key;" in exc.value.hint
    assert history(staged) == []
    # A transactional migration that names it is refused the same way (and rolled back).
    with pytest.raises(OperationFailed, match="is INVALID"):
        pg_migrate.migrate(
            staged.conn,
            migrations=[
                {
                    **migration,
                    "sql": "CREATE TABLE a3 (id int); CREATE UNIQUE INDEX IF NOT EXISTS users_name_key ON users (user_name)",
                    "transactional": True,
                }
            ],
        )
    assert staged.scalar("SELECT to_regclass('a3')") is None
    staged.execute("DROP INDEX CONCURRENTLY users_name_key")
    r = pg_migrate.migrate(staged.conn, migrations=[migration])
    assert r["applied"][0]["version"] == "1" and invalid_indexes(staged) == []
    assert history(staged) == [("1", "inline", False)]


def test_out_of_order_version_is_refused(staged):
    pg_migrate.migrate(staged.conn, migrations=[{"version": "2", "sql": "CREATE TABLE t2 (id int)"}])
    with pytest.raises(InvalidInput, match="migration\\(s\\) 1.5 are pending but version 2 is already applied"):
        pg_migrate.migrate(
            staged.conn, migrations=[{"version": "1.5", "sql": "SELECT 1"}, {"version": "2", "sql": "CREATE TABLE t2 (id int)"}]
        )


def test_migrating_the_default_entry_is_refused(pg, live, staged, tmp_path):
    record = tmp_path / "shop.json"
    entries = {
        "blue": {"login_host": pg.host, "login_port": pg.port, "login_db": live.name},
        "green": {"login_host": pg.host, "login_port": pg.port, "login_db": staged.name},
    }
    record.write_text(json.dumps({"format": 1, "name": "shop", "engine": "postgresql", "entries": entries, "default": "blue"}))
    before = fingerprint(live)
    with pytest.raises(SafetyRefusal, match="refusing to migrate .* it is|refusing to migrate .*default entry 'blue'"):
        pg_migrate.migrate(live.conn, migrations=[{"version": "1", "sql": R1}], boot_record=str(record))
    assert fingerprint(live) == before and history(live) == []
    assert pg_migrate.migrate(staged.conn, migrations=[{"version": "1", "sql": R1}], boot_record=str(record))["changed"]
