# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The boot record: one JSON document per deployment per host (default ``/var/lib/dualboot/<name>.json``).

Schema (``format: 1``)::

    {
      "format": 1,
      "name": "shop",                      # deployment name (dualboot_name)
      "engine": "postgresql",              # or "mongodb"
      "entries": {                         # boot entries: connection settings WITHOUT secrets
        "blue":  {"login_host": "db1", "login_port": 5432, "login_user": "app", "login_db": "shop_blue"},
        "green": {"login_host": "db1", "login_port": 5432, "login_user": "app", "login_db": "shop_green"}
      },                                   # MongoDB entries: login_uri (password removed) or login_host/login_port, plus "database"
      "default": "blue",                   # the entry applications boot into now
      "fallback": null,                    # the previous default, after a cutover
      "staged": "green",                   # the entry a stage has filled, or null
      "evidence": {"green": {"stage": {...}, "verify": {...}}},
      "lock": null,                        # or {"owner", "run_id", "acquired", "expires", "ttl", "controller"}
      "journal": null,                     # or the intent of the last cutover/rollback (see below)
      "history": [{"action", "from", "to", "at", "run_id", "by", "operator", "outcome"}],
      "updated": "2026-11-21T16:00:00Z"
    }

The reading side (:func:`load_record`, :func:`validate`, :func:`default_entry`,
:func:`same_postgresql_database`) is what other modules use, e.g. restore's protection of the
default entry. The writing side (:func:`apply` with :func:`define`, :func:`record_evidence`,
:func:`switch`, :func:`lock`, :func:`unlock`) is the ``boot_record`` module's:

- every change is a read-modify-write under an exclusive ``flock`` on the record's directory, so two
  runs on one host cannot both take the lock or lose each other's history entry;
- the file is replaced atomically (temp file in the same directory, fsync, rename, fsync of the
  directory), mode 0600, its directory 0700 when we create it, the owner of an existing file kept;
- a record that does not parse or validate is reported with its path and never overwritten;
- while a lock is held, only its run (``run_id``) may change the record; ``force`` clears a lock
  deliberately (any lock on unlock; only an expired one on lock) and leaves a history entry;
  ``takeover`` takes over the lock of one named run that the caller has found dead (its controller
  process is gone, or its lock expired), leaving a history entry that says so.

The intent journal (:func:`journal`): before a cutover or rollback changes anything, its plan (action,
from, to, run id, hosts, the record's own default/fallback/staged before the run) is written into
every record together with the lock, and each step moves ``phase`` forward *before* the step runs
(write-ahead): ``locked`` -> ``marked`` -> ``frozen`` -> ``switching`` -> ``done`` (or ``undoing`` ->
``undone``). ``done`` makes ``to`` the record's default and releases the lock in the same write;
``undone`` restores the record's default, fallback and staged entry from the plan and releases the
lock. A record whose journal is open (any other phase) belongs to an interrupted run: the roles
resume it (phase ``switching``: hosts may boot into ``to``, so going forward loses nothing) or undo
it (earlier phases and ``undoing``: no host has left ``from``).
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import difflib
import fcntl
import getpass
import json
import os
import re
from collections.abc import Iterator
from typing import Any, Callable

from ansible_collections.dualboot.db.plugins.module_utils.errors import IntegrityError, InvalidInput, SafetyRefusal
from ansible_collections.dualboot.db.plugins.module_utils.switch_formats import atomic_write

FORMAT = 1
PHASES = ("locked", "marked", "frozen", "switching", "undoing", "done", "undone")
CLOSED_PHASES = ("done", "undone")
SECRET_KEYS = frozenset({"login_password", "password"})
DEFAULT_DIR = "/var/lib/dualboot"
ENGINES = ("postgresql", "mongodb")
# Wider than SECRET_KEYS (which validates records on read): nothing secret-looking is ever written.
_SECRET_NAMES = frozenset({"login_password", "password", "passwd", "pgpassword", "secret", "api_key", "token"})
_URI_PASSWORD = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#@]*:[^/?#@]*@")


def load_record(path: str) -> dict:
    """Read and check a boot record; a missing file is :class:`InvalidInput`, a damaged one :class:`IntegrityError`."""
    if not os.path.exists(path):
        raise InvalidInput(f"boot record {path} does not exist.", hint="define the deployment first (boot_record state=defined).")
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError) as exc:
        raise IntegrityError(
            f"boot record {path} is not readable JSON: {exc}",
            hint="restore it from its backup copy or fix it by hand; it is never overwritten silently.",
        ) from None
    problems = validate(record)
    if problems:
        raise IntegrityError(
            f"boot record {path} is invalid: {'; '.join(problems)}",
            hint="restore it from its backup copy or fix it by hand; it is never overwritten silently.",
        )
    return record


def validate(record: object) -> list[str]:
    """Every reason ``record`` is not a valid boot record (empty when it is)."""
    if not isinstance(record, dict):
        return ["top level is not an object"]
    problems = []
    if record.get("format") != FORMAT:
        problems.append(f"format is {record.get('format')!r}, expected {FORMAT}")
    entries = record.get("entries")
    if not isinstance(entries, dict) or not all(isinstance(v, dict) for v in entries.values()):
        problems.append("entries is not an object of objects")
        entries = {}
    for key in ("default", "fallback", "staged"):
        value = record.get(key)
        if value is not None and value not in entries:
            problems.append(f"{key} names unknown entry {value!r}")
    if record.get("default") is None:
        problems.append("default is not set")
    if not isinstance(record.get("history", []), list):
        problems.append("history is not a list")
    for name, entry in entries.items():
        leaked = SECRET_KEYS & set(entry)
        if leaked:
            problems.append(f"entry {name!r} holds a secret ({', '.join(sorted(leaked))})")
    return problems


def default_entry(record: dict) -> tuple[str, dict]:
    """(name, connection settings) of the default entry."""
    name = record["default"]
    return name, record["entries"][name]


def same_postgresql_database(entry: dict, host: str, port: int, dbname: str) -> bool:
    """Whether a PostgreSQL entry names this database (empty host means the local socket)."""

    def norm(h: str | None) -> str:
        return "localhost" if h in (None, "", "127.0.0.1", "::1") or str(h).startswith("/") else str(h)

    return (norm(entry.get("login_unix_socket") or entry.get("login_host")), int(entry.get("login_port", 5432)), entry.get("login_db")) == (
        norm(host),
        int(port),
        dbname,
    )


# --------------------------------------------------------------------------------------------
# Names and entries, checked before anything is written.

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def name_problems(name: object) -> list[str]:
    """Why ``name`` cannot name a deployment (it names the record file and the reports): empty when it can."""
    if not isinstance(name, str) or not _NAME.match(name) or name in (".", ".."):
        return [
            f"the deployment name {name!r} is not a plain file name: use letters, digits, '.', '_' and '-' "
            "(not starting with '.' or '-', no '/')"
        ]
    return []


def _entry_spec(engine: str) -> dict:
    """Connection options an entry of ``engine`` may hold: the modules' own, by their canonical names."""
    if engine == "mongodb":
        from ansible_collections.dualboot.db.plugins.module_utils.mongodb import connection_spec

        return {**connection_spec(with_defaults=False), "database": {"type": "str"}}
    from ansible_collections.dualboot.db.plugins.module_utils.postgresql import connection_spec

    return connection_spec(with_defaults=False)


def _type_problem(key: str, value: Any, spec: dict) -> str | None:
    kind = spec.get("type", "str")
    ok = {
        "int": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, str) and v.isdigit()),
        "bool": lambda v: isinstance(v, bool),
        "dict": lambda v: isinstance(v, dict),
    }.get(kind, lambda v: isinstance(v, str))
    if not ok(value):
        return f"{key} must be {'an' if kind == 'int' else 'a'} {kind}, not a {type(value).__name__}"
    if kind == "int" and key.endswith("_port") and not 0 < int(value) < 65536:
        return f"{key} must be a port number (1-65535)"
    if spec.get("choices") and value not in spec["choices"]:
        return f"{key} must be one of {', '.join(spec['choices'])}"
    return None


def entry_problems(engine: str, entries: object) -> list[str]:
    """Every reason ``entries`` cannot be the boot entries of an ``engine`` deployment, naming keys, never values.

    Known keys are the connection options of the engine's modules (plus ``database`` for MongoDB), by
    their canonical names; an unknown key is refused with the closest known one, so a misspelt
    ``login_passwd`` is never mistaken for a harmless setting and stored.
    """
    if engine not in ENGINES:
        return [f"engine must be postgresql or mongodb, not {engine!r}"]
    if not isinstance(entries, dict) or len(entries) < 2 or not all(isinstance(v, dict) for v in entries.values()):
        return ["dualboot_entries must map at least two entry names to connection settings (a dict of dicts)"]
    spec = _entry_spec(engine)
    needed = "database" if engine == "mongodb" else "login_db"
    problems = []
    for name, entry in entries.items():
        if name_problems(name):
            problems.append(f"entry name {name!r} is not a plain name: use letters, digits, '.', '_' and '-'")
        for key in entry:
            if key not in spec:
                close = difflib.get_close_matches(str(key), list(spec), n=1, cutoff=0.6)
                guess = f" (did you mean {close[0]!r}?)" if close else ""
                problems.append(f"entry {name}: unknown key {key!r}{guess}; known: {', '.join(spec)}")
            else:
                wrong = _type_problem(key, entry[key], spec[key])
                if wrong:
                    problems.append(f"entry {name}: {wrong}")
        if needed not in entry:
            problems.append(f"entry {name}: {needed} is missing (the database this entry boots into)")
    return problems


def public_entries(engine: str, entries: dict) -> dict:
    """Entries as a boot record keeps them: known keys only, no password, ports as numbers. Call after :func:`entry_problems`."""
    spec = _entry_spec(engine)
    out = {}
    for name, entry in entries.items():
        kept = {k: v for k, v in entry.items() if k in spec and k not in SECRET_KEYS}
        out[name] = {k: int(v) if spec[k].get("type") == "int" else v for k, v in kept.items()}
    return out


# --------------------------------------------------------------------------------------------
# The writing side.


def default_path(name: str) -> str:
    return os.path.join(DEFAULT_DIR, f"{name}.json")


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)


def find_secrets(value: Any, where: str = "") -> list[str]:
    """Where ``value`` holds something that looks like a secret: a password-like key, or a URI with a password."""
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            name = str(key).lower()
            here = f"{where}.{key}" if where else str(key)
            if name in _SECRET_NAMES or name.endswith("_password") or _looks_secret(name):
                found.append(here)
            else:
                found += find_secrets(item, here)
    elif isinstance(value, list):
        for n, item in enumerate(value):
            found += find_secrets(item, f"{where}[{n}]")
    elif isinstance(value, str) and _URI_PASSWORD.match(value):
        found.append(f"{where} (a URI with a password)")
    return found


def _looks_secret(name: str) -> bool:
    """A key that names a secret by another spelling (login_passwd, db_pwd, api_secret); *_var and *_file are references."""
    if name.endswith(("_var", "_file")):
        return False
    return any(part in name for part in ("pass", "pwd", "secret", "token")) or bool(
        difflib.get_close_matches(name, ["login_password", "password"], n=1, cutoff=0.85)
    )


def _refuse_secrets(value: Any, what: str) -> None:
    leaked = find_secrets(value)
    if leaked:
        raise InvalidInput(
            f"{what} would store a secret in the boot record: {', '.join(leaked)}.",
            hint="keep passwords out of entries (pass them to the tasks that connect, with no_log); "
            "a reference such as password_var or password_file is fine.",
        )


def read_record(path: str) -> dict | None:
    """The record at ``path``, or None when there is none yet; a damaged record raises :class:`IntegrityError`."""
    if not os.path.lexists(path):
        return None
    return load_record(path)


def serialize(record: dict) -> str:
    return json.dumps(record, indent=2, ensure_ascii=False) + "\n"


def write_record(path: str, record: dict) -> None:
    """Write atomically, 0600; the directory is created 0700; an existing file keeps its owner."""
    problems = validate(record)
    if problems:
        raise InvalidInput(f"refusing to write an invalid boot record to {path}: {'; '.join(problems)}.")
    like = os.stat(path) if os.path.exists(path) else None
    atomic_write(path, serialize(record).encode("utf-8"), like=like, mode=0o600)


@contextlib.contextmanager
def _directory_lock(path: str, create: bool) -> Iterator[None]:
    """An exclusive flock on the record's directory for one read-modify-write (created 0700 when missing)."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        if not create:
            yield
            return
        try:
            os.makedirs(directory, mode=0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise InvalidInput(
                f"cannot create {directory} for the boot record: {exc.strerror}.", hint="run the task with become."
            ) from None
        os.chmod(directory, 0o700)
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _comparable(record: dict | None) -> dict | None:
    if record is None:
        return None
    return {k: v for k, v in record.items() if k != "updated"}


def apply(path: str, change: Callable[[dict | None], tuple[dict | None, dict]], check_mode: bool) -> dict:
    """Run one change on the record under the directory lock; write it unless nothing changed or in check mode.

    ``change`` gets a copy of the current record (None when there is none) and returns the new
    record and facts for the result. The result carries ``changed``, ``record``, ``diff``, ``msg``.
    """
    with _directory_lock(path, create=not check_mode):
        before = read_record(path)
        after, facts = change(copy.deepcopy(before))
        changed = _comparable(after) != _comparable(before)
        if changed:
            # ``updated`` is when the content last changed: a run's lock, taken and released again,
            # leaves the record as it was, byte for byte.
            unlocked = [{k: v for k, v in (r or {}).items() if k != "lock"} for r in (_comparable(after), _comparable(before))]
            same_content = before is not None and unlocked[0] == unlocked[1] and "updated" in before
            after["updated"] = before["updated"] if same_content else iso(utc_now())
            if not check_mode:
                write_record(path, after)
    shown = after if after is not None else before
    result = {
        "changed": changed,
        "path": path,
        "exists": shown is not None,
        "record": shown,
        "diff": {
            "before": summary(before) if before is not None else "",
            "after": summary(after) if after is not None else "",
            "before_header": path,
            "after_header": path,
        },
    }
    result.update(facts)
    return result


def summary(record: dict) -> str:
    """What an operator reads in ``--diff``: which entry the host boots, the lock, the journal; no marker JSON."""
    held = record.get("lock")
    planned = record.get("journal") or {}
    last = (record.get("history") or [{}])[-1]
    lines = [
        f"default: {record.get('default')}",
        f"fallback: {record.get('fallback')}",
        f"staged: {record.get('staged')}",
        "entries: " + ", ".join(f"{name} ({_where(entry)})" for name, entry in sorted(record.get("entries", {}).items())),
        "evidence: "
        + (", ".join(f"{name}: {'+'.join(sorted(kinds))}" for name, kinds in sorted(record.get("evidence", {}).items())) or "none"),
        f"lock: {held['run_id']} ({held.get('owner')}, expires {held.get('expires')})" if held else "lock: none",
        f"journal: {planned.get('action')} {planned.get('from')} -> {planned.get('to')}, "
        f"run {planned.get('run_id')}, phase {planned.get('phase')}"
        if planned
        else "journal: none",
        f"last switch: {last.get('action')} {last.get('from')} -> {last.get('to')} at {last.get('at')}" if last else "last switch: none",
    ]
    return "\n".join(lines) + "\n"


def _where(entry: dict) -> str:
    host = entry.get("login_host") or entry.get("login_unix_socket") or entry.get("login_uri", "")
    return f"{host}:{entry['login_port']}/{entry.get('login_db') or entry.get('database', '')}" if "login_port" in entry else f"{host}"


def _check_lock(record: dict, run_id: str | None, now: datetime.datetime, doing: str) -> None:
    held = record.get("lock")
    if held and held.get("run_id") != run_id:
        raise SafetyRefusal(
            f"cannot {doing}: the boot record is locked by {_describe_lock(held, now)}.",
            hint=_lock_hint(held, now),
            lock=held,
        )


def lock_expired(held: dict | None, now: datetime.datetime | None = None) -> bool:
    return bool(held) and parse_iso(held["expires"]) <= (now or utc_now())


def _describe_lock(held: dict, now: datetime.datetime) -> str:
    state = "expired" if lock_expired(held, now) else "expires"
    return f"{held.get('owner')} (run {held.get('run_id')}, since {held.get('acquired')}, {state} {held.get('expires')})"


def _lock_hint(held: dict, now: datetime.datetime) -> str:
    if lock_expired(held, now):
        return (
            "the run that took it has probably crashed: check the hosts and the record's history, then clear it with "
            "state=unlocked force=true (or take it over with state=locked force=true)."
        )
    return (
        "wait for that run to finish (pass its run_id to act within it), or, if it is dead, clear the lock with state=unlocked force=true."
    )


def _entry(record: dict, name: str, what: str) -> dict:
    if name not in record["entries"]:
        raise InvalidInput(
            f"{what}: entry {name!r} is not in the boot record (entries: {', '.join(record['entries'])}).", hint="check the entry name."
        )
    return record["entries"][name]


def define(
    record: dict | None,
    name: str,
    engine: str | None,
    entries: dict | None,
    default: str | None,
    run_id: str | None = None,
    now: datetime.datetime | None = None,
) -> tuple[dict, dict]:
    """Create the record, or update its entries. The default entry only changes by :func:`switch`."""
    now = now or utc_now()
    if entries is not None:
        if not isinstance(entries, dict) or not entries or not all(isinstance(v, dict) for v in entries.values()):
            raise InvalidInput(
                "entries must map entry names to connection settings (a dict of dicts).",
                hint="e.g. {blue: {login_host: db1, login_db: shop}}.",
            )
        _refuse_secrets(entries, "entries")
        entries = _ports_as_numbers(entries)
    if record is None:
        if engine not in ENGINES:
            raise InvalidInput("a new boot record needs engine (postgresql or mongodb).", hint="set engine.")
        if not entries:
            raise InvalidInput("a new boot record needs entries.", hint="set entries (at least the default entry).")
        if default not in entries:
            raise InvalidInput(f"a new boot record needs default, one of the entries ({', '.join(entries)}).", hint="set default.")
        record = {
            "format": FORMAT,
            "name": name,
            "engine": engine,
            "entries": entries,
            "default": default,
            "fallback": None,
            "staged": None,
            "evidence": {},
            "lock": None,
            "history": [],
        }
        return record, {"msg": f"defined boot record {name} with entries {', '.join(entries)}; default entry {default}"}
    if record.get("name") != name:
        raise InvalidInput(f"the boot record belongs to deployment {record.get('name')!r}, not {name!r}.", hint="check name and path.")
    if engine is not None and engine != record.get("engine"):
        raise InvalidInput(
            f"the deployment's engine is {record.get('engine')}; it cannot become {engine}.",
            hint="use another name for another deployment.",
        )
    if default is not None and default != record["default"]:
        raise SafetyRefusal(
            f"the default entry is {record['default']}; defining cannot change it to {default}.",
            hint="switch it with state=switched, which records the switch in the history.",
        )
    if entries is None or entries == record["entries"]:
        return record, {"msg": f"boot record {name} already defines entries {', '.join(record['entries'])}"}
    _check_lock(record, run_id, now, "change the entries")
    for role in ("default", "fallback", "staged"):
        if record.get(role) is not None and record[role] not in entries:
            raise SafetyRefusal(f"entry {record[role]} is the {role} entry; it cannot be removed.", hint=f"keep {record[role]} in entries.")
    moved = [e for e in entries if e in record["entries"] and entries[e] != record["entries"][e]]
    for gone in [e for e in record.get("evidence", {}) if e not in entries or e in moved]:
        # Evidence describes a database at a place; it means nothing for another place.
        record["evidence"].pop(gone)
    if record.get("staged") in moved:
        record["staged"] = None
    record["entries"] = entries
    return record, {
        "msg": f"updated the entries of boot record {name}: {', '.join(entries)}"
        + (f" (evidence dropped for moved {', '.join(moved)})" if moved else "")
    }


def _ports_as_numbers(entries: dict) -> dict:
    """Entries with every *_port a number: a port stored as text would make every record look changed."""
    out = {}
    for name, entry in entries.items():
        out[name] = dict(entry)
        for key, value in entry.items():
            if key.endswith("_port"):
                wrong = _type_problem(key, value, {"type": "int"})
                if wrong:
                    raise InvalidInput(f"entry {name}: {wrong}.", hint=f"give {key} as a number, e.g. 5432.")
                out[name][key] = int(value)
    return out


def record_evidence(
    record: dict | None,
    entry: str,
    stage: dict | None,
    verify: dict | None,
    run_id: str | None = None,
    now: datetime.datetime | None = None,
    cutover: dict | None = None,
) -> tuple[dict, dict]:
    """Store stage, verify and/or cutover evidence of a staged entry; new stage evidence replaces the entry's old evidence.

    Cutover evidence (the marker of the entry taken just before applications switch to it) is what
    rollback compares with to tell whether the new default took writes.
    """
    now = now or utc_now()
    if record is None:
        raise InvalidInput("there is no boot record yet.", hint="define the deployment first (state=defined).")
    _entry(record, entry, "evidence")
    if entry == record["default"]:
        raise SafetyRefusal(
            f"entry {entry} is the default entry; stage and verify evidence describe a staged entry.", hint="name the staged entry."
        )
    if stage is None and verify is None and cutover is None:
        raise InvalidInput("evidence needs stage, verify or cutover (a dict).", hint="set stage, verify and/or cutover.")
    _refuse_secrets({"stage": stage or {}, "verify": verify or {}, "cutover": cutover or {}}, "evidence")
    evidence = record.setdefault("evidence", {})
    current = copy.deepcopy(evidence.get(entry, {}))

    def same(kind: str, given: dict) -> bool:
        return {k: v for k, v in current.get(kind, {}).items() if k != "at"} == {k: v for k, v in given.items() if k != "at"}

    new = copy.deepcopy(current)
    if stage is not None and not same("stage", stage):
        new = {"stage": {**stage, "at": stage.get("at") or iso(now)}}
    if verify is not None:
        if "stage" not in new:
            raise InvalidInput(f"entry {entry} has no stage evidence to verify.", hint="record the stage first (evidence with stage).")
        if not same("verify", verify) or "verify" not in new:
            new["verify"] = {**verify, "at": verify.get("at") or iso(now)}
    if cutover is not None:
        if new.get("verify", {}).get("verdict") != "passed":
            raise SafetyRefusal(
                f"entry {entry} has no passing verify evidence; cutover evidence needs one.", hint="verify the entry first."
            )
        if not same("cutover", cutover) or "cutover" not in new:
            new["cutover"] = {**cutover, "at": cutover.get("at") or iso(now)}
    if new == current and (stage is None or record.get("staged") == entry):
        return record, {"msg": f"evidence of entry {entry} is already recorded"}
    _check_lock(record, run_id, now, "record evidence")
    evidence[entry] = new
    if stage is not None:
        record["staged"] = entry
    kinds = " and ".join(k for k, v in (("stage", stage), ("verify", verify), ("cutover", cutover)) if v is not None)
    return record, {"msg": f"recorded {kinds} evidence of entry {entry}"}


def switch(
    record: dict | None,
    to: str,
    run_id: str | None = None,
    by: str | None = None,
    reason: str = "switch",
    now: datetime.datetime | None = None,
    operator: str | None = None,
) -> tuple[dict, dict]:
    """Make ``to`` the default entry; the old default becomes the fallback and the history gets an entry.

    ``by`` is the account that runs the module; ``operator`` the person who launched the run (an AWX
    job's user), recorded when known."""
    now = now or utc_now()
    if record is None:
        raise InvalidInput("there is no boot record yet.", hint="define the deployment first (state=defined).")
    _entry(record, to, "switch")
    previous = record["default"]
    facts = {"previous_default": previous, "from": previous, "to": to}
    if previous == to:
        return record, {**facts, "msg": f"{to} is already the default entry"}
    _check_lock(record, run_id, now, f"switch to {to}")
    record["default"] = to
    record["fallback"] = previous
    if record.get("staged") == to:
        record["staged"] = None
    record.setdefault("history", []).append(
        {"action": reason, "from": previous, "to": to, "at": iso(now), "run_id": run_id, "by": by, "operator": operator, "outcome": "ok"}
    )
    return record, {**facts, "msg": f"switched the default entry from {previous} to {to} (fallback: {previous})"}


def lock(
    record: dict | None,
    owner: str,
    run_id: str,
    ttl: int,
    force: bool = False,
    now: datetime.datetime | None = None,
    controller: dict | None = None,
    takeover: str | None = None,
    plan: dict | None = None,
    operator: str | None = None,
) -> tuple[dict, dict]:
    """Take the lock for ``run_id`` (or extend it when that run holds it).

    Another run's lock is taken over only when it is the run named by ``takeover`` (the caller found
    it dead) or, with ``force``, when it has expired. ``plan`` starts the intent journal in the same
    write (see :func:`journal`).
    """
    now = now or utc_now()
    if record is None:
        raise InvalidInput("there is no boot record yet.", hint="define the deployment first (state=defined).")
    if ttl <= 0:
        raise InvalidInput("ttl must be a positive number of seconds.", hint="set ttl to the longest the run may take.")
    held = record.get("lock")
    new = {"owner": owner, "run_id": run_id, "acquired": iso(now), "expires": iso(now + datetime.timedelta(seconds=ttl)), "ttl": ttl}
    if controller:
        new["controller"] = controller
    cleared = None
    if held and held.get("run_id") == run_id:
        new["acquired"] = held.get("acquired", new["acquired"])
    elif held:
        outcome = _may_take_over(held, force, takeover, now)
        cleared = held
        record.setdefault("history", []).append(
            {
                "action": "lock-taken-over",
                "from": record["default"],
                "to": record["default"],
                "at": iso(now),
                "run_id": run_id,
                "by": owner,
                "operator": operator,
                "outcome": outcome,
                "cleared": held,
            }
        )
    record["lock"] = new
    facts = {"lock": new, "cleared_lock": cleared}
    if plan is not None:
        record, journaled = journal(record, run_id, "locked", plan=plan, now=now)
        facts["journal"] = journaled["journal"]
        if plan.get("abandons"):
            # A rollback told to discard the writes the default took: the operator hears it as a warning,
            # and the journal (kept in the record) says which writes were left behind.
            facts["warnings"] = [f"this {plan['action']} abandons writes on {plan['from']}: {plan['abandons']}"]
    if held and held.get("run_id") == run_id:
        return record, {**facts, "msg": f"run {run_id} holds the lock until {new['expires']}"}
    return record, {
        **facts,
        "msg": f"locked for {owner} (run {run_id}) until {new['expires']}"
        + (f"; took over the {cleared_how(cleared, takeover)} lock of run {cleared['run_id']}" if cleared else ""),
    }


def cleared_how(held: dict, takeover: str | None) -> str:
    return "dead run's" if takeover and held.get("run_id") == takeover else "expired"


def _may_take_over(held: dict, force: bool, takeover: str | None, now: datetime.datetime) -> str:
    """The history outcome of taking over ``held``; refuses when neither rule allows it."""
    if takeover and held.get("run_id") == takeover:
        return "holder dead"
    if force and lock_expired(held, now):
        return "forced"
    if takeover:
        hint = f"takeover names run {takeover}, but run {held.get('run_id')} holds the lock now: read the record again."
    elif force:
        hint = "force takes over an expired lock only; this one has not expired."
    else:
        hint = _lock_hint(held, now)
    raise SafetyRefusal(f"the boot record is locked by {_describe_lock(held, now)}.", hint=hint, lock=held)


def journal(
    record: dict | None,
    run_id: str,
    phase: str,
    plan: dict | None = None,
    operator: str | None = None,
    now: datetime.datetime | None = None,
) -> tuple[dict, dict]:
    """Write the intent of run ``run_id`` (``plan``) or move its ``phase``; only the lock holder may.
    ``operator`` names who launched the run moving it (recorded in the history of ``done``/``undone``).

    ``done`` switches the record to the plan's ``to`` (a history entry of the plan's action and run)
    and releases the lock; ``undone`` restores the record as it was before the plan and releases the
    lock. Both keep the closed journal in the record for the operator to read.
    """
    now = now or utc_now()
    if record is None:
        raise InvalidInput("there is no boot record yet.", hint="define the deployment first (state=defined).")
    if phase not in PHASES:
        raise InvalidInput(f"unknown phase {phase!r}.", hint=f"use one of {', '.join(PHASES)}.")
    held = record.get("lock")
    if not held or held.get("run_id") != run_id:
        raise SafetyRefusal(
            f"cannot write the journal of run {run_id}: "
            + (f"the boot record is locked by {_describe_lock(held, now)}." if held else "the boot record is not locked by it."),
            hint="take the lock first (state=locked with this run_id); a journal only moves under its run's lock.",
            lock=held,
        )
    current = record.get("journal") or {}
    if plan is not None:
        current = _new_journal(record, current, plan, now)
    elif not current or current.get("phase") in CLOSED_PHASES:
        raise InvalidInput(f"run {run_id} has no open journal to move to {phase}.", hint="start one with plan (state=locked or journal).")
    if current.get("phase") == phase and plan is None and phase not in CLOSED_PHASES:
        return record, {"journal": current, "msg": f"the journal of run {current['run_id']} is at phase {phase}"}
    current = {**current, "phase": phase, "phases": {**current.get("phases", {}), phase: iso(now)}}
    if operator:
        current["operator"] = operator
    record["journal"] = current
    # Every journal step renews the lock: a run that stops writing lets its lock expire after its ttl.
    record["lock"] = {**held, "expires": iso(now + datetime.timedelta(seconds=int(held.get("ttl", 3600))))}
    if phase == "done":
        if record["default"] != current["to"]:
            record, _facts = switch(
                record, current["to"], run_id, by=current.get("by"), reason=current["action"], now=now, operator=current.get("operator")
            )
            # The history names the run that planned the switch; a run that finished it after a crash is named beside it.
            record["history"][-1]["run_id"] = current["run_id"]
            if run_id != current["run_id"]:
                record["history"][-1]["finished_by"] = run_id
        record["lock"] = None
    elif phase == "undone":
        _restore(record, current, run_id, now)
        record["lock"] = None
    return record, {"journal": current, "msg": f"journal of {current['action']} run {current['run_id']}: phase {phase}"}


def journal_step(record: dict | None, params: dict, plan: dict | None, operator: str | None) -> tuple[dict, dict]:
    """``state=journal``: the phase, and with ``entry`` and ``cutover`` (and after a restage the fresh copy's
    ``stage`` and ``verify``) that evidence in the same write, so a record holds the cutover marker
    whenever it holds the phase that lets applications write to the new entry."""
    if not params.get("cutover"):
        return journal(record, params["run_id"], params["phase"], plan=plan, operator=operator)
    if not params.get("entry"):
        raise InvalidInput("a journal step with cutover evidence needs entry.", hint="set entry (the staged entry).")
    record, evidence = record_evidence(
        record, params["entry"], params.get("stage"), params.get("verify"), params["run_id"], cutover=params["cutover"]
    )
    record, facts = journal(record, params["run_id"], params["phase"], plan=plan, operator=operator)
    return record, {**facts, "msg": f"{evidence['msg']}; {facts['msg']}"}


def _new_journal(record: dict, current: dict, plan: dict, now: datetime.datetime) -> dict:
    missing = [k for k in ("action", "run_id", "from", "to", "hosts") if not plan.get(k)]
    if missing or plan.get("action") not in ("cutover", "rollback"):
        raise InvalidInput(
            "a journal plan needs action (cutover or rollback), run_id, from, to and hosts; "
            f"missing or wrong: {', '.join(missing) or 'action'}.",
            hint="pass the plan of the run.",
        )
    _entry(record, plan["from"], "journal from")
    _entry(record, plan["to"], "journal to")
    _refuse_secrets(plan, "the journal plan")
    same_run = current.get("run_id") == plan["run_id"] and current.get("phase") not in CLOSED_PHASES
    before = current["before"] if same_run else {k: record.get(k) for k in ("default", "fallback", "staged")}
    started = current["started"] if same_run else iso(now)
    return {**plan, "before": before, "started": started, "phases": current.get("phases", {}) if same_run else {}}


def _restore(record: dict, current: dict, run_id: str, now: datetime.datetime) -> None:
    """Put the record back as it was before the plan (it may have been switched already)."""
    before = current.get("before") or {}
    if record["default"] == before.get("default"):
        return
    record.setdefault("history", []).append(
        {
            "action": "undo",
            "from": record["default"],
            "to": before.get("default"),
            "at": iso(now),
            "run_id": current["run_id"],
            "by": current.get("by"),
            "operator": current.get("operator"),
            "outcome": f"undid {current['action']} (recovered by run {run_id})" if run_id != current["run_id"] else "undone",
        }
    )
    for key in ("default", "fallback", "staged"):
        if key in before:
            record[key] = before[key]


def journal_open(record: dict | None) -> bool:
    return bool(record and record.get("journal") and record["journal"].get("phase") not in CLOSED_PHASES)


def unlock(
    record: dict | None,
    run_id: str | None,
    force: bool = False,
    by: str | None = None,
    now: datetime.datetime | None = None,
    operator: str | None = None,
) -> tuple[dict | None, dict]:
    """Release the lock of ``run_id``; ``force`` clears anyone's lock (a crashed run's) and records that in the history."""
    now = now or utc_now()
    if record is None:
        return record, {"msg": "there is no boot record, so no lock"}
    held = record.get("lock")
    if not held:
        return record, {"msg": "the boot record is not locked"}
    if held.get("run_id") == run_id:
        record["lock"] = None
        planned = record.get("journal") or {}
        if journal_open(record) and planned.get("run_id") == run_id and planned.get("phase") == "locked":
            # A run that releases its lock before its first step changed nothing: its plan is closed as undone.
            record["journal"] = {**planned, "phase": "undone", "phases": {**planned.get("phases", {}), "undone": iso(now)}}
        return record, {"cleared_lock": held, "msg": f"released the lock of run {run_id}"}
    if not force:
        holder = f"not by run {run_id}" if run_id else "and no run_id was given"
        raise SafetyRefusal(f"the boot record is locked by {_describe_lock(held, now)}, {holder}.", hint=_lock_hint(held, now), lock=held)
    record["lock"] = None
    record.setdefault("history", []).append(
        {
            "action": "unlock-forced",
            "from": record["default"],
            "to": record["default"],
            "at": iso(now),
            "run_id": run_id,
            "by": by,
            "operator": operator,
            "outcome": "forced",
            "cleared": held,
        }
    )
    return record, {"cleared_lock": held, "msg": f"cleared the lock of {_describe_lock(held, now)} by force"}


def execute(params: dict, check_mode: bool) -> dict:
    """The ``boot_record`` module: one state, one change (see the module's documentation)."""
    problems = name_problems(params["name"])
    if problems:
        raise InvalidInput(f"{problems[0]}.", hint="the name is the boot record's file name: set name (dualboot_name) to a plain name.")
    path = params.get("path") or default_path(params["name"])
    user = _user()
    operator = params.get("operator") or None
    state = params.get("state") or "query"
    if state == "query":
        record = read_record(path)
        return {
            "changed": False,
            "path": path,
            "exists": record is not None,
            "record": record,
            "lock_expired": lock_expired(record.get("lock")) if record else False,
            "msg": f"boot record {path}: default entry {record['default']}" if record else f"there is no boot record at {path}",
        }
    changes: dict[str, Callable[[dict | None], tuple[dict | None, dict]]] = {
        "defined": lambda r: define(
            r, params["name"], params.get("engine"), params.get("entries"), params.get("default"), params.get("run_id")
        ),
        "evidence": lambda r: record_evidence(
            r, params["entry"], params.get("stage"), params.get("verify"), params.get("run_id"), cutover=params.get("cutover")
        ),
        "switched": lambda r: switch(
            r, params["to"], params.get("run_id"), params.get("by") or user, params.get("reason") or "switch", operator=operator
        ),
        "locked": lambda r: lock(
            r,
            params.get("owner") or user,
            params["run_id"],
            int(params.get("ttl") or 3600),
            bool(params.get("force")),
            controller=params.get("controller"),
            takeover=params.get("takeover"),
            plan=_plan(params, user),
            operator=operator,
        ),
        "journal": lambda r: journal_step(r, params, _plan(params, user), operator),
        "unlocked": lambda r: unlock(r, params.get("run_id"), bool(params.get("force")), params.get("by") or user, operator=operator),
    }
    if state not in changes:
        raise InvalidInput(f"unknown state {state!r}.", hint="use query, defined, evidence, switched, locked, unlocked or journal.")
    if check_mode and state in _WOULD_AFTER_DEFINE and read_record(path) is None:
        return _would_after_define(path, state)
    return apply(path, changes[state], check_mode)


# In check mode before the first define (a first ``stage --check``), what each change would do once
# the run has defined the record; a real run without a record still refuses.
_WOULD_AFTER_DEFINE = {
    "locked": "would take the lock",
    "evidence": "would record the evidence",
    "journal": "would journal the phase",
    "switched": "would switch the default entry",
    "unlocked": "would release the lock",
}


def _would_after_define(path: str, state: str) -> dict:
    return {
        "changed": state != "unlocked",
        "path": path,
        "exists": False,
        "record": None,
        "diff": {"before": "", "after": "", "before_header": path, "after_header": path},
        "msg": f"check mode: there is no boot record at {path} yet; a real run defines it first, then {_WOULD_AFTER_DEFINE[state]}",
    }


def _plan(params: dict, user: str) -> dict | None:
    """The journal plan of the module's ``journal`` option, with who runs it."""
    plan = params.get("journal")
    if plan is None:
        return None
    return {
        **plan,
        "run_id": plan.get("run_id") or params.get("run_id"),
        "by": plan.get("by") or user,
        "operator": params.get("operator") or plan.get("operator"),
    }


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
