"""mongodb_drift on a real server: exact drift against the fingerprint collected during the dump."""

from __future__ import annotations

import threading

import pytest

from ansible_collections.dualboot.db.plugins.module_utils import mongo_drift as mdr
from ansible_collections.dualboot.db.plugins.module_utils import mongo_dump as md
from ansible_collections.dualboot.db.plugins.module_utils.mongodb import MongoConnection


def _seed(db) -> None:
    db.users.insert_many([{"_id": i, "userName": f"u{i}"} for i in range(2000)])
    db.orders.insert_many([{"_id": i, "user": i % 50} for i in range(300)])
    db.old.insert_one({"_id": 1})


def test_marker_is_collected_during_the_dump_and_no_write_means_no_drift(mongo, mongo_db, tmp_path, run_module):
    _seed(mongo_db)
    conn = MongoConnection(uri=mongo.uri)
    b = md.backup(conn, md.BackupRequest(database=mongo_db.name, path=str(tmp_path / "bk")))
    marker = b["marker"]
    assert marker["kind"] == "mongodb-fingerprint" and marker["database"] == mongo_db.name
    assert marker["collections"]["users"]["documents"] == 2000
    assert marker["collections"]["users"]["content_hash"] == next(c for c in b["collections"] if c["name"] == "users")["content_hash"]
    r = run_module("mongodb_drift", {**mongo.login_params(), "database": mongo_db.name, "marker": marker})
    assert not r.failed and r["drift"] is False and r["collections"] == [], r.msg
    assert r["method"] == "content_fingerprint" and r["method_reason"] and r["documents_read"] == 2301
    assert (
        run_module("mongodb_drift", {**mongo.login_params(), "database": mongo_db.name, "backup": str(tmp_path / "bk")})["drift"] is False
    )


def test_every_kind_of_write_is_named_with_counts(mongo, mongo_db, tmp_path):
    _seed(mongo_db)
    conn = MongoConnection(uri=mongo.uri)
    marker = md.backup(conn, md.BackupRequest(database=mongo_db.name, path=str(tmp_path / "bk")))["marker"]
    # An update that keeps the count, a delete, a collection dropped and one created.
    mongo_db.users.update_one({"_id": 7}, {"$set": {"userName": "changed"}})
    mongo_db.orders.delete_one({"_id": 3})
    mongo_db.old.drop()
    mongo_db.fresh.insert_one({"_id": 1})
    r = mdr.drift(conn, mongo_db.name, marker)
    assert r["drift"] is True
    assert {c["collection"]: (c["change"], c["documents_before"], c["documents_now"]) for c in r["collections"]} == {
        "users": ("written", 2000, 2000),
        "orders": ("written", 300, 299),
        "old": ("dropped", 1, 0),
        "fresh": ("added", 0, 1),
    }
    assert "users (written, 2000 -> 2000 documents)" in r["summary"] and "old (dropped, 1 -> 0 documents)" in r["summary"]
    # Writing back the identical bytes is no change: the fingerprint is of content, not of activity.
    mongo_db.users.update_one({"_id": 7}, {"$set": {"userName": "u7"}})
    assert "users" not in {c["collection"] for c in mdr.drift(conn, mongo_db.name, marker)["collections"]}


def test_writes_during_the_dump_are_either_copied_or_reported(mongo, mongo_db, tmp_path):
    """A writer runs through the dump: whatever the dump missed, and nothing it holds, is reported."""
    _seed(mongo_db)
    conn = MongoConnection(uri=mongo.uri)
    stop = threading.Event()
    written = []

    def writer():
        client = mongo.client()
        n = 0
        while not stop.is_set():
            client[mongo_db.name].events.insert_one({"_id": n})
            client[mongo_db.name].users.update_one({"_id": n % 2000}, {"$inc": {"v": 1}})
            written.append(n)
            n += 1
        client.close()

    t = threading.Thread(target=writer)
    t.start()
    try:
        b = md.backup(conn, md.BackupRequest(database=mongo_db.name, path=str(tmp_path / "bk"), jobs=1))
    finally:
        stop.set()
        t.join()
    in_dump = b["marker"]["collections"].get("events", {}).get("documents", 0)
    r = mdr.drift(conn, mongo_db.name, b["marker"])
    events = next((c for c in r["collections"] if c["collection"] == "events"), None)
    if in_dump == len(written):
        assert events is None
    else:
        assert events is not None and events["documents_now"] - events["documents_before"] == len(written) - in_dump
    # Restoring the dump and fingerprinting the copy gives the marker exactly: the marker describes the copy.
    target = mongo.new_db_name()
    try:
        md.restore(conn, md.RestoreRequest(path=str(tmp_path / "bk"), database=target))
        assert mdr.mark(conn, target)["marker"]["collections"] == b["marker"]["collections"]
    finally:
        mongo.client().drop_database(target)


def test_bad_markers_are_refused_clearly(mongo, mongo_db, tmp_path, run_module):
    _seed(mongo_db)
    conn = MongoConnection(uri=mongo.uri)
    marker = mdr.mark(conn, mongo_db.name)["marker"]
    other = mongo.new_db_name()
    with pytest.raises(md.InvalidInput, match=rf"taken of database '{mongo_db.name}'.*not of '{other}'"):
        mdr.drift(conn, other, marker)
    with pytest.raises(md.InvalidInput, match="no drift marker"):
        mdr.drift(conn, mongo_db.name, None)
    with pytest.raises(md.InvalidInput, match="not a MongoDB fingerprint marker"):
        mdr.drift(conn, mongo_db.name, {"database": mongo_db.name, "wal_lsn": "0/1"})
    r = run_module("mongodb_drift", {**mongo.login_params(), "database": mongo_db.name, "backup": str(tmp_path / "nothing")})
    assert r.failed and "no drift marker" in r.msg
