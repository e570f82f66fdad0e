"""The lifecycle roles on MongoDB (FerretDB here): no acknowledged write is lost without the operator
being told. Two application "hosts" on this machine (dotenv files, boot records), both entries on the
harness's server, R4 as the change; a writer plays the application and writes in every phase."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from harness.ansible import local_deployment, run_playbook


class Writer(threading.Thread):
    """An application writing one acknowledged document after another into ``events`` of the entry its
    dotenv file names. With ``obey`` it honours a maintenance mode: while ``frozen-<entry>`` exists it
    writes nothing to that entry and confirms with ``drained-<entry>`` (the freeze hook waits for it)."""

    def __init__(self, mongo, d: dict, obey: bool = True, fixed_entry: str | None = None) -> None:
        super().__init__(daemon=True)
        self.client = mongo.client()
        self.d, self.obey, self.fixed = d, obey, fixed_entry
        self.acked: list = []
        self.stop_event = threading.Event()
        self.error: Exception | None = None

    def entry(self) -> str:
        if self.fixed:
            return self.fixed
        url = self.d["hosts"]["app1"].read_text().split("DATABASE_URL=", 1)[1].split("\n", 1)[0]
        return "green" if url.endswith("/" + self.d["db"]["green"]) else "blue"

    def run(self) -> None:
        n = 0
        try:
            while not self.stop_event.is_set():
                entry = self.entry()
                if self.obey and (self.d["dir"] / f"frozen-{entry}").exists():
                    (self.d["dir"] / f"drained-{entry}").touch()
                    time.sleep(0.02)
                    continue
                _id = f"w{n:06d}"
                self.client[self.d["db"][entry]].events.insert_one({"_id": _id, "entry": entry})
                self.acked.append(_id)
                n += 1
                time.sleep(0.01)
        except Exception as exc:  # noqa: BLE001 - reported by stop()
            self.error = exc

    def stop(self) -> list:
        self.stop_event.set()
        self.join(30)
        self.client.close()
        assert self.error is None, self.error
        return self.acked


@pytest.fixture
def deployment(tmp_path, mongo):
    """Deployment 'shop' (R4): blue is the default entry with 200 users {_id, userName} and an events collection."""
    client = mongo.client()
    blue, green = mongo.new_db_name(), mongo.new_db_name()
    client[blue].users.insert_many([{"_id": i, "userName": f"user{i}"} for i in range(200)])
    client[blue].events.insert_one({"_id": "seed", "entry": "blue"})
    hosts = {}
    for name in ("app1", "app2"):
        env = tmp_path / f"{name}.env"
        env.write_text(f"DATABASE_URL={mongo.uri}{blue}\n")
        hosts[name] = env
    targets = {
        name: [{"format": "dotenv", "path": str(env), "key": "DATABASE_URL", "template": "{login_uri}{database}"}]
        for name, env in hosts.items()
    }
    entries = {"blue": {"login_uri": mongo.uri, "database": blue}, "green": {"login_uri": mongo.uri, "database": green}}
    inventory, variables = local_deployment(tmp_path, targets, entries, "r4")
    variables["dualboot_engine"] = "mongodb"
    yield {
        "inventory": inventory,
        "vars": variables,
        "hosts": hosts,
        "db": {"blue": blue, "green": green},
        "dir": tmp_path,
        "client": client,
        "mongo": mongo,
    }
    client.drop_database(blue)
    client.drop_database(green)
    client.close()


def play(d: dict, name: str, **extra) -> tuple[int, str]:
    proc = run_playbook(f"dualboot.db.{name}", {**d["vars"], **extra}, inventory=str(d["inventory"]))
    return proc.returncode, proc.stdout + proc.stderr


def record(d: dict, host: str = "app1") -> dict:
    return json.loads((Path(d["dir"]) / "records" / f"{host}.json").read_text())


def hooks(d: dict) -> dict:
    """Maintenance mode: the freeze hook raises the flag and waits until the writer confirms it is drained."""
    base = d["dir"]
    return {
        "dualboot_freeze_command": [
            "sh",
            "-c",
            f"rm -f {base}/drained-$DUALBOOT_ENTRY; touch {base}/frozen-$DUALBOOT_ENTRY; "
            f"for i in $(seq 300); do [ -e {base}/drained-$DUALBOOT_ENTRY ] && exit 0; sleep 0.1; done; exit 1",
        ],
        "dualboot_thaw_command": ["sh", "-c", f"rm -f {base}/frozen-$DUALBOOT_ENTRY"],
    }


def events(d: dict, entry: str) -> list:
    return sorted(x["_id"] for x in d["client"][d["db"][entry]].events.find({"_id": {"$ne": "seed"}}, {"_id": 1}))


def test_writes_in_every_phase_fail_then_restage_loses_and_duplicates_nothing(deployment):
    d = deployment
    writer = Writer(d["mongo"], d)
    writer.start()
    try:
        for step in ("stage", "verify"):  # the writer writes during the dump, and between stage and verify
            rc, out = play(d, step, **hooks(d))
            assert rc == 0, out[-4000:]
        assert "took writes since the marker" in out and "events (written" in out, out[-3000:]
        rc, out = play(d, "cutover", **hooks(d))  # policy fail
        assert rc != 0 and "Cutover refused" in out and "events (written" in out, out[-4000:]
        assert record(d)["default"] == "blue" and record(d)["lock"] is None
        assert all(d["db"]["blue"] in env.read_text() for env in d["hosts"].values())
        rc, out = play(d, "cutover", dualboot_drift_policy="restage", **hooks(d))
        assert rc == 0, out[-5000:]
        assert "post-switch drift check" in out
        time.sleep(0.5)  # a few writes on the new default after the cutover
    finally:
        acked = writer.stop()
    assert record(d)["default"] == "green" and record(d, "app2")["fallback"] == "blue"
    on_green = events(d, "green")
    assert len(on_green) == len(set(on_green)) and on_green == sorted(acked), (len(on_green), len(acked))
    assert d["client"][d["db"]["green"]].users.count_documents({"user.name": {"$exists": True}}) == 200


def test_writes_during_the_switch_undo_it(deployment):
    """A writer that keeps writing to blue (no maintenance mode): the check after the last host undoes the cutover."""
    d = deployment
    for step in ("stage", "verify"):
        rc, out = play(d, step)
        assert rc == 0, out[-4000:]
    writer = Writer(d["mongo"], d, obey=False, fixed_entry="blue")
    writer.start()
    try:
        rc, out = play(d, "cutover", dualboot_drift_policy="restage")
    finally:
        acked = writer.stop()
    assert rc != 0 and "cutover FAILED and was undone" in out, out[-5000:]
    assert "while the application hosts switched" in out and "events (written" in out, out[-5000:]
    assert all(d["db"]["blue"] in env.read_text() for env in d["hosts"].values())
    r = record(d)
    assert r["default"] == "blue" and r["lock"] is None
    assert events(d, "blue") == sorted(acked)


def test_ignore_reports_the_abandoned_writes(deployment):
    d = deployment
    for step in ("stage", "verify"):
        rc, out = play(d, step)
        assert rc == 0, out[-4000:]
    d["client"][d["db"]["blue"]].events.insert_many([{"_id": f"late{i}"} for i in range(3)])
    rc, out = play(d, "cutover", dualboot_drift_policy="ignore")
    assert rc == 0, out[-4000:]
    assert "they are not carried over" in out and "events (written, 1 -> 4 documents)" in out, out[-4000:]
    assert record(d)["default"] == "green"
    assert events(d, "green") == []


def test_rollback_of_r4_measures_writes_since_the_cutover(deployment):
    d = deployment
    for step in ("stage", "verify", "cutover"):
        rc, out = play(d, step)
        assert rc == 0, out[-4000:]
    green = d["client"][d["db"]["green"]]
    green.users.insert_one({"_id": 1000, "user": {"name": "written after the cutover"}})
    rc, out = play(d, "rollback")
    assert rc != 0 and "Rollback refused" in out and "users (written, 200 -> 201 documents)" in out, out[-4000:]
    assert record(d)["default"] == "green"
    # Taking the write back restores the exact content: nothing would be lost, so no discard flag is needed.
    green.users.delete_one({"_id": 1000})
    rc, out = play(d, "rollback")
    assert rc == 0, out[-4000:]
    assert "abandons writes" not in out
    assert record(d)["default"] == "blue"
    assert all(
        env.read_text() == f"DATABASE_URL={d['vars']['dualboot_entries']['blue']['login_uri']}{d['db']['blue']}\n"
        for env in d["hosts"].values()
    )


def test_bad_markers_refuse_the_cutover_before_anything_is_switched(deployment):
    d = deployment
    for step in ("stage", "verify"):
        rc, out = play(d, step)
        assert rc == 0, out[-4000:]
    recs = {h: Path(d["dir"]) / "records" / f"{h}.json" for h in d["hosts"]}
    for how, expect in (("missing", "no drift marker"), ("other", "taken of database 'elsewhere'")):
        for path in recs.values():
            r = json.loads(path.read_text())
            stage = r["evidence"]["green"]["stage"]
            if how == "missing":
                del stage["marker"]
            else:
                stage["marker"]["database"] = "elsewhere"
            path.write_text(json.dumps(r))
        rc, out = play(d, "cutover")
        assert rc != 0 and expect in out, out[-4000:]
        assert record(d)["default"] == "blue" and record(d)["lock"] is None
        assert all(d["db"]["blue"] in env.read_text() for env in d["hosts"].values())
        if how == "missing":
            rc, out = play(d, "stage")
            assert rc == 0, out[-3000:]
            rc, out = play(d, "verify")
            assert rc == 0, out[-3000:]
