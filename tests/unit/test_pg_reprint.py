"""pg_reprint: deparsed SQL in its restored form; equal meaning only, quotes left alone."""

from __future__ import annotations

import pytest

from ansible_collections.dualboot.db.plugins.module_utils.pg_reprint import normalized_definition

CASES = [
    # (as stored from the original statement, as printed after a dump and restore)
    (
        "CHECK (((s)::text = ANY ((ARRAY['a'::character varying, 'b''c, d'::character varying])::text[])))",
        "CHECK (((s)::text = ANY (ARRAY[('a'::character varying)::text, ('b''c, d'::character varying)::text])))",
    ),
    (
        "CHECK (((v)::text = ANY ((ARRAY[(('a'::text || 'b'::text))::character varying, NULL::character varying])::text[])))",
        "CHECK (((v)::text = ANY (ARRAY[((('a'::text || 'b'::text))::character varying)::text, (NULL::character varying)::text])))",
    ),
    ("CHECK ((((id >= 1) AND (id <= 10)) AND (b > 0)))", "CHECK (((id >= 1) AND (id <= 10) AND (b > 0)))"),
    ("(((a = 1) OR (a = 2)) OR ((a = 3) OR (a = 4)))", "((a = 1) OR (a = 2) OR (a = 3) OR (a = 4))"),
    (
        "CASE WHEN (((1 >= 0) AND (1 <= 2)) AND true) THEN 1 ELSE NULL::integer END",
        "CASE WHEN ((1 >= 0) AND (1 <= 2) AND true) THEN 1 ELSE NULL::integer END",
    ),
]


@pytest.mark.parametrize("stored,restored", CASES)
def test_the_stored_form_reads_as_the_restored_one_and_that_is_a_fixed_point(stored, restored):
    assert normalized_definition(stored) == restored
    assert normalized_definition(restored) == restored


@pytest.mark.parametrize(
    "text",
    [
        "(((a OR b) AND c))",  # different operators: not associative together
        "(NOT ((a AND b)) AND c)",
        "f('x AND (y AND z)', '(ARRAY[1])::text[]')",  # inside literals
        '("odd AND name" AND (p AND q))',
        "(ARRAY[ARRAY[1, 2], ARRAY[3, 4]])::bigint[]",  # multi-dimensional: left as printed
        None,
        "",
    ],
)
def test_what_is_not_a_reprint_stays_as_it_is(text):
    expected = {'("odd AND name" AND (p AND q))': '("odd AND name" AND p AND q)'}.get(text, text)
    assert normalized_definition(text) == expected


def test_a_changed_list_still_differs():
    a = "CHECK (((s)::text = ANY ((ARRAY['a'::character varying, 'b'::character varying])::text[])))"
    b = "CHECK (((s)::text = ANY (ARRAY[('a'::character varying)::text, ('c'::character varying)::text])))"
    assert normalized_definition(a) != normalized_definition(b)
