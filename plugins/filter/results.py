# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that turn registered task results into the lines people read in the roles' failure messages."""

from __future__ import annotations

OUTPUT_CHARS = 600


def _label(item) -> str:
    """What a health check or reload item is called: its name, else its url, command or path."""
    if isinstance(item, dict):
        for key in ("name", "url", "command", "path"):
            if item.get(key):
                return str(item[key])
    return str(item)


def failure_text(result, what=None) -> str:
    """``<what> failed (rc 3, status 503, output: ...)`` for a failed task result or loop item."""
    result = result or {}
    what = what if what is not None else _label(result.get("item", "?"))
    codes = "".join(f"{key} {result[key]}, " for key in ("rc", "status") if result.get(key) is not None)
    output = " ".join(str(result.get(key) or "") for key in ("stdout", "stderr", "content", "msg"))
    return f"{what} failed ({codes}output: {' '.join(output.split())[:OUTPUT_CHARS] or 'none'})"


# The results a host registers while it is switched (roles/cutover/tasks/batch_parallel.yml, switch_host.yml):
# the steps that move it, then its health checks.
SWITCH_STEPS = ("switch", "reload_command", "reload_service")
HEALTH_CHECKS = ("health", "command_check")


def switch_failures(host_vars, host: str, checks: bool = True) -> list:
    """One line per failed step of the switch of ``host``, from the results it registered (its hostvars);
    without ``checks``, the health checks are left out (the host was switched, healthy or not)."""
    out = []
    for name in SWITCH_STEPS + (HEALTH_CHECKS if checks else ()):
        r = (host_vars or {}).get(f"__dualboot_{name}") or {}
        if not isinstance(r, dict):
            continue
        if r.get("unreachable"):
            out.append(f"{host} unreachable: {str(r.get('msg', '?'))[:300]}")
        elif r.get("results") is not None:
            out += [f"{host}: {failure_text(i)}" for i in r["results"] if isinstance(i, dict) and i.get("failed")]
        elif r.get("failed"):
            out.append(f"{host}: {failure_text(r, name.replace('_', ' '))}")
    return out


class FilterModule:
    def filters(self):
        return {"failure_text": failure_text, "switch_failures": switch_failures}
