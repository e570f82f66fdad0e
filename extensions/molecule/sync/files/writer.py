"""The application of the sync scenario: one INSERT per transaction through PgBouncer, forever.

A write is acknowledged - its sequence number appended to the acks file - only after the INSERT
returned. A failed attempt is appended to the failures file and retried with the same number, so a
write committed without its acknowledgement would show up twice. SIGTERM ends it after the current
write. The connection URL is read from the demo application's dotenv file (it names PgBouncer).
"""

from __future__ import annotations

import argparse
import signal
import time

import psycopg

stopping = False


def stop(_signum, _frame) -> None:
    global stopping
    stopping = True


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--env-file", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--acks", required=True)
    ap.add_argument("--failures", required=True)
    ap.add_argument("--rate", type=float, default=20)
    opts = ap.parse_args()
    signal.signal(signal.SIGTERM, stop)
    url = next(line.split("=", 1)[1].strip() for line in open(opts.env_file) if line.startswith("DATABASE_URL="))
    acks = open(opts.acks, "a", buffering=1)
    failures = open(opts.failures, "a", buffering=1)
    conn = None
    seq = len(open(opts.acks).readlines())
    while not stopping:
        seq += 1
        while not stopping:
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(url, autocommit=True, prepare_threshold=None, connect_timeout=5)
                conn.execute("INSERT INTO events (writer, seq) VALUES (%s, %s)", (opts.name, seq))
                acks.write(f"{seq}\n")
                break
            except psycopg.Error as exc:
                failures.write(f"{time.time():.3f} {seq} {type(exc).__name__}: {str(exc).strip()[:200]}\n")
                conn = None
                time.sleep(0.05)
        time.sleep(1 / opts.rate)


if __name__ == "__main__":
    main()
