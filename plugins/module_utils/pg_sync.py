# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Continuous sync of two PostgreSQL boot entries with logical replication.

A *stream* carries one database (the **source**, the publisher) into another (the **target**, the
subscriber). Everything a stream creates is named for the deployment and the entry it feeds,
``dualboot_<name>_<entry>``: the publication and the replication slot on the source, the
subscription on the target. Names are deterministic, so cleanup never depends on remembering them.
The publication's comment (JSON) records what the stream was created for: direction, tables, the
schema fingerprint of the published tables (to detect DDL on the source while syncing) and the
subscription's oid (to find the table synchronisation slots of an interrupted initial copy).

States (the ``postgresql_sync`` module):

- ``preflight``: what the stream needs and what is missing (wal_level, slots, senders, workers,
  replication privilege, table ownership, tables without a replica identity, large objects,
  unlogged tables, a frozen source, reachability of the source from the target server), and, with
  migrations, whether they are replication-compatible: they are applied to a scratch copy of the
  schema on the target server and the schema diff is classified (drops, renames, type changes,
  new NOT NULL columns without default... are refused and the copy-based stage named instead).
- ``started``: the target database is rebuilt from the source's schema (temporary name, renamed
  into place), the publication and the subscription are created; the subscriber's table sync
  workers copy the tables in parallel (``max_sync_workers_per_subscription``).
- ``caught_up``: waits, bounded, until every table is synchronised and the subscriber has applied
  the source's WAL up to a position (default: the current one).
- ``sequences``: copies sequence values source → target (logical replication does not); a
  target sequence is never moved backwards.
- ``stopped``: drops the subscription, the slot (also the table sync slots of an interrupted
  copy) and the publication; idempotent, tolerates a missing database or subscription, and
  reports anything it could not remove.
- ``reverse``: a stream without initial copy into a target that already holds the same rows
  (the fallback after a cutover), publishing only the columns the target has (PostgreSQL 15
  column lists), so a migration's new columns stay out of it.
- ``status``: stream health (tables, lag in bytes and seconds, errors, retained WAL), guardrails
  for a cutover (lag, long write transactions, DDL on the source since the start, pending DDL)
  and whether the reverse stream can be started.
- ``handover``: the database half of a cutover or rollback in one task, so the write pause is
  short: PAUSE PgBouncer aliases, freeze the source, wait until the target has applied everything
  up to the freeze position, copy sequences, stop the stream, start the stream back (target →
  source, without copy), thaw the target if it was frozen. Bounded by ``timeout``; on any failure
  every step is undone (the stream into the target is started again from the still frozen source)
  and the source serves again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable

from ansible_collections.dualboot.db.plugins.module_utils import pg_freeze, pg_privileges, pgbouncer
from ansible_collections.dualboot.db.plugins.module_utils.errors import (
    ConnectionFailed,
    DualbootError,
    InvalidInput,
    OperationFailed,
    SafetyRefusal,
)
from ansible_collections.dualboot.db.plugins.module_utils.pg_backup import (
    TargetBuild,
    check_protection,
    conninfo_dbname,
    create_database,
    database_properties,
    find_tool,
    human_bytes,
    run_tool,
    temp_name,
    tool_env,
)
from ansible_collections.dualboot.db.plugins.module_utils.postgresql import PgConnection, connect, from_params, server_version

try:
    import psycopg
    from psycopg import sql
except ImportError:  # pragma: no cover - the module reports the missing library first
    psycopg = None
    sql = None

STATES = ("preflight", "started", "caught_up", "sequences", "stopped", "reverse", "status", "handover")
OWN_SCHEMA = "dualboot"
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast", OWN_SCHEMA)
POLL = 0.02
MAX_NAME = 63

# Tables a stream publishes: ordinary and partitioned tables (partitions go through their root),
# permanent ones (unlogged and temporary tables are not WAL-logged, so they cannot be published).
Q_TABLES = """
SELECT c.oid, n.nspname, c.relname, c.relkind, c.relpersistence, c.relreplident,
       pg_get_userbyid(c.relowner), pg_total_relation_size(c.oid), c.reltuples::bigint,
       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) AS has_pk,
       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident) AS has_ri_index
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'dualboot')
  AND n.nspname NOT LIKE 'pg\\_temp\\_%%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY n.nspname, c.relname
"""

# Columns with what a replication stream cares about; attnum order.
Q_COLUMNS = """
SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       a.atthasdef, a.attgenerated <> '' AS generated,
       COALESCE((SELECT true FROM pg_index i WHERE i.indrelid = c.oid AND (i.indisreplident OR
                 (i.indisprimary AND c.relreplident = 'd')) AND a.attnum = ANY(i.indkey)), false) AS identity_column
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY n.nspname, c.relname, a.attnum
"""

Q_SEQUENCES = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'S' AND c.relpersistence = 'p'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'dualboot')
ORDER BY 1, 2
"""


# ---------------------------------------------------------------------------------------------
# Names and small helpers
# ---------------------------------------------------------------------------------------------


def stream_name(deployment: str, entry: str) -> str:
    """``dualboot_<deployment>_<entry>`` as a valid slot name ([a-z0-9_], at most 63 bytes)."""
    if not deployment or not entry:
        raise InvalidInput("name and entry are required: they name the stream (dualboot_<name>_<entry>).")
    raw = f"dualboot_{deployment}_{entry}"
    name = re.sub(r"[^a-z0-9_]", "_", raw.lower())
    if len(name) > MAX_NAME:
        digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
        name = name[: MAX_NAME - 9] + "_" + digest
    return name


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _qualified(schema: str, table: str) -> str:
    return f"{schema}.{table}"


def _conninfo_value(value: str) -> str:
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def conninfo(source: PgConnection, address: dict | None = None) -> str:
    """Connection string the target *server* uses to reach the source (a subscription's CONNECTION).

    The password is in it (PostgreSQL keeps it in pg_subscription, readable by superusers only);
    it never appears in results or messages: use :func:`conninfo_label` for those.
    """
    address = address or {}
    host = address.get("host") or source.address or "localhost"
    port = address.get("port") or source.port
    parts = {
        "host": host,
        "port": str(port),
        "dbname": source.dbname,
        "user": source.user,
        "sslmode": source.sslmode,
        "connect_timeout": str(source.connect_timeout),
    }
    if source.password:
        parts["password"] = source.password
    return " ".join(f"{k}={_conninfo_value(v)}" for k, v in parts.items())


def conninfo_label(source: PgConnection, address: dict | None = None) -> str:
    address = address or {}
    host = address.get("host") or source.address or "localhost"
    port = address.get("port") or source.port
    return f"{source.user}@{host}:{port}/{source.dbname}"


class _Db:
    """An autocommit session that may write even in a frozen database (freeze sets a read-only default)."""

    def __init__(self, conn: PgConnection) -> None:
        self.conn = conn
        self.pg = connect(conn, autocommit=True)
        self.pg.execute("SET default_transaction_read_only = off")

    @property
    def major(self) -> int:
        return self.pg.info.server_version // 10000

    def all(self, stmt: Any, params: Any = None) -> list:
        return self.pg.execute(stmt, params).fetchall()

    def one(self, stmt: Any, params: Any = None) -> Any:
        row = self.pg.execute(stmt, params).fetchone()
        return row[0] if row else None

    def run(self, stmt: Any, params: Any = None) -> None:
        self.pg.execute(stmt, params)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.pg.close()


@contextlib.contextmanager
def _session(conn: PgConnection):
    d = _Db(conn)
    try:
        yield d
    finally:
        d.close()


def _database_exists(conn: PgConnection, maintenance_db: str = "postgres") -> bool:
    with connect(conn.with_db(maintenance_db), autocommit=True) as c:
        return c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (conn.dbname,)).fetchone() is not None


def _lsn_ge(d: _Db, a: str | None, b: str) -> bool:
    return bool(a) and bool(d.one("SELECT %s::pg_lsn >= %s::pg_lsn", (a, b)))


# ---------------------------------------------------------------------------------------------
# What the source publishes
# ---------------------------------------------------------------------------------------------


def tables(d: _Db) -> list[dict]:
    out = []
    for oid, nsp, rel, kind, persistence, replident, owner, size, rows, has_pk, has_ri in d.all(Q_TABLES):
        out.append(
            {
                "oid": oid,
                "schema": nsp,
                "table": rel,
                "name": _qualified(nsp, rel),
                "partitioned": kind == "p",
                "persistence": persistence,
                "replica_identity": {"d": "default", "n": "nothing", "f": "full", "i": "index"}[replident],
                "owner": owner,
                "bytes": int(size or 0),
                "rows": max(int(rows or 0), 0),
                "has_pk": has_pk,
                "has_ri_index": has_ri,
            }
        )
    return out


def columns(d: _Db, oids: list[int]) -> dict:
    """``{"schema.table": [{"name", "type", "not_null", "has_default", "generated", "identity"}]}``."""
    out: dict = {}
    if not oids:
        return out
    for nsp, rel, col, typ, notnull, hasdef, generated, ident in d.all(Q_COLUMNS, (oids,)):
        out.setdefault(_qualified(nsp, rel), []).append(
            {"name": col, "type": typ, "not_null": notnull, "has_default": hasdef, "generated": generated, "identity": ident}
        )
    return out


def fingerprint(cols: dict) -> str:
    """Hash of the published tables' columns and types: DDL on the source changes it."""
    canon = sorted((t, [(c["name"], c["type"], c["not_null"]) for c in cs]) for t, cs in cols.items())
    return hashlib.sha256(json.dumps(canon).encode()).hexdigest()[:16]


def identity_problem(t: dict) -> str | None:
    """Why UPDATE/DELETE of this table cannot be published, or None."""
    ri = t["replica_identity"]
    if ri == "full" or (ri == "index" and t["has_ri_index"]) or (ri == "default" and t["has_pk"]):
        return None
    return "its replica identity is NOTHING" if ri == "nothing" else "it has no primary key (and no replica identity index)"


# ---------------------------------------------------------------------------------------------
# preflight
# ---------------------------------------------------------------------------------------------


def _settings(d: _Db, names: list[str]) -> dict:
    return dict(d.all("SELECT name, setting FROM pg_settings WHERE name = ANY(%s)", (names,)))


def _role(d: _Db) -> dict:
    row = d.all("SELECT rolsuper, rolreplication, current_user FROM pg_roles WHERE rolname = current_user")[0]
    return {"superuser": row[0], "replication": row[1], "name": row[2]}


def _frozen(d: _Db) -> bool:
    return bool(
        d.one(
            "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %s AND p.proname = %s",
            (pg_freeze.SCHEMA, pg_freeze.FUNCTION),
        )
    )


# The publisher of the stream into the staged entry needs nothing newer than 13 (it publishes whole tables);
# the staged entry publishes the stream back with column lists (15).
MIN_SOURCE_VERSION = 130000
MIN_TARGET_VERSION = 150000


def _source_checks(d: _Db, name: str, replica_identity_full: list[str]) -> tuple[list[str], list[str], dict]:
    problems: list[str] = []
    warnings: list[str] = []
    s = _settings(d, ["wal_level", "max_replication_slots", "max_wal_senders", "server_version_num"])
    version = int(s["server_version_num"])
    facts: dict = {"server_version_num": version, "wal_level": s["wal_level"]}
    if version < MIN_SOURCE_VERSION:
        problems.append(
            f"the default entry runs PostgreSQL {version // 10000}: continuous sync needs {MIN_SOURCE_VERSION // 10000} or newer."
        )
    if s["wal_level"] != "logical":
        problems.append(
            f"wal_level is {s['wal_level']} on the default entry's server: set wal_level = logical in postgresql.conf and restart "
            "the server (a restart of the live server: plan it, or use the copy-based stage)."
        )
    slots_used = d.one("SELECT count(*) FROM pg_replication_slots WHERE slot_name <> %s", (name,))
    senders_used = d.one("SELECT count(*) FROM pg_stat_replication")
    facts.update(
        {
            "max_replication_slots": int(s["max_replication_slots"]),
            "replication_slots_used": slots_used,
            "max_wal_senders": int(s["max_wal_senders"]),
            "wal_senders_used": senders_used,
        }
    )
    # One slot for the stream, plus one per table sync worker during the initial copy.
    if int(s["max_replication_slots"]) - slots_used < 1:
        problems.append(
            f"no free replication slot on the default entry's server (max_replication_slots = {s['max_replication_slots']}, "
            f"{slots_used} in use): raise max_replication_slots (restart needed) or drop unused slots."
        )
    if int(s["max_wal_senders"]) - senders_used < 1:
        problems.append(
            f"no free WAL sender on the default entry's server (max_wal_senders = {s['max_wal_senders']}, {senders_used} in use): "
            "raise max_wal_senders (restart needed)."
        )
    facts["source_role"] = _role(d)  # its privileges: pg_privileges.sync_needs
    tabs = tables(d)
    facts["tables"] = len(tabs)
    facts["bytes"] = sum(t["bytes"] for t in tabs if t["persistence"] == "p")
    unlogged = [t["name"] for t in tabs if t["persistence"] == "u"]
    if unlogged:
        problems.append(
            f"unlogged table(s) {', '.join(unlogged)} are not WAL-logged and cannot be replicated: "
            "ALTER TABLE ... SET LOGGED on the default entry, or use the copy-based stage."
        )
    accepted = set(replica_identity_full)
    unknown = accepted - {t["name"] for t in tabs}
    if unknown:
        problems.append(f"replica_identity_full names table(s) that are not published: {', '.join(sorted(unknown))} (use schema.table).")
    for t in tabs:
        if t["persistence"] == "u":
            continue
        why = identity_problem(t)
        if why and t["name"] not in accepted:
            problems.append(
                f"table {t['name']}: {why}, so its UPDATEs and DELETEs cannot be replicated - and once it is published, the "
                f"default entry would refuse them. Add a primary key (ALTER TABLE {t['name']} ADD PRIMARY KEY (...)), or accept "
                f"REPLICA IDENTITY FULL by listing it in replica_identity_full: every UPDATE/DELETE then logs the whole old row, and "
                f"the staged entry scans the table for each changed row ({human_bytes(t['bytes'])}, ~{t['rows']} rows)."
            )
        elif why:
            warnings.append(
                f"table {t['name']} gets REPLICA IDENTITY FULL when the stream starts: each UPDATE/DELETE logs the whole old row and "
                f"costs the staged entry a scan of {human_bytes(t['bytes'])}."
            )
    large_objects = d.one("SELECT count(*) FROM pg_largeobject_metadata")
    facts["large_objects"] = large_objects
    if large_objects:
        problems.append(
            f"the default entry holds {large_objects} large object(s) (pg_largeobject): logical replication does not carry them. "
            "Use the copy-based stage (dualboot_stage_method: copy), or move them into bytea columns."
        )
    if _frozen(d):
        problems.append("the default entry is frozen (postgresql_freeze): thaw it, or finish the cutover that froze it.")
    mviews = [
        r[0] for r in d.all("SELECT schemaname || '.' || matviewname FROM pg_matviews WHERE schemaname <> ALL(%s)", (list(SYSTEM_SCHEMAS),))
    ]
    if mviews:
        warnings.append(f"materialized view(s) {', '.join(mviews)} are created empty on the staged entry: REFRESH them in a migration.")
    warnings.append(
        "schema changes (DDL) are not replicated: changing the default entry's tables while syncing stops or corrupts the "
        "stream; status reports it (ddl_on_source) and cutover refuses it."
    )
    return problems, warnings, facts


def _target_checks(d: _Db) -> tuple[list[str], list[str], dict]:
    problems: list[str] = []
    warnings: list[str] = []
    s = _settings(
        d,
        ["server_version_num", "max_logical_replication_workers", "max_sync_workers_per_subscription", "max_worker_processes"],
    )
    version = int(s["server_version_num"])
    role = _role(d)
    facts = {
        "server_version_num": version,
        "target_role": role,
        "max_logical_replication_workers": int(s["max_logical_replication_workers"]),
        "max_sync_workers_per_subscription": int(s["max_sync_workers_per_subscription"]),
    }
    if version < MIN_TARGET_VERSION:
        problems.append(
            f"the staged entry's server runs PostgreSQL {version // 10000}: continuous sync needs {MIN_TARGET_VERSION // 10000} or "
            "newer there (the stream back publishes only the columns the fallback has: column lists, PostgreSQL 15)."
        )
    used = d.one("SELECT count(*) FROM pg_stat_subscription")
    if int(s["max_logical_replication_workers"]) - used < 2:
        problems.append(
            f"max_logical_replication_workers = {s['max_logical_replication_workers']} on the staged entry's server, {used} in use: "
            "the stream needs one apply worker plus table sync workers; raise it (restart needed)."
        )
    if int(s["max_sync_workers_per_subscription"]) < 2:
        warnings.append(
            f"max_sync_workers_per_subscription = {s['max_sync_workers_per_subscription']}: the initial copy runs one table at a time; "
            "raise it (reload) for a parallel copy."
        )
    return problems, warnings, facts


def _probe(target: PgConnection, source: PgConnection, address: dict | None, name: str) -> str | None:
    """Can the target *server* open a replication connection to the source? A disabled subscription
    without slot connects (to list the tables) and is dropped again without touching the source.

    It subscribes to a publication of its own name, which does not exist: listing the tables of the
    stream's real publication (left by an interrupted stage) would look them up in the database
    ``postgres`` and fail on a missing table, reported as if the connection were refused."""
    probe = (name[: MAX_NAME - 6] + "_probe")[:MAX_NAME]
    with _probe_database(target) as where, _session(where) as d:
        _quiet_log(d)  # the statement holds the password: keep it out of the log
        with contextlib.suppress(psycopg.Error):
            _drop_subscription_local(d, probe)
        try:
            d.run(
                sql.SQL(
                    "CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} WITH (connect = true, enabled = false, create_slot = false, "
                    "slot_name = NONE, copy_data = false)"
                ).format(sql.Identifier(probe), sql.Literal(conninfo(source, address)), sql.Identifier(probe))
            )
        except psycopg.Error as exc:
            text = (exc.diag.message_primary or str(exc)).strip() if hasattr(exc, "diag") else str(exc)
            if source.password:
                text = text.replace(source.password, "********")
            return (
                f"the staged entry's server cannot open a replication connection to {conninfo_label(source, address)}: {text}. "
                "Check pg_hba.conf of the default entry's server (it must accept the staged server's address for this database "
                "and user), the firewall, and source.replication_host/replication_port when the servers reach each other under "
                "other names than this host does."
            )
        _drop_subscription_local(d, probe)
    return None


# Settings that would write a statement into the server log; only superusers (or a role granted SET ON
# PARAMETER, PostgreSQL 15+) may change them for a session.
LOG_SETTINGS = (("log_min_error_statement", "panic"), ("log_statement", "none"))


def _quiet_log(d: _Db) -> bool:
    """Keep this session's statements out of the server log, when the role may; False when it may not
    (preflight warned: :func:`_log_warning`)."""
    try:
        for setting, value in LOG_SETTINGS:
            d.run(sql.SQL("SET {} = {}").format(sql.Identifier(setting), sql.Literal(value)))
    except psycopg.errors.InsufficientPrivilege:
        return False
    return True


def _log_warning(d: _Db, side: str) -> str | None:
    """What a subscriber's server may log of CREATE SUBSCRIPTION (it carries the publisher's password) when the
    login role may not turn that logging off for its session."""
    superuser, version, user = d.all(
        "SELECT rolsuper, current_setting('server_version_num')::int, current_user FROM pg_roles WHERE rolname = current_user"
    )[0]
    if superuser or (
        version >= 150000
        and d.one("SELECT has_parameter_privilege('log_statement', 'SET') AND has_parameter_privilege('log_min_error_statement', 'SET')")
    ):
        return None
    log_statement, level = d.one("SHOW log_statement"), d.one("SHOW log_min_error_statement")
    if log_statement in ("ddl", "all"):
        when = f"every time it runs (log_statement = {log_statement})"
    elif level not in ("log", "fatal", "panic"):
        when = f"when it fails (log_min_error_statement = {level})"
    else:
        return None
    return (
        f"the {side}'s server logs CREATE SUBSCRIPTION {when}, and that statement carries the other entry's password: the "
        f"login role is not a superuser, so it cannot switch statement logging off for it. Ask the administrator for "
        f"GRANT SET ON PARAMETER log_statement, log_min_error_statement TO {user} (PostgreSQL 15+), or keep that server "
        "log as secret as the password."
    )


@contextlib.contextmanager
def _probe_database(target: PgConnection):
    """A database of the target server the login role may create a subscription in (CREATE on it: a
    non-superuser on PostgreSQL 16+ has it on its own databases, seldom on ``postgres``): the staged
    database when it exists, else ``postgres``, else a scratch database dropped afterwards."""
    with connect(target.with_db("postgres"), autocommit=True) as c:
        cur = c.cursor()
        for db in (target.dbname, "postgres"):
            cur.execute("SELECT has_database_privilege(oid, 'CREATE') FROM pg_database WHERE datname = %s AND datallowconn", (db,))
            row = cur.fetchone()
            if row and row[0]:
                yield target.with_db(db)
                return
        scratch = temp_name(target.dbname, "probe")
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
        try:
            yield target.with_db(scratch)
        finally:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch)))


def _drop_subscription_local(d: _Db, name: str) -> bool:
    """Drop a subscription without contacting its publisher (its slot, if any, is the caller's business)."""
    if _subscription(d, name) is None:
        return False
    ident = sql.Identifier(name)
    d.run(sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(ident))
    d.run(sql.SQL("ALTER SUBSCRIPTION {} SET (slot_name = NONE)").format(ident))
    d.run(sql.SQL("DROP SUBSCRIPTION {}").format(ident))
    return True


def _majors_problem(source_version: int, target_version: int) -> list[str]:
    """A stream into an older major: its schema copy would not load there, and the stream back would need the
    old publisher to carry column lists it may not have."""
    if source_version // 10000 <= target_version // 10000:
        return []
    return [
        f"the default entry runs PostgreSQL {source_version // 10000}, the staged entry the older PostgreSQL "
        f"{target_version // 10000}: continuous sync stages into the same or a newer major (a major-version upgrade), "
        "never into an older one."
    ]


def preflight(
    source: PgConnection,
    target: PgConnection,
    name: str,
    address: dict | None = None,
    replica_identity_full: list[str] | None = None,
    migrations: list | None = None,
    migrations_dir: str | None = None,
    check_mode: bool = False,
    raise_on_problems: bool = True,
) -> dict:
    started = time.monotonic()
    with _session(source) as d:
        problems, warnings, facts = _source_checks(d, name, list(replica_identity_full or []))
    with _session(target.with_db("postgres")) as d:
        p2, w2, f2 = _target_checks(d)
    problems += p2 + _majors_problem(facts["server_version_num"], f2["server_version_num"])
    warnings += w2
    facts.update(f2)
    for conn, side in ((target.with_db("postgres"), "staged entry"), (source, "default entry")):
        with _session(conn) as d:
            warnings += [w for w in [_log_warning(d, side)] if w]
    missing = pg_privileges.needs("sync", pg_privileges.Entry(source), pg_privileges.Entry(target))
    problems += [f"the login role lacks {m.privilege} on {m.entry} (for {m.needed_for}): {m.grant}" for m in missing]
    if same_database(source, target):
        problems.append(f"source and target are the same database ({source.label()}).")
    elif source.same_server(target):
        problems.append(
            f"source and target are databases of the same server ({source.label()}, {target.label()}): a subscription that "
            "creates its replication slot on its own server waits forever for itself. Stage into another server, or by copy."
        )
    if not p2 and not missing:
        why = _probe(target, source, address, name)
        if why:
            problems.append(why)
    compat = None
    if migrations or migrations_dir:
        if check_mode:
            warnings.append("check mode: the migrations were not tried on a scratch copy of the schema.")
        else:
            compat = check_migrations(source, target, migrations, migrations_dir)
            if not compat["compatible"]:
                problems += compat["refused"]
            warnings += compat["cautions"]
    result = {
        "changed": False,
        "ready": not problems,
        "problems": problems,
        "warnings": warnings,
        "facts": facts,
        "stream": name,
        "source": source.label(),
        "target": target.label(),
        "seconds": round(time.monotonic() - started, 3),
    }
    if compat is not None:
        result["migration_check"] = compat
    if missing:
        result["missing"] = [m.as_dict() for m in missing]
        result["grants"] = list(dict.fromkeys(m.grant for m in missing))
    if problems and raise_on_problems:
        raise SafetyRefusal(
            f"continuous sync of {source.label()} into {target.label()} is not possible yet: " + " | ".join(problems),
            hint="fix what is listed, or stage by copy (dualboot_stage_method: copy, postgresql_clone).",
            **{k: v for k, v in result.items() if k not in ("changed", "msg")},
        )
    return result


def same_database(a: PgConnection, b: PgConnection) -> bool:
    return a.same_server(b) and a.dbname == b.dbname


# ---------------------------------------------------------------------------------------------
# Replication-compatible migrations
# ---------------------------------------------------------------------------------------------

_INDEX_ON = re.compile(r" ON (?:ONLY )?(\S+) USING ")
DML_WORDS = {"INSERT", "UPDATE", "DELETE", "TRUNCATE", "MERGE", "COPY"}
COPY_ALTERNATIVE = (
    "a stream carries the default entry's rows in the default entry's shape, so this change cannot be made on a syncing "
    "entry. Stage it by copy instead (dualboot_stage_method: copy: the default entry is copied and frozen at cutover), "
    "or split it expand/contract: add the new shape now (new columns or tables, filled by the application or a trigger) "
    "and drop the old one after the cutover."
)


# Table attributes (as the schema diff names them) a migration may change on a replicated table.
_TABLE_ATTRIBUTES_A_STREAM_CARRIES = ("comment", "options", "row_security", "force_row_security", "replica_identity")


def classify(changes: list[dict], replicated: set[str], ri_before: dict, ri_after: dict) -> tuple[list[str], list[str]]:
    """(refused, cautions) for the diff records of a migration against the replicated tables."""
    refused: list[str] = []
    cautions: list[str] = []

    def table_of(r: dict) -> str:
        if r["kind"] == "index":
            m = _INDEX_ON.search(str(r["after"] or r["before"] or ""))
            return m.group(1).replace('"', "") if m else ""
        base = r["name"].split(".", 1)[0] if r["kind"] in ("column", "constraint", "trigger", "policy") else r["name"]
        return _qualified(r["schema"], base)

    for r in changes:
        t = table_of(r)
        if t not in replicated:
            continue
        what = f"{r['kind']} {r['schema']}.{r['name']}"
        if r["kind"] == "table":
            if r["change"] == "removed":
                refused.append(f"table {t} is dropped or renamed, but the default entry keeps writing it")
            elif r["change"] == "modified" and r["attribute"] not in _TABLE_ATTRIBUTES_A_STREAM_CARRIES:
                refused.append(f"table {t} changes {r['attribute']} ({r['before']} -> {r['after']})")
        elif r["kind"] == "column":
            if r["change"] == "removed":
                refused.append(f"column {what.split(' ', 1)[1]} is dropped or renamed, but the default entry keeps writing it")
            elif (
                r["change"] == "added"
                and "NOT NULL" in str(r["after"])
                and "DEFAULT" not in str(r["after"])
                and "GENERATED" not in str(r["after"]).upper()
            ):
                refused.append(
                    f"new column {what.split(' ', 1)[1]} is NOT NULL without a default: rows the default entry inserts do not "
                    "have it, so applying them fails"
                )
            elif r["change"] == "modified" and r["attribute"] == "type":
                refused.append(f"column {what.split(' ', 1)[1]} changes type ({r['before']} -> {r['after']})")
            elif r["change"] == "modified" and r["attribute"] == "nullable" and r["after"] is False:
                refused.append(f"column {what.split(' ', 1)[1]} becomes NOT NULL: the default entry may still write NULL into it")
            elif r["change"] == "modified" and r["attribute"] in ("generated", "identity") and r["after"]:
                refused.append(f"column {what.split(' ', 1)[1]} becomes {r['attribute']}: replicated values cannot be written into it")
            elif r["change"] == "modified" and r["attribute"] == "collation":
                cautions.append(f"column {what.split(' ', 1)[1]} changes collation: indexes on it sort differently")
        elif r["kind"] == "constraint":
            text = str(r["after"] or r["before"] or "")
            if "PRIMARY KEY" in text and r["change"] in ("removed", "modified"):
                refused.append(f"the primary key of {t} changes ({r['before']} -> {r['after']}): the stream finds rows by it")
            elif r["change"] == "added" and ("UNIQUE" in text or "CHECK" in text or "FOREIGN KEY" in text or "EXCLUDE" in text):
                cautions.append(
                    f"new constraint {r['name']} on replicated table {t}: if the default entry writes a row that violates it, the "
                    "stream stops at that row (status shows apply errors) until it is fixed"
                )
        elif r["kind"] == "index" and r["change"] == "added" and "UNIQUE" in str(r["after"]):
            cautions.append(
                f"new unique index {r['name']} on replicated table {t}: a duplicate written on the default entry stops the stream"
            )
        elif r["kind"] == "trigger" and r["change"] == "added":
            cautions.append(
                f"new trigger {r['name']}: replicated rows do not fire it (the apply worker runs with session_replication_role "
                "= replica); rows written after the cutover do"
            )
    for t in sorted(replicated & set(ri_before) & set(ri_after)):
        if ri_before[t] != ri_after[t]:
            refused.append(f"the replica identity of {t} changes ({ri_before[t]} -> {ri_after[t]})")
    return refused, cautions


def _dml_statements(migrations: list | None, migrations_dir: str | None) -> list[str]:
    from ansible_collections.dualboot.db.plugins.module_utils import pg_migrate

    found = []
    for m in pg_migrate.collect(migrations, migrations_dir):
        for st in pg_migrate.split_sql(m.sql):
            words = st.first_words(1)
            if words and words[0] in DML_WORDS:
                found.append(f"migration {m.version} line {st.line}: {words[0]}")
    return found


def copy_schema(source: PgConnection, dest: PgConnection, major: int, bin_dir: str | None = None) -> dict:
    """Load the source's schema (and the data of our own ``dualboot`` schema: the migration history)
    into the empty database ``dest``; publications and subscriptions are left out."""
    started = time.monotonic()
    pg_dump = find_tool("pg_dump", major, bin_dir)
    pg_restore = find_tool("pg_restore", major, bin_dir)
    work = tempfile.mkdtemp(prefix="dualboot-sync-")
    os.chmod(work, 0o700)
    try:
        schema_file = os.path.join(work, "schema.dump")
        env = tool_env(source)
        common = [
            pg_dump,
            "--no-password",
            "--format=custom",
            "--no-publications",
            "--no-subscriptions",
            "-d",
            conninfo_dbname(source.dbname),
        ]
        run_tool([*common, "--schema-only", f"--file={schema_file}"], env, f"pg_dump --schema-only of {source.label()}")
        files = [schema_file]
        with _session(source) as d:
            has_own = d.one(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'",
                (OWN_SCHEMA,),
            )
        if has_own:
            data_file = os.path.join(work, "dualboot.dump")
            run_tool([*common, "--data-only", f"--schema={OWN_SCHEMA}", f"--file={data_file}"], env, f"pg_dump of schema {OWN_SCHEMA}")
            files.append(data_file)
        denv = tool_env(dest)
        for f in files:
            run_tool(
                [pg_restore, "--no-password", "--exit-on-error", "-d", conninfo_dbname(dest.dbname), f],
                denv,
                f"pg_restore of the schema into {dest.label()}",
                disk="the target server",
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"seconds": round(time.monotonic() - started, 3)}


def _replica_identities(conn: PgConnection) -> dict:
    with _session(conn) as d:
        return {t["name"]: t["replica_identity"] for t in tables(d)}


def check_migrations(
    source: PgConnection, target: PgConnection, migrations: list | None, migrations_dir: str | None, bin_dir: str | None = None
) -> dict:
    """Apply the migrations to a scratch copy of the source's schema on the target server and
    classify the schema diff: can a syncing entry take them?"""
    from ansible_collections.dualboot.db.plugins.module_utils import pg_diff, pg_migrate

    started = time.monotonic()
    maint = target.with_db("postgres")
    scratch = temp_name(target.dbname, "check")
    scratch_conn = target.with_db(scratch)
    with _session(source) as d:
        props = database_properties(d.pg.cursor())
        replicated = {t["name"] for t in tables(d) if t["persistence"] == "p"}
        major = int(d.one("SHOW server_version_num")) // 10000
    with connect(maint, autocommit=True) as c:
        major = max(major, server_version(c.cursor()) // 10000)  # the newer client tools (a major-version upgrade)
        create_database(c.cursor(), scratch, props)
    try:
        copy_schema(source, scratch_conn, major, bin_dir)
        ri_before = _replica_identities(scratch_conn)
        try:
            applied = pg_migrate.migrate(scratch_conn, migrations, migrations_dir)
        except DualbootError as exc:
            return {
                "compatible": False,
                "refused": [f"the migrations fail on a schema-only copy of the default entry: {exc.message}"],
                "cautions": [],
                "changes": [],
                "seconds": round(time.monotonic() - started, 3),
            }
        ri_after = _replica_identities(scratch_conn)
        diff = pg_diff.compare_schemas(source, scratch_conn)
    finally:
        with contextlib.suppress(Exception):
            with connect(maint, autocommit=True) as c:
                c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch)))
    refused, cautions = classify(diff["changes"], replicated, ri_before, ri_after)
    dml = _dml_statements(migrations, migrations_dir)
    if dml:
        cautions.append(
            "data changes in the migrations (" + "; ".join(dml[:5]) + (", ..." if len(dml) > 5 else "") + ") reach only the rows "
            "copied so far: rows the default entry writes later do not get them (repeat the backfill after the cutover)"
        )
    if refused:
        refused = [f"migration not replication-compatible: {r}" for r in refused]
        refused.append(COPY_ALTERNATIVE)
    return {
        "compatible": not refused,
        "refused": refused,
        "cautions": cautions,
        "changes": diff["summary"],
        "migrations": [m["version"] for m in applied.get("applied", [])],
        "seconds": round(time.monotonic() - started, 3),
    }


# ---------------------------------------------------------------------------------------------
# Starting and stopping a stream
# ---------------------------------------------------------------------------------------------


def _publication_comment(d: _Db, name: str) -> dict | None:
    rows = d.all("SELECT obj_description(oid, 'pg_publication') FROM pg_publication WHERE pubname = %s", (name,))
    if not rows:
        return None
    try:
        return json.loads(rows[0][0] or "{}")
    except ValueError:
        return {}


def _set_publication_comment(d: _Db, name: str, comment: dict) -> None:
    d.run(sql.SQL("COMMENT ON PUBLICATION {} IS {}").format(sql.Identifier(name), sql.Literal(json.dumps(comment, sort_keys=True))))


# PostgreSQL 13 hides pg_subscription.oid from non-superusers (14 made it public); pg_stat_subscription,
# readable by all, names it: NULL when another database of the server has a subscription of the same name.
_SUB_OID_PUBLIC = "s.oid"
_SUB_OID_13 = "(SELECT min(st.subid) FROM pg_stat_subscription st WHERE st.subname = s.subname HAVING count(DISTINCT st.subid) = 1)"


def _subscription(d: _Db, name: str) -> dict | None:
    readable = d.one("SELECT has_column_privilege('pg_catalog.pg_subscription', 'oid', 'SELECT')")
    rows = d.all(
        f"SELECT {_SUB_OID_PUBLIC if readable else _SUB_OID_13}, s.subenabled, s.subslotname FROM pg_subscription s "
        "WHERE s.subname = %s AND s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
        (name,),
    )
    if not rows:
        return None
    return {"oid": rows[0][0], "enabled": rows[0][1], "slot": rows[0][2]}


def partial_lists(column_lists: dict | None, cols: dict) -> dict:
    """The column lists that leave out a column the publisher replicates (generated columns are never
    published): only these need a column list, which PostgreSQL 15 brought; the others publish the table."""
    return {
        name: wanted
        for name, wanted in (column_lists or {}).items()
        if set(wanted) != {c["name"] for c in cols.get(name, []) if not c["generated"]}
    }


def _publication_list(source_tables: list[dict], column_lists: dict) -> Any:
    items = []
    for t in source_tables:
        ident = sql.Identifier(t["schema"], t["table"])
        if t["name"] in column_lists:
            cols = column_lists[t["name"]]
            items.append(sql.SQL("{} ({})").format(ident, sql.SQL(", ").join(sql.Identifier(c) for c in cols)))
        else:
            items.append(ident)
    return sql.SQL(", ").join(items)


def create_publication(
    d: _Db,
    name: str,
    target: PgConnection,
    direction: str,
    column_lists: dict | None = None,
    only: list[str] | None = None,
    replica_identity_full: list[str] | None = None,
) -> dict:
    """The publication of a stream, on an open session of the source; returns its comment."""
    tabs = [t for t in tables(d) if t["persistence"] == "p" and (only is None or t["name"] in only)]
    if not tabs:
        raise InvalidInput(f"{d.conn.label()} has no table to publish.", hint="a stream needs at least one table.")
    for t in replica_identity_full or []:
        schema, table = t.split(".", 1)
        d.run(sql.SQL("ALTER TABLE {} REPLICA IDENTITY FULL").format(sql.Identifier(schema, table)))
    cols = columns(d, [t["oid"] for t in tabs])
    lists = partial_lists(column_lists, cols)
    d.run(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(name)))
    d.run(
        sql.SQL("CREATE PUBLICATION {} FOR TABLE {} WITH (publish_via_partition_root = true)").format(
            sql.Identifier(name), _publication_list(tabs, lists)
        )
    )
    comment = {
        "dualboot": "stream",
        "direction": direction,
        "created": _now(),
        "target": target.label(),
        "tables": len(tabs),
        "bytes": sum(t["bytes"] for t in tabs),
        "fingerprint": fingerprint(cols),
        "source_system_identifier": d.one("SELECT system_identifier::text FROM pg_control_system()"),
    }
    if column_lists is not None:
        comment["column_lists"] = True
    _set_publication_comment(d, name, comment)
    return comment


def create_subscription(t: _Db, name: str, source: PgConnection, address: dict | None, copy_data: bool) -> dict:
    """The subscription of a stream (it creates the slot on the source), on an open session of the target."""
    # The statement carries the password: keep it out of the server log even when it fails.
    quiet = _quiet_log(t)
    # streaming (large transactions applied while they run) is PostgreSQL 14's: a 13 fallback receives them at commit.
    streaming = ", streaming = on" if int(t.one("SHOW server_version_num")) >= 140000 else ""
    try:
        t.run(
            sql.SQL(
                "CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} WITH (copy_data = {}, create_slot = true, slot_name = {}"
                + streaming
                + ")"
            ).format(
                sql.Identifier(name),
                sql.Literal(conninfo(source, address)),
                sql.Identifier(name),
                sql.Literal(copy_data),
                sql.Literal(name),
            )
        )
    except psycopg.Error as exc:
        text = str(exc).strip()
        if source.password:
            text = text.replace(source.password, "********")
        raise OperationFailed(
            f"cannot create subscription {name} on {t.conn.label()}: {text}",
            hint="run state=preflight: it names what is missing (privileges, slots, workers, reachability).",
        ) from None
    finally:
        if quiet:
            t.run("RESET log_min_error_statement")
            t.run("RESET log_statement")
    return _subscription(t, name)


def create_stream(
    source: PgConnection,
    target: PgConnection,
    name: str,
    copy_data: bool,
    address: dict | None,
    direction: str,
    column_lists: dict | None = None,
    only: list[str] | None = None,
    replica_identity_full: list[str] | None = None,
) -> dict:
    """Publication on the source, subscription (and slot) from the target. ``column_lists`` maps a
    table to the columns to publish (reverse streams); ``only`` limits the tables."""
    started = time.monotonic()
    with _session(source) as d:
        comment = create_publication(d, name, target, direction, column_lists, only, replica_identity_full)
        try:
            with _session(target) as t:
                sub = create_subscription(t, name, source, address, copy_data)
        except DualbootError:
            d.run(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(name)))
            raise
        comment["subscription_oid"] = sub["oid"]
        _set_publication_comment(d, name, comment)
    return {
        "name": name,
        "tables": comment["tables"],
        "bytes": comment["bytes"],
        "copy_data": copy_data,
        "direction": direction,
        "seconds": round(time.monotonic() - started, 3),
    }


def start(
    source: PgConnection,
    target: PgConnection,
    name: str,
    address: dict | None = None,
    replica_identity_full: list[str] | None = None,
    bin_dir: str | None = None,
    check_mode: bool = False,
) -> dict:
    """Rebuild the target from the source's schema and start the stream with an initial copy."""
    started = time.monotonic()
    if same_database(source, target):
        raise InvalidInput(f"source and target are the same database ({source.label()}).", hint="the target is the staged entry.")
    existing = stream_status(source, target, name)
    if existing["subscription_exists"] and existing["publication_exists"] and existing["slot_exists"]:
        return {
            "changed": False,
            "stream": stream_summary(name, source, target, address),
            "status": existing,
            "msg": f"stream {name} already runs from {source.label()} into {target.label()}",
            "seconds": round(time.monotonic() - started, 3),
        }
    if existing["subscription_exists"] or existing["publication_exists"] or existing["slot_exists"]:
        raise OperationFailed(
            f"a part of stream {name} exists already ({existing['summary']}).",
            hint="stop it first (state=stopped), then start it again.",
        )
    pre = preflight(source, target, name, address, replica_identity_full)
    if check_mode:
        return {
            "changed": True,
            "preflight": pre,
            "msg": f"would rebuild {target.label()} from the schema of {source.label()} and stream {pre['facts']['tables']} table(s)",
            "seconds": round(time.monotonic() - started, 3),
        }
    build = TargetBuild(target, "postgres", "replace")
    build.inspect()
    with _session(source) as d:
        props = database_properties(d.pg.cursor())
        src_sysid = d.one("SELECT system_identifier::text FROM pg_control_system()")
        # The newer client tools of the two: a major-version upgrade dumps the old schema with the new pg_dump.
        major = max(int(d.one("SHOW server_version_num")), build.server_version_num) // 10000
    check_protection(target, build.sysid, build.exists, (src_sysid, source.dbname), None, False, "replace")
    timings: dict = {}
    build.prepare(props)
    try:
        timings["schema_s"] = copy_schema(source, build.tmp_conn(), major, bin_dir)["seconds"]
        warnings = build.finish(props, False)
        swapped = build.commit()
    except BaseException:
        build.abort()
        raise
    if swapped["leftover"]:
        warnings.append(swapped["leftover"])
    stream = create_stream(source, target, name, True, address, "forward", replica_identity_full=replica_identity_full)
    timings["create_s"] = stream["seconds"]
    return {
        "changed": True,
        "stream": {**stream_summary(name, source, target, address), "tables": stream["tables"], "bytes": stream["bytes"]},
        "replaced": swapped["replaced"],
        "parallel_copy_workers": pre["facts"]["max_sync_workers_per_subscription"],
        "warnings": pre["warnings"] + warnings,
        "timings": timings,
        "msg": (
            f"rebuilt {target.label()} from the schema of {source.label()} and started stream {name}: {stream['tables']} table(s), "
            f"{human_bytes(stream['bytes'])}, copied by up to {pre['facts']['max_sync_workers_per_subscription']} table sync workers "
            "in parallel; next: state=caught_up"
        ),
        "seconds": round(time.monotonic() - started, 3),
    }


def stream_summary(name: str, source: PgConnection, target: PgConnection, address: dict | None = None) -> dict:
    """What the boot record keeps about a stream (no secret)."""
    return {
        "name": name,
        "publication": name,
        "slot": name,
        "subscription": name,
        "source": source.label(),
        "target": target.label(),
        "publisher_address": conninfo_label(source, address),
    }


def _drop_slot(d: _Db, slot: str, deadline: float) -> bool:
    """Drop a replication slot, ending the WAL sender that holds it first."""
    while True:
        rows = d.all("SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (slot,))
        if not rows:
            return False
        if rows[0][0]:
            d.one("SELECT pg_terminate_backend(%s)", (rows[0][0],))
        try:
            d.one("SELECT pg_drop_replication_slot(%s)", (slot,))
            return True
        except psycopg.errors.ObjectInUse:
            if time.monotonic() > deadline:
                raise OperationFailed(
                    f"replication slot {slot} stays in use on {d.conn.label()}.",
                    hint=f"end the WAL sender using it and run SELECT pg_drop_replication_slot('{slot}').",
                ) from None
            time.sleep(0.1)
        except psycopg.errors.UndefinedObject:
            return False


def stop(
    source: PgConnection,
    target: PgConnection,
    name: str,
    timeout: float = 30,
    check_mode: bool = False,
    drop_database: bool = False,
    being_replaced: tuple = (),
) -> dict:
    """Drop the subscription, the slot(s) and the publication of a stream; whatever exists, idempotent.

    ``drop_database`` then drops the target database too (finalize: the fallback is given up), refusing
    while any session is connected to it. A side named in ``being_replaced`` ("source", "target") is a
    cluster the stage is about to replace by a physical copy: when it is unreachable, what it held goes
    with it, so that is a note, not a failure."""
    started = time.monotonic()
    deadline = started + timeout
    dropped: list[str] = []
    notes: list[str] = []
    errors: list[str] = []
    sub_oid = None
    target_reachable = True
    try:
        if not _database_exists(target):
            target_reachable = False
            notes.append(f"database {target.dbname} does not exist on the target server: no subscription to drop there")
    except ConnectionFailed as exc:
        target_reachable = False
        if "target" in being_replaced:
            notes.append(f"target {target.label()} unreachable: the stage replaces that cluster, and any subscription {name} in it")
        else:
            errors.append(f"target {target.label()} unreachable ({exc.message}): its subscription {name} may remain")
    if target_reachable:
        try:
            with _session(target) as t:
                sub = _subscription(t, name)
                if sub:
                    sub_oid = sub["oid"]
                    if not check_mode:
                        try:
                            # Dropping it normally also drops its slot and any table sync slots on the source.
                            t.run(sql.SQL("DROP SUBSCRIPTION {}").format(sql.Identifier(name)))
                        except psycopg.Error as exc:
                            notes.append(f"DROP SUBSCRIPTION could not reach the source ({str(exc).strip()}); dropped it locally")
                            _drop_subscription_local(t, name)
                    dropped.append(f"subscription {name} on {target.label()}")
        except DualbootError as exc:
            errors.append(f"subscription {name} on {target.label()}: {exc.message}")
    try:
        with _session(source) as d:
            comment = _publication_comment(d, name)
            sub_oid = sub_oid or (comment or {}).get("subscription_oid")
            slots = [r[0] for r in d.all("SELECT slot_name FROM pg_replication_slots WHERE slot_name = %s", (name,))]
            if sub_oid:
                slots += [
                    r[0]
                    for r in d.all(
                        "SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE %s AND database = current_database()",
                        (f"pg\\_{sub_oid}\\_sync\\_%",),
                    )
                ]
            for slot in slots:
                if check_mode or _drop_slot(d, slot, deadline):
                    dropped.append(f"replication slot {slot} on {source.label()}")
            if comment is not None:
                if not check_mode:
                    d.run(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(name)))
                dropped.append(f"publication {name} on {source.label()}")
    except ConnectionFailed as exc:
        if "does not exist" in exc.message and "database" in exc.message:
            notes.append(f"database {source.dbname} does not exist on the source server: no publication to drop there")
            dropped += _drop_orphan_slots(source, name, deadline, check_mode)
        elif "source" in being_replaced:
            notes.append(f"source {source.label()} unreachable: the stage replaces that cluster, and any slot or publication {name} in it")
        else:
            errors.append(f"source {source.label()} unreachable ({exc.message}): slot and publication {name} may remain")
    remaining: list[str] = []
    if not check_mode and not errors:
        remaining = _leftovers(source, target, name)
    if drop_database and target_reachable and not errors and not remaining:
        if same_database(source, target):
            raise SafetyRefusal(f"drop_database would drop {target.label()}, which is also the source.", hint="check source and target.")
        with connect(target.with_db("postgres"), autocommit=True) as c:
            sessions = c.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (target.dbname,)
            ).fetchone()[0]
            if sessions:
                raise SafetyRefusal(
                    f"{target.label()} has {sessions} open session(s): something still uses it, so it is not dropped.",
                    hint="find and stop them (pg_stat_activity), then run the task again; the stream is already gone.",
                )
            if not check_mode:
                c.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(target.dbname)))
        dropped.append(f"database {target.dbname} on the target server")
    result = {
        "changed": bool(dropped),
        "dropped": dropped,
        "notes": notes,
        "remaining": remaining,
        "msg": (f"{'would stop' if check_mode else 'stopped'} stream {name}: " + ("; ".join(dropped) if dropped else "nothing was left"))
        + (f" ({'; '.join(notes)})" if notes else ""),
        "seconds": round(time.monotonic() - started, 3),
    }
    if errors or remaining:
        raise OperationFailed(
            f"stream {name} was not completely removed: " + "; ".join(errors + [f"still there: {r}" for r in remaining]),
            hint="make the servers reachable and run state=stopped again; a slot left behind keeps WAL on the source until dropped.",
            **{k: v for k, v in result.items() if k not in ("changed", "msg")},
        )
    return result


def _drop_orphan_slots(source: PgConnection, name: str, deadline: float, check_mode: bool) -> list[str]:
    """The source database is gone but its slot would hold WAL of the whole server: drop it from another database."""
    with _session(source.with_db("postgres")) as d:
        found = [r[0] for r in d.all("SELECT slot_name FROM pg_replication_slots WHERE slot_name = %s", (name,))]
        return [f"replication slot {s} on {source.label()}" for s in found if check_mode or _drop_slot(d, s, deadline)]


def _leftovers(source: PgConnection, target: PgConnection, name: str) -> list[str]:
    left = []
    with contextlib.suppress(ConnectionFailed), _session(source.with_db("postgres")) as d:
        left += [
            f"replication slot {r[0]} on {source.label()}"
            for r in d.all("SELECT slot_name FROM pg_replication_slots WHERE slot_name = %s", (name,))
        ]
    with contextlib.suppress(ConnectionFailed), _session(source) as d:
        if d.one("SELECT count(*) FROM pg_publication WHERE pubname = %s", (name,)):
            left.append(f"publication {name} on {source.label()}")
    with contextlib.suppress(ConnectionFailed), _session(target) as t:
        if _subscription(t, name):
            left.append(f"subscription {name} on {target.label()}")
    return left


# ---------------------------------------------------------------------------------------------
# Progress: caught up, sequences, status
# ---------------------------------------------------------------------------------------------


def _applied(d: _Db, name: str) -> dict:
    """Position the subscriber confirmed (applied) on the source, from the slot and its WAL sender."""
    rows = d.all(
        "SELECT s.active, s.confirmed_flush_lsn::text, r.replay_lsn::text, pg_current_wal_lsn()::text, "
        "extract(epoch FROM r.replay_lag)::float8, (pg_current_wal_lsn() - s.restart_lsn)::bigint, s.wal_status, "
        "(pg_current_wal_lsn() - GREATEST(s.confirmed_flush_lsn, COALESCE(r.replay_lsn, s.confirmed_flush_lsn)))::bigint "
        "FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid WHERE s.slot_name = %s",
        (name,),
    )
    if not rows:
        return {"slot_exists": False}
    active, confirmed, replay, current, lag_s, retained, wal_status, lag_bytes = rows[0]
    applied = replay if replay and (not confirmed or _lsn_ge(d, replay, confirmed)) else confirmed
    return {
        "slot_exists": True,
        "slot_active": active,
        "applied_lsn": applied,
        "current_lsn": current,
        "lag_bytes": max(int(lag_bytes or 0), 0),
        "lag_seconds": round(lag_s, 3) if lag_s is not None else None,
        "retained_wal_bytes": int(retained or 0),
        "wal_status": wal_status,
    }


def _subscriber_tables(t: _Db, sub_oid: int) -> dict:
    states = {"i": "initialize", "d": "copying", "f": "copied", "s": "synchronized", "r": "ready"}
    counts: dict = {}
    pending = []
    for relname, state in t.all(
        "SELECT r.srrelid::regclass::text, r.srsubstate FROM pg_subscription_rel r WHERE r.srsubid = %s ORDER BY 1", (sub_oid,)
    ):
        counts[states.get(state, state)] = counts.get(states.get(state, state), 0) + 1
        if state != "r":
            pending.append(f"{relname} ({states.get(state, state)})")
    # Error counters are PostgreSQL 15's (a 13 or 14 fallback, the subscriber of a stream back, has none: its log has them).
    errors = (
        t.all("SELECT apply_error_count, sync_error_count FROM pg_stat_subscription_stats WHERE subid = %s", (sub_oid,))
        if int(t.one("SHOW server_version_num")) >= 150000
        else []
    )
    workers = t.one("SELECT count(*) FROM pg_stat_subscription WHERE subid = %s AND pid IS NOT NULL", (sub_oid,))
    return {
        "tables": counts,
        "tables_total": sum(counts.values()),
        "tables_pending": pending,
        "apply_errors": int(errors[0][0]) if errors else 0,
        "sync_errors": int(errors[0][1]) if errors else 0,
        "workers": workers,
    }


def stream_status(source: PgConnection, target: PgConnection, name: str) -> dict:
    """Facts of a stream, from both sides; never fails on a missing part (it says which)."""
    out: dict = {"name": name, "publication_exists": False, "slot_exists": False, "subscription_exists": False}
    try:
        with _session(source) as d:
            comment = _publication_comment(d, name)
            out["publication_exists"] = comment is not None
            out["publication"] = comment or {}
            out.update(_applied(d, name))
    except ConnectionFailed as exc:
        out["source_error"] = exc.message
    try:
        out["target_database_exists"] = _database_exists(target)
        if out["target_database_exists"]:
            with _session(target) as t:
                sub = _subscription(t, name)
                out["subscription_exists"] = sub is not None
                if sub:
                    out["subscription_enabled"] = sub["enabled"]
                    out.update(_subscriber_tables(t, sub["oid"]))
    except ConnectionFailed as exc:
        out["target_error"] = exc.message
    parts = [
        p for p, k in (("publication", "publication_exists"), ("slot", "slot_exists"), ("subscription", "subscription_exists")) if out[k]
    ]
    out["exists"] = len(parts) == 3
    out["summary"] = (", ".join(parts) + " exist") if parts else "nothing exists"
    return out


def wait_caught_up(
    source: PgConnection, target: PgConnection, name: str, lsn: str | None, timeout: float, deadline: float | None = None
) -> dict:
    """Wait until every table is ready and the subscriber applied the source's WAL up to ``lsn``."""
    started = time.monotonic()
    deadline = deadline if deadline is not None else started + timeout
    with _session(source) as d, _session(target) as t:
        sub = _subscription(t, name)
        if not sub:
            raise OperationFailed(f"there is no stream {name} into {target.label()}.", hint="start it first (state=started).")
        if lsn is None:
            # The insert position: with asynchronous commit the write position can lie before a commit record.
            lsn = d.one("SELECT pg_current_wal_insert_lsn()::text")
        else:
            try:
                d.one("SELECT %s::pg_lsn", (lsn,))
            except psycopg.Error:
                raise InvalidInput(f"lsn {lsn!r} is not a WAL position (like 0/16B3748).") from None
        while True:
            subt = _subscriber_tables(t, sub["oid"])
            pos = _applied(d, name)
            ready = not subt["tables_pending"] and pos.get("slot_exists") and _lsn_ge(d, pos.get("applied_lsn"), lsn)
            if ready:
                break
            if time.monotonic() >= deadline:
                why = []
                if subt["tables_pending"]:
                    why.append(f"{len(subt['tables_pending'])} table(s) not synchronised yet ({', '.join(subt['tables_pending'][:5])})")
                if not pos.get("slot_exists"):
                    why.append(f"the slot {name} is missing on the source")
                else:
                    why.append(f"applied up to {pos.get('applied_lsn')}, waiting for {lsn}")
                if subt["apply_errors"] or subt["sync_errors"]:
                    why.append(f"{subt['apply_errors']} apply and {subt['sync_errors']} sync error(s): see the staged server's log")
                raise OperationFailed(
                    f"stream {name} did not catch up within {time.monotonic() - started:.1f} s: " + "; ".join(why) + ".",
                    hint="give it more time (timeout), or look at the staged server's log for apply errors.",
                    lsn=lsn,
                    status={**subt, **pos},
                )
            time.sleep(POLL)
    return {"lsn": lsn, "applied_lsn": pos["applied_lsn"], "tables": subt["tables"], "seconds": round(time.monotonic() - started, 3)}


def copy_sequences(source: PgConnection, target: PgConnection, check_mode: bool = False) -> dict:
    """Set every sequence of the target that the source has to the source's value (never backwards)."""
    with _session(source) as d, _session(target) as t:
        return _copy_sequences(d, t, check_mode)


def _copy_sequences(d: _Db, t: _Db, check_mode: bool) -> dict:
    started = time.monotonic()
    names = d.all(Q_SEQUENCES)
    values: dict = {}
    for i in range(0, len(names), 200):
        part = names[i : i + 200]
        stmt = sql.SQL(" UNION ALL ").join(
            sql.SQL("SELECT {}, {}, last_value, is_called FROM {}").format(sql.Literal(nsp), sql.Literal(rel), sql.Identifier(nsp, rel))
            for nsp, rel in part
        )
        for nsp, rel, last, called in d.all(stmt):
            values[(nsp, rel)] = (int(last), bool(called))
    copied, ahead, missing = 0, [], []
    present = {(r[0], r[1]) for r in t.all(Q_SEQUENCES)}
    for (nsp, rel), (last, called) in values.items():
        if (nsp, rel) not in present:
            missing.append(_qualified(nsp, rel))
            continue
        cur_last, cur_called = t.all(sql.SQL("SELECT last_value, is_called FROM {}").format(sql.Identifier(nsp, rel)))[0]
        mine = int(cur_last) if cur_called else int(cur_last) - 1
        theirs = last if called else last - 1
        if mine > theirs:
            ahead.append(_qualified(nsp, rel))
            continue
        if (int(cur_last), bool(cur_called)) == (last, called):
            continue
        if not check_mode:
            t.one("SELECT setval(%s::regclass, %s, %s)", (sql.Identifier(nsp, rel).as_string(t.pg), last, called))
        copied += 1
    return {
        "sequences": len(values),
        "copied": copied,
        "target_ahead": ahead,
        "missing_on_target": missing,
        "seconds": round(time.monotonic() - started, 3),
    }


def _guardrails(d: _Db, name: str, pos: dict, comment: dict, max_lag_bytes: int, max_transaction_seconds: float) -> tuple[list, dict]:
    blockers = []
    facts: dict = {}
    if pos.get("slot_exists") and pos["lag_bytes"] > max_lag_bytes:
        blockers.append(f"the staged entry lags {human_bytes(pos['lag_bytes'])} behind (max_lag_bytes {human_bytes(max_lag_bytes)})")
    long = d.all(
        "SELECT pid, usename, application_name, extract(epoch FROM now() - xact_start)::float8 FROM pg_stat_activity "
        "WHERE datname = current_database() AND backend_xid IS NOT NULL AND pid <> pg_backend_pid() "
        "AND now() - xact_start > make_interval(secs => %s) ORDER BY xact_start",
        (max_transaction_seconds,),
    )
    facts["long_write_transactions"] = [{"pid": r[0], "user": r[1], "application": r[2], "seconds": round(r[3], 1)} for r in long]
    if long:
        blockers.append(
            f"{len(long)} write transaction(s) open longer than {max_transaction_seconds:g} s on the default entry "
            f"(pids {', '.join(str(r[0]) for r in long[:5])}): the freeze would wait for them"
        )
    ddl = d.all(
        "SELECT DISTINCT a.pid, l.mode, l.granted FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND l.locktype = 'relation' "
        "AND l.mode = 'AccessExclusiveLock' AND a.pid <> pg_backend_pid()"
    )
    facts["pending_ddl_sessions"] = [r[0] for r in ddl]
    if ddl:
        blockers.append(
            f"DDL is running or waiting on the default entry (ACCESS EXCLUSIVE locks of pids {', '.join(str(r[0]) for r in ddl)})"
        )
    tabs = [t for t in tables(d) if t["persistence"] == "p"]
    published = {r[0] for r in d.all("SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = %s", (name,))}
    new_tables = sorted(t["name"] for t in tabs if t["name"] not in published)
    facts["tables_not_published"] = new_tables
    current = fingerprint(columns(d, [t["oid"] for t in tabs if t["name"] in published]))
    facts["ddl_on_source"] = bool(comment.get("fingerprint")) and current != comment.get("fingerprint")
    if new_tables:
        blockers.append(f"table(s) created on the default entry after the stream started are not replicated: {', '.join(new_tables[:10])}")
    if facts["ddl_on_source"]:
        blockers.append("the published tables' columns changed on the default entry since the stream started (DDL on live while syncing)")
    return blockers, facts


def reverse_plan(new_default: PgConnection, fallback: PgConnection) -> dict:
    """Which tables and columns a reverse stream new default -> fallback publishes, and what prevents it."""
    with _session(new_default) as d:
        src_tabs = {t["name"]: t for t in tables(d) if t["persistence"] == "p"}
        src_cols = columns(d, [t["oid"] for t in src_tabs.values()])
        src_major = d.major
    with _session(fallback) as f:
        dst_tabs = {t["name"]: t for t in tables(f) if t["persistence"] == "p"}
        dst_cols = columns(f, [t["oid"] for t in dst_tabs.values()])
    problems = []
    lists: dict = {}
    for name in sorted(src_tabs.keys() & dst_tabs.keys()):
        have = {c["name"]: c for c in dst_cols.get(name, [])}
        cols = [c for c in src_cols.get(name, []) if c["name"] in have and not c["generated"]]
        missing = [c["name"] for c in dst_cols.get(name, []) if c["name"] not in {x["name"] for x in src_cols.get(name, [])}]
        typed = [f"{c['name']} ({have[c['name']]['type']} -> {c['type']})" for c in cols if have[c["name"]]["type"] != c["type"]]
        required = [c for c in missing if have[c]["not_null"] and not have[c]["has_default"] and not have[c]["generated"]]
        if required:
            problems.append(
                f"table {name}: the subscriber has NOT NULL column(s) without default {', '.join(required)} that the publisher "
                "lacks: rows it sends could not be inserted"
            )
        if typed:
            problems.append(f"table {name}: column types differ: {', '.join(typed)}")
        ident = [c["name"] for c in src_cols.get(name, []) if c["identity"]]
        if src_tabs[name]["replica_identity"] == "full" and len(cols) != len([c for c in src_cols.get(name, []) if not c["generated"]]):
            problems.append(
                f"table {name} has REPLICA IDENTITY FULL and new columns: a column list must then hold every column, so its "
                "UPDATEs could not be published back"
            )
        elif any(i not in {c["name"] for c in cols} for i in ident):
            problems.append(f"table {name}: its replica identity columns {', '.join(ident)} are not all on the fallback")
        lists[name] = [c["name"] for c in cols]
    partial = partial_lists(lists, src_cols)
    if partial and src_major < 15:
        problems.append(
            f"the new default runs PostgreSQL {src_major}: carrying back only the columns the fallback has "
            f"({', '.join(sorted(partial)[:5])}) needs a publication column list, which PostgreSQL 15 brought"
        )
    return {
        "tables": len(lists),
        "column_lists": lists,
        "not_carried_back": sorted(src_tabs.keys() - dst_tabs.keys()),
        "columns_not_carried_back": {
            n: [c["name"] for c in src_cols.get(n, []) if c["name"] not in lists[n]]
            for n in lists
            if len(lists[n]) != len(src_cols.get(n, []))
        },
        "problems": problems,
    }


def status(
    source: PgConnection,
    target: PgConnection,
    name: str,
    max_lag_bytes: int = 16 * 1024 * 1024,
    max_transaction_seconds: float = 10,
    reverse: bool = False,
) -> dict:
    """Stream health and cutover guardrails (``ready_for_handover``, ``blockers``)."""
    started = time.monotonic()
    st = stream_status(source, target, name)
    blockers = []
    if not st["exists"]:
        blockers.append(f"stream {name} is not complete ({st['summary']})")
    else:
        if not st.get("subscription_enabled", True):
            blockers.append(f"subscription {name} is disabled")
        if st.get("tables_pending"):
            blockers.append(f"{len(st['tables_pending'])} table(s) still in their initial copy")
        if not st.get("slot_active"):
            blockers.append(f"nothing is connected to slot {name} (the staged entry does not receive the stream)")
        if st.get("wal_status") == "lost":
            blockers.append(f"slot {name} lost WAL it needed: the stream is broken, stage again")
        with _session(source) as d:
            more, facts = _guardrails(d, name, st, st.get("publication") or {}, max_lag_bytes, max_transaction_seconds)
        blockers += more
        st.update(facts)
        if st.get("apply_errors") or st.get("sync_errors"):
            st["errors_note"] = "apply/sync errors were counted since the stream started (see the staged server's log)"
    if reverse and st["exists"]:
        plan = reverse_plan(target, source)
        st["reverse_plan"] = plan
        blockers += [f"reverse stream: {p}" for p in plan["problems"]]
    st.update(
        {
            "changed": False,
            "ready_for_handover": not blockers,
            "blockers": blockers,
            "msg": (
                f"stream {name}: "
                + (
                    f"{st.get('tables_total', 0)} table(s), lag {human_bytes(st.get('lag_bytes', 0))}"
                    + (f" ({st['lag_seconds']} s)" if st.get("lag_seconds") is not None else "")
                    if st["exists"]
                    else st["summary"]
                )
                + ("; ready for a handover" if not blockers else "; not ready: " + "; ".join(blockers))
            ),
            "seconds": round(time.monotonic() - started, 3),
        }
    )
    return st


# ---------------------------------------------------------------------------------------------
# The handover (the database half of a cutover or rollback)
# ---------------------------------------------------------------------------------------------


def _admin(item: dict) -> PgConnection:
    spec = pgbouncer.admin_spec()
    given = item.get("pgbouncer_admin") or {}
    opts = {k: given.get(k) if given.get(k) is not None else spec[k]["default"] for k in spec}
    return PgConnection(
        dbname=pgbouncer.ADMIN_DB,
        host=opts["login_host"],
        port=int(opts["login_port"]),
        user=opts["login_user"],
        password=opts["login_password"],
        unix_socket=opts["login_unix_socket"],
        connect_timeout=int(opts["connect_timeout"]),
    )


def _alias(item: dict) -> str:
    alias = item.get("key")
    if not alias:
        raise InvalidInput("every pause item needs key: the PgBouncer database alias.")
    return alias


def resume(items: list[dict]) -> list[str]:
    """RESUME every alias; "not paused" is fine. Returns the errors (clients may be waiting)."""
    errors = []
    for item in items:
        alias = _alias(item)
        try:
            with pgbouncer.connect_admin(_admin(item)) as c:
                c.execute('RESUME "' + alias.replace('"', '""') + '"')
        except Exception as exc:  # noqa: BLE001 - every alias must be tried; failures are reported together
            if "not paused" not in str(exc):
                errors.append(f"RESUME {alias} at {_admin(item).label()}: {exc}")
    return errors


def _remaining(deadline: float, step: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise OperationFailed(f"the handover timeout was reached before {step}.")
    return left


def _parallel(*calls: Callable[[], Any]) -> list:
    """Run independent steps at once (each opens its own connections); the first error wins."""
    results: list = [None] * len(calls)
    errors: list = [None] * len(calls)

    def runner(i: int, fn: Callable[[], Any]) -> None:
        try:
            results[i] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors[i] = exc

    threads = [threading.Thread(target=runner, args=(i, fn)) for i, fn in enumerate(calls)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for exc in errors:
        if exc is not None:
            raise exc
    return results


def _resumes(item: dict, default: bool) -> bool:
    """Whether the handover resumes this alias at its end (an item may say so itself)."""
    return default if item.get("resume") is None else bool(item["resume"])


def _pgbouncer_entry(conn: PgConnection) -> dict:
    """What a PgBouncer alias must point at for this entry (as connection_switch reads an entry)."""
    entry = {"login_port": conn.port, "login_db": conn.dbname}
    if conn.unix_socket:
        entry["login_unix_socket"] = conn.unix_socket
    elif conn.host:
        entry["login_host"] = conn.host
    return entry


def _switch_pgbouncer(item: dict, conn: PgConnection, timeout: float) -> dict:
    params = {
        "format": "pgbouncer",
        "path": item["path"],
        "key": _alias(item),
        "entry": _pgbouncer_entry(conn),
        "pause": True,  # already paused: PAUSE returns at once, and the switch ends with RESUME
        "pause_timeout": max(timeout, 1),
        "pgbouncer_admin": item.get("pgbouncer_admin") or {},
        "backup": bool(item.get("backup")),
    }
    return pgbouncer.switch(params, False)


def handover(
    source: PgConnection,
    target: PgConnection,
    name: str,
    back_name: str | None,
    source_address: dict | None,
    target_address: dict | None,
    pgbouncers: list[dict],
    timeout: float,
    freeze_wait_timeout: float,
    terminate: bool,
    resume_after: bool,
    source_after: str,
    check_mode: bool = False,
) -> dict:
    """Move the writes from ``source`` to ``target`` (see the module documentation); undo on any failure.

    Everything that does not need stopped writes (checks, sessions, the publication of the stream
    back) happens before the pause; inside it: freeze, catch up, then sequences, the end of the
    stream and the start of the stream back at once, then the PgBouncer switches and RESUME.
    """
    started = time.monotonic()
    deadline = started + timeout
    if source_after not in ("frozen", "thawed"):
        raise InvalidInput(f"source_after must be frozen or thawed, not {source_after!r}.")
    st = stream_status(source, target, name)
    if not st["exists"]:
        raise OperationFailed(
            f"there is no complete stream {name} from {source.label()} into {target.label()} ({st['summary']}): nothing carries "
            "the writes over.",
            hint="stage with the sync method first, or switch by copy (dualboot_stage_method: copy).",
        )
    if st.get("tables_pending"):
        raise OperationFailed(f"stream {name} is still copying {len(st['tables_pending'])} table(s).", hint="wait (state=caught_up).")
    plan = reverse_plan(target, source) if back_name else None
    if plan and plan["problems"]:
        raise SafetyRefusal(
            "the stream back to " + source.label() + " could not be started: " + "; ".join(plan["problems"]) + ".",
            hint="nothing was changed; fix the schema difference or switch by copy.",
        )
    switched_here = [i for i in pgbouncers if i.get("path")]
    if check_mode:
        steps = (["pause PgBouncer"] if pgbouncers else []) + ["freeze the source", "wait until caught up", "copy sequences"]
        steps += ["stop the stream"] + (["start the stream back"] if back_name else [])
        steps += [f"switch PgBouncer {_alias(i)}" for i in switched_here]
        return {"changed": True, "msg": f"would hand {source.label()} over to {target.label()}: " + ", ".join(steps), "reverse_plan": plan}
    progress: dict = {"step": "prepare", "paused": False, "froze": False, "stream_touched": False, "thawed_target": False, "switched": []}
    timings: dict = {}
    result: dict = {"changed": True, "stream": name, "source": source.label(), "target": target.label()}
    sessions: list[_Db] = []

    def session(conn: PgConnection) -> _Db:
        sessions.append(_Db(conn))
        return sessions[-1]

    def step(label: str, fn: Callable[[], Any]) -> Any:
        progress["step"] = label
        t0 = time.monotonic()
        out = fn()
        timings[label + "_s"] = round(time.monotonic() - t0, 3)
        return out

    paused_at = frozen_at = None
    back_comment = None
    try:
        s1, s2, s3 = session(source), session(source), session(source)
        t1, t2 = session(target), session(target)
        source_was_frozen = _frozen(s1)
        target_was_frozen = _frozen(t1)
        progress["source_was_frozen"] = source_was_frozen
        if back_name:
            # Only catalog: the publication captures nothing until a slot reads it.
            with contextlib.suppress(DualbootError):
                stop(target, source, back_name)
            back_comment = create_publication(t1, back_name, source, "back", plan["column_lists"], list(plan["column_lists"]))
            progress["back_publication"] = True
        # A subscription applies with synchronous_commit off: the source then learns that a commit was applied
        # only when the subscriber's WAL writer flushes it, up to wal_writer_delay (200 ms) later, and the
        # catch-up below waited that long with the clients held. For the handover the apply flushes at once
        # (the subscription is dropped at its end; the undo sets it back).
        t1.run(sql.SQL("ALTER SUBSCRIPTION {} SET (synchronous_commit = 'local')").format(sql.Identifier(name)))
        progress["flush_at_once"] = True
        timings["prepare_s"] = round(time.monotonic() - started, 3)

        def do_pause() -> None:
            progress["paused"] = True  # before PAUSE returns: a timed-out PAUSE must still be resumed
            for item in pgbouncers:
                try:
                    pgbouncer.pause(_admin(item), _alias(item), _remaining(deadline, "PgBouncer PAUSE"))
                except TimeoutError:
                    raise OperationFailed(f"PgBouncer PAUSE {_alias(item)} did not finish in time (transactions still running).") from None

        def do_freeze() -> None:
            progress["froze"] = True
            pg_freeze.freeze(source, min(freeze_wait_timeout, _remaining(deadline, "the freeze")), terminate, False)

        def catch_up() -> str:
            lsn = s1.one("SELECT pg_current_wal_insert_lsn()::text")  # every commit, even an asynchronous one
            while True:
                pos = _applied(s1, name)
                if not pos.get("slot_exists"):
                    raise OperationFailed(f"slot {name} disappeared from {source.label()} during the handover.")
                if _lsn_ge(s1, pos.get("applied_lsn"), lsn):
                    return lsn
                if time.monotonic() >= deadline:
                    raise OperationFailed(
                        f"the staged entry did not apply the source's WAL up to {lsn} in time (applied: {pos.get('applied_lsn')}, "
                        f"{human_bytes(pos['lag_bytes'])} behind)."
                    )
                time.sleep(0.005)

        def end_stream() -> None:
            t2.run(sql.SQL("DROP SUBSCRIPTION {}").format(sql.Identifier(name)))  # drops the slot on the source too
            s2.run(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(name)))

        def start_back() -> dict | None:
            return create_subscription(s3, back_name, target, target_address, False) if back_name else None

        def thaw_target() -> None:
            if target_was_frozen:
                progress["thawed_target"] = True
                pg_freeze.thaw(target, max(deadline - time.monotonic(), 1), False, False)

        if pgbouncers:
            paused_at = time.monotonic()
            step("pause", do_pause)
        if not source_was_frozen:
            frozen_at = time.monotonic()
            step("freeze", do_freeze)
        result["freeze_lsn"] = step("catch_up", catch_up)
        _remaining(deadline, "switching the streams")
        progress["stream_touched"] = True
        # Writes are stopped and applied: the sequences, the end of the stream, the start of the
        # stream back and the thaw of the target are independent, so they run at once.
        seq, _ended, back_sub, _thawed = step(
            "switch_streams",
            lambda: _parallel(lambda: _copy_sequences(s1, t1, False), end_stream, start_back, thaw_target),
        )
        result["sequences"] = seq
        for item in switched_here:
            progress["switched"].append(item)
            step("pgbouncer_switch", lambda item=item: _switch_pgbouncer(item, target, deadline - time.monotonic()))
        others = [i for i in pgbouncers if not i.get("path") and _resumes(i, resume_after)]
        if others:
            errors = step("resume", lambda: resume(others))
            if errors:
                raise OperationFailed("; ".join(errors))
        if paused_at is not None:
            result["paused_s"] = round(time.monotonic() - paused_at, 3)
        if source_after == "thawed" and frozen_at is not None:
            step("thaw_source", lambda: pg_freeze.thaw(source, 10, False, False))
        if frozen_at is not None:
            result["writes_blocked_s"] = round(time.monotonic() - frozen_at, 3)
        if back_sub:
            back_comment["subscription_oid"] = back_sub["oid"]
            _set_publication_comment(t1, back_name, back_comment)
            result["stream_back"] = {
                **stream_summary(back_name, target, source, target_address),
                "tables": back_comment["tables"],
                "columns_not_carried_back": plan["columns_not_carried_back"],
                "tables_not_carried_back": plan["not_carried_back"],
            }
    except BaseException as exc:  # noqa: BLE001 - whatever stopped the handover (even an interrupt), it is undone first
        failed = progress["step"]
        for d in sessions:
            d.close()
        undo = _undo(source, target, name, back_name, source_address, progress, pgbouncers)
        cause = exc.message if isinstance(exc, DualbootError) else f"{type(exc).__name__}: {exc}"
        raise OperationFailed(
            f"handover of {source.label()} to {target.label()} failed at step {failed} after {time.monotonic() - started:.2f} s "
            f"({cause}); "
            + ("undone: " + "; ".join(undo["undone"]) if undo["undone"] else "nothing had changed")
            + (". UNDO PROBLEMS: " + "; ".join(undo["errors"]) if undo["errors"] else f". {source.label()} serves again."),
            hint=(
                "see the undo problems first."
                if undo["errors"]
                else "the stream still runs; fix the cause (a longer timeout, fewer open transactions) and run the cutover again."
            ),
            failed_step=failed,
            timings=timings,
            undone=undo["undone"],
            undo_errors=undo["errors"],
        ) from None
    finally:
        for d in sessions:
            d.close()
    left = _leftovers(source, target, name)
    if left:
        result["warnings"] = [f"left behind by the end of stream {name}: {', '.join(left)} (run state=stopped)"]
    result["timings"] = timings
    result["pgbouncer_switched"] = [_alias(i) for i in switched_here]
    result["paused"] = [_alias(i) for i in pgbouncers if not i.get("path") and not _resumes(i, resume_after)]
    result["seconds"] = round(time.monotonic() - started, 3)
    result["msg"] = (
        f"handed {source.label()} over to {target.label()} in {result['seconds']} s: frozen at {result['freeze_lsn']}"
        + (f", writes blocked {result['writes_blocked_s']} s" if "writes_blocked_s" in result else "")
        + (f", PgBouncer paused {result['paused_s']} s" if "paused_s" in result else "")
        + f", {seq['copied']} sequence(s) copied, stream {name} ended"
        + (f", stream {back_name} back into {source.label()} started" if back_name else "")
        + (f", PgBouncer {', '.join(result['pgbouncer_switched'])} switched" if switched_here else "")
        + (f"; PgBouncer {', '.join(result['paused'])} stay paused until their switch" if result["paused"] else "")
    )
    return result


def _undo(
    source: PgConnection,
    target: PgConnection,
    name: str,
    back_name: str | None,
    source_address: dict | None,
    progress: dict,
    pgbouncers: list[dict],
) -> dict:
    """Reverse the handover's steps, last first; report what was undone and what could not be."""
    undone: list[str] = []
    errors: list[str] = []

    def attempt(label: str, fn: Callable[[], Any]) -> None:
        try:
            fn()
            undone.append(label)
        except Exception as exc:  # noqa: BLE001 - every undo step is tried; failures are reported together
            errors.append(f"{label}: {exc.message if isinstance(exc, DualbootError) else exc}")

    for item in reversed(progress["switched"]):
        attempt(f"switched PgBouncer {_alias(item)} back", lambda item=item: _switch_pgbouncer(item, source, 30))
    if progress["thawed_target"]:
        attempt(f"froze {target.label()} again", lambda: pg_freeze.freeze(target, 10, True, False))
    if back_name and progress.get("back_publication"):
        attempt(f"removed stream {back_name}", lambda: stop(target, source, back_name))
    if progress.get("flush_at_once") and not progress["stream_touched"]:

        def flush_lazily() -> None:
            with _session(target) as t:
                t.run(sql.SQL("ALTER SUBSCRIPTION {} SET (synchronous_commit = off)").format(sql.Identifier(name)))

        attempt(f"stream {name} applies with synchronous_commit off again", flush_lazily)
    if progress["stream_touched"] and not stream_status(source, target, name)["exists"]:
        # The source is still frozen and the target holds exactly its rows: a stream without copy continues it.
        def restart() -> None:
            with contextlib.suppress(DualbootError):
                stop(source, target, name)
            create_stream(source, target, name, False, source_address, "forward")

        attempt(f"started stream {name} again (without copy, from the frozen source)", restart)
    if progress["froze"] and not progress.get("source_was_frozen"):
        attempt(f"thawed {source.label()}", lambda: pg_freeze.thaw(source, 10, True, False))
    if progress["paused"] and pgbouncers:
        errs = resume(pgbouncers)
        if errs:
            errors += [f"PgBouncer is still PAUSED: {e}; run RESUME on its admin console now" for e in errs]
        else:
            undone.append("resumed PgBouncer " + ", ".join(_alias(i) for i in pgbouncers))
    return {"undone": undone, "errors": errors}


# ---------------------------------------------------------------------------------------------
# The module entry point
# ---------------------------------------------------------------------------------------------


def _address(params: dict, side: str) -> dict:
    given = params.get(side) or {}
    return {"host": given.get("replication_host"), "port": given.get("replication_port")}


def run(params: dict, check_mode: bool = False) -> dict:
    """Entry point of the postgresql_sync module."""
    state = params.get("state") or "status"
    if state not in STATES:
        raise InvalidInput(f"state must be one of {', '.join(STATES)}, not {state!r}.")
    source = from_params(params, side="source")
    target = from_params(params, side="target")
    for label in ("source", "target"):
        if not (params.get(label) or {}).get("login_db") and not params.get("login_db"):
            raise InvalidInput(f"{label}.login_db is required: it names the {label} database of the stream.")
    name = stream_name(params["name"], params["entry"])
    src_addr, dst_addr = _address(params, "source"), _address(params, "target")
    timeout = float(params.get("timeout") if params.get("timeout") is not None else 60)
    if timeout <= 0:
        raise InvalidInput(f"timeout must be positive (got {timeout:g}).")
    if state == "preflight":
        return preflight(
            source,
            target,
            name,
            src_addr,
            params.get("replica_identity_full"),
            params.get("migrations"),
            params.get("migrations_dir"),
            check_mode,
        )
    if state == "started":
        return start(source, target, name, src_addr, params.get("replica_identity_full"), params.get("bin_dir"), check_mode)
    if state == "caught_up":
        if check_mode:
            return {"changed": False, "status": stream_status(source, target, name), "msg": "check mode: not waited"}
        out = wait_caught_up(source, target, name, params.get("lsn"), timeout)
        out.update(changed=False, msg=f"stream {name} applied everything up to {out['lsn']} ({out['seconds']} s)")
        return out
    if state == "sequences":
        out = copy_sequences(source, target, check_mode)
        out.update(
            changed=bool(out["copied"]),
            msg=f"{'would copy' if check_mode else 'copied'} {out['copied']} of {out['sequences']} sequence value(s) to {target.label()}",
        )
        return out
    if state == "stopped":
        return stop(source, target, name, timeout, check_mode, bool(params.get("drop_database")), tuple(params.get("being_replaced") or ()))
    if state == "status":
        return status(
            source,
            target,
            name,
            int(params.get("max_lag_bytes") or 16 * 1024 * 1024),
            float(params.get("max_transaction_seconds") if params.get("max_transaction_seconds") is not None else 10),
            bool(params.get("check_reverse")),
        )
    if state == "reverse":
        existing = stream_status(source, target, name)
        if existing["exists"]:
            return {"changed": False, "stream": stream_summary(name, source, target, src_addr), "msg": f"stream {name} already runs"}
        plan = reverse_plan(source, target)
        if plan["problems"]:
            raise SafetyRefusal("the reverse stream cannot be started: " + "; ".join(plan["problems"]) + ".", hint="nothing was changed.")
        if check_mode:
            return {"changed": True, "reverse_plan": plan, "msg": f"would start stream {name} without copy ({plan['tables']} table(s))"}
        out = create_stream(
            source, target, name, False, src_addr, "reverse", column_lists=plan["column_lists"], only=list(plan["column_lists"])
        )
        return {
            "changed": True,
            "stream": {**stream_summary(name, source, target, src_addr), "tables": out["tables"]},
            "reverse_plan": plan,
            "msg": f"started stream {name} from {source.label()} into {target.label()} without copy ({out['tables']} table(s))",
            "seconds": out["seconds"],
        }
    # handover
    back = stream_name(params["name"], params["source_entry"]) if params.get("source_entry") and params.get("back", True) else None
    return handover(
        source,
        target,
        name,
        back,
        src_addr,
        dst_addr,
        list(params.get("pgbouncer") or []),
        timeout,
        float(params.get("freeze_wait_timeout") if params.get("freeze_wait_timeout") is not None else 10),
        bool(params.get("terminate")),
        bool(params.get("resume", True)),
        params.get("source_after") or "frozen",
        check_mode,
    )
