# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """Attributes of the long-running modules whose action plugin runs them in the background (plugin_utils/background.py)."""

    DOCUMENTATION = r"""
attributes:
  action:
    description: Indicates this has a corresponding action plugin so some parts of the options can be executed on the controller.
    support: full
    details:
      - >-
        When the play defines C(dualboot_progress_interval) (the roles do), the module runs as a background job on its
        host, looked at after 0.25, 0.5, 1, 2 ... seconds up to that interval, so the task ends within moments of the
        work. While it runs, a line naming the host and the task and how long it has run is printed every
        C(dualboot_progress_interval) seconds; the job is stopped after C(dualboot_step_timeout) seconds (a day by default).
      - >-
        A task that sets C(async) itself, a check-mode run, and a play without C(dualboot_progress_interval) run the
        module the usual way.
  async:
    description: Supports being used with the C(async) keyword.
    support: full
    details: Ansible's own C(async)/C(poll) works as well; it sleeps a whole C(poll) interval before its first look.
"""
