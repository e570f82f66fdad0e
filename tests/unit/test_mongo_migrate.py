"""Loading and checking migrations without a server: naming, order, checksums, malformed files."""

from __future__ import annotations

import datetime

import pytest
from bson import ObjectId

from ansible_collections.dualboot.db.plugins.module_utils import mongo_migrate as mm
from ansible_collections.dualboot.db.plugins.module_utils.errors import InvalidInput

R4 = """description: nest userName under user.name
operations:
  - update_many:
      collection: users
      filter: {userName: {$exists: true}}
      update: {$rename: {userName: user.name}}
  - create_index: {collection: users, keys: {user.name: 1}, unique: true}
"""


def test_files_load_in_numeric_version_order(tmp_path):
    (tmp_path / "V1_10__late.yml").write_text("- drop_collection: {collection: a}\n")
    (tmp_path / "V1_9__early.json").write_text('{"operations": [{"drop_collection": {"collection": "b"}}]}')
    (tmp_path / "V2__r4.yaml").write_text(R4)
    (tmp_path / "V3__code.py").write_text("def up(db):\n    db.x.insert_one({})\n\ndef down(db):\n    db.x.drop()\n")
    (tmp_path / "README.md").write_text("ignored")
    migs = mm.load_migrations(str(tmp_path), None)
    assert [m.id for m in migs] == ["V1_9__early", "V1_10__late", "V2__r4", "V3__code"]
    r4 = migs[2]
    assert r4.description == "nest userName under user.name" and r4.kind == "declarative"
    assert r4.operations[0] == {
        "op": "update_many",
        "args": {"collection": "users", "filter": {"userName": {"$exists": True}}, "update": {"$rename": {"userName": "user.name"}}},
    }
    assert migs[3].kind == "python" and callable(migs[3].up) and callable(migs[3].down)
    assert len(r4.checksum) == 64


def test_inline_migrations_and_extended_json():
    migs = mm.load_migrations(
        None,
        [
            {
                "version": "4.1",
                "description": "fix one",
                "operations": [
                    {
                        "update_one": {
                            "collection": "c",
                            "filter": {"_id": {"$oid": "65a000000000000000000001"}},
                            "update": {"$set": {"at": {"$date": "2024-01-01T00:00:00Z"}}},
                        }
                    }
                ],
            }
        ],
    )
    (m,) = migs
    assert m.id == "V4.1__fix_one" and m.version == (4, 1)
    args = m.operations[0]["args"]
    assert args["filter"]["_id"] == ObjectId("65a000000000000000000001")
    assert isinstance(args["update"]["$set"]["at"], datetime.datetime)


@pytest.mark.parametrize(
    "fname, text, message",
    [
        ("V1__x.yml", "operations: [{explode: {collection: a}}]", "unknown operation 'explode'"),
        ("V1__x.yml", "operations: [{update_many: {collection: a}}]", "update_many lacks update"),
        ("V1__x.yml", "operations: [{update_many: {collection: a, update: {name: b}}}]", "update operators"),
        ("V1__x.yml", "operations: [{drop_collection: {collection: a, now: true}}]", "does not take now"),
        ("V1__x.yml", "operations: [", "not valid YAML"),
        ("V1__x.json", "{", "not valid JSON"),
        ("V1__x.yml", "description: nothing\n", "no operations list"),
        ("V1__x.py", "def down(db):\n    pass\n", "defines no up"),
        ("V1__x.py", "raise RuntimeError('boom at import')\n", "cannot be loaded: RuntimeError: boom at import"),
        ("1__x.yml", "- drop_collection: {collection: a}\n", "not named V<version>"),
    ],
)
def test_malformed_migrations_fail_before_anything_runs(tmp_path, fname, text, message):
    (tmp_path / fname).write_text(text)
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace("[", r"\[")):
        mm.load_migrations(str(tmp_path), None)


def test_duplicate_versions_and_nothing_given(tmp_path):
    (tmp_path / "V1__a.yml").write_text("- drop_collection: {collection: a}\n")
    (tmp_path / "V1__b.yml").write_text("- drop_collection: {collection: b}\n")
    with pytest.raises(InvalidInput, match="same version 1"):
        mm.load_migrations(str(tmp_path), None)
    with pytest.raises(InvalidInput, match="no migrations"):
        mm.load_migrations(None, [])
