# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""MongoDB backup and restore in the mongodump directory layout, raw BSON end to end.

Layout (what mongodump writes and mongorestore reads, plus our manifest)::

    <path>/manifest.json                              ours: sha256, sizes, counts, server, database, time
    <path>/<database>/<coll>.bson[.gz]                documents back to back, each starting with its int32 length
    <path>/<database>/<coll>.metadata.json[.gz]       canonical Extended JSON:
                                                      {options, indexes, uuid, collectionName, type}

File names escape the collection name like mongodump (Go's ``url.PathEscape``; escaped names longer
than 238 bytes are cut to 208 bytes + ``%24`` + base64url(sha1(name))). The metadata's
``collectionName`` is authoritative when present.

Documents are never decoded: backup writes the server's raw batches, restore slices the files on the
length prefixes and inserts ``RawBSONDocument`` batches. Collections run in parallel (``jobs``),
inserts of one collection in parallel (``insertion_workers``); memory stays bounded by
``jobs * (2 * insertion_workers + 1) * batch_bytes``.
"""

from __future__ import annotations

import base64
import concurrent.futures
import datetime
import functools
import gzip as gzip_lib
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import unquote_to_bytes, urlsplit

from ansible_collections.dualboot.db.plugins.module_utils import boot_record
from ansible_collections.dualboot.db.plugins.module_utils.errors import (
    ConnectionFailed,
    DualbootError,
    IntegrityError,
    InvalidInput,
    OperationFailed,
    SafetyRefusal,
)
from ansible_collections.dualboot.db.plugins.module_utils.mongodb import MongoConnection, connect

try:
    from bson import json_util
    from bson.codec_options import CodecOptions
    from bson.json_util import CANONICAL_JSON_OPTIONS, JSONMode, JSONOptions
    from bson.raw_bson import RawBSONDocument
    from bson.son import SON
    from pymongo import InsertOne
    from pymongo import errors as mongo_errors

    RAW_OPTIONS = CodecOptions(document_class=RawBSONDocument)
    # Read side: accept canonical, relaxed and legacy Extended JSON (old mongodump wrote legacy).
    READ_JSON_OPTIONS = JSONOptions(json_mode=JSONMode.CANONICAL, document_class=SON)
    BSON_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - exercised only where pymongo is missing
    InsertOne = json_util = CodecOptions = CANONICAL_JSON_OPTIONS = JSONOptions = JSONMode = RawBSONDocument = SON = mongo_errors = None
    RAW_OPTIONS = READ_JSON_OPTIONS = None
    BSON_IMPORT_ERROR = traceback.format_exc()

FORMAT = 1
# What a backup guarantees (no snapshot read is used: see docs/mongodb.md).
CONSISTENCY = (
    "each collection is read by one plain cursor, not a snapshot and not point-in-time across collections; a write during "
    "the read may or may not be in the backup, and on MongoDB a document moved during the read may be missed or read twice. "
    "The marker's fingerprints describe exactly the documents read, so a drift check against it reports every write the "
    "backup does not hold"
)
MANIFEST = "manifest.json"
# MongoDB's largest document is 16 MiB; mongorestore accepts 16 KiB more for internal fields.
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024 + 16 * 1024
# mongorestore's default batch: 1000 documents (and at most batch_bytes).
BATCH_DOCUMENTS = 1000
GZIP_LEVEL = 6  # mongodump's (Go's DefaultCompression)
# Error codes meaning "this server cannot do that" rather than "your data is wrong".
NOT_SUPPORTED_CODES = frozenset({2, 9, 27, 67, 72, 115, 197, 238})
# Database names: MongoDB forbids these characters (Unix rules) and 64 bytes or more.
_DB_FORBIDDEN = set('/\\. "$\x00')
# Go url.PathEscape leaves these bytes alone; everything else becomes %XX (upper case).
_PATH_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~$&+:=@")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


# --------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------


def validate_database_name(name: Any, option: str = "database") -> str:
    """The name when MongoDB accepts it as a database name, else :class:`InvalidInput` saying why."""
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"{option} is empty; a MongoDB database name is required.", hint=f"set {option}.")
    bad = sorted(_DB_FORBIDDEN & set(name))
    if bad:
        shown = " ".join(repr(c) for c in bad)
        raise InvalidInput(
            f"{option} {name!r} is not a valid MongoDB database name: it contains {shown}.",
            hint='database names cannot contain / \\ . space " $ or NUL; choose another name.',
        )
    if len(name.encode("utf-8")) >= 64:
        raise InvalidInput(f"{option} {name!r} is not a valid MongoDB database name: 64 bytes or longer.", hint="use a shorter name.")
    return name


def validate_collection_name(name: Any, where: str) -> str:
    if not isinstance(name, str) or not name or "\x00" in name or "$" in name:
        raise InvalidInput(
            f"{where}: {name!r} is not a valid MongoDB collection name.", hint="collection names are non-empty, without $ or NUL."
        )
    return name


def escape_collection_name(name: str) -> str:
    """The file name stem mongodump uses for a collection (see module docstring)."""
    raw = name.encode("utf-8")
    escaped = "".join(chr(b) if b in _PATH_SAFE else f"%{b:02X}" for b in raw)
    if len(escaped) > 238:
        digest = base64.urlsafe_b64encode(hashlib.sha1(raw).digest()).rstrip(b"=").decode("ascii")  # noqa: S324 - mongodump's naming, not security
        cut = escaped[:208]
        # Never cut inside a %XX escape: the stem must stay a valid escaped name (one or two characters shorter).
        partial = cut.find("%", 206)
        escaped = (cut[:partial] if partial != -1 else cut) + "%24" + digest
    return escaped


def unescape_collection_name(stem: str) -> str:
    """Inverse of :func:`escape_collection_name` for names that were not truncated (Go's url.PathUnescape)."""
    if _BAD_ESCAPE.search(stem):
        raise InvalidInput(
            f"file name {stem!r} has a broken %-escape.", hint="rename the file to mongodump's escaping or restore from an intact copy."
        )
    try:
        return unquote_to_bytes(stem).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"file name {stem!r} does not decode to UTF-8.", hint="rename the file to mongodump's escaping.") from None


# --------------------------------------------------------------------------------------------
# BSON framing and content hashes
# --------------------------------------------------------------------------------------------


def split_documents(buf: bytes, where: str = "batch") -> Iterator[memoryview]:
    """Each document of a buffer of BSON documents laid back to back."""
    view = memoryview(buf)
    offset, end = 0, len(view)
    while offset < end:
        if end - offset < 5:
            raise IntegrityError(f"{where}: {end - offset} stray byte(s) at offset {offset}, not a whole BSON document.")
        size = int.from_bytes(view[offset : offset + 4], "little")
        if size < 5 or size > MAX_DOCUMENT_BYTES or offset + size > end or view[offset + size - 1] != 0:
            raise IntegrityError(f"{where}: invalid BSON document length {size} at offset {offset}.")
        yield view[offset : offset + size]
        offset += size


class ContentHash:
    """Order-independent hash of a set of documents: the sum of their SHA-256 values modulo 2**256.

    Two collections holding byte-identical documents get the same value whatever order the server
    returns them in; a changed, missing or extra document changes it.
    """

    MOD = 1 << 256

    def __init__(self) -> None:
        self.total = 0
        self.count = 0
        self.bytes = 0

    def add(self, doc: bytes | memoryview) -> None:
        # The modulo is applied once in hexdigest(): a sum of a billion 256-bit values is only 286 bits.
        self.total += int.from_bytes(hashlib.sha256(doc).digest(), "big")
        self.count += 1
        self.bytes += len(doc)

    def add_batch(self, batch: bytes, where: str) -> None:
        for doc in split_documents(batch, where):
            self.add(doc)

    def hexdigest(self) -> str:
        return f"{self.total % self.MOD:064x}"


class _HashingReader(io.RawIOBase):
    """Raw file wrapper feeding every byte read to a hash."""

    def __init__(self, f: Any, sha: Any) -> None:
        self.f = f
        self.sha = sha
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = self.f.readinto(b)
        if n:
            self.sha.update(memoryview(b)[:n])
            self.size += n
        return n or 0


class BsonReader:
    """Reads length-prefixed BSON documents from a ``.bson`` or ``.bson.gz`` file, checking every frame."""

    def __init__(self, path: str, file_sha: Any = None) -> None:
        self.path = path
        self.offset = 0
        self.count = 0
        raw: Any = open(path, "rb")  # noqa: SIM115 - closed in close()
        self._raw = raw
        if file_sha is not None:  # the file's sha256 in the same read as its documents
            raw = _HashingReader(raw, file_sha)
        self._tee = raw
        self._f = gzip_lib.GzipFile(fileobj=raw, mode="rb") if path.endswith(".gz") else io.BufferedReader(raw, 1 << 20)

    def drain(self) -> None:
        """Read what is left of the file (bytes after the last gzip member) so its sha256 covers all of it."""
        for _chunk in iter(lambda: self._tee.read(1 << 20), b""):
            pass

    def __enter__(self) -> BsonReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._f.close()
        self._raw.close()

    def _fail(self, what: str) -> IntegrityError:
        return IntegrityError(
            f"{self.path} is corrupted: {what} (document {self.count + 1}, byte offset {self.offset}).",
            hint="the backup was truncated or damaged; take a new backup or restore from an intact copy.",
        )

    def __iter__(self) -> Iterator[bytes]:
        read = self._f.read
        try:
            while True:
                head = read(4)
                if not head:
                    return
                if len(head) < 4:
                    raise self._fail("file ends inside a document length")
                size = int.from_bytes(head, "little")
                if size < 5 or size > MAX_DOCUMENT_BYTES:
                    raise self._fail(f"impossible document length {size}")
                body = read(size - 4)
                if len(body) < size - 4:
                    raise self._fail(f"file ends inside a document of {size} bytes ({len(body) + 4} present)")
                if body[-1] != 0:
                    raise self._fail("document does not end with a NUL byte")
                self.offset += size
                self.count += 1
                yield head + body
        except (OSError, EOFError, gzip_lib.BadGzipFile) as exc:
            raise self._fail(f"cannot be read: {exc}") from None


# Drift markers (see mongo_drift): a fingerprint of every data collection, taken during the dump's read.
MARKER_KIND = "mongodb-fingerprint"


def data_collection(info: dict) -> bool:
    """Whether a ``listCollections`` entry holds documents a fingerprint covers (views and ``system.*`` do not)."""
    name = info["name"]
    return (info.get("type") or "collection") != "view" and not (name.startswith("system.") and name != "system.js")


def make_marker(
    conn: MongoConnection, database: str, collections: dict, taken_at: str, source: str, ferretdb: bool, scope: dict | None = None
) -> dict:
    """A drift marker: where it was taken and ``{collection: {documents, content_hash}}``."""
    marker = {
        "kind": MARKER_KIND,
        "database": database,
        "server": conn.label(),
        "hosts": sorted(_hosts_of(conn.uri, conn.host, conn.port)),
        "ferretdb": ferretdb,
        "taken_at": taken_at,
        "source": source,
        "collections": collections,
    }
    if scope:
        marker["scope"] = scope
    return marker


# --------------------------------------------------------------------------------------------
# Metadata (canonical Extended JSON, as mongodump writes it)
# --------------------------------------------------------------------------------------------


def metadata_json(options: dict, indexes: list, uuid_hex: str, name: str, ctype: str) -> str:
    """The ``<coll>.metadata.json`` text: compact canonical Extended JSON, mongodump's field order."""
    meta = SON()
    meta["options"] = options or {}
    meta["indexes"] = list(indexes)
    if uuid_hex:
        meta["uuid"] = uuid_hex
    meta["collectionName"] = name
    if ctype:
        meta["type"] = ctype
    return json_util.dumps(meta, json_options=CANONICAL_JSON_OPTIONS, separators=(",", ":"))


def parse_metadata(text: str, where: str) -> dict:
    """A metadata file's content as ``{options, indexes, uuid, collectionName, type}``; :class:`IntegrityError` if invalid."""
    try:
        meta = json_util.loads(text, json_options=READ_JSON_OPTIONS)
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise IntegrityError(
            f"{where} is not valid Extended JSON: {exc}",
            hint="the metadata file is damaged; take a new backup or fix the file (canonical Extended JSON, as mongodump writes it).",
        ) from None
    if not isinstance(meta, dict):
        raise IntegrityError(f"{where} is not a JSON object.", hint="the metadata file is damaged; take a new backup.")
    options = meta.get("options") or {}
    indexes = meta.get("indexes") or []
    if not isinstance(options, dict) or not isinstance(indexes, list) or not all(isinstance(i, dict) and "key" in i for i in indexes):
        raise IntegrityError(
            f"{where}: options must be an object and indexes a list of index documents with a key.", hint="take a new backup."
        )
    name = meta.get("collectionName")
    if name is not None and not isinstance(name, str):
        raise IntegrityError(f"{where}: collectionName is not a string.", hint="take a new backup.")
    return {"options": options, "indexes": indexes, "uuid": meta.get("uuid"), "collectionName": name, "type": meta.get("type")}


def clean_index_spec(spec: dict) -> SON:
    """An index as createIndexes wants it: ``ns`` (pre-4.4 dumps) and ``v`` (the server's default applies) removed."""
    out = SON()
    for k, v in spec.items():
        if k in ("ns", "v", "background"):
            continue
        out[k] = v
    return out


def normalize_value(value: Any) -> Any:
    """A comparable form: numbers as floats, documents as sorted tuples, lists in order."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, dict):
        return tuple(sorted((k, normalize_value(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(normalize_value(v) for v in value)
    return value


# --------------------------------------------------------------------------------------------
# Servers and safety
# --------------------------------------------------------------------------------------------


def server_info(client: Any) -> dict:
    info = client.admin.command("buildInfo")
    return {"version": str(info.get("version", "unknown")), "ferretdb": "ferretdbVersion" in info}


def _hosts_of(uri: str, host: str | None, port: int | None) -> set:
    def norm(h: str, p: int | None) -> str:
        h = h.strip("[]").lower()
        if h in ("127.0.0.1", "::1", "localhost", ""):
            h = "localhost"
        return f"{h}:{p or 27017}"

    if uri:
        parts = urlsplit(uri)
        netloc = parts.netloc.rsplit("@", 1)[-1]
        hosts = set()
        for item in netloc.split(","):
            if item.startswith("["):
                h, _sep, rest = item[1:].partition("]")
                p = rest.lstrip(":")
            else:
                h, _sep, p = item.partition(":")
            hosts.add(norm(h, int(p) if p.isdigit() else None) if parts.scheme == "mongodb" else f"srv:{h.lower()}")
        return hosts
    return {norm(host or "localhost", port)}


def same_mongodb_database(entry: dict, conn: MongoConnection, database: str) -> bool:
    """Whether a MongoDB boot entry names this database on this server (any common host:port)."""
    if entry.get("database") != database:
        return False
    entry_hosts = _hosts_of(entry.get("login_uri") or "", entry.get("login_host"), entry.get("login_port"))
    return bool(entry_hosts & _hosts_of(conn.uri, conn.host, conn.port))


def refuse_default_entry(record_path: str | None, conn: MongoConnection, database: str, force: bool, action: str) -> str | None:
    """Raise :class:`SafetyRefusal` when ``database`` is the boot record's default entry and ``force`` is off.

    Returns the default entry's name when it is the target (and ``force`` allowed it), else None.
    """
    if not record_path:
        return None
    record = boot_record.load_record(record_path)
    if record.get("engine") not in (None, "mongodb"):
        raise InvalidInput(
            f"boot record {record_path} is for engine {record.get('engine')!r}, not mongodb.",
            hint="pass the MongoDB deployment's boot record.",
        )
    name, entry = boot_record.default_entry(record)
    if not same_mongodb_database(entry, conn, database):
        return None
    if not force:
        raise SafetyRefusal(
            f"refusing to {action} database {database!r} on {conn.label()}: it is the default entry {name!r} of boot record {record_path} "
            "(the live database applications boot into).",
            hint="target the staged entry instead; set force: true only if you really mean to overwrite the live database.",
        )
    return name


def _mb(n: int) -> float:
    return round(n / 1_000_000, 3)


def _rate(n: float, seconds: float) -> float:
    return round(n / seconds, 1) if seconds > 0 else 0.0


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _private_open(path: str) -> Any:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    return os.fdopen(fd, "wb")


class _HashingWriter:
    """File wrapper counting and hashing the bytes that reach the disk (after gzip)."""

    def __init__(self, f: Any) -> None:
        self.f = f
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, b: bytes) -> int:
        self.sha.update(b)
        self.size += len(b)
        return self.f.write(b)

    def flush(self) -> None:
        self.f.flush()


def _sha256_file(path: str) -> tuple[str, int]:
    sha = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            sha.update(chunk)
            size += len(chunk)
    return sha.hexdigest(), size


def _write_text(path: str, text: str, gz: bool) -> tuple[str, int]:
    with _private_open(path) as f:
        w = _HashingWriter(f)
        data = text.encode("utf-8")
        if gz:
            with gzip_lib.GzipFile(filename="", mode="wb", fileobj=w, compresslevel=GZIP_LEVEL, mtime=0) as g:
                g.write(data)
        else:
            w.write(data)
        f.flush()
        os.fsync(f.fileno())
    return w.sha.hexdigest(), w.size


def mongo_error_text(exc: Exception) -> str:
    details = getattr(exc, "details", None)
    if isinstance(details, dict) and details.get("errmsg"):
        return str(details["errmsg"])
    if isinstance(details, dict) and details.get("writeErrors"):
        return str(details["writeErrors"][0].get("errmsg"))
    return str(exc).split(", full error:", maxsplit=1)[0]


def translate_mongo_errors(func: Callable) -> Callable:
    """Turn a driver error that escaped the library's own handling into one clear :class:`OperationFailed`."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except mongo_errors.PyMongoError as exc:
            hint = None
            if getattr(exc, "code", None) == 13:
                hint = "the user lacks a privilege this task needs; grant it a role such as backup, restore or readWrite."
            elif isinstance(exc, (mongo_errors.AutoReconnect, mongo_errors.NetworkTimeout)):
                hint = "the connection to the server was lost during the task; check the server and run again."
            raise OperationFailed(f"MongoDB reported an error: {mongo_error_text(exc)}", hint=hint) from None

    return wrapper


# --------------------------------------------------------------------------------------------
# Backup
# --------------------------------------------------------------------------------------------


@dataclass
class BackupRequest:
    database: str
    path: str
    collections: list = field(default_factory=list)
    exclude_collections: list = field(default_factory=list)
    gzip: bool = False
    jobs: int = 4
    overwrite: bool = False


def _select_collections(db: Any, req: BackupRequest, action: str) -> list[dict]:
    infos = [dict(i) for i in db.list_collections()]
    if not infos:
        raise InvalidInput(
            f"database {req.database!r} has no collections on this server (it does not exist or is empty).",
            hint="check the database name (MongoDB creates databases implicitly, so a typo looks like an empty database).",
        )
    names = {i["name"] for i in infos}
    missing = [c for c in req.collections if c not in names]
    if missing:
        raise InvalidInput(
            f"collection(s) {', '.join(missing)} not found in database {req.database!r}.", hint=f"choose among: {', '.join(sorted(names))}."
        )
    chosen = []
    for info in sorted(infos, key=lambda i: i["name"]):
        name = info["name"]
        if req.collections and name not in req.collections:
            continue
        if name in req.exclude_collections:
            continue
        if name.startswith("system.") and name != "system.js":
            continue  # server-internal, as mongodump skips them
        if info.get("type") == "timeseries":
            raise InvalidInput(
                f"collection {name!r} is a time-series collection, which {action} does not handle yet.",
                hint=f"add {name!r} to exclude_collections and copy it with mongodump/mongorestore.",
            )
        chosen.append(info)
    return chosen


def _dump_collection(db: Any, info: dict, dbdir: str, gz: bool, database: str) -> dict:
    started = time.monotonic()
    name = info["name"]
    ctype = info.get("type") or "collection"
    stem = escape_collection_name(name)
    uuid_value = (info.get("info") or {}).get("uuid")
    uuid_hex = uuid_value.hex() if isinstance(uuid_value, (bytes, bytearray)) else ""  # Binary subtype 4, like mongodump
    suffix = ".gz" if gz else ""
    entry: dict[str, Any] = {"name": name, "type": ctype}
    content = ContentHash()
    if ctype != "view":
        data_rel = f"{stem}.bson{suffix}"
        with _private_open(os.path.join(dbdir, data_rel)) as f:
            w = _HashingWriter(f)
            out: Any = gzip_lib.GzipFile(filename="", mode="wb", fileobj=w, compresslevel=GZIP_LEVEL, mtime=0) if gz else w
            try:
                for batch in db.get_collection(name).find_raw_batches({}):
                    content.add_batch(batch, f"{database}.{name} (server reply)")
                    out.write(batch)
            finally:
                if gz:
                    out.close()
            f.flush()
            os.fsync(f.fileno())
        entry.update(
            {
                "data_file": f"{database}/{data_rel}",
                "data_sha256": w.sha.hexdigest(),
                "data_file_bytes": w.size,
                "documents": content.count,
                "bson_bytes": content.bytes,
                "content_hash": content.hexdigest(),
            }
        )
        indexes = list(db.get_collection(name).list_indexes())
    else:
        indexes = []
    meta_rel = f"{stem}.metadata.json{suffix}"
    sha, size = _write_text(os.path.join(dbdir, meta_rel), metadata_json(info.get("options") or {}, indexes, uuid_hex, name, ctype), gz)
    entry.update({"metadata_file": f"{database}/{meta_rel}", "metadata_sha256": sha, "metadata_file_bytes": size, "indexes": len(indexes)})
    entry["seconds"] = round(time.monotonic() - started, 3)
    return entry


@translate_mongo_errors
def backup(conn: MongoConnection, req: BackupRequest, check_mode: bool = False) -> dict:
    """Dump ``req.database`` to ``req.path`` (mongodump layout + manifest). Built beside the target and moved in at the end."""
    validate_database_name(req.database)
    if req.jobs < 1:
        raise InvalidInput("jobs must be at least 1.", hint="set jobs to the number of collections to dump in parallel.")
    path = os.path.abspath(req.path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise InvalidInput(f"path {path} exists and is not a directory.", hint="choose a directory path for the backup.")
    if os.path.isdir(path) and os.listdir(path) and not req.overwrite:
        raise SafetyRefusal(
            f"path {path} already holds files; refusing to overwrite an existing backup.", hint="choose a new path or set overwrite: true."
        )
    client = connect(conn)
    try:
        server = server_info(client)
        # Plain codec options whatever the user's connection_options say: metadata must keep BSON types as they are.
        db = client.get_database(req.database, codec_options=CodecOptions())
        infos = _select_collections(db, req, "mongodb_backup")
        planned = [{"name": i["name"], "type": i.get("type") or "collection"} for i in infos]
        if check_mode:
            for p in planned:
                if p["type"] != "view":
                    p["estimated_documents"] = db.get_collection(p["name"]).estimated_document_count()
            return {
                "changed": True,
                "path": path,
                "database": req.database,
                "collections": planned,
                "msg": f"would back up {len(planned)} collection(s) of {req.database!r} to {path}",
            }
        parent = os.path.dirname(path)
        os.makedirs(parent, exist_ok=True)
        work = f"{path}.partial-{secrets.token_hex(4)}"
        os.mkdir(work, 0o700)
        dbdir = os.path.join(work, req.database)
        os.mkdir(dbdir, 0o700)
        started_at = _now()
        started = time.monotonic()
        try:
            entries = _run_parallel(
                [(i, lambda i=i: _dump_collection(db, i, dbdir, req.gzip, req.database)) for i in infos],
                req.jobs,
                lambda i, exc: OperationFailed(
                    f"backup of {req.database}.{i['name']} failed: {mongo_error_text(exc)}",
                    hint="nothing was written at the backup path; fix the cause and run again.",
                ),
            )
            seconds = time.monotonic() - started
            entries.sort(key=lambda e: e["name"])
            docs = sum(e.get("documents", 0) for e in entries)
            nbytes = sum(e.get("bson_bytes", 0) for e in entries)
            manifest = {
                "format": FORMAT,
                "tool": "dualboot.db.mongodb_backup",
                "engine": "mongodb",
                "layout": "mongodump",
                "started": started_at,
                "finished": _now(),
                "source": {"server": conn.label(), "database": req.database, "version": server["version"], "ferretdb": server["ferretdb"]},
                "gzip": req.gzip,
                "consistency": CONSISTENCY,
                "collections": entries,
                "totals": {"collections": len(entries), "documents": docs, "bson_bytes": nbytes, "seconds": round(seconds, 3)},
            }
            scope = (
                {"collections": list(req.collections), "exclude": list(req.exclude_collections)}
                if req.collections or req.exclude_collections
                else None
            )
            fingerprints = {
                e["name"]: {"documents": e["documents"], "content_hash": e["content_hash"]} for e in entries if "content_hash" in e
            }
            manifest["marker"] = make_marker(conn, req.database, fingerprints, started_at, "mongodb_backup", server["ferretdb"], scope)
            with _private_open(os.path.join(work, MANIFEST)) as f:
                f.write(json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8"))
                f.flush()
                os.fsync(f.fileno())
            _move_into_place(work, path)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        disk = sum(e.get("data_file_bytes", 0) + e.get("metadata_file_bytes", 0) for e in entries)
        return {
            "changed": True,
            "path": path,
            "manifest": os.path.join(path, MANIFEST),
            "marker": manifest["marker"],
            "database": req.database,
            "server_version": server["version"],
            "collections": entries,
            "documents": docs,
            "bson_bytes": nbytes,
            "disk_bytes": disk,
            "seconds": round(seconds, 3),
            "documents_per_second": _rate(docs, seconds),
            "mb_per_second": _rate(_mb(nbytes), seconds),
            "msg": f"backed up {len(entries)} collection(s), {docs} document(s), {_mb(nbytes)} MB of BSON "
            f"from {req.database!r} to {path} in {seconds:.1f} s",
        }
    finally:
        client.close()


def _move_into_place(work: str, path: str) -> None:
    if os.path.isdir(path):
        old = f"{path}.old-{secrets.token_hex(4)}"
        os.rename(path, old)
        os.rename(work, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(work, path)
    os.chmod(path, 0o700)


def _run_parallel(tasks: list, jobs: int, wrap: Callable[[Any, Exception], Exception]) -> list:
    """Run ``(key, func)`` tasks on ``jobs`` threads; the first failure cancels the rest and is re-raised via ``wrap``."""
    results = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(func): key for key, func in tasks}
        try:
            for fut in concurrent.futures.as_completed(futures):
                results.append(fut.result())
        except Exception as exc:
            for f in futures:
                f.cancel()
            key = next((k for f, k in futures.items() if f.done() and not f.cancelled() and f.exception() is exc), None)
            if isinstance(exc, (IntegrityError, InvalidInput, OperationFailed, SafetyRefusal, ConnectionFailed)):
                raise
            raise wrap(key, exc) from exc
    return results


# --------------------------------------------------------------------------------------------
# Reading a dump
# --------------------------------------------------------------------------------------------


@dataclass
class DumpCollection:
    name: str
    type: str
    data_path: str | None
    metadata_path: str | None
    options: dict
    indexes: list
    manifest_entry: dict | None = None


@dataclass
class Dump:
    root: str
    dbdir: str
    database: str
    manifest: dict | None
    collections: list
    skipped: list


def _read_text(path: str) -> str:
    try:
        if path.endswith(".gz"):
            with gzip_lib.open(path, "rb") as f:
                return f.read().decode("utf-8")
        with open(path, "rb") as f:
            return f.read().decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise IntegrityError(
            f"{path} cannot be read: {exc}", hint="the backup is damaged; take a new backup or restore from an intact copy."
        ) from None


def _is_dump_file(name: str) -> bool:
    return name.endswith((".bson", ".bson.gz", ".metadata.json", ".metadata.json.gz"))


def open_dump(path: str, source_database: str | None = None) -> Dump:
    """Find the database directory of a backup (ours or mongodump's) and read its collection list."""
    root = os.path.abspath(path)
    if not os.path.isdir(root):
        raise InvalidInput(
            f"backup path {root} does not exist or is not a directory.",
            hint="point path at the directory mongodb_backup or mongodump wrote.",
        )
    manifest = None
    mpath = os.path.join(root, MANIFEST)
    if os.path.exists(mpath):
        try:
            manifest = json.loads(_read_text(mpath))
        except ValueError as exc:
            raise IntegrityError(f"{mpath} is not valid JSON: {exc}", hint="the backup is damaged; take a new backup.") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(manifest.get("collections"), list):
            raise IntegrityError(
                f"{mpath} is not a dualboot.db MongoDB backup manifest (format {FORMAT}).", hint="take a new backup with mongodb_backup."
            )
        database = manifest.get("source", {}).get("database")
        if source_database and source_database != database:
            raise InvalidInput(
                f"backup at {root} holds database {database!r}, not {source_database!r}.", hint="correct source_database or leave it out."
            )
        dbdir = os.path.join(root, database)
    else:
        entries = sorted(os.listdir(root))
        if any(_is_dump_file(e) for e in entries):
            dbdir, database = root, source_database or os.path.basename(root)
        else:
            candidates = [
                e
                for e in entries
                if os.path.isdir(os.path.join(root, e)) and any(_is_dump_file(x) for x in os.listdir(os.path.join(root, e)))
            ]
            if source_database:
                if source_database not in candidates:
                    raise InvalidInput(
                        f"backup at {root} has no database directory {source_database!r}.",
                        hint=f"databases found: {', '.join(candidates) or 'none'}.",
                    )
                database = source_database
            elif len(candidates) == 1:
                database = candidates[0]
            else:
                raise InvalidInput(
                    f"backup at {root} holds {len(candidates)} database directories ({', '.join(candidates) or 'none'}).",
                    hint="set source_database to the one to restore." if candidates else "point path at a mongodump output directory.",
                )
            dbdir = os.path.join(root, database)
    validate_database_name(database, "the backup's database")
    if not os.path.isdir(dbdir):
        raise IntegrityError(
            f"backup at {root} lacks its database directory {database!r}.", hint="the backup is incomplete; take a new backup."
        )
    collections, skipped = _collections_of(dbdir, manifest)
    return Dump(root=root, dbdir=dbdir, database=database, manifest=manifest, collections=collections, skipped=skipped)


def _collections_of(dbdir: str, manifest: dict | None) -> tuple[list, list]:
    stems: dict[str, dict] = {}
    for fname in sorted(os.listdir(dbdir)):
        for suffix, kind in ((".bson", "data"), (".bson.gz", "data"), (".metadata.json", "meta"), (".metadata.json.gz", "meta")):
            if fname.endswith(suffix):
                stem = fname[: -len(suffix)]
                slot = stems.setdefault(stem, {})
                if kind in slot:
                    raise IntegrityError(f"{dbdir} holds both {slot[kind]} and {fname}.", hint="remove the stale copy.")
                slot[kind] = fname
                break
    by_manifest = {}
    if manifest is not None:
        for e in manifest["collections"]:
            by_manifest[e.get("name")] = e
    collections, skipped = [], []
    for stem, files in sorted(stems.items()):
        meta_path = os.path.join(dbdir, files["meta"]) if "meta" in files else None
        meta = (
            parse_metadata(_read_text(meta_path), meta_path)
            if meta_path
            else {"options": {}, "indexes": [], "collectionName": None, "type": None}
        )
        name = meta["collectionName"] or unescape_collection_name(stem)
        if stem == "system.indexes" or stem.startswith("$admin.") or (name.startswith("system.") and name != "system.js"):
            skipped.append({"name": name, "reason": "server-internal collection (not restored, as mongorestore)"})
            continue
        validate_collection_name(name, meta_path or os.path.join(dbdir, files["data"]))
        options = dict(meta["options"])
        ctype = meta["type"] or ("view" if "viewOn" in options else "collection")
        if ctype == "timeseries":
            raise InvalidInput(
                f"collection {name!r} in the backup is a time-series collection, which mongodb_restore does not handle yet.",
                hint="restore it with mongorestore.",
            )
        collections.append(
            DumpCollection(
                name=name,
                type=ctype,
                data_path=os.path.join(dbdir, files["data"]) if "data" in files else None,
                metadata_path=meta_path,
                options=options,
                indexes=meta["indexes"],
                manifest_entry=by_manifest.get(name),
            )
        )
    if manifest is not None:
        listed = {c.name for c in collections}
        lost = [n for n in by_manifest if n not in listed]
        if lost:
            raise IntegrityError(
                f"backup lacks the files of collection(s) {', '.join(sorted(lost))} listed in its manifest.",
                hint="the backup is incomplete; take a new backup.",
            )
    return collections, skipped


def _verify_against_manifest(c: DumpCollection) -> None:
    """sha256 and size of the collection's files, and the count and content hash of its documents, in one read."""
    entry = c.manifest_entry
    for key, p in (("data", c.data_path), ("metadata", c.metadata_path)):
        want = entry.get(f"{key}_sha256")
        if want is None:
            continue
        if p is None:
            raise IntegrityError(
                f"the {key} file of collection {c.name!r} is missing from the backup.",
                hint="the backup is incomplete; take a new backup.",
            )
        if key == "data":
            sha, content = hashlib.sha256(), ContentHash()
            with BsonReader(p, file_sha=sha) as reader:
                for doc in reader:
                    content.add(doc)
                reader.drain()
            got, size = sha.hexdigest(), reader._tee.size
        else:
            got, size = _sha256_file(p)
        if got != want or size != entry.get(f"{key}_file_bytes"):
            raise IntegrityError(
                f"{p} does not match the backup manifest (sha256 {got[:12]}… vs {want[:12]}…, "
                f"{size} vs {entry.get(f'{key}_file_bytes')} bytes).",
                hint="the file was changed or damaged after the backup; take a new backup or restore from an intact copy.",
            )
        if key == "data" and (
            content.count != entry.get("documents") or content.hexdigest() != entry.get("content_hash", content.hexdigest())
        ):
            raise IntegrityError(
                f"content hash mismatch in collection {c.name!r}: its {content.count} document(s) in {p} hash to "
                f"{content.hexdigest()[:12]}…, the manifest says {entry.get('documents')} document(s) hashing to "
                f"{str(entry.get('content_hash'))[:12]}…; nothing was written.",
                hint="the manifest or the file was altered after the backup; take a new backup or restore from an intact copy.",
            )


def verify_dump(dump: Dump) -> dict:
    """Check a backup before anything is written: manifest checksums and content hashes, or every BSON frame without a manifest."""
    started = time.monotonic()
    checked, docs = 0, 0
    for c in dump.collections:
        if dump.manifest is not None:
            if c.manifest_entry is None:
                raise IntegrityError(
                    f"collection {c.name!r} has files in the backup but no manifest entry.",
                    hint="the backup was altered; take a new backup.",
                )
            _verify_against_manifest(c)
            checked += 1 + (c.data_path is not None)
            docs += int(c.manifest_entry.get("documents", 0))
        elif c.data_path:
            with BsonReader(c.data_path) as r:
                for _doc in r:
                    pass
                docs += r.count
            checked += 1
    return {
        "files_checked": checked,
        "documents": docs,
        "method": "manifest sha256 and content hashes" if dump.manifest is not None else "BSON framing",
        "seconds": round(time.monotonic() - started, 3),
    }


# --------------------------------------------------------------------------------------------
# Restore
# --------------------------------------------------------------------------------------------


@dataclass
class RestoreRequest:
    path: str
    database: str
    source_database: str | None = None
    collections: list = field(default_factory=list)
    jobs: int = 4
    insertion_workers: int = 2
    batch_bytes: int = 4 * 1024 * 1024
    replace: bool = False
    boot_record: str | None = None
    force: bool = False


class _Unsupported:
    """Thread-safe list of what the target server could not keep."""

    def __init__(self) -> None:
        self.items: list[dict] = []
        self._lock = threading.Lock()

    def add(self, collection: str, what: str, detail: str, reason: str) -> None:
        with self._lock:
            self.items.append({"collection": collection, "what": what, "detail": detail, "reason": reason})


def _quoted_options(msg: str, keys: list) -> list:
    return [k for k in keys if f'"{k}"' in msg or f"'{k}'" in msg or f" {k} " in f" {msg} "]


def create_collection(db: Any, name: str, options: dict, unsupported: _Unsupported) -> None:
    """Create ``name`` with ``options``; options the server refuses or silently drops go to ``unsupported``."""
    opts = SON((k, v) for k, v in options.items() if k not in ("uuid",))
    refused: dict[str, str] = {}
    while True:
        cmd = SON([("create", name)])
        cmd.update(opts)
        try:
            db.command(cmd)
            break
        except mongo_errors.OperationFailure as exc:
            if exc.code not in NOT_SUPPORTED_CODES or not opts:
                raise
            msg = mongo_error_text(exc)
            named = _quoted_options(msg, list(opts)) or list(opts)
            for k in named:
                refused[k] = msg
                del opts[k]
    kept = {}
    for info in db.list_collections(filter={"name": name}):
        kept = dict(info.get("options") or {})
    for k, v in opts.items():
        got = kept.get(k)
        if k == "size" and isinstance(got, (int, float)) and isinstance(v, (int, float)) and got >= v:
            continue  # MongoDB rounds capped sizes up to a multiple of 256
        if k not in kept or normalize_value(got) != normalize_value(v):
            refused[k] = "the server accepted the option but did not keep it"
    for k, reason in refused.items():
        unsupported.add(name, "option", f"{k}: {json_util.dumps(options[k])}", reason)


def _index_label(spec: dict) -> str:
    return spec.get("name") or "_".join(f"{k}_{v}" for k, v in spec["key"].items())


def create_indexes(db: Any, name: str, specs: list, unsupported: _Unsupported) -> int:
    """Create the indexes of ``specs`` (except ``_id``); the ones the server refuses or alters go to ``unsupported``."""
    wanted = [clean_index_spec(s) for s in specs if list(s["key"].keys()) != ["_id"]]
    if not wanted:
        return 0
    created = []
    try:
        db.command(SON([("createIndexes", name), ("indexes", wanted)]))
        created = wanted
    except mongo_errors.OperationFailure as exc:
        if exc.code not in NOT_SUPPORTED_CODES:
            raise
        for spec in wanted:  # one by one, to keep every index the server can build
            try:
                db.command(SON([("createIndexes", name), ("indexes", [spec])]))
                created.append(spec)
            except mongo_errors.OperationFailure as one:
                if one.code not in NOT_SUPPORTED_CODES:
                    raise
                unsupported.add(name, "index", f"{_index_label(spec)} {json_util.dumps(spec)}", f"not created: {mongo_error_text(one)}")
    have = {normalize_value(i["key"]): dict(i) for i in db.get_collection(name).list_indexes()}
    for spec in created:
        got = have.get(normalize_value(spec["key"]))
        if got is None:
            unsupported.add(name, "index", _index_label(spec), "the server accepted the index but did not keep it")
            continue
        for k, v in spec.items():
            if k in ("name", "key"):
                continue
            if normalize_value(got.get(k)) != normalize_value(v):
                unsupported.add(
                    name,
                    "index option",
                    f"{_index_label(spec)}: {k}={json_util.dumps(v)}",
                    "the server accepted the option but did not keep it",
                )
    return len(created)


def create_view(db: Any, c: DumpCollection, unsupported: _Unsupported) -> bool:
    cmd = SON([("create", c.name)])
    cmd.update((k, v) for k, v in c.options.items() if k != "uuid")
    try:
        db.command(cmd)
        return True
    except mongo_errors.OperationFailure as exc:
        if exc.code not in NOT_SUPPORTED_CODES:
            raise
        unsupported.add(c.name, "view", json_util.dumps(c.options), f"not created: {mongo_error_text(exc)}")
        return False


def _insert_collection(db: Any, c: DumpCollection, req: RestoreRequest) -> dict:
    started = time.monotonic()
    coll = db.get_collection(c.name, codec_options=RAW_OPTIONS)
    content = ContentHash()
    if c.data_path is None:
        return {"documents": 0, "bson_bytes": 0, "content_hash": content.hexdigest(), "seconds": 0.0}
    inflight: set = set()
    acknowledged = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=req.insertion_workers) as pool, BsonReader(c.data_path) as reader:

        def flush(batch: list) -> None:
            nonlocal acknowledged
            if len(inflight) >= 2 * req.insertion_workers:
                done, _pending = concurrent.futures.wait(inflight, return_when=concurrent.futures.FIRST_COMPLETED)
                for d in done:
                    inflight.discard(d)
                    acknowledged += d.result().inserted_count
            inflight.add(pool.submit(coll.bulk_write, batch, ordered=False, bypass_document_validation=True))

        batch: list = []
        size = 0
        for raw in reader:
            content.add(raw)
            batch.append(InsertOne(RawBSONDocument(raw, RAW_OPTIONS)))
            size += len(raw)
            if size >= req.batch_bytes or len(batch) >= BATCH_DOCUMENTS:
                flush(batch)
                batch, size = [], 0
        if batch:
            flush(batch)
        for d in concurrent.futures.as_completed(inflight):
            acknowledged += d.result().inserted_count
    # Every insert is acknowledged by the server (a failed one raises); counting them instead of
    # count_documents() afterwards avoids a full scan per collection (FerretDB and MongoDB alike).
    if acknowledged != content.count:
        raise IntegrityError(
            f"collection {c.name!r}: the server acknowledged {acknowledged} of {content.count} document(s).", hint="run the restore again."
        )
    return {
        "documents": content.count,
        "bson_bytes": content.bytes,
        "content_hash": content.hexdigest(),
        "seconds": round(time.monotonic() - started, 3),
    }


def _restore_one(db: Any, c: DumpCollection, req: RestoreRequest, unsupported: _Unsupported, temp: str) -> dict:
    """Restore one collection under the temporary name ``temp`` of the target database."""
    create_collection(db, temp, c.options, unsupported)
    coll = DumpCollection(temp, c.type, c.data_path, c.metadata_path, c.options, c.indexes, c.manifest_entry)
    stats = _insert_collection(db, coll, req)
    entry = c.manifest_entry
    if entry is not None and (
        stats["documents"] != entry.get("documents") or stats["content_hash"] != entry.get("content_hash", stats["content_hash"])
    ):
        raise IntegrityError(
            f"collection {c.name!r}: the documents read while inserting ({stats['documents']}, content hash "
            f"{stats['content_hash'][:12]}…) differ from the manifest ({entry.get('documents')}, {str(entry.get('content_hash'))[:12]}…): "
            "the backup file changed during the restore.",
            hint="keep the backup unchanged while it is restored; take a new backup.",
        )
    idx_started = time.monotonic()
    stats["indexes"] = create_indexes(db, temp, c.indexes, unsupported)
    stats["index_seconds"] = round(time.monotonic() - idx_started, 3)
    stats["name"] = c.name
    return stats


# A restore writes every collection under a temporary name and swaps them in only when all are complete;
# the collections they replace are renamed aside for the swap and dropped last.
NEW_PREFIX = "dualboot_new_"
OLD_PREFIX = "dualboot_old_"


def _leftovers(db: Any) -> tuple[list, list]:
    """Collections an interrupted restore left behind: (incomplete new ones, old ones set aside during a swap)."""
    names = db.list_collection_names()
    return sorted(n for n in names if n.startswith(NEW_PREFIX)), sorted(n for n in names if n.startswith(OLD_PREFIX))


def _refuse_interrupted_swap(database: str, aside: list) -> None:
    if aside:
        raise SafetyRefusal(
            f"database {database!r} holds {', '.join(aside)}: collections an earlier restore set aside while swapping in new "
            "content, and was interrupted before it dropped them. They may hold the only copy of the old content.",
            hint="inspect them (rename them back, or drop them when the current content is right), then run the restore again.",
        )


def _drop_quietly(db: Any, names: list) -> str | None:
    """Drop ``names``; a server that is gone is reported, not raised (the caller is already failing)."""
    try:
        for n in names:
            db.drop_collection(n)
        if not db.list_collection_names():  # it was empty before: leave no empty database behind
            db.client.drop_database(db.name)
        return None
    except mongo_errors.PyMongoError as exc:
        return f"could not drop the temporary collection(s) {', '.join(names)} ({mongo_error_text(exc)}); the next restore drops them"


def _swap_in(db: Any, database: str, stats: list, temps: dict, token: str) -> None:
    """Rename the old collections aside, the complete new ones in, then drop the old ones (views are dropped: they cannot be renamed)."""
    old = {i["name"]: i.get("type") or "collection" for i in db.list_collections() if not i["name"].startswith((NEW_PREFIX, OLD_PREFIX))}
    aside = {}
    done = []
    try:
        for i, name in enumerate(sorted(old)):
            if old[name] == "view":
                db.drop_collection(name)
            else:
                aside[name] = f"{OLD_PREFIX}{token}_{i}"
                db.command("renameCollection", f"{database}.{name}", to=f"{database}.{aside[name]}")
        for s in stats:
            db.command("renameCollection", f"{database}.{temps[s['name']]}", to=f"{database}.{s['name']}")
            done.append(s["name"])
    except mongo_errors.PyMongoError as exc:
        raise OperationFailed(
            f"swapping the restored collections into {database!r} failed: {mongo_error_text(exc)}. "
            f"Swapped in: {', '.join(done) or 'none'}; "
            f"the old collections are kept as {', '.join(f'{v} (was {k})' for k, v in aside.items()) or 'none'}.",
            hint="rename the old collections back (or keep the new ones and drop the old), then run the restore again.",
        ) from None
    for name in aside.values():
        db.drop_collection(name)


def _restore_collections(db: Any, req: RestoreRequest, collections: list, unsupported: _Unsupported, temps: dict) -> list:
    try:
        return _run_parallel(
            [(c, lambda c=c: _restore_one(db, c, req, unsupported, temps[c.name])) for c in collections], req.jobs, _wrap_restore_error
        )
    except BaseException as exc:
        problem = _drop_quietly(db, list(temps.values()))
        if isinstance(exc, DualbootError):
            exc.details["cleanup"] = problem or f"the temporary collections were dropped; {req.database!r} was not touched"
        raise


def _create_views(db: Any, views: list, unsupported: _Unsupported) -> list:
    pending = list(views)
    created = []
    while pending:  # views on views need their base first
        ready = [v for v in pending if v.options.get("viewOn") not in {p.name for p in pending}]
        if not ready:
            ready = pending
        for v in ready:
            if create_view(db, v, unsupported):
                created.append(v.name)
            pending.remove(v)
    return created


def _wrap_restore_error(c: Any, exc: Exception) -> Exception:
    name = getattr(c, "name", c)
    if isinstance(exc, mongo_errors.AutoReconnect):
        return OperationFailed(
            f"the server closed the connection while restoring collection {name!r}: {exc}",
            hint="FerretDB drops the connection on BSON types it does not support (Decimal128, NaN, JavaScript code, MinKey/MaxKey); "
            "restore into a MongoDB server or remove those values.",
        )
    return OperationFailed(f"restoring collection {name!r} failed: {mongo_error_text(exc)}")


@translate_mongo_errors
def restore(conn: MongoConnection, req: RestoreRequest, check_mode: bool = False) -> dict:
    """Restore a backup into ``req.database`` (see module docstring); returns the task result."""
    validate_database_name(req.database)
    if req.jobs < 1 or req.insertion_workers < 1 or req.batch_bytes < 1024:
        raise InvalidInput(
            "jobs and insertion_workers must be at least 1, batch_bytes at least 1024.", hint="correct the parallelism options."
        )
    dump = open_dump(req.path, req.source_database)
    chosen = dump.collections
    if req.collections:
        names = {c.name for c in dump.collections}
        missing = [n for n in req.collections if n not in names]
        if missing:
            raise InvalidInput(
                f"collection(s) {', '.join(missing)} are not in the backup.", hint=f"the backup holds: {', '.join(sorted(names))}."
            )
        chosen = [c for c in dump.collections if c.name in req.collections]
    default_name = refuse_default_entry(req.boot_record, conn, req.database, req.force, "restore into")
    verified = verify_dump(Dump(dump.root, dump.dbdir, dump.database, dump.manifest, chosen, dump.skipped))
    client = connect(conn)
    try:
        server = server_info(client)
        existing = [n for n in client[req.database].list_collection_names() if not n.startswith(NEW_PREFIX)]
        if existing and not req.replace:
            raise SafetyRefusal(
                f"target database {req.database!r} on {conn.label()} already holds {len(existing)} collection(s) "
                f"({', '.join(sorted(existing)[:5])}).",
                hint="restore into an empty database, or set replace: true to replace its content once the restore is complete.",
            )
        plan = {
            "database": req.database,
            "source": {"path": dump.root, "database": dump.database, "manifest": dump.manifest is not None},
            "verified": verified,
            "replaces": sorted(existing),
            "collections": [{"name": c.name, "type": c.type} for c in chosen],
            "skipped": dump.skipped,
        }
        if default_name:
            plan["warnings"] = [f"target is the default entry {default_name!r}; restoring because force is true"]
        if check_mode:
            plan.update(changed=True, msg=f"would restore {len(chosen)} collection(s) from {dump.root} into {req.database!r}")
            return plan
        return _do_restore(client, conn, req, dump, chosen, plan, server)
    finally:
        client.close()


def _do_restore(client: Any, conn: MongoConnection, req: RestoreRequest, dump: Dump, chosen: list, plan: dict, server: dict) -> dict:
    started = time.monotonic()
    unsupported = _Unsupported()
    token = secrets.token_hex(3)
    db = client.get_database(req.database, codec_options=CodecOptions())
    incomplete, aside = _leftovers(db)
    _refuse_interrupted_swap(req.database, aside)
    for name in incomplete:  # what a killed restore left: never complete, never swapped in
        db.drop_collection(name)
    collections = [c for c in chosen if c.type != "view"]
    temps = {c.name: f"{NEW_PREFIX}{token}_{i}" for i, c in enumerate(collections)}
    stats = _restore_collections(db, req, collections, unsupported, temps)
    stats.sort(key=lambda s: s["name"])
    _swap_in(db, req.database, stats, temps, token)
    shown = {v: k for k, v in temps.items()}
    for item in unsupported.items:
        item["collection"] = shown.get(item["collection"], item["collection"])
    created_views = _create_views(db, [c for c in chosen if c.type == "view"], unsupported)
    seconds = time.monotonic() - started
    docs = sum(s["documents"] for s in stats)
    nbytes = sum(s["bson_bytes"] for s in stats)
    result = dict(plan)
    warnings = list(plan.get("warnings", []))
    if unsupported.items:
        warnings.append(
            f"{len(unsupported.items)} option(s)/index(es) the target server does not support were not restored; see unsupported"
        )
    result.update(
        {
            "changed": True,
            "method": "swap",
            "how": f"every collection was restored under a temporary name ({NEW_PREFIX}{token}_<n>) in {req.database!r} and "
            "renamed to its own name only when all were complete and verified"
            + (f"; the {len(plan['replaces'])} replaced collection(s) were kept until then" if plan["replaces"] else ""),
            "incomplete_dropped": incomplete,
            "server_version": server["version"],
            "collections": stats,
            "views": created_views,
            "unsupported": unsupported.items,
            "documents": docs,
            "bson_bytes": nbytes,
            "seconds": round(seconds, 3),
            "documents_per_second": _rate(docs, seconds),
            "mb_per_second": _rate(_mb(nbytes), seconds),
            "warnings": warnings,
            "msg": f"restored {len(stats)} collection(s) and {len(created_views)} view(s), {docs} document(s), {_mb(nbytes)} MB "
            f"into {req.database!r} in {seconds:.1f} s",
        }
    )
    return result
