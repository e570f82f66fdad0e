"""postgresql_drift mark=true: a marker taken now (what cutover records for rollback) and checked later."""

from __future__ import annotations


def test_mark_then_check_through_ansible(run_module, pg_db):
    pg_db.execute("CREATE TABLE users (user_id serial PRIMARY KEY, full_name text)")
    pg_db.execute("INSERT INTO users (full_name) SELECT 'u' FROM generate_series(1, 50)")
    marked = run_module("postgresql_drift", {**pg_db.params, "mark": True})
    assert not marked.failed and not marked.changed, marked.msg
    assert marked["marker"]["rows_measured"]["rows"] == 50 and "marked" in marked["summary"]

    quiet = run_module("postgresql_drift", {**pg_db.params, "marker": marked["marker"], "exact": True})
    assert not quiet.failed and quiet["drift"] is False, quiet.result

    pg_db.execute("INSERT INTO users (full_name) VALUES ('written after the cutover')")
    moved = run_module("postgresql_drift", {**pg_db.params, "marker": marked["marker"], "exact": True})
    assert moved["drift"] is True
    assert [t["table"] for t in moved["tables"]] == ["public.users"] and moved["tables"][0]["rows_changed"] == 1


def test_mark_excludes_marker_and_backup(run_module, pg_db):
    both = run_module("postgresql_drift", {**pg_db.params, "mark": True, "marker": {"taken_at": "x"}})
    assert both.failed and "mutually exclusive" in both.msg
