# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Diff two schema snapshots (see pg_catalog): change records, hazards, possible renames,
a human summary and suggested forward SQL (source -> target) in dependency order.

Change record::

    {"kind": "column", "schema": "public", "name": "users.user_name", "change": "removed",
     "attribute": None, "before": "character varying(255)", "after": None, "hazards": ["deletes_data", ...]}

``modified`` records carry one differing ``attribute`` each. Sub-objects of a table (column,
constraint, trigger, policy) are named ``table.object``.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ansible_collections.dualboot.db.plugins.module_utils import expectations
from ansible_collections.dualboot.db.plugins.module_utils.errors import IntegrityError
from ansible_collections.dualboot.db.plugins.module_utils.pg_catalog import (
    KINDS,
    LAZY_KINDS,
    CatalogReader,
    Lazy,
    column_definition,
    differing_column_tables,
    qident,
    qname,
)
from ansible_collections.dualboot.db.plugins.module_utils.postgresql import PgConnection, from_params

HAZARDS = (
    "deletes_data",
    "rewrites_table",
    "access_exclusive_lock",
    "builds_index",
    "may_fail_on_existing_data",
    "breaks_dependents",
    "invalid_index",
)
HAZARD_TEXT = {
    "deletes_data": "deletes data",
    "rewrites_table": "rewrites the table",
    "access_exclusive_lock": "takes an ACCESS EXCLUSIVE lock",
    "builds_index": "builds an index",
    "may_fail_on_existing_data": "may fail on existing data",
    "breaks_dependents": "breaks dependent objects",
    "invalid_index": "its index is INVALID in the target: a failed or cancelled concurrent build, not used, enforces nothing",
}
CHANGE_ORDER = {"removed": 0, "added": 1, "modified": 2}
KIND_ORDER = {k: i for i, k in enumerate(KINDS)}
SUB_KINDS = ("column", "constraint", "trigger", "rule", "policy")

# Type changes PostgreSQL makes without rewriting the table (binary coercible, or a wider limit).
_VARCHAR = re.compile(r"character varying(?:\((\d+)\))?$")
_NUMERIC = re.compile(r"numeric(?:\((\d+),(\d+)\))?$")


def default_multirange(schema: str, name: str) -> str:
    """The multirange type PostgreSQL 14+ creates with range type ``name`` (makeMultirangeTypeName())."""
    i = name.find("range")
    return qname(schema, f"{name[:i]}multirange{name[i + 5 :]}" if i >= 0 else f"{name}_multirange")


def diff(source: dict, target: dict) -> list[dict]:
    """Change records turning ``source`` into ``target``, sorted stably."""
    records = []
    for kind in KINDS:
        a = source["objects"].get(kind, {})
        b = target["objects"].get(kind, {})
        for key in a.keys() - b.keys():
            o = a[key]
            records.append(_record(o, "removed", None, o["info"].get("definition") or _brief(o), None))
        for key in b.keys() - a.keys():
            o = b[key]
            records.append(_record(o, "added", None, None, o["info"].get("definition") or _brief(o)))
        both = a.differing(b) if isinstance(a, Lazy) and isinstance(b, Lazy) else a.keys() & b.keys()
        for key in both:
            oa, ob = a[key], b[key]
            if oa["attrs"] == ob["attrs"]:
                continue
            for attr in sorted(oa["attrs"].keys() | ob["attrs"].keys()):
                va, vb = oa["attrs"].get(attr), ob["attrs"].get(attr)
                if va != vb:
                    records.append(_record(ob, "modified", attr, va, vb))
    redefined = {(r["kind"], r["schema"], r["name"]) for r in records if r["attribute"] == "definition"}
    records = [
        r
        for r in records
        if not _inherited_elsewhere(r, source, target)
        and not _made_by_the_server_version(r, source, target)
        # a view's columns are part of its definition: on their own only when renamed (ALTER VIEW ... RENAME COLUMN)
        and not (r["attribute"] == "columns" and (r["kind"], r["schema"], r["name"]) in redefined)
    ]
    for r in records:
        r["hazards"] = hazards_of(r, source, target)
    flag_possible_renames(records, source, target)
    return sort_records(records)


def _made_by_the_server_version(r: dict, source: dict, target: dict) -> bool:
    """An extension at each server's default version across majors (CREATE EXTENSION of a restore or stage
    installs the new server's default: pg_trgm 1.5 on 13 is 1.6 on 15) is no change."""
    if r["kind"] != "extension" or r["attribute"] != "version":
        return False
    if source.get("server_version", 0) // 10000 == target.get("server_version", 0) // 10000:
        return False
    key = (r["schema"], r["name"])
    sides = [snap["objects"]["extension"].get(key) for snap in (source, target)]
    return all(o is not None and o["info"].get("default_version") for o in sides)


def _inherited_elsewhere(r: dict, source: dict, target: dict) -> bool:
    """Whether an added or removed column is really there on both sides, inherited on one of them.

    A table attached as a partition (or made to INHERIT) keeps its columns, now inherited from the parent;
    detached (NO INHERIT), they become its own. Columns are reported on the table that defines them, so
    such a column looks added or removed: it is neither (the table's ``partition_of``/``inherits`` change is).
    """
    if r["kind"] != "column" or r["change"] == "modified":
        return False
    table, col = r["name"].split(".", 1)
    other = target if r["change"] == "removed" else source
    t = other["objects"]["table"].get((r["schema"], table))
    return t is not None and col in t["info"]["columns"]


def _brief(obj: dict) -> str:
    if obj["kind"] == "column":
        return column_definition(obj["attrs"])
    return obj["kind"]


def _record(obj: dict, change: str, attribute: str | None, before: Any, after: Any) -> dict:
    return {
        "kind": obj["kind"],
        "schema": obj["schema"],
        "name": obj["name"],
        "change": change,
        "attribute": attribute,
        "before": before,
        "after": after,
        "hazards": [],
    }


_PLANNED = {("constraint", "definition"), ("index", "predicate"), ("view", "definition"), ("materialized_view", "definition")}


def without_reprints(records: list[dict], readers: list, source: dict, target: dict) -> list[dict]:
    """Drop definition changes that only differ in how PostgreSQL printed them (see CatalogReader.planned)."""
    todo = [r for r in records if r["change"] == "modified" and (r["kind"], r["attribute"]) in _PLANNED]
    if not todo:
        return records
    sides = [[(r["kind"], snap["objects"][r["kind"]][(r["schema"], r["name"])]) for r in todo] for snap in (source, target)]
    a, b = (reader.planned(items) for reader, items in zip(readers, sides))
    same = {id(r) for r, pa, pb in zip(todo, a, b) if pa is not None and pa == pb}
    return [r for r in records if id(r) not in same]


def sort_records(records: list[dict]) -> list[dict]:
    return sorted(
        records,
        key=lambda r: (KIND_ORDER.get(r["kind"], 99), r["schema"], r["name"], CHANGE_ORDER[r["change"]], r["attribute"] or ""),
    )


# --- hazards -------------------------------------------------------------------------------------


def _type_change_rewrites(before: str, after: str) -> tuple[bool, bool]:
    """(rewrites_table, may_fail) for ALTER COLUMN TYPE before -> after."""
    vb, va = _VARCHAR.match(before or ""), _VARCHAR.match(after or "")
    if vb and (after == "text" or (va and (va.group(1) is None or (vb.group(1) and int(va.group(1)) >= int(vb.group(1)))))):
        return False, False
    if vb and va:  # shorter limit: checked against every row, no rewrite
        return False, True
    if before == "text" and va and va.group(1) is None:
        return False, False
    nb, na = _NUMERIC.match(before or ""), _NUMERIC.match(after or "")
    if nb and na and na.group(1) is None:
        return False, False
    if nb and na and nb.group(1) and int(na.group(2)) == int(nb.group(2)) and int(na.group(1)) >= int(nb.group(1)):
        return False, False
    return True, True


def _dependents(snapshot: dict, qualified: str) -> list[str]:
    """Views of a snapshot that read relation ``schema.name`` (quoted form as in pg_catalog)."""
    out = []
    for kind in ("view", "materialized_view"):
        for o in snapshot["objects"].get(kind, {}).values():
            if qualified in o["info"].get("depends_on", []):
                out.append(f"{o['schema']}.{o['name']}")
    return out


def _referencing_fks(snapshot: dict, schema: str, table: str) -> list[dict]:
    q = qname(schema, table)
    cons = snapshot["objects"].get("constraint", {})
    if isinstance(cons, Lazy):
        return [cons[k] for k in cons.where(6, {q})]
    return [o for o in cons.values() if o["info"].get("references") == q]


def _indexes_on(objects: dict, relations: set) -> list:
    """Keys of the indexes on ``relations`` ((schema, name) pairs)."""
    idx = objects["index"]
    if not relations:
        return []
    if isinstance(idx, Lazy):
        names = {r[1] for r in relations}
        return [k for k in idx.where(0, names) if (k[0], idx.rows[k][0][0]) in relations]
    return [k for k, o in idx.items() if (k[0], o["attrs"]["table"]) in relations]


def _in_new_table(r: dict, source: dict, target: dict) -> bool:
    """Whether a record is about a sub-object or index of a table the same diff creates (no rows, no readers)."""
    if r["kind"] in SUB_KINDS:
        table = (r["schema"], r["name"].split(".", 1)[0])
    elif r["kind"] == "index" and (r["schema"], r["name"]) in target["objects"]["index"]:
        table = (r["schema"], target["objects"]["index"][(r["schema"], r["name"])]["attrs"]["table"])
    else:
        return False
    return table in target["objects"]["table"] and table not in source["objects"]["table"]


def _column_readers(snapshot: dict, schema: str, name: str) -> list:
    """Views, rules, SQL-standard function bodies and other tables' foreign keys that read a column (pg_depend)."""
    return snapshot.get("column_dependents", {}).get((schema, name), [])


def _domain_has_constraints(snapshot: dict, typ: str) -> bool:
    """Whether a column type is a domain with a CHECK or NOT NULL (adding such a column checks, so rewrites, every row)."""
    domains = {qname(o["schema"], o["name"]): o["attrs"] for o in snapshot["objects"].get("domain", {}).values()}
    seen = set()
    while typ in domains and typ not in seen:
        seen.add(typ)
        if domains[typ]["constraints"] or domains[typ]["not_null"]:
            return True
        typ = domains[typ]["base_type"]
    return False


def _enum_renamed(before: list, after: list) -> bool:
    """Labels renamed in place (same count, same positions, the rest unchanged): ALTER TYPE ... RENAME VALUE."""
    return len(before) == len(after) and all(a == b or (a not in after and b not in before) for a, b in zip(before, after))


def _invalid(r: dict, target: dict) -> bool:
    """Whether a record's object is an index (or a constraint's index) that is INVALID in the target."""
    if r["change"] == "removed" or r["kind"] not in ("index", "constraint"):
        return False
    o = target["objects"][r["kind"]].get((r["schema"], r["name"]))
    return bool(o) and (o["attrs"].get("valid") is False or o["attrs"].get("index_valid") is False)


def hazards_of(r: dict, source: dict, target: dict) -> list[str]:
    change, attr = r["change"], r["attribute"]
    if _invalid(r, target) and attr != "comment":
        return ["invalid_index"]
    if attr in ("comment", "owner", "grants", "column_comments") or (change == "added" and _in_new_table(r, source, target)):
        return []
    h = _hazards(r, source, target)
    return [x for x in HAZARDS if x in h]


_REMOVAL_BREAKS = ("function", "procedure", "sequence", "domain", "composite_type", "range_type", "extension", "collation",
                   "text_search_configuration")  # fmt: skip


def _hazards(r: dict, source: dict, target: dict) -> set[str]:
    kind, change, attr = r["kind"], r["change"], r["attribute"]
    by_kind = {"table": _table_hazards, "column": _column_hazards, "constraint": _constraint_hazards, "index": _index_hazards}
    if kind in by_kind:
        return by_kind[kind](r, source, target)
    h: set[str] = set()
    if kind == "schema" and change == "removed":
        h |= {"deletes_data", "breaks_dependents"}
    elif kind in ("view", "materialized_view"):
        if change in ("removed", "modified") and _dependents(source, qname(r["schema"], r["name"])):
            h.add("breaks_dependents")
        if change == "modified" and attr == "definition":
            h.add("access_exclusive_lock")
    elif kind in _REMOVAL_BREAKS and change == "removed":
        h.add("breaks_dependents")
    elif kind == "enum":
        if change == "removed":
            h.add("breaks_dependents")
        elif attr == "labels":
            before, after = r["before"] or [], r["after"] or []
            if _enum_renamed(before, after):
                pass  # a catalog change only: stored values keep their place
            elif [x for x in before if x in after] != [x for x in after if x in before] or set(before) - set(after):
                h |= {"may_fail_on_existing_data", "rewrites_table", "breaks_dependents"}
    elif kind == "domain" and change == "modified" and attr in ("not_null", "constraints", "base_type"):
        h.add("may_fail_on_existing_data")
    elif kind in ("trigger", "rule") and change != "added":
        h.add("access_exclusive_lock")
    elif kind == "policy":
        h.add("access_exclusive_lock")
    return h


def _table_hazards(r: dict, source: dict, target: dict) -> set[str]:
    change, attr = r["change"], r["attribute"]
    h: set[str] = set()
    if change == "removed":
        h |= {"deletes_data", "access_exclusive_lock"}
        if _dependents(source, qname(r["schema"], r["name"])) or _referencing_fks(source, r["schema"], r["name"]):
            h.add("breaks_dependents")
    elif change == "modified":
        h.add("access_exclusive_lock")
        if attr == "persistence":
            h.add("rewrites_table")
        if attr in ("kind", "partition_key"):
            h |= {"rewrites_table", "may_fail_on_existing_data"}
        elif attr in ("partition_of", "partition_bound") and r["after"] is not None:
            h.add("may_fail_on_existing_data")  # ATTACH PARTITION scans the table for rows outside the bound
        if attr == "row_security":
            h.add("breaks_dependents")
    return h


def _column_hazards(r: dict, source: dict, target: dict) -> set[str]:
    change, attr = r["change"], r["attribute"]
    deps = _column_readers(source, r["schema"], r["name"])
    h: set[str] = {"access_exclusive_lock"}
    if change == "removed":
        h.add("deletes_data")
        if deps:
            h.add("breaks_dependents")
    elif change == "added":
        col = target["objects"]["column"][(r["schema"], r["name"])]
        obj = col["attrs"]
        if obj.get("generated") or obj.get("identity") or col["info"].get("volatile_default"):
            h.add("rewrites_table")
        if _domain_has_constraints(target, obj["type"]):
            h |= {"rewrites_table", "may_fail_on_existing_data"}
        if not obj["nullable"] and obj.get("default") is None and not obj.get("identity") and not obj.get("generated"):
            h.add("may_fail_on_existing_data")
    elif attr == "type":
        rewrites, may_fail = _type_change_rewrites(r["before"], r["after"])
        if rewrites:
            h.add("rewrites_table")
        if may_fail:
            h.add("may_fail_on_existing_data")
        if deps:
            h.add("breaks_dependents")
    elif attr == "collation":
        h.add("rewrites_table")
    elif attr == "nullable" and r["after"] is False:
        h.add("may_fail_on_existing_data")
    elif attr == "generated":
        h |= {"rewrites_table", "deletes_data"}
    elif attr == "identity" and r["before"] is None:
        h.add("may_fail_on_existing_data")
    return h


def _constraint_hazards(r: dict, source: dict, target: dict) -> set[str]:
    change, attr = r["change"], r["attribute"]
    src = source["objects"]["constraint"].get((r["schema"], r["name"]))
    dst = target["objects"]["constraint"].get((r["schema"], r["name"]))
    if change == "modified" and attr == "validated":
        return {"may_fail_on_existing_data"} if r["after"] else set()
    if change == "modified" and attr in ("deferrable", "initially_deferred"):
        return {"access_exclusive_lock"}
    h: set[str] = set()
    if src:  # removed, or dropped and added again
        h.add("access_exclusive_lock")
        table = r["name"].split(".", 1)[0]
        if src["info"]["contype"] in ("p", "u") and _referencing_fks(source, r["schema"], table):
            h.add("breaks_dependents")
    if dst and change in ("added", "modified"):
        contype = dst["info"]["contype"]
        if contype != "f":
            h.add("access_exclusive_lock")
        if dst["attrs"]["validated"]:
            h.add("may_fail_on_existing_data")
        if contype in ("p", "u", "x"):
            h |= {"builds_index", "may_fail_on_existing_data"}
    return h


def _index_hazards(r: dict, source: dict, target: dict) -> set[str]:
    if r["change"] == "removed":
        return {"access_exclusive_lock"}
    h = {"builds_index"}
    if r["change"] == "modified":
        h.add("access_exclusive_lock")
    if target["objects"]["index"][(r["schema"], r["name"])]["attrs"]["unique"]:
        h.add("may_fail_on_existing_data")
    return h


# --- possible renames ------------------------------------------------------------------------------


def flag_possible_renames(records: list[dict], source: dict, target: dict) -> list[dict]:
    """Pair removed and added columns of one table that may be a rename; annotate both records.

    A pair is flagged when the added column kept the removed one's attribute number (it was renamed
    in place — the target is a copy of the source), or when it is the only removed/added pair of
    that table with the same type.
    """
    by_table: dict = {}
    for r in records:
        if r["kind"] == "column" and r["change"] in ("removed", "added"):
            table = r["name"].split(".", 1)[0]
            by_table.setdefault((r["schema"], table), {"removed": [], "added": []})[r["change"]].append(r)
    pairs = []
    for (schema, _table), groups in sorted(by_table.items()):
        removed, added = groups["removed"], groups["added"]
        for rem in list(removed):
            src = source["objects"]["column"][(schema, rem["name"])]
            match = None
            for add in added:
                dst = target["objects"]["column"][(schema, add["name"])]
                if dst["info"]["attnum"] == src["info"]["attnum"]:
                    match = add
                    break
            if match is None:
                same = [a for a in added if target["objects"]["column"][(schema, a["name"])]["attrs"]["type"] == src["attrs"]["type"]]
                if len(same) == 1 and len(removed) == 1:
                    match = same[0]
            if match is None:
                continue
            added.remove(match)
            dst = target["objects"]["column"][(schema, match["name"])]
            pair = {
                "kind": "column",
                "schema": schema,
                "table": src["info"]["table"],
                "before": src["info"]["column"],
                "after": dst["info"]["column"],
                "type_before": src["attrs"]["type"],
                "type_after": dst["attrs"]["type"],
            }
            rem["possible_rename"] = {"to": pair["after"]}
            match["possible_rename"] = {"from": pair["before"]}
            pairs.append(pair)
    # Tables: a removed and an added table with the same columns (names and types).
    removed_t = [r for r in records if r["kind"] == "table" and r["change"] == "removed"]
    added_t = [r for r in records if r["kind"] == "table" and r["change"] == "added"]
    for rem in removed_t:
        sig = _table_signature(source, rem["schema"], rem["name"])
        for add in added_t:
            if "possible_rename" not in add and _table_signature(target, add["schema"], add["name"]) == sig and sig:
                rem["possible_rename"] = {"to": f"{add['schema']}.{add['name']}"}
                add["possible_rename"] = {"from": f"{rem['schema']}.{rem['name']}"}
                pairs.append({"kind": "table", "schema": rem["schema"], "before": rem["name"], "after": add["name"]})
                break
    return pairs


def _table_signature(snapshot: dict, schema: str, table: str) -> list:
    cols = snapshot["objects"]["column"]
    names = snapshot["objects"]["table"][(schema, table)]["info"]["columns"]
    return [(n, cols[(schema, f"{table}.{n}")]["attrs"]["type"]) for n in names if (schema, f"{table}.{n}") in cols]


def possible_renames(records: list[dict]) -> list[dict]:
    """The flagged pairs as ``{kind, schema, before, after}`` (for the result)."""
    out = []
    for r in records:
        to = r.get("possible_rename", {}).get("to")
        if to and r["change"] == "removed":
            if r["kind"] == "column":
                table = r["name"].split(".", 1)[0]
                out.append({"kind": "column", "schema": r["schema"], "table": table, "before": r["name"].split(".", 1)[1], "after": to})
            else:
                out.append({"kind": r["kind"], "schema": r["schema"], "before": r["name"], "after": to})
    return out


# --- summary ---------------------------------------------------------------------------------------


def _short(value: Any) -> str:
    if isinstance(value, list):
        value = "[" + ", ".join(str(v) for v in value) + "]"
    text = "none" if value is None else str(value)
    text = " ".join(text.split())
    return text if len(text) <= 80 else text[:77] + "..."


def describe(r: dict) -> str:
    """One line for a change record, e.g. ``table public.users: column user_name removed (deletes data)``."""
    kind = r["kind"].replace("_", " ")
    if r["kind"] in SUB_KINDS:
        table, sub = r["name"].split(".", 1)
        head = f"table {r['schema']}.{table}: {kind} {sub}"
    else:
        head = f"{kind} {r['schema']}.{r['name']}" if r["kind"] not in ("schema",) else f"schema {r['name']}"
    if r["change"] == "modified":
        text = f"{head} {r['attribute']} changed: {_short(r['before'])} -> {_short(r['after'])}"
    elif r["change"] == "added":
        text = f"{head} added"
        if r["kind"] == "column":
            text += f" ({_short(r['after'])})"
    else:
        text = f"{head} removed"
    rename = r.get("possible_rename")
    if rename:
        text += f" [possible rename {'to ' + rename['to'] if 'to' in rename else 'from ' + rename['from']}]"
    if r["hazards"]:
        text += " (" + ", ".join(HAZARD_TEXT[h] for h in r["hazards"]) + ")"
    return text


def summary(records: list[dict]) -> list[str]:
    return [describe(r) for r in records]


# --- suggested SQL ---------------------------------------------------------------------------------

SQL_KINDS = (
    "schema",
    "extension",
    "enum (added labels)",
    "domain",
    "composite_type",
    "sequence",
    "function",
    "procedure",
    "table (create, drop, persistence, row security, options)",
    "column",
    "constraint",
    "index",
    "view",
    "materialized_view",
    "trigger",
    "policy",
    "comment",
)


def suggested_sql(records: list[dict], source: dict, target: dict) -> list[str]:
    """Forward statements turning source into target, in dependency order.

    Changes that SQL cannot express safely (partitioning changes, removed enum labels, changed
    generation expressions) become ``-- review by hand:`` comments.
    """
    g = _SqlBuilder(records, source, target)
    return g.build()


def views_to_recreate(records: list[dict], src: dict) -> set:
    """(kind, key) of views to drop and create again: changed, added or removed ones, and every view
    that (transitively) reads a relation whose columns change type or disappear, or that is recreated.

    ``src`` is the source snapshot's ``objects``.
    """
    touched: set[str] = set()
    result: set = set()
    for r in records:
        if r["kind"] in ("view", "materialized_view") and not (
            r["change"] == "modified" and r["attribute"] in ("comment", "column_comments", "owner", "grants")
        ):
            result.add((r["kind"], (r["schema"], r["name"])))
            if r["change"] != "added":
                touched.add(qname(r["schema"], r["name"]))
        if r["kind"] == "column" and (r["change"] == "removed" or r["attribute"] in ("type", "collation")):
            touched.add(qname(r["schema"], r["name"].split(".", 1)[0]))
        if r["kind"] == "table" and r["change"] == "removed":
            touched.add(qname(r["schema"], r["name"]))
    changed = True
    while changed:
        changed = False
        for kind in ("view", "materialized_view"):
            for k, o in src[kind].items():
                if (kind, k) not in result and touched & set(o["info"].get("depends_on", [])):
                    result.add((kind, k))
                    touched.add(qname(o["schema"], o["name"]))
                    changed = True
    return result


def candidates(source: dict, target: dict) -> dict:
    """Keys per lazily read kind whose raw values differ or that exist on one side only."""
    out = {}
    for kind in LAZY_KINDS:
        a, b = source["objects"][kind], target["objects"][kind]
        keys = set(a.keys() ^ b.keys())
        if isinstance(a, Lazy) and isinstance(b, Lazy):
            keys.update(a.differing(b))
        else:
            keys.update(k for k in a.keys() & b.keys() if a[k]["attrs"] != b[k]["attrs"])
        out[kind] = keys
    return out


class _SqlBuilder:
    def __init__(self, records: list[dict], source: dict, target: dict) -> None:
        self.records = records
        self.src = source["objects"]
        self.dst = target["objects"]
        self.phase: dict[str, list[str]] = {p: [] for p in _PHASES}
        self.acl_defaults = target.get("acl_defaults", {})
        self.renames = self._table_renames()

    def emit(self, phase: str, stmt: str) -> None:
        if stmt not in self.phase[phase]:
            self.phase[phase].append(stmt)

    def build(self) -> list[str]:
        recreate_views = views_to_recreate(self.records, self.src)
        for r in self.records:
            if r["change"] == "modified" and r["attribute"] == "grants":
                self._grants(r)
                continue
            if self._covered_by_rename(r):
                continue
            getattr(self, f"_sql_{r['kind']}", self._sql_unsupported)(r)
            if r["change"] == "added":
                self._privileges_of_new(r["kind"], (r["schema"], r["name"]))
        for key in sorted(
            [v for v in recreate_views if v[1] in self.src[v[0]]], key=lambda v: self.src[v[0]][v[1]]["info"]["oid"], reverse=True
        ):
            kind, k = key
            o = self.src[kind][k]
            self.emit("drop_views", f"DROP {_VIEW_WORD[kind]} IF EXISTS {qname(o['schema'], o['name'])};")
        for kind, k in sorted([v for v in recreate_views if v[1] in self.dst[v[0]]], key=lambda v: self.dst[v[0]][v[1]]["info"]["oid"]):
            self._create_view(self.dst[kind][k])
            if k in self.src[kind]:  # dropped and created again: its owner and grants are new too
                self._privileges_of_new(kind, k)
        out = []
        for p in _PHASES:
            out.extend(self.phase[p])
        if out:
            out.insert(0, "SET check_function_bodies = off;")
        return out

    # table renames: a removed and an added table flagged as a possible rename, alike in everything but the name
    def _table_renames(self) -> dict:
        """{old key: new key} of the flagged table pairs that ``ALTER TABLE ... RENAME TO`` turns into each other."""
        added = {r["possible_rename"]["from"]: (r["schema"], r["name"]) for r in self.records
                 if r["kind"] == "table" and r["change"] == "added" and "from" in r.get("possible_rename", {})}  # fmt: skip
        out = {}
        for r in self.records:
            new = added.get(f"{r['schema']}.{r['name']}") if r["kind"] == "table" and r["change"] == "removed" else None
            if new and new[0] == r["schema"] and self._alike_but_name((r["schema"], r["name"]), new):
                out[(r["schema"], r["name"])] = new
        return out

    def _alike_but_name(self, old: tuple, new: tuple) -> bool:
        """Whether table ``old`` of the source and ``new`` of the target differ by nothing but the table's name."""
        a, b = self.src["table"][old], self.dst["table"][new]
        if a["attrs"] != b["attrs"] or a["info"]["columns"] != b["info"]["columns"]:
            return False
        swap = (qname(*old), qname(*new))
        for kind in ("column", "constraint", "trigger", "rule", "policy"):
            mine = {k[1].split(".", 1)[1]: o for k, o in self._subs(self.src, kind, old)}
            theirs = {k[1].split(".", 1)[1]: o for k, o in self._subs(self.dst, kind, new)}
            if mine.keys() != theirs.keys() or any(_renamed(mine[n]["attrs"], *swap) != theirs[n]["attrs"] for n in mine):
                return False
        mine = {k: o["attrs"] for k in _indexes_on(self.src, {old}) for o in [self.src["index"][k]]}
        theirs = {k: o["attrs"] for k in _indexes_on(self.dst, {new}) for o in [self.dst["index"][k]]}
        return mine.keys() == theirs.keys() and all({**mine[k], "table": new[1]} == theirs[k] for k in mine)

    @staticmethod
    def _subs(objects: dict, kind: str, table: tuple) -> list:
        prefix = table[1] + "."
        return [(k, objects[kind][k]) for k in objects[kind].keys() if k[0] == table[0] and k[1].startswith(prefix)]

    def _column_renamed(self, r: dict) -> bool:
        """A removed and an added column flagged as a rename in place (same attribute number): RENAME COLUMN, then
        ALTER what else differs. Data kept, where DROP + ADD would lose it. Other flagged pairs stay DROP + ADD."""
        pair = r.get("possible_rename")
        if r["kind"] != "column" or not pair:
            return False
        table, col = r["name"].split(".", 1)
        old, new = (col, pair["to"]) if r["change"] == "removed" else (pair["from"], col)
        src, dst = self.src["column"].get((r["schema"], f"{table}.{old}")), self.dst["column"].get((r["schema"], f"{table}.{new}"))
        if not src or not dst or src["info"]["attnum"] != dst["info"]["attnum"]:
            return False
        if r["change"] == "removed":
            tname = qname(r["schema"], table)
            self.emit("rename_columns", f"ALTER TABLE {tname} RENAME COLUMN {qident(old)} TO {qident(new)};")
            for attr in sorted(src["attrs"].keys() | dst["attrs"].keys()):
                before, after = src["attrs"].get(attr), dst["attrs"].get(attr)
                if before != after:
                    self._sql_column({**r, "name": f"{table}.{new}", "change": "modified", "attribute": attr, "before": before,
                                      "after": after})  # fmt: skip
        return True

    def _covered_by_rename(self, r: dict) -> bool:
        """Records a table's RENAME TO accounts for: the pair itself and the sub-objects and indexes of both; and
        columns renamed in place."""
        if self._column_renamed(r):
            return True
        if not self.renames:
            return False
        new_tables = {v: k for k, v in self.renames.items()}
        if r["kind"] == "table" and (r["schema"], r["name"]) in self.renames and r["change"] == "removed":
            old, new = (r["schema"], r["name"]), self.renames[(r["schema"], r["name"])]
            self.emit("rename_tables", f"ALTER TABLE {qname(*old)} RENAME TO {qident(new[1])};")
            return True
        if r["kind"] == "table":
            return (r["schema"], r["name"]) in new_tables and r["change"] == "added"
        if r["kind"] in SUB_KINDS and r["change"] in ("added", "removed"):
            table = (r["schema"], r["name"].split(".", 1)[0])
            return table in self.renames or table in new_tables
        if r["kind"] == "index" and r["change"] == "modified" and r["attribute"] == "table":
            return (r["schema"], r["before"]) in self.renames
        return False

    def _create_view(self, o: dict) -> None:
        name = qname(o["schema"], o["name"])
        opts = f" WITH ({', '.join(o['attrs']['options'])})" if o["attrs"].get("options") else ""
        body = o["attrs"]["definition"].rstrip().rstrip(";")
        if o["kind"] == "view":
            self.emit("create_views", f"CREATE VIEW {name}{opts} AS\n{body};")
        else:
            self.emit("create_views", f"CREATE MATERIALIZED VIEW {name}{opts} AS\n{body}\nWITH DATA;")
            for k in _indexes_on(self.dst, {(o["schema"], o["name"])}):
                self.emit("create_views", self.dst["index"][k]["info"]["definition"] + ";")
        if o["attrs"].get("comment") is not None:
            self.emit("comments", f"COMMENT ON {_VIEW_WORD[o['kind']]} {name} IS {_lit(o['attrs']['comment'])};")
        self._view_column_comments(name, {}, o["attrs"].get("column_comments") or {})

    def _view_column_comments(self, name: str, before: dict, after: dict) -> None:
        for col in sorted(before.keys() | after.keys()):
            if before.get(col) != after.get(col):
                self.emit("comments", f"COMMENT ON COLUMN {name}.{qident(col)} IS {_lit(after.get(col))};")

    def _sql_unsupported(self, r: dict) -> None:
        self.emit("manual", f"-- review by hand: {describe(r)}")

    def _manual(self, r: dict) -> None:
        self._sql_unsupported(r)

    def _comment(self, r: dict, what: str) -> None:
        self.emit("comments", f"COMMENT ON {what} IS {_lit(r['after'])};")

    # owners and grants (only compared with include_owners_and_grants)
    def _grants(self, r: dict) -> None:
        key = (r["schema"], r["name"])
        on = _privilege_target(r["kind"], self.dst[r["kind"]][key])
        if on is None:
            self._manual(r)
            return
        before = r["before"] or []
        src, dst = self.src[r["kind"]].get(key), self.dst[r["kind"]][key]
        old_owner, new_owner = (src or {}).get("attrs", {}).get("owner"), dst["attrs"].get("owner")
        if old_owner and new_owner and old_owner != new_owner:
            before = [_acl_new_owner(item, old_owner, new_owner) for item in before]  # what ALTER ... OWNER TO does first
        for stmt in acl_statements(before, r["after"] or [], *on):
            self.emit("grants", stmt)

    def _privileges_of_new(self, kind: str, key: tuple) -> None:
        """Owner and grants of an object the SQL creates: from its creator's defaults to the target's."""
        o = self.dst.get(kind, {}).get(key)
        if o is None or "grants" not in o["attrs"]:
            return
        on = _privilege_target(kind, o)
        if on is None:
            return
        owner = o["attrs"].get("owner")
        if owner and kind != "column":
            self.emit("owners", f"ALTER {_object_word(kind, o)} {on[0].split(' ', 1)[1]} OWNER TO {qident(owner)};")
        start = [] if kind == "column" else self.acl_defaults.get((_ACL_KIND[kind], owner), [])
        for stmt in acl_statements(start, o["attrs"]["grants"] or [], *on):
            self.emit("grants", stmt)

    # schema / extension
    def _sql_schema(self, r: dict) -> None:
        name = qident(r["name"])
        if r["change"] == "added":
            self.emit("create_schemas", f"CREATE SCHEMA {name};")
            c = self.dst["schema"][(r["schema"], r["name"])]["attrs"].get("comment")
            if c is not None:
                self.emit("comments", f"COMMENT ON SCHEMA {name} IS {_lit(c)};")
        elif r["change"] == "removed":
            self.emit("drop_schemas", f"DROP SCHEMA {name};")
        elif r["attribute"] == "comment":
            self._comment(r, f"SCHEMA {name}")
        elif r["attribute"] == "owner":
            self.emit("owners", f"ALTER SCHEMA {name} OWNER TO {qident(r['after'])};")
        else:
            self._manual(r)

    def _sql_extension(self, r: dict) -> None:
        name = qident(r["name"])
        if r["change"] == "added":
            o = self.dst["extension"][(r["schema"], r["name"])]["attrs"]
            self.emit(
                "create_extensions",
                f"CREATE EXTENSION IF NOT EXISTS {name} WITH SCHEMA {qident(o['schema'])} VERSION {_lit(o['version'])};",
            )
        elif r["change"] == "removed":
            self.emit("drop_extensions", f"DROP EXTENSION {name};")
        elif r["attribute"] == "version":
            self.emit("create_extensions", f"ALTER EXTENSION {name} UPDATE TO {_lit(r['after'])};")
        elif r["attribute"] == "schema":
            self.emit("create_extensions", f"ALTER EXTENSION {name} SET SCHEMA {qident(r['after'])};")

    # types
    def _sql_enum(self, r: dict) -> None:
        name = qname(r["schema"], r["name"])
        if r["change"] == "added":
            labels = self.dst["enum"][(r["schema"], r["name"])]["attrs"]["labels"]
            self.emit("create_types", f"CREATE TYPE {name} AS ENUM ({', '.join(_lit(x) for x in labels)});")
            self._type_comment(r, "enum")
        elif r["change"] == "removed":
            self.emit("drop_types", f"DROP TYPE {name};")
        elif r["attribute"] == "labels":
            before, after = r["before"] or [], r["after"] or []
            if _enum_renamed(before, after):
                for old, new in zip(before, after):
                    if old != new:
                        self.emit("create_types", f"ALTER TYPE {name} RENAME VALUE {_lit(old)} TO {_lit(new)};")
                return
            if [x for x in after if x in before] != before:
                self._manual(r)
                return
            for i, label in enumerate(after):
                if label in before:
                    continue
                nxt = next((x for x in after[i + 1 :] if x in before), None)
                where = f" BEFORE {_lit(nxt)}" if nxt is not None else ""
                self.emit("create_types", f"ALTER TYPE {name} ADD VALUE {_lit(label)}{where};")
        elif r["attribute"] == "comment":
            self._comment(r, f"TYPE {name}")
        else:
            self._owner(r, "TYPE", name)

    def _sql_range_type(self, r: dict) -> None:
        name = qname(r["schema"], r["name"])
        if r["change"] == "removed":
            self.emit("drop_types", f"DROP TYPE {name};")
        elif r["change"] == "modified" and r["attribute"] == "comment":
            self._comment(r, f"TYPE {name}")
        elif r["change"] == "modified":
            self._manual(r)  # a range type cannot be altered: it would be dropped with every column of it
        else:
            a = self.dst["range_type"][(r["schema"], r["name"])]["attrs"]
            parts = [f"SUBTYPE = {a['subtype']}"]
            for key, word in (("subtype_opclass", "SUBTYPE_OPCLASS"), ("collation", "COLLATION"), ("canonical", "CANONICAL"),
                              ("subtype_diff", "SUBTYPE_DIFF"), ("multirange", "MULTIRANGE_TYPE_NAME")):  # fmt: skip
                # The default multirange name is left out: the statement then runs on PostgreSQL 13 too.
                if a.get(key) and not (key == "multirange" and a[key] == default_multirange(r["schema"], r["name"])):
                    parts.append(f"{word} = {a[key]}")
            self.emit("create_types", f"CREATE TYPE {name} AS RANGE ({', '.join(parts)});")
            self._type_comment(r, "range_type")

    def _sql_collation(self, r: dict) -> None:
        name = qname(r["schema"], r["name"])
        if r["change"] == "removed":
            self.emit("drop_types", f"DROP COLLATION {name};")
        elif r["change"] == "modified" and r["attribute"] == "comment":
            self._comment(r, f"COLLATION {name}")
        elif r["change"] == "modified":
            self._manual(r)  # a collation cannot be altered; indexes and columns using it would need rebuilding
        else:
            o = self.dst["collation"][(r["schema"], r["name"])]["attrs"]
            if o["provider"] == "icu":
                opts = f"provider = icu, locale = {_lit(o['locale'])}"
            else:
                opts = f"provider = {o['provider']}, lc_collate = {_lit(o['lc_collate'])}, lc_ctype = {_lit(o['lc_ctype'])}"
            self.emit("create_collations", f"CREATE COLLATION {name} ({opts}, deterministic = {str(o['deterministic']).lower()});")
            if o["comment"] is not None:
                self.emit("comments", f"COMMENT ON COLLATION {name} IS {_lit(o['comment'])};")

    def _sql_text_search_configuration(self, r: dict) -> None:
        name = qname(r["schema"], r["name"])
        word = f"TEXT SEARCH CONFIGURATION {name}"
        if r["change"] == "removed":
            self.emit("drop_types", f"DROP {word};")
        elif r["change"] == "modified" and r["attribute"] == "comment":
            self._comment(r, word)
        elif r["change"] == "modified" and r["attribute"] == "mappings":
            before = dict(x.split(" ", 1) for x in r["before"] or [])
            after = dict(x.split(" ", 1) for x in r["after"] or [])
            for token in sorted(before.keys() - after.keys()):
                self.emit("create_collations", f"ALTER {word} DROP MAPPING FOR {token};")
            for token in sorted(after):
                if token not in before:
                    self.emit("create_collations", f"ALTER {word} ADD MAPPING FOR {token} WITH {after[token]};")
                elif before[token] != after[token]:
                    self.emit("create_collations", f"ALTER {word} ALTER MAPPING FOR {token} WITH {after[token]};")
        elif r["change"] == "modified":
            self._manual(r)
        else:
            o = self.dst["text_search_configuration"][(r["schema"], r["name"])]["attrs"]
            self.emit("create_collations", f"CREATE {word} (PARSER = {o['parser']});")
            for mapping in o["mappings"]:
                token, dicts = mapping.split(" ", 1)
                self.emit("create_collations", f"ALTER {word} ADD MAPPING FOR {token} WITH {dicts};")
            if o["comment"] is not None:
                self.emit("comments", f"COMMENT ON {word} IS {_lit(o['comment'])};")

    def _type_comment(self, r: dict, kind: str) -> None:
        c = self.dst[kind][(r["schema"], r["name"])]["attrs"].get("comment")
        if c is not None:
            self.emit("comments", f"COMMENT ON TYPE {qname(r['schema'], r['name'])} IS {_lit(c)};")

    def _owner(self, r: dict, word: str, name: str) -> None:
        if r["attribute"] == "owner":
            self.emit("owners", f"ALTER {word} {name} OWNER TO {qident(r['after'])};")
        else:
            self._manual(r)

    def _sql_domain(self, r: dict) -> None:
        name = qname(r["schema"], r["name"])
        if r["change"] == "added":
            a = self.dst["domain"][(r["schema"], r["name"])]["attrs"]
            parts = [f"CREATE DOMAIN {name} AS {a['base_type']}"]
            if a.get("collation"):
                parts.append(f"COLLATE {a['collation']}")
            if a.get("default") is not None:
                parts.append(f"DEFAULT {a['default']}")
            if a["not_null"]:
                parts.append("NOT NULL")
            for c in a["constraints"]:
                cname, cdef = _split_named(c)
                parts.append(f"CONSTRAINT {cname} {cdef}")
            self.emit("create_types", " ".join(parts) + ";")
            self._type_comment(r, "domain")
        elif r["change"] == "removed":
            self.emit("drop_types", f"DROP DOMAIN {name};")
        elif r["attribute"] == "not_null":
            self.emit("create_types", f"ALTER DOMAIN {name} {'SET' if r['after'] else 'DROP'} NOT NULL;")
        elif r["attribute"] == "default":
            stmt = f"ALTER DOMAIN {name} SET DEFAULT {r['after']};" if r["after"] is not None else f"ALTER DOMAIN {name} DROP DEFAULT;"
            self.emit("create_types", stmt)
        elif r["attribute"] == "constraints":
            before, after = set(r["before"] or []), set(r["after"] or [])
            for c in sorted(before - after):
                self.emit("drop_types", f"ALTER DOMAIN {name} DROP CONSTRAINT {_split_named(c)[0]};")
            for c in sorted(after - before):
                cname, cdef = _split_named(c)
                self.emit("create_types", f"ALTER DOMAIN {name} ADD CONSTRAINT {cname} {cdef};")
        elif r["attribute"] == "comment":
            self._comment(r, f"DOMAIN {name}")
        else:
            self._owner(r, "DOMAIN", name)

    def _sql_composite_type(self, r: dict) -> None:
        name = qname(r["schema"], r["name"])
        if r["change"] == "added":
            attrs = self.dst["composite_type"][(r["schema"], r["name"])]["attrs"]["attributes"]
            self.emit("create_types", f"CREATE TYPE {name} AS ({', '.join(attrs)});")
            self._type_comment(r, "composite_type")
        elif r["change"] == "removed":
            self.emit("drop_types", f"DROP TYPE {name};")
        elif r["attribute"] == "attributes":
            before = dict(_split_named(x) for x in r["before"] or [])
            after = dict(_split_named(x) for x in r["after"] or [])
            for a in before:
                if a not in after:
                    self.emit("create_types", f"ALTER TYPE {name} DROP ATTRIBUTE {a};")
            for a, t in after.items():
                if a not in before:
                    self.emit("create_types", f"ALTER TYPE {name} ADD ATTRIBUTE {a} {t};")
                elif before[a] != t:
                    self.emit("create_types", f"ALTER TYPE {name} ALTER ATTRIBUTE {a} TYPE {t};")
        elif r["attribute"] == "comment":
            self._comment(r, f"TYPE {name}")
        else:
            self._owner(r, "TYPE", name)

    # sequences
    def _sql_sequence(self, r: dict) -> None:
        name = qname(r["schema"], r["name"])
        if r["change"] == "added":
            a = self.dst["sequence"][(r["schema"], r["name"])]["attrs"]
            unlogged = "UNLOGGED " if a["persistence"] == "unlogged" else ""
            self.emit(
                "create_sequences",
                f"CREATE {unlogged}SEQUENCE {name} AS {a['type']} INCREMENT BY {a['increment']} MINVALUE {a['minvalue']} "
                f"MAXVALUE {a['maxvalue']} START WITH {a['start']} CACHE {a['cache']}{' CYCLE' if a['cycle'] else ''};",
            )
            if a.get("owned_by"):
                self.emit("owned_by", f"ALTER SEQUENCE {name} OWNED BY {a['owned_by']};")
            if a.get("comment") is not None:
                self.emit("comments", f"COMMENT ON SEQUENCE {name} IS {_lit(a['comment'])};")
        elif r["change"] == "removed":
            self.emit("drop_sequences", f"DROP SEQUENCE IF EXISTS {name};")  # owned ones go with their table
        else:
            attr, v = r["attribute"], r["after"]
            clause = {
                "type": lambda: f"AS {v}",
                "start": lambda: f"START WITH {v}",
                "increment": lambda: f"INCREMENT BY {v}",
                "minvalue": lambda: f"MINVALUE {v}",
                "maxvalue": lambda: f"MAXVALUE {v}",
                "cache": lambda: f"CACHE {v}",
                "cycle": lambda: "CYCLE" if v else "NO CYCLE",
                "owned_by": lambda: f"OWNED BY {v or 'NONE'}",
            }.get(attr)
            if clause:
                self.emit("owned_by" if attr == "owned_by" else "create_sequences", f"ALTER SEQUENCE {name} {clause()};")
            elif attr == "persistence":
                self.emit("create_sequences", f"ALTER SEQUENCE {name} SET {'UNLOGGED' if v == 'unlogged' else 'LOGGED'};")
            elif attr == "comment":
                self._comment(r, f"SEQUENCE {name}")
            else:
                self._owner(r, "SEQUENCE", name)

    # functions
    def _sql_function(self, r: dict) -> None:
        src = self.src.get(r["kind"], {}).get((r["schema"], r["name"]))
        dst = self.dst.get(r["kind"], {}).get((r["schema"], r["name"]))
        word = _object_word(r["kind"], dst or src)
        sig = (dst or src)["info"]
        name = f"{qname(r['schema'], sig['proname'])}({sig['args']})"
        if r["change"] == "removed":
            self.emit("drop_functions", f"DROP {word} {name};")
            return
        if r["change"] == "modified" and r["attribute"] == "comment":
            self._comment(r, f"{word} {name}")
            return
        if r["change"] == "modified" and r["attribute"] == "owner":
            self._owner(r, word, name)
            return
        if not dst["info"]["definition"]:
            self._manual(r)
            return
        if r["change"] == "modified" and r["attribute"] == "returns":
            self.emit("drop_functions", f"DROP {word} {name};")
        self.emit("create_functions", dst["info"]["definition"].rstrip() + ";")
        if r["change"] == "added" and dst["attrs"].get("comment") is not None:
            self.emit("comments", f"COMMENT ON {word} {name} IS {_lit(dst['attrs']['comment'])};")

    _sql_procedure = _sql_function

    # tables
    def _sql_table(self, r: dict) -> None:
        name = qname(r["schema"], r["name"])
        if r["change"] == "added":
            self._create_table(self.dst["table"][(r["schema"], r["name"])])
        elif r["change"] == "removed":
            o = self.src["table"][(r["schema"], r["name"])]
            phase = "drop_child_tables" if o["attrs"]["partition_of"] or o["attrs"]["inherits"] else "drop_tables"
            self.emit(phase, f"DROP TABLE {name};")
        else:
            attr, v = r["attribute"], r["after"]
            if attr == "persistence":
                self.emit("alter_tables", f"ALTER TABLE {name} SET {'UNLOGGED' if v == 'unlogged' else 'LOGGED'};")
            elif attr == "row_security":
                self.emit("policies", f"ALTER TABLE {name} {'ENABLE' if v else 'DISABLE'} ROW LEVEL SECURITY;")
            elif attr == "force_row_security":
                self.emit("policies", f"ALTER TABLE {name} {'FORCE' if v else 'NO FORCE'} ROW LEVEL SECURITY;")
            elif attr == "options":
                before = {o.split("=", 1)[0] for o in r["before"] or []}
                after = {o.split("=", 1)[0] for o in v or []}
                if before - after:
                    self.emit("alter_tables", f"ALTER TABLE {name} RESET ({', '.join(sorted(before - after))});")
                if v:
                    self.emit("alter_tables", f"ALTER TABLE {name} SET ({', '.join(v)});")
            elif attr == "replica_identity":
                self.emit("replica_identity", f"ALTER TABLE {name} REPLICA IDENTITY {_replica_identity(v)};")
            elif attr in ("partition_of", "partition_bound"):
                self._partition_of(name, self.src["table"][(r["schema"], r["name"])], self.dst["table"][(r["schema"], r["name"])])
            elif attr == "inherits":
                for parent in r["before"] or []:
                    if parent not in (v or []):
                        self.emit("detach_partitions", f"ALTER TABLE {name} NO INHERIT {parent};")
                for parent in v or []:
                    if parent not in (r["before"] or []):
                        self.emit("attach_partitions", f"ALTER TABLE {name} INHERIT {parent};")
            elif attr == "comment":
                self._comment(r, f"TABLE {name}")
            elif attr == "owner":
                self._owner(r, "TABLE", name)
            else:
                self._manual(r)

    def _partition_of(self, name: str, src: dict, dst: dict) -> None:
        """DETACH from the source's parent and ATTACH to the target's (the table and its data stay)."""
        before, after = src["attrs"], dst["attrs"]
        if before["partition_of"]:
            self.emit("detach_partitions", f"ALTER TABLE {before['partition_of']} DETACH PARTITION {name};")
        if after["partition_of"]:
            self.emit("attach_partitions", f"ALTER TABLE {after['partition_of']} ATTACH PARTITION {name} {after['partition_bound']};")

    def _create_table(self, o: dict) -> None:
        a = o["attrs"]
        name = qname(o["schema"], o["name"])
        unlogged = "UNLOGGED " if a["persistence"] == "unlogged" else ""
        cols = self.dst["column"]
        local = [cols[(o["schema"], f"{o['name']}.{c}")] for c in o["info"]["columns"] if (o["schema"], f"{o['name']}.{c}") in cols]
        if a["partition_of"]:
            stmt = f"CREATE {unlogged}TABLE {name} PARTITION OF {a['partition_of']} {a['partition_bound']}"
            if a["partition_key"]:
                stmt += f" PARTITION BY {a['partition_key']}"
            self.emit("create_child_tables", stmt + ";")
            for c in local:
                self.emit("alter_columns", f"ALTER TABLE {name} ADD COLUMN {qident(c['info']['column'])} {column_definition(c['attrs'])};")
        else:
            defs = ",\n    ".join(f"{qident(c['info']['column'])} {column_definition(c['attrs'])}" for c in local)
            stmt = f"CREATE {unlogged}TABLE {name} (\n    {defs}\n)" if defs else f"CREATE {unlogged}TABLE {name} ()"
            if a["inherits"]:
                stmt += f" INHERITS ({', '.join(a['inherits'])})"
            if a["partition_key"]:
                stmt += f" PARTITION BY {a['partition_key']}"
            if a["options"]:
                stmt += f" WITH ({', '.join(a['options'])})"
            self.emit("create_child_tables" if a["inherits"] else "create_tables", stmt + ";")
        if a["row_security"]:
            self.emit("policies", f"ALTER TABLE {name} ENABLE ROW LEVEL SECURITY;")
        if a["force_row_security"]:
            self.emit("policies", f"ALTER TABLE {name} FORCE ROW LEVEL SECURITY;")
        if a.get("comment") is not None:
            self.emit("comments", f"COMMENT ON TABLE {name} IS {_lit(a['comment'])};")
        for c in local:
            self._column_settings(name, qident(c["info"]["column"]), c["attrs"])
            if c["attrs"].get("comment") is not None:
                self.emit("comments", f"COMMENT ON COLUMN {name}.{qident(c['info']['column'])} IS {_lit(c['attrs']['comment'])};")
        if a.get("replica_identity", "default") != "default":
            self.emit("replica_identity", f"ALTER TABLE {name} REPLICA IDENTITY {_replica_identity(a['replica_identity'])};")

    def _table_added(self, schema: str, table: str) -> bool:
        return (schema, table) in self.dst["table"] and (schema, table) not in self.src["table"]

    def _table_removed(self, schema: str, table: str) -> bool:
        return (schema, table) in self.src["table"] and (schema, table) not in self.dst["table"]

    def _sql_column(self, r: dict) -> None:
        table, col = r["name"].split(".", 1)
        tname = qname(r["schema"], table)
        c = qident(col)
        if r["change"] == "added":
            if self._table_added(r["schema"], table):
                return  # part of CREATE TABLE
            o = self.dst["column"][(r["schema"], r["name"])]
            self.emit("alter_columns", f"ALTER TABLE {tname} ADD COLUMN {c} {column_definition(o['attrs'])};")
            self._column_settings(tname, c, o["attrs"])
            if o["attrs"].get("comment") is not None:
                self.emit("comments", f"COMMENT ON COLUMN {tname}.{c} IS {_lit(o['attrs']['comment'])};")
        elif r["change"] == "removed":
            if not self._table_removed(r["schema"], table):
                self.emit("drop_columns", f"ALTER TABLE {tname} DROP COLUMN {c};")
        else:
            attr, v = r["attribute"], r["after"]
            o = self.dst["column"][(r["schema"], r["name"])]["attrs"]
            if attr in ("type", "collation"):
                coll = f" COLLATE {o['collation']}" if o.get("collation") else ""
                self.emit("alter_columns", f"ALTER TABLE {tname} ALTER COLUMN {c} TYPE {o['type']}{coll} USING {c}::{o['type']};")
            elif attr == "default":
                if v is None:  # early: a sequence the default reads may be dropped next
                    self.emit("drop_defaults", f"ALTER TABLE {tname} ALTER COLUMN {c} DROP DEFAULT;")
                else:
                    self.emit("column_defaults", f"ALTER TABLE {tname} ALTER COLUMN {c} SET DEFAULT {v};")
            elif attr == "nullable":
                self.emit("alter_columns", f"ALTER TABLE {tname} ALTER COLUMN {c} {'DROP' if v else 'SET'} NOT NULL;")
            elif attr == "identity":
                if v is None:  # early: a serial sequence created next may want the identity sequence's name
                    self.emit("drop_defaults", f"ALTER TABLE {tname} ALTER COLUMN {c} DROP IDENTITY;")
                elif r["before"] is None:
                    options = f" ({o['identity_options']})" if o.get("identity_options") else ""
                    self.emit("alter_columns", f"ALTER TABLE {tname} ALTER COLUMN {c} ADD GENERATED {v.upper()} AS IDENTITY{options};")
                else:
                    self.emit("alter_columns", f"ALTER TABLE {tname} ALTER COLUMN {c} SET GENERATED {v.upper()};")
            elif attr == "identity_options":
                if r["before"] and v:  # else set with the identity itself
                    self.emit("alter_columns", f"ALTER TABLE {tname} ALTER COLUMN {c} {_identity_set(v)};")
            elif attr == "storage":
                storage = v or self.dst["column"][(r["schema"], r["name"])]["info"]["type_storage"]
                self.emit("alter_columns", f"ALTER TABLE {tname} ALTER COLUMN {c} SET STORAGE {storage.upper()};")
            elif attr in ("statistics_target", "compression"):
                self._column_settings(tname, c, {attr: v}, reset=True)
            elif attr == "comment":
                self._comment(r, f"COLUMN {tname}.{c}")
            else:
                self._manual(r)

    def _column_settings(self, tname: str, c: str, attrs: dict, reset: bool = False) -> None:
        """SET STORAGE / STATISTICS / COMPRESSION of a column (``reset``: a None value means back to the default)."""
        if attrs.get("storage"):
            self.emit("alter_columns", f"ALTER TABLE {tname} ALTER COLUMN {c} SET STORAGE {attrs['storage'].upper()};")
        if attrs.get("statistics_target") is not None or (reset and "statistics_target" in attrs):
            target = attrs["statistics_target"]
            self.emit("alter_columns", f"ALTER TABLE {tname} ALTER COLUMN {c} SET STATISTICS {-1 if target is None else target};")
        if reset and "compression" in attrs:
            self.emit("alter_columns", f"ALTER TABLE {tname} ALTER COLUMN {c} SET COMPRESSION {attrs['compression'] or 'default'};")

    def _sql_constraint(self, r: dict) -> None:
        table, con = r["name"].split(".", 1)
        tname, cname = qname(r["schema"], table), qident(con)
        src = self.src["constraint"].get((r["schema"], r["name"]))
        dst = self.dst["constraint"].get((r["schema"], r["name"]))
        if r["change"] == "modified" and r["attribute"] == "comment":
            self._comment(r, f"CONSTRAINT {cname} ON {tname}")
            return
        if r["change"] == "modified" and r["attribute"] == "validated" and r["after"]:
            self.emit("foreign_keys", f"ALTER TABLE {tname} VALIDATE CONSTRAINT {cname};")
            return
        if dst and dst["attrs"].get("index_valid") is False:
            self.emit("manual", f"-- review by hand: the index of constraint {cname} on {tname} is INVALID in the target "
                      "(its partitions' indexes are not all attached): finish it there, then diff again")  # fmt: skip
            return
        if src and not self._table_removed(r["schema"], table):
            self.emit(
                "drop_foreign_keys" if src["info"]["contype"] == "f" else "drop_constraints",
                f"ALTER TABLE {tname} DROP CONSTRAINT {cname};",
            )
        if dst:
            phase = "foreign_keys" if dst["info"]["contype"] == "f" else "constraints"
            self.emit(phase, f"ALTER TABLE {tname} ADD CONSTRAINT {cname} {dst['info']['full']};")
            if dst["attrs"].get("comment") is not None and (
                r["change"] == "added" or src["attrs"].get("comment") != dst["attrs"]["comment"]
            ):
                self.emit("comments", f"COMMENT ON CONSTRAINT {cname} ON {tname} IS {_lit(dst['attrs']['comment'])};")

    def _sql_index(self, r: dict) -> None:
        """Indexes, and the indexes of partitions under a partitioned one.

        A new index on a partitioned table is built as pg_dump does it: ``CREATE INDEX ... ON ONLY`` the
        parent (an invalid shell), one ``CREATE INDEX`` per partition under the target's own name, and
        ``ALTER INDEX ... ATTACH PARTITION`` each, after which PostgreSQL marks the parent valid. Unlike a
        plain CREATE INDEX on the parent, this keeps the target's partition index names (so the re-diff is
        empty) and locks one partition at a time; each partition's statement can be run CONCURRENTLY by hand.
        """
        name = qname(r["schema"], r["name"])
        key = (r["schema"], r["name"])
        src, dst = self.src["index"].get(key), self.dst["index"].get(key)
        if r["change"] == "modified" and r["attribute"] == "comment":
            self._comment(r, f"INDEX {name}")
            return
        if dst and dst["attrs"]["valid"] is False:
            self.emit("manual", f"-- review by hand: index {name} is INVALID in the target (a failed or cancelled concurrent build): "
                      "build it there again (DROP INDEX, CREATE INDEX), then diff again")  # fmt: skip
            return
        if dst and dst["attrs"]["table"] in [v["name"] for v in self.dst["materialized_view"].values() if v["schema"] == r["schema"]]:
            mv = (r["schema"], dst["attrs"]["table"])
            if mv not in self.src["materialized_view"] or self._mv_recreated(mv):
                return  # created with its materialized view
        if src and dst and not self._index_rebuilt(key):
            self._index_validated_or_attached(name, src, dst)
            return
        parent = self._index_key(src["attrs"]["attached_to"]) if src and src["attrs"]["attached_to"] else None
        if src and not self._table_removed(r["schema"], src["attrs"]["table"]) and not (parent and self._index_rebuilt(parent)):
            self.emit("drop_indexes", f"DROP INDEX {name};")  # an attached partition index goes with its parent
        if dst:
            parent = self._index_key(dst["attrs"]["attached_to"]) if dst["attrs"]["attached_to"] else None
            if parent and self._table_added(r["schema"], dst["attrs"]["table"]) and parent in self.src["index"]:
                if not self._index_rebuilt(parent):
                    return  # CREATE TABLE ... PARTITION OF builds it under the parent index
            self.emit("indexes", dst["info"]["definition"] + ";")
            if parent:
                self.emit("attach_indexes", f"ALTER INDEX {dst['attrs']['attached_to']} ATTACH PARTITION {name};")
            if dst["attrs"].get("comment") is not None:
                self.emit("comments", f"COMMENT ON INDEX {name} IS {_lit(dst['attrs']['comment'])};")

    def _index_key(self, qualified: str) -> tuple | None:
        """The (schema, name) key of an index named ``schema.name`` as pg_catalog quotes it."""
        if not hasattr(self, "_index_names"):
            self._index_names = {qname(*k): k for side in (self.src, self.dst) for k in side["index"].keys()}
        return self._index_names.get(qualified)

    def _index_rebuilt(self, key: tuple) -> bool:
        """Whether the SQL drops an index of the source: removed, or changed beyond comment, validity and attachment."""
        src, dst = self.src["index"].get(key), self.dst["index"].get(key)
        if src is None:
            return False
        if dst is None:
            return True
        return any(src["attrs"][a] != dst["attrs"][a] for a in src["attrs"] if a not in ("comment", "valid", "attached_to"))

    def _index_validated_or_attached(self, name: str, src: dict, dst: dict) -> None:
        """Same definition, another validity or parent: attach it, or build an invalid plain index again."""
        if src["attrs"]["attached_to"] != dst["attrs"]["attached_to"]:
            if src["attrs"]["attached_to"] is None:
                self.emit("attach_indexes", f"ALTER INDEX {dst['attrs']['attached_to']} ATTACH PARTITION {name};")
            else:
                self.emit("manual", f"-- review by hand: index {name} is attached to {src['attrs']['attached_to']} in the source and to "
                          f"{dst['attrs']['attached_to'] or 'no index'} in the target (a partition index cannot be detached)")  # fmt: skip
        if src["attrs"]["valid"] is False and not dst["info"]["partitioned"]:
            self.emit("drop_indexes", f"DROP INDEX {name};")
            self.emit("indexes", dst["info"]["definition"] + ";")
        # a partitioned index turns valid by itself once every partition has its index attached

    def _mv_recreated(self, key: tuple) -> bool:
        return any(
            rec["kind"] == "materialized_view" and (rec["schema"], rec["name"]) == key and rec["attribute"] != "comment"
            for rec in self.records
        )

    def _sql_view(self, r: dict) -> None:
        if r["change"] == "modified" and r["attribute"] == "column_comments":
            self._view_column_comments(qname(r["schema"], r["name"]), r["before"] or {}, r["after"] or {})
        elif r["change"] == "modified" and r["attribute"] == "comment":
            self._comment(r, f"{_VIEW_WORD[r['kind']]} {qname(r['schema'], r['name'])}")
        elif r["change"] == "modified" and r["attribute"] == "owner":
            self._owner(r, _VIEW_WORD[r["kind"]], qname(r["schema"], r["name"]))
        # definitions: handled by the recreation set in build()

    _sql_materialized_view = _sql_view

    def _sql_trigger(self, r: dict) -> None:
        table, trg = r["name"].split(".", 1)
        tname = qname(r["schema"], table)
        src = self.src["trigger"].get((r["schema"], r["name"]))
        dst = self.dst["trigger"].get((r["schema"], r["name"]))
        if r["change"] == "modified" and r["attribute"] == "comment":
            self._comment(r, f"TRIGGER {qident(trg)} ON {tname}")
            return
        if r["change"] == "modified" and r["attribute"] == "enabled":
            word = {"enabled": "ENABLE", "disabled": "DISABLE", "replica": "ENABLE REPLICA", "always": "ENABLE ALWAYS"}[r["after"]]
            self.emit("triggers", f"ALTER TABLE {tname} {word} TRIGGER {qident(trg)};")
            return
        if src and not self._table_removed(r["schema"], table):
            self.emit("drop_triggers", f"DROP TRIGGER {qident(trg)} ON {tname};")
        if dst:
            self.emit("triggers", dst["info"]["definition"] + ";")
            if dst["attrs"]["enabled"] != "enabled":
                word = {"disabled": "DISABLE", "replica": "ENABLE REPLICA", "always": "ENABLE ALWAYS"}[dst["attrs"]["enabled"]]
                self.emit("triggers", f"ALTER TABLE {tname} {word} TRIGGER {qident(trg)};")

    def _sql_rule(self, r: dict) -> None:
        table, rule = r["name"].split(".", 1)
        tname = qname(r["schema"], table)
        src = self.src["rule"].get((r["schema"], r["name"]))
        dst = self.dst["rule"].get((r["schema"], r["name"]))
        if r["change"] == "modified" and r["attribute"] == "comment":
            self._comment(r, f"RULE {qident(rule)} ON {tname}")
            return
        if r["change"] == "modified" and r["attribute"] == "enabled":
            word = {"enabled": "ENABLE", "disabled": "DISABLE", "replica": "ENABLE REPLICA", "always": "ENABLE ALWAYS"}[r["after"]]
            self.emit("rules", f"ALTER TABLE {tname} {word} RULE {qident(rule)};")
            return
        if src and not self._table_removed(r["schema"], table):
            self.emit("drop_rules", f"DROP RULE {qident(rule)} ON {tname};")
        if dst:
            self.emit("rules", dst["info"]["definition"].rstrip().rstrip(";") + ";")
            if dst["attrs"]["enabled"] != "enabled":
                word = {"disabled": "DISABLE", "replica": "ENABLE REPLICA", "always": "ENABLE ALWAYS"}[dst["attrs"]["enabled"]]
                self.emit("rules", f"ALTER TABLE {tname} {word} RULE {qident(rule)};")
            if dst["attrs"]["comment"] is not None:
                self.emit("comments", f"COMMENT ON RULE {qident(rule)} ON {tname} IS {_lit(dst['attrs']['comment'])};")

    def _sql_statistics(self, r: dict) -> None:
        name = qname(r["schema"], r["name"])
        src = self.src["statistics"].get((r["schema"], r["name"]))
        dst = self.dst["statistics"].get((r["schema"], r["name"]))
        if r["change"] == "modified" and r["attribute"] != "definition":
            if r["attribute"] == "comment":
                self._comment(r, f"STATISTICS {name}")
            else:
                self.emit("statistics", f"ALTER STATISTICS {name} SET STATISTICS {-1 if r['after'] is None else r['after']};")
            return
        if src and not self._table_removed(*src["info"]["table"]):
            self.emit("drop_indexes", f"DROP STATISTICS {name};")
        if dst:
            self.emit("statistics", dst["info"]["definition"] + ";")
            if dst["attrs"]["statistics_target"] is not None:
                self.emit("statistics", f"ALTER STATISTICS {name} SET STATISTICS {dst['attrs']['statistics_target']};")
            if dst["attrs"]["comment"] is not None:
                self.emit("comments", f"COMMENT ON STATISTICS {name} IS {_lit(dst['attrs']['comment'])};")

    def _sql_policy(self, r: dict) -> None:
        table, pol = r["name"].split(".", 1)
        tname = qname(r["schema"], table)
        src = self.src["policy"].get((r["schema"], r["name"]))
        dst = self.dst["policy"].get((r["schema"], r["name"]))
        if src and not self._table_removed(r["schema"], table):
            self.emit("drop_policies", f"DROP POLICY {qident(pol)} ON {tname};")
        if dst:
            a = dst["attrs"]
            stmt = f"CREATE POLICY {qident(pol)} ON {tname} AS {'PERMISSIVE' if a['permissive'] else 'RESTRICTIVE'} FOR {a['command']}"
            stmt += " TO " + ", ".join("PUBLIC" if x == "public" else qident(x) for x in a["roles"])
            if a["using"]:
                stmt += f" USING ({a['using']})"
            if a["with_check"]:
                stmt += f" WITH CHECK ({a['with_check']})"
            self.emit("policies", stmt + ";")


_PRIVILEGES = {"r": "SELECT", "w": "UPDATE", "a": "INSERT", "d": "DELETE", "D": "TRUNCATE", "x": "REFERENCES", "t": "TRIGGER",
               "X": "EXECUTE", "U": "USAGE", "C": "CREATE", "c": "CONNECT", "T": "TEMPORARY", "s": "SET", "A": "ALTER SYSTEM",
               "m": "MAINTAIN"}  # fmt: skip
_ACL_KIND = {"schema": "n", "table": "r", "view": "r", "materialized_view": "r", "sequence": "s", "function": "f", "procedure": "f",
             "enum": "T", "composite_type": "T", "domain": "T"}  # fmt: skip


def _acl_name(text: str, i: int) -> tuple[str, int]:
    """A role name in aclitem text starting at ``i`` (double-quoted when needed); returns it and the index after it."""
    if text[i : i + 1] != '"':
        j = i
        while j < len(text) and text[j] not in "=/":
            j += 1
        return text[i:j], j
    out, j = [], i + 1
    while j < len(text):
        if text[j] == '"':
            if text[j + 1 : j + 2] == '"':
                out.append('"')
                j += 2
                continue
            return "".join(out), j + 1
        out.append(text[j])
        j += 1
    raise ValueError(f"unterminated role name in aclitem {text!r}")


def parse_aclitem(text: str) -> tuple[str, str, str]:
    """``grantee=privileges/grantor`` as (grantee, privileges, grantor); an empty grantee is PUBLIC."""
    grantee, i = _acl_name(text, 0)
    if text[i : i + 1] != "=":
        raise ValueError(f"not an aclitem: {text!r}")
    j = text.index("/", i + 1)
    grantor, _end = _acl_name(text, j + 1)
    return grantee, text[i + 1 : j], grantor


def _acl_role(name: str) -> str:
    return name if not name or re.fullmatch(r"[A-Za-z0-9_]+", name) else '"' + name.replace('"', '""') + '"'


def _acl_new_owner(item: str, old: str, new: str) -> str:
    grantee, privs, grantor = parse_aclitem(item)
    swap = {old: new}
    return f"{_acl_role(swap.get(grantee, grantee))}={privs}/{_acl_role(swap.get(grantor, grantor))}"


def _acl_privileges(items: list) -> dict[str, dict[str, bool]]:
    """grantee -> {privilege: with grant option}, over all grantors."""
    out: dict[str, dict[str, bool]] = {}
    for item in items:
        grantee, privs, _grantor = parse_aclitem(item)
        held = out.setdefault(grantee, {})
        for i, letter in enumerate(privs):
            if letter == "*":
                continue
            name = _PRIVILEGES.get(letter, letter)
            held[name] = held.get(name, False) or privs[i + 1 : i + 2] == "*"
    return out


def acl_statements(before: list, after: list, on: str, column: str | None = None) -> list[str]:
    """REVOKE and GRANT statements turning the privileges in ``before`` into those in ``after`` (aclitem texts)."""
    b, a = _acl_privileges(before), _acl_privileges(after)
    cols = f" ({qident(column)})" if column else ""
    revokes, grants = [], []
    for grantee in sorted(set(b) | set(a)):
        who = "PUBLIC" if grantee == "" else qident(grantee)
        pb, pa = b.get(grantee, {}), a.get(grantee, {})
        gone = sorted(p for p in pb if p not in pa)
        option_gone = sorted(p for p in pb if p in pa and pb[p] and not pa[p])
        new = sorted(p for p in pa if p not in pb and not pa[p])
        new_option = sorted(p for p in pa if pa[p] and not pb.get(p, False))
        if gone:
            revokes.append(f"REVOKE {', '.join(p + cols for p in gone)} ON {on} FROM {who};")
        if option_gone:
            revokes.append(f"REVOKE GRANT OPTION FOR {', '.join(p + cols for p in option_gone)} ON {on} FROM {who};")
        if new:
            grants.append(f"GRANT {', '.join(p + cols for p in new)} ON {on} TO {who};")
        if new_option:
            grants.append(f"GRANT {', '.join(p + cols for p in new_option)} ON {on} TO {who} WITH GRANT OPTION;")
    return revokes + grants


def _privilege_target(kind: str, o: dict) -> tuple[str, str | None] | None:
    """What GRANT and REVOKE name for an object (``ON ...``), and the column for column privileges."""
    schema, name = o["schema"], o["name"]
    if kind == "schema":
        return f"SCHEMA {qident(name)}", None
    if kind == "column":
        table, column = name.split(".", 1)
        return f"TABLE {qname(schema, table)}", column
    if kind in ("function", "procedure"):
        return f"ROUTINE {qname(schema, o['info']['proname'])}({o['info']['args']})", None
    word = {"table": "TABLE", "view": "TABLE", "materialized_view": "TABLE", "sequence": "SEQUENCE", "enum": "TYPE",
            "composite_type": "TYPE", "domain": "DOMAIN"}.get(kind)  # fmt: skip
    return (f"{word} {qname(schema, name)}", None) if word else None


def _object_word(kind: str, o: dict) -> str:
    """How ALTER/DROP name an object's kind (functions by their prokind)."""
    if kind in ("function", "procedure"):
        return {"a": "AGGREGATE", "p": "PROCEDURE"}.get(o["info"].get("prokind"), "FUNCTION")
    return {"schema": "SCHEMA", "view": "VIEW", "materialized_view": "MATERIALIZED VIEW", "enum": "TYPE", "composite_type": "TYPE"}.get(
        kind, kind.upper()
    )


_PHASES = (
    "rename_tables",
    "drop_policies",
    "drop_rules",
    "drop_triggers",
    "drop_views",
    "drop_foreign_keys",
    "drop_indexes",
    "drop_constraints",
    "drop_defaults",
    "drop_columns",
    "rename_columns",
    "detach_partitions",
    "drop_child_tables",
    "drop_tables",
    "drop_sequences",
    "drop_functions",
    "drop_types",
    "drop_extensions",
    "drop_schemas",
    "create_schemas",
    "create_extensions",
    "create_collations",
    "create_types",
    "create_sequences",
    "create_functions",
    "create_tables",
    "create_child_tables",
    "alter_tables",
    "attach_partitions",
    "alter_columns",
    "column_defaults",
    "owned_by",
    "constraints",
    "foreign_keys",
    "indexes",
    "attach_indexes",
    "statistics",
    "replica_identity",
    "create_views",
    "triggers",
    "rules",
    "policies",
    "comments",
    "owners",
    "grants",
    "manual",
)
_VIEW_WORD = {"view": "VIEW", "materialized_view": "MATERIALIZED VIEW"}


_IDENTITY_OPTION = re.compile(r"(START WITH|INCREMENT BY|MINVALUE|MAXVALUE|CACHE) (-?\d+)|(NO CYCLE|CYCLE)")


def _renamed(attrs: dict, old: str, new: str) -> dict:
    """Attributes with the qualified table name ``old`` replaced by ``new`` in their texts (trigger and rule definitions)."""
    return {k: v.replace(f" {old} ", f" {new} ").replace(f" {old}(", f" {new}(") if isinstance(v, str) else v for k, v in attrs.items()}


def _replica_identity(value: str) -> str:
    """The REPLICA IDENTITY clause of a table's ``replica_identity`` attribute (``index <name>``: USING INDEX)."""
    return f"USING INDEX {value[6:]}" if value.startswith("index ") else value.upper()


def _identity_set(options: str) -> str:
    """``SET ... SET ...`` (ALTER COLUMN) of an identity's sequence options as read by pg_catalog.Q_IDENTITY."""
    return " ".join(f"SET {m.group(0)}" for m in _IDENTITY_OPTION.finditer(options))


def _lit(value: Any) -> str:
    if value is None:
        return "NULL"
    return "'" + str(value).replace("'", "''") + "'"


def _split_named(item: str) -> tuple[str, str]:
    """``name rest`` as produced by format('%I %s', ...) in the catalog queries."""
    if item.startswith('"'):
        end = 1
        while True:
            end = item.index('"', end)
            if item[end + 1 : end + 2] == '"':
                end += 2
                continue
            break
        return item[: end + 1], item[end + 2 :]
    name, _sep, rest = item.partition(" ")
    return name, rest


# --- the module's library function -----------------------------------------------------------------


def compare_schemas(
    source: PgConnection,
    target: PgConnection,
    schemas: list | None = None,
    ignore: list | None = None,
    expect: list | None = None,
    include_owners_and_grants: bool = False,
    check_column_order: bool = False,
) -> dict:
    """Read both sides (in parallel, each in its own snapshot), diff, and check expectations.

    Raises :class:`IntegrityError` (with the whole result in its details) when ``expect`` is given
    and not met.
    """
    started = time.monotonic()
    ignore_m = expectations.normalize(ignore, "ignore")
    expect_m = None if expect is None else expectations.normalize(expect, "expect")
    readers: list = []
    with ThreadPoolExecutor(max_workers=2) as pool:
        try:
            opening = [pool.submit(CatalogReader, c) for c in (source, target)]
            errors = [f.exception() for f in opening]
            readers = [f.result() for f, e in zip(opening, errors) if e is None]
            if any(errors):
                raise next(e for e in errors if e)
            args = (schemas, include_owners_and_grants, check_column_order)
            snap_a, snap_b = pool.map(lambda r: r.read(*args, columns=False), readers)
            # Columns only of the tables whose column fingerprints differ (see pg_catalog.Q_COLUMN_FINGERPRINTS).
            tables = differing_column_tables(snap_a, snap_b)
            list(pool.map(lambda rs: rs[0].read_columns(rs[1], tables), zip(readers, (snap_a, snap_b))))
            # Deparse only what differs (see pg_catalog.Raw), then diff the readable values.
            wanted = candidates(snap_a, snap_b)
            list(pool.map(lambda rs: rs[0].resolve(rs[1], wanted), zip(readers, (snap_a, snap_b))))
            read_done = time.monotonic()
            records = without_reprints(diff(snap_a, snap_b), readers, snap_a, snap_b)
            recreate = views_to_recreate(records, snap_a["objects"])
            mviews = {k for kind, k in recreate if kind == "materialized_view"}
            readers[1].resolve(
                snap_b,
                {
                    "view": [k for kind, k in recreate if kind == "view"],
                    "materialized_view": list(mviews),
                    "index": _indexes_on(snap_b["objects"], mviews),
                },
            )
            sql = suggested_sql(records, snap_a, snap_b)
        finally:
            for r in readers:
                r.close()
    snap_a["seconds"], snap_b["seconds"] = round(readers[0].seconds, 3), round(readers[1].seconds, 3)
    kept, ignored = expectations.apply_ignore(records, ignore_m)
    not_compared = not_compared_kinds(snap_a, snap_b)
    hazard_counts = {h: sum(h in r["hazards"] for r in kept) for h in HAZARDS}
    result: dict = {
        "changed": False,
        "source": source.label(),
        "target": target.label(),
        "schemas": list(schemas) if schemas else None,
        "identical": not kept,
        "changes": kept,
        "summary": summary(kept),
        "sql": sql if kept else [],
        "possible_renames": possible_renames(kept),
        "not_compared": not_compared,
        "hazards": {h: n for h, n in hazard_counts.items() if n},
        "counts": {
            "added": sum(r["change"] == "added" for r in kept),
            "removed": sum(r["change"] == "removed" for r in kept),
            "modified": sum(r["change"] == "modified" for r in kept),
            "ignored": len(ignored),
        },
        "objects": {"source": snap_a["counts"], "target": snap_b["counts"]},
        "timings": {
            "read_source_seconds": snap_a["seconds"],
            "read_target_seconds": snap_b["seconds"],
            "diff_seconds": round(time.monotonic() - read_done, 3),
            "total_seconds": round(time.monotonic() - started, 3),
        },
    }
    if ignored:
        # Suggested SQL covers what is reported: statements for ignored changes are left out.
        result["sql"] = suggested_sql(kept, snap_a, snap_b) if kept else []
    if expect_m is not None:
        outcome = expectations.check(kept, expect_m)
        lines = expectations.failure_lines(outcome, describe)
        invalid = [r for r in kept if "invalid_index" in r["hazards"]]
        if invalid:  # an expected index that does not work is not what was expected
            outcome["met"] = False
            lines += [f"{_invalid_subject(r)} is INVALID in {target.label()}: drop it and build it again" for r in invalid]
        result["expectations"] = {"met": outcome["met"], "problems": lines}
        if not outcome["met"]:
            shown = "; ".join(lines[:20]) + (f"; ... and {len(lines) - 20} more" if len(lines) > 20 else "")
            raise IntegrityError(
                f"schema of {target.label()} is not what was expected: {shown}",
                hint="fix the migration of the staged entry, or correct expect/ignore if the change is intended.",
                **{k: v for k, v in result.items() if k != "changed"},
            )
    return result


def _invalid_subject(r: dict) -> str:
    if r["kind"] == "constraint":
        table, con = r["name"].split(".", 1)
        return f"the index of constraint {con} on {r['schema']}.{table}"
    return f"index {r['schema']}.{r['name']}"


def not_compared_kinds(source: dict, target: dict, shown: int = 20) -> list[dict]:
    """Kinds present in either database that the diff does not model: counts per side and names.

    ``names`` lists those on one side only first (where a difference may hide), then the others, up to ``shown``.
    """
    out = []
    a, b = source.get("not_compared", {}), target.get("not_compared", {})
    for kind in sorted(a.keys() | b.keys()):
        na, nb = set(a.get(kind, ())), set(b.get(kind, ()))
        names = sorted(na ^ nb) + sorted(na & nb)
        out.append({"kind": kind, "source": len(na), "target": len(nb), "names": names[:shown], "same_names": na == nb})
    return out


def run(params: dict) -> dict:
    """Entry point of the postgresql_schema_diff module."""
    return compare_schemas(
        from_params(params, side="source"),
        from_params(params, side="target"),
        schemas=params.get("schemas"),
        ignore=params.get("ignore"),
        expect=params.get("expect"),
        include_owners_and_grants=params.get("include_owners_and_grants", False),
        check_column_order=params.get("check_column_order", False),
    )
