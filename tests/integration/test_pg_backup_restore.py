"""postgresql_backup and postgresql_restore against real servers: R5, formats, manifest, atomicity, bad input."""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import stat

import psycopg
import pytest
from harness.net import free_port
from integration.data.pg.staging import databases, fingerprint, make_users, temp_leftovers, tiny_filesystem

from ansible_collections.dualboot.db.plugins.module_utils import pg_backup
from ansible_collections.dualboot.db.plugins.module_utils.errors import (
    ConnectionFailed,
    IntegrityError,
    InvalidInput,
    OperationFailed,
    SafetyRefusal,
)


@pytest.fixture
def live(pg):
    db = pg.create_database()
    make_users(db)
    yield db
    pg.drop_database(db.name)


@pytest.fixture
def workdir(tmp_path):
    os.chmod(tmp_path, 0o700)
    return tmp_path


@pytest.fixture
def staged_name(pg):
    name = f"staged_{os.urandom(4).hex()}"
    yield name
    pg.drop_database(name)


def test_r5_backup_live_restore_into_staged_equal(pg, live, workdir, staged_name, run_module):
    """R5: a backup of the live entry restored into the staged entry is equal to live; live is untouched."""
    before = fingerprint(live)
    dest = str(workdir / "shop-backup")
    r = run_module("postgresql_backup", {**live.params, "dest": dest})
    assert not r.failed, r.msg
    assert r.changed and r["format"] == "directory" and r["jobs"] == (os.cpu_count() or 1)
    assert r["database"] == live.name and r["size_bytes"] > 0 and r["duration_s"] > 0 and "MB/s" in r["summary"]
    assert pg.password not in r.output

    manifest = json.loads((workdir / "shop-backup" / "manifest.json").read_text())
    assert manifest["database"] == live.name and manifest["server_version_num"] >= 150000
    assert manifest["system_identifier"] and manifest["wal_lsn"] and manifest["snapshot_time"]
    assert manifest["dump"] == {**manifest["dump"], "format": "directory", "path": "dump", "compress": 0}
    for f in manifest["files"]:
        data = (workdir / "shop-backup" / f["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f["sha256"] and len(data) == f["size"]
    assert {t["name"] for t in manifest["marker"]["tables"]} == {"users", "orders"}
    users = next(t for t in manifest["marker"]["tables"] if t["name"] == "users")
    assert users["rows"]["old"] + users["rows"]["band"] == 2000 and users["rows"]["new"] == 0
    for dirpath, _dirnames, filenames in os.walk(dest):
        assert stat.S_IMODE(os.stat(dirpath).st_mode) == 0o700
        for f in filenames:
            assert stat.S_IMODE(os.stat(os.path.join(dirpath, f)).st_mode) == 0o600
    assert not [p for p in os.listdir(workdir) if ".partial-" in p]

    r = run_module("postgresql_restore", {**live.params, "login_db": staged_name, "src": dest})
    assert not r.failed, r.msg
    assert r.changed and not r["replaced"] and r["verified"]["files"] == len(manifest["files"])
    assert r["backup_id"] == manifest["id"] and r["source_database"] == live.name
    assert pg.password not in r.output
    staged = pg.db(staged_name)
    assert fingerprint(staged) == before == fingerprint(live)
    assert staged.scalar("SELECT user_count()") == 2000
    assert staged.scalar("SELECT count(*) FROM pg_stats WHERE tablename = 'users'") > 0  # analyzed
    assert temp_leftovers(pg) == []


@pytest.mark.parametrize("fmt,compress", [("custom", 0), ("plain", 0), ("plain", 5)])
def test_other_formats_round_trip(pg, live, workdir, staged_name, fmt, compress):
    dest = str(workdir / f"b-{fmt}")
    r = pg_backup.backup(live.conn, dest, fmt=fmt, compress=compress)
    assert r["format"] == fmt and r["jobs"] == 1
    expected = {"custom": "dump.custom", "plain": "dump.sql.gz" if compress else "dump.sql"}[fmt]
    assert os.path.exists(os.path.join(dest, expected))
    r = pg_backup.restore(live.conn.with_db(staged_name), dest)
    assert fingerprint(pg.db(staged_name)) == fingerprint(live)


def test_check_mode_writes_and_creates_nothing(pg, live, workdir, staged_name, run_module):
    dest = str(workdir / "never")
    r = run_module("postgresql_backup", {**live.params, "dest": dest}, check=True)
    assert not r.failed and r.changed and "would back up" in r["summary"]
    assert os.listdir(workdir) == []
    pg_backup.backup(live.conn, dest)
    r = run_module("postgresql_restore", {**live.params, "login_db": staged_name, "src": dest}, check=True, diff=True)
    assert not r.failed and r.changed and r["diff"]["before"] == {"database": staged_name, "exists": False}
    assert staged_name not in databases(pg)


def test_if_exists_fail_then_replace_swaps_atomically(pg, live, workdir, staged_name):
    dest = str(workdir / "b")
    pg_backup.backup(live.conn, dest)
    with pytest.raises(InvalidInput, match="dest .* already exists.*if_exists: replace"):
        pg_backup.backup(live.conn, dest)
    first_id = json.loads(open(os.path.join(dest, "manifest.json")).read())["id"]
    r = pg_backup.backup(live.conn, dest, if_exists="replace")
    assert r["replaced"] and r["manifest"]["id"] != first_id and sorted(os.listdir(workdir)) == ["b"]

    pg_backup.restore(live.conn.with_db(staged_name), dest)
    staged = pg.db(staged_name)
    staged.execute("CREATE TABLE only_in_old_copy (x int)")
    with pytest.raises(InvalidInput, match="already exists.*if_exists: replace"):
        pg_backup.restore(live.conn.with_db(staged_name), dest)
    r = pg_backup.restore(live.conn.with_db(staged_name), dest, if_exists="replace")
    assert r["replaced"]
    assert staged.scalar("SELECT to_regclass('only_in_old_copy')") is None
    assert fingerprint(staged) == fingerprint(live) and temp_leftovers(pg) == []


def test_replace_refused_while_sessions_use_the_target(pg, live, workdir, staged_name):
    dest = str(workdir / "b")
    pg_backup.backup(live.conn, dest)
    pg_backup.restore(live.conn.with_db(staged_name), dest)
    with pg.db(staged_name).connect():
        with pytest.raises(OperationFailed, match="has 1 open session"):
            pg_backup.restore(live.conn.with_db(staged_name), dest, if_exists="replace")
    assert temp_leftovers(pg) == []


# --- bad input: one clear message, nothing changed on the default entry ----------------------


def test_wrong_password_unreachable_host_missing_database(pg, live, workdir, run_module):
    before = fingerprint(live)
    r = run_module("postgresql_backup", {**live.params, "login_password": "wrong-secret", "dest": str(workdir / "x")})
    assert r.failed and r["error"] == "ConnectionFailed"
    assert "password authentication failed" in r.msg and "check login_password" in r.msg
    assert "wrong-secret" not in r.output and pg.password not in r.output

    with pytest.raises(ConnectionFailed, match="cannot connect to PostgreSQL .*Connection refused") as exc:
        pg_backup.backup(live.conn.__class__(**{**live.conn.__dict__, "port": free_port(), "connect_timeout": 3}), str(workdir / "x"))
    assert "check that PostgreSQL runs and accepts connections" in str(exc.value)

    with pytest.raises(ConnectionFailed, match='database "no_such_db" does not exist') as exc:
        pg_backup.backup(live.conn.with_db("no_such_db"), str(workdir / "x"))
    assert "create database 'no_such_db' or correct login_db" in str(exc.value)
    assert os.listdir(workdir) == [] and fingerprint(live) == before


def test_restore_over_the_backups_own_source_is_refused(pg, live, workdir):
    dest = str(workdir / "b")
    pg_backup.backup(live.conn, dest)
    live.execute("INSERT INTO users (user_name) VALUES ('written after the backup')")
    before = fingerprint(live)
    with pytest.raises(SafetyRefusal) as exc:
        pg_backup.restore(live.conn, dest, if_exists="replace")
    assert f"it is the database the data comes from (server {pg_backup_sysid(live)}, database '{live.name}')" in str(exc.value)
    assert fingerprint(live) == before and temp_leftovers(pg) == []


def pg_backup_sysid(db) -> str:
    return str(db.scalar("SELECT system_identifier FROM pg_control_system()"))


def test_restore_over_the_boot_records_default_entry_is_refused(pg, live, workdir, staged_name):
    dest = str(workdir / "b")
    pg_backup.backup(live.conn, dest)
    pg_backup.restore(live.conn.with_db(staged_name), dest)
    record = workdir / "shop.json"
    entries = {
        "blue": {"login_host": pg.host, "login_port": pg.port, "login_db": staged_name},
        "green": {"login_host": pg.host, "login_port": pg.port, "login_db": live.name},
    }
    record.write_text(
        json.dumps({"format": 1, "name": "shop", "engine": "postgresql", "entries": entries, "default": "blue", "history": []})
    )
    pg.db(staged_name).execute("CREATE TABLE live_marker (x int)")
    with pytest.raises(SafetyRefusal, match=r"it is the default entry 'blue' of boot record .*shop.json \(the live database\)"):
        pg_backup.restore(live.conn.with_db(staged_name), dest, if_exists="replace", boot_record=str(record))
    assert pg.db(staged_name).scalar("SELECT to_regclass('live_marker')") is not None
    r = pg_backup.restore(live.conn.with_db(staged_name), dest, if_exists="replace", boot_record=str(record), force=True)
    assert r["warnings"] and r["warnings"][0].startswith("force: refusing to restore over")


@pytest.mark.parametrize("damage", ["corrupt", "truncate", "remove", "manifest", "partial"])
def test_damaged_backup_is_refused_before_touching_the_server(pg, live, workdir, staged_name, damage):
    dest = workdir / "b"
    pg_backup.backup(live.conn, str(dest))
    manifest = json.loads((dest / "manifest.json").read_text())
    biggest = max(manifest["files"], key=lambda f: f["size"])["path"]
    target = dest / biggest
    if damage == "corrupt":
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0xFF
        target.write_bytes(bytes(data))
        expected = f"{biggest}: sha256 .* \\(corrupted\\)"
    elif damage == "truncate":
        target.write_bytes(target.read_bytes()[:-100])
        expected = f"{biggest}: .* bytes, manifest says .* \\(truncated or grown\\)"
    elif damage == "remove":
        target.unlink()
        expected = f"{biggest}: missing"
    elif damage == "manifest":
        manifest["database"] = "someone_else"
        (dest / "manifest.json").write_text(json.dumps(manifest))
        expected = "was modified or damaged: its own checksum does not match"
    else:
        partial = workdir / "b.partial-1234abcd"
        shutil.copytree(dest, partial)
        (partial / "manifest.json").unlink()
        dest = partial
        expected = "unfinished backup"
    with pytest.raises(IntegrityError, match=expected) as exc:
        pg_backup.restore(live.conn.with_db(staged_name), str(dest))
    assert exc.value.hint and (
        "nothing was restored" in exc.value.hint or "complete backup" in exc.value.hint or "another" in exc.value.hint
    )
    assert staged_name not in databases(pg) and temp_leftovers(pg) == []


def test_backup_from_a_newer_major_version_is_refused(pg, live, workdir, staged_name):
    dest = workdir / "b"
    pg_backup.backup(live.conn, str(dest))
    manifest = json.loads((dest / "manifest.json").read_text())
    manifest.update(server_version="17.2", server_version_num=170002)
    manifest["checksum"] = pg_backup.manifest_checksum(manifest)
    (dest / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InvalidInput) as exc:
        pg_backup.restore(live.conn.with_db(staged_name), str(dest))
    assert "was made from PostgreSQL 17.2 and cannot be restored into PostgreSQL 15" in str(exc.value)
    assert "restore into a PostgreSQL 17 or newer server" in exc.value.hint
    assert staged_name not in databases(pg)


def test_disk_full_during_backup(pg, live, workdir):
    live.execute("CREATE TABLE filler AS SELECT i, repeat(md5(i::text), 4) AS pad FROM generate_series(1, 40000) i")
    before = fingerprint(live)
    with tiny_filesystem("2m") as small:
        dest = os.path.join(small, "backup")
        with pytest.raises(OperationFailed, match=f"disk full on {small} \\(dest\\)") as exc:
            pg_backup.backup(live.conn, dest, jobs=1)
        assert "No space left on device" in str(exc.value) and "free space on" in exc.value.hint
        assert os.listdir(small) == []  # neither dest nor a .partial- directory
    assert fingerprint(live) == before


@pytest.fixture
def tiny_tablespace(pg):
    if getattr(pg, "external", False):
        pytest.skip("needs a tablespace directory on the server's host")
    owner = pwd.getpwnam("dualboot").pw_uid if os.geteuid() == 0 else None
    with tiny_filesystem("12m", owner_uid=owner) as path:
        with psycopg.connect(pg.uri(), autocommit=True) as c:
            c.execute(f"CREATE TABLESPACE tiny LOCATION '{path}'")
        try:
            yield "tiny"
        finally:
            with psycopg.connect(pg.uri(), autocommit=True) as c:
                c.execute("DROP TABLESPACE tiny")  # fails if the failed restore left anything behind


def test_disk_full_during_restore(pg, live, workdir, staged_name, tiny_tablespace):
    live.execute("CREATE TABLE filler AS SELECT i, repeat(md5(i::text), 4) AS pad FROM generate_series(1, 150000) i")
    dest = str(workdir / "b")
    pg_backup.backup(live.conn, dest)
    before = fingerprint(live)
    with pytest.raises(OperationFailed, match="disk full on the target server") as exc:
        pg_backup.restore(live.conn.with_db(staged_name), dest, tablespace=tiny_tablespace)
    assert "No space left on device" in str(exc.value) or "could not extend file" in str(exc.value)
    assert staged_name not in databases(pg) and temp_leftovers(pg) == []
    assert fingerprint(live) == before
