"""Throwaway PostgreSQL clusters: initdb/pg_ctl as an unprivileged user, loopback, random port.

The host's PostgreSQL 15 by default; ``PgCluster(version=13)`` / ``version=17`` run the binaries that
``scripts/fetch-pg-versions.sh`` unpacked from bullseye's and trixie's packages into ``/var/cache/dualboot-db/pg/<major>``
(as root; else ``.cache/pg/<major>``).

Every cluster has ``wal_level=logical`` and password (scram) authentication over TCP, so tests can
exercise logical replication and wrong-password handling. ``DUALBOOT_TEST_PG_URI`` replaces the
started cluster by an external server (tests that need their own cluster then skip, saying why).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from .net import free_port

PG_BIN_CANDIDATES = [os.environ.get("DUALBOOT_PG_BIN", ""), "/usr/lib/postgresql/15/bin"]
OS_USER = os.environ.get("DUALBOOT_PG_OS_USER", "dualboot")
DEFAULT_VERSION = 15
# The majors scripts/fetch-pg-versions.sh unpacks next to the host's 15 (docs/postgresql-versions.md).
OTHER_VERSIONS = (13, 17)
_ROOT = Path(__file__).resolve().parents[2]


def pg_bin(version: int = DEFAULT_VERSION) -> Path:
    """The server binaries of PostgreSQL ``version``."""
    if version != DEFAULT_VERSION:
        # Where scripts/fetch-pg-versions.sh unpacks them: its DUALBOOT_PG_ROOTS, /var/cache as root, else .cache.
        roots = [os.environ.get("DUALBOOT_PG_ROOTS"), "/var/cache/dualboot-db/pg", str(_ROOT / ".cache" / "pg")]
        paths = [Path(r) / str(version) / "usr" / "lib" / "postgresql" / str(version) / "bin" for r in roots if r]
        for path in paths:
            if (path / "initdb").exists():
                return path
        raise RuntimeError(f"PostgreSQL {version} binaries not found in {paths[-2]}: run `make setup` (scripts/fetch-pg-versions.sh)")
    for c in PG_BIN_CANDIDATES:
        if c and (Path(c) / "initdb").exists():
            return Path(c)
    raise RuntimeError("PostgreSQL 15 server binaries not found (looked in /usr/lib/postgresql/15/bin): run `make setup`")


def have_version(version: int) -> bool:
    try:
        pg_bin(version)
    except RuntimeError:
        return False
    return True


def _run_as_owner() -> dict:
    """subprocess kwargs that drop root to the unprivileged cluster owner (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return {}
    try:
        pw = pwd.getpwnam(OS_USER)
    except KeyError:
        raise RuntimeError(f"running as root needs the unprivileged user {OS_USER!r} to own clusters: run `make setup`") from None
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


def _chown(path: Path) -> None:
    if os.geteuid() == 0:
        pw = pwd.getpwnam(OS_USER)
        os.chown(path, pw.pw_uid, pw.pw_gid)


@dataclass
class PgDatabase:
    """One database on a server, with what tests need to reach it."""

    server: object
    name: str

    @property
    def params(self) -> dict:
        """Module connection options for this database."""
        return {**self.server.login_params(), "login_db": self.name}

    @property
    def conn(self):
        """A ``PgConnection`` (the collection's own settings object)."""
        from ansible_collections.dualboot.db.plugins.module_utils.postgresql import PgConnection

        return PgConnection(
            dbname=self.name, host=self.server.host, port=self.server.port, user=self.server.user, password=self.server.password
        )

    @property
    def uri(self) -> str:
        return self.server.uri(self.name)

    def connect(self, autocommit: bool = True):
        import psycopg

        return psycopg.connect(self.uri, autocommit=autocommit)

    def execute(self, sql: str, params=None) -> None:
        with self.connect() as c:
            c.execute(sql, params)

    def query(self, sql: str, params=None) -> list[tuple]:
        with self.connect() as c:
            return c.execute(sql, params).fetchall()

    def scalar(self, sql: str, params=None):
        rows = self.query(sql, params)
        return rows[0][0] if rows else None


class _Server:
    host: str
    port: int
    user: str
    password: str

    def login_params(self) -> dict:
        return {"login_host": self.host, "login_port": self.port, "login_user": self.user, "login_password": self.password}

    def uri(self, dbname: str = "postgres") -> str:
        return f"postgresql://{quote(self.user, safe='')}:{quote(self.password, safe='')}@{self.host}:{self.port}/{quote(dbname, safe='')}"

    def db(self, name: str) -> PgDatabase:
        return PgDatabase(self, name)

    def create_database(self, name: str | None = None, template: str | None = None) -> PgDatabase:
        import psycopg
        from psycopg import sql

        name = name or f"t_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.uri(), autocommit=True) as c:
            stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
            if template:
                stmt += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
            c.execute(stmt)
        return PgDatabase(self, name)

    def drop_database(self, name: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.uri(), autocommit=True) as c:
            if c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                self._release_replication(c, name)
            c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def _release_replication(self, c, name: str) -> None:
        """What a failed test may leave and DROP DATABASE refuses: subscriptions in the database, slots on it."""
        import psycopg
        from psycopg import sql

        subs = c.execute("SELECT s.subname FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid WHERE d.datname = %s", (name,))
        subs = [sub for (sub,) in subs.fetchall()]
        if subs:
            with psycopg.connect(self.uri(name), autocommit=True) as db:
                db.execute("SET default_transaction_read_only = off")  # a frozen database
                for sub in subs:
                    ident = sql.Identifier(sub)
                    db.execute(sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(ident))
                    db.execute(sql.SQL("ALTER SUBSCRIPTION {} SET (slot_name = NONE)").format(ident))
                    db.execute(sql.SQL("DROP SUBSCRIPTION {}").format(ident))
        for _attempt in range(50):
            slots = c.execute("SELECT slot_name, active_pid FROM pg_replication_slots WHERE database = %s", (name,)).fetchall()
            if not slots:
                return
            for slot, pid in slots:
                if pid:
                    c.execute("SELECT pg_terminate_backend(%s)", (pid,))
                try:
                    c.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                except psycopg.errors.ObjectInUse:
                    pass  # its subscriber reconnected: terminate it again
            time.sleep(0.1)

    def databases(self) -> list[str]:
        import psycopg

        with psycopg.connect(self.uri(), autocommit=True) as c:
            return [r[0] for r in c.execute("SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1")]


class PgCluster(_Server):
    """A PostgreSQL cluster owned by this test run."""

    external = False

    def __init__(self, settings: dict | None = None, name: str = "pg", version: int = DEFAULT_VERSION) -> None:
        self.host = "127.0.0.1"
        self.version = version
        self.user = "postgres"
        self.password = secrets.token_urlsafe(12)
        self.settings = settings or {}
        self.name = name
        self.base = Path(tempfile.mkdtemp(prefix=f"dualboot-{name}-"))
        self.data = self.base / "data"
        self.socket_dir = self.base / "run"
        self.log = self.base / "server.log"
        self.port = 0
        self.bin = pg_bin(version)

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(a) for a in args], check=False, capture_output=True, text=True, cwd=self.base, **_run_as_owner())
        if proc.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
        return proc

    def start(self) -> PgCluster:
        os.chmod(self.base, 0o700)
        self.socket_dir.mkdir()
        _chown(self.base)
        _chown(self.socket_dir)
        pwfile = self.base / "pwfile"
        pwfile.write_text(self.password + "\n")
        os.chmod(pwfile, 0o600)
        _chown(pwfile)
        self._run(
            self.bin / "initdb",
            "-D",
            self.data,
            "-U",
            self.user,
            "--pwfile",
            pwfile,
            "-E",
            "UTF8",
            "--locale=C",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
        )
        pwfile.unlink()
        for attempt in range(5):
            self.port = free_port()
            conf = {
                "listen_addresses": "'127.0.0.1'",
                "port": str(self.port),
                "unix_socket_directories": f"'{self.socket_dir}'",
                "wal_level": "logical",
                "max_wal_senders": "10",
                "max_replication_slots": "10",
                "fsync": "off",
                "synchronous_commit": "off",
                "full_page_writes": "off",
                "shared_buffers": "64MB",
                "max_connections": "60",
            }
            if self.version != DEFAULT_VERSION:
                # The unpacked 13/17 binaries bring their own C library, but llvmjit.so's LLVM pulls the host's
                # libedit, which needs a newer one: a query costly enough for JIT would fail to load it.
                conf["jit"] = "off"
            conf.update({k: str(v) for k, v in self.settings.items()})
            with open(self.data / "postgresql.auto.conf", "w") as f:
                f.write("".join(f"{k} = {v}\n" for k, v in conf.items()))
            try:
                self._run(self.bin / "pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60", "start")
                return self
            except RuntimeError:
                if attempt == 4 or "could not bind" not in self.log.read_text(errors="replace"):
                    raise RuntimeError(f"cluster {self.name} did not start; log:\n{self.log.read_text(errors='replace')[-2000:]}") from None
        return self

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                [str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"],
                check=False,
                capture_output=True,
                **_run_as_owner(),
            )
        shutil.rmtree(self.base, ignore_errors=True)

    def restart(self) -> None:
        self._run(self.bin / "pg_ctl", "-D", self.data, "-l", self.log, "-w", "-m", "fast", "restart")


# What managed services (RDS/Aurora, Cloud SQL, Azure) give their owner role: no superuser, no file
# access; REPLICATION stands in for their logical-replication grant (rds_replication, ...).
MANAGED_ATTRIBUTES = ("CREATEDB", "CREATEROLE", "REPLICATION")
MANAGED_ROLES = ("pg_signal_backend", "pg_read_all_stats", "pg_monitor")
# Granted where the server has them: PostgreSQL 16+ lets members of pg_create_subscription subscribe
# (RDS/Aurora, Cloud SQL and Azure give it to their owner roles on 16+).
MANAGED_ROLES_IF_PRESENT = ("pg_create_subscription",)


class ManagedLogin(_Server):
    """A login role on ``server`` with the managed-service profile, minus the privileges in ``without``
    (attribute names or predefined roles). It owns what it creates; :meth:`drop` removes it and its databases."""

    external = False

    def __init__(self, server: _Server, without: tuple = (), like: ManagedLogin | None = None) -> None:
        import psycopg
        from psycopg import sql

        self.server = server
        self.host, self.port = server.host, server.port
        # ``like``: the same role (name and password) on another server, as a service's master user is on each instance.
        self.user = like.user if like else f"managed_{uuid.uuid4().hex[:8]}"
        self.password = like.password if like else secrets.token_urlsafe(12)
        self.name = f"{server.name}-managed"
        attrs = [a if a not in without else f"NO{a}" for a in MANAGED_ATTRIBUTES]
        with psycopg.connect(server.uri(), autocommit=True) as c:
            c.execute(
                sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER PASSWORD {} " + " ".join(attrs)).format(
                    sql.Identifier(self.user), sql.Literal(self.password)
                )
            )
            present = {r[0] for r in c.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (list(MANAGED_ROLES_IF_PRESENT),))}
            for r in (*MANAGED_ROLES, *(r for r in MANAGED_ROLES_IF_PRESENT if r in present)):
                if r not in without:
                    c.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(r), sql.Identifier(self.user)))

    def admin(self, statement: str) -> None:
        """Run ``statement`` as the server's superuser (what the service's admin console would do); {role} is this login."""
        import psycopg

        with psycopg.connect(self.server.uri(), autocommit=True) as c:
            c.execute(statement.replace("{role}", f'"{self.user}"'))

    def drop(self) -> None:
        import psycopg
        from psycopg import sql

        owned = [
            r[0]
            for r in psycopg.connect(self.server.uri(), autocommit=True)
            .execute("SELECT datname FROM pg_database WHERE pg_get_userbyid(datdba) = %s", (self.user,))
            .fetchall()
        ]
        for db in owned:
            self.server.drop_database(db)
        with psycopg.connect(self.server.uri(), autocommit=True) as c:
            c.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(self.user)))
            c.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(self.user)))


class ExternalPg(_Server):
    """A server given by DUALBOOT_TEST_PG_URI (a superuser connection)."""

    external = True

    def __init__(self, uri: str) -> None:
        parts = urlsplit(uri)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 5432
        self.user = unquote(parts.username or "postgres")
        self.password = unquote(parts.password or "")
        self.name = "external"

    def stop(self) -> None:
        pass
