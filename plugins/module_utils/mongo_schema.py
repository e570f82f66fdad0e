# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Schema diff of two MongoDB databases: collections, indexes, options, validators and sampled shapes.

Exact changes (``changes``) come from the catalog: collections and views, indexes (identified by their
key, order significant; names ignored; ``v``, ``ns``, ``background`` and false flags dropped),
collection options and validators (``validationLevel: strict`` / ``validationAction: error`` are the
defaults and dropped).

Shape changes (``shape_changes``) come from sampled documents: for every field path (``a.b``; array
elements as ``a[]``) the BSON types seen and in what fraction of the sampled documents. A path that
appears or disappears, a set of types that changes, or a presence that changes between "all sampled
documents" and "some" is reported; frequency jitter within "some" is not (samples differ by chance).
Sampling uses ``$sample`` where the server has it and else a deterministic scan of the first N
documents by ``_id`` (FerretDB).

Records follow the engine-neutral shape of ``expectations.py`` with ``schema`` = the source database
name and ``kind`` in collection/index/option/validator/field.
"""

from __future__ import annotations

import datetime
import time
import uuid
from typing import Any

from ansible_collections.dualboot.db.plugins.module_utils import expectations
from ansible_collections.dualboot.db.plugins.module_utils.errors import IntegrityError, InvalidInput
from ansible_collections.dualboot.db.plugins.module_utils.mongo_dump import (
    NOT_SUPPORTED_CODES,
    normalize_value,
    server_info,
    translate_mongo_errors,
    validate_database_name,
)
from ansible_collections.dualboot.db.plugins.module_utils.mongodb import MongoConnection, connect

try:
    from bson import json_util
    from bson.binary import Binary
    from bson.code import Code
    from bson.codec_options import CodecOptions
    from bson.dbref import DBRef
    from bson.decimal128 import Decimal128
    from bson.int64 import Int64
    from bson.json_util import RELAXED_JSON_OPTIONS
    from bson.max_key import MaxKey
    from bson.min_key import MinKey
    from bson.objectid import ObjectId
    from bson.regex import Regex
    from bson.timestamp import Timestamp
    from pymongo import errors as mongo_errors
except ImportError:  # pragma: no cover - the modules report the missing pymongo first
    json_util = Binary = Code = CodecOptions = DBRef = Decimal128 = Int64 = RELAXED_JSON_OPTIONS = None
    MaxKey = MinKey = ObjectId = Regex = Timestamp = mongo_errors = None

# Collections dualboot.db itself keeps in a database (the migration changelog); never part of a diff.
INTERNAL_COLLECTIONS = frozenset({"dualboot_changelog"})
VALIDATION_KEYS = ("validator", "validationLevel", "validationAction")
VALIDATION_DEFAULTS = {"validationLevel": "strict", "validationAction": "error"}
INDEX_DROPPED = ("v", "ns", "name", "key", "background")
INDEX_FALSE_DEFAULTS = ("unique", "sparse", "hidden")


def bson_type(value: Any) -> str:
    """The MongoDB ``$type`` alias of a decoded BSON value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, Int64):
        return "long"
    if isinstance(value, int):
        return "int" if -(2**31) <= value < 2**31 else "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, DBRef):
        return "object"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, ObjectId):
        return "objectId"
    if isinstance(value, datetime.datetime):
        return "date"
    if isinstance(value, (Binary, bytes, uuid.UUID)):
        return "binData"
    if isinstance(value, Decimal128):
        return "decimal"
    if isinstance(value, Timestamp):
        return "timestamp"
    if isinstance(value, Regex) or hasattr(value, "pattern"):
        return "regex"
    if isinstance(value, Code):
        return "javascriptWithScope" if value.scope else "javascript"
    if isinstance(value, MinKey):
        return "minKey"
    if isinstance(value, MaxKey):
        return "maxKey"
    return type(value).__name__


def _walk(value: Any, path: str, seen: set) -> None:
    seen.add((path, bson_type(value)))
    if isinstance(value, dict) and not isinstance(value, DBRef):
        for k, v in value.items():
            _walk(v, f"{path}.{k}" if path else k, seen)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _walk(v, f"{path}[]", seen)


def shape_of(docs: list) -> dict:
    """``{path: {"types": {type: fraction}, "fraction": fraction}}`` over ``docs``.

    ``fraction`` is the share of documents holding the path at all; each type's share counts a
    document once however many array elements have that type.
    """
    types: dict[str, dict[str, int]] = {}
    present: dict[str, int] = {}
    for doc in docs:
        seen: set = set()
        for k, v in doc.items():
            _walk(v, k, seen)
        for path, t in seen:
            types.setdefault(path, {}).setdefault(t, 0)
            types[path][t] += 1
        for path in {p for p, _t in seen}:
            present[path] = present.get(path, 0) + 1
    n = len(docs) or 1
    return {
        p: {"types": {t: round(c / n, 4) for t, c in sorted(ts.items())}, "fraction": round(present[p] / n, 4)}
        for p, ts in sorted(types.items())
    }


def _presence(fraction: float) -> str:
    return "all" if fraction >= 1.0 else "some"


def index_signature(key: dict) -> str:
    """The default MongoDB name of an index with this key (``a_1_b_-1``): stable, readable, order-aware."""

    def d(v: Any) -> str:
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        return str(v)

    return "_".join(f"{k}_{d(v)}" for k, v in key.items())


def normalize_index(spec: dict) -> tuple[str, dict]:
    attrs = {}
    for k, v in spec.items():
        if k in INDEX_DROPPED:
            continue
        if k in INDEX_FALSE_DEFAULTS and v is False:
            continue
        attrs[k] = _plain(v)
    return index_signature(spec["key"]), attrs


def _plain(value: Any) -> Any:
    """JSON-friendly form of a BSON value for results (relaxed Extended JSON)."""
    return (
        json_util.loads(json_util.dumps(value, json_options=RELAXED_JSON_OPTIONS))
        if not isinstance(value, (str, int, float, bool, type(None)))
        else value
    )


def _sample(coll: Any, size: int) -> tuple[list, str]:
    try:
        return list(coll.aggregate([{"$sample": {"size": size}}])), "$sample"
    except mongo_errors.OperationFailure as exc:
        if exc.code not in NOT_SUPPORTED_CODES:
            raise
    return list(coll.find().sort("_id", 1).limit(size)), "first documents by _id"


def snapshot(db: Any, sample_size: int, only: list | None = None, shapes: bool = True) -> dict:
    """Catalog and sampled shape of every collection and view of ``db``."""
    result: dict[str, dict] = {}
    methods = set()
    for info in db.list_collections():
        name = info["name"]
        if name in INTERNAL_COLLECTIONS or (name.startswith("system.") and name != "system.js"):
            continue
        if only and name not in only:
            continue
        options = dict(info.get("options") or {})
        validation = {k: options.pop(k) for k in VALIDATION_KEYS if k in options}
        for k, default in VALIDATION_DEFAULTS.items():
            if validation.get(k) == default:
                validation.pop(k)
        if options.get("capped") is False:
            options.pop("capped")
        entry = {
            "type": info.get("type") or "collection",
            "options": options,
            "validation": validation,
            "indexes": {},
            "shape": {},
            "sampled": 0,
        }
        if entry["type"] != "view":
            coll = db.get_collection(name)
            for spec in coll.list_indexes():
                sig, attrs = normalize_index(dict(spec))
                entry["indexes"][sig] = attrs
            if shapes and sample_size > 0:
                docs, method = _sample(coll, sample_size)
                methods.add(method)
                entry["shape"] = shape_of(docs)
                entry["sampled"] = len(docs)
        result[name] = entry
    return {"collections": result, "sample_method": ", ".join(sorted(methods)) or None}


def _rec(
    kind: str,
    schema: str,
    name: str,
    change: str,
    attribute: str | None = None,
    before: Any = None,
    after: Any = None,
    hazards: list | None = None,
) -> dict:
    return {
        "kind": kind,
        "schema": schema,
        "name": name,
        "change": change,
        "attribute": attribute,
        "before": _plain(before),
        "after": _plain(after),
        "hazards": hazards or [],
    }


def diff_snapshots(src: dict, tgt: dict, schema: str) -> tuple[list, list]:
    """(exact changes, shape changes) turning ``src`` into ``tgt``."""
    changes: list[dict] = []
    shape_changes: list[dict] = []
    s_colls, t_colls = src["collections"], tgt["collections"]
    for name in sorted(set(s_colls) | set(t_colls)):
        s, t = s_colls.get(name), t_colls.get(name)
        if s is None:
            changes.append(_rec("collection", schema, name, "added", after={"type": t["type"], "options": t["options"]}))
            continue
        if t is None:
            changes.append(
                _rec("collection", schema, name, "removed", before={"type": s["type"], "options": s["options"]}, hazards=["deletes_data"])
            )
            continue
        if s["type"] != t["type"]:
            changes.append(_rec("collection", schema, name, "modified", "type", s["type"], t["type"], ["breaks_dependents"]))
        for key in sorted(set(s["options"]) | set(t["options"])):
            a, b = s["options"].get(key), t["options"].get(key)
            if normalize_value(a) != normalize_value(b):
                change = "added" if key not in s["options"] else "removed" if key not in t["options"] else "modified"
                changes.append(_rec("option", schema, name, change, key, a, b))
        for key in VALIDATION_KEYS:
            a, b = s["validation"].get(key), t["validation"].get(key)
            if normalize_value(a) != normalize_value(b):
                change = "added" if a is None else "removed" if b is None else "modified"
                hazards = ["may_fail_on_existing_data"] if key == "validator" and b is not None else []
                changes.append(_rec("validator", schema, name, change, key, a, b, hazards))
        for sig in sorted(set(s["indexes"]) | set(t["indexes"])):
            a, b = s["indexes"].get(sig), t["indexes"].get(sig)
            iname = f"{name}.{sig}"
            if a is None:
                hazards = ["builds_index"]
                if b.get("unique"):
                    hazards.append("may_fail_on_existing_data")
                changes.append(_rec("index", schema, iname, "added", after=b, hazards=hazards))
            elif b is None:
                changes.append(_rec("index", schema, iname, "removed", before=a))
            else:
                for key in sorted(set(a) | set(b)):
                    if normalize_value(a.get(key)) != normalize_value(b.get(key)):
                        changes.append(_rec("index", schema, iname, "modified", key, a.get(key), b.get(key)))
        shape_changes.extend(_diff_shape(schema, name, s, t))
    return changes, shape_changes


def _diff_shape(schema: str, coll: str, s: dict, t: dict) -> list:
    if not s["sampled"] or not t["sampled"]:
        return []  # an empty side has no shape to compare
    out = []
    for path in sorted(set(s["shape"]) | set(t["shape"])):
        a, b = s["shape"].get(path), t["shape"].get(path)
        name = f"{coll}.{path}"
        before = {"types": a["types"], "presence": _presence(a["fraction"]), "fraction": a["fraction"]} if a else None
        after = {"types": b["types"], "presence": _presence(b["fraction"]), "fraction": b["fraction"]} if b else None
        if a is None:
            out.append(_rec("field", schema, name, "added", after=after))
        elif b is None:
            out.append(_rec("field", schema, name, "removed", before=before, hazards=["deletes_data"]))
        elif set(a["types"]) != set(b["types"]):
            out.append(_rec("field", schema, name, "modified", "types", before, after, ["breaks_dependents"]))
        elif before["presence"] != after["presence"]:
            out.append(_rec("field", schema, name, "modified", "presence", before, after))
    return out


def describe(record: dict) -> str:
    attr = f" {record['attribute']}" if record.get("attribute") else ""
    return f"{record['kind']} {record['name']}{attr} {record['change']}"


@translate_mongo_errors
def schema_diff(
    source: MongoConnection,
    target: MongoConnection,
    source_database: str,
    target_database: str,
    collections: list | None = None,
    sample_size: int = 1000,
    shapes: bool = True,
    expect: list | None = None,
    ignore: list | None = None,
) -> dict:
    """Diff two databases; with ``expect`` set, raise :class:`IntegrityError` unless the changes are exactly the expected ones."""
    validate_database_name(source_database, "source_database")
    validate_database_name(target_database, "target_database")
    if sample_size < 0:
        raise InvalidInput(
            "sample_size must be 0 or more.", hint="set sample_size to the documents to sample per collection (0 skips shapes)."
        )
    ignore_m = expectations.normalize(ignore, "ignore")
    expect_m = expectations.normalize(expect, "expect") if expect is not None else None
    started = time.monotonic()
    sclient = connect(source)
    tclient = connect(target)
    try:
        plain = CodecOptions()
        s_db = sclient.get_database(source_database, codec_options=plain)
        t_db = tclient.get_database(target_database, codec_options=plain)
        for label, client, dbname in (("source", sclient, source_database), ("target", tclient, target_database)):
            if not client[dbname].list_collection_names():
                raise InvalidInput(
                    f"{label} database {dbname!r} has no collections (it does not exist or is empty).",
                    hint=f"check {label}_database; MongoDB creates databases implicitly, so a typo looks like an empty database.",
                )
        src = snapshot(s_db, sample_size, collections, shapes)
        tgt = snapshot(t_db, sample_size, collections, shapes)
        changes, shape_changes = diff_snapshots(src, tgt, source_database)
        changes, ignored = expectations.apply_ignore(changes, ignore_m)
        shape_changes, ignored_shape = expectations.apply_ignore(shape_changes, ignore_m)
        everything = changes + shape_changes
        result = {
            "changed": False,
            "identical": not everything,
            "counts": {
                "added": sum(r["change"] == "added" for r in everything),
                "removed": sum(r["change"] == "removed" for r in everything),
                "modified": sum(r["change"] == "modified" for r in everything),
                "ignored": len(ignored) + len(ignored_shape),
            },
            "source": {
                "database": source_database,
                "server": source.label(),
                "version": server_info(sclient)["version"],
                "sample_method": src["sample_method"],
            },
            "target": {
                "database": target_database,
                "server": target.label(),
                "version": server_info(tclient)["version"],
                "sample_method": tgt["sample_method"],
            },
            "collections": {"source": len(src["collections"]), "target": len(tgt["collections"])},
            "changes": changes,
            "shape_changes": shape_changes,
            "ignored": len(ignored) + len(ignored_shape),
            "sample_size": sample_size,
            "seconds": round(time.monotonic() - started, 3),
        }
        summary = f"{len(changes)} exact change(s), {len(shape_changes)} shape change(s) from {source_database!r} to {target_database!r}"
        if expect_m is not None:
            outcome = expectations.check(everything, expect_m)
            lines = expectations.failure_lines(outcome, describe)
            result["expectations"] = {"met": outcome["met"], "problems": lines}
            if not outcome["met"]:
                raise IntegrityError(
                    f"schema diff does not match the expected changes ({summary}): " + "; ".join(lines),
                    hint="fix the migration, or the expect list if the change is intended.",
                    **{k: v for k, v in result.items() if k != "changed"},
                )
            summary += ", as expected"
        result["msg"] = summary
        return result
    finally:
        sclient.close()
        tclient.close()
