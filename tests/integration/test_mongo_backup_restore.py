"""mongodb_backup / mongodb_restore against a real server (FerretDB here, MongoDB with DUALBOOT_TEST_MONGO_URI)."""

from __future__ import annotations

import datetime
import gzip
import json
import os
import shutil
import stat
import uuid
from pathlib import Path

import bson
import pytest
from bson import Binary, Int64, ObjectId, Regex, Timestamp
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument

from ansible_collections.dualboot.db.plugins.module_utils import mongo_dump as md
from ansible_collections.dualboot.db.plugins.module_utils.mongodb import MongoConnection

DATA = Path(__file__).parent / "data" / "mongo"
RAW = CodecOptions(document_class=RawBSONDocument)
# Library calls (no Ansible start-up, ~3 s each on a busy machine) where a test's point is not the module path.


def seed(db) -> None:
    """Small data in the BSON types FerretDB 1.24 stores (it drops the connection on Decimal128, NaN, code, min/max key)."""
    db.users.insert_many(
        [
            {
                "_id": i,
                "userName": f"üser{i}",
                "visits": Int64(i * 1000),
                "score": i / 4,
                "created": datetime.datetime(2024, 1, 1) + datetime.timedelta(hours=i),
                "tags": ["a", {"k": i}],
                "flag": i % 2 == 0,
                "none": None,
            }
            for i in range(300)
        ]
    )
    db.users.create_index([("userName", 1)], unique=True)
    db.users.create_index([("created", -1), ("visits", 1)], name="recent")
    db.blobs.insert_many(
        [
            {
                "_id": ObjectId(),
                "b": Binary(os.urandom(64), 0),
                "u": Binary(uuid.uuid4().bytes, 4),
                "re": Regex("^a", "i"),
                "ts": Timestamp(1700000000, i),
            }
            for i in range(20)
        ]
    )
    db.create_collection("events", capped=True, size=1 << 20)
    db.events.insert_many([{"_id": i, "e": "x" * i} for i in range(30)])
    db["audit log/2024 %"].insert_one({"_id": 1, "note": "escaped file name"})
    db.create_collection("empty")


def raw_docs(db, name) -> list:
    return sorted(d.raw for d in db.get_collection(name, codec_options=RAW).find())


def content(db) -> dict:
    return {n: raw_docs(db, n) for n in sorted(db.list_collection_names())}


def index_keys(db, name) -> list:
    return sorted((tuple(i["key"].items()), bool(i.get("unique"))) for i in db[name].list_indexes())


@pytest.fixture
def target_db(mongo):
    name = mongo.new_db_name()
    client = mongo.client()
    yield client[name]
    client.drop_database(name)
    client.close()


def test_backup_then_restore_round_trips_raw_bytes_indexes_and_options(mongo, mongo_db, target_db, run_module, tmp_path):
    seed(mongo_db)
    before = content(mongo_db)
    path = tmp_path / "bk"
    r = run_module("mongodb_backup", {**mongo.login_params(), "database": mongo_db.name, "path": str(path), "jobs": 3})
    assert not r.failed, r.msg
    assert r.changed and r["documents"] == 351 and r["mb_per_second"] >= 0
    names = {c["name"]: c for c in r["collections"]}
    assert set(names) == {"users", "blobs", "events", "audit log/2024 %", "empty"}
    assert names["audit log/2024 %"]["data_file"] == f"{mongo_db.name}/audit%20log%2F2024%20%25.bson"
    # the files are what the manifest says, private, and the .bson is the server's documents back to back
    manifest = json.loads((path / "manifest.json").read_text())
    for c in manifest["collections"]:
        data = (path / c["data_file"]).read_bytes()
        assert md._sha256_file(str(path / c["data_file"]))[0] == c["data_sha256"]
        assert sorted(bytes(d) for d in md.split_documents(data)) == before[c["name"]]
        assert stat.S_IMODE(os.stat(path / c["data_file"]).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o700 and stat.S_IMODE(os.stat(path / mongo_db.name).st_mode) == 0o700
    meta = json.loads((path / mongo_db.name / "events.metadata.json").read_text())
    assert list(meta) == ["options", "indexes", "uuid", "collectionName", "type"]
    assert meta["options"]["capped"] is True and meta["collectionName"] == "events"

    r = run_module("mongodb_restore", {**mongo.login_params(), "path": str(path), "database": target_db.name})
    assert not r.failed, r.msg
    assert r.changed and r["documents"] == 351 and r["verified"]["method"] == "manifest sha256 and content hashes"
    assert r["method"] == "swap"
    assert r["unsupported"] == []
    assert content(target_db) == before
    for name in ("users", "events"):
        assert index_keys(target_db, name) == index_keys(mongo_db, name)
    opts = target_db.events.options()
    assert opts.get("capped") is True and opts.get("size", 0) >= 1 << 20
    assert not [n for n in target_db.list_collection_names() if n.startswith("dualboot_")], "temporary collections left behind"
    assert content(mongo_db) == before  # the source was only read


def test_gzip_backup_check_mode_and_overwrite(mongo, mongo_db, target_db, run_module, tmp_path):
    seed(mongo_db)
    path = tmp_path / "gz"
    args = {**mongo.login_params(), "database": mongo_db.name, "path": str(path), "gzip": True}
    r = run_module("mongodb_backup", args, check=True)
    assert not r.failed and r.changed and not path.exists()
    assert {c["name"]: c["estimated_documents"] for c in r["collections"]}["users"] == 300
    r = run_module("mongodb_backup", args)
    assert not r.failed, r.msg
    files = sorted(p.name for p in (path / mongo_db.name).iterdir())
    assert "users.bson.gz" in files and "users.metadata.json.gz" in files and not any(f.endswith(".bson") for f in files)
    assert gzip.decompress((path / mongo_db.name / "users.bson.gz").read_bytes())[:4] != b""
    conn = MongoConnection(uri=mongo.uri)
    req = md.BackupRequest(database=mongo_db.name, path=str(path), gzip=True)
    with pytest.raises(md.SafetyRefusal, match="refusing to overwrite an existing backup.*overwrite: true"):
        md.backup(conn, req)
    mongo_db.users.insert_one({"_id": 1000, "userName": "late"})
    req.overwrite = True
    assert md.backup(conn, req)["documents"] == 352
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name or ".old-" in p.name]
    r = run_module("mongodb_restore", {**mongo.login_params(), "path": str(path), "database": target_db.name}, check=True)
    assert not r.failed and r.changed and r["verified"]["files_checked"] == 10
    assert target_db.name not in mongo.client().list_database_names()
    md.restore(conn, md.RestoreRequest(path=str(path), database=target_db.name, insertion_workers=3, batch_bytes=4096))
    assert content(target_db) == content(mongo_db)


@pytest.mark.parametrize("layout", ["mongodump", "mongodump-gzip"])
def test_restore_reads_mongodump_output(mongo, target_db, run_module, tmp_path, layout):
    if layout == "mongodump":
        r = run_module("mongodb_restore", {**mongo.login_params(), "path": str(DATA / layout), "database": target_db.name})
        assert not r.failed, r.msg
    else:
        r = md.restore(MongoConnection(uri=mongo.uri), md.RestoreRequest(path=str(DATA / layout), database=target_db.name))
    assert r["verified"]["method"] == "BSON framing" and r["source"]["database"] == "shop"
    counts = {c["name"]: c["documents"] for c in r["collections"]}
    assert counts == {"users": 50, "orders": 20, "audit log/2024 %": 1, "legacy": 2}
    assert target_db.users.find_one({"_id": 7})["userName"] == "user007"
    assert isinstance(target_db.users.find_one({"_id": 7})["visits"], Int64)
    keys = index_keys(target_db, "users")
    assert ((("userName", 1),), True) in keys and ((("created", -1), ("visits", 1)), False) in keys
    assert ((("t", 1),), False) in index_keys(target_db, "legacy")
    assert target_db.orders.options().get("capped") is True
    if layout == "mongodump":
        if mongo.is_ferretdb:
            assert [u["what"] for u in r["unsupported"]] == ["view"] and "frequent_users" not in r["views"]
        else:
            assert r["views"] == ["frequent_users"] and r["unsupported"] == []


def test_unsupported_options_and_indexes_are_reported_not_dropped(mongo, target_db, run_module, tmp_path):
    d = tmp_path / "dump" / "src"
    d.mkdir(parents=True)
    (d / "sessions.bson").write_bytes(b"".join(bson.encode({"_id": i, "at": datetime.datetime(2024, 1, 1), "n": i}) for i in range(10)))
    (d / "sessions.metadata.json").write_text(
        json.dumps(
            {
                "options": {"validator": {"n": {"$gte": 0}}, "validationLevel": "moderate"},
                "indexes": [
                    {"v": 2, "key": {"_id": 1}, "name": "_id_"},
                    {"v": 2, "key": {"at": 1}, "name": "ttl", "expireAfterSeconds": 3600},
                    {"v": 2, "key": {"n": 1}, "name": "partial", "partialFilterExpression": {"n": {"$gt": 5}}},
                    {"v": 2, "key": {"n": -1}, "name": "plain"},
                ],
                "collectionName": "sessions",
                "type": "collection",
            }
        )
    )
    r = run_module("mongodb_restore", {**mongo.login_params(), "path": str(tmp_path / "dump"), "database": target_db.name})
    assert not r.failed, r.msg
    names = [i["name"] for i in target_db.sessions.list_indexes()]
    assert "plain" in names and target_db.sessions.count_documents({}) == 10
    if mongo.is_ferretdb:
        got = {(u["what"], u["detail"].split(":")[0].split(" ")[0]) for u in r["unsupported"]}
        assert got == {("option", "validator"), ("option", "validationLevel"), ("index", "ttl"), ("index", "partial")}
        assert any("does not support" in w for w in r["warnings"])
        assert "[WARNING]" in r.output
    else:
        assert r["unsupported"] == [] and {"ttl", "partial"} <= set(names)
        assert target_db.sessions.options()["validationLevel"] == "moderate"


# --- bad input: one clear message each, nothing changed --------------------------------------------


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _assert_untouched(mongo, name):
    assert name not in mongo.client().list_database_names()
    assert not [n for n in mongo.client().list_database_names() if "_restore_" in n]


def test_corrupted_bson_is_refused_before_writing(mongo, target_db, run_module, tmp_path):
    dump = _copy(DATA / "mongodump", tmp_path / "d")
    users = dump / "shop" / "users.bson"
    users.write_bytes(users.read_bytes()[:-10])
    r = run_module("mongodb_restore", {**mongo.login_params(), "path": str(dump), "database": target_db.name})
    assert r.failed and r["error"] == "IntegrityError"
    assert "users.bson is corrupted: file ends inside a document" in r.msg and "document 50" in r.msg and "Next step" in r.msg
    _assert_untouched(mongo, target_db.name)


def test_changed_file_fails_the_manifest_check(mongo, mongo_db, target_db, tmp_path):
    seed(mongo_db)
    path = tmp_path / "bk"
    md.backup(MongoConnection(uri=mongo.uri), md.BackupRequest(database=mongo_db.name, path=str(path)))
    f = path / mongo_db.name / "users.bson"
    data = bytearray(f.read_bytes())
    data[100] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(md.IntegrityError, match="users.bson does not match the backup manifest"):
        md.restore(MongoConnection(uri=mongo.uri), md.RestoreRequest(path=str(path), database=target_db.name))
    _assert_untouched(mongo, target_db.name)


def test_invalid_extended_json_metadata_is_refused(mongo, target_db, run_module, tmp_path):
    dump = _copy(DATA / "mongodump", tmp_path / "d")
    (dump / "shop" / "orders.metadata.json").write_text('{"options": {"size": {"$numberLong": "twelve"}}, "indexes": []}')
    r = run_module("mongodb_restore", {**mongo.login_params(), "path": str(dump), "database": target_db.name})
    assert r.failed and "orders.metadata.json is not valid Extended JSON" in r.msg
    _assert_untouched(mongo, target_db.name)


def test_invalid_database_name(mongo, run_module, tmp_path):
    r = run_module("mongodb_restore", {**mongo.login_params(), "path": str(DATA / "mongodump"), "database": "shop.green"})
    assert r.failed and "'shop.green' is not a valid MongoDB database name: it contains '.'" in r.msg
    with pytest.raises(md.InvalidInput, match="not a valid MongoDB database name"):
        md.backup(MongoConnection(uri=mongo.uri), md.BackupRequest(database="a b", path=str(tmp_path / "never")))
    assert not (tmp_path / "never").exists()


def test_unreachable_server_and_missing_database(mongo, run_module, tmp_path):
    from harness.net import free_port

    r = run_module(
        "mongodb_backup",
        {"login_host": "127.0.0.1", "login_port": free_port(), "connect_timeout": 2, "database": "x", "path": str(tmp_path / "b")},
    )
    assert r.failed and r["error"] == "ConnectionFailed" and "cannot reach MongoDB at mongodb://127.0.0.1:" in r.msg
    with pytest.raises(md.InvalidInput, match="has no collections.*typo"):
        md.backup(MongoConnection(uri=mongo.uri), md.BackupRequest(database="no_such_db_here", path=str(tmp_path / "b")))
    assert not (tmp_path / "b").exists()


def test_wrong_credentials_fail_clearly_without_showing_the_password(mongo, run_module, tmp_path):
    secret = "S3cret-Never-Shown"
    r = run_module(
        "mongodb_backup",
        {**mongo.login_params(), "login_user": "nobody", "login_password": secret, "database": "x", "path": str(tmp_path / "b")},
    )
    assert r.failed and r["error"] == "ConnectionFailed"
    # MongoDB: "refused the credentials"; FerretDB without authentication refuses the mechanism itself.
    assert "refused the credentials" in r.msg or "authentication mechanism" in r.msg
    assert secret not in r.output and secret not in json.dumps(r.result)


def test_refuses_the_default_entry_and_a_non_empty_target(mongo, mongo_db, target_db, run_module, tmp_path):
    seed(mongo_db)
    before = content(mongo_db)
    record = tmp_path / "shop.json"
    host = mongo.uri.split("//", 1)[1].split("/", 1)[0].split("@")[-1]
    record.write_text(
        json.dumps(
            {
                "format": 1,
                "name": "shop",
                "engine": "mongodb",
                "entries": {
                    "blue": {"login_uri": f"mongodb://{host}/", "database": mongo_db.name},
                    "green": {"login_uri": f"mongodb://{host}/", "database": target_db.name},
                },
                "default": "blue",
            }
        )
    )
    args = {**mongo.login_params(), "path": str(DATA / "mongodump"), "boot_record": str(record)}
    r = run_module("mongodb_restore", {**args, "database": mongo_db.name, "replace": True})
    assert r.failed and r["error"] == "SafetyRefusal" and "it is the default entry 'blue'" in r.msg
    assert content(mongo_db) == before
    conn = MongoConnection(uri=mongo.uri)
    req = md.RestoreRequest(path=str(DATA / "mongodump"), database=target_db.name, boot_record=str(record))
    md.restore(conn, req)
    with pytest.raises(md.SafetyRefusal, match=r"already holds 4 collection\(s\).*replace: true"):
        md.restore(conn, req)
    target_db.users.delete_many({})
    req.replace, req.collections = True, ["users"]
    assert md.restore(conn, req)["replaces"] == ["audit log/2024 %", "legacy", "orders", "users"]
    assert sorted(target_db.list_collection_names()) == ["users"] and target_db.users.count_documents({}) == 50


def test_failed_restore_leaves_no_half_database(mongo, target_db, tmp_path):
    """A duplicate _id in the backup makes the insert fail part way: the target must not keep a half restore."""
    d = tmp_path / "dump" / "src"
    d.mkdir(parents=True)
    docs = [{"_id": i} for i in range(100)] + [{"_id": 5}]
    (d / "c.bson").write_bytes(b"".join(bson.encode(x) for x in docs))
    (d / "ok.bson").write_bytes(bson.encode({"_id": 1}))
    conn = MongoConnection(uri=mongo.uri)
    with pytest.raises(md.OperationFailed, match="restoring collection 'c' failed: .*duplicate key") as exc:
        md.restore(conn, md.RestoreRequest(path=str(tmp_path / "dump"), database=target_db.name))
    assert "cleanup" in exc.value.details
    _assert_untouched(mongo, target_db.name)


def test_collection_filters_and_a_large_document(mongo, mongo_db, target_db, tmp_path):
    big = {"_id": "big", "blob": Binary(os.urandom(3 * 1024 * 1024), 0), "text": "x" * 500_000}
    mongo_db.files.insert_one(big)
    mongo_db.users.insert_many([{"_id": i} for i in range(10)])
    mongo_db.logs.insert_one({"_id": 1})
    conn = MongoConnection(uri=mongo.uri)
    with pytest.raises(md.InvalidInput, match="collection.s. nope not found"):
        md.backup(conn, md.BackupRequest(database=mongo_db.name, path=str(tmp_path / "x"), collections=["files", "nope"]))
    b = md.backup(conn, md.BackupRequest(database=mongo_db.name, path=str(tmp_path / "bk"), exclude_collections=["logs"]))
    assert sorted(c["name"] for c in b["collections"]) == ["files", "users"]
    r = md.restore(conn, md.RestoreRequest(path=str(tmp_path / "bk"), database=target_db.name, collections=["files"], batch_bytes=1024))
    assert [c["name"] for c in r["collections"]] == ["files"] and r["bson_bytes"] > 3_500_000
    assert raw_docs(target_db, "files") == raw_docs(mongo_db, "files") and target_db.list_collection_names() == ["files"]
    with pytest.raises(md.InvalidInput, match="are not in the backup"):
        md.restore(conn, md.RestoreRequest(path=str(tmp_path / "bk"), database=target_db.name, collections=["logs"]))
