# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Freeze a PostgreSQL database for a cutover (read-only for new and existing sessions) and thaw it.

How freeze makes a database read-only (docs/postgresql-verification.md explains it for users):

1. **New sessions**: ``ALTER DATABASE ... SET default_transaction_read_only = on``. Every session
   that connects afterwards starts read-only: writes and DDL fail with "cannot execute ... in a
   read-only transaction".
2. **Existing sessions** keep the default they connected with, so freeze also installs a guard:
   a ``BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ... FOR EACH STATEMENT`` trigger named
   ``dualboot_freeze`` on every table, calling ``dualboot.freeze_guard()``, which raises
   ``read_only_sql_transaction``. Creating the trigger waits for the table's open write
   transactions (they hold a lock that conflicts); that wait is bounded by ``wait_timeout``.
   Sessions still holding such a lock then are terminated with ``terminate: true`` (their
   transaction rolls back), or freeze is undone and fails naming them.
3. **The record** of what freeze did is the comment of ``dualboot.freeze_guard()`` (JSON: when,
   the database's previous ``default_transaction_read_only`` setting, whether freeze created the
   ``dualboot`` schema). Thaw reads it and undoes exactly that: drops the triggers it finds on
   the guard function, restores or resets the setting, drops the function (and the schema when
   freeze created it and it is empty). Sessions opened while frozen keep their read-only default
   until they reconnect; ``terminate: true`` on thaw ends them so they reconnect writable.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Any

from ansible_collections.dualboot.db.plugins.module_utils.errors import InvalidInput, OperationFailed
from ansible_collections.dualboot.db.plugins.module_utils.pg_privileges import Entry, freeze_needs, refuse
from ansible_collections.dualboot.db.plugins.module_utils.postgresql import PgConnection, connect, from_params

try:
    from psycopg import errors as pg_errors
    from psycopg import sql
except ImportError:  # pragma: no cover - reported by runner.require in the module
    pg_errors = None
    sql = None

SCHEMA = "dualboot"
FUNCTION = "freeze_guard"
TRIGGER = "dualboot_freeze"
BATCH = 200
SETTING = "default_transaction_read_only"
WRITE_LOCKS = ("RowExclusiveLock", "ShareUpdateExclusiveLock", "ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock")

GUARD_BODY = """
BEGIN
  RAISE EXCEPTION USING
    ERRCODE = 'read_only_sql_transaction',
    MESSAGE = format('database %s is frozen by dualboot.db: %s on %s.%s refused',
                     current_database(), TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME),
    HINT = 'writes go to the default entry; thaw this database with dualboot.db.postgresql_freeze state=thawed';
END
"""

Q_TABLES = """
SELECT c.oid, n.nspname, c.relname,
  EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = %(trigger)s) AS guarded
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'dualboot') AND n.nspname NOT LIKE 'pg\\_%%'
ORDER BY c.oid
"""

Q_SESSIONS = """
SELECT a.pid, a.usename, a.application_name, a.state, a.backend_start, a.xact_start, a.backend_xid IS NOT NULL
FROM pg_stat_activity a
WHERE a.datname = current_database() AND a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()
ORDER BY a.pid
"""


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Db:
    def __init__(self, conn: PgConnection) -> None:
        self.conn = conn
        self.db = connect(conn, autocommit=True)
        # A session opened while the database is frozen starts read-only: this one must write.
        self.db.execute("SET default_transaction_read_only = off")
        self.pid = self.db.execute("SELECT pg_backend_pid()").fetchone()[0]

    def q(self, stmt: Any, params: Any = None) -> list:
        return self.db.execute(stmt, params).fetchall()

    def close(self) -> None:
        self.db.close()

    def state(self) -> dict:
        dbname = self.conn.dbname
        setting = None
        for (config,) in self.q(
            "SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase "
            "WHERE d.datname = %s AND s.setrole = 0",
            (dbname,),
        ):
            for item in config or []:
                key, _sep, value = item.partition("=")
                if key == SETTING:
                    setting = value
        rows = self.q(
            "SELECT obj_description(p.oid, 'pg_proc') FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = %s AND p.proname = %s",
            (SCHEMA, FUNCTION),
        )
        record = None
        if rows:
            try:
                record = json.loads(rows[0][0] or "{}")
            except ValueError:
                record = {}
        tables = self.q(Q_TABLES, {"trigger": TRIGGER})
        return {
            "setting": setting,
            "record": record,
            "guard_exists": bool(rows),
            "tables": [(oid, nsp, name) for oid, nsp, name, guarded in tables if not guarded],
            "guarded": [(oid, nsp, name) for oid, nsp, name, guarded in tables if guarded],
            "schema_exists": bool(self.q("SELECT 1 FROM pg_namespace WHERE nspname = %s", (SCHEMA,))),
        }

    def sessions(self) -> list[dict]:
        return [
            {"pid": r[0], "user": r[1], "application": r[2], "state": r[3], "connected": r[4], "writing": r[6]} for r in self.q(Q_SESSIONS)
        ]

    def set_setting(self, value: str | None) -> None:
        db = sql.Identifier(self.conn.dbname)
        if value is None:
            self.db.execute(sql.SQL("ALTER DATABASE {} RESET default_transaction_read_only").format(db))
        else:
            self.db.execute(sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = {}").format(db, sql.Literal(value)))

    def lock_holders(self, oids: list[int]) -> list[dict]:
        rows = self.q(
            "SELECT DISTINCT a.pid, a.usename, a.application_name, a.state, a.xact_start FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.relation = ANY(%s) AND l.granted AND l.pid <> pg_backend_pid() "
            "AND l.mode = ANY(%s) ORDER BY a.pid",
            (oids, list(WRITE_LOCKS)),
        )
        return [{"pid": r[0], "user": r[1], "application": r[2], "state": r[3], "transaction_started": str(r[4])} for r in rows]

    def terminate(self, pids: list[int]) -> list[int]:
        done = []
        for pid in pids:
            if self.q("SELECT pg_terminate_backend(%s, 5000)", (pid,))[0][0]:
                done.append(pid)
        return done


def _batch_ddl(d: _Db, tables: list, make: Any, wait_timeout: float, terminate: bool, deadline: float) -> list[dict]:
    """Run DDL for tables in batches (one transaction each), waiting on locks at most until ``deadline``.

    Returns the sessions terminated on the way. Raises OperationFailed when a batch cannot get its
    locks in time and ``terminate`` is off.
    """
    terminated: list[dict] = []
    for i in range(0, len(tables), BATCH):
        batch = tables[i : i + BATCH]
        while True:
            remaining = max(deadline - time.monotonic(), 0.0)
            wait_ms = int(remaining * 1000) if remaining > 0 else (2000 if terminate else 1)
            try:
                with d.db.transaction():
                    d.db.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(f"{max(wait_ms, 1)}ms")))
                    d.db.execute(sql.SQL("; ").join(make(nsp, name) for _oid, nsp, name in batch))
                break
            except pg_errors.LockNotAvailable:
                holders = d.lock_holders([oid for oid, _n, _t in batch])
                if time.monotonic() < deadline:
                    continue
                if not terminate:
                    who = ", ".join(
                        f"pid {h['pid']} ({h['user']}, {h['application'] or 'no application name'}, {h['state']})" for h in holders
                    )
                    raise OperationFailed(
                        f"open write transactions still hold tables after wait_timeout={wait_timeout:g}s: {who or 'sessions now gone'}.",
                        hint="let those transactions finish (stop or drain the application), raise wait_timeout, or set terminate: true.",
                        sessions=holders,
                    ) from None
                ended = d.terminate([h["pid"] for h in holders])
                terminated.extend(h for h in holders if h["pid"] in ended)
    return terminated


def _guard_sql(nsp: str, name: str) -> Any:
    return sql.SQL("CREATE TRIGGER {} BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {} FOR EACH STATEMENT EXECUTE FUNCTION {}()").format(
        sql.Identifier(TRIGGER), sql.Identifier(nsp, name), sql.Identifier(SCHEMA, FUNCTION)
    )


def _unguard_sql(nsp: str, name: str) -> Any:
    return sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(sql.Identifier(TRIGGER), sql.Identifier(nsp, name))


def _require_privileges(conn: PgConnection, terminate: bool, what: str) -> None:
    """Name every privilege freeze/thaw lacks before changing anything (owner-level freeze needs no superuser)."""
    missing = freeze_needs(Entry(conn, maintenance_db=conn.dbname), terminate)
    if missing:
        raise refuse(what, missing)


def _view(state: dict) -> dict:
    return {
        "frozen": state["guard_exists"],
        "default_transaction_read_only": state["setting"],
        "guarded_tables": len(state["guarded"]),
        "unguarded_tables": len(state["tables"]),
    }


def freeze(conn: PgConnection, wait_timeout: float, terminate: bool, check_mode: bool) -> dict:
    started = time.monotonic()
    d = _Db(conn)
    try:
        d.q("SELECT pg_advisory_lock(hashtext('dualboot.db freeze'))")
        before = d.state()
        sessions_before = d.sessions()
        needs_setting = before["setting"] != "on"
        needs_guard = not before["guard_exists"]
        to_guard = before["tables"]
        changed = needs_setting or needs_guard or bool(to_guard)
        if changed:
            _require_privileges(conn, terminate, "freeze")
        result: dict = {
            "changed": changed,
            "state": "frozen",
            "database": conn.label(),
            "tables_guarded_now": len(to_guard),
            "sessions_open": len(sessions_before),
            "sessions_writing": sum(s["writing"] for s in sessions_before),
            "terminated": [],
        }
        if check_mode or not changed:
            after = {"frozen": True, "default_transaction_read_only": "on", "guarded_tables": len(before["guarded"]) + len(to_guard)}
            after["unguarded_tables"] = 0
            result["diff"] = {"before": _view(before), "after": after if changed else _view(before)}
            result["seconds"] = round(time.monotonic() - started, 3)
            return result
        record = before["record"] if before["guard_exists"] else None
        try:
            if record is None:
                record = {
                    "frozen_at": _now(),
                    "previous_default_transaction_read_only": before["setting"],
                    "created_schema": not before["schema_exists"],
                    "by": conn.user,
                }
                d.db.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(SCHEMA)))
                fn = sql.Identifier(SCHEMA, FUNCTION)
                d.db.execute(
                    sql.SQL("CREATE OR REPLACE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS {}").format(fn, sql.Literal(GUARD_BODY))
                )
                d.db.execute(sql.SQL("COMMENT ON FUNCTION {}() IS {}").format(fn, sql.Literal(json.dumps(record, sort_keys=True))))
            if needs_setting:
                d.set_setting("on")
            deadline = started + wait_timeout
            result["terminated"] = _batch_ddl(d, to_guard, _guard_sql, wait_timeout, terminate, deadline)
        except Exception as exc:
            if needs_guard:  # undo what this run did; a database that was frozen before stays frozen
                try:
                    _thaw_objects(d, d.state(), record or {}, time.monotonic() + max(wait_timeout, 5), False)
                except Exception as undo:  # noqa: BLE001 - both failures are reported together
                    raise OperationFailed(
                        f"freeze failed ({exc}) and undoing it failed too ({undo}); the database may be partly frozen.",
                        hint="run postgresql_freeze with state=thawed once the blocking sessions are gone.",
                    ) from None
            raise
        after = d.state()
        result["diff"] = {"before": _view(before), "after": _view(after)}
        result["frozen_at"] = record.get("frozen_at")
        result["seconds"] = round(time.monotonic() - started, 3)
        return result
    finally:
        d.close()


def _thaw_objects(d: _Db, state: dict, record: dict, deadline: float, terminate: bool) -> list[dict]:
    wait = max(deadline - time.monotonic(), 0)
    terminated = _batch_ddl(d, state["guarded"], _unguard_sql, wait, terminate, deadline)
    d.set_setting(record.get("previous_default_transaction_read_only"))
    d.db.execute(sql.SQL("DROP FUNCTION IF EXISTS {}()").format(sql.Identifier(SCHEMA, FUNCTION)))
    if record.get("created_schema"):
        empty = not d.q(
            "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s "
            "UNION ALL SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %s "
            "UNION ALL SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = %s LIMIT 1",
            (SCHEMA, SCHEMA, SCHEMA),
        )
        if empty:
            d.db.execute(sql.SQL("DROP SCHEMA IF EXISTS {}").format(sql.Identifier(SCHEMA)))
    return terminated


def thaw(conn: PgConnection, wait_timeout: float, terminate: bool, check_mode: bool) -> dict:
    started = time.monotonic()
    d = _Db(conn)
    try:
        d.q("SELECT pg_advisory_lock(hashtext('dualboot.db freeze'))")
        before = d.state()
        changed = before["guard_exists"] or bool(before["guarded"])
        result: dict = {"changed": changed, "state": "thawed", "database": conn.label(), "terminated": [], "warnings": []}
        if not changed:
            if before["setting"] == "on":
                result["warnings"].append(
                    f"{SETTING} is on for this database but was not set by postgresql_freeze (no freeze record); left as it is."
                )
            result["diff"] = {"before": _view(before), "after": _view(before)}
            result["seconds"] = round(time.monotonic() - started, 3)
            return result
        _require_privileges(conn, terminate, "thaw")
        record = before["record"] or {}
        restore = record.get("previous_default_transaction_read_only")
        if check_mode:
            after = {
                "frozen": False,
                "default_transaction_read_only": restore,
                "guarded_tables": 0,
                "unguarded_tables": len(before["tables"]) + len(before["guarded"]),
            }
            result["diff"] = {"before": _view(before), "after": after}
            result["seconds"] = round(time.monotonic() - started, 3)
            return result
        frozen_at = record.get("frozen_at")
        result["terminated"] = _thaw_objects(d, before, record, started + wait_timeout, terminate)
        # Sessions opened while frozen started read-only and stay so until they reconnect.
        since = datetime.strptime(frozen_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc) if frozen_at else None
        stale = [{**s, "connected": s["connected"].isoformat()} for s in d.sessions() if since and s["connected"] >= since]
        if stale and terminate:
            ended = d.terminate([s["pid"] for s in stale])
            result["terminated"].extend(s for s in stale if s["pid"] in ended)
        elif stale:
            result["warnings"].append(
                f"{len(stale)} session(s) opened while the database was frozen keep a read-only default until they reconnect "
                "(terminate: true ends them)."
            )
        result["read_only_sessions_left"] = 0 if terminate else len(stale)
        after = d.state()
        result["diff"] = {"before": _view(before), "after": _view(after)}
        result["frozen_at"] = frozen_at
        result["seconds"] = round(time.monotonic() - started, 3)
        return result
    finally:
        d.close()


def run(params: dict, check_mode: bool = False) -> dict:
    """Entry point of the postgresql_freeze module."""
    conn = from_params(params)
    if not params.get("login_db"):
        raise InvalidInput("login_db is required: it names the database to freeze or thaw.", hint="set login_db.")
    wait = float(params.get("wait_timeout") if params.get("wait_timeout") is not None else 30)
    if wait < 0:
        raise InvalidInput(f"wait_timeout must not be negative (got {wait:g}).", hint="give the seconds to wait, e.g. 30.")
    if params.get("state", "frozen") == "frozen":
        return freeze(conn, wait, bool(params.get("terminate")), check_mode)
    return thaw(conn, wait, bool(params.get("terminate")), check_mode)
