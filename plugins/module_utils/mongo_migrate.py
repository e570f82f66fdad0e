# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""MongoDB migrations: ordered files (or inline definitions) applied once each, recorded in a changelog.

A migration is either

- declarative (``.yml``/``.yaml``/``.json``): ``{description, operations: [...]}`` or a bare list of
  operations, each a one-key mapping ``{update_many: {...}}`` with one of :data:`OPERATIONS`; values
  may use relaxed Extended JSON (``{$date: ...}``, ``{$oid: ...}``);
- Python (``.py``): a file defining ``up(db)`` (a ``pymongo`` Database) and optionally ``down(db)``.

Files are named ``V<version>__<description>.<ext>`` (as Flyway and ``postgresql_migrate``), versions
compared numerically (``V1_10`` after ``V1_9``). Every migration is loaded and checked before the first
one runs. The changelog collection ``dualboot_changelog`` of the database holds one document per applied
migration with its checksum (sha256 of the file); an applied migration whose file changed afterwards
is an error, as is a pending migration older than an applied one.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.util
import json
import os
import re
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from ansible_collections.dualboot.db.plugins.module_utils.errors import IntegrityError, InvalidInput, OperationFailed
from ansible_collections.dualboot.db.plugins.module_utils.mongo_dump import (
    mongo_error_text,
    refuse_default_entry,
    translate_mongo_errors,
    validate_database_name,
)
from ansible_collections.dualboot.db.plugins.module_utils.mongodb import MongoConnection, connect

try:
    from bson import json_util
    from bson.codec_options import CodecOptions
    from bson.json_util import RELAXED_JSON_OPTIONS
    from pymongo import errors as mongo_errors
except ImportError:  # pragma: no cover - the module reports the missing pymongo first
    json_util = CodecOptions = RELAXED_JSON_OPTIONS = mongo_errors = None

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML comes with ansible-core
    yaml = None

CHANGELOG = "dualboot_changelog"
FILE_NAME = re.compile(r"^V(?P<version>\d+(?:[._]\d+)*)__(?P<description>[^.].*)\.(?P<ext>yml|yaml|json|py)$")
EXTENSIONS = (".yml", ".yaml", ".json", ".py")

# operation -> (required arguments, optional arguments); create_index passes any other key to MongoDB as an index option.
OPERATIONS: dict[str, tuple[tuple, tuple]] = {
    "update_many": (("collection", "update"), ("filter", "upsert", "array_filters")),
    "update_one": (("collection", "update"), ("filter", "upsert", "array_filters")),
    "rename_collection": (("collection", "to"), ("drop_target",)),
    "create_index": (("collection", "keys"), ()),
    "drop_index": (("collection", "name"), ()),
    "drop_collection": (("collection",), ()),
}


@dataclass
class Migration:
    id: str
    version: tuple
    version_text: str
    description: str
    kind: str
    source: str
    checksum: str
    operations: list = field(default_factory=list)
    up: Callable | None = None
    down: Callable | None = None


def parse_version(text: str) -> tuple:
    return tuple(int(p) for p in re.split(r"[._]", text))


def ejson(value: Any) -> Any:
    """Turn relaxed Extended JSON inside YAML/JSON values (``{$oid: ...}``, ``{$date: ...}``) into BSON values."""
    if isinstance(value, dict):
        converted = {k: ejson(v) for k, v in value.items()}
        return json_util.object_hook(converted, RELAXED_JSON_OPTIONS)
    if isinstance(value, list):
        return [ejson(v) for v in value]
    return value


def _check_operation(op: Any, where: str) -> dict:
    if not isinstance(op, dict) or len(op) != 1:
        raise InvalidInput(f"{where} is not a one-key mapping like {{update_many: {{...}}}}.", hint=f"operations: {', '.join(OPERATIONS)}.")
    ((name, args),) = op.items()
    if name not in OPERATIONS:
        raise InvalidInput(
            f"{where}: unknown operation {name!r}.", hint=f"use one of {', '.join(OPERATIONS)}, or a Python migration with up(db)."
        )
    if not isinstance(args, dict):
        raise InvalidInput(
            f"{where}: the arguments of {name} must be a mapping.", hint="see docs/mongodb.md for each operation's arguments."
        )
    required, optional = OPERATIONS[name]
    missing = [k for k in required if k not in args]
    if missing:
        raise InvalidInput(f"{where}: {name} lacks {', '.join(missing)}.", hint="see docs/mongodb.md for each operation's arguments.")
    if name != "create_index":
        unknown = sorted(set(args) - set(required) - set(optional))
        if unknown:
            raise InvalidInput(
                f"{where}: {name} does not take {', '.join(unknown)}.", hint=f"{name} takes {', '.join(required + optional)}."
            )
    if not isinstance(args["collection"], str) or not args["collection"]:
        raise InvalidInput(f"{where}: collection must be a non-empty string.", hint="name the collection the operation works on.")
    if name.startswith("update_"):
        upd = args["update"]
        if not (isinstance(upd, dict) and upd and all(str(k).startswith("$") for k in upd)) and not (isinstance(upd, list) and upd):
            raise InvalidInput(
                f"{where}: update must be a mapping of update operators ($set, $rename, ...) or an aggregation pipeline list.",
                hint="replacing whole documents is not a migration operation; use $set/$unset/$rename or a Python migration.",
            )
        if not isinstance(args.get("filter", {}), dict):
            raise InvalidInput(
                f"{where}: filter must be a mapping.", hint="write the filter as a query document, e.g. {userName: {$exists: true}}."
            )
    if (
        name == "create_index"
        and not (isinstance(args["keys"], dict) and args["keys"])
        and not (isinstance(args["keys"], list) and args["keys"])
    ):
        raise InvalidInput(
            f"{where}: keys must be a mapping {{field: 1}} or a list of [field, direction] pairs.", hint="give the index key in order."
        )
    return {"op": name, "args": ejson(args)}


def _load_declarative(path: str, text: str, where: str) -> tuple[str, list]:
    try:
        data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise InvalidInput(
            f"{where} is not valid {'JSON' if path.endswith('.json') else 'YAML'}: {exc}", hint="fix the file's syntax."
        ) from None
    description = ""
    if isinstance(data, dict):
        description = str(data.get("description") or "")
        unknown = sorted(set(data) - {"description", "operations"})
        if unknown:
            raise InvalidInput(
                f"{where} has unknown key(s) {', '.join(unknown)}.", hint="a declarative migration holds description and operations."
            )
        data = data.get("operations")
    if not isinstance(data, list) or not data:
        raise InvalidInput(f"{where} has no operations list.", hint="write operations: [{update_many: {...}}, ...].")
    return description, [_check_operation(op, f"{where} operation {i + 1}") for i, op in enumerate(data)]


def _load_python(path: str, mid: str) -> tuple[Callable, Callable | None]:
    spec = importlib.util.spec_from_file_location(f"dualboot_migration_{re.sub(r'[^0-9A-Za-z_]', '_', mid)}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - any error in user code is reported as a bad migration
        raise InvalidInput(f"migration {path} cannot be loaded: {type(exc).__name__}: {exc}", hint="fix the Python file.") from None
    up = getattr(module, "up", None)
    down = getattr(module, "down", None)
    if not callable(up):
        raise InvalidInput(f"migration {path} defines no up(db) function.", hint="define def up(db): ... (and optionally down(db)).")
    if down is not None and not callable(down):
        raise InvalidInput(f"migration {path}: down is not a function.", hint="define def down(db): ... or leave it out.")
    return up, down


def load_directory(path: str) -> list:
    if not os.path.isdir(path):
        raise InvalidInput(
            f"migrations path {path} is not a directory.", hint="point path at the directory holding V<version>__<description> files."
        )
    found = []
    for fname in sorted(os.listdir(path)):
        if not fname.endswith(EXTENSIONS):
            continue
        m = FILE_NAME.match(fname)
        if not m:
            raise InvalidInput(
                f"migration file {fname} is not named V<version>__<description>.<ext>.", hint="rename it, e.g. V2__nest_user_name.yml."
            )
        full = os.path.join(path, fname)
        with open(full, "rb") as f:
            data = f.read()
        mid = fname.rsplit(".", 1)[0]
        mig = Migration(
            id=mid,
            version=parse_version(m["version"]),
            version_text=m["version"],
            description=m["description"].replace("_", " "),
            kind="python" if m["ext"] == "py" else "declarative",
            source=full,
            checksum=hashlib.sha256(data).hexdigest(),
        )
        if mig.kind == "python":
            mig.up, mig.down = _load_python(full, mid)
        else:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidInput(f"migration {full} is not UTF-8 text.", hint="save it as UTF-8.") from None
            desc, mig.operations = _load_declarative(full, text, f"migration {fname}")
            mig.description = desc or mig.description
        found.append(mig)
    return found


def load_inline(items: list) -> list:
    found = []
    for i, item in enumerate(items or []):
        where = f"migrations[{i}]"
        if not isinstance(item, dict) or "version" not in item or "operations" not in item:
            raise InvalidInput(f"{where} needs version and operations.", hint="write {version: '3', description: ..., operations: [...]}.")
        vtext = str(item["version"])
        if not re.fullmatch(r"\d+(?:[._]\d+)*", vtext):
            raise InvalidInput(f"{where}: version {vtext!r} is not numeric like 3 or 3.1.", hint="use digits separated by . or _.")
        desc = str(item.get("description") or "inline")
        canonical = json.dumps({"description": desc, "operations": item["operations"]}, sort_keys=True, default=str)
        ops = _load_declarative(".json", json.dumps({"operations": item["operations"]}, default=str), where)[1]
        found.append(
            Migration(
                id=f"V{vtext}__{re.sub(r'[^0-9A-Za-z]+', '_', desc).strip('_') or 'inline'}",
                version=parse_version(vtext),
                version_text=vtext,
                description=desc,
                kind="declarative",
                source="inline",
                checksum=hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
                operations=ops,
            )
        )
    return found


def load_migrations(path: str | None, inline: list | None) -> list:
    migs = (load_directory(path) if path else []) + load_inline(inline or [])
    if not migs:
        raise InvalidInput("no migrations given.", hint="set path to a migrations directory or migrations to a list.")
    seen: dict[tuple, str] = {}
    for m in migs:
        if m.version in seen:
            raise InvalidInput(
                f"migrations {seen[m.version]} and {m.id} have the same version {m.version_text}.",
                hint="give each migration its own version.",
            )
        seen[m.version] = m.id
    return sorted(migs, key=lambda m: m.version)


def apply_operation(db: Any, op: dict) -> dict:
    name, args = op["op"], op["args"]
    coll = db.get_collection(args["collection"])
    out: dict[str, Any] = {"op": name, "collection": args["collection"]}
    if name in ("update_many", "update_one"):
        func = coll.update_many if name == "update_many" else coll.update_one
        kw = {"upsert": bool(args.get("upsert", False))}
        if args.get("array_filters"):
            kw["array_filters"] = args["array_filters"]
        r = func(args.get("filter") or {}, args["update"], **kw)
        out.update(matched=r.matched_count, modified=r.modified_count, upserted=r.upserted_id is not None)
    elif name == "rename_collection":
        kw = {"dropTarget": True} if args.get("drop_target") else {}
        coll.rename(args["to"], **kw)
        out["to"] = args["to"]
    elif name == "create_index":
        keys = list(args["keys"].items()) if isinstance(args["keys"], dict) else [tuple(k) for k in args["keys"]]
        options = {k: v for k, v in args.items() if k not in ("collection", "keys")}
        out["name"] = coll.create_index(keys, **options)
    elif name == "drop_index":
        coll.drop_index(args["name"])
        out["name"] = args["name"]
    elif name == "drop_collection":
        db.drop_collection(args["collection"])
    return out


def _changelog(db: Any) -> dict:
    return {d["_id"]: d for d in db.get_collection(CHANGELOG).find({})}


@translate_mongo_errors
def migrate(
    conn: MongoConnection,
    database: str,
    path: str | None = None,
    inline: list | None = None,
    boot_record_path: str | None = None,
    force: bool = False,
    check_mode: bool = False,
) -> dict:
    validate_database_name(database)
    migrations = load_migrations(path, inline)
    default_name = refuse_default_entry(boot_record_path, conn, database, force, "migrate")
    client = connect(conn)
    started = time.monotonic()
    try:
        db = client.get_database(database, codec_options=CodecOptions())
        applied = _changelog(db)
        for m in migrations:
            rec = applied.get(m.id)
            if rec is not None and rec.get("checksum") != m.checksum:
                raise IntegrityError(
                    f"migration {m.id} was changed after it was applied to {database!r} "
                    f"(checksum {str(rec.get('checksum'))[:12]}… recorded, {m.checksum[:12]}… now).",
                    hint="never edit an applied migration: restore its original content and add a new migration for the change.",
                )
        pending = [m for m in migrations if m.id not in applied]
        newest = max((tuple(r.get("version_tuple") or ()) for r in applied.values()), default=())
        late = [m.id for m in pending if newest and m.version < newest]
        if late:
            raise InvalidInput(
                f"migration(s) {', '.join(late)} are older than the newest applied migration of {database!r}.",
                hint="give new migrations a higher version than every applied one.",
            )
        known = {m.id for m in migrations}
        unknown = sorted(k for k in applied if k not in known)
        before = sorted(applied)
        result: dict[str, Any] = {
            "database": database,
            "changelog": CHANGELOG,
            "already_applied": sorted(k for k in applied if k in known),
            "pending": [m.id for m in pending],
            "unknown_applied": unknown,
            "warnings": [f"applied migration(s) {', '.join(unknown)} have no file any more"] if unknown else [],
        }
        if default_name:
            result["warnings"].append(f"migrating the default entry {default_name!r} because force is true")
        if check_mode or not pending:
            result.update(
                changed=bool(pending),
                applied=[],
                diff={"before": {"applied": before}, "after": {"applied": sorted(before + result["pending"])}},
                msg=(
                    f"would apply {len(pending)} migration(s): {', '.join(result['pending'])}"
                    if pending
                    else f"{database!r} is up to date ({len(before)} applied)"
                ),
            )
            return result
        done = []
        for m in pending:
            done.append(_apply(db, m, done))
        seconds = time.monotonic() - started
        result.update(
            changed=True,
            applied=done,
            seconds=round(seconds, 3),
            diff={"before": {"applied": before}, "after": {"applied": sorted(before + [d["id"] for d in done])}},
            msg=f"applied {len(done)} migration(s) to {database!r} in {seconds:.1f} s: {', '.join(d['id'] for d in done)}",
        )
        return result
    finally:
        client.close()


def _apply(db: Any, m: Migration, done: list) -> dict:
    started = time.monotonic()
    steps: list = []
    try:
        if m.kind == "python":
            m.up(db)
        else:
            for op in m.operations:
                steps.append(apply_operation(db, op))
    except Exception as exc:  # noqa: BLE001 - a failing migration, whatever the cause, is reported with its context
        where = f" at operation {len(steps) + 1} ({m.operations[len(steps)]['op']})" if m.kind == "declarative" else ""
        text = mongo_error_text(exc) if isinstance(exc, mongo_errors.PyMongoError) else f"{type(exc).__name__}: {exc}"
        before = ", ".join(d["id"] for d in done) or "none"
        raise OperationFailed(
            f"migration {m.id} failed{where}: {text}. Applied in this run before it: {before}; {m.id} may be partly applied.",
            hint="fix the migration and stage the entry again from the backup (the default entry is not touched by a stage).",
            migration=m.id,
            completed_operations=steps,
            traceback=traceback.format_exc().splitlines()[-6:],
        ) from None
    seconds = time.monotonic() - started
    entry = {
        "_id": m.id,
        "version": m.version_text,
        "version_tuple": list(m.version),
        "description": m.description,
        "kind": m.kind,
        "source": m.source if m.source == "inline" else os.path.basename(m.source),
        "checksum": m.checksum,
        "applied_at": datetime.datetime.now(datetime.timezone.utc),
        "seconds": round(seconds, 3),
        "operations": steps,
    }
    db.get_collection(CHANGELOG).insert_one(entry)
    return {"id": m.id, "kind": m.kind, "description": m.description, "seconds": round(seconds, 3), "operations": steps}
