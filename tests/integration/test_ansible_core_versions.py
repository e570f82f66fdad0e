"""The collection on the oldest and the newest supported ansible-core (meta/runtime.yml requires_ansible):
the whole lifecycle on real servers, and not one warning or deprecation printed by the collection.

Older releases run from the controller venvs ``.cache/venv-core-<minor>`` that scripts/setup.sh
installs; ``None`` is the pinned ansible-core of the test venv (test-requirements.txt).
`scripts/sanity.sh` runs ansible-test sanity for every supported release.
"""

from __future__ import annotations

import json
import os
import re

import pytest
from harness.ansible import local_deployment, run_playbook

OLDEST = "2.16"
LIFECYCLE = ("stage", "verify", "cutover", "rollback")
PG_TEMPLATE = "postgresql://{login_user}:{password!u}@{login_host}:{login_port}/{login_db}"


def core_id(core: str | None) -> str:
    return core or "pinned"


def assert_quiet(output: str, expected: str = "") -> None:
    """No warning and no deprecation: a clean run of the collection prints neither. ``expected`` matches
    the one warning a step is meant to give (a rollback that abandons writes says so)."""
    noisy = [line for line in output.splitlines() if re.match(r"\s*\[(DEPRECATION )?WARNING\]", line)]
    noisy = [line for line in noisy if not (expected and "DEPRECATION" not in line and re.search(expected, line))]
    assert not noisy, "\n".join(noisy)


def test_module_notes_are_ansible_warnings_without_deprecation(pg_db, run_module):
    """A module's notes (here: a thaw leaving a read-only session) reach the user as Ansible warnings
    and stay in the result; ansible-core 2.19 deprecates passing them to exit_json."""
    pg_db.execute("CREATE TABLE users (user_id int)")
    for core in (None, OLDEST):
        assert not run_module("postgresql_freeze", {**pg_db.params, "state": "frozen"}, core=core).failed
        session = pg_db.connect()  # opened while frozen: read-only until it reconnects
        try:
            r = run_module("postgresql_freeze", {**pg_db.params, "state": "thawed"}, core=core)
        finally:
            session.close()
        assert not r.failed, r.msg
        assert "reconnect" in r["warnings"][0]
        assert "[DEPRECATION WARNING]" not in r.output, r.output[-3000:]
        assert re.search(r"\[WARNING\]: [^\[]*reconnect", r.output), r.output[-3000:]
        quiet = run_module("postgresql_freeze", {**pg_db.params, "state": "thawed"}, core=core)
        assert not quiet.changed and not quiet.get("warnings")
        assert_quiet(quiet.output)


def lifecycle(inventory, variables: dict, core: str | None, rollback_warning: str = "") -> list[str]:
    outputs = []
    for step in LIFECYCLE:
        proc = run_playbook(f"dualboot.db.{step}", variables, inventory=str(inventory), core=core)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, f"{step} on ansible-core {core_id(core)}:\n{out[-4000:]}"
        assert_quiet(out, rollback_warning if step == "rollback" else "")
        outputs.append(out)
    return outputs


# make test runs the lifecycle on the oldest ansible-core (the rest of the suite runs on the pinned newest);
# make matrix also runs it whole on the pinned one.
@pytest.mark.parametrize("core", [OLDEST, pytest.param(None, marks=pytest.mark.matrix)], ids=core_id)
def test_postgresql_lifecycle(core, tmp_path, pg, pg2):
    blue = pg.create_database()
    green = f"g_{blue.name}"
    try:
        blue.execute("CREATE TABLE users (user_id serial PRIMARY KEY, user_name varchar(255), creation_date timestamp)")
        blue.execute("INSERT INTO users (user_name, creation_date) SELECT 'user ' || g, now() FROM generate_series(1, 50) g")
        os.chmod(tmp_path, 0o700)
        env = tmp_path / "app1.env"
        env.write_text(f"DATABASE_URL={blue.uri}\n")
        targets = {"app1": [{"format": "dotenv", "path": str(env), "key": "DATABASE_URL", "template": PG_TEMPLATE}]}
        entries = {"blue": {**pg.login_params(), "login_db": blue.name}, "green": {**pg2.login_params(), "login_db": green}}
        inventory, variables = local_deployment(tmp_path, targets, entries, "r1")
        outputs = lifecycle(inventory, variables, core)
        assert "cutover DONE" in outputs[2] and "rollback DONE" in outputs[3], outputs[3][-3000:]
        record = json.loads((tmp_path / "records" / "app1.json").read_text())
        assert record["default"] == "blue" and [h["to"] for h in record["history"]][-2:] == ["green", "blue"]
        assert env.read_text() == f"DATABASE_URL={blue.uri}\n"
        assert pg2.db(green).scalar("SELECT count(*) FROM users WHERE full_name IS NOT NULL") == 50
    finally:
        pg.drop_database(blue.name)
        pg2.drop_database(green)


@pytest.mark.matrix
def test_mongodb_lifecycle_on_oldest(tmp_path, mongo):
    blue, green = mongo.new_db_name(), mongo.new_db_name()
    client = mongo.client()
    try:
        client[blue].users.insert_many([{"_id": i, "userName": f"user {i}"} for i in range(20)])
        os.chmod(tmp_path, 0o700)
        env = tmp_path / "app1.env"
        env.write_text(f"DATABASE_URL={mongo.uri}{blue}\n")
        targets = {"app1": [{"format": "dotenv", "path": str(env), "key": "DATABASE_URL", "template": "{login_uri}{database}"}]}
        entries = {"blue": {"login_uri": mongo.uri, "database": blue}, "green": {"login_uri": mongo.uri, "database": green}}
        inventory, variables = local_deployment(tmp_path, targets, entries, "r4")
        # FerretDB cannot tell whether green took writes after the cutover: the rollback must be told to go on.
        variables.update(dualboot_engine="mongodb", dualboot_rollback_discard_writes=True)
        outputs = lifecycle(inventory, variables, OLDEST, rollback_warning="abandon")
        assert "rollback DONE" in outputs[3], outputs[3][-3000:]
        assert client[green].users.find_one({"_id": 3})["user"] == {"name": "user 3"}
        assert env.read_text() == f"DATABASE_URL={mongo.uri}{blue}\n"
    finally:
        client.drop_database(blue)
        client.drop_database(green)
        client.close()
