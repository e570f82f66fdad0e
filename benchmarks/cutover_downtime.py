"""Cutover downtime: what an application writing continuously sees while dualboot.db stages, verifies and
cuts over its database, with a copy-based stage (issue 7, "Cutover downtime").

Two local PostgreSQL 15 clusters like the test harness (tests/harness/pg.py): the default entry ``blue``
(database ``shop_<size>_blue`` on the first cluster) holds a ``users`` table that takes the writes and an
``events`` table that pads the database to the wanted size; the staged entry ``green`` lives on the
second cluster. Two application "hosts" (inventory names on this machine, like
tests/integration/test_lifecycle_roles.py) each have a dotenv file with ``DATABASE_URL``, the demo
application (demo/app.py, for the cutover's health checks) and a **writer** process:

- the writer reads ``DATABASE_URL`` from its host's dotenv file, and re-reads it on every reconnect and on
  SIGHUP (the cutover's reload: ``kill -HUP <app> <writer>``); loopback URLs only;
- every write is ``INSERT INTO users (client_id, ...)`` with a unique client-generated id, recorded as
  acknowledged only after ``COMMIT`` returned; a failed attempt is logged and retried with the same id
  (so a write committed without its acknowledgement would show up as a duplicate), with exponential
  backoff (50 ms doubling to 250 ms), an id is abandoned after 600 s of retries; the writer stops itself
  when asked, when the benchmark exits, or after ``--max-seconds``.

Scenario A (``dualboot_drift_policy: restage``), per database size: stage, verify and cutover through
ansible-playbook with the collection's playbooks while both writers write. The default entry keeps taking
writes after the stage's copy, so the cutover redoes the copy and the migration inside the frozen window.
Reported: the longest gap between acknowledged writes, failed client operations, acknowledged writes lost
(acknowledged ids missing from the database that is default after the cutover) and duplicated, the
writes-blocked time the cutover reports, what the frozen window was spent on, the cutover's total time.

Scenario B (``dualboot_drift_policy: fail``): the same stage and verify, then the cutover refuses with its
message, and nothing changed (dotenv files, boot records, the default entry still writable, every
acknowledged write in it, no failed client operation).

Prints a Markdown table and writes benchmarks/results/cutover_downtime.{json,md}.

    .venv/bin/python benchmarks/cutover_downtime.py [--sizes 100,1024] [--fail-size 100] [--rate 50]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MIB = 2**20

# Writer behaviour (documented in the results).
BACKOFF_MIN = 0.05
BACKOFF_MAX = 0.25
GIVE_UP_AFTER = 600.0
SLOW_ACK = 1.0  # an acknowledged write whose last attempt took longer than this waited (e.g. on a lock)
LOOPBACK = {"127.0.0.1", "::1", "localhost"}

# Both clusters; fsync is off in the harness's clusters (throwaway data), as for the other benchmarks.
SETTINGS = {"shared_buffers": "256MB", "maintenance_work_mem": "256MB", "max_wal_size": "8GB", "checkpoint_timeout": "30min"}
SEED_USERS = 100_000
SCHEMA = """
CREATE TABLE users (
  user_id bigserial PRIMARY KEY,
  client_id text,
  user_name text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE events (
  event_id bigint PRIMARY KEY,
  user_id bigint NOT NULL,
  kind text NOT NULL,
  payload text NOT NULL
);
"""
MIGRATION = {"version": "1", "description": "users get an email column", "sql": "ALTER TABLE users ADD COLUMN email text"}
EXPECTED = [{"kind": "column", "name": "users.email", "change": "added"}]
RDS_QUOTE = (
    "The switchover typically takes under a minute with no data loss and no need for application changes.",
    "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/blue-green-deployments-overview.html",
)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------- the writer


def read_dotenv(path: str) -> dict:
    values = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                value = value.strip()
                if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                    value = value[1:-1]
                values[key.strip().removeprefix("export ").strip()] = value
    return values


def db_label(url: str) -> str:
    """``db@host:port`` of a loopback URL (no credentials); anything else is refused."""
    parts = urlsplit(url)
    if parts.hostname not in LOOPBACK:
        raise SystemExit(f"writer: refusing {parts.hostname!r}: the benchmark's writer talks to loopback servers only")
    return f"{parts.path.lstrip('/').split('?')[0]}@{parts.hostname}:{parts.port}"


def writer(opts: argparse.Namespace) -> int:
    import psycopg

    flags = {"hup": False, "term": False}
    signal.signal(signal.SIGHUP, lambda *_: flags.__setitem__("hup", True))
    signal.signal(signal.SIGTERM, lambda *_: flags.__setitem__("term", True))
    stop_file = Path(opts.stop_file)
    parent = os.getppid()
    deadline = time.monotonic() + opts.max_seconds
    interval = 1.0 / opts.rate
    fd = os.open(opts.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    out = os.fdopen(fd, "w", buffering=1)

    def emit(**event) -> None:
        out.write(json.dumps(event) + "\n")

    def running() -> bool:
        return not flags["term"] and not stop_file.exists() and time.monotonic() < deadline and os.getppid() == parent

    def pause(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end and not flags["hup"] and running():
            time.sleep(0.005)

    def close(conn) -> None:
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass

    conn = None
    label = None
    seq = 0
    tries = 0
    first_try = None
    backoff = BACKOFF_MIN
    next_at = time.monotonic()
    emit(e="start", t=time.time(), pid=os.getpid(), rate=opts.rate)
    while running():
        if flags["hup"]:
            flags["hup"] = False
            emit(e="reload", t=time.time())
            close(conn)
            conn = None
        cid = f"{opts.prefix}-{seq}"
        t_try = time.time()
        first_try = first_try or t_try
        try:
            if conn is None:
                url = read_dotenv(opts.env_file)["DATABASE_URL"]
                label = db_label(url)
                conn = psycopg.connect(url, connect_timeout=3, application_name="dualboot-bench-writer")
            conn.execute("INSERT INTO users (client_id, user_name) VALUES (%s, %s)", (cid, opts.prefix))
            conn.commit()
        except psycopg.Error as exc:
            tries += 1
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            emit(
                e="fail",
                id=cid,
                t=time.time(),
                t_try=t_try,
                db=label,
                sqlstate=getattr(exc, "sqlstate", None),
                err=f"{type(exc).__name__}: {text}"[:200],
            )
            close(conn)
            conn = None
            if time.time() - first_try > GIVE_UP_AFTER:
                emit(e="abandon", id=cid, t=time.time(), tries=tries)
                seq, tries, first_try = seq + 1, 0, None
            pause(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)
            continue
        emit(e="ack", id=cid, t=time.time(), t_try=t_try, t_first=first_try, db=label, tries=tries + 1)
        seq, tries, first_try, backoff = seq + 1, 0, None, BACKOFF_MIN
        next_at = max(next_at + interval, time.monotonic())
        pause(next_at - time.monotonic())
    close(conn)
    emit(e="stop", t=time.time(), next_id=f"{opts.prefix}-{seq}")
    out.close()
    return 0


# ------------------------------------------------------------------------------------------ the benchmark


def private_file(path: Path, content: str) -> Path:
    path.write_text(content)
    os.chmod(path, 0o600)
    return path


def ts(iso: str) -> float:
    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def fill(db, target_bytes: int) -> dict:
    """users (SEED_USERS rows) + events padded until the database reaches target_bytes."""
    t = time.monotonic()
    with db.connect() as c:
        c.execute(SCHEMA)
        c.execute(
            "INSERT INTO users (client_id, user_name, created_at) "
            "SELECT 'seed-' || g, 'user ' || g, now() - g * interval '1 minute' FROM generate_series(1, %s) g",
            (SEED_USERS,),
        )
        rows = 0
        size = c.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        per_row = 330  # bytes of heap and index per events row, corrected after the first chunk
        while size < target_bytes * 0.99:
            chunk = max(10_000, min(1_000_000, int((target_bytes - size) / per_row)))
            c.execute(
                "INSERT INTO events SELECT g, g %% %s + 1, 'kind ' || g %% 7, repeat(md5(g::text), 8) "
                "FROM generate_series(%s::bigint, %s::bigint) g",
                (SEED_USERS, rows + 1, rows + chunk),
            )
            rows += chunk
            new = c.execute("SELECT pg_database_size(current_database())").fetchone()[0]
            per_row = max(100, (new - size) / chunk)
            size = new
        c.execute("VACUUM ANALYZE")
        c.execute("CHECKPOINT")
        size = c.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    return {"database_size_bytes": size, "users": SEED_USERS, "events": rows, "fill_s": round(time.monotonic() - t, 1)}


class Host:
    """One application host: its dotenv file, the demo application and a writer."""

    def __init__(self, name: str, work: Path, url: str, rate: float, max_seconds: float) -> None:
        from harness.net import free_port, wait_for_port

        self.name = name
        self.env = private_file(work / f"{name}.env", f"DATABASE_URL={url}\nOTHER=kept\n")
        self.log = work / f"{name}.writer.jsonl"
        self.stop_file = work / f"{name}.stop"
        self.port = free_port()
        self.app_log = open(work / f"{name}.app.log", "ab")  # noqa: SIM115 - closed in stop()
        self.app = subprocess.Popen(
            [sys.executable, str(ROOT / "demo" / "app.py"), "--env-file", str(self.env), "--port", str(self.port), "--bind", "127.0.0.1"],
            stdout=self.app_log,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, alive=lambda: self.app.poll() is None)
        self.writer = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--writer",
                "--env-file",
                str(self.env),
                "--log",
                str(self.log),
                "--stop-file",
                str(self.stop_file),
                "--prefix",
                name,
                "--rate",
                str(rate),
                "--max-seconds",
                str(max_seconds),
            ],
            stdout=self.app_log,
            stderr=subprocess.STDOUT,
        )

    def inventory_vars(self, records: Path) -> dict:
        template = "postgresql://{login_user}:{password!u}@{login_host}:{login_port}/{login_db}"
        return {
            "dualboot_switch_targets": [{"format": "dotenv", "path": str(self.env), "key": "DATABASE_URL", "template": template}],
            "dualboot_record_path": str(records / f"{self.name}.json"),
            # The application's reload: both processes re-read the dotenv file on SIGHUP.
            "dualboot_app_reload": {"command": ["kill", "-HUP", str(self.app.pid), str(self.writer.pid)]},
            "dualboot_health_checks": [
                {"name": f"{self.name} health", "url": f"http://127.0.0.1:{self.port}/health", "retries": 10, "delay": 1}
            ],
        }

    def stop(self) -> None:
        self.stop_file.touch()
        try:
            self.writer.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.writer.terminate()
            self.writer.wait(timeout=10)
        if self.app.poll() is None:
            self.app.terminate()
            self.app.wait(timeout=10)
        self.app_log.close()

    def events(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]


def run_play(name: str, variables: dict, work: Path, inventory: Path) -> dict:
    """ansible-playbook dualboot.db.<name> with the JSON callback; wall time, tasks with their times, failures."""
    from harness.ansible import ansible_env

    env = ansible_env(work)
    env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.posix.json"
    vars_file = private_file(work / f"vars-{name}.json", json.dumps(variables))
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory), f"dualboot.db.{name}", "-e", f"@{vars_file}"]
    started = time.time()
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, cwd=work, timeout=3600)
    ended = time.time()
    vars_file.unlink()
    private_file(work / f"ansible-{name}-{int(started)}.log", proc.stdout + proc.stderr)
    try:
        report = json.loads(proc.stdout[proc.stdout.index("{") :])
    except ValueError:
        raise RuntimeError(f"ansible-playbook {name} printed no JSON (rc={proc.returncode}):\n{proc.stderr[-3000:]}") from None
    tasks, failures, messages = [], [], {}
    for play in report["plays"]:
        for task in play["tasks"]:
            title = task["task"]["name"].split(" : ", 1)[-1]  # without the "dualboot.db.cutover : " role prefix
            duration = task["task"].get("duration", {})
            start, end = ts(duration["start"]), ts(duration["end"]) if duration.get("end") else ts(duration["start"])
            tasks.append({"name": title, "start": start, "end": end, "seconds": round(end - start, 3)})
            for result in task["hosts"].values():
                msg = result.get("msg")
                if result.get("failed") and not result.get("ignore_errors"):
                    failures.append({"task": title, "msg": msg})
                elif msg is not None:
                    messages[title] = msg
    return {
        "playbook": f"dualboot.db.{name}",
        "rc": proc.returncode,
        "start": started,
        "end": ended,
        "seconds": round(ended - started, 2),
        "tasks": tasks,
        "failures": failures,
        "messages": messages,
    }


WINDOW_PARTS = [
    ("copy (postgresql_clone)", ("Copy the default entry into the staged entry",)),
    ("migration", ("Apply the migrations to the staged entry", "A copy of a frozen database is frozen too")),
    ("schema check of the fresh copy", ("The fresh copy still has exactly the expected changes",)),
    ("drift marker of the fresh copy", ("Take a drift marker of the staged entry", "Record the cutover marker")),
    ("switch + reload + health checks", ("Point the configuration", "Run the reload command", "Health checks of", "Reload the")),
]


def window_breakdown(cutover: dict) -> dict:
    """The frozen window (end of the freeze of the old default up to the cutover's 'Timings' task, the span
    its writes-blocked clock measures) split by kind of work, from the task timings of the JSON callback."""
    tasks = cutover["tasks"]
    first = next((i for i, t in enumerate(tasks) if t["name"].startswith("Set the freeze state of")), None)
    last = next((i for i, t in enumerate(tasks) if t["name"] == "Timings"), None)
    if first is None or last is None:
        return {}
    inside = tasks[first + 1 : last + 1]
    parts = dict.fromkeys((label for label, _prefixes in WINDOW_PARTS), 0.0)
    boot_records = 0.0
    other = 0.0
    for t in inside:
        for label, prefixes in WINDOW_PARTS:
            if t["name"].startswith(prefixes):
                parts[label] += t["seconds"]
                break
        else:
            if t["name"].startswith(("Record the new stage evidence", "Record the new default")):
                boot_records += t["seconds"]
            else:
                other += t["seconds"]
    wall = tasks[last]["end"] - tasks[first]["end"]
    parts["boot records (evidence, new default)"] = boot_records
    parts["other tasks"] = other
    parts["between tasks (Ansible)"] = wall - sum(parts.values())
    return {
        "freeze_task_s": round(tasks[first]["seconds"], 2),
        "freeze_started_at": tasks[first]["start"],
        "frozen_at": tasks[first]["end"],
        "window_end": tasks[last]["end"],
        "window_s": round(wall, 2),
        "parts_s": {k: round(v, 2) for k, v in parts.items()},
        "tasks_in_window": len(inside),
        "tasks": [{"name": t["name"], "seconds": t["seconds"]} for t in inside if t["seconds"] >= 0.5],
    }


def phase_of(t: float, phases: dict) -> str:
    for name, (start, end) in phases.items():
        if start <= t <= end:
            return name
    return "between"


def analyse(hosts: list[Host], phases: dict, final_db, other_db, frozen_at: float | None, staged_at: float | None) -> dict:
    """What the writers saw and what the databases hold."""
    writers = {}
    acked: dict[str, dict] = {}
    all_acks: list[float] = []
    failures: list[dict] = []
    for h in hosts:
        events = h.events()
        acks = [e for e in events if e["e"] == "ack"]
        fails = [e for e in events if e["e"] == "fail"]
        ids = [e["id"] for e in acks]
        if len(ids) != len(set(ids)):
            raise RuntimeError(f"writer {h.name} acknowledged an id twice")
        for e in acks:
            acked[e["id"]] = e
        times = [e["t"] for e in acks]
        all_acks.extend(times)
        gaps = [(b - a, a, b) for a, b in zip(times, times[1:])]
        longest = max(gaps) if gaps else (0.0, 0.0, 0.0)
        gaps_sorted = sorted(g[0] for g in gaps)
        failures.extend(fails)
        latencies = [e["t"] - e["t_try"] for e in acks]
        writers[h.name] = {
            "acknowledged": len(acks),
            "failed_operations": len(fails),
            "abandoned": sum(1 for e in events if e["e"] == "abandon"),
            "reloads": sum(1 for e in events if e["e"] == "reload"),
            "longest_gap_s": round(longest[0], 3),
            "longest_gap_from": longest[1],
            "longest_gap_to": longest[2],
            "longest_gap_phase": phase_of(longest[1], phases) if gaps else "",
            "longest_gap_databases": [acked_db(acks, longest[1]), acked_db(acks, longest[2])],
            "median_gap_s": round(gaps_sorted[len(gaps_sorted) // 2], 4) if gaps_sorted else None,
            "slow_acks": sum(1 for x in latencies if x > SLOW_ACK),
            "longest_ack_latency_s": round(max(latencies), 3) if latencies else None,
            "retried_then_acknowledged": sum(1 for e in acks if e["tries"] > 1),
        }
    all_acks.sort()
    combined = max(((b - a, a) for a, b in zip(all_acks, all_acks[1:])), default=(0.0, 0.0))
    present = dict(final_db.query("SELECT client_id, count(*) FROM users WHERE client_id LIKE 'app%%' GROUP BY client_id"))
    lost = sorted(set(acked) - set(present))
    duplicated = sorted(k for k, n in present.items() if n > 1)
    unacked_present = sorted(set(present) - set(acked))
    dbs = sorted({e["db"] for e in acked.values()})
    by_db = {d: sum(1 for e in acked.values() if e["db"] == d) for d in dbs}
    result = {
        "writers": writers,
        "acknowledged": len(acked),
        "acknowledged_by_database": by_db,
        "failed_operations": len(failures),
        "failed_operations_by_phase": count_by(failures, lambda e: phase_of(e["t"], phases)),
        "failed_operations_by_error": count_by(failures, error_kind),
        "failures_first_last": [min((e["t"] for e in failures), default=None), max((e["t"] for e in failures), default=None)],
        "abandoned": sum(w["abandoned"] for w in writers.values()),
        "longest_gap_s": max((w["longest_gap_s"] for w in writers.values()), default=0.0),
        "longest_gap_any_writer_s": round(combined[0], 3),
        "acknowledged_by_phase": count_by(acked.values(), lambda e: phase_of(e["t"], phases)),
        "final_database": final_db.name,
        "final_database_writer_rows": sum(present.values()),
        "lost": len(lost),
        "lost_ids": lost[:20],
        "duplicated": len(duplicated),
        "duplicated_ids": duplicated[:20],
        "present_not_acknowledged": len(unacked_present),
        "present_not_acknowledged_ids": unacked_present[:20],
    }
    if other_db is not None:
        old = dict(other_db.query("SELECT client_id, count(*) FROM users WHERE client_id LIKE 'app%%' GROUP BY client_id"))
        result["old_default_database"] = other_db.name
        result["old_default_writer_rows"] = sum(old.values())
        old_label = next((d for d in dbs if d.startswith(other_db.name + "@")), None)
        acked_old = [e for e in acked.values() if e["db"] == old_label]
        result["acked_by_old_default"] = len(acked_old)
        result["acked_by_old_default_missing_from_it"] = sum(1 for e in acked_old if e["id"] not in old)
        result["acked_by_old_default_present_in_new"] = sum(1 for e in acked_old if e["id"] in present)
        if staged_at is not None:
            drift = [e for e in acked_old if e["t"] > staged_at]
            result["acked_by_old_default_after_the_stage_copy"] = len(drift)
            result["acked_by_old_default_after_the_stage_copy_present_in_new"] = sum(1 for e in drift if e["id"] in present)
        if frozen_at is not None:
            result["acked_by_old_default_after_freeze"] = sum(1 for e in acked_old if e["t"] > frozen_at)
            new_acks = [e["t"] for e in acked.values() if e["db"] != old_label]
            result["last_ack_old_default_before_freeze_s"] = round(frozen_at - max(e["t"] for e in acked_old), 3) if acked_old else None
            result["first_ack_new_default_after_freeze_s"] = round(min(new_acks) - frozen_at, 3) if new_acks else None
    return result


def error_kind(event: dict) -> str:
    text = re.sub(r"database \S+ is frozen", "database <old default> is frozen", event["err"])
    return f"{event.get('sqlstate') or '-'} {text[:120]}"


def acked_db(acks: list[dict], t: float) -> str:
    return next((e["db"] for e in acks if e["t"] == t), "")


def count_by(items, key) -> dict:
    out: dict = {}
    for item in items:
        k = key(item)
        out[k] = out.get(k, 0) + 1
    return out


def record_of(records: Path, host: str) -> dict:
    return json.loads((records / f"{host}.json").read_text())


def frozen_state(db) -> dict:
    """Is the database read-only for a new session, and how many freeze guards does it carry?"""
    return {
        "default_transaction_read_only": db.scalar("SHOW default_transaction_read_only"),
        "freeze_triggers": db.scalar("SELECT count(*) FROM pg_trigger WHERE tgname = 'dualboot_freeze'"),
    }


def deployment(label: str, size_mib: int, policy: str, a, b, opts) -> dict:
    """One deployment: fill blue, start hosts and writers, stage, verify, cutover; analyse."""
    from harness.pg import PgDatabase

    work = Path(tempfile.mkdtemp(prefix=f"dualboot-cutover-{label}-"))
    os.chmod(work, 0o700)
    records = work / "records"
    blue_name, green_name = f"shop_{label}_blue", f"shop_{label}_green"
    a.drop_database(blue_name)
    b.drop_database(green_name)
    blue = a.create_database(blue_name)
    log(f"[{label}] filling {blue_name} to {size_mib} MiB")
    facts = fill(blue, size_mib * MIB)
    log(f"[{label}] {facts['database_size_bytes'] / MIB:.0f} MiB, {facts['events']:,} events, {facts['fill_s']} s")
    green = PgDatabase(b, green_name)
    hosts: list[Host] = []
    out: dict = {"label": label, "policy": policy, "target_mib": size_mib, **facts}
    try:
        hosts = [Host(n, work, blue.uri, opts.rate, opts.max_seconds) for n in ("app1", "app2")]
        inventory = work / "inventory.json"
        private_file(
            inventory,
            json.dumps(
                {
                    "all": {
                        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
                        "children": {
                            "dualboot_db": {"hosts": {"db1": {}}},
                            "dualboot_app": {"hosts": {h.name: h.inventory_vars(records) for h in hosts}},
                        },
                    }
                }
            ),
        )
        variables = {
            "dualboot_name": f"shop_{label}",
            "dualboot_entries": {
                "blue": {**a.login_params(), "login_db": blue_name},
                "green": {**b.login_params(), "login_db": green_name},
            },
            "dualboot_record_dir": str(records),
            "dualboot_report_dir": str(work / "reports"),
            "dualboot_work_dir": str(work / "scratch"),
            "dualboot_migrations": {"migrations": [MIGRATION]},
            "dualboot_expected_changes": EXPECTED,
            # users takes the application's writes all along: the copy cannot equal it; the migration changes it too.
            "dualboot_checks": {"exclude": ["users"]},
            "dualboot_drift_policy": policy,
        }
        time.sleep(opts.settle)
        phases: dict[str, tuple[float, float]] = {}
        plays = {}
        load: dict[str, float] = {}
        for step in ("stage", "verify", "cutover"):
            log(f"[{label}] {step} (drift policy {policy})")
            if step == "cutover":
                out["before_cutover"] = {
                    "env_files": {h.name: h.env.read_bytes().hex() for h in hosts},
                    "records": {h.name: record_of(records, h.name) for h in hosts},
                    "green_users": green.scalar("SELECT count(*) FROM users"),
                    "green_oid": b.db("postgres").scalar("SELECT oid FROM pg_database WHERE datname = %s", (green_name,)),
                }
            load[step] = os.getloadavg()[0]
            p = run_play(step, variables, work, inventory)
            plays[step] = p
            phases[step] = (p["start"], p["end"])
            log(f"[{label}] {step}: rc {p['rc']}, {p['seconds']:.1f} s")
            if p["rc"] != 0 and not (step == "cutover" and policy == "fail"):
                raise RuntimeError(f"{step} failed: {json.dumps(p['failures'], indent=1)[:4000]}")
        time.sleep(opts.settle)
        phases["after"] = (phases["cutover"][1], time.time())
        for h in hosts:
            h.stop()
        cut = plays["cutover"]
        out["plays"] = {k: {"seconds": v["seconds"], "rc": v["rc"], "load_average_at_start": load[k]} for k, v in plays.items()}
        out["stage_summary"] = plays["stage"]["messages"].get("Stage summary")
        default_after = record_of(records, "app1")["default"]
        final_db = green if default_after == "green" else blue
        other_db = blue if default_after == "green" else None
        breakdown = window_breakdown(cut) if policy == "restage" else {}
        out["cutover"] = {
            "rc": cut["rc"],
            "seconds": cut["seconds"],
            "failures": cut["failures"],
            "report": cut["messages"].get("Report of cutover"),
            "window": breakdown,
        }
        report = cut["messages"].get("Report of cutover") or []
        m = re.search(r"writes were blocked for ([\d.]+) s; seconds per host: (\{.*\})", " ".join(report))
        if m:
            out["cutover"]["writes_blocked_s"] = float(m.group(1))
            out["cutover"]["hosts_s"] = json.loads(m.group(2))
        copy = next((t for t in plays["stage"]["tasks"] if t["name"] == "Copy the default entry into the staged entry"), None)
        out["stage_copy_task"] = {"seconds": copy["seconds"], "end": copy["end"]} if copy else None
        out["writes"] = analyse(hosts, phases, final_db, other_db, breakdown.get("frozen_at"), copy["end"] if copy else None)
        out["after"] = {
            "default": default_after,
            "records": {h.name: {k: record_of(records, h.name).get(k) for k in ("default", "fallback", "staged", "lock")} for h in hosts},
            "env_points_at": {h.name: db_label(read_dotenv(str(h.env))["DATABASE_URL"]) for h in hosts},
            "blue": frozen_state(blue),
        }
        if policy == "fail":
            before = out.pop("before_cutover")
            out["unchanged"] = {
                "env_files_identical": all(h.env.read_bytes().hex() == before["env_files"][h.name] for h in hosts),
                "records_identical": all(record_of(records, h.name) == before["records"][h.name] for h in hosts),
                "default_still_blue": all(record_of(records, h.name)["default"] == "blue" for h in hosts),
                "lock_free": all(record_of(records, h.name)["lock"] is None for h in hosts),
                "blue_writable": out["after"]["blue"] == {"default_transaction_read_only": "off", "freeze_triggers": 0},
                "green_users_unchanged": green.scalar("SELECT count(*) FROM users") == before["green_users"],
                "green_not_recreated": b.db("postgres").scalar("SELECT oid FROM pg_database WHERE datname = %s", (green_name,))
                == before["green_oid"],
                "failed_client_operations_during_cutover": out["writes"]["failed_operations_by_phase"].get("cutover", 0),
                "acknowledged_during_cutover": out["writes"]["acknowledged_by_phase"].get("cutover", 0),
            }
            out["refusal"] = [f["msg"] for f in cut["failures"]]
        else:
            out.pop("before_cutover", None)
            out["green"] = frozen_state(green)
    finally:
        for h in hosts:
            if h.writer.poll() is None or h.app.poll() is None:
                h.stop()
        a.drop_database(blue_name)
        b.drop_database(green_name)
        if not opts.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"[{label}] kept {work}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100,1024", help="database sizes of scenario A in MiB (comma-separated)")
    ap.add_argument("--fail-size", type=int, default=100, help="database size of scenario B (drift policy fail) in MiB; 0 skips it")
    ap.add_argument("--rate", type=float, default=50.0, help="writes per second of each writer")
    ap.add_argument("--settle", type=float, default=3.0, help="seconds of writes before the stage and after the cutover")
    ap.add_argument("--max-seconds", type=float, default=1800.0, help="a writer stops itself after this long")
    ap.add_argument("--no-save", action="store_true", help="print only (for trying the script)")
    ap.add_argument("--keep", action="store_true", help="keep the work directories (logs of the writers and of ansible-playbook)")
    # The writer (a child process of the benchmark).
    ap.add_argument("--writer", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--env-file", help=argparse.SUPPRESS)
    ap.add_argument("--log", help=argparse.SUPPRESS)
    ap.add_argument("--stop-file", help=argparse.SUPPRESS)
    ap.add_argument("--prefix", help=argparse.SUPPRESS)
    opts = ap.parse_args()
    if opts.writer:
        return writer(opts)

    sys.path.insert(0, str(ROOT / "tests"))
    from harness.paths import ensure_collection_path
    from harness.pg import PgCluster

    ensure_collection_path()
    command = "benchmarks/cutover_downtime.py " + " ".join(sys.argv[1:])
    started = time.monotonic()
    a = PgCluster(settings=SETTINGS, name="cutover-a")
    b = PgCluster(settings=SETTINGS, name="cutover-b")
    runs = []
    try:
        a.start()
        b.start()
        if opts.fail_size:
            runs.append(deployment(f"{opts.fail_size}mib_fail", opts.fail_size, "fail", a, b, opts))
        for size in [int(s) for s in opts.sizes.split(",") if s.strip()]:
            runs.append(deployment(f"{size}mib", size, "restage", a, b, opts))
        secrets = [a.password, b.password]
    finally:
        a.stop()
        b.stop()
    payload = {
        "command": f".venv/bin/python {command}".strip(),
        "date": str(datetime.date.today()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_average": os.getloadavg()},
        "writer": {
            "rate_per_writer": opts.rate,
            "writers": 2,
            "backoff_s": [BACKOFF_MIN, BACKOFF_MAX],
            "give_up_after_s": GIVE_UP_AFTER,
            "slow_ack_s": SLOW_ACK,
        },
        "benchmark_s": round(time.monotonic() - started, 1),
        "runs": runs,
        "reference_not_measured": {
            "what": "AWS RDS Blue/Green Deployments switchover, as documented",
            "quote": RDS_QUOTE[0],
            "source": RDS_QUOTE[1],
        },
    }
    text = json.dumps(payload, indent=1, default=str)
    if any(s in text for s in secrets):
        raise RuntimeError("a cluster password reached the results; not writing them")
    table = markdown(payload)
    print("\n" + table)
    if not opts.no_save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "cutover_downtime.json").write_text(text + "\n")
        (RESULTS / "cutover_downtime.md").write_text(table + "\n")
    return 0


def mib(r: dict) -> str:
    return f"{r['database_size_bytes'] / MIB:,.0f} MiB"


def markdown(p: dict) -> str:
    a_runs = [r for r in p["runs"] if r["policy"] == "restage"]
    b_runs = [r for r in p["runs"] if r["policy"] == "fail"]
    w = p["writer"]
    ref = p["reference_not_measured"]
    lines = [
        f"`{p['command']}` — {p['date']}, {p['machine']['cpus']} CPUs shared with other work, PostgreSQL 15, "
        f"whole benchmark {p['benchmark_s'] / 60:.1f} min. Two clusters on this machine, two application hosts (inventory names "
        "on this machine, each with a dotenv file, the demo application for the health checks and a writer).",
        f"Writers: {w['writers']} (one per application host), {w['rate_per_writer']:g} writes/s each, every write a unique client id "
        f"acknowledged after COMMIT; a failed attempt is retried with the same id (backoff {w['backoff_s'][0]:g}–{w['backoff_s'][1]:g} s); "
        "the writer re-reads the dotenv file the cutover switches on every reconnect and on the reload (SIGHUP).",
        "",
        "**Scenario A — `dualboot_drift_policy: restage`**: the default entry keeps taking writes after the stage's copy, so the "
        "cutover copies and migrates again inside the frozen window.",
        "",
        "| database | acknowledged writes | longest gap between acknowledged writes | failed client operations | acknowledged lost "
        "| duplicated | writes blocked (cutover's report) | total cutover | stage, verify |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in a_runs:
        wr = r["writes"]
        cut = r["cutover"]
        lines.append(
            f"| {mib(r)} | {wr['acknowledged']:,} | {wr['longest_gap_s']:.1f} s | {wr['failed_operations']:,} | {wr['lost']} "
            f"| {wr['duplicated']} | {cut.get('writes_blocked_s', float('nan')):.1f} s | {cut['seconds']:.1f} s "
            f"| {r['plays']['stage']['seconds']:.0f} s, {r['plays']['verify']['seconds']:.0f} s |"
        )
    lines += [
        f'| *reference, not measured: AWS RDS Blue/Green Deployments switchover (continuous replication)* | | *"{ref["quote"]}"* '
        f"([AWS documentation]({ref['source']})) | | | | | | |",
        "",
        "The frozen window (from the end of the freeze of the old default to the cutover's clock stop), seconds by kind of work, "
        "from the task timings of the JSON callback:",
        "",
    ]
    if a_runs:
        keys = list(a_runs[0]["cutover"].get("window", {}).get("parts_s", {}))
        lines.append("| database | window | " + " | ".join(keys) + " |")
        lines.append("| --- | ---: |" + " ---: |" * len(keys))
        for r in a_runs:
            win = r["cutover"].get("window", {})
            parts = win.get("parts_s", {})
            lines.append(f"| {mib(r)} | {win.get('window_s', 0):.1f} | " + " | ".join(f"{parts.get(k, 0):.1f}" for k in keys) + " |")
    lines += ["", "Where the acknowledged writes are after the cutover:", ""]
    for r in a_runs:
        wr = r["writes"]
        by_db = ", ".join(f"{k.split('@')[0]} {v:,}" for k, v in wr["acknowledged_by_database"].items())
        per = "; ".join(
            f"{n}: longest gap {x['longest_gap_s']:.1f} s (last write to {x['longest_gap_databases'][0].split('@')[0]}, next to "
            f"{x['longest_gap_databases'][1].split('@')[0]}), {x['failed_operations']} failed attempts, "
            f"{x['slow_acks']} writes waited > {w['slow_ack_s']:g} s"
            for n, x in wr["writers"].items()
        )
        lines.append(
            f"- **{mib(r)}**: {wr['acknowledged']:,} acknowledged ({by_db}). "
            f"{wr.get('acked_by_old_default_after_the_stage_copy', 0):,} were acknowledged by the old default after the stage's copy "
            f"(the drift); {wr.get('acked_by_old_default_after_the_stage_copy_present_in_new', 0):,} of them are in the new default "
            f"(carried by the copy inside the window). Acknowledged by the old default after its freeze: "
            f"{wr.get('acked_by_old_default_after_freeze', 'n/a')}. In the new default {wr['final_database']}: lost {wr['lost']}, "
            f"duplicated {wr['duplicated']}, committed but never acknowledged {wr['present_not_acknowledged']}; abandoned ids "
            f"{wr['abandoned']}. Failed attempts by phase: {fmt_counts(wr['failed_operations_by_phase'])}; by error: "
            f"{fmt_counts(wr['failed_operations_by_error'])}. Per writer: {per}."
        )
    for r in b_runs:
        wr = r["writes"]
        u = r["unchanged"]
        lines += [
            "",
            f"**Scenario B — `dualboot_drift_policy: fail`** ({mib(r)}, the same stage and verify while the writers write): "
            f"the cutover refused after {r['cutover']['seconds']:.1f} s with",
            "",
        ]
        for msg in r["refusal"]:
            for line in msg if isinstance(msg, list) else [msg]:
                lines.append(f"> {line}")
        lines += [
            "",
            f"Nothing changed: dotenv files byte-identical: {yes(u['env_files_identical'])}; boot records identical: "
            f"{yes(u['records_identical'])} (default blue: {yes(u['default_still_blue'])}, no lock: {yes(u['lock_free'])}); "
            f"blue writable (no read-only default, no freeze trigger): {yes(u['blue_writable'])}; green untouched (same database, "
            f"same rows): {yes(u['green_users_unchanged'] and u['green_not_recreated'])}. During the refused cutover "
            f"{u['acknowledged_during_cutover']:,} writes were acknowledged and {u['failed_client_operations_during_cutover']} failed; "
            f"acknowledged writes missing from blue: {wr['lost']}, duplicated: {wr['duplicated']}.",
        ]
    return "\n".join(lines)


def yes(value: bool) -> str:
    return "yes" if value else "**NO**"


def fmt_counts(counts: dict) -> str:
    return ", ".join(f"{k}: {v:,}" for k, v in counts.items()) or "none"


if __name__ == "__main__":
    sys.exit(main())
