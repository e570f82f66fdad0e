"""Fleet cutover: the write-blocked window and the total time of a copy-based cutover with 1, 10 and 50
application hosts, switched in parallel (the hosts of a batch switch themselves at the same time, the
play running over every application host) against one after another from the coordinator
(``dualboot_cutover_parallel: false``, the code path before issue 14), in the same run.

Two local PostgreSQL 15 clusters like the test harness (tests/harness/pg.py): ``blue`` (a small
``users`` table) on the first, ``green`` on the second. Each application host is an inventory host
with ``ansible_connection: local``, its own dotenv file, boot record and reload command (it touches a
file of its own). Every host is in one batch (``dualboot_cutover_batch_size`` = host count), Ansible
runs with as many forks as hosts. Per run: stage and verify (not timed), then the cutover (drift policy
restage: the writer writes to blue after the copy, so the copy is redone inside the window) with a
writer running (tests/harness/killpoints.Writer: one row at a time through each host's
configuration in turn). Reported per host count and mode:

- the write-blocked window the cutover reports (freeze to the last host's health check) and its parts;
- the longest gap between two acknowledged writes the writer saw;
- the cutover's total wall time (ansible-playbook start to end);
- acknowledged writes lost (acknowledged rows missing from green afterwards): must be 0;
- the floor of any task over the same hosts: the best of two ``ansible -m ansible.builtin.ping`` runs over
  the application hosts with as many forks (on one machine every host's module runs on its cores).

Prints a Markdown table and writes benchmarks/results/fleet_cutover.{json,md}. Ratios only; not a test.

    .venv/bin/python benchmarks/fleet_cutover.py [--hosts 1,10,50] [--modes parallel,sequential]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import save, two_clusters

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = "postgresql://{login_user}:{password!u}@{login_host}:{login_port}/{login_db}"
WINDOW = re.compile(r"writes were blocked for ([\d.]+) s: (.*?); seconds per host", re.S)
PART = re.compile(r"(freeze|thaw|drift|restage copy|switch of every host|reload|health checks) ([\d.]+) s")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


FLEET_PLAY = """- name: Cutover, every host of a batch at once
  hosts: dualboot_app
  gather_facts: false
  roles:
    - role: dualboot.db.cutover
"""


def playbook(name: str, inventory: Path, variables: dict, forks: int) -> tuple[int, str, float]:
    from harness.ansible import ansible_env

    work = Path(tempfile.mkdtemp(prefix="dualboot-fleet-"))
    os.chmod(work, 0o700)
    vf = work / "vars.json"
    vf.write_text(json.dumps(variables))
    os.chmod(vf, 0o600)
    target = f"dualboot.db.{name}"
    if name == "cutover":  # a play over every application host (docs/lifecycle.md, cutover-fleet.yml)
        target = str(work / "cutover-fleet.yml")
        Path(target).write_text(FLEET_PLAY)
    cmd = [str(ROOT / ".venv/bin/ansible-playbook"), "-i", str(inventory), target, "-e", f"@{vf}", "-f", str(forks)]
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ansible_env(work), cwd=ROOT, check=False, timeout=3600)
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - started


def ping_floor(inventory: Path, hosts: int) -> float:
    """Wall seconds of one do-nothing task over the application hosts, best of two."""
    work = Path(tempfile.mkdtemp(prefix="dualboot-fleet-ping-"))
    cmd = [str(ROOT / ".venv/bin/ansible"), "dualboot_app", "-i", str(inventory), "-f", str(hosts), "-m", "ansible.builtin.ping", "-o"]
    try:
        return round(min(_timed_ping(cmd, work, hosts), _timed_ping(cmd, work, hosts)), 2)
    finally:
        subprocess.run(["rm", "-rf", str(work)], check=False)


def _timed_ping(cmd: list[str], work: Path, hosts: int) -> float:
    from harness.ansible import ansible_env

    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ansible_env(work), cwd=ROOT, check=False, timeout=600)
    if proc.returncode:
        raise SystemExit(f"ping over {hosts} hosts failed:\n{(proc.stdout + proc.stderr)[-2000:]}")
    return time.monotonic() - started


class AckClock(list):
    """The harness writer's list of acknowledged writes, noting the wall time of each acknowledgement."""

    def __init__(self, times: list[float]) -> None:
        super().__init__()
        self.times = times

    def append(self, item) -> None:
        self.times.append(time.time())
        super().append(item)


def deployment(workdir: Path, hosts: int, blue, pg, pg2) -> tuple[Path, dict, dict]:
    import yaml
    from harness.ansible import local_deployment

    os.chmod(workdir, 0o700)
    envs, targets = {}, {}
    for i in range(1, hosts + 1):
        name = f"app{i:02d}"
        env = workdir / f"{name}.env"
        env.write_text(f"DATABASE_URL={blue.uri}\n")
        os.chmod(env, 0o600)
        envs[name] = env
        targets[name] = [{"format": "dotenv", "path": str(env), "key": "DATABASE_URL", "template": TEMPLATE}]
    green = f"g_{blue.name}"
    entries = {"blue": {**pg.login_params(), "login_db": blue.name}, "green": {**pg2.login_params(), "login_db": green}}
    inventory, variables = local_deployment(workdir, targets, entries, "r1")
    inv = yaml.safe_load(inventory.read_text())
    for name, host in inv["all"]["children"]["dualboot_app"]["hosts"].items():
        host["dualboot_app_reload"] = {"command": ["touch", str(workdir / f"{name}.reloaded")]}
    inventory.write_text(yaml.safe_dump(inv))
    variables.update({"dualboot_health_checks": [], "dualboot_cutover_batch_size": hosts, "dualboot_drift_policy": "restage"})
    return inventory, variables, envs


def one_run(hosts: int, mode: str, pg, pg2) -> dict:
    from harness.killpoints import Writer, lost_writes

    blue = pg.create_database()
    blue.execute(
        "CREATE TABLE users (user_id serial PRIMARY KEY, user_name varchar(255), creation_date timestamp);"
        "INSERT INTO users (user_name, creation_date) SELECT 'user ' || g, now() FROM generate_series(1, 300) g"
    )
    workdir = Path(tempfile.mkdtemp(prefix=f"fleet-{hosts}-{mode}-"))
    try:
        inventory, variables, envs = deployment(workdir, hosts, blue, pg, pg2)
        variables["dualboot_cutover_parallel"] = mode == "parallel"
        for step in ("stage", "verify"):
            rc, out, secs = playbook(step, inventory, variables, forks=hosts)
            if rc:
                raise SystemExit(f"{step} failed with {hosts} hosts:\n{out[-3000:]}")
            log(f"{hosts} hosts {mode}: {step} {secs:.0f} s")
        floor = ping_floor(inventory, hosts)
        acks: list[float] = []
        writer = Writer(list(envs.values()))
        writer.acked = AckClock(acks)
        writer.start()
        time.sleep(2)
        rc, out, total = playbook("cutover", inventory, variables, forks=hosts)
        time.sleep(2)
        writer.stop()
        if rc:
            raise SystemExit(f"cutover failed with {hosts} hosts ({mode}):\n{out[-4000:]}")
        m = WINDOW.search(out)
        parts = {k: float(v) for k, v in PART.findall(m.group(2))} if m else {}
        green = pg2.db(f"g_{blue.name}")
        lost = lost_writes(writer, green)
        gaps = [b - a for a, b in zip(acks, acks[1:])]
        result = {
            "hosts": hosts,
            "mode": mode,
            "window_s": float(m.group(1)) if m else None,
            "parts_s": parts,
            "longest_ack_gap_s": round(max(gaps), 2) if gaps else None,
            "total_s": round(total, 1),
            "acked": len(writer.acked),
            "failed_writes": writer.failed,
            "lost": len(lost),
            "ping_floor_s": floor,
        }
        log(f"{hosts} hosts {mode}: {result}")
        return result
    finally:
        pg.drop_database(blue.name)
        pg2.drop_database(f"g_{blue.name}")
        subprocess.run(["rm", "-rf", str(workdir)], check=False)


def table(runs: list[dict]) -> str:
    base = {r["hosts"]: r for r in runs if r["mode"] == "sequential"}
    one = {r["mode"]: r for r in runs if r["hosts"] == min(x["hosts"] for x in runs)}
    lines = [
        "| Hosts | Switching | Writes blocked (reported) | vs 1 host, same mode | vs one after another | Longest gap between acks | "
        "Window parts (s) | Cutover total | vs one after another | Acknowledged writes lost | A ping task over the hosts |",
        "| ---: | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in runs:
        seq = base.get(r["hosts"])
        ratio = f"{r['window_s'] / seq['window_s']:.2f}×" if seq and r["mode"] != "sequential" and seq["window_s"] else ""
        total = f"{r['total_s'] / seq['total_s']:.2f}×" if seq and r["mode"] != "sequential" else ""
        vs_one = f"{r['window_s'] / one[r['mode']]['window_s']:.2f}×" if r["mode"] in one and one[r["mode"]]["window_s"] else ""
        parts = ", ".join(f"{k} {v}" for k, v in r["parts_s"].items())
        lines.append(
            f"| {r['hosts']} | {'in parallel' if r['mode'] == 'parallel' else 'one after another'} | {r['window_s']} s | {vs_one} | "
            f"{ratio} | {r['longest_ack_gap_s']} s | {parts} | {r['total_s']} s | {total} | {r['lost']} of {r['acked']} | "
            f"{r.get('ping_floor_s', '')} s |"
        )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("--hosts", default="1,10,50", help="host counts, comma separated")
    ap.add_argument("--modes", default="parallel,sequential", help="parallel, sequential or both")
    opts = ap.parse_args()
    load_before = os.getloadavg()
    runs = []
    with two_clusters("fleet") as (a, b):
        for hosts in [int(h) for h in opts.hosts.split(",")]:
            for mode in opts.modes.split(","):
                runs.append(one_run(hosts, mode, a, b))
    save("fleet_cutover", runs, table(runs), load_before)
    return 1 if any(r["lost"] for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
