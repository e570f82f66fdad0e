# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that turn registered task results into the lines people read in the roles' failure messages."""

from __future__ import annotations

from ansible_collections.dualboot.db.plugins.module_utils.app_switch import failure_text


def switch_failures(host_vars, host: str, checks: bool = True) -> list:
    """One line per failed step of the switch of ``host``, from the result of its app_switch task (its hostvars,
    roles/cutover/tasks/app_switch.yml); without ``checks``, the health checks are left out (the host was
    switched, healthy or not)."""
    r = (host_vars or {}).get("__dualboot_app_switch") or {}
    if not isinstance(r, dict) or r.get("skipped"):
        return []
    if r.get("unreachable"):
        return [f"{host} unreachable: {str(r.get('msg', '?'))[:300]}"]
    if r.get("failed") and not r.get("failures"):  # the module did not run (bad arguments, no Python)
        return [f"{host}: {failure_text(r, 'the switch')}"]
    return [f"{host}: {failure_text(f['result'])}" for f in r.get("failures") or [] if checks or f.get("step") != "health"]


class FilterModule:
    def filters(self):
        return {"failure_text": failure_text, "switch_failures": switch_failures}
