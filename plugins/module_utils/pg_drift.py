# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drift markers and drift checks: has the default entry taken writes since a backup or clone?

A **marker** is taken at the copy point (inside the snapshot pg_dump uses, or just before a
template/physical copy). It holds:

- the MVCC snapshot (``pg_current_snapshot()``: xmin, xmax, in-progress xids) and the WAL position;
- per table: oid, relfilenode and the cumulative statistics counters (``n_tup_ins/upd/del``,
  ``n_live_tup``), plus ``stats_reset`` of the database;
- per table, exact row classes measured against the snapshot (:func:`measure_rows`): the number of
  rows whose ``xmin`` precedes the snapshot's xmin (``old``), the rows written by transactions
  concurrent with the snapshot (``band``: count and a digest of xmin + row content) and rows written
  after it (``new``: count and digest; always 0 when measured inside the snapshot itself).

A **check** (:func:`check_drift`) answers in the cheapest way that is still exact for a "no":

1. catalog: tables added, dropped or rewritten (relfilenode changed: TRUNCATE, VACUUM FULL, ...);
2. xid horizon: when no transaction id completed since the snapshot (cluster wide) and none of the
   transactions in progress at the snapshot has committed, nothing can have been written: no drift;
3. statistics counters: growing ``n_tup_ins/upd/del`` prove writes (cheap, but PostgreSQL 15 flushes
   a backend's counters only when it goes idle, so silence proves nothing);
4. exact scan: every table is read once and its row classes compared with the marker's. A committed
   insert or update leaves a row whose xmin is not older than the snapshot; a committed delete or
   update removes a row of the ``old`` or ``band`` class. This is the fallback when 2 and 3 cannot
   decide, after a statistics reset, or when ``exact`` is asked for.

A "yes" may be a false positive (rolled-back writes count in the statistics; writes whose statistics
arrived after the marker); a "no" is always proven by step 2 or 4.
"""

from __future__ import annotations

import datetime
import time
from typing import Any

from ansible_collections.dualboot.db.plugins.module_utils.errors import InvalidInput, OperationFailed
from ansible_collections.dualboot.db.plugins.module_utils.postgresql import PgConnection, connect

try:
    import psycopg
    from psycopg import sql
except ImportError:  # pragma: no cover - the module reports the missing library first
    psycopg = None
    sql = None

MARKER_FORMAT = 1
XID_WRAP = 2**32
INT32_MAX = 2**31 - 1
# Longest xid range measured by listing its xids (hashed = ANY) instead of computing age() per row.
XID_LIST_LIMIT = 20000

# User tables (and partitions) with storage; temporary tables belong to one session and are skipped.
TABLES_SQL = """
SELECT n.nspname, c.relname, c.oid::bigint, c.relfilenode::bigint, c.relpersistence,
       coalesce(s.n_tup_ins, 0), coalesce(s.n_tup_upd, 0), coalesce(s.n_tup_del, 0), coalesce(s.n_live_tup, 0)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE c.relkind = 'r' AND c.relpersistence <> 't'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
  AND n.nspname NOT LIKE 'pg\\_temp\\_%'
ORDER BY 1, 2
"""

IDENTITY_SQL = """
SELECT current_database(), d.oid::bigint, (SELECT system_identifier::text FROM pg_control_system()),
       current_setting('server_version_num')::int, current_setting('server_version'),
       pg_current_snapshot()::text, pg_snapshot_xmin(pg_current_snapshot())::text::bigint,
       pg_snapshot_xmax(pg_current_snapshot())::text::bigint,
       ARRAY(SELECT x::text::bigint FROM pg_snapshot_xip(pg_current_snapshot()) AS x),
       CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END::text,
       statement_timestamp(), s.stats_reset, pg_is_in_recovery()
FROM pg_database d LEFT JOIN pg_stat_database s ON s.datid = d.oid
WHERE d.datname = current_database()
"""


def _iso(ts: datetime.datetime | None) -> str | None:
    if ts is None:
        return None
    return ts.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _require_snapshot_isolation(cur: Any) -> None:
    cur.execute("SHOW transaction_isolation")
    level = cur.fetchone()[0]
    if level not in ("repeatable read", "serializable"):
        raise OperationFailed(f"a drift marker needs a REPEATABLE READ transaction, this one is {level}.")


def _tables(cur: Any) -> list[dict]:
    # Statistics are read as they are now, not cached from an earlier read in this transaction.
    cur.execute("SELECT pg_stat_clear_snapshot()")
    cur.execute(TABLES_SQL)
    return [
        {
            "schema": r[0],
            "name": r[1],
            "oid": r[2],
            "relfilenode": r[3],
            "unlogged": r[4] == "u",
            "n_tup_ins": r[5],
            "n_tup_upd": r[6],
            "n_tup_del": r[7],
            "n_live_tup": r[8],
        }
        for r in cur.fetchall()
    ]


def take_marker(cur: Any) -> dict:
    """The marker of the snapshot ``cur``'s REPEATABLE READ transaction runs in (no row counts yet).

    Call it in the transaction whose snapshot the copy uses (after ``pg_export_snapshot()``), then
    :func:`measure_rows` in the same transaction or on an exact copy.
    """
    _require_snapshot_isolation(cur)
    cur.execute(IDENTITY_SQL)
    row = cur.fetchone()
    return {
        "format": MARKER_FORMAT,
        "database": row[0],
        "database_oid": row[1],
        "system_identifier": row[2],
        "server_version_num": row[3],
        "server_version": row[4],
        "snapshot": row[5],
        "xmin": row[6],
        "xmax": row[7],
        "xip": list(row[8]),
        "wal_lsn": row[9],
        "taken_at": _iso(row[10]),
        "stats_reset": _iso(row[11]),
        "in_recovery": bool(row[12]),
        "rows_measured": None,
        "tables": _tables(cur),
    }


def next_xid64(age3: int, xmax64: int) -> int:
    """The 64-bit transaction id ``age()`` counts from, given ``age('3'::xid)`` and the snapshot's 64-bit xmax.

    ``age(xid)`` is ``next32 - xid`` as a signed 32-bit number, with next32 fixed for the transaction;
    ``age('3')`` reveals next32, and the snapshot's xmax (never above it, less than 2^32 below) gives the epoch.
    """
    next32 = (age3 + 3) % XID_WRAP
    return xmax64 + ((next32 - xmax64) % XID_WRAP)


def _next_xid64(cur: Any) -> int:
    cur.execute("SELECT age('3'::xid), pg_snapshot_xmax(pg_current_snapshot())::text::bigint")
    return next_xid64(*cur.fetchone())


def _class_query(table: dict) -> Any:
    ident = sql.Identifier(table["schema"], table["name"])
    band = sql.SQL("age(t.xmin) BETWEEN %(k2)s + 1 AND %(k1)s")
    new = sql.SQL("age(t.xmin) BETWEEN 0 AND %(k2)s")
    digest = sql.SQL("hashtextextended(t.xmin::text || ':' || t::text, 0)")
    return sql.SQL(
        "SELECT count(*), count(*) FILTER (WHERE {band}), coalesce(sum({digest}) FILTER (WHERE {band}), 0)::text,"
        " count(*) FILTER (WHERE {new}), coalesce(sum({digest}) FILTER (WHERE {new}), 0)::text FROM {table} AS t"
    ).format(band=band, new=new, digest=digest, table=ident)


def _bounds(cur: Any, marker: dict) -> dict:
    next64 = _next_xid64(cur)
    k1 = next64 - int(marker["xmin"])
    k2 = next64 - int(marker["xmax"])
    if k2 < 0:
        raise InvalidInput(
            "the drift marker's snapshot lies in the future of this server (xmax "
            f"{marker['xmax']} > next transaction id {next64}): it was not taken on this server or its copy.",
            hint="pass the marker that the backup or clone of this database recorded.",
        )
    return {"k1": k1, "k2": k2}


def _classes(cur: Any, table: dict, bounds: dict) -> dict:
    cur.execute(_class_query(table), bounds)
    total, band, band_digest, new, new_digest = cur.fetchone()
    return {"old": total - band - new, "band": band, "band_digest": band_digest, "new": new, "new_digest": new_digest}


def _xid_list(lo64: int, hi64: int) -> str | None:
    """The 32-bit xids of ``[lo64, hi64)`` as an ``xid[]`` literal, or None when the range is too long to list."""
    if hi64 - lo64 > XID_LIST_LIMIT:
        return None
    return "{" + ",".join(str(x % XID_WRAP) for x in range(lo64, hi64) if x % XID_WRAP >= 3) + "}"


def _listed_class_query(table: dict, band: str, new: str | None) -> Any:
    """The row classes by xid lists: plain equality keeps the scan parallel (``age()`` is parallel restricted)."""
    digest = sql.SQL("hashtextextended(t.xmin::text || ':' || t::text, 0)")
    parts = [sql.SQL("count(*)")]
    for lst, key in ((band, "band"), (new, "new")):
        if lst and lst != "{}":
            cond = sql.SQL("t.xmin = ANY({}::xid[])").format(sql.Placeholder(key))
            parts += [
                sql.SQL("count(*) FILTER (WHERE {})").format(cond),
                sql.SQL("coalesce(sum({}) FILTER (WHERE {}), 0)::text").format(digest, cond),
            ]
        else:
            parts += [sql.SQL("0"), sql.SQL("'0'")]
    return sql.SQL("SELECT {} FROM {} AS t").format(sql.SQL(", ").join(parts), sql.Identifier(table["schema"], table["name"]))


def measure_rows(cur: Any, marker: dict, where: str = "snapshot") -> dict:
    """Count every table's rows by class against the marker's snapshot and store them in the marker.

    ``where`` says what was measured: ``snapshot`` (the marker's own transaction: exact by
    construction, and no row can be newer than the snapshot) or ``copy`` (an exact copy made right
    after the marker, read before any change). When the xids of the band (and of the copy window) are
    few, rows are classified by xid lists, which is a plain parallel count; otherwise by ``age()``.
    Returns ``{"tables": n, "rows": n, "seconds": s}``.
    """
    _require_snapshot_isolation(cur)
    started = time.monotonic()
    bounds = _bounds(cur, marker)
    next64 = int(marker["xmax"]) + bounds["k2"]
    band = _xid_list(int(marker["xmin"]), int(marker["xmax"]))
    new = "{}" if where == "snapshot" else _xid_list(int(marker["xmax"]), next64)
    present = {(t["schema"], t["name"]) for t in _tables(cur)}
    rows = 0
    for table in marker["tables"]:
        if (table["schema"], table["name"]) not in present:
            raise OperationFailed(f"table {table['schema']}.{table['name']} of the marker is missing where its rows were to be counted.")
        if band is not None and new is not None:
            cur.execute(_listed_class_query(table, band, new), {"band": band, "new": new})
            total, nband, band_digest, nnew, new_digest = cur.fetchone()
            table["rows"] = {"old": total - nband - nnew, "band": nband, "band_digest": band_digest, "new": nnew, "new_digest": new_digest}
        else:
            table["rows"] = _classes(cur, table, bounds)
        rows += table["rows"]["old"] + table["rows"]["band"] + table["rows"]["new"]
    seconds = round(time.monotonic() - started, 3)
    marker["rows_measured"] = {"on": where, "seconds": seconds, "rows": rows}
    return {"tables": len(marker["tables"]), "rows": rows, "seconds": seconds}


def summary(marker: dict) -> dict:
    """The part of a marker a person reads in a task result."""
    return {k: marker.get(k) for k in ("database", "taken_at", "wal_lsn", "snapshot", "system_identifier")} | {
        "tables": len(marker.get("tables", []))
    }


def validate_marker(marker: object) -> dict:
    """Check the shape of a marker given by a user (from a manifest or a clone result)."""
    required = ("format", "database", "system_identifier", "xmin", "xmax", "xip", "tables", "taken_at")
    if not isinstance(marker, dict) or any(k not in marker for k in required):
        raise InvalidInput(
            "the drift marker is not one recorded by postgresql_backup or postgresql_clone (keys missing).",
            hint="pass the 'marker' of a clone result, or the backup directory with 'backup'.",
        )
    if marker["format"] != MARKER_FORMAT:
        raise InvalidInput(f"drift marker format {marker['format']!r} is not supported (expected {MARKER_FORMAT}).")
    return marker


def _identity_check(marker: dict, ident: tuple) -> None:
    database, system_identifier = ident[0], ident[2]
    if str(marker["system_identifier"]) != system_identifier or marker["database"] != database:
        raise InvalidInput(
            f"the drift marker was taken on database {marker['database']!r} of server {marker['system_identifier']}; "
            f"this connection reaches database {database!r} of server {system_identifier}.",
            hint="connect to the default entry the backup or clone was made from (login_db and host).",
        )


def _xip_statuses(cur: Any, xip: list) -> dict:
    if not xip:
        return {}
    cur.execute("SELECT x, pg_xact_status(x::text::xid8) FROM unnest(%s::bigint[]) AS x", (list(xip),))
    return {int(x): status for x, status in cur.fetchall()}


def _counter_changes(before: dict, now: dict) -> dict | None:
    deltas = {k: now[k] - before[k] for k in ("n_tup_ins", "n_tup_upd", "n_tup_del")}
    if any(v < 0 for v in deltas.values()):
        return None  # counters went back: reset since the marker
    return deltas


def check_drift(cur: Any, marker: dict, exact: bool = False) -> dict:
    """Compare the database ``cur`` is connected to with ``marker``; ``cur`` must be in a fresh
    REPEATABLE READ READ ONLY transaction. Returns the drift result (see module RETURN)."""
    started = time.monotonic()
    validate_marker(marker)
    _require_snapshot_isolation(cur)
    cur.execute(IDENTITY_SQL)
    ident = cur.fetchone()
    _identity_check(marker, ident)
    now_xmax, now_lsn, now_ts, stats_reset = ident[7], ident[9], ident[10], _iso(ident[11])
    cur.execute("SELECT pg_wal_lsn_diff(%s::pg_lsn, %s::pg_lsn)::bigint", (now_lsn, marker["wal_lsn"]))
    wal_bytes = cur.fetchone()[0]

    marked = {(t["schema"], t["name"]): t for t in marker["tables"]}
    current = {(t["schema"], t["name"]): t for t in _tables(cur)}
    changes: list[dict] = []
    for key in sorted(set(current) - set(marked)):
        changes.append({"table": ".".join(key), "change": "added", "rows_changed": None, "detail": {}})
    for key in sorted(set(marked) - set(current)):
        rows = marked[key].get("rows") or {}
        lost = rows.get("old", 0) + rows.get("band", 0) + rows.get("new", 0) if rows else None
        changes.append({"table": ".".join(key), "change": "dropped", "rows_changed": lost, "detail": {}})
    rewritten = {key for key in set(marked) & set(current) if marked[key]["relfilenode"] != current[key]["relfilenode"]}

    base = {
        "marker": summary(marker),
        "seconds_since_marker": round(
            (now_ts - datetime.datetime.fromisoformat(marker["taken_at"].replace("Z", "+00:00"))).total_seconds(), 1
        ),
        "wal_bytes_since_marker": wal_bytes,
        "stats_reset": stats_reset,
    }

    def done(drift: bool, method: str, reason: str, tables: list, complete: bool) -> dict:
        tables.sort(key=lambda t: t["table"])
        return dict(
            base,
            changed=False,
            drift=drift,
            method=method,
            reason=reason,
            tables=tables,
            tables_complete=complete,
            duration_s=round(time.monotonic() - started, 3),
        )

    statuses = _xip_statuses(cur, marker["xip"])
    committed_since = [x for x, s in statuses.items() if s not in ("in progress", "aborted")]
    if now_xmax == int(marker["xmax"]) and not committed_since and not changes and not rewritten:
        return done(
            False,
            "xid_horizon",
            "no transaction has completed on this server since the marker and none of those running at the marker has "
            "committed, so nothing can have been written.",
            [],
            True,
        )

    counters_usable = stats_reset == marker.get("stats_reset")
    counter_tables = []
    if counters_usable:
        for key in sorted(set(marked) & set(current)):
            deltas = _counter_changes(marked[key], current[key])
            if deltas is None:
                counters_usable = False
                break
            if any(deltas.values()) or key in rewritten:
                change = "rewritten" if key in rewritten else "written"
                counter_tables.append({"table": ".".join(key), "change": change, "rows_changed": sum(deltas.values()), "detail": deltas})
    if not exact and counters_usable and (counter_tables or changes):
        return done(
            True,
            "counters",
            f"{len(counter_tables) + len(changes)} table(s) show writes or DDL since the marker in the statistics counters and "
            "the catalog; tables whose statistics are not flushed yet may be missing from the list (exact: true lists all).",
            changes + counter_tables,
            False,
        )

    why = "asked for" if exact else ("statistics were reset since the marker" if not counters_usable else "counters show no writes")
    return _exact(cur, marker, marked, current, rewritten, changes, done, why)


def _exact(cur: Any, marker: dict, marked: dict, current: dict, rewritten: set, changes: list, done: Any, why: str) -> dict:
    if not all(t.get("rows") for t in marker["tables"]):
        return done(
            True,
            "conservative",
            f"an exact scan is needed ({why}) but the marker holds no row counts; writes cannot be ruled out, so drift is assumed.",
            changes,
            False,
        )
    bounds = _bounds(cur, marker)
    if bounds["k1"] > INT32_MAX:
        return done(
            True,
            "conservative",
            "more than 2^31 transaction ids have passed since the marker: its snapshot can no longer be compared, so drift is assumed.",
            changes,
            False,
        )
    tables = list(changes)
    for key in sorted(set(marked) & set(current)):
        before = marked[key]["rows"]
        now = _classes(cur, marked[key], bounds)
        written = now["new"] + (now["band"] if now["band_digest"] != before["band_digest"] else 0) - before["new"]
        gone = before["old"] - now["old"] + max(0, before["band"] - now["band"])
        same = all(now[k] == before[k] for k in ("old", "band", "band_digest", "new", "new_digest"))
        if not same or key in rewritten:
            tables.append(
                {
                    "table": ".".join(key),
                    "change": "rewritten" if key in rewritten else "written",
                    "rows_changed": max(written, 0) + max(gone, 0),
                    "detail": {"rows_written_since": max(written, 0), "rows_removed_since": max(gone, 0)},
                }
            )
    # A rewrite alone (VACUUM FULL, CLUSTER) keeps every row: only a difference in rows is drift.
    drifted = [t for t in tables if t["change"] != "rewritten" or t["rows_changed"]]
    reason = f"exact scan ({why}): every table was read and compared with the marker's row counts; " + (
        f"{len(drifted)} table(s) changed." if drifted else "no row was written, removed or updated since the marker."
    )
    return done(bool(drifted), "exact_scan", reason, tables, True)


def drift(conn: PgConnection, marker: dict | None = None, backup: str | None = None, exact: bool = False) -> dict:
    """Has database ``conn.dbname`` taken writes since ``marker`` (or the marker of backup directory ``backup``)?"""
    if (marker is None) == (backup is None):
        raise InvalidInput("give exactly one of marker (from a clone result) or backup (a backup directory).")
    if backup is not None:
        # Imported here: pg_backup imports this module for take_marker/measure_rows.
        from ansible_collections.dualboot.db.plugins.module_utils.pg_backup import load_manifest

        marker = load_manifest(backup).get("marker")
    validate_marker(marker)
    with connect(conn) as c:
        c.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        c.read_only = True
        result = check_drift(c.cursor(), marker, exact)
        c.rollback()
    since = f"since the marker of {marker['taken_at']}"
    if result["drift"]:
        shown = ", ".join(
            f"{t['table']} ({t['change']}" + (f", ~{t['rows_changed']} rows)" if t["rows_changed"] is not None else ")")
            for t in result["tables"][:10]
        )
        more = f" and {len(result['tables']) - 10} more" if len(result["tables"]) > 10 else ""
        result["summary"] = f"{conn.label()} took writes {since} ({result['method']}): {shown or 'tables unknown'}{more}"
    else:
        result["summary"] = f"no writes on {conn.label()} {since} (proven by {result['method'].replace('_', ' ')})"
    return result


def mark(conn: PgConnection) -> dict:
    """Take a marker of database ``conn.dbname`` now, with its row counts, for a later :func:`drift`.

    Cutover marks the entry the applications are about to write to, so rollback can tell whether it
    took writes since. Counting rows reads every table once (one REPEATABLE READ transaction).
    """
    started = time.monotonic()
    with connect(conn) as c:
        c.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        c.read_only = True
        cur = c.cursor()
        marker = take_marker(cur)
        counted = measure_rows(cur, marker, "snapshot")
        c.rollback()
    return {
        "changed": False,
        "marker": marker,
        "duration_s": round(time.monotonic() - started, 3),
        "summary": f"marked {conn.label()} at {marker['taken_at']} (WAL {marker['wal_lsn']}): "
        f"{counted['tables']} table(s), {counted['rows']} row(s)",
    }
