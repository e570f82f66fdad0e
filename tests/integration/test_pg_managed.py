"""The PostgreSQL lifecycle as a managed service's owner role: no superuser, no server files.

The login role (harness ``ManagedLogin``) has CREATEDB, CREATEROLE, REPLICATION and the privileges of
pg_signal_backend, pg_read_all_stats and pg_monitor, owns the default entry's database, and nothing
more. Each test removes or withholds one privilege where it is about that privilege.
"""

from __future__ import annotations

import json
import os

import psycopg
import pytest
import yaml
from harness.ansible import local_deployment, run_playbook
from harness.paths import ROOT
from integration.data.pg.staging import databases, fingerprint, make_users

from ansible_collections.dualboot.db.plugins.module_utils import pg_clone, pg_freeze

R1 = "ALTER TABLE users RENAME COLUMN user_name TO full_name; ALTER TABLE users ALTER COLUMN full_name TYPE text"


def owned_db(login, name: str | None = None):
    """A database owned by ``login`` (given to it by the admin, as a service's console does) whose tables it created."""
    name = login.server.create_database(name).name
    login.admin(f'ALTER DATABASE "{name}" OWNER TO {{role}}')
    db = login.db(name)
    make_users(db, rows=500)
    return db


def conn_args(login, db: str) -> dict:
    return {**login.login_params(), "login_db": db}


def two_sided(login, source: str, target: str, **extra) -> dict:
    return {**login.login_params(), "source": {"login_db": source}, "target": {"login_db": target}, **extra}


def frozen(db) -> bool:
    return db.scalar("SELECT count(*) FROM pg_proc WHERE proname = 'freeze_guard'") > 0


@pytest.fixture
def owner(managed_factory):
    return managed_factory()


@pytest.fixture
def live(owner):
    return owned_db(owner)


def test_stage_copy_as_an_owner_without_pg_read_all_settings(managed_factory, run_module):
    """The named bug: every clone method read data_directory, which needs pg_read_all_settings."""
    login = managed_factory(without=("pg_monitor",))
    live = owned_db(login)
    for method in ("stream", "auto"):
        green = f"g_{method}_{live.name}"
        r = run_module("postgresql_clone", two_sided(login, live.name, green, method=method))
        assert not r.failed, r.msg
        assert fingerprint(login.db(green)) == fingerprint(live)


# make test: what auto picks, and stream (the copy a managed service leaves); make matrix: every method.
@pytest.mark.parametrize(
    "method", ["auto", "stream", *(pytest.param(m, marks=pytest.mark.matrix) for m in ("template", "dump_restore", "pipe"))]
)
def test_every_copy_method_as_the_owner_role(owner, live, method):
    green = f"g_{live.name}"
    r = pg_clone.clone(live.conn, live.conn.with_db(green), method=method)
    assert r["method"] == ("template" if method == "auto" else method)
    assert fingerprint(owner.db(green)) == fingerprint(live)
    assert owner.server.db(green).scalar("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()") == owner.user


def test_copy_across_servers_as_the_same_owner_role_on_each(owner, live, pg2, managed_factory):
    other = managed_factory(pg2, like=owner)
    green = f"g_{live.name}"
    r = pg_clone.clone(live.conn, other.db(green).conn)
    assert r["method"] == "stream"
    assert fingerprint(other.db(green)) == fingerprint(live)


def test_backup_and_restore_as_the_owner_role(owner, live, tmp_path, run_module):
    dest = tmp_path / "backup"
    r = run_module("postgresql_backup", {**conn_args(owner, live.name), "dest": str(dest), "jobs": 2})
    assert not r.failed, r.msg
    green = f"g_{live.name}"
    r = run_module("postgresql_restore", {**conn_args(owner, green), "src": str(dest), "jobs": 2})
    assert not r.failed, r.msg
    assert fingerprint(owner.db(green)) == fingerprint(live)


def test_template_needs_ownership_and_auto_copies_from_a_snapshot_instead(pg, owner, run_module):
    """A database owned by another role may be copied by dump, not as a template (PostgreSQL 15 rule)."""
    owner.admin("CREATE ROLE appowner_x NOLOGIN")
    try:
        live = pg.create_database()
        make_users(live, rows=100)
        live.execute(
            f'ALTER DATABASE "{live.name}" OWNER TO appowner_x; GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{owner.user}";'
            f'GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO "{owner.user}"'
        )
        green = f"g_{live.name}"
        r = run_module("postgresql_clone", two_sided(owner, live.name, green, method="template", no_owner=True))
        assert r.failed and r["error"] == "MissingPrivilege" and "GRANT appowner_x TO" in r.msg, r.msg
        assert green not in databases(pg)
        r = run_module("postgresql_clone", two_sided(owner, live.name, green, no_owner=True))
        assert not r.failed, r.msg
        assert r["method"] == "stream" and "neither owns the source database" in r["method_reason"]
        assert fingerprint(owner.db(green)) == fingerprint(live)
    finally:
        pg.drop_database(live.name)
        owner.admin("DROP OWNED BY appowner_x; DROP ROLE appowner_x")


def test_physical_is_refused_before_anything_without_replication(managed_factory, tmp_path, run_module):
    login = managed_factory(without=("REPLICATION",))
    live = owned_db(login)
    data_dir = tmp_path / "copy"
    for method in ("physical", "auto"):
        args = two_sided(login, live.name, live.name, method=method, target_data_dir=str(data_dir))
        args["target"]["login_port"] = login.port + 1
        r = run_module("postgresql_clone", args)
        assert r.failed and r["error"] == "MissingPrivilege", r.msg
        assert f"ALTER ROLE {login.user} REPLICATION" in r.msg
        assert "managed services allow no physical copy" in r.msg and not data_dir.exists()


def test_lifecycle_steps_as_the_owner_role(owner, live, run_module):
    """stage -> verify -> cutover -> rollback, module by module, as the owner role, with an application
    session of another role open on the default entry (freeze must see it and end it)."""
    green = f"g_{live.name}"
    pair = two_sided(owner, live.name, green)
    r = run_module("postgresql_preflight", {**pair, "step": "stage"})
    assert not r.failed and not r.changed and r["roles"]["default"]["superuser"] is False, r.msg
    r = run_module("postgresql_clone", pair)
    assert not r.failed and r["method"] == "template", r.msg
    marker = r["marker"]
    staged = conn_args(owner, green)
    assert not run_module("postgresql_freeze", {**staged, "state": "thawed"}).failed
    r = run_module("postgresql_migrate", {**staged, "migrations": [{"version": "1", "description": "r1", "sql": R1}]})
    assert not r.failed and r.changed, r.msg

    r = run_module("postgresql_preflight", {**pair, "step": "verify"})
    assert not r.failed, r.msg
    expect = [
        {"kind": "column", "name": "users.user_name", "change": "removed"},
        {"kind": "column", "name": "users.full_name", "change": "added"},
    ]
    r = run_module("postgresql_schema_diff", {**pair, "expect": expect})
    assert not r.failed, r.msg
    mapping = {
        "table": "users",
        "source_query": "SELECT user_id, user_name::text FROM users",
        "target_query": "SELECT user_id, full_name FROM users",
    }
    r = run_module("postgresql_compare", {**pair, "mappings": [mapping]})
    assert not r.failed, r.msg
    r = run_module("postgresql_drift", {**conn_args(owner, live.name), "marker": marker})
    assert not r.failed and r["drift"] is False, r.msg

    owner.admin(f"CREATE ROLE app_{owner.user} LOGIN PASSWORD 'pw'; GRANT ALL ON ALL TABLES IN SCHEMA public TO app_{owner.user}")
    live.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO app_{owner.user}")
    app = psycopg.connect(host=owner.host, port=owner.port, user=f"app_{owner.user}", password="pw", dbname=live.name)
    try:
        app.execute("UPDATE users SET user_name = user_name WHERE user_id = 1")  # an open write transaction
        r = run_module("postgresql_preflight", {**pair, "step": "cutover"})
        assert not r.failed, r.msg
        r = run_module("postgresql_freeze", {**conn_args(owner, live.name), "wait_timeout": 1, "terminate": True})
        assert not r.failed and r.changed, r.msg
        assert app.closed or app.broken or _terminated(app)
    finally:
        app.close()
    assert frozen(live) and live.scalar("SHOW default_transaction_read_only") == "on"

    r = run_module("postgresql_preflight", {**pair, "step": "rollback"})
    assert not r.failed, r.msg
    assert not run_module("postgresql_freeze", {**conn_args(owner, green), "wait_timeout": 1, "terminate": True}).failed
    assert not run_module("postgresql_freeze", {**conn_args(owner, live.name), "state": "thawed", "terminate": True}).failed
    assert not frozen(live) and frozen(owner.db(green))


def _terminated(app) -> bool:
    try:
        app.execute("SELECT 1")
    except psycopg.OperationalError:
        return True
    return False


# (what is withheld, the step, the statement the failure must name). The managed profile reaches
# pg_read_all_stats through pg_monitor too, so that case withholds both.
WITHHELD = [
    (("CREATEDB",), "stage", "ALTER ROLE {role} CREATEDB"),
    (("pg_signal_backend",), "cutover", "GRANT pg_signal_backend TO {role}"),
    (("pg_read_all_stats", "pg_monitor"), "cutover", "GRANT pg_read_all_stats TO {role}"),
]


@pytest.mark.parametrize(("without", "step", "grant"), WITHHELD, ids=[w[0][0] for w in WITHHELD])
def test_preflight_names_each_missing_role_privilege_and_changes_nothing(managed_factory, without, step, grant, run_module):
    login = managed_factory(without=without)
    live = owned_db(login)
    green = f"g_{live.name}"
    if step != "stage":
        pg_clone.clone(live.conn, live.conn.with_db(green))
    before = fingerprint(live)
    r = run_module("postgresql_preflight", two_sided(login, live.name, green, step=step))
    assert r.failed and r["error"] == "MissingPrivilege", r.msg
    expected = grant.format(role=login.user)
    assert expected in r.msg and expected in r["grants"], r.msg
    assert "nothing was changed" in r.msg and "Next step" in r.msg
    assert fingerprint(live) == before and not frozen(live)
    if step == "stage":
        assert green not in databases(login.server)


def test_preflight_names_objects_the_role_cannot_read_or_does_not_own(pg, owner, live, run_module):
    owner.admin("CREATE ROLE other_x NOLOGIN")
    green = f"g_{live.name}"
    try:
        live.execute("CREATE TABLE secret (id int)")
        with psycopg.connect(pg.uri(live.name), autocommit=True) as c:
            c.execute("ALTER TABLE secret OWNER TO other_x")
        r = run_module("postgresql_preflight", two_sided(owner, live.name, green, step="stage"))
        assert r.failed and f"GRANT SELECT ON public.secret TO {owner.user}" in r["grants"], r.msg
        assert "SELECT on public.secret" in r.msg and green not in databases(pg)
        pg.create_database(green, template=live.name)
        r = run_module("postgresql_preflight", two_sided(owner, live.name, green, step="cutover"))
        assert r.failed and "ownership of table public.secret (owned by other_x)" in r.msg, r.msg
        assert f"GRANT other_x TO {owner.user}" in r.msg and not frozen(live)
    finally:
        with psycopg.connect(pg.uri(live.name), autocommit=True) as c:
            c.execute("DROP TABLE IF EXISTS secret")
        owner.server.drop_database(green)
        owner.admin("DROP ROLE other_x")


def test_preflight_refuses_replacing_a_staged_database_the_role_does_not_own(pg, owner, live, run_module):
    green = pg.create_database()  # owned by the superuser
    green.execute("CREATE TABLE kept (id int); INSERT INTO kept VALUES (1)")
    try:
        r = run_module("postgresql_preflight", two_sided(owner, live.name, green.name, step="stage"))
        assert r.failed and f"ALTER DATABASE {green.name} OWNER TO {owner.user}" in r.msg, r.msg
        assert green.scalar("SELECT count(*) FROM kept") == 1
    finally:
        pg.drop_database(green.name)


def test_privilege_errors_without_preflight_name_the_grant(pg, owner, live, run_module):
    """No 'unexpected error:' for a privilege failure: the boundary names the privilege and the GRANT."""
    with psycopg.connect(pg.uri(live.name), autocommit=True) as c:
        c.execute("CREATE TABLE secret (id int); INSERT INTO secret VALUES (1)")
    foreign = pg.create_database()  # owned by the superuser
    try:
        green = f"g_{live.name}"
        r = run_module("postgresql_clone", two_sided(owner, live.name, green, method="dump_restore"))
        assert r.failed and r["error"] == "MissingPrivilege" and "secret" in r.msg, r.msg
        assert "unexpected error" not in r.msg and "GRANT SELECT" in r.msg and green not in databases(pg)
        r = run_module("postgresql_compare", two_sided(owner, live.name, live.name, tables=["secret"]))
        assert r.failed and r["error"] == "MissingPrivilege" and "GRANT SELECT" in r.msg, r.msg
        # No step-specific check here: the module boundary maps the server's error.
        r = run_module("postgresql_drift", {**conn_args(owner, live.name), "mark": True})
        assert r.failed and r["error"] == "MissingPrivilege" and f"ON secret TO {owner.user}" in r.msg, r.msg
        r = run_module(
            "postgresql_migrate", {**conn_args(owner, live.name), "migrations": [{"version": "1", "sql": "ALTER TABLE secret ADD y int"}]}
        )
        assert r.failed and "must be owner of table secret" in r.msg and "OWNER TO" in r["hint"], r.msg
        r = run_module("postgresql_freeze", conn_args(owner, foreign.name))
        assert r.failed and r["error"] == "MissingPrivilege" and "unexpected error" not in r.msg, r.msg
        assert "OWNER TO" in r.msg and not frozen(foreign)
    finally:
        with psycopg.connect(pg.uri(live.name), autocommit=True) as c:
            c.execute("DROP TABLE secret")
        pg.drop_database(foreign.name)


def test_sync_is_refused_on_postgresql_15_without_superuser(owner, live, pg2, managed_factory, run_module):
    """Subscriptions (the stream into the staged entry, and the stream back into the default entry) need a superuser
    on 15: both preflights say so, and name the ways out (PostgreSQL 16+ with pg_create_subscription, or a copy)."""
    other = managed_factory(pg2, like=owner)
    green = f"g_{live.name}"
    pair = {"source": {**owner.login_params(), "login_db": live.name}, "target": {**other.login_params(), "login_db": green}}
    r = run_module("postgresql_preflight", {**pair, "step": "sync"})
    assert r.failed and r["error"] == "MissingPrivilege" and "nothing was changed" in r.msg, r.msg
    r2 = run_module("postgresql_sync", {**pair, "state": "preflight", "name": "shop", "entry": "green"})
    assert r2.failed, r2.msg
    for msg in (r.msg, r2.msg):
        assert "SUPERUSER (PostgreSQL 15 lets only superusers create subscriptions)" in msg, msg
        assert f"upgrade this server to PostgreSQL 16 or newer (then GRANT pg_create_subscription TO {owner.user})" in msg
        assert "stage by copy (dualboot_stage_method: copy)" in msg
        assert f"{live.name} (for sync: the stream back" in msg and f"{green} (for sync: the stream into" in msg
    assert green not in databases(pg2) and live.scalar("SELECT count(*) FROM pg_publication") == 0


def test_freeze_by_the_owner_is_what_cutover_relies_on(owner, live):
    """Owner-level freeze: the database setting and the guard triggers, no superuser."""
    pg_freeze.freeze(live.conn, 1, True, False)
    with psycopg.connect(live.uri, autocommit=True) as c, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        c.execute("INSERT INTO users (user_name) VALUES ('x')")
    pg_freeze.thaw(live.conn, 1, True, False)
    live.execute("INSERT INTO users (user_name) VALUES ('x')")


# ---------------------------------------------------------------------------------------------
# The lifecycle roles as the owner role (entries on two servers, one application host)
# ---------------------------------------------------------------------------------------------

TEMPLATE = "postgresql://{login_user}:{password!u}@{login_host}:{login_port}/{login_db}"
USERS = (
    "CREATE TABLE users (user_id serial PRIMARY KEY, user_name varchar(255), creation_date timestamp);"
    "INSERT INTO users (user_name, creation_date) SELECT 'user ' || g, now() FROM generate_series(1, 300) g"
)


@pytest.fixture
def shop(tmp_path, pg2, managed_factory):
    """Deployment 'shop' as the owner role: default entry blue on pg (owned by it), green on pg2 (created by stage)."""

    def make(change: str = "r1", green_without: tuple = ()):
        owner = managed_factory()
        other = managed_factory(pg2, without=green_without, like=owner)
        name = owner.server.create_database().name
        owner.admin(f'ALTER DATABASE "{name}" OWNER TO {{role}}')
        blue = owner.db(name)
        blue.execute(USERS)
        os.chmod(tmp_path, 0o700)
        env = tmp_path / "app1.env"
        env.write_text(f"DATABASE_URL={blue.uri}\n")
        os.chmod(env, 0o600)
        targets = {"app1": [{"format": "dotenv", "path": str(env), "key": "DATABASE_URL", "template": TEMPLATE}]}
        entries = {"blue": {**owner.login_params(), "login_db": name}, "green": {**other.login_params(), "login_db": f"g_{name}"}}
        inventory, variables = local_deployment(tmp_path, targets, entries, change)
        return {
            "inventory": inventory,
            "vars": variables,
            "env": env,
            "blue": blue,
            "green": other.db(f"g_{name}"),
            "dir": tmp_path,
            "owner": owner,
            "other": other,
        }

    return make


def play(d: dict, name: str, **extra):
    proc = run_playbook(f"dualboot.db.{name}", {**d["vars"], **extra}, inventory=str(d["inventory"]))
    return proc.returncode, proc.stdout + proc.stderr


def record(d: dict) -> dict:
    return json.loads((d["dir"] / "records" / "app1.json").read_text())


@pytest.mark.matrix  # make test: the molecule postgresql scenario runs R1 and R2 through every step as a managed owner role
def test_r1_then_r2_through_the_lifecycle_roles_as_the_owner_role(shop):
    d = shop()
    for step in ("stage", "verify", "cutover"):
        rc, out = play(d, step)
        assert rc == 0, out[-3000:]
    assert record(d)["default"] == "green" and frozen(d["blue"])
    assert d["green"].scalar("SELECT count(*) FROM users WHERE full_name IS NOT NULL") == 300

    r2 = {**d["vars"], **yaml.safe_load((ROOT / "demo" / "changes" / "r2" / "dualboot.yml").read_text())}
    for step in ("stage", "verify", "cutover"):
        rc, out = play({**d, "vars": r2}, step)
        assert rc == 0, out[-3000:]
    assert record(d)["default"] == "blue" and d["blue"].scalar("SELECT count(*) FROM user_profiles") == 300
    rc, out = play({**d, "vars": r2}, "rollback")
    assert rc == 0, out[-3000:]
    r = record(d)
    assert r["default"] == "green" and [h["action"] for h in r["history"]] == ["cutover", "cutover", "rollback"]
    assert frozen(d["blue"]) and not frozen(d["green"]) and "/" + d["green"].name in d["env"].read_text()
    assert d["vars"]["dualboot_entries"]["blue"]["login_password"] not in out


def test_stage_without_createdb_stops_at_preflight_and_creates_nothing(shop):
    d = shop(green_without=("CREATEDB",))
    rc, out = play(d, "stage")
    assert rc != 0 and "lacks" in out and "nothing was changed" in out, out[-3000:]
    assert f"ALTER ROLE {d['other'].user} CREATEDB" in out, out[-3000:]
    assert d["green"].name not in databases(d["other"].server)
    records = d["dir"] / "records" / "app1.json"
    assert not records.exists() or "stage" not in record(d).get("evidence", {}).get("green", {})


def test_cutover_without_pg_signal_backend_stops_at_preflight_and_freezes_nothing(shop):
    d = shop()
    for step in ("stage", "verify"):
        rc, out = play(d, step)
        assert rc == 0, out[-3000:]
    d["owner"].admin("REVOKE pg_signal_backend FROM {role}")
    rc, out = play(d, "cutover")
    assert rc != 0 and f"GRANT pg_signal_backend TO {d['owner'].user}" in out, out[-3000:]
    r = record(d)
    assert r["default"] == "blue" and r["lock"] is None
    assert not frozen(d["blue"]) and f"/{d['blue'].name}" in d["env"].read_text()
