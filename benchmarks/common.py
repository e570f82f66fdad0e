"""Shared by the fleet and Ansible-overhead benchmarks: two throwaway clusters like the test harness, and
the results files (benchmarks/results/<name>.json with the raw figures, <name>.md with the table)."""

from __future__ import annotations

import datetime
import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


@contextmanager
def two_clusters(prefix: str):
    """Start two PostgreSQL 15 clusters (tests/harness/pg.py) named ``<prefix>-a`` and ``<prefix>-b``; stop them afterwards."""
    sys.path.insert(0, str(ROOT / "tests"))
    from harness.paths import ensure_collection_path
    from harness.pg import PgCluster

    ensure_collection_path()
    a = PgCluster(name=f"{prefix}-a").start()
    b = PgCluster(name=f"{prefix}-b").start()
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


def save(name: str, runs: list, md: str, load_before: tuple) -> None:
    """Write results/<name>.json and .md: the command, the date, the load before and after, the runs; print the table."""
    payload = {
        "command": f".venv/bin/python benchmarks/{name}.py " + " ".join(sys.argv[1:]),
        "date": str(datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)),
        "machine": {"cpus": os.cpu_count(), "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "runs": runs,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    head = f"{payload['command']} ({payload['date']}, load {load_before} → {os.getloadavg()})"
    (RESULTS / f"{name}.md").write_text(f"{head}\n\n{md}\n")
    print(md)
