# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Switching a PgBouncer database alias to another boot entry.

The ``[databases]`` line of the alias in ``pgbouncer.ini`` is edited in place (host, port and dbname;
every other parameter of the line is kept), then the admin console re-reads the file (``RELOAD``)
and ``SHOW DATABASES`` proves PgBouncer routes the alias to the new entry — PgBouncer answers a
``RELOAD`` of a broken file with success and keeps the old configuration, so the proof matters.

With ``pause``, ``PAUSE <alias>`` runs first: PgBouncer lets running transactions finish (session
pooling: waits for the sessions to end) and holds new queries until ``RESUME``, so clients see a
pause instead of errors and no transaction runs on the old entry after the switch. The wait for
``PAUSE`` is bounded; on a timeout or any failure the alias is resumed and the file restored.

The admin console speaks only the simple query protocol: psycopg sends a query without
parameters that way, as long as it does not prepare it (``prepare_threshold = None``).
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import time
from typing import Any

from ansible_collections.dualboot.db.plugins.module_utils import postgresql
from ansible_collections.dualboot.db.plugins.module_utils.errors import ConnectionFailed, DualbootError, InvalidInput, OperationFailed
from ansible_collections.dualboot.db.plugins.module_utils.switch_formats import (
    Masker,
    atomic_write,
    backup_copy,
    changed_lines,
    pgbouncer_admin_spec,
    read_target,
)

ADMIN_DB = "pgbouncer"
_SECTION = re.compile(r"\s*\[(?P<name>[^\]]+)\]\s*$")
_LINE = re.compile(r"(?P<lead>\s*)(?P<alias>[^=\s;#][^=]*?)(?P<sep>\s*=\s*)(?P<value>.*?)\s*$")
_PAIR = re.compile(r"(?P<key>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?P<value>'(?:[^']|'')*'|[^\s']*)")


def admin_spec() -> dict:
    """Suboptions of ``pgbouncer_admin``: where the admin console listens and who may use it."""
    return pgbouncer_admin_spec()


def _admin_conn(admin: dict) -> postgresql.PgConnection:
    spec = admin_spec()
    opts = {k: (admin or {}).get(k, spec[k]["default"]) for k in spec}
    opts = {k: spec[k]["default"] if v is None else v for k, v in opts.items()}
    return postgresql.PgConnection(
        dbname=ADMIN_DB,
        host=opts["login_host"],
        port=int(opts["login_port"]),
        user=opts["login_user"],
        password=opts["login_password"],
        unix_socket=opts["login_unix_socket"],
        sslmode="prefer",
        connect_timeout=int(opts["connect_timeout"]),
    )


def connect_admin(conn: postgresql.PgConnection) -> Any:
    try:
        admin = postgresql.connect(conn, autocommit=True)
    except ConnectionFailed as exc:
        cause = re.sub(r"^.*failed: (FATAL: +)?", "", exc.message)
        if "authentication failed" in cause or "not allowed" in cause:
            raise ConnectionFailed(
                f"the PgBouncer admin console {conn.label()} refused user {conn.user!r}: {cause}; nothing was changed.",
                hint="check pgbouncer_admin.login_password, and that the user is in PgBouncer's auth_file and admin_users.",
            ) from None
        raise ConnectionFailed(
            f"cannot reach the PgBouncer admin console {conn.label()}: {cause}; nothing was changed.",
            hint="check pgbouncer_admin (login_host, login_port) and that PgBouncer runs and listens there.",
        ) from None
    # psycopg prepares a statement run 5 times (extended protocol), which the admin console refuses.
    admin.prepare_threshold = None
    return admin


# --------------------------------------------------------------------------------------------
# pgbouncer.ini


def parse_connstr(value: str) -> list[dict]:
    """``key=value`` pairs of a ``[databases]`` line with their spans; values may be 'single quoted'."""
    pairs = []
    pos = 0
    while True:
        while pos < len(value) and value[pos].isspace():
            pos += 1
        if pos >= len(value):
            return pairs
        m = _PAIR.match(value, pos)
        if not m:
            raise InvalidInput(f"cannot read the connection string {value!r} at {value[pos:]!r}.", hint="fix the [databases] line.")
        raw = m.group("value")
        text = raw[1:-1].replace("''", "'") if raw.startswith("'") else raw
        pairs.append({"key": m.group("key"), "value": text, "start": m.start("value"), "end": m.end("value")})
        pos = m.end()


def _quote(value: str) -> str:
    return value if re.fullmatch(r"[^\s']+", value) else "'" + value.replace("'", "''") + "'"


def desired_params(params: dict) -> dict:
    """host/port/dbname the alias must point at, from ``entry`` or from ``value`` (``host=... port=... dbname=...``)."""
    if params.get("value") is not None:
        wanted = {p["key"]: p["value"] for p in parse_connstr(params["value"])}
        if not wanted:
            raise InvalidInput("value is empty.", hint="give value as host=... port=... dbname=..., or give entry.")
        return wanted
    entry = params.get("entry") or {}
    wanted = {}
    host = entry.get("login_unix_socket") or entry.get("login_host")
    if host:
        wanted["host"] = str(host)
    if entry.get("login_port") is not None:
        wanted["port"] = str(entry["login_port"])
    if entry.get("login_db"):
        wanted["dbname"] = str(entry["login_db"])
    if not wanted.get("dbname"):
        raise InvalidInput("entry has no login_db.", hint="a PgBouncer switch needs the entry's login_db (and login_host/login_port).")
    return wanted


def edit_databases(text: str, alias: str, wanted: dict) -> tuple[str, str]:
    """Point ``alias`` in ``[databases]`` at ``wanted``; returns (new text, previous connection string)."""
    lines = text.splitlines(keepends=True)
    section = None
    seen_section = False
    hits = []
    for i, line in enumerate(lines):
        body = line.rstrip("\r\n")
        sm = _SECTION.match(body)
        if sm:
            section = sm.group("name").strip().lower()
            seen_section = seen_section or section == "databases"
            continue
        if section != "databases" or not body.strip() or body.lstrip()[:1] in (";", "#"):
            continue
        lm = _LINE.match(body)
        if lm and lm.group("alias") == alias:
            hits.append((i, lm))
    if not seen_section:
        raise InvalidInput("the file has no [databases] section.", hint="check path: it must be the pgbouncer.ini that defines the alias.")
    if not hits:
        raise InvalidInput(f"database alias {alias} is not defined in [databases].", hint="check key (the alias clients connect to).")
    if len(hits) > 1:
        raise InvalidInput(f"database alias {alias} is defined {len(hits)} times in [databases].", hint="remove the duplicates.")
    i, lm = hits[0]
    old = lm.group("value")
    new = old
    for key, value in wanted.items():
        present = [p for p in parse_connstr(new) if p["key"] == key]
        if present:
            p = present[-1]
            if p["value"] != value:
                new = new[: p["start"]] + _quote(value) + new[p["end"] :]
        else:
            new = f"{new} {key}={_quote(value)}" if new else f"{key}={_quote(value)}"
    if new != old:
        body = lines[i].rstrip("\r\n")
        eol = lines[i][len(body) :]
        lines[i] = body[: lm.start("value")] + new + body[lm.end("value") :] + eol
    return "".join(lines), old


# --------------------------------------------------------------------------------------------
# The admin console


def _quoted_name(alias: str) -> str:
    return '"' + alias.replace('"', '""') + '"'


def show_databases(conn: Any) -> dict:
    cur = conn.execute("SHOW DATABASES")
    cols = [d.name for d in cur.description]
    return {row[0]: dict(zip(cols, row)) for row in cur.fetchall()}


def routes_to(row: dict | None, alias: str, wanted: dict) -> bool:
    """Whether PgBouncer's live definition of the alias matches the host/port/dbname we want."""
    if row is None:
        return False
    if "host" in wanted and (row.get("host") or "") != wanted["host"]:
        return False
    if "port" in wanted and str(row.get("port")) != str(wanted["port"]):
        return False
    return (row.get("database") or alias) == wanted.get("dbname", alias)


def pause(conn_settings: postgresql.PgConnection, alias: str, timeout: float) -> float:
    """``PAUSE`` the alias, waiting at most ``timeout`` seconds for running transactions; returns the wait.

    A ``PAUSE`` stays in force after its connection closes, so on a timeout the caller must ``RESUME``.
    """
    conn = connect_admin(conn_settings)
    started = time.monotonic()
    try:
        pgconn = conn.pgconn
        pgconn.send_query(f"PAUSE {_quoted_name(alias)}".encode())
        deadline = started + timeout
        while True:
            pgconn.consume_input()
            if not pgconn.is_busy():
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            select.select([pgconn.socket], [], [], min(remaining, 0.5))
        while True:
            res = pgconn.get_result()
            if res is None:
                break
            if res.error_message:
                raise OperationFailed(
                    f"PgBouncer refused PAUSE {alias}: {res.error_message.decode(errors='replace').strip()}; nothing was changed.",
                    hint="check key (the database alias).",
                )
        return time.monotonic() - started
    finally:
        conn.close()


def _resume(admin: Any, settings: postgresql.PgConnection, alias: str) -> None:
    """RESUME the alias; a lost admin connection is replaced once. "Not paused" (PAUSE itself failed) is fine."""
    command = f"RESUME {_quoted_name(alias)}"
    try:
        admin.execute(command)
        return
    except Exception as exc:  # noqa: BLE001 - the first connection may be the broken part; try a fresh one before failing
        if "not paused" in str(exc):
            return
    with connect_admin(settings) as fresh:
        try:
            fresh.execute(command)
        except Exception as exc:  # noqa: BLE001 - see above
            if "not paused" not in str(exc):
                raise


def _server_activity(admin: Any, alias: str) -> str:
    """What keeps a PAUSE waiting: active server connections and waiting clients of the alias, for the message."""
    try:
        cur = admin.execute("SHOW POOLS")
        cols = [d.name for d in cur.description]
        rows = [dict(zip(cols, r)) for r in cur.fetchall() if r[0] == alias]
        active = sum(int(r.get("sv_active") or 0) for r in rows)
        return f"{active} server connection(s) of {alias} still in a transaction"
    except Exception:  # noqa: BLE001 - only decorates an error message
        return "transactions still running"


# --------------------------------------------------------------------------------------------
# The switch


def switch(params: dict, check_mode: bool) -> dict:
    """Point a PgBouncer alias at an entry: edit pgbouncer.ini, (PAUSE,) RELOAD, verify, (RESUME)."""
    started = time.monotonic()
    alias = params.get("key")
    if not alias or not isinstance(alias, str):
        raise InvalidInput("format pgbouncer needs key: the database alias in [databases].", hint="set key.")
    if params.get("template") or params.get("password"):
        raise InvalidInput(
            "format pgbouncer takes entry (or value host=... port=... dbname=...), not template or password.",
            hint="PgBouncer logs into PostgreSQL with its auth_file or the line's own password=, which is kept.",
        )
    mask = Masker(None)
    path = params["path"]
    real, data, st = read_target(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{path} is not UTF-8 text.", hint="check path.") from None
    wanted = desired_params(params)
    new_text, previous = edit_databases(text, alias, wanted)
    file_changed = new_text != text
    settings = _admin_conn(params.get("pgbouncer_admin") or {})
    admin = connect_admin(settings)
    result: dict = {"path": path, "format": "pgbouncer", "key": alias, "previous_value": mask(previous)}
    try:
        live = show_databases(admin).get(alias)
        reload_needed = file_changed or not routes_to(live, alias, wanted)
        result["changed"] = reload_needed
        result["value"] = mask(_line_value(new_text, alias))
        before, after = changed_lines(text, new_text)
        label = f"{path} ([databases] {alias})"
        result["diff"] = {"before": mask(before), "after": mask(after), "before_header": label, "after_header": label}
        if not reload_needed:
            result["msg"] = f"PgBouncer already routes {alias} to {_describe(wanted)}"
        elif check_mode:
            result["msg"] = f"would switch PgBouncer alias {alias} to {_describe(wanted)}" + (
                " (file unchanged, RELOAD pending)" if not file_changed else ""
            )
        else:
            result.update(_apply(admin, settings, params, real, data, st, new_text, file_changed, alias, wanted))
            result["msg"] = f"switched PgBouncer alias {alias} to {_describe(wanted)}" + (
                f" (paused {result['paused_s']} s)" if result.get("paused_s") is not None else ""
            )
    finally:
        admin.close()
    result["duration_s"] = round(time.monotonic() - started, 3)
    return result


def _apply(
    admin: Any,
    settings: Any,
    params: dict,
    real: str,
    data: bytes,
    st: os.stat_result,
    new_text: str,
    file_changed: bool,
    alias: str,
    wanted: dict,
) -> dict:
    out: dict = {}
    pause_started = None
    written = False
    try:
        if params.get("pause"):
            pause_started = time.monotonic()
            try:
                out["pause_wait_s"] = round(pause(settings, alias, float(params.get("pause_timeout") or 30)), 3)
            except TimeoutError:
                raise OperationFailed(
                    f"PAUSE {alias} did not finish within {params.get('pause_timeout')} s ({_server_activity(admin, alias)}); "
                    "clients were resumed and nothing was switched.",
                    hint="end or wait out the long transactions, or raise pause_timeout "
                    "(session pooling: PAUSE waits for clients to disconnect).",
                ) from None
        if file_changed:
            if params.get("backup"):
                out["backup_file"] = backup_copy(real, data, st)
            atomic_write(real, new_text.encode("utf-8"), like=st)
            written = True
        admin.execute("RELOAD")
        live = show_databases(admin).get(alias)
        if not routes_to(live, alias, wanted):
            conffile = _conffile(admin)
            raise OperationFailed(
                f"after RELOAD PgBouncer still routes {alias} to {_describe_row(live)}, not {_describe(wanted)}; the file was restored.",
                hint=f"PgBouncer reads {conffile}: check that path is that file (or included by it) "
                "and look at PgBouncer's log for a syntax error.",
            )
        out["reloaded"] = True
        out["database"] = {k: live.get(k) for k in ("host", "port", "database", "pool_mode", "paused")}
    except DualbootError:
        if written:
            _restore(admin, real, data, st)
        raise
    except Exception as exc:  # noqa: BLE001 - whatever failed after the file was written, the file is restored
        if written:
            _restore(admin, real, data, st)
        raise OperationFailed(
            f"switching PgBouncer alias {alias} failed: {exc}; the file was restored.", hint="look at PgBouncer's log."
        ) from None
    finally:
        if pause_started is not None:
            try:
                _resume(admin, settings, alias)
            except Exception as exc:  # noqa: BLE001 - this must be reported above anything else
                raise OperationFailed(
                    f"PgBouncer alias {alias} is still PAUSED: RESUME failed ({exc}).",
                    hint=f'connect to the admin console and run RESUME "{alias}" now; clients are waiting.',
                ) from None
            out["paused_s"] = round(time.monotonic() - pause_started, 3)
    return out


def _restore(admin: Any, real: str, data: bytes, st: os.stat_result) -> None:
    atomic_write(real, data, like=st)
    # The restored file is what matters; the caller's error says what failed.
    with contextlib.suppress(Exception):
        admin.execute("RELOAD")


def _conffile(admin: Any) -> str:
    with contextlib.suppress(Exception):  # only decorates an error message
        for row in admin.execute("SHOW CONFIG").fetchall():
            if row[0] == "conffile":
                return str(row[1])
    return "its configuration file"


def _line_value(text: str, alias: str) -> str:
    _new, value = edit_databases(text, alias, {})
    return value


def _describe(wanted: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in wanted.items())


def _describe_row(row: dict | None) -> str:
    if row is None:
        return "nothing (the alias is not loaded)"
    return f"host={row.get('host')} port={row.get('port')} dbname={row.get('database')}"
