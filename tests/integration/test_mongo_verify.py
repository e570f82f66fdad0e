"""The reference changes end to end through the modules: R4 (nested field) and R5 (restore rehearsal),
plus schema diff and compare on their own against a real server."""

from __future__ import annotations

import pytest

from ansible_collections.dualboot.db.plugins.module_utils import mongo_compare as mc
from ansible_collections.dualboot.db.plugins.module_utils import mongo_schema as ms
from ansible_collections.dualboot.db.plugins.module_utils.errors import IntegrityError, InvalidInput
from ansible_collections.dualboot.db.plugins.module_utils.mongodb import MongoConnection

R4 = """description: R4 - userName becomes user.name
operations:
  - update_many:
      collection: users
      filter: {userName: {$exists: true}}
      update: {$rename: {userName: user.name}}
"""
R4_EXPECT = [
    {"kind": "field", "name": "users.userName", "change": "removed"},
    {"kind": "field", "name": "users.user", "change": "added"},
    {"kind": "field", "name": "users.user.name", "change": "added"},
]


@pytest.fixture
def staged(mongo):
    name = mongo.new_db_name()
    client = mongo.client()
    yield client[name]
    client.drop_database(name)
    client.close()


def seed_live(db, n=300):
    db.users.insert_many([{"_id": i, "userName": f"user{i:04d}"} for i in range(n)])
    db.users.create_index("userName", unique=True)
    db.orders.insert_many([{"_id": i, "user": i % n, "total": i * 2.5} for i in range(100)])


def test_r4_nested_field_end_to_end(mongo, mongo_db, staged, run_module, tmp_path):
    seed_live(mongo_db)
    conn = mongo.login_params()
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "V1__nest_user_name.yml").write_text(R4)
    assert not run_module("mongodb_backup", {**conn, "database": mongo_db.name, "path": str(tmp_path / "bk")}).failed
    assert not run_module("mongodb_restore", {**conn, "path": str(tmp_path / "bk"), "database": staged.name}).failed
    r = run_module("mongodb_migrate", {**conn, "database": staged.name, "path": str(migrations)})
    assert not r.failed and r["applied"][0]["operations"][0]["modified"] == 300

    diff_args = {**conn, "source_database": mongo_db.name, "target_database": staged.name}
    r = run_module("mongodb_schema_diff", {**diff_args, "expect": R4_EXPECT})
    assert not r.failed, r.msg
    assert r["changes"] == [] and len(r["shape_changes"]) == 3 and r["expectations"]["met"]
    assert r["source"]["sample_method"] == ("first documents by _id" if mongo.is_ferretdb else "$sample")
    name_field = next(c for c in r["shape_changes"] if c["name"] == "users.user.name")
    assert name_field["after"] == {"types": {"string": 1.0}, "presence": "all", "fraction": 1.0}
    # the shape change is the ONLY change: expecting nothing fails and lists it
    lib = MongoConnection(uri=mongo.uri)
    with pytest.raises(IntegrityError, match="unexpected: field users.userName removed"):
        ms.schema_diff(lib, lib, mongo_db.name, staged.name, expect=[])

    checks = [
        {
            "name": "user.name equals the old userName",
            "source": {"collection": "users", "field": "userName"},
            "target": {"collection": "users", "field": "user.name"},
        },
        {
            "name": "no user without a name",
            "target": {"collection": "users", "filter": {"user.name": {"$exists": False}}},
            "expect_count": 0,
        },
    ]
    compare_args = {**diff_args, "collections": [{"name": "users", "content": False}, "orders"], "checks": checks}
    r = run_module("mongodb_compare", compare_args)
    assert not r.failed, r.msg
    assert r["equal"] and r["checks"][0]["compared"] == 300 and r["checks"][1]["target_count"] == 0
    users = next(c for c in r["collections"] if c["name"] == "users")
    assert users["source_count"] == users["target_count"] == 300 and "source_hash" not in users

    staged.users.update_one({"_id": 42}, {"$set": {"user.name": "someone else"}})
    with pytest.raises(
        IntegrityError, match="check 'user.name equals the old userName' failed: 1 document.s. where target user.name differs"
    ) as exc:
        mc.compare(lib, lib, mongo_db.name, staged.name, collections=compare_args["collections"], checks=checks)
    assert exc.value.details["checks"][0]["examples"]["different"] == ["42"]


def test_r5_restore_rehearsal_equals_live(mongo, mongo_db, staged, run_module, tmp_path):
    seed_live(mongo_db)
    mongo_db.create_collection("events", capped=True, size=1 << 20)
    mongo_db.events.insert_many([{"_id": i, "kind": "login"} for i in range(50)])
    conn = mongo.login_params()
    b = run_module("mongodb_backup", {**conn, "database": mongo_db.name, "path": str(tmp_path / "bk"), "gzip": True})
    assert not b.failed, b.msg
    assert not run_module("mongodb_restore", {**conn, "path": str(tmp_path / "bk"), "database": staged.name}).failed
    r = run_module("mongodb_schema_diff", {**conn, "source_database": mongo_db.name, "target_database": staged.name, "expect": []})
    assert not r.failed, r.msg
    assert r["identical"] and r["msg"].endswith("as expected")
    r = run_module("mongodb_compare", {**conn, "source_database": mongo_db.name, "target_database": staged.name})
    assert not r.failed, r.msg
    rows = {c["name"]: c for c in r["collections"]}
    assert set(rows) == {"users", "orders", "events"} and all(c["content_equal"] for c in rows.values())
    # the live hash is the one the backup recorded
    assert {c["name"]: c["content_hash"] for c in b["collections"]} == {n: c["source_hash"] for n, c in rows.items()}

    staged.orders.update_one({"_id": 5}, {"$set": {"total": 13.0}})
    lib = MongoConnection(uri=mongo.uri)
    with pytest.raises(IntegrityError, match=r"collection 'orders': same count \(100\) but different content") as exc:
        mc.compare(lib, lib, mongo_db.name, staged.name)
    assert exc.value.details["equal"] is False
    assert mongo_db.orders.find_one({"_id": 5})["total"] == 12.5


def test_schema_diff_reports_indexes_options_and_collections(mongo, mongo_db, staged):
    seed_live(mongo_db, 50)
    mongo_db.create_collection("gone")
    for c in ("users", "orders"):
        staged[c].insert_many(list(mongo_db[c].find()))
    staged.users.create_index([("userName", 1)], unique=True, name="another_name_same_key")
    staged.orders.create_index([("total", -1), ("user", 1)])
    staged.create_collection("capped_new", capped=True, size=4096)
    conn = MongoConnection(uri=mongo.uri)
    r = ms.schema_diff(conn, conn, mongo_db.name, staged.name, sample_size=20)
    got = {(c["kind"], c["name"], c["change"]) for c in r["changes"]}
    assert got == {("collection", "gone", "removed"), ("collection", "capped_new", "added"), ("index", "orders.total_-1_user_1", "added")}
    assert r["shape_changes"] == []
    r = ms.schema_diff(
        conn,
        conn,
        mongo_db.name,
        staged.name,
        ignore=[{"kind": "collection"}],
        expect=[{"kind": "index", "name": "orders.*", "change": "added"}],
    )
    assert r["counts"]["ignored"] == 2 and r["expectations"]["met"]
    with pytest.raises(IntegrityError, match="expected but missing: kind=validator"):
        ms.schema_diff(
            conn, conn, mongo_db.name, staged.name, ignore=[{"kind": "collection"}, {"kind": "index"}], expect=[{"kind": "validator"}]
        )


def test_bad_input_for_diff_and_compare(mongo, mongo_db):
    seed_live(mongo_db, 5)
    conn = MongoConnection(uri=mongo.uri)
    with pytest.raises(InvalidInput, match="target database 'no_such_db' has no collections"):
        ms.schema_diff(conn, conn, mongo_db.name, "no_such_db")
    with pytest.raises(InvalidInput, match="not a valid MongoDB database name"):
        mc.compare(conn, conn, mongo_db.name, "bad/name")
    with pytest.raises(InvalidInput, match="queries one side only and has no expect_count"):
        mc.compare(conn, conn, mongo_db.name, mongo_db.name, checks=[{"name": "x", "target": {"collection": "users"}}])
    with pytest.raises(InvalidInput, match="unknown field"):
        ms.schema_diff(conn, conn, mongo_db.name, mongo_db.name, expect=[{"kind": "field", "table": "x"}])
    r = mc.compare(
        conn,
        conn,
        mongo_db.name,
        mongo_db.name,
        checks=[{"name": "same", "source": {"collection": "users"}, "target": {"collection": "users"}}],
    )
    assert r["equal"] and r["checks"][0]["source_count"] == 5


def test_validators_ttl_partial_indexes_and_views_on_mongodb(mongo, mongo_db, staged, tmp_path):
    if mongo.is_ferretdb:
        pytest.skip("FerretDB 1.24 has no validators, TTL/partial indexes or views; run with DUALBOOT_TEST_MONGO_URI=<a MongoDB>")
    from ansible_collections.dualboot.db.plugins.module_utils import mongo_dump as md

    seed_live(mongo_db, 20)
    mongo_db.create_collection(
        "sessions", validator={"$jsonSchema": {"bsonType": "object", "required": ["at"]}}, validationLevel="moderate"
    )
    mongo_db.sessions.insert_many([{"_id": i, "at": i, "n": i} for i in range(10)])
    mongo_db.sessions.create_index("at", expireAfterSeconds=3600)
    mongo_db.sessions.create_index("n", partialFilterExpression={"n": {"$gt": 5}})
    mongo_db.command("create", "frequent", viewOn="users", pipeline=[{"$match": {"_id": {"$gt": 10}}}])
    conn = MongoConnection(uri=mongo.uri)
    b = md.backup(conn, md.BackupRequest(database=mongo_db.name, path=str(tmp_path / "bk")))
    view = next(c for c in b["collections"] if c["name"] == "frequent")
    assert view["type"] == "view" and "data_file" not in view
    r = md.restore(conn, md.RestoreRequest(path=str(tmp_path / "bk"), database=staged.name))
    assert r["method"] == "swap" and r["unsupported"] == [] and r["views"] == ["frequent"]
    assert ms.schema_diff(conn, conn, mongo_db.name, staged.name, expect=[])["identical"]
    staged.command("collMod", "sessions", validationLevel="strict", validator={"$jsonSchema": {"required": ["at", "n"]}})
    staged.sessions.drop_index("n_1")
    r = ms.schema_diff(conn, conn, mongo_db.name, staged.name)
    got = {(c["kind"], c["name"], c["change"], c["attribute"]) for c in r["changes"]}
    assert got == {
        ("validator", "sessions", "modified", "validator"),
        ("validator", "sessions", "removed", "validationLevel"),
        ("index", "sessions.n_1", "removed", None),
    }
