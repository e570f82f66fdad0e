"""The diff engine on hand-made snapshots (no server): records, hazards, renames, SQL order."""

from __future__ import annotations

from ansible_collections.dualboot.db.plugins.module_utils import pg_diff
from ansible_collections.dualboot.db.plugins.module_utils.pg_catalog import KINDS, column_definition, qident


def snapshot(columns: dict, views: dict | None = None) -> dict:
    objects = {k: {} for k in KINDS}
    objects["table"][("public", "users")] = {
        "kind": "table",
        "schema": "public",
        "name": "users",
        "attrs": {"kind": "table", "persistence": "permanent", "partition_key": None, "partition_of": None, "partition_bound": None,
                  "inherits": [], "row_security": False, "force_row_security": False, "options": [], "comment": None},
        "info": {"oid": 1, "columns": list(columns)},
    }  # fmt: skip
    for i, (name, (typ, attnum)) in enumerate(columns.items()):
        attrs = {"type": typ, "nullable": True, "default": None, "identity": None, "generated": None, "collation": None, "comment": None}
        objects["column"][("public", f"users.{name}")] = {
            "kind": "column",
            "schema": "public",
            "name": f"users.{name}",
            "attrs": attrs,
            "info": {"table": "users", "column": name, "attnum": attnum, "definition": column_definition(attrs), "i": i},
        }
    for name, deps in (views or {}).items():
        objects["view"][("public", name)] = {
            "kind": "view",
            "schema": "public",
            "name": name,
            "attrs": {"definition": f"SELECT * FROM {deps[0]}", "options": [], "comment": None},
            "info": {"oid": 10, "depends_on": deps, "definition": "..."},
        }
    # pg_depend: each view reads every column of the table it selects from
    readers = {("public", f"users.{c}"): [f"rule _RETURN on view {v}" for v, deps in (views or {}).items()] for c in columns if views}
    return {"objects": objects, "column_dependents": readers}


def test_r1_rename_in_place_is_flagged_with_hazards():
    a = snapshot({"user_id": ("integer", 1), "user_name": ("character varying(255)", 2)}, views={"v": ["public.users"]})
    b = snapshot({"user_id": ("integer", 1), "full_name": ("text", 2)}, views={"v": ["public.users"]})
    records = pg_diff.diff(a, b)
    assert [(r["name"], r["change"]) for r in records] == [("users.full_name", "added"), ("users.user_name", "removed")]
    removed = records[1]
    assert removed["possible_rename"] == {"to": "full_name"}
    assert removed["hazards"] == ["deletes_data", "access_exclusive_lock", "breaks_dependents"]
    assert pg_diff.possible_renames(records) == [
        {"kind": "column", "schema": "public", "table": "users", "before": "user_name", "after": "full_name"}
    ]
    sql = pg_diff.suggested_sql(records, a, b)
    # renamed in place (same attribute number): RENAME COLUMN keeps the data, then the type changes;
    # the dependent view is dropped before and created again after
    rename = sql.index("ALTER TABLE public.users RENAME COLUMN user_name TO full_name;")
    retype = sql.index("ALTER TABLE public.users ALTER COLUMN full_name TYPE text USING full_name::text;")
    assert not [s for s in sql if "DROP COLUMN" in s or "ADD COLUMN" in s]
    assert sql.index("DROP VIEW IF EXISTS public.v;") < rename < retype < next(i for i, s in enumerate(sql) if s.startswith("CREATE VIEW"))


def test_same_type_pair_is_a_possible_rename_but_new_types_are_not():
    a = snapshot({"a": ("integer", 1), "b": ("text", 2)})
    b = snapshot({"a": ("integer", 1), "c": ("text", 3)})
    assert pg_diff.possible_renames(pg_diff.diff(a, b))[0]["after"] == "c"
    b = snapshot({"a": ("integer", 1), "c": ("jsonb", 3)})
    assert pg_diff.possible_renames(pg_diff.diff(a, b)) == []


def test_type_change_hazards():
    assert pg_diff._type_change_rewrites("character varying(10)", "character varying(40)") == (False, False)
    assert pg_diff._type_change_rewrites("character varying(40)", "character varying(10)") == (False, True)
    assert pg_diff._type_change_rewrites("character varying(255)", "text") == (False, False)
    assert pg_diff._type_change_rewrites("integer", "bigint") == (True, True)
    a = snapshot({"n": ("integer", 1)})
    b = snapshot({"n": ("bigint", 1)})
    (r,) = pg_diff.diff(a, b)
    assert (r["change"], r["attribute"], r["before"], r["after"]) == ("modified", "type", "integer", "bigint")
    assert r["hazards"] == ["rewrites_table", "access_exclusive_lock", "may_fail_on_existing_data"]
    assert pg_diff.describe(r) == (
        "table public.users: column n type changed: integer -> bigint "
        "(rewrites the table, takes an ACCESS EXCLUSIVE lock, may fail on existing data)"
    )


def test_identifiers_are_quoted_in_suggested_sql():
    assert qident("users") == "users" and qident("User") == '"User"' and qident("select") == '"select"' and qident('a"b') == '"a""b"'


def test_records_sort_stably():
    a = snapshot({"z": ("integer", 1), "a": ("integer", 2)})
    b = snapshot({})
    names = [r["name"] for r in pg_diff.diff(a, b)]
    assert names == ["users.a", "users.z"] == [r["name"] for r in pg_diff.diff(a, b)]


def test_node_trees_compare_without_parse_positions():
    from ansible_collections.dualboot.db.plugins.module_utils.pg_catalog import _positionless

    written = "{OPEXPR :opno 525 :args ({VAR :varno 1 :location 61} {CONST :constvalue 4 :location -1}) :location 63}"
    restored = "{OPEXPR :opno 525 :args ({VAR :varno 1 :location 7} {CONST :constvalue 4 :location -1}) :location 9}"
    assert _positionless(written) == _positionless(restored) == "{OPEXPR :opno 525 :args ({VAR :varno 1} {CONST :constvalue 4})}"
    assert _positionless(None) is None
    assert _positionless("{1 2}|f|a") == "{1 2}|f|a"


def test_aclitems_parse_with_quoted_roles_and_turn_into_revoke_and_grant():
    assert pg_diff.parse_aclitem('"Diff ""W"" er"=r*w/postgres') == ('Diff "W" er', "r*w", "postgres")
    assert pg_diff.parse_aclitem("=X/owner") == ("", "X", "owner")
    before = ["owner=arwdDxt/owner", "reader=r/owner", "=r/owner"]
    after = ["owner=arwdDxt/owner", "reader=r*a/owner", "Writer=w/owner"]
    assert pg_diff.acl_statements(before, after, "TABLE public.t") == [
        "REVOKE SELECT ON TABLE public.t FROM PUBLIC;",
        'GRANT UPDATE ON TABLE public.t TO "Writer";',
        "GRANT INSERT ON TABLE public.t TO reader;",
        "GRANT SELECT ON TABLE public.t TO reader WITH GRANT OPTION;",
    ]
    assert pg_diff.acl_statements(["r=r*/o"], ["r=r/o"], "TABLE t", "c") == ["REVOKE GRANT OPTION FOR SELECT (c) ON TABLE t FROM r;"]
    assert pg_diff._acl_new_owner("old=arwdDxt/old", "old", "New One") == '"New One"=arwdDxt/"New One"'
