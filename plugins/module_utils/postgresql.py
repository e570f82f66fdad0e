# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL connections: one argument spec (mirrored by the ``dualboot.db.postgresql`` doc
fragment), one settings object, and connect() that turns libpq failures into clear errors.

Option names follow community.postgresql (``login_host``, ``login_port``, ...) because users know them.
Two-sided modules (clone, schema diff, compare) take ``source``/``target`` dicts with the same
options; top-level options are the defaults for both sides.
"""

from __future__ import annotations

import dataclasses
import traceback
from typing import Any

from ansible_collections.dualboot.db.plugins.module_utils.errors import ConnectionFailed, MissingDependency

try:
    import psycopg

    PSYCOPG_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - exercised only where psycopg is missing
    psycopg = None
    PSYCOPG_IMPORT_ERROR = traceback.format_exc()

APPLICATION_NAME = "dualboot.db"
SSL_MODES = ["allow", "disable", "prefer", "require", "verify-ca", "verify-full"]


def connection_spec(with_defaults: bool = True) -> dict:
    """Argument spec of one PostgreSQL connection.

    ``with_defaults=False`` is for ``source``/``target`` suboptions, where an unset option falls
    back to the top-level one instead of to a default.
    """

    def d(value: Any) -> Any:
        return value if with_defaults else None

    return {
        "login_host": {"type": "str", "aliases": ["host", "login_hostname"], "default": d("")},
        "login_port": {"type": "int", "aliases": ["port"], "default": d(5432)},
        "login_user": {"type": "str", "aliases": ["login", "user"], "default": d("postgres")},
        "login_password": {"type": "str", "no_log": True, "default": d("")},
        "login_unix_socket": {"type": "str", "default": d("")},
        "login_db": {"type": "str", "aliases": ["db", "database"]},
        "ssl_mode": {"type": "str", "choices": SSL_MODES, "default": d("prefer")},
        "ca_cert": {"type": "path", "aliases": ["ssl_rootcert"]},
        "ssl_cert": {"type": "path"},
        "ssl_key": {"type": "path", "no_log": False},
        "connect_timeout": {"type": "int", "default": d(10)},
        "connect_params": {"type": "dict", "default": d({})},
    }


def endpoint_spec() -> dict:
    """Spec of a ``source``/``target`` dict option: the connection options without defaults."""
    return {"type": "dict", "options": connection_spec(with_defaults=False)}


@dataclasses.dataclass(frozen=True)
class PgConnection:
    """Where and how to connect. ``password`` never appears in ``repr`` or in :meth:`label`."""

    dbname: str = "postgres"
    host: str = ""
    port: int = 5432
    user: str = "postgres"
    password: str = dataclasses.field(default="", repr=False)
    unix_socket: str = ""
    sslmode: str = "prefer"
    sslrootcert: str | None = None
    sslcert: str | None = None
    sslkey: str | None = None
    connect_timeout: int = 10
    params: dict = dataclasses.field(default_factory=dict)

    @property
    def address(self) -> str:
        """The host libpq connects to: the socket directory wins over the TCP host."""
        return self.unix_socket or self.host

    def with_db(self, dbname: str) -> PgConnection:
        return dataclasses.replace(self, dbname=dbname)

    def label(self) -> str:
        """``user@host:port/db`` for messages and results; never contains the password."""
        return f"{self.user}@{self.address or 'localhost'}:{self.port}/{self.dbname}"

    def same_server(self, other: PgConnection) -> bool:
        return (self.address or "localhost", self.port) == (other.address or "localhost", other.port)

    def kwargs(self) -> dict:
        """Keyword arguments for ``psycopg.connect``."""
        kw: dict[str, Any] = {
            "dbname": self.dbname,
            "port": self.port,
            "user": self.user,
            "sslmode": self.sslmode,
            "connect_timeout": self.connect_timeout,
            "application_name": APPLICATION_NAME,
        }
        if self.address:
            kw["host"] = self.address
        if self.password:
            kw["password"] = self.password
        for key in ("sslrootcert", "sslcert", "sslkey"):
            if getattr(self, key):
                kw[key] = getattr(self, key)
        kw.update(self.params)
        return kw

    def env(self) -> dict:
        """Environment for libpq client tools (pg_dump, psql, ...): the password travels here, never in argv."""
        env = {
            "PGDATABASE": self.dbname,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGSSLMODE": self.sslmode,
            "PGCONNECT_TIMEOUT": str(self.connect_timeout),
            "PGAPPNAME": APPLICATION_NAME,
        }
        if self.address:
            env["PGHOST"] = self.address
        if self.password:
            env["PGPASSWORD"] = self.password
        for key, var in (("sslrootcert", "PGSSLROOTCERT"), ("sslcert", "PGSSLCERT"), ("sslkey", "PGSSLKEY")):
            if getattr(self, key):
                env[var] = getattr(self, key)
        return env


def from_params(params: dict, side: str | None = None, dbname: str | None = None) -> PgConnection:
    """Build a connection from module parameters; ``side`` names a ``source``/``target`` dict whose
    set options override the top-level ones."""
    merged = {k: params.get(k) for k in connection_spec()}
    if side and params.get(side):
        merged.update({k: v for k, v in params[side].items() if v is not None})
    defaults = connection_spec()
    for key, spec in defaults.items():
        if merged.get(key) is None and "default" in spec:
            merged[key] = spec["default"]
    return PgConnection(
        dbname=dbname or merged.get("login_db") or "postgres",
        host=merged["login_host"] or "",
        port=int(merged["login_port"]),
        user=merged["login_user"],
        password=merged["login_password"] or "",
        unix_socket=merged["login_unix_socket"] or "",
        sslmode=merged["ssl_mode"],
        sslrootcert=merged.get("ca_cert"),
        sslcert=merged.get("ssl_cert"),
        sslkey=merged.get("ssl_key"),
        connect_timeout=int(merged["connect_timeout"]),
        params=dict(merged.get("connect_params") or {}),
    )


def _hint_for(text: str, conn: PgConnection) -> str:
    lowered = text.lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        return f"check login_password for user {conn.user!r} (or the entry's password reference)."
    if "does not exist" in lowered and "database" in lowered:
        return f"create database {conn.dbname!r} or correct login_db."
    if "role" in lowered and "does not exist" in lowered:
        return f"create role {conn.user!r} or correct login_user."
    if "permission denied for database" in lowered or "connect privilege" in lowered:
        return f"have the database's owner run GRANT CONNECT ON DATABASE {conn.dbname} TO {conn.user} (docs/privileges.md)."
    if "no pg_hba.conf entry" in lowered:
        return "allow this client in the server's pg_hba.conf, or connect from a host it allows."
    if "connection refused" in lowered or "could not connect" in lowered or "timeout" in lowered:
        where = f"{conn.address or 'localhost'}:{conn.port}"
        return f"check that PostgreSQL runs and accepts connections at {where} (login_host/login_port, firewall)."
    return "check the connection options of this entry."


def connect(conn: PgConnection, autocommit: bool = False) -> Any:
    """Open a psycopg connection or raise :class:`ConnectionFailed` naming the cause."""
    if psycopg is None:
        raise MissingDependency(
            "the Python library psycopg (version 3) is not installed on the host running this task.",
            hint="pip install 'psycopg[binary]' there (see requirements.txt).",
        )
    try:
        return psycopg.connect(autocommit=autocommit, **conn.kwargs())
    except psycopg.OperationalError as exc:
        # libpq spreads the cause over lines ("...failed: Connection refused" / "\tIs the server running..."): keep them all.
        text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
        raise ConnectionFailed(f"cannot connect to PostgreSQL {conn.label()}: {text}", hint=_hint_for(str(exc), conn)) from None


def server_version(cursor: Any) -> int:
    """``server_version_num`` of the connected server, e.g. 150018."""
    cursor.execute("SHOW server_version_num")
    return int(cursor.fetchone()[0])
