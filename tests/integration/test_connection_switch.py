"""connection_switch on files and symlinks, run through ansible-playbook: secrets never shown, check/diff
mode, idempotence, backups, and bad input that leaves the file untouched."""

from __future__ import annotations

import io
import json
import os
from urllib.parse import quote

import pytest

PASSWORD = "Sup3r$ecret/p@ss"
TEMPLATE = "postgresql://{login_user}:{password!u}@{login_host}:{login_port}/{login_db}"
BLUE = {"login_host": "db1", "login_port": 5432, "login_user": "app", "login_db": "shop_blue"}
GREEN = {"login_host": "db2", "login_port": 5432, "login_user": "app", "login_db": "shop_green"}
DOTENV = f"# shop\nDEBUG=0\nDATABASE_URL=postgresql://app:{quote(PASSWORD, safe='')}@db1:5432/shop_blue\nSECRET_KEY=k\n"


def dotenv_args(path, entry, **extra):
    return {
        "format": "dotenv",
        "path": str(path),
        "key": "DATABASE_URL",
        "entry": entry,
        "template": TEMPLATE,
        "password": PASSWORD,
        **extra,
    }


def assert_no_secret(result):
    for form in (PASSWORD, quote(PASSWORD, safe=""), json.dumps(PASSWORD)[1:-1]):
        assert form not in result.output
        assert form not in json.dumps(result.result)


def test_dotenv_switch_there_and_back_without_showing_the_secret(tmp_path, run_module):
    env = tmp_path / ".env"
    env.write_text(DOTENV)
    os.chmod(env, 0o640)

    check = run_module("connection_switch", dotenv_args(env, GREEN), check=True, diff=True)
    assert not check.failed, check.msg
    assert check.changed and env.read_text() == DOTENV
    assert_no_secret(check)

    result = run_module("connection_switch", dotenv_args(env, GREEN, backup=True), diff=True)
    assert not result.failed and result.changed
    assert_no_secret(result)
    assert result["previous_value"] == "postgresql://app:********@db1:5432/shop_blue"
    assert result["value"] == "postgresql://app:********@db2:5432/shop_green"
    assert result["diff"]["before"] == "DATABASE_URL=postgresql://app:********@db1:5432/shop_blue\n"
    assert "SECRET_KEY" not in result["diff"]["before"] + result["diff"]["after"]  # only the changed line is shown
    assert "+DATABASE_URL=postgresql://app:********@db2:5432/shop_green" in result.output  # the --diff Ansible prints

    dotenv = pytest.importorskip("dotenv", reason="python-dotenv is the reference reader (test-requirements.txt)")
    url = dotenv.dotenv_values(stream=io.StringIO(env.read_text()))["DATABASE_URL"]
    assert url == f"postgresql://app:{quote(PASSWORD, safe='')}@db2:5432/shop_green"  # the application gets the real secret
    assert oct(os.stat(env).st_mode & 0o777) == "0o640"
    assert open(result["backup_file"]).read() == DOTENV and oct(os.stat(result["backup_file"]).st_mode & 0o777) == "0o600"

    again = run_module("connection_switch", dotenv_args(env, GREEN))
    assert not again.failed and not again.changed

    back = run_module("connection_switch", dotenv_args(env, BLUE))
    assert back.changed and env.read_text() == DOTENV


def test_json_yaml_and_symlink_through_ansible(tmp_path, run_module):
    cfg = tmp_path / "config.json"
    cfg.write_text('{"db": {"host": "db1", "port": 5432}}\n')
    r = run_module("connection_switch", {"format": "json", "path": str(cfg), "key": ["db", "host"], "value": "db2"})
    assert r.changed and cfg.read_text() == '{"db": {"host": "db2", "port": 5432}}\n'

    yml = tmp_path / "config.yml"
    yml.write_text("db:\n  # the live entry\n  name: shop_blue\n")
    r = run_module("connection_switch", {"format": "yaml", "path": str(yml), "key": "db.name", "entry": GREEN, "template": "{login_db}"})
    assert r.changed and yml.read_text() == "db:\n  # the live entry\n  name: shop_green\n"

    block = tmp_path / "block.yml"
    block.write_text("db:\n  url: |\n    postgresql://db1/shop\n")
    r = run_module("connection_switch", {"format": "yaml", "path": str(block), "key": "db.url", "value": "postgresql://db2/shop"})
    assert r.changed and "re-serialized" in " ".join(r.get("warnings", []))

    (tmp_path / "blue.conf").write_text("blue")
    (tmp_path / "green.conf").write_text("green")
    link = tmp_path / "database.conf"
    link.symlink_to("blue.conf")
    r = run_module("connection_switch", {"format": "symlink", "path": str(link), "value": "green.conf"})
    assert r.changed and r["previous_value"] == "blue.conf" and os.readlink(link) == "green.conf"


@pytest.mark.parametrize(
    "name,content,args,message",
    [
        ("missing.env", None, {"format": "dotenv", "key": "DATABASE_URL"}, "does not exist"),
        ("broken.json", '{"db": {"host": "db1",}}', {"format": "json", "key": "db.host"}, "is not valid JSON"),
        ("scalar.json", '{"db": "postgresql://db1/shop"}', {"format": "json", "key": "db.host"}, "goes through a non-object: db is str"),
    ],
)
def test_bad_input_is_one_clear_error_and_the_file_untouched(tmp_path, run_module, name, content, args, message):
    # Every other refusal (YAML, INI, missing keys, duplicates) and the INI format are covered without Ansible in tests/unit.
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    result = run_module("connection_switch", {"path": str(path), "value": "db2", **args})
    assert result.failed and message in result.msg and "Next step:" in result.msg
    assert "Traceback" not in result.output
    if content is None:
        assert not path.exists()
    else:
        assert path.read_text() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ([name] if content is not None else [])


def test_entry_with_a_secret_is_refused_without_echoing_it(tmp_path, run_module):
    env = tmp_path / ".env"
    env.write_text(DOTENV)
    result = run_module("connection_switch", dotenv_args(env, {**GREEN, "login_password": PASSWORD}))
    assert result.failed and "entry holds a secret (login_password)" in result.msg
    assert env.read_text() == DOTENV


def test_app_switch_runs_a_hosts_switch_reload_and_checks_in_one_task(tmp_path, run_module):
    """The cutover's one call per host, through ansible-playbook: the targets' suboptions are validated, the
    password reaches the file only (not the result, not -v output), check mode writes and runs nothing."""
    env, marker = tmp_path / ".env", tmp_path / "reloaded"
    env.write_text(DOTENV)
    target = {"format": "dotenv", "path": str(env), "key": "DATABASE_URL", "template": TEMPLATE}
    args = {
        "targets": [target],
        "entry": GREEN,
        "entry_name": "green",
        "password": PASSWORD,
        "reload": {"command": ["touch", str(marker)]},
        "checks": [{"name": "entry seen", "command": ["sh", "-c", 'test "$DUALBOOT_ENTRY" = green']}],
    }
    r = run_module("app_switch", args, check=True)
    assert not r.failed and r.changed and env.read_text() == DOTENV and not marker.exists(), r.msg
    r = run_module("app_switch", args)
    assert not r.failed and r.changed and "shop_green" in env.read_text() and marker.exists(), r.msg
    assert r.result["checks"][0]["rc"] == 0 and r.result["seconds"]["total"] >= 0
    assert_no_secret(r)
    r = run_module("app_switch", {**args, "targets": [{**target, "formt": "dotenv"}]})
    assert r.failed and "formt" in r.msg, r.msg
