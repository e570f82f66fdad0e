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


class FilterModule:
    def filters(self):
        return {"failure_text": failure_text}
