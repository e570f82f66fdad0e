# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The boot record: one JSON document per deployment per host (default ``/var/lib/dualboot/<name>.json``).

Schema (``format: 1``)::

    {
      "format": 1,
      "name": "shop",                      # deployment name (dualboot_name)
      "engine": "postgresql",              # or "mongodb"
      "entries": {                         # boot entries: connection settings WITHOUT secrets
        "blue":  {"login_host": "db1", "login_port": 5432, "login_user": "app", "login_db": "shop_blue"},
        "green": {"login_host": "db1", "login_port": 5432, "login_user": "app", "login_db": "shop_green"}
      },                                   # MongoDB entries: login_uri (password removed) or login_host/login_port, plus "database"
      "default": "blue",                   # the entry applications boot into now
      "fallback": null,                    # the previous default, after a cutover
      "staged": "green",                   # the entry a stage has filled, or null
      "evidence": {"green": {"stage": {...}, "verify": {...}}},
      "lock": null,                        # or {"owner", "run_id", "acquired", "expires"}
      "history": [{"action", "from", "to", "at", "run_id", "by", "outcome"}],
      "updated": "2026-11-21T16:00:00Z"
    }

This file holds the reading side that other modules (restore's protection of the default entry)
depend on; the ``boot_record`` module builds the writing side on it.
"""

from __future__ import annotations

import json
import os

from ansible_collections.dualboot.db.plugins.module_utils.errors import IntegrityError, InvalidInput

FORMAT = 1
SECRET_KEYS = frozenset({"login_password", "password"})


def load_record(path: str) -> dict:
    """Read and check a boot record; a missing file is :class:`InvalidInput`, a damaged one :class:`IntegrityError`."""
    if not os.path.exists(path):
        raise InvalidInput(f"boot record {path} does not exist.", hint="define the deployment first (boot_record state=defined).")
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError) as exc:
        raise IntegrityError(
            f"boot record {path} is not readable JSON: {exc}",
            hint="restore it from its backup copy or fix it by hand; it is never overwritten silently.",
        ) from None
    problems = validate(record)
    if problems:
        raise IntegrityError(
            f"boot record {path} is invalid: {'; '.join(problems)}",
            hint="restore it from its backup copy or fix it by hand; it is never overwritten silently.",
        )
    return record


def validate(record: object) -> list[str]:
    """Every reason ``record`` is not a valid boot record (empty when it is)."""
    if not isinstance(record, dict):
        return ["top level is not an object"]
    problems = []
    if record.get("format") != FORMAT:
        problems.append(f"format is {record.get('format')!r}, expected {FORMAT}")
    entries = record.get("entries")
    if not isinstance(entries, dict) or not all(isinstance(v, dict) for v in entries.values()):
        problems.append("entries is not an object of objects")
        entries = {}
    for key in ("default", "fallback", "staged"):
        value = record.get(key)
        if value is not None and value not in entries:
            problems.append(f"{key} names unknown entry {value!r}")
    if record.get("default") is None:
        problems.append("default is not set")
    if not isinstance(record.get("history", []), list):
        problems.append("history is not a list")
    for name, entry in entries.items():
        leaked = SECRET_KEYS & set(entry)
        if leaked:
            problems.append(f"entry {name!r} holds a secret ({', '.join(sorted(leaked))})")
    return problems


def default_entry(record: dict) -> tuple[str, dict]:
    """(name, connection settings) of the default entry."""
    name = record["default"]
    return name, record["entries"][name]


def same_postgresql_database(entry: dict, host: str, port: int, dbname: str) -> bool:
    """Whether a PostgreSQL entry names this database (empty host means the local socket)."""

    def norm(h: str | None) -> str:
        return "localhost" if h in (None, "", "127.0.0.1", "::1") or str(h).startswith("/") else str(h)

    return (norm(entry.get("login_unix_socket") or entry.get("login_host")), int(entry.get("login_port", 5432)), entry.get("login_db")) == (
        norm(host),
        int(port),
        dbname,
    )
