"""The lifecycle roles with dualboot_stage_method: sync, on real local clusters.

Blue (the default entry, 300 users) lives on ``pg``, green on ``pg2``. The application host ``app1``
reaches the database through a real PgBouncer (its switch target is the PgBouncer alias ``shop``,
held with PAUSE during the handover); ``app2`` keeps a dotenv file. A writer thread plays the
application: one INSERT per transaction through PgBouncer, all through stage, verify, cutover and
rollback; afterwards every acknowledged write must be on the default entry exactly once.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid

import psycopg
import pytest
import yaml
from harness.ansible import local_deployment, run_playbook
from harness.killpoints import kill_in_task
from harness.paths import ROOT
from harness.pgbouncer import PgBouncer, install_role

DEMO = ROOT / "demo"
TEMPLATE = "postgresql://{login_user}:{password!u}@{login_host}:{login_port}/{login_db}"
R1 = yaml.safe_load((DEMO / "changes" / "r1" / "dualboot.yml").read_text())


@pytest.fixture
def deployment(tmp_path, pg, pg2):
    if pg.host == pg2.host and pg.port == pg2.port:
        pytest.skip("needs two PostgreSQL servers; DUALBOOT_TEST_PG_URI gives one")
    blue = pg.create_database()
    green_name = f"g_{blue.name}"
    blue.execute(
        "CREATE TABLE users (user_id serial PRIMARY KEY, user_name varchar(255), creation_date timestamp);"
        "INSERT INTO users (user_name, creation_date) SELECT 'user ' || g, now() FROM generate_series(1, 300) g;"
        "CREATE TABLE events (id bigserial PRIMARY KEY, writer text NOT NULL, seq int NOT NULL, UNIQUE (writer, seq))"
    )
    password = "app-" + uuid.uuid4().hex[:8]
    bouncer = PgBouncer({"shop": f"host={pg.host} port={pg.port} dbname={blue.name}"}, {"app": password})
    install_role(pg, "app", bouncer.secrets["app"])
    install_role(pg2, "app", bouncer.secrets["app"])
    blue.execute("GRANT ALL ON ALL TABLES IN SCHEMA public TO app; GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO app")
    bouncer.start()
    os.chmod(tmp_path, 0o700)
    env = tmp_path / "app2.env"
    env.write_text(f"DATABASE_URL={blue.uri}\n")
    os.chmod(env, 0o600)
    targets = {
        "app1": [
            {"format": "pgbouncer", "path": str(bouncer.ini), "key": "shop", "pause": True, "pgbouncer_admin": bouncer.admin_params()}
        ],
        "app2": [{"format": "dotenv", "path": str(env), "key": "DATABASE_URL", "template": TEMPLATE}],
    }
    entries = {"blue": {**pg.login_params(), "login_db": blue.name}, "green": {**pg2.login_params(), "login_db": green_name}}
    inventory, variables = local_deployment(tmp_path, targets, entries, "r3")
    yield {
        "inventory": inventory,
        "vars": variables,
        "bouncer": bouncer,
        "blue": blue,
        "green": pg2.db(green_name),
        "dir": tmp_path,
        "env": env,
        "pg": pg,
        "pg2": pg2,
    }
    bouncer.stop()
    for server, name in ((pg, blue.name), (pg2, green_name)):
        server.drop_database(name)  # also what a failed test leaves: the subscriptions in it and the slots on it


def play(d: dict, name: str, **extra):
    proc = run_playbook(f"dualboot.db.{name}", {**d["vars"], **extra}, inventory=str(d["inventory"]))
    return proc.returncode, proc.stdout + proc.stderr


def record(d: dict, host: str = "app1") -> dict:
    return json.loads((d["dir"] / "records" / f"{host}.json").read_text())


def slots(server) -> list[str]:
    return [r[0] for r in server.db("postgres").query("SELECT slot_name FROM pg_replication_slots ORDER BY 1")]


def assert_back_on_blue_without_loss(d: dict, writer: Writer, servers: tuple) -> None:
    """After a sync rollback: PgBouncer routes to blue again; every acknowledged write is on blue exactly once,
    those made on green after the cutover too; no write failed; the row written on green after the cutover came
    back; so did the sequences (a new row gets an id); no replication slot is left on ``servers``."""
    with d["bouncer"].connect("shop", "app") as c:
        assert c.execute("SELECT current_database()").fetchone()[0] == d["blue"].name
    rows = [r[0] for r in d["blue"].query("SELECT seq FROM events WHERE writer = %s ORDER BY seq", (writer.name_,))]
    assert writer.failed == [] and rows == writer.acked
    assert d["blue"].scalar("SELECT count(*) FROM users WHERE user_name = 'after cutover'") == 1
    d["blue"].execute("INSERT INTO users (user_name) VALUES ('after rollback')")
    assert [slots(s) for s in servers] == [[] for _s in servers]


class Writer(threading.Thread):
    """The application: one INSERT per transaction through PgBouncer, remembering every acknowledged one."""

    def __init__(self, bouncer: PgBouncer, rate: float = 50) -> None:
        super().__init__(daemon=True)
        self.bouncer = bouncer
        self.pause = 1.0 / rate
        self.name_ = uuid.uuid4().hex[:8]
        self.acked: list[int] = []
        self.failed: list[str] = []
        self.times: list[float] = []
        self.stop_flag = threading.Event()

    def run(self) -> None:
        conn = self.bouncer.connect("shop", "app")
        seq = 0
        while not self.stop_flag.is_set():
            seq += 1
            try:
                conn.execute("INSERT INTO events (writer, seq) VALUES (%s, %s)", (self.name_, seq))
                self.acked.append(seq)
                self.times.append(time.monotonic())
            except psycopg.Error as exc:
                self.failed.append(f"{seq}: {type(exc).__name__}: {str(exc).strip()[:160]}")
                if conn.closed:
                    conn = self.bouncer.connect("shop", "app")
            time.sleep(self.pause)
        conn.close()

    def finish(self) -> None:
        self.stop_flag.set()
        self.join(10)

    def longest_gap(self) -> float:
        return max((b - a for a, b in zip(self.times, self.times[1:])), default=0.0)


def test_r1_is_refused_by_a_sync_stage_before_anything_changes(deployment):
    d = deployment
    rc, out = play(d, "stage", **{k: v for k, v in R1.items() if k != "dualboot_checks"})
    assert rc != 0
    assert "column public.users.user_name is dropped or renamed" in out, out[-4000:]
    assert "dualboot_stage_method: copy" in out
    assert slots(d["pg"]) == [] and d["green"].name not in d["pg2"].databases()
    assert d["blue"].scalar("SELECT count(*) FROM pg_publication") == 0
    assert d["vars"]["dualboot_entries"]["blue"]["login_password"] not in out


def test_r3_through_sync_with_continuous_writes_and_lossless_rollback(deployment):
    d = deployment
    writer = Writer(d["bouncer"])
    writer.start()
    try:
        rc, out = play(d, "stage")
        assert rc == 0, out[-4000:]
        assert slots(d["pg"]) == ["dualboot_shop_green"]
        assert record(d)["evidence"]["green"]["stage"]["sync"]["slot"] == "dualboot_shop_green"
        rc, out = play(d, "verify")
        assert rc == 0, out[-4000:]

        # app2's health check can never pass: the cutover switches app1 (the handover switches its PgBouncer)
        # and app2, then hands everything back; nothing written meanwhile is lost.
        bad = {
            "dualboot_health_checks": [
                {"name": "unreachable health endpoint", "url": "http://127.0.0.1:9/health", "retries": 1, "delay": 0}
            ]
        }
        rc, out = play(d, "cutover", **bad)
        assert rc != 0 and "cutover FAILED and was undone" in out and "the writes were handed back" in out, out[-4000:]
        assert record(d)["default"] == "blue" and record(d)["lock"] is None
        assert d["env"].read_text() == f"DATABASE_URL={d['blue'].uri}\n"
        with d["bouncer"].connect("shop", "app") as c:
            assert c.execute("SELECT current_database()").fetchone()[0] == d["blue"].name
        assert d["blue"].scalar("SHOW default_transaction_read_only") == "off"
        assert slots(d["pg"]) == ["dualboot_shop_green"] and slots(d["pg2"]) == []

        rc, out = play(d, "cutover")
        assert rc == 0, out[-4000:]
        assert "cutover DONE" in out
        with d["bouncer"].connect("shop", "app") as c:
            assert c.execute("SELECT current_database()").fetchone()[0] == d["green"].name
        assert record(d)["default"] == "green" and f"/{d['green'].name}" in d["env"].read_text()
        # The new application version uses the new column on the new default.
        d["green"].execute(
            "UPDATE users SET last_login = now() WHERE user_id <= 10; INSERT INTO users (user_name) VALUES ('after cutover')"
        )
        assert slots(d["pg"]) == [] and slots(d["pg2"]) == ["dualboot_shop_blue"]
        time.sleep(1)
        rc, out = play(d, "rollback")
        assert rc == 0, out[-4000:]
        assert "rollback DONE" in out
        time.sleep(1)
    finally:
        writer.finish()
    assert record(d)["default"] == "blue"
    assert_back_on_blue_without_loss(d, writer, (d["pg"], d["pg2"]))
    print(f"writer: {len(writer.acked)} writes, longest gap {writer.longest_gap():.3f} s")


def test_finalize_ends_the_stream_back_and_drops_the_fallback(deployment):
    d = deployment
    for step in ("stage", "verify", "cutover"):
        rc, out = play(d, step)
        assert rc == 0, out[-4000:]
    assert slots(d["pg2"]) == ["dualboot_shop_blue"]
    rc, out = play(d, "finalize")
    assert rc == 0 and "finalize DONE" in out, out[-4000:]
    assert slots(d["pg"]) == [] and slots(d["pg2"]) == []
    assert d["green"].scalar("SELECT count(*) FROM pg_publication") == 0
    assert d["blue"].name not in d["pg"].databases()
    assert record(d)["lock"] is None and record(d)["default"] == "green"
    rc, out = play(d, "finalize")
    assert rc == 0 and "nothing was left" in out, out[-3000:]
    rc, out = play(d, "rollback")
    assert rc != 0 and "the fallback blue no longer exists" in out, out[-3000:]
    assert record(d)["default"] == "green"


def test_a_failed_sync_stage_removes_its_stream(deployment, tmp_path):
    """The migration passes on the scratch copy (no rows) but fails on the real rows: no slot may stay behind."""
    d = deployment
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "V1__few_users.sql").write_text("ALTER TABLE users ADD CONSTRAINT few_users CHECK (user_id < 10);\n")
    rc, out = play(d, "stage", dualboot_migrations={"dir": str(migrations)})
    assert rc != 0 and "stage FAILED" in out and "the stream was removed" in out, out[-4000:]
    assert "few_users" in out
    assert slots(d["pg"]) == [] and d["blue"].scalar("SELECT count(*) FROM pg_publication") == 0
    assert d["green"].scalar("SELECT count(*) FROM pg_subscription") == 0


# A sync stage killed with its control node (ansible-playbook and every child SIGKILLed) after each
# of its steps, and once inside the rebuild: the next stage, of either method, removes what the
# killed one left (found by name) and says so; afterwards nothing but the new stage's own stream is
# there. `make test` runs two kill points; `make matrix` runs the others.
SYNC_STAGE_KILLS = [
    pytest.param("Rebuild the staged entry", 0.0, id="before-rebuild", marks=pytest.mark.matrix),
    pytest.param("Rebuild the staged entry", 1.5, id="inside-rebuild", marks=pytest.mark.matrix),
    pytest.param("Wait for the initial copy", 0.0, id="before-initial-catch-up", marks=pytest.mark.matrix),
    pytest.param("Apply the migrations to the staged entry", 0.0, id="before-migrate"),
    pytest.param("The stream still applies", 0.0, id="before-final-catch-up", marks=pytest.mark.matrix),
    pytest.param("Record the stage evidence", 0.0, id="before-evidence", marks=pytest.mark.matrix),
]


def stream_parts(d: dict) -> dict:
    return {
        "slots": slots(d["pg"]),
        "publications": [r[0] for r in d["blue"].query("SELECT pubname FROM pg_publication ORDER BY 1")],
        "subscriptions": [r[0] for r in d["pg2"].db("postgres").query("SELECT subname FROM pg_subscription ORDER BY 1")],
        "green_databases": sorted(n for n in d["pg2"].databases() if d["green"].name in n),
    }


@pytest.mark.parametrize(("task", "delay"), SYNC_STAGE_KILLS)
def test_a_killed_sync_stage_is_cleaned_up_by_the_next_one(deployment, task, delay):
    d = deployment
    kill_in_task("dualboot.db.stage", d["inventory"], d["vars"], task, delay)
    rc, out = play(d, "stage")
    assert rc == 0, out[-4000:]
    assert stream_parts(d) == {
        "slots": ["dualboot_shop_green"],
        "publications": ["dualboot_shop_green"],
        "subscriptions": ["dualboot_shop_green"],
        "green_databases": [d["green"].name],
    }, out[-4000:]
    assert d["green"].scalar("SELECT count(*) FROM users") == 300


@pytest.mark.parametrize(
    ("task", "delay"),
    [pytest.param("Rebuild the staged entry", 1.5, id="inside-rebuild", marks=pytest.mark.matrix), SYNC_STAGE_KILLS[3]],
)
def test_a_copy_stage_after_a_killed_sync_stage_removes_its_stream(deployment, task, delay):
    d = deployment
    kill_in_task("dualboot.db.stage", d["inventory"], d["vars"], task, delay)
    rc, out = play(d, "stage", dualboot_stage_method="copy")
    assert rc == 0, out[-4000:]
    assert stream_parts(d) == {"slots": [], "publications": [], "subscriptions": [], "green_databases": [d["green"].name]}
    assert d["green"].scalar("SELECT count(*) FROM users") == 300
