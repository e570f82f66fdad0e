# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Configuration-file editors for ``connection_switch``: change one setting, leave every other byte alone.

Each editor takes the file's text and returns the new text plus the previous value. Edits are made
in place on the one value (dotenv, INI, JSON, YAML scalars), so switching there and back restores the
file byte for byte. The only exception is a YAML value that cannot be replaced in place (a block
scalar ``|``/``>``): the document is then re-serialized and the result says so (comments are lost).

:func:`switch` is the library entry point of the module for file and symlink targets; PgBouncer
targets live in ``pgbouncer.py`` and reuse :func:`atomic_write`, :func:`render` and :class:`Masker`.
"""

from __future__ import annotations

import configparser
import copy
import difflib
import json
import os
import re
import stat
import string
import tempfile
import time
import traceback
from typing import Any
from urllib.parse import quote, quote_plus

from ansible_collections.dualboot.db.plugins.module_utils.errors import InvalidInput, OperationFailed

try:
    import yaml

    YAML_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - exercised only where PyYAML is missing
    yaml = None
    YAML_IMPORT_ERROR = traceback.format_exc()

MASK = "********"


def pgbouncer_admin_spec() -> dict:
    """Suboptions of ``pgbouncer_admin`` (here, not in pgbouncer.py, so that a switch's argument spec does not load psycopg)."""
    return {
        "login_host": {"type": "str", "default": ""},
        "login_port": {"type": "int", "default": 6432},
        "login_user": {"type": "str", "default": "pgbouncer"},
        "login_password": {"type": "str", "no_log": True, "default": ""},
        "login_unix_socket": {"type": "str", "default": ""},
        "connect_timeout": {"type": "int", "default": 5},
    }


FILE_FORMATS = ("dotenv", "ini", "json", "yaml")
SECRET_ENTRY_KEYS = frozenset({"login_password", "password", "passwd", "pgpassword"})


# --------------------------------------------------------------------------------------------
# Writing files: atomic, owner/group/mode kept, fsync'd.


def atomic_write(path: str, data: bytes, like: os.stat_result | None = None, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` atomically: temp file in the same directory, fsync, rename, fsync the directory.

    ``like`` is the stat of the file being replaced: its owner and group are kept, and its mode unless
    ``mode`` is given. A new file without ``mode`` is 0600.
    """
    if mode is None:
        mode = stat.S_IMODE(like.st_mode) if like else 0o600
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".dualboot")
    except OSError as exc:
        raise OperationFailed(
            f"cannot write {path}: {exc.strerror} (creating a temporary file in {directory}).", hint=_write_hint(exc)
        ) from None
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)
            os.fchmod(fd, mode)
            if like and (like.st_uid != os.geteuid() or like.st_gid != os.getegid()):
                os.fchown(fd, like.st_uid, like.st_gid)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        _unlink_quietly(tmp)
        raise OperationFailed(f"cannot write {path}: {exc.strerror}; the file is unchanged.", hint=_write_hint(exc)) from None
    fsync_dir(directory)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_hint(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "run the task with become (the file's owner or root), or fix the directory's permissions."
    return "free space on that file system or fix the directory, then run the task again."


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def fsync_dir(directory: str) -> None:
    """Make a rename in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def backup_copy(path: str, data: bytes, like: os.stat_result) -> str:
    """Keep ``data`` (the file as it was) beside ``path`` as ``<path>.<pid>.<time>~``, mode 0600."""
    name = f"{path}.{os.getpid()}.{time.strftime('%Y-%m-%d@%H:%M:%S')}~"
    atomic_write(name, data, mode=0o600)
    if like.st_uid != os.geteuid() or like.st_gid != os.getegid():
        os.chown(name, like.st_uid, like.st_gid)
    return name


# --------------------------------------------------------------------------------------------
# Values: template rendering and masking of the secret.


class _Formatter(string.Formatter):
    """``str.format`` with ``!u`` (percent-encode for a URI) and clear errors for unknown fields."""

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion == "u":
            return quote(str(value), safe="")
        return super().convert_field(value, conversion)

    def get_value(self, key: Any, args: Any, kwargs: Any) -> Any:
        if not isinstance(key, str) or key not in kwargs:
            available = ", ".join(sorted(kwargs)) or "nothing"
            hint = "pass password (it is never stored in the boot record)." if key == "password" else f"use one of: {available}."
            raise InvalidInput(f"template field {{{key}}} is not set by the entry.", hint=hint)
        return kwargs[key]


def render(template: str, entry: dict, password: str | None) -> str:
    """Fill ``template`` from an entry's connection settings plus the password (``{password!u}`` for URIs)."""
    leaked = sorted(k for k in entry if k.lower() in SECRET_ENTRY_KEYS)
    if leaked:
        raise InvalidInput(
            f"entry holds a secret ({', '.join(leaked)}).",
            hint="remove it from the entry and pass it with the password option (no_log).",
        )
    fields = {k: "" if v is None else v for k, v in entry.items()}
    if password is not None:
        fields["password"] = password
    try:
        for _text, name, _spec, conversion in _Formatter().parse(template):
            if name is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise InvalidInput(f"template field {{{name}}} is not a plain name.", hint="use fields like {login_host} or {password!u}.")
            if conversion not in (None, "s", "r", "u"):
                raise InvalidInput(f"template conversion !{conversion} is unknown.", hint="use !u to percent-encode a value for a URI.")
        return _Formatter().format(template, **fields)
    except ValueError as exc:
        raise InvalidInput(
            f"template {template!r} is malformed: {exc}.", hint="write fields as {name}; double braces for a literal brace."
        ) from None


class Masker:
    """Hide the secret in everything shown to people: raw, percent-encoded and escaped the ways the editors write it,
    plus any password inside a URI (``scheme://user:secret@``) or a DSN (``password=secret``) already in the file."""

    _URI = re.compile(r"(?P<pre>[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s'\"]*:)(?P<pw>[^@\s'\"/]+)(?=@)")
    _DSN = re.compile(r"(?P<pre>\bpassword\s*=\s*)(?P<pw>'(?:[^'\\]|\\.)*'|[^\s'\"]+)", re.IGNORECASE)

    def __init__(self, secret: str | None) -> None:
        forms: set[str] = set()
        if secret:
            for f in (secret, quote(secret, safe=""), quote(secret), quote_plus(secret)):
                forms |= {f, json.dumps(f)[1:-1], json.dumps(f, ensure_ascii=False)[1:-1], f.replace("'", "''"), _dq_escape(f)}
        self.forms = sorted((f for f in forms if f), key=len, reverse=True)

    def __call__(self, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        for f in self.forms:
            value = value.replace(f, MASK)
        value = self._URI.sub(lambda m: m.group("pre") + MASK, value)
        return self._DSN.sub(lambda m: m.group("pre") + MASK, value)


def changed_lines(before: str, after: str) -> tuple[str, str]:
    """Only the lines that differ: a diff that cannot show the file's other settings (often secrets too)."""
    a, b = before.splitlines(keepends=True), after.splitlines(keepends=True)
    old, new = [], []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag != "equal":
            old += a[i1:i2]
            new += b[j1:j2]
    return "".join(old), "".join(new)


# --------------------------------------------------------------------------------------------
# dotenv: the grammar python-dotenv reads (docker compose reads the same subset).

_DOTENV_BINDING = re.compile(
    r"""
    (?P<lead>[^\S\r\n]*(?:export[^\S\r\n]+)?)
    (?P<key>[^=\#\s]+)
    (?P<eq>[^\S\r\n]*=[^\S\r\n]*)
    (?P<value>'(?:\\'|[^'])*'|"(?:\\"|[^"])*"|[^\r\n]*)
    """,
    re.VERBOSE,
)
_DOTENV_DQ_ESCAPES = re.compile(r"\\[\\'\"abfnrtv]")
_DOTENV_SAFE = re.compile(r"[A-Za-z0-9_@%+=:,./~!?*^&;|<>()\[\]{}-]*")


def _dq_escape(value: str, literal_newlines: bool = False) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return escaped if literal_newlines else escaped.replace("\n", "\\n").replace("\r", "\\r")


def _dotenv_decode(raw: str) -> str:
    if raw.startswith("'"):
        return re.sub(r"\\[\\']", lambda m: m.group(0)[1], raw[1:-1])
    if raw.startswith('"'):
        return _DOTENV_DQ_ESCAPES.sub(lambda m: m.group(0).encode().decode("unicode-escape"), raw[1:-1])
    return raw


def dotenv_quote(value: str, prefer: str = "", literal_newlines: bool = False) -> str:
    """``value`` written so python-dotenv and docker compose both read it back unchanged.

    ``prefer`` is the style the file used (``'``, ``"`` or empty for unquoted); it is kept when it can
    carry the value, so a switch and its reversal restore the line byte for byte (also a double-quoted
    value written over several lines: ``literal_newlines``).
    """
    if "${" in value:
        raise InvalidInput(
            "the value holds ${, which python-dotenv expands as a variable in every quoting style.",
            hint="change the password or the template so the value does not contain ${.",
        )
    unquoted_ok = bool(_DOTENV_SAFE.fullmatch(value))
    # Single quotes are literal in docker compose, but python-dotenv unescapes \\ and \' in them.
    single_ok = "'" not in value and "\\" not in value and "\n" not in value and "\r" not in value
    # Double quotes interpolate $ (compose: $VAR, python-dotenv: ${VAR}) and neither escapes it the same way.
    double_ok = "$" not in value
    order = {"'": ["'", "", '"'], '"': ['"', "", "'"]}.get(prefer, ["", "'", '"'])
    for style in order:
        if style == "" and unquoted_ok:
            return value
        if style == "'" and single_ok:
            return f"'{value}'"
        if style == '"' and double_ok:
            return f'"{_dq_escape(value, literal_newlines)}"'
    raise InvalidInput(
        "the value cannot be written in a dotenv file so that python-dotenv and docker compose read it alike "
        "(it holds a $ together with a quote, a backslash or a line break).",
        hint="change the password or the template so the value does not combine them.",
    )


def _dotenv_bindings(text: str) -> list[dict]:
    """Every ``KEY=value`` of the file with the span of its value (quotes included, trailing comment excluded)."""
    found = []
    pos = 0
    while pos < len(text):
        line_end = _next_line(text, pos)
        stripped = text[pos:line_end].strip()
        if not stripped or stripped.startswith("#"):
            pos = line_end
            continue
        m = _DOTENV_BINDING.match(text, pos)
        if not m:
            pos = line_end
            continue
        raw = m.group("value")
        start = m.start("value")
        if raw[:1] not in ("'", '"'):
            # An unquoted value ends before " #comment" and trailing blanks, as python-dotenv reads it.
            cut = re.search(r"\s+#", raw)
            raw = (raw[: cut.start()] if cut else raw).rstrip()
        found.append({"key": m.group("key"), "start": start, "end": start + len(raw), "raw": raw})
        pos = max(_next_line(text, m.end()), m.end())
    return found


def _next_line(text: str, pos: int) -> int:
    nl = text.find("\n", pos)
    return len(text) if nl < 0 else nl + 1


def edit_dotenv(text: str, key: str, value: str) -> tuple[str, str]:
    """Set ``key`` in a dotenv file; returns (new text, previous value)."""
    hits = [b for b in _dotenv_bindings(text) if b["key"] == key]
    if not hits:
        keys = ", ".join(sorted({b["key"] for b in _dotenv_bindings(text)})) or "none"
        raise InvalidInput(
            f"key {key} is not set in this dotenv file (keys there: {keys}).",
            hint="check key; connection_switch changes an existing setting.",
        )
    if len(hits) > 1:
        raise InvalidInput(
            f"key {key} is set {len(hits)} times in this dotenv file.",
            hint="remove the duplicates so it is clear which one the application reads.",
        )
    hit = hits[0]
    # Keep quotes the author chose; quotes the old value needed say nothing about the new one.
    quoted = hit["raw"][:1] in ("'", '"') and _DOTENV_SAFE.fullmatch(_dotenv_decode(hit["raw"]))
    prefer = hit["raw"][:1] if quoted else ""
    new_raw = dotenv_quote(value, prefer, literal_newlines=prefer == '"' and "\n" in hit["raw"])
    if _dotenv_decode(hit["raw"]) == value:
        new_raw = hit["raw"]
    return text[: hit["start"]] + new_raw + text[hit["end"] :], _dotenv_decode(hit["raw"])


# --------------------------------------------------------------------------------------------
# INI: the line of one key in one section, as Python's configparser reads it.

_INI_SECTION = re.compile(r"\s*\[(?P<name>[^\]]+)\]\s*$")
_INI_OPTION = re.compile(r"(?P<indent>\s*)(?P<key>[^=:\s][^=:]*?)(?P<sep>\s*[=:]\s*)(?P<value>.*?)(?P<trail>\s*)$")


def _ini_parse(text: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        raise InvalidInput(
            f"the INI file cannot be parsed: {str(exc).splitlines()[0]}", hint="fix the file; it is left untouched."
        ) from None
    return parser


def edit_ini(text: str, section: str, key: str, value: str) -> tuple[str, str]:
    """Set ``key`` in ``[section]``; keys match case-insensitively, as configparser reads them."""
    if "\n" in value or "\r" in value or value != value.strip():
        raise InvalidInput("an INI value cannot hold line breaks or leading/trailing blanks.", hint="check the template.")
    before = _ini_parse(text)
    if not before.has_section(section):
        raise InvalidInput(
            f"section [{section}] is not in this INI file (sections: {', '.join(before.sections()) or 'none'}).", hint="check section."
        )
    lines = text.splitlines(keepends=True)
    current = None
    hits = []
    for i, line in enumerate(lines):
        body = line.rstrip("\r\n")
        sm = _INI_SECTION.match(body)
        if sm:
            current = sm.group("name")
            continue
        if current != section or not body.strip() or body.lstrip()[:1] in ("#", ";"):
            continue
        om = _INI_OPTION.match(body)
        if om and om.group("key").strip().lower() == key.lower() and not om.group("indent"):
            hits.append((i, om))
    if not hits:
        raise InvalidInput(
            f"key {key} is not set in section [{section}] (keys there: {', '.join(before.options(section)) or 'none'}).",
            hint="check key and section; connection_switch changes an existing setting.",
        )
    if len(hits) > 1:
        raise InvalidInput(f"key {key} is set {len(hits)} times in section [{section}].", hint="remove the duplicates.")
    i, om = hits[0]
    following = lines[i + 1] if i + 1 < len(lines) else ""
    if following.strip() and following[:1] in (" ", "\t") and not following.lstrip().startswith(("#", ";")):
        raise InvalidInput(f"key {key} in [{section}] has a multi-line value.", hint="make it one line first; a switch replaces one line.")
    previous = before.get(section, key)
    if previous != value:
        eol = lines[i][len(lines[i].rstrip("\r\n")) :]
        sep = om.group("sep") if om.group("value") or not value else om.group("sep").rstrip() + " "
        lines[i] = om.group("indent") + om.group("key") + sep + value + om.group("trail") + eol
    new_text = "".join(lines)
    after = _ini_parse(new_text)
    if after.get(section, key) != value:
        raise InvalidInput(f"key {key} in [{section}] could not be set in place.", hint="check the line by hand.")
    return new_text, previous


# --------------------------------------------------------------------------------------------
# Key paths into JSON and YAML documents.


def parse_path(key: Any) -> list:
    """``a.b.0`` or ``[a, b, 0]`` → path segments; digits index lists."""
    if isinstance(key, (list, tuple)):
        segments = list(key)
    elif isinstance(key, str) and key:
        segments = key.split(".")
    else:
        raise InvalidInput("key must be a dotted path (db.url) or a list of keys.", hint="set key.")
    if not segments or any(s in ("", None) for s in segments):
        raise InvalidInput(f"key path {key!r} has an empty segment.", hint="use a list of keys when a key contains a dot.")
    return segments


def _path_text(segments: list) -> str:
    return ".".join(str(s) for s in segments)


def _walk(data: Any, segments: list) -> Any:
    """The value at the path, with a clear error when a step is missing or goes through a non-object."""
    node = data
    for n, seg in enumerate(segments):
        here = _path_text(segments[:n]) or "the top level"
        if isinstance(node, dict):
            if str(seg) not in node:
                raise InvalidInput(
                    f"key path {_path_text(segments)}: {here} has no key {seg!r} (keys: {', '.join(map(str, node)) or 'none'}).",
                    hint="check key; connection_switch changes an existing setting.",
                )
            node = node[str(seg)]
        elif isinstance(node, list):
            if not re.fullmatch(r"\d+", str(seg)) or int(seg) >= len(node):
                raise InvalidInput(
                    f"key path {_path_text(segments)}: {here} is a list of {len(node)} items; {seg!r} is not an index in it.",
                    hint="check key.",
                )
            node = node[int(seg)]
        else:
            raise InvalidInput(
                f"key path {_path_text(segments)} goes through a non-object: {here} is {type(node).__name__} {node!r}.",
                hint="check key; only objects (mappings) and lists can be walked into.",
            )
    return node


def _new_scalar(old: Any, value: str, segments: list) -> Any:
    """The value to store: text, or a number when the setting was a number (a template renders text)."""
    if isinstance(old, (dict, list)):
        raise InvalidInput(
            f"key path {_path_text(segments)} names a {'mapping' if isinstance(old, dict) else 'list'}, not a value.",
            hint="name the setting inside it.",
        )
    if isinstance(old, int) and not isinstance(old, bool) and re.fullmatch(r"-?\d+", value):
        return int(value)
    return value


def _replaced(data: Any, segments: list, new: Any) -> Any:
    """A deep copy of ``data`` with the value at the path replaced (for verifying an in-place edit)."""
    result = copy.deepcopy(data)
    node = result
    for seg in segments[:-1]:
        node = node[int(seg)] if isinstance(node, list) else node[str(seg)]
    last = segments[-1]
    node[int(last) if isinstance(node, list) else str(last)] = new
    return result


_JSON_WS = re.compile(r"[ \t\n\r]*")


def _json_span(text: str, segments: list) -> tuple[int, int]:
    """(start, end) of the value at the path in a valid JSON text; refuses duplicate keys on the way."""
    decoder = json.JSONDecoder()
    i = _JSON_WS.match(text, 0).end()
    for n, seg in enumerate(segments):
        found = None
        if text[i] == "{":
            i = _JSON_WS.match(text, i + 1).end()
            while text[i] != "}":
                name, i = decoder.raw_decode(text, i)
                i = _JSON_WS.match(text, i).end() + 1  # the colon
                i = _JSON_WS.match(text, i).end()
                if name == str(seg):
                    if found is not None:
                        raise InvalidInput(
                            f"key {_path_text(segments[: n + 1])} appears twice in the JSON object.", hint="remove the duplicate."
                        )
                    found = i
                _skipped, i = decoder.raw_decode(text, i)
                i = _JSON_WS.match(text, i).end()
                if text[i] == ",":
                    i = _JSON_WS.match(text, i + 1).end()
        else:
            i = _JSON_WS.match(text, i + 1).end()
            index = 0
            while text[i] != "]":
                if index == int(seg):
                    found = i
                _skipped, i = decoder.raw_decode(text, i)
                i = _JSON_WS.match(text, i).end()
                if text[i] == ",":
                    i = _JSON_WS.match(text, i + 1).end()
                index += 1
        i = found
    _value, end = decoder.raw_decode(text, i)
    return i, end


def edit_json(text: str, key: Any, value: str) -> tuple[str, Any]:
    """Set the value at a key path in a JSON document, rewriting only that value's token."""
    segments = parse_path(key)
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"the file is not valid JSON: {exc}.", hint="fix the file; it is left untouched.") from None
    old = _walk(data, segments)
    new = _new_scalar(old, value, segments)
    if new == old and type(new) is type(old):
        return text, old
    start, end = _json_span(text, segments)
    old_token = text[start:end]
    ascii_only = old_token == json.dumps(old, ensure_ascii=True) and old_token != json.dumps(old, ensure_ascii=False)
    new_text = text[:start] + json.dumps(new, ensure_ascii=ascii_only) + text[end:]
    if json.loads(new_text) != _replaced(data, segments, new):
        raise InvalidInput(f"key path {_path_text(segments)} could not be replaced in place.", hint="check the file by hand.")
    return new_text, old


def _yaml_compose(text: str) -> Any:
    if yaml is None:
        from ansible_collections.dualboot.db.plugins.module_utils.errors import MissingDependency

        raise MissingDependency(
            "the Python library PyYAML is not installed on the host running this task.", hint="pip install PyYAML there."
        )
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(
            f"the file is not valid YAML (a single document): {' '.join(str(exc).split())}", hint="fix the file; it is left untouched."
        ) from None
    return node, data


def _yaml_node(node: Any, segments: list) -> Any:
    for n, seg in enumerate(segments):
        if isinstance(node, yaml.MappingNode):
            hits = [v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(seg)]
            if len(hits) > 1:
                raise InvalidInput(f"key {_path_text(segments[: n + 1])} appears twice in the YAML mapping.", hint="remove the duplicate.")
            node = hits[0]
        else:
            node = node.value[int(seg)]
    return node


def edit_yaml(text: str, key: Any, value: str) -> tuple[str, Any, bool]:
    """Set the value at a key path in a YAML document; returns (new text, previous value, reformatted).

    The scalar is replaced in place (its quoting style kept when it can carry the value) and the
    result re-read to prove only that value changed. Where that is impossible the document is
    re-serialized (``reformatted`` is true: comments and layout are lost).
    """
    segments = parse_path(key)
    root, data = _yaml_compose(text)
    old = _walk(data, segments)
    new = _new_scalar(old, value, segments)
    if new == old and type(new) is type(old):
        return text, old, False
    expected = _replaced(data, segments, new)
    node = _yaml_node(root, segments)
    if isinstance(node, yaml.ScalarNode) and node.style in (None, "'", '"'):
        start, end = node.start_mark.index, node.end_mark.index
        style = node.style
        if style and isinstance(old, str) and not _parses_to(text[:start] + old + text[end:], data):
            style = None  # the old value needed its quotes; the new one may not
        for token in _yaml_tokens(new, style):
            if start == end and text[start - 1 : start] == ":":
                token = " " + token  # an empty value (null) right after its colon
            candidate = text[:start] + token + text[end:]
            if _parses_to(candidate, expected):
                return candidate, old, False
    dumped = yaml.safe_dump(expected, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return dumped, old, True


def _parses_to(text: str, data: Any) -> bool:
    try:
        return yaml.safe_load(text) == data
    except yaml.YAMLError:
        return False


def _yaml_tokens(new: Any, style: str | None) -> list[str]:
    if not isinstance(new, str):
        return [str(new)]
    tokens = {None: new, "'": "'" + new.replace("'", "''") + "'", '"': json.dumps(new, ensure_ascii=False)}
    if "\n" in new or "\r" in new:
        tokens.pop(None)
        tokens.pop("'")
    order = [style] + [s for s in (None, "'", '"') if s != style]
    return [tokens[s] for s in order if s in tokens]


# --------------------------------------------------------------------------------------------
# The switch of one file or symlink.


def resolve_value(params: dict) -> str:
    """The value to write: ``value`` as given, or ``template`` filled from ``entry`` and ``password``."""
    if params.get("value") is not None:
        return params["value"]
    if not params.get("template"):
        raise InvalidInput(
            "entry needs a template that turns it into the value.",
            hint="set template, e.g. postgresql://{login_user}:{password!u}@{login_host}:{login_port}/{login_db}.",
        )
    return render(params["template"], params.get("entry") or {}, params.get("password"))


def read_target(path: str) -> tuple[str, bytes, os.stat_result]:
    """(real path, content, stat) of an existing regular file; a symlinked file is edited where it lives."""
    real = os.path.realpath(path)
    if not os.path.exists(real):
        raise InvalidInput(f"{path} does not exist.", hint="check path; connection_switch edits an existing configuration file.")
    if not os.path.isfile(real):
        raise InvalidInput(f"{path} is not a regular file.", hint="check path.")
    try:
        with open(real, "rb") as f:
            data = f.read()
        return real, data, os.stat(real)
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}.", hint="run the task with become or fix the permissions.") from None


def switch(params: dict, check_mode: bool) -> dict:
    """Point one setting of a configuration file (or a symlink) at a new value. Returns the module result."""
    started = time.monotonic()
    fmt = params["format"]
    value = resolve_value(params)
    mask = Masker(params.get("password"))
    if fmt == "symlink":
        return _switch_symlink(params["path"], value, params.get("backup", False), check_mode, mask, started)
    path = params["path"]
    real, data, st = read_target(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{path} is not UTF-8 text.", hint="check path and format.") from None
    key = params.get("key")
    if key in (None, "", []):
        raise InvalidInput(f"format {fmt} needs key.", hint="set key (the setting to switch).")
    reformatted = False
    if fmt == "dotenv":
        new_text, previous = edit_dotenv(text, str(key), value)
    elif fmt == "ini":
        if not params.get("section"):
            raise InvalidInput("format ini needs section.", hint="set section (the [section] holding key).")
        new_text, previous = edit_ini(text, params["section"], str(key), value)
    elif fmt == "json":
        new_text, previous = edit_json(text, key, value)
    else:
        new_text, previous, reformatted = edit_yaml(text, key, value)
    changed = new_text != text
    result: dict = {
        "changed": changed,
        "path": path,
        "format": fmt,
        "key": key,
        "previous_value": mask(previous),
        "value": mask(value),
    }
    if changed and not check_mode:
        if params.get("backup"):
            result["backup_file"] = backup_copy(real, data, st)
        atomic_write(real, new_text.encode("utf-8"), like=st)
    if reformatted:
        result["warnings"] = [f"{path} was re-serialized to change {_path_text(parse_path(key))}: its comments and layout are lost."]
    before, after = changed_lines(text, new_text)
    setting = _path_text(parse_path(key)) if fmt in ("json", "yaml") else str(key)
    label = f"{path} ([{params['section']}] {setting})" if fmt == "ini" else f"{path} ({setting})"
    result["diff"] = {"before": mask(before), "after": mask(after), "before_header": label, "after_header": label}
    verb = ("would switch" if check_mode else "switched") if changed else "already points at the value:"
    result["msg"] = f"{verb} {label}" + (
        f" from {result['previous_value']!r} to {result['value']!r}" if changed else f" {result['value']!r}"
    )
    result["duration_s"] = round(time.monotonic() - started, 3)
    return result


def _switch_symlink(path: str, target: str, backup: bool, check_mode: bool, mask: Masker, started: float) -> dict:
    if not os.path.lexists(path):
        raise InvalidInput(f"{path} does not exist.", hint="create the symlink once; connection_switch retargets an existing one.")
    if not os.path.islink(path):
        raise InvalidInput(f"{path} is not a symlink; it is left untouched.", hint="use format dotenv/ini/json/yaml to edit a file.")
    previous = os.readlink(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.exists(os.path.join(directory, target)):
        raise InvalidInput(
            f"symlink target {target} does not exist (relative targets start at {directory}).", hint="create the target first."
        )
    changed = previous != target
    result: dict = {"changed": changed, "path": path, "format": "symlink", "previous_value": mask(previous), "value": mask(target)}
    if changed and not check_mode:
        st = os.lstat(path)
        if backup:
            result["backup_file"] = _relink(path, previous, st, f"{path}.{os.getpid()}.{time.strftime('%Y-%m-%d@%H:%M:%S')}~")
        _relink(path, target, st, path)
    result["diff"] = {
        "before": f"{path} -> {mask(previous)}\n",
        "after": f"{path} -> {mask(target)}\n",
        "before_header": path,
        "after_header": path,
    }
    verb = ("would retarget" if check_mode else "retargeted") if changed else "already points at"
    result["msg"] = f"{verb} {path}" + (f" from {previous} to {target}" if changed else f" {target}")
    result["duration_s"] = round(time.monotonic() - started, 3)
    return result


def _relink(path: str, target: str, st: os.stat_result, dest: str) -> str:
    """Create a symlink to ``target`` at ``dest`` atomically (a new link renamed over the old one), owned like ``st``."""
    directory = os.path.dirname(os.path.abspath(dest))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.{time.monotonic_ns()}.dualboot")
    try:
        os.symlink(target, tmp)
        if st.st_uid != os.geteuid() or st.st_gid != os.getegid():
            os.lchown(tmp, st.st_uid, st.st_gid)
        os.replace(tmp, dest)
    except OSError as exc:
        _unlink_quietly(tmp)
        raise OperationFailed(f"cannot retarget {dest}: {exc.strerror}; it is unchanged.", hint=_write_hint(exc)) from None
    fsync_dir(directory)
    return dest
