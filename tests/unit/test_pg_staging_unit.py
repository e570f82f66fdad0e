"""Library pieces of the PostgreSQL staging modules that need no server."""

from __future__ import annotations

import json
import os
import sys

import pytest

from ansible_collections.dualboot.db.plugins.module_utils import pg_backup, pg_drift
from ansible_collections.dualboot.db.plugins.module_utils.errors import (
    ConnectionFailed,
    ExternalToolFailed,
    IntegrityError,
    InvalidInput,
    OperationFailed,
    SafetyRefusal,
)
from ansible_collections.dualboot.db.plugins.module_utils.postgresql import PgConnection


def tool(script: str) -> list[str]:
    """A stand-in client tool: a Python one-liner that prints like pg_dump and exits as told."""
    return [sys.executable, "-c", script]


def test_error_on_stderr_fails_even_with_exit_code_0():
    proc = pg_backup.ToolProcess(tool("import sys; sys.stderr.write('pg_dump: error: query failed: boom\\n'); sys.exit(0)"), {}, "pg_dump")
    with pytest.raises(ExternalToolFailed, match=r"pg_dump failed \(exit 0\): pg_dump: error: query failed: boom"):
        proc.wait()


def test_nonzero_exit_fails_and_warnings_alone_do_not():
    with pytest.raises(ExternalToolFailed, match=r"exit 3"):
        pg_backup.run_tool(tool("import sys; sys.exit(3)"), {}, "pg_restore")
    assert "warning" in pg_backup.run_tool(tool("import sys; sys.stderr.write('pg_dump: warning: x\\n')"), {}, "pg_dump")


def test_failures_are_classified_with_next_steps():
    full = pg_backup.run_tool
    with pytest.raises(OperationFailed, match=r"disk full on /backups \(dest\)") as exc:
        full(
            tool("import sys; sys.stderr.write('pg_dump: error: could not write: No space left on device\\n'); sys.exit(1)"),
            {},
            "x",
            disk="/backups (dest)",
        )
    assert "free space on /backups" in exc.value.hint
    with pytest.raises(ConnectionFailed):
        full(
            tool(
                "import sys; sys.stderr.write('pg_dump: error: connection to server failed: "
                "password authentication failed\\n'); sys.exit(1)"
            ),
            {},
            "x",
        )
    with pytest.raises(ExternalToolFailed) as exc:
        full(tool("import sys; sys.stderr.write('pg_restore: error: role \"app\" does not exist\\n'); sys.exit(1)"), {}, "x")
    assert "no_owner" in exc.value.hint


def test_tool_environment_carries_the_password_and_english_messages(monkeypatch):
    monkeypatch.setenv("LC_ALL", "de_DE.UTF-8")
    env = pg_backup.tool_env(PgConnection(dbname="shop", host="db1", password="s3cret"))
    assert env["PGPASSWORD"] == "s3cret" and env["PGDATABASE"] == "shop" and env["LC_MESSAGES"] == "C" and "LC_ALL" not in env


def test_conninfo_dbname_quotes_names_that_look_like_conninfo():
    assert pg_backup.conninfo_dbname("host=evil user='x'") == "dbname='host=evil user=\\'x\\''"


def test_temp_names_fit_the_identifier_limit_on_character_boundaries():
    name = pg_backup.temp_name("ä" * 60)
    assert len(name.encode()) <= 63 and "__dualboot_tmp_" in name
    name.encode().decode("utf-8")


def test_leftovers_are_the_temporary_names_of_this_target_only():
    long = "ä" * 60
    names = [
        pg_backup.temp_name("shop"),
        pg_backup.temp_name("shop", "probe"),
        pg_backup.temp_name("shop", "old"),
        pg_backup.temp_name("shop2"),  # another target
        "shop__dualboot_tmp_nothex00",
        "shop__dualboot_tmp_0123abcd_x",
        "shop",
        pg_backup.temp_name(long, "check"),
    ]
    assert pg_backup.leftover_names(names, "shop") == sorted(names[:3])
    assert pg_backup.leftover_names(names, "shop", pg_backup.SCRATCH_KINDS) == sorted(names[:2])
    assert pg_backup.leftover_names(names, long) == [names[-1]]


def test_list_settings_are_split_like_pg_dump():
    assert pg_backup.split_guc_list('"$user", public, "we,ird", "a""b"') == ["$user", "public", "we,ird", 'a"b']
    assert pg_backup.split_guc_list("") == []


def test_manifest_checksum_covers_everything_but_itself():
    m = {"format": 1, "files": [{"path": "dump/toc.dat", "sha256": "ab", "size": 1}], "database": "shop"}
    c = pg_backup.manifest_checksum(m)
    assert pg_backup.manifest_checksum({**m, "checksum": c}) == c
    assert pg_backup.manifest_checksum({**m, "database": "other"}) != c


def test_load_manifest_refuses_missing_and_partial(tmp_path):
    with pytest.raises(InvalidInput, match="does not exist"):
        pg_backup.load_manifest(str(tmp_path / "nope"))
    (tmp_path / "b").mkdir()
    with pytest.raises(IntegrityError, match="has no manifest.json"):
        pg_backup.load_manifest(str(tmp_path / "b"))
    (tmp_path / "b.partial-0a1b2c3d").mkdir()
    with pytest.raises(IntegrityError, match="unfinished backup"):
        pg_backup.load_manifest(str(tmp_path / "b.partial-0a1b2c3d"))
    (tmp_path / "b" / "manifest.json").write_text("{not json")
    with pytest.raises(IntegrityError, match="not JSON"):
        pg_backup.load_manifest(str(tmp_path / "b"))


def test_backup_refuses_to_replace_a_directory_it_did_not_make(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"x")
    with pytest.raises(SafetyRefusal, match="not a backup made by postgresql_backup"):
        pg_backup.backup(PgConnection(dbname="shop"), str(tmp_path / "photos"), if_exists="replace")
    with pytest.raises(InvalidInput, match="parent of dest"):
        pg_backup.backup(PgConnection(dbname="shop"), str(tmp_path / "missing" / "b"))
    with pytest.raises(InvalidInput, match="jobs: 4 needs format: directory"):
        pg_backup.backup(PgConnection(dbname="shop"), str(tmp_path / "b"), fmt="custom", jobs=4)


def record(tmp_path, entry: dict) -> str:
    path = tmp_path / "shop.json"
    path.write_text(json.dumps({"format": 1, "name": "shop", "engine": "postgresql", "entries": {"blue": entry}, "default": "blue"}))
    return str(path)


def test_protection_of_the_default_entry_and_the_source(tmp_path):
    target = PgConnection(dbname="shop", host="127.0.0.1", port=5432)
    rec = record(tmp_path, {"login_host": "localhost", "login_port": 5432, "login_db": "shop"})
    with pytest.raises(SafetyRefusal, match="default entry 'blue'"):
        pg_backup.check_protection(target, "1", True, None, rec, False, "restore over")
    assert pg_backup.check_protection(target, "1", True, None, rec, True, "restore over")[0].startswith("force: ")
    assert pg_backup.check_protection(target, "1", False, None, rec, False, "restore over") == []  # nothing to overwrite
    with pytest.raises(SafetyRefusal, match="the database the data comes from"):
        pg_backup.check_protection(target, "42", True, ("42", "shop"), None, False, "restore over")
    assert pg_backup.check_protection(target, "42", True, ("43", "shop"), None, False, "restore over") == []


@pytest.mark.parametrize(
    "next64",
    [5_000, 2**32 - 10, 2**32 + 7, 5 * 2**32 + 123_456, 7 * 2**32 - 1],
)
def test_next_xid64_recovers_the_epoch_across_wraparound(next64):
    # age('3') is next32 - 3 as a signed 32-bit number; the snapshot's xmax is at most ~2^31 below next.
    def age3(n):
        v = (n - 3) % 2**32
        return v - 2**32 if v >= 2**31 else v

    for behind in (0, 1, 1000, 2**31 - 5):
        xmax64 = max(3, next64 - behind)
        assert pg_drift.next_xid64(age3(next64), xmax64) == next64


def test_markers_from_elsewhere_are_refused():
    with pytest.raises(InvalidInput, match="not one recorded by postgresql_backup or postgresql_clone"):
        pg_drift.validate_marker({"database": "shop"})
    good = {"format": 1, "database": "shop", "system_identifier": "1", "xmin": 3, "xmax": 3, "xip": [], "tables": [], "taken_at": "x"}
    assert pg_drift.validate_marker(good) is good
    with pytest.raises(InvalidInput, match="format 2 is not supported"):
        pg_drift.validate_marker({**good, "format": 2})
    with pytest.raises(InvalidInput, match="exactly one of marker"):
        pg_drift.drift(PgConnection(), marker=good, backup="/x")


def test_secure_tree_and_checksums(tmp_path):
    root = tmp_path / "b"
    (root / "dump").mkdir(parents=True)
    (root / "dump" / "toc.dat").write_bytes(b"toc")
    (root / "dump" / "1.dat").write_bytes(b"data" * 1000)
    pg_backup.secure_tree(str(root))
    assert oct(os.stat(root / "dump").st_mode & 0o777) == "0o700" and oct(os.stat(root / "dump" / "1.dat").st_mode & 0o777) == "0o600"
    files = pg_backup.checksum_files(str(root), 2)
    assert [f["path"] for f in files] == ["dump/1.dat", "dump/toc.dat"] and files[0]["size"] == 4000
