# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Data verification between two MongoDB databases: counts, content hashes, query assertions.

The content hash of a collection is order-independent and byte-exact (see ``mongo_dump.ContentHash``):
equal hashes mean the same set of BSON documents, field order and numeric types included. It is the
same value ``mongodb_backup`` writes in its manifest.

Checks (``checks``), each with a ``name``:

- one side with ``expect_count``: ``{target: {collection, filter}, expect_count: 0}``;
- both sides without ``field``: the two filtered counts must be equal (and equal ``expect_count`` if set);
- both sides with ``field``: documents are joined on ``key`` (default ``_id``) and the source field
  must equal the target field for every key - a cross-database assertion such as "every
  ``user.name`` equals the old ``userName``". Keys present on one side only are mismatches too.
"""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any

from ansible_collections.dualboot.db.plugins.module_utils.errors import IntegrityError, InvalidInput
from ansible_collections.dualboot.db.plugins.module_utils.mongo_dump import ContentHash, translate_mongo_errors, validate_database_name
from ansible_collections.dualboot.db.plugins.module_utils.mongo_migrate import ejson
from ansible_collections.dualboot.db.plugins.module_utils.mongo_schema import INTERNAL_COLLECTIONS
from ansible_collections.dualboot.db.plugins.module_utils.mongodb import MongoConnection, connect

try:
    import bson
    from bson import json_util
    from bson.codec_options import CodecOptions
    from bson.json_util import RELAXED_JSON_OPTIONS
except ImportError:  # pragma: no cover - the module reports the missing pymongo first
    bson = json_util = CodecOptions = RELAXED_JSON_OPTIONS = None

MISSING = object()
EXAMPLES = 5
SIDES = ("source", "target")


def _data_collections(db: Any) -> dict:
    out = {}
    for info in db.list_collections():
        name = info["name"]
        if name in INTERNAL_COLLECTIONS or (name.startswith("system.") and name != "system.js"):
            continue
        out[name] = info.get("type") or "collection"
    return out


def collection_digest(db: Any, name: str, content: bool) -> dict:
    coll = db.get_collection(name)
    started = time.monotonic()
    if not content:
        return {"count": coll.count_documents({}), "hash": None, "seconds": round(time.monotonic() - started, 3)}
    h = ContentHash()
    for batch in coll.find_raw_batches({}):
        h.add_batch(batch, f"{db.name}.{name}")
    return {"count": h.count, "hash": h.hexdigest(), "bytes": h.bytes, "seconds": round(time.monotonic() - started, 3)}


def _get_path(doc: Any, path: str) -> Any:
    cur = doc
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return MISSING
    return cur


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    return a == b


def _key_bytes(value: Any) -> bytes:
    return bson.encode({"k": value})


def _show(value: Any) -> str:
    return json_util.dumps(value, json_options=RELAXED_JSON_OPTIONS)


def _side_spec(check: dict, side: str, where: str) -> dict | None:
    spec = check.get(side)
    if spec is None:
        return None
    if not isinstance(spec, dict) or not isinstance(spec.get("collection"), str) or not spec["collection"]:
        raise InvalidInput(f"{where}.{side} needs a collection name.", hint=f"write {side}: {{collection: users, filter: {{...}}}}.")
    unknown = sorted(set(spec) - {"collection", "filter", "field"})
    if unknown:
        raise InvalidInput(f"{where}.{side} has unknown key(s) {', '.join(unknown)}.", hint="a side takes collection, filter and field.")
    flt = spec.get("filter") or {}
    if not isinstance(flt, dict):
        raise InvalidInput(f"{where}.{side}.filter must be a mapping (a query document).", hint="e.g. filter: {active: true}.")
    return {"collection": spec["collection"], "filter": ejson(flt), "field": spec.get("field")}


def validate_checks(checks: list) -> list:
    out = []
    names = set()
    for i, check in enumerate(checks or []):
        where = f"checks[{i}]"
        if not isinstance(check, dict) or not check.get("name"):
            raise InvalidInput(f"{where} needs a name.", hint="give every check a name that says what it proves.")
        unknown = sorted(set(check) - {"name", "source", "target", "key", "expect_count"})
        if unknown:
            raise InvalidInput(
                f"{where} has unknown key(s) {', '.join(unknown)}.", hint="a check takes name, source, target, key and expect_count."
            )
        if check["name"] in names:
            raise InvalidInput(f"{where}: check name {check['name']!r} is used twice.", hint="give each check its own name.")
        names.add(check["name"])
        s, t = _side_spec(check, "source", where), _side_spec(check, "target", where)
        if not s and not t:
            raise InvalidInput(f"{where} ({check['name']}) has neither source nor target.", hint="say which side(s) the check queries.")
        expect = check.get("expect_count")
        if expect is not None and (isinstance(expect, bool) or not isinstance(expect, int)):
            raise InvalidInput(f"{where}.expect_count must be an integer.", hint="e.g. expect_count: 0.")
        if bool(s) != bool(t) and expect is None:
            raise InvalidInput(
                f"{where} ({check['name']}) queries one side only and has no expect_count.", hint="add expect_count, or query both sides."
            )
        fields = [x.get("field") for x in (s, t) if x]
        if any(fields) and not (s and t and all(fields)):
            raise InvalidInput(
                f"{where} ({check['name']}): field comparisons need a field on both source and target.",
                hint="set source.field and target.field.",
            )
        out.append({"name": str(check["name"]), "source": s, "target": t, "key": check.get("key") or "_id", "expect_count": expect})
    return out


def run_check(check: dict, dbs: dict) -> dict:
    s, t = check["source"], check["target"]
    result: dict[str, Any] = {"name": check["name"]}
    if s and t and s["field"]:
        return _join_check(check, dbs, result)
    counts = {}
    for side in SIDES:
        spec = check[side]
        if spec:
            counts[side] = dbs[side].get_collection(spec["collection"]).count_documents(spec["filter"])
            result[f"{side}_count"] = counts[side]
    problems = []
    if len(counts) == 2 and counts["source"] != counts["target"]:
        problems.append(f"source has {counts['source']} matching document(s), target {counts['target']}")
    if check["expect_count"] is not None:
        for side, n in counts.items():
            if n != check["expect_count"]:
                problems.append(f"{side} has {n} matching document(s), expected {check['expect_count']}")
    result["passed"] = not problems
    result["problems"] = problems
    return result


def _join_check(check: dict, dbs: dict, result: dict) -> dict:
    s, t, key = check["source"], check["target"], check["key"]
    src_values: dict[bytes, tuple] = {}
    for doc in dbs["source"].get_collection(s["collection"]).find(s["filter"], {key: 1, s["field"]: 1}):
        k = _get_path(doc, key)
        src_values[_key_bytes(k)] = (k, _get_path(doc, s["field"]))
    only_target, different, compared = [], [], 0
    for doc in dbs["target"].get_collection(t["collection"]).find(t["filter"], {key: 1, t["field"]: 1}):
        k = _get_path(doc, key)
        found = src_values.pop(_key_bytes(k), None)
        if found is None:
            only_target.append(k)
            continue
        compared += 1
        if not _same(found[1], _get_path(doc, t["field"])):
            different.append(k)
    only_source = [v[0] for v in src_values.values()]
    problems = []
    if different:
        problems.append(f"{len(different)} document(s) where target {t['field']} differs from source {s['field']}")
    if only_source:
        problems.append(f"{len(only_source)} {key} value(s) only in the source")
    if only_target:
        problems.append(f"{len(only_target)} {key} value(s) only in the target")
    if check["expect_count"] is not None and compared != check["expect_count"]:
        problems.append(f"{compared} document(s) joined, expected {check['expect_count']}")
    result.update(
        {
            "passed": not problems,
            "problems": problems,
            "compared": compared,
            "different": len(different),
            "only_source": len(only_source),
            "only_target": len(only_target),
            "examples": {
                "different": [_show(k) for k in different[:EXAMPLES]],
                "only_source": [_show(k) for k in only_source[:EXAMPLES]],
                "only_target": [_show(k) for k in only_target[:EXAMPLES]],
            },
        }
    )
    return result


def _collection_plan(requested: list | None, src: dict, tgt: dict) -> list:
    if requested is None:
        names = sorted(n for n in set(src) | set(tgt) if src.get(n) != "view" and tgt.get(n) != "view")
        return [{"name": n, "content": True} for n in names]
    plan = []
    for i, item in enumerate(requested):
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InvalidInput(
                f"collections[{i}] must be a name or {{name, content}}.", hint="e.g. collections: [orders, {name: users, content: false}]."
            )
        unknown = sorted(set(item) - {"name", "content"})
        if unknown:
            raise InvalidInput(f"collections[{i}] has unknown key(s) {', '.join(unknown)}.", hint="an entry takes name and content.")
        plan.append({"name": item["name"], "content": bool(item.get("content", True))})
    return plan


@translate_mongo_errors
def compare(
    source: MongoConnection,
    target: MongoConnection,
    source_database: str,
    target_database: str,
    collections: list | None = None,
    checks: list | None = None,
    jobs: int = 4,
) -> dict:
    """Compare two databases; raise :class:`IntegrityError` (carrying the full report) when anything differs."""
    validate_database_name(source_database, "source_database")
    validate_database_name(target_database, "target_database")
    if jobs < 1:
        raise InvalidInput("jobs must be at least 1.", hint="set jobs to the number of collections hashed in parallel.")
    checked = validate_checks(checks or [])
    started = time.monotonic()
    sclient = connect(source)
    tclient = connect(target)
    try:
        plain = CodecOptions()
        dbs = {
            "source": sclient.get_database(source_database, codec_options=plain),
            "target": tclient.get_database(target_database, codec_options=plain),
        }
        present = {side: _data_collections(db) for side, db in dbs.items()}
        for side, dbname in (("source", source_database), ("target", target_database)):
            if not present[side]:
                raise InvalidInput(
                    f"{side} database {dbname!r} has no collections (it does not exist or is empty).",
                    hint=f"check {side}_database; MongoDB creates databases implicitly, so a typo looks like an empty database.",
                )
        plan = _collection_plan(collections, present["source"], present["target"])
        rows: dict[str, dict] = {p["name"]: {"name": p["name"], "content": p["content"]} for p in plan}
        tasks = {}
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
            for p in plan:
                for side in SIDES:
                    if p["name"] in present[side]:
                        tasks[pool.submit(collection_digest, dbs[side], p["name"], p["content"])] = (p["name"], side)
                    else:
                        rows[p["name"]][f"{side}_count"] = None
            for fut in concurrent.futures.as_completed(tasks):
                name, side = tasks[fut]
                d = fut.result()
                rows[name][f"{side}_count"] = d["count"]
                if d["hash"] is not None:
                    rows[name][f"{side}_hash"] = d["hash"]
                rows[name][f"{side}_seconds"] = d["seconds"]
        differences = []
        for row in rows.values():
            sc, tc = row.get("source_count"), row.get("target_count")
            row["counts_equal"] = sc == tc and sc is not None
            if sc is None or tc is None:
                differences.append(f"collection {row['name']!r} missing on the {'source' if sc is None else 'target'}")
            elif sc != tc:
                differences.append(f"collection {row['name']!r}: {sc} document(s) in source, {tc} in target")
            if row["content"]:
                row["content_equal"] = row["counts_equal"] and row.get("source_hash") == row.get("target_hash")
                if row["counts_equal"] and not row["content_equal"]:
                    differences.append(f"collection {row['name']!r}: same count ({sc}) but different content")
        check_results = [run_check(c, dbs) for c in checked]
        for c in check_results:
            if not c["passed"]:
                differences.append(f"check {c['name']!r} failed: {'; '.join(c['problems'])}")
        seconds = time.monotonic() - started
        docs = sum((r.get("source_count") or 0) + (r.get("target_count") or 0) for r in rows.values())
        result = {
            "changed": False,
            "equal": not differences,
            "source": {"database": source_database, "server": source.label()},
            "target": {"database": target_database, "server": target.label()},
            "collections": [rows[p["name"]] for p in plan],
            "checks": check_results,
            "differences": differences,
            "documents_read": docs,
            "seconds": round(seconds, 3),
            "documents_per_second": round(docs / seconds, 1) if seconds > 0 else 0.0,
        }
        summary = (
            f"{len(plan)} collection(s) and {len(check_results)} check(s) compared between {source_database!r} and {target_database!r}"
        )
        if differences:
            raise IntegrityError(
                f"{summary}: {len(differences)} difference(s): " + "; ".join(differences[:10]),
                hint="inspect collections/checks in the result; the staged entry is not what the checks expect.",
                **{k: v for k, v in result.items() if k != "changed"},
            )
        result["msg"] = f"{summary}: all equal"
        return result
    finally:
        sclient.close()
        tclient.close()
