# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read the schema of a PostgreSQL database: one batched catalog query per object kind.

Everything is read in one ``REPEATABLE READ READ ONLY`` transaction, so the picture is consistent
and nothing is changed. Schemas are filtered in SQL; the system schemas, our own ``dualboot``
schema, objects owned by extensions and the freeze guard triggers are left out.

The result is a *snapshot*: ``{"server_version": int, "objects": {kind: {key: obj}}}`` where each
``obj`` is ``{"kind", "schema", "name", "attrs": {...}, "info": {...}}``. ``attrs`` are compared by
the diff engine (one change record per differing attribute); ``info`` carries what SQL generation
needs (parent table, definitions, dependencies) and is never compared.
"""

from __future__ import annotations

import re
import time
from typing import Any

from ansible_collections.dualboot.db.plugins.module_utils.pg_reprint import normalized_definition
from ansible_collections.dualboot.db.plugins.module_utils.postgresql import PgConnection, connect, psycopg, server_version

OWN_SCHEMA = "dualboot"
KINDS = (
    "schema",
    "extension",
    "collation",
    "text_search_configuration",
    "enum",
    "domain",
    "composite_type",
    "range_type",
    "sequence",
    "function",
    "procedure",
    "table",
    "column",
    "constraint",
    "index",
    "view",
    "materialized_view",
    "trigger",
    "rule",
    "policy",
    "statistics",
)

# Schema filter shared by every query: %(schemas)s is NULL (all user schemas) or a text[].
_NS = """({n}.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'dualboot')
  AND {n}.nspname NOT LIKE 'pg\\_temp\\_%%' AND {n}.nspname NOT LIKE 'pg\\_toast\\_temp\\_%%'
  AND (%(schemas)s::text[] IS NULL OR {n}.nspname = ANY(%(schemas)s::text[])))"""


def _not_ext(catalog: str, oid: str) -> str:
    return f"NOT EXISTS (SELECT 1 FROM pg_depend dep WHERE dep.classid = '{catalog}'::regclass AND dep.objid = {oid} AND dep.deptype = 'e')"


def _acl(expr: str, kind: str | None = None, owner: str | None = None) -> str:
    """Privileges as sorted aclitem texts, read only when owners and grants are compared.

    A NULL ACL means the built-in default privileges; ``acldefault`` spells them out, so an object
    whose ACL was never touched and one granted exactly the defaults compare equal, and suggested
    GRANT/REVOKE statements start from what the object really has.
    """
    full = f"coalesce({expr}, acldefault({kind}, {owner}))" if kind else expr
    return f"CASE WHEN %(grants)s THEN (SELECT array_agg(x::text ORDER BY x::text) FROM unnest({full}) x) END"


def _nodes(expr: str) -> str:
    """A node tree as text; :func:`_positionless` removes its parse positions on the client (cheaper than regexp_replace)."""
    return f"{expr}::text"


_LOCATION = re.compile(r" :location -?[0-9]+")


def _positionless(text: str | None) -> str | None:
    """A node tree's text without parse positions: equal for the same expression however it was written."""
    return _LOCATION.sub("", text) if text and " :location " in text else text


def _desc(catalog: str, oid: str, alias: str = "d", subid: str = "0") -> str:
    """LEFT JOIN of an object's comment (a join: obj_description() runs a query per row)."""
    on = f"{alias}.objoid = {oid} AND {alias}.classoid = '{catalog}'::regclass AND {alias}.objsubid = {subid}"
    return f"LEFT JOIN pg_description {alias} ON {on}"


Q_SCHEMAS = f"""
SELECT n.nspname, pg_get_userbyid(n.nspowner), {_acl("n.nspacl", "'n'", "n.nspowner")}, d.description
FROM pg_namespace n {_desc("pg_namespace", "n.oid")} WHERE {_NS.format(n="n")} AND {_not_ext("pg_namespace", "n.oid")}
"""

Q_EXTENSIONS = f"""
SELECT e.extname, e.extversion, n.nspname,
  e.extversion = (SELECT a.default_version FROM pg_available_extensions a WHERE a.name = e.extname)
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE {_NS.format(n="n")} OR (%(schemas)s::text[] IS NULL AND n.nspname = 'pg_catalog')
"""

Q_TABLES = f"""
SELECT c.oid, n.nspname, c.relname, c.relkind, c.relpersistence, c.relrowsecurity, c.relforcerowsecurity,
  CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,
  c.relispartition, pg_get_expr(c.relpartbound, 0),
  (SELECT array_agg(format('%%I.%%I', pn.nspname, pc.relname) ORDER BY i.inhseqno)
     FROM pg_inherits i JOIN pg_class pc ON pc.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = pc.relnamespace
    WHERE i.inhrelid = c.oid),
  c.reloptions, pg_get_userbyid(c.relowner), {_acl("c.relacl", "'r'", "c.relowner")}, d.description,
  CASE c.relreplident WHEN 'i' THEN (SELECT 'index ' || quote_ident(ri.relname) FROM pg_index i JOIN pg_class ri ON ri.oid = i.indexrelid
                                      WHERE i.indrelid = c.oid AND i.indisreplident)
    ELSE c.relreplident::text END
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace {_desc("pg_class", "c.oid")}
WHERE c.relkind IN ('r', 'p') AND {_NS.format(n="n")} AND {_not_ext("pg_class", "c.oid")}
"""

_COLUMNS_BODY = f"""
SELECT n.nspname, c.relname, a.attname, a.attnum,
  format_type(a.atttypid, a.atttypmod), a.attnotnull,
  CASE WHEN a.attgenerated = '' THEN pg_get_expr(ad.adbin, 0) ELSE ad.adbin::text END,
  a.attidentity, a.attgenerated,
  CASE WHEN a.attcollation <> t.typcollation AND a.attcollation <> 0 THEN
    (SELECT format('%%I.%%I', cn.nspname, co.collname) FROM pg_collation co
       JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = a.attcollation) END,
  a.attislocal, d.description, {_acl("a.attacl")}, c.oid,
  CASE WHEN a.attstorage <> t.typstorage THEN a.attstorage END, NULLIF(a.attstattarget, -1), NULLIF(a.attcompression, ''),
  t.typstorage
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
  {_desc("pg_class", "a.attrelid", subid="a.attnum")}
WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p') AND {_NS.format(n="n")}
  AND (%(relids)s::oid[] IS NULL OR c.oid = ANY(%(relids)s::oid[]))
"""
Q_COLUMNS = _COLUMNS_BODY + "ORDER BY a.attrelid, a.attnum\n"

# One row per table: how many columns it defines itself and a hash of every compared value of its columns
# (everything Q_COLUMNS reads but the attribute number and the table's oid, which a copy renumbers), in
# name order (attribute order when the column order is compared). A diff reads the columns themselves
# only of the tables whose hashes differ (CatalogReader.read_columns): the server does the same work, but
# 10,000 rows reach the client instead of 50,000 on a schema of 10,000 tables. Raw values are hashed, so a
# value a restore re-prints differently only costs a closer look, never a missed change.
Q_COLUMN_FINGERPRINTS = f"""
SELECT q.nsp, q.rel, count(*) FILTER (WHERE q.islocal),
  md5(string_agg(row(q.col, q.typ, q.nonnull, q.dflt, q.ident, q.gen, q.coll, q.islocal, q.cmt, q.acl, q.stor, q.stat, q.compr,
                     q.tstor)::text, '|' ORDER BY CASE WHEN %(column_order)s THEN q.num END, q.col))
FROM ({_COLUMNS_BODY}) q(nsp, rel, col, num, typ, nonnull, dflt, ident, gen, coll, islocal, cmt, acl, relid, stor, stat, compr, tstor)
GROUP BY q.nsp, q.rel
"""


Q_CONSTRAINTS = f"""
SELECT n.nspname, c.relname, co.conname, co.contype,
  concat_ws('|', co.conkey::text, co.confkey::text, co.confupdtype, co.confdeltype, co.confmatchtype, {_nodes("co.conbin")},
    co.conexclop::text, co.connoinherit, (SELECT concat_ws('|', i.indkey::text, i.indclass::text, i.indoption::text,
    i.indcollation::text, i.indnkeyatts, i.indnullsnotdistinct, am.amname, {_nodes("i.indexprs")}, {_nodes("i.indpred")},
    ic.reloptions::text)
    FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
    WHERE i.indexrelid = co.conindid AND co.contype IN ('p', 'u', 'x'))),
  co.condeferrable, co.condeferred, co.convalidated, d.description,
  CASE WHEN co.contype = 'f' THEN (SELECT format('%%I.%%I', fn.nspname, fc.relname) FROM pg_class fc
    JOIN pg_namespace fn ON fn.oid = fc.relnamespace WHERE fc.oid = co.confrelid) END, co.oid,
  CASE WHEN co.contype IN ('p', 'u', 'x') THEN (SELECT i.indisvalid AND i.indisready AND i.indislive FROM pg_index i
                                                 WHERE i.indexrelid = co.conindid) END
FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  {_desc("pg_constraint", "co.oid")}
WHERE co.contype IN ('p', 'u', 'f', 'c', 'x') AND co.conislocal AND co.conparentid = 0
  AND c.relkind IN ('r', 'p') AND {_NS.format(n="n")}
"""

Q_INDEXES = f"""
SELECT n.nspname, ic.relname, c.relname, am.amname, i.indisunique, {_nodes("i.indpred")},
  concat_ws('|', i.indkey::text, i.indclass::text, i.indoption::text, i.indcollation::text, i.indnkeyatts,
    i.indnullsnotdistinct, {_nodes("i.indexprs")}, ic.reloptions::text, c.relkind), d.description, i.indexrelid,
  i.indisvalid AND i.indisready AND i.indislive, c.relkind,
  (SELECT format('%%I.%%I', pn.nspname, pc.relname) FROM pg_class pc JOIN pg_namespace pn ON pn.oid = pc.relnamespace
    WHERE pc.oid = inh.inhparent)
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class c ON c.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = ic.relnamespace JOIN pg_am am ON am.oid = ic.relam
  LEFT JOIN pg_inherits inh ON inh.inhrelid = i.indexrelid
  {_desc("pg_class", "ic.oid")}
WHERE c.relkind IN ('r', 'p', 'm') AND {_NS.format(n="n")}
  AND NOT EXISTS (SELECT 1 FROM pg_constraint co WHERE co.conindid = i.indexrelid AND co.conrelid = i.indrelid
                  AND co.contype IN ('p', 'u', 'x'))
"""

Q_VIEWS = f"""
SELECT c.oid, n.nspname, c.relname, c.relkind,
  (SELECT r.ev_action::text FROM pg_rewrite r WHERE r.ev_class = c.oid AND r.rulename = '_RETURN'), d.description,
  pg_get_userbyid(c.relowner), {_acl("c.relacl", "'r'", "c.relowner")},
  (SELECT array_agg(DISTINCT format('%%I.%%I', dn.nspname, dc.relname))
     FROM pg_rewrite r JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
     JOIN pg_class dc ON dc.oid = d.refobjid AND d.refclassid = 'pg_class'::regclass
     JOIN pg_namespace dn ON dn.oid = dc.relnamespace
    WHERE r.ev_class = c.oid AND d.refobjid <> c.oid),
  c.reloptions,
  (SELECT array_agg(format('%%I %%s', a.attname, format_type(a.atttypid, a.atttypmod)) ORDER BY a.attnum)
     FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
  (SELECT jsonb_object_agg(a.attname, cd.description) FROM pg_description cd
     JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = cd.objsubid
    WHERE cd.objoid = c.oid AND cd.classoid = 'pg_class'::regclass AND cd.objsubid > 0)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace {_desc("pg_class", "c.oid")}
WHERE c.relkind IN ('v', 'm') AND {_NS.format(n="n")} AND {_not_ext("pg_class", "c.oid")}
"""

Q_SEQUENCES = f"""
SELECT n.nspname, c.relname, format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin, s.seqmax,
  s.seqcache, s.seqcycle, c.relpersistence, dep.deptype,
  CASE WHEN dep.deptype = 'a' AND dep.refobjsubid > 0 THEN
    (SELECT format('%%I.%%I.%%I', tn.nspname, tc.relname, a.attname) FROM pg_class tc JOIN pg_namespace tn ON tn.oid = tc.relnamespace
       JOIN pg_attribute a ON a.attrelid = tc.oid WHERE tc.oid = dep.refobjid AND a.attnum = dep.refobjsubid) END,
  d.description, pg_get_userbyid(c.relowner), {_acl("c.relacl", "'s'", "c.relowner")}
FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_depend dep ON dep.classid = 'pg_class'::regclass AND dep.objid = c.oid AND dep.objsubid = 0
    AND dep.refclassid = 'pg_class'::regclass AND dep.deptype IN ('a', 'i', 'e')
  {_desc("pg_class", "c.oid")}
WHERE {_NS.format(n="n")}
"""

Q_FUNCTIONS = f"""
SELECT n.nspname, p.proname, pg_get_function_identity_arguments(p.oid), p.prokind,
  pg_get_function_result(p.oid), l.lanname, p.provolatile, p.proisstrict, p.prosecdef, p.proparallel,
  (SELECT array_agg(x ORDER BY x) FROM unnest(p.proconfig) x),
  CASE WHEN p.prosqlbody IS NOT NULL THEN pg_get_function_sqlbody(p.oid) ELSE p.prosrc END,
  CASE WHEN p.prokind IN ('f', 'p', 'w') THEN pg_get_functiondef(p.oid) END,
  d.description, pg_get_userbyid(p.proowner), {_acl("p.proacl", "'f'", "p.proowner")}, p.oid
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
  {_desc("pg_proc", "p.oid")}
WHERE {_NS.format(n="n")} AND {_not_ext("pg_proc", "p.oid")}
  AND NOT EXISTS (SELECT 1 FROM pg_depend dep WHERE dep.classid = 'pg_proc'::regclass AND dep.objid = p.oid
                  AND dep.refclassid = 'pg_type'::regclass AND dep.deptype = 'i')  -- a range type's constructors
"""

Q_TRIGGERS = f"""
SELECT n.nspname, c.relname, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled, d.description
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  {_desc("pg_trigger", "t.oid")}
WHERE NOT t.tgisinternal AND t.tgparentid = 0 AND {_NS.format(n="n")}
  AND NOT EXISTS (SELECT 1 FROM pg_proc fp JOIN pg_namespace fn ON fn.oid = fp.pronamespace
                  WHERE fp.oid = t.tgfoid AND fn.nspname = 'dualboot')
"""

Q_TYPES = f"""
SELECT n.nspname, t.typname, t.typtype,
  CASE WHEN t.typtype = 'e' THEN (SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid)
       WHEN t.typtype = 'c' THEN (SELECT array_agg(format('%%I %%s', a.attname, format_type(a.atttypid, a.atttypmod)) ORDER BY a.attnum)
                                   FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped)
       WHEN t.typtype = 'd' THEN (SELECT array_agg(format('%%I %%s', co.conname, pg_get_constraintdef(co.oid)) ORDER BY co.conname)
                                   FROM pg_constraint co WHERE co.contypid = t.oid AND co.contype <> 'n') END,
  CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END,
  t.typnotnull, t.typdefault,
  CASE WHEN t.typtype = 'd' AND t.typcollation <> 0
        AND t.typcollation <> (SELECT bt.typcollation FROM pg_type bt WHERE bt.oid = t.typbasetype)
    THEN (SELECT format('%%I.%%I', cn.nspname, co.collname) FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace
          WHERE co.oid = t.typcollation) END,
  d.description, pg_get_userbyid(t.typowner), {_acl("t.typacl", "'T'", "t.typowner")}
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace {_desc("pg_type", "t.oid")}
WHERE (t.typtype IN ('e', 'd') OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'))
  AND {_NS.format(n="n")} AND {_not_ext("pg_type", "t.oid")}
"""

Q_POLICIES = f"""
SELECT n.nspname, c.relname, p.polname, p.polcmd, p.polpermissive,
  (SELECT array_agg(CASE WHEN r = 0 THEN 'public' ELSE pg_get_userbyid(r)::text END ORDER BY 1) FROM unnest(p.polroles) r),
  pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)
FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE {_NS.format(n="n")}
"""

# The options of each identity column's sequence (its state - the next value - is data, not schema: see the docs).
Q_IDENTITY = f"""
SELECT n.nspname, tc.relname, a.attname,
  format('START WITH %%s INCREMENT BY %%s MINVALUE %%s MAXVALUE %%s CACHE %%s %%s', s.seqstart, s.seqincrement, s.seqmin, s.seqmax,
         s.seqcache, CASE WHEN s.seqcycle THEN 'CYCLE' ELSE 'NO CYCLE' END)
FROM pg_sequence s JOIN pg_depend dep ON dep.classid = 'pg_class'::regclass AND dep.objid = s.seqrelid AND dep.deptype = 'i'
  AND dep.refclassid = 'pg_class'::regclass
  JOIN pg_class tc ON tc.oid = dep.refobjid JOIN pg_namespace n ON n.oid = tc.relnamespace
  JOIN pg_attribute a ON a.attrelid = tc.oid AND a.attnum = dep.refobjsubid
WHERE {_NS.format(n="n")}
"""

Q_STATISTICS = f"""
SELECT n.nspname, s.stxname, pg_get_statisticsobjdef(s.oid), NULLIF(s.stxstattarget, -1), d.description,
  tn.nspname, tc.relname
FROM pg_statistic_ext s JOIN pg_namespace n ON n.oid = s.stxnamespace JOIN pg_class tc ON tc.oid = s.stxrelid
  JOIN pg_namespace tn ON tn.oid = tc.relnamespace {_desc("pg_statistic_ext", "s.oid")}
WHERE {_NS.format(n="n")} AND {_not_ext("pg_statistic_ext", "s.oid")}
"""

Q_RULES = f"""
SELECT n.nspname, c.relname, r.rulename, pg_get_ruledef(r.oid), r.ev_enabled, d.description
FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace
  {_desc("pg_rewrite", "r.oid")}
WHERE r.rulename <> '_RETURN' AND {_NS.format(n="n")} AND {_not_ext("pg_class", "c.oid")}
"""

# Who reads each column of the tables %(relids)s (pg_depend): views and rules of other relations, SQL-standard function
# bodies, foreign keys of other tables. A column nobody depends on can be dropped or retyped without breaking anything.
# Read in CatalogReader.resolve for the columns that differ only (for every column it would cost 70-90 ms on 10,000 tables).
Q_COLUMN_DEPENDENTS = """
SELECT n.nspname, c.relname, a.attname, pg_describe_object(dep.classid, dep.objid, 0)
FROM pg_depend dep JOIN pg_class c ON c.oid = dep.refobjid JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = dep.refobjsubid
WHERE dep.refclassid = 'pg_class'::regclass AND dep.refobjid = ANY(%(relids)s) AND dep.refobjsubid > 0 AND dep.deptype = 'n'
  AND c.relkind IN ('r', 'p')
  AND (dep.classid = 'pg_proc'::regclass
       OR (dep.classid = 'pg_rewrite'::regclass AND EXISTS (SELECT 1 FROM pg_rewrite r WHERE r.oid = dep.objid AND r.ev_class <> c.oid))
       OR (dep.classid = 'pg_constraint'::regclass AND EXISTS (SELECT 1 FROM pg_constraint co WHERE co.oid = dep.objid
                                                             AND co.contype = 'f' AND co.conrelid <> c.oid)))
"""

# Kinds of objects the diff does not model: named in the result as not compared, never skipped silently.
# partition_default: a default of an inherited column that is not the one the parent has (children get a copy).
# Database-wide kinds (casts, event triggers, global default privileges) only when every schema is read.
Q_NOT_COMPARED = f"""
SELECT 'aggregate', format('%%I.%%I(%%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid))
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE p.prokind = 'a' AND {_NS.format(n="n")} AND {_not_ext("pg_proc", "p.oid")}
UNION ALL
SELECT 'operator', format('%%I.%%s(%%s, %%s)', n.nspname, o.oprname, format_type(o.oprleft, NULL), format_type(o.oprright, NULL))
  FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace WHERE {_NS.format(n="n")} AND {_not_ext("pg_operator", "o.oid")}
UNION ALL
SELECT 'operator_class', format('%%I.%%I', n.nspname, o.opcname)
  FROM pg_opclass o JOIN pg_namespace n ON n.oid = o.opcnamespace WHERE {_NS.format(n="n")} AND {_not_ext("pg_opclass", "o.oid")}
UNION ALL
SELECT 'operator_family', format('%%I.%%I', n.nspname, o.opfname)
  FROM pg_opfamily o JOIN pg_namespace n ON n.oid = o.opfnamespace WHERE {_NS.format(n="n")} AND {_not_ext("pg_opfamily", "o.oid")}

UNION ALL
SELECT 'text_search_dictionary', format('%%I.%%I', n.nspname, o.dictname)
  FROM pg_ts_dict o JOIN pg_namespace n ON n.oid = o.dictnamespace WHERE {_NS.format(n="n")} AND {_not_ext("pg_ts_dict", "o.oid")}
UNION ALL
SELECT 'base_type', format('%%I.%%I', n.nspname, t.typname)
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE t.typtype = 'b' AND t.typelem = 0 AND {_NS.format(n="n")} AND {_not_ext("pg_type", "t.oid")}
   AND NOT (t.typtype = 'b' AND t.typcategory = 'A')
UNION ALL
SELECT 'conversion', format('%%I.%%I', n.nspname, o.conname)
  FROM pg_conversion o JOIN pg_namespace n ON n.oid = o.connamespace WHERE {_NS.format(n="n")} AND {_not_ext("pg_conversion", "o.oid")}
UNION ALL
SELECT 'foreign_table', format('%%I.%%I', n.nspname, c.relname)
  FROM pg_foreign_table ft JOIN pg_class c ON c.oid = ft.ftrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE {_NS.format(n="n")}
UNION ALL
SELECT 'view_trigger', format('%%I.%%I.%%I', n.nspname, c.relname, t.tgname)
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('v', 'm', 'f') AND NOT t.tgisinternal AND {_NS.format(n="n")}
UNION ALL
SELECT 'partition_default', format('%%I.%%I.%%I', n.nspname, c.relname, a.attname)
  FROM (SELECT DISTINCT inhrelid FROM pg_inherits) ch JOIN pg_attrdef ad ON ad.adrelid = ch.inhrelid
  JOIN pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
  JOIN pg_class c ON c.oid = ad.adrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE NOT a.attislocal AND a.attgenerated = '' AND c.relkind IN ('r', 'p') AND {_NS.format(n="n")}
   AND NOT EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_attribute pa ON pa.attrelid = i.inhparent AND pa.attname = a.attname
                     JOIN pg_attrdef pad ON pad.adrelid = pa.attrelid AND pad.adnum = pa.attnum
                    WHERE i.inhrelid = c.oid AND pg_get_expr(pad.adbin, pad.adrelid) = pg_get_expr(ad.adbin, ad.adrelid))
UNION ALL
SELECT 'default_privileges', format('%%s: %%s in %%s', pg_get_userbyid(da.defaclrole),
    CASE da.defaclobjtype WHEN 'r' THEN 'tables' WHEN 'S' THEN 'sequences' WHEN 'f' THEN 'functions' WHEN 'T' THEN 'types'
                          WHEN 'n' THEN 'schemas' ELSE da.defaclobjtype::text END, coalesce(quote_ident(n.nspname), 'every schema'))
  FROM pg_default_acl da LEFT JOIN pg_namespace n ON n.oid = da.defaclnamespace
 WHERE CASE WHEN n.oid IS NULL THEN %(schemas)s::text[] IS NULL ELSE {_NS.format(n="n")} END
UNION ALL
SELECT 'cast', format('(%%s AS %%s)', format_type(c.castsource, NULL), format_type(c.casttarget, NULL))
  FROM pg_cast c WHERE c.oid >= 16384 AND %(schemas)s::text[] IS NULL AND {_not_ext("pg_cast", "c.oid")}
UNION ALL
SELECT 'event_trigger', quote_ident(e.evtname) FROM pg_event_trigger e
 WHERE %(schemas)s::text[] IS NULL AND {_not_ext("pg_event_trigger", "e.oid")}
"""

_MULTIRANGE = """(SELECT format('%%I.%%I', mn.nspname, mt.typname) FROM pg_type mt JOIN pg_namespace mn ON mn.oid = mt.typnamespace
    WHERE mt.oid = r.rngmultitypid)"""

Q_RANGES = f"""
SELECT n.nspname, t.typname, format_type(r.rngsubtype, NULL),
  (SELECT format('%%I.%%I', cn.nspname, opc.opcname) FROM pg_opclass opc JOIN pg_namespace cn ON cn.oid = opc.opcnamespace
    WHERE opc.oid = r.rngsubopc AND NOT opc.opcdefault),
  CASE WHEN r.rngcollation <> 0 AND r.rngcollation <> (SELECT st.typcollation FROM pg_type st WHERE st.oid = r.rngsubtype)
    THEN (SELECT format('%%I.%%I', cn.nspname, co.collname) FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace
          WHERE co.oid = r.rngcollation) END,
  NULLIF(r.rngcanonical, 0)::regproc::text, NULLIF(r.rngsubdiff, 0)::regproc::text,
  {_MULTIRANGE},
  d.description
FROM pg_range r JOIN pg_type t ON t.oid = r.rngtypid JOIN pg_namespace n ON n.oid = t.typnamespace {_desc("pg_type", "t.oid")}
WHERE {_NS.format(n="n")} AND {_not_ext("pg_type", "t.oid")}
"""

_COLL_LOCALES = "c.collcollate, c.collctype, coalesce(to_jsonb(c) ->> 'colllocale', to_jsonb(c) ->> 'colliculocale')"
# to_jsonb: the ICU locale column is colliculocale in PostgreSQL 15 and 16, colllocale from 17.
Q_COLLATIONS = f"""
SELECT n.nspname, c.collname, c.collprovider, c.collisdeterministic, {_COLL_LOCALES}, d.description
FROM pg_collation c JOIN pg_namespace n ON n.oid = c.collnamespace {_desc("pg_collation", "c.oid")}
WHERE {_NS.format(n="n")} AND {_not_ext("pg_collation", "c.oid")}
"""

Q_TS_CONFIGS = f"""
SELECT n.nspname, c.cfgname, (SELECT format('%%I.%%I', pn.nspname, p.prsname) FROM pg_ts_parser p
                                JOIN pg_namespace pn ON pn.oid = p.prsnamespace WHERE p.oid = c.cfgparser),
  (SELECT array_agg(x ORDER BY x) FROM (
     SELECT format('%%s %%s', tt.alias, string_agg(format('%%I.%%I', dn.nspname, dd.dictname), ', ' ORDER BY m.mapseqno)) x
       FROM pg_ts_config_map m JOIN ts_token_type(c.cfgparser) tt ON tt.tokid = m.maptokentype
       JOIN pg_ts_dict dd ON dd.oid = m.mapdict JOIN pg_namespace dn ON dn.oid = dd.dictnamespace
      WHERE m.mapcfg = c.oid GROUP BY tt.alias) maps),
  d.description
FROM pg_ts_config c JOIN pg_namespace n ON n.oid = c.cfgnamespace {_desc("pg_ts_config", "c.oid")}
WHERE {_NS.format(n="n")} AND {_not_ext("pg_ts_config", "c.oid")}
"""

# The default privileges of each role for each kind of object (schema, relation, sequence, routine, type):
# where suggested GRANT/REVOKE statements for a newly created object start from.
Q_ACL_DEFAULTS = """
SELECT k, r.rolname, (SELECT array_agg(x::text ORDER BY x::text) FROM unnest(acldefault(k::"char", r.oid)) x)
FROM pg_roles r CROSS JOIN unnest(ARRAY['n', 'r', 's', 'f', 'T']) k
"""

_RELKIND = {"r": "table", "p": "partitioned table"}
_VOLATILITY = {"i": "immutable", "s": "stable", "v": "volatile"}
_PARALLEL = {"s": "safe", "r": "restricted", "u": "unsafe"}
_PROKIND = {"f": "function", "p": "procedure", "a": "aggregate", "w": "function"}
_CONTYPE = {"p": "primary key", "u": "unique", "f": "foreign key", "c": "check", "x": "exclusion"}
_POLCMD = {"r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE", "*": "ALL"}
_TRIGGER_ENABLED = {"O": "enabled", "D": "disabled", "R": "replica", "A": "always"}
_REPLICA_IDENTITY = {"d": "default", "n": "nothing", "f": "full"}
_STORAGE = {"p": "plain", "e": "external", "m": "main", "x": "extended"}
_COMPRESSION = {"p": "pglz", "l": "lz4"}
_CONSTRAINT_TAIL = re.compile(r"(?: DEFERRABLE)?(?: INITIALLY DEFERRED)?(?: NOT VALID)?$")
_INDEX_USING = re.compile(r" USING (\w+) (.*)$", re.S)


def qident(name: str) -> str:
    """Quote an identifier the way PostgreSQL's quote_ident does (for suggested SQL text)."""
    if re.fullmatch(r"[a-z_][a-z0-9_$]*", name) and name not in _RESERVED:
        return name
    return '"' + name.replace('"', '""') + '"'


# Reserved words that must be quoted when used as identifiers (the common ones in schemas).
_RESERVED = frozenset(
    "all analyse analyze and any array as asc asymmetric both case cast check collate column constraint create "
    "current_catalog current_date current_role current_time current_timestamp current_user default deferrable desc "
    "distinct do else end except false fetch for foreign from grant group having in initially intersect into lateral "
    "leading limit localtime localtimestamp not null offset on only or order placing primary references returning "
    "select session_user some symmetric table then to trailing true union unique user using variadic when where "
    "window with authorization binary collation concurrently cross current_schema freeze full ilike inner is isnull "
    "join left like natural notnull outer overlaps right similar tablesample verbose".split()
)


def qname(schema: str, name: str) -> str:
    return f"{qident(schema)}.{qident(name)}"


def _obj(kind: str, schema: str, name: str, attrs: dict, info: dict | None = None) -> dict:
    return {"kind": kind, "schema": schema, "name": name, "attrs": attrs, "info": info or {}}


def _owner_attrs(attrs: dict, owner: Any, acl: Any, with_grants: bool) -> None:
    if with_grants:
        attrs["owner"] = owner
        attrs["grants"] = sorted(acl) if acl else []


def _add(objects: dict, obj: dict) -> None:
    objects[obj["kind"]][(obj["schema"], obj["name"])] = obj


def column_definition(attrs: dict) -> str:
    """``type [COMPRESSION m] [COLLATE c] [GENERATED ...|DEFAULT ...] [NOT NULL]`` of a column's attributes.

    Storage and statistics target have no place in a column definition (PostgreSQL 15): ALTER COLUMN sets them.
    """
    parts = [attrs["type"]]
    if attrs.get("compression"):
        parts.append(f"COMPRESSION {attrs['compression']}")
    if attrs.get("collation"):
        parts.append(f"COLLATE {attrs['collation']}")
    if attrs.get("generated"):
        parts.append(f"GENERATED ALWAYS AS ({attrs['generated']}) STORED")
    elif attrs.get("identity"):
        options = f" ({attrs['identity_options']})" if attrs.get("identity_options") else ""
        parts.append(f"GENERATED {attrs['identity'].upper()} AS IDENTITY{options}")
    elif attrs.get("default") is not None:
        parts.append(f"DEFAULT {attrs['default']}")
    if not attrs["nullable"] and not attrs.get("identity"):
        parts.append("NOT NULL")
    return " ".join(parts)


class Raw(tuple):
    """A catalog value in its stored form (node tree text, arrays, flags), compared before deparsing.

    Deparsing (pg_get_expr, pg_get_indexdef, pg_get_constraintdef, pg_get_viewdef) is the costly
    part of reading a catalog: it opens every table. So values are compared raw first, and only
    objects whose raw values differ (or exist on one side) are deparsed, by :meth:`CatalogReader.resolve`.
    Raw values that differ only by object ids or parse positions (a copy made by dump and restore)
    turn out equal once deparsed. A tuple subclass, so comparing snapshots stays in C.
    """

    __slots__ = ()

    def __new__(cls, text: str | None) -> Raw:
        return tuple.__new__(cls, ("raw", text or ""))


LAZY_KINDS = ("column", "constraint", "index", "view", "materialized_view")

Q_RESOLVE = {
    "column": "SELECT adrelid, adnum, pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = ANY(%s)",
    "constraint": "SELECT oid, pg_get_constraintdef(oid) FROM pg_constraint WHERE oid = ANY(%s)",
    "index": "SELECT indexrelid, pg_get_indexdef(indexrelid), pg_get_expr(indpred, indrelid) FROM pg_index WHERE indexrelid = ANY(%s)",
    "view": "SELECT oid, pg_get_viewdef(oid) FROM pg_class WHERE oid = ANY(%s)",
    # Whether a column default calls a VOLATILE function (or operator): adding such a column rewrites the table.
    "volatile": r"""SELECT adrelid, adnum, EXISTS (SELECT 1 FROM regexp_matches(adbin::text, ':(?:op)?funcid (\d+)', 'g') m
                     JOIN pg_proc p ON p.oid = m[1]::oid WHERE p.provolatile = 'v')
                   FROM pg_attrdef WHERE adrelid = ANY(%s)""",
}


class CatalogReader:
    """One side: a connection in a ``REPEATABLE READ READ ONLY`` transaction, open until :meth:`close`."""

    def __init__(self, conn: PgConnection) -> None:
        self.conn = conn
        self.db = connect(conn)
        self.db.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        # Like pg_dump: a search path of pg_catalog only makes every name in definitions schema-qualified.
        self.db.execute("SET LOCAL search_path = pg_catalog, pg_temp")
        # Both sides are read at once, each by one backend: parallel workers would only compete for the same cores.
        self.db.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        self.cur = self.db.cursor()
        self.seconds = 0.0

    def read(
        self, schemas: list | None = None, include_owners_and_grants: bool = False, check_column_order: bool = False, columns: bool = True
    ) -> dict:
        started = time.monotonic()
        version = server_version(self.cur)
        snap = collect(self.cur, schemas, include_owners_and_grants, check_column_order, columns)
        snap["server_version"] = version
        self.seconds += time.monotonic() - started
        return snap

    def read_columns(self, snap: dict, tables: set) -> None:
        """After ``read(..., columns=False)``: the columns of ``tables`` ((schema, name) pairs, see differing_column_tables)."""
        started = time.monotonic()
        state, rows = snap["columns"], snap["objects"]["table"].rows
        relids = sorted(rows[k][1] for k in tables if k in rows)
        if relids:
            p = {"schemas": snap["schemas"], "grants": state["grants"], "relids": relids, "column_order": state["order"]}
            self.cur.execute(for_version(Q_COLUMNS, snap["server_version"]), p)
            _collect_columns(self.cur.fetchall(), snap["objects"], state)
        self.seconds += time.monotonic() - started

    def resolve(self, snap: dict, wanted: dict) -> None:
        """Deparse the raw values of the objects ``wanted`` (kind -> keys), in one query per kind."""
        started = time.monotonic()
        objs = snap["objects"]
        cols = [objs["column"][k] for k in wanted.get("column", ()) if k in objs["column"]]
        self._volatility(cols)
        self._column_dependents(snap, cols)
        cols = [o for o in cols if isinstance(o["attrs"].get("default"), Raw) or isinstance(o["attrs"].get("generated"), Raw)]
        if cols:
            self.cur.execute(Q_RESOLVE["column"], (sorted({o["info"]["relid"] for o in cols}),))
            exprs = {(relid, num): expr for relid, num, expr in self.cur.fetchall()}
            for o in cols:
                expr = exprs.get((o["info"]["relid"], o["info"]["attnum"]))
                for attr in ("default", "generated"):
                    if isinstance(o["attrs"].get(attr), Raw):
                        o["attrs"][attr] = normalized_definition(expr)
        for kind, apply in (("constraint", _apply_constraint), ("index", _apply_index)):
            todo = [
                objs[kind][k]
                for k in wanted.get(kind, ())
                if k in objs[kind] and isinstance(objs[kind][k]["attrs"]["definition" if kind == "constraint" else "keys"], Raw)
            ]
            if todo:
                self.cur.execute(Q_RESOLVE[kind], ([o["info"]["oid"] for o in todo],))
                found = {row[0]: row[1:] for row in self.cur.fetchall()}
                for o in todo:
                    apply(o, *found[o["info"]["oid"]])
        views = [objs[kind][k] for kind in ("view", "materialized_view") for k in wanted.get(kind, ()) if k in objs[kind]]
        views = [o for o in views if isinstance(o["attrs"]["definition"], Raw)]
        if views:
            self.cur.execute(Q_RESOLVE["view"], ([o["info"]["oid"] for o in views],))
            found = dict(self.cur.fetchall())
            for o in views:
                o["info"]["definition"] = found[o["info"]["oid"]]
                o["attrs"]["definition"] = normalized_definition(o["info"]["definition"])
        self.seconds += time.monotonic() - started

    def _column_dependents(self, snap: dict, cols: list) -> None:
        """``snap["column_dependents"]`` of the tables of ``cols``: who reads each of their columns (see Q_COLUMN_DEPENDENTS)."""
        relids = sorted({o["info"]["relid"] for o in cols})
        if not relids:
            return
        self.cur.execute(Q_COLUMN_DEPENDENTS, {"relids": relids})
        for nsp, table, col, dependent in self.cur.fetchall():
            snap["column_dependents"].setdefault((nsp, f"{table}.{col}"), []).append(dependent)

    def _volatility(self, cols: list) -> None:
        """``info["volatile_default"]`` of columns with a default: does it call a VOLATILE function (provolatile)?"""
        cols = [o for o in cols if o["attrs"].get("default") is not None and "volatile_default" not in o["info"]]
        if not cols:
            return
        self.cur.execute(Q_RESOLVE["volatile"], (sorted({o["info"]["relid"] for o in cols}),))
        volatile = {(relid, num): v for relid, num, v in self.cur.fetchall()}
        for o in cols:
            o["info"]["volatile_default"] = volatile.get((o["info"]["relid"], o["info"]["attnum"]), False)

    def planned(self, items: list) -> list:
        """``(kind, obj)`` definitions as the planner prints them once it has simplified them; None where it cannot.

        Two texts PostgreSQL prints differently for the same meaning — ``((a AND b) AND c)`` against the
        ``(a AND b AND c)`` a dump re-parses it to, constant arrays cast as a whole or per element,
        ``'a' || 'b'`` — plan to the same filter. CHECK constraints and index predicates are planned as
        the filter of ``SELECT 1 FROM ONLY table WHERE ...``, views as their query. Plans are made with
        sequential scans and nested loops in the written join order only, so equal queries plan alike
        whatever the statistics. Only EXPLAIN runs (nothing executes), inside a savepoint that undoes
        these settings.
        """
        started = time.monotonic()
        out = []
        self.cur.execute("SAVEPOINT dualboot_planned")
        try:
            # Only the settings this server has (enable_memoize is 14+): set_config of an unknown one fails.
            self.cur.execute(
                "SELECT set_config(s.name, v.value, true) FROM pg_settings s"
                " JOIN unnest(%s::text[], %s::text[]) v(name, value) USING (name)",
                ([n for n, _v in _PLAN_SETTINGS], [v for _n, v in _PLAN_SETTINGS]),
            )
            for kind, o in items:
                plan = self._explain(_planned_query(kind, o))
                if plan is not None and kind in ("view", "materialized_view"):
                    # A plan shows no column names, and a join the planner removes leaves no trace: add both.
                    self.cur.execute(Q_VIEW_SHAPE, {"oid": o["info"]["oid"]})
                    plan = f"{self.cur.fetchone()}\n{plan}"
                elif plan is not None and kind == "constraint":
                    plan = f"{o['attrs']['definition'].endswith(' NO INHERIT')}\n{plan}"
                out.append(plan)
        finally:
            self.cur.execute("ROLLBACK TO SAVEPOINT dualboot_planned")
            self.seconds += time.monotonic() - started
        return out

    def _explain(self, query: str | None) -> str | None:
        if query is None:
            return None
        self.cur.execute("SAVEPOINT dualboot_explain")
        try:
            self.cur.execute("EXPLAIN (VERBOSE, COSTS OFF) " + query)
            plan = "\n".join(r[0] for r in self.cur.fetchall())
        except psycopg.Error:  # a definition the planner refuses keeps its reported difference
            self.cur.execute("ROLLBACK TO SAVEPOINT dualboot_explain")
            return None
        self.cur.execute("RELEASE SAVEPOINT dualboot_explain")
        return plan

    def resolve_all(self, snap: dict) -> None:
        self.resolve(snap, {k: list(snap["objects"][k]) for k in LAZY_KINDS})

    def close(self) -> None:
        try:
            self.db.execute("ROLLBACK")
        finally:
            self.db.close()


_PLAN_SETTINGS = tuple(
    (name, "off")
    for name in (
        "enable_hashjoin", "enable_mergejoin", "enable_hashagg", "enable_material", "enable_memoize", "enable_indexscan",
        "enable_indexonlyscan", "enable_bitmapscan", "enable_tidscan", "enable_incremental_sort", "enable_partitionwise_join",
        "enable_partitionwise_aggregate", "constraint_exclusion", "geqo", "jit",
    )
) + (("join_collapse_limit", "1"), ("from_collapse_limit", "1"))  # fmt: skip


# A view's column names and every table column it reads (dependencies of its rewrite rule).
Q_VIEW_SHAPE = """
SELECT (SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a WHERE a.attrelid = %(oid)s AND a.attnum > 0),
  (SELECT array_agg(DISTINCT format('%%s.%%s', d.refobjid::regclass, ra.attname)) FROM pg_rewrite r
     JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid AND d.refclassid = 'pg_class'::regclass
     LEFT JOIN pg_attribute ra ON ra.attrelid = d.refobjid AND ra.attnum = d.refobjsubid
    WHERE r.ev_class = %(oid)s AND d.refobjid <> %(oid)s)
"""


def _planned_query(kind: str, o: dict) -> str | None:
    """The query whose plan shows a definition (see CatalogReader.planned)."""
    attrs = o["attrs"]
    if kind in ("view", "materialized_view"):
        return attrs["definition"].rstrip().rstrip(";")
    if kind == "constraint" and o["info"]["contype"] == "c" and attrs["definition"].startswith("CHECK "):
        check = attrs["definition"][6:].removesuffix(" NO INHERIT")
        return f"SELECT 1 FROM ONLY {qname(o['schema'], o['info']['table'])} WHERE {check}"
    if kind == "index" and attrs.get("predicate"):
        return f"SELECT 1 FROM ONLY {qname(o['schema'], attrs['table'])} WHERE {attrs['predicate']}"
    return None


def _apply_constraint(o: dict, condef: str) -> None:
    o["attrs"]["definition"] = normalized_definition(_CONSTRAINT_TAIL.sub("", condef))
    o["info"]["full"] = o["info"]["definition"] = condef


def _apply_index(o: dict, idef: str, predicate: str | None) -> None:
    m = _INDEX_USING.search(idef)
    keys = m.group(2) if m else idef
    if predicate and keys.endswith(f" WHERE {predicate}"):
        keys = keys[: -len(f" WHERE {predicate}")]
    o["attrs"]["keys"] = normalized_definition(keys)
    o["attrs"]["predicate"] = normalized_definition(predicate)
    o["info"]["definition"] = idef


def read_snapshot(
    conn: PgConnection, schemas: list | None = None, include_owners_and_grants: bool = False, check_column_order: bool = False
) -> dict:
    """Read one side completely (every value deparsed) and close the connection."""
    reader = CatalogReader(conn)
    try:
        snap = reader.read(schemas, include_owners_and_grants, check_column_order)
        reader.resolve_all(snap)
    finally:
        reader.close()
    snap["seconds"] = round(reader.seconds, 3)
    return snap


class Lazy:
    """Objects of one kind, kept as compact rows and turned into object dicts only when looked at.

    A catalog of 10,000 tables has some 100,000 columns, constraints and indexes; building a dict
    for each costs more than reading them. Each entry is ``(compare, extra)``: ``compare`` holds
    exactly the values the diff compares (so equal tuples mean equal objects, compared in C) and
    ``extra`` what building the object needs besides (object ids, attribute numbers).
    """

    def __init__(self, build: Any) -> None:
        self.rows: dict = {}
        self.built: dict = {}
        self.build = build
        self._differing: tuple | None = None

    def same(self, key: Any, other: Lazy) -> bool:
        return self.rows[key][0] == other.rows[key][0]

    def differing(self, other: Lazy) -> list:
        """Keys on both sides whose compared values differ (one pass, no objects built, remembered)."""
        if self._differing is None or self._differing[0] is not other:
            mine, theirs = self.rows, other.rows
            self._differing = (other, [k for k in mine.keys() & theirs.keys() if mine[k][0] != theirs[k][0]])
        return self._differing[1]

    def __getitem__(self, key: Any) -> dict:
        obj = self.built.get(key)
        if obj is None:
            compare, extra = self.rows[key]
            obj = self.built[key] = self.build(key, compare, extra)
        return obj

    def get(self, key: Any, default: Any = None) -> Any:
        return self[key] if key in self.rows else default

    def __contains__(self, key: Any) -> bool:
        return key in self.rows

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Any:
        return iter(self.rows)

    def keys(self) -> Any:
        return self.rows.keys()

    def where(self, position: int, values: Any) -> list:
        """Keys whose compare tuple holds one of ``values`` at ``position`` (without building objects)."""
        return [k for k, (c, _x) in self.rows.items() if c[position] in values]

    def values(self) -> list:
        return [self[k] for k in self.rows]

    def items(self) -> list:
        return [(k, self[k]) for k in self.rows]


# Catalog columns and functions newer than the oldest supported server (PostgreSQL 13), and what stands for
# them before: the value every object has there (no SQL-standard function body, no per-column compression,
# NULLs distinct in unique indexes). Keyed by the version that introduced them.
SINCE = {
    140000: (
        ("CASE WHEN p.prosqlbody IS NOT NULL THEN pg_get_function_sqlbody(p.oid) ELSE p.prosrc END", "p.prosrc"),
        ("NULLIF(a.attcompression, '')", "NULL::text"),
        # 14 prints a procedure's IN arguments with their mode: the same procedure keeps its name across majors.
        (
            "pg_get_function_identity_arguments(p.oid), p.prokind",
            "CASE WHEN p.prokind = 'p' THEN coalesce((SELECT string_agg(CASE WHEN x.a ~ '^(INOUT|OUT|VARIADIC) ' THEN x.a"
            " ELSE 'IN ' || x.a END, ', ' ORDER BY x.i) FROM unnest(string_to_array(pg_get_function_identity_arguments(p.oid), ', '))"
            " WITH ORDINALITY AS x(a, i)), '') ELSE pg_get_function_identity_arguments(p.oid) END, p.prokind",
        ),
        # A range type's multirange: before 14 none, but an upgrade creates it under its default name (what
        # makeMultirangeTypeName() does): the same range on 13 and on 17 is no change.
        (
            _MULTIRANGE,
            "format('%%I.%%I', n.nspname, CASE WHEN strpos(t.typname, 'range') > 0"
            " THEN overlay(t.typname placing 'multirange' from strpos(t.typname, 'range') for 5) ELSE t.typname || '_multirange' END)",
        ),
    ),
    150000: (
        ("i.indnullsnotdistinct", "false"),
        # Before 15 an ICU collation's locale is in collcollate and collctype; 15 moved it to its own column.
        (
            _COLL_LOCALES,
            "CASE WHEN c.collprovider = 'i' THEN NULL ELSE c.collcollate END,"
            " CASE WHEN c.collprovider = 'i' THEN NULL ELSE c.collctype END, CASE WHEN c.collprovider = 'i' THEN c.collcollate END",
        ),
    ),
}


def for_version(sql: str, version: int) -> str:
    """``sql`` as the server of ``version`` (``server_version_num``) can run it (see :data:`SINCE`)."""
    for since, subs in SINCE.items():
        if version < since:
            for newer, older in subs:
                sql = sql.replace(newer, older)
    return sql


def collect(cur: Any, schemas: list | None, with_grants: bool = False, check_column_order: bool = False, columns: bool = True) -> dict:
    """Run the per-kind catalog queries on an open cursor (inside the caller's snapshot).

    ``columns=False`` reads only each table's column fingerprint (Q_COLUMN_FINGERPRINTS);
    :meth:`CatalogReader.read_columns` then reads the columns of the tables whose fingerprints differ.
    """
    p = {"schemas": list(schemas) if schemas else None, "grants": with_grants, "relids": None, "column_order": check_column_order}
    objects: dict = {k: {} for k in KINDS}
    server = server_version(cur)

    def rows(sql: str) -> list:
        cur.execute(for_version(sql, server), p)
        return cur.fetchall()

    for nsp, owner, acl, comment in rows(Q_SCHEMAS):
        attrs = {"comment": comment}
        _owner_attrs(attrs, owner, acl, with_grants)
        _add(objects, _obj("schema", nsp, nsp, attrs))

    for name, version, nsp, default in rows(Q_EXTENSIONS):
        info = {"definition": f"{name} {version}", "default_version": bool(default)}
        _add(objects, _obj("extension", nsp, name, {"version": version, "schema": nsp}, info))

    for nsp, name, typtype, items, base, notnull, default, collation, comment, owner, acl in rows(Q_TYPES):
        if typtype == "e":
            attrs = {"labels": list(items or []), "comment": comment}
            kind, definition = "enum", "ENUM (" + ", ".join(items or []) + ")"
        elif typtype == "c":
            attrs = {"attributes": list(items or []), "comment": comment}
            kind, definition = "composite_type", "(" + ", ".join(items or []) + ")"
        else:
            attrs = {"base_type": base, "not_null": notnull, "default": default, "collation": collation,
                     "constraints": [normalized_definition(c) for c in items or []], "comment": comment}  # fmt: skip
            kind, definition = "domain", f"DOMAIN {base}"
        _owner_attrs(attrs, owner, acl, with_grants)
        _add(objects, _obj(kind, nsp, name, attrs, {"definition": definition}))

    def build_sequence(key: tuple, c: tuple, extra: tuple) -> dict:
        typ, start, inc, mn, mx, cache, cycle, persistence, owned, comment = c[:10]
        attrs = {"type": typ, "start": start, "increment": inc, "minvalue": mn, "maxvalue": mx, "cache": cache, "cycle": cycle,
                 "persistence": "unlogged" if persistence == "u" else "permanent", "owned_by": owned, "comment": comment}  # fmt: skip
        if with_grants:
            attrs["owner"], attrs["grants"] = c[10], sorted(c[11] or [])
        return _obj("sequence", key[0], key[1], attrs, {"definition": f"{typ} START {start} INCREMENT {inc}"})

    objects["sequence"] = seqs = Lazy(build_sequence)
    for row in rows(Q_SEQUENCES):
        nsp, name, typ, start, inc, mn, mx, cache, cycle, persistence, deptype, owned, comment, owner, acl = row
        if deptype in ("i", "e"):
            continue  # identity sequences belong to their column; extension members to their extension
        compare = (typ, start, inc, mn, mx, cache, cycle, persistence, owned, comment) + ((owner, acl) if with_grants else ())
        seqs.rows[(nsp, name)] = (compare, None)

    for row in rows(Q_FUNCTIONS):
        nsp, name, args, prokind, result, lang, vol, strict, secdef, parallel, config, body, fdef, comment, owner, acl, oid = row
        attrs = {"returns": result, "language": lang, "volatility": _VOLATILITY[vol], "strict": strict, "security_definer": secdef,
                 "parallel": _PARALLEL[parallel], "config": list(config or []), "body": body, "comment": comment}  # fmt: skip
        if prokind == "p":
            for k in ("returns", "volatility", "strict", "parallel"):
                attrs.pop(k)
        _owner_attrs(attrs, owner, acl, with_grants)
        sig = f"{name}({args})"
        kind = "procedure" if prokind == "p" else "aggregate" if prokind == "a" else "function"
        _add(objects, _obj(kind if kind != "aggregate" else "function", nsp, sig, attrs,
                           {"definition": fdef, "proname": name, "args": args, "prokind": prokind, "oid": oid}))  # fmt: skip

    table_columns: dict = {}

    def build_table(key: tuple, c: tuple, oid: int) -> dict:
        relkind, persistence, rls, force, partkey, ispart, bound, parents, options, comment, replident = c[:11]
        attrs = {
            "kind": _RELKIND[relkind],
            "persistence": "unlogged" if persistence == "u" else "permanent",
            "partition_key": partkey,
            "partition_of": parents[0] if ispart and parents else None,
            "partition_bound": bound if ispart else None,
            "inherits": [] if ispart else list(parents or []),
            "row_security": rls,
            "force_row_security": force,
            "options": sorted(options or []),
            "replica_identity": _REPLICA_IDENTITY.get(replident, replident),
            "comment": comment,
        }
        if with_grants:
            attrs["owner"], attrs["grants"] = c[11], sorted(c[12] or [])
        return _obj("table", key[0], key[1], attrs, {"oid": oid, "columns": table_columns.get(key, [])})

    objects["table"] = tables = Lazy(build_table)
    for row in rows(Q_TABLES):
        oid, nsp, name, relkind, persistence, rls, force, partkey, ispart, bound, parents, options, owner, acl, comment, replident = row
        compare = (relkind, persistence, rls, force, partkey, ispart, bound, parents, options, comment, replident)
        tables.rows[(nsp, name)] = (compare + ((owner, acl) if with_grants else ()), oid)

    def build_column(key: tuple, c: tuple, extra: tuple) -> dict:
        typ, notnull, default, identity, generated, collation, comment, identity_options, storage, stattarget, compression = c[:11]
        table, name, attnum, relid, type_storage = extra
        attrs = {
            "type": typ,
            "nullable": not notnull,
            "default": None if generated == "s" or identity else default,
            "identity": {"a": "always", "d": "by default"}.get(identity),
            "generated": default if generated == "s" else None,
            "collation": collation,
            "comment": comment,
            "identity_options": identity_options,
            "storage": _STORAGE.get(storage, storage),
            "statistics_target": stattarget,
            "compression": _COMPRESSION.get(compression, compression),
        }
        rest = list(c[11:])
        if check_column_order:
            attrs["position"] = rest.pop(0)
        if with_grants:
            attrs["grants"] = sorted(rest.pop(0) or [])
        info = {"table": table, "column": name, "attnum": attnum, "relid": relid, "type_storage": _STORAGE.get(type_storage)}
        return _obj("column", key[0], key[1], attrs, info)

    identity_options = {(nsp, f"{table}.{col}"): opts for nsp, table, col, opts in rows(Q_IDENTITY)}
    objects["column"] = Lazy(build_column)
    column_state = {"table_columns": table_columns, "identity_options": identity_options, "order": check_column_order,
                    "grants": with_grants, "fingerprints": None}  # fmt: skip
    if columns:
        _collect_columns(rows(Q_COLUMNS), objects, column_state)
    else:
        column_state["fingerprints"] = {(nsp, t): (n, h) for nsp, t, n, h in rows(Q_COLUMN_FINGERPRINTS) if (nsp, t) in tables.rows}

    def build_constraint(key: tuple, c: tuple, extra: tuple) -> dict:
        contype, raw, deferrable, deferred, validated, comment, ref, index_valid = c
        table, name, oid = extra
        attrs = {"type": _CONTYPE[contype], "definition": Raw(f"{ref}|{raw}"), "deferrable": deferrable,
                 "initially_deferred": deferred, "validated": validated, "comment": comment}  # fmt: skip
        if index_valid is False:
            attrs["index_valid"] = False  # a constraint's index still being built on the partitions (ALTER TABLE ONLY ... ADD)
        return _obj(
            "constraint", key[0], key[1], attrs, {"table": table, "constraint": name, "contype": contype, "references": ref, "oid": oid}
        )

    objects["constraint"] = constraints = Lazy(build_constraint)
    for nsp, table, name, contype, raw, deferrable, deferred, validated, comment, ref, oid, index_valid in rows(Q_CONSTRAINTS):
        if (nsp, table) in tables.rows:
            raw = _positionless(raw)
            compare = (contype, raw, deferrable, deferred, validated, comment, ref, index_valid)
            constraints.rows[(nsp, f"{table}.{name}")] = (compare, (table, name, oid))

    for oid, nsp, name, relkind, action, comment, owner, acl, deps, options, vcols, vcomments in rows(Q_VIEWS):
        kind = "view" if relkind == "v" else "materialized_view"
        attrs = {"definition": Raw(action), "options": sorted(options or []), "columns": list(vcols or []),
                 "column_comments": dict(vcomments or {}), "comment": comment}  # fmt: skip
        _owner_attrs(attrs, owner, acl, with_grants)
        _add(objects, _obj(kind, nsp, name, attrs, {"oid": oid, "depends_on": sorted(deps or [])}))

    def build_index(key: tuple, c: tuple, extra: tuple) -> dict:
        table, method, unique, predicate, keys, comment, valid, attached_to = c
        relkind, oid = extra
        attrs = {"table": table, "method": method, "unique": unique, "keys": Raw(keys), "predicate": Raw(predicate) if predicate else None,
                 "valid": valid, "attached_to": attached_to, "comment": comment}  # fmt: skip
        return _obj("index", key[0], key[1], attrs, {"table": table, "oid": oid, "partitioned": relkind == "p"})

    objects["index"] = indexes = Lazy(build_index)
    for nsp, name, table, method, unique, predicate, keys, comment, oid, valid, relkind, attached_to in rows(Q_INDEXES):
        if (nsp, table) in tables.rows or (nsp, table) in objects["materialized_view"]:
            predicate, keys = _positionless(predicate), _positionless(keys)
            indexes.rows[(nsp, name)] = ((table, method, unique, predicate, keys, comment, valid, attached_to), (relkind, oid))

    for nsp, table, name, definition, enabled, comment in rows(Q_TRIGGERS):
        if (nsp, table) not in tables.rows:
            continue
        attrs = {"definition": normalized_definition(definition), "enabled": _TRIGGER_ENABLED.get(enabled, enabled), "comment": comment}
        _add(objects, _obj("trigger", nsp, f"{table}.{name}", attrs, {"table": table, "trigger": name, "definition": definition}))

    for nsp, table, name, cmd, permissive, roles, using, check in rows(Q_POLICIES):
        attrs = {"command": _POLCMD[cmd], "permissive": permissive, "roles": list(roles or []), "using": normalized_definition(using),
                 "with_check": normalized_definition(check)}  # fmt: skip
        definition = f"FOR {attrs['command']} TO {', '.join(attrs['roles'])}"
        _add(objects, _obj("policy", nsp, f"{table}.{name}", attrs, {"table": table, "policy": name, "definition": definition}))

    _collect_rules_and_statistics(objects, rows)
    _collect_collations_ranges_and_text_search(objects, rows)
    snap = {"objects": objects, "schemas": p["schemas"], "counts": {k: len(v) for k, v in objects.items() if v}}
    snap["columns"] = column_state
    if column_state["fingerprints"]:
        snap["counts"]["column"] = sum(n for n, _h in column_state["fingerprints"].values())
    snap["column_dependents"] = {}  # filled by CatalogReader.resolve for the columns that differ
    snap["not_compared"] = not_compared = {}
    for kind, name in rows(Q_NOT_COMPARED):
        not_compared.setdefault(kind, []).append(name)
    if with_grants:
        snap["acl_defaults"] = {(k, role): acl or [] for k, role, acl in rows(Q_ACL_DEFAULTS)}
    return snap


def _collect_columns(rows: list, objects: dict, state: dict) -> None:
    """Column rows of Q_COLUMNS into ``objects["column"]`` (compact, see Lazy) and each table's column names."""
    tables, columns = objects["table"].rows, objects["column"].rows
    table_columns, identity_options = state["table_columns"], state["identity_options"]
    for row in rows:
        nsp, table, name, attnum, typ, notnull, default, identity, generated, collation, local, comment, acl, relid = row[:14]
        storage, stattarget, compression, type_storage = row[14:]
        if (nsp, table) not in tables:
            continue  # a table that belongs to an extension
        names = table_columns.setdefault((nsp, table), [])
        names.append(name)
        if not local:
            continue  # inherited from a parent (partitions, inheritance): reported once, on the parent
        if generated == "s" and default is not None:
            default = Raw(default)  # a generation expression reads columns: deparsed only when it differs
        else:
            default = normalized_definition(default)  # as printed after a restore (see pg_reprint)
        key = (nsp, f"{table}.{name}")
        compare = (typ, notnull, default, identity, generated, collation, comment, identity_options.get(key) if identity else None,
                   storage, stattarget, compression)  # fmt: skip
        if state["order"]:
            compare += (len(names),)
        if state["grants"]:
            compare += (acl,)
        columns[key] = (compare, (table, name, attnum, relid, type_storage))


def differing_column_tables(source: dict, target: dict) -> set:
    """Tables (schema, name) whose columns must be read on both sides: their column fingerprints or identity options differ."""
    fa, fb = source["columns"]["fingerprints"], target["columns"]["fingerprints"]
    tables = {k for k in fa.keys() | fb.keys() if fa.get(k) != fb.get(k)}
    ia, ib = source["columns"]["identity_options"], target["columns"]["identity_options"]
    tables.update((k[0], k[1].split(".", 1)[0]) for k in ia.keys() | ib.keys() if ia.get(k) != ib.get(k))
    return tables


def _collect_collations_ranges_and_text_search(objects: dict, rows: Any) -> None:
    for nsp, name, provider, deterministic, collate, ctype, icu, comment in rows(Q_COLLATIONS):
        provider = {"i": "icu", "c": "libc", "d": "default"}.get(provider, provider)
        attrs = {"provider": provider, "deterministic": deterministic, "locale": icu if provider == "icu" else None,
                 "lc_collate": collate if provider != "icu" else None, "lc_ctype": ctype if provider != "icu" else None,
                 "comment": comment}  # fmt: skip
        _add(objects, _obj("collation", nsp, name, attrs, {"definition": f"COLLATION ({provider})"}))
    for nsp, name, parser, mappings, comment in rows(Q_TS_CONFIGS):
        attrs = {"parser": parser, "mappings": list(mappings or []), "comment": comment}
        _add(objects, _obj("text_search_configuration", nsp, name, attrs, {"definition": f"PARSER = {parser}"}))
    for nsp, name, subtype, opclass, collation, canonical, subdiff, multirange, comment in rows(Q_RANGES):
        attrs = {"subtype": subtype, "subtype_opclass": opclass, "collation": collation, "canonical": canonical,
                 "subtype_diff": subdiff, "multirange": multirange, "comment": comment}  # fmt: skip
        _add(objects, _obj("range_type", nsp, name, attrs, {"definition": f"RANGE ({subtype})"}))


def _collect_rules_and_statistics(objects: dict, rows: Any) -> None:
    for nsp, table, name, definition, enabled, comment in rows(Q_RULES):
        attrs = {"definition": definition, "enabled": _TRIGGER_ENABLED.get(enabled, enabled), "comment": comment}
        _add(objects, _obj("rule", nsp, f"{table}.{name}", attrs, {"table": table, "rule": name, "definition": definition}))
    for nsp, name, definition, target, comment, tnsp, table in rows(Q_STATISTICS):
        attrs = {"definition": definition, "statistics_target": target, "comment": comment}
        _add(objects, _obj("statistics", nsp, name, attrs, {"definition": definition, "table": (tnsp, table)}))
