# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backups of one PostgreSQL database (pg_dump plus ``manifest.json``) and their restore.

A backup is a directory::

    <dest>/manifest.json     what, when, from where; sha256 and size of every file; the drift marker
    <dest>/dump/             pg_dump directory format (or dump.custom, or dump.sql[.gz])

It is written as ``<dest>.partial-<random>`` and renamed to ``<dest>`` only once the dump is complete,
checked (``pg_restore --list``) and the manifest is on disk: an interrupted backup never looks like a
good one. pg_dump runs inside a snapshot exported by a REPEATABLE READ transaction that stays open
for the whole dump, so the drift marker (counters, WAL position, row classes) describes exactly the
dumped data.

A restore verifies every checksum before it touches a server, builds the database under a temporary
name (``<target>__dualboot_tmp_<random>``) with parallel ``pg_restore --exit-on-error`` and renames it
into place at the end; the previous target (``if_exists: replace``) is dropped only after that.
The helpers that build a database under a temporary name and swap it in are shared with clone.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import gzip
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from typing import Any

from ansible_collections.dualboot.db.plugins.module_utils.boot_record import default_entry, load_record, same_postgresql_database
from ansible_collections.dualboot.db.plugins.module_utils.errors import (
    ConnectionFailed,
    DualbootError,
    ExternalToolFailed,
    IntegrityError,
    InvalidInput,
    MissingDependency,
    OperationFailed,
    SafetyRefusal,
)
from ansible_collections.dualboot.db.plugins.module_utils.pg_drift import measure_rows, take_marker
from ansible_collections.dualboot.db.plugins.module_utils.pg_privileges import explain
from ansible_collections.dualboot.db.plugins.module_utils.postgresql import PgConnection, connect

try:
    import psycopg
    from psycopg import sql
except ImportError:  # pragma: no cover - the module reports the missing library first
    psycopg = None
    sql = None

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
FORMATS = ("directory", "custom", "plain")
DUMP_PATHS = {"directory": "dump", "custom": "dump.custom", "plain": "dump.sql"}
TOOL_DIRS = ("/usr/lib/postgresql/{major}/bin", "/usr/pgsql-{major}/bin")
# GUCs whose stored value is a list of quoted items (pg_dump's variable_is_guc_list_quote()).
LIST_QUOTE_GUCS = frozenset(
    {
        "search_path",
        "temp_tablespaces",
        "local_preload_libraries",
        "session_preload_libraries",
        "shared_preload_libraries",
        "unix_socket_directories",
    }
)
MIB = 1024 * 1024


# ---------------------------------------------------------------------------------------------
# Client tools
# ---------------------------------------------------------------------------------------------


def tool_major(path: str) -> int | None:
    """Major version of a PostgreSQL client tool (``pg_dump (PostgreSQL) 15.10`` → 15)."""
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, check=False, timeout=30).stdout
    except OSError:
        return None
    m = re.search(r"\(PostgreSQL\)\s+(\d+)", out)
    return int(m.group(1)) if m else None


def _installed_majors() -> list[int]:
    try:
        return sorted(int(d) for d in os.listdir("/usr/lib/postgresql") if d.isdigit())
    except OSError:
        return []


def find_tool(name: str, major: int, bin_dir: str | None = None, exact: bool = False) -> str:
    """Path of client tool ``name`` for a server of ``major``: the same major, else (unless ``exact``)
    the oldest newer one; ``bin_dir`` is the only place looked at when given."""
    if bin_dir:
        candidates = [os.path.join(bin_dir, name)]
    else:
        majors = [major] + ([m for m in _installed_majors() if m > major] if not exact else [])
        candidates = [os.path.join(d.format(major=m), name) for m in majors for d in TOOL_DIRS]
        found = shutil.which(name)
        if found:
            candidates.append(found)
    seen = []
    for path in candidates:
        if not os.access(path, os.X_OK):
            continue
        found_major = tool_major(path)
        seen.append(f"{path} ({found_major})")
        if found_major == major or (not exact and found_major is not None and found_major > major):
            return path
    need = f"PostgreSQL {major}" + ("" if exact else " or newer")
    raise MissingDependency(
        f"{name} for {need} was not found on the host running this task" + (f" (found: {', '.join(seen)})." if seen else "."),
        hint=f"install the PostgreSQL {major} client tools (Debian: postgresql-client-{major}) or point bin_dir at them.",
    )


def tool_env(conn: PgConnection) -> dict:
    """Environment of a client tool: libpq settings (password included) and messages in English,
    because stderr is parsed for errors."""
    env = {k: v for k, v in os.environ.items() if k not in ("LC_ALL", "LANGUAGE")}
    env.update(conn.env())
    env["LC_MESSAGES"] = "C"
    return env


def conninfo_dbname(name: str) -> str:
    """``dbname='...'`` for a tool's -d option, so a database name with ``=`` is never read as a conninfo."""
    return "dbname='" + name.replace("\\", "\\\\").replace("'", "\\'") + "'"


ERROR_LINE = re.compile(r"^(?:\S+: )?(?:error|ERROR|FATAL|PANIC):?\s.*$", re.M)


SQL_PRIVILEGE_ERROR = re.compile(
    r"permission denied (?:for|to) |must be owner of|must be superuser|must be member of|must be able to set role"
)


def _tool_failure(label: str, rc: int, stderr: str, disk: str | None, user: str | None = None) -> DualbootError:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ERROR_LINE.match(ln) or "error:" in ln] or lines[-5:]
    detail = " | ".join(errors[:5])[:1500]
    lowered = stderr.lower()
    if "no space left on device" in lowered or "could not extend file" in lowered or "disk full" in lowered:
        where = disk or "the filesystem it writes to"
        return OperationFailed(
            f"{label} failed: disk full on {where} ({detail}).",
            hint=f"free space on {where} or choose another location; the partial output was removed.",
        )
    if SQL_PRIVILEGE_ERROR.search(lowered):  # the server's words; a file's "Permission denied" is not a grant
        return explain(detail, user, doing=label)
    if "password authentication failed" in lowered or "could not connect" in lowered or "connection to server" in lowered:
        return ConnectionFailed(
            f"{label} could not connect: {detail}", hint="check the connection options (login_host, login_port, login_password)."
        )
    if "does not exist" in lowered and "role" in lowered:
        return ExternalToolFailed(
            f"{label} failed (exit {rc}): {detail}",
            hint="create the missing role on the target server, or set no_owner: true to restore without ownership.",
        )
    return ExternalToolFailed(f"{label} failed (exit {rc}): {detail}", hint="see the tool's message above; nothing was renamed into place.")


class ToolProcess:
    """A client tool running as an argv list (no shell) with its stderr in a private file.

    :meth:`wait` raises when the exit code is not 0 *or* stderr reports an error: pg_dump has exited
    0 after errors before.
    """

    def __init__(
        self,
        argv: list[str],
        env: dict,
        label: str,
        disk: str | None = None,
        stdin: Any = subprocess.DEVNULL,
        stdout: Any = subprocess.DEVNULL,
        run_as: dict | None = None,
    ) -> None:
        self.label = label
        self.disk = disk
        self.user = env.get("PGUSER")
        self.errfile = tempfile.TemporaryFile()  # noqa: SIM115 - closed in wait()
        self.started = time.monotonic()
        try:
            self.proc = subprocess.Popen(  # noqa: S603 - argv list, no shell
                argv, env=env, stdin=stdin, stdout=stdout, stderr=self.errfile, umask=0o077, close_fds=True, **(run_as or {})
            )
        except OSError as exc:
            self.errfile.close()
            raise MissingDependency(f"cannot run {argv[0]}: {exc}", hint="check bin_dir and the PostgreSQL client installation.") from None

    def stderr(self) -> str:
        self.errfile.seek(0)
        return self.errfile.read().decode("utf-8", errors="replace")

    def wait(self) -> str:
        rc = self.proc.wait()
        err = self.stderr()
        self.errfile.close()
        self.seconds = time.monotonic() - self.started
        if rc != 0 or ERROR_LINE.search(err):
            raise _tool_failure(self.label, rc, err, self.disk, self.user)
        return err

    def kill(self) -> None:
        """Stop the tool; :meth:`wait` still reports (and closes) what it wrote."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def run_tool(argv: list[str], env: dict, label: str, disk: str | None = None, run_as: dict | None = None) -> str:
    return ToolProcess(argv, env, label, disk=disk, run_as=run_as).wait()


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def secure_tree(root: str) -> None:
    """Directories 0700, files 0600: a backup holds the whole database."""
    os.chmod(root, 0o700)
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o700)
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), 0o600)


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(4 * MIB), b""):
            h.update(block)
    return h.hexdigest()


def checksum_files(root: str, jobs: int) -> list[dict]:
    """sha256 and size of every file under ``root`` (relative paths, sorted), hashed in parallel."""
    paths = []
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            full = os.path.join(dirpath, f)
            rel = os.path.relpath(full, root)
            if rel != MANIFEST:
                paths.append(rel)
    paths.sort()
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        digests = list(pool.map(lambda rel: sha256_file(os.path.join(root, rel)), paths))
    return [{"path": rel, "size": os.path.getsize(os.path.join(root, rel)), "sha256": d} for rel, d in zip(paths, digests)]


def manifest_checksum(manifest: dict) -> str:
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def write_json(path: str, data: dict) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def throughput(nbytes: float, seconds: float) -> float:
    return round(nbytes / MIB / seconds, 1) if seconds > 0 else 0.0


def utcnow() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------------
# Database properties, protection, temporary databases
# ---------------------------------------------------------------------------------------------


def database_properties(cur: Any) -> dict:
    """What CREATE DATABASE and ALTER DATABASE need to recreate the connected database's shell
    (a dump without --create carries none of it)."""
    cur.execute("SHOW server_version_num")
    version = int(cur.fetchone()[0])
    # The provider's locale: daticulocale in PostgreSQL 15 and 16, datlocale from 17 (also for its builtin provider).
    locale = (
        "d.datlocprovider::text, coalesce(to_jsonb(d) ->> 'datlocale', to_jsonb(d) ->> 'daticulocale')"
        if version >= 150000
        else "'c', NULL::text"
    )
    cur.execute(
        "SELECT d.oid::bigint, pg_encoding_to_char(d.encoding), d.datcollate, d.datctype, "
        + locale
        + ", pg_get_userbyid(d.datdba), pg_database_size(d.oid),"
        " coalesce((SELECT s.setconfig FROM pg_db_role_setting s WHERE s.setdatabase = d.oid AND s.setrole = 0), '{}'),"
        " (SELECT system_identifier::text FROM pg_control_system()), current_setting('server_version')"
        " FROM pg_database d WHERE d.datname = current_database()"
    )
    r = cur.fetchone()
    return {
        "database_oid": r[0],
        "encoding": r[1],
        "collate": r[2],
        "ctype": r[3],
        "locale_provider": {"i": "icu", "c": "libc", "b": "builtin"}.get(r[4], "libc"),
        "icu_locale": r[5],
        "owner": r[6],
        "size_bytes": r[7],
        "settings": list(r[8]),
        "system_identifier": r[9],
        "server_version": r[10],
        "server_version_num": version,
    }


def split_guc_list(value: str) -> list[str]:
    """Items of a list-valued setting as stored in pg_db_role_setting (``"$user", public``)."""
    items, cur, quoted, i = [], [], False, 0
    while i < len(value):
        ch = value[i]
        if quoted:
            if ch == '"' and value[i + 1 : i + 2] == '"':
                cur.append('"')
                i += 1
            elif ch == '"':
                quoted = False
            else:
                cur.append(ch)
        elif ch == '"':
            quoted = True
        elif ch == ",":
            items.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
        i += 1
    items.append("".join(cur).strip())
    return [x for x in items if x != ""]


def setting_statements(database: str, settings: list[str]) -> list:
    """ALTER DATABASE ... SET statements that reproduce ``settings`` (``name=value`` strings)."""
    out = []
    for item in settings:
        name, _sep, value = item.partition("=")
        target = sql.SQL(".").join(sql.Identifier(p) for p in name.split("."))
        values = split_guc_list(value) if name.lower() in LIST_QUOTE_GUCS else [value]
        out.append(
            sql.SQL("ALTER DATABASE {} SET {} TO {}").format(
                sql.Identifier(database), target, sql.SQL(", ").join(sql.Literal(v) for v in values) if values else sql.Literal("")
            )
        )
    return out


def database_exists(cur: Any, name: str) -> bool:
    cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
    return cur.fetchone() is not None


def other_sessions(cur: Any, name: str) -> int:
    cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
    return int(cur.fetchone()[0])


def _bounded_name(base: str, suffix: str) -> str:
    """``base`` + ``suffix`` within PostgreSQL's 63-byte identifier limit (cut on a character boundary)."""
    room = 63 - len(suffix.encode())
    raw = base.encode()[:room]
    return raw.decode("utf-8", errors="ignore") + suffix


def temp_name(target: str, kind: str = "tmp") -> str:
    return _bounded_name(target, f"__dualboot_{kind}_{secrets.token_hex(4)}")


# The temporary databases of a build that never hold anything but a half-made copy: a run killed
# while it had one left it behind (with `old` the replaced target, which is only reported).
SCRATCH_KINDS = ("tmp", "probe", "check")


def leftover_names(names: list[str], target: str, kinds: tuple = (*SCRATCH_KINDS, "old")) -> list[str]:
    """Which of ``names`` are temporary databases (:func:`temp_name`) of builds of ``target``."""
    out = set()
    for kind in kinds:
        prefix = _bounded_name(target, f"__dualboot_{kind}_{'0' * 8}")[:-8]
        out.update(n for n in names if n.startswith(prefix) and re.fullmatch(r"[0-9a-f]{8}", n[len(prefix) :]))
    return sorted(out)


def check_protection(
    target: PgConnection,
    target_sysid: str,
    exists: bool,
    source: tuple[str, str] | None,
    boot_record: str | None,
    force: bool,
    what: str,
) -> list[str]:
    """Refuse to overwrite the backup's/clone's source database or the boot record's default entry.

    ``source`` is (system identifier, database name) of where the data came from. Returns the
    warnings to report when ``force`` overrode a refusal.
    """
    warnings = []
    if boot_record:
        record = load_record(boot_record)
        if record.get("engine") not in (None, "postgresql"):
            raise InvalidInput(f"boot record {boot_record} is for engine {record.get('engine')!r}, not postgresql.")
        name, entry = default_entry(record)
        if exists and same_postgresql_database(entry, target.address, target.port, target.dbname):
            msg = f"refusing to {what} {target.label()}: it is the default entry {name!r} of boot record {boot_record} (the live database)."
            if not force:
                raise SafetyRefusal(
                    msg, hint="target the staged entry instead; force: true overrides this only for a deliberate replacement."
                )
            warnings.append("force: " + msg)
    if exists and source and (source[0], source[1]) == (target_sysid, target.dbname):
        msg = (
            f"refusing to {what} {target.label()}: it is the database the data comes from "
            f"(server {source[0]}, database {source[1]!r}) or a physical copy of it."
        )
        if not force:
            raise SafetyRefusal(
                msg, hint="use another target database (the staged entry); force: true overrides this for a deliberate replacement."
            )
        warnings.append("force: " + msg)
    return warnings


def create_database(cur: Any, name: str, props: dict | None, tablespace: str | None = None) -> None:
    """An empty database for a restore, with the source's encoding and locale."""
    stmt = sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name))
    if props:
        stmt += sql.SQL(" ENCODING {} LC_COLLATE {} LC_CTYPE {}").format(
            sql.Literal(props["encoding"]), sql.Literal(props["collate"]), sql.Literal(props["ctype"])
        )
        if props.get("locale_provider") == "icu":
            stmt += sql.SQL(" LOCALE_PROVIDER icu ICU_LOCALE {}").format(sql.Literal(props["icu_locale"]))
        elif props.get("locale_provider") == "builtin":
            stmt += sql.SQL(" LOCALE_PROVIDER builtin BUILTIN_LOCALE {}").format(sql.Literal(props["icu_locale"]))
    if tablespace:
        stmt += sql.SQL(" TABLESPACE {}").format(sql.Identifier(tablespace))
    try:
        cur.execute(stmt)
    except psycopg.Error as exc:
        raise OperationFailed(f"cannot create database {name!r}: {exc}".strip(), hint=_create_hint(str(exc))) from None


def _create_hint(text: str) -> str:
    if "permission denied" in text:
        return "the login role needs CREATEDB (and ownership of the target, to replace it)."
    if "locale" in text or "collation" in text or "encoding" in text:
        return "the target server lacks the source's locale; install it there (locale-gen) or use a server that has it."
    if "tablespace" in text:
        return "create the tablespace on the target server or leave tablespace unset."
    return "check the target server's log."


def finish_database(cur: Any, name: str, props: dict | None, no_owner: bool) -> list[str]:
    """Reapply database-level settings and owner of the source to the freshly built database."""
    notes = []
    if not props:
        return notes
    for stmt in setting_statements(name, props.get("settings", [])):
        cur.execute(stmt)
    if not no_owner and props.get("owner"):
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (props["owner"],))
        if cur.fetchone():
            cur.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(name), sql.Identifier(props["owner"])))
        else:
            notes.append(f"role {props['owner']!r} (owner of the source database) does not exist on the target; the login role owns it.")
    return notes


def drop_database(conn: PgConnection, name: str) -> None:
    with connect(conn, autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def swap_into_place(maint: PgConnection, tmp: str, target: str, replace: bool) -> dict:
    """Rename ``tmp`` to ``target`` (moving an existing target aside in the same transaction), then
    drop the old target. Any failure before the commit leaves the target as it was."""
    old = temp_name(target, "old") if replace else None
    with connect(maint) as c:
        try:
            with c.transaction():
                if replace:
                    c.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(target), sql.Identifier(old)))
                c.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(tmp), sql.Identifier(target)))
        except psycopg.errors.ObjectInUse as exc:
            raise OperationFailed(
                f"cannot rename the new copy into place: {str(exc).strip()}",
                hint=f"disconnect the sessions using database {target!r} and run the task again; the target was left unchanged.",
            ) from None
        except psycopg.errors.DuplicateDatabase:
            raise OperationFailed(
                f"database {target!r} was created by someone else while the copy was built; the target was left unchanged.",
                hint="run the task again with if_exists: replace, or choose another target.",
            ) from None
    leftover = None
    if replace:
        try:
            drop_database(maint, old)
        except psycopg.Error as exc:
            leftover = f"the replaced database was kept as {old!r} because it could not be dropped: {str(exc).strip()}"
    return {"replaced": replace, "leftover": leftover}


class TargetBuild:
    """Build a database under a temporary name on the target server and rename it into place.

    Used by restore and clone: ``prepare()`` checks the target (exists, protected, sessions) and
    creates the temporary database; ``commit()`` swaps it in; ``abort()`` drops it.
    """

    def __init__(self, target: PgConnection, maintenance_db: str, if_exists: str, tablespace: str | None = None) -> None:
        if maintenance_db == target.dbname:
            raise InvalidInput(
                f"maintenance_db {maintenance_db!r} is the target database itself; "
                "the task connects to maintenance_db to create and rename the target.",
                hint="set maintenance_db to another database, e.g. postgres or template1.",
            )
        if if_exists not in ("fail", "replace"):
            raise InvalidInput(f"if_exists must be fail or replace, not {if_exists!r}.")
        self.target = target
        self.maint = target.with_db(maintenance_db)
        self.if_exists = if_exists
        self.tablespace = tablespace
        self.tmp: str | None = None
        self.exists = False
        self.sysid = ""
        self.server_version_num = 0
        self.notes: list[str] = []  # leftovers of earlier runs: removed, or left and why

    def inspect(self) -> None:
        with connect(self.maint, autocommit=True) as c:
            cur = c.cursor()
            cur.execute("SELECT (SELECT system_identifier::text FROM pg_control_system()), current_setting('server_version_num')::int")
            self.sysid, self.server_version_num = cur.fetchone()
            self.exists = database_exists(cur, self.target.dbname)
            if self.exists:
                if self.if_exists == "fail":
                    raise InvalidInput(
                        f"target database {self.target.label()} already exists.",
                        hint="set if_exists: replace to replace it (dropped only once the new copy is complete), or choose another name.",
                    )
                busy = other_sessions(cur, self.target.dbname)
                if busy:
                    raise OperationFailed(
                        f"target database {self.target.label()} has {busy} open session(s); it cannot be replaced while in use.",
                        hint="disconnect them (stop the applications using the staged entry) and run the task again.",
                    )
            if self.tablespace:
                cur.execute("SELECT 1 FROM pg_tablespace WHERE spcname = %s", (self.tablespace,))
                if cur.fetchone() is None:
                    raise InvalidInput(
                        f"tablespace {self.tablespace!r} does not exist on {self.maint.label()}.",
                        hint="create it or leave tablespace unset.",
                    )

    def new_tmp(self) -> str:
        """This build's temporary name, once the temporary databases that killed builds of the same
        target left behind are dropped. One with open sessions belongs to a build still running: it
        stays (DROP without FORCE), and so does a replaced target moved aside; both are named in notes."""
        server, target = f"{self.maint.address or 'localhost'}:{self.maint.port}", self.target.dbname
        with connect(self.maint, autocommit=True) as c:
            cur = c.cursor()
            cur.execute("SELECT datname FROM pg_database")
            names = [r[0] for r in cur.fetchall()]
            for name in leftover_names(names, target, ("old",)):
                self.notes.append(f"{name} on {server} is {target} as an interrupted run replaced it: drop it once it is not needed")
            for name in leftover_names(names, target, SCRATCH_KINDS):
                try:
                    cur.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(name)))
                    self.notes.append(f"removed {name} from {server}: a half-made copy an interrupted earlier run left")
                except psycopg.errors.ObjectInUse:
                    self.notes.append(f"left {name} on {server}: it has open sessions (another run building {target}?)")
        self.tmp = temp_name(self.target.dbname)
        return self.tmp

    def prepare(self, props: dict | None) -> str:
        self.new_tmp()
        with connect(self.maint, autocommit=True) as c:
            create_database(c.cursor(), self.tmp, props, self.tablespace)
        return self.tmp

    def tmp_conn(self) -> PgConnection:
        return self.target.with_db(self.tmp)

    def finish(self, props: dict | None, no_owner: bool) -> list[str]:
        """Settings and owner of the source on the new database; returns the warnings (leftovers of earlier runs first)."""
        with connect(self.maint, autocommit=True) as c:
            return self.notes + finish_database(c.cursor(), self.tmp, props, no_owner)

    def commit(self) -> dict:
        out = swap_into_place(self.maint, self.tmp, self.target.dbname, self.exists)
        self.tmp = None
        return out

    def abort(self) -> None:
        if self.tmp:
            try:
                drop_database(self.maint, self.tmp)
            except (psycopg.Error, DualbootError):
                pass  # the original error is what the user needs; the leftover name is in the message
            self.tmp = None


def analyze(conn: PgConnection) -> float:
    """ANALYZE the new database so its planner statistics exist before anyone boots into it."""
    started = time.monotonic()
    with connect(conn, autocommit=True) as c:
        c.execute("ANALYZE")
    return round(time.monotonic() - started, 3)


# ---------------------------------------------------------------------------------------------
# pg_dump with an exported snapshot and a drift marker
# ---------------------------------------------------------------------------------------------


def dump_args(fmt: str, out: str | None, jobs: int, compress: int, snapshot: str, sync: bool = True) -> list[str]:
    args = [f"--format={fmt[0]}", f"--snapshot={snapshot}", f"--compress={compress}", "--no-password"]
    if out:
        args.append(f"--file={out}")
    if fmt == "directory":
        args.append(f"--jobs={jobs}")
    if not sync:
        args.append("--no-sync")
    return args


class SnapshotSession:
    """A REPEATABLE READ READ ONLY transaction that exports its snapshot and takes the drift marker.

    Kept open while pg_dump runs with ``--snapshot``; ``count_rows()`` measures the marker's row
    classes in the same snapshot meanwhile.
    """

    def __init__(self, conn: PgConnection) -> None:
        self.conn = conn
        self.pg = connect(conn)
        try:
            self.pg.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            self.pg.read_only = True
            self.cur = self.pg.cursor()
            self.cur.execute("SELECT pg_export_snapshot()")
            self.snapshot = self.cur.fetchone()[0]
            self.marker = take_marker(self.cur)
            self.props = database_properties(self.cur)
        except psycopg.Error as exc:
            self.pg.close()
            raise OperationFailed(f"cannot open a snapshot on {conn.label()}: {str(exc).strip()}") from None

    def count_rows(self) -> dict:
        return measure_rows(self.cur, self.marker, "snapshot")

    def close(self) -> None:
        try:
            self.pg.rollback()
        finally:
            self.pg.close()


def _check_dump(path: str, fmt: str, pg_restore: str, env: dict) -> int:
    """Prove the dump is complete: pg_restore can read its table of contents (directory/custom), or
    the plain script ends with pg_dump's completion comment. Returns the number of TOC entries."""
    if fmt == "plain":
        opener = gzip.open if path.endswith(".gz") else open
        tail = b""
        with opener(path, "rb") as f:
            while True:
                block = f.read(4 * MIB)
                if not block:
                    break
                tail = (tail + block)[-4096:]
        if b"PostgreSQL database dump complete" not in tail:
            raise IntegrityError(f"the plain dump {path} is incomplete: pg_dump's completion line is missing.")
        return 0
    if fmt == "directory" and not os.path.exists(os.path.join(path, "toc.dat")):
        raise IntegrityError(f"the dump directory {path} has no toc.dat: pg_dump did not finish.")
    with tempfile.TemporaryFile() as listing:
        proc = ToolProcess([pg_restore, "--list", path], env, "pg_restore --list", stdout=listing)
        proc.wait()
        listing.seek(0)
        entries = sum(1 for ln in listing.read().decode("utf-8", "replace").splitlines() if ln and not ln.startswith(";"))
    return entries


def backup(
    conn: PgConnection,
    dest: str,
    fmt: str = "directory",
    jobs: int | None = None,
    compress: int = 0,
    if_exists: str = "fail",
    bin_dir: str | None = None,
    check_mode: bool = False,
) -> dict:
    """Back up ``conn.dbname`` into the directory ``dest`` (see the module documentation)."""
    started = time.monotonic()
    if fmt not in FORMATS:
        raise InvalidInput(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}.")
    if jobs is not None and jobs < 1:
        raise InvalidInput(f"jobs must be 1 or more, not {jobs}.")
    if jobs is not None and jobs > 1 and fmt != "directory":
        raise InvalidInput(
            f"jobs: {jobs} needs format: directory; pg_dump writes {fmt} format with one job.", hint="use format: directory or drop jobs."
        )
    if not 0 <= compress <= 9:
        raise InvalidInput(f"compress must be between 0 and 9, not {compress}.")
    jobs = (jobs or os.cpu_count() or 1) if fmt == "directory" else 1
    dest = os.path.abspath(dest)
    parent = os.path.dirname(dest)
    if not os.path.isdir(parent):
        raise InvalidInput(
            f"the directory {parent} (parent of dest) does not exist.", hint="create it first (mode 0700), or choose another dest."
        )
    exists = os.path.lexists(dest)
    if exists:
        if if_exists == "fail":
            raise InvalidInput(
                f"dest {dest} already exists.",
                hint="set if_exists: replace to replace it once the new backup is complete, or choose another dest.",
            )
        if not (os.path.isdir(dest) and (os.path.exists(os.path.join(dest, MANIFEST)) or not os.listdir(dest))):
            raise SafetyRefusal(
                f"dest {dest} exists and is not a backup made by postgresql_backup; refusing to replace it.", hint="choose another dest."
            )

    session = SnapshotSession(conn)
    try:
        props, marker = session.props, session.marker
        major = props["server_version_num"] // 10000
        pg_dump = find_tool("pg_dump", major, bin_dir)
        pg_restore = find_tool("pg_restore", major, bin_dir)
        if check_mode:
            return {
                "changed": True,
                "dest": dest,
                "format": fmt,
                "jobs": jobs,
                "database": conn.dbname,
                "database_size_bytes": props["size_bytes"],
                "replaced": exists,
                "summary": f"would back up {conn.label()} ({human_bytes(props['size_bytes'])}) to {dest} ({fmt} format, {jobs} job(s))",
            }
        partial = f"{dest}.partial-{secrets.token_hex(4)}"
        os.mkdir(partial, 0o700)
        try:
            out = os.path.join(partial, DUMP_PATHS[fmt] + (".gz" if fmt == "plain" and compress else ""))
            env = tool_env(conn)
            proc = ToolProcess(
                [pg_dump, *dump_args(fmt, out, jobs, compress, session.snapshot)],
                env,
                f"pg_dump of {conn.label()}",
                disk=f"{parent} (dest)",
            )
            try:
                counted = session.count_rows()
            except BaseException:
                proc.kill()
                raise
            proc.wait()
            dump_s = round(time.monotonic() - started, 3)
            session.close()
            session = None
            entries = _check_dump(out, fmt, pg_restore, env)
            secure_tree(partial)
            t = time.monotonic()
            files = checksum_files(partial, jobs)
            checksum_s = round(time.monotonic() - t, 3)
            total = sum(f["size"] for f in files)
            duration = round(time.monotonic() - started, 3)
            manifest = {
                "format": MANIFEST_FORMAT,
                "id": str(uuid.uuid4()),
                "tool": "dualboot.db.postgresql_backup",
                "created_at": utcnow(),
                "database": conn.dbname,
                "source": conn.label(),
                "database_size_bytes": props["size_bytes"],
                "database_properties": {
                    k: props[k] for k in ("encoding", "collate", "ctype", "locale_provider", "icu_locale", "owner", "settings")
                },
                "server_version": props["server_version"],
                "server_version_num": props["server_version_num"],
                "system_identifier": props["system_identifier"],
                "snapshot_time": marker["taken_at"],
                "wal_lsn": marker["wal_lsn"],
                "dump": {
                    "format": fmt,
                    "path": os.path.relpath(out, partial),
                    "jobs": jobs,
                    "compress": compress,
                    "pg_dump_version": tool_major(pg_dump),
                    "toc_entries": entries,
                },
                "duration_s": duration,
                "files": files,
                "total_bytes": total,
                "marker": marker,
            }
            manifest["checksum"] = manifest_checksum(manifest)
            write_json(os.path.join(partial, MANIFEST), manifest)
            _fsync_dir(partial)
            replaced = _move_into_place(partial, dest, exists)
        except OSError as exc:
            shutil.rmtree(partial, ignore_errors=True)
            if exc.errno == 28:
                raise OperationFailed(
                    f"backup failed: disk full on {parent} ({exc}).", hint=f"free space on {parent} or choose another dest."
                ) from None
            raise OperationFailed(f"backup failed writing {partial}: {exc}") from None
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
    finally:
        if session is not None:
            session.close()
    duration = round(time.monotonic() - started, 3)
    return {
        "changed": True,
        "dest": dest,
        "format": fmt,
        "jobs": jobs,
        "compress": compress,
        "database": conn.dbname,
        "database_size_bytes": props["size_bytes"],
        "size_bytes": total,
        "files": len(files),
        "duration_s": duration,
        "throughput_mb_s": throughput(props["size_bytes"], duration),
        "timings": {"dump_s": dump_s, "row_count_s": counted["seconds"], "checksum_s": checksum_s},
        "replaced": replaced,
        "manifest": {"path": os.path.join(dest, MANIFEST), "id": manifest["id"], "checksum": manifest["checksum"]},
        "server_version": props["server_version"],
        "marker": marker,
        "summary": (
            f"backed up {conn.label()} ({human_bytes(props['size_bytes'])}, {counted['rows']} rows in {counted['tables']} tables) "
            f"to {dest} in {duration:.1f} s ({throughput(props['size_bytes'], duration)} MB/s, {fmt} format, {jobs} job(s), "
            f"{human_bytes(total)} written)"
        ),
    }


def _move_into_place(partial: str, dest: str, exists: bool) -> bool:
    if exists:
        aside = f"{dest}.old-{secrets.token_hex(4)}"
        os.rename(dest, aside)
        os.rename(partial, dest)
        _fsync_dir(os.path.dirname(dest))
        shutil.rmtree(aside, ignore_errors=True)
        return True
    os.rename(partial, dest)
    _fsync_dir(os.path.dirname(dest))
    return False


# ---------------------------------------------------------------------------------------------
# Verify and restore
# ---------------------------------------------------------------------------------------------


def load_manifest(src: str) -> dict:
    path = os.path.join(src, MANIFEST)
    if ".partial-" in os.path.basename(os.path.normpath(src)):
        raise IntegrityError(
            f"{src} is an unfinished backup (a .partial- directory): an interrupted postgresql_backup left it.",
            hint="delete it and use a complete backup.",
        )
    if not os.path.isdir(src):
        raise InvalidInput(f"backup {src} does not exist or is not a directory.", hint="point src at the dest of a postgresql_backup task.")
    if not os.path.exists(path):
        raise IntegrityError(
            f"{src} has no {MANIFEST}: it is not a complete backup made by postgresql_backup.", hint="use a complete backup."
        )
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError) as exc:
        raise IntegrityError(f"{path} is unreadable or not JSON: {exc}", hint="the backup is damaged; use another one.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT or "files" not in manifest:
        raise IntegrityError(f"{path} is not a postgresql_backup manifest (format {MANIFEST_FORMAT}).")
    if manifest.get("checksum") != manifest_checksum(manifest):
        raise IntegrityError(
            f"{path} was modified or damaged: its own checksum does not match.", hint="the backup cannot be trusted; use another one."
        )
    return manifest


def verify_backup(src: str, jobs: int = 1) -> tuple[dict, dict]:
    """Check every file of a backup against its manifest (presence, size, sha256, nothing extra).

    Raises :class:`IntegrityError` naming each damaged file. Returns (manifest, facts).
    """
    started = time.monotonic()
    manifest = load_manifest(src)
    listed = {f["path"]: f for f in manifest["files"]}
    present = set()
    for dirpath, _dirs, files in os.walk(src):
        for name in files:
            rel = os.path.relpath(os.path.join(dirpath, name), src)
            if rel != MANIFEST:
                present.add(rel)
    problems = [f"{p}: missing" for p in sorted(set(listed) - present)]
    problems += [f"{p}: not in the manifest" for p in sorted(present - set(listed))]
    to_hash = []
    for rel in sorted(set(listed) & present):
        size = os.path.getsize(os.path.join(src, rel))
        if size != listed[rel]["size"]:
            problems.append(f"{rel}: {size} bytes, manifest says {listed[rel]['size']} (truncated or grown)")
        else:
            to_hash.append(rel)
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for rel, digest in zip(to_hash, pool.map(lambda r: sha256_file(os.path.join(src, r)), to_hash)):
            if digest != listed[rel]["sha256"]:
                problems.append(f"{rel}: sha256 {digest[:12]}…, manifest says {listed[rel]['sha256'][:12]}… (corrupted)")
    if problems:
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise IntegrityError(
            f"backup {src} failed verification: {shown}.",
            hint="the backup is damaged; nothing was restored. Use another backup.",
            problems=problems,
        )
    return manifest, {"files": len(listed), "bytes": manifest.get("total_bytes", 0), "seconds": round(time.monotonic() - started, 3)}


def _restore_plain(psql: str, path: str, conn: PgConnection, env: dict, label: str) -> None:
    """Feed a plain (optionally gzip) dump to psql, stopping at the first error, in one transaction."""
    argv = [psql, "-X", "-q", "--no-password", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-d", conninfo_dbname(conn.dbname)]
    if not path.endswith(".gz"):
        run_tool([*argv, "-f", path], env, label, disk="the target server")
        return
    proc = ToolProcess([*argv, "-f", "-"], env, label, disk="the target server", stdin=subprocess.PIPE)
    failure: list[BaseException] = []

    def feed() -> None:
        try:
            with gzip.open(path, "rb") as f:
                shutil.copyfileobj(f, proc.proc.stdin, 4 * MIB)
        except (OSError, EOFError) as exc:  # psql stopped reading (it reports why) or the file is damaged
            failure.append(exc)
        finally:
            try:
                proc.proc.stdin.close()
            except OSError:
                pass

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    t.join()
    proc.wait()
    if failure and not isinstance(failure[0], BrokenPipeError):
        raise IntegrityError(f"cannot read {path}: {failure[0]}")


def restore_dump(path: str, fmt: str, conn: PgConnection, jobs: int, no_owner: bool, bin_dir: str | None, major: int) -> float:
    """Load a dump into the (empty) database ``conn.dbname``; returns seconds."""
    started = time.monotonic()
    env = tool_env(conn)
    label = f"restore into {conn.label()}"
    if fmt == "plain":
        if no_owner:
            raise InvalidInput(
                "no_owner cannot be applied to a plain-format dump (its ownership is in the SQL).", hint="use a directory or custom backup."
            )
        _restore_plain(find_tool("psql", major, bin_dir), path, conn, env, label)
    else:
        argv = [
            find_tool("pg_restore", major, bin_dir),
            "--exit-on-error",
            "--no-password",
            f"--jobs={jobs}",
            "-d",
            conninfo_dbname(conn.dbname),
        ]
        if no_owner:
            argv.append("--no-owner")
        run_tool([*argv, path], env, label, disk="the target server")
    return round(time.monotonic() - started, 3)


def restore(
    conn: PgConnection,
    src: str,
    if_exists: str = "fail",
    jobs: int | None = None,
    force: bool = False,
    boot_record: str | None = None,
    no_owner: bool = False,
    tablespace: str | None = None,
    run_analyze: bool = True,
    maintenance_db: str = "postgres",
    bin_dir: str | None = None,
    check_mode: bool = False,
) -> dict:
    """Restore the backup ``src`` into database ``conn.dbname`` (see the module documentation)."""
    started = time.monotonic()
    jobs = jobs or os.cpu_count() or 1
    if jobs < 1:
        raise InvalidInput(f"jobs must be 1 or more, not {jobs}.")
    manifest, verified = verify_backup(src, jobs)
    build = TargetBuild(conn, maintenance_db, if_exists, tablespace)
    build.inspect()
    src_major = int(manifest["server_version_num"]) // 10000
    tgt_major = build.server_version_num // 10000
    if src_major > tgt_major:
        raise InvalidInput(
            f"backup {src} was made from PostgreSQL {manifest['server_version']} and cannot be restored into PostgreSQL {tgt_major} "
            f"({conn.label()}): a dump of a newer major version is not loadable into an older server.",
            hint=f"restore into a PostgreSQL {src_major} or newer server.",
        )
    warnings = check_protection(
        conn, build.sysid, build.exists, (manifest["system_identifier"], manifest["database"]), boot_record, force, "restore over"
    )
    fmt = manifest["dump"]["format"]
    jobs_used = jobs if fmt != "plain" else 1
    diff = {
        "before": {"database": conn.dbname, "exists": build.exists},
        "after": {
            "database": conn.dbname,
            "exists": True,
            "restored_from": src,
            "backup_id": manifest["id"],
            "snapshot_time": manifest["snapshot_time"],
        },
    }
    if check_mode:
        return {
            "changed": True,
            "target": conn.label(),
            "src": src,
            "replaced": build.exists,
            "verified": verified,
            "warnings": warnings,
            "diff": diff,
            "summary": f"would restore {src} ({manifest['database']} at {manifest['snapshot_time']}) into {conn.label()}"
            + (" replacing it" if build.exists else ""),
        }
    props = manifest.get("database_properties")
    build.prepare(props)
    try:
        restore_s = restore_dump(
            os.path.join(src, manifest["dump"]["path"]),
            fmt,
            build.tmp_conn(),
            jobs_used,
            no_owner,
            bin_dir,
            # pg_restore must read what this pg_dump wrote; the target server's version does not matter to it.
            max(src_major, int(manifest["dump"].get("pg_dump_version") or src_major)),
        )
        analyze_s = analyze(build.tmp_conn()) if run_analyze else None
        warnings += build.finish(props, no_owner)
        swapped = build.commit()
    except BaseException:
        build.abort()
        raise
    if swapped["leftover"]:
        warnings.append(swapped["leftover"])
    duration = round(time.monotonic() - started, 3)
    size = manifest.get("database_size_bytes") or 0
    return {
        "changed": True,
        "target": conn.label(),
        "src": src,
        "backup_id": manifest["id"],
        "source_database": manifest["database"],
        "snapshot_time": manifest["snapshot_time"],
        "replaced": swapped["replaced"],
        "jobs": jobs_used,
        "verified": verified,
        "duration_s": duration,
        "timings": {"verify_s": verified["seconds"], "restore_s": restore_s, "analyze_s": analyze_s},
        "throughput_mb_s": throughput(size, duration),
        "marker": manifest.get("marker"),
        "warnings": warnings,
        "diff": diff,
        "summary": (
            f"restored {manifest['database']} (snapshot {manifest['snapshot_time']}, {human_bytes(size)}) into {conn.label()} in "
            f"{duration:.1f} s ({throughput(size, duration)} MB/s, {jobs_used} job(s))"
            + (", replacing the previous database" if swapped["replaced"] else "")
        ),
    }
