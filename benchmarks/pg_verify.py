"""PostgreSQL verification benchmark: schema diff vs migra, data comparison vs COPY.

1. Schema diff: a database with N tables (default 10,000; each with a primary key, a secondary
   index and a check constraint, every 10th with a foreign key) and N/10 views, copied with
   pg_dump | pg_restore (as a staged entry is), then 50 changes applied to the copy. Wall time of
   dualboot.db's postgresql_schema_diff library (both sides read, diffed, SQL suggested) and of
   migra (Migration.add_all_changes + sql) on the same pair; the ratio.
2. Data comparison: a database of about 1 GB (four tables), copied by template; wall time and
   MB/s of dualboot.db's postgresql_compare library, and of a plain server-side
   ``COPY <table> TO '/dev/null'`` of the same tables on both databases; the ratio.

Both run on a throwaway cluster started like the test harness (tests/harness/pg.py). Run:

    .venv/bin/python benchmarks/pg_verify.py            # full size, about 15 minutes
    .venv/bin/python benchmarks/pg_verify.py --quick    # tiny sizes, checks the script
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from harness.paths import ensure_collection_path  # noqa: E402

ensure_collection_path()

import psycopg  # noqa: E402
from harness.pg import PgCluster, pg_bin  # noqa: E402

from ansible_collections.dualboot.db.plugins.module_utils import pg_compare, pg_diff  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
RUNS = 5  # schema diff runs of ours; best and median are reported, the ratio uses the median
SETTINGS = {
    "shared_buffers": "'2GB'",
    "work_mem": "'64MB'",
    "maintenance_work_mem": "'512MB'",
    "max_locks_per_transaction": "1024",
    "max_wal_size": "'8GB'",
    "checkpoint_timeout": "'30min'",
}


def log(msg: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)


def build_schema(db, tables: int) -> None:
    batch = 500
    for start in range(0, tables, batch):
        stmts = []
        for i in range(start, min(start + batch, tables)):
            stmts.append(
                f"CREATE TABLE t{i:05d} (id bigserial PRIMARY KEY, a integer NOT NULL DEFAULT 0, b text, c timestamptz DEFAULT now(),"
                f" ref bigint, CONSTRAINT t{i:05d}_a_check CHECK (a >= 0));"
                f"CREATE INDEX t{i:05d}_a_idx ON t{i:05d} (a);"
            )
            if i % 10 == 9:
                stmts.append(f"ALTER TABLE t{i:05d} ADD CONSTRAINT t{i:05d}_ref_fkey FOREIGN KEY (ref) REFERENCES t{i - 1:05d} (id);")
            if i % 10 == 0:
                stmts.append(f"CREATE VIEW v{i:05d} AS SELECT id, a, b FROM t{i:05d} WHERE a > 0;")
        db.execute("".join(stmts))


def fifty_changes(db, tables: int) -> list[str]:
    step = max(tables // 60, 10)
    # tables numbered 1..8 modulo 10: no view reads them (a view would block ALTER COLUMN TYPE)
    pick = [f"t{(k * step) // 10 * 10 + 1 + k % 8:05d}" for k in range(50)]
    changes = []
    for t in pick[0:10]:
        changes.append(f"ALTER TABLE {t} ADD COLUMN added_col text")
    for t in pick[10:15]:
        changes.append(f"ALTER TABLE {t} DROP COLUMN c")
    for t in pick[15:20]:
        changes.append(f"ALTER TABLE {t} ALTER COLUMN a TYPE bigint")
    for t in pick[20:25]:
        changes.append(f"CREATE INDEX {t}_b_idx ON {t} (b)")
    for t in pick[25:30]:
        changes.append(f"DROP INDEX {t}_a_idx")
    for k in range(5):
        changes.append(f"CREATE TABLE new_table_{k} (id int PRIMARY KEY, payload jsonb)")
    for t in pick[30:35]:
        changes.append(f"ALTER TABLE {t} ALTER COLUMN b SET NOT NULL")
    for t in pick[35:40]:
        changes.append(f"ALTER TABLE {t} ADD CONSTRAINT {t}_b_len CHECK (length(b) < 100)")
    for t in pick[40:45]:
        changes.append(f"ALTER TABLE {t} ALTER COLUMN a SET DEFAULT 1")
    assert len(changes) == 50
    for c in changes:
        db.execute(c)
    return changes


def run_migra(a_uri: str, b_uri: str) -> str:
    from migra import Migration
    from sqlalchemy.pool import NullPool
    from sqlbag import S

    with S(a_uri, poolclass=NullPool) as s0, S(b_uri, poolclass=NullPool) as s1:
        m = Migration(s0, s1)
        m.set_safety(False)
        m.add_all_changes()
        return m.sql


def bench_schema(cluster: PgCluster, tables: int) -> dict:
    log(f"schema: creating {tables} tables, {tables // 10} views")
    a = cluster.create_database("schema_a")
    t0 = time.monotonic()
    build_schema(a, tables)
    log(f"schema: built in {time.monotonic() - t0:.0f} s; copying with pg_dump | pg_restore (new object ids, like a staged entry)")
    b = cluster.create_database("schema_b")
    dump = subprocess.run([str(pg_bin() / "pg_dump"), "-Fc", "-s"], env={**os.environ, **a.conn.env()}, capture_output=True, check=True)
    subprocess.run(
        [str(pg_bin() / "pg_restore"), "-d", "schema_b", "--exit-on-error"],
        input=dump.stdout,
        env={**os.environ, **b.conn.env()},
        capture_output=True,
        check=True,
    )
    fifty_changes(b, tables)
    # Steady state, as on a database that has lived a while: autovacuum has processed the catalogs.
    # (Right after creating 10,000 tables it would do so during the timed runs, for either tool.)
    log("schema: VACUUM ANALYZE of both databases' catalogs")
    for db in (a, b):
        db.execute("VACUUM ANALYZE")
    counts = a.query(
        "SELECT count(*) FILTER (WHERE relkind = 'r'), count(*) FILTER (WHERE relkind = 'i'), count(*) FILTER (WHERE relkind = 'v'),"
        " (SELECT count(*) FROM pg_constraint WHERE connamespace = 'public'::regnamespace)"
        " FROM pg_class WHERE relnamespace = 'public'::regnamespace"
    )[0]
    log("schema: dualboot.db diff")
    ours, ours_cpu = [], []
    for _run in range(RUNS):
        t0, c0 = time.monotonic(), time.process_time()
        r = pg_diff.compare_schemas(a.conn, b.conn)
        ours.append(time.monotonic() - t0)
        ours_cpu.append(time.process_time() - c0)
    median = sorted(ours)[len(ours) // 2]
    log(f"schema: ours best {min(ours):.2f} s, median {median:.2f} s, {len(r['changes'])} change records; migra")
    t0, c0 = time.monotonic(), time.process_time()
    migra_sql = run_migra(a.uri, b.uri)
    migra_s = time.monotonic() - t0
    migra_cpu = time.process_time() - c0
    migra_stmts = [s for s in migra_sql.split(";\n") if s.strip()]
    log(f"schema: migra {migra_s:.2f} s, {len(migra_stmts)} statements")
    return {
        "tables": counts[0],
        "indexes": counts[1],
        "views": counts[2],
        "constraints": counts[3],
        "changes_applied": 50,
        "load_average_1min": round(os.getloadavg()[0], 1),
        "ours_seconds_best": round(min(ours), 3),
        "ours_seconds_median": round(median, 3),
        "ours_client_cpu_seconds": round(ours_cpu[ours.index(median)], 2),
        "ours_seconds_all": [round(x, 3) for x in ours],
        "ours_timings_last": r["timings"],
        "ours_change_records": len(r["changes"]),
        "ours_sql_statements": len(r["sql"]),
        "migra_seconds": round(migra_s, 3),
        "migra_client_cpu_seconds": round(migra_cpu, 2),
        "migra_statements": len(migra_stmts),
        "ratio_migra_over_ours_median": round(migra_s / median, 1),
        "ratio_migra_over_ours_best": round(migra_s / min(ours), 1),
    }


def build_data(db, gb: float) -> None:
    rows = int(gb * 7_500_000)  # about 1 GB for gb=1.0 over four tables (measured: pg_database_size below)
    per = rows // 4
    db.execute(
        "CREATE TABLE accounts (id bigint PRIMARY KEY, name text, email text, created timestamptz, balance numeric(12,2));"
        "CREATE TABLE orders (shop int, no bigint, amount numeric(10,2), status text, placed timestamptz, PRIMARY KEY (shop, no));"
        "CREATE TABLE events (id bigserial PRIMARY KEY, kind text, payload jsonb, at timestamptz);"
        "CREATE TABLE notes (id uuid PRIMARY KEY, body text, tags text[]);"
    )
    db.execute(
        f"INSERT INTO accounts SELECT i, 'account holder number ' || i, 'user' || i || '@example.org',"
        f" timestamptz '2020-01-01' + i * interval '17 seconds', (i % 100000) / 7.0 FROM generate_series(1, {per}) i"
    )
    db.execute(
        f"INSERT INTO orders SELECT i % 50, i, (i % 99999) / 3.0, CASE WHEN i % 3 = 0 THEN 'paid' ELSE 'open' END,"
        f" timestamptz '2021-01-01' + i * interval '3 seconds' FROM generate_series(1, {per}) i"
    )
    db.execute(
        f"INSERT INTO events (kind, payload, at) SELECT 'kind' || (i % 20), jsonb_build_object('i', i, 'ok', i % 2 = 0),"
        f" timestamptz '2022-01-01' + i * interval '1 second' FROM generate_series(1, {per}) i"
    )
    db.execute(
        f"INSERT INTO notes SELECT md5(i::text)::uuid, repeat('note text ', 4) || i, ARRAY['t' || (i % 10), 'x']"
        f" FROM generate_series(1, {per}) i"
    )
    db.execute("VACUUM ANALYZE")


def copy_to_devnull(db, tables: list[str]) -> float:
    t0 = time.monotonic()
    with psycopg.connect(db.uri, autocommit=True) as c:
        for t in tables:
            c.execute(f"COPY {t} TO '/dev/null'")
    return time.monotonic() - t0


def bench_data(cluster: PgCluster, gb: float) -> dict:
    log(f"data: loading about {gb} GB")
    a = cluster.create_database("data_a")
    t0 = time.monotonic()
    build_data(a, gb)
    log(f"data: loaded in {time.monotonic() - t0:.0f} s; copying")
    b = cluster.create_database("data_b", template="data_a")
    size = a.scalar("SELECT pg_database_size(current_database())")
    tables = ["accounts", "orders", "events", "notes"]
    # warm both databases' caches the same way for both contenders
    copy_to_devnull(a, tables)
    copy_to_devnull(b, tables)
    log("data: COPY TO /dev/null baseline")
    copy_s = [copy_to_devnull(a, tables) + copy_to_devnull(b, tables) for _run in range(2)]
    log(f"data: COPY both databases {min(copy_s):.1f} s; dualboot.db compare")
    ours = []
    for _run in range(2):
        t0 = time.monotonic()
        r = pg_compare.compare(a.conn, b.conn)
        ours.append(time.monotonic() - t0)
    log(f"data: ours {min(ours):.1f} s, {r['mb_per_s']} MB/s")
    return {
        "database_bytes": size,
        "rows_per_database": r["rows"] // 2,
        "row_data_bytes_both_sides": r["bytes"],
        "ours_seconds_best_of_2": round(min(ours), 2),
        "ours_mb_per_s_row_data": round(r["bytes"] / 1e6 / min(ours), 1),
        "ours_mb_per_s_database_size": round(2 * size / 1e6 / min(ours), 1),
        "copy_devnull_seconds_best_of_2": round(min(copy_s), 2),
        "copy_mb_per_s_database_size": round(2 * size / 1e6 / min(copy_s), 1),
        "ratio_ours_over_copy_time": round(min(ours) / min(copy_s), 2),
        "equal": r["equal"],
    }


def markdown(res: dict) -> str:
    s, d = res["schema"], res["data"]
    return "\n".join(
        [
            f"Run {res['when']} on {res['machine']}, PostgreSQL {res['server_version']}; command: `{res['command']}`",
            "",
            f"**Schema diff**: {s['tables']} tables, {s['indexes']} indexes, {s['constraints']} constraints, {s['views']} views;"
            f" the copy has {s['changes_applied']} changes.",
            "",
            "| tool | wall time | client CPU | output |",
            "| --- | ---: | ---: | --- |",
            f"| dualboot.db `postgresql_schema_diff` (median of {RUNS}; best {s['ours_seconds_best']:.2f} s)"
            f" | {s['ours_seconds_median']:.2f} s |"
            f" {s['ours_client_cpu_seconds']:.2f} s |"
            f" {s['ours_change_records']} change records, {s['ours_sql_statements']} SQL statements |",
            f"| migra 3.0 | {s['migra_seconds']:.2f} s | {s['migra_client_cpu_seconds']:.2f} s | {s['migra_statements']} statements |",
            f"| ratio migra / ours (median) | **{s['ratio_migra_over_ours_median']}×** | | |",
            "",
            f"Load average (1 min) during the run: {s['load_average_1min']} on 2 cores.",
            "",
            f"**Data comparison**: two databases of {d['database_bytes'] / 1e9:.2f} GB each ({d['rows_per_database']} rows), same cluster.",
            "",
            "| method | wall time | throughput |",
            "| --- | ---: | ---: |",
            f"| dualboot.db `postgresql_compare` (both sides, best of 2) | {d['ours_seconds_best_of_2']:.1f} s |"
            f" {d['ours_mb_per_s_database_size']} MB/s of database size ({d['ours_mb_per_s_row_data']} MB/s of row data) |",
            f"| `COPY t TO '/dev/null'` of the same tables, both databases (best of 2) | {d['copy_devnull_seconds_best_of_2']:.1f} s |"
            f" {d['copy_mb_per_s_database_size']} MB/s of database size |",
            f"| ratio compare / COPY | **{d['ratio_ours_over_copy_time']}×** the time | |",
            "",
        ]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", type=int, default=10000)
    ap.add_argument("--gb", type=float, default=1.0)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, to check the script")
    ap.add_argument("--only", choices=["schema", "data"])
    args = ap.parse_args()
    if args.quick:
        args.tables, args.gb = 1000, 0.01
    cluster = PgCluster(settings=SETTINGS, name="bench").start()
    try:
        res = {
            "when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
            "server_version": cluster.db("postgres").scalar("SHOW server_version"),
            "command": "  ".join(["benchmarks/pg_verify.py", *sys.argv[1:]]).strip(),
        }
        if args.only != "data":
            res["schema"] = bench_schema(cluster, args.tables)
        if args.only != "schema":
            res["data"] = bench_data(cluster, args.gb)
    finally:
        cluster.stop()
    print(json.dumps(res, indent=2))
    if not args.quick and not args.only:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "pg_verify.json").write_text(json.dumps(res, indent=2) + "\n")
        (RESULTS / "pg_verify.md").write_text(markdown(res))
        print(markdown(res))


if __name__ == "__main__":
    main()
