"""PostgreSQL 13 and 17 next to the host's 15 (docs/postgresql-versions.md): the version-specific paths
(catalog queries of the schema diff, clone, backup/restore, compare, drift marks, logical replication)
on each major, and a stage across majors (default on 13 or 15, staged entry on 17) with the way back.

``make test`` runs the most telling case per version; ``@pytest.mark.matrix`` the wide sweep.
"""

from __future__ import annotations

import glob
import os
import pwd
import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest
from harness.ansible import local_deployment, run_playbook
from harness.deployment import TEMPLATE, USERS
from harness.net import free_port
from harness.pg import ExternalPg, PgDatabase, pg_bin
from integration.data.pg.staging import fingerprint
from integration.test_pg_schema_diff_corpus import CORPUS, load_case

from ansible_collections.dualboot.db.plugins.module_utils import expectations, pg_backup, pg_clone, pg_compare, pg_diff, pg_drift, pg_sync
from ansible_collections.dualboot.db.plugins.module_utils.errors import InvalidInput, SafetyRefusal

# Cases whose objects read the catalog columns that differ between 13 and 17 (SQL-standard function bodies,
# procedure signatures, index options, ranges/multiranges); every other case runs in the matrix.
SLICE = ("13_index_changed", "17_function_changed", "18_procedure", "43_range_type")
# Corpus cases that use syntax newer than a major (PostgreSQL 14: SET COMPRESSION).
NEWER_THAN = {"38_column_storage_statistics_compression": 14}

# A database of every kind of object the stage copies, in syntax PostgreSQL 13 accepts.
DATASET = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN positive AS int CHECK (VALUE > 0);
CREATE TABLE users (user_id serial PRIMARY KEY, user_name varchar(255) NOT NULL, mood mood DEFAULT 'ok', created timestamptz);
INSERT INTO users (user_name, created)
  SELECT 'user ' || g, timestamptz '2025-01-01' + g * interval '1 hour' FROM generate_series(1, 3000) g;
CREATE TABLE orders (order_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, user_id int REFERENCES users, amount numeric(10,2),
                     qty positive, meta jsonb, total numeric GENERATED ALWAYS AS (amount * 2) STORED);
INSERT INTO orders (user_id, amount, qty, meta) SELECT 1 + g % 3000, g * 1.25, 1 + g % 7, jsonb_build_object('g', g)
  FROM generate_series(1, 5000) g;
CREATE INDEX orders_user ON orders (user_id) INCLUDE (amount) WHERE amount > 10;
CREATE TABLE events (id bigserial, at date NOT NULL, note text COLLATE "C", PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
INSERT INTO events (at, note) SELECT date '2025-01-01' + g % 300, 'n' || g FROM generate_series(1, 1000) g;
CREATE VIEW big_orders AS SELECT order_id, amount FROM orders WHERE amount > 100;
CREATE MATERIALIZED VIEW order_totals AS SELECT user_id, sum(amount) AS s FROM orders GROUP BY user_id;
CREATE FUNCTION user_count() RETURNS bigint LANGUAGE sql STABLE AS 'SELECT count(*) FROM users';
CREATE TYPE span AS RANGE (subtype = int4);
CREATE STATISTICS orders_stats (dependencies) ON user_id, amount FROM orders;
"""
LARGE_OBJECT = "SELECT lo_from_bytea(0, 'a large object')"  # a copy carries it, logical replication does not


def _case_on(server, path, reference=None):
    """The corpus case's base on two databases of ``server`` (the change on the second); with ``reference``
    (a server of another major) also base and change there. Returns (src, dst, ref, case)."""
    case = load_case(path)
    src, dst = server.create_database(), server.create_database()
    ref = reference.create_database() if reference is not None else None
    for db in (src, dst, ref):
        if db is not None:
            db.execute(case["base"])
    if case["change"].strip():
        for db in (dst, ref):
            if db is not None:
                db.execute(case["change"])
    return src, dst, ref, case


def check_corpus_case(server, path, reference) -> None:
    """On ``server``: the diff meets the case's expectations and its suggested SQL reaches the target; the
    case's schema (base and change) on ``reference`` (another major) and on ``server`` diff empty both ways."""
    if server.version < NEWER_THAN.get(path.stem, 0):
        pytest.skip(f"{path.stem} uses syntax of PostgreSQL {NEWER_THAN[path.stem]}+")
    src, dst, ref, case = _case_on(server, path, reference)
    try:
        result = pg_diff.compare_schemas(src.conn, dst.conn)
        outcome = expectations.check(result["changes"], expectations.normalize(case["expect"], "expect"))
        assert not outcome["missing"], f"expected changes not reported: {outcome['missing']}\nours: {result['summary']}"
        if not case["expect"]:
            assert result["changes"] == []
        for a, b in ((ref, dst), (dst, ref)):
            across = pg_diff.compare_schemas(a.conn, b.conn)
            assert across["changes"] == [], f"PostgreSQL {reference.version} vs {server.version}: {across['summary']}"
        if not case["manual"]:
            with psycopg.connect(src.uri, autocommit=True) as c:
                for stmt in result["sql"]:
                    c.execute(stmt)
            again = pg_diff.compare_schemas(src.conn, dst.conn)
            assert again["changes"] == [], f"suggested SQL did not reach the target: {again['summary']}"
    finally:
        for db in (src, dst):
            server.drop_database(db.name)
        reference.drop_database(ref.name)


@pytest.mark.parametrize("version", [13, 17])
def test_schema_diff_on_each_major_and_empty_across_majors(pg_major, version):
    server = pg_major(version)
    for path in [p for p in CORPUS if p.stem in SLICE]:
        check_corpus_case(server, path, pg_major(15))


@pytest.mark.matrix
@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
@pytest.mark.parametrize("version", [13, 17])
def test_schema_diff_every_corpus_case_on_each_major(pg_major, version, path):
    check_corpus_case(pg_major(version), path, pg_major(15))


def bin_dir(version: int) -> str:
    return str(pg_bin(version))


@pytest.fixture
def live_on(pg_major):
    made = []

    def make(version: int, large_object: bool = True):
        server = pg_major(version)
        db = server.create_database()
        db.execute(DATASET)
        if large_object:
            db.execute(LARGE_OBJECT)
        made.append(db)
        return db

    yield make
    for db in made:
        db.server.drop_database(db.name)


def stage_across(live, target_server, method: str) -> dict:
    """Clone ``live`` into a new database on ``target_server`` with the newer client tools: same rows, schema
    diff empty, data comparison passes, the drift marker sees no write and then one."""
    target = target_server.db(f"staged_{uuid.uuid4().hex[:8]}")
    try:
        tools = bin_dir(max(target_server.version, live.server.version))
        r = pg_clone.clone(live.conn, target.conn, method=method, jobs=2, bin_dir=tools)
        assert r["method"] == method
        assert fingerprint(target) == fingerprint(live)
        diff = pg_diff.compare_schemas(live.conn, target.conn)
        assert diff["changes"] == [], diff["summary"]
        pg_compare.compare(live.conn, target.conn)  # raises on any difference
        assert pg_drift.drift(live.conn, marker=r["marker"])["drift"] is False
        live.execute("INSERT INTO users (user_name) VALUES ('after the copy')")
        assert pg_drift.drift(live.conn, marker=r["marker"])["drift"] is True
        return r
    finally:
        target_server.drop_database(target.name)


def test_stage_by_stream_from_13_into_17(pg_major, live_on, monkeypatch):
    """Every table through the COPY pipes, as text: the binary COPY format is promised within one major only."""
    monkeypatch.setattr(pg_clone, "STREAM_TABLE_BYTES", 0)
    r = stage_across(live_on(13), pg_major(17), "stream")
    assert r["timings"]["streamed_tables"] > 1 and r["timings"]["binary_tables"] == 0, r["timings"]


@pytest.mark.matrix
@pytest.mark.parametrize(
    "old,new,method", [(13, 17, "dump_restore"), (13, 17, "pipe"), (15, 17, "stream"), (15, 17, "dump_restore"), (13, 15, "stream")]
)
def test_stage_across_majors(pg_major, live_on, old, new, method):
    stage_across(live_on(old), pg_major(new), method)


@pytest.mark.matrix
@pytest.mark.parametrize("version", [13, 17])
def test_stage_on_one_major(pg_major, live_on, version):
    stage_across(live_on(version), pg_major(version), "stream")


@pytest.mark.parametrize("old", [13])
def test_clone_from_a_newer_major_into_an_older_one_is_refused_naming_both(pg_major, live_on, old):
    live = live_on(17)
    target = pg_major(old).db(f"older_{uuid.uuid4().hex[:8]}")
    with pytest.raises(InvalidInput, match=rf"source runs PostgreSQL 17, target .* the older PostgreSQL {old}: a dump does not load"):
        pg_clone.clone(live.conn, target.conn, method="stream", bin_dir=bin_dir(17))
    assert target.name not in pg_major(old).databases()


@pytest.mark.matrix
@pytest.mark.parametrize("old,new", [(13, 17), (15, 17), (13, 13), (17, 17)])
def test_backup_on_one_major_restores_into_another(pg_major, live_on, tmp_path, old, new):
    live = live_on(old)
    dest = str(tmp_path / "backup")
    pg_backup.backup(live.conn, dest, bin_dir=bin_dir(max(old, new)), jobs=2)
    target = pg_major(new).db(f"restored_{uuid.uuid4().hex[:8]}")
    try:
        pg_backup.restore(target.conn, dest, bin_dir=bin_dir(max(old, new)), jobs=2)
        assert fingerprint(target) == fingerprint(live)
        assert pg_diff.compare_schemas(live.conn, target.conn)["changes"] == []
        assert pg_drift.drift(live.conn, backup=dest)["drift"] is False
    finally:
        pg_major(new).drop_database(target.name)


def _slots(server) -> list[str]:
    return [r[0] for r in server.db("postgres").query("SELECT slot_name FROM pg_replication_slots ORDER BY 1")]


def sync_across(blue, green_server, new_column: bool = True) -> None:
    """Stream ``blue`` into a new database on ``green_server`` (another major), migrate it, hand the writes
    over with the stream back, write on the new major, roll back: every write is on the old major, once."""
    green = green_server.db(f"g_{blue.name}")
    name = f"t{uuid.uuid4().hex[:6]}"
    fwd, back = pg_sync.stream_name(name, "green"), pg_sync.stream_name(name, "blue")
    tools = bin_dir(max(blue.server.version, green_server.version))
    try:
        pg_sync.start(blue.conn, green.conn, fwd, bin_dir=tools)
        pg_sync.wait_caught_up(blue.conn, green.conn, fwd, None, 60)
        blue.execute("INSERT INTO users (user_name) VALUES ('while syncing')")
        pg_sync.wait_caught_up(blue.conn, green.conn, fwd, None, 30)
        assert fingerprint(green)["public.users"] == fingerprint(blue)["public.users"]
        if new_column:
            green.execute("ALTER TABLE users ADD COLUMN last_login timestamptz")  # the staged entry's migration
        h = pg_sync.handover(blue.conn, green.conn, fwd, back, None, None, [], 30, 5, False, True, "frozen")
        assert h["sequences"]["copied"] >= 1
        green.execute("INSERT INTO users (user_name) VALUES ('on the new major'); UPDATE users SET user_name = 'changed' WHERE user_id = 2")
        pg_sync.wait_caught_up(green.conn, blue.conn, back, None, 30)
        # The rollback starts a stream into the entry it leaves (its own undo loses nothing): published by the
        # old major, which has fewer columns, so whole tables - 13 has no publication column lists.
        h2 = pg_sync.handover(green.conn, blue.conn, back, fwd, None, None, [], 30, 5, False, True, "frozen")
        assert h2["sequences"]["copied"] >= 1
        assert blue.query(
            "SELECT user_name, count(*) FROM users WHERE user_id = 2 OR user_name LIKE 'on the new%' GROUP BY 1 ORDER BY 1"
        ) == [
            ("changed", 1),
            ("on the new major", 1),
        ]
        blue.execute("INSERT INTO users (user_name) VALUES ('after rollback')")  # the sequence continues after the new major's rows
        assert blue.scalar("SELECT max(user_id) FROM users") == 3003
        pg_sync.wait_caught_up(blue.conn, green.conn, fwd, None, 30)
        assert green.scalar("SELECT count(*) FROM users WHERE user_name = 'after rollback'") == 1
        pg_sync.stop(blue.conn, green.conn, fwd)
        assert _slots(blue.server) == [] and _slots(green_server) == []
    finally:
        for src, dst, stream in ((blue, green, fwd), (green, blue, back)):
            try:
                pg_sync.stop(src.conn, dst.conn, stream)
            except Exception as exc:  # noqa: BLE001 - best effort: the test may have failed half way
                print(f"teardown: {exc}")
        green_server.drop_database(green.name)


def test_sync_from_13_into_17_and_back(pg_major, live_on):
    sync_across(live_on(13, large_object=False), pg_major(17))


@pytest.mark.matrix
# Two servers always: a subscription created with its slot on the publisher's own cluster waits forever (PostgreSQL
# docs, CREATE SUBSCRIPTION); same-major sync between two 15 servers is tests/integration/test_pg_sync.py's.
@pytest.mark.parametrize("old,new", [(15, 17), (13, 15)])
def test_sync_across_majors_and_back(pg_major, live_on, old, new):
    sync_across(live_on(old, large_object=False), pg_major(new))


@pytest.mark.matrix
def test_real_schema_staged_from_13_into_17_diffs_exactly_the_migration(pg_major):
    """Zabbix's schema (hundreds of tables, partitions, triggers) on 13, staged by stream into 17: the diff
    across the majors is empty, and a migration on the 17 side is exactly what it reports."""
    from integration.test_pg_schema_diff_restore import _load, _read, _real_schemas  # noqa: PLC0415 - its loader

    schemas = [s for s in _real_schemas() if s.name.startswith("zabbix")]
    assert schemas, "no Zabbix schema in .cache/real-schema/: run make setup (scripts/fetch-real-schemas.sh)"
    old, new = pg_major(13), pg_major(17)
    live = old.create_database()
    staged = new.db(f"staged_{uuid.uuid4().hex[:8]}")
    try:
        _load(live, _read(schemas[0]))
        pg_clone.clone(live.conn, staged.conn, method="stream", jobs=2, bin_dir=bin_dir(17))
        r = pg_diff.compare_schemas(live.conn, staged.conn, expect=[])
        assert r["identical"] and r["objects"]["source"]["table"] >= 200, r["summary"]
        staged.execute(
            "ALTER TABLE hosts ADD COLUMN upgraded_on timestamptz; CREATE INDEX items_upgraded ON items (itemid) WHERE status = 1"
        )
        r = pg_diff.compare_schemas(live.conn, staged.conn)
        assert {(c["kind"], c["name"], c["change"]) for c in r["changes"]} == {
            ("column", "hosts.upgraded_on", "added"),
            ("index", "items_upgraded", "added"),
        }, r["summary"]
    finally:
        old.drop_database(live.name)
        new.drop_database(staged.name)


@pytest.mark.parametrize(
    "old,new,expected",
    [
        (17, 15, r"default entry runs PostgreSQL 17, the staged entry the older PostgreSQL 15"),
        (15, 13, r"staged entry's server runs PostgreSQL 13: continuous sync needs 15 or newer there"),
    ],
)
def test_sync_preflight_refuses_a_staged_entry_it_cannot_carry_naming_the_majors(pg_major, live_on, old, new, expected):
    """Before anything changes: no database, publication or slot is created."""
    live = live_on(old, large_object=False)
    green = pg_major(new).db(f"g_{live.name}")
    with pytest.raises(SafetyRefusal, match=expected):
        pg_sync.preflight(live.conn, green.conn, pg_sync.stream_name("up", "green"))
    assert green.name not in pg_major(new).databases() and _slots(live.server) == []
    assert live.scalar("SELECT count(*) FROM pg_publication") == 0


def test_sync_preflight_refuses_two_databases_of_one_server(pg_major, live_on):
    """CREATE SUBSCRIPTION creating its slot on its own cluster waits forever (found by a 17 -> 17 stream that hung)."""
    live = live_on(17, large_object=False)
    green = live.server.db(f"g_{live.name}")
    with pytest.raises(SafetyRefusal, match=r"databases of the same server .* waits forever for itself"):
        pg_sync.preflight(live.conn, green.conn, pg_sync.stream_name("up", "green"))
    assert green.name not in live.server.databases()


@pytest.mark.matrix
@pytest.mark.parametrize("version", [13, 17])
@pytest.mark.parametrize("step", ["stage", "sync"])
def test_privilege_preflight_as_a_managed_login_on_each_major(pg_major, managed_factory, run_module, version, step):
    """The privilege checks (pg_privileges) on each major, as a managed service's owner role: a copy needs nothing
    more than it has; a sync is refused on 13 for the missing superuser, naming what would allow it, and passes on 17
    (pg_create_subscription, which the managed profile has there)."""
    server = pg_major(version)
    owner = managed_factory(server)
    live = server.db(f"m_{uuid.uuid4().hex[:8]}")
    owner_db = owner.create_database(live.name)
    owner_db.execute("CREATE TABLE users (id int PRIMARY KEY)")
    if step == "sync":
        owner.create_database(f"g_{live.name}")  # sync is checked against an existing staged entry
    r = run_module(
        "postgresql_preflight",
        {**owner.login_params(), "source": {"login_db": live.name}, "target": {"login_db": f"g_{live.name}"}, "step": step},
    )
    if step == "stage" or version >= 16:
        assert not r.failed, r.msg
    else:
        assert r.failed and "superuser" in r.msg and "nothing was changed" in r.msg, r.msg


@pytest.mark.parametrize("version", [13, 17])
def test_a_copy_stage_ends_no_stream_as_a_managed_login_on_each_major(pg_major, managed_factory, run_module, version):
    """Every stage first ends the deployment's streams, reading pg_subscription; 13 hides its oid column from
    non-superusers (14 made it public), so a copy stage as a managed owner role failed there (molecule on bullseye)."""
    server = pg_major(version)
    owner = managed_factory(server)
    live = owner.create_database(f"m_{uuid.uuid4().hex[:8]}")
    staged = owner.create_database(f"g_{live.name}")
    r = run_module(
        "postgresql_sync",
        {"state": "stopped", "name": "shop", "entry": "green", "source": {**owner.login_params(), "login_db": live.name},
         "target": {**owner.login_params(), "login_db": staged.name}},
    )  # fmt: skip
    assert not r.failed and not r.changed, r.msg


def _cluster_at(port: int, like) -> PgDatabase:
    """Database shop of the cluster on ``port``, reached with the logins of ``like`` (a copy of it)."""
    return ExternalPg(like.uri().replace(f":{like.port}/", f":{port}/")).db("shop")


def test_physical_copy_upgraded_from_13_to_17_with_pg_upgrade(pg_cluster_factory, cluster_dir, run_module):
    """The fast path of a major upgrade (issue 15 item 4): the 13 cluster copied with pg_basebackup and upgraded
    by pg_upgrade --link into a 17 cluster of its own; 13 stays untouched and running, the copy has every row,
    an empty schema diff to its source, the source's access rules and settings, and the copy's marker."""
    source = pg_cluster_factory(name="up13", version=13, settings={"work_mem": "'8MB'", "vacuum_defer_cleanup_age": "5"})
    live = source.create_database("shop")
    live.execute(DATASET)
    live.execute(LARGE_OBJECT)
    _serve_ssl_from_the_data_directory(source)
    before = fingerprint(live)
    port = free_port()
    os_user = pwd.getpwuid(os.geteuid()).pw_name if os.geteuid() else "dualboot"
    params = {
        **source.login_params(),
        "method": "physical",
        "source": {"login_db": "shop"},
        "target": {"login_port": port},
        "target_data_dir": cluster_dir,
        "os_user": os_user,
        "target_major": 17,
        "bin_dir": bin_dir(13),
        "target_bin_dir": bin_dir(17),
        "target_settings": {"shared_buffers": "32MB"},
    }
    checked = run_module("postgresql_clone", params, check=True)
    assert not checked.failed and "upgrade it to PostgreSQL 17 with pg_upgrade --link" in checked["summary"], checked.msg
    assert not os.path.exists(cluster_dir)

    r = run_module("postgresql_clone", params)
    assert not r.failed, r.msg
    assert r["server_version_num"] // 10000 == 17 and "upgraded it to PostgreSQL 17" in r["summary"], r["summary"]
    assert {"basebackup_s", "recovery_s", "upgrade_s", "analyze_s", "row_count_s"} <= set(r["timings"]), r["timings"]
    assert any("vacuum_defer_cleanup_age" in w for w in r["warnings"]), r["warnings"]
    assert source.password not in r.output and not glob.glob(cluster_dir + ".dualboot-pg*")
    copy = _cluster_at(port, source)
    assert copy.scalar("SHOW server_version_num").startswith("17") and copy.scalar("SHOW work_mem") == "8MB"
    assert copy.scalar("SHOW shared_buffers") == "32MB" and copy.scalar("SHOW archive_mode") == "off"
    with psycopg.connect(copy.uri, sslmode="require") as c:  # the certificate files of the source's data directory came along
        assert c.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()[0] is True
    assert fingerprint(copy) == before == fingerprint(live)
    assert pg_diff.compare_schemas(live.conn, copy.conn)["changes"] == []
    assert pg_drift.drift(live.conn, marker=r["marker"], exact=True)["drift"] is False
    assert copy.scalar("SELECT count(*) FROM pg_stats WHERE tablename = 'orders'") > 0  # statistics gathered
    copy.execute("INSERT INTO users (user_name) VALUES ('only on 17')")
    assert live.scalar("SELECT count(*) FROM users WHERE user_name = 'only on 17'") == 0
    assert live.scalar("SHOW server_version_num").startswith("13")

    again = run_module("postgresql_clone", params)
    assert again.failed and "exists and is not empty" in again.msg
    replaced = run_module("postgresql_clone", {**params, "if_exists": "replace", "upgrade_mode": "copy"})
    assert not replaced.failed and replaced["replaced"], replaced.msg
    assert copy.scalar("SELECT count(*) FROM users WHERE user_name = 'only on 17'") == 0
    assert fingerprint(copy) == before


def _serve_ssl_from_the_data_directory(cluster) -> None:
    """ssl = on with the default server.crt / server.key, files in the data directory (relative paths)."""
    key, crt = cluster.data / "server.key", cluster.data / "server.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-days", "2", "-keyout", key, "-out", crt],
        check=True,
        capture_output=True,
    )
    for f in (key, crt):
        os.chmod(f, 0o600)
        if os.geteuid() == 0:
            os.chown(f, pwd.getpwnam("dualboot").pw_uid, pwd.getpwnam("dualboot").pw_gid)
    cluster.db("postgres").execute("ALTER SYSTEM SET ssl = on")
    cluster.db("postgres").execute("SELECT pg_reload_conf()")


def test_a_physical_copy_of_a_cluster_with_tablespaces_is_refused_before_anything(pg_cluster_factory, cluster_dir, run_module):
    """Its tablespaces live outside the data directory: a copy on the same host would write into the source's own directories."""
    source = pg_cluster_factory(name="ts13", version=13)
    location = Path(os.path.dirname(cluster_dir)) / "ts"  # the fixture's parent: the cluster owner can enter it
    location.mkdir()
    if os.geteuid() == 0:
        os.chown(location, pwd.getpwnam("dualboot").pw_uid, pwd.getpwnam("dualboot").pw_gid)
    source.db("postgres").execute(f"CREATE TABLESPACE elsewhere LOCATION '{location}'")
    args = {**source.login_params(), "method": "physical", "source": {"login_db": "postgres"}, "target": {"login_port": free_port()}}
    r = run_module("postgresql_clone", {**args, "target_data_dir": cluster_dir, "target_major": 17, "os_user": "dualboot"})
    assert r.failed and "has tablespaces outside its data directory (elsewhere" in r.msg and "method stream" in r.msg, r.msg
    assert not os.path.exists(cluster_dir) and os.listdir(location) != []


def test_an_upgrade_to_an_older_major_is_refused_before_anything(pg_major, cluster_dir, run_module):
    server = pg_major(17)
    r = run_module(
        "postgresql_clone",
        {**server.login_params(), "method": "physical", "source": {"login_db": "postgres"}, "target": {"login_port": free_port()},
         "target_data_dir": cluster_dir, "target_major": 15, "os_user": "dualboot"},
    )  # fmt: skip
    assert r.failed and "target_major 15 is older than the source's PostgreSQL 17" in r.msg, r.msg
    assert not os.path.exists(cluster_dir)


def test_a_major_upgrade_by_pg_upgrade_through_the_lifecycle(pg_cluster_factory, cluster_dir, tmp_path):
    """The roles drive the fast path: stage copies the 13 cluster and upgrades it to 17 (dualboot_clone_physical),
    verify proves the migration is the only difference, cutover moves the application to 17, rollback back to 13."""
    source = pg_cluster_factory(name="life13", version=13)
    blue = source.create_database("shop")
    blue.execute(USERS)
    port = free_port()
    app = tmp_path / "app1.env"
    app.write_text(f"DATABASE_URL={blue.uri}\n")
    os.chmod(tmp_path, 0o700)
    entries = {
        "blue": {**source.login_params(), "login_db": "shop"},
        "green": {**source.login_params(), "login_port": port, "login_db": "shop"},
    }
    targets = {"app1": [{"format": "dotenv", "path": str(app), "key": "DATABASE_URL", "template": TEMPLATE}]}
    inventory, variables = local_deployment(tmp_path, targets, entries, "r1")
    os_user = pwd.getpwuid(os.geteuid()).pw_name if os.geteuid() else "dualboot"
    variables["dualboot_clone_method"] = "physical"
    variables["dualboot_clone_physical"] = {
        "target_data_dir": cluster_dir, "os_user": os_user, "target_major": 17, "bin_dir": bin_dir(13), "target_bin_dir": bin_dir(17),
    }  # fmt: skip
    checked = run_playbook("dualboot.db.stage", variables, inventory=str(inventory), check=True)
    assert checked.returncode == 0 and "upgrade it to PostgreSQL 17" in checked.stdout, (checked.stdout + checked.stderr)[-3000:]
    assert not os.path.exists(cluster_dir)
    out = {}
    for step in ("stage", "verify", "cutover"):
        proc = run_playbook(f"dualboot.db.{step}", variables, inventory=str(inventory))
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
        out[step] = proc.stdout
    assert "upgraded it to PostgreSQL 17 with pg_upgrade --link" in out["stage"], out["stage"][-3000:]
    green = _cluster_at(port, source)
    assert green.scalar("SHOW server_version_num").startswith("17") and f":{port}/shop" in app.read_text()
    green.execute("INSERT INTO users (full_name) VALUES ('written on 17')")
    assert green.scalar("SELECT count(*) FROM users") == 301 and blue.scalar("SELECT count(*) FROM users") == 300
    proc = run_playbook("dualboot.db.rollback", {**variables, "dualboot_rollback_discard_writes": True}, inventory=str(inventory))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert f":{source.port}/shop" in app.read_text() and blue.scalar("SHOW default_transaction_read_only") == "off"
