"""postgresql_compare against real servers: R1/R2/R5 checks, key-range streaming, mismatch reports."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from ansible_collections.dualboot.db.plugins.module_utils import pg_compare
from ansible_collections.dualboot.db.plugins.module_utils.errors import IntegrityError, InvalidInput

DATA = """
CREATE TABLE users (user_id serial PRIMARY KEY, user_name varchar(255), creation_date timestamp);
INSERT INTO users (user_name, creation_date)
  SELECT 'user ' || i, timestamp '2025-01-01' + i * interval '37 minutes' FROM generate_series(1, 2000) i;
CREATE TABLE orders (shop int, no int, amount numeric(10,2), paid float8, tags text[], meta jsonb, PRIMARY KEY (shop, no));
INSERT INTO orders SELECT i % 5, i, i * 1.25, i / 7.0, ARRAY['a', 'b' || i], jsonb_build_object('i', i) FROM generate_series(1, 1500) i;
CREATE TABLE events (kind text, at timestamptz);  -- no key: compared as one range
INSERT INTO events SELECT 'k' || (i % 3), timestamptz '2025-06-01 00:00+02' + i * interval '1 second' FROM generate_series(1, 300) i;
"""


@pytest.fixture
def pair(pg, pg2):
    a, b = pg.create_database(), pg2.create_database()  # two servers: a copy across hosts
    a.execute(DATA)
    b.execute(DATA)
    yield a, b
    pg.drop_database(a.name)
    pg2.drop_database(b.name)


@contextmanager
def twins(pg, *statements):
    """Two databases on ``pg`` made by the same statements; dropped afterwards."""
    a, b = pg.create_database(), pg.create_database()
    try:
        for db in (a, b):
            for stmt in statements:
                db.execute(stmt)
        yield a, b
    finally:
        pg.drop_database(a.name)
        pg.drop_database(b.name)


def args(a, b, **extra):
    return {"source": {**a.params}, "target": {**b.params}, **extra}


def test_r5_identical_copies_are_equal_with_throughput(pair, run_module):
    a, b = pair
    r = run_module("postgresql_compare", args(a, b, chunk_rows=300), check=True)
    assert not r.failed, r.msg
    assert r["equal"] and not r.changed and r["problems"] == []
    by = {t["table"]: t for t in r["tables"]}
    assert by["public.users"]["ranges"] == 7 and by["public.users"]["source_rows"] == by["public.users"]["target_rows"] == 2000
    assert by["public.users"]["method"] == "key ranges (one pass)"
    assert by["public.orders"]["key"] == ["shop", "no"] and by["public.orders"]["method"] == "key ranges (one pass, sampled bounds)"
    assert by["public.events"]["method"] == "whole table"
    assert r["rows"] == 2 * (2000 + 1500 + 300) and r["bytes"] > 100_000 and r["mb_per_s"] > 0
    assert "MB/s" in r["summary"]


def test_changed_row_is_reported_by_range_without_contents(pair, run_module):
    a, b = pair
    b.execute("UPDATE users SET user_name = 'secret-value' WHERE user_id = 1234")
    r = run_module("postgresql_compare", args(a, b, chunk_rows=500))
    assert r.failed and r["error"] == "IntegrityError"
    assert "table public.users: content differs in 1 key range(s) (same row count 2000)" in r.msg
    assert "range after {'user_id': 1000} through {'user_id': 1500}" in r.msg
    assert "secret-value" not in r.output and "user 1234" not in r.output
    r = run_module("postgresql_compare", args(a, b, chunk_rows=500, show_rows=True, fail_on_mismatch=False))
    assert not r.failed and not r["equal"]
    (rng,) = next(t for t in r["tables"] if t["table"] == "public.users")["mismatched_ranges"]
    assert rng["rows"] == [{"key": {"user_id": 1234}, "source": rng["rows"][0]["source"], "target": rng["rows"][0]["target"]}]
    assert "user 1234" in rng["rows"][0]["source"] and "secret-value" in rng["rows"][0]["target"]


def test_missing_extra_rows_and_tables(pair):
    a, b = pair
    b.execute("DELETE FROM orders WHERE no = 7; INSERT INTO users (user_id, user_name) VALUES (99999, 'extra'); DROP TABLE events")
    b.execute("CREATE TABLE brand_new (id int)")
    with pytest.raises(IntegrityError) as err:
        pg_compare.compare(a.conn, b.conn, chunk_rows=400)
    d = err.value.details
    assert "table public.orders: 1500 rows on source, 1499 on target" in d["problems"]
    assert "table public.users: 2000 rows on source, 2001 on target" in d["problems"]
    users = next(t for t in d["tables"] if t["table"] == "public.users")
    extra = users["mismatched_ranges"][-1]
    assert (extra["source_rows"], extra["target_rows"]) == (0, 1)
    assert extra["after"]["user_id"] < 99999 <= extra["through"]["user_id"]
    orders = next(t for t in d["tables"] if t["table"] == "public.orders")
    assert orders["method"] == "key ranges (one pass, sampled bounds)" and orders["ranges"] > 1
    assert orders["range_key"] == ["shop"]  # 5 shops of 300 rows cut 1500 rows into ranges of about 400
    (rng,) = orders["mismatched_ranges"]
    assert rng["target_rows"] == rng["source_rows"] - 1
    low, high = (rng["from"] or {"shop": -1}), (rng["before"] or {"shop": 99})
    assert low["shop"] <= 2 < high["shop"]  # the deleted row (7 % 5 = 2, 7)
    assert any(p.startswith("  public.orders range from ") for p in d["problems"])
    assert d["tables_only_in_source"] == ["public.events"] and d["tables_only_in_target"] == ["public.brand_new"]


def test_r1_mapping_and_r2_assertions(pair, run_module):
    a, b = pair
    b.execute("ALTER TABLE users RENAME COLUMN user_name TO full_name; ALTER TABLE users ALTER COLUMN full_name TYPE text")
    mapping = {
        "table": "users",
        "source_query": "SELECT user_id, user_name FROM users",
        "target_query": "SELECT user_id, full_name FROM users",
    }
    r = run_module("postgresql_compare", args(a, b, mappings=[mapping]))
    assert not r.failed, r.msg
    assert r["mappings"][0]["equal"] and all(t["table"] != "public.users" for t in r["tables"])
    b.execute("UPDATE users SET full_name = upper(full_name) WHERE user_id = 5")
    r = run_module("postgresql_compare", args(a, b, mappings=[mapping]))
    assert r.failed and "mapping users: same row count 2000, content differs" in r.msg

    b.execute(
        """CREATE TABLE user_profiles (profile_id serial PRIMARY KEY, user_id integer REFERENCES users(user_id), profile_data jsonb);
        INSERT INTO user_profiles (user_id, profile_data)
          SELECT user_id, jsonb_build_object('name', full_name, 'created', creation_date) FROM users;
        ALTER TABLE users DROP COLUMN full_name, DROP COLUMN creation_date"""
    )
    checks = [
        {
            "name": "one profile per user",
            "source_query": "SELECT count(*) FROM users",
            "target_query": "SELECT count(*) FROM user_profiles",
        },
        {"name": "no nameless profile", "query": "SELECT count(*) FROM user_profiles WHERE profile_data->>'name' IS NULL", "expect": 0},
        {"name": "wrong on purpose", "query": "SELECT count(*) FROM user_profiles", "expect": 1999},
    ]
    r = run_module("postgresql_compare", args(a, b, exclude=["users"], assertions=checks))
    assert r.failed
    assert [x["ok"] for x in r["assertions"]] == [True, True, False]
    assert r["assertions"][0]["source_value"] == 2000 == r["assertions"][0]["target_value"]
    assert "assertion wrong on purpose: got 2000, expected 1999" in r.msg


def test_snapshot_is_consistent_while_writes_continue(pair):
    """Rows committed on the source after the comparison started are not seen half-way."""
    a, b = pair
    side = pg_compare._Side(a.conn)
    try:
        a.execute("INSERT INTO users (user_name) SELECT 'late' FROM generate_series(1, 10)")
        (n,) = side.query("SELECT count(*) FROM public.users")[0]
        assert n == 2000
    finally:
        side.close()


def test_bad_input_is_refused_clearly(pair):
    a, b = pair
    with pytest.raises(InvalidInput, match="must have either query and expect"):
        pg_compare.compare(a.conn, b.conn, assertions=[{"name": "x", "query": "SELECT 1"}])
    with pytest.raises(InvalidInput, match="match no table"):
        pg_compare.compare(a.conn, b.conn, tables=["nope"])
    with pytest.raises(InvalidInput, match="mapping users source_query failed"):
        pg_compare.compare(a.conn, b.conn, mappings=[{"table": "users", "source_query": "SELECT nope", "target_query": "SELECT 1"}])


FINGERPRINT = """
CREATE COLLATION IF NOT EXISTS ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE TABLE kinds (id uuid PRIMARY KEY, n int, big bigint, label varchar(20), name text COLLATE ci, at timestamptz,
  day date, ok boolean, raw bytea, price numeric(10,2), ratio float8, doc json, spot point, span interval);
INSERT INTO kinds SELECT md5(i::text)::uuid, i, i * 1000000000::bigint, 'label ' || i, 'Name ' || i,
  timestamptz '2025-01-01 12:00+00' + i * interval '1 hour', date '2025-01-01' + i, i % 2 = 0, decode(md5(i::text), 'hex'),
  i * 1.25, CASE WHEN i = 17 THEN 0 ELSE i / 3.0 END, json_build_object('i', i), point(i, i), i * interval '1 minute'
  FROM generate_series(1, 400) i;
"""
CHANGES = [
    ("n", "UPDATE kinds SET n = -1 WHERE n = 17"),
    ("label", "UPDATE kinds SET label = 'label 17 ' WHERE n = 17"),  # a trailing blank
    ("name", "UPDATE kinds SET name = 'NAME 17' WHERE n = 17"),  # equal under the case-insensitive collation
    ("at", "UPDATE kinds SET at = at + interval '1 microsecond' WHERE n = 17"),
    ("raw", "UPDATE kinds SET raw = raw || '\\x00'::bytea WHERE n = 17"),
    ("price", "UPDATE kinds SET price = price + 0.01 WHERE n = 17"),
    ("ratio", "UPDATE kinds SET ratio = '-0'::float8 WHERE n = 17"),  # equal to 0, printed -0
    ("doc", "UPDATE kinds SET doc = '{\"i\": 17.0}' WHERE n = 17"),
    ("span", "UPDATE kinds SET span = span + interval '1 day' - interval '24 hours' WHERE n = 17"),  # equal, printed differently
]


@pytest.mark.parametrize("column,change", CHANGES, ids=[change[0] for change in CHANGES])
def test_every_printed_difference_is_found_whatever_the_type(pg, column, change):
    """Columns are hashed as themselves only where that agrees with their text: no change that prints differently is missed."""
    with twins(pg, FINGERPRINT) as (a, b):
        assert pg_compare.compare(a.conn, b.conn)["equal"]
        b.execute(change)
        r = pg_compare.compare(a.conn, b.conn, fail_on_mismatch=False)
        assert not r["equal"], f"a change of {column} was missed"
        (t,) = r["tables"]
        assert t["mismatches"] == 1 and t["source_rows"] == t["target_rows"] == 400


def test_a_migration_that_widens_types_compares_by_value_as_printed(pg):
    """int -> bigint, varchar(20) -> text, numeric(10,2) -> numeric(12,2): same text, so equal; numeric scale change: not."""
    table = "CREATE TABLE t (id int PRIMARY KEY, v varchar(20), p numeric(10,2))"
    with twins(pg, table, "INSERT INTO t SELECT i, 'v' || i, i / 4.0 FROM generate_series(1, 100) i") as (a, b):
        b.execute("ALTER TABLE t ALTER COLUMN id TYPE bigint, ALTER COLUMN v TYPE text, ALTER COLUMN p TYPE numeric(12,2)")
        assert pg_compare.compare(a.conn, b.conn)["equal"]
        b.execute("ALTER TABLE t ALTER COLUMN p TYPE numeric(12,3)")  # 0.25 prints 0.250 now
        assert not pg_compare.compare(a.conn, b.conn, fail_on_mismatch=False)["equal"]


def test_servers_without_hash_record_extended_hash_the_row_text(pair, monkeypatch):
    """PostgreSQL 13 and older: the fingerprint is the row text's hash (forced here on 15)."""
    a, b = pair
    monkeypatch.setattr(pg_compare, "NATIVE_FROM", 10**9)
    r = pg_compare.compare(a.conn, b.conn, chunk_rows=400)
    assert r["equal"] and r["bytes"] > 100_000
    b.execute("UPDATE orders SET amount = 12.50 WHERE no = 10")  # 12.50 was 12.50: no change
    b.execute("UPDATE events SET kind = 'K0' WHERE kind = 'k0' AND at = (SELECT min(at) FROM events WHERE kind = 'k0')")
    r = pg_compare.compare(a.conn, b.conn, chunk_rows=400, fail_on_mismatch=False)
    assert [t["table"] for t in r["tables"] if not t["equal"]] == ["public.events"]


SAMPLED = """
CREATE TYPE tier AS ENUM ('gold', 'silver');
CREATE TABLE people (email text PRIMARY KEY, name text);
INSERT INTO people SELECT 'User' || i || '@example.org', 'name ' || i FROM generate_series(1, 3000) i;
CREATE TABLE members (t tier, id int, since date, PRIMARY KEY (t, id));
INSERT INTO members SELECT CASE WHEN i % 2 = 0 THEN 'gold'::tier ELSE 'silver' END, i, date '2020-01-01' + i
  FROM generate_series(1, 1000) i;
CREATE TABLE parts (region text, id int, v int, PRIMARY KEY (region, id)) PARTITION BY LIST (region);
CREATE TABLE parts_eu PARTITION OF parts FOR VALUES IN ('eu');
CREATE TABLE parts_us PARTITION OF parts FOR VALUES IN ('us');
INSERT INTO parts SELECT CASE WHEN i % 2 = 0 THEN 'eu' ELSE 'us' END, i, i FROM generate_series(1, 1000) i;
ANALYZE;
"""


def test_sampled_ranges_for_text_keys_and_the_index_walk_for_the_rest(pg):
    """Text and composite keys: ranges cut at sampled keys, one pass per side; enum keys and partitioned tables: index walk."""
    with twins(pg, SAMPLED) as (a, b):
        r = pg_compare.compare(a.conn, b.conn, chunk_rows=250)
        by = {t["table"]: t for t in r["tables"]}
        assert by["public.people"]["method"] == "key ranges (one pass, sampled bounds)" and by["public.people"]["ranges"] > 5
        assert by["public.members"]["method"] == "key ranges" and by["public.parts"]["method"] == "key ranges"
        assert r["equal"]
        b.execute("UPDATE people SET name = 'changed' WHERE email = 'User2024@example.org'")
        b.execute("UPDATE members SET since = since + 1 WHERE id = 500; UPDATE parts SET v = -v WHERE id = 501")
        r = pg_compare.compare(a.conn, b.conn, chunk_rows=250, show_rows=True, fail_on_mismatch=False)
        by = {t["table"]: t for t in r["tables"]}
        assert [t for t in by if not by[t]["equal"]] == ["public.members", "public.parts", "public.people"]
        (rng,) = by["public.people"]["mismatched_ranges"]
        # bytewise ("C") order on both sides, whatever the databases' collation
        assert (
            (rng["from"] or {"email": ""})["email"].encode()
            <= b"User2024@example.org"
            < (rng["before"] or {"email": "~"})["email"].encode()
        )
        assert rng["rows"] == [
            {"key": {"email": "User2024@example.org"}, "source": rng["rows"][0]["source"], "target": rng["rows"][0]["target"]}
        ]
        assert "changed" in rng["rows"][0]["target"] and "changed" not in rng["rows"][0]["source"]


LEADING = """
CREATE TABLE spread (shop int, no int, note text, PRIMARY KEY (shop, no));  -- 40 shops: cut on shop alone
INSERT INTO spread SELECT i % 40, i, 'n' || i FROM generate_series(1, 4000) i;
CREATE TABLE few (tenant text, no int, note text, PRIMARY KEY (tenant, no));  -- 2 tenants: cut on both columns
INSERT INTO few SELECT CASE WHEN i % 2 = 0 THEN 'acme' ELSE 'zeta' END, i, 'n' || i FROM generate_series(1, 4000) i;
CREATE TABLE skewed (shop int, no int, note text, PRIMARY KEY (shop, no));  -- one shop holds half the rows
INSERT INTO skewed SELECT CASE WHEN i <= 2000 THEN 0 ELSE i % 40 + 1 END, i, 'n' || i FROM generate_series(1, 4000) i;
ANALYZE;
"""


def test_composite_keys_are_cut_on_the_fewest_leading_columns_that_keep_ranges_small(pg):
    """A range cut on one leading column is far cheaper to find than one cut on a ROW of columns; it is
    used only where no range (in the sample) would hold more than twice the rows asked for."""
    with twins(pg, LEADING) as (a, b):
        r = pg_compare.compare(a.conn, b.conn, chunk_rows=400)
        by = {t["table"]: t for t in r["tables"]}
        assert r["equal"]
        assert by["public.spread"]["range_key"] == ["shop"] and by["public.spread"]["ranges"] >= 8
        assert by["public.few"]["range_key"] == ["tenant", "no"] and by["public.few"]["ranges"] >= 8
        assert by["public.skewed"]["range_key"] == ["shop", "no"]
        b.execute("UPDATE spread SET note = 'x' WHERE no = 1234; UPDATE few SET note = 'x' WHERE no = 1234")
        b.execute("UPDATE skewed SET note = 'x' WHERE no = 1234")
        r = pg_compare.compare(a.conn, b.conn, chunk_rows=400, show_rows=True, fail_on_mismatch=False)
        for table in ("public.spread", "public.few", "public.skewed"):
            (rng,) = next(t for t in r["tables"] if t["table"] == table)["mismatched_ranges"]
            assert [row["key"]["no"] for row in rng["rows"]] == [1234], (table, rng)
        (rng,) = next(t for t in r["tables"] if t["table"] == "public.spread")["mismatched_ranges"]
        assert set(rng["from"] or {"shop": 0}) == {"shop"} and (rng["from"] or {"shop": 0})["shop"] <= 1234 % 40


INCLUDED = """
CREATE TABLE actor (actor_id int NOT NULL, first_name text NOT NULL, last_name text, PRIMARY KEY (actor_id) INCLUDE (first_name));
INSERT INTO actor SELECT i, 'first ' || i, 'last ' || i FROM generate_series(1, 600) i;
CREATE TABLE listed (code text NOT NULL, note text, UNIQUE (code) INCLUDE (note));  -- nullable INCLUDE column: still a key
INSERT INTO listed SELECT 'c' || i, CASE WHEN i % 3 = 0 THEN NULL ELSE 'n' || i END FROM generate_series(1, 600) i;
CREATE TABLE payload (id int NOT NULL, region text NOT NULL, doc json NOT NULL, spot point NOT NULL, body xml NOT NULL,
  PRIMARY KEY (region, id) INCLUDE (doc, spot, body)) PARTITION BY LIST (region);
CREATE TABLE payload_eu PARTITION OF payload FOR VALUES IN ('eu');
CREATE TABLE payload_us PARTITION OF payload FOR VALUES IN ('us');
INSERT INTO payload SELECT i, CASE WHEN i % 2 = 0 THEN 'eu' ELSE 'us' END, json_build_object('i', i), point(i, i), xmlelement(name x, i)
  FROM generate_series(1, 600) i;
ANALYZE;
"""


def test_include_columns_are_not_key_columns_whatever_their_type(pg):
    """A key's INCLUDE columns (indnkeyatts) are row data: a json, point or xml one has no order and must not be walked."""
    with twins(pg, INCLUDED) as (a, b):
        r = pg_compare.compare(a.conn, b.conn, chunk_rows=100)
        by = {t["table"]: t for t in r["tables"]}
        assert by["public.actor"]["key"] == ["actor_id"] and by["public.actor"]["method"] == "key ranges (one pass)"
        assert by["public.listed"]["key"] == ["code"] and by["public.listed"]["method"] == "key ranges (one pass, sampled bounds)"
        assert by["public.payload"]["key"] == ["region", "id"] and by["public.payload"]["method"] == "key ranges"
        assert r["equal"] and by["public.payload"]["ranges"] >= 6
        b.execute("UPDATE actor SET first_name = 'x' WHERE actor_id = 7; UPDATE listed SET note = NULL WHERE code = 'c8'")
        b.execute("UPDATE payload SET doc = '{\"i\": 9}', spot = point(0, 0) WHERE id = 9")
        r = pg_compare.compare(a.conn, b.conn, chunk_rows=100, show_rows=True, fail_on_mismatch=False)
        by = {t["table"]: t for t in r["tables"]}
        assert sorted(t for t in by if not by[t]["equal"]) == ["public.actor", "public.listed", "public.payload"]
        (rng,) = by["public.payload"]["mismatched_ranges"]
        assert [row["key"] for row in rng["rows"]] == [{"region": "us", "id": 9}]
