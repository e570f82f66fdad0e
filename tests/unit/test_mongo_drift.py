"""Comparison of MongoDB drift markers, without a server."""

from __future__ import annotations

import pytest

from ansible_collections.dualboot.db.plugins.module_utils import mongo_drift as mdr
from ansible_collections.dualboot.db.plugins.module_utils.errors import InvalidInput
from ansible_collections.dualboot.db.plugins.module_utils.mongo_dump import make_marker
from ansible_collections.dualboot.db.plugins.module_utils.mongodb import MongoConnection

CONN = MongoConnection(uri="mongodb://db1:27017/")


def _marker(collections: dict, database: str = "shop", conn: MongoConnection = CONN) -> dict:
    return make_marker(conn, database, collections, "2026-12-01T00:00:00Z", "test", False)


def test_compare_names_written_added_and_dropped_collections():
    before = {
        "a": {"documents": 2, "content_hash": "x"},
        "b": {"documents": 1, "content_hash": "y"},
        "c": {"documents": 0, "content_hash": "z"},
    }
    now = {
        "a": {"documents": 2, "content_hash": "x2"},
        "c": {"documents": 0, "content_hash": "z"},
        "d": {"documents": 3, "content_hash": "w"},
    }
    changes = mdr.compare(_marker(before), now)
    assert [(c["collection"], c["change"], c["documents_delta"]) for c in changes] == [
        ("a", "written", 0),
        ("b", "dropped", -1),
        ("d", "added", 3),
    ]
    assert mdr.describe(changes).startswith("a (written, 2 -> 2 documents), b (dropped, 1 -> 0 documents)")


def test_marker_of_another_database_or_server_is_refused():
    m = _marker({})
    assert mdr.check_marker(m, MongoConnection(uri="mongodb://DB1:27017/x"), "shop") is m
    with pytest.raises(InvalidInput, match="taken of database 'shop'"):
        mdr.check_marker(m, CONN, "shop_green")
    with pytest.raises(InvalidInput, match="on db1:27017, not of 'shop' on db2:27017"):
        mdr.check_marker(m, MongoConnection(uri="mongodb://db2:27017/"), "shop")


@pytest.mark.parametrize("marker", [None, {}])
def test_missing_marker_says_to_stage_again(marker):
    with pytest.raises(InvalidInput, match="no drift marker for database 'shop'.*stage again"):
        mdr.check_marker(marker, CONN, "shop")


def test_scope_of_a_filtered_backup():
    assert mdr.in_scope("a", None) and mdr.in_scope("a", {"collections": ["a"], "exclude": []})
    assert not mdr.in_scope("b", {"collections": ["a"], "exclude": []}) and not mdr.in_scope("a", {"collections": [], "exclude": ["a"]})
