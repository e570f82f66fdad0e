"""MongoDB backup and restore: dualboot.db vs a straightforward single-threaded pymongo copy, same run.

Starts its own FerretDB (the harness binary), loads DOCS small documents into COLLECTIONS collections,
then times, one after the other on the same server:

- baseline copy:  find() -> insert_many(1000) into another database, one thread (what people write);
- baseline dump:  find() -> bson.encode -> file, one thread;  baseline load: decode_file_iter -> insert_many;
- mongodb_backup: raw batches, collections in parallel (jobs=4);
- mongodb_restore: raw BSON, collections in parallel (jobs=4), 2 insert workers each.

For each phase it records wall time, documents/s, MB/s of BSON, and the CPU seconds spent by the
client (this Python process) and by the FerretDB server process, which shows what bounds the phase.
Results: benchmarks/results/mongo_dump.json and .md.

    .venv/bin/python benchmarks/mongo_dump.py [--docs 1000000] [--collections 4]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from harness.ferretdb import FerretServer  # noqa: E402
from harness.paths import ensure_collection_path  # noqa: E402

ensure_collection_path()

import bson  # noqa: E402
import pymongo  # noqa: E402
from bson.codec_options import CodecOptions  # noqa: E402
from bson.raw_bson import RawBSONDocument  # noqa: E402

from ansible_collections.dualboot.db.plugins.module_utils import mongo_dump as md  # noqa: E402
from ansible_collections.dualboot.db.plugins.module_utils.mongodb import MongoConnection  # noqa: E402

RAW = CodecOptions(document_class=RawBSONDocument)


def server_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Phase:
    def __init__(self, name: str, server_pid: int) -> None:
        self.name, self.pid = name, server_pid

    def __enter__(self) -> Phase:
        self.t0, self.c0, self.s0 = time.monotonic(), time.process_time(), server_cpu(self.pid)
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.monotonic() - self.t0
        self.client_cpu = time.process_time() - self.c0
        self.server_cpu = server_cpu(self.pid) - self.s0


def make_docs(i0: int, n: int) -> list:
    base = datetime.datetime(2024, 1, 1)
    return [
        RawBSONDocument(
            bson.encode(
                {
                    "_id": i,
                    "userName": f"user{i:08d}",
                    "email": f"user{i}@example.com",
                    "visits": i % 1000,
                    "created": base + datetime.timedelta(seconds=i),
                }
            )
        )
        for i in range(i0, i0 + n)
    ]


def load(client, dbname: str, collections: int, docs: int) -> None:
    per = docs // collections

    def fill(c: int) -> None:
        coll = client[dbname].get_collection(f"c{c}", codec_options=RAW)
        for i in range(0, per, 5000):
            coll.insert_many(make_docs(c * per + i, min(5000, per - i)), ordered=False)

    threads = [threading.Thread(target=fill, args=(c,)) for c in range(collections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def client_side(dbdir: Path) -> dict:
    """Client work per document without a server, on the backup's own bytes: what each approach costs
    the client, i.e. its ceiling when the server is not the bottleneck (a real MongoDB)."""
    data = b"".join(p.read_bytes() for p in sorted(dbdir.glob("*.bson")))
    n = sum(1 for _doc in md.split_documents(data))
    t = time.process_time()
    for doc in bson.decode_all(data):
        bson.encode(doc)
    naive = time.process_time() - t
    t = time.process_time()
    h = md.ContentHash()
    batch = []
    for doc in md.split_documents(data):
        h.add(doc)
        batch.append(RawBSONDocument(bytes(doc), RAW))
    ours = time.process_time() - t
    return {
        "documents": n,
        "baseline_decode_encode_documents_per_cpu_second": round(n / naive),
        "dualboot_split_hash_rawdoc_documents_per_cpu_second": round(n / ours),
    }


def row(phase: Phase, docs: int, nbytes: int) -> dict:
    return {
        "phase": phase.name,
        "seconds": round(phase.seconds, 2),
        "documents": docs,
        "documents_per_second": round(docs / phase.seconds),
        "mb_per_second": round(nbytes / 1e6 / phase.seconds, 2),
        "client_cpu_seconds": round(phase.client_cpu, 1),
        "server_cpu_seconds": round(phase.server_cpu, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=1_000_000)
    ap.add_argument("--collections", type=int, default=4)
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--report-only", action="store_true", help="rewrite the .md (and ratios) from results/mongo_dump.json")
    args = ap.parse_args()
    if args.report_only:
        write_report(json.loads((ROOT / "benchmarks" / "results" / "mongo_dump.json").read_text()))
        return
    work = Path(tempfile.mkdtemp(prefix="dualboot-bench-mongo-"))
    server = FerretServer().start()
    pid = server.proc.pid
    client = pymongo.MongoClient(server.uri)
    conn = MongoConnection(uri=server.uri)
    results: dict = {
        "benchmark": "mongo_dump",
        "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "pymongo": pymongo.version,
            "load_average_start": os.getloadavg(),
        },
        "server": md.server_info(client),
        "documents": args.docs,
        "collections": args.collections,
        "phases": [],
    }
    try:
        t0 = time.monotonic()
        load(client, "live", args.collections, args.docs)
        total_docs = sum(client.live[c].estimated_document_count() for c in client.live.list_collection_names())
        print(f"loaded {total_docs} documents in {time.monotonic() - t0:.0f} s", flush=True)
        names = sorted(client.live.list_collection_names())

        with Phase("baseline copy (find -> insert_many, 1 thread)", pid) as p:
            n = nbytes = 0
            for name in names:
                batch: list = []
                for doc in client.live[name].find():
                    batch.append(doc)
                    if len(batch) == 1000:
                        client.copy[name].insert_many(batch)
                        n += len(batch)
                        batch = []
                if batch:
                    client.copy[name].insert_many(batch)
                    n += len(batch)
        nbytes_total = None
        results["phases"].append(row(p, n, 0))
        print(results["phases"][-1], flush=True)
        client.drop_database("copy")

        dump_dir = work / "naive"
        dump_dir.mkdir()
        with Phase("baseline dump (find -> bson.encode -> file, 1 thread)", pid) as p:
            n = nbytes = 0
            for name in names:
                with open(dump_dir / f"{name}.bson", "wb") as f:
                    for doc in client.live[name].find():
                        data = bson.encode(doc)
                        f.write(data)
                        n += 1
                        nbytes += len(data)
        nbytes_total = nbytes
        results["phases"][-1]["mb_per_second"] = round(nbytes_total / 1e6 / results["phases"][-1]["seconds"], 2)
        results["phases"].append(row(p, n, nbytes))
        print(results["phases"][-1], flush=True)

        with Phase("baseline load (decode_file_iter -> insert_many, 1 thread)", pid) as p:
            n = 0
            for name in names:
                with open(dump_dir / f"{name}.bson", "rb") as f:
                    batch = []
                    for doc in bson.decode_file_iter(f):
                        batch.append(doc)
                        if len(batch) == 1000:
                            client.naive[name].insert_many(batch)
                            n += len(batch)
                            batch = []
                    if batch:
                        client.naive[name].insert_many(batch)
                        n += len(batch)
        results["phases"].append(row(p, n, nbytes_total))
        print(results["phases"][-1], flush=True)
        client.drop_database("naive")
        shutil.rmtree(dump_dir)

        for jobs, workers in ((args.jobs, args.workers), (1, 1)):
            shutil.rmtree(work / "bk", ignore_errors=True)
            client.drop_database("restored")
            with Phase(f"mongodb_backup (raw, jobs={jobs})", pid) as p:
                b = md.backup(conn, md.BackupRequest(database="live", path=str(work / "bk"), jobs=jobs))
            results["phases"].append(row(p, b["documents"], b["bson_bytes"]))
            print(results["phases"][-1], flush=True)
            with Phase(f"mongodb_restore (raw, jobs={jobs}, insertion_workers={workers})", pid) as p:
                req = md.RestoreRequest(path=str(work / "bk"), database="restored", jobs=jobs, insertion_workers=workers)
                r = md.restore(conn, req)
            results["phases"].append(row(p, r["documents"], r["bson_bytes"]))
            print(results["phases"][-1], flush=True)
            assert r["documents"] == b["documents"] == total_docs
        results["client_side_only"] = client_side(work / "bk" / "live")
    finally:
        results["machine"]["load_average_end"] = os.getloadavg()
        client.close()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    write_report(results)


def write_report(results: dict) -> None:
    """Ratios and the Markdown table, from the measurements (re-runnable with --report-only)."""
    ph: dict = {}
    for x in results["phases"]:  # the first (parallel) run of each of ours, and the baselines
        ph.setdefault(x["phase"].split(" (")[0], x)
    results["ratios"] = {
        "backup_vs_baseline_dump": round(ph["mongodb_backup"]["documents_per_second"] / ph["baseline dump"]["documents_per_second"], 2),
        "restore_vs_baseline_load": round(ph["mongodb_restore"]["documents_per_second"] / ph["baseline load"]["documents_per_second"], 2),
        "backup_plus_restore_vs_baseline_copy": round(
            ph["baseline copy"]["seconds"] / (ph["mongodb_backup"]["seconds"] + ph["mongodb_restore"]["seconds"]), 2
        ),
    }
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / "mongo_dump.json").write_text(json.dumps(results, indent=2) + "\n")
    start_load = results["machine"]["load_average_start"][0]
    lines = [
        f"MongoDB backup/restore, {results['documents']} documents in {results['collections']} collections, "
        f"FerretDB {results['server']['version']} (SQLite), {results['when']}, load average {start_load:.1f}",
        "",
        "| phase | seconds | documents/s | MB/s | client CPU s | server CPU s | documents per server CPU s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for x in results["phases"]:
        per_cpu = round(x["documents"] / x["server_cpu_seconds"]) if x["server_cpu_seconds"] else "-"
        cells = [
            x["phase"],
            x["seconds"],
            x["documents_per_second"],
            x["mb_per_second"],
            x["client_cpu_seconds"],
            x["server_cpu_seconds"],
            per_cpu,
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    cs = results["client_side_only"]
    lines += [
        "",
        "Ratios (first, parallel run of ours): " + ", ".join(f"{k} {v}x" for k, v in results["ratios"].items()),
        "",
        f"Client side only (no server, the {cs['documents']} documents of the backup): baseline decode+encode "
        f"{cs['baseline_decode_encode_documents_per_cpu_second']} documents per CPU second, "
        f"dualboot.db split+hash+RawBSONDocument {cs['dualboot_split_hash_rawdoc_documents_per_cpu_second']}.",
    ]
    (out / "mongo_dump.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
