"""Shapes, index normalisation and diff records without a server."""

from __future__ import annotations

import datetime

from bson import Int64, ObjectId

from ansible_collections.dualboot.db.plugins.module_utils import expectations
from ansible_collections.dualboot.db.plugins.module_utils import mongo_schema as ms


def test_shape_paths_types_and_fractions():
    docs = [
        {"_id": ObjectId(), "user": {"name": "a"}, "tags": ["x", 1], "n": 1},
        {"_id": ObjectId(), "user": {"name": "b", "age": Int64(3)}, "tags": [], "n": 2.5},
        {"_id": ObjectId(), "user": {"name": None}, "when": datetime.datetime(2024, 1, 1), "n": 2**40},
        {"_id": ObjectId(), "user": {"name": "d"}, "n": True},
    ]
    shape = ms.shape_of(docs)
    assert shape["user.name"] == {"types": {"null": 0.25, "string": 0.75}, "fraction": 1.0}
    assert shape["user.age"] == {"types": {"long": 0.25}, "fraction": 0.25}
    assert shape["tags"]["types"] == {"array": 0.5}
    assert shape["tags[]"]["types"] == {"int": 0.25, "string": 0.25}
    assert shape["n"]["types"] == {"bool": 0.25, "double": 0.25, "int": 0.25, "long": 0.25}
    assert shape["when"]["types"] == {"date": 0.25}
    assert shape["_id"]["types"] == {"objectId": 1.0}


def _snap(colls):
    return {"collections": colls, "sample_method": "first documents by _id"}


def _coll(shape=None, indexes=None, options=None, validation=None, sampled=10):
    return {
        "type": "collection",
        "options": options or {},
        "validation": validation or {},
        "indexes": indexes or {},
        "shape": shape or {},
        "sampled": sampled,
    }


def test_r4_shape_change_is_reported_apart_from_exact_changes():
    before = ms.shape_of([{"_id": i, "userName": f"u{i}"} for i in range(10)])
    after = ms.shape_of([{"_id": i, "user": {"name": f"u{i}"}} for i in range(10)])
    idx = {"_id_1": {}}
    changes, shape = ms.diff_snapshots(_snap({"users": _coll(before, idx)}), _snap({"users": _coll(after, idx)}), "shop")
    assert changes == []
    got = {(r["kind"], r["name"], r["change"]) for r in shape}
    assert got == {("field", "users.userName", "removed"), ("field", "users.user", "added"), ("field", "users.user.name", "added")}
    removed = next(r for r in shape if r["change"] == "removed")
    assert removed["hazards"] == ["deletes_data"] and removed["before"]["presence"] == "all"
    outcome = expectations.check(
        shape,
        expectations.normalize(
            [{"kind": "field", "name": "users.userName", "change": "removed"}, {"kind": "field", "name": "users.user*", "change": "added"}],
            "expect",
        ),
    )
    assert outcome["met"]


def test_presence_and_type_changes_but_not_frequency_jitter():
    a = ms.shape_of([{"x": 1, "y": "s"} for _i in range(8)] + [{"x": 2} for _i in range(2)])
    b = ms.shape_of([{"x": 1, "y": "s"} for _i in range(5)] + [{"x": "2"} for _i in range(5)])
    _changes, shape = ms.diff_snapshots(_snap({"c": _coll(a)}), _snap({"c": _coll(b)}), "db")
    assert [(r["name"], r["attribute"]) for r in shape] == [("c.x", "types")]
    c = ms.shape_of([{"x": 1} for _i in range(10)])
    d = ms.shape_of([{"x": 1} for _i in range(9)] + [{}])
    _changes, shape = ms.diff_snapshots(_snap({"c": _coll(c)}), _snap({"c": _coll(d)}), "db")
    assert [(r["name"], r["attribute"], r["before"]["presence"], r["after"]["presence"]) for r in shape] == [
        ("c.x", "presence", "all", "some")
    ]


def test_index_identity_is_the_ordered_key_and_defaults_are_normalised():
    sig_a, attrs_a = ms.normalize_index({"v": 2, "key": {"a": 1, "b": -1}, "name": "custom", "unique": False, "background": True})
    sig_b, attrs_b = ms.normalize_index({"v": 1, "key": {"a": 1.0, "b": -1.0}, "name": "a_1_b_-1", "ns": "x.y"})
    assert sig_a == sig_b == "a_1_b_-1" and attrs_a == attrs_b == {}
    assert ms.normalize_index({"key": {"b": -1, "a": 1}})[0] == "b_-1_a_1"
    s = _snap({"c": _coll(indexes={"_id_1": {}, "a_1_b_-1": {}})})
    t = _snap({"c": _coll(indexes={"_id_1": {}, "b_-1_a_1": {}, "email_1": {"unique": True}})})
    changes, _shape = ms.diff_snapshots(s, t, "db")
    got = [(r["name"], r["change"], r["hazards"]) for r in changes]
    assert ("c.a_1_b_-1", "removed", []) in got
    assert ("c.b_-1_a_1", "added", ["builds_index"]) in got
    assert ("c.email_1", "added", ["builds_index", "may_fail_on_existing_data"]) in got


def test_options_validators_and_collections():
    s = _snap({"a": _coll(), "gone": _coll(), "v": _coll(options={"capped": True, "size": 4096})})
    t = _snap(
        {
            "a": _coll(validation={"validator": {"$jsonSchema": {"required": ["x"]}}}),
            "new": _coll(),
            "v": _coll(options={"capped": True, "size": 8192}),
        }
    )
    changes, _shape = ms.diff_snapshots(s, t, "db")
    got = {(r["kind"], r["name"], r["change"], r["attribute"]) for r in changes}
    assert got == {
        ("validator", "a", "added", "validator"),
        ("collection", "gone", "removed", None),
        ("collection", "new", "added", None),
        ("option", "v", "modified", "size"),
    }
    gone = next(r for r in changes if r["name"] == "gone")
    assert gone["hazards"] == ["deletes_data"] and gone["schema"] == "db"


def test_empty_side_has_no_shape_diff():
    a = ms.shape_of([{"x": 1}])
    assert ms.diff_snapshots(_snap({"c": _coll(a)}), _snap({"c": _coll({}, sampled=0)}), "db") == ([], [])
