"""Continuous sync: what an application writing through PgBouncer sees while dualboot.db stages with
``dualboot_stage_method: sync``, verifies, cuts over and rolls back (issue 8, "Continuous sync").

Two local PostgreSQL 15 clusters like the test harness (tests/harness/pg.py), ``synchronous_commit = on``:
the default entry ``blue`` holds ``users`` (1,000,000 rows, about 80 MiB with its index) and ``events``,
the table the application writes; the staged entry ``green`` lives on the second cluster. A real
PgBouncer (transaction pooling) serves the alias ``shop``; the application host ``app1`` (an inventory
name on this machine) has it as its switch target with ``pause: true``, so the handover runs on app1
and switches the alias itself.

The **application** is ``--writers`` processes, each with one connection through PgBouncer, sending
``INSERT INTO events (writer, seq, at)`` one per transaction (autocommit), as fast as the connection
allows up to ``--rate`` per second. A write counts as acknowledged only when the INSERT returned; a
failed attempt is logged and retried with the same ``seq`` (so a write committed without its
acknowledgement shows up as a duplicate: ``events`` has no unique constraint on it).

Phases, all through ansible-playbook with the collection's playbooks while the writers write: stage
(reference change R3, ``users.last_login``, staged with sync), verify, cutover, a few seconds on green,
rollback, a few seconds on blue. Reported: transactions per second, the longest gap between
acknowledged writes (all writers merged, and per phase), failed client operations, acknowledged writes
missing from blue at the end (lost) or there twice (duplicated), rows without acknowledgement, and the
handover timings the roles report.

    .venv/bin/python benchmarks/sync_cutover.py [--writers 4] [--rate 250] [--users 1000000] [--no-save]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "tests"))

SETTINGS = {"synchronous_commit": "on", "shared_buffers": "256MB", "max_wal_size": "4GB", "max_connections": "100"}
SCHEMA = """
CREATE TABLE users (user_id serial PRIMARY KEY, user_name varchar(255), creation_date timestamp);
INSERT INTO users (user_name, creation_date)
  SELECT 'user ' || g, timestamp '2026-01-01' + g * interval '1 second' FROM generate_series(1, %(users)s) g;
CREATE TABLE events (id bigserial PRIMARY KEY, writer int NOT NULL, seq int NOT NULL, at timestamptz NOT NULL DEFAULT now());
ANALYZE;
"""
RDS = (
    '"The switchover typically takes under a minute with no data loss and no need for application changes." '
    "(https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/blue-green-deployments-overview.html)"
)


def log(msg: str) -> None:
    print(f"[{datetime.datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------
# The writer process
# ---------------------------------------------------------------------------------------------


def writer(opts: argparse.Namespace) -> int:
    import psycopg

    password = os.environ["SYNC_BENCH_PASSWORD"]
    stop = Path(opts.stop_file)
    acks: list = []
    failures: list = []
    interval = 1.0 / opts.rate

    def connect():
        return psycopg.connect(
            host="127.0.0.1", port=opts.port, dbname="shop", user="app", password=password, autocommit=True, prepare_threshold=None
        )

    conn = None
    seq = 0
    next_at = time.monotonic()
    while not stop.exists():
        seq += 1
        while True:
            try:
                if conn is None or conn.closed:
                    conn = connect()
                conn.execute("INSERT INTO events (writer, seq) VALUES (%s, %s)", (opts.id, seq))
                acks.append((seq, time.time()))
                break
            except psycopg.Error as exc:
                failures.append((seq, time.time(), f"{type(exc).__name__}: {str(exc).strip()[:200]}"))
                if conn is not None and not conn.closed:
                    try:
                        conn.close()
                    except psycopg.Error:
                        pass
                conn = None
                time.sleep(0.05)
                if stop.exists():
                    break
        next_at += interval
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            next_at = time.monotonic()
    Path(opts.out).write_text(json.dumps({"acks": acks, "failures": failures}))
    return 0


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


def run_play(name: str, variables: dict, inventory: Path, work: Path) -> dict:
    from harness.ansible import run_playbook

    started = time.time()
    proc = run_playbook(f"dualboot.db.{name}", variables, inventory=str(inventory))
    ended = time.time()
    out = proc.stdout + proc.stderr
    (work / f"{name}.log").write_text(out)
    result = {"start": started, "end": ended, "seconds": round(ended - started, 2), "rc": proc.returncode, "load": os.getloadavg()[0]}
    m = re.search(r"writes were blocked for ([\d.]+) s \(PgBouncer held clients ([\d.-]+) s\);\s+handover ([\d.]+) s(?: \(([^)]*)\))?", out)
    if m:
        result.update(writes_blocked_s=float(m.group(1)), pgbouncer_held_s=float(m.group(2)), handover_s=float(m.group(3)))
        result["handover_steps"] = m.group(4) or ""
    if proc.returncode != 0:
        print(out[-6000:])
        raise SystemExit(f"{name} failed (rc {proc.returncode}); log: {work / (name + '.log')}")
    return result


def gaps(times: list[float], start: float | None = None, end: float | None = None) -> float:
    """Longest interval without an acknowledged write that overlaps [start, end]."""
    best = 0.0
    for a, b in zip(times, times[1:]):
        if start is not None and (b < start or a > end):
            continue
        best = max(best, b - a)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--writers", type=int, default=4, help="writer processes (one connection each)")
    ap.add_argument("--rate", type=float, default=250.0, help="transactions per second of each writer, at most")
    ap.add_argument("--users", type=int, default=1_000_000, help="rows of users in the default entry")
    ap.add_argument("--settle", type=float, default=5.0, help="seconds of writes before the stage and after cutover and rollback")
    ap.add_argument("--no-save", action="store_true", help="print only")
    ap.add_argument("--writer", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--id", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--stop-file", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    opts = ap.parse_args()
    if opts.writer:
        return writer(opts)

    from harness.paths import ensure_collection_path

    ensure_collection_path()
    import psycopg
    from harness.ansible import local_deployment
    from harness.pg import PgCluster
    from harness.pgbouncer import PgBouncer, install_role

    work = Path(tempfile.mkdtemp(prefix="dualboot-sync-bench-"))
    os.chmod(work, 0o700)
    a = PgCluster(settings=SETTINGS, name="sync-a").start()
    b = PgCluster(settings=SETTINGS, name="sync-b").start()
    bouncer = None
    procs = []
    try:
        log(f"seeding blue: {opts.users} users")
        blue = a.create_database("shop_blue")
        with psycopg.connect(blue.uri, autocommit=True) as c:
            c.execute(SCHEMA % {"users": int(opts.users)})
            size = c.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        password = "app-" + os.urandom(6).hex()
        bouncer = PgBouncer(
            {"shop": f"host={a.host} port={a.port} dbname=shop_blue"},
            {"app": password},
            settings={"default_pool_size": "20", "max_client_conn": "200"},
        )
        for server in (a, b):
            install_role(server, "app", bouncer.secrets["app"])
        blue.execute("GRANT ALL ON ALL TABLES IN SCHEMA public TO app; GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO app")
        bouncer.start()

        targets = {
            "app1": [
                {"format": "pgbouncer", "path": str(bouncer.ini), "key": "shop", "pause": True, "pgbouncer_admin": bouncer.admin_params()}
            ]
        }
        entries = {"blue": {**a.login_params(), "login_db": "shop_blue"}, "green": {**b.login_params(), "login_db": "shop_green"}}
        inventory, variables = local_deployment(work, targets, entries, "r3")

        stop = work / "stop"
        env = {**os.environ, "SYNC_BENCH_PASSWORD": password}
        for i in range(opts.writers):
            argv = [sys.executable, __file__, "--writer", "--id", str(i + 1), "--port", str(bouncer.port), "--rate", str(opts.rate)]
            argv += ["--stop-file", str(stop), "--out", str(work / f"writer{i + 1}.json")]
            procs.append(subprocess.Popen(argv, env=env))
        log(f"{opts.writers} writers started through PgBouncer; settling {opts.settle} s")
        t0 = time.time()
        time.sleep(opts.settle)
        phases = {}
        for name in ("stage", "verify", "cutover"):
            log(f"{name} ...")
            phases[name] = run_play(name, variables, inventory, work)
            log(f"{name}: {phases[name]['seconds']} s")
        time.sleep(opts.settle)
        log("rollback ...")
        phases["rollback"] = run_play("rollback", variables, inventory, work)
        log(f"rollback: {phases['rollback']['seconds']} s")
        time.sleep(opts.settle)
        t1 = time.time()
        stop.write_text("stop")
        for p in procs:
            p.wait(60)

        acks, failures = [], []
        per_writer = {}
        for i in range(opts.writers):
            data = json.loads((work / f"writer{i + 1}.json").read_text())
            acks += [(i + 1, seq, t) for seq, t in data["acks"]]
            failures += [(i + 1, seq, t, e) for seq, t, e in data["failures"]]
            wt = sorted(t for _s, t in data["acks"])
            per_writer[i + 1] = {"acked": len(wt), "longest_gap_s": round(gaps(wt), 3)}
        times = sorted(t for _w, _s, t in acks)
        rows = blue.query("SELECT writer, seq, count(*) FROM events GROUP BY writer, seq")
        in_db = {(w, s): n for w, s, n in rows}
        acked_keys = {(w, s) for w, s, _t in acks}
        lost = sorted(k for k in acked_keys if k not in in_db)
        duplicated = sorted(k for k, n in in_db.items() if n > 1)
        unacked = sorted(k for k in in_db if k not in acked_keys)
        default_db = blue.scalar("SELECT current_database()")
        with bouncer.connect("shop", "app") as c:
            routed = c.execute("SELECT current_database()").fetchone()[0]
        slots = {s.name: [r[0] for r in s.db("postgres").query("SELECT slot_name FROM pg_replication_slots")] for s in (a, b)}

        def window(ph: dict) -> dict:
            inside = [t for t in times if ph["start"] <= t <= ph["end"]]
            return {
                "seconds": ph["seconds"],
                "load_at_start": round(ph["load"], 2),
                "acked": len(inside),
                "tx_per_s": round(len(inside) / max(ph["end"] - ph["start"], 1e-9), 1),
                "longest_gap_s": round(gaps(times, ph["start"], ph["end"]), 3),
                **{k: ph[k] for k in ("writes_blocked_s", "pgbouncer_held_s", "handover_s", "handover_steps") if k in ph},
            }

        result = {
            "benchmark": "sync_cutover",
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
            "command": "python benchmarks/sync_cutover.py " + " ".join(sys.argv[1:]),
            "database_bytes": size,
            "writers": opts.writers,
            "rate_cap_per_writer": opts.rate,
            "acked": len(acks),
            "tx_per_s": round(len(acks) / (t1 - t0), 1),
            "longest_gap_s": round(gaps(times), 3),
            "failed_operations": len(failures),
            "failures": [f"writer {w} seq {s}: {e}" for w, s, _t, e in failures[:20]],
            "lost": len(lost),
            "duplicated": len(duplicated),
            "rows_without_ack": len(unacked),
            "phases": {name: window(ph) for name, ph in phases.items()},
            "per_writer": per_writer,
            "after": {"pgbouncer_routes_to": routed, "checked_in": default_db, "replication_slots": slots},
        }
        print(json.dumps(result, indent=2))
        md = markdown(result)
        print(md)
        if not opts.no_save:
            RESULTS.mkdir(exist_ok=True)
            (RESULTS / "sync_cutover.json").write_text(json.dumps(result, indent=2) + "\n")
            (RESULTS / "sync_cutover.md").write_text(md)
        return 0
    finally:
        (work / "stop").write_text("stop")
        for p in procs:
            if p.poll() is None:
                p.kill()
        if bouncer:
            bouncer.stop()
        a.stop()
        b.stop()


def markdown(r: dict) -> str:
    lines = [
        f"# Continuous sync: cutover and rollback under writes ({r['date']})",
        "",
        f"`{r['command']}` — default entry {r['database_bytes'] / 2**20:.0f} MiB, {r['writers']} writers through PgBouncer "
        f"(at most {r['rate_cap_per_writer']:g} tx/s each), {r['acked']:,} acknowledged writes, {r['tx_per_s']} tx/s on average.",
        "",
        "| phase | seconds | load at start | acknowledged writes | tx/s | longest gap between acknowledged writes "
        "| handover | PgBouncer held clients | writes blocked |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]

    def sec(p: dict, key: str) -> str:
        return f"{p[key]} s" if key in p else ""

    for name, p in r["phases"].items():
        lines.append(
            f"| {name} | {p['seconds']} | {p['load_at_start']} | {p['acked']:,} | {p['tx_per_s']} | {p['longest_gap_s']} s | "
            f"{sec(p, 'handover_s')} | {sec(p, 'pgbouncer_held_s')} | {sec(p, 'writes_blocked_s')} |"
        )
    lines += [""] + [
        f"- {name}: the handover's steps (s): {p['handover_steps']}" for name, p in r["phases"].items() if p.get("handover_steps")
    ]
    lines += [
        "",
        f"- longest gap over the whole run: {r['longest_gap_s']} s; per writer: "
        + ", ".join(f"{w}: {v['longest_gap_s']} s" for w, v in r["per_writer"].items()),
        f"- failed client operations: **{r['failed_operations']}**" + (f" ({'; '.join(r['failures'][:3])})" if r["failures"] else ""),
        f"- acknowledged writes lost: **{r['lost']}**, duplicated: **{r['duplicated']}**, "
        f"rows without acknowledgement: {r['rows_without_ack']}",
        f"- afterwards PgBouncer routes to {r['after']['pgbouncer_routes_to']}; replication slots left: {r['after']['replication_slots']}",
        f"- AWS RDS Blue/Green (documented, not measured here): {RDS}",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
