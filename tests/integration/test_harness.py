"""The harness itself: servers really start, are isolated, and Ansible runs modules through the real path."""

from __future__ import annotations

import psycopg
import pytest


def test_postgresql_cluster_is_real_and_logical(pg):
    with psycopg.connect(pg.uri(), autocommit=True) as c:
        assert c.execute("SHOW wal_level").fetchone()[0] == "logical"
        assert c.execute("SHOW server_version_num").fetchone()[0].startswith("15")
        assert c.execute("SELECT inet_server_addr()::text").fetchone()[0].startswith("127.0.0.1")


def test_postgresql_refuses_wrong_password(pg):
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(host=pg.host, port=pg.port, user=pg.user, password="wrong", dbname="postgres")


def test_fresh_database_per_test(pg_db):
    pg_db.execute("CREATE TABLE t (id int)")
    assert pg_db.scalar("SELECT count(*) FROM t") == 0


def test_own_cluster_with_settings(pg_cluster_factory):
    c = pg_cluster_factory({"max_connections": 33})
    assert c.db("postgres").scalar("SHOW max_connections") == "33"


def test_ferretdb_round_trip(mongo, mongo_db):
    mongo_db.users.insert_many([{"_id": i, "userName": f"u{i}"} for i in range(10)])
    assert mongo_db.users.count_documents({}) == 10
    assert mongo_db.users.find_one({"_id": 3})["userName"] == "u3"


def test_run_module_goes_through_ansible(run_module):
    ok = run_module("ansible.builtin.ping", {"data": "pong"})
    assert not ok.failed and ok["ping"] == "pong"
    crash = run_module("ansible.builtin.ping", {"data": "crash"})
    assert crash.failed
