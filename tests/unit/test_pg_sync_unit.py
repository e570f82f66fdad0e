"""Continuous sync library code that needs no server: names, connection strings, classification of
migrations, replica identity rules."""

from __future__ import annotations

from ansible_collections.dualboot.db.plugins.module_utils import pg_sync
from ansible_collections.dualboot.db.plugins.module_utils.postgresql import PgConnection


def col(name: str, change: str, attribute=None, before=None, after=None, table="users") -> dict:
    return {"kind": "column", "schema": "public", "name": f"{table}.{name}", "change": change, "attribute": attribute,
            "before": before, "after": after, "hazards": []}  # fmt: skip


def test_stream_names_are_valid_slot_names_and_stay_distinct_when_cut():
    assert pg_sync.stream_name("shop", "green") == "dualboot_shop_green"
    assert pg_sync.stream_name("Shop.EU-1", "Green") == "dualboot_shop_eu_1_green"
    long_a = pg_sync.stream_name("x" * 60, "blue")
    long_b = pg_sync.stream_name("x" * 60, "green")
    assert len(long_a) == 63 and len(long_b) == 63 and long_a != long_b
    assert set(long_a) <= set("abcdefghijklmnopqrstuvwxyz0123456789_")


def test_conninfo_quotes_values_and_labels_never_hold_the_password():
    conn = PgConnection(dbname="shop's db", host="db1", port=5433, user="app", password="p'w\\d")
    info = pg_sync.conninfo(conn, {"host": "10.0.0.1"})
    assert "host='10.0.0.1'" in info and "port='5433'" in info
    assert "dbname='shop\\'s db'" in info and "password='p\\'w\\\\d'" in info
    label = pg_sync.conninfo_label(conn, {"host": "10.0.0.1"})
    assert label == "app@10.0.0.1:5433/shop's db" and "p'w" not in label
    assert "password" not in pg_sync.conninfo(PgConnection(dbname="d", host="h"))


def test_r1_is_refused_and_r3_passes():
    replicated = {"public.users"}
    r1 = [col("full_name", "added", after="text"), col("user_name", "removed", before="character varying(255)")]
    refused, _cautions = pg_sync.classify(r1, replicated, {}, {})
    assert refused == ["column public.users.user_name is dropped or renamed, but the default entry keeps writing it"]
    r3 = [col("last_login", "added", after="timestamp without time zone")]
    assert pg_sync.classify(r3, replicated, {}, {}) == ([], [])


def test_classification_of_column_and_constraint_changes():
    replicated = {"public.users"}
    cases = [
        (col("x", "added", after="integer NOT NULL"), "NOT NULL without a default"),
        (col("x", "modified", "type", "integer", "bigint"), "changes type"),
        (col("x", "modified", "nullable", True, False), "becomes NOT NULL"),
        (
            {
                "kind": "constraint",
                "schema": "public",
                "name": "users.users_pkey",
                "change": "modified",
                "attribute": "definition",
                "before": "PRIMARY KEY (id)",
                "after": "PRIMARY KEY (id, v)",
            },
            "primary key",
        ),  # fmt: skip
        (
            {
                "kind": "table",
                "schema": "public",
                "name": "users",
                "change": "removed",
                "attribute": None,
                "before": "table",
                "after": None,
            },
            "dropped or renamed",
        ),  # fmt: skip
    ]
    for record, expected in cases:
        refused = pg_sync.classify([record], replicated, {}, {})[0]
        assert len(refused) == 1 and expected in refused[0], (record, refused)
    # Allowed: a default, a nullable or defaulted column, anything on a table the stream does not carry.
    fine = [
        col("y", "added", after="integer DEFAULT 0 NOT NULL"),
        col("z", "added", after="integer GENERATED ALWAYS AS (1) STORED NOT NULL"),
        col("creation_date", "modified", "default", None, "now()"),
        col("id", "added", after="integer NOT NULL", table="profiles"),
    ]
    assert pg_sync.classify(fine, replicated, {}, {}) == ([], [])
    # Table attributes a stream carries on: row security (the attribute names the schema diff reports).
    for attribute in ("row_security", "force_row_security", "comment"):
        table = {"kind": "table", "schema": "public", "name": "users", "change": "modified", "attribute": attribute}
        assert pg_sync.classify([{**table, "before": False, "after": True}], replicated, {}, {}) == ([], []), attribute


def test_cautions_for_unique_indexes_constraints_and_triggers():
    replicated = {"public.users"}
    records = [
        {
            "kind": "index",
            "schema": "public",
            "name": "users_name_idx",
            "change": "added",
            "attribute": None,
            "before": None,
            "after": "CREATE UNIQUE INDEX users_name_idx ON public.users USING btree (user_name)",
        },  # fmt: skip
        {
            "kind": "constraint",
            "schema": "public",
            "name": "users.c",
            "change": "added",
            "attribute": None,
            "before": None,
            "after": "CHECK ((user_id > 0))",
        },  # fmt: skip
        {
            "kind": "trigger",
            "schema": "public",
            "name": "users.tr",
            "change": "added",
            "attribute": None,
            "before": None,
            "after": "CREATE TRIGGER tr ...",
        },  # fmt: skip
    ]
    refused, cautions = pg_sync.classify(records, replicated, {}, {})
    assert refused == [] and len(cautions) == 3
    refused = pg_sync.classify([], replicated, {"public.users": "default"}, {"public.users": "full"})[0]
    assert refused == ["the replica identity of public.users changes (default -> full)"]


def test_replica_identity_rules():
    base = {"replica_identity": "default", "has_pk": True, "has_ri_index": False}
    assert pg_sync.identity_problem(base) is None
    assert "no primary key" in pg_sync.identity_problem({**base, "has_pk": False})
    assert pg_sync.identity_problem({**base, "has_pk": False, "replica_identity": "full"}) is None
    assert "NOTHING" in pg_sync.identity_problem({**base, "replica_identity": "nothing"})
    assert pg_sync.identity_problem({**base, "has_pk": False, "replica_identity": "index", "has_ri_index": True}) is None


def test_fingerprint_changes_with_a_column_and_not_with_order_of_tables():
    a = {"public.a": [{"name": "id", "type": "integer", "not_null": True}], "public.b": [{"name": "x", "type": "text", "not_null": False}]}
    b = dict(reversed(list(a.items())))
    assert pg_sync.fingerprint(a) == pg_sync.fingerprint(b)
    c = {**a, "public.b": [{"name": "x", "type": "varchar", "not_null": False}]}
    assert pg_sync.fingerprint(a) != pg_sync.fingerprint(c)


def test_only_a_column_list_that_leaves_a_column_out_is_kept():
    """A publication column list needs PostgreSQL 15; a list naming every published column is the whole table."""
    cols = {
        "public.users": [
            {"name": "id", "generated": False},
            {"name": "name", "generated": False},
            {"name": "upper_name", "generated": True},  # never published: not a column the list leaves out
        ],
        "public.events": [{"name": "id", "generated": False}, {"name": "last_login", "generated": False}],
    }
    lists = {"public.users": ["name", "id"], "public.events": ["id"]}
    assert pg_sync.partial_lists(lists, cols) == {"public.events": ["id"]}
    assert pg_sync.partial_lists(None, cols) == {}
