"""mongodump layout pieces without a server: name escaping, BSON framing, metadata, content hash, safety."""

from __future__ import annotations

import gzip
import hashlib
import json

import bson
import pytest

from ansible_collections.dualboot.db.plugins.module_utils import mongo_dump as md
from ansible_collections.dualboot.db.plugins.module_utils.errors import IntegrityError, InvalidInput, SafetyRefusal
from ansible_collections.dualboot.db.plugins.module_utils.mongodb import MongoConnection


@pytest.mark.parametrize(
    "name, stem",
    [
        ("users", "users"),
        ("audit log/2024 %", "audit%20log%2F2024%20%25"),
        ("a.b-c_d~e", "a.b-c_d~e"),
        ("x$&+:=@y", "x$&+:=@y"),  # Go's PathEscape keeps these in a path segment
        ("q?r;s,t#u", "q%3Fr%3Bs%2Ct%23u"),
        ("ünï", "%C3%BCn%C3%AF"),
    ],
)
def test_collection_names_escape_like_mongodump(name, stem):
    assert md.escape_collection_name(name) == stem
    assert md.unescape_collection_name(stem) == name


def test_long_names_are_cut_and_hashed_like_mongodump():
    name = "c" * 300
    stem = md.escape_collection_name(name)
    digest = hashlib.sha1(name.encode()).digest()  # noqa: S324 - mongodump's naming
    import base64

    assert stem == "c" * 208 + "%24" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert len(stem) == 238
    assert md.escape_collection_name("c" * 238) == "c" * 238


def test_broken_escape_is_rejected():
    with pytest.raises(InvalidInput, match="broken %-escape"):
        md.unescape_collection_name("bad%2")


@pytest.mark.parametrize("name", ["", "a.b", "a b", "a/b", "a$b", 'a"b', "x" * 64])
def test_invalid_database_names(name):
    with pytest.raises(InvalidInput):
        md.validate_database_name(name)


def test_valid_database_name():
    assert md.validate_database_name("shop_green-2") == "shop_green-2"


def _bson_file(tmp_path, docs, name="c.bson", gz=False, cut=0):
    data = b"".join(bson.encode(d) for d in docs)
    if cut:
        data = data[:-cut]
    p = tmp_path / name
    p.write_bytes(gzip.compress(data) if gz else data)
    return str(p)


@pytest.mark.parametrize("gz", [False, True])
def test_reader_returns_the_exact_bytes(tmp_path, gz):
    docs = [{"_id": i, "v": "x" * i} for i in range(50)]
    path = _bson_file(tmp_path, docs, "c.bson.gz" if gz else "c.bson", gz=gz)
    with md.BsonReader(path) as r:
        got = list(r)
    assert got == [bson.encode(d) for d in docs]


@pytest.mark.parametrize("cut, what", [(3, "ends inside a document"), (1, "ends inside a document")])
def test_truncated_file_names_document_and_offset(tmp_path, cut, what):
    docs = [{"_id": i} for i in range(3)]
    path = _bson_file(tmp_path, docs, cut=cut)
    with pytest.raises(IntegrityError, match=rf"{what}.*document 3, byte offset 28"):
        list(md.BsonReader(path))


def test_impossible_length_and_missing_terminator(tmp_path):
    p = tmp_path / "x.bson"
    p.write_bytes(b"\x03\x00\x00\x00")
    with pytest.raises(IntegrityError, match="impossible document length 3"):
        list(md.BsonReader(str(p)))
    raw = bytearray(bson.encode({"a": 1}))
    raw[-1] = 1
    p.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match="does not end with a NUL"):
        list(md.BsonReader(str(p)))


def test_split_documents_checks_frames():
    buf = bson.encode({"a": 1}) + bson.encode({"b": 2})
    assert [bytes(d) for d in md.split_documents(buf)] == [bson.encode({"a": 1}), bson.encode({"b": 2})]
    with pytest.raises(IntegrityError):
        list(md.split_documents(buf + b"\x01"))


def test_content_hash_is_order_independent_and_sensitive():
    docs = [bson.encode({"_id": i, "v": i * 2}) for i in range(100)]
    a, b, c = md.ContentHash(), md.ContentHash(), md.ContentHash()
    for d in docs:
        a.add(d)
    for d in reversed(docs):
        b.add(d)
    for d in docs[:-1] + [bson.encode({"_id": 99, "v": 199})]:
        c.add(d)
    assert a.hexdigest() == b.hexdigest() != c.hexdigest()
    assert a.count == 100 and a.bytes == sum(len(d) for d in docs)


def test_metadata_is_compact_canonical_extended_json_in_mongodump_order():
    from bson.son import SON

    idx = [SON([("v", 2), ("key", SON([("_id", 1)])), ("name", "_id_")])]
    text = md.metadata_json({"capped": True, "size": bson.int64.Int64(4096)}, idx, "00ff", "c", "collection")
    assert text == (
        '{"options":{"capped":true,"size":{"$numberLong":"4096"}},'
        '"indexes":[{"v":{"$numberInt":"2"},"key":{"_id":{"$numberInt":"1"}},"name":"_id_"}],'
        '"uuid":"00ff","collectionName":"c","type":"collection"}'
    )
    meta = md.parse_metadata(text, "c.metadata.json")
    assert meta["options"]["size"] == 4096 and meta["collectionName"] == "c"
    assert md.metadata_json({}, [], "", "v", "view").startswith('{"options":{},"indexes":[]')


def test_legacy_metadata_parses_and_index_specs_are_cleaned():
    meta = md.parse_metadata('{"indexes":[{"name":"t_1","ns":"db.c","v":1,"key":{"t":1},"background":true}]}', "legacy")
    assert meta["collectionName"] is None
    assert dict(md.clean_index_spec(meta["indexes"][0])) == {"name": "t_1", "key": {"t": 1}}


@pytest.mark.parametrize("text", ["{not json", '{"indexes": {"$numberInt": "x"}}', "[1, 2]", '{"indexes": [{"name": "no key"}]}'])
def test_invalid_metadata_is_an_integrity_error(text):
    with pytest.raises(IntegrityError, match="c.metadata.json"):
        md.parse_metadata(text, "c.metadata.json")


def _record(tmp_path, entry):
    rec = {
        "format": 1,
        "name": "shop",
        "engine": "mongodb",
        "entries": {"blue": entry, "green": {"login_host": "db9", "database": "x"}},
        "default": "blue",
    }
    p = tmp_path / "shop.json"
    p.write_text(json.dumps(rec))
    return str(p)


def test_default_entry_is_refused_unless_forced(tmp_path):
    path = _record(tmp_path, {"login_uri": "mongodb://127.0.0.1:27017,db2:27018/?replicaSet=rs", "database": "shop_blue"})
    conn = MongoConnection(uri="mongodb://u:secret@localhost:27017/")
    with pytest.raises(SafetyRefusal, match="default entry 'blue'") as exc:
        md.refuse_default_entry(path, conn, "shop_blue", False, "restore into")
    assert "secret" not in str(exc.value)
    assert md.refuse_default_entry(path, conn, "shop_blue", True, "restore into") == "blue"
    assert md.refuse_default_entry(path, conn, "shop_green", False, "restore into") is None
    assert md.refuse_default_entry(path, MongoConnection(host="db3"), "shop_blue", False, "restore into") is None


def test_default_entry_by_host_and_port(tmp_path):
    path = _record(tmp_path, {"login_host": "db1", "login_port": 27018, "database": "shop"})
    assert md.same_mongodb_database(
        {"login_host": "db1", "login_port": 27018, "database": "shop"}, MongoConnection(uri="mongodb://DB1:27018"), "shop"
    )
    with pytest.raises(SafetyRefusal):
        md.refuse_default_entry(path, MongoConnection(host="db1", port=27018), "shop", False, "restore into")
    assert md.refuse_default_entry(path, MongoConnection(host="db1", port=27017), "shop", False, "restore into") is None


@pytest.mark.parametrize("prefix", ["c" * 207, "c" * 206, "c" * 205])
def test_long_names_are_not_cut_inside_a_percent_escape(prefix):
    stem = md.escape_collection_name(prefix + "é" * 40)
    cut = stem[: stem.rindex("%24")]
    assert not md._BAD_ESCAPE.search(cut), cut[-6:]
    assert len(stem) <= 238


def test_metadata_always_has_options():
    assert md.metadata_json({}, [], "", "c", "collection").startswith('{"options":{},"indexes":[]')
