"""failure_text: the one line a failed health check, reload or command leaves in a cutover's failure message."""

from __future__ import annotations

from ansible_collections.dualboot.db.plugins.filter.results import failure_text


def test_command_check_names_itself_and_its_output():
    item = {"item": {"name": "orders probe", "command": ["probe"]}, "failed": True, "rc": 3, "stdout": "", "stderr": "queue\n  stuck"}
    assert failure_text(item) == "orders probe failed (rc 3, output: queue stuck)"


def test_url_check_shows_status_and_body():
    item = {"item": {"url": "http://app/health"}, "status": 503, "content": '{"error": "db down"}', "msg": "Status code was 503"}
    assert failure_text(item) == 'http://app/health failed (status 503, output: {"error": "db down"} Status code was 503)'


def test_task_result_named_by_the_caller_and_long_output_cut():
    text = failure_text({"rc": 1, "stderr": "x" * 1000}, "reload command")
    assert text.startswith("reload command failed (rc 1, output: xxx") and len(text) < 700
    assert failure_text({}, "switch") == "switch failed (output: none)"
