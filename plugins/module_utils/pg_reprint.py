# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deparsed SQL in the form PostgreSQL prints it after a dump and restore.

``pg_get_constraintdef``, ``pg_get_expr``, ``pg_get_viewdef`` and friends print the stored node tree.
A dump prints that text, and the restore parses it again into a slightly different tree that prints
differently, with the same meaning. Two such re-prints are known and undone here, so a restored copy
compares equal to its original while any change of meaning still differs:

- nested ``AND``/``OR``: ``x BETWEEN 1 AND 10 AND y`` is stored as ``((a AND b) AND c)``; re-parsed it
  is ``(a AND b AND c)``. Nested groups of the same operator are flattened (both are associative).
- a whole-array cast: ``varchar_col IN ('a', 'b')`` prints
  ``(ARRAY['a'::character varying, 'b'::character varying])::text[]``; re-parsed, the cast is pushed
  into the elements: ``ARRAY[('a'::character varying)::text, ('b'::character varying)::text]``.

The text is read with its quotes (``'...'``, ``"..."``) and brackets, never by regular expressions
over the whole, so a literal that looks like SQL is left alone.
"""

from __future__ import annotations

import re

_CLOSER = {"(": ")", "[": "]"}
_ARRAY_TYPE = re.compile(r"::((?:[^,()\[\]'\s]|\s(?=[A-Za-z])|\(\d+(?:,\d+)?\))+)\[\]")


def normalized_definition(text: str | None) -> str | None:
    """``text`` with the re-prints above undone (None and texts without them come back as they are)."""
    if not text or not (" AND " in text or " OR " in text or "])::" in text):
        return text
    out, _end = _read(text, 0, None)
    return _flatten(out)


def _skip_quoted(text: str, i: int) -> int:
    """Index after the quoted literal or identifier starting at ``i`` (a doubled quote stays inside)."""
    q = text[i]
    j = i + 1
    while j < len(text):
        if text[j] == q:
            if j + 1 < len(text) and text[j + 1] == q:
                j += 2
                continue
            return j + 1
        j += 1
    return j


def _read(text: str, i: int, close: str | None) -> tuple[str, int]:
    """Normalise from ``i`` up to the bracket ``close`` (excluded); returns the text and the index after it."""
    parts: list[str] = []
    while i < len(text):
        ch = text[i]
        if ch in "'\"":
            j = _skip_quoted(text, i)
            parts.append(text[i:j])
            i = j
        elif ch in _CLOSER:
            inner, i = _read(text, i + 1, _CLOSER[ch])
            if ch == "(" and _is_array(inner):
                m = _ARRAY_TYPE.match(text, i)
                if m:
                    parts.append(_per_element(inner, m.group(1)))
                    i = m.end()
                    continue
            parts.append(ch + (_flatten(inner) if ch == "(" else inner) + _CLOSER[ch])
        elif ch == close:
            return "".join(parts), i + 1
        else:
            j = i + 1
            while j < len(text) and text[j] not in "'\"()[]":
                j += 1
            parts.append(text[i:j])
            i = j
    return "".join(parts), i


def _split(text: str, sep: str) -> list[str]:
    """``text`` split at ``sep`` where it stands outside brackets and quotes."""
    pieces, depth, start, i = [], 0, 0, 0
    while i < len(text):
        ch = text[i]
        if ch in "'\"":
            i = _skip_quoted(text, i)
            continue
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif depth == 0 and text.startswith(sep, i):
            pieces.append(text[start:i])
            i += len(sep)
            start = i
            continue
        i += 1
    pieces.append(text[start:])
    return pieces


def _one_group(text: str) -> bool:
    """Whether ``text`` is one parenthesised group, ``( ... )``, and nothing else."""
    return text.startswith("(") and text.endswith(")") and _closes_at_end(text)


def _closes_at_end(text: str) -> bool:
    depth, i = 0, 0
    while i < len(text):
        ch = text[i]
        if ch in "'\"":
            i = _skip_quoted(text, i)
            continue
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
            if depth == 0 and i < len(text) - 1:
                return False
        i += 1
    return depth == 0


def _operands(text: str, op: str) -> list[str] | None:
    """The top-level operands of ``op`` in ``text``; None unless ``op`` is its only top-level operator."""
    other = " OR " if op == " AND " else " AND "
    pieces = _split(text, op)
    return pieces if len(pieces) > 1 and len(_split(text, other)) == 1 else None


def _flatten(inner: str) -> str:
    """``(a AND b) AND c`` -> ``a AND b AND c`` (likewise OR); ``inner`` is already normalised inside."""
    for op in (" AND ", " OR "):
        pieces = _operands(inner, op)
        if pieces:
            flat: list[str] = []
            for p in pieces:
                flat.extend((_operands(p[1:-1], op) if _one_group(p) else None) or [p])
            return op.join(flat)
    return inner


def _is_array(inner: str) -> bool:
    return inner.startswith("ARRAY[") and inner.endswith("]") and _closes_at_end(inner[5:])


def _per_element(inner: str, typ: str) -> str:
    """``ARRAY[e1, e2]`` cast to ``typ[]`` as a whole -> ``ARRAY[(e1)::typ, (e2)::typ]``."""
    elements = _split(inner[6:-1], ", ")
    if any(e.startswith("ARRAY[") for e in elements):  # a multi-dimensional array: left as printed
        return f"({inner})::{typ}[]"
    return "ARRAY[" + ", ".join(f"({e})::{typ}" for e in elements) + "]"
