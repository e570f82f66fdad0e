"""A tiny real application for the demo and the molecule scenarios.

It reads its database URL from a dotenv file (``DATABASE_URL=...``), serves HTTP on a port, and
re-reads the file on SIGHUP — the "reload" a cutover triggers. Endpoints:

- ``GET /health``: 200 when the database answers a query the application needs, else 503.
- ``GET /users``:  the number of users and which database served them (JSON).
- ``POST /users``: insert one user (a write), 201 with its id.

PostgreSQL (``postgresql://``) needs psycopg, MongoDB (``mongodb://``) needs pymongo. Only the standard
library otherwise, so it runs on any host with python3.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

STATE = {"url": None, "env_file": None, "reloads": 0}
LOCK = threading.Lock()


def read_dotenv(path: str) -> dict:
    values = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            key, _sep, value = line.partition("=")
            key = key.strip().removeprefix("export ").strip()
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
                if line.split("=", 1)[1].strip()[0] == '"':
                    value = value.replace('\\"', '"').replace("\\\\", "\\")
            values[key] = value
    return values


def reload(*_args) -> None:
    with LOCK:
        STATE["url"] = read_dotenv(STATE["env_file"])["DATABASE_URL"]
        STATE["reloads"] += 1


def database_name(url: str) -> str:
    """``db@host:port``: which database of which server answered (no credentials)."""
    parts = urlsplit(url)
    return f"{parts.path.lstrip('/').split('?')[0]}@{parts.hostname}:{parts.port}"


def pg_call(url: str, action: str):
    import psycopg

    with psycopg.connect(url, connect_timeout=5) as conn:
        if action == "health":
            # The application needs the users table; which columns exist depends on its version.
            conn.execute("SELECT count(*) FROM users").fetchone()
            return {"ok": True}
        if action == "count":
            return {"users": conn.execute("SELECT count(*) FROM users").fetchone()[0]}
        cols = {
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'users' AND table_schema = current_schema()"
            )
        }
        name_col = "full_name" if "full_name" in cols else "user_name" if "user_name" in cols else None
        if name_col:
            row = conn.execute(f"INSERT INTO users ({name_col}) VALUES ('demo writer') RETURNING user_id").fetchone()  # noqa: S608
        else:
            row = conn.execute("INSERT INTO users DEFAULT VALUES RETURNING user_id").fetchone()
        return {"user_id": row[0]}


def mongo_call(url: str, action: str):
    import pymongo

    client = pymongo.MongoClient(url, serverSelectionTimeoutMS=5000)
    try:
        db = client[urlsplit(url).path.lstrip("/").split("?")[0] or "demo"]
        if action == "health":
            db.command("ping")
            return {"ok": True}
        if action == "count":
            return {"users": db.users.count_documents({})}
        result = db.users.insert_one({"user": {"name": "demo writer"}})
        return {"user_id": str(result.inserted_id)}
    finally:
        client.close()


class Handler(BaseHTTPRequestHandler):
    def _reply(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _call(self, action: str, ok_code: int) -> None:
        with LOCK:
            url = STATE["url"]
        call = mongo_call if url.startswith("mongodb") else pg_call
        try:
            body = call(url, action)
        except Exception as exc:  # noqa: BLE001 - every database failure means unavailable
            self._reply(
                503,
                {
                    "error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}",
                    "database": database_name(url),
                },
            )
            return
        body["database"] = database_name(url)
        self._reply(ok_code, body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path == "/health":
            if os.environ.get("DEMO_APP_BROKEN_HEALTH"):
                self._reply(503, {"error": "health check disabled on this host (DEMO_APP_BROKEN_HEALTH)"})
                return
            self._call("health", 200)
        elif self.path == "/users":
            self._call("count", 200)
        else:
            self._reply(404, {"error": "not found"})

    def do_POST(self) -> None:  # noqa: N802
        if self.path == "/users":
            self._call("insert", 201)
        else:
            self._reply(404, {"error": "not found"})

    def log_message(self, fmt: str, *args) -> None:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-file", required=True)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--bind", default="0.0.0.0")  # noqa: S104 - the app serves its own container network
    parser.add_argument("--pidfile")
    args = parser.parse_args()
    STATE["env_file"] = args.env_file
    reload()
    signal.signal(signal.SIGHUP, reload)
    if args.pidfile:
        with open(args.pidfile, "w") as f:
            f.write(str(os.getpid()))
    server = ThreadingHTTPServer((args.bind, args.port), Handler)
    print(f"demo app on {args.bind}:{args.port}, database {database_name(STATE['url'])}", file=sys.stderr, flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
