"""Staging a pgbench-style PostgreSQL database (>= 1 GB, secondary indexes), in one run:

(a) dualboot.db: postgresql_clone across two clusters (auto, and each logical method), postgresql_backup +
    postgresql_restore, postgresql_clone on the same server (template) and of the whole cluster (physical);
(b) community.postgresql.postgresql_db state=dump, state=present, state=restore (what an Ansible user has
    today), in plain (.sql) and custom (.pgc) format;
(c) the floor of any logical copy: the target alone loading the rows from memory (binary COPY, two sessions)
    and building the same indexes, no source, no pipe, no Ansible;
(d) the physical limit: ``cp -a`` of the stopped source's files, then ``sync`` (the bytes read and written
    once, durably), for the database's directory and for the whole cluster.

Every contender runs as an Ansible task through ansible-playbook (except the raw copies), on the same two
clusters started like the test harness does (tests/harness/pg.py), and every copy is checked (row count of
pgbench_accounts) before it is dropped. The headline contenders run ``--rounds`` times, interleaved, and
the median counts; an ``ansible.builtin.ping`` task measures what running any task costs on this machine.
Prints a Markdown table and writes benchmarks/results/pg_stage.{json,md}.

    .venv/bin/python benchmarks/pg_stage.py [--scale 70] [--rounds 3]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from harness.ansible import run_module  # noqa: E402
from harness.net import free_port  # noqa: E402
from harness.paths import ensure_collection_path  # noqa: E402
from harness.pg import OS_USER, PgCluster, _run_as_owner, pg_bin  # noqa: E402

ensure_collection_path()

# The same settings for both clusters and every contender. fsync/full_page_writes are off in the harness's
# clusters (throwaway data); autovacuum is off so no background work lands in one contender's time.
SETTINGS = {
    "shared_buffers": "512MB",
    "maintenance_work_mem": "256MB",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "30min",
    "autovacuum": "off",
}
SECONDARY_INDEXES = [
    "CREATE INDEX pgbench_accounts_bid ON pgbench_accounts (bid)",
    "CREATE INDEX pgbench_accounts_abalance ON pgbench_accounts (abalance)",
    "CREATE INDEX pgbench_tellers_bid ON pgbench_tellers (bid)",
]
RESULTS = ROOT / "benchmarks" / "results"
FLOOR = "the target's own work alone: rows loaded from memory (binary COPY), then the same indexes (no source, no Ansible)"
PING = "an ansible.builtin.ping task (the cost of running any task here)"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def prepare(src: PgCluster, scale: int) -> dict:
    src.create_database("bench")
    env = {**os.environ, "PGPASSWORD": src.password}
    t = time.monotonic()
    proc = subprocess.run(
        [
            str(pg_bin(src.version) / "pgbench"),
            "-i",
            "-s",
            str(scale),
            "-I",
            "dtGvp",
            "-q",
            "-h",
            src.host,
            "-p",
            str(src.port),
            "-U",
            src.user,
            "bench",
        ],
        check=False,
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"pgbench -i failed: {proc.stderr.strip()[-2000:]}")
    db = src.db("bench")
    for stmt in SECONDARY_INDEXES:
        db.execute(stmt)
    db.execute("VACUUM ANALYZE")
    db.execute("CHECKPOINT")
    return {
        "scale": scale,
        "prepare_s": round(time.monotonic() - t, 1),
        "database_size_bytes": db.scalar("SELECT pg_database_size('bench')"),
        "database_oid": db.scalar("SELECT oid FROM pg_database WHERE datname = 'bench'"),
        "accounts": db.scalar("SELECT count(*) FROM pgbench_accounts"),
        "indexes": db.scalar("SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'"),
    }


def task(module: str, args: dict) -> tuple[float, dict]:
    t = time.monotonic()
    r = run_module(module, args, timeout=3600)
    seconds = time.monotonic() - t
    if r.failed:
        raise RuntimeError(f"{module} failed: {r.msg}\n{r.output[-3000:]}")
    return seconds, r.result


def check_copy(server, name: str, expected: int) -> None:
    got = server.db(name).scalar("SELECT count(*) FROM pgbench_accounts")
    if got != expected:
        raise RuntimeError(f"copy {name} has {got} accounts, expected {expected}")


def raw_copy(source: Path, dest: Path) -> tuple[float, int]:
    """cp -a, then sync the destination's filesystem: the bytes read and written once, durably."""
    t = time.monotonic()
    subprocess.run(["cp", "-a", str(source), str(dest)], check=True)
    subprocess.run(["sync", "-f", str(dest)], check=True)
    seconds = time.monotonic() - t
    size = int(subprocess.run(["du", "-sb", str(dest)], check=True, capture_output=True, text=True).stdout.split()[0])
    shutil.rmtree(dest)
    return seconds, size


def pg_tool(name: str, server: PgCluster, *args: str, **kw) -> None:
    """Run a PostgreSQL client tool against ``server`` (password in the environment, not argv); output discarded."""
    env = {**os.environ, "PGPASSWORD": server.password}
    base = ["-h", server.host, "-p", str(server.port), "-U", server.user]
    kw.setdefault("stdout", subprocess.DEVNULL)
    subprocess.run([str(pg_bin() / name), *base, *args], check=True, env=env, stderr=subprocess.PIPE, **kw)


class LoadFloor:
    """The least work any logical copy does on the target here: the rows, already in memory in binary COPY
    form, loaded by two sessions at once, then the same indexes and constraints built by
    ``pg_restore --section=post-data -j 2``. No source reads them, no pipe carries them, no Ansible runs."""

    def __init__(self, src: PgCluster, dst: PgCluster) -> None:
        self.src, self.dst = src, dst
        shm = "/dev/shm"  # noqa: S108 - mkdtemp makes a 0700 directory; tmpfs keeps the rows in memory
        self.dir = Path(tempfile.mkdtemp(prefix="dualboot-floor-", dir=shm if os.path.isdir(shm) else None))
        self.parts: list[tuple[str, Path]] = []

    def _copy(self, server: PgCluster, db: str, statement: str, **kw) -> None:
        pg_tool("psql", server, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", statement, **kw)

    def prepare(self) -> None:
        pg_tool("pg_dump", self.src, "-Fc", "--schema-only", "-f", str(self.dir / "schema"), "bench")
        db = self.src.db("bench")
        pages = db.scalar("SELECT pg_relation_size('pgbench_accounts') / current_setting('block_size')::int")
        halves = [f"ctid < '({pages // 2},0)'", f"ctid >= '({pages // 2},0)'"]
        selects = [("pgbench_accounts", f"SELECT * FROM pgbench_accounts WHERE {h}") for h in halves]
        selects += [(t, f"SELECT * FROM {t}") for t in ("pgbench_branches", "pgbench_tellers", "pgbench_history")]
        for i, (table, select) in enumerate(selects):
            path = self.dir / f"part{i}"
            with path.open("wb") as out:
                self._copy(self.src, "bench", f"COPY ({select}) TO STDOUT (FORMAT binary)", stdout=out)
            self.parts.append((table, path))

    def run(self, name: str) -> float:
        self.dst.create_database(name)
        pg_tool("pg_restore", self.dst, "--section=pre-data", "--no-owner", "-d", name, str(self.dir / "schema"))
        t = time.monotonic()

        def load(part: tuple[str, Path]) -> None:
            with part[1].open("rb") as rows:
                self._copy(self.dst, name, f"COPY {part[0]} FROM STDIN (FORMAT binary)", stdin=rows)

        with ThreadPoolExecutor(2) as pool:
            list(pool.map(load, self.parts))
        pg_tool("pg_restore", self.dst, "--section=post-data", "--no-owner", "-j", "2", "-d", name, str(self.dir / "schema"))
        return time.monotonic() - t

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=int, default=70, help="pgbench scale (70 gives about 1.1 GiB with the secondary indexes)")
    ap.add_argument("--rounds", type=int, default=3, help="runs of the headline contenders (median counts)")
    ap.add_argument("--skip-community", action="store_true", help="leave out the community.postgresql runs (quick local checks)")
    opts = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dualboot-bench-"))
    os.chmod(work, 0o711)  # noqa: S103 - the cluster owner must enter it for the physical copy
    src = PgCluster(settings=SETTINGS, name="bench-src")
    dst = PgCluster(settings=SETTINGS, name="bench-dst")
    runs: dict[str, dict] = {}
    floor: LoadFloor | None = None
    started = time.monotonic()

    def record(name: str, seconds: float, kind: str, note: str = "", module_s: float | None = None, detail: dict | None = None) -> None:
        entry = runs.setdefault(name, {"name": name, "kind": kind, "seconds": [], "module_s": [], "note": note, "detail": []})
        entry["seconds"].append(round(seconds, 2))
        if module_s is not None:
            entry["module_s"].append(round(module_s, 2))
        entry["note"] = note or entry["note"]
        entry["detail"].append(detail or {})
        log(
            f"{name}: {seconds:.1f} s"
            + (f" ({module_s:.1f} s in the module)" if module_s is not None else "")
            + (f" - {note}" if note else "")
        )

    try:
        src.start()
        dst.start()
        log(f"initialising pgbench scale {opts.scale} on {src.host}:{src.port}")
        facts = prepare(src, opts.scale)
        log(f"database: {facts['database_size_bytes'] / 2**30:.2f} GiB, {facts['accounts']} accounts, {facts['indexes']} indexes")
        floor = LoadFloor(src, dst)
        floor.prepare()
        src_login = {**src.login_params()}
        dst_login = {**dst.login_params()}

        def clone(method: str, target: dict, name: str, kind: str) -> None:
            s, r = task("postgresql_clone", {**src_login, "source": {"login_db": "bench"}, "target": target, "method": method})
            server = dst if target.get("login_port") == dst.port else src
            check_copy(server, target.get("login_db") or "bench", facts["accounts"])
            record(name, s, kind, f"method {r['method']}", r["duration_s"], r.get("timings"))
            server.drop_database(target.get("login_db"))

        def community(ext: str, label: str) -> None:
            target_file = str(work / f"community{ext}")
            cp = {"login_host": src.host, "login_port": src.port, "login_user": src.user, "login_password": src.password}
            cd = {"login_host": dst.host, "login_port": dst.port, "login_user": dst.user, "login_password": dst.password}
            name = f"stage_comm_{label}"
            s1, _r = task("community.postgresql.postgresql_db", {**cp, "name": "bench", "state": "dump", "target": target_file})
            s2, _r = task("community.postgresql.postgresql_db", {**cd, "name": name, "state": "present"})
            s3, _r = task("community.postgresql.postgresql_db", {**cd, "name": name, "state": "restore", "target": target_file})
            check_copy(dst, name, facts["accounts"])
            size = os.path.getsize(target_file)
            record(
                f"community.postgresql dump + restore ({label}, {ext})",
                s1 + s2 + s3,
                "community",
                f"3 tasks: dump ({size / 2**20:.0f} MiB file), present, restore",
                detail={"dump_s": round(s1, 1), "present_s": round(s2, 1), "restore_s": round(s3, 1)},
            )
            dst.drop_database(name)
            os.unlink(target_file)

        def by_hand() -> None:
            """pg_dump -Fd -j | pg_restore -j with the best flags, typed by a DBA, no Ansible: the tools' own floor."""
            jobs = str(os.cpu_count() or 1)
            out, name = str(work / "by_hand"), "stage_by_hand"
            dst.create_database(name)
            t = time.monotonic()
            pg_tool("pg_dump", src, "-Fd", "-j", jobs, "-Z", "0", "-f", out, "bench")
            pg_tool("pg_restore", dst, "-j", jobs, "--no-owner", "--exit-on-error", "-d", name, out)
            seconds = time.monotonic() - t
            check_copy(dst, name, facts["accounts"])
            record("pg_dump -Fd -j, then pg_restore -j, by hand (no Ansible)", seconds, "by-hand", f"{jobs} jobs, uncompressed directory")
            dst.drop_database(name)
            shutil.rmtree(out)

        for rnd in range(opts.rounds):
            log(f"round {rnd + 1} of {opts.rounds}")
            by_hand()
            record(FLOOR, floor.run("stage_floor"), "floor", "2 sessions, then pg_restore --section=post-data -j 2")
            check_copy(dst, "stage_floor", facts["accounts"])
            dst.drop_database("stage_floor")
            s, _r = task("ansible.builtin.ping", {})
            record(PING, s, "overhead")
            clone("auto", {**dst_login, "login_db": "stage_auto"}, "dualboot clone, auto across clusters", "ours")
            if not opts.skip_community:
                community(".sql", "plain")
                community(".pgc", "custom")

        clone(
            "dump_restore", {**dst_login, "login_db": "stage_dump_restore"}, "dualboot clone, dump_restore across clusters", "ours-variant"
        )
        clone("pipe", {**dst_login, "login_db": "stage_pipe"}, "dualboot clone, pipe across clusters", "ours-variant")

        dest = str(work / "backup")
        s1, r1 = task("postgresql_backup", {**src_login, "login_db": "bench", "dest": dest})
        s2, r2 = task("postgresql_restore", {**dst_login, "login_db": "stage_restore", "src": dest})
        check_copy(dst, "stage_restore", facts["accounts"])
        record(
            "dualboot backup + restore across clusters",
            s1 + s2,
            "ours",
            f"2 tasks: backup ({r1['size_bytes'] / 2**20:.0f} MiB, {r1['jobs']} jobs), restore",
            r1["duration_s"] + r2["duration_s"],
            {"backup": r1["timings"], "restore": r2["timings"]},
        )
        dst.drop_database("stage_restore")
        # Drift against the backup's marker. A write elsewhere on the server (another database) moves the
        # transaction id horizon, so the check must read every table: this times the exact scan.
        src.db("postgres").execute("CREATE TABLE horizon_bump (x int)")
        s, r = task("postgresql_drift", {**src_login, "login_db": "bench", "backup": dest})
        mib_s = facts["database_size_bytes"] / 2**20 / max(r["duration_s"], 0.001)
        record(
            "drift check against the backup's marker", s, "drift", f"method {r['method']}, {mib_s:.0f} MiB/s of database", r["duration_s"]
        )
        shutil.rmtree(dest)

        clone("template", {"login_db": "stage_template"}, "dualboot clone, template on the same server", "ours-physical")
        port = free_port()
        data_dir = str(work / "physical")
        s, r = task(
            "postgresql_clone",
            {
                **src_login,
                "source": {"login_db": "bench"},
                "target": {"login_port": port},
                "method": "auto",
                "target_data_dir": data_dir,
                "os_user": OS_USER if os.geteuid() == 0 else os.environ.get("USER", ""),
            },
        )
        record(
            "dualboot clone, auto with target_data_dir (physical, whole cluster)",
            s,
            "ours-physical",
            f"method {r['method']}, {r['cluster_size_bytes'] / 2**20:.0f} MiB cluster",
            r["duration_s"],
            r["timings"],
        )
        subprocess.run(
            [str(pg_bin() / "pg_ctl"), "-D", data_dir, "-m", "fast", "-w", "stop"], check=True, capture_output=True, **_run_as_owner()
        )
        shutil.rmtree(data_dir)

        # The physical limit, page cache as warm as for the others: the stopped source's files copied once.
        subprocess.run(
            [str(pg_bin() / "pg_ctl"), "-D", str(src.data), "-m", "fast", "-w", "stop"], check=True, capture_output=True, **_run_as_owner()
        )
        for _rnd in range(opts.rounds):
            s, size = raw_copy(src.data / "base" / str(facts["database_oid"]), work / "rawdb")
            record("raw copy of the database's files (cp -a, sync)", s, "raw", f"{size / 2**20:.0f} MiB")
            s, size = raw_copy(src.data, work / "rawcluster")
            record("raw copy of the whole cluster (cp -a, sync)", s, "raw-cluster", f"{size / 2**20:.0f} MiB")
    finally:
        if floor is not None:
            floor.close()
        src.stop()
        dst.stop()
        shutil.rmtree(work, ignore_errors=True)

    facts["benchmark_s"] = round(time.monotonic() - started, 1)
    report(facts, list(runs.values()), opts.rounds)
    return 0


def report(facts: dict, runs: list[dict], rounds: int) -> None:
    for r in runs:
        r["median_s"] = round(statistics.median(r["seconds"]), 1)
        r["median_module_s"] = round(statistics.median(r["module_s"]), 1) if r["module_s"] else None
    by_kind = {r["kind"]: r for r in runs}
    community = [r["median_s"] for r in runs if r["kind"] == "community"]
    best_community = min(community) if community else None
    raw_db = by_kind["raw"]["median_s"]
    by_hand = by_kind["by-hand"]["median_s"] if "by-hand" in by_kind else None
    raw_cluster = by_kind["raw-cluster"]["median_s"]
    lines = [
        f"pgbench scale {facts['scale']}: {facts['database_size_bytes'] / 2**30:.2f} GiB database, {facts['accounts']:,} accounts, "
        f"{facts['indexes']} indexes (3 secondary). {os.cpu_count()} CPUs shared with other work, PostgreSQL {pg_version()}, "
        f"{datetime.date.today()}; whole benchmark {facts['benchmark_s'] / 60:.1f} min. Seconds are wall time of the Ansible task(s); "
        f"rows with several runs show the median of {rounds} interleaved runs and their range.",
        "",
        "| Staging run | Seconds | In the module | vs best community.postgresql | vs pg_dump/pg_restore by hand | vs raw copy | Notes |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in runs:
        secs = f"{r['median_s']:.1f}" + (f" ({min(r['seconds']):.1f}–{max(r['seconds']):.1f})" if len(r["seconds"]) > 1 else "")
        module = f"{r['median_module_s']:.1f}" if r["median_module_s"] is not None else ""
        vs_c = ""
        if best_community and r["kind"].startswith("ours"):
            vs_c = f"{best_community / r['median_s']:.1f}× faster"
        if best_community and r["kind"] == "floor" and "overhead" in by_kind:
            # What any logical copy run as one Ansible task could reach at best on this machine.
            vs_c = f"at most {best_community / (r['median_s'] + by_kind['overhead']['median_s']):.1f}× with one task's cost"
        vs_hand = ""
        if by_hand and r["kind"] in ("ours", "ours-variant"):
            in_module = f" ({r['median_module_s'] / by_hand:.2f}× in the module)" if r["median_module_s"] else ""
            vs_hand = f"{r['median_s'] / by_hand:.2f}×{in_module}"
        vs_raw = ""
        if r["kind"].startswith("ours") or r["kind"] in ("community", "by-hand"):
            raw = raw_cluster if "whole cluster" in r["name"] else raw_db
            vs_raw = f"{r['median_s'] / raw:.1f}×" + (f" ({r['median_module_s'] / raw:.1f}× in the module)" if r["median_module_s"] else "")
        lines.append(f"| {r['name']} | {secs} | {module} | {vs_c} | {vs_hand} | {vs_raw} | {r['note']} |")
    table = "\n".join(lines)
    print("\n" + table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "pg_stage.md").write_text(table + "\n")
    payload = {
        "facts": facts,
        "runs": runs,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "date": str(datetime.date.today()),
    }
    (RESULTS / "pg_stage.json").write_text(json.dumps(payload, indent=1) + "\n")


def pg_version() -> str:
    out = subprocess.run([str(pg_bin() / "postgres"), "--version"], capture_output=True, text=True, check=False).stdout
    return out.split()[2] if out else "?"


if __name__ == "__main__":
    sys.exit(main())
