# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Exact drift detection for MongoDB: has a database taken writes since a marker?

A marker is a per-collection *fingerprint*: the document count and the order-independent content
hash (``mongo_dump.ContentHash``: the sum of the SHA-256 of every raw BSON document) of every
collection. ``mongodb_backup`` collects it during the dump's own read, so it describes exactly the
documents that were copied; ``mark`` takes one of a live database (a full read).

A drift check reads every collection again and compares. There are no false negatives: an insert,
delete, or an update that changes any byte of a document changes the count or the hash (a
collision of SHA-256 sums aside). An update that writes identical bytes is no change. What was
read while the dump ran is exactly what the marker describes, so a write during the dump is either
in the copy and in the marker, or in neither and then reported.

Servers: FerretDB has neither ``dbHash`` nor change streams; on MongoDB a change stream needs a
replica set and ``dbHash`` is not comparable with a fingerprint taken during the dump. The full
read is used everywhere and named (``method: content_fingerprint``, ``method_reason``).
"""

from __future__ import annotations

import time
from typing import Any

from ansible_collections.dualboot.db.plugins.module_utils.errors import InvalidInput
from ansible_collections.dualboot.db.plugins.module_utils.mongo_dump import (
    MARKER_KIND,
    ContentHash,
    _hosts_of,
    _now,
    data_collection,
    make_marker,
    server_info,
    translate_mongo_errors,
    validate_database_name,
)
from ansible_collections.dualboot.db.plugins.module_utils.mongodb import MongoConnection, connect

try:
    from bson.codec_options import CodecOptions
except ImportError:  # pragma: no cover - the module reports the missing pymongo first
    CodecOptions = None

METHOD = "content_fingerprint"


def in_scope(name: str, scope: dict | None) -> bool:
    """Whether a marker taken of a filtered backup (``collections`` / ``exclude_collections``) covers ``name``."""
    if not scope:
        return True
    return (not scope.get("collections") or name in scope["collections"]) and name not in scope.get("exclude", [])


def fingerprint(db: Any, scope: dict | None = None) -> tuple[dict, int, int]:
    """Every data collection's ``{documents, content_hash}`` in one read; plus documents and bytes read."""
    out: dict = {}
    docs = nbytes = 0
    for info in sorted(db.list_collections(), key=lambda i: i["name"]):
        if not data_collection(info) or not in_scope(info["name"], scope):
            continue
        h = ContentHash()
        for batch in db.get_collection(info["name"]).find_raw_batches({}):
            h.add_batch(batch, f"{db.name}.{info['name']}")
        out[info["name"]] = {"documents": h.count, "content_hash": h.hexdigest()}
        docs += h.count
        nbytes += h.bytes
    return out, docs, nbytes


def _method_reason(server: dict) -> str:
    if server["ferretdb"]:
        return (
            "FerretDB has no change streams and no dbHash: every collection was read and its count and content hash "
            "compared with the marker"
        )
    return (
        "every collection was read and its count and content hash compared with the marker (change streams and dbHash "
        "are not used: the marker is taken during the dump's own read, which neither can be compared with)"
    )


def check_marker(marker: Any, conn: MongoConnection, database: str) -> dict:
    """The marker when it belongs to ``database`` on this server, else :class:`InvalidInput` saying why."""
    if not marker:
        raise InvalidInput(
            f"no drift marker for database {database!r}: without one, writes since the copy cannot be measured.",
            hint="stage again (dualboot.db.stage records the marker of its copy), or pass the marker of a mongodb_backup result.",
        )
    if not isinstance(marker, dict) or marker.get("kind") != MARKER_KIND or not isinstance(marker.get("collections"), dict):
        raise InvalidInput(
            "the drift marker is not a MongoDB fingerprint marker (it lacks kind: mongodb-fingerprint and collections).",
            hint="pass the marker of a mongodb_backup or mongodb_drift mark result; a PostgreSQL marker belongs to postgresql_drift.",
        )
    here = _hosts_of(conn.uri, conn.host, conn.port)
    if marker.get("database") != database or (marker.get("hosts") and not here & set(marker["hosts"])):
        raise InvalidInput(
            f"the drift marker was taken of database {marker.get('database')!r} on {marker.get('server')}, "
            f"not of {database!r} on {conn.label()}.",
            hint="check the marker against the database it was taken of (the default entry the stage copied).",
        )
    return marker


def compare(marker: dict, now: dict) -> list:
    """Collections whose count or content changed, were added, or were dropped since the marker."""
    changes = []
    before = marker["collections"]
    for name in sorted(set(before) | set(now)):
        b, n = before.get(name), now.get(name)
        if b == n:
            continue
        change = "added" if b is None else "dropped" if n is None else "written"
        docs_before = (b or {}).get("documents", 0)
        docs_now = (n or {}).get("documents", 0)
        changes.append(
            {
                "collection": name,
                "change": change,
                "documents_before": docs_before,
                "documents_now": docs_now,
                "documents_delta": docs_now - docs_before,
            }
        )
    return changes


def describe(changes: list) -> str:
    """``users (written, 1000 -> 1002 documents), old (dropped, 5 -> 0 documents)``."""
    return ", ".join(f"{c['collection']} ({c['change']}, {c['documents_before']} -> {c['documents_now']} documents)" for c in changes)


@translate_mongo_errors
def mark(conn: MongoConnection, database: str) -> dict:
    """Take a marker of ``database`` now (one read of every collection)."""
    validate_database_name(database)
    client = connect(conn)
    try:
        server = server_info(client)
        started = time.monotonic()
        taken_at = _now()
        collections, docs, nbytes = fingerprint(client.get_database(database, codec_options=CodecOptions()))
        seconds = time.monotonic() - started
        return {
            "changed": False,
            "marker": make_marker(conn, database, collections, taken_at, "mark", server["ferretdb"]),
            "method": METHOD,
            "method_reason": _method_reason(server),
            "documents_read": docs,
            "bytes_read": nbytes,
            "seconds": round(seconds, 3),
            "mb_per_second": round(nbytes / 1e6 / seconds, 1) if seconds > 0 else 0.0,
            "summary": f"marked {database!r} on {conn.label()}: {len(collections)} collection(s), {docs} document(s)",
        }
    finally:
        client.close()


@translate_mongo_errors
def drift(conn: MongoConnection, database: str, marker: Any) -> dict:
    """Compare ``database`` now with ``marker``; the result names every changed collection."""
    validate_database_name(database)
    marker = check_marker(marker, conn, database)
    client = connect(conn)
    try:
        server = server_info(client)
        started = time.monotonic()
        now, docs, nbytes = fingerprint(client.get_database(database, codec_options=CodecOptions()), marker.get("scope"))
        seconds = time.monotonic() - started
    finally:
        client.close()
    changes = compare(marker, now)
    where = f"{database!r} on {conn.label()}"
    summary = (
        f"{where} took writes since the marker of {marker.get('taken_at')} ({METHOD}): {describe(changes)}"
        if changes
        else f"{where} took no writes since the marker of {marker.get('taken_at')} "
        f"({METHOD}: {len(now)} collection(s), {docs} document(s) compared)"
    )
    return {
        "changed": False,
        "drift": bool(changes),
        "collections": changes,
        "method": METHOD,
        "method_reason": _method_reason(server),
        "marker": {k: marker.get(k) for k in ("database", "server", "taken_at", "source")},
        "documents_read": docs,
        "bytes_read": nbytes,
        "seconds": round(seconds, 3),
        "mb_per_second": round(nbytes / 1e6 / seconds, 1) if seconds > 0 else 0.0,
        "summary": summary,
    }
