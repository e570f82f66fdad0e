"""Running the roles the way AWX / Automation Platform runs them: extra vars naming the job and its user,
reports kept on a named inventory host (an AWX control node is an ephemeral container), the report
paths in the job statistics (set_stats), and users' play-level module_defaults for each action group
around the roles (docs/awx.md)."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
import yaml
from harness.ansible import ansible_bin, ansible_env, local_deployment, run_playbook

PG_TEMPLATE = "postgresql://{login_user}:{password!u}@{login_host}:{login_port}/{login_db}"
# Play-level defaults a user may set for their own tasks: every one is wrong for the entries, so a
# role call that picked one up would fail (unreachable host, TLS refused, wrong user or database).
PG_USER_DEFAULTS = {
    "group/dualboot.db.postgresql": {
        "ssl_mode": "require",
        "login_host": "192.0.2.1",
        "login_port": 1,
        "login_user": "nobody",
        "login_password": "user-default-secret",
        "login_db": "nowhere",
        "connect_timeout": 2,
    },
    "group/dualboot.db.all": {"login_user": "nobody", "login_password": "user-default-secret", "connect_timeout": 2},
}
MONGO_USER_DEFAULTS = {
    "group/dualboot.db.mongodb": {
        "tls": True,
        "login_user": "nobody",
        "login_password": "user-default-secret",
        "login_database": "nowhere",
    },
    "group/dualboot.db.all": {"login_port": 1, "connect_timeout": 2},
}


def pg_deployment(tmp_path, pg, pg2, blue, green: str, hosts=("app1",)):
    blue.execute("CREATE TABLE users (user_id serial PRIMARY KEY, user_name varchar(255), creation_date timestamp)")
    blue.execute("INSERT INTO users (user_name, creation_date) SELECT 'user ' || g, now() FROM generate_series(1, 30) g")
    os.chmod(tmp_path, 0o700)
    targets = {}
    for name in hosts:
        env = tmp_path / f"{name}.env"
        env.write_text(f"DATABASE_URL={blue.uri}\n")
        targets[name] = [{"format": "dotenv", "path": str(env), "key": "DATABASE_URL", "template": PG_TEMPLATE}]
    entries = {"blue": {**pg.login_params(), "login_db": blue.name}, "green": {**pg2.login_params(), "login_db": green}}
    return local_deployment(tmp_path, targets, entries, "r1")


def run(playbook, variables: dict, inventory, cwd=None) -> str:
    proc = run_playbook(playbook, variables, inventory=str(inventory), cwd=cwd)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    return out


def test_awx_job_user_in_history_report_on_named_host_and_in_stats(tmp_path, pg, pg2):
    blue = pg.create_database()
    green = f"g_{blue.name}"
    try:
        inventory, variables = pg_deployment(tmp_path, pg, pg2, blue, green)
        inv = yaml.safe_load(inventory.read_text())
        inv["all"]["children"]["reports"] = {"hosts": {"reports1": {}}}
        inventory.write_text(yaml.safe_dump(inv))
        # AWX shows custom stats in the job output and keeps them as artifacts; the CLI needs this setting.
        (tmp_path / "ansible.cfg").write_text("[defaults]\nshow_custom_stats = True\n")
        awx = {"awx_user_name": "alice", "awx_job_id": 42, "tower_user_name": "alice", "tower_job_id": 42}
        out = run("dualboot.db.lifecycle", {**variables, **awx, "dualboot_report_host": "reports1"}, inventory, cwd=tmp_path)

        # The report files were written through the named host's connection, and their paths are in the stats.
        assert re.search(r"changed: \[app1 -> reports1\]", out), out[-5000:]
        stats = json.loads(re.search(r"CUSTOM STATS: [*]*\s*RUN: (\{.*\})", out).group(1))
        report = stats["dualboot_verify_report"]
        assert report["host"] == "reports1" and report["verdict"] == "passed"
        assert report["markdown"].startswith(variables["dualboot_report_dir"]) and os.path.exists(report["markdown"])
        assert json.loads(open(report["json"]).read())["verify"]["verdict"] == "passed"
        assert f"report: reports1:{report['markdown']}" in out

        run("dualboot.db.rollback", {**variables, **awx, "dualboot_operator": "bob (change CHG-7)"}, inventory)
        history = json.loads((tmp_path / "records" / "app1.json").read_text())["history"]
        operators = [(h["action"], h["operator"]) for h in history[-2:]]
        assert operators == [("cutover", "alice (AWX job 42)"), ("rollback", "bob (change CHG-7)")]
        assert all(h["by"] for h in history[-2:])  # the account the modules ran as stays recorded beside the operator
    finally:
        pg.drop_database(blue.name)
        pg2.drop_database(green)


def user_playbook(path, module_defaults: dict, steps=("stage", "verify", "cutover", "rollback")):
    """A user's playbook: the lifecycle roles in plays that carry the user's own module_defaults."""
    play = {"hosts": "dualboot_app[0]", "gather_facts": False, "module_defaults": module_defaults}
    plays = [{"name": f"user {step}", **play, "roles": [f"dualboot.db.{step}"]} for step in steps]
    path.write_text(yaml.safe_dump(plays, sort_keys=False))
    return path


def test_user_module_defaults_for_postgresql_and_all_groups_do_not_reach_role_calls(tmp_path, pg, pg2):
    blue = pg.create_database()
    green = f"g_{blue.name}"
    try:
        inventory, variables = pg_deployment(tmp_path, pg, pg2, blue, green)
        out = run(user_playbook(tmp_path / "site.yml", PG_USER_DEFAULTS), variables, inventory)
        assert "verify PASSED" in out and "cutover DONE" in out and "rollback DONE" in out
        assert "user-default-secret" not in out
        assert json.loads((tmp_path / "records" / "app1.json").read_text())["default"] == "blue"
    finally:
        pg.drop_database(blue.name)
        pg2.drop_database(green)


@pytest.mark.matrix  # make test: the PostgreSQL twin of this test
def test_user_module_defaults_for_mongodb_and_all_groups_do_not_reach_role_calls(tmp_path, mongo):
    blue, green = mongo.new_db_name(), mongo.new_db_name()
    client = mongo.client()
    try:
        client[blue].users.insert_many([{"_id": i, "userName": f"user {i}"} for i in range(10)])
        os.chmod(tmp_path, 0o700)
        env = tmp_path / "app1.env"
        env.write_text(f"DATABASE_URL={mongo.uri}{blue}\n")
        targets = {"app1": [{"format": "dotenv", "path": str(env), "key": "DATABASE_URL", "template": "{login_uri}{database}"}]}
        entries = {"blue": {"login_uri": mongo.uri, "database": blue}, "green": {"login_uri": mongo.uri, "database": green}}
        inventory, variables = local_deployment(tmp_path, targets, entries, "r4")
        # FerretDB cannot tell whether green took writes after the cutover: the rollback must be told to go on.
        variables.update(dualboot_engine="mongodb", dualboot_rollback_discard_writes=True)
        out = run(user_playbook(tmp_path / "site.yml", MONGO_USER_DEFAULTS), variables, inventory)
        assert "verify PASSED" in out and "cutover DONE" in out and "rollback DONE" in out
        assert env.read_text() == f"DATABASE_URL={mongo.uri}{blue}\n"
    finally:
        client.drop_database(blue)
        client.drop_database(green)
        client.close()


def test_internal_role_is_listed_as_internal(tmp_path):
    """dualboot.db.dualboot is the lifecycle roles' shared first step: ansible-doc lists every role of a
    collection (2.19 even one without an argument spec), so the listing must say it is internal."""
    env = ansible_env(tmp_path)
    cmd = [str(ansible_bin() / "ansible-doc"), "-t", "role", "-l", "--json", "dualboot.db"]
    listed = json.loads(subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout)
    descriptions = {name.split(".")[-1]: role["entry_points"]["main"] for name, role in listed.items()}
    assert sorted(descriptions) == ["cutover", "dualboot", "finalize", "rollback", "stage", "verify"]
    assert descriptions.pop("dualboot").startswith("Internal, not a role to run")
    assert not any("nternal" in text for text in descriptions.values())
