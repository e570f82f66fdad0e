# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ordered SQL migrations with a history table (``dualboot.schema_history``) and checksums.

Migrations come from a list (inline ``sql`` or a ``file``) and/or a Flyway-style directory of
``V<version>__<description>.sql`` files. Versions are dotted (or underscored) numbers compared part by
part (1.9 < 1.10; trailing zeros do not count: 2 = 2.0). Each migration runs in its own transaction
unless it is marked non-transactional (``transactional: false``, or a ``-- dualboot: transactional=false``
line in the file), for statements such as ``CREATE INDEX CONCURRENTLY`` that refuse transaction blocks.

Statements are split by :func:`split_sql`, which understands quotes, dollar quotes, comments and
``BEGIN ATOMIC ... END`` bodies the way psql does, so a failure names the statement and its line.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import os
import re
import time
from typing import Any

from ansible_collections.dualboot.db.plugins.module_utils.boot_record import default_entry, load_record, same_postgresql_database
from ansible_collections.dualboot.db.plugins.module_utils.errors import IntegrityError, InvalidInput, OperationFailed, SafetyRefusal
from ansible_collections.dualboot.db.plugins.module_utils.postgresql import PgConnection, connect

try:
    import psycopg
    from psycopg import sql
except ImportError:  # pragma: no cover - the module reports the missing library first
    psycopg = None
    sql = None

HISTORY_SCHEMA = "dualboot"
HISTORY_TABLE = "schema_history"
# pg_advisory_lock key held while migrations run: the bytes of "dualboot" as a bigint.
LOCK_KEY = int.from_bytes(b"dualboot", "big") & 0x7FFFFFFFFFFFFFFF
LOCK_WAIT = "60s"
FILE_PATTERN = re.compile(r"^V(?P<version>\d+(?:[._]\d+)*)__(?P<desc>.+)\.sql$")
VERSION_PATTERN = re.compile(r"^\d+(?:[._]\d+)*$")
DIRECTIVE = re.compile(r"^[ \t]*--[ \t]*dualboot:[ \t]*(?P<body>.*?)[ \t]*$", re.M)
TRANSACTION_CONTROL = {"BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT"}


# ---------------------------------------------------------------------------------------------
# Statement splitter
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Statement:
    """One SQL statement of a migration: its text (without the ``;``), 1-based start line and offset."""

    text: str
    line: int
    offset: int

    def first_words(self, n: int = 2) -> list[str]:
        return [w.upper() for w in re.findall(r"[A-Za-z_]+", _strip_comments(self.text))[:n]]


def _is_ident_char(ch: str) -> bool:
    return ch.isalnum() or ch in "_$" or ord(ch) >= 0x80


def _is_ident_start(ch: str) -> bool:
    return ch.isalpha() or ch == "_" or ord(ch) >= 0x80


DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_\x80-\U0010ffff]*)?\$")


class _Scanner:
    """A small lexer in the spirit of psql's: enough to find statement boundaries."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.n = len(text)
        self.line_starts = [0] + [m.end() for m in re.finditer(r"\n", text)]

    def line_of(self, offset: int) -> int:
        return bisect.bisect_right(self.line_starts, offset)

    def skip_line_comment(self, i: int) -> int:
        j = self.text.find("\n", i)
        return self.n if j < 0 else j + 1

    def skip_block_comment(self, i: int) -> int:
        depth, i = 1, i + 2
        while i < self.n and depth:
            if self.text.startswith("/*", i):
                depth, i = depth + 1, i + 2
            elif self.text.startswith("*/", i):
                depth, i = depth - 1, i + 2
            else:
                i += 1
        if depth:
            raise InvalidInput(f"unterminated /* comment starting at line {self.line_of(i)}.")
        return i

    def skip_quoted(self, i: int, quote: str, backslash: bool) -> int:
        start, i = i, i + 1
        while i < self.n:
            ch = self.text[i]
            if backslash and ch == "\\":
                i += 2
                continue
            if ch == quote:
                if self.text.startswith(quote, i + 1):
                    i += 2
                    continue
                return i + 1
            i += 1
        what = "quoted identifier" if quote == '"' else "string"
        raise InvalidInput(f"unterminated {what} starting at line {self.line_of(start)}.")

    def skip_dollar(self, i: int, tag: str) -> int:
        j = self.text.find(tag, i + len(tag))
        if j < 0:
            raise InvalidInput(f"unterminated dollar-quoted string {tag} starting at line {self.line_of(i)}.")
        return j + len(tag)


def split_sql(text: str) -> list[Statement]:
    """Split SQL text into statements at top-level semicolons.

    Semicolons inside strings (standard and ``E''`` escape strings), quoted identifiers, dollar
    quotes, ``--`` and nested ``/* */`` comments, parentheses, and ``BEGIN ... END`` bodies of
    ``CREATE [OR REPLACE] FUNCTION|PROCEDURE`` do not end a statement. A psql meta-command (a line
    starting with a backslash) is refused: migrations are SQL.
    """
    s = _Scanner(text)
    out: list[Statement] = []
    i, start = 0, None
    paren = begin = 0
    words: list[str] = []

    def routine() -> bool:
        w = words[:4]
        return (
            bool(w)
            and w[0] == "CREATE"
            and (w[1:2] in (["FUNCTION"], ["PROCEDURE"]) or w[1:4] in (["OR", "REPLACE", "FUNCTION"], ["OR", "REPLACE", "PROCEDURE"]))
        )

    def finish(end: int) -> None:
        nonlocal start, paren, begin, words
        if start is not None:
            body = text[start:end].rstrip()
            if _strip_comments(body).strip():
                out.append(Statement(body, s.line_of(start), start))
        start, paren, begin, words = None, 0, 0, []

    while i < s.n:
        ch = text[i]
        if ch in " \t\r\n\f":
            i += 1
            continue
        if text.startswith("--", i):
            i = s.skip_line_comment(i)
            continue
        if text.startswith("/*", i):
            i = s.skip_block_comment(i)
            continue
        if start is None:
            if ch == "\\":
                raise InvalidInput(
                    f"line {s.line_of(i)} holds a psql meta-command ({text[i : i + 12].split()[0]}): migrations are plain SQL."
                )
            start = i
        if ch == ";":
            if paren == 0 and begin == 0:
                finish(i)
            i += 1
            continue
        if ch == "'":
            prev = text[i - 1] if i else ""
            escape = prev in "eE" and (i < 2 or not _is_ident_char(text[i - 2]))
            i = s.skip_quoted(i, "'", backslash=escape)
            continue
        if ch == '"':
            i = s.skip_quoted(i, '"', backslash=False)
            continue
        if ch == "$":
            m = DOLLAR_TAG.match(text, i)
            if m and not (i and _is_ident_char(text[i - 1])):
                i = s.skip_dollar(i, m.group(0))
            else:
                i += 1
            continue
        if ch == "(":
            paren += 1
        elif ch == ")":
            paren = max(0, paren - 1)
        elif _is_ident_start(ch):
            j = i + 1
            while j < s.n and _is_ident_char(text[j]):
                j += 1
            word = text[i:j].upper()
            # E'...' strings: the prefix letter is a word of its own only when no quote follows.
            if word in ("E", "U", "B", "X") and j < s.n and text[j] in "'&":
                i = j
                continue
            words.append(word)
            if paren == 0 and routine():
                if word == "BEGIN":
                    begin += 1
                elif word == "CASE" and begin:
                    begin += 1
                elif word == "END" and begin:
                    begin -= 1
            i = j
            continue
        i += 1
    finish(s.n)
    return out


def _strip_comments(text: str) -> str:
    """Text without comments (for deciding whether a fragment holds any SQL)."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"--[^\n]*", " ", text)


# ---------------------------------------------------------------------------------------------
# Migrations
# ---------------------------------------------------------------------------------------------


def parse_version(value: object, where: str) -> tuple[int, ...]:
    if isinstance(value, bool) or isinstance(value, float):
        raise InvalidInput(
            f"{where}: version {value!r} must be written as a string: YAML reads 1.10 as the number 1.1.",
            hint="quote it, e.g. version: '1.10'.",
        )
    text = str(value).strip()
    if not VERSION_PATTERN.match(text):
        raise InvalidInput(f"{where}: version {text!r} is not a dotted number such as 3 or 1.2.10.")
    parts = [int(p) for p in re.split(r"[._]", text)]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def version_text(key: tuple[int, ...]) -> str:
    return ".".join(str(p) for p in key)


def normalize_sql(text: str) -> str:
    return text.lstrip("\ufeff").replace("\r\n", "\n")


def checksum(text: str) -> str:
    return hashlib.sha256(normalize_sql(text).encode("utf-8")).hexdigest()


def parse_directives(text: str, where: str) -> dict:
    found: dict = {}
    for m in DIRECTIVE.finditer(text):
        for item in re.split(r"[\s,]+", m.group("body")):
            if not item:
                continue
            key, sep, value = item.partition("=")
            if key != "transactional" or not sep or value.lower() not in ("true", "false"):
                raise InvalidInput(f"{where}: unknown directive {item!r}; the only one is '-- dualboot: transactional=false'.")
            found["transactional"] = value.lower() == "true"
    return found


@dataclasses.dataclass
class Migration:
    key: tuple[int, ...]
    description: str
    sql: str
    script: str
    transactional: bool
    checksum: str

    @property
    def version(self) -> str:
        return version_text(self.key)


def _read(path: str, where: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise InvalidInput(
            f"{where}: cannot read {path}: {exc.strerror}.", hint="migration files are read on the host running the task."
        ) from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{where}: {path} is not UTF-8 text.") from None


def from_directory(path: str) -> list[Migration]:
    if not os.path.isdir(path):
        raise InvalidInput(f"migrations_dir {path} does not exist or is not a directory.", hint="it is read on the host running the task.")
    out, strays = [], []
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if not name.endswith(".sql") or not os.path.isfile(full):
            continue
        m = FILE_PATTERN.match(name)
        if not m:
            strays.append(name)
            continue
        text = normalize_sql(_read(full, name))
        directives = parse_directives(text, name)
        out.append(
            Migration(
                key=parse_version(m.group("version"), name),
                description=m.group("desc").replace("_", " "),
                sql=text,
                script=name,
                transactional=directives.get("transactional", True),
                checksum=checksum(text),
            )
        )
    if strays:
        raise InvalidInput(
            f"migrations_dir {path} holds .sql files not named V<version>__<description>.sql: {', '.join(strays)}.",
            hint="rename them (e.g. V3__add_index.sql) or move them out; a misnamed migration would otherwise be skipped silently.",
        )
    return out


def from_list(items: list[dict]) -> list[Migration]:
    out = []
    for n, item in enumerate(items or [], 1):
        where = f"migrations[{n}]"
        if not isinstance(item, dict) or "version" not in item:
            raise InvalidInput(f"{where} needs a version and one of sql or file.")
        unknown = set(item) - {"version", "description", "sql", "file", "transactional"}
        if unknown:
            raise InvalidInput(
                f"{where} has unknown key(s) {', '.join(sorted(unknown))}; allowed: version, description, sql, file, transactional."
            )
        has_sql, has_file = item.get("sql") is not None, item.get("file") is not None
        if has_sql == has_file:
            raise InvalidInput(f"{where} needs exactly one of sql or file.")
        text = normalize_sql(item["sql"] if has_sql else _read(item["file"], where))
        directives = parse_directives(text, where)
        transactional = item.get("transactional")
        if transactional is None:
            transactional = directives.get("transactional", True)
        elif not isinstance(transactional, bool):
            raise InvalidInput(f"{where}: transactional must be true or false.")
        out.append(
            Migration(
                key=parse_version(item["version"], where),
                description=str(item.get("description") or (os.path.basename(item["file"]) if has_file else "")),
                sql=text,
                script=item["file"] if has_file else "inline",
                transactional=transactional,
                checksum=checksum(text),
            )
        )
    return out


def collect(items: list[dict] | None, directory: str | None) -> list[Migration]:
    """All migrations in version order; duplicate versions fail before anything runs."""
    found = from_list(items or []) + (from_directory(directory) if directory else [])
    seen: dict = {}
    dups = []
    for m in found:
        if m.key in seen:
            dups.append(f"version {m.version} in {seen[m.key].script} and {m.script}")
        else:
            seen[m.key] = m
    if dups:
        raise InvalidInput(
            f"duplicate migration version(s): {'; '.join(dups)}.", hint="give every migration its own version; nothing was run."
        )
    if not found:
        raise InvalidInput("no migrations given: set migrations and/or migrations_dir (the directory holds no V<version>__*.sql file).")
    for m in found:
        statements = split_sql(m.sql)  # also raises on unterminated quotes, before anything runs
        if m.transactional:
            for st in statements:
                words = st.first_words()
                if words and words[0] in TRANSACTION_CONTROL and words[:2] != ["ROLLBACK", "TO"]:
                    raise InvalidInput(
                        f"migration {m.version} ({m.script}) line {st.line}: {words[0]} controls the transaction, "
                        "but the migration already runs in a transaction of its own.",
                        hint="remove it, or mark the migration non-transactional (-- dualboot: transactional=false).",
                    )
    return sorted(found, key=lambda m: m.key)


# ---------------------------------------------------------------------------------------------
# Applying
# ---------------------------------------------------------------------------------------------


def _history_ddl() -> list:
    return [
        sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(HISTORY_SCHEMA)),
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {}.{} ("
            " installed_rank serial, version text PRIMARY KEY, description text NOT NULL, script text NOT NULL,"
            " checksum text NOT NULL, transactional boolean NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(),"
            " duration_ms bigint NOT NULL, applied_by text NOT NULL DEFAULT session_user)"
        ).format(sql.Identifier(HISTORY_SCHEMA), sql.Identifier(HISTORY_TABLE)),
    ]


def _history(cur: Any) -> dict:
    cur.execute("SELECT to_regclass(%s)", (f"{HISTORY_SCHEMA}.{HISTORY_TABLE}",))
    if cur.fetchone()[0] is None:
        return {}
    cur.execute(
        sql.SQL("SELECT version, description, script, checksum, applied_at FROM {}.{} ORDER BY installed_rank").format(
            sql.Identifier(HISTORY_SCHEMA), sql.Identifier(HISTORY_TABLE)
        )
    )
    return {
        parse_version(r[0], "dualboot.schema_history"): {
            "version": r[0],
            "description": r[1],
            "script": r[2],
            "checksum": r[3],
            "applied_at": str(r[4]),
        }
        for r in cur.fetchall()
    }


# An index a statement names: CREATE [UNIQUE] INDEX [CONCURRENTLY] [IF NOT EXISTS] name ON [ONLY] [schema.]table.
_IDENT = r'(?:"(?:[^"]|"")+"|[^\s"(.,;]+)'
_CREATE_INDEX = re.compile(
    rf"\bCREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?({_IDENT})\s+ON\s+(?:ONLY\s+)?(?:({_IDENT})\s*\.)?",
    re.I,
)
Q_INVALID_INDEXES = (
    "SELECT i.indexrelid, format('%I.%I', n.nspname, c.relname) FROM pg_index i"
    " JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT i.indisvalid"
)
Q_INVALID_NAMED = (
    "SELECT format('%%I.%%I', n.nspname, c.relname) FROM unnest(%s::text[]) x JOIN pg_index i ON i.indexrelid = to_regclass(x)"
    " JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT i.indisvalid ORDER BY 1"
)


def _invalid_indexes(c: Any) -> dict:
    """Every INVALID index of the database (what a failed CREATE INDEX CONCURRENTLY leaves): oid -> name."""
    return dict(c.execute(Q_INVALID_INDEXES).fetchall())


def _named_indexes(statements: list[Statement]) -> list[str]:
    """The indexes the statements create, as ``[schema.]name`` texts for to_regclass (the index lives in its table's schema)."""
    found = []
    for st in statements:
        for name, schema in _CREATE_INDEX.findall(_strip_comments(st.text)):
            found.append(f"{schema}.{name}" if schema else name)
    return found


def _still_invalid(c: Any, statements: list[Statement], before: dict | None) -> list[str]:
    """INVALID indexes a migration names, or (``before`` given) that appeared while it ran."""
    bad = {r[0] for r in c.execute(Q_INVALID_NAMED, (_named_indexes(statements),)).fetchall()}
    if before is not None:
        bad |= {name for oid, name in _invalid_indexes(c).items() if oid not in before}
    return sorted(bad)


def _drop_hint(names: list[str]) -> str:
    return " ".join(f"DROP INDEX CONCURRENTLY {n};" for n in names)


def _invalid_after_run(m: Migration, names: list[str]) -> OperationFailed:
    """A migration whose statements ran, but an index it names (or made) is INVALID: not recorded as applied."""
    which = f"index {names[0]}" if len(names) == 1 else f"indexes {', '.join(names)}"
    state = "its statements were committed and stay" if not m.transactional else "it was rolled back"
    return OperationFailed(
        f"migration {m.version} ({m.script}) ran, but {which} it names is INVALID (left by a failed CREATE INDEX CONCURRENTLY;"
        " CREATE INDEX ... IF NOT EXISTS skips an existing invalid index, and an invalid index is not used by queries nor"
        f" enforces uniqueness) — {state}; it was not recorded as applied.",
        hint=f"drop the invalid leftover ({_drop_hint(names)}), then run the task again: the migration builds it anew.",
        invalid_indexes=names,
    )


def _failure_state(m: Migration, committed: int, left: list[str]) -> str:
    """What a failed migration left: rolled back, statements that stay committed, INVALID indexes."""
    if m.transactional:
        return "it was rolled back; earlier migrations stay applied and recorded."
    stayed = [f"its statements 1 to {committed} were committed and stay"] if committed else []
    if left:
        which = f"index {left[0]}" if len(left) == 1 else f"indexes {', '.join(left)}"
        stayed.append(f"the failed statement left the INVALID {which} (not used by queries, enforcing no uniqueness)")
    if not stayed:
        return "nothing of it was committed; earlier migrations stay applied and recorded."
    return f"it is NOT transactional: {', and '.join(stayed)}; it was not recorded as applied."


def _failure(m: Migration, st: Statement, index: int, total: int, exc: Any, committed: int, left: list | None = None) -> OperationFailed:
    diag = exc.diag
    line = st.line
    pos = diag.statement_position
    if pos:
        line = st.line + st.text[: int(pos) - 1].count("\n")
    message = (diag.message_primary or str(exc)).strip()
    excerpt = " ".join(st.text.split())
    excerpt = excerpt if len(excerpt) <= 300 else excerpt[:297] + "..."
    where = f"migration {m.version} ({m.script}), statement {index} of {total} at line {line}"
    left = left or []
    state = _failure_state(m, committed, left)
    hint = diag.message_hint or "fix the migration and run the task again."
    if left:
        hint = (
            f"drop what the failed statement left ({_drop_hint(left)}) — a re-run's CREATE INDEX ... IF NOT EXISTS would skip"
            f" it — fix the cause ({diag.message_hint or 'the rows or locks the error names'}), and run the task again."
        )
    if diag.sqlstate == "25001":
        hint = (
            "this statement refuses to run in a transaction block: mark the migration non-transactional (-- dualboot: transactional=false)."
        )
    return OperationFailed(
        f"{where} failed: {message}" + (f" ({diag.message_detail})" if diag.message_detail else "") + f". Statement: {excerpt} — {state}",
        hint=hint,
        failed_migration={
            "version": m.version,
            "script": m.script,
            "statement_index": index,
            "line": line,
            "sqlstate": diag.sqlstate,
            "error": message,
            "statement": excerpt,
            "committed_statements": committed if not m.transactional else 0,
            "invalid_indexes": left,
        },
    )


def _refuse_invalid(c: Any, m: Migration, statements: list[Statement], before: dict | None) -> None:
    bad = _still_invalid(c, statements, before)
    if bad:
        raise _invalid_after_run(m, bad)


def _apply_one(c: Any, m: Migration) -> dict:
    statements = split_sql(m.sql)
    started = time.monotonic()
    record = sql.SQL(
        "INSERT INTO {}.{} (version, description, script, checksum, transactional, duration_ms) VALUES (%s, %s, %s, %s, %s, %s)"
    ).format(sql.Identifier(HISTORY_SCHEMA), sql.Identifier(HISTORY_TABLE))
    done = 0
    # A non-transactional statement that fails can leave an INVALID index behind: know what was there before.
    before = None if m.transactional else _invalid_indexes(c)
    try:
        if m.transactional:
            with c.transaction():
                for st in statements:
                    c.execute(st.text)
                    done += 1
                _refuse_invalid(c, m, statements, before)
                ms = int((time.monotonic() - started) * 1000)
                c.execute(record, (m.version, m.description, m.script, m.checksum, True, ms))
        else:
            for st in statements:
                c.execute(st.text)
                done += 1
            _refuse_invalid(c, m, statements, before)
            ms = int((time.monotonic() - started) * 1000)
            c.execute(record, (m.version, m.description, m.script, m.checksum, False, ms))
    except psycopg.Error as exc:
        if done >= len(statements):
            raise OperationFailed(
                f"migration {m.version} ran but could not be recorded in {HISTORY_SCHEMA}.{HISTORY_TABLE}: {exc}"
            ) from None
        left = [] if before is None else sorted(n for oid, n in _invalid_indexes(c).items() if oid not in before)
        raise _failure(m, statements[done], done + 1, len(statements), exc, done, left) from None
    return {
        "version": m.version,
        "description": m.description,
        "script": m.script,
        "transactional": m.transactional,
        "statements": len(statements),
        "duration_ms": ms,
    }


def _protect(conn: PgConnection, boot_record: str | None, force: bool) -> list[str]:
    if not boot_record:
        return []
    record = load_record(boot_record)
    name, entry = default_entry(record)
    if same_postgresql_database(entry, conn.address, conn.port, conn.dbname):
        msg = f"{conn.label()} is the default entry {name!r} of boot record {boot_record} (the live database)"
        if not force:
            raise SafetyRefusal(
                f"refusing to migrate {msg}: dual booting migrates the staged entry.",
                hint="point the task at the staged entry; force: true overrides this for a deliberate change of the live database.",
            )
        return [f"force: migrated {msg}."]
    return []


def migrate(
    conn: PgConnection,
    migrations: list[dict] | None = None,
    migrations_dir: str | None = None,
    boot_record: str | None = None,
    force: bool = False,
    check_mode: bool = False,
) -> dict:
    """Apply pending migrations to ``conn.dbname`` (see the module documentation)."""
    started = time.monotonic()
    wanted = collect(migrations, migrations_dir)
    warnings = _protect(conn, boot_record, force)
    with connect(conn, autocommit=True) as c:
        cur = c.cursor()
        if not check_mode:
            try:
                cur.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(LOCK_WAIT)))
                cur.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
                cur.execute("RESET lock_timeout")
            except psycopg.errors.LockNotAvailable:
                raise OperationFailed(
                    f"another postgresql_migrate holds the migration lock on {conn.label()} (waited {LOCK_WAIT}).",
                    hint="wait for it to finish and run the task again.",
                ) from None
        applied = _history(cur)
        edited = [
            f"version {m.version} ({m.script}) was applied with checksum {applied[m.key]['checksum']} but now has {m.checksum}"
            for m in wanted
            if m.key in applied and applied[m.key]["checksum"] != m.checksum
        ]
        if edited:
            raise IntegrityError(
                f"applied migration(s) were edited afterwards: {'; '.join(edited)}.",
                hint="never edit an applied migration: restore its original text and put the change in a new version.",
            )
        pending = [m for m in wanted if m.key not in applied]
        if pending and applied:
            top = max(applied)
            late = [m.version for m in pending if m.key < top]
            if late:
                raise InvalidInput(
                    f"migration(s) {', '.join(late)} are pending but version {version_text(top)} is already applied: "
                    "they would run out of order.",
                    hint="give new migrations versions above the applied ones.",
                )
        unknown = [applied[k]["version"] for k in sorted(applied) if k not in {m.key for m in wanted}]
        before = [applied[k]["version"] for k in sorted(applied)]
        diff = {"before": {"applied": before}, "after": {"applied": before + [m.version for m in pending]}}
        listed = [
            {"version": m.version, "description": m.description, "script": m.script, "transactional": m.transactional} for m in pending
        ]
        if check_mode or not pending:
            return {
                "changed": bool(pending),
                "applied": [],
                "pending": listed,
                "already_applied": len(wanted) - len(pending),
                "applied_not_given": unknown,
                "current_version": before[-1] if before else None,
                "warnings": warnings,
                "diff": diff,
                "duration_s": round(time.monotonic() - started, 3),
                "summary": (
                    f"would apply {len(pending)} migration(s): {', '.join(m.version for m in pending)}"
                    if pending
                    else "no pending migration"
                )
                + f" on {conn.label()}",
            }
        for stmt in _history_ddl():
            cur.execute(stmt)
        done = []
        for m in pending:
            try:
                done.append(_apply_one(c, m))
            except OperationFailed as exc:
                exc.details["applied"] = done
                raise
    duration = round(time.monotonic() - started, 3)
    return {
        "changed": True,
        "applied": done,
        "pending": [],
        "already_applied": len(wanted) - len(pending),
        "applied_not_given": unknown,
        "current_version": done[-1]["version"],
        "warnings": warnings,
        "diff": diff,
        "duration_s": duration,
        "summary": f"applied {len(done)} migration(s) ({', '.join(d['version'] for d in done)}) to {conn.label()} in {duration:.1f} s",
    }
