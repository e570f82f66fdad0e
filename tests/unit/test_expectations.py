"""The engine-neutral expect/ignore matcher."""

from __future__ import annotations

import pytest

from ansible_collections.dualboot.db.plugins.module_utils import expectations as ex
from ansible_collections.dualboot.db.plugins.module_utils.errors import InvalidInput


def rec(kind, name, change, attribute=None, schema="public"):
    return {
        "kind": kind,
        "schema": schema,
        "name": name,
        "change": change,
        "attribute": attribute,
        "before": None,
        "after": None,
        "hazards": [],
    }


RECORDS = [
    rec("column", "users.user_name", "removed"),
    rec("column", "users.full_name", "added"),
    rec("table", "users", "modified", "comment"),
]


def test_globs_and_qualified_names():
    assert ex.matches(RECORDS[0], {"kind": "column", "name": "users.*"})
    assert ex.matches(RECORDS[2], {"name": "public.users"})
    assert not ex.matches(RECORDS[2], {"name": "other.users"})
    assert not ex.matches(RECORDS[0], {"change": "added"})
    assert ex.matches(RECORDS[2], {"attribute": "comm*"})
    assert not ex.matches(RECORDS[0], {"attribute": "type"})  # absent attribute is the empty string


def test_expect_names_unexpected_and_missing():
    expect = ex.normalize([{"kind": "column", "name": "users.*"}, {"kind": "index", "change": "added"}], "expect")
    out = ex.check(RECORDS, expect)
    assert not out["met"]
    assert out["unexpected"] == [RECORDS[2]]
    assert out["missing"] == [{"kind": "index", "change": "added"}]
    lines = ex.failure_lines(out, lambda r: f"{r['kind']} {r['name']}")
    assert lines == ["unexpected: table users", "expected but missing: kind=index, change=added"]


def test_empty_expect_means_no_change_and_ignore_runs_first():
    assert ex.check([], [])["met"]
    assert not ex.check(RECORDS, [])["met"]
    kept, ignored = ex.apply_ignore(RECORDS, ex.normalize([{"attribute": "comment"}], "ignore"))
    assert kept == RECORDS[:2] and ignored == [RECORDS[2]]


@pytest.mark.parametrize(
    "bad, words",
    [
        (["column"], "not a dict"),
        ([{"knd": "column"}], "unknown field(s) knd"),
        ([{}], "empty"),
        ([{"change": "renamed"}], "matches none of"),
    ],
)
def test_malformed_matchers_are_refused(bad, words):
    with pytest.raises(InvalidInput, match="expect\\[0\\]") as err:
        ex.normalize(bad, "expect")
    assert words in str(err.value)
