"""Crash-safe and race-safe lifecycle (issue 19): a cutover or rollback SIGKILLed at a chosen task,
then recovered from a fresh control node by rollback or by cutover, with the applications writing
all along. Every recovery must end consistent (one entry everywhere, nothing frozen that should not
be, no lock held, no journal open) and lose no acknowledged write.

`make test` runs a slice with one kill point per phase; `make matrix` (marker `matrix`) kills after
every task of cutover and of rollback in turn.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from harness.ansible import ansible_env, run_playbook
from harness.deployment import snapshot, stage_and_verify, two_hosts
from harness.killpoints import Writer, config_url, list_tasks, lost_writes, run_fresh, run_killed
from harness.paths import ROOT

from ansible_collections.dualboot.db.plugins.module_utils import pg_sync


@pytest.fixture(scope="session")
def staged_once(tmp_path_factory, pg, pg2):
    """One deployment per test worker, staged and verified once, kept as templates and files."""
    with two_hosts(tmp_path_factory.mktemp("shop"), pg, pg2) as d:
        d["vars"]["dualboot_drift_policy"] = "restage"
        stage_and_verify(d)
        with snapshot(d, pg, pg2) as restore:
            yield restore


@pytest.fixture
def deployment(staged_once):
    """A deployment 'shop' (blue on pg with 300 users, green on pg2), staged and verified; drift policy restage.
    Each test gets it as it was right after that verify: databases, boot records, configuration files."""
    return staged_once()


@pytest.fixture
def sync_deployment(tmp_path, pg, pg2):
    """The same deployment staged with continuous sync (demo change r3): a stream carries blue into green."""
    if pg.host == pg2.host and pg.port == pg2.port:
        pytest.skip("needs two PostgreSQL servers; DUALBOOT_TEST_PG_URI gives one")
    with two_hosts(tmp_path, pg, pg2, "r3") as d:
        d["pg"], d["pg2"] = pg, pg2
        stage_and_verify(d)
        yield d


def records(d: dict) -> dict:
    return {h: json.loads((d["dir"] / "records" / f"{h}.json").read_text()) for h in d["hosts"]}


def assert_consistent(d: dict, writer: Writer | None) -> str:
    """One entry everywhere, the default writable, the fallback frozen, no lock, no open journal, no write lost."""
    recs = records(d)
    defaults = {r["default"] for r in recs.values()}
    assert len(defaults) == 1, recs
    default = defaults.pop()
    for host, r in recs.items():
        assert r["lock"] is None, (host, r["lock"])
        assert (r.get("journal") or {}).get("phase") in (None, "done", "undone"), (host, r["journal"])
    db = {"blue": d["blue"], "green": d["green"]}
    for host, env in d["hosts"].items():
        assert f"/{db[default].name}" in config_url(env), (host, config_url(env), default)
    assert db[default].scalar("SHOW default_transaction_read_only") == "off"
    fallback = next(iter(recs.values()))["fallback"]
    if fallback:
        assert db[fallback].scalar("SHOW default_transaction_read_only") == "on"
    if writer is not None:
        lost = lost_writes(writer, db[default])
        assert not lost, f"{len(lost)} of {len(writer.acked)} acknowledged writes lost, e.g. {lost[:3]}"
    return default


def play(d: dict, playbook: str) -> None:
    """Run a lifecycle playbook to its end, which must succeed."""
    proc = run_playbook(f"dualboot.db.{playbook}", d["vars"], inventory=str(d["inventory"]))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]


def kill_then_recover(d: dict, playbook: str, kill: str | dict, recover_with: str) -> tuple[int, str]:
    """Kill ``playbook`` (after the task named like ``kill``, or at the callback's kill point ``kill``), then
    run ``recover_with`` from a fresh control node."""
    path = playbook if playbook.endswith(".yml") else f"dualboot.db.{playbook}"
    kill = kill if isinstance(kill, dict) else {"DUALBOOT_KILL_AFTER": kill}
    rc, out, log = run_killed(path, d["inventory"], d["vars"], kill)
    assert log and log[-1].startswith("KILLED"), f"the kill point {kill} was never reached:\n" + "\n".join(log[-40:]) + out[-3000:]
    return run_fresh(f"dualboot.db.{recover_with}", d["inventory"], d["vars"])


def check_recovery(d: dict, rc: int, out: str, recover_with: str) -> None:
    # A rollback that finds the new default has taken writes refuses (consistently) instead of losing them;
    # one after a cutover killed before it wrote anything finds nothing to roll back.
    refused = recover_with == "rollback" and "Rollback refused" in out
    assert rc == 0 or (refused and ("took writes" in out or "no cutover has happened" in out)), out[-5000:]


HALF_SWITCHED = "Point the configuration at the entry, reload and health-check, on app1"

# One kill point per phase of a cutover: (kill after this task, recovered by).
CUTOVER_SLICE = [
    ("Lock the other boot records", "rollback"),  # before the freeze
    ("Set the freeze state of blue", "cutover"),  # frozen, nothing switched
    (HALF_SWITCHED, "rollback"),  # hosts half switched
]


@pytest.mark.parametrize(("kill_after", "recover_with"), CUTOVER_SLICE, ids=["locked", "frozen", "hosts-half"])
def test_a_killed_cutover_is_recovered_without_losing_a_write(deployment, kill_after, recover_with):
    d = deployment
    writer = Writer(list(d["hosts"].values()))
    writer.start()
    try:
        time.sleep(1)
        rc, out = kill_then_recover(d, "cutover", kill_after, recover_with)
        assert "RECOVERY" in out, out[-4000:]
        time.sleep(1)
    finally:
        writer.stop()
    check_recovery(d, rc, out, recover_with)
    assert_consistent(d, writer)
    assert len({url for _stamp, url in writer.acked}) >= 1 and writer.acked


# The parallel section (roles/cutover/tasks/record_each.yml, batch_parallel.yml), both hosts in one
# batch switching at the same time: (kill after this task's first result, recovered by). Every host
# writes its own record, and each host's record reaches phase switching in the call that then switches
# it (app_switch.yml): a kill right after the first host's call is finished, not undone.
OWN_JOURNAL = "Point the configuration at the entry, reload and health-check, on each host of the batch"
PARALLEL_POINTS = [
    pytest.param(OWN_JOURNAL, "cutover", id="own-journal"),
    pytest.param(OWN_JOURNAL, "rollback", id="own-journal-rollback", marks=pytest.mark.matrix),
    pytest.param("Write this host's own boot record, phase frozen", "cutover", id="frozen-journal", marks=pytest.mark.matrix),
    pytest.param("Did every host of the batch switch?", "rollback", id="batch-switched", marks=pytest.mark.matrix),
    pytest.param("Did every host of the batch switch?", "cutover", id="batch-switched-cutover", marks=pytest.mark.matrix),
]


@pytest.mark.parametrize(("kill_after", "recover_with"), PARALLEL_POINTS)
def test_a_cutover_killed_in_a_parallel_batch_is_recovered(deployment, kill_after, recover_with):
    d = deployment
    d["vars"]["dualboot_cutover_batch_size"] = 2
    # docs/lifecycle.md's play over every application host: the hosts of a batch switch at once.
    fleet = d["dir"] / "cutover-fleet.yml"
    fleet.write_text(re.search(r"```yaml\n(# cutover-fleet\.yml.*?)```", (ROOT / "docs" / "lifecycle.md").read_text(), re.S).group(1))
    writer = Writer(list(d["hosts"].values()))
    writer.start()
    try:
        time.sleep(1)
        rc, out = kill_then_recover(d, str(fleet), kill_after, recover_with)
        assert "RECOVERY" in out, out[-4000:]
        time.sleep(1)
    finally:
        writer.stop()
    check_recovery(d, rc, out, recover_with)
    default = assert_consistent(d, writer)
    if kill_after == OWN_JOURNAL and recover_with == "cutover":
        assert default == "green", out[-3000:]


def test_a_parallel_cutover_that_restages_records_the_fresh_marker_in_every_record(deployment):
    """In a play over every host the records are written by their hosts at the same time
    (record_each.yml); after a restage inside the window every record must still hold the fresh copy's
    marker, or a later rollback reading another record would not see the writes made to green."""
    d = deployment
    fleet = d["dir"] / "cutover-fleet.yml"
    fleet.write_text(re.search(r"```yaml\n(# cutover-fleet\.yml.*?)```", (ROOT / "docs" / "lifecycle.md").read_text(), re.S).group(1))
    d["blue"].execute("INSERT INTO users (user_name, creation_date) VALUES ('drift before the cutover', '1999-01-01')")
    before = records(d)
    check = run_playbook(fleet, {**d["vars"], "dualboot_cutover_batch_size": 2}, inventory=str(d["inventory"]), check=True)
    assert check.returncode == 0 and "cutover WOULD make green the default entry" in check.stdout, (check.stdout + check.stderr)[-4000:]
    assert records(d) == before
    rc, out = run_fresh(str(fleet), d["inventory"], {**d["vars"], "dualboot_cutover_batch_size": 2})
    assert rc == 0 and "restage copy" in out, out[-4000:]
    # A task name is rendered once for the batch: it named app1 above app2's own lines (and retries).
    assert OWN_JOURNAL in out and ", on app1" not in out, out[-4000:]
    run_id = records(d)["app1"]["journal"]["run_id"]
    for host, r in records(d).items():
        green = r["evidence"]["green"]
        assert (r["default"], r["lock"], r["journal"]["phase"]) == ("green", None, "done"), (host, r["journal"])
        assert green["cutover"]["run_id"] == run_id and green["stage"]["restaged_in_cutover"], (host, green)
    assert d["green"].scalar("SELECT count(*) FROM users WHERE full_name = 'drift before the cutover'") == 1
    d["green"].execute("INSERT INTO users (full_name, creation_date) VALUES ('written to green', '1999-01-01')")
    rc, out = run_fresh("dualboot.db.rollback", d["inventory"], d["vars"])
    assert rc != 0 and "Rollback refused" in out and "public.users" in out, out[-3000:]


def test_records_half_switched_converge(deployment, run_module):
    """Issue 19 B: killed between two records' switch, cutover and rollback both stopped at an assertion.

    A kill between two items of one loop is not exact (the worker may finish the next item before the
    kill lands), so the run is killed as the record step starts and the first record is then moved
    exactly as that step moves it: the state a kill between the two records leaves.
    """
    d = deployment
    writer = Writer(list(d["hosts"].values()))
    writer.start()
    try:
        rc, out, log = run_killed(
            "dualboot.db.cutover", d["inventory"], d["vars"], {"DUALBOOT_KILL_BEFORE": "Journal the phase in every boot record, done"}
        )
        assert log[-1].startswith("KILLED"), "\n".join(log[-30:])
        app1 = d["dir"] / "records" / "app1.json"
        held = records(d)["app1"]["lock"]
        moved = run_module(
            "boot_record", {"name": "shop", "path": str(app1), "state": "journal", "phase": "done", "run_id": held["run_id"]}
        )
        assert not moved.failed, moved.msg
        assert {h: r["default"] for h, r in records(d).items()} == {"app1": "green", "app2": "blue"}
        rc, out = run_fresh("dualboot.db.cutover", d["inventory"], d["vars"])
        time.sleep(1)
    finally:
        writer.stop()
    assert rc == 0 and "RECOVERY" in out and "finishing it" in out, out[-4000:]
    assert assert_consistent(d, writer) == "green"
    assert records(d)["app2"]["history"][-1]["finished_by"]


def test_a_rollback_killed_at_the_thaw_is_finished(deployment):
    d = deployment
    play(d, "cutover")
    rc, out, log = run_killed("dualboot.db.rollback", d["inventory"], d["vars"], {"DUALBOOT_KILL_AFTER": "Set the freeze state of blue"})
    assert log[-1].startswith("KILLED"), "\n".join(log[-30:])
    assert records(d)["app1"]["lock"] is not None  # the dead run's lock is left behind
    writer = Writer(list(d["hosts"].values()))
    writer.start()
    try:
        rc, out = run_fresh("dualboot.db.rollback", d["inventory"], d["vars"])
        time.sleep(1)
    finally:
        writer.stop()
    assert "RECOVERY" in out and "undoing it" in out and "took over the lock" in out, out[-4000:]
    # Killed before any host switched: the interrupted rollback is undone, then this rollback runs again,
    # under the write guard: the writer has written to green meanwhile, so it refuses rather than abandon that.
    check_recovery(d, rc, out, "rollback")
    assert assert_consistent(d, writer) == ("blue" if rc == 0 else "green")
    assert records(d)["app1"]["journal"]["phase"] in ("done", "undone")


@pytest.mark.matrix
def test_a_recovery_killed_after_taking_the_lock_is_recovered_again(deployment):
    """A recovery adopts the journal of the run it recovers at phase locked: killed right after that, the
    next recovery read "locked" and undid a cutover whose hosts wrote to green already, losing those writes."""
    d = deployment
    writer = Writer(list(d["hosts"].values()))
    writer.start()
    try:
        time.sleep(1)
        rc, out, log = run_killed("dualboot.db.cutover", d["inventory"], d["vars"], {"DUALBOOT_KILL_AFTER": HALF_SWITCHED})
        assert log[-1].startswith("KILLED"), "\n".join(log[-30:])
        time.sleep(1)
        rc, out, log = run_killed("dualboot.db.cutover", d["inventory"], d["vars"], {"DUALBOOT_KILL_AFTER": "Lock the other boot records"})
        assert log[-1].startswith("KILLED") and any("Plan the recovery" in line for line in log), "\n".join(log[-30:])
        rc, out = run_fresh("dualboot.db.rollback", d["inventory"], d["vars"])
        time.sleep(1)
    finally:
        writer.stop()
    assert "finishing it" in out, out[-4000:]
    check_recovery(d, rc, out, "rollback")
    assert_consistent(d, writer)


# The wide sweeps: every task start of a cutover (and of a rollback after a cutover) of the two-host
# deployment is a kill point, recovered by rollback and by cutover; for the copy method and the sync method.
# A kill right after a task that changed nothing on any host finds what a kill right before that task finds
# (the same databases, records, files and streams: nothing outside the control node moved in between), so
# such a case is skipped, naming the kill point it equals; which tasks change something comes from one
# reference run of each playbook per test worker, with a writer running like the cases (the callback logs
# every task that changed something or failed; tests/harness/killpoints.list_tasks).
# DUALBOOT_SWEEP_ALL=1 runs every case anyway. The case one past the last task proves the sweep reaches
# the end: it fails when the playbook has grown, until the task count is raised.
SWEEP_TASKS = {"cutover": 105, "rollback": 86}
SYNC_SWEEP_TASKS = {"cutover": 78, "rollback": 75}


def sweep(tasks: dict, prefix: str = "") -> list:
    return [
        pytest.param(playbook, recover_with, task, id=f"{prefix}{task}-{playbook}-{recover_with}")
        for playbook, last in tasks.items()
        for task in range(1, last + 2)
        for recover_with in (("rollback", "cutover") if task <= last else ("rollback",))
    ]


def reference(d: dict, playbook: str, writes: bool) -> tuple[list[str], set[int]]:
    """``playbook`` run to its end on deployment ``d`` (with a writer running if ``writes``): its task starts
    and the numbers of the tasks that changed something."""
    writer = Writer(list(d["hosts"].values()))
    if writes:
        writer.start()
    try:
        rc, out, tasks, changed = list_tasks(f"dualboot.db.{playbook}", d["inventory"], d["vars"])
    finally:
        if writer.is_alive():
            writer.stop()
    assert rc == 0, out[-3000:]
    return tasks, changed


def same_state_as(task: int, changed: set[int]) -> int:
    """The kill point whose state a kill at the start of ``task`` finds: back past every task that changed nothing."""
    while task > 1 and task - 1 not in changed:
        task -= 1
    return task


def skip_if_equal(ref: dict, playbook: str, task: int, last: int) -> None:
    tasks, changed = ref[playbook]
    assert len(tasks) == last, f"a {playbook} has {len(tasks)} tasks now, not {last}: change the task count of the sweep"
    if task <= last and same_state_as(task, changed) != task and not os.environ.get("DUALBOOT_SWEEP_ALL"):
        pytest.skip(f"the state of the kill at task {same_state_as(task, changed)}: task {task - 1} changed nothing")


@pytest.fixture(scope="session")
def copy_reference(staged_once):
    """As the cases run them: a cutover with a writer; a rollback after a cutover nobody wrote through."""
    cutover = reference(staged_once(), "cutover", writes=True)
    d = staged_once()
    play(d, "cutover")
    return {"cutover": cutover, "rollback": reference(d, "rollback", writes=False)}


@pytest.mark.matrix
@pytest.mark.parametrize(("playbook", "recover_with", "task"), sweep(SWEEP_TASKS))
def test_every_kill_point(copy_reference, deployment, playbook, recover_with, task):
    skip_if_equal(copy_reference, playbook, task, SWEEP_TASKS[playbook])
    d = deployment
    if playbook == "rollback":
        play(d, "cutover")
    writer = Writer(list(d["hosts"].values()))
    # A rollback of a cutover whose new default took writes is refused by design; the writer starts with the recovery.
    if playbook == "cutover":
        writer.start()
    try:
        rc, out, log = run_killed(f"dualboot.db.{playbook}", d["inventory"], d["vars"], {"DUALBOOT_KILL_AT_TASK": str(task)})
        killed = bool(log) and log[-1].startswith("KILLED")
        if task > SWEEP_TASKS[playbook]:
            grown = f"{playbook} has more than {SWEEP_TASKS[playbook]} tasks now: raise SWEEP_TASKS\n"
            assert not killed and rc == 0, grown + "\n".join(log[-5:])
            return
        assert killed, f"{playbook} ran {len(log)} tasks, fewer than {task}: lower SWEEP_TASKS\n" + out[-3000:]
        if playbook == "rollback":
            writer.start()
        rc, out = run_fresh(f"dualboot.db.{recover_with}", d["inventory"], d["vars"])
        time.sleep(1)
    finally:
        if writer.is_alive():
            writer.stop()
    check_recovery(d, rc, out, recover_with)
    assert_consistent(d, writer)


def test_two_cutovers_started_together_one_proceeds_the_other_is_refused(deployment):
    d = deployment
    procs = []
    for _n in range(2):
        work = Path(tempfile.mkdtemp(prefix="dualboot-race-"))
        os.chmod(work, 0o700)
        vf = work / "vars.json"
        vf.write_text(json.dumps(d["vars"]))
        os.chmod(vf, 0o600)
        cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(d["inventory"]), "dualboot.db.cutover", "-e", f"@{vf}"]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ansible_env(work), cwd=work))
    outs = [p.communicate(timeout=900)[0] for p in procs]
    rcs = [p.returncode for p in procs]
    assert sorted(rc == 0 for rc in rcs) == [False, True], "\n=====\n".join(o[-3000:] for o in outs)
    refused = outs[rcs.index(next(rc for rc in rcs if rc != 0))]
    assert "Cutover refused" in refused and ("holds the lock" in refused or "locked by" in refused), refused[-3000:]
    assert "nothing was changed" in refused, refused[-3000:]
    assert assert_consistent(d, None) == "green"


def test_a_stage_refuses_while_an_interrupted_cutover_has_hosts_on_the_new_entry(deployment):
    """Issue 19 C: the stage copied over green (where applications already wrote) and checked the lock last."""
    d = deployment
    rc, out, log = run_killed("dualboot.db.cutover", d["inventory"], d["vars"], {"DUALBOOT_KILL_AFTER": HALF_SWITCHED})
    assert log[-1].startswith("KILLED"), "\n".join(log[-30:])
    d["green"].execute("INSERT INTO users (full_name, creation_date) VALUES ('written to green after the crash', '1999-01-01')")
    rc, out = run_fresh("dualboot.db.stage", d["inventory"], {**d["vars"], "dualboot_restage": True})
    assert d["green"].scalar("SELECT count(*) FROM users WHERE full_name = 'written to green after the crash'") == 1, out[-3000:]
    assert rc != 0 and "Stage refused" in out and "interrupted cutover" in out, out[-3000:]


def test_a_restaging_cutover_killed_between_hosts_is_finished_with_its_marker_in_every_record(deployment):
    """Each host writes the fresh copy's marker with its phase switching, host by host: killed after the first
    host, the second record lacks it. Finishing the run copies it there, so a rollback measures from this
    cutover's marker whichever record it reads."""
    d = deployment
    d["blue"].execute("INSERT INTO users (user_name, creation_date) VALUES ('drift before the cutover', '1999-01-01')")
    rc, out, log = run_killed("dualboot.db.cutover", d["inventory"], d["vars"], {"DUALBOOT_KILL_AFTER": HALF_SWITCHED})
    assert log[-1].startswith("KILLED") and "restage" in out, "\n".join(log[-30:])
    run_id = records(d)["app1"]["journal"]["run_id"]
    assert records(d)["app2"]["evidence"]["green"].get("cutover", {}).get("run_id") != run_id, "app2 was not reached before the kill"
    rc, out = run_fresh("dualboot.db.cutover", d["inventory"], d["vars"])
    assert rc == 0 and "RECOVERY" in out, out[-4000:]
    assert assert_consistent(d, None) == "green"
    for host, r in records(d).items():
        green = r["evidence"]["green"]
        assert green["cutover"]["run_id"] == run_id and green["stage"]["restaged_in_cutover"], (host, green)


def test_rollback_after_a_finished_crashed_cutover_measures_from_the_original_marker(deployment):
    """Issue 19 D: finishing a crashed cutover took a new marker, so rollback no longer saw the writes made after the crash."""
    d = deployment
    rc, out, log = run_killed("dualboot.db.cutover", d["inventory"], d["vars"], {"DUALBOOT_KILL_AFTER": HALF_SWITCHED})
    assert log[-1].startswith("KILLED"), "\n".join(log[-30:])
    d["green"].execute("INSERT INTO users (full_name, creation_date) VALUES ('written to green after the crash', '1999-01-01')")
    rc, out = run_fresh("dualboot.db.cutover", d["inventory"], d["vars"])
    assert rc == 0, out[-4000:]
    assert assert_consistent(d, None) == "green"
    rc, out = run_fresh("dualboot.db.rollback", d["inventory"], d["vars"])
    assert rc != 0 and "Rollback refused" in out and "public.users" in out, out[-3000:]
    assert assert_consistent(d, None) == "green"


# The sync method (demo change r3, roles/cutover/tasks/sync.yml): the handover freezes blue, lets green
# apply everything, copies the sequences, ends the stream into green and starts the stream back into
# blue that keeps the fallback current (a rollback loses nothing). A recovery must leave the streams
# of the state it reaches: after a cutover only the stream back, after an undone cutover only the
# stream forward, after a rollback none. (playbook, kill, recovered by); rollbacks follow a cutover.
SWITCHING = "Journal the phase in every boot record, switching"
LOCKED = {"DUALBOOT_KILL_AFTER": "Lock the other boot records"}
HANDED_OVER = {"DUALBOOT_KILL_AFTER": "Hand the writes over"}
INSIDE_HANDOVER = {"DUALBOOT_KILL_BEFORE": "Hand the writes over", "DUALBOOT_KILL_DELAY": "1"}
RECORDS_DONE = {"DUALBOOT_KILL_BEFORE": "End the stream back into"}
SYNC_POINTS = [
    pytest.param("cutover", {"DUALBOOT_KILL_AFTER": SWITCHING + "#2"}, "cutover", id="cutover-before-handover"),
    pytest.param("cutover", LOCKED, "rollback", id="cutover-locked", marks=pytest.mark.matrix),
    pytest.param("cutover", {"DUALBOOT_KILL_AFTER": "Record the stream back"}, "cutover", id="cutover-evidence", marks=pytest.mark.matrix),
    pytest.param("cutover", {"DUALBOOT_KILL_AFTER": SWITCHING}, "rollback", id="cutover-half-journaled", marks=pytest.mark.matrix),
    pytest.param("cutover", INSIDE_HANDOVER, "cutover", id="cutover-inside-handover", marks=pytest.mark.matrix),
    pytest.param("cutover", INSIDE_HANDOVER, "rollback", id="cutover-inside-handover-rollback", marks=pytest.mark.matrix),
    pytest.param("cutover", HANDED_OVER, "rollback", id="cutover-handed-over", marks=pytest.mark.matrix),
    pytest.param("cutover", {"DUALBOOT_KILL_AFTER": HALF_SWITCHED}, "cutover", id="cutover-hosts-half", marks=pytest.mark.matrix),
    pytest.param("cutover", {"DUALBOOT_KILL_AFTER": HALF_SWITCHED}, "rollback", id="cutover-hosts-half-rollback", marks=pytest.mark.matrix),
    pytest.param("rollback", LOCKED, "cutover", id="rollback-locked", marks=pytest.mark.matrix),
    pytest.param("rollback", INSIDE_HANDOVER, "rollback", id="rollback-inside-handover", marks=pytest.mark.matrix),
    pytest.param("rollback", HANDED_OVER, "rollback", id="rollback-handed-over"),
    # Every record says done, the stream into the entry left still runs (its slot holds WAL on the live server).
    pytest.param("rollback", RECORDS_DONE, "rollback", id="rollback-records-done"),
    pytest.param("rollback", RECORDS_DONE, "cutover", id="rollback-records-done-cutover", marks=pytest.mark.matrix),
    pytest.param("rollback", HANDED_OVER, "cutover", id="rollback-handed-over-cutover", marks=pytest.mark.matrix),
    pytest.param("rollback", {"DUALBOOT_KILL_AFTER": HALF_SWITCHED}, "cutover", id="rollback-hosts-half", marks=pytest.mark.matrix),
]


def slots(server) -> list[str]:
    return [r[0] for r in server.db("postgres").query("SELECT slot_name FROM pg_replication_slots ORDER BY 1")]


def assert_streams(d: dict, out: str) -> None:
    """The streams of the state the records describe, each carrying a new write (and the sequences copied)."""
    r = records(d)["app1"]
    blue_slots, green_slots = slots(d["pg"]), slots(d["pg2"])
    if r["default"] == "green":
        assert (blue_slots, green_slots) == ([], ["dualboot_shop_blue"]), f"after a cutover only the stream back runs\n{out[-4000:]}"
        writes, carried = d["green"], d["blue"]
    elif r["fallback"] is None:
        assert (blue_slots, green_slots) == (["dualboot_shop_green"], []), f"an undone cutover keeps the stream forward\n{out[-4000:]}"
        writes, carried = d["blue"], d["green"]
    else:
        assert (blue_slots, green_slots) == ([], []), f"a rollback ends every stream\n{out[-4000:]}"
        return
    # A new row by its sequence (a sequence not carried over collides with the rows the stream brought).
    new_id = writes.scalar("INSERT INTO users (creation_date) VALUES ('1998-01-01') RETURNING user_id")
    for _attempt in range(100):
        if carried.scalar("SELECT count(*) FROM users WHERE user_id = %s", (new_id,)):
            return
        time.sleep(0.1)
    raise AssertionError(f"a write to {writes.name} did not reach {carried.name} within 10 s: the stream does not carry it")


@pytest.mark.parametrize(("playbook", "kill", "recover_with"), SYNC_POINTS)
def test_a_killed_sync_switch_is_recovered_with_its_streams(sync_deployment, playbook, kill, recover_with):
    d = sync_deployment
    if playbook == "rollback":
        play(d, "cutover")
    writer = Writer(list(d["hosts"].values()))
    writer.start()
    try:
        time.sleep(1)
        rc, out = kill_then_recover(d, playbook, kill, recover_with)
        time.sleep(1)
    finally:
        writer.stop()
    # The stream back carries the writes: a rollback never needs to refuse.
    assert rc == 0 and "RECOVERY" in out, out[-5000:]
    assert_consistent(d, writer)
    assert_streams(d, out)


def test_a_stage_after_a_finished_sync_rollback_keeps_its_new_stream(sync_deployment):
    """The closed sync rollback stays the record's last journal until the next cutover. The stream a new stage
    of the entry it left starts is that stage's own: the next role (verify) must not end it as the rollback's
    left-over (molecule major_upgrade: verify failed, 'stream dualboot_shop_green is not complete')."""
    d = sync_deployment
    play(d, "cutover")
    play(d, "rollback")
    assert (slots(d["pg"]), slots(d["pg2"])) == ([], []), "a rollback ends every stream"
    d["vars"]["dualboot_restage"] = True
    play(d, "stage")
    del d["vars"]["dualboot_restage"]
    assert slots(d["pg"]) == ["dualboot_shop_green"]
    proc = run_playbook("dualboot.db.verify", d["vars"], inventory=str(d["inventory"]))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "RECOVERY" not in out, out[-4000:]
    assert slots(d["pg"]) == ["dualboot_shop_green"], "verify ended the new stage's stream"


def test_a_recovered_sync_cutover_that_cannot_start_the_stream_back_says_the_rollback_is_no_longer_lossless(sync_deployment):
    """The handover ended the stream into green and died before it started the stream back into blue; the
    recovery's attempt to start it fails (green has no free replication slot). The cutover is finished (blue is
    frozen and has nothing to hand back) and says plainly that no stream carries the writes back, why, and what
    a rollback then does; a rollback after green took writes is refused instead of losing them."""
    d = sync_deployment
    rc, out, log = run_killed("dualboot.db.cutover", d["inventory"], d["vars"], HANDED_OVER)
    assert log and log[-1].startswith("KILLED"), "\n".join(log[-30:])
    # As if the kill had come inside the handover, after the stream forward ended and before the stream back began.
    pg_sync.stop(d["green"].conn, d["blue"].conn, pg_sync.stream_name("shop", "blue"))
    green_server = d["pg2"].db("postgres")
    free = int(green_server.scalar("SELECT current_setting('max_replication_slots')::int - count(*) FROM pg_replication_slots"))
    fillers = [f"filler_{i}" for i in range(free)]
    try:
        for name in fillers:
            green_server.execute("SELECT pg_create_physical_replication_slot(%s)", (name,))
        rc, out = run_fresh("dualboot.db.cutover", d["inventory"], d["vars"])
        assert rc == 0 and "NO STREAM CARRIES THE WRITES BACK" in out and "starting it failed" in out, out[-5000:]
        assert "replication slot" in out, out[-5000:]
        assert assert_consistent(d, None) == "green"
        d["green"].execute("INSERT INTO users (creation_date) VALUES ('1998-01-01')")
        rc, out = run_fresh("dualboot.db.rollback", d["inventory"], d["vars"])
        assert rc != 0 and "Rollback refused" in out, out[-5000:]
        assert assert_consistent(d, None) == "green"
    finally:
        for name in fillers:
            green_server.execute("SELECT pg_drop_replication_slot(%s)", (name,))


@pytest.fixture(scope="session")
def sync_reference(tmp_path_factory, pg, pg2):
    if pg.host == pg2.host and pg.port == pg2.port:
        pytest.skip("needs two PostgreSQL servers; DUALBOOT_TEST_PG_URI gives one")
    with two_hosts(tmp_path_factory.mktemp("syncref"), pg, pg2, "r3") as d:
        stage_and_verify(d)
        return {playbook: reference(d, playbook, writes=True) for playbook in ("cutover", "rollback")}


# A sync deployment cannot be kept as a template (its stream is a subscription): each case stages afresh.
@pytest.mark.matrix
@pytest.mark.parametrize(("playbook", "recover_with", "task"), sweep(SYNC_SWEEP_TASKS, "sync-"))
def test_every_kill_point_of_a_sync_switch(sync_reference, tmp_path, pg, pg2, playbook, recover_with, task):
    skip_if_equal(sync_reference, playbook, task, SYNC_SWEEP_TASKS[playbook])
    with two_hosts(tmp_path, pg, pg2, "r3") as d:
        d["pg"], d["pg2"] = pg, pg2
        stage_and_verify(d)
        if playbook == "rollback":
            play(d, "cutover")
        # The stream back carries the writes: a sync rollback does not refuse them.
        writer = Writer(list(d["hosts"].values()))
        writer.start()
        try:
            rc, out, log = run_killed(f"dualboot.db.{playbook}", d["inventory"], d["vars"], {"DUALBOOT_KILL_AT_TASK": str(task)})
            killed = bool(log) and log[-1].startswith("KILLED")
            if task > SYNC_SWEEP_TASKS[playbook]:
                assert not killed and rc == 0, f"a sync {playbook} has more tasks now: raise SYNC_SWEEP_TASKS\n" + "\n".join(log[-5:])
                return
            assert killed, f"a sync {playbook} ran {len(log)} tasks, fewer than {task}: lower SYNC_SWEEP_TASKS\n" + out[-3000:]
            rc, out = run_fresh(f"dualboot.db.{recover_with}", d["inventory"], d["vars"])
            time.sleep(1)
        finally:
            writer.stop()
        check_recovery(d, rc, out, recover_with)
        assert_consistent(d, writer)
        assert_streams(d, out)
