"""postgresql_schema_diff through Ansible: the reference changes R1/R2, expect/ignore, filters, errors."""

from __future__ import annotations

import pytest

from ansible_collections.dualboot.db.plugins.module_utils import pg_diff
from ansible_collections.dualboot.db.plugins.module_utils.errors import IntegrityError, InvalidInput

USERS = "CREATE TABLE users (user_id serial PRIMARY KEY, user_name varchar(255), creation_date timestamp);"
R1 = "ALTER TABLE users RENAME COLUMN user_name TO full_name; ALTER TABLE users ALTER COLUMN full_name TYPE text;"
R2 = """CREATE TABLE user_profiles (profile_id serial PRIMARY KEY, user_id integer REFERENCES users(user_id), profile_data jsonb);
ALTER TABLE users DROP COLUMN full_name; ALTER TABLE users DROP COLUMN creation_date;"""


@pytest.fixture
def pair(pg):
    a, b = pg.create_database(), pg.create_database()
    for db in (a, b):
        db.execute(USERS)
        db.execute("INSERT INTO users (user_name, creation_date) SELECT 'u' || i, now() FROM generate_series(1, 50) i")
    yield a, b
    pg.drop_database(a.name)
    pg.drop_database(b.name)


def args(pg, a, b, **extra):
    return {**pg.login_params(), "source": {"login_db": a.name}, "target": {"login_db": b.name}, **extra}


def test_r1_expected_rename_passes_and_reports_possible_rename(pg, pair, run_module):
    a, b = pair
    b.execute(R1)
    expect = [
        {"kind": "column", "name": "users.user_name", "change": "removed"},
        {"kind": "column", "name": "users.full_name", "change": "added"},
    ]
    r = run_module("postgresql_schema_diff", args(pg, a, b, expect=expect), check=True)
    assert not r.failed, r.msg
    assert not r.changed
    assert r["expectations"] == {"met": True, "problems": []}
    assert r["possible_renames"] == [{"kind": "column", "schema": "public", "table": "users", "before": "user_name", "after": "full_name"}]
    assert {(c["name"], c["change"]) for c in r["changes"]} == {("users.user_name", "removed"), ("users.full_name", "added")}
    removed = next(c for c in r["changes"] if c["change"] == "removed")
    assert removed["hazards"][0] == "deletes_data" and removed["before"] == "character varying(255)"
    assert any("column user_name removed" in s and "deletes data" in s for s in r["summary"])
    assert pg.password not in r.output


def test_r2_unexpected_and_missing_changes_fail_naming_each(pg, pair, run_module):
    a, b = pair
    b.execute(R1)
    b.execute(R2)
    expect = [
        {"kind": "table", "name": "user_profiles", "change": "added"},
        {"kind": "column", "name": "users.full_name", "change": "removed"},
        {"kind": "index", "name": "users_never_made", "change": "added"},
    ]
    r = run_module("postgresql_schema_diff", args(pg, a, b, expect=expect))
    assert r.failed and r["error"] == "IntegrityError"
    assert "unexpected: table public.users: column creation_date removed" in r.msg
    assert "expected but missing: kind=index, name=users_never_made, change=added" in r.msg
    assert "expected but missing: kind=column, name=users.full_name" in r.msg  # against the source, full_name never existed
    assert r["hazards"]["deletes_data"] == 2 and "breaks_dependents" not in r["hazards"]


def test_r2_full_expectation_with_globs(pg, pair, run_module):
    a, b = pair
    b.execute(R1)
    b.execute(R2)
    expect = [
        {"name": "user_profiles*", "change": "added"},
        {"kind": "column", "name": "users.user_name", "change": "removed"},
        {"kind": "column", "name": "users.creation_date", "change": "removed"},
    ]
    r = run_module("postgresql_schema_diff", args(pg, a, b, expect=expect))
    assert not r.failed, r.msg
    kinds = sorted({c["kind"] for c in r["changes"]})
    assert kinds == ["column", "constraint", "sequence", "table"]
    assert r["sql"][0] == "SET check_function_bodies = off;"
    fk = [s for s in r["sql"] if "FOREIGN KEY" in s]
    create = [i for i, s in enumerate(r["sql"]) if s.startswith("CREATE TABLE public.user_profiles")]
    assert fk and create and r["sql"].index(fk[0]) > create[0]


def test_identical_copy_with_expect_empty_and_ignore(pg, pair, run_module):
    a, b = pair
    r = pg_diff.compare_schemas(a.conn, b.conn, expect=[])
    assert r["identical"] and r["sql"] == [] and r["expectations"]["met"]
    b.execute("COMMENT ON TABLE users IS 'people'")
    r = run_module("postgresql_schema_diff", args(pg, a, b, expect=[]))
    assert r.failed and "table public.users comment changed" in r.msg
    r = pg_diff.compare_schemas(a.conn, b.conn, expect=[], ignore=[{"attribute": "comment"}])
    assert r["identical"] and r["counts"]["ignored"] == 1


def test_schemas_filter_and_dualboot_schema_left_out(pair):
    a, b = pair
    b.execute("CREATE SCHEMA dualboot; CREATE TABLE dualboot.migrations (id int); CREATE SCHEMA other; CREATE TABLE other.t (id int)")
    assert pg_diff.compare_schemas(a.conn, b.conn, schemas=["public"])["identical"]
    r = pg_diff.compare_schemas(a.conn, b.conn)
    assert {c["schema"] for c in r["changes"]} == {"other"}


def test_column_order_is_optional(pair):
    a, b = pair
    for db, cols in ((a, "x int, y int"), (b, "y int, x int")):
        db.execute(f"CREATE TABLE ordered ({cols})")
    assert pg_diff.compare_schemas(a.conn, b.conn)["identical"]
    r = pg_diff.compare_schemas(a.conn, b.conn, check_column_order=True)
    assert {(c["name"], c["attribute"]) for c in r["changes"]} == {("ordered.x", "position"), ("ordered.y", "position")}


def test_owners_and_grants_only_on_request(pair):
    a, b = pair
    b.execute("DO $$ BEGIN CREATE ROLE diff_reader; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    b.execute("GRANT SELECT ON users TO diff_reader")
    assert pg_diff.compare_schemas(a.conn, b.conn)["identical"]
    r = pg_diff.compare_schemas(a.conn, b.conn, include_owners_and_grants=True)
    assert [(c["name"], c["attribute"]) for c in r["changes"]] == [("users", "grants")]


GRANTS_BASE = """
CREATE SCHEMA app;
CREATE TABLE app.orders (id serial PRIMARY KEY, note text, total numeric);
CREATE VIEW app.open_orders AS SELECT id, note FROM app.orders;
CREATE FUNCTION app.twice(x int) RETURNS int LANGUAGE sql AS 'SELECT 2 * x';
CREATE TYPE app.mood AS ENUM ('ok', 'bad');
GRANT USAGE ON SCHEMA app TO diff_reader;
GRANT SELECT ON app.orders, app.open_orders TO diff_reader;
GRANT USAGE ON SEQUENCE app.orders_id_seq TO diff_reader;
"""
GRANTS_CHANGED = """
REVOKE SELECT ON app.orders FROM diff_reader;
GRANT SELECT, INSERT ON app.orders TO "Diff Writer";
GRANT UPDATE ON app.orders TO "Diff Writer" WITH GRANT OPTION;
GRANT UPDATE (note) ON app.orders TO diff_reader;
REVOKE USAGE ON SEQUENCE app.orders_id_seq FROM diff_reader;
GRANT CREATE ON SCHEMA app TO "Diff Writer";
REVOKE EXECUTE ON FUNCTION app.twice(int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.twice(int) TO diff_reader;
REVOKE USAGE ON TYPE app.mood FROM PUBLIC;
ALTER TABLE app.orders ADD COLUMN secret text;
GRANT SELECT (secret) ON app.orders TO "Diff Writer";
CREATE OR REPLACE VIEW app.open_orders AS SELECT id, note, total FROM app.orders;
CREATE TABLE app.audit (at timestamptz);
ALTER TABLE app.audit OWNER TO diff_reader;
GRANT INSERT ON app.audit TO "Diff Writer";
REVOKE ALL ON app.audit FROM diff_reader;
GRANT SELECT ON app.audit TO diff_reader;
ALTER VIEW app.open_orders OWNER TO "Diff Writer";
"""


def test_grant_and_owner_sql_applies_and_rediffs_empty(pg, pair):
    a, b = pair
    for role in ("diff_reader", '"Diff Writer"'):
        a.execute(f"DO $$ BEGIN CREATE ROLE {role}; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    a.execute(GRANTS_BASE)
    b.execute(GRANTS_BASE)
    b.execute(GRANTS_CHANGED)
    r = pg_diff.compare_schemas(a.conn, b.conn, include_owners_and_grants=True)
    grants = {(c["kind"], c["name"]) for c in r["changes"] if c["attribute"] == "grants"}
    assert {("table", "orders"), ("column", "orders.note"), ("sequence", "orders_id_seq"), ("schema", "app"),
            ("function", "twice(x integer)"), ("enum", "mood")} <= grants  # fmt: skip
    assert not [s for s in r["sql"] if s.startswith("-- review by hand")], r["sql"]
    assert 'GRANT UPDATE ON TABLE app.orders TO "Diff Writer" WITH GRANT OPTION;' in r["sql"]
    assert "REVOKE EXECUTE ON ROUTINE app.twice(x integer) FROM PUBLIC;" in r["sql"]
    copy = pg.create_database(template=a.name)
    try:
        copy.execute("\n".join(r["sql"]))
        again = pg_diff.compare_schemas(copy.conn, b.conn, include_owners_and_grants=True)
        assert again["identical"], again["summary"]
    finally:
        pg.drop_database(copy.name)


def test_wrong_password_and_bad_matcher_fail_clearly(pg, pair, run_module):
    a, b = pair
    bad = args(pg, a, b)
    bad["target"]["login_password"] = "wrong-password"
    r = run_module("postgresql_schema_diff", bad)
    assert r.failed and r["error"] == "ConnectionFailed" and "password authentication failed" in r.msg
    assert "wrong-password" not in r.output
    with pytest.raises(InvalidInput, match="nmae"):
        pg_diff.compare_schemas(a.conn, b.conn, expect=[{"kind": "column", "nmae": "x"}])


def _failed_unique_index(db) -> None:
    """What a failed CREATE UNIQUE INDEX CONCURRENTLY leaves: an INVALID index (it enforces nothing)."""
    db.execute("INSERT INTO users (user_id, user_name) VALUES (1000, 'dup'), (1001, 'dup')")
    with db.connect() as c, pytest.raises(Exception, match="could not create unique index"):
        c.execute("CREATE UNIQUE INDEX CONCURRENTLY users_name_key ON users (user_name)")


def test_invalid_index_differs_and_fails_an_expect_of_it(pair):
    a, b = pair
    _failed_unique_index(b)
    r = pg_diff.compare_schemas(a.conn, b.conn)
    assert not r["identical"]
    added = [c for c in r["changes"] if c["name"] == "users_name_key"]
    assert added and added[0]["change"] == "added" and "invalid_index" in added[0]["hazards"]
    assert any("INVALID" in s for s in r["summary"])
    assert any(s.startswith("-- review by hand") and "INVALID" in s for s in r["sql"])
    with pytest.raises(IntegrityError, match="users_name_key is INVALID") as e:
        pg_diff.compare_schemas(a.conn, b.conn, expect=[{"kind": "index", "name": "users_name_key", "change": "added"}])
    assert not e.value.details["expectations"]["met"]
    # a valid copy of the same index in the source: only validity differs
    a.execute("INSERT INTO users (user_id, user_name) VALUES (1000, 'dup'), (1001, 'dup2')")
    a.execute("CREATE UNIQUE INDEX users_name_key ON users (user_name)")
    r = pg_diff.compare_schemas(a.conn, b.conn)
    assert [(c["name"], c["attribute"], c["before"], c["after"]) for c in r["changes"]] == [("users_name_key", "valid", True, False)]


NOT_MODELLED = """
CREATE AGGREGATE total_len(text) (SFUNC = textcat, STYPE = text, INITCOND = '');
CREATE FUNCTION noop_eq(int, text) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT false';
CREATE OPERATOR === (LEFTARG = int, RIGHTARG = text, FUNCTION = noop_eq);
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO PUBLIC;
CREATE TABLE parted (id int, at date, note text DEFAULT 'n/a') PARTITION BY RANGE (at);
CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE parent (id int, note text DEFAULT 'n/a');
CREATE TABLE child () INHERITS (parent);
ALTER TABLE parted_1 ALTER COLUMN id SET DEFAULT 7;
CREATE FUNCTION on_ddl() RETURNS event_trigger LANGUAGE plpgsql AS 'BEGIN END';
CREATE EVENT TRIGGER dualboot_test_ddl ON ddl_command_start EXECUTE FUNCTION on_ddl();
"""


def test_unmodelled_kinds_are_named_not_compared(pair):
    a, b = pair
    b.execute(NOT_MODELLED)
    try:
        r = pg_diff.compare_schemas(a.conn, b.conn)
        kinds = {n["kind"]: n for n in r["not_compared"]}
        for kind in ("aggregate", "operator", "default_privileges", "partition_default", "event_trigger"):
            assert kind in kinds, (kind, r["not_compared"])
            assert kinds[kind]["source"] == 0 and kinds[kind]["target"] >= 1
        assert kinds["partition_default"]["names"] == ["public.parted_1.id"]  # not the defaults a child got from its parent
        assert "public.total_len(text)" in kinds["aggregate"]["names"]
        assert pg_diff.compare_schemas(a.conn, a.conn)["not_compared"] == []
    finally:
        b.execute("DROP EVENT TRIGGER IF EXISTS dualboot_test_ddl")


def _hazards(result: dict) -> dict:
    return {(c["kind"], c["name"], c["change"], c["attribute"]): c["hazards"] for c in result["changes"]}


def test_objects_of_a_new_table_have_no_live_table_hazards(pair):
    a, b = pair
    b.execute("""CREATE TABLE fresh (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, n bigserial,
      at timestamptz DEFAULT clock_timestamp(), twice bigint GENERATED ALWAYS AS (id * 2) STORED,
      user_id int NOT NULL REFERENCES users, CHECK (n > 0), UNIQUE (user_id));
      CREATE INDEX fresh_at ON fresh (at)""")
    h = _hazards(pg_diff.compare_schemas(a.conn, b.conn))
    subs = {k: v for k, v in h.items() if k[0] in ("column", "constraint", "index") and k[1].startswith("fresh")}
    assert len(subs) >= 9 and all(v == [] for v in subs.values()), subs


def test_enum_rename_does_not_rewrite_and_sql_renames(pg, pair):
    a, b = pair
    for db in (a, b):
        db.execute("CREATE TYPE mood AS ENUM ('sad', 'happy'); CREATE TABLE person (id int, m mood)")
    b.execute("ALTER TYPE mood RENAME VALUE 'sad' TO 'blue'")
    r = pg_diff.compare_schemas(a.conn, b.conn)
    assert _hazards(r)[("enum", "mood", "modified", "labels")] == []
    assert "ALTER TYPE public.mood RENAME VALUE 'sad' TO 'blue';" in r["sql"]


def test_breaks_dependents_only_for_columns_really_read(pair):
    a, b = pair
    for db in (a, b):
        db.execute("""CREATE VIEW user_ids AS SELECT user_id FROM users;
          CREATE FUNCTION first_name() RETURNS varchar LANGUAGE sql BEGIN ATOMIC SELECT user_name FROM users LIMIT 1; END""")
    b.execute("ALTER TABLE users DROP COLUMN creation_date; ALTER TABLE users DROP COLUMN user_name CASCADE")
    h = _hazards(pg_diff.compare_schemas(a.conn, b.conn))
    assert "breaks_dependents" not in h[("column", "users.creation_date", "removed", None)]
    assert "breaks_dependents" in h[("column", "users.user_name", "removed", None)]


def test_domain_check_and_volatile_default_rewrite_the_table(pair):
    a, b = pair
    for db in (a, b):
        db.execute("""CREATE DOMAIN positive AS int CHECK (VALUE > 0);
          CREATE FUNCTION next_code() RETURNS int LANGUAGE sql VOLATILE AS 'SELECT 1';
          CREATE FUNCTION fixed_code() RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT 1'""")
    b.execute("""ALTER TABLE users ADD COLUMN score positive; ALTER TABLE users ADD COLUMN code int DEFAULT next_code();
      ALTER TABLE users ADD COLUMN fixed int DEFAULT fixed_code(); ALTER TABLE users ADD COLUMN at timestamptz DEFAULT now()""")
    h = _hazards(pg_diff.compare_schemas(a.conn, b.conn))
    assert "rewrites_table" in h[("column", "users.score", "added", None)]
    assert "rewrites_table" in h[("column", "users.code", "added", None)]
    assert "rewrites_table" not in h[("column", "users.fixed", "added", None)]
    assert "rewrites_table" not in h[("column", "users.at", "added", None)]
