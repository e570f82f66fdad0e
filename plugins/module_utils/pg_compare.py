# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compare the data of two PostgreSQL databases: row counts, content checksums, SQL assertions.

Method (documented in docs/postgresql-verification.md):

- Each side is read in one ``REPEATABLE READ READ ONLY`` transaction (a consistent snapshot) with
  the same output settings (DateStyle, TimeZone, extra_float_digits, ...), so equal values print
  the same text on both sides.
- A row's fingerprint is ``hash_record_extended(ROW(c1, c2, ...), seed)`` over the columns both
  sides have, in the source's column order, with two seeds (128 bits). A column is hashed as its
  own type only where text equality and value equality are the same thing and both sides have the
  same type (integers, booleans, dates, times, timestamps, uuid, bytea, text and varchar with a
  deterministic collation); every other column is hashed as its text (``c::text COLLATE "C"``), so 1.5 and
  1.50 in a numeric, or a column whose type the migration changed, compare as they print. On a
  server older than 14 (no ``hash_record_extended``) the fingerprint is
  ``hashtextextended(ROW(...)::text, 0)``. A key range's checksum is the count and the XOR (keyed
  tables: rows are distinct) or sum (no key) of the fingerprints, computed by the server: only
  these numbers cross the network, never row contents. The bytes reported are the rows' sizes as
  the server holds them (``pg_column_size``; the text length before 14), not compared.
- Tables with a primary key (or a unique index on NOT NULL columns) are compared in key ranges of
  about ``chunk_rows`` rows. A single integer key is cut into fixed-width ranges that each side
  aggregates in one sequential pass (both sides in parallel). Other keys of common types are cut
  at keys sampled from the source (``TABLESAMPLE``) and both sides aggregate the ranges in one
  sequential pass (``width_bucket``, text under ``COLLATE "C"``). The rest are walked with
  ``WHERE key > last ORDER BY key LIMIT n`` on the source while the target aggregates the same
  range, in parallel with the source's next range. Memory stays bounded by one range's numbers.
  Tables without such a key are compared as one range.
- Tables changed by the migration are excluded or compared through ``mappings`` (a query per
  side, compared as multisets of rows); ``assertions`` run SQL with an expected value or two
  queries that must agree.
"""

from __future__ import annotations

import fnmatch
import re
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from ansible_collections.dualboot.db.plugins.module_utils.errors import IntegrityError, InvalidInput, OperationFailed
from ansible_collections.dualboot.db.plugins.module_utils.pg_privileges import explain, is_privilege_error
from ansible_collections.dualboot.db.plugins.module_utils.postgresql import PgConnection, connect, from_params

try:
    from psycopg import Error as PsycopgError
    from psycopg import sql
except ImportError:  # pragma: no cover - reported by runner.require in the module
    sql = None
    PsycopgError = Exception

MAX_RANGES_REPORTED = 10
MAX_ROWS_SHOWN = 10
MAX_BUCKETS = 10000

SESSION_SETTINGS = (
    "SET LOCAL DateStyle = 'ISO, YMD'",
    "SET LOCAL IntervalStyle = 'postgres'",
    "SET LOCAL TimeZone = 'UTC'",
    "SET LOCAL extra_float_digits = 1",
    "SET LOCAL bytea_output = 'hex'",
)

# The key: the columns of a valid unique index without predicate or expressions whose key columns
# (the first indnkeyatts; INCLUDE columns are row data, of any type) are NOT NULL and use their
# type's default btree operator class, the order ORDER BY and row comparisons use; the primary key first.
Q_TABLES = """
SELECT n.nspname, c.relname, c.relkind,
  (SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a
    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
  (SELECT array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum) FROM pg_attribute a
    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
  (SELECT array_agg({deterministic} ORDER BY a.attnum) FROM pg_attribute a
    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
  (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM (
     SELECT i.keys FROM (SELECT ix.*, (ix.indkey::int2[])[0:ix.indnkeyatts - 1] AS keys,
                                (ix.indclass::oid[])[0:ix.indnkeyatts - 1] AS classes FROM pg_index ix) i
      WHERE i.indrelid = c.oid AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL AND i.indisvalid
        AND NOT EXISTS (SELECT 1 FROM unnest(i.keys) x JOIN pg_attribute xa ON xa.attrelid = c.oid AND xa.attnum = x
                        WHERE NOT xa.attnotnull)
        AND NOT EXISTS (SELECT 1 FROM unnest(i.classes) x JOIN pg_opclass oc ON oc.oid = x WHERE NOT oc.opcdefault)
      ORDER BY i.indisprimary DESC, i.indnkeyatts, i.indexrelid LIMIT 1) best,
     unnest(best.keys) WITH ORDINALITY k(attnum, ord)
     JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'dualboot') AND n.nspname NOT LIKE 'pg\\_%%'
  AND (%(schemas)s::text[] IS NULL OR n.nspname = ANY(%(schemas)s::text[]))
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2
"""
# Whether each column's collation compares bytes (PostgreSQL 12+); NULL collation: not a text type.
_DETERMINISTIC = "coalesce((SELECT co.collisdeterministic FROM pg_collation co WHERE co.oid = a.attcollation), true)"

# Types whose values are equal exactly when their text is equal (under compare's session settings),
# so hashing them as themselves agrees with hashing their text. Not numeric (1.5 = 1.50), floats
# (-0 = 0), jsonb (1.0 = 1.00), interval ('1 day' = '24 hours'), char(n) (trailing blanks), arrays.
NATIVE_TYPES = frozenset(
    ("smallint", "integer", "bigint", "boolean", "date", "time without time zone", "timestamp without time zone",
     "timestamp with time zone", "uuid", "bytea", "text", "character varying", "oid")
)  # fmt: skip
NATIVE_FROM = 140000  # hash_record_extended
# Key types whose ranges are cut at sampled keys and found with width_bucket in one sequential pass
# per side (text keys compared under the "C" collation on both sides); other keys are walked by index.
SAMPLED_KEY_TYPES = frozenset(
    ("smallint", "integer", "bigint", "numeric", "boolean", "date", "time without time zone", "timestamp without time zone",
     "timestamp with time zone", "uuid", "text", "character varying", "character")
)  # fmt: skip
_COLLATABLE = ("text", "character varying", "character")
MAX_BOUND_PARAMS = 30000  # sampled range bounds are query parameters (psycopg allows 65535)
_TYPMOD = re.compile(r"\(\d+(?:,\d+)?\)")


class _Side:
    """One database opened in a read-only snapshot transaction."""

    def __init__(self, conn: PgConnection) -> None:
        self.conn = conn
        self.db = connect(conn)
        self.db.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        for stmt in SESSION_SETTINGS:
            self.db.execute(stmt)
        # The snapshot is taken by the first query, not by BEGIN: take it now, for both sides at once.
        self.snapshot = self.db.execute("SELECT pg_current_snapshot()::text").fetchone()[0]
        self.version = int(self.db.execute("SHOW server_version_num").fetchone()[0])

    def query(self, stmt: Any, params: Any = None) -> list:
        return self.db.execute(stmt, params).fetchall()

    def grouped(self, stmt: Any, params: Any = None) -> list:
        """A GROUP BY into a few key ranges: the planner cannot know there are few (it estimates one
        group per row) and would sort every row, spilling to disk; hashing into the ranges is one pass."""
        self.db.execute("SET LOCAL enable_sort = off")
        try:
            return self.query(stmt, params)
        finally:
            self.db.execute("SET LOCAL enable_sort = on")

    def tables(self, schemas: list | None) -> dict:
        out = {}
        query = Q_TABLES.replace("{deterministic}", _DETERMINISTIC if self.version >= 120000 else "true")
        for nsp, name, relkind, cols, types, deterministic, key in self.query(query, {"schemas": list(schemas) if schemas else None}):
            out[f"{nsp}.{name}"] = {
                "schema": nsp,
                "name": name,
                "only": relkind == "r",  # plain tables: leave inheritance children to their own comparison
                "columns": dict(zip(cols or [], types or [])),
                "deterministic": dict(zip(cols or [], deterministic or [])),
                "key": list(key or []),
            }
        return out

    def close(self) -> None:
        try:
            self.db.execute("ROLLBACK")
        finally:
            self.db.close()


def _select_tables(names: list[str], tables: list | None, exclude: list | None) -> list[str]:
    def hit(name: str, patterns: list) -> bool:
        short = name.split(".", 1)[1]
        return any(fnmatch.fnmatchcase(name, p) or ("." not in p and fnmatch.fnmatchcase(short, p)) for p in patterns)

    chosen = [n for n in names if not tables or hit(n, tables)]
    return [n for n in chosen if not exclude or not hit(n, exclude)]


class _TableCompare:
    """Key-range comparison of one table present on both sides."""

    def __init__(self, src: _Side, dst: _Side, pool: ThreadPoolExecutor, s: dict, t: dict, chunk_rows: int, show_rows: bool) -> None:
        self.src, self.dst, self.pool = src, dst, pool
        self.chunk_rows = chunk_rows
        self.show_rows = show_rows
        self.columns = [c for c in s["columns"] if c in t["columns"]]
        self.key = s["key"] if s["key"] and all(k in t["columns"] for k in s["key"]) else []
        self.key_types = [s["columns"][k] for k in self.key]
        self.prefix = len(self.key)  # how many leading key columns the sampled ranges are cut on
        self.span_fits = False
        self.schema, self.name = s["schema"], s["name"]
        rel = sql.Identifier(s["schema"], s["name"])
        self.rel = sql.SQL("ONLY {}").format(rel) if s["only"] else rel
        self.plain = bool(s["only"])  # TABLESAMPLE only on plain tables: a partitioned table's keys are walked by index
        self.native = src.version >= NATIVE_FROM and dst.version >= NATIVE_FROM
        self.row_text = sql.SQL("ROW({})::text").format(sql.SQL(", ").join(sql.Identifier(c) for c in self.columns))
        self.row = (
            sql.SQL("ROW({})").format(sql.SQL(", ").join(self._hashed(c, s, t) for c in self.columns)) if self.native else self.row_text
        )
        self.keys = sql.SQL(", ").join(sql.Identifier(k) for k in self.key)

    def _hashed(self, column: str, s: dict, t: dict) -> Any:
        """A column as the fingerprint hashes it: as itself where that agrees with its text, else as text."""
        typ = s["columns"][column]
        same = typ == t["columns"][column] and s["deterministic"].get(column, True) and t["deterministic"].get(column, True)
        if same and _TYPMOD.sub("", typ) in NATIVE_TYPES:
            return sql.Identifier(column)
        # COLLATE "C": the hash of a text follows its collation, and a nondeterministic one hashes 'A' like 'a'.
        return sql.SQL('{}::text COLLATE "C"').format(sql.Identifier(column))

    def _keyrow(self) -> Any:
        return sql.SQL("ROW({})").format(self.keys)

    def _params_row(self) -> Any:
        return sql.SQL("ROW({})").format(sql.SQL(", ").join(sql.SQL("%s::" + t) for t in self.key_types))

    def _agg(self) -> Any:
        """count, fingerprint, second fingerprint (compared) and bytes (reported only).

        The row is aliased ``dualboot_row``: a plain ``t`` collided with key columns named t in ORDER BY.
        """
        # Rows of a keyed table are distinct (the key is part of the row), so XOR of the 64-bit
        # fingerprints identifies the set; without a key, duplicates are possible and need a sum. bit_xor is
        # PostgreSQL 14's, like hash_record_extended: when a side is older, the (exact, numeric) sum for every table.
        c, r = ("bit_xor" if self.key and self.native else "sum"), "dualboot_row"
        if self.native:
            return sql.SQL(
                f"count(*), coalesce({c}(hash_record_extended({r}, 0)), 0), coalesce({c}(hash_record_extended({r}, 1)), 0),"
                f" coalesce(sum(pg_column_size({r})), 0)"
            )
        size = f"coalesce(sum(octet_length({r})), 0)"
        return sql.SQL(f"count(*), coalesce({c}(hashtextextended({r}, 0)), 0), {size}, {size}")

    def source_chunk(self, after: tuple | None) -> tuple:
        where = sql.SQL("WHERE {} > {}").format(self._keyrow(), self._params_row()) if after is not None else sql.SQL("")
        desc = sql.SQL(", ").join(sql.SQL("{} DESC").format(sql.Identifier(k)) for k in self.key)
        stmt = sql.SQL(
            "WITH x AS MATERIALIZED (SELECT {keys}, {row} AS dualboot_row FROM {rel} {where} ORDER BY {keys} LIMIT {n}), "
            "agg AS (SELECT {agg} FROM x) "
            "SELECT agg.*, last.* FROM agg LEFT JOIN (SELECT {keys} FROM x ORDER BY {desc} LIMIT 1) last ON true"
        ).format(keys=self.keys, row=self.row, rel=self.rel, where=where, n=sql.Literal(self.chunk_rows), agg=self._agg(), desc=desc)
        row = self.src.query(stmt, after)[0]
        return tuple(row[:4]), tuple(row[4:]) if row[0] else None

    def target_range(self, after: tuple | None, through: tuple | None) -> tuple:
        conds, params = self._walked_range(after, through)
        where = sql.SQL("WHERE ") + sql.SQL(" AND ").join(conds) if conds else sql.SQL("")
        stmt = sql.SQL("SELECT {agg} FROM (SELECT {row} AS dualboot_row FROM {rel} {where}) x").format(
            agg=self._agg(), row=self.row, rel=self.rel, where=where
        )
        return tuple(self.dst.query(stmt, params)[0])

    def whole(self, side: _Side) -> tuple:
        stmt = sql.SQL("SELECT {agg} FROM (SELECT {row} AS dualboot_row FROM {rel}) x").format(agg=self._agg(), row=self.row, rel=self.rel)
        return tuple(side.query(stmt)[0])

    @staticmethod
    def _between(key: Any, bound: Any, low: tuple | None, low_op: str, high: tuple | None, high_op: str) -> tuple[list, list]:
        """WHERE conditions and their parameters for keys between two bounds; a missing bound is open."""
        conds, params = [], []
        for value, op in ((low, low_op), (high, high_op)):
            if value is not None:
                conds.append(sql.SQL("{} " + op + " {}").format(key, bound))
                params += list(value)
        return conds, params

    def _walked_range(self, after: tuple | None, through: tuple | None) -> tuple[list, list]:
        """Keys after ``after`` (excluded) through ``through`` (included), in the key's own order."""
        return self._between(self._keyrow(), self._params_row(), after, ">", through, "<=")

    def _sampled_range(self, low: tuple | None, high: tuple | None) -> tuple[list, list]:
        """Keys from ``low`` (included) before ``high`` (excluded), ordered as the sampled ranges are."""
        return self._between(self._sampled_key(), self._sampled_bound(), low, ">=", high, "<")

    def _rows_where(self, side: _Side, conds: list, params: list) -> dict:
        where = sql.SQL("WHERE ") + sql.SQL(" AND ").join(conds) if conds else sql.SQL("")
        stmt = sql.SQL("SELECT {keys}, {row} AS dualboot_row FROM {rel} {where} ORDER BY {keys} LIMIT {n}").format(
            keys=self.keys, row=self.row_text, rel=self.rel, where=where, n=sql.Literal(self.chunk_rows * 2)
        )
        return {tuple(_jsonable(v) for v in r[:-1]): r[-1] for r in side.query(stmt, params)}

    def _key_type(self, i: int) -> str:
        return _TYPMOD.sub("", self.key_types[i])

    def _sampled_key_columns(self, width: int | None = None) -> list:
        """The key's first ``width`` columns (all by default) as the sampled ranges order them: text
        columns under the "C" collation."""
        return [
            sql.SQL('{} COLLATE "C"' if self._key_type(i) in _COLLATABLE else "{}").format(sql.Identifier(k))
            for i, k in enumerate(self.key[:width])
        ]

    def _sampled_key(self) -> Any:
        """The key's leading columns the ranges are cut on: one column or a ROW of them."""
        parts = self._sampled_key_columns(self.prefix)
        return parts[0] if len(parts) == 1 else sql.SQL("ROW({})").format(sql.SQL(", ").join(parts))

    def _sampled_bound(self) -> Any:
        """A bound as parameters, typed (and collated) like :meth:`_sampled_key`."""
        types = self.key_types[: self.prefix]
        parts = [sql.SQL("%s::" + t + (' COLLATE "C"' if self._key_type(i) in _COLLATABLE else "")) for i, t in enumerate(types)]
        return parts[0] if len(parts) == 1 else sql.SQL("ROW({})").format(sql.SQL(", ").join(parts))

    def sample_bounds(self) -> list[tuple]:
        """Keys that cut the source into ranges of about chunk_rows rows, from a sample of its pages."""
        s = self.src
        est = s.query(
            "SELECT c.reltuples::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relname = %s",
            (self.schema, self.name),
        )[0][0]
        if est is None or est < 0:  # never analyzed
            est = s.query(sql.SQL("SELECT count(*) FROM {}").format(self.rel))[0][0]
        ranges = min(MAX_BUCKETS, MAX_BOUND_PARAMS // len(self.key), -(-est // self.chunk_rows))
        if ranges <= 1:
            return []
        percent = min(100.0, 100.0 * max(ranges * 20, 5000) / est)
        rows = s.query(
            sql.SQL("SELECT {keys} FROM {rel} TABLESAMPLE SYSTEM ({pct}) ORDER BY {keys}").format(
                keys=sql.SQL(", ").join(self._sampled_key_columns()),
                rel=self.rel,
                pct=sql.Literal(percent),
            )
        )
        # Cut on the fewest leading key columns that leave no range (in the sample) over twice the size
        # wanted: width_bucket compares every row with ROW bounds far slower than with one column's
        # (a (shop, no) key on 1.9 million rows: 6.7 s against 2.4 s a side; COPY 1.5 s).
        for width in range(1, len(self.key)):
            bounds, largest = _quantiles(rows, ranges, width)
            if largest * ranges <= 2 * len(rows):
                self.prefix = width
                return bounds
        return _quantiles(rows, ranges, len(self.key))[0]

    def sampled_buckets(self, side: _Side, bounds: list[tuple]) -> dict:
        arr = sql.SQL("ARRAY[{}]").format(sql.SQL(", ").join([self._sampled_bound()] * len(bounds)))
        stmt = sql.SQL(
            "SELECT width_bucket({key}, {arr}) AS b, {agg} FROM (SELECT {cols}, {row} AS dualboot_row FROM {rel}) x GROUP BY 1"
        ).format(key=self._sampled_key(), arr=arr, agg=self._agg(), cols=self.keys, row=self.row, rel=self.rel)
        return {int(r[0]): tuple(r[1:]) for r in side.grouped(stmt, [v for b in bounds for v in b])}

    def run_sampled(self, out: dict) -> tuple:
        """Other keys: cut at sampled source keys; both sides aggregate the ranges in one sequential pass each."""
        bounds = self.sample_bounds()
        if not bounds:
            fa, fb = self.pool.submit(self.whole, self.src), self.pool.submit(self.whole, self.dst)
            a, b = {0: fa.result()}, {0: fb.result()}
        else:
            fa, fb = self.pool.submit(self.sampled_buckets, self.src, bounds), self.pool.submit(self.sampled_buckets, self.dst, bounds)
            a, b = fa.result(), fb.result()
        out["ranges"] = len(bounds) + 1
        out["range_key"] = self.key[: self.prefix]

        def sampled(i: int) -> tuple:
            low, high = bounds[i - 1] if i > 0 else None, bounds[i] if i < len(bounds) else None
            return ("from", "before"), low, high, self._sampled_range(low, high)

        return self._compare_ranges(out, a, b, sampled)

    def _compare_ranges(self, out: dict, a: dict, b: dict, range_of: Any) -> tuple:
        """Compare the per-range sums of both sides (range number -> sums); ``range_of(i)`` describes range i
        for :meth:`_report`. Returns source rows, source bytes, target rows, target bytes, mismatched ranges."""
        mismatches = 0
        for i in sorted(a.keys() | b.keys()):
            ra, rb = a.get(i, (0, 0, 0, 0)), b.get(i, (0, 0, 0, 0))
            if ra[:3] != rb[:3]:
                mismatches += 1
                self._report(out, *range_of(i), ra[0], rb[0])
        src = [sum(v[0] for v in a.values()), sum(v[3] for v in a.values())]
        dst = [sum(v[0] for v in b.values()), sum(v[3] for v in b.values())]
        return src[0], src[1], dst[0], dst[1], mismatches

    def bounds(self, side: _Side) -> tuple:
        k = sql.Identifier(self.key[0])
        return tuple(side.query(sql.SQL("SELECT min({k}), max({k}) FROM {r}").format(k=k, r=self.rel))[0])

    def buckets(self, side: _Side, low: int, width: int) -> dict:
        k = sql.Identifier(self.key[0])
        # bigint arithmetic when the key span allows it (numeric is much slower per row)
        bucket = "({k} - {low}) / {w}" if self.span_fits else "div({k}::numeric - {low}, {w})"
        stmt = sql.SQL("SELECT " + bucket + " AS b, {agg} FROM (SELECT {k}, {row} AS dualboot_row FROM {rel}) x GROUP BY 1").format(
            k=k, low=sql.Literal(low), w=sql.Literal(width), agg=self._agg(), row=self.row, rel=self.rel
        )
        return {int(r[0]): tuple(r[1:]) for r in side.grouped(stmt)}

    def run_buckets(self, out: dict) -> tuple:
        """Single integer key: both sides aggregate fixed-width key ranges in one sequential pass each, in parallel."""
        fa, fb = self.pool.submit(self.bounds, self.src), self.pool.submit(self.bounds, self.dst)
        (amin, amax), (bmin, bmax) = fa.result(), fb.result()
        lows = [v for v in (amin, bmin) if v is not None]
        if not lows:
            return 0, 0, 0, 0, 0
        low, high = min(lows), max(v for v in (amax, bmax) if v is not None)
        span = high - low + 1
        self.span_fits = -(2**62) < low and high < 2**62
        # chunk_rows keys per range (dense keys: chunk_rows rows), never more than MAX_BUCKETS ranges;
        # empty ranges of sparse keys cost nothing (GROUP BY returns only ranges that have rows).
        width = max(self.chunk_rows, -(-span // MAX_BUCKETS))
        fa, fb = self.pool.submit(self.buckets, self.src, low, width), self.pool.submit(self.buckets, self.dst, low, width)
        a, b = fa.result(), fb.result()
        out["ranges"] = len(a.keys() | b.keys())

        def fixed(i: int) -> tuple:
            after, through = (low + i * width - 1,), (low + (i + 1) * width - 1,)
            return ("after", "through"), after, through, self._walked_range(after, through)

        return self._compare_ranges(out, a, b, fixed)

    def run(self) -> dict:
        started = time.monotonic()
        out: dict = {"method": "key ranges" if self.key else "whole table", "key": self.key, "ranges": 0, "mismatched_ranges": []}
        src_rows = dst_rows = src_bytes = dst_bytes = 0
        mismatches = 0
        if self.key and len(self.key) == 1 and self.key_types[0] in ("smallint", "integer", "bigint"):
            out["method"] = "key ranges (one pass)"
            src_rows, src_bytes, dst_rows, dst_bytes, mismatches = self.run_buckets(out)
        elif self.key and self.plain and all(self._key_type(i) in SAMPLED_KEY_TYPES for i in range(len(self.key))):
            out["method"] = "key ranges (one pass, sampled bounds)"
            src_rows, src_bytes, dst_rows, dst_bytes, mismatches = self.run_sampled(out)
        elif not self.key:
            fa, fb = self.pool.submit(self.whole, self.src), self.pool.submit(self.whole, self.dst)
            a, b = fa.result(), fb.result()
            src_rows, src_bytes, dst_rows, dst_bytes = a[0], a[3], b[0], b[3]
            out["ranges"] = 1
            if a[:3] != b[:3]:
                mismatches = 1
                out["mismatched_ranges"].append({"after": None, "through": None, "source_rows": a[0], "target_rows": b[0]})
        else:
            prev = None
            fut = self.pool.submit(self.source_chunk, prev)
            while True:
                sums, last = fut.result()
                count, nbytes = sums[0], sums[3]
                if not count:
                    tail = self.target_range(prev, None)
                    dst_rows += tail[0]
                    dst_bytes += tail[3]
                    if tail[0]:
                        mismatches += 1
                        self._report(out, ("after", "through"), prev, None, self._walked_range(prev, None), 0, tail[0])
                    break
                tfut = self.pool.submit(self.target_range, prev, last)
                fut = self.pool.submit(self.source_chunk, last)
                t = tfut.result()
                out["ranges"] += 1
                src_rows += count
                src_bytes += nbytes
                dst_rows += t[0]
                dst_bytes += t[3]
                if sums[:3] != t[:3]:
                    mismatches += 1
                    self._report(out, ("after", "through"), prev, last, self._walked_range(prev, last), count, t[0])
                prev = last
        out.update(
            source_rows=src_rows,
            target_rows=dst_rows,
            bytes=src_bytes + dst_bytes,
            equal=mismatches == 0,
            mismatches=mismatches,
            seconds=round(time.monotonic() - started, 3),
        )
        return out

    def _report(self, out: dict, names: tuple, low: tuple | None, high: tuple | None, where: tuple, src_rows: int, dst_rows: int) -> None:
        """A mismatched range: its bounds under ``names`` (after/through, or from/before), counts, and with
        show_rows the differing rows selected by ``where`` (conditions and parameters)."""
        if len(out["mismatched_ranges"]) >= MAX_RANGES_REPORTED:
            return
        item: dict = {
            names[0]: _key_dict(self.key, low),
            names[1]: _key_dict(self.key, high),
            "source_rows": src_rows,
            "target_rows": dst_rows,
        }
        if self.show_rows:
            a, b = self._rows_where(self.src, *where), self._rows_where(self.dst, *where)
            diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
            item["rows"] = [{"key": _key_dict(self.key, k), "source": a.get(k), "target": b.get(k)} for k in diff[:MAX_ROWS_SHOWN]]
        out["mismatched_ranges"].append(item)


def _quantiles(rows: list, ranges: int, width: int) -> tuple[list[tuple], int]:
    """Bounds of ``width`` leading columns that cut the sorted ``rows`` into about ``ranges`` even ranges
    (repeats dropped), and how many rows the largest range holds."""
    bounds: list[tuple] = []
    starts = [0]  # where each range starts: the first row at or above its bound
    for i in range(1, ranges if rows else 1):
        at = i * len(rows) // ranges
        b = tuple(rows[at][:width])
        if bounds and b == bounds[-1]:
            continue
        while at > starts[-1] and tuple(rows[at - 1][:width]) == b:
            at -= 1
        bounds.append(b)
        starts.append(at)
    return bounds, max(end - start for start, end in zip(starts, [*starts[1:], len(rows)]))


def _jsonable(v: Any) -> Any:
    if isinstance(v, (int, float, str, bool)) or v is None:
        return v
    if isinstance(v, Decimal):
        return str(v)
    return str(v)


def _key_dict(key: list, values: tuple | None) -> dict | None:
    if values is None:
        return None
    return {k: _jsonable(v) for k, v in zip(key, values)}


def _multiset(side: _Side, query: str) -> tuple:
    stmt = sql.SQL(
        "SELECT count(*), coalesce(sum(hashtextextended(q::text, 0)), 0), coalesce(sum(octet_length(q::text)), 0) FROM ({}) q"
    ).format(sql.SQL(query.strip().rstrip(";")))
    return tuple(side.query(stmt)[0])


def _scalar_or_rows(rows: list, show_rows: bool) -> Any:
    if len(rows) == 1 and len(rows[0]) == 1:
        return _jsonable(rows[0][0])
    return [[_jsonable(v) for v in r] for r in rows] if show_rows else f"{len(rows)} rows"


def _equal_value(value: Any, expected: Any) -> bool:
    if isinstance(expected, bool) or isinstance(value, bool):
        return str(value).lower() == str(expected).lower()
    try:
        return Decimal(str(value)) == Decimal(str(expected))
    except ArithmeticError:
        return str(value) == str(expected)


def _run_query(side: _Side, query: str, what: str) -> list:
    try:
        side.db.execute("SAVEPOINT dualboot_check")
        rows = side.query(query)
        side.db.execute("RELEASE SAVEPOINT dualboot_check")
        return rows
    except PsycopgError as exc:
        side.db.execute("ROLLBACK TO SAVEPOINT dualboot_check")
        raise InvalidInput(f"{what} failed on {side.conn.label()}: {str(exc).strip()}", hint=f"correct the SQL of {what}.") from None


def _validate(mappings: list, assertions: list) -> None:
    for i, m in enumerate(mappings):
        missing = [k for k in ("table", "source_query", "target_query") if not m.get(k)]
        if missing:
            raise InvalidInput(f"mappings[{i}] lacks {', '.join(missing)}.", hint="give each mapping table, source_query and target_query.")
    for i, a in enumerate(assertions):
        name = a.get("name") or f"assertions[{i}]"
        if a.get("query") and a.get("expect") is not None and not (a.get("source_query") or a.get("target_query")):
            continue
        if a.get("source_query") and a.get("target_query") and not a.get("query"):
            continue
        raise InvalidInput(
            f"{name} must have either query and expect (checked on the target) or source_query and target_query (must agree).",
            hint=f"correct {name}.",
        )


def compare(
    source: PgConnection,
    target: PgConnection,
    schemas: list | None = None,
    tables: list | None = None,
    exclude: list | None = None,
    mappings: list | None = None,
    assertions: list | None = None,
    chunk_rows: int = 50000,
    show_rows: bool = False,
    fail_on_mismatch: bool = True,
) -> dict:
    """Compare table data and run assertions; raise :class:`IntegrityError` on any mismatch."""
    mappings, assertions = list(mappings or []), list(assertions or [])
    _validate(mappings, assertions)
    if chunk_rows < 1:
        raise InvalidInput(f"chunk_rows must be at least 1, not {chunk_rows}.", hint="use the default (50000) or a positive number.")
    started = time.monotonic()
    src = dst = None
    try:
        src = _Side(source)
        dst = _Side(target)
        return _compare(src, dst, schemas, tables, exclude, mappings, assertions, chunk_rows, show_rows, fail_on_mismatch, started)
    except PsycopgError as exc:
        if is_privilege_error(exc):
            raise explain(exc, source.user if source.user == target.user else None, "comparing data") from None
        raise OperationFailed(
            f"data comparison failed: {str(exc).strip()}", hint="check that both entries are reachable and readable by the login role."
        ) from None
    finally:
        for side in (src, dst):
            if side is not None:
                side.close()


def _compare(src, dst, schemas, tables, exclude, mappings, assertions, chunk_rows, show_rows, fail_on_mismatch, started) -> dict:
    a, b = src.tables(schemas), dst.tables(schemas)
    mapped = {m["table"] if "." in m["table"] else f"public.{m['table']}" for m in mappings}
    names_a = _select_tables(sorted(a), tables, exclude)
    names_b = _select_tables(sorted(b), tables, exclude)
    if tables:
        unknown = [p for p in tables if not _select_tables(sorted(a.keys() | b.keys()), [p], None)]
        if unknown:
            raise InvalidInput(f"tables {', '.join(unknown)} match no table on either side.", hint="correct the tables option.")
    only_source = [n for n in names_a if n not in b and n not in mapped]
    only_target = [n for n in names_b if n not in a and n not in mapped]
    common = [n for n in names_a if n in b and n not in mapped]

    results, problems = [], []
    rows = nbytes = 0
    with ThreadPoolExecutor(max_workers=2) as pool:
        for name in common:
            tc = _TableCompare(src, dst, pool, a[name], b[name], chunk_rows, show_rows)
            r = {"table": name, **tc.run()}
            dropped = sorted(set(a[name]["columns"]) - set(b[name]["columns"]))
            new = sorted(set(b[name]["columns"]) - set(a[name]["columns"]))
            if dropped or new:
                r["columns_only_in_source"], r["columns_only_in_target"] = dropped, new
            results.append(r)
            rows += r["source_rows"] + r["target_rows"]
            nbytes += r["bytes"]
            if not r["equal"]:
                if r["source_rows"] != r["target_rows"]:
                    problems.append(f"table {name}: {r['source_rows']} rows on source, {r['target_rows']} on target")
                else:
                    problems.append(f"table {name}: content differs in {r['mismatches']} key range(s) (same row count {r['source_rows']})")
                for rng in r["mismatched_ranges"][:3]:
                    where = (
                        f"from {rng['from']} before {rng['before']}" if "from" in rng else f"after {rng['after']} through {rng['through']}"
                    )
                    problems.append(f"  {name} range {where}: {rng['source_rows']} vs {rng['target_rows']} rows")
    for name in only_source:
        problems.append(f"table {name} is missing on target")

    mapping_results = []
    for m in mappings:
        t0 = time.monotonic()
        sa = _multiset_checked(src, m["source_query"], f"mapping {m['table']} source_query")
        sb = _multiset_checked(dst, m["target_query"], f"mapping {m['table']} target_query")
        ok = sa == sb
        mapping_results.append(
            {"table": m["table"], "equal": ok, "source_rows": sa[0], "target_rows": sb[0], "seconds": round(time.monotonic() - t0, 3)}
        )
        rows += sa[0] + sb[0]
        nbytes += int(sa[2]) + int(sb[2])
        if not ok:
            how = f"{sa[0]} rows on source, {sb[0]} on target" if sa[0] != sb[0] else f"same row count {sa[0]}, content differs"
            problems.append(f"mapping {m['table']}: {how}")

    assertion_results = []
    for i, asr in enumerate(assertions):
        name = asr.get("name") or f"assertions[{i}]"
        if asr.get("query"):
            got = _run_query(dst, asr["query"], name)
            value = _scalar_or_rows(got, show_rows)
            ok = len(got) == 1 and len(got[0]) == 1 and _equal_value(got[0][0], asr["expect"])
            assertion_results.append({"name": name, "ok": ok, "value": value, "expect": asr["expect"]})
            if not ok:
                problems.append(f"assertion {name}: got {value}, expected {asr['expect']}")
        else:
            ga = _run_query(src, asr["source_query"], f"{name} source_query")
            gb = _run_query(dst, asr["target_query"], f"{name} target_query")
            ok = [[_jsonable(v) for v in r] for r in ga] == [[_jsonable(v) for v in r] for r in gb]
            item = {"name": name, "ok": ok, "source_value": _scalar_or_rows(ga, show_rows), "target_value": _scalar_or_rows(gb, show_rows)}
            assertion_results.append(item)
            if not ok:
                problems.append(f"assertion {name}: source gives {item['source_value']}, target gives {item['target_value']}")

    seconds = time.monotonic() - started
    result = {
        "changed": False,
        "source": src.conn.label(),
        "target": dst.conn.label(),
        "equal": not problems,
        "problems": problems,
        "tables": results,
        "tables_only_in_source": only_source,
        "tables_only_in_target": only_target,
        "mappings": mapping_results,
        "assertions": assertion_results,
        "rows": rows,
        "bytes": int(nbytes),
        "seconds": round(seconds, 3),
        "mb_per_s": round(int(nbytes) / 1e6 / seconds, 1) if seconds > 0 else None,
        "summary": (
            f"compared {len(results)} table(s), {len(mapping_results)} mapping(s), {len(assertion_results)} assertion(s): "
            f"{rows} rows, {int(nbytes) / 1e6:.1f} MB of row data in {seconds:.2f} s "
            f"({(int(nbytes) / 1e6 / seconds) if seconds > 0 else 0:.1f} MB/s); {len(problems) and 'MISMATCH' or 'equal'}"
        ),
    }
    if problems and fail_on_mismatch:
        shown = "; ".join(problems[:20]) + (f"; ... and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise IntegrityError(
            f"data of {dst.conn.label()} differs from {src.conn.label()}: {shown}",
            hint="inspect the reported tables and key ranges (show_rows: true prints the differing rows), fix the migration, stage again.",
            **{k: v for k, v in result.items() if k != "changed"},
        )
    return result


def _multiset_checked(side: _Side, query: str, what: str) -> tuple:
    try:
        side.db.execute("SAVEPOINT dualboot_check")
        out = _multiset(side, query)
        side.db.execute("RELEASE SAVEPOINT dualboot_check")
        return out
    except PsycopgError as exc:
        side.db.execute("ROLLBACK TO SAVEPOINT dualboot_check")
        raise InvalidInput(f"{what} failed on {side.conn.label()}: {str(exc).strip()}", hint=f"correct the SQL of {what}.") from None


def run(params: dict) -> dict:
    """Entry point of the postgresql_compare module."""
    return compare(
        from_params(params, side="source"),
        from_params(params, side="target"),
        schemas=params.get("schemas"),
        tables=params.get("tables"),
        exclude=params.get("exclude"),
        mappings=params.get("mappings"),
        assertions=params.get("assertions"),
        chunk_rows=params.get("chunk_rows") or 50000,
        show_rows=params.get("show_rows", False),
        fail_on_mismatch=params.get("fail_on_mismatch", True),
    )
