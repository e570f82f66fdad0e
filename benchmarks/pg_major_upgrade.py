"""A major-version upgrade, PostgreSQL 13 → 17, of a pgbench database of about 1 GB by each path of
dualboot.db, beside what a DBA does without it (issue 15), in one run:

- ``pg_dump -Fc | pg_restore`` with 17's tools, by hand: the plain upgrade by dump and restore;
- ``pg_dump -Fd -j | pg_restore -j`` with 17's tools, by hand: the same with the best flags;
- ``postgresql_clone`` method ``stream`` into a 17 server (what a copy-based stage runs);
- ``postgresql_sync`` ``state=started`` until caught up (the initial copy of a sync stage), then the
  handover of the cutover with an application writing (``pg_sync.handover``, as the cutover runs it);
- ``postgresql_clone`` method ``physical`` with ``target_major: 17``: pg_basebackup of the 13 cluster,
  ``pg_upgrade --link`` (and ``--copy``) into a 17 cluster of its own.

Each copy is checked (every account row). The **frozen window** of a cutover is reported per path: a
copy-based stage whose default entry took writes since the copy must copy again while writes are
blocked, so its window is the copy itself (plus the freeze and switch every cutover has, about a second:
benchmarks/fleet_cutover.py); the sync path's window is the handover, measured here with writers.

Clusters like the test harness (tests/harness/pg.py: fsync off, the same settings for each), the 13 and
17 binaries from scripts/fetch-pg-versions.sh; the clone paths run as Ansible tasks (run_module), the
sync steps in-process (their module is the same code).

    .venv/bin/python benchmarks/pg_major_upgrade.py [--scale 70] [--no-save]   (about 10 minutes; --scale 2 checks the script)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import pg_stage  # noqa: E402
from common import save  # noqa: E402
from harness.ansible import run_module  # noqa: E402
from harness.net import free_port  # noqa: E402
from harness.paths import ensure_collection_path  # noqa: E402
from harness.pg import OS_USER, PgCluster, _run_as_owner, pg_bin  # noqa: E402
from pg_stage import SETTINGS  # noqa: E402

ensure_collection_path()

from ansible_collections.dualboot.db.plugins.module_utils import pg_sync  # noqa: E402


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def prepare(src: PgCluster, scale: int) -> dict:
    facts = pg_stage.prepare(src, scale)  # the database of benchmarks/pg_stage.py, made by 13's pgbench
    facts["source_version"] = src.db("bench").scalar("SHOW server_version")
    return facts


def check(db, accounts: int) -> None:
    got = db.scalar("SELECT count(*) FROM pgbench_accounts")
    if got != accounts:
        raise RuntimeError(f"{db.name} on port {db.server.port} has {got} accounts, expected {accounts}")
    if not db.scalar("SHOW server_version_num").startswith("17"):
        raise RuntimeError(f"{db.name} on port {db.server.port} is not PostgreSQL 17")


def by_hand(src: PgCluster, dst: PgCluster, directory: bool, work: Path) -> float:
    """17's pg_dump and pg_restore, typed by a DBA, no Ansible."""
    name = "by_hand_dir" if directory else "by_hand_pipe"
    dst.create_database(name)
    tools, jobs = pg_bin(17), str(os.cpu_count() or 1)
    conn = {s: ["-h", s.host, "-p", str(s.port), "-U", s.user] for s in (src, dst)}
    env = {**os.environ, "PGPASSWORD": src.password}  # the harness gives both clusters' superusers their own password
    t = time.monotonic()
    if directory:
        out = str(work / "dump")
        subprocess.run([str(tools / "pg_dump"), *conn[src], "-Fd", "-j", jobs, "-Z", "0", "-f", out, "bench"], check=True, env=env)
        env["PGPASSWORD"] = dst.password
        subprocess.run([str(tools / "pg_restore"), *conn[dst], "-j", jobs, "--exit-on-error", "-d", name, out], check=True, env=env)
        shutil.rmtree(out)
    else:
        dump = subprocess.Popen([str(tools / "pg_dump"), *conn[src], "-Fc", "-Z", "0", "bench"], stdout=subprocess.PIPE, env=env)
        restore_env = {**os.environ, "PGPASSWORD": dst.password}
        subprocess.run(
            [str(tools / "pg_restore"), *conn[dst], "--exit-on-error", "-d", name], stdin=dump.stdout, check=True, env=restore_env
        )
        if dump.wait() != 0:
            raise RuntimeError("pg_dump failed")
    return time.monotonic() - t


def module(name: str, args: dict) -> tuple[float, dict]:
    t = time.monotonic()
    r = run_module(name, args, timeout=3600)
    if r.failed:
        raise RuntimeError(f"{name} failed: {r.msg}\n{r.output[-3000:]}")
    return time.monotonic() - t, r.result


class Writer(threading.Thread):
    """pgbench-like single-row UPDATEs, one per transaction; after a refusal (the frozen source) it moves to the target."""

    def __init__(self, first, then) -> None:
        super().__init__(daemon=True)
        self.conns, self.stop, self.acked, self.failed = [first, then], threading.Event(), 0, 0

    def run(self) -> None:
        import psycopg

        conn = psycopg.connect(self.conns.pop(0), autocommit=True)
        while not self.stop.is_set():
            try:
                conn.execute("UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = %s", (1 + self.acked % 1000,))
                self.acked += 1
            except psycopg.Error:
                self.failed += 1
                if self.conns:
                    conn.close()
                    conn = psycopg.connect(self.conns.pop(0), autocommit=True)
            time.sleep(0.002)
        conn.close()


def sync_path(src: PgCluster, dst: PgCluster, accounts: int) -> dict:
    """The initial copy of a sync stage, then a handover with a writer: the cutover's frozen window."""
    dst.create_database("sync_bench")
    params = {"name": "bench", "entry": "green", "source": {**src.login_params(), "login_db": "bench"}}
    params["target"] = {**dst.login_params(), "login_db": "sync_bench"}
    params["replica_identity_full"] = ["public.pgbench_history"]
    params["bin_dir"] = str(pg_bin(17))
    t = time.monotonic()
    module("postgresql_sync", {**params, "state": "started", "timeout": 3600})
    name = pg_sync.stream_name("bench", "green")
    blue, green = src.db("bench"), dst.db("sync_bench")
    pg_sync.wait_caught_up(blue.conn, green.conn, name, None, 3600)
    copy_s = time.monotonic() - t
    check(green, accounts)
    writer = Writer(blue.uri, green.uri)
    writer.start()
    time.sleep(2)
    t = time.monotonic()
    h = pg_sync.handover(blue.conn, green.conn, name, None, None, None, [], 60, 10, False, True, "frozen")
    handover_s = time.monotonic() - t
    time.sleep(1)
    writer.stop.set()
    writer.join()
    return {"copy_s": copy_s, "handover_s": handover_s, "timings": h.get("timings", {}), "writer": writer}


def physical_path(src: PgCluster, accounts: int, mode: str, parent: str) -> tuple[float, dict]:
    data, port = os.path.join(parent, f"green-{mode}"), free_port()
    args = {**src.login_params(), "method": "physical", "source": {"login_db": "bench"}, "target": {"login_port": port}}
    args.update(target_data_dir=data, os_user=OS_USER if os.geteuid() == 0 else os.environ.get("USER", ""), target_major=17)
    args.update(upgrade_mode=mode, bin_dir=str(pg_bin(13)), target_bin_dir=str(pg_bin(17)))
    try:
        seconds, r = module("postgresql_clone", args)
        from harness.pg import ExternalPg

        check(ExternalPg(src.uri().replace(f":{src.port}/", f":{port}/")).db("bench"), accounts)
        return seconds, r
    finally:
        subprocess.run(
            [str(pg_bin(17) / "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop"], capture_output=True, check=False, **_run_as_owner()
        )
        shutil.rmtree(data, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("--scale", type=int, default=70, help="pgbench scale (70 gives about 1.1 GiB with the secondary indexes)")
    ap.add_argument("--no-save", action="store_true", help="print only; keep benchmarks/results as it is")
    opts = ap.parse_args()
    load_before = os.getloadavg()
    # Committed means flushed, as in production: the sync handover waits for the source's commits to reach the stream.
    settings = {**SETTINGS, "synchronous_commit": "on"}
    src = PgCluster(settings=settings, name="up-13", version=13).start()
    dst = PgCluster(settings=settings, name="up-17", version=17).start()
    parent = tempfile.mkdtemp(prefix="dualboot-bench-upgrade-")
    os.chmod(parent, 0o711)  # noqa: S103 - the cluster owner must traverse it
    work = Path(tempfile.mkdtemp(prefix="dualboot-bench-dump-"))
    os.chmod(work, 0o777)  # noqa: S103 - throwaway dump directory
    runs: list[dict] = []
    try:
        log(f"initialising pgbench scale {opts.scale} on PostgreSQL 13")
        facts = prepare(src, opts.scale)
        accounts = facts["accounts"]
        log(f"{facts['database_size_bytes'] / 2**30:.2f} GiB, {accounts:,} accounts")
        for directory in (False, True):
            label = (
                "pg_dump -Fd -j, pg_restore -j (17's tools, by hand)"
                if directory
                else "pg_dump -Fc piped into pg_restore (17's tools, by hand)"
            )
            s = by_hand(src, dst, directory, work)
            check(dst.db("by_hand_dir" if directory else "by_hand_pipe"), accounts)
            runs.append({"path": label, "seconds": s, "window_s": s, "kind": "by hand"})
            log(f"{label}: {s:.1f} s")
        stream = {"method": "stream", "source": {"login_db": "bench"}, "target": {**dst.login_params(), "login_db": "stream_bench"}}
        s, r = module("postgresql_clone", {**src.login_params(), **stream, "bin_dir": str(pg_bin(17))})
        check(dst.db("stream_bench"), accounts)
        runs.append(
            {"path": "dualboot clone stream into 17", "seconds": s, "module_s": r["duration_s"], "window_s": s, "timings": r["timings"]}
        )
        log(f"stream: {s:.1f} s")
        for mode in ("link", "copy"):
            s, r = physical_path(src, accounts, mode, parent)
            runs.append({"path": f"dualboot physical + pg_upgrade --{mode}", "seconds": s, "module_s": r["duration_s"], "window_s": s,
                         "timings": r["timings"]})  # fmt: skip
            log(f"physical + pg_upgrade --{mode}: {s:.1f} s ({r['timings']})")
        # Last: the handover leaves the 13 database frozen.
        sync = sync_path(src, dst, accounts)
        w = sync["writer"]
        runs.append({"path": "dualboot sync: initial copy until caught up; window = handover", "seconds": sync["copy_s"],
                     "window_s": sync["handover_s"], "timings": sync["timings"], "writer_acked": w.acked, "writer_failed": w.failed,
                     })  # fmt: skip
        log(f"sync: copy {sync['copy_s']:.1f} s, handover {sync['handover_s']:.3f} s")
    finally:
        src.stop()
        dst.stop()
        shutil.rmtree(parent, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    md = report(facts, runs)
    if opts.no_save:
        print(md)
    else:
        save("pg_major_upgrade", [{"facts": facts, **{k: v for k, v in run.items() if k != "writer"}} for run in runs], md, load_before)
    return 0


def report(facts: dict, runs: list[dict]) -> str:
    base = runs[0]["seconds"]
    lines = [
        f"pgbench scale {facts['scale']} on PostgreSQL {facts['source_version']}: {facts['database_size_bytes'] / 2**30:.2f} GiB, "
        f"{facts['accounts']:,} accounts; every copy checked on 17.",
        "",
        "| Path 13 → 17 | Seconds | In the module | vs the plain dump piped into restore | Frozen window of a cutover | Notes |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in runs:
        module_s = f"{r['module_s']:.1f}" if "module_s" in r else ""
        note = ", ".join(f"{k} {v}" for k, v in (r.get("timings") or {}).items() if k.endswith("_s"))
        if "writer_acked" in r:
            note = f"a writer: {r['writer_acked']} updates acknowledged, {r['writer_failed']} refused by the freeze; " + note
        lines.append(f"| {r['path']} | {r['seconds']:.1f} | {module_s} | {base / r['seconds']:.2f}× | {r['window_s']:.3f} | {note} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
