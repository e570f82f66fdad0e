"""Throwaway PgBouncer instances: run as the unprivileged cluster owner, loopback, random port.

Users authenticate with SCRAM secrets from an ``auth_file`` (no plain text passwords on disk). For a
database user, PgBouncer logs into PostgreSQL with the keys of the client's own SCRAM exchange, which
works when the server holds the very same SCRAM secret: :func:`scram_secret` makes one and
:func:`install_role` sets it on a server, so one role can be reached on several clusters through one
PgBouncer (what a switch between two clusters needs).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

from .net import free_port, wait_for_port
from .pg import _chown, _run_as_owner

PGBOUNCER_CANDIDATES = [os.environ.get("DUALBOOT_PGBOUNCER_BIN", ""), "/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]


def pgbouncer_binary() -> str | None:
    for c in PGBOUNCER_CANDIDATES:
        if c and os.access(c, os.X_OK):
            return c
    return shutil.which("pgbouncer")


def scram_secret(password: str, iterations: int = 4096) -> str:
    """A PostgreSQL ``SCRAM-SHA-256$...`` verifier for ``password`` (ASCII passwords: no SASLprep needed)."""
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()

    def b64(b: bytes) -> str:
        return base64.b64encode(b).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def install_role(server, user: str, secret: str) -> None:
    """Create (or reset) a login role with exactly this SCRAM secret on a harness server."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(server.uri(), autocommit=True) as c:
        exists = c.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        c.execute(sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(user), sql.Literal(secret)))


class PgBouncer:
    """A PgBouncer of this test run.

    ``databases`` maps an alias to its ``[databases]`` connection string (``host=... port=... dbname=...``);
    ``users`` maps user names to plain passwords (only their SCRAM secrets are written; ``secrets[user]``
    is what :func:`install_role` must set on every server behind this PgBouncer). The admin
    user (``admin_user``/``admin_password``) may use the ``pgbouncer`` admin console.
    """

    def __init__(self, databases: dict, users: dict, pool_mode: str = "transaction", settings: dict | None = None) -> None:
        binary = pgbouncer_binary()
        if not binary:
            raise RuntimeError("pgbouncer not found (/usr/sbin/pgbouncer): run `make setup`")
        self.binary = binary
        self.host = "127.0.0.1"
        self.port = 0
        self.admin_user = "bouncer_admin"
        self.admin_password = secrets.token_urlsafe(12)
        self.databases = dict(databases)
        self.users = {**users, self.admin_user: self.admin_password}
        # One secret per user for the whole life of the instance: install it on the servers with install_role().
        self.secrets = {u: scram_secret(p) for u, p in self.users.items()}
        self.pool_mode = pool_mode
        self.settings = settings or {}
        self.base = Path(tempfile.mkdtemp(prefix="dualboot-pgbouncer-"))
        self.ini = self.base / "pgbouncer.ini"
        self.auth_file = self.base / "userlist.txt"
        self.log = self.base / "pgbouncer.log"
        self.proc: subprocess.Popen | None = None

    def _write_config(self) -> None:
        lines = ["; written by the dualboot.db test harness", "[databases]"]
        lines += [f"{alias} = {connstr}" for alias, connstr in self.databases.items()]
        conf = {
            "listen_addr": self.host,
            "listen_port": str(self.port),
            "unix_socket_dir": "",
            "auth_type": "scram-sha-256",
            "auth_file": str(self.auth_file),
            "admin_users": self.admin_user,
            "pool_mode": self.pool_mode,
            "logfile": str(self.log),
            "pidfile": str(self.base / "pgbouncer.pid"),
            "max_client_conn": "100",
            "default_pool_size": "5",
            "server_login_retry": "1",
            "ignore_startup_parameters": "extra_float_digits",
        }
        conf.update({k: str(v) for k, v in self.settings.items()})
        lines += ["", "[pgbouncer]"] + [f"{k} = {v}" for k, v in conf.items()]
        self.ini.write_text("\n".join(lines) + "\n")
        self.auth_file.write_text("".join(f'"{u}" "{s}"\n' for u, s in self.secrets.items()))
        for f in (self.ini, self.auth_file):
            os.chmod(f, 0o640)
            _chown(f)

    def start(self) -> PgBouncer:
        os.chmod(self.base, 0o700)
        _chown(self.base)
        for attempt in range(5):
            self.port = free_port()
            self._write_config()
            self.proc = subprocess.Popen(
                [self.binary, str(self.ini)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=self.base,
                **_run_as_owner(),
            )
            try:
                wait_for_port(self.port, timeout=15, alive=lambda: self.proc.poll() is None)
                return self
            except (RuntimeError, TimeoutError):
                self.proc.kill()
                self.proc.wait()
                log = self.log.read_text(errors="replace") if self.log.exists() else ""
                if attempt == 4 or "Address already in use" not in log:
                    raise RuntimeError(f"pgbouncer did not start; log:\n{log[-2000:]}") from None
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

    def admin_params(self) -> dict:
        """The ``pgbouncer_admin`` option of ``connection_switch`` for this instance."""
        return {"login_host": self.host, "login_port": self.port, "login_user": self.admin_user, "login_password": self.admin_password}

    def connect(self, dbname: str, user: str, autocommit: bool = True, **kwargs):
        """A client connection through PgBouncer (what an application holds). Without prepared statements,
        as transaction pooling requires of applications (PgBouncer 1.18 does not track them)."""
        import psycopg

        kwargs.setdefault("prepare_threshold", None)
        return psycopg.connect(
            host=self.host,
            port=self.port,
            dbname=dbname,
            user=user,
            password=self.users[user],
            autocommit=autocommit,
            connect_timeout=5,
            **kwargs,
        )

    def admin(self):
        """A connection to the admin console (simple query protocol: no parameters, never prepared)."""
        import psycopg

        return psycopg.connect(
            host=self.host,
            port=self.port,
            dbname="pgbouncer",
            user=self.admin_user,
            password=self.admin_password,
            autocommit=True,
            prepare_threshold=None,
        )
