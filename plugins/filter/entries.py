# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters the lifecycle roles use to check boot entries on the control node, before any boot record
is written (the same checks as the boot_record module's, from module_utils/boot_record.py)."""

from __future__ import annotations

from ansible_collections.dualboot.db.plugins.module_utils.boot_record import entry_problems, name_problems, public_entries


def _entry_problems(entries, engine):
    return entry_problems(engine, entries)


def _public_entries(entries, engine):
    return public_entries(engine, entries)


class FilterModule:
    def filters(self):
        return {"entry_problems": _entry_problems, "name_problems": name_problems, "public_entries": _public_entries}
