"""MongoDB drift detection: what the fingerprint costs on top of the dump it rides on, and the MB/s of
the cutover's drift check beside a plain find() of the same data.

Starts its own FerretDB (the harness binary), loads DOCS small documents (the same as mongo_dump.py)
into COLLECTIONS collections, then, one after the other on the same server:

- mongodb_backup jobs=1 without the fingerprint (ContentHash.add_batch replaced by a no-op), and with it
  (what the stage runs), REPEAT times each, alternating, to spread the machine's load over both;
- the drift check (mongo_drift.drift against the backup's marker: a full read, split + SHA-256);
- a plain find() reading every document (decoded by pymongo), and find_raw_batches (no decoding).

Wall time, client CPU and FerretDB CPU per phase; the load average is recorded with every phase.
Results: benchmarks/results/mongo_drift.json.

    .venv/bin/python benchmarks/mongo_drift.py [--docs 1000000] [--collections 4] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mongo_dump import RAW, FerretServer, Phase, load  # noqa: E402

from ansible_collections.dualboot.db.plugins.module_utils import mongo_drift as mdr  # noqa: E402
from ansible_collections.dualboot.db.plugins.module_utils import mongo_dump as md  # noqa: E402
from ansible_collections.dualboot.db.plugins.module_utils.mongodb import MongoConnection  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def timed(name: str, pid: int, func) -> tuple[dict, object]:
    load_before = os.getloadavg()[0]
    with Phase(name, pid) as p:
        out = func()
    return {
        "phase": name,
        "seconds": round(p.seconds, 2),
        "client_cpu_seconds": round(p.client_cpu, 2),
        "server_cpu_seconds": round(p.server_cpu, 2),
        "load_average_1min_at_start": round(load_before, 2),
    }, out


def _no_fingerprint(self, batch, where):  # noqa: ARG001 - same signature as ContentHash.add_batch
    self.count += 1


def backup(conn: MongoConnection, db: str, work: Path, fingerprint: bool) -> dict:
    path = work / "bk"
    original = md.ContentHash.add_batch
    if not fingerprint:
        md.ContentHash.add_batch = _no_fingerprint
    try:
        return md.backup(conn, md.BackupRequest(database=db, path=str(path), jobs=1, overwrite=True))
    finally:
        md.ContentHash.add_batch = original


def read_all(client, db: str, raw: bool) -> int:
    nbytes = 0
    for name in client[db].list_collection_names():
        coll = client[db].get_collection(name, codec_options=RAW)
        if raw:
            nbytes += sum(len(b) for b in coll.find_raw_batches({}))
        else:
            nbytes += sum(1 for _doc in client[db][name].find({}))
    return nbytes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=1_000_000)
    ap.add_argument("--collections", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    server = FerretServer().start()
    work = Path(tempfile.mkdtemp(prefix="dualboot-bench-drift-"))
    try:
        conn = MongoConnection(uri=server.uri, connect_timeout=30)
        client = server.client()
        load(client, "bench", args.collections, args.docs)
        pid = server.proc.pid
        rows = []
        marker = None
        for i in range(args.repeat):
            r, _result = timed(f"backup without fingerprint #{i + 1}", pid, lambda: backup(conn, "bench", work, False))
            rows.append(r)
            r, b = timed(f"backup with fingerprint #{i + 1}", pid, lambda: backup(conn, "bench", work, True))
            rows.append(r)
            marker = b["marker"]
        nbytes = b["bson_bytes"]
        r, d = timed("drift check (mongodb_drift)", pid, lambda: mdr.drift(conn, "bench", marker))
        assert d["drift"] is False and d["documents_read"] == args.docs
        rows.append(r)
        r, _result = timed("plain find(), documents decoded", pid, lambda: read_all(client, "bench", raw=False))
        rows.append(r)
        r, _result = timed("find_raw_batches, no decoding", pid, lambda: read_all(client, "bench", raw=True))
        rows.append(r)
        for r in rows:
            r["mb_per_second"] = round(nbytes / 1e6 / r["seconds"], 2)
        without = [r for r in rows if r["phase"].startswith("backup without")]
        with_fp = [r for r in rows if r["phase"].startswith("backup with ")]
        summary = {
            "documents": args.docs,
            "bson_bytes": nbytes,
            "fingerprint_overhead_wall": round(sum(r["seconds"] for r in with_fp) / sum(r["seconds"] for r in without) - 1, 4),
            "fingerprint_overhead_client_cpu_seconds": round(
                (sum(r["client_cpu_seconds"] for r in with_fp) - sum(r["client_cpu_seconds"] for r in without)) / args.repeat, 2
            ),
            "fingerprint_overhead_cpu_of_dump": round(
                (sum(r["client_cpu_seconds"] for r in with_fp) - sum(r["client_cpu_seconds"] for r in without))
                / sum(r["client_cpu_seconds"] + r["server_cpu_seconds"] for r in without),
                4,
            ),
            "cpus": os.cpu_count(),
        }
        out = {"summary": summary, "phases": rows}
        results = ROOT / "benchmarks" / "results"
        results.mkdir(exist_ok=True)
        (results / "mongo_drift.json").write_text(json.dumps(out, indent=2) + "\n")
        print(json.dumps(out, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        server.stop()


if __name__ == "__main__":
    main()
