"""postgresql_freeze on a real server: new and already-open sessions, open writers, exact thaw."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from ansible_collections.dualboot.db.plugins.module_utils import pg_freeze
from ansible_collections.dualboot.db.plugins.module_utils.errors import OperationFailed

SCHEMA = "CREATE TABLE users (user_id serial PRIMARY KEY, user_name text); CREATE TABLE audit (at timestamptz);"


@pytest.fixture
def db(pg_db):
    pg_db.execute(SCHEMA)
    return pg_db


def can_write(conn: psycopg.Connection) -> bool:
    try:
        conn.execute("INSERT INTO users (user_name) VALUES ('w')")
        return True
    except psycopg.errors.ReadOnlySqlTransaction:
        return False


def db_setting(db) -> list:
    return db.query(
        "SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = %s AND setrole = 0",
        (db.name,),
    )


def test_freeze_blocks_new_and_open_sessions_and_thaw_undoes_exactly(db, run_module):
    before_freeze = db.connect()  # an application session opened before the freeze
    assert can_write(before_freeze)
    r = run_module("postgresql_freeze", {**db.params, "state": "frozen"}, diff=True)
    assert not r.failed, r.msg
    assert r.changed and r["tables_guarded_now"] == 2 and r["sessions_open"] == 1
    assert r["diff"]["after"] == {"frozen": True, "default_transaction_read_only": "on", "guarded_tables": 2, "unguarded_tables": 0}

    new = db.connect()
    assert not can_write(new)  # read-only default
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match="frozen by dualboot.db: INSERT on public.users refused"):
        before_freeze.execute("INSERT INTO users (user_name) VALUES ('w')")
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match="TRUNCATE"):
        before_freeze.execute("TRUNCATE audit")
    new.execute("SET default_transaction_read_only = off")  # a session that lifts its own default still cannot write
    assert not can_write(new)
    assert new.execute("SELECT count(*) FROM users").fetchone()[0] == 1  # reads keep working

    assert not pg_freeze.freeze(db.conn, wait_timeout=5, terminate=False, check_mode=False)["changed"]  # idempotent

    r = run_module("postgresql_freeze", {**db.params, "state": "thawed"})
    assert not r.failed and r.changed, r.msg
    assert r["read_only_sessions_left"] == 1 and "reconnect" in r["warnings"][0]
    assert can_write(before_freeze)  # the already-open session writes again at once
    after_thaw = db.connect()
    assert can_write(after_thaw)
    assert db_setting(db) == [] and db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'dualboot'") == 0
    assert db.scalar("SELECT count(*) FROM pg_trigger WHERE tgname = 'dualboot_freeze'") == 0
    assert not pg_freeze.thaw(db.conn, wait_timeout=5, terminate=False, check_mode=False)["changed"]
    for c in (before_freeze, new, after_thaw):
        c.close()


def test_check_mode_changes_nothing(db, run_module):
    r = run_module("postgresql_freeze", {**db.params, "state": "frozen"}, check=True, diff=True)
    assert r.changed and r["diff"]["before"]["frozen"] is False and r["diff"]["after"]["frozen"] is True
    assert db_setting(db) == [] and db.scalar("SELECT count(*) FROM pg_trigger WHERE tgname = 'dualboot_freeze'") == 0
    with db.connect() as c:
        assert can_write(c)


def test_open_write_transaction_bounds_the_wait_then_fails_or_is_terminated(db):
    writer = db.connect(autocommit=False)
    writer.execute("INSERT INTO users (user_name) VALUES ('in flight')")  # open, uncommitted write transaction
    t0 = time.monotonic()
    with pytest.raises(OperationFailed, match="open write transactions still hold tables after wait_timeout=1s") as err:
        pg_freeze.freeze(db.conn, wait_timeout=1, terminate=False, check_mode=False)
    assert time.monotonic() - t0 < 10
    assert err.value.details["sessions"][0]["pid"] == writer.info.backend_pid
    # undone: nothing of the freeze is left, and the writer can still commit
    assert db_setting(db) == [] and db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'dualboot'") == 0
    writer.commit()
    assert db.scalar("SELECT count(*) FROM users") == 1

    writer.execute("INSERT INTO users (user_name) VALUES ('never committed')")
    r = pg_freeze.freeze(db.conn, wait_timeout=1, terminate=True, check_mode=False)
    assert [t["pid"] for t in r["terminated"]] == [writer.info.backend_pid]
    with pytest.raises(psycopg.OperationalError):
        writer.commit()
    assert db.scalar("SELECT count(*) FROM users") == 1  # the terminated transaction rolled back
    pg_freeze.thaw(db.conn, wait_timeout=5, terminate=False, check_mode=False)


def test_writer_that_commits_within_the_wait_is_let_through(db):
    writer = db.connect(autocommit=False)
    writer.execute("INSERT INTO users (user_name) VALUES ('finishes in time')")
    threading.Timer(1.0, writer.commit).start()
    r = pg_freeze.freeze(db.conn, wait_timeout=10, terminate=False, check_mode=False)
    assert r["terminated"] == [] and db.scalar("SELECT count(*) FROM users") == 1
    pg_freeze.thaw(db.conn, wait_timeout=5, terminate=False, check_mode=False)
    writer.close()


def test_previous_setting_is_restored_and_sessions_opened_while_frozen_are_ended(db):
    db.execute(f'ALTER DATABASE "{db.name}" SET default_transaction_read_only = off')
    db.execute("CREATE SCHEMA dualboot; CREATE TABLE dualboot.migrations (id int)")  # existing schema: kept by thaw
    pg_freeze.freeze(db.conn, wait_timeout=5, terminate=False, check_mode=False)
    while_frozen = db.connect()
    assert not can_write(while_frozen)
    r = pg_freeze.thaw(db.conn, wait_timeout=5, terminate=True, check_mode=False)
    assert [t["pid"] for t in r["terminated"]] == [while_frozen.info.backend_pid]
    assert db_setting(db) == [(["default_transaction_read_only=off"],)]
    assert db.scalar("SELECT count(*) FROM dualboot.migrations") == 0
    with db.connect() as c:
        assert can_write(c)
