"""mongodb_migrate against a real server: R4 declaratively, Python migrations, idempotence, edits, failures."""

from __future__ import annotations

import json

import pytest

from ansible_collections.dualboot.db.plugins.module_utils import mongo_migrate as mm
from ansible_collections.dualboot.db.plugins.module_utils.errors import IntegrityError, InvalidInput, OperationFailed, SafetyRefusal
from ansible_collections.dualboot.db.plugins.module_utils.mongodb import MongoConnection

R4 = """description: nest userName under user.name (R4)
operations:
  - update_many:
      collection: users
      filter: {userName: {$exists: true}}
      update: {$rename: {userName: user.name}}
  - create_index: {collection: users, keys: {user.name: 1}, name: by_user_name}
"""


def seed_users(db, n=200):
    db.users.insert_many([{"_id": i, "userName": f"user{i}"} for i in range(n)])


def test_r4_declarative_check_mode_apply_idempotent_and_edit_detection(mongo, mongo_db, run_module, tmp_path):
    seed_users(mongo_db)
    (tmp_path / "V1__nest_user_name.yml").write_text(R4)
    args = {**mongo.login_params(), "database": mongo_db.name, "path": str(tmp_path)}
    r = run_module("mongodb_migrate", args, check=True, diff=True)
    assert not r.failed, r.msg
    assert r.changed and r["pending"] == ["V1__nest_user_name"] and r["applied"] == []
    assert r["diff"]["after"]["applied"] == ["V1__nest_user_name"] and "would apply 1 migration" in r.msg
    assert (
        mongo_db.users.count_documents({"userName": {"$exists": True}}) == 200
        and "dualboot_changelog" not in mongo_db.list_collection_names()
    )

    r = run_module("mongodb_migrate", args)
    assert not r.failed, r.msg
    (applied,) = r["applied"]
    assert applied["id"] == "V1__nest_user_name" and applied["operations"][0] == {
        "op": "update_many",
        "collection": "users",
        "matched": 200,
        "modified": 200,
        "upserted": False,
    }
    assert mongo_db.users.find_one({"_id": 7}) == {"_id": 7, "user": {"name": "user7"}}
    assert "by_user_name" in [i["name"] for i in mongo_db.users.list_indexes()]
    entry = mongo_db.dualboot_changelog.find_one({"_id": "V1__nest_user_name"})
    assert entry["kind"] == "declarative" and len(entry["checksum"]) == 64

    again = run_module("mongodb_migrate", args)
    assert not again.failed and not again.changed and again["already_applied"] == ["V1__nest_user_name"]

    (tmp_path / "V1__nest_user_name.yml").write_text(R4.replace("by_user_name", "user_name_idx"))
    edited = run_module("mongodb_migrate", args)
    assert edited.failed and edited["error"] == "IntegrityError"
    assert "migration V1__nest_user_name was changed after it was applied" in edited.msg and "add a new migration" in edited.msg


def test_python_migrations_and_a_failing_one(mongo, mongo_db, tmp_path):
    seed_users(mongo_db, 20)
    (tmp_path / "V1__lowercase.py").write_text(
        "def up(db):\n"
        "    for d in db.users.find({}, {'userName': 1}):\n"
        "        db.users.update_one({'_id': d['_id']}, {'$set': {'userName': d['userName'].upper()}})\n"
        "\n"
        "def down(db):\n"
        "    raise NotImplementedError\n"
    )
    (tmp_path / "V2__broken.py").write_text(
        "def up(db):\n    db.users.update_many({}, {'$set': {'touched': True}})\n    raise ValueError('unexpected shape in users')\n"
    )
    (tmp_path / "V3__never.yml").write_text("- drop_collection: {collection: users}\n")
    conn = MongoConnection(uri=mongo.uri)
    with pytest.raises(OperationFailed) as exc:
        mm.migrate(conn, mongo_db.name, path=str(tmp_path))
    msg = str(exc.value)
    assert "migration V2__broken failed: ValueError: unexpected shape in users" in msg
    assert "Applied in this run before it: V1__lowercase; V2__broken may be partly applied" in msg and "stage the entry again" in msg
    assert [d["_id"] for d in mongo_db.dualboot_changelog.find()] == ["V1__lowercase"]
    assert mongo_db.users.find_one({"_id": 3})["userName"] == "USER3" and mongo_db.users.count_documents({}) == 20


def test_a_failing_declarative_operation_names_its_step(mongo, mongo_db, tmp_path):
    seed_users(mongo_db, 5)
    mongo_db.users.create_index("userName", unique=True)
    (tmp_path / "V1__dup.yml").write_text(
        "- update_one: {collection: users, filter: {_id: 1}, update: {$set: {x: 1}}}\n"
        "- update_one: {collection: users, filter: {_id: 2}, update: {$set: {userName: user3}}}\n"
    )
    with pytest.raises(OperationFailed, match=r"V1__dup failed at operation 2 \(update_one\): .*(duplicate key|UNIQUE constraint)") as exc:
        mm.migrate(MongoConnection(uri=mongo.uri), mongo_db.name, path=str(tmp_path))
    assert exc.value.details["completed_operations"][0]["modified"] == 1


def test_pipeline_update(mongo, mongo_db):
    seed_users(mongo_db, 5)
    inline = [
        {
            "version": "1",
            "description": "copy with a pipeline",
            "operations": [{"update_many": {"collection": "users", "update": [{"$set": {"copy": "$userName"}}]}}],
        }
    ]
    conn = MongoConnection(uri=mongo.uri)
    if mongo.is_ferretdb:
        # FerretDB 1.24 has no pipeline updates: the migration fails clearly and is not recorded.
        with pytest.raises(OperationFailed, match="V1__copy_with_a_pipeline failed at operation 1 \\(update_many\\)"):
            mm.migrate(conn, mongo_db.name, inline=inline)
        assert mongo_db.dualboot_changelog.count_documents({}) == 0
    else:
        mm.migrate(conn, mongo_db.name, inline=inline)
        assert mongo_db.users.find_one({"_id": 2})["copy"] == "user2"


def test_order_rules_and_default_entry(mongo, mongo_db, tmp_path):
    seed_users(mongo_db, 3)
    conn = MongoConnection(uri=mongo.uri)
    (tmp_path / "V2__b.yml").write_text("- update_many: {collection: users, update: {$set: {b: 1}}}\n")
    r = mm.migrate(conn, mongo_db.name, path=str(tmp_path))
    assert r["changed"] and [a["id"] for a in r["applied"]] == ["V2__b"]
    (tmp_path / "V1_5__late.yml").write_text("- update_many: {collection: users, update: {$set: {late: 1}}}\n")
    with pytest.raises(InvalidInput, match="V1_5__late are older than the newest applied migration"):
        mm.migrate(conn, mongo_db.name, path=str(tmp_path))
    (tmp_path / "V1_5__late.yml").unlink()
    (tmp_path / "V3__bad.yml").write_text("- update_many: {collection: users, update: {b: 2}}\n")
    with pytest.raises(InvalidInput, match="update operators"):
        mm.migrate(conn, mongo_db.name, path=str(tmp_path))
    assert mongo_db.users.count_documents({"b": 1}) == 3 and mongo_db.dualboot_changelog.count_documents({}) == 1
    (tmp_path / "V3__bad.yml").unlink()

    host = mongo.uri.split("//", 1)[1].split("/", 1)[0].split("@")[-1]
    record = tmp_path.parent / f"{tmp_path.name}-rec.json"
    record.write_text(
        json.dumps(
            {
                "format": 1,
                "engine": "mongodb",
                "entries": {"blue": {"login_uri": f"mongodb://{host}/", "database": mongo_db.name}},
                "default": "blue",
            }
        )
    )
    (tmp_path / "V4__c.yml").write_text("- drop_collection: {collection: users}\n")
    with pytest.raises(SafetyRefusal, match="refusing to migrate database"):
        mm.migrate(conn, mongo_db.name, path=str(tmp_path), boot_record_path=str(record))
    assert mongo_db.users.count_documents({}) == 3
    with pytest.raises(IntegrityError):
        (tmp_path / "V2__b.yml").write_text("- update_many: {collection: users, update: {$set: {b: 2}}}\n")
        mm.migrate(conn, mongo_db.name, path=str(tmp_path), boot_record_path=str(record), force=True)
