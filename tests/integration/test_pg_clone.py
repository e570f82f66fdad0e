"""postgresql_clone against real servers: every method, the choice auto makes and why, atomic replace, bad input."""

from __future__ import annotations

import json
import os
import pwd
import subprocess

import psycopg
import pytest
from harness.net import free_port
from harness.pg import pg_bin
from integration.data.pg.staging import databases, fingerprint, make_users, temp_leftovers, tiny_filesystem

from ansible_collections.dualboot.db.plugins.module_utils import pg_backup, pg_clone, pg_drift
from ansible_collections.dualboot.db.plugins.module_utils.errors import ConnectionFailed, InvalidInput, OperationFailed, SafetyRefusal
from ansible_collections.dualboot.db.plugins.module_utils.postgresql import PgConnection


@pytest.fixture
def live(pg):
    db = pg.create_database()
    make_users(db)
    yield db
    pg.drop_database(db.name)


@pytest.fixture
def green(pg):
    name = f"green_{os.urandom(4).hex()}"
    yield name
    pg.drop_database(name)


def args(source, target_db, **extra):
    return {**source.server.login_params(), "source": {"login_db": source.name}, "target": {"login_db": target_db}, **extra}


def test_same_server_auto_uses_template_and_returns_the_marker(pg, live, green, run_module):
    before = fingerprint(live)
    r = run_module("postgresql_clone", args(live, green), check=True, diff=True)
    assert not r.failed and r.changed and r["method"] == "template" and green not in databases(pg)
    assert r["diff"]["before"] == {"database": green, "exists": False}

    r = run_module("postgresql_clone", args(live, green))
    assert not r.failed, r.msg
    assert r["method"] == "template" and "no other session on the source" in r["method_reason"]
    assert r["marker"]["database"] == live.name and r["marker"]["rows_measured"]["rows"] == 4000
    assert r["duration_s"] > 0 and "MB/s" in r["summary"] and pg.password not in r.output
    assert fingerprint(pg.db(green)) == before == fingerprint(live) and temp_leftovers(pg) == []

    with pytest.raises(InvalidInput, match="already exists.*if_exists: replace"):
        pg_clone.clone(live.conn, live.conn.with_db(green))


def test_auto_falls_back_to_a_snapshot_copy_when_sessions_use_the_source(pg, live, green):
    with live.connect() as busy:
        busy.execute("SELECT 1")
        r = pg_clone.clone(live.conn, live.conn.with_db(green))
        assert r["method"] == "stream" and "1 session(s) are connected to the source" in r["method_reason"]
        with pytest.raises(OperationFailed, match="other session\\(s\\) are connected to the source database") as exc:
            pg_clone.clone(live.conn, live.conn.with_db(green + "x"), method="template")
        assert "use method: auto or dump_restore" in exc.value.hint
    assert fingerprint(pg.db(green)) == fingerprint(live)
    assert r["marker"]["rows_measured"]["on"] == "snapshot" and green + "x" not in databases(pg)


def schema_dump(server, db: str) -> str:
    """pg_dump --schema-only of a database, without the per-run \\restrict keys."""
    out = subprocess.run(
        [str(pg_bin() / "pg_dump"), "--schema-only", "-h", server.host, "-p", str(server.port), "-U", server.user, db],
        env={**os.environ, "PGPASSWORD": server.password},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return "\n".join(line for line in out.splitlines() if not line.startswith(("\\restrict", "\\unrestrict")))


@pytest.mark.parametrize("method", ["dump_restore", "pipe", "stream"])
def test_every_cross_server_method_copies_schema_and_data_exactly(pg, pg2, live, method, monkeypatch):
    """Schema (pg_dump --schema-only), rows, sequence values, large objects, grants and comments arrive;
    stream splits its big table in ctid ranges (chunk size lowered so the test data is split too)."""
    live.execute(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_reader') THEN CREATE ROLE app_reader; END IF; END $$;"
        "GRANT SELECT ON users TO app_reader; COMMENT ON TABLE users IS 'the users';"
        "CREATE TABLE big AS SELECT i, md5(i::text) AS h, i * 2 AS dropped FROM generate_series(1, 300000) i;"
        "ALTER TABLE big ADD PRIMARY KEY (i), ADD COLUMN tripled int GENERATED ALWAYS AS (i * 3) STORED, DROP COLUMN dropped;"
        "ALTER TABLE big ALTER COLUMN i ADD GENERATED ALWAYS AS IDENTITY;"
        "CREATE TABLE big_child (note text) INHERITS (big);"
        "INSERT INTO big_child (i, h, note) OVERRIDING SYSTEM VALUE VALUES (-1, 'x', 'child');"
        "SELECT lo_from_bytea(0, 'a large object'); CREATE SEQUENCE counter; SELECT setval('counter', 42);"
    )
    pg2.db("postgres").execute(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_reader') THEN CREATE ROLE app_reader; END IF; END $$;"
    )
    monkeypatch.setattr(pg_clone, "STREAM_CHUNK_BYTES", 2 * 1024 * 1024)
    target = pg2.db(f"copy_{method}_{os.urandom(3).hex()}")
    try:
        r = pg_clone.clone(live.conn, target.conn, method=method, jobs=2)
        assert r["method"] == method
        if method == "stream":
            assert r["timings"]["streamed_tables"] == 1
        assert schema_dump(pg2, target.name) == schema_dump(pg, live.name)
        assert fingerprint(target) == fingerprint(live)
        assert target.scalar("SELECT lo_get(oid) FROM pg_largeobject_metadata") == b"a large object"
        assert temp_leftovers(pg2) == []
    finally:
        pg2.drop_database(target.name)


BINARY_TYPES = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN positive AS integer CHECK (VALUE > 0);
CREATE TYPE pair AS (a int, b text);
CREATE TABLE builtin_types (
    id int PRIMARY KEY, n numeric, m money, ts timestamptz, iv interval, b bytea, j jsonb, js json, ia int[], ta text[],
    u uuid, ip inet, bits varbit, tv tsvector, pt point, r int4range, c char(7), t text, f float8, d date, feeling mood);
INSERT INTO builtin_types VALUES
    (1, 'NaN', 12.34, '2024-02-29 23:59:59.999999+05', '1 year 2 mons -3 days 04:05:06', '\\x00ff10', '{"a": [1, 2.50, null]}',
     '{"keep":  "spacing"}', '{1,NULL,3}', '{"a b","c\\"d",NULL}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '10.1.2.3/8', B'10110',
     'fat:2 rat:3', '(1.5,-2)', '[3,7)', 'äö', E'tab\\there\\nnewline ✓', 'Infinity', 'infinity', 'happy'),
    (2, -0.000001, -1, NULL, NULL, '', 'null', 'null', '{}', '{}', NULL, '::1', B'', '', NULL, 'empty', '', '', -0.0,
     '4713-01-01 BC', NULL);
INSERT INTO builtin_types SELECT i, i / 7.0, i, now(), make_interval(secs => i), int4send(i), jsonb_build_object('i', i),
    json_build_array(i), ARRAY[i], ARRAY[i::text], gen_random_uuid(), '192.168.0.1', B'1', to_tsvector('row ' || i),
    point(i, i), int4range(i, i + 1), 'c', repeat('x', i % 50), i / 3.0, date '2000-01-01' + i, 'ok'
    FROM generate_series(3, 5000) i;
CREATE TABLE user_types (id int PRIMARY KEY, p positive, pr pair);
INSERT INTO user_types SELECT i, i, ROW(i, 'x' || i)::pair FROM generate_series(1, 500) i;
"""


def test_stream_copies_every_builtin_type_exactly_in_binary_and_user_types_as_text(pg, pg2, live, monkeypatch):
    """Within one major, tables of PostgreSQL's own types (and enums) are copied in binary COPY format; a table
    with a domain or composite type of the user's goes as text. Every value arrives as it was."""
    live.execute(BINARY_TYPES)
    monkeypatch.setattr(pg_clone, "STREAM_TABLE_BYTES", 0)  # every table is streamed
    target = pg2.db(f"copy_types_{os.urandom(3).hex()}")
    try:
        r = pg_clone.clone(live.conn, target.conn, method="stream", jobs=2)
        # make_users' two tables and builtin_types in binary; user_types as text
        assert (r["timings"]["streamed_tables"], r["timings"]["binary_tables"]) == (4, 3), r["timings"]
        assert fingerprint(target) == fingerprint(live)
        assert target.scalar("SELECT t FROM builtin_types WHERE id = 1") == "tab\there\nnewline ✓"
        assert target.scalar("SELECT n::text FROM builtin_types WHERE id = 1") == "NaN"
    finally:
        pg2.drop_database(target.name)


def test_auto_across_servers_streams(pg, pg2, live):
    target = pg2.db(f"copy_auto_{os.urandom(3).hex()}")
    try:
        r = pg_clone.clone(live.conn, target.conn)
        assert r["method"] == "stream" and "different servers" in r["method_reason"] and r["jobs"] == (os.cpu_count() or 1)
        assert fingerprint(target) == fingerprint(live) and temp_leftovers(pg2) == []
        assert pg_drift.drift(live.conn, marker=r["marker"])["drift"] is False
    finally:
        pg2.drop_database(target.name)


def test_replace_swaps_the_new_copy_in(pg, live, green):
    pg_clone.clone(live.conn, live.conn.with_db(green))
    pg.db(green).execute("CREATE TABLE migrated_last_time (x int)")
    live.execute("INSERT INTO users (user_name) VALUES ('newer')")
    r = pg_clone.clone(live.conn, live.conn.with_db(green), if_exists="replace", method="pipe")
    assert r["replaced"] and pg.db(green).scalar("SELECT to_regclass('migrated_last_time')") is None
    assert fingerprint(pg.db(green)) == fingerprint(live) and temp_leftovers(pg) == []


@pytest.mark.parametrize("method", ["template", "pipe"])
def test_a_copy_removes_the_half_made_copies_killed_runs_left_and_keeps_the_rest(pg, live, green, method):
    """A run killed while it built the target left <target>__dualboot_tmp_<hex> (a half-made copy, as
    big as the database) on the target server: the next build of that target drops it and says so.
    One with sessions may be another run's build, and a replaced target moved aside may still be
    wanted: both stay, named in the warnings."""
    half_made, busy, moved_aside = (pg_backup.temp_name(green), pg_backup.temp_name(green, "probe"), pg_backup.temp_name(green, "old"))
    other = pg_backup.temp_name(f"{green}x")
    for name in (half_made, busy, moved_aside, other):
        pg.create_database(name)
    try:
        with psycopg.connect(pg.db(busy).uri):
            r = pg_clone.clone(live.conn, live.conn.with_db(green), method=method)
        assert fingerprint(pg.db(green)) == fingerprint(live)
        assert sorted(set(pg.databases()) & {half_made, busy, moved_aside, other}) == sorted([busy, moved_aside, other])
        notes = " ".join(r["warnings"])
        assert f"removed {half_made}" in notes and "interrupted earlier run" in notes, r["warnings"]
        assert f"left {busy}" in notes and "open sessions" in notes and f"{moved_aside} on" in notes, r["warnings"]
        assert other not in notes
    finally:
        for name in (half_made, busy, moved_aside, other):
            pg.drop_database(name)


def test_target_equal_to_source_is_refused(pg, live, run_module):
    before = fingerprint(live)
    r = run_module("postgresql_clone", args(live, live.name, if_exists="replace"))
    assert r.failed and r["error"] == "InvalidInput"
    assert f"target equals source: both name database '{live.name}' on the same server" in r.msg
    assert fingerprint(live) == before


def test_boot_record_default_entry_is_protected(pg, live, green, tmp_path):
    pg_clone.clone(live.conn, live.conn.with_db(green))
    record = tmp_path / "shop.json"
    entries = {"blue": {"login_host": pg.host, "login_port": pg.port, "login_db": green}}
    record.write_text(json.dumps({"format": 1, "name": "shop", "engine": "postgresql", "entries": entries, "default": "blue"}))
    with pytest.raises(SafetyRefusal, match="default entry 'blue'"):
        pg_clone.clone(live.conn, live.conn.with_db(green), if_exists="replace", boot_record=str(record))


def test_wrong_password_and_missing_source_database(pg, live, green):
    bad = PgConnection(**{**live.conn.__dict__, "password": "nope"})
    with pytest.raises(ConnectionFailed, match="password authentication failed"):
        pg_clone.clone(bad, live.conn.with_db(green))
    with pytest.raises(ConnectionFailed, match='database "missing_db" does not exist'):
        pg_clone.clone(live.conn.with_db("missing_db"), live.conn.with_db(green))
    unreachable = PgConnection(**{**live.conn.__dict__, "port": free_port(), "connect_timeout": 3})
    with pytest.raises(ConnectionFailed, match="cannot connect to PostgreSQL"):
        pg_clone.clone(live.conn, unreachable.with_db(green))
    assert green not in databases(pg)


def test_disk_full_in_the_intermediate_directory(pg, live, green):
    live.execute("CREATE TABLE filler AS SELECT i, repeat(md5(i::text), 4) AS pad FROM generate_series(1, 40000) i")
    before = fingerprint(live)
    with tiny_filesystem("2m") as small:
        with pytest.raises(OperationFailed, match=f"disk full on {small} \\(tmp_dir\\)"):
            pg_clone.clone(live.conn, live.conn.with_db(green), method="dump_restore", tmp_dir=small, jobs=1)
        assert os.listdir(small) == []
    assert green not in databases(pg) and temp_leftovers(pg) == [] and fingerprint(live) == before


def test_physical_copy_into_a_cluster_of_its_own(pg_cluster_factory, cluster_dir, run_module):
    source = pg_cluster_factory(name="phys")
    db = source.create_database("shop")
    make_users(db, rows=500)
    port = free_port()
    os_user = pwd.getpwuid(os.geteuid()).pw_name if os.geteuid() else "dualboot"
    params = {
        **source.login_params(),
        "method": "auto",
        "source": {"login_db": "shop"},
        "target": {"login_port": port},
        "target_data_dir": cluster_dir,
        "os_user": os_user,
        "target_settings": {"shared_buffers": "32MB"},
    }
    r = run_module("postgresql_clone", params)
    assert not r.failed, r.msg
    assert r["method"] == "physical" and "target_data_dir given" in r["method_reason"]
    assert r["data_dir"] == cluster_dir and r["cluster_size_bytes"] > 0
    assert r["marker"]["rows_measured"]["on"] == "copy" and source.password not in r.output
    copy = psycopg.connect(host=source.host, port=port, user=source.user, password=source.password, dbname="shop", autocommit=True)
    with copy:
        assert copy.execute("SELECT pg_is_in_recovery()").fetchone()[0] is False
        assert copy.execute("SHOW archive_mode").fetchone()[0] == "off" and copy.execute("SHOW shared_buffers").fetchone()[0] == "32MB"
        copy.execute("INSERT INTO users (user_name) VALUES ('only in the copy')")  # a writable primary of its own
    assert source.db("shop").scalar("SELECT count(*) FROM users WHERE user_name = 'only in the copy'") == 0
    assert pg_drift.drift(db.conn, marker=r["marker"], exact=True)["drift"] is False

    physical = {"target_data_dir": cluster_dir, "os_user": os_user}
    with pytest.raises(InvalidInput, match="exists and is not empty.*if_exists: replace"):
        pg_clone.clone(db.conn, PgConnection(**{**db.conn.__dict__, "port": port}), method="physical", physical=physical)
    with pytest.raises(InvalidInput, match="needs a port of its own"):
        pg_clone.clone(db.conn, db.conn, method="physical", physical=physical)


def test_a_copy_that_does_not_start_says_why_from_its_log(pg_cluster_factory, cluster_dir, run_module):
    """The copy's log goes with the removed copy: the failure must carry what the server said."""
    source = pg_cluster_factory(name="nostart")
    os_user = pwd.getpwuid(os.geteuid()).pw_name if os.geteuid() else "dualboot"
    args = {**source.login_params(), "method": "physical", "source": {"login_db": "postgres"}, "target": {"login_port": free_port()}}
    r = run_module(
        "postgresql_clone", {**args, "target_data_dir": cluster_dir, "os_user": os_user, "target_settings": {"max_connections": "many"}}
    )
    assert r.failed and "did not start" in r.msg and 'invalid value for parameter "max_connections"' in r.msg, r.msg
    assert not os.path.exists(cluster_dir)
