# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""MongoDB connections: one argument spec (mirrored by the ``dualboot.db.mongodb`` doc fragment),
a settings object and connect() with clear errors. Nothing is hard-coded: ``directConnection``,
TLS and replica set come from the user's URI or options only.
"""

from __future__ import annotations

import dataclasses
import traceback
from typing import Any
from urllib.parse import quote_plus, urlsplit, urlunsplit

from ansible_collections.dualboot.db.plugins.module_utils.errors import ConnectionFailed, MissingDependency

try:
    import pymongo
    from pymongo import errors as mongo_errors

    PYMONGO_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - exercised only where pymongo is missing
    pymongo = None
    mongo_errors = None
    PYMONGO_IMPORT_ERROR = traceback.format_exc()


def connection_spec(with_defaults: bool = True) -> dict:
    """Argument spec of one MongoDB connection (``login_uri`` or host/port/user options)."""

    def d(value: Any) -> Any:
        return value if with_defaults else None

    return {
        "login_uri": {"type": "str", "no_log": True, "aliases": ["uri"]},
        "login_host": {"type": "str", "default": d("localhost")},
        "login_port": {"type": "int", "default": d(27017)},
        "login_user": {"type": "str"},
        "login_password": {"type": "str", "no_log": True},
        "login_database": {"type": "str", "default": d("admin")},
        "tls": {"type": "bool", "default": d(False)},
        "tls_ca_file": {"type": "path"},
        "tls_certificate_key_file": {"type": "path"},
        "tls_allow_invalid_certificates": {"type": "bool", "default": d(False)},
        "direct_connection": {"type": "bool"},
        "replica_set": {"type": "str"},
        "connect_timeout": {"type": "int", "default": d(10)},
        "connection_options": {"type": "dict", "default": d({})},
    }


def endpoint_spec() -> dict:
    return {"type": "dict", "options": connection_spec(with_defaults=False)}


def redact_uri(uri: str) -> str:
    """The URI with its password replaced by ``***``, for messages and results."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment))


@dataclasses.dataclass(frozen=True)
class MongoConnection:
    uri: str = dataclasses.field(default="", repr=False)
    host: str = "localhost"
    port: int = 27017
    user: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    auth_source: str = "admin"
    tls: bool = False
    tls_ca_file: str | None = None
    tls_certificate_key_file: str | None = None
    tls_allow_invalid_certificates: bool = False
    direct_connection: bool | None = None
    replica_set: str | None = None
    connect_timeout: int = 10
    options: dict = dataclasses.field(default_factory=dict)

    def label(self) -> str:
        """Where we connect, for messages: host and port, never the password.

        Ansible masks every occurrence of a ``no_log`` value, so a label equal to ``login_uri`` (a URI
        without a password) would print as ``********``: without a password only ``user@host:port``
        is shown, which can never equal a URI.
        """
        if self.uri:
            parts = urlsplit(self.uri)
            if parts.password is not None:
                return redact_uri(self.uri)
            return parts.netloc or self.uri.split("://", 1)[-1].split("/", 1)[0]
        user = f"{self.user}@" if self.user else ""
        return f"mongodb://{user}{self.host}:{self.port}/"

    def client_args(self) -> tuple[str, dict]:
        """(uri, keyword arguments) for ``pymongo.MongoClient``; credentials go in keywords, not in the URI we build."""
        uri = self.uri or f"mongodb://{quote_plus(self.host) if ':' not in self.host else '[' + self.host + ']'}:{self.port}/"
        kw: dict[str, Any] = {
            "serverSelectionTimeoutMS": self.connect_timeout * 1000,
            "connectTimeoutMS": self.connect_timeout * 1000,
            "appname": "dualboot.db",
        }
        if self.user:
            kw["username"] = self.user
            kw["password"] = self.password
            kw["authSource"] = self.auth_source
        if self.tls:
            kw["tls"] = True
            if self.tls_ca_file:
                kw["tlsCAFile"] = self.tls_ca_file
            if self.tls_certificate_key_file:
                kw["tlsCertificateKeyFile"] = self.tls_certificate_key_file
            if self.tls_allow_invalid_certificates:
                kw["tlsAllowInvalidCertificates"] = True
        if self.direct_connection is not None:
            kw["directConnection"] = self.direct_connection
        if self.replica_set:
            kw["replicaSet"] = self.replica_set
        kw.update(self.options)
        return uri, kw


def from_params(params: dict, side: str | None = None) -> MongoConnection:
    merged = {k: params.get(k) for k in connection_spec()}
    if side and params.get(side):
        merged.update({k: v for k, v in params[side].items() if v is not None})
    for key, spec in connection_spec().items():
        if merged.get(key) is None and "default" in spec:
            merged[key] = spec["default"]
    return MongoConnection(
        uri=merged.get("login_uri") or "",
        host=merged["login_host"],
        port=int(merged["login_port"]),
        user=merged.get("login_user"),
        password=merged.get("login_password"),
        auth_source=merged["login_database"],
        tls=bool(merged["tls"]),
        tls_ca_file=merged.get("tls_ca_file"),
        tls_certificate_key_file=merged.get("tls_certificate_key_file"),
        tls_allow_invalid_certificates=bool(merged["tls_allow_invalid_certificates"]),
        direct_connection=merged.get("direct_connection"),
        replica_set=merged.get("replica_set"),
        connect_timeout=int(merged["connect_timeout"]),
        options=dict(merged.get("connection_options") or {}),
    )


def connect(conn: MongoConnection) -> Any:
    """A connected ``MongoClient`` (server reachable and credentials accepted) or :class:`ConnectionFailed`."""
    if pymongo is None:
        raise MissingDependency(
            "the Python library pymongo is not installed on the host running this task.",
            hint="pip install pymongo there (see requirements.txt).",
        )
    uri, kw = conn.client_args()
    try:
        client = pymongo.MongoClient(uri, **kw)
        client.admin.command("ping")
    except mongo_errors.OperationFailure as exc:
        if exc.code in (18, 13):
            reason = exc.details.get("errmsg", exc) if exc.details else exc
            raise ConnectionFailed(
                f"MongoDB at {conn.label()} refused the credentials: {reason}",
                hint="check login_user/login_password and login_database (the authentication database).",
            ) from None
        raise ConnectionFailed(f"MongoDB at {conn.label()} failed the first command: {exc}") from None
    except (mongo_errors.ConfigurationError, mongo_errors.InvalidURI) as exc:
        raise ConnectionFailed(
            f"invalid MongoDB connection settings for {conn.label()}: {exc}", hint="correct login_uri or the connection options."
        ) from None
    except mongo_errors.PyMongoError as exc:
        raise ConnectionFailed(
            f"cannot reach MongoDB at {conn.label()}: {str(exc).split(', Timeout', maxsplit=1)[0]}",
            hint="check that the server runs and is reachable (login_uri or login_host/login_port, firewall, TLS options).",
        ) from None
    return client
