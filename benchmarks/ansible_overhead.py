"""Ansible's own overhead in a lifecycle step, and what the levers an operator can set change (issue 18, item 4).

Two local PostgreSQL 15 clusters like the test harness (tests/harness/pg.py): ``blue`` (300 users) on the
first, ``green`` on the second; two application hosts (``ansible_connection: local``), the demo change r1
(copy). For each configuration the whole lifecycle runs: stage, verify, cutover, rollback, each with a
callback plugin that records every task's wall time and action. Reported per configuration and step:

- wall: ansible-playbook from start to end;
- tasks run (skipped ones not counted) and how many of them are the collection's modules;
- module tasks: the wall time of the tasks of the collection's modules (``dualboot.db.*``: the database
  work, the boot records, the configuration switch), each including Ansible's cost of running a module;
- modules' own work (estimate): module tasks minus, per run of a module (a loop runs it once per
  item), what a task of ``ansible.builtin.ping`` costs the same way (measured in the same run);
- the rest: wall minus module tasks (start-up, inventory, includes, set_fact/assert/debug, templating).

Configurations (the same run, one after another): the defaults of tests/harness/ansible.py (explicit
interpreter, no fact gathering: the playbooks set ``gather_facts: false``) and ``ANSIBLE_PIPELINING=1``.
``--configs discovery`` adds interpreter discovery (``auto_silent``, the inventory's interpreter dropped); it
needs a discovered Python that has psycopg (not so on the machine of benchmarks/README.md: discovery
found a pyenv shim of a Python that is not installed).

    .venv/bin/python benchmarks/ansible_overhead.py [--configs default,pipelining]

Prints a Markdown table and writes benchmarks/results/ansible_overhead.{json,md}. Ratios only; not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import save, two_clusters

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("stage", "verify", "cutover", "rollback")
CONFIGS = {
    "default": {},
    "pipelining": {"ANSIBLE_PIPELINING": "1"},
    "discovery": {"ANSIBLE_PYTHON_INTERPRETER": "auto_silent"},
}

CALLBACK = """
import json, os, time
from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_times"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.started, self.rows = {}, []

    def v2_runner_on_start(self, host, task):
        self.started[(host.get_name(), task._uuid)] = [time.monotonic(), 0]

    @staticmethod
    def _key(result):
        task, host = getattr(result, "task", None) or result._task, getattr(result, "host", None) or result._host
        return task, (host.get_name(), task._uuid)

    def _item(self, result):
        task, key = self._key(result)
        if key in self.started:
            self.started[key][1] += 1

    v2_runner_item_on_ok = v2_runner_item_on_failed = v2_runner_item_on_skipped = _item

    def _end(self, result, status):
        task, key = self._key(result)
        began = self.started.pop(key, None)
        if began is not None:
            self.rows.append({"action": task.action, "name": task.get_name(), "status": status,
                              "seconds": time.monotonic() - began[0], "runs": max(began[1], 1)})

    def v2_runner_on_ok(self, result):
        self._end(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._end(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._end(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._end(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        with open(os.environ["DUALBOOT_TASK_TIMES"], "w") as f:
            json.dump(self.rows, f)
"""

PING_PLAY = """- name: The cost of one module task
  hosts: dualboot_app[0]
  gather_facts: false
  tasks:
    - name: Ping the database host, ten times
      ansible.builtin.ping:
      delegate_to: db1
      loop: "{{ range(10) | list }}"
    - name: Ping once more
      ansible.builtin.ping:
      delegate_to: db1
"""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(target: str, inventory: Path, variables: dict, extra_env: dict, work: Path) -> tuple[float, list[dict], str]:
    """ansible-playbook ``target``: (wall seconds, task rows of the callback, output); fails on a failed run."""
    from harness.ansible import ansible_env

    vf = work / "vars.json"
    vf.write_text(json.dumps(variables))
    os.chmod(vf, 0o600)
    times = work / "times.json"
    env = ansible_env(work)
    env.update({"ANSIBLE_CALLBACK_PLUGINS": str(work / "callbacks"), "ANSIBLE_CALLBACKS_ENABLED": "task_times",
                "DUALBOOT_TASK_TIMES": str(times)})  # fmt: skip
    env.update(extra_env)  # discovery: deployment() also drops the inventory's explicit interpreter
    cmd = [str(ROOT / ".venv/bin/ansible-playbook"), "-i", str(inventory), target, "-e", f"@{vf}"]
    began = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False, timeout=1800)
    wall = time.monotonic() - began
    if proc.returncode:
        raise SystemExit(f"{target} failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
    return wall, json.loads(times.read_text()), proc.stdout


def deployment(work: Path, pg, pg2, discovery: bool) -> tuple[Path, dict, object]:
    import yaml
    from harness.ansible import local_deployment

    blue = pg.create_database()
    blue.execute(
        "CREATE TABLE users (user_id serial PRIMARY KEY, user_name varchar(255), creation_date timestamp);"
        "INSERT INTO users (user_name, creation_date) SELECT 'user ' || g, now() FROM generate_series(1, 300) g"
    )
    targets = {}
    for name in ("app1", "app2"):
        env = work / f"{name}.env"
        env.write_text(f"DATABASE_URL={blue.uri}\n")
        os.chmod(env, 0o600)
        tpl = "postgresql://{login_user}:{password!u}@{login_host}:{login_port}/{login_db}"
        targets[name] = [{"format": "dotenv", "path": str(env), "key": "DATABASE_URL", "template": tpl}]
    entries = {"blue": {**pg.login_params(), "login_db": blue.name}, "green": {**pg2.login_params(), "login_db": f"g_{blue.name}"}}
    inventory, variables = local_deployment(work, targets, entries, "r1")
    if discovery:
        inv = yaml.safe_load(inventory.read_text())
        inv["all"]["vars"].pop("ansible_python_interpreter", None)
        inventory.write_text(yaml.safe_dump(inv))
    return inventory, variables, blue


def summarize(step: str, wall: float, rows: list[dict], ping: float) -> dict:
    ran = [r for r in rows if r["status"] != "skipped"]
    mods = [r for r in ran if r["action"].startswith("dualboot.db.")]
    module_s = sum(r["seconds"] for r in mods)
    return {
        "step": step,
        "wall_s": round(wall, 2),
        "tasks_run": len(ran),
        "module_tasks": len(mods),
        "module_tasks_s": round(module_s, 2),
        "module_runs": sum(r["runs"] for r in mods),
        "modules_own_work_s": round(max(module_s - sum(r["runs"] for r in mods) * ping, 0.0), 2),
        "rest_s": round(wall - module_s, 2),
        "slowest_module_tasks": sorted(({"name": r["name"], "s": round(r["seconds"], 2)} for r in mods), key=lambda x: -x["s"])[:3],
    }


def one_config(name: str, pg, pg2) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"dualboot-overhead-{name}-"))
    os.chmod(work, 0o700)
    (work / "callbacks").mkdir()
    (work / "callbacks" / "task_times.py").write_text(CALLBACK)
    inventory, variables, blue = deployment(work, pg, pg2, discovery=name == "discovery")
    try:
        (work / "ping.yml").write_text(PING_PLAY)
        _wall, rows, _out = run(str(work / "ping.yml"), inventory, {}, CONFIGS[name], work)
        per_item = [r["seconds"] for r in rows if r["name"] == "Ping once more"]
        ping = per_item[0] if per_item else 0.0
        steps = []
        for step in STEPS:
            wall, rows, _out = run(f"dualboot.db.{step}", inventory, variables, CONFIGS[name], work)
            steps.append(summarize(step, wall, rows, ping))
            log(f"{name}: {steps[-1]}")
        return {"config": name, "env": CONFIGS[name], "ping_task_s": round(ping, 3), "steps": steps}
    finally:
        pg.drop_database(blue.name)
        pg2.drop_database(f"g_{blue.name}")
        shutil.rmtree(work, ignore_errors=True)


def table(runs: list[dict]) -> str:
    base = {s["step"]: s for s in runs[0]["steps"]}
    lines = [
        "| Configuration | Step | Wall | vs default | Tasks run (module tasks, runs) | Module tasks | Modules' own work (est.) "
        "| The rest |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in runs:
        for s in r["steps"]:
            ratio = f"{s['wall_s'] / base[s['step']]['wall_s']:.2f}×"
            lines.append(
                f"| {r['config']} (ping task {r['ping_task_s']} s) | {s['step']} | {s['wall_s']} s | {ratio} | {s['tasks_run']}"
                f" ({s['module_tasks']}, {s['module_runs']} runs) | {s['module_tasks_s']} s | {s['modules_own_work_s']} s"
                f" | {s['rest_s']} s |"
            )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("--configs", default="default,pipelining", help="comma separated: " + ", ".join(CONFIGS))
    opts = ap.parse_args()
    load_before = os.getloadavg()
    with two_clusters("overhead") as (a, b):
        runs = [one_config(name, a, b) for name in opts.configs.split(",")]
    save("ansible_overhead", runs, table(runs), load_before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
