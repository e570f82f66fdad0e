"""Write the mongodump-format fixtures next to this file, byte for byte as mongodump 100.x lays them out.

No mongodump binary was available to produce them (Debian bookworm has no mongo-tools package and the
Go module proxy refuses github.com/mongodb/mongo-tools), so this script follows mongodump's source:

- ``<out>/<db>/<escaped name>.bson``: the documents' raw BSON back to back (mongodump copies the
  server's bytes; ``bson.encode`` of a dict gives the same bytes MongoDB stores for it);
- ``<escaped name>.metadata.json``: ``bson.MarshalExtJSON(meta, canonical=true, escapeHTML=false)`` of
  ``{options (omitted when empty), indexes, uuid (hex, omitted when none), collectionName, type}``;
- names escaped with Go's ``url.PathEscape`` (space -> %20, / -> %2F, % -> %25);
- ``--gzip``: the same files with ``.gz`` appended, gzip-compressed;
- a legacy (mongodump 2.x) metadata file: relaxed JSON, ``ns`` and ``v: 1`` in the index specs, no
  ``collectionName``, as committed in mongo-tools' own test data.

Run it again only to change the fixtures: ``.venv/bin/python tests/integration/data/mongo/make_mongodump_fixture.py``.
"""

from __future__ import annotations

import datetime
import gzip
import os
import shutil

import bson
from bson import ObjectId
from bson.int64 import Int64

HERE = os.path.dirname(os.path.abspath(__file__))
DB = "shop"

USERS = [
    {"_id": i, "userName": f"user{i:03d}", "visits": Int64(i * 7), "created": datetime.datetime(2024, 1, 1) + datetime.timedelta(days=i)}
    for i in range(1, 51)
]
ORDERS = [
    {"_id": ObjectId(f"65a000000000000000000{i:03d}"), "user": i % 50 + 1, "items": [{"sku": f"S{i}", "qty": i % 3 + 1}], "total": i * 1.5}
    for i in range(1, 21)
]
WEIRD = [{"_id": 1, "note": "a collection whose name needs escaping"}]
LEGACY = [{"_id": 1, "t": "old"}, {"_id": 2, "t": "older"}]

USERS_META = (
    '{"indexes":[{"v":{"$numberInt":"2"},"key":{"_id":{"$numberInt":"1"}},"name":"_id_"},'
    '{"v":{"$numberInt":"2"},"key":{"userName":{"$numberInt":"1"}},"name":"userName_1","unique":true},'
    '{"v":{"$numberInt":"2"},"key":{"created":{"$numberInt":"-1"},"visits":{"$numberInt":"1"}},"name":"created_-1_visits_1"}],'
    '"uuid":"3b241101e2bb42558caf4136c566a962","collectionName":"users","type":"collection"}'
)
ORDERS_META = (
    '{"options":{"capped":true,"size":{"$numberLong":"1048576"}},'
    '"indexes":[{"v":{"$numberInt":"2"},"key":{"_id":{"$numberInt":"1"}},"name":"_id_"},'
    '{"v":{"$numberInt":"2"},"key":{"user":{"$numberInt":"1"}},"name":"user_1"}],'
    '"uuid":"9f1c2d3e4b5a69788796a5b4c3d2e1f0","collectionName":"orders","type":"collection"}'
)
WEIRD_NAME = "audit log/2024 %"
WEIRD_META = (
    '{"indexes":[{"v":{"$numberInt":"2"},"key":{"_id":{"$numberInt":"1"}},"name":"_id_"}],'
    '"uuid":"0a0b0c0d0e0f40118899aabbccddeeff","collectionName":"audit log/2024 %","type":"collection"}'
)
VIEW_META = (
    '{"options":{"viewOn":"users","pipeline":[{"$match":{"visits":{"$gt":{"$numberInt":"100"}}}}]},'
    '"indexes":[],"collectionName":"frequent_users","type":"view"}'
)
LEGACY_META = '{"indexes":[{"name":"_id_","ns":"shop.legacy","v":1,"key":{"_id":1}},{"name":"t_1","ns":"shop.legacy","v":1,"key":{"t":1}}]}'


def _write(path: str, data: bytes, gz: bool) -> None:
    if gz:
        path += ".gz"
        data = gzip.compress(data, compresslevel=6, mtime=0)
    with open(path, "wb") as f:
        f.write(data)


def make(out: str, gz: bool, with_view: bool) -> None:
    shutil.rmtree(out, ignore_errors=True)
    d = os.path.join(out, DB)
    os.makedirs(d)
    for stem, docs, meta in (
        ("users", USERS, USERS_META),
        ("orders", ORDERS, ORDERS_META),
        ("audit%20log%2F2024%20%25", WEIRD, WEIRD_META),
        ("legacy", LEGACY, LEGACY_META),
    ):
        _write(os.path.join(d, stem + ".bson"), b"".join(bson.encode(doc) for doc in docs), gz)
        _write(os.path.join(d, stem + ".metadata.json"), meta.encode(), gz)
    if with_view:
        _write(os.path.join(d, "frequent_users.metadata.json"), VIEW_META.encode(), gz)


if __name__ == "__main__":
    make(os.path.join(HERE, "mongodump"), gz=False, with_view=True)
    make(os.path.join(HERE, "mongodump-gzip"), gz=True, with_view=False)
