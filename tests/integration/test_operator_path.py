"""The operator's own path (issue 13): the lifecycle walked as an operator walks it, with nothing but
the documented variables — forward, back, forward again; every step first with --check; second
runs change nothing."""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time

import pytest
from harness.ansible import run_playbook
from harness.deployment import TEMPLATE

# deployment is the fixture the tests here take by name.
from .test_lifecycle_roles import deployment, record  # noqa: F401  # pylint: disable=unused-import


def play(d: dict, name: str, check: bool = False, **extra) -> tuple[int, str]:
    proc = run_playbook(f"dualboot.db.{name}", {**d["vars"], **extra}, inventory=str(d["inventory"]), check=check)
    return proc.returncode, proc.stdout + proc.stderr


def changed(out: str) -> int:
    """The changed count of the play recap, summed over hosts."""
    return sum(int(n) for n in re.findall(r"^\S+\s*:\s*ok=\d+\s+changed=(\d+)", out, re.M))


def state(d: dict) -> dict:
    """Everything a step may change: both boot records and both application configurations."""
    return {
        **{f"record {h}": (d["dir"] / "records" / f"{h}.json").read_text() for h in d["hosts"]},
        **{f"env {h}": env.read_text() for h, env in d["hosts"].items()},
    }


def step(d: dict, name: str, **extra) -> str:
    """--check first (must change nothing and say what would happen), then the real step."""
    before = state(d)
    rc, out = play(d, name, check=True, **extra)
    assert rc == 0, out[-4000:]
    assert state(d) == before, f"{name} --check changed something"
    if name in ("stage", "verify"):
        assert "would" in out, out[-3000:]
    rc, out = play(d, name, **extra)
    assert rc == 0, out[-4000:]
    return out


@pytest.mark.matrix  # make test: test_docs_project_example walks the same steps, --check before each
def test_forward_back_and_forward_again_with_no_extra_variables(deployment):  # noqa: F811
    d = deployment
    rc, out = play(d, "stage")  # the first stage creates the boot records: --check needs them to compare
    assert rc == 0, out[-4000:]
    for name in ("verify", "cutover", "rollback", "stage", "verify", "cutover"):
        out = step(d, name)
    r = record(d, "app2")
    assert r["default"] == "green" and r["fallback"] == "blue"
    assert [h["action"] for h in r["history"]] == ["cutover", "rollback", "cutover"]
    assert all("/" + d["green"].name in env.read_text() for env in d["hosts"].values())
    assert d["green"].scalar("SELECT count(*) FROM users") == 300


def test_second_stage_and_second_verify_change_nothing(deployment):  # noqa: F811
    d = deployment
    for name in ("stage", "verify"):
        rc, out = play(d, name)
        assert rc == 0, out[-4000:]
        before = state(d)
        reports = sorted(p.name for p in (d["dir"] / "reports").glob("*")) if (d["dir"] / "reports").exists() else []
        rc, out = play(d, name)
        assert rc == 0, out[-4000:]
        assert changed(out) == 0, f"second {name}:\n{out[-4000:]}"
        assert state(d) == before
        after = sorted(p.name for p in (d["dir"] / "reports").glob("*")) if (d["dir"] / "reports").exists() else []
        assert after == reports, "a second run must not pile up reports"
    assert sorted(p.suffix for p in (d["dir"] / "reports").iterdir()) == [".json", ".md"]


@pytest.mark.parametrize("inline", [False, pytest.param(True, marks=pytest.mark.matrix)], ids=["dir", "inline"])
def test_check_mode_stage_says_what_it_would_do(deployment, inline):  # noqa: F811
    d = deployment
    rc, out = play(d, "stage")
    assert rc == 0, out[-4000:]
    # A staged entry exists now; a new migration set must be compared with the copy it would make, not with it.
    extra = {}
    if inline:
        extra["dualboot_migrations"] = {
            "migrations": [{"version": "1", "sql": "ALTER TABLE users ADD COLUMN nick text"}, {"version": "2", "sql": "SELECT 1"}]
        }
    else:
        extra["dualboot_restage"] = True
    before = state(d)
    rc, out = play(d, "stage", check=True, **extra)
    assert rc == 0, out[-4000:]
    assert state(d) == before
    would = "apply 2 migration(s): 1, 2 on green" if inline else "apply 1 migration(s): 1 on green"
    assert re.search(r"would copy blue -> green by \w+, then " + re.escape(would), out), out[-3000:]
    assert not (d["dir"] / "work" / "shop").exists() or not any((d["dir"] / "work" / "shop").iterdir())


def test_check_mode_verify_does_not_claim_smoke_tests_ran(deployment, tmp_path):  # noqa: F811
    d = deployment
    rc, out = play(d, "stage")
    assert rc == 0, out[-4000:]
    marker = tmp_path / "smoke-ran"
    smoke = {"dualboot_health_checks": [{"name": "smoke", "command": ["touch", str(marker)]}]}
    rc, out = play(d, "verify", check=True, **smoke)
    assert rc == 0, out[-4000:]
    assert not marker.exists()
    assert "smoke tests: 1 would run" in out and "1 run" not in out, out[-3000:]
    assert "verify would pass" in out, out[-3000:]
    assert json.loads((d["dir"] / "records" / "app1.json").read_text())["evidence"]["green"].get("verify") is None


def test_per_host_record_dir_is_honoured(deployment):  # noqa: F811
    import yaml

    d = deployment
    inv = yaml.safe_load(d["inventory"].read_text())
    for name, hv in inv["all"]["children"]["dualboot_app"]["hosts"].items():
        del hv["dualboot_record_path"]
        hv["dualboot_record_dir"] = str(d["dir"] / "records" / name)
    d["inventory"].write_text(yaml.safe_dump(inv))
    del d["vars"]["dualboot_record_dir"]  # extra vars would beat host_vars
    rc, out = play(d, "stage")
    assert rc == 0, out[-4000:]
    for name in d["hosts"]:
        r = json.loads((d["dir"] / "records" / name / "shop.json").read_text())
        assert r["staged"] == "green", name


def test_entries_are_checked_before_any_record_is_written(deployment):  # noqa: F811
    d = deployment
    rc, out = play(d, "stage")
    assert rc == 0, out[-4000:]
    before = state(d)
    password = d["vars"]["dualboot_entries"]["blue"]["login_password"]
    typo = {name: dict(e) for name, e in d["vars"]["dualboot_entries"].items()}
    typo["blue"]["login_passwd"] = typo["blue"].pop("login_password")
    rc, out = play(d, "stage", dualboot_entries=typo)
    assert rc != 0 and "unknown key 'login_passwd' (did you mean 'login_password'?)" in out, out[-3000:]
    assert password not in out and state(d) == before

    bad_port = {name: dict(e) for name, e in d["vars"]["dualboot_entries"].items()}
    bad_port["green"]["login_port"] = "fivefour"
    rc, out = play(d, "stage", dualboot_entries=bad_port)
    assert rc != 0 and "entry green: login_port must be an int" in out, out[-3000:]
    assert state(d) == before

    # A port given as text (an INI inventory) is stored as the number it is: the records do not change.
    text_port = {name: {**e, "login_port": str(e["login_port"])} for name, e in d["vars"]["dualboot_entries"].items()}
    rc, out = play(d, "stage", dualboot_entries=text_port)
    assert rc == 0, out[-3000:]
    assert state(d) == before and changed(out) == 0

    # A wrong number is a port nothing listens on: the staged entry (it holds data and evidence) "moved"
    # there, and a redefinition would have dropped its evidence. Refused before any record is written.
    from harness.net import free_port

    wrong = free_port()
    moved = {name: dict(e) for name, e in d["vars"]["dualboot_entries"].items()}
    moved["green"]["login_port"] = wrong
    for check in (True, False):
        rc, out = play(d, "stage", check=check, dualboot_entries=moved)
        assert rc != 0 and f"nothing answers at 127.0.0.1:{wrong}" in out and "no boot record was changed" in out, out[-3000:]
        assert state(d) == before


def test_edited_migration_file_is_noticed(deployment, tmp_path):  # noqa: F811
    import shutil

    d = deployment
    migrations = tmp_path / "migrations"
    shutil.copytree(d["vars"]["dualboot_demo_dir"] + "/changes/r1/migrations", migrations)
    d["vars"]["dualboot_migrations"] = {"dir": str(migrations)}
    rc, out = play(d, "stage")
    assert rc == 0, out[-4000:]
    first = record(d)["evidence"]["green"]["stage"]["run_id"]
    v1 = next(migrations.glob("V1__*.sql"))
    v1.write_text(v1.read_text() + "COMMENT ON TABLE users IS 'edited';\n")
    rc, out = play(d, "stage")
    assert rc == 0, out[-4000:]
    assert "is current" not in out and record(d)["evidence"]["green"]["stage"]["run_id"] != first, out[-3000:]
    assert d["green"].scalar("SELECT obj_description('users'::regclass)") == "edited"


def test_password_never_in_argv_or_verbose_output_of_any_step(deployment):  # noqa: F811
    import os
    import subprocess
    import sys
    import tempfile
    import threading
    from pathlib import Path

    from harness.ansible import ansible_env

    d = deployment
    password = d["vars"]["dualboot_entries"]["green"]["login_password"]
    sql = "ALTER TABLE users RENAME COLUMN user_name TO full_name; ALTER TABLE users ALTER COLUMN full_name TYPE text"
    check = "import os, time, psycopg; time.sleep(1.5); psycopg.connect(os.environ['DUALBOOT_DATABASE_URL']).close()"
    extra = {
        "dualboot_migrations": {"command": ["sh", "-c", f'sleep 1.5 && psql -v ON_ERROR_STOP=1 -c "{sql}"']},
        "dualboot_health_checks": [{"name": "smoke", "command": [sys.executable, "-c", check]}],
        "dualboot_no_log": False,
    }
    seen, done = [], threading.Event()

    def sample():
        while not done.is_set():
            for p in Path("/proc").glob("[0-9]*"):
                try:
                    argv = (p / "cmdline").read_bytes()
                except OSError:
                    continue
                if password.encode() in argv:
                    seen.append(argv.replace(b"\0", b" ").decode(errors="replace"))
            done.wait(0.02)

    work = Path(tempfile.mkdtemp(prefix="dualboot-argv-"))
    vf = work / "vars.json"
    vf.write_text(json.dumps({**d["vars"], **extra}))
    os.chmod(vf, 0o600)
    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        outs = []
        for name in ("stage", "verify", "cutover", "rollback"):
            cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-vvv", "-i", str(d["inventory"]), f"dualboot.db.{name}"]
            proc = subprocess.run([*cmd, "-e", f"@{vf}"], capture_output=True, text=True, env=ansible_env(work), timeout=900, check=False)
            outs.append(proc.stdout + proc.stderr)
            assert proc.returncode == 0, outs[-1][-4000:]
    finally:
        done.set()
        sampler.join()
    assert "verify PASSED" in outs[1] and "cutover DONE" in outs[2] and "rollback DONE" in outs[3], outs[3][-2000:]
    assert not seen, f"the password was in the argv of: {seen[:3]}"
    assert all(password not in out for out in outs), "the password was in the -vvv output"
    assert not list((d["dir"] / "work").rglob("env-*")), "the connection file was left behind"


def test_failed_smoke_test_shows_its_output_or_says_where_it_is(deployment):  # noqa: F811
    d = deployment
    rc, out = play(d, "stage")
    assert rc == 0, out[-4000:]
    smoke = {"dualboot_health_checks": [{"name": "login page", "command": ["sh", "-c", "echo 'no route to /login' >&2; exit 3"]}]}
    rc, out = play(d, "verify", dualboot_no_log=False, **smoke)
    assert rc != 0 and "smoke test failed: login page (exit 3): no route to /login" in out, out[-3000:]
    assert "next: fix what is listed" in out
    rc, out = play(d, "verify", **smoke)
    assert rc != 0 and "its output is hidden (dualboot_no_log is true)" in out and "-e dualboot_no_log=false" in out, out[-3000:]


def docs_project(markdown: str) -> tuple[dict[str, str], list[str]]:
    """The example project of docs/lifecycle.md: files (each block whose first line names it) and commands."""
    files, commands = {}, []
    for body in re.findall(r"^```\w*\n(.*?)^```", markdown, re.M | re.S):
        first = body.splitlines()[0]
        named = re.match(r"^(?:#|--) shop-infra/(\S+)$", first)
        if named:
            files[named.group(1)] = body
        elif first.startswith("# shop-infra:"):
            commands += [line for line in body.splitlines()[1:] if line.strip()]
    return files, commands


def test_docs_project_example(deployment, tmp_path):  # noqa: F811
    """docs/lifecycle.md's project, verbatim, with the collection installed from its built tarball."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import yaml
    from harness.paths import ROOT

    d = deployment
    files, commands = docs_project((ROOT / "docs" / "lifecycle.md").read_text())
    assert {"ansible.cfg", "inventory/hosts.ini", "inventory/group_vars/all.yml", "stage.yml"} <= set(files), sorted(files)
    assert commands and all(c.startswith(("ansible-galaxy", "ansible-playbook")) for c in commands), commands
    project = tmp_path / "shop-infra"
    for name, body in files.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(body)
    # What a site adds: where its hosts and servers are (host_vars win over the example's group_vars).
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    smoke = "import os, psycopg; psycopg.connect(os.environ['DUALBOOT_DATABASE_URL']).execute('SELECT full_name FROM users LIMIT 1')"
    site = {
        "db1.example.com": local,
        "web1.example.com": {
            **local,
            "dualboot_entries": d["vars"]["dualboot_entries"],
            "dualboot_app_reload": {},
            "dualboot_health_checks": [{"name": "smoke test of the new version", "command": [sys.executable, "-c", smoke]}],
            "dualboot_work_dir": str(tmp_path / "work"),
        },
        "web2.example.com": local,
    }
    for host, env in zip(("web1.example.com", "web2.example.com"), d["hosts"].values()):
        site[host] = {
            **site[host],
            "dualboot_record_dir": str(tmp_path / "records" / host),
            # Read per host: there is no service "shop" and no health endpoint here.
            "dualboot_app_reload": {},
            "dualboot_health_checks": [{"name": "smoke test of the new version", "command": [sys.executable, "-c", smoke]}],
            "dualboot_switch_targets": [{"format": "dotenv", "path": str(env), "key": "DATABASE_URL", "template": TEMPLATE}],
        }
    for host, hv in site.items():
        (project / "inventory" / "host_vars").mkdir(parents=True, exist_ok=True)
        (project / "inventory" / "host_vars" / f"{host}.yml").write_text(yaml.safe_dump(hv))
    build = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-galaxy"), "collection", "build", "--output-path", str(project), str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        {
            "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
            "ANSIBLE_NOCOLOR": "1",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        }
    )

    def looked_at() -> dict:
        return {str(p): p.read_bytes() for p in [*(tmp_path / "records").rglob("*.json"), *d["hosts"].values()]}

    for command in commands:
        before = looked_at()
        proc = subprocess.run(["bash", "-c", command], cwd=project, env=env, capture_output=True, text=True, timeout=900, check=False)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, f"{command}:\n{out[-4000:]}"
        if command.endswith("--check"):  # looks, says what the step would do, changes nothing
            assert "would" in out.lower() and looked_at() == before, f"{command}:\n{out[-4000:]}"
    installed = project / "collections" / "ansible_collections" / "dualboot" / "db"
    assert (installed / "MANIFEST.json").exists() and not list(installed.rglob("*.json.lock"))
    assert not list(installed.rglob("*verify.md")), "nothing may be written into the installed collection"
    assert sorted(p.suffix for p in (project / "reports").iterdir()) == [".json", ".json", ".md", ".md"]
    r = json.loads((tmp_path / "records" / "web2.example.com" / "shop.json").read_text())
    assert [h["action"] for h in r["history"]] == ["cutover", "rollback", "cutover"] and r["default"] == "green"


@contextlib.contextmanager
def copy_held_up(db, seconds: float):
    """Hold ``users`` locked on ``db`` until the copy waits for it, then ``seconds`` longer: a copy that
    outlasts the progress interval however fast the machine copies (a CI run copied 60 MB in 0.97 s)."""
    held, done = threading.Event(), threading.Event()
    waited: list = []

    def hold() -> None:
        with db.connect(autocommit=False) as c:
            c.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
            held.set()
            deadline = time.monotonic() + 300
            while not done.is_set() and time.monotonic() < deadline:
                waiting = db.scalar(
                    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE NOT l.granted"
                    " AND l.relation = 'users'::regclass AND (a.application_name = 'pg_dump' OR a.query ~* '^\\s*(copy|lock)')"
                )
                if waiting:
                    waited.append(True)
                    time.sleep(seconds)
                    break
                time.sleep(0.05)
            c.rollback()

    t = threading.Thread(target=hold, daemon=True)
    t.start()
    held.wait(30)
    try:
        yield waited
    finally:
        done.set()
        t.join(60)


def test_long_copy_reports_progress_and_throughput(deployment):  # noqa: F811
    d = deployment
    d["blue"].execute("INSERT INTO users (user_name, creation_date) SELECT repeat('x', 200) || g, now() FROM generate_series(1, 300000) g")
    with copy_held_up(d["blue"], 3) as waited:
        rc, out = play(d, "stage", dualboot_progress_interval=1)
    assert waited, "the copy never waited for the held lock"
    assert rc == 0, out[-4000:]
    # The copy runs as a background job (plugins/plugin_utils/background.py) that says so every interval.
    assert re.search(r"app1: .*Copy the default entry into the staged entry still running after \d+ s", out), out[-3000:]
    assert re.search(r"copied blue -> green by \w+ in [\d.]+ s, [\d.]+ MB/s", out) and "timings:" in out, out[-3000:]
