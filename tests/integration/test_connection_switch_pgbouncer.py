"""connection_switch against a real PgBouncer in front of two real PostgreSQL clusters (fixtures pg, pg2).

Blue is database ``shop_blue`` on ``pg``, green is ``shop_green`` on ``pg2``; both hold a table
``marker`` naming the entry, and the role ``app`` with the same SCRAM secret on both servers, so one
PgBouncer alias ``shop`` can be switched from one cluster to the other.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

import psycopg
import pytest
from harness.net import free_port
from harness.pgbouncer import PgBouncer, install_role

APP_PASSWORD = "app-" + uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def entries(pg, pg2):
    if pg.host == pg2.host and pg.port == pg2.port:
        pytest.skip("needs two PostgreSQL servers; DUALBOOT_TEST_PG_URI gives one")
    suffix = uuid.uuid4().hex[:6]
    made = []
    result = {}
    for server, name in ((pg, "blue"), (pg2, "green")):
        db = server.create_database(f"shop_{name}_{suffix}")
        made.append((server, db.name))
        db.execute("CREATE TABLE marker (entry text)")
        db.execute("INSERT INTO marker VALUES (%s)", (name,))
        result[name] = {"login_host": server.host, "login_port": server.port, "login_user": "app", "login_db": db.name, "server": server}
    yield result
    for server, name in made:
        server.drop_database(name)


def _bouncer(entries, pool_mode="transaction") -> PgBouncer:
    blue = entries["blue"]
    bouncer = PgBouncer(
        {"shop": f"host={blue['login_host']} port={blue['login_port']} dbname={blue['login_db']} pool_size=4"},
        {"app": APP_PASSWORD},
        pool_mode=pool_mode,
    )
    for entry in entries.values():
        install_role(entry["server"], "app", bouncer.secrets["app"])
        with psycopg.connect(entry["server"].uri(entry["login_db"]), autocommit=True) as c:
            c.execute("GRANT SELECT ON marker TO app")
    return bouncer.start()


@pytest.fixture
def bouncer(entries):
    b = _bouncer(entries)
    yield b
    b.stop()


def entry_arg(entries, name):
    return {k: v for k, v in entries[name].items() if k != "server"}


def switch_args(bouncer, entries, name, **extra):
    return {
        "format": "pgbouncer",
        "path": str(bouncer.ini),
        "key": "shop",
        "entry": entry_arg(entries, name),
        "pgbouncer_admin": bouncer.admin_params(),
        **extra,
    }


def _paused(admin) -> bool:
    return any(r[0] == "shop" and r[-2] == 1 for r in admin.execute("SHOW DATABASES").fetchall())


def marker(conn) -> str:
    return conn.execute("SELECT entry FROM marker").fetchone()[0]


def test_held_connection_runs_its_next_transaction_on_the_new_entry(bouncer, entries, run_module):
    original = bouncer.ini.read_bytes()
    st = os.stat(bouncer.ini)
    client = bouncer.connect("shop", "app")
    assert marker(client) == "blue"

    result = run_module("connection_switch", switch_args(bouncer, entries, "green"), diff=True)
    assert not result.failed, result.msg
    assert result.changed and result["reloaded"]
    green = entries["green"]
    assert result["database"]["port"] == green["login_port"] and result["database"]["database"] == green["login_db"]
    assert marker(client) == "green"  # same client connection, next transaction
    line = f"shop = host={green['login_host']} port={green['login_port']} dbname={green['login_db']} pool_size=4\n"
    assert line in bouncer.ini.read_text()
    after = os.stat(bouncer.ini)
    assert (after.st_uid, after.st_gid, after.st_mode) == (st.st_uid, st.st_gid, st.st_mode)
    assert bouncer.admin_password not in result.output

    again = run_module("connection_switch", switch_args(bouncer, entries, "green"))
    assert not again.failed and not again.changed

    back = run_module("connection_switch", switch_args(bouncer, entries, "blue"))
    assert back.changed and marker(client) == "blue"
    assert bouncer.ini.read_bytes() == original  # there and back: byte for byte
    client.close()


def test_pause_switch_gives_clients_a_pause_not_errors(bouncer, entries, run_module):
    stop = threading.Event()
    log: list[tuple[float, str]] = []
    errors: list[str] = []

    def client_loop():
        with bouncer.connect("shop", "app") as conn:
            while not stop.is_set():
                try:
                    with conn.transaction():
                        conn.execute("SELECT pg_sleep(0.02)")
                        seen = marker(conn)
                    log.append((time.monotonic(), seen))
                except psycopg.Error as exc:
                    errors.append(str(exc))

    def long_transaction():
        # In flight when PAUSE is issued: PAUSE must let it finish on blue, then hold everyone else.
        with bouncer.connect("shop", "app") as conn, conn.transaction():
            seen = marker(conn)
            with bouncer.admin() as admin:
                deadline = time.monotonic() + 60
                while not _paused(admin) and time.monotonic() < deadline:
                    time.sleep(0.02)
            time.sleep(0.5)
        log.append((time.monotonic(), "long:" + seen))

    threads = [threading.Thread(target=client_loop) for _i in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    longest = threading.Thread(target=long_transaction)
    longest.start()
    time.sleep(0.1)
    result = run_module("connection_switch", switch_args(bouncer, entries, "green", pause=True, pause_timeout=10))
    time.sleep(0.5)
    stop.set()
    for t in [*threads, longest]:
        t.join(30)

    assert not result.failed, result.msg
    assert errors == []
    assert "long:blue" in [seen for _t, seen in log], "the in-flight transaction finished on the old entry"
    assert result["pause_wait_s"] >= 0.4  # PAUSE waited for it
    seen = [s for _t, s in log if not s.startswith("long")]
    first_green = seen.index("green")
    assert set(seen[:first_green]) == {"blue"} and set(seen[first_green:]) == {"green"}  # a clean cut, no interleaving
    stamps = [t for t, _seen in log]
    gap = max(b - a for a, b in zip(stamps, stamps[1:]))
    print(
        f"pause switch: paused {result['paused_s']} s (PAUSE waited {result['pause_wait_s']} s), longest client gap {gap:.3f} s, 0 errors"
    )
    assert gap < result["paused_s"] + 1.0


def test_pause_timeout_resumes_clients_and_leaves_the_file(bouncer, entries, run_module):
    original = bouncer.ini.read_bytes()
    holder = bouncer.connect("shop", "app", autocommit=False)
    assert marker(holder) == "blue"  # a transaction stays open on blue
    result = run_module("connection_switch", switch_args(bouncer, entries, "green", pause=True, pause_timeout=1))
    assert result.failed
    assert "PAUSE shop did not finish within 1 s" in result.msg and "clients were resumed and nothing was switched" in result.msg
    assert bouncer.ini.read_bytes() == original
    with bouncer.admin() as admin:
        row = [r for r in admin.execute("SHOW DATABASES").fetchall() if r[0] == "shop"][0]
    assert row[2] == entries["blue"]["login_port"]
    with bouncer.connect("shop", "app") as other:
        assert marker(other) == "blue"  # not paused: others run
    holder.rollback()
    holder.close()


def test_unreachable_admin_console_or_wrong_password_changes_nothing(bouncer, entries, run_module):
    original = bouncer.ini.read_bytes()
    args = switch_args(bouncer, entries, "green")
    args["pgbouncer_admin"] = {**bouncer.admin_params(), "login_port": free_port()}
    result = run_module("connection_switch", args)
    assert result.failed and "cannot reach the PgBouncer admin console" in result.msg and "nothing was changed" in result.msg
    args["pgbouncer_admin"] = {**bouncer.admin_params(), "login_password": "wrong"}
    result = run_module("connection_switch", args)
    assert result.failed and "refused user 'bouncer_admin': SASL authentication failed; nothing was changed" in result.msg
    assert bouncer.ini.read_bytes() == original


def test_reload_that_does_not_take_effect_restores_the_file(bouncer, entries, run_module, tmp_path):
    # A pgbouncer.ini this PgBouncer does not read: the RELOAD succeeds but routes nothing anew.
    stray = tmp_path / "pgbouncer.ini"
    stray.write_bytes(bouncer.ini.read_bytes())
    result = run_module("connection_switch", {**switch_args(bouncer, entries, "green"), "path": str(stray)})
    assert result.failed and "after RELOAD PgBouncer still routes shop" in result.msg and "the file was restored" in result.msg
    assert str(bouncer.ini) in result.get("hint", "")
    assert stray.read_bytes() == bouncer.ini.read_bytes()


def test_check_mode_asks_pgbouncer_and_changes_nothing(bouncer, entries, run_module):
    original = bouncer.ini.read_bytes()
    result = run_module("connection_switch", switch_args(bouncer, entries, "green"), check=True, diff=True)
    assert not result.failed and result.changed and "would switch" in result.msg
    assert "shop_green" in result["diff"]["after"] and bouncer.ini.read_bytes() == original
    with bouncer.connect("shop", "app") as c:
        assert marker(c) == "blue"


def test_session_pooling_moves_clients_on_reconnect(entries, run_module):
    bouncer = _bouncer(entries, pool_mode="session")
    try:
        held = bouncer.connect("shop", "app")
        assert marker(held) == "blue"
        result = run_module("connection_switch", switch_args(bouncer, entries, "green"))
        assert result.changed and not result.failed
        assert marker(held) == "blue"  # a session keeps its server connection until it ends
        with bouncer.connect("shop", "app") as fresh:
            assert marker(fresh) == "green"
        held.close()
    finally:
        bouncer.stop()
