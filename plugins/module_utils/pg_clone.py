# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Clone the default entry into the staged entry in one step.

Methods (``auto`` picks the fastest correct one and says why):

- ``template``: same server, ``CREATE DATABASE <tmp> TEMPLATE <source>``: a file-level copy inside
  the server, the fastest; it needs the source to have no other sessions.
- ``dump_restore``: ``pg_dump --format=directory --jobs`` into a private temporary directory, then
  ``pg_restore --jobs``: parallel on both sides, across servers or when template is impossible.
- ``pipe``: ``pg_dump --format=custom | pg_restore``: no intermediate file, one job each side.
- ``physical``: ``pg_basebackup`` of the whole source cluster into a new data directory, started as
  a cluster of its own on another port: the fastest way to copy a whole cluster.

Every method except physical builds the target under a temporary name and renames it into place
(see :class:`pg_backup.TargetBuild`), and every method returns the drift marker of the copy point.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
from typing import Any

from ansible_collections.dualboot.db.plugins.module_utils.boot_record import default_entry, load_record
from ansible_collections.dualboot.db.plugins.module_utils.errors import DualbootError, InvalidInput, OperationFailed, SafetyRefusal
from ansible_collections.dualboot.db.plugins.module_utils.pg_backup import (
    SnapshotSession,
    TargetBuild,
    ToolProcess,
    analyze,
    check_protection,
    conninfo_dbname,
    database_properties,
    dump_args,
    find_tool,
    human_bytes,
    other_sessions,
    restore_dump,
    run_tool,
    throughput,
    tool_env,
)
from ansible_collections.dualboot.db.plugins.module_utils.pg_drift import measure_rows, take_marker
from ansible_collections.dualboot.db.plugins.module_utils.pg_privileges import Entry, method_needs, needs, refuse, role
from ansible_collections.dualboot.db.plugins.module_utils.pg_upgrade import (
    OLD_COPY_SUFFIX,
    analyze_all,
    check_target_major,
    cluster_facts,
    copy_settings,
    settings_lines,
    upgrade,
    upgrade_tools,
)
from ansible_collections.dualboot.db.plugins.module_utils.postgresql import PgConnection, connect

try:
    import psycopg
    from psycopg import sql
except ImportError:  # pragma: no cover - the module reports the missing library first
    psycopg = None
    sql = None

METHODS = ("auto", "template", "dump_restore", "pipe", "stream", "physical")
# Measured by benchmarks/pg_stage.py (see benchmarks/README.md): across servers the parallel COPY
# pipes of stream beat the directory dump + parallel restore and the single-job pipe.
CROSS_SERVER_METHOD = "stream"
# stream: tables at least this big are copied through COPY pipes, split in ctid ranges of about the chunk size.
STREAM_TABLE_BYTES = 16 * 1024 * 1024
STREAM_CHUNK_BYTES = 128 * 1024 * 1024
# Below this size CREATE DATABASE's WAL_LOG strategy avoids two checkpoints; above it FILE_COPY is faster.
FILE_COPY_THRESHOLD = 256 * 1024 * 1024


def _server_identity(cur: Any) -> tuple[str, str]:
    """(system identifier, postmaster start time): equal only for the same running server; a physical
    copy shares the system identifier but not the start time."""
    cur.execute("SELECT (SELECT system_identifier::text FROM pg_control_system()), pg_postmaster_start_time()::text")
    return cur.fetchone()


def _source_facts(source: PgConnection) -> dict:
    with connect(source, autocommit=True) as c:
        cur = c.cursor()
        props = database_properties(cur)
        props["identity"] = _server_identity(cur)
        props["role"] = role(cur)
        # CREATE DATABASE ... TEMPLATE copies a database marked as a template, or one the role owns (or any, for a superuser).
        cur.execute("SELECT datistemplate OR pg_has_role(datdba, 'USAGE') FROM pg_database WHERE datname = current_database()")
        props["may_template"] = props["role"].superuser or cur.fetchone()[0]
    return props


def _server_files(source: PgConnection, src: dict) -> None:
    """Where the source keeps its files (method physical only: reading them needs pg_read_all_settings)."""
    r = src["role"]
    if not r.superuser and not (r.replication and r.read_all_settings):
        entry = Entry(source)
        raise refuse("copy method physical", method_needs("physical", entry, entry))
    with connect(source, autocommit=True) as c:
        cur = c.cursor()
        cur.execute("SELECT current_setting('data_directory'), current_setting('config_file'), current_setting('hba_file')")
        src["data_directory"], src["config_file"], src["hba_file"] = cur.fetchone()
        cur.execute("SELECT spcname, pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global')")
        src["tablespaces"] = cur.fetchall()


def clone(
    source: PgConnection,
    target: PgConnection,
    method: str = "auto",
    if_exists: str = "fail",
    jobs: int | None = None,
    force: bool = False,
    boot_record: str | None = None,
    tmp_dir: str | None = None,
    run_analyze: bool = True,
    no_owner: bool = False,
    tablespace: str | None = None,
    maintenance_db: str = "postgres",
    bin_dir: str | None = None,
    physical: dict | None = None,
    check_mode: bool = False,
) -> dict:
    """Copy database ``source.dbname`` to ``target.dbname`` (see the module documentation)."""
    started = time.monotonic()
    if method not in METHODS:
        raise InvalidInput(f"method must be one of {', '.join(METHODS)}, not {method!r}.")
    jobs = jobs or os.cpu_count() or 1
    if jobs < 1:
        raise InvalidInput(f"jobs must be 1 or more, not {jobs}.")
    if tmp_dir and not os.path.isdir(tmp_dir):
        raise InvalidInput(f"tmp_dir {tmp_dir} does not exist.", hint="create it or leave tmp_dir unset.")
    src = _source_facts(source)
    if method == "physical" or (method == "auto" and (physical or {}).get("target_data_dir")):
        # A target data directory makes the staged entry a cluster of its own: a physical copy is the fastest.
        reason = (
            "asked for: pg_basebackup of the whole source cluster into a cluster of its own"
            if method == "physical"
            else "target_data_dir given, so the staged entry is a cluster of its own: pg_basebackup of the whole source "
            "cluster is the fastest copy (benchmarks/README.md)."
        )
        ctx = {"if_exists": if_exists, "force": force, "boot_record": boot_record, "bin_dir": bin_dir, "check_mode": check_mode}
        ctx.update({"started": started, "reason": reason, "jobs": jobs, "run_analyze": run_analyze})
        return _physical(source, target, src, physical or {}, ctx)

    build = TargetBuild(target, maintenance_db, if_exists, tablespace)
    with connect(build.maint, autocommit=True) as c:
        same_server = _server_identity(c.cursor()) == src["identity"]
    if same_server and source.dbname == target.dbname:
        raise InvalidInput(
            f"target equals source: both name database {source.dbname!r} on the same server ({source.label()}).",
            hint="give the target (the staged entry) another database name or server.",
        )
    build.inspect()
    warnings = check_protection(target, build.sysid, build.exists, None, boot_record, force, "clone over")
    chosen, reason = _choose(method, same_server, build.maint, source.dbname, src)
    _require_privileges(source, target, maintenance_db, chosen, no_owner)
    major = max(src["server_version_num"], build.server_version_num) // 10000
    if src["server_version_num"] // 10000 > build.server_version_num // 10000:
        raise InvalidInput(
            f"source runs PostgreSQL {src['server_version_num'] // 10000}, target {target.label()} the older PostgreSQL "
            f"{build.server_version_num // 10000}: a dump does not load into an older major version.",
            hint="clone into a server of the same or a newer major version.",
        )
    diff = {
        "before": {"database": target.dbname, "exists": build.exists},
        "after": {"database": target.dbname, "exists": True, "cloned_from": source.label(), "method": chosen},
    }
    if check_mode:
        return {
            "changed": True,
            "method": chosen,
            "method_reason": reason,
            "source": source.label(),
            "target": target.label(),
            "replaced": build.exists,
            "warnings": warnings,
            "diff": diff,
            "summary": f"would clone {source.label()} ({human_bytes(src['size_bytes'])}) to {target.label()} with {chosen}: {reason}",
        }

    ctx = {
        "source": source,
        "build": build,
        "props": src,
        "jobs": jobs,
        "major": major,
        "bin_dir": bin_dir,
        "tmp_dir": tmp_dir,
        "no_owner": no_owner,
    }
    if chosen == "template":
        try:
            out = _template(ctx)
        except _SourceBusy as busy:
            if method != "auto":
                raise OperationFailed(
                    str(busy), hint="disconnect the sessions on the source, or use method: auto or dump_restore."
                ) from None
            chosen = CROSS_SERVER_METHOD
            reason = f"{busy} CREATE DATABASE ... TEMPLATE needs none, so {chosen} was used instead."
    if chosen in ("dump_restore", "pipe", "stream"):
        out = _dump_restore(ctx, chosen, run_analyze=run_analyze)
    warnings += out.pop("warnings", [])
    duration = round(time.monotonic() - started, 3)
    size = src["size_bytes"]
    return {
        "changed": True,
        "method": chosen,
        "method_reason": reason,
        "source": source.label(),
        "target": target.label(),
        "replaced": out["replaced"],
        "database_size_bytes": size,
        "jobs": out.get("jobs"),
        "duration_s": duration,
        "throughput_mb_s": throughput(size, duration),
        "timings": out["timings"],
        "marker": out["marker"],
        "warnings": warnings,
        "diff": diff,
        "summary": (
            f"cloned {source.label()} ({human_bytes(size)}) to {target.label()} with {chosen} in {duration:.1f} s "
            f"({throughput(size, duration)} MB/s)" + (", replacing the previous database" if out["replaced"] else "")
        ),
    }


def _require_privileges(source: PgConnection, target: PgConnection, maintenance_db: str, method: str, no_owner: bool) -> None:
    """Name every privilege the copy lacks (read the source, create and own the target) before creating anything."""
    src, tgt = Entry(source, maintenance_db=source.dbname), Entry(target, maintenance_db)
    if src.role.superuser and tgt.role.superuser:
        return
    missing = needs("stage", src, tgt, method, no_owner)
    if missing:
        raise refuse(f"the copy ({method})", missing)


def _choose(method: str, same_server: bool, maint: PgConnection, source_db: str, src: dict) -> tuple[str, str]:
    if method == "template":
        if not same_server:
            raise InvalidInput("method template needs source and target on the same server.", hint="use method: auto or dump_restore.")
        if not src["may_template"]:
            entry = Entry(maint.with_db(source_db))
            raise refuse("copy method template", method_needs("template", entry, entry))
        return "template", "asked for"
    if method != "auto":
        return method, "asked for"
    if same_server and not src["may_template"]:
        return (
            CROSS_SERVER_METHOD,
            f"same server, but the login role {src['role'].name} neither owns the source database nor is it a template, and "
            f"CREATE DATABASE ... TEMPLATE needs one of them (or a superuser); {CROSS_SERVER_METHOD} copies from a snapshot instead.",
        )
    if same_server:
        with connect(maint, autocommit=True) as c:
            busy = other_sessions(c.cursor(), source_db)
        if busy:
            return (
                CROSS_SERVER_METHOD,
                f"same server, but {busy} session(s) are connected to the source and CREATE DATABASE ... TEMPLATE needs none; "
                f"{CROSS_SERVER_METHOD} copies from a snapshot instead.",
            )
        return "template", "same server and no other session on the source: a file-level copy inside the server is the fastest path."
    return (
        CROSS_SERVER_METHOD,
        "different servers: parallel COPY pipes from one snapshot, then parallel index builds, measured fastest (benchmarks/README.md).",
    )


class _SourceBusy(DualbootError):
    pass


def _template(ctx: dict) -> dict:
    source: PgConnection = ctx["source"]
    build: TargetBuild = ctx["build"]
    timings = {}
    # The marker and its row counts come from the source just before the copy (its pages are in the
    # server's buffers; the copy's are not). A session that writes in between makes the check report
    # drift that the copy already holds (a false positive), never the reverse.
    with connect(source) as c:
        c.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        c.read_only = True
        cur = c.cursor()
        marker = take_marker(cur)
        timings["row_count_s"] = measure_rows(cur, marker, "snapshot")["seconds"]
        c.rollback()
    t = time.monotonic()
    tmp = build.new_tmp()
    strategy = ""
    if build.server_version_num >= 150000:
        strategy = " STRATEGY FILE_COPY" if ctx["props"]["size_bytes"] > FILE_COPY_THRESHOLD else " STRATEGY WAL_LOG"
    stmt = sql.SQL("CREATE DATABASE {} TEMPLATE {}" + strategy).format(sql.Identifier(tmp), sql.Identifier(source.dbname))
    if build.tablespace:
        stmt += sql.SQL(" TABLESPACE {}").format(sql.Identifier(build.tablespace))
    try:
        with connect(build.maint, autocommit=True) as c:
            c.execute(stmt)
    except psycopg.errors.ObjectInUse:
        build.tmp = None
        with connect(build.maint, autocommit=True) as c:
            busy = other_sessions(c.cursor(), source.dbname)
        raise _SourceBusy(f"{busy or 'some'} other session(s) are connected to the source database {source.dbname!r}.") from None
    except psycopg.Error as exc:
        build.tmp = None
        text = str(exc).strip()
        raise OperationFailed(
            f"CREATE DATABASE ... TEMPLATE {source.dbname} failed: {text}",
            hint="free space on the server's disk." if "space" in text else "check the server log; the target was not changed.",
        ) from None
    timings["copy_s"] = round(time.monotonic() - t, 3)
    try:
        warnings = build.finish(ctx["props"], ctx["no_owner"])
        swapped = build.commit()
    except BaseException:
        build.abort()
        raise
    if swapped["leftover"]:
        warnings.append(swapped["leftover"])
    return {"replaced": swapped["replaced"], "timings": timings, "marker": marker, "warnings": warnings, "jobs": 1}


def _measure_copy(conn: PgConnection, marker: dict) -> None:
    """Count the marker's row classes on a fresh exact copy, before anyone writes to it."""
    with connect(conn) as c:
        c.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        c.read_only = True
        measure_rows(c.cursor(), marker, "copy")
        c.rollback()


def _dump_restore(ctx: dict, mode: str, run_analyze: bool) -> dict:
    """``dump_restore`` (directory dump, then parallel restore), ``pipe`` (pg_dump | pg_restore) or
    ``stream`` (parallel COPY pipes between the servers); all read one exported snapshot."""
    source: PgConnection = ctx["source"]
    build: TargetBuild = ctx["build"]
    jobs, major, bin_dir = ctx["jobs"], ctx["major"], ctx["bin_dir"]
    pg_dump = find_tool("pg_dump", major, bin_dir)
    timings: dict = {}
    workdir = None
    session = SnapshotSession(source)
    counter = _RowCounter(session)
    try:
        marker = session.marker
        env = tool_env(source)
        t = time.monotonic()
        if mode == "pipe":
            build.prepare(ctx["props"])
            pg_restore = find_tool("pg_restore", major, bin_dir)
            dump = ToolProcess(
                [pg_dump, *dump_args("custom", None, 1, 0, session.snapshot)], env, f"pg_dump of {source.label()}", stdout=subprocess.PIPE
            )
            load = ToolProcess(
                [
                    pg_restore,
                    "--exit-on-error",
                    "--no-password",
                    "-d",
                    conninfo_dbname(build.tmp),
                    *(["--no-owner"] if ctx["no_owner"] else []),
                ],
                tool_env(build.tmp_conn()),
                f"pg_restore into {build.tmp_conn().label()}",
                disk="the target server",
                stdin=dump.proc.stdout,
            )
            dump.proc.stdout.close()
            _Pipeline(dump, load).run_alongside(counter)
            timings["copy_s"] = round(time.monotonic() - t, 3)
        elif mode == "stream":
            workdir = tempfile.mkdtemp(prefix="dualboot-clone-", dir=ctx["tmp_dir"])
            _stream(ctx, session, counter, workdir, timings)
        else:
            workdir = tempfile.mkdtemp(prefix="dualboot-clone-", dir=ctx["tmp_dir"])
            out = os.path.join(workdir, "dump")
            dump = ToolProcess(
                [pg_dump, *dump_args("directory", out, jobs, 0, session.snapshot, sync=False)],
                env,
                f"pg_dump of {source.label()}",
                disk=f"{os.path.dirname(workdir)} (tmp_dir)",
            )
            counter.start()
            try:
                dump.wait()
            finally:
                dump.kill()
                counter.join()
            timings["dump_s"] = round(time.monotonic() - t, 3)
        timings["row_count_s"] = counter.seconds()
        session.close()
        session = None
        if mode == "dump_restore":
            build.prepare(ctx["props"])
            timings["restore_s"] = restore_dump(out, "directory", build.tmp_conn(), jobs, ctx["no_owner"], bin_dir, major)
        elif mode == "stream":
            t = time.monotonic()
            _post_data(ctx, workdir)
            timings["post_data_s"] = round(time.monotonic() - t, 3)
        if run_analyze:
            timings["analyze_s"] = analyze(build.tmp_conn())
        warnings = build.finish(ctx["props"], ctx["no_owner"])
        swapped = build.commit()
    except BaseException:
        counter.join()
        build.abort()
        raise
    finally:
        if session is not None:
            session.close()
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    if swapped["leftover"]:
        warnings.append(swapped["leftover"])
    return {
        "replaced": swapped["replaced"],
        "timings": timings,
        "marker": marker,
        "warnings": warnings,
        "jobs": 1 if mode == "pipe" else jobs,
    }


class _RowCounter:
    """Counts the marker's row classes in the snapshot session on a thread of its own, while the
    copy runs (the session's connection is used by this thread only)."""

    def __init__(self, session: SnapshotSession) -> None:
        self.session = session
        self.thread: threading.Thread | None = None
        self.result: dict | None = None
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            self.result = self.session.count_rows()
        except BaseException as exc:  # noqa: BLE001 - re-raised in join()
            self.error = exc

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="dualboot-row-count", daemon=True)
        self.thread.start()

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join()
            self.thread = None
            if self.error is not None:
                error, self.error = self.error, None
                raise error

    def seconds(self) -> float | None:
        return self.result["seconds"] if self.result else None


class _Pipeline:
    """A producer tool piping into a consumer tool. When one fails, the other is stopped, and the error
    reported is the one of the tool that failed by itself."""

    def __init__(self, producer: ToolProcess, consumer: ToolProcess) -> None:
        self.producer, self.consumer = producer, consumer
        self.killed: set = set()

    def done(self) -> bool:
        return self.producer.proc.poll() is not None and self.consumer.proc.poll() is not None

    def failed_early(self) -> bool:
        return any(p.proc.poll() not in (None, 0) for p in (self.producer, self.consumer))

    def finish(self) -> None:
        errors = []
        for p in (self.consumer, self.producer):
            try:
                p.wait()
            except DualbootError as exc:
                errors.append((id(p) in self.killed, exc))
        if errors:
            errors.sort(key=lambda e: e[0])
            raise errors[0][1]

    def kill(self) -> None:
        for p in (self.consumer, self.producer):
            if p.proc.poll() is None:
                self.killed.add(id(p))
                p.kill()

    def run_alongside(self, counter: _RowCounter) -> None:
        counter.start()
        try:
            self.finish()
        except BaseException:
            self.kill()
            raise
        finally:
            counter.join()


def _run_pipelines(factories: list, jobs: int) -> None:
    """Run pipelines built by ``factories``, at most ``jobs`` at a time; the first failure stops all."""
    pending, running = list(factories), []
    try:
        while pending or running:
            while pending and len(running) < jobs:
                running.append(pending.pop(0)())
            for p in list(running):
                if p.done() or p.failed_early():
                    running.remove(p)
                    p.kill()
                    p.finish()
            time.sleep(0.02)
    except BaseException:
        for p in running:
            p.kill()
        raise


BIG_TABLES_SQL = """
SELECT c.oid::bigint, n.nspname, c.relname, pg_relation_size(c.oid), cols.names, cols.builtin
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
-- The copied columns, and whether every one is of PostgreSQL's own types (or an enum): only then binary
-- COPY, whose form the server itself defines (an extension's type may lack send/receive functions).
CROSS JOIN LATERAL (
    SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) AS names,
           coalesce(bool_and(t.oid < 16384 OR t.typtype = 'e'), true) AS builtin
    FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '') cols
WHERE c.relkind = 'r' AND c.relpersistence <> 't' AND pg_relation_size(c.oid) >= %s
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 4 DESC
"""


def _stream(ctx: dict, session: SnapshotSession, counter: _RowCounter, workdir: str, timings: dict) -> None:
    """Schema first, then every table's rows through COPY pipes between the servers, in parallel.

    Tables of at least STREAM_TABLE_BYTES go through ``psql COPY ... TO STDOUT | psql COPY ... FROM STDIN``
    pipelines (on PostgreSQL 14+ split into ctid ranges of about STREAM_CHUNK_BYTES, so one big table
    uses every job); the other tables, sequence values and large objects go through one
    ``pg_dump --data-only | pg_restore``. Everything reads the exported snapshot; the big tables are
    locked ACCESS SHARE in it (as pg_dump does) so no TRUNCATE or rewrite can pull rows from under it.
    Indexes, constraints and triggers follow in :func:`_post_data`.
    """
    source: PgConnection = ctx["source"]
    build: TargetBuild = ctx["build"]
    jobs, major, bin_dir = ctx["jobs"], ctx["major"], ctx["bin_dir"]
    pg_dump, pg_restore, psql = (find_tool(n, major, bin_dir) for n in ("pg_dump", "pg_restore", "psql"))
    # Both ends of every COPY pipe speak the source database's encoding (the target was created with it).
    env_src = dict(tool_env(source), PGCLIENTENCODING=ctx["props"]["encoding"])
    t = time.monotonic()
    schema = os.path.join(workdir, "schema.custom")
    run_tool(
        [pg_dump, "--format=c", "--schema-only", f"--snapshot={session.snapshot}", "--no-password", f"--file={schema}"],
        env_src,
        f"pg_dump --schema-only of {source.label()}",
        disk=f"{os.path.dirname(workdir)} (tmp_dir)",
    )
    cur = session.cur
    cur.execute(BIG_TABLES_SQL, (STREAM_TABLE_BYTES,))
    big = cur.fetchall()
    if big:
        cur.execute(sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE").format(sql.SQL(", ").join(sql.Identifier(b[1], b[2]) for b in big)))
    cur.execute("SELECT current_setting('block_size')::int, current_setting('server_version_num')::int")
    block, version = cur.fetchone()
    build.prepare(ctx["props"])
    target = build.tmp_conn()
    env_tgt = dict(tool_env(target), PGCLIENTENCODING=ctx["props"]["encoding"])
    owner = ["--no-owner"] if ctx["no_owner"] else []
    run_tool(
        [pg_restore, "--section=pre-data", "--exit-on-error", "--no-password", "-d", conninfo_dbname(build.tmp), *owner, schema],
        env_tgt,
        f"pg_restore of the schema into {target.label()}",
        disk="the target server",
    )
    timings["schema_s"] = round(time.monotonic() - t, 3)
    t = time.monotonic()
    snap = session.snapshot
    psql_base = [psql, "-X", "-q", "--no-password", "-v", "ON_ERROR_STOP=1"]
    out_prefix = ["-c", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "-c", f"SET TRANSACTION SNAPSHOT '{snap}'"]
    out_prefix += ["-c", "SET row_security = off", "-c", "SET statement_timeout = 0"]

    def rest() -> _Pipeline:
        excluded = [f"--exclude-table-data={_pattern(b[1], b[2])}" for b in big]
        dump = ToolProcess(
            [pg_dump, "--format=c", "--data-only", f"--snapshot={snap}", "--no-password", *excluded],
            env_src,
            f"pg_dump --data-only of {source.label()}",
            stdout=subprocess.PIPE,
        )
        load = ToolProcess(
            [pg_restore, "--exit-on-error", "--no-password", "-d", conninfo_dbname(build.tmp)],
            env_tgt,
            f"pg_restore of the smaller tables into {target.label()}",
            disk="the target server",
            stdin=dump.proc.stdout,
        )
        dump.proc.stdout.close()
        return _Pipeline(dump, load)

    def chunk(ident: str, name: str, columns: str, lo: int | None, hi: int | None, part: str, binary: bool) -> Any:
        fmt = " (FORMAT binary)" if binary else ""

        def start() -> _Pipeline:
            where = []
            if lo is not None:
                where.append(f"ctid >= '({lo},0)'::tid")
            if hi is not None:
                where.append(f"ctid < '({hi},0)'::tid")
            select = f"SELECT {columns} FROM ONLY {ident}" + (" WHERE " + " AND ".join(where) if where else "")
            label = f"copy of {name}{part}"
            out = ToolProcess(
                [*psql_base, *out_prefix, "-c", f"COPY ({select}) TO STDOUT{fmt}"], env_src, label + " (reading)", stdout=subprocess.PIPE
            )
            inp = ToolProcess(
                [
                    *psql_base,
                    "-d",
                    conninfo_dbname(build.tmp),
                    "-c",
                    "SET statement_timeout = 0",
                    "-c",
                    f"COPY {ident} ({columns}) FROM STDIN{fmt}",
                ],
                env_tgt,
                label + " (writing)",
                disk="the target server",
                stdin=out.proc.stdout,
            )
            out.proc.stdout.close()
            return _Pipeline(out, inp)

        return start

    # Binary COPY skips printing and parsing every value (measured: about a quarter of the COPY time on
    # pgbench_accounts, benchmarks/README.md); its format is only promised within one major version.
    same_major = ctx["props"]["server_version_num"] // 10000 == build.server_version_num // 10000
    factories = [rest]
    binary_tables = 0
    for _oid, schema_name, table, size, columns, builtin_types in big:
        binary = same_major and bool(builtin_types)
        binary_tables += binary
        ident = sql.Identifier(schema_name, table).as_string(session.pg)
        pages = max(1, size // block)
        n = max(1, min(-(-size // STREAM_CHUNK_BYTES), 4 * jobs)) if version >= 140000 else 1
        bounds = [pages * i // n for i in range(n + 1)]
        for i in range(n):
            part = f" (part {i + 1} of {n})" if n > 1 else ""
            lo, hi = bounds[i] if i else None, bounds[i + 1] if i < n - 1 else None
            factories.append(chunk(ident, f"{schema_name}.{table}", columns, lo, hi, part, binary))
    counter.start()
    try:
        _run_pipelines(factories, jobs)
    finally:
        counter.join()
    timings["copy_s"] = round(time.monotonic() - t, 3)
    timings["streamed_tables"] = len(big)
    timings["binary_tables"] = binary_tables


def _pattern(schema_name: str, table: str) -> str:
    """A pg_dump pattern that matches exactly this table (quoted: no wildcard applies)."""

    def q(x: str) -> str:
        return '"' + x.replace('"', '""') + '"'

    return f"{q(schema_name)}.{q(table)}"


def _post_data(ctx: dict, workdir: str) -> None:
    build: TargetBuild = ctx["build"]
    pg_restore = find_tool("pg_restore", ctx["major"], ctx["bin_dir"])
    run_tool(
        [
            pg_restore,
            "--section=post-data",
            "--exit-on-error",
            "--no-password",
            f"--jobs={ctx['jobs']}",
            "-d",
            conninfo_dbname(build.tmp),
            *(["--no-owner"] if ctx["no_owner"] else []),
            os.path.join(workdir, "schema.custom"),
        ],
        tool_env(build.tmp_conn()),
        f"pg_restore of indexes and constraints into {build.tmp_conn().label()}",
        disk="the target server",
    )


# ---------------------------------------------------------------------------------------------
# physical: pg_basebackup into a cluster of its own
# ---------------------------------------------------------------------------------------------


def _run_as(os_user: str) -> dict:
    """subprocess arguments that run a server tool as ``os_user`` (PostgreSQL refuses to run as root)."""
    try:
        pw = pwd.getpwnam(os_user)
    except KeyError:
        raise InvalidInput(
            f"os_user {os_user!r} does not exist on this host.", hint="create it or set os_user to the PostgreSQL system user."
        ) from None
    if os.geteuid() == 0:
        if pw.pw_uid == 0:
            raise InvalidInput(
                "os_user must not be root: PostgreSQL refuses to run as root.",
                hint="set os_user to the PostgreSQL system user, e.g. postgres.",
            )
        return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
    if pw.pw_uid != os.geteuid():
        raise InvalidInput(
            f"os_user {os_user!r} differs from the user running the task, which is not root.",
            hint="run the task as root (become) or as os_user.",
        )
    return {}


def _is_running(data_dir: str) -> bool:
    return os.path.exists(os.path.join(data_dir, "postmaster.pid"))


def _physical_checks(
    source: PgConnection, target: PgConnection, src: dict, data_dir: str | None, force: bool, boot_record: str | None
) -> str:
    """Refuse what a physical copy cannot do, before anything is written; returns the absolute data directory."""
    if not data_dir:
        raise InvalidInput("method physical needs target_data_dir: the data directory of the new cluster.")
    data_dir = os.path.abspath(data_dir)
    if target.dbname != source.dbname:
        raise InvalidInput(
            f"method physical copies the whole cluster, so the target database is {source.dbname!r}, not {target.dbname!r}.",
            hint="set the target's login_db to the source database name (or leave it unset).",
        )
    if target.port == source.port and (target.address or "localhost") in (source.address or "localhost", "localhost", "127.0.0.1"):
        raise InvalidInput(
            f"the target port {target.port} is the source's port: the new cluster needs a port of its own.",
            hint="set target.login_port to a free port.",
        )
    if src.get("data_directory") and os.path.realpath(src["data_directory"]) == os.path.realpath(data_dir):
        raise InvalidInput(f"target_data_dir {data_dir} is the source's own data directory.", hint="choose a new directory for the copy.")
    for f in (src.get("config_file"), src.get("hba_file")):
        if f and src.get("data_directory") and not os.path.realpath(f).startswith(os.path.realpath(src["data_directory"]) + os.sep):
            raise InvalidInput(
                f"the source keeps {os.path.basename(f)} outside its data directory ({f}); a physical copy would start without it.",
                hint="use method dump_restore (or template), or a source whose configuration lives in its data directory.",
            )
    if src.get("tablespaces"):
        where = ", ".join(f"{n} ({loc})" for n, loc in src["tablespaces"])
        raise InvalidInput(
            f"the source cluster has tablespaces outside its data directory ({where}); a physical copy on this host "
            "would have to write into the same directories.",
            hint="stage with a logical copy (method stream) instead; its tablespace option puts the copy where you choose.",
        )
    if boot_record:
        name, entry = default_entry(load_record(boot_record))
        if int(entry.get("login_port", 5432)) == target.port and not force:
            raise SafetyRefusal(
                f"refusing to replace the cluster on port {target.port}: "
                f"it serves the default entry {name!r} of boot record {boot_record}.",
                hint="use another port for the staged cluster; force: true overrides this only for a deliberate replacement.",
            )
    return data_dir


def _existing_cluster(data_dir: str, if_exists: str) -> bool:
    """Whether ``data_dir`` holds a cluster to replace (refusing what must not be deleted)."""
    if not (os.path.exists(data_dir) and os.listdir(data_dir)):
        return False
    if if_exists == "fail":
        raise InvalidInput(
            f"target_data_dir {data_dir} exists and is not empty.",
            hint="set if_exists: replace to replace that cluster, or choose another directory.",
        )
    if not os.path.exists(os.path.join(data_dir, "PG_VERSION")):
        raise SafetyRefusal(
            f"target_data_dir {data_dir} is not a PostgreSQL data directory; refusing to delete it.", hint="choose another directory."
        )
    return True


def _remove_cluster(data_dir: str, bin_dirs: list[str | None], run_as: dict) -> None:
    """Stop (with the binaries of its own major) and delete an earlier copy."""
    if not os.path.exists(os.path.join(data_dir, "PG_VERSION")):
        return
    if _is_running(data_dir):
        with open(os.path.join(data_dir, "PG_VERSION"), encoding="utf-8") as f:
            major = int(f.read().strip().split(".")[0])
        pg_ctl = next((t for t in (_tool_or_none("pg_ctl", major, b) for b in bin_dirs) if t), None) or find_tool(
            "pg_ctl", major, None, exact=True
        )
        run_tool([pg_ctl, "-D", data_dir, "-m", "fast", "-w", "stop"], os.environ.copy(), "pg_ctl stop of the old copy", run_as=run_as)
    shutil.rmtree(data_dir)


def _tool_or_none(name: str, major: int, bin_dir: str | None) -> str | None:
    try:
        return find_tool(name, major, bin_dir, exact=True)
    except DualbootError:
        return None


def _physical_plan(source: PgConnection, target: PgConnection, src: dict, opts: dict, ctx: dict) -> dict:
    """Everything a physical copy (and its upgrade) needs, checked before anything is written."""
    _server_files(source, src)
    data_dir = _physical_checks(source, target, src, opts.get("target_data_dir"), ctx["force"], ctx["boot_record"])
    major = src["server_version_num"] // 10000
    new_major = check_target_major(major, opts.get("target_major"), opts.get("upgrade_mode") or "link")
    run_as = _run_as(opts.get("os_user") or "postgres")
    plan = {
        "data_dir": data_dir,
        "port": target.port,
        "copy_dir": data_dir + OLD_COPY_SUFFIX + str(major) if new_major else data_dir,
        "run_as": run_as,
        "os_user": opts.get("os_user") or "postgres",
        "major": major,
        "new_major": new_major,
        "settings": dict(opts.get("target_settings") or {}),
        "pg_basebackup": find_tool("pg_basebackup", major, ctx["bin_dir"]),
        "old_pg_ctl": find_tool("pg_ctl", major, ctx["bin_dir"], exact=True),
        "exists": _existing_cluster(data_dir, ctx["if_exists"]),
        "bin_dirs": [ctx["bin_dir"], opts.get("target_bin_dir")],
    }
    if new_major:
        plan["upgrade"] = {
            "facts": cluster_facts(source),
            "tools": upgrade_tools(plan["old_pg_ctl"], major, new_major, opts.get("target_bin_dir")),
            "mode": opts.get("upgrade_mode") or "link",
            "jobs": ctx["jobs"],
            "port": target.port,
            "settings": plan["settings"],
            "major": new_major,
        }
    # The binaries that run the new cluster: the new major's after an upgrade.
    plan["pg_ctl"] = plan["upgrade"]["tools"]["pg_ctl"] if new_major else plan["old_pg_ctl"]
    parent = os.path.dirname(data_dir)
    if not os.path.isdir(parent):
        raise InvalidInput(f"the parent directory {parent} of target_data_dir does not exist.", hint="create it first.")
    return plan


def _physical(source: PgConnection, target: PgConnection, src: dict, opts: dict, ctx: dict) -> dict:
    plan = _physical_plan(source, target, src, opts, ctx)
    upgrade_note = (
        f" and upgrade it to PostgreSQL {plan['new_major']} with pg_upgrade --{plan['upgrade']['mode']}" if plan["new_major"] else ""
    )
    diff = {
        "before": {"data_dir": plan["data_dir"], "exists": plan["exists"]},
        "after": {"data_dir": plan["data_dir"], "exists": True, "port": target.port, "cloned_from": source.label(), "method": "physical"},
    }
    if plan["new_major"]:
        diff["after"]["major"] = plan["new_major"]
    base = {"changed": True, "method": "physical", "method_reason": ctx["reason"], "source": source.label(), "data_dir": plan["data_dir"]}
    base.update({"replaced": plan["exists"], "diff": diff})
    if ctx["check_mode"]:
        return {
            **base,
            "target": target.label(),
            "summary": f"would copy the cluster of {source.label()} into {plan['data_dir']}{upgrade_note} "
            f"and start it on port {target.port}",
        }
    for path in dict.fromkeys((plan["data_dir"], plan["copy_dir"])):
        _remove_cluster(path, plan["bin_dirs"], plan["run_as"])
    copy = target.with_db(source.dbname)
    timings, marker, warnings = _physical_copy(source, copy, plan, ctx)
    duration = round(time.monotonic() - ctx["started"], 3)
    size = sum(
        os.path.getsize(os.path.join(d, f)) for d, _x, fs in os.walk(plan["data_dir"]) for f in fs if os.path.isfile(os.path.join(d, f))
    )
    return {
        **base,
        "target": copy.label(),
        "cluster_size_bytes": size,
        "database_size_bytes": src["size_bytes"],
        "duration_s": duration,
        "throughput_mb_s": throughput(size, duration),
        "timings": timings,
        "marker": marker,
        "warnings": warnings,
        "server_version_num": _server_version(copy),
        "stop_command": f"{plan['pg_ctl']} -D {plan['data_dir']} stop (as {plan['os_user']})",
        "summary": (
            f"copied the cluster of {source.label()} ({human_bytes(size)}) into {plan['data_dir']} with pg_basebackup"
            + upgrade_note.replace(" and upgrade", ", upgraded")
            + f" and started it on port {target.port} in {duration:.1f} s ({throughput(size, duration)} MB/s)"
        ),
    }


def _server_version(conn: PgConnection) -> int:
    with connect(conn, autocommit=True) as c:
        return int(c.execute("SHOW server_version_num").fetchone()[0])


def _basebackup(source: PgConnection, plan: dict) -> None:
    copy_dir, run_as = plan["copy_dir"], plan["run_as"]
    os.mkdir(copy_dir, 0o700)
    if run_as:
        os.chown(copy_dir, run_as["user"], run_as["group"])
    run_tool(
        [plan["pg_basebackup"], "-D", copy_dir, "--wal-method=stream", "--checkpoint=fast", "--no-password"],
        tool_env(source),
        f"pg_basebackup of {source.label()}",
        disk=f"{os.path.dirname(copy_dir)} (target_data_dir)",
        run_as=run_as,
    )


def _write_copy_settings(plan: dict, port: int) -> None:
    """The same major: the copy keeps the source's configuration files; these settings win over them."""
    with open(os.path.join(plan["data_dir"], "postgresql.auto.conf"), "a", encoding="utf-8") as f:
        f.writelines(settings_lines("dualboot.db postgresql_clone method=physical", copy_settings(port, plan["settings"])))


def _start_copy(plan: dict) -> None:
    """Start the new cluster; a failure carries the end of its log, which goes with the removed copy."""
    log = os.path.join(plan["data_dir"], "dualboot-clone.log")
    try:
        run_tool(
            [plan["pg_ctl"], "-D", plan["data_dir"], "-l", log, "-w", "-t", "600", "start"],
            os.environ.copy(),
            "pg_ctl start of the copy",
            run_as=plan["run_as"],
        )
    except DualbootError as exc:
        tail = ""
        if os.path.exists(log):
            with open(log, encoding="utf-8", errors="replace") as f:
                tail = "\n".join(f.read().strip().splitlines()[-8:])
        raise OperationFailed(
            f"the copy did not start on port {plan['port']}: {exc.message}" + (f"\nits log ends with:\n{tail}" if tail else ""),
            hint="fix what the log names (a setting of the source, a file it refers to; target_settings override settings), "
            "then stage again; the copy was removed.",
        ) from None


def _physical_copy(source: PgConnection, copy: PgConnection, plan: dict, ctx: dict) -> tuple[dict, dict, list]:
    """pg_basebackup (then pg_upgrade), start the new cluster, count the marker's rows on it."""
    data_dir, run_as, timings, warnings = plan["data_dir"], plan["run_as"], {}, []
    with connect(source) as c:
        c.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        c.read_only = True
        marker = take_marker(c.cursor())
        c.rollback()
    try:
        t = time.monotonic()
        _basebackup(source, plan)
        timings["basebackup_s"] = round(time.monotonic() - t, 3)
        if plan["new_major"]:
            done = upgrade(plan["copy_dir"], data_dir, plan["upgrade"], run_as)
            timings.update(done["timings"])
            warnings += done["warnings"]
        else:
            _write_copy_settings(plan, copy.port)
        t = time.monotonic()
        _start_copy(plan)
        timings["start_s"] = round(time.monotonic() - t, 3)
        with connect(copy, autocommit=True) as c:
            if c.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                raise OperationFailed(
                    f"the copy in {data_dir} was still in recovery on port {copy.port}, so it was removed.",
                    hint="a base backup ends its recovery when it starts: look for standby.signal or recovery settings in the source.",
                )
        if plan["new_major"] and ctx["run_analyze"]:
            t = time.monotonic()
            analyze_all(plan["upgrade"]["tools"]["vacuumdb"], ctx["jobs"], tool_env(copy))
            timings["analyze_s"] = round(time.monotonic() - t, 3)
    except BaseException:
        for path, pg_ctl in (
            (data_dir, plan["pg_ctl"]),
            (plan["copy_dir"], plan["old_pg_ctl"]),
        ):
            if _is_running(path):
                subprocess.run([pg_ctl, "-D", path, "-m", "immediate", "-w", "stop"], capture_output=True, check=False, **run_as)
            shutil.rmtree(path, ignore_errors=True)
        raise
    t = time.monotonic()
    _measure_copy(copy, marker)
    timings["row_count_s"] = round(time.monotonic() - t, 3)
    return timings, marker, warnings
