"""Schema diff correctness against a real peer (migra) on a corpus of schema changes.

For each case in data/schema_corpus: every object migra emits a statement for is also in our change
records; our ``@expect`` lines are met; and (unless the case is ``@manual``) our suggested SQL,
applied to a copy of the source, makes the re-diff empty.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import psycopg
import pytest
from harness.pg import pg_bin

from ansible_collections.dualboot.db.plugins.module_utils import expectations, pg_diff

CORPUS = sorted((Path(__file__).parent / "data" / "schema_corpus").glob("*.sql"))


def load_case(path: Path) -> dict:
    text = path.read_text()
    base, change = text.split("-- @change", 1)
    expect = []
    for line in text.splitlines():
        if line.startswith("-- @expect "):
            # name values may contain spaces (function signatures): split on ' key=' boundaries
            fields = re.findall(r"(kind|schema|name|change|attribute)=(.*?)(?= (?:kind|schema|name|change|attribute)=|$)", line[11:])
            expect.append(dict(fields))
    migra = re.search(r"^-- @migra-skip (.+)$", text, re.M)
    return {"base": base, "change": change, "expect": expect, "manual": "-- @manual" in text, "migra_skip": migra and migra.group(1)}


_IDENT = r'"?([^".\s(]+)"?'
_QUAL = rf"{_IDENT}\.{_IDENT}"
MIGRA_PATTERNS = [
    (rf"alter table {_QUAL} (?:add|drop|alter) column (?:if exists )?{_IDENT}", "column"),
    (rf"alter table {_QUAL} (?:add|drop|validate) constraint {_IDENT}", "constraint"),
    (rf"alter table {_QUAL} (?:enable|disable|force|no force) row level security", "table"),
    (rf"alter table {_QUAL} set (?:logged|unlogged)", "table"),
    (rf"(?:create|drop) table (?:if exists )?{_QUAL}", "table"),
    (rf"(?:create|drop|alter) sequence (?:if exists )?{_QUAL}", "sequence"),
    (rf"create (?:unique )?index {_IDENT} on (?:only )?{_QUAL}", "index_on"),
    (rf"drop index (?:if exists )?{_QUAL}", "index"),
    (rf"(?:create or replace|drop|create) (?:materialized )?view (?:if exists )?{_QUAL}", "view"),
    (rf"(?:create or replace|drop) (?:function|procedure) (?:if exists )?{_QUAL}", "function"),
    (rf"create trigger {_IDENT} .*? on {_QUAL}", "trigger_on"),
    (rf"drop trigger (?:if exists )?{_IDENT} on {_QUAL}", "trigger_on"),
    (rf"(?:create|alter|drop) (?:type|domain) {_QUAL}", "type"),
    (rf"(?:create|drop) extension (?:if not exists |if exists )?{_IDENT}", "extension"),
    (rf"(?:create|drop) schema (?:if not exists |if exists )?{_IDENT}", "schema"),
    (rf"(?:create|drop) policy {_IDENT}\s+on {_QUAL}", "policy_on"),
    (rf"(?:create|drop) collation (?:if not exists |if exists )?{_QUAL}", "collation"),
]


def migra_objects(sql: str) -> list[tuple]:
    """(kind, schema, name) of every object a migra script touches; unknown statements fail the test."""
    out = []
    for stmt in [s.strip() for s in re.split(r";\s*\n", sql) if s.strip()]:
        low = " ".join(stmt.split())
        if low.lower().startswith(("select 1", "set check_function_bodies")):
            continue
        # migra recreates a changed enum and re-types its columns onto the new type: that is the enum's change.
        retype = re.match(rf"alter table {_QUAL} alter column {_IDENT} type {_QUAL} using .*::text::", low, re.I)
        if retype:
            out.append(("type", retype.group(4), retype.group(5)))
            continue
        for pattern, kind in MIGRA_PATTERNS:
            m = re.match(pattern, low, re.I)
            if not m:
                continue
            g = m.groups()
            if kind == "column" or kind == "constraint":
                out.append((kind, g[0], f"{g[1]}.{g[2]}"))
            elif kind == "index_on":
                out.append(("index", g[1], g[0], g[2]))
            elif kind == "trigger_on":
                out.append(("trigger", g[1], f"{g[2]}.{g[0]}"))
            elif kind == "policy_on":
                out.append(("policy", g[1], f"{g[2]}.{g[0]}"))
            elif kind == "collation":
                out.append(("collation", g[0], g[1]))
            elif kind in ("extension", "schema"):
                out.append((kind, None, g[0]))
            elif kind == "type":
                out.append((kind, g[0], g[1].replace("__old_version_to_be_dropped", "")))
            else:
                out.append((kind, g[0], g[1]))
            break
        else:
            raise AssertionError(f"migra statement not understood by the test: {low[:120]}")
    return out


FAMILY = {
    "type": ("enum", "domain", "composite_type"),
    "view": ("view", "materialized_view"),
    "function": ("function", "procedure"),
}


def covered(obj: tuple, records: list[dict]) -> bool:
    kind, schema, name = obj[:3]
    kinds = FAMILY.get(kind, (kind,))
    for r in records:
        if r["kind"] not in kinds or (schema is not None and r["schema"] != schema):
            continue
        rname = r["name"].split("(", 1)[0] if kind == "function" else r["name"]
        if rname == name:
            return True
    # A sub-object of a table we report as added/removed is covered by that table record.
    table = (
        obj[3]
        if kind == "index" and len(obj) > 3
        else name.split(".", 1)[0]
        if kind in ("column", "constraint", "trigger", "policy")
        else None
    )
    if table and any(r["kind"] == "table" and r["change"] in ("added", "removed") and r["name"] == table for r in records):
        return True
    # migra builds a constraint's index first, under the constraint's name.
    if kind == "index" and any(r["kind"] == "constraint" and r["schema"] == schema and r["name"].endswith(f".{name}") for r in records):
        return True
    # A sequence migra drops with its table is the table's serial sequence: covered by the table.
    return kind == "sequence" and any(
        r["kind"] == "table" and r["change"] == "removed" and name.startswith(r["name"] + "_") for r in records
    )


Q_RELATIONS = """SELECT format('%I.%I', n.nspname, c.relname), c.oid, a.attname, a.attnum
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p', 'S') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"""


def relations_and_columns(db) -> dict:
    """Tables and sequences by name (object id) and columns by ``table.column`` ((object id, number)) of a database."""
    out: dict = {}
    for rel, oid, col, num in db.query(Q_RELATIONS):
        out[rel] = oid
        if col is not None:
            out[f"{rel}.{col}"] = (oid, num)
    return out


_DROP = re.compile(r"(?:DROP (?:TABLE|SEQUENCE) (?:IF EXISTS )?(\S+);|ALTER TABLE (\S+) DROP COLUMN (\S+);)$")


def drops_kept_data(stmt: str, base: dict, target) -> bool:
    """Whether a suggested statement drops a table, sequence or column of the base schema that the target still
    has, under any name (same object id, or same object id and column number): data a rename kept."""
    m = _DROP.match(stmt)
    if not m:
        return False
    now = relations_and_columns(target)
    if m.group(1):
        return m.group(1) in base and base[m.group(1)] in now.values()
    col = base.get(f"{m.group(2)}.{m.group(3)}")
    return col is not None and col in now.values()


def run_migra(source_uri: str, target_uri: str) -> str:
    from migra import Migration
    from sqlalchemy.pool import NullPool
    from sqlbag import S

    with S(source_uri, poolclass=NullPool) as s0, S(target_uri, poolclass=NullPool) as s1:
        m = Migration(s0, s1)
        m.set_safety(False)
        m.add_all_changes()
        return m.sql


def dump_restore(src, dst) -> None:
    """Copy a database's schema the way a restore rehearsal does: pg_dump | pg_restore (new object ids)."""
    env = {**os.environ, **src.conn.env()}
    dump = subprocess.run([str(pg_bin() / "pg_dump"), "-Fc", "-s"], env=env, capture_output=True, check=True)
    env = {**os.environ, **dst.conn.env()}
    restore = subprocess.run(
        [str(pg_bin() / "pg_restore"), "-d", dst.name, "--exit-on-error"], input=dump.stdout, env=env, capture_output=True, check=False
    )
    assert restore.returncode == 0, restore.stderr.decode()


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_corpus_case_against_migra(pg, path):
    case = load_case(path)
    src, dst = pg.create_database(), pg.create_database()
    try:
        for db in (src, dst):
            db.execute(case["base"])
        base_objects = relations_and_columns(dst)
        if case["change"].strip():
            dst.execute(case["change"])
        result = pg_diff.compare_schemas(src.conn, dst.conn)
        records = result["changes"]

        if not case["migra_skip"]:
            missing = [o for o in migra_objects(run_migra(src.uri, dst.uri)) if not covered(o, records)]
            assert not missing, f"migra reports differences we do not: {missing}\nours: {result['summary']}"
        destroyed = [s for s in result["sql"] if drops_kept_data(s, base_objects, dst)]
        assert not destroyed, f"suggested SQL drops data the target still has: {destroyed}"

        outcome = expectations.check(records, expectations.normalize(case["expect"], "expect"))
        assert not outcome["missing"], f"expected changes not reported: {outcome['missing']}\nours: {result['summary']}"
        if not case["expect"]:
            assert records == [] and result["sql"] == []

        # R5: a dump/restore copy of the target has new object ids and re-parsed definitions, and must diff empty.
        restored = pg.create_database()
        try:
            dump_restore(dst, restored)
            rehearsal = pg_diff.compare_schemas(dst.conn, restored.conn)
            assert rehearsal["changes"] == [], f"restored copy differs: {rehearsal['summary']}"
        finally:
            pg.drop_database(restored.name)

        if case["manual"]:
            assert any(s.startswith("-- review by hand") for s in result["sql"])
            return
        with psycopg.connect(src.uri, autocommit=True) as c:  # the source itself becomes the copy the SQL is applied to
            for stmt in result["sql"]:
                c.execute(stmt)
        again = pg_diff.compare_schemas(src.conn, dst.conn)
        assert again["changes"] == [], f"suggested SQL did not reach the target: {again['summary']}\nSQL:\n" + "\n".join(result["sql"])
    finally:
        for db in (src, dst):
            pg.drop_database(db.name)


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 25
