"""`make demo`: the dual-boot lifecycle on this machine, without containers.

Starts two local PostgreSQL 15 clusters (boot entries blue and green of the deployment "shop") and a
FerretDB server (entries of the deployment "profiles"), loads sample data, starts the demo
application, and runs the collection's own playbooks for the reference changes R1, R2 (PostgreSQL)
and R4 (MongoDB): stage, verify, cutover. It prints the verify report and the boot record, then rolls
R2 back. Everything lives under .cache/demo and is stopped at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from harness.ansible import ansible_env  # noqa: E402
from harness.ferretdb import FerretServer  # noqa: E402
from harness.net import free_port, wait_for_port  # noqa: E402
from harness.paths import ensure_collection_path  # noqa: E402
from harness.pg import PgCluster  # noqa: E402

WORK = ROOT / ".cache" / "demo"
PYTHON = sys.executable
USERS = 5000
# FerretDB on SQLite applies an update_many document by document (~20 ms each here): fewer documents keep the demo short.
MONGO_USERS = 1000
BOLD, DIM, RESET = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "", "")


def say(text: str) -> None:
    print(f"\n{BOLD}== {text}{RESET}", flush=True)


def detail(text: str) -> None:
    print(f"   {text}", flush=True)


def private(path: Path, content: str) -> Path:
    path.write_text(content)
    os.chmod(path, 0o600)
    return path


def app_get(port: int, path: str) -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:  # noqa: S310 - loopback only
            return json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())


class App:
    """The demo application (demo/app.py) reading DATABASE_URL from its dotenv file."""

    def __init__(self, name: str, url: str) -> None:
        self.env_file = private(WORK / f"{name}.env", f"DATABASE_URL={url}\n")
        self.port = free_port()
        self.log = open(WORK / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [PYTHON, str(ROOT / "demo" / "app.py"), "--env-file", str(self.env_file), "--port", str(self.port), "--bind", "127.0.0.1"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, alive=lambda: self.proc.poll() is None)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.log.close()


def run_playbook(name: str, variables: dict) -> bool:
    """Run dualboot.db.<name> with the deployment's variables; print what the roles report."""
    vars_file = private(WORK / "vars.json", json.dumps(variables))
    env = ansible_env(WORK)
    env.update(ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_HOME=str(WORK / "ansible-home"))
    started = time.monotonic()
    proc = subprocess.run(
        [str(Path(PYTHON).parent / "ansible-playbook"), "-i", str(WORK / "inventory.ini"), f"dualboot.db.{name}", "-e", f"@{vars_file}"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=WORK,
    )
    (WORK / f"ansible-{variables['dualboot_name']}-{name}.log").write_text(proc.stdout + proc.stderr)
    try:
        report = json.loads(proc.stdout[proc.stdout.index("{") :])
    except ValueError:
        detail(f"ansible-playbook printed no result (rc={proc.returncode}):\n{proc.stderr[-3000:]}")
        return False
    shown = ("summary", "verdict", "report of", "nothing", "already")
    for play in report["plays"]:
        for task in play["tasks"]:
            for result in task["hosts"].values():
                title = task["task"]["name"]
                msg = result.get("msg")
                if result.get("failed") and not result.get("ignore_errors", False) and title != "Verify verdict":
                    lines = msg if isinstance(msg, list) else [msg]
                    for line in lines:
                        detail(f"FAILED ({title}): {line}")
                elif msg and msg != "All items completed" and (any(word in title.lower() for word in shown) or title == "Verify verdict"):
                    for line in msg if isinstance(msg, list) else [msg]:
                        detail(str(line))
    detail(f"{DIM}({name}: {time.monotonic() - started:.1f} s, full log in {WORK.relative_to(ROOT)}/ansible-*.log){RESET}")
    return proc.returncode == 0


def change(name: str) -> dict:
    """The variables of a reference change (demo/changes/<name>/dualboot.yml), shared with the molecule scenarios."""
    import yaml

    with open(ROOT / "demo" / "changes" / name / "dualboot.yml") as f:
        return {**yaml.safe_load(f), "dualboot_demo_dir": str(ROOT / "demo")}


def deployment(name: str, engine: str, entries: dict, app: App, template: str, **extra) -> dict:
    return {
        "dualboot_name": name,
        "dualboot_engine": engine,
        "dualboot_entries": entries,
        "dualboot_record_dir": str(WORK / "records"),
        "dualboot_report_dir": str(WORK / "reports"),
        "dualboot_work_dir": str(WORK / "work"),
        "dualboot_switch_targets": [{"format": "dotenv", "path": str(app.env_file), "key": "DATABASE_URL", "template": template}],
        "dualboot_app_reload": {"command": ["kill", "-HUP", str(app.proc.pid)]},
        "dualboot_health_checks": [{"name": "application /health", "url": f"http://127.0.0.1:{app.port}/health", "retries": 10}],
        **extra,
    }


def main() -> int:
    ensure_collection_path()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    os.chmod(WORK, 0o700)
    for sub in ("records", "reports", "work"):
        (WORK / sub).mkdir(mode=0o700)
    private(
        WORK / "inventory.ini",
        f"[dualboot_db]\nlocalhost\n\n[dualboot_app]\nlocalhost\n\n[all:vars]\nansible_connection=local\nansible_python_interpreter={PYTHON}\n",
    )
    started = time.monotonic()
    servers, apps = [], []
    try:
        say("Starting two PostgreSQL 15 clusters (entries blue and green) and FerretDB")
        blue, green = PgCluster(name="demo-blue").start(), PgCluster(name="demo-green").start()
        servers += [blue, green]
        mongo = FerretServer().start()
        servers.append(mongo)
        detail(f"blue: 127.0.0.1:{blue.port}   green: 127.0.0.1:{green.port}   FerretDB: 127.0.0.1:{mongo.port}")

        say(f"Loading sample data: {USERS} users in PostgreSQL database shop, {MONGO_USERS} in MongoDB database profiles_blue")
        shop = blue.create_database("shop")
        shop.execute(
            "CREATE TABLE users (user_id serial PRIMARY KEY, user_name varchar(255), creation_date timestamp);"
            "INSERT INTO users (user_name, creation_date)"
            f" SELECT 'user ' || g, now() - g * interval '1 hour' FROM generate_series(1, {USERS}) g"
        )
        client = mongo.client()
        client.profiles_blue.users.insert_many([{"_id": i, "userName": f"user {i}"} for i in range(1, MONGO_USERS + 1)])
        client.close()

        say("Starting the demo application (reads DATABASE_URL from a dotenv file, reloads on SIGHUP)")
        shop_app = App("shop-app", shop.uri)
        profiles_app = App("profiles-app", f"{mongo.uri}profiles_blue")
        apps += [shop_app, profiles_app]
        detail(f"shop app on :{shop_app.port} -> {app_get(shop_app.port, '/users')}")
        detail(f"profiles app on :{profiles_app.port} -> {app_get(profiles_app.port, '/users')}")

        pg_entries = {
            "blue": {**blue.login_params(), "login_db": "shop"},
            "green": {**green.login_params(), "login_db": "shop"},
        }
        pg_template = "postgresql://{login_user}:{password!u}@{login_host}:{login_port}/{login_db}"
        r1 = deployment("shop", "postgresql", pg_entries, shop_app, pg_template, **change("r1"))
        r2 = {**r1, **change("r2")}
        r4 = deployment(
            "profiles",
            "mongodb",
            {
                "blue": {"login_uri": mongo.uri, "database": "profiles_blue"},
                "green": {"login_uri": mongo.uri, "database": "profiles_green"},
            },
            profiles_app,
            "{login_uri}{database}",
            **change("r4"),
        )

        ok = True
        for title, variables, app in (
            ("R1: rename users.user_name to full_name (text)", r1, shop_app),
            ("R2: move profile data into user_profiles (after R1)", r2, shop_app),
            ("R4 (MongoDB): nest userName as user.name", r4, profiles_app),
        ):
            for step in ("stage", "verify", "cutover"):
                say(f"{title} — {step}")
                if not run_playbook(step, variables):
                    ok = False
                    break
            detail(f"application now answers: {app_get(app.port, '/users')}")
            if not ok:
                break

        reports = sorted((WORK / "reports").glob("shop-*-verify.md"), key=lambda p: p.stat().st_mtime)
        if reports:
            say(f"The verify report of R2 ({reports[-1].relative_to(ROOT)})")
            print(reports[-1].read_text())
        say(f"The boot record of shop ({(WORK / 'records' / 'shop.json').relative_to(ROOT)})")
        record = json.loads((WORK / "records" / "shop.json").read_text())
        for key in ("default", "fallback", "staged"):
            detail(f"{key}: {record.get(key)}")
        for h in record.get("history", []):
            detail(f"{h['at']}  {h['action']:<8} {h['from']} -> {h['to']}  run {h['run_id']}  by {h['by']}")
        assert "password" not in json.dumps(record), "a boot record must never hold a secret"

        if ok:
            say("Rolling R2 back: every host boots into the fallback again")
            ok = run_playbook("rollback", r2)
            detail(f"application now answers: {app_get(shop_app.port, '/users')}")

        say(f"Demo {'finished' if ok else 'FAILED'} in {time.monotonic() - started:.0f} s")
        detail(f"logs, reports and boot records: {WORK.relative_to(ROOT)}/")
        return 0 if ok else 1
    finally:
        for app in apps:
            app.stop()
        for server in servers:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
