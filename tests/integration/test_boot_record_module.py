"""boot_record through ansible-playbook: define, lock, switch (check and diff mode), refusals, query."""

from __future__ import annotations

import json
import os

ENTRIES = {
    "blue": {"login_host": "db1", "login_port": 5432, "login_user": "app", "login_db": "shop_blue"},
    "green": {"login_host": "db1", "login_port": 5432, "login_user": "app", "login_db": "shop_green"},
}


def test_cutover_sequence_through_ansible(tmp_path, run_module):
    path = tmp_path / "dualboot" / "shop.json"
    base = {"name": "shop", "path": str(path)}

    created = run_module(
        "boot_record", {**base, "state": "defined", "engine": "postgresql", "entries": ENTRIES, "default": "blue"}, diff=True
    )
    assert not created.failed, created.msg
    assert created.changed and created["record"]["default"] == "blue"
    assert oct(os.stat(path).st_mode & 0o777) == "0o600" and oct(os.stat(path.parent).st_mode & 0o777) == "0o700"

    locked = run_module("boot_record", {**base, "state": "locked", "run_id": "cutover-1", "owner": "alice", "ttl": 600})
    assert locked.changed and locked["lock"]["run_id"] == "cutover-1"

    refused = run_module("boot_record", {**base, "state": "switched", "to": "green", "run_id": "cutover-2"})
    assert refused.failed and refused["error"] == "SafetyRefusal"
    assert "locked by alice (run cutover-1" in refused.msg and "state=unlocked force=true" in refused["hint"]

    before = path.read_bytes()
    check = run_module("boot_record", {**base, "state": "switched", "to": "green", "run_id": "cutover-1"}, check=True, diff=True)
    assert check.changed and check["previous_default"] == "blue" and check["record"]["default"] == "green"
    assert path.read_bytes() == before
    assert "-default: blue" in check.output and "+default: green" in check.output  # Ansible's --diff

    switched = run_module(
        "boot_record", {**base, "state": "switched", "to": "green", "run_id": "cutover-1", "by": "alice", "reason": "cutover"}
    )
    assert switched.changed and (switched["from"], switched["to"]) == ("blue", "green")
    assert switched["record"]["fallback"] == "blue" and switched["record"]["history"][-1]["action"] == "cutover"
    assert "diff" not in switched.result  # only with --diff

    query = run_module("boot_record", base)
    assert not query.changed and query["exists"] and query["record"]["default"] == "green"
    assert query["record"]["lock"]["run_id"] == "cutover-1" and query["lock_expired"] is False
    assert json.loads(path.read_text()) == query["record"]


def test_corrupt_record_fails_with_its_path_and_is_kept(tmp_path, run_module):
    path = tmp_path / "shop.json"
    path.write_text('{"format": 1, "entries": ')
    result = run_module("boot_record", {"name": "shop", "path": str(path), "state": "switched", "to": "green"})
    assert result.failed and result["error"] == "IntegrityError"
    assert f"boot record {path} is not readable JSON" in result.msg and "never overwritten" in result.msg
    assert path.read_text() == '{"format": 1, "entries": '


def test_secret_in_entries_is_refused_and_not_written(tmp_path, run_module):
    path = tmp_path / "shop.json"
    entries = {"blue": {"login_uri": "mongodb://app:TopSecret9@h1:27017/shop", "database": "shop"}}
    result = run_module(
        "boot_record", {"name": "shop", "path": str(path), "state": "defined", "engine": "mongodb", "entries": entries, "default": "blue"}
    )
    assert result.failed and "blue.login_uri (a URI with a password)" in result.msg
    assert "TopSecret9" not in result.msg and not path.exists()
