"""Kill a lifecycle playbook the way production loses a control node, and check what the next run
leaves: the kill-point harness of tests/integration/test_cutover_crash.py.

A playbook runs in its own process group with the test-only callback ``dualboot_kill``
(tests/harness/callbacks), which SIGKILLs the whole group at the chosen task. The recovery then runs
from a fresh control node: a new ANSIBLE_HOME and working directory, nothing but the inventory, the
variables and the boot records on the hosts. A writer plays the applications meanwhile: it writes
through whatever each host's configuration points at, and remembers every write acknowledged.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg

from .ansible import ansible_env
from .paths import ROOT

CALLBACKS = Path(__file__).parent / "callbacks"
EPOCH = datetime.datetime(2000, 1, 1)


def run_killed(playbook: str, inventory: Path, variables: dict, kill: dict, timeout: float = 900) -> tuple[int, str, list[str]]:
    """Run ``playbook`` with a kill point: the environment of the ``dualboot_kill`` callback, e.g.
    ``{"DUALBOOT_KILL_AFTER": ...}``, ``{"DUALBOOT_KILL_AT_TASK": "N"}`` or ``{"DUALBOOT_KILL_BEFORE": ..., "DUALBOOT_KILL_DELAY": "1.5"}``.

    Returns (returncode, output, the task log: one line per task start, then KILLED and where).
    An empty ``kill`` runs the playbook to its end and lists its tasks (``list_tasks`` says which changed something).
    """
    rc, out, lines = _run_logged(playbook, inventory, variables, kill, timeout)
    return rc, out, [line for line in lines if not line.startswith("CHANGED\t")]


def list_tasks(playbook: str, inventory: Path, variables: dict, timeout: float = 900) -> tuple[int, str, list[str], set[int]]:
    """Run ``playbook`` to its end: (returncode, output, its task starts, the numbers of the tasks that changed
    something or failed on any host). A kill right after a task that changed nothing finds what a kill right
    before it finds: the state outside the control node is the same."""
    rc, out, lines = _run_logged(playbook, inventory, variables, {}, timeout)
    changed = {int(line.split("\t")[1]) for line in lines if line.startswith("CHANGED\t")}
    return rc, out, [line for line in lines if not line.startswith("CHANGED\t")], changed


def _run_logged(playbook: str, inventory: Path, variables: dict, kill: dict, timeout: float) -> tuple[int, str, list[str]]:
    work = Path(tempfile.mkdtemp(prefix="dualboot-kill-"))
    os.chmod(work, 0o700)
    vf = work / "vars.json"
    vf.write_text(json.dumps(variables))
    os.chmod(vf, 0o600)
    log = work / "tasks.log"
    env = {
        **ansible_env(work),
        "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACKS),
        "ANSIBLE_CALLBACKS_ENABLED": "dualboot_kill",
        "DUALBOOT_KILL_LOG": str(log),
        **kill,
    }
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory), playbook, "-e", f"@{vf}"]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, cwd=work, timeout=timeout, start_new_session=True)
    lines = log.read_text().splitlines() if log.exists() else []
    return proc.returncode, proc.stdout + proc.stderr, lines


def kill_in_task(playbook: str, inventory: Path, variables: dict, task: str, delay: float = 0.0) -> str:
    """Run ``playbook`` and kill it ``delay`` seconds after the first task whose name contains ``task``
    starts (at its start with no delay). Returns the output; fails when the run ended before the kill."""
    rc, out, log = run_killed(playbook, inventory, variables, {"DUALBOOT_KILL_BEFORE": task, "DUALBOOT_KILL_DELAY": str(delay)})
    assert log and log[-1].startswith("KILLED"), f"{playbook} ended (rc {rc}) before the kill {task!r} +{delay} s:\n" + out[-3000:]
    return out


def run_fresh(playbook: str, inventory: Path, variables: dict, timeout: float = 900) -> tuple[int, str]:
    """Run ``playbook`` from a fresh control node: new ANSIBLE_HOME, new working directory."""
    work = Path(tempfile.mkdtemp(prefix="dualboot-fresh-"))
    os.chmod(work, 0o700)
    vf = work / "vars.json"
    vf.write_text(json.dumps(variables))
    os.chmod(vf, 0o600)
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory), playbook, "-e", f"@{vf}"]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=ansible_env(work), cwd=work, timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


def config_url(env_file: Path) -> str:
    return re.search(r"^DATABASE_URL=(.*)$", env_file.read_text(), re.M).group(1)


class Writer(threading.Thread):
    """The applications: writes one row at a time through each host's configuration in turn.

    A row is identified by its creation_date (a column both schemas keep); ``acked`` holds every
    row whose COMMIT returned, with the URL it went to.
    """

    def __init__(self, env_files: list[Path]) -> None:
        super().__init__(daemon=True)
        self.env_files = env_files
        self.acked: list[tuple[datetime.datetime, str]] = []
        self.failed = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        n = 0
        while not self._stop_event.is_set():
            n += 1
            url = config_url(self.env_files[n % len(self.env_files)])
            stamp = EPOCH + datetime.timedelta(seconds=n)
            try:
                with psycopg.connect(url, connect_timeout=3, autocommit=True) as conn:
                    conn.execute("INSERT INTO users (creation_date) VALUES (%s)", (stamp,))
                self.acked.append((stamp, url))
            except psycopg.Error:
                self.failed += 1
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(30)


def lost_writes(writer: Writer, db) -> list[datetime.datetime]:
    """Acknowledged writes that are not in ``db`` (the default entry at the end)."""
    present = {row[0] for row in db.query("SELECT creation_date FROM users WHERE creation_date < '2001-01-01'")}
    return [stamp for stamp, _url in writer.acked if stamp not in present]


__all__ = ["ROOT", "Writer", "config_url", "kill_in_task", "lost_writes", "run_fresh", "run_killed"]
