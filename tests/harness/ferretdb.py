"""Throwaway FerretDB servers (MongoDB wire protocol, SQLite storage) on random loopback ports.

``DUALBOOT_TEST_MONGO_URI`` points the suites at an external MongoDB instead (the features FerretDB
lacks — validators, TTL/partial indexes, $sample — are then exercised for real).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from .net import free_port, wait_for_port
from .paths import ferretdb_binary


class _Mongo:
    uri: str
    external: bool
    is_ferretdb: bool

    def login_params(self) -> dict:
        return {"login_uri": self.uri}

    def client(self):
        import pymongo

        return pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=10000)

    def new_db_name(self) -> str:
        return f"t_{uuid.uuid4().hex[:10]}"


class FerretServer(_Mongo):
    external = False
    is_ferretdb = True

    def __init__(self) -> None:
        binary = ferretdb_binary()
        if not binary:
            raise RuntimeError("FerretDB binary not found (.cache/bin/ferretdb or DUALBOOT_FERRETDB_BIN): run `make setup`")
        self.binary = binary
        self.base = Path(tempfile.mkdtemp(prefix="dualboot-ferretdb-"))
        self.log = self.base / "server.log"
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.uri = ""

    def start(self) -> FerretServer:
        for attempt in range(5):
            self.port = free_port()
            log = open(self.log, "ab")
            self.proc = subprocess.Popen(
                [self.binary, "--listen-addr", f"127.0.0.1:{self.port}", "--sqlite-dir", str(self.base / "data")],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            log.close()
            try:
                wait_for_port(self.port, timeout=30, alive=lambda: self.proc.poll() is None)
                self.uri = f"mongodb://127.0.0.1:{self.port}/"
                return self
            except (RuntimeError, TimeoutError):
                self.proc.kill()
                self.proc.wait()
                if attempt == 4:
                    raise RuntimeError(f"FerretDB did not start; log:\n{self.log.read_text(errors='replace')[-2000:]}") from None
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.base, ignore_errors=True)


class ExternalMongo(_Mongo):
    external = True

    def __init__(self, uri: str) -> None:
        self.uri = uri
        info = self.client().admin.command("buildInfo")
        self.is_ferretdb = "ferretdb" in {k.lower() for k in info} or "ferretdbVersion" in info

    def stop(self) -> None:
        pass


def start_mongo():
    uri = os.environ.get("DUALBOOT_TEST_MONGO_URI")
    return ExternalMongo(uri) if uri else FerretServer().start()
