# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``expect`` and ``ignore`` for schema diffs, engine-neutral (PostgreSQL and MongoDB share it).

A change record is a dict with at least ``kind``, ``schema``, ``name``, ``change``
(``added``/``removed``/``modified``), ``attribute``, ``before``, ``after`` and ``hazards``.
A matcher is a dict of shell-style globs (``fnmatch``, case-sensitive) over the fields
``kind``, ``schema``, ``name``, ``change`` and ``attribute``; a field left out matches anything.
A ``name`` glob containing a dot that the record's own name lacks is matched against
``schema.name`` too, so ``public.users`` and ``users`` both find table ``users`` in ``public``.

- ``ignore``: records matching any ignore matcher are dropped before anything else.
- ``expect``: every remaining record must match at least one expect matcher (else it is
  *unexpected*), and every expect matcher must match at least one record (else it is *missing*).
  ``expect: []`` therefore asserts that there is no change at all.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from typing import Any

from ansible_collections.dualboot.db.plugins.module_utils.errors import InvalidInput

FIELDS = ("kind", "schema", "name", "change", "attribute")
CHANGES = ("added", "removed", "modified")


def normalize(matchers: Iterable[Any] | None, option: str) -> list[dict]:
    """Check a list of matchers from the user; raise :class:`InvalidInput` naming the bad entry."""
    result = []
    for i, m in enumerate(matchers or []):
        if not isinstance(m, dict):
            raise InvalidInput(
                f"{option}[{i}] is {type(m).__name__}, not a dict of {', '.join(FIELDS)}.",
                hint=f"write each {option} entry like {{kind: column, name: 'users.*', change: added}}.",
            )
        unknown = sorted(set(m) - set(FIELDS))
        if unknown:
            raise InvalidInput(
                f"{option}[{i}] has unknown field(s) {', '.join(unknown)}; allowed: {', '.join(FIELDS)}.",
                hint=f"correct the field names of {option}[{i}].",
            )
        if not m:
            raise InvalidInput(f"{option}[{i}] is empty and would match every change.", hint=f"give {option}[{i}] at least one field.")
        clean = {k: str(v) for k, v in m.items() if v is not None}
        change = clean.get("change")
        if change and not any(fnmatch.fnmatchcase(c, change) for c in CHANGES):
            raise InvalidInput(
                f"{option}[{i}].change {change!r} matches none of {', '.join(CHANGES)}.", hint="use added, removed or modified."
            )
        result.append(clean)
    return result


def matches(record: dict, matcher: dict) -> bool:
    """True when every field of ``matcher`` matches the record (missing record fields match only ``*``)."""
    for field, pattern in matcher.items():
        value = record.get(field)
        value = "" if value is None else str(value)
        if fnmatch.fnmatchcase(value, pattern):
            continue
        if field == "name" and "." in pattern and record.get("schema"):
            if fnmatch.fnmatchcase(f"{record['schema']}.{value}", pattern):
                continue
        return False
    return True


def describe_matcher(matcher: dict) -> str:
    return ", ".join(f"{k}={matcher[k]}" for k in FIELDS if k in matcher)


def apply_ignore(records: list[dict], ignore: list[dict]) -> tuple[list[dict], list[dict]]:
    """Split records into (kept, ignored)."""
    kept, ignored = [], []
    for r in records:
        (ignored if any(matches(r, m) for m in ignore) else kept).append(r)
    return kept, ignored


def check(records: list[dict], expect: list[dict]) -> dict:
    """Compare records with the expected changes.

    Returns ``{"met": bool, "unexpected": [records], "missing": [matchers]}``.
    """
    unexpected = [r for r in records if not any(matches(r, m) for m in expect)]
    missing = [m for m in expect if not any(matches(r, m) for r in records)]
    return {"met": not unexpected and not missing, "unexpected": unexpected, "missing": missing}


def failure_lines(outcome: dict, describe: Any) -> list[str]:
    """Human lines naming each unexpected change and each expected-but-missing one."""
    lines = [f"unexpected: {describe(r)}" for r in outcome["unexpected"]]
    lines += [f"expected but missing: {describe_matcher(m)}" for m in outcome["missing"]]
    return lines
