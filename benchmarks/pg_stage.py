"""Staging a pgbench-style PostgreSQL database (>= 1 GB, secondary indexes), in one run:

(a) dualboot.db: postgresql_clone auto across two clusters (and the other clone methods), and
    postgresql_backup + postgresql_restore;
(b) community.postgresql.postgresql_db state=dump then state=restore (what an Ansible user has today),
    in plain (.sql) and custom (.pgc) format;
(c) the physical limit: copying the stopped source cluster's data directory with ``cp -a``.

Every contender runs as an Ansible task through ansible-playbook (except the raw copy), on the same two
clusters started like the test harness does (tests/harness/pg.py), and every copy is checked (row count
of pgbench_accounts) before it is dropped. Prints a Markdown table and writes benchmarks/results/pg_stage.{json,md}.

    .venv/bin/python benchmarks/pg_stage.py [--scale 70]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
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


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def prepare(src: PgCluster, scale: int) -> dict:
    src.create_database("bench")
    env = {**os.environ, "PGPASSWORD": src.password}
    t = time.monotonic()
    subprocess.run(
        [
            str(pg_bin() / "pgbench"),
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
        check=True,
        env=env,
        capture_output=True,
    )
    db = src.db("bench")
    for stmt in SECONDARY_INDEXES:
        db.execute(stmt)
    db.execute("VACUUM ANALYZE")
    db.execute("CHECKPOINT")
    return {
        "scale": scale,
        "prepare_s": round(time.monotonic() - t, 1),
        "database_size_bytes": db.scalar("SELECT pg_database_size('bench')"),
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=int, default=70, help="pgbench scale (70 gives about 1.2 GB with the secondary indexes)")
    ap.add_argument("--skip-community", action="store_true", help="leave out the community.postgresql runs (quick local checks)")
    opts = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dualboot-bench-"))
    os.chmod(work, 0o711)  # noqa: S103 - the cluster owner must enter it for the physical copy
    src = PgCluster(settings=SETTINGS, name="bench-src")
    dst = PgCluster(settings=SETTINGS, name="bench-dst")
    rows: list[dict] = []
    try:
        src.start()
        dst.start()
        log(f"initialising pgbench scale {opts.scale} on {src.host}:{src.port}")
        facts = prepare(src, opts.scale)
        log(f"database: {facts['database_size_bytes'] / 2**30:.2f} GiB, {facts['accounts']} accounts, {facts['indexes']} indexes")
        src_login = {**src.login_params()}
        dst_login = {**dst.login_params()}

        def record(name: str, seconds: float, kind: str, note: str = "", detail: dict | None = None) -> None:
            rows.append({"name": name, "seconds": round(seconds, 1), "kind": kind, "note": note, "detail": detail or {}})
            log(f"{name}: {seconds:.1f} s {note}")

        def clone(method: str, target: dict, name: str, kind: str) -> None:
            s, r = task("postgresql_clone", {**src_login, "source": {"login_db": "bench"}, "target": target, "method": method})
            server = dst if target.get("login_port") == dst.port else src
            check_copy(server, target.get("login_db") or "bench", facts["accounts"])
            record(name, s, kind, f"method {r['method']} ({r['duration_s']:.1f} s in the module)", r.get("timings"))
            if target.get("login_db"):
                server.drop_database(target["login_db"])

        clone("auto", {**dst_login, "login_db": "stage_auto"}, "dualboot clone, auto across clusters", "ours")
        clone(
            "dump_restore", {**dst_login, "login_db": "stage_dump_restore"}, "dualboot clone, dump_restore across clusters", "ours-variant"
        )
        clone("stream", {**dst_login, "login_db": "stage_stream"}, "dualboot clone, stream across clusters", "ours-variant")
        clone("pipe", {**dst_login, "login_db": "stage_pipe"}, "dualboot clone, pipe across clusters", "ours-variant")

        dest = str(work / "backup")
        s1, r1 = task("postgresql_backup", {**src_login, "login_db": "bench", "dest": dest})
        s2, r2 = task("postgresql_restore", {**dst_login, "login_db": "stage_restore", "src": dest})
        check_copy(dst, "stage_restore", facts["accounts"])
        record(
            "dualboot backup + restore across clusters",
            s1 + s2,
            "ours",
            f"backup {s1:.1f} s ({r1['size_bytes'] / 2**20:.0f} MiB, {r1['jobs']} jobs) + restore {s2:.1f} s",
            {"backup": r1["timings"], "restore": r2["timings"]},
        )
        dst.drop_database("stage_restore")
        # Drift against the backup's marker. A write elsewhere on the server (another database) moves the
        # transaction id horizon, so the check must read every table: this times the exact scan.
        src.db("postgres").execute("CREATE TABLE horizon_bump (x int)")
        s, r = task("postgresql_drift", {**src_login, "login_db": "bench", "backup": dest})
        record(
            "drift check against the backup's marker",
            s,
            "drift",
            f"method {r['method']}: read every table in {r['duration_s']:.1f} s "
            f"({facts['database_size_bytes'] / 2**20 / max(r['duration_s'], 0.001):.0f} MiB/s of database), drift {r['drift']}",
        )
        shutil.rmtree(dest)

        if not opts.skip_community:
            for ext, label in ((".sql", "plain"), (".pgc", "custom")):
                target_file = str(work / f"community{ext}")
                cp = {"login_host": src.host, "login_port": src.port, "login_user": src.user, "login_password": src.password}
                s1, _r = task("community.postgresql.postgresql_db", {**cp, "name": "bench", "state": "dump", "target": target_file})
                cd = {"login_host": dst.host, "login_port": dst.port, "login_user": dst.user, "login_password": dst.password}
                name = f"stage_comm_{label}"
                s2, _r = task("community.postgresql.postgresql_db", {**cd, "name": name, "state": "present"})
                s3, _r = task("community.postgresql.postgresql_db", {**cd, "name": name, "state": "restore", "target": target_file})
                s2 += s3
                check_copy(dst, f"stage_comm_{label}", facts["accounts"])
                size = os.path.getsize(target_file)
                record(
                    f"community.postgresql dump + restore ({label}, {ext})",
                    s1 + s2,
                    "community",
                    f"dump {s1:.1f} s ({size / 2**20:.0f} MiB) + create and restore {s2:.1f} s",
                )
                dst.drop_database(f"stage_comm_{label}")
                os.unlink(target_file)

        clone("template", {"login_db": "stage_template"}, "dualboot clone, template on the same server", "ours-physical")
        port = free_port()
        data_dir = str(work / "physical")
        s, r = task(
            "postgresql_clone",
            {
                **src_login,
                "source": {"login_db": "bench"},
                "target": {"login_port": port},
                "method": "physical",
                "target_data_dir": data_dir,
                "os_user": OS_USER if os.geteuid() == 0 else os.environ.get("USER", ""),
            },
        )
        record(
            "dualboot clone, physical (whole cluster)",
            s,
            "ours-physical",
            f"{r['cluster_size_bytes'] / 2**20:.0f} MiB cluster",
            r["timings"],
        )
        subprocess.run(
            [str(pg_bin() / "pg_ctl"), "-D", data_dir, "-m", "fast", "-w", "stop"], check=True, capture_output=True, **_run_as_owner()
        )
        shutil.rmtree(data_dir)

        # The physical limit: the bytes of the stopped source cluster copied once (page cache warm, as for the others).
        subprocess.run(
            [str(pg_bin() / "pg_ctl"), "-D", str(src.data), "-m", "fast", "-w", "stop"], check=True, capture_output=True, **_run_as_owner()
        )
        copy_dir = work / "rawcopy"
        t = time.monotonic()
        subprocess.run(["cp", "-a", str(src.data), str(copy_dir)], check=True)
        raw = time.monotonic() - t
        size = int(subprocess.run(["du", "-sb", str(copy_dir)], check=True, capture_output=True, text=True).stdout.split()[0])
        record("raw file copy of the stopped source cluster (cp -a)", raw, "raw", f"{size / 2**20:.0f} MiB")
        shutil.rmtree(copy_dir)
    finally:
        src.stop()
        dst.stop()
        shutil.rmtree(work, ignore_errors=True)

    report(facts, rows)
    return 0


def report(facts: dict, rows: list[dict]) -> None:
    community = [r["seconds"] for r in rows if r["kind"] == "community"]
    best_community = min(community) if community else None
    raw = next(r["seconds"] for r in rows if r["kind"] == "raw")
    lines = [
        f"pgbench scale {facts['scale']}: {facts['database_size_bytes'] / 2**30:.2f} GiB database, {facts['accounts']:,} accounts, "
        f"{facts['indexes']} indexes (3 secondary); {os.cpu_count()} CPUs, PostgreSQL {pg_version()}, {datetime.date.today()}.",
        "",
        "| Staging run | Seconds | vs best community.postgresql | vs raw copy | Notes |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        vs_c = f"{best_community / r['seconds']:.1f}× faster" if best_community and r["kind"] not in ("community", "raw", "drift") else ""
        vs_raw = "" if r["kind"] == "drift" else (f"{r['seconds'] / raw:.1f}×" if r["kind"] != "raw" else "1.0×")
        lines.append(f"| {r['name']} | {r['seconds']:.1f} | {vs_c} | {vs_raw} | {r['note']} |")
    table = "\n".join(lines)
    print("\n" + table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "pg_stage.md").write_text(table + "\n")
    payload = {
        "facts": facts,
        "rows": rows,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "date": str(datetime.date.today()),
    }
    (RESULTS / "pg_stage.json").write_text(json.dumps(payload, indent=1) + "\n")


def pg_version() -> str:
    out = subprocess.run([str(pg_bin() / "postgres"), "--version"], capture_output=True, text=True, check=False).stdout
    return out.split()[2] if out else "?"


if __name__ == "__main__":
    sys.exit(main())
