"""Check and collection-list validation of mongodb_compare without a server."""

from __future__ import annotations

import pytest
from bson import ObjectId

from ansible_collections.dualboot.db.plugins.module_utils import mongo_compare as mc
from ansible_collections.dualboot.db.plugins.module_utils.errors import InvalidInput


def test_checks_are_normalised_with_extended_json_filters():
    (c,) = mc.validate_checks(
        [{"name": "one", "target": {"collection": "users", "filter": {"_id": {"$oid": "65a000000000000000000001"}}}, "expect_count": 1}]
    )
    assert c["target"]["filter"] == {"_id": ObjectId("65a000000000000000000001")} and c["source"] is None and c["key"] == "_id"


@pytest.mark.parametrize(
    "check, message",
    [
        ({"source": {"collection": "a"}}, "needs a name"),
        ({"name": "x"}, "neither source nor target"),
        ({"name": "x", "target": {"collection": "a"}}, "no expect_count"),
        ({"name": "x", "target": {"collection": "a"}, "expect_count": "3"}, "must be an integer"),
        ({"name": "x", "source": {"collection": "a", "field": "f"}, "target": {"collection": "a"}}, "need a field on both"),
        ({"name": "x", "target": {"collection": "a", "where": {}}, "expect_count": 0}, "unknown key"),
        ({"name": "x", "target": {"collection": "a", "filter": "x"}, "expect_count": 0}, "filter must be a mapping"),
        ({"name": "x", "target": {}, "expect_count": 0}, "needs a collection"),
        ({"name": "x", "target": {"collection": "a"}, "expect_count": 0, "sql": "no"}, "unknown key"),
    ],
)
def test_bad_checks_are_refused(check, message):
    with pytest.raises(InvalidInput, match=message):
        mc.validate_checks([check])


def test_duplicate_check_names():
    with pytest.raises(InvalidInput, match="used twice"):
        mc.validate_checks([{"name": "x", "target": {"collection": "a"}, "expect_count": 0}] * 2)


def test_collection_plan():
    assert mc._collection_plan(None, {"a": "collection", "v": "view"}, {"b": "collection"}) == [
        {"name": "a", "content": True},
        {"name": "b", "content": True},
    ]
    assert mc._collection_plan(["a", {"name": "u", "content": False}], {}, {}) == [
        {"name": "a", "content": True},
        {"name": "u", "content": False},
    ]
    assert mc._collection_plan([], {"a": "collection"}, {"a": "collection"}) == []  # checks only
    with pytest.raises(InvalidInput, match="unknown key"):
        mc._collection_plan([{"name": "u", "hash": False}], {}, {})


def test_field_paths_and_strict_equality():
    doc = {"user": {"name": "a", "tags": ["x", "y"]}}
    assert mc._get_path(doc, "user.name") == "a" and mc._get_path(doc, "user.tags.1") == "y"
    assert mc._get_path(doc, "user.age") is mc.MISSING
    assert mc._same(1, 1.0) and not mc._same(True, 1) and not mc._same("1", 1)
