# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test-only callback: SIGKILL ansible-playbook and its whole process group at a chosen point, the way
production loses a control node. Enabled by the kill-point tests (tests/harness/killpoints.py):

- DUALBOOT_KILL_AT_TASK=N kills when the N-th task starts (right after task N-1 finished);
- DUALBOOT_KILL_BEFORE="<name part>" kills when the first task whose name contains it starts, or with
  DUALBOOT_KILL_DELAY=<seconds> that long after it started (a kill inside the task, where it is then);
- DUALBOOT_KILL_AFTER="<name part>[#k]" kills right after the k-th result (default the first) of a
  task whose name contains <name part>: loop items count one by one (#1 of a loop over two hosts
  is "after the first host", but the worker may have finished the next item by the time the kill
  lands: use it where that does not matter), then the task's own result;
- DUALBOOT_KILL_LOG=<file> appends every task start as "<n>\t<task name>" (to list the kill points),
  and "CHANGED\t<n>" once for a task that changed something or failed on any host (a kill right after a
  task that changed nothing finds what a kill right before it finds).

The playbook must run in its own process group (start_new_session): the whole group is killed, and
first every descendant of ansible-playbook wherever it went (Ansible's local connection starts
modules in sessions of their own): a module running at the kill dies with its control node.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: dualboot_kill
type: aggregate
short_description: Test only - SIGKILL ansible-playbook at a chosen task
description: Kills ansible-playbook's process group at a task start or after a named task (see the module docstring).
"""

import os  # noqa: E402
import signal  # noqa: E402
import threading  # noqa: E402

from ansible.plugins.callback import CallbackBase  # noqa: E402


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "dualboot_kill"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.started = 0
        self.at_task = int(os.environ.get("DUALBOOT_KILL_AT_TASK") or 0)
        self.before = os.environ.get("DUALBOOT_KILL_BEFORE") or ""
        self.delay = float(os.environ.get("DUALBOOT_KILL_DELAY") or 0)
        after = os.environ.get("DUALBOOT_KILL_AFTER") or ""
        self.after, _sep, nth = after.partition("#")
        self.after_nth = int(nth or 1)
        self.after_seen = 0
        self.log = os.environ.get("DUALBOOT_KILL_LOG")
        self.changed_noted = 0

    def _kill(self, why: str) -> None:
        if self.log:
            with open(self.log, "a", encoding="utf-8") as f:
                f.write(f"KILLED\t{why}\n")
        for _sweep in range(2):  # a second sweep catches a child forked while the first one ran
            for pid in _descendants(os.getpid()):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        os.killpg(os.getpgrp(), signal.SIGKILL)

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.started += 1
        if self.log:
            with open(self.log, "a", encoding="utf-8") as f:
                f.write(f"{self.started}\t{task.get_name()}\n")
        if self.at_task and self.started == self.at_task:
            self._kill(f"at the start of task {self.started}: {task.get_name()}")
        if self.before and self.before in task.get_name():
            self.before = ""  # the first such task only
            why = f"{self.delay:g} s into task {self.started}: {task.get_name()}"
            if self.delay:
                threading.Timer(self.delay, self._kill, (why,)).start()
            else:
                self._kill(f"at the start of task {self.started}: {task.get_name()}")

    def _note_change(self, result, failed: bool = False) -> None:
        if self.log and self.changed_noted != self.started and (failed or result._result.get("changed")):
            self.changed_noted = self.started
            with open(self.log, "a", encoding="utf-8") as f:
                f.write(f"CHANGED\t{self.started}\n")

    def _finished(self, result, failed: bool = False) -> None:
        self._note_change(result, failed)
        if not self.after or self.after not in result._task.get_name():
            return
        self.after_seen += 1
        if self.after_seen == self.after_nth:
            self._kill(f"after {result._task.get_name()}")

    def v2_runner_on_ok(self, result):
        self._finished(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._finished(result, failed=True)

    def v2_runner_item_on_ok(self, result):
        self._finished(result)

    def v2_runner_item_on_failed(self, result):
        self._note_change(result, failed=True)

    def v2_runner_on_unreachable(self, result):
        self._note_change(result, failed=True)


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid``, from /proc (whatever session or group it moved to)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out
