"""The lifecycle roles on real local clusters: two application "hosts" (inventory names on this
machine, each with its own dotenv file and boot record), entries on two PostgreSQL clusters.

Molecule runs the same lifecycle across containers; these tests cover the failure paths quickly.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
import time

import pytest
from harness.ansible import run_playbook
from harness.deployment import two_hosts
from harness.paths import ROOT


@pytest.fixture
def deployment(tmp_path, pg, pg2):
    """A deployment 'shop' whose default entry blue (on pg) holds 300 users; green lives on pg2."""
    with two_hosts(tmp_path, pg, pg2) as d:
        yield d


def play(d: dict, name: str, **extra):
    proc = run_playbook(f"dualboot.db.{name}", {**d["vars"], **extra}, inventory=str(d["inventory"]))
    return proc.returncode, proc.stdout + proc.stderr


def record(d: dict, host: str = "app1") -> dict:
    return json.loads((d["dir"] / "records" / f"{host}.json").read_text())


def test_failed_health_check_switches_every_touched_host_back(deployment):
    d = deployment
    for step in ("stage", "verify"):
        rc, out = play(d, step)
        assert rc == 0, out[-3000:]
    # app2's health check can never pass: the cutover switches app1, then app2, then must undo both.
    bad = {
        "dualboot_health_checks": [{"name": "unreachable health endpoint", "url": "http://127.0.0.1:9/health", "retries": 1, "delay": 0}]
    }
    rc, out = play(d, "cutover", **bad)
    assert rc != 0
    assert "cutover FAILED and was undone" in out and "switched back: app1" in out, out[-4000:]
    for env in d["hosts"].values():
        assert env.read_text() == f"DATABASE_URL={d['blue'].uri}\nOTHER=kept\n"
    for host in d["hosts"]:
        r = record(d, host)
        assert r["default"] == "blue" and r["lock"] is None and r["staged"] == "green"
    assert d["blue"].scalar("SHOW default_transaction_read_only") == "off"
    assert d["blue"].scalar("SELECT count(*) FROM users") == 300
    assert d["vars"]["dualboot_entries"]["blue"]["login_password"] not in out


def test_a_host_of_the_second_batch_fails_and_every_host_of_every_batch_is_switched_back(deployment):
    """The play runs over both hosts (the docs' cutover-fleet.yml): each batch switches itself in parallel.
    app2, alone in the second batch, fails a command health check: app1 (first batch, switched and
    healthy) and app2 both go back to blue, and the message names the host, the check and its output."""
    import yaml

    d = deployment
    for step in ("stage", "verify"):
        rc, out = play(d, step)
        assert rc == 0, out[-3000:]
    inventory = yaml.safe_load(d["inventory"].read_text())
    # The probe writes one row through app2's configuration (green, once switched), then fails.
    write_then_fail = (
        "import sys, psycopg; url = open(sys.argv[1]).read().split('=', 1)[1].splitlines()[0]; "
        'psycopg.connect(url, autocommit=True).execute("INSERT INTO users (creation_date) VALUES (now())"); '
        "print('orders queue stuck', file=sys.stderr); sys.exit(3)"
    )
    probe = {"name": "orders probe", "command": [sys.executable, "-c", write_then_fail, str(d["hosts"]["app2"])], "after_switch": True}
    inventory["all"]["children"]["dualboot_app"]["hosts"]["app2"]["dualboot_health_checks"] = [probe]
    d["inventory"].write_text(yaml.safe_dump(inventory))
    # docs/lifecycle.md's play over every application host, verbatim.
    fleet = re.search(r"```yaml\n(# cutover-fleet\.yml.*?)```", (ROOT / "docs" / "lifecycle.md").read_text(), re.S).group(1)
    (d["dir"] / "cutover-fleet.yml").write_text(fleet)
    proc = run_playbook(d["dir"] / "cutover-fleet.yml", {**d["vars"], "dualboot_cutover_batch_size": 1}, inventory=str(d["inventory"]))
    rc, out = proc.returncode, proc.stdout + proc.stderr
    assert rc != 0
    assert "cutover FAILED and was undone" in out, out[-4000:]
    assert "app2: orders probe failed (rc 3, output: orders queue stuck" in out, out[-4000:]
    assert "switched back: app1, app2" in out, out[-4000:]
    assert "stay in green only: public.users: ~1 rows" in out, out[-4000:]
    for env in d["hosts"].values():
        assert env.read_text() == f"DATABASE_URL={d['blue'].uri}\nOTHER=kept\n"
    for host in d["hosts"]:
        r = record(d, host)
        assert r["default"] == "blue" and r["lock"] is None and r["staged"] == "green"
        assert r["journal"]["phase"] == "undone", r["journal"]
    assert d["blue"].scalar("SHOW default_transaction_read_only") == "off"
    d["blue"].execute("INSERT INTO users (user_name) VALUES ('after the undo')")


def test_cutover_then_rollback_refuses_abandoning_writes(deployment):
    d = deployment
    for step in ("stage", "verify", "cutover"):
        rc, out = play(d, step)
        assert rc == 0, out[-3000:]
    assert all("/" + d["green"].name in env.read_text() for env in d["hosts"].values())
    assert d["blue"].scalar("SHOW default_transaction_read_only") == "on"
    r = record(d)
    assert (r["default"], r["fallback"]) == ("green", "blue")
    assert stat.S_IMODE(os.stat(d["dir"] / "records" / "app1.json").st_mode) == 0o600

    # The new default takes a write: rollback must refuse and name the table.
    d["green"].execute("INSERT INTO users (full_name) VALUES ('written after the cutover')")
    rc, out = play(d, "rollback")
    assert rc != 0 and "Rollback refused" in out and "public.users" in out, out[-3000:]
    assert record(d)["default"] == "green"

    rc, out = play(d, "rollback", dualboot_rollback_discard_writes=True)
    assert rc == 0, out[-3000:]
    # An Ansible warning (it reaches AWX's and the callback's warning lists), and the journal keeps it.
    assert re.search(r"\[WARNING\]: [^\n]*abandons writes on green: public\.users", out), out[-3000:]
    assert "public.users" in record(d, "app2")["journal"]["abandons"]
    assert all(env.read_text() == f"DATABASE_URL={d['blue'].uri}\nOTHER=kept\n" for env in d["hosts"].values())
    assert d["blue"].scalar("SHOW default_transaction_read_only") == "off"
    assert d["green"].scalar("SHOW default_transaction_read_only") == "on"
    r = record(d, "app2")
    assert [h["action"] for h in r["history"]] == ["cutover", "rollback"] and r["default"] == "blue"

    # A second rollback changes nothing and says so.
    rc, out = play(d, "rollback")
    assert rc == 0 and "Nothing to roll back" in out


def test_cutover_refuses_drift_with_policy_fail_and_restages_with_restage(deployment):
    d = deployment
    for step in ("stage", "verify"):
        rc, out = play(d, step)
        assert rc == 0, out[-3000:]
    d["blue"].execute("INSERT INTO users (user_name) VALUES ('late write')")
    rc, out = play(d, "cutover")
    assert rc != 0 and "took writes after the staged copy" in out, out[-3000:]
    assert record(d)["default"] == "blue" and record(d)["lock"] is None

    rc, out = play(d, "cutover", dualboot_drift_policy="restage")
    assert rc == 0, out[-4000:]
    assert d["green"].scalar("SELECT count(*) FROM users WHERE full_name = 'late write'") == 1
    assert record(d)["default"] == "green"


def test_cutover_refuses_without_a_passing_verify(deployment):
    d = deployment
    rc, out = play(d, "stage")
    assert rc == 0, out[-3000:]
    rc, out = play(d, "cutover")
    assert rc != 0 and "Cutover refused" in out and "not been verified" in out
    assert record(d)["default"] == "blue"


def test_cutover_in_check_mode_says_what_would_happen_and_changes_nothing(deployment):
    """Issue 13 item 4: `cutover --check` printed "cutover DONE ... writes were blocked for 14.07 s"."""
    d = deployment
    for step in ("stage", "verify"):
        rc, out = play(d, step)
        assert rc == 0, out[-3000:]
    before = {h: record(d, h) for h in d["hosts"]}
    proc = run_playbook("dualboot.db.cutover", d["vars"], inventory=str(d["inventory"]), check=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "cutover WOULD make green the default entry" in out and "DONE" not in out and "writes were blocked" not in out, out[-3000:]
    assert {h: record(d, h) for h in d["hosts"]} == before
    assert all(env.read_text() == f"DATABASE_URL={d['blue'].uri}\nOTHER=kept\n" for env in d["hosts"].values())
    assert d["blue"].scalar("SHOW default_transaction_read_only") == "off"


def test_long_steps_end_with_their_work_report_progress_and_time_out(deployment):
    """Issue 18, Ansible's overhead: the copy, the migrations and the compare ran under Ansible's own
    async/poll, which sleeps a whole dualboot_progress_interval (15 s) before its first look, so a stage of
    a small database waited 30 s for nothing (and a restage held a cutover's writes as long)."""
    d = deployment
    began = time.monotonic()
    rc, out = play(d, "stage", dualboot_progress_interval=120)
    took = time.monotonic() - began
    assert rc == 0, out[-3000:]
    assert took < 120, f"the stage of 300 rows took {took:.0f} s: a step waited for the progress interval"

    # (A slow step says so every interval: test_operator_path.py::test_long_copy_reports_progress_and_throughput.)
    # A failing step fails with its own message, and a step over dualboot_step_timeout is stopped.
    bad = {"migrations": [{"version": "1", "description": "bad", "sql": "SELECT no_such_column FROM users"}]}
    rc, out = play(d, "stage", dualboot_migrations=bad)
    assert rc != 0 and "no_such_column" in out, out[-3000:]
    stuck = {"migrations": [{"version": "1", "description": "stuck", "sql": "SELECT pg_sleep(60)"}]}
    rc, out = play(d, "stage", dualboot_step_timeout=3, dualboot_migrations=stuck)
    assert rc != 0 and "did not finish within dualboot_step_timeout (3 s)" in out, out[-3000:]


def test_verify_fails_when_the_schema_diff_itself_fails(deployment):
    """A schema diff that errors (here: an expectation it cannot read) must fail the gate, naming why. The diff's
    task ignores its own failure to report it; Ansible then records the result as not failed, and the gate
    passed on the data comparison alone, with the schema never compared."""
    d = deployment
    rc, out = play(d, "stage")
    assert rc == 0, out[-3000:]
    rc, out = play(d, "verify", dualboot_expected_changes=[{"kind": "column", "change": "renamed"}])
    assert rc != 0 and "matches none of added, removed, modified" in out, out[-4000:]
    assert "verified" not in record(d).get("evidence", {}).get("green", {}), record(d)


def test_an_undo_that_cannot_switch_a_host_back_says_so_keeps_the_lock_and_the_next_run_finishes_it(deployment):
    """app2 fails its health check, so the cutover is undone; app1's reload fails on the way back (it keeps its
    connections to green). The undo went on, thawed blue, restored the records and released the lock, and
    reported "switched back: app1": app1's writes went to green without a word. Now the undo stops there,
    names app1 and the failed reload, keeps the journal and the lock, and the next cutover finishes the undo first."""
    import yaml

    d = deployment
    for step in ("stage", "verify"):
        rc, out = play(d, step)
        assert rc == 0, out[-3000:]
    original = d["inventory"].read_text()
    inventory = yaml.safe_load(original)
    hosts = inventory["all"]["children"]["dualboot_app"]["hosts"]
    blue_db = d["blue"].name
    # app1 reloads fine towards green and fails once its configuration names blue again.
    hosts["app1"]["dualboot_app_reload"] = {"command": ["/bin/sh", "-c", f"! grep -q '/{blue_db}' {d['hosts']['app1']}"]}
    hosts["app2"]["dualboot_health_checks"] = [{"name": "orders health", "url": "http://127.0.0.1:9/health", "retries": 1, "delay": 0}]
    d["inventory"].write_text(yaml.safe_dump(inventory))
    rc, out = play(d, "cutover")
    assert rc != 0 and "UNDO IS INCOMPLETE" in out, out[-5000:]
    assert "app1: reload command failed (rc 1" in out, out[-5000:]
    assert "app1 may still boot into green" in out and "switched back: app1" not in out, out[-5000:]
    for host in d["hosts"]:
        r = record(d, host)
        assert r["journal"]["phase"] == "undoing" and r["lock"] is not None and r["default"] == "blue", r
    assert d["blue"].scalar("SHOW default_transaction_read_only") == "off"

    d["inventory"].write_text(original)
    rc, out = play(d, "cutover")
    assert rc == 0 and "Undid the interrupted cutover" in out, out[-5000:]
    for host in d["hosts"]:
        r = record(d, host)
        assert r["default"] == "green" and r["lock"] is None, r
