# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One application host's switch in one call (module ``app_switch``): its own boot record's journal (and cutover
marker) written first, every configuration target pointed at the entry, the application reloaded, its health
checks run, each step timed.

A cutover pays every task it runs on a host once per host while writes are blocked: a module start (a Python
process, 0.2-0.5 s of CPU) and Ansible's own work per task and host. The switch, the reload and the checks of a
host used to be several tasks; here they are one. A target that fails stops the host's switch there (nothing is
reloaded, the role switches every touched host back); ``undo`` (switching back after a failure) tries every
target, always reloads, and reports a failed health check without failing on it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from typing import Any

from ansible_collections.dualboot.db.plugins.module_utils import switch_formats
from ansible_collections.dualboot.db.plugins.module_utils.errors import DualbootError, InvalidInput, MissingDependency

OUTPUT_CHARS = 2000
MESSAGE_CHARS = 600
FORMATS = ["dotenv", "ini", "json", "yaml", "symlink", "pgbouncer"]


def target_spec() -> dict:
    """The options of one switch target: the module connection_switch's, and each item of app_switch's targets."""
    return {
        "format": {"type": "str", "required": True, "choices": FORMATS, "aliases": ["target_type"]},
        "path": {"type": "path", "required": True},
        "key": {"type": "raw", "no_log": False},
        "section": {"type": "str"},
        "value": {"type": "str"},
        "template": {"type": "str"},
        "backup": {"type": "bool", "default": False},
        "pgbouncer_admin": {"type": "dict", "options": switch_formats.pgbouncer_admin_spec()},
        "pause": {"type": "bool", "default": False},
        "pause_timeout": {"type": "int", "default": 30},
    }


def execute(params: dict, check_mode: bool) -> dict:
    """Switch the targets, reload, check. The result names each step's outcome; ``failed`` when a step
    that must succeed did not (a health check only outside ``undo``)."""
    started = time.monotonic()
    undo = params.get("undo", False)
    result: dict = {"changed": False, "targets": [], "reload": {}, "checks": [], "seconds": {}}
    lap = time.monotonic()
    if params.get("record") and not _write_record(params["record"], check_mode, result):
        result["seconds"]["record"] = _since(lap)
        return _finish(result, params, check_mode, started)
    result["seconds"]["record"] = _since(lap)
    lap = time.monotonic()
    switched_ok = _switch_targets(params, check_mode, result)
    result["seconds"]["switch"] = _since(lap)
    lap = time.monotonic()
    reload_ok = True
    moved = any(t.get("changed") for t in result["targets"])
    if (switched_ok or undo) and (moved or undo):
        result["reload"] = _reload(params.get("reload") or {}, check_mode)
        reload_ok = not result["reload"].get("failed")
    result["seconds"]["reload"] = _since(lap)
    lap = time.monotonic()
    if (switched_ok and reload_ok) or undo:
        result["checks"] = [_check(c, params, check_mode) for c in params.get("checks") or []]
    result["seconds"]["health"] = _since(lap)
    return _finish(result, params, check_mode, started)


def _finish(result: dict, params: dict, check_mode: bool, started: float) -> dict:
    result["seconds"]["total"] = _since(started)
    result["failures"] = failures(result, checks=not params.get("undo"))
    result["failed"] = bool(result["failures"])
    result["msg"] = _summary(result, params, check_mode)
    warnings = [w for t in result["targets"] for w in t.pop("warnings", []) or []]
    if warnings:
        result["warnings"] = warnings
    return result


def _write_record(record: dict, check_mode: bool, result: dict) -> bool:
    """The host's own boot record first (write-ahead): its journal phase, and with ``cutover`` the marker in the
    same write. A record that cannot be written ends the switch before anything moves."""
    from ansible_collections.dualboot.db.plugins.module_utils import boot_record  # noqa: PLC0415

    try:
        written = boot_record.execute({**record, "state": "journal"}, check_mode)
    except DualbootError as exc:
        result["record"] = {"failed": True, "msg": str(exc), "item": {"name": f"the boot record {record.get('path')}"}}
        return False
    result["record"] = {"changed": written["changed"], "path": written.get("path"), "msg": written.get("msg")}
    result["changed"] = result["changed"] or written["changed"]
    return True


def _since(moment: float) -> float:
    return round(time.monotonic() - moment, 3)


def _switch_targets(params: dict, check_mode: bool, result: dict) -> bool:
    """Each target in turn; the first failure ends the switch unless ``undo``. True when every one switched."""
    ok = True
    for target in params.get("targets") or []:
        label = target_label(target)
        try:
            r = _switch_one(target, params, check_mode)
        except DualbootError as exc:
            r = {"failed": True, "msg": str(exc)}
        r["item"] = {"name": label}
        result["targets"].append(r)
        if r.get("failed"):
            ok = False
            if not params.get("undo"):
                break
        result["changed"] = result["changed"] or bool(r.get("changed"))
    return ok


def target_label(target: dict) -> str:
    key = target.get("key")
    return f"{target.get('format')} {target.get('path')}" + (f" {key}" if key not in (None, "") else "")


def _switch_one(target: dict, params: dict, check_mode: bool) -> dict:
    """One target (its options validated by the module's argument spec), as connection_switch switches it."""
    one = dict(target)
    if one.get("value") is None:
        one["entry"] = params["entry"]
    if one["format"] == "pgbouncer":
        # PgBouncer logs in with its own auth_file: the entry's password never goes into pgbouncer.ini.
        from ansible_collections.dualboot.db.plugins.module_utils import pgbouncer

        return pgbouncer.switch(one, check_mode)
    if one["format"] == "yaml" and switch_formats.YAML_IMPORT_ERROR:
        raise MissingDependency("PyYAML is needed to switch a yaml target.", hint="install PyYAML for the host's Python.")
    one["password"] = params.get("password")
    return switch_formats.switch(one, check_mode)


def argv(command: Any, what: str) -> list[str]:
    """A command as an argv list: a list as given, a string split at whitespace (no shell)."""
    args = command.split() if isinstance(command, str) else [str(a) for a in command or []]
    if not args:
        raise InvalidInput(f"{what}: the command is empty.", hint="give an argv list or a string.")
    return args


def _run(args: list[str], timeout: float | None, env: dict | None = None) -> dict:
    started = time.monotonic()
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, check=False)  # noqa: S603 - argv, no shell
    except FileNotFoundError:
        return {"failed": True, "rc": 127, "msg": f"{args[0]}: command not found", "delta_s": _since(started)}
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
        return {"failed": True, "msg": f"timed out after {timeout:g} s", "stdout": out[-OUTPUT_CHARS:], "delta_s": _since(started)}
    return {
        "failed": proc.returncode != 0,
        "rc": proc.returncode,
        "stdout": proc.stdout[-OUTPUT_CHARS:],
        "stderr": proc.stderr[-OUTPUT_CHARS:],
        "delta_s": _since(started),
    }


SERVICE_VERBS = {"reloaded": "reload", "restarted": "restart", "started": "start", "stopped": "stop"}


def service_argv(name: str, state: str) -> list[str]:
    """The reload of a service: systemctl where systemd runs, else the service command."""
    verb = SERVICE_VERBS.get(state)
    if verb is None:
        what = f"dualboot_app_reload state {state!r} is not one of {', '.join(SERVICE_VERBS)}."
        raise InvalidInput(what, hint="use reloaded or restarted.")
    if os.path.isdir("/run/systemd/system") and shutil.which("systemctl"):
        return ["systemctl", verb, name]
    return ["service", name, verb]


def _reload(reload: dict, check_mode: bool) -> dict:
    """Run the reload command or service reload (nothing when none is configured)."""
    if reload.get("command"):
        args, what = argv(reload["command"], "dualboot_app_reload"), "reload command"
    elif reload.get("service"):
        args, what = service_argv(reload["service"], reload.get("state") or "reloaded"), "reload of service " + reload["service"]
    else:
        return {}
    if check_mode:
        return {"item": {"name": what}, "skipped": True, "msg": f"would run {' '.join(args)}"}
    return {"item": {"name": what}, "cmd": args, **_run(args, reload.get("timeout"))}


def _check(check: dict, params: dict, check_mode: bool) -> dict:
    """One health check: a URL (status, retries, delay, timeout) or a command run after the switch."""
    label = str(check.get("name") or check.get("url") or check.get("command"))
    if check_mode:
        return {"item": {"name": label}, "skipped": True, "msg": "would run after the switch"}
    if check.get("url"):
        return {"item": {"name": label}, **_url_check(check, params.get("host") or "localhost")}
    env = {**os.environ, "DUALBOOT_ENTRY": params.get("entry_name") or ""}
    return {"item": {"name": label}, **_run(argv(check["command"], label), check.get("timeout"), env)}


def _url_check(check: dict, host: str) -> dict:
    """GET the URL until it answers with the expected status: retries + 1 attempts, delay seconds apart."""
    from ansible.module_utils.urls import open_url  # noqa: PLC0415 - loaded only when a URL is checked

    url = check["url"].replace("{host}", host)
    wanted = check.get("status", 200)
    wanted = {int(s) for s in (wanted if isinstance(wanted, list) else [wanted])}
    attempts = int(check.get("retries", 5)) + 1
    started = time.monotonic()
    for attempt in range(1, attempts + 1):
        status, body, msg = _get(open_url, url, float(check.get("timeout", 5)))
        if status in wanted:
            break
        if attempt < attempts:
            time.sleep(float(check.get("delay", 1)))
    out = {"url": url, "status": status, "content": body[:OUTPUT_CHARS], "attempts": attempt, "elapsed": _since(started)}
    if status not in wanted:
        out.update(failed=True, msg=msg or f"status {status}, expected {' or '.join(str(s) for s in sorted(wanted))}")
    return out


def _get(open_url: Any, url: str, timeout: float) -> tuple[int, str, str]:
    import urllib.error  # noqa: PLC0415

    try:
        with open_url(url, timeout=timeout, follow_redirects="safe") as resp:
            return resp.status, resp.read().decode("utf-8", "replace"), ""
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace"), ""
    except Exception as exc:  # noqa: BLE001 - any connection error is the check's answer
        return -1, "", f"{type(exc).__name__}: {exc}"


def failures(result: dict, checks: bool = True) -> list[dict]:
    """The failed steps, each ``{step, result}`` (step: switch, reload or health) in the order they ran."""
    out = [{"step": "record", "result": result["record"]}] if result.get("record", {}).get("failed") else []
    out += [{"step": "switch", "result": t} for t in result.get("targets", []) if t.get("failed")]
    if result.get("reload", {}).get("failed"):
        out.append({"step": "reload", "result": result["reload"]})
    if checks:
        out += [{"step": "health", "result": c} for c in result.get("checks", []) if c.get("failed")]
    return out


def _label(item: Any) -> str:
    """What a step is called: its name, else its url, command or path."""
    if isinstance(item, dict):
        for key in ("name", "url", "command", "path"):
            if item.get(key):
                return str(item[key])
    return str(item)


def failure_text(result: dict, what: str | None = None) -> str:
    """``<what> failed (rc 3, status 503, output: ...)`` for a failed step (or task result, or loop item)."""
    result = result or {}
    what = what if what is not None else _label(result.get("item", "?"))
    codes = "".join(f"{key} {result[key]}, " for key in ("rc", "status") if result.get(key) is not None)
    output = " ".join(str(result.get(key) or "") for key in ("stdout", "stderr", "content", "msg"))
    return f"{what} failed ({codes}output: {' '.join(output.split())[:MESSAGE_CHARS] or 'none'})"


def _summary(result: dict, params: dict, check_mode: bool) -> str:
    entry = params.get("entry_name") or "the entry"
    if result["failures"]:
        return "; ".join(failure_text(f["result"]) for f in result["failures"])
    verb = ("would point" if check_mode else "pointed") if result["changed"] else "already pointed"
    checks = len(result["checks"])
    done = "reloaded, " if result["reload"] and not check_mode else ""
    return f"{verb} {len(result['targets'])} target(s) at {entry}; {done}{checks} health check(s) {'to run' if check_mode else 'passed'}"
