# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of the long-running modules: run the module in the background, look soon, then less often.

Ansible's own ``async``/``poll`` sleeps a whole ``poll`` interval before its first look, so a copy of a
small database that takes one second held the step (and, inside a cutover's frozen window, the writes)
for the whole interval: 15 s by default, twice per stage. Here the first looks come after 0.25, 0.5, 1, 2,
4 ... seconds, up to the interval; a line names the step every ``dualboot_progress_interval`` seconds
while it runs, and the step fails after ``dualboot_step_timeout``.

Used by the roles, which define ``dualboot_progress_interval``. A task that sets ``async`` itself, a
check-mode run, a play without that variable and a connection that cannot start background jobs run the
module the usual way.
"""

from __future__ import annotations

import time

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()

FIRST_LOOK = 0.25  # seconds; each later look waits twice as long, up to the progress interval
ASYNC_KEYS = ("ansible_job_id", "started", "finished", "results_file", "erased")


def _seconds(value: object, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


class BackgroundModuleAction(ActionBase):
    """Run this action's module as a background job polled with growing intervals (see the module doc)."""

    _supports_async = True
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        interval = self._setting(task_vars, "dualboot_progress_interval", None)
        if self._task.async_val or self._task.check_mode or interval is None or self._connection.always_pipeline_modules:
            result.update(self._execute_module(task_vars=task_vars))
            return result
        timeout = self._setting(task_vars, "dualboot_step_timeout", 86400.0)
        result.update(self._wait(self._start(task_vars, timeout), task_vars, max(interval, FIRST_LOOK), timeout))
        return result

    def _setting(self, task_vars: dict, name: str, default: float | None) -> float | None:
        if name not in task_vars:
            return default
        return _seconds(self._templar.template(task_vars[name]), default if default is not None else 15.0)

    def _start(self, task_vars: dict, timeout: float) -> dict:
        saved = self._task.async_val
        self._task.async_val = max(int(timeout), 1)  # the background wrapper kills the module after this
        try:
            started = self._execute_module(task_vars=task_vars, wrap_async=True)
        finally:
            self._task.async_val = saved
        if started.get("failed") or not started.get("ansible_job_id"):
            raise AnsibleActionFail(f"could not start {self._task.action} in the background: {started.get('msg', started)}")
        return started

    def _wait(self, started: dict, task_vars: dict, interval: float, timeout: float) -> dict:
        status_args = {
            "jid": started["ansible_job_id"],
            "_async_dir": self._remote_expand_user(self.get_shell_option("async_dir", default="~/.ansible_async")),
        }
        began, pause, report_at = time.monotonic(), FIRST_LOOK, interval
        while True:
            time.sleep(pause)
            pause = min(pause * 2, interval)
            status = self._execute_module(module_name="ansible.legacy.async_status", module_args=status_args, task_vars=task_vars)
            elapsed = time.monotonic() - began
            # The background wrapper stops the module at the timeout and records "Timeout exceeded".
            timed_out = status.get("msg") == "Timeout exceeded" or elapsed >= timeout + 60
            if timed_out:
                raise AnsibleActionFail(
                    f"{self._task.get_name()} did not finish within dualboot_step_timeout ({int(timeout)} s) and was stopped;"
                    " raise dualboot_step_timeout if the step needs longer."
                )
            if status.get("finished"):  # also when its status file is gone ("could not find job", failed)
                break
            if elapsed >= report_at:
                display.display(f"{task_vars.get('inventory_hostname', '')}: {self._task.get_name()} still running after {int(elapsed)} s")
                report_at += interval
        self._execute_module(module_name="ansible.legacy.async_status", module_args={**status_args, "mode": "cleanup"}, task_vars=task_vars)
        return {k: v for k, v in status.items() if k not in ASYNC_KEYS}
