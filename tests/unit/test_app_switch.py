"""app_switch: one host's switch in one call - real files, real commands, a real HTTP server on loopback."""

from __future__ import annotations

import http.server
import sys
import threading
from pathlib import Path

import pytest

from ansible_collections.dualboot.db.plugins.filter.results import switch_failures
from ansible_collections.dualboot.db.plugins.module_utils import app_switch

ENTRY = {"login_host": "db2", "login_port": 5432, "login_user": "app", "login_db": "shop_green"}
TEMPLATE = "postgresql://{login_user}:{password!u}@{login_host}:{login_port}/{login_db}"


@pytest.fixture(scope="module")
def http_server():
    """Answers /ok with 200 and /down with 503 and a body naming the cause."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the name http.server calls
            ok = self.path == "/ok"
            body = b"fine" if ok else b'{"error": "db down"}'
            self.send_response(200 if ok else 503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://{{host}}:{server.server_address[1]}"
    server.shutdown()


def params(tmp_path: Path, **over) -> dict:
    env = tmp_path / "app.env"
    if not env.exists():
        env.write_text("DATABASE_URL=postgresql://app:pw@db1:5432/shop_blue\nOTHER=kept\n")
    base = {
        "targets": [{"format": "dotenv", "path": str(env), "key": "DATABASE_URL", "template": TEMPLATE, "backup": False}],
        "entry": ENTRY,
        "entry_name": "green",
        "password": "s3cret",
        "reload": {"command": ["touch", str(tmp_path / "reloaded")]},
        "checks": [],
        "host": "127.0.0.1",
        "undo": False,
    }
    return {**base, **over}


def test_switch_reload_and_checks_in_one_call_then_nothing_to_do(tmp_path, http_server):
    check_env = tmp_path / "entry"
    write_entry = f"import os; open({str(check_env)!r}, 'w').write(os.environ['DUALBOOT_ENTRY'])"
    checks = [
        {"name": "shop answers", "url": f"{http_server}/ok"},
        {"name": "entry seen", "command": [sys.executable, "-c", write_entry]},
    ]
    r = app_switch.execute(params(tmp_path, checks=checks), check_mode=False)
    assert r["changed"] and not r["failed"] and not r["failures"], r
    assert "shop_green" in (tmp_path / "app.env").read_text() and "OTHER=kept" in (tmp_path / "app.env").read_text()
    assert (tmp_path / "reloaded").exists() and r["reload"]["rc"] == 0
    assert [c["item"]["name"] for c in r["checks"]] == ["shop answers", "entry seen"] and r["checks"][0]["status"] == 200
    assert check_env.read_text() == "green"
    assert set(r["seconds"]) == {"record", "switch", "reload", "health", "total"}
    assert "s3cret" not in repr(r)
    (tmp_path / "reloaded").unlink()
    again = app_switch.execute(params(tmp_path, checks=checks), check_mode=False)
    assert not again["changed"] and not again["failed"] and again["reload"] == {}
    assert not (tmp_path / "reloaded").exists(), "nothing changed, so nothing is reloaded"


def test_a_failing_health_check_fails_the_switch_naming_the_check_its_status_and_output(tmp_path, http_server):
    checks = [{"name": "orders health", "url": f"{http_server}/down", "retries": 1, "delay": 0}]
    r = app_switch.execute(params(tmp_path, checks=checks), check_mode=False)
    assert r["failed"] and [f["step"] for f in r["failures"]] == ["health"]
    assert r["checks"][0]["attempts"] == 2
    assert switch_failures({"__dualboot_app_switch": r}, "app2") == [
        'app2: orders health failed (status 503, output: {"error": "db down"} status 503, expected 200)'
    ]
    assert switch_failures({"__dualboot_app_switch": r}, "app2", checks=False) == []


def test_the_first_failing_target_stops_the_switch_before_the_reload(tmp_path):
    missing = {"format": "dotenv", "path": str(tmp_path / "missing.env"), "key": "DATABASE_URL", "template": TEMPLATE, "backup": False}
    p = params(tmp_path)
    second = dict(p["targets"][0])
    r = app_switch.execute({**p, "targets": [missing, second]}, check_mode=False)
    assert r["failed"] and len(r["targets"]) == 1 and r["reload"] == {}
    assert "shop_blue" in (tmp_path / "app.env").read_text(), "the target after the failure is not tried"
    line = switch_failures({"__dualboot_app_switch": r}, "app1")[0]
    assert line.startswith(f"app1: dotenv {tmp_path / 'missing.env'} DATABASE_URL failed (output: ") and "missing.env" in line[40:]


def test_an_undo_tries_every_target_always_reloads_and_reports_checks_without_failing(tmp_path, http_server):
    missing = {"format": "dotenv", "path": str(tmp_path / "missing.env"), "key": "DATABASE_URL", "template": TEMPLATE, "backup": False}
    p = params(tmp_path, undo=True, checks=[{"name": "down", "url": f"{http_server}/down", "retries": 0}])
    r = app_switch.execute({**p, "targets": [missing, p["targets"][0]]}, check_mode=False)
    assert "shop_green" in (tmp_path / "app.env").read_text() and (tmp_path / "reloaded").exists()
    assert [f["step"] for f in r["failures"]] == ["switch"] and r["checks"][0]["failed"]
    (tmp_path / "reloaded").unlink()
    r = app_switch.execute(p, check_mode=False)
    assert not r["failed"] and not r["changed"] and (tmp_path / "reloaded").exists(), "an undo reloads even an unchanged host"


def test_a_failing_reload_is_a_failed_switch_with_its_output(tmp_path):
    r = app_switch.execute(params(tmp_path, reload={"command": "sh -c 'echo no-such-unit >&2; exit 4'"}), check_mode=False)
    # A string is split at whitespace, no shell: sh gets -c and the quoted words as separate arguments.
    assert r["failed"] and r["failures"][0]["step"] == "reload" and r["reload"]["rc"] != 0
    other = tmp_path / "other"
    other.mkdir()
    r = app_switch.execute(params(other, reload={"command": ["/nonexistent/reload"]}), check_mode=False)
    assert switch_failures({"__dualboot_app_switch": r}, "app1") == [
        "app1: reload command failed (rc 127, output: /nonexistent/reload: command not found)"
    ]


def test_check_mode_writes_nothing_and_runs_nothing(tmp_path, http_server):
    r = app_switch.execute(params(tmp_path, checks=[{"url": f"{http_server}/down"}]), check_mode=True)
    assert r["changed"] and not r["failed"] and "would point" in r["msg"]
    assert "shop_blue" in (tmp_path / "app.env").read_text() and not (tmp_path / "reloaded").exists()
    assert r["reload"]["skipped"] and r["checks"][0]["skipped"]


def test_a_service_reload_uses_systemctl_where_systemd_runs_else_service(monkeypatch):
    monkeypatch.setattr(app_switch.os.path, "isdir", lambda p: False)
    assert app_switch.service_argv("shop", "reloaded") == ["service", "shop", "reload"]
    assert app_switch.service_argv("shop", "restarted") == ["service", "shop", "restart"]
    with pytest.raises(app_switch.InvalidInput, match="not one of"):
        app_switch.service_argv("shop", "bounced")
