"""Restore safety on a real server: a replace keeps the old target until the new content is complete
(even when the server dies mid-restore), a content-hash mismatch is caught before any write, errors
with login_uri show where they connected."""

from __future__ import annotations

import json
import subprocess
import threading
import time

import bson
import pytest
from harness.ferretdb import FerretServer
from harness.net import free_port, wait_for_port

from ansible_collections.dualboot.db.plugins.module_utils import mongo_dump as md
from ansible_collections.dualboot.db.plugins.module_utils.mongodb import MongoConnection


def _dump(tmp_path, name: str, docs: int) -> str:
    d = tmp_path / name / "src"
    d.mkdir(parents=True)
    (d / "big.bson").write_bytes(b"".join(bson.encode({"_id": i, "pad": "n" * 200}) for i in range(docs)))
    (d / "small.bson").write_bytes(bson.encode({"_id": 1, "new": True}))
    return str(tmp_path / name)


def _restart(server: FerretServer) -> None:
    log = open(server.log, "ab")
    server.proc = subprocess.Popen(
        [server.binary, "--listen-addr", f"127.0.0.1:{server.port}", "--sqlite-dir", str(server.base / "data")],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    log.close()
    wait_for_port(server.port, timeout=30, alive=lambda: server.proc.poll() is None)


@pytest.fixture
def own_ferretdb():
    """A FerretDB of this test's own: it is killed in the middle of a restore."""
    import os

    if os.environ.get("DUALBOOT_TEST_MONGO_URI"):
        pytest.skip("kills its own FerretDB server; DUALBOOT_TEST_MONGO_URI points at an external server")
    server = FerretServer().start()
    yield server
    server.stop()


def test_server_killed_mid_replace_restore_leaves_the_old_target_complete(own_ferretdb, tmp_path):
    client = own_ferretdb.client()
    old = client.target
    old.big.insert_many([{"_id": i, "old": True} for i in range(500)])
    old.keep.insert_one({"_id": "only in the old target"})
    path = _dump(tmp_path, "dump", 30000)
    conn = MongoConnection(uri=own_ferretdb.uri, connect_timeout=3)
    failure = []

    def restore():
        try:
            md.restore(
                conn, md.RestoreRequest(path=path, database="target", replace=True, jobs=1, insertion_workers=1, batch_bytes=64 * 1024)
            )
        except Exception as exc:  # noqa: BLE001 - the test looks at it below
            failure.append(exc)

    t = threading.Thread(target=restore)
    t.start()
    watcher = own_ferretdb.client()
    deadline = time.monotonic() + 120
    # Kill the server once new documents are being written (somewhere in the target database).
    while time.monotonic() < deadline:
        names = watcher.target.list_collection_names()
        if any(watcher.target[n].estimated_document_count() > 1000 and n != "big" for n in names) or (
            "keep" not in names or watcher.target.big.estimated_document_count() > 1000
        ):
            break
        time.sleep(0.05)
    own_ferretdb.proc.kill()
    own_ferretdb.proc.wait()
    t.join(120)
    assert failure and isinstance(failure[0], md.DualbootError), failure
    _restart(own_ferretdb)
    after = own_ferretdb.client().target
    assert sorted(d["_id"] for d in after.big.find({}, {"_id": 1})) == list(range(500))
    assert after.big.count_documents({"old": True}) == 500
    assert after.keep.count_documents({}) == 1
    # The next restore cleans up what the killed one left and replaces the target completely.
    r = md.restore(conn, md.RestoreRequest(path=path, database="target", replace=True, jobs=1))
    assert r["documents"] == 30001
    assert sorted(after.list_collection_names()) == ["big", "small"]
    assert after.big.count_documents({}) == 30000 and after.big.count_documents({"old": True}) == 0


def test_replace_keeps_collections_of_the_old_target_until_the_new_content_is_complete(mongo, tmp_path):
    """A failing restore (duplicate key in the backup) leaves a replaced target exactly as it was."""
    client = mongo.client()
    name = mongo.new_db_name()
    try:
        client[name].users.insert_many([{"_id": i} for i in range(10)])
        d = tmp_path / "dump" / "src"
        d.mkdir(parents=True)
        (d / "users.bson").write_bytes(b"".join(bson.encode({"_id": i}) for i in [1, 2, 3, 2]))
        with pytest.raises(md.OperationFailed, match="duplicate key"):
            md.restore(MongoConnection(uri=mongo.uri), md.RestoreRequest(path=str(tmp_path / "dump"), database=name, replace=True))
        assert client[name].list_collection_names() == ["users"]
        assert client[name].users.count_documents({}) == 10
    finally:
        client.drop_database(name)


def test_content_hash_mismatch_is_reported_as_such_before_writing(mongo, mongo_db, tmp_path):
    mongo_db.users.insert_many([{"_id": i} for i in range(100)])
    path = tmp_path / "bk"
    md.backup(MongoConnection(uri=mongo.uri), md.BackupRequest(database=mongo_db.name, path=str(path)))
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["collections"][0]["content_hash"] = "0" * 64
    (path / "manifest.json").write_text(json.dumps(manifest))
    target = mongo.new_db_name()
    client = mongo.client()
    try:
        with pytest.raises(md.IntegrityError, match="content hash") as exc:
            md.restore(MongoConnection(uri=mongo.uri), md.RestoreRequest(path=str(path), database=target))
        assert "read 100 document(s) from the backup" not in str(exc.value)
        assert target not in client.list_database_names() or client[target].list_collection_names() == []
    finally:
        client.drop_database(target)


def test_login_uri_errors_show_host_and_port(run_module, tmp_path):
    port = free_port()
    r = run_module(
        "mongodb_backup", {"login_uri": f"mongodb://127.0.0.1:{port}/", "connect_timeout": 2, "database": "x", "path": str(tmp_path / "b")}
    )
    assert r.failed and r["error"] == "ConnectionFailed"
    assert f"127.0.0.1:{port}" in r.msg and "********" not in r.msg, r.msg
    r = run_module(
        "mongodb_backup",
        {
            "login_uri": f"mongodb://app:Pw-Never-Shown@127.0.0.1:{port}/",
            "connect_timeout": 2,
            "database": "x",
            "path": str(tmp_path / "b"),
        },
    )
    assert f"127.0.0.1:{port}" in r.msg and "Pw-Never-Shown" not in r.output
