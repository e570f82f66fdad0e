"""The boot record's writing side: atomic 0600 writes, entries without secrets, evidence, switch, lock."""

from __future__ import annotations

import datetime
import json
import multiprocessing
import os
import time

import pytest

from ansible_collections.dualboot.db.plugins.module_utils import boot_record as br
from ansible_collections.dualboot.db.plugins.module_utils.errors import IntegrityError, InvalidInput, SafetyRefusal

ENTRIES = {
    "blue": {"login_host": "db1", "login_port": 5432, "login_user": "app", "login_db": "shop_blue"},
    "green": {"login_host": "db1", "login_port": 5432, "login_user": "app", "login_db": "shop_green"},
}
T0 = datetime.datetime(2026, 11, 21, 16, 0, 0, tzinfo=datetime.timezone.utc)


def run(path, state, check_mode=False, **params):
    return br.execute({"name": "shop", "path": str(path), "state": state, **params}, check_mode)


@pytest.fixture
def record(tmp_path):
    path = tmp_path / "dualboot" / "shop.json"
    run(path, "defined", engine="postgresql", entries=ENTRIES, default="blue")
    return path


def test_define_writes_0600_in_a_0700_directory_atomically(tmp_path):
    path = tmp_path / "dualboot" / "shop.json"
    result = run(path, "defined", engine="postgresql", entries=ENTRIES, default="blue")
    assert result["changed"] and result["exists"]
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert oct(os.stat(path.parent).st_mode & 0o777) == "0o700"
    assert os.listdir(path.parent) == ["shop.json"]  # no temporary file left behind
    record = json.loads(path.read_text())
    assert br.validate(record) == []
    assert (record["default"], record["fallback"], record["history"], record["lock"]) == ("blue", None, [], None)
    assert br.load_record(str(path)) == record


def test_define_is_idempotent_and_query_reads(record):
    mtime = os.stat(record).st_mtime_ns
    again = run(record, "defined", engine="postgresql", entries=ENTRIES, default="blue")
    assert not again["changed"] and os.stat(record).st_mtime_ns == mtime
    q = run(record, "query")
    assert not q["changed"] and q["exists"] and q["record"]["entries"] == ENTRIES and q["lock_expired"] is False


def test_query_of_a_missing_record(tmp_path):
    q = run(tmp_path / "none.json", "query")
    assert (q["exists"], q["record"], q["changed"]) == (False, None, False)


@pytest.mark.parametrize(
    "entries,where",
    [
        ({"blue": {"login_host": "db1", "login_password": "x"}}, "blue.login_password"),
        ({"blue": {"login_host": "db1", "connect_params": {"password": "x"}}}, "blue.connect_params.password"),
        ({"blue": {"login_uri": "mongodb://app:pw@h1:27017,h2:27017/shop"}}, "blue.login_uri (a URI with a password)"),
        ({"blue": {"login_host": "db1", "admin_password": "x"}}, "blue.admin_password"),
    ],
)
def test_secrets_in_entries_are_refused(tmp_path, entries, where):
    path = tmp_path / "shop.json"
    with pytest.raises(InvalidInput, match="would store a secret") as exc:
        run(path, "defined", engine="mongodb", entries=entries, default="blue")
    assert where in str(exc.value) and not path.exists()


def test_password_references_are_fine(tmp_path):
    entries = {"blue": {"login_uri": "mongodb://app@h1/shop", "password_var": "vault_blue", "password_file": "/etc/pw"}}
    assert run(tmp_path / "shop.json", "defined", engine="mongodb", entries=entries, default="blue")["changed"]


def test_define_refuses_what_only_a_switch_may_do(record):
    with pytest.raises(SafetyRefusal, match="state=switched"):
        run(record, "defined", entries=ENTRIES, default="green")
    with pytest.raises(InvalidInput, match="engine is postgresql"):
        run(record, "defined", engine="mongodb", entries=ENTRIES)
    with pytest.raises(SafetyRefusal, match="blue is the default entry; it cannot be removed"):
        run(record, "defined", entries={"green": ENTRIES["green"]})
    with pytest.raises(InvalidInput, match="belongs to deployment 'shop'"):
        br.execute({"name": "other", "path": str(record), "state": "defined", "entries": ENTRIES}, False)


def test_new_record_needs_engine_entries_default(tmp_path):
    path = tmp_path / "shop.json"
    with pytest.raises(InvalidInput, match="needs engine"):
        run(path, "defined", entries=ENTRIES, default="blue")
    with pytest.raises(InvalidInput, match="needs default, one of the entries"):
        run(path, "defined", engine="postgresql", entries=ENTRIES, default="red")
    assert not path.exists()


def test_corrupt_record_is_reported_with_its_path_and_never_overwritten(record):
    record.write_text('{"format": 1, "name": "shop", "entries": {')
    damaged = record.read_bytes()
    for state, params in [("query", {}), ("defined", {"entries": ENTRIES}), ("switched", {"to": "green"}), ("locked", {"run_id": "r"})]:
        with pytest.raises(IntegrityError, match=f"boot record {record} is not readable JSON"):
            run(record, state, **params)
    assert record.read_bytes() == damaged
    record.write_text(json.dumps({"format": 1, "name": "shop", "entries": ENTRIES, "default": "red"}))
    with pytest.raises(IntegrityError, match=f"boot record {record} is invalid: default names unknown entry 'red'"):
        run(record, "switched", to="green")


def test_switch_makes_the_old_default_the_fallback_and_appends_history(record):
    result = run(record, "switched", to="green", run_id="r1", by="ops", reason="cutover")
    assert result["changed"] and (result["previous_default"], result["from"], result["to"]) == ("blue", "blue", "green")
    rec = result["record"]
    assert (rec["default"], rec["fallback"]) == ("green", "blue")
    (entry,) = rec["history"]
    assert {k: entry[k] for k in ("action", "from", "to", "run_id", "by", "outcome")} == {
        "action": "cutover",
        "from": "blue",
        "to": "green",
        "run_id": "r1",
        "by": "ops",
        "outcome": "ok",
    }
    assert br.parse_iso(entry["at"]) <= br.utc_now()
    same = run(record, "switched", to="green")
    assert not same["changed"] and same["previous_default"] == "green" and len(same["record"]["history"]) == 1
    back = run(record, "switched", to="blue", reason="rollback")
    assert (back["record"]["default"], back["record"]["fallback"]) == ("blue", "green")
    assert [h["action"] for h in back["record"]["history"]] == ["cutover", "rollback"]
    with pytest.raises(InvalidInput, match="entry 'red' is not in the boot record"):
        run(record, "switched", to="red")


def test_check_mode_computes_without_writing_and_diff_shows_what_an_operator_reads(record):
    run(record, "evidence", entry="green", stage={"marker": {"tables": {"public.users": [1, 2, 3]}}})
    before = record.read_bytes()
    result = run(record, "switched", check_mode=True, to="green")
    assert result["changed"] and result["record"]["default"] == "green" and record.read_bytes() == before
    assert "default: blue\nfallback: None\n" in result["diff"]["before"]
    assert "default: green\nfallback: blue\n" in result["diff"]["after"]
    assert "evidence: green: stage" in result["diff"]["before"] and "public.users" not in result["diff"]["before"]
    fresh = run(record.parent / "new.json", "defined", check_mode=True, engine="postgresql", entries=ENTRIES, default="blue")
    assert fresh["changed"] and fresh["diff"]["before"] == "" and not (record.parent / "new.json").exists()


def test_check_mode_before_the_first_define_says_what_a_run_would_do(tmp_path):
    """A first ``stage --check``: the record is not there yet (a real run defines it first), so the lock,
    the evidence and the unlock say what they would do instead of failing with "define it first"."""
    path = tmp_path / "dualboot" / "shop.json"
    for state, params, changed in (
        ("locked", {"run_id": "r1"}, True),
        ("evidence", {"entry": "green", "stage": {"backup_id": "b1"}}, True),
        ("journal", {"run_id": "r1", "phase": "frozen"}, True),
        ("unlocked", {"run_id": "r1"}, False),
    ):
        result = run(path, state, check_mode=True, **params)
        assert result["changed"] is changed and not result["exists"] and "would" in result["msg"], (state, result)
    assert not path.parent.exists()
    with pytest.raises(InvalidInput, match="no boot record yet"):
        run(path, "locked", run_id="r1")


def test_evidence_stage_then_verify(record):
    r = run(record, "evidence", entry="green", stage={"backup_id": "b1"})
    assert r["changed"] and r["record"]["staged"] == "green" and r["record"]["evidence"]["green"]["stage"]["backup_id"] == "b1"
    assert "at" in r["record"]["evidence"]["green"]["stage"]
    assert not run(record, "evidence", entry="green", stage={"backup_id": "b1"})["changed"]
    r = run(record, "evidence", entry="green", verify={"verdict": "pass"})
    assert r["record"]["evidence"]["green"]["verify"]["verdict"] == "pass"
    assert not run(record, "evidence", entry="green", verify={"verdict": "pass"})["changed"]
    # A new stage makes the old verify meaningless.
    r = run(record, "evidence", entry="green", stage={"backup_id": "b2"})
    assert set(r["record"]["evidence"]["green"]) == {"stage"}
    # After the cutover the staged entry is the default; it is no longer "staged".
    r = run(record, "switched", to="green")
    assert r["record"]["staged"] is None


def test_history_names_the_operator_beside_the_account(record):
    """operator: who launched the run (an AWX job's user); by: the account the module ran as."""
    run(record, "locked", run_id="r1", owner="ops", ttl=60)
    switched = run(record, "switched", to="green", run_id="r1", by="root", operator="alice (AWX job 42)")
    assert {k: switched["record"]["history"][-1][k] for k in ("by", "operator")} == {"by": "root", "operator": "alice (AWX job 42)"}
    forced = run(record, "unlocked", force=True, operator="bob")
    assert forced["record"]["history"][-1]["action"] == "unlock-forced" and forced["record"]["history"][-1]["operator"] == "bob"
    plain = run(record, "switched", to="blue")
    assert plain["record"]["history"][-1]["operator"] is None  # unknown, never guessed


def test_cutover_evidence_needs_a_passing_verify_and_survives_the_switch(record):
    run(record, "evidence", entry="green", stage={"run_id": "s1"})
    with pytest.raises(SafetyRefusal, match="no passing verify"):
        run(record, "evidence", entry="green", cutover={"marker": {"wal_lsn": "0/1"}})
    run(record, "evidence", entry="green", verify={"verdict": "passed"})
    r = run(record, "evidence", entry="green", cutover={"marker": {"wal_lsn": "0/1"}})
    assert r["changed"] and r["record"]["evidence"]["green"]["cutover"]["marker"] == {"wal_lsn": "0/1"}
    assert not run(record, "evidence", entry="green", cutover={"marker": {"wal_lsn": "0/1"}})["changed"]
    # Rollback reads it from the new default's evidence after the switch.
    r = run(record, "switched", to="green", reason="cutover")
    assert r["record"]["evidence"]["green"]["cutover"]["marker"]["wal_lsn"] == "0/1"


def test_evidence_refusals(record):
    with pytest.raises(SafetyRefusal, match="blue is the default entry"):
        run(record, "evidence", entry="blue", stage={"x": 1})
    with pytest.raises(InvalidInput, match="no stage evidence to verify"):
        run(record, "evidence", entry="green", verify={"verdict": "pass"})
    with pytest.raises(InvalidInput, match="would store a secret"):
        run(record, "evidence", entry="green", stage={"source_uri": "postgresql://app:pw@db1/shop"})


def test_moving_an_entry_drops_its_evidence(record):
    run(record, "evidence", entry="green", stage={"backup_id": "b1"})
    moved = {**ENTRIES, "green": {**ENTRIES["green"], "login_host": "db2"}}
    r = run(record, "defined", entries=moved)
    assert r["changed"] and "green" not in r["record"]["evidence"] and r["record"]["staged"] is None


def test_lock_blocks_other_runs_until_released(record):
    r = run(record, "locked", run_id="r1", owner="alice", ttl=600)
    assert r["changed"] and r["lock"]["owner"] == "alice"
    with pytest.raises(SafetyRefusal, match=r"locked by alice \(run r1"):
        run(record, "locked", run_id="r2", owner="bob")
    with pytest.raises(SafetyRefusal, match="cannot switch to green"):
        run(record, "switched", to="green", run_id="r2")
    with pytest.raises(SafetyRefusal, match="cannot record evidence"):
        run(record, "evidence", entry="green", stage={"a": 1})
    with pytest.raises(SafetyRefusal, match="not by run r2"):
        run(record, "unlocked", run_id="r2")
    with pytest.raises(SafetyRefusal, match="no run_id was given"):
        run(record, "unlocked")
    assert run(record, "switched", to="green", run_id="r1")["changed"]  # the holder may act
    assert run(record, "unlocked", run_id="r1")["changed"]
    assert not run(record, "unlocked", run_id="r1")["changed"]
    assert run(record, "locked", run_id="r2", owner="bob")["lock"]["run_id"] == "r2"


def test_expired_lock_still_blocks_and_force_clears_it_deliberately(record):
    rec, _facts = br.lock(br.load_record(str(record)), "alice", "r1", ttl=60, now=T0)
    br.write_record(str(record), rec)
    later = T0 + datetime.timedelta(seconds=61)
    assert br.lock_expired(rec["lock"], later) and not br.lock_expired(rec["lock"], T0)
    with pytest.raises(SafetyRefusal, match=r"expired 2026-11-21T16:01:00Z.*probably crashed"):
        br.lock(br.load_record(str(record)), "bob", "r2", ttl=60, now=later)
    # force takes over an expired lock only ...
    with pytest.raises(SafetyRefusal, match="force takes over an expired lock only"):
        br.lock(br.load_record(str(record)), "bob", "r2", ttl=60, force=True, now=T0 + datetime.timedelta(seconds=30))
    taken, facts = br.lock(br.load_record(str(record)), "bob", "r2", ttl=60, force=True, now=later)
    assert taken["lock"]["run_id"] == "r2" and facts["cleared_lock"]["run_id"] == "r1"
    assert taken["history"][-1]["action"] == "lock-taken-over" and taken["history"][-1]["cleared"]["owner"] == "alice"
    # ... while unlock with force clears any lock, leaving a history entry.
    r = run(record, "unlocked", run_id="ops-cleanup", force=True, by="carol")
    assert r["changed"] and r["record"]["lock"] is None and r["cleared_lock"]["owner"] == "alice"
    assert r["record"]["history"][-1]["action"] == "unlock-forced" and r["record"]["history"][-1]["by"] == "carol"


def test_same_run_extends_its_lock(record):
    first, _facts = br.lock(br.load_record(str(record)), "alice", "r1", ttl=60, now=T0)
    again, _facts = br.lock(first, "alice", "r1", ttl=60, now=T0 + datetime.timedelta(seconds=50))
    assert again["lock"]["acquired"] == first["lock"]["acquired"] and again["lock"]["expires"] == "2026-11-21T16:01:50Z"


def _contend(path: str, run_id: str, barrier, queue) -> None:
    barrier.wait()
    try:
        br.execute({"name": "shop", "path": path, "state": "locked", "run_id": run_id, "owner": run_id}, False)
        queue.put(("won", run_id))
    except SafetyRefusal:
        queue.put(("refused", run_id))


def test_concurrent_lock_attempts_have_exactly_one_winner(record):
    ctx = multiprocessing.get_context("fork")
    for round_ in range(10):
        run(record, "unlocked", force=True)
        n = 6
        barrier, queue = ctx.Barrier(n), ctx.Queue()
        procs = [ctx.Process(target=_contend, args=(str(record), f"r{round_}-{i}", barrier, queue)) for i in range(n)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(30)
        outcomes = [queue.get(timeout=5) for _i in range(n)]
        winners = [r for outcome, r in outcomes if outcome == "won"]
        assert len(winners) == 1, outcomes
        assert br.load_record(str(record))["lock"]["run_id"] == winners[0]


def test_record_keeps_unknown_keys_other_features_add(record):
    rec = br.load_record(str(record))
    rec["replication"] = {"slots": ["dualboot_shop"]}
    br.write_record(str(record), rec)
    assert run(record, "switched", to="green")["record"]["replication"] == {"slots": ["dualboot_shop"]}


def test_rewrite_keeps_the_owner_and_0600(record):
    if os.geteuid() != 0:
        pytest.skip("changing a file's owner needs root")
    os.chown(record, 65534, 65534)
    os.chmod(record, 0o644)
    run(record, "switched", to="green")
    st = os.stat(record)
    assert (st.st_uid, st.st_gid, oct(st.st_mode & 0o777)) == (65534, 65534, "0o600")


PLAN = {"action": "cutover", "from": "blue", "to": "green", "hosts": ["app1", "app2"]}


def test_lock_with_a_plan_starts_the_journal_and_done_switches_and_releases(record):
    run(record, "evidence", entry="green", stage={"run_id": "s1"})
    r = run(record, "locked", run_id="r1", owner="alice", controller={"host": "ctl", "pid": 42}, journal=PLAN)
    journal = r["record"]["journal"]
    assert journal["phase"] == "locked" and journal["run_id"] == "r1" and journal["by"]
    assert journal["before"] == {"default": "blue", "fallback": None, "staged": "green"}
    assert r["record"]["lock"]["controller"] == {"host": "ctl", "pid": 42}
    for phase in ("marked", "frozen", "switching"):
        assert run(record, "journal", run_id="r1", phase=phase)["record"]["journal"]["phase"] == phase
    assert not run(record, "journal", run_id="r1", phase="switching")["changed"]
    done = run(record, "journal", run_id="r1", phase="done", operator="awx:bob")["record"]
    assert (done["default"], done["fallback"], done["staged"], done["lock"]) == ("green", "blue", None, None)
    assert (
        done["history"][-1]["action"] == "cutover"
        and done["history"][-1]["run_id"] == "r1"
        and done["history"][-1]["operator"] == "awx:bob"
    )
    assert done["journal"]["phase"] == "done" and not br.journal_open(done)


def test_a_journal_step_with_cutover_evidence_writes_both_at_once_or_neither(record):
    run(record, "evidence", entry="green", stage={"run_id": "s1"}, verify={"verdict": "passed"})
    run(record, "locked", run_id="r1", journal=PLAN)
    fresh = {"stage": {"run_id": "s2", "restaged_in_cutover": True}, "verify": {"verdict": "passed", "stage_run_id": "s2"}}
    r = run(record, "journal", run_id="r1", phase="switching", entry="green", cutover={"run_id": "r1", "marker": {"lsn": 7}}, **fresh)
    green = r["record"]["evidence"]["green"]
    assert r["record"]["journal"]["phase"] == "switching" and green["cutover"]["marker"] == {"lsn": 7}
    assert green["stage"]["run_id"] == "s2" and "recorded stage and verify and cutover evidence" in r["msg"]
    # Evidence that cannot be recorded leaves the phase unwritten too: one write, all or nothing.
    run(record, "evidence", entry="green", stage={"run_id": "s3"}, run_id="r1")  # a new stage without verify
    before = json.loads(record.read_text())
    with pytest.raises(SafetyRefusal, match="no passing verify"):
        run(record, "journal", run_id="r1", phase="done", entry="green", cutover={"run_id": "r1", "marker": {"lsn": 8}})
    assert json.loads(record.read_text()) == before
    with pytest.raises(InvalidInput, match="needs entry"):
        run(record, "journal", run_id="r1", phase="done", cutover={"run_id": "r1"})


def test_journal_moves_only_under_its_runs_lock(record):
    with pytest.raises(SafetyRefusal, match="not locked by it"):
        run(record, "journal", run_id="r1", phase="frozen", journal=PLAN)
    run(record, "locked", run_id="r1")
    with pytest.raises(InvalidInput, match="no open journal"):
        run(record, "journal", run_id="r1", phase="frozen")
    with pytest.raises(InvalidInput, match="missing or wrong: hosts"):
        run(record, "journal", run_id="r1", phase="locked", journal={**PLAN, "hosts": []})
    run(record, "journal", run_id="r1", phase="locked", journal=PLAN)
    with pytest.raises(SafetyRefusal, match="locked by"):
        run(record, "journal", run_id="r2", phase="done")


def test_a_dead_runs_lock_is_taken_over_by_name_and_its_journal_undone(record):
    run(record, "evidence", entry="green", stage={"run_id": "s1"})
    run(record, "locked", run_id="dead", controller={"host": "ctl", "pid": 1}, journal=PLAN)
    run(record, "journal", run_id="dead", phase="frozen")
    with pytest.raises(SafetyRefusal, match="locked by"):
        run(record, "locked", run_id="new")
    with pytest.raises(SafetyRefusal, match="takeover names run other"):
        run(record, "locked", run_id="new", takeover="other")
    r = run(record, "locked", run_id="new", takeover="dead", journal={**PLAN, "run_id": "dead"})
    assert "took over the dead run's lock of run dead" in r["msg"]
    assert r["record"]["history"][-1]["outcome"] == "holder dead" and r["record"]["history"][-1]["cleared"]["run_id"] == "dead"
    # Adopting keeps the crashed run's plan, start and saved state.
    assert r["record"]["journal"]["run_id"] == "dead" and r["record"]["journal"]["before"]["staged"] == "green"
    assert "frozen" in r["record"]["journal"]["phases"]
    undone = run(record, "journal", run_id="new", phase="undone")["record"]
    assert (undone["default"], undone["fallback"], undone["staged"], undone["lock"]) == ("blue", None, "green", None)


def test_undone_restores_a_record_switched_outside_the_journal(record):
    run(record, "locked", run_id="r1", journal=PLAN)
    run(record, "switched", to="green", run_id="r1", reason="cutover")
    undone = run(record, "journal", run_id="r1", phase="undone")["record"]
    assert (undone["default"], undone["fallback"], undone["lock"]) == ("blue", None, None)
    assert undone["history"][-1]["action"] == "undo" and undone["history"][-1]["to"] == "blue"


def test_a_journal_step_renews_the_lock(record):
    rec, _facts = br.lock(br.load_record(str(record)), "alice", "r1", ttl=60, now=T0, plan={**PLAN, "run_id": "r1"})
    rec, _facts = br.journal(rec, "r1", "frozen", now=T0 + datetime.timedelta(seconds=50))
    assert rec["lock"]["expires"] == "2026-11-21T16:01:50Z" and rec["lock"]["acquired"] == "2026-11-21T16:00:00Z"


@pytest.mark.parametrize("name", ["..", ".", "a/b", "../etc", "", "-x", ".hidden"])
def test_names_that_are_not_plain_file_names_are_refused(tmp_path, name):
    with pytest.raises(InvalidInput, match="not a plain file name"):
        br.execute({"name": name, "state": "query"}, check_mode=False)


def test_entry_problems_name_keys_with_a_guess_and_never_values():
    entries = {
        "blue": {"login_host": "db1", "login_port": "54x", "login_passwd": "s3cret-value", "login_db": "a"},
        "green": {"login_host": "db1", "login_port": 5432, "login_db": "b", "ssl_mode": "sometimes"},
    }
    problems = br.entry_problems("postgresql", entries)
    text = "; ".join(problems)
    assert "entry blue: unknown key 'login_passwd' (did you mean 'login_password'?)" in text
    assert "entry blue: login_port must be an int" in text
    assert "entry green: ssl_mode must be one of" in text
    assert "s3cret-value" not in text
    assert br.entry_problems("mongodb", {"a": {"login_host": "m"}, "b": {"database": "x"}}) == [
        "entry a: database is missing (the database this entry boots into)"
    ]


def test_public_entries_keep_known_keys_without_secrets_and_ports_as_numbers():
    entries = {"blue": {"login_host": "db1", "login_port": "5433", "login_password": "pw", "login_db": "a"}}
    assert br.public_entries("postgresql", entries) == {"blue": {"login_host": "db1", "login_port": 5433, "login_db": "a"}}


def test_define_refuses_secret_lookalikes_and_text_ports(tmp_path):
    path = str(tmp_path / "r.json")
    for entry, match in (({"login_passwd": "x"}, "would store a secret"), ({"login_port": "one"}, "login_port must be an int")):
        with pytest.raises(InvalidInput, match=match):
            run(path, "defined", engine="postgresql", entries={"blue": {"login_db": "a", **entry}, "green": {}}, default="blue")
    assert not os.path.exists(path)


def test_a_lock_taken_and_released_leaves_the_record_byte_for_byte(record):
    before = record.read_bytes()
    time.sleep(1.1)  # a new `updated` would differ by the second
    assert run(record, "locked", run_id="stage-1")["changed"]
    assert run(record, "unlocked", run_id="stage-1")["changed"]
    assert record.read_bytes() == before
    run(record, "evidence", entry="green", stage={"run_id": "s1"})
    assert json.loads(record.read_text())["updated"] != json.loads(before)["updated"]


def test_a_rollback_that_abandons_writes_warns_and_journals_them(record):
    plan = {"action": "rollback", "from": "green", "to": "blue", "hosts": ["app1"], "abandons": "public.users: ~1 rows"}
    run(record, "switched", to="green")
    result = run(record, "locked", run_id="r9", journal=plan)
    assert result["warnings"] == ["this rollback abandons writes on green: public.users: ~1 rows"]
    assert result["record"]["journal"]["abandons"] == "public.users: ~1 rows"
    quiet = run(record, "locked", run_id="r9", journal={**plan, "abandons": ""})
    assert "warnings" not in quiet
