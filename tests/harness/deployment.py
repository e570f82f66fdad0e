"""The deployment the lifecycle tests drive: 'shop', two application "hosts" (inventory names on this
machine, each with its own dotenv file and boot record), the default entry blue on ``pg`` with 300
users, green on ``pg2``. Shared by tests/integration/test_lifecycle_roles.py and
tests/integration/test_cutover_crash.py."""

from __future__ import annotations

import copy
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from .ansible import local_deployment, run_playbook

TEMPLATE = "postgresql://{login_user}:{password!u}@{login_host}:{login_port}/{login_db}"
USERS = (
    "CREATE TABLE users (user_id serial PRIMARY KEY, user_name varchar(255), creation_date timestamp);"
    "INSERT INTO users (user_name, creation_date) SELECT 'user ' || g, now() FROM generate_series(1, 300) g"
)


@contextmanager
def two_hosts(workdir: Path, pg, pg2, change: str = "r1"):
    """Yield the deployment (a dict: inventory, vars, hosts -> dotenv file, blue, green, dir) for the demo
    ``change`` (r1: copy; r3: sync); drop both databases afterwards, with whatever streams a test left."""
    blue = pg.create_database()
    green_name = f"g_{blue.name}"
    blue.execute(USERS)
    os.chmod(workdir, 0o700)
    hosts = {}
    for name in ("app1", "app2"):
        env = workdir / f"{name}.env"
        env.write_text(f"DATABASE_URL={blue.uri}\nOTHER=kept\n")
        os.chmod(env, 0o600)
        hosts[name] = env
    targets = {name: [{"format": "dotenv", "path": str(env), "key": "DATABASE_URL", "template": TEMPLATE}] for name, env in hosts.items()}
    entries = {"blue": {**pg.login_params(), "login_db": blue.name}, "green": {**pg2.login_params(), "login_db": green_name}}
    inventory, variables = local_deployment(workdir, targets, entries, change)
    try:
        yield {"inventory": inventory, "vars": variables, "hosts": hosts, "blue": blue, "green": pg2.db(green_name), "dir": workdir}
    finally:
        pg.drop_database(blue.name)  # the subscription of a stream back, the slot of a stream forward
        pg2.drop_database(green_name)


def stage_and_verify(d: dict) -> None:
    for step in ("stage", "verify"):
        proc = run_playbook(f"dualboot.db.{step}", d["vars"], inventory=str(d["inventory"]))
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]


@contextmanager
def snapshot(d: dict, pg, pg2):
    """Keep the deployment as it is now (both databases as templates, the boot records and the
    configuration files) and yield a function that puts it back and returns a fresh copy of ``d``:
    one staged and verified deployment serves every test of a worker instead of a stage + verify
    each. Only for copy-based deployments: a stream (a subscription) is not part of a template."""
    kept = {"records": d["dir"] / "records.kept", "configs": {h: env.read_text() for h, env in d["hosts"].items()}}
    shutil.copytree(d["dir"] / "records", kept["records"])
    pairs = [(pg, d["blue"].name), (pg2, d["green"].name)]
    for server, name in pairs:
        server.create_database(f"k_{name}", template=name)

    def restore() -> dict:
        for server, name in pairs:
            server.drop_database(name)
            server.create_database(name, template=f"k_{name}")
        shutil.rmtree(d["dir"] / "records")
        shutil.copytree(kept["records"], d["dir"] / "records")
        for host, env in d["hosts"].items():
            env.write_text(kept["configs"][host])
        return {**d, "vars": copy.deepcopy(d["vars"])}

    try:
        yield restore
    finally:
        for server, name in pairs:
            server.drop_database(f"k_{name}")


__all__ = ["TEMPLATE", "snapshot", "stage_and_verify", "two_hosts"]
