"""postgresql_sync on real clusters: blue (the default entry) on ``pg``, green (the staged entry) on ``pg2``.

The stream's steps are called as library functions where the Ansible path adds nothing; the module
path (argument parsing, no_log, messages) is exercised by the preflight, start and stop tests.
"""

from __future__ import annotations

import threading
import time
import uuid

import psycopg
import pytest
from harness.net import free_port
from harness.pgbouncer import PgBouncer, install_role

from ansible_collections.dualboot.db.plugins.module_utils import pg_sync
from ansible_collections.dualboot.db.plugins.module_utils.errors import OperationFailed, SafetyRefusal
from ansible_collections.dualboot.db.plugins.module_utils.postgresql import PgConnection

R1 = [{"version": "1", "sql": "ALTER TABLE users RENAME COLUMN user_name TO full_name; ALTER TABLE users ALTER COLUMN full_name TYPE text"}]
R3 = [{"version": "1", "sql": "ALTER TABLE users ADD COLUMN last_login timestamp"}]
SEED = (
    "CREATE TABLE users (user_id serial PRIMARY KEY, user_name varchar(255), creation_date timestamp);"
    "INSERT INTO users (user_name, creation_date) SELECT 'user ' || g, now() FROM generate_series(1, 500) g;"
    "CREATE TABLE events (id bigserial PRIMARY KEY, writer text NOT NULL, seq int NOT NULL, UNIQUE (writer, seq))"
)


@pytest.fixture
def pair(pg, pg2):
    if pg.host == pg2.host and pg.port == pg2.port:
        pytest.skip("needs two PostgreSQL servers; DUALBOOT_TEST_PG_URI gives one")
    blue = pg.create_database()
    blue.execute(SEED)
    green = pg2.db(f"g_{blue.name}")
    name = f"t{uuid.uuid4().hex[:6]}"
    yield {"blue": blue, "green": green, "name": name, "pg": pg, "pg2": pg2}
    for src, dst, entry in ((blue, green, "green"), (green, blue, "blue")):
        try:
            pg_sync.stop(src.conn, dst.conn, pg_sync.stream_name(name, entry))
        except Exception as exc:  # noqa: BLE001 - best effort: a test may have removed a database
            print(f"teardown: {exc}")
    pg.drop_database(blue.name)
    pg2.drop_database(green.name)


def slots(server) -> list[str]:
    return [r[0] for r in server.db("postgres").query("SELECT slot_name FROM pg_replication_slots ORDER BY 1")]


def args(p: dict, **extra) -> dict:
    return {
        "name": p["name"],
        "entry": "green",
        "source": p["blue"].params,
        "target": p["green"].params,
        **extra,
    }


class Writer(threading.Thread):
    """An application writing one row per transaction into ``events`` and remembering what was acknowledged.

    ``connect()`` gives its connection. A write refused by the frozen database fails; once
    ``switched`` is set (the cutover pointed the application elsewhere), it reconnects with
    ``failover()``, as an application reloaded by the cutover would."""

    def __init__(self, connect, failover=None, rate: float = 200) -> None:
        super().__init__(daemon=True)
        self.connect = connect
        self.failover = failover
        self.switched = threading.Event()
        self.pause = 1.0 / rate
        self.acked: list[int] = []
        self.failed: list[str] = []
        self.times: list[float] = []
        self.stop_flag = threading.Event()
        self.name_ = uuid.uuid4().hex[:8]

    def run(self) -> None:
        conn = self.connect()
        seq = 0
        while not self.stop_flag.is_set():
            seq += 1
            try:
                conn.execute("INSERT INTO events (writer, seq) VALUES (%s, %s)", (self.name_, seq))
                self.acked.append(seq)
                self.times.append(time.monotonic())
            except psycopg.Error as exc:
                self.failed.append(f"{seq}: {type(exc).__name__}: {str(exc).strip()[:120]}")
                if self.failover is not None and self.switched.is_set():
                    conn.close()
                    conn = self.failover()
            time.sleep(self.pause)
        conn.close()

    def finish(self) -> None:
        self.stop_flag.set()
        self.join(10)

    def longest_gap(self) -> float:
        return max((b - a for a, b in zip(self.times, self.times[1:])), default=0.0)


def written(db, writer: Writer) -> list[int]:
    return [r[0] for r in db.query("SELECT seq FROM events WHERE writer = %s ORDER BY seq", (writer.name_,))]


# --- preflight -----------------------------------------------------------------------------------------


def test_preflight_names_every_missing_piece_and_changes_nothing(pair, run_module):
    p = pair
    p["blue"].execute(
        "CREATE TABLE audit_log (at timestamptz, line text);"
        "CREATE UNLOGGED TABLE scratch (id int PRIMARY KEY);"
        "SELECT lo_from_bytea(0, 'a large object'::bytea)"
    )
    r = run_module("postgresql_sync", args(p, state="preflight"))
    assert r.failed
    assert "table public.audit_log: it has no primary key" in r.msg and "REPLICA IDENTITY FULL" in r.msg
    assert "unlogged table(s) public.scratch" in r.msg
    assert "1 large object(s)" in r.msg and "copy-based stage" in r.msg
    assert p["blue"].params["login_password"] not in r.output
    assert slots(p["pg"]) == [] and p["green"].name not in p["pg2"].databases()

    # Accepting REPLICA IDENTITY FULL for the table names its cost instead of refusing it.
    p["blue"].execute("DROP TABLE scratch; SELECT lo_unlink(oid) FROM pg_largeobject_metadata")
    name = pg_sync.stream_name(p["name"], "green")
    r = pg_sync.preflight(p["blue"].conn, p["green"].conn, name, replica_identity_full=["public.audit_log"])
    assert r["ready"] and any("audit_log gets REPLICA IDENTITY FULL" in w for w in r["warnings"])


def test_preflight_needs_logical_wal_replication_role_and_superuser_target(pair, pg_cluster_factory):
    p = pair
    plain = pg_cluster_factory({"wal_level": "replica"})
    src = plain.create_database()
    src.execute(SEED)
    role = f"sync_app_{uuid.uuid4().hex[:6]}"
    src.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'app-secret'; ALTER TABLE users OWNER TO {role}; ALTER TABLE events OWNER TO {role}")
    p["pg2"].db("postgres").execute(f"CREATE ROLE {role} LOGIN PASSWORD 'app-secret'")
    app_src = PgConnection(dbname=src.name, host=plain.host, port=plain.port, user=role, password="app-secret")
    app_dst = PgConnection(dbname=p["green"].name, host=p["pg2"].host, port=p["pg2"].port, user=role, password="app-secret")
    try:
        with pytest.raises(SafetyRefusal) as err:
            pg_sync.preflight(app_src, app_dst, pg_sync.stream_name(p["name"], "green"))
        text = str(err.value)
        assert "wal_level is replica" in text and "restart" in text
        assert f"lacks REPLICATION on {app_src.label()}" in text and f"ALTER ROLE {role} REPLICATION" in text
        assert f"lacks SUPERUSER (PostgreSQL 15 lets only superusers create subscriptions) on {app_dst.label()}" in text
    finally:
        p["pg2"].db("postgres").execute(f"DROP ROLE IF EXISTS {role}")


def test_preflight_refuses_r1_with_the_copy_alternative_and_accepts_r3(pair):
    p = pair
    name = pg_sync.stream_name(p["name"], "green")
    with pytest.raises(SafetyRefusal) as err:
        pg_sync.preflight(p["blue"].conn, p["green"].conn, name, migrations=R1)
    text = str(err.value)
    assert "column public.users.user_name is dropped or renamed" in text
    assert "dualboot_stage_method: copy" in text and "expand/contract" in text
    ok = pg_sync.preflight(p["blue"].conn, p["green"].conn, name, migrations=R3)
    assert ok["ready"] and ok["migration_check"]["compatible"]
    assert ok["migration_check"]["changes"] == [
        "table public.users: column last_login added (timestamp without time zone) (takes an ACCESS EXCLUSIVE lock)"
    ]
    # The scratch copy is gone; nothing was created on either side.
    assert not [d for d in p["pg2"].databases() if "__dualboot_check" in d]
    assert slots(p["pg"]) == []


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("ALTER TABLE users ADD COLUMN x int NOT NULL", "NOT NULL without a default"),
        ("ALTER TABLE users ALTER COLUMN creation_date SET NOT NULL", "becomes NOT NULL"),
        ("ALTER TABLE users ALTER COLUMN user_name TYPE text", "changes type"),
        ("DROP TABLE events", "table public.events is dropped or renamed"),
        ("ALTER TABLE events REPLICA IDENTITY FULL", "replica identity of public.events changes"),
    ],
)
def test_migration_check_refuses_what_a_stream_cannot_carry(pair, sql, expected):
    p = pair
    check = pg_sync.check_migrations(p["blue"].conn, p["green"].conn, [{"version": "1", "sql": sql}], None)
    assert not check["compatible"] and any(expected in r for r in check["refused"]), check["refused"]


def test_migration_check_allows_additive_changes_with_cautions(pair):
    p = pair
    sql = (
        "CREATE TABLE profiles (id serial PRIMARY KEY, user_id int REFERENCES users(user_id));"
        "ALTER TABLE users ADD COLUMN plan text NOT NULL DEFAULT 'free';"
        "CREATE INDEX ON users (creation_date); CREATE UNIQUE INDEX ON users (user_name);"
        "UPDATE users SET plan = 'paid' WHERE user_id < 10"
    )
    check = pg_sync.check_migrations(p["blue"].conn, p["green"].conn, [{"version": "1", "sql": sql}], None)
    assert check["compatible"], check["refused"]
    assert any("new unique index" in c for c in check["cautions"])
    assert any("data changes in the migrations" in c and "UPDATE" in c for c in check["cautions"])


# --- the stream ---------------------------------------------------------------------------------------


def test_stream_starts_catches_up_and_stops_without_leftovers(pair, run_module):
    p = pair
    p["green"].server.create_database(p["green"].name).execute("CREATE TABLE old_fallback (x int)")  # a stage replaces it
    r = run_module("postgresql_sync", args(p, state="started"))
    assert not r.failed, r.msg
    name = pg_sync.stream_name(p["name"], "green")
    assert r.changed and r["stream"]["slot"] == name and r["replaced"] is True
    assert p["blue"].params["login_password"] not in r.output
    p["blue"].execute("INSERT INTO users (user_name) VALUES ('after start'); UPDATE users SET user_name = 'renamed' WHERE user_id = 1")
    caught = pg_sync.wait_caught_up(p["blue"].conn, p["green"].conn, name, None, 30)
    assert caught["tables"] == {"ready": 2}
    assert p["green"].scalar("SELECT count(*) FROM users") == 501
    assert p["green"].scalar("SELECT user_name FROM users WHERE user_id = 1") == "renamed"
    assert p["green"].scalar("SELECT to_regclass('old_fallback')") is None
    # Sequences do not stream: the sequence step copies them, never backwards.
    assert p["green"].scalar("SELECT last_value FROM users_user_id_seq") == 1
    seq = pg_sync.copy_sequences(p["blue"].conn, p["green"].conn)
    assert seq["copied"] >= 1 and p["green"].scalar("SELECT last_value FROM users_user_id_seq") == 501

    st = pg_sync.status(p["blue"].conn, p["green"].conn, name)
    assert st["ready_for_handover"], st["blockers"]
    # DDL on live while syncing is a blocker.
    p["blue"].execute("ALTER TABLE users ADD COLUMN live_only int; CREATE TABLE live_new (id int PRIMARY KEY)")
    st = pg_sync.status(p["blue"].conn, p["green"].conn, name)
    assert st["ddl_on_source"] and st["tables_not_published"] == ["public.live_new"]
    assert any("DDL on live" in b for b in st["blockers"])
    p["blue"].execute("ALTER TABLE users DROP COLUMN live_only; DROP TABLE live_new")

    r = run_module("postgresql_sync", args(p, state="stopped"))
    assert not r.failed and r.changed, r.msg
    assert slots(p["pg"]) == []
    assert p["blue"].scalar("SELECT count(*) FROM pg_publication") == 0
    assert p["green"].scalar("SELECT count(*) FROM pg_subscription") == 0
    again = pg_sync.stop(p["blue"].conn, p["green"].conn, name)
    assert not again["changed"] and "nothing was left" in again["msg"]


def test_stop_during_the_initial_copy_leaves_no_slot(pair):
    """A stage that fails while the tables are still copied: the table sync slots go too."""
    p = pair
    p["blue"].execute(
        "CREATE TABLE big (id int PRIMARY KEY, pad text); INSERT INTO big SELECT g, repeat('x', 200) FROM generate_series(1, 300000) g"
    )
    name = pg_sync.stream_name(p["name"], "green")
    pg_sync.start(p["blue"].conn, p["green"].conn, name)
    with pytest.raises(OperationFailed) as err:
        pg_sync.wait_caught_up(p["blue"].conn, p["green"].conn, name, None, 0.3)
    assert "did not catch up" in str(err.value)
    pg_sync.stop(p["blue"].conn, p["green"].conn, name)
    assert slots(p["pg"]) == []
    assert p["blue"].scalar("SELECT count(*) FROM pg_publication") == 0


# --- handover and the stream back ----------------------------------------------------------------------------


def _started(p: dict) -> str:
    name = pg_sync.stream_name(p["name"], "green")
    pg_sync.start(p["blue"].conn, p["green"].conn, name)
    pg_sync.wait_caught_up(p["blue"].conn, p["green"].conn, name, None, 60)
    p["green"].execute(R3[0]["sql"])  # the migration of the staged entry, while it syncs
    return name


def test_handover_moves_every_write_and_the_stream_back_keeps_the_fallback_complete(pair):
    p = pair
    name = _started(p)
    back = pg_sync.stream_name(p["name"], "blue")
    writer = Writer(p["blue"].connect, failover=p["green"].connect)
    writer.start()
    time.sleep(0.5)
    h = pg_sync.handover(p["blue"].conn, p["green"].conn, name, back, None, None, [], 30, 5, False, True, "frozen")
    writer.switched.set()
    time.sleep(0.5)
    writer.finish()
    assert h["sequences"]["copied"] >= 1 and h["stream_back"]["columns_not_carried_back"] == {"public.users": ["last_login"]}
    # Writes refused by the frozen blue failed (no pooler holds them here); every acknowledged write is on green, once.
    assert writer.failed and all("ReadOnlySqlTransaction" in f for f in writer.failed)
    assert written(p["green"], writer) == writer.acked
    assert p["blue"].scalar("SHOW default_transaction_read_only") == "on"
    assert slots(p["pg"]) == [] and slots(p["pg2"]) == [back]

    # Writes on the new default reach the frozen fallback through the stream back, without the new column.
    p["green"].execute("INSERT INTO users (user_name, last_login) VALUES ('new on green', now())")
    p["green"].execute("UPDATE users SET user_name = 'changed on green', last_login = now() WHERE user_id = 2")
    pg_sync.wait_caught_up(p["green"].conn, p["blue"].conn, back, None, 30)
    assert p["blue"].query("SELECT user_id, user_name FROM users WHERE user_id IN (2, 501) ORDER BY 1") == [
        (2, "changed on green"),
        (501, "new on green"),
    ]
    assert written(p["blue"], writer) == writer.acked

    # Rolling back is the same handover the other way: nothing written on green is lost.
    h2 = pg_sync.handover(p["green"].conn, p["blue"].conn, back, None, None, None, [], 30, 5, False, True, "frozen")
    assert h2["sequences"]["copied"] >= 1
    assert p["blue"].scalar("SHOW default_transaction_read_only") == "off"
    p["blue"].execute("INSERT INTO users (user_name) VALUES ('after rollback')")  # the sequence continues after green's rows
    assert p["blue"].scalar("SELECT max(user_id) FROM users") == 502
    assert slots(p["pg"]) == [] and slots(p["pg2"]) == []


def test_handover_that_runs_out_of_time_is_undone(pair):
    p = pair
    name = _started(p)
    back = pg_sync.stream_name(p["name"], "blue")
    holder = p["blue"].connect(autocommit=False)
    holder.execute("UPDATE users SET user_name = 'held' WHERE user_id = 3")  # an open write transaction
    try:
        with pytest.raises(OperationFailed) as err:
            pg_sync.handover(p["blue"].conn, p["green"].conn, name, back, None, None, [], 30, 0.5, False, True, "frozen")
        text = str(err.value)
        assert "failed at step freeze" in text and "serves again" in text, text
    finally:
        holder.rollback()
        holder.close()
    # Blue is writable again, the stream still carries its writes, nothing streams back.
    p["blue"].execute("INSERT INTO users (user_name) VALUES ('after the failed handover')")
    pg_sync.wait_caught_up(p["blue"].conn, p["green"].conn, name, None, 30)
    assert p["green"].scalar("SELECT count(*) FROM users WHERE user_name = 'after the failed handover'") == 1
    assert slots(p["pg"]) == [name] and slots(p["pg2"]) == []


def test_handover_holds_pgbouncer_clients_without_errors(pair):
    """A client writing through PgBouncer during the handover sees a pause, never an error."""
    p = pair
    name = _started(p)
    password = "app-" + uuid.uuid4().hex[:8]
    blue, green = p["blue"], p["green"]
    bouncer = PgBouncer({"shop": f"host={blue.server.host} port={blue.server.port} dbname={blue.name}"}, {"app": password})
    for db in (blue, green):
        install_role(db.server, "app", bouncer.secrets["app"])
        db.execute("GRANT INSERT, SELECT ON events TO app; GRANT USAGE ON SEQUENCE events_id_seq TO app")
    bouncer.start()
    try:
        writer = Writer(lambda: bouncer.connect("shop", "app"))
        writer.start()
        time.sleep(0.5)
        item = {"key": "shop", "path": str(bouncer.ini), "pgbouncer_admin": bouncer.admin_params()}
        h = pg_sync.handover(
            blue.conn, green.conn, name, pg_sync.stream_name(p["name"], "blue"), None, None, [item], 30, 5, False, True, "frozen"
        )
        time.sleep(0.5)
        writer.finish()
        assert writer.failed == []
        assert h["pgbouncer_switched"] == ["shop"] and h["paused_s"] < 5
        assert writer.longest_gap() < 5
        assert written(green, writer) == writer.acked
        with bouncer.connect("shop", "app") as c:
            assert c.execute("SELECT current_database()").fetchone()[0] == green.name
    finally:
        bouncer.stop()


def test_stop_with_an_unreachable_side_says_so_unless_that_cluster_is_being_replaced(pair, run_module):
    """A stopped stream whose target server is down failed with the message "nothing was left" (the result's msg
    hid the error). A stage into a cluster of its own (physical copy) replaces that cluster, so its being down
    (not created yet) is a note there; the source side is still cleaned."""
    p = pair
    assert not run_module("postgresql_sync", args(p, state="started")).failed
    name = pg_sync.stream_name(p["name"], "green")
    dead = {**args(p, state="stopped")["target"], "login_port": free_port()}
    r = run_module("postgresql_sync", {**args(p, state="stopped"), "target": dead})
    assert r.failed and "unreachable" in r.msg and "its subscription" in r.msg and "nothing was left" not in r.msg, r.msg
    assert name not in slots(p["pg"]) and p["blue"].scalar("SELECT count(*) FROM pg_publication") == 0  # the source side is cleaned
    r = run_module("postgresql_sync", {**args(p, state="stopped"), "target": dead, "being_replaced": ["target"]})
    assert not r.failed and "the stage replaces that cluster" in r.msg, r.msg
    pg_sync.stop(p["blue"].conn, p["green"].conn, name)  # the subscription left on the real target
