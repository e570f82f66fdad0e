"""The application's writer for the mongodb scenario: one acknowledged insert after another into
``events`` of the database /etc/demo-app.env names (read again before every write, so it follows the
switch). Maintenance mode: while /run/demo-frozen-<database> exists it writes nothing to that database
and confirms with /run/demo-drained-<database>. Every acknowledged id is appended to the ack log. It
stops when /run/demo-writer.stop appears and then writes <ack log>.done (the container's PID 1 does
not reap processes, so a signalled writer would stay a zombie that looks alive)."""

from __future__ import annotations

import os
import sys
import time

import pymongo


def database_url() -> str:
    with open("/etc/demo-app.env", encoding="utf-8") as f:
        for line in f:
            if line.startswith("DATABASE_URL="):
                return line.split("=", 1)[1].strip()
    raise SystemExit("no DATABASE_URL in /etc/demo-app.env")


def main() -> None:
    log = open(sys.argv[1], "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - open for the process's life
    clients: dict = {}
    n = 0
    while not os.path.exists("/run/demo-writer.stop"):
        url = database_url()
        base, database = url.rsplit("/", 1)
        if os.path.exists(f"/run/demo-frozen-{database}"):
            open(f"/run/demo-drained-{database}", "w").close()
            time.sleep(0.05)
            continue
        client = clients.setdefault(base, pymongo.MongoClient(base + "/", serverSelectionTimeoutMS=5000))
        _id = f"{os.uname().nodename}-{os.getpid()}-{n:07d}"
        try:
            client[database].events.insert_one({"_id": _id, "database": database})
        except pymongo.errors.PyMongoError:
            time.sleep(0.2)  # not acknowledged: not logged, and the next id is new
            n += 1
            continue
        log.write(_id + "\n")
        n += 1
        time.sleep(0.05)
    log.close()
    open(sys.argv[1] + ".done", "w").close()


if __name__ == "__main__":
    main()
