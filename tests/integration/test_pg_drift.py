"""postgresql_drift against a real server: no false negatives for committed writes, even before PostgreSQL 15
publishes a session's statistics, for transactions open at the marker, after a statistics reset."""

from __future__ import annotations

import os

import psycopg
import pytest
from harness.pg import PgCluster
from integration.data.pg.staging import make_users

from ansible_collections.dualboot.db.plugins.module_utils import pg_backup, pg_clone, pg_drift
from ansible_collections.dualboot.db.plugins.module_utils.errors import InvalidInput


@pytest.fixture(scope="module")
def quiet():
    """A cluster of this module's own without autovacuum, so no background transaction moves the xid horizon."""
    if os.environ.get("DUALBOOT_TEST_PG_URI"):
        pytest.skip("needs a cluster of its own (initdb/pg_ctl)")
    cluster = PgCluster(settings={"autovacuum": "off"}, name="drift").start()
    yield cluster
    cluster.stop()


@pytest.fixture
def live(quiet):
    db = quiet.create_database()
    make_users(db, rows=500)
    yield db
    quiet.drop_database(db.name)


def marker_of(db, tmp_path) -> dict:
    """The marker exactly as a backup records it."""
    return pg_backup.backup(db.conn, str(tmp_path / f"b{os.urandom(3).hex()}"), fmt="custom")["marker"]


def check(db, marker, exact=False) -> dict:
    return pg_drift.drift(db.conn, marker=marker, exact=exact)


def idle_in_transaction_after(db, sql: str) -> psycopg.Connection:
    """Run and commit ``sql``, then leave the session idle in a new transaction: PostgreSQL 15 publishes a
    session's statistics only when it goes idle outside a transaction, so the counters do not show this write."""
    c = psycopg.connect(db.uri)
    c.execute(sql)
    c.commit()
    c.execute("SELECT 1")
    return c


def test_no_writes_is_proven_cheaply_by_the_xid_horizon(live, tmp_path):
    marker = marker_of(live, tmp_path)
    r = check(live, marker)
    assert r["drift"] is False and r["method"] == "xid_horizon" and r["tables_complete"]
    assert r["tables"] == [] and r["duration_s"] < 5 and "no writes" in r["summary"]


@pytest.mark.parametrize(
    "sql, table, written, removed",
    [
        ("INSERT INTO users (user_name) VALUES ('new')", "public.users", 1, 0),
        ("UPDATE orders SET amount = amount + 1 WHERE order_id = 7", "public.orders", 1, 1),
        ("DELETE FROM orders WHERE order_id IN (3, 4)", "public.orders", 0, 2),
        ("TRUNCATE orders", "public.orders", 0, 500),
    ],
    ids=["insert", "update", "delete", "truncate"],
)
def test_every_committed_write_is_reported_before_its_statistics_arrive(live, tmp_path, sql, table, written, removed):
    marker = marker_of(live, tmp_path)
    writer = idle_in_transaction_after(live, sql)
    try:
        r = check(live, marker)
        assert r["drift"] is True, r["reason"]
        assert table in {t["table"] for t in r["tables"]}
        exact = check(live, marker, exact=True)
        assert exact["drift"] is True and exact["method"] == "exact_scan" and exact["tables_complete"]
        (hit,) = exact["tables"]
        assert hit["table"] == table
        assert hit["detail"] == {"rows_written_since": written, "rows_removed_since": removed}
        assert hit["change"] == ("rewritten" if sql.startswith("TRUNCATE") else "written")
    finally:
        writer.close()


def test_writes_published_in_statistics_answer_without_a_scan(live, tmp_path):
    marker = marker_of(live, tmp_path)
    with live.connect() as c:  # autocommit session that ends: its statistics are published at exit
        c.execute("UPDATE users SET user_name = user_name || '!' WHERE user_id <= 10")
    r = check(live, marker)
    assert r["drift"] is True and r["method"] == "counters" and not r["tables_complete"]
    assert r["tables"] == [
        {"table": "public.users", "change": "written", "rows_changed": 10, "detail": {"n_tup_ins": 0, "n_tup_upd": 10, "n_tup_del": 0}}
    ]


def test_rolled_back_writes_are_not_drift_for_the_exact_scan(live, tmp_path):
    marker = marker_of(live, tmp_path)
    with psycopg.connect(live.uri) as c:
        c.execute("INSERT INTO users (user_name) SELECT 'x' FROM generate_series(1, 5)")
        c.rollback()
    exact = check(live, marker, exact=True)
    assert exact["drift"] is False and exact["method"] == "exact_scan"
    # The statistics count the rolled-back insert: the cheap path reports it (a documented false positive).
    cheap = check(live, marker)
    assert cheap["drift"] is True and cheap["method"] == "counters" and cheap["tables"][0]["detail"]["n_tup_ins"] == 5


def test_transactions_open_at_the_marker_that_commit_later_are_reported(live, tmp_path):
    """Rows of a transaction (and its subtransactions) in progress at the marker are not in the copy; when it
    commits later, that is drift - even when it exactly offsets a delete in the same xid band."""
    live.execute("CREATE TABLE band (id int PRIMARY KEY, v text)")
    early = psycopg.connect(live.uri)
    early.execute("SELECT pg_current_xact_id()")  # holds the snapshot's xmin
    live.execute("INSERT INTO band VALUES (1, 'a'), (2, 'b')")  # committed, but inside the marker's xid band
    late = psycopg.connect(live.uri)
    late.execute("INSERT INTO band VALUES (10, 'late')")
    late.execute("SAVEPOINT s")
    late.execute("UPDATE users SET user_name = 'changed in a subtransaction' WHERE user_id = 1")
    try:
        marker = marker_of(live, tmp_path)
        band = next(t for t in marker["tables"] if t["name"] == "band")
        assert band["rows"]["band"] == 2 and band["rows"]["old"] == 0

        live.execute("DELETE FROM band WHERE id = 1")
        early.execute("INSERT INTO band VALUES (3, 'c')")  # same count in the band as before: only the digest differs
        early.commit()
        exact = check(live, marker, exact=True)
        assert exact["drift"] is True and [t["table"] for t in exact["tables"]] == ["public.band"]

        late.commit()
        exact = check(live, marker, exact=True)
        assert {t["table"] for t in exact["tables"]} == {"public.band", "public.users"}
        users = next(t for t in exact["tables"] if t["table"] == "public.users")
        assert users["detail"] == {"rows_written_since": 1, "rows_removed_since": 1}
    finally:
        early.close()
        late.close()


def test_statistics_reset_does_not_hide_writes(live, tmp_path):
    marker = marker_of(live, tmp_path)
    with live.connect() as c:
        c.execute("DELETE FROM orders WHERE order_id = 1")
    live.execute("SELECT pg_stat_reset()")
    r = check(live, marker)
    assert r["drift"] is True and r["method"] == "exact_scan" and "statistics were reset" in r["reason"]
    assert r["stats_reset"] is not None and r["tables"][0]["detail"]["rows_removed_since"] == 1


def test_tables_added_and_dropped_are_drift(live, tmp_path):
    marker = marker_of(live, tmp_path)
    live.execute("CREATE TABLE audit (x int); DROP VIEW big_orders; DROP TABLE orders")
    r = check(live, marker)
    assert r["drift"] is True
    changes = {t["table"]: t["change"] for t in r["tables"]}
    assert changes == {"public.audit": "added", "public.orders": "dropped"}


def test_vacuum_full_alone_is_not_drift_for_the_exact_scan(live, tmp_path):
    marker = marker_of(live, tmp_path)
    live.execute("VACUUM FULL users")
    r = check(live, marker, exact=True)
    assert r["drift"] is False and r["tables"][0]["change"] == "rewritten" and r["tables"][0]["rows_changed"] == 0


def test_marker_of_another_database_is_refused(quiet, live, tmp_path):
    other = quiet.create_database()
    try:
        other.execute("CREATE TABLE users (user_id int)")
        with pytest.raises(InvalidInput, match=f"taken on database '{live.name}' .* this connection reaches database '{other.name}'"):
            check(other, marker_of(live, tmp_path))
    finally:
        quiet.drop_database(other.name)


def test_template_clone_marker_then_drift_module(quiet, live, tmp_path, run_module):
    """The marker a template clone returns works through the module and sees no false drift."""
    staged = f"{live.name}_staged"
    try:
        out = pg_clone.clone(live.conn, live.conn.with_db(staged), method="template")
        assert out["marker"]["rows_measured"]["on"] == "snapshot"
        r = run_module("postgresql_drift", {**live.params, "marker": out["marker"], "exact": True}, check=True)
        assert not r.failed, r.msg
        assert r["drift"] is False and not r.changed and quiet.password not in r.output
        live.execute("UPDATE users SET creation_date = now() WHERE user_id = 42")
        r = check(live, out["marker"])
        assert r["drift"] is True and r["tables"][0]["table"] == "public.users"
    finally:
        quiet.drop_database(staged)


def test_backup_directory_as_marker_source(live, tmp_path):
    dest = tmp_path / "b"
    pg_backup.backup(live.conn, str(dest))
    assert pg_drift.drift(live.conn, backup=str(dest))["drift"] is False
    live.execute("INSERT INTO users (user_name) VALUES ('later')")
    assert pg_drift.drift(live.conn, backup=str(dest))["drift"] is True


def test_listed_and_age_based_row_classes_agree(live, tmp_path, monkeypatch):
    """The marker counts rows by xid lists when the band is short, by age() otherwise: both must agree."""
    early = psycopg.connect(live.uri)
    early.execute("SELECT pg_current_xact_id()")
    live.execute("INSERT INTO users (user_name) VALUES ('in the band')")
    try:
        listed = marker_of(live, tmp_path)
        monkeypatch.setattr(pg_drift, "XID_LIST_LIMIT", 0)
        by_age = marker_of(live, tmp_path)
    finally:
        early.close()
    assert [t["rows"] for t in listed["tables"]] == [t["rows"] for t in by_age["tables"]]
    assert next(t for t in listed["tables"] if t["name"] == "users")["rows"]["band"] == 1
