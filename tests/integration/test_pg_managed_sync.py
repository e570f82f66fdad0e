"""Continuous sync as managed-service roles, without superuser anywhere (PostgreSQL 16+: pg_create_subscription).

Blue (the default entry) and green live on two PostgreSQL 17 servers; on each the login role is the
harness's managed profile (``ManagedLogin``: CREATEDB, CREATEROLE, REPLICATION, pg_signal_backend,
pg_read_all_stats, pg_monitor and, on 16+, pg_create_subscription), the same role name and password
on both, as a service's owner role is on each instance. It owns blue's database and tables. The
application writes through PgBouncer during stage, verify, cutover and rollback; every acknowledged
write must end on the default entry exactly once.

``make test`` runs the lifecycle and one withheld privilege; ``make matrix`` every other one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import uuid

import pytest
from harness.ansible import local_deployment, run_playbook
from harness.pg import have_version, pg_bin
from harness.pgbouncer import PgBouncer, install_role
from integration.test_pg_sync_roles import Writer, assert_back_on_blue_without_loss, slots

from ansible_collections.dualboot.db.plugins.module_utils import pg_privileges, pg_sync
from ansible_collections.dualboot.db.plugins.module_utils.errors import MissingPrivilege, SafetyRefusal

pytestmark = pytest.mark.skipif(not have_version(17), reason="PostgreSQL 17 binaries missing: run `make setup`")

TEMPLATE = "postgresql://{login_user}:{password!u}@{login_host}:{login_port}/{login_db}"
TABLES = (
    "CREATE TABLE users (user_id serial PRIMARY KEY, user_name varchar(255), creation_date timestamp);"
    "INSERT INTO users (user_name, creation_date) SELECT 'user ' || g, now() FROM generate_series(1, 300) g;"
    "CREATE TABLE events (id bigserial PRIMARY KEY, writer text NOT NULL, seq int NOT NULL, UNIQUE (writer, seq))"
)


def superusers(server) -> list[str]:
    return [r[0] for r in server.db("postgres").query("SELECT rolname FROM pg_roles WHERE rolsuper ORDER BY 1")]


@pytest.fixture
def shop17(tmp_path, pg_major, managed_factory, monkeypatch):
    """Deployment 'shop' as the owner role on two PostgreSQL 17 servers, the application behind PgBouncer."""
    pga, pgb = pg_major(17), pg_major(17, 2)
    # The schema copy of a 17 server needs pg_dump 17: the database host's client tools are found on its PATH.
    monkeypatch.setenv("PATH", f"{pg_bin(17)}{os.pathsep}{os.environ['PATH']}")
    bouncers = []

    def make(blue_without: tuple = (), green_without: tuple = ()) -> dict:
        owner = managed_factory(pga, without=blue_without)
        other = managed_factory(pgb, without=green_without, like=owner)
        name = pga.create_database().name
        owner.admin(f'ALTER DATABASE "{name}" OWNER TO {{role}}')
        blue = owner.db(name)
        blue.execute(TABLES)
        password = "app-" + uuid.uuid4().hex[:8]
        bouncer = PgBouncer({"shop": f"host={pga.host} port={pga.port} dbname={name}"}, {"app": password})
        bouncers.append(bouncer)
        install_role(pga, "app", bouncer.secrets["app"])
        install_role(pgb, "app", bouncer.secrets["app"])
        # The owner grants the application its rights; the copy carries them to green.
        blue.execute("GRANT ALL ON ALL TABLES IN SCHEMA public TO app; GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO app")
        bouncer.start()
        os.chmod(tmp_path, 0o700)
        targets = {
            "app1": [
                {"format": "pgbouncer", "path": str(bouncer.ini), "key": "shop", "pause": True, "pgbouncer_admin": bouncer.admin_params()}
            ]
        }
        entries = {"blue": {**owner.login_params(), "login_db": name}, "green": {**other.login_params(), "login_db": f"g_{name}"}}
        inventory, variables = local_deployment(tmp_path, targets, entries, "r3")
        return {
            "inventory": inventory,
            "vars": variables,
            "bouncer": bouncer,
            "blue": blue,
            "green": other.db(f"g_{name}"),
            "dir": tmp_path,
            "owner": owner,
            "other": other,
            "pga": pga,
            "pgb": pgb,
        }

    yield make
    for bouncer in bouncers:
        bouncer.stop()


def play(d: dict, name: str, **extra):
    proc = run_playbook(f"dualboot.db.{name}", {**d["vars"], **extra}, inventory=str(d["inventory"]))
    return proc.returncode, proc.stdout + proc.stderr


def record(d: dict) -> dict:
    return json.loads((d["dir"] / "records" / "app1.json").read_text())


def test_sync_lifecycle_without_superuser_on_postgresql_17(shop17):
    """stage by sync -> verify -> cutover -> rollback as the owner role, writes all along, nothing lost."""
    d = shop17()
    assert d["owner"].user not in superusers(d["pga"]) + superusers(d["pgb"])
    writer = Writer(d["bouncer"])
    writer.start()
    try:
        for step in ("stage", "verify", "cutover"):
            rc, out = play(d, step)
            assert rc == 0, out[-4000:]
            if step == "stage":
                assert slots(d["pga"]) == ["dualboot_shop_green"]
        assert record(d)["default"] == "green"
        with d["bouncer"].connect("shop", "app") as c:
            assert c.execute("SELECT current_database()").fetchone()[0] == d["green"].name
        assert slots(d["pga"]) == [] and slots(d["pgb"]) == ["dualboot_shop_blue"]
        # The new version writes on the new default: the stream back carries it to blue.
        d["green"].execute("INSERT INTO users (user_name) VALUES ('after cutover')")
        time.sleep(1)
        rc, out = play(d, "rollback")
        assert rc == 0, out[-4000:]
        time.sleep(0.5)
    finally:
        writer.finish()
    assert record(d)["default"] == "blue" and len(writer.acked) > 50
    assert_back_on_blue_without_loss(d, writer, (d["pga"], d["pgb"]))
    assert d["vars"]["dualboot_entries"]["blue"]["login_password"] not in out


@pytest.fixture
def pair17(pg_major, managed_factory):
    """``make(blue_without, green_without)``: the owner role on two PostgreSQL 17 servers, blue's database and tables
    its own, green not created yet."""

    def make(blue_without: tuple = (), green_without: tuple = ()) -> dict:
        owner = managed_factory(pg_major(17), without=blue_without)
        other = managed_factory(pg_major(17, 2), without=green_without, like=owner)
        name = owner.server.create_database().name
        owner.admin(f'ALTER DATABASE "{name}" OWNER TO {{role}}')
        blue = owner.db(name)
        blue.execute(TABLES)
        return {"owner": owner, "other": other, "blue": blue, "green": other.db(f"g_{name}")}

    return make


@pytest.mark.matrix  # make test: the lifecycle's stage runs the same preflight
def test_sync_preflight_probes_the_connection_without_create_on_postgres(pair17):
    """The reachability probe created its subscription in database postgres, where a managed role has no CREATE,
    after switching statement logging off, which only a superuser may."""
    p = pair17()
    assert not p["other"].server.db("postgres").scalar("SELECT has_database_privilege(%s, 'postgres', 'CREATE')", (p["other"].user,))
    r = pg_sync.preflight(p["blue"].conn, p["green"].conn, "dualboot_shop_green")
    assert r["ready"] and r["problems"] == [], r["problems"]
    # The statement carrying the password is logged when it fails (log_min_error_statement = error), on both servers.
    logged = [w for w in r["warnings"] if "logs CREATE SUBSCRIPTION when it fails" in w]
    assert len(logged) == 2 and "GRANT SET ON PARAMETER log_statement, log_min_error_statement TO" in logged[0], r["warnings"]
    assert p["green"].name not in p["other"].server.databases()
    assert not [n for n in p["other"].server.databases() if "probe" in n]


def sides(p: dict, **extra) -> dict:
    return {
        "source": {**p["owner"].login_params(), "login_db": p["blue"].name},
        "target": {**p["other"].login_params(), "login_db": p["green"].name},
        **extra,
    }


def foreign_table(p: dict) -> str:
    """A table on blue owned by another role: a publication can list only its creator's tables."""
    role = f"other_{uuid.uuid4().hex[:6]}"
    p["owner"].admin(f"CREATE ROLE {role} NOLOGIN")
    with p["owner"].server.db(p["blue"].name).connect() as c:
        c.execute(f"CREATE TABLE audit (id int PRIMARY KEY); ALTER TABLE audit OWNER TO {role}")
    return role


# (withheld on blue, withheld on green, the statement the refusal names); {role} is the login role.
# The stream into green needs REPLICATION on blue and pg_create_subscription and CREATEDB on green; the
# stream back, started by the cutover, the same the other way round.
SYNC_WITHHELD = [
    pytest.param((), ("pg_create_subscription",), "GRANT pg_create_subscription TO {role}", id="green-pg_create_subscription"),
    pytest.param(
        ("pg_create_subscription",),
        (),
        "GRANT pg_create_subscription TO {role}",
        id="blue-pg_create_subscription",
        marks=pytest.mark.matrix,
    ),
    pytest.param(("REPLICATION",), (), "ALTER ROLE {role} REPLICATION", id="blue-REPLICATION", marks=pytest.mark.matrix),
    pytest.param((), ("REPLICATION",), "ALTER ROLE {role} REPLICATION", id="green-REPLICATION", marks=pytest.mark.matrix),
    pytest.param((), ("CREATEDB",), "ALTER ROLE {role} CREATEDB", id="green-CREATEDB", marks=pytest.mark.matrix),
    pytest.param("table", (), "GRANT {other} TO {role}", id="blue-table-ownership", marks=pytest.mark.matrix),
]


@pytest.mark.parametrize(("blue_without", "green_without", "grant"), SYNC_WITHHELD)
def test_sync_preflight_names_each_missing_privilege_and_changes_nothing(pair17, run_module, blue_without, green_without, grant):
    p = pair17(() if blue_without == "table" else blue_without, green_without)
    other = foreign_table(p) if blue_without == "table" else ""
    expected = grant.format(role=p["owner"].user, other=other)
    r = run_module("postgresql_preflight", sides(p, step="sync"))
    assert r.failed and r["error"] == "MissingPrivilege" and expected in " | ".join(r["grants"]), r.msg
    assert "nothing was changed" in r.msg
    # The stage role's own preflight (postgresql_sync state=preflight) refuses with the same statement.
    r = run_module("postgresql_sync", sides(p, state="preflight", name="shop", entry="green"))
    assert r.failed and expected in r.msg and expected in " | ".join(r["grants"]), r.msg
    assert slots(p["owner"].server) == [] and p["blue"].scalar("SELECT count(*) FROM pg_publication") == 0
    assert [n for n in p["other"].server.databases() if p["green"].name in n] == []
    assert p["other"].server.db("postgres").scalar("SELECT count(*) FROM pg_subscription") == 0


@pytest.mark.matrix
def test_sync_preflight_wants_a_password_a_subscription_can_use(pair17, tmp_path, monkeypatch):
    """A non-superuser's subscription must log in with a password (password_required): one in a password file of
    the control node never reaches the subscriber's server."""
    p = pair17()
    blue = p["blue"].conn
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"{blue.host}:{blue.port}:*:{blue.user}:{blue.password}\n")
    os.chmod(passfile, 0o600)
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    without = dataclasses.replace(blue, password="")
    with pytest.raises(MissingPrivilege) as err:
        pg_privileges.preflight("sync", without, p["green"].conn)
    assert f"a password for {blue.label()} in the subscription's connection" in err.value.message
    assert f"set login_password of the entry {blue.label()}" in err.value.hint
    with pytest.raises(SafetyRefusal) as err:
        pg_sync.preflight(without, p["green"].conn, "dualboot_shop_green")
    assert "password_required" in err.value.message
    assert p["green"].name not in p["other"].server.databases()
