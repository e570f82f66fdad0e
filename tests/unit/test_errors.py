from __future__ import annotations

from ansible_collections.dualboot.db.plugins.module_utils.errors import ConnectionFailed, DualbootError


def test_error_message_names_cause_and_next_step():
    e = ConnectionFailed("cannot connect to PostgreSQL postgres@db1:5432/app: refused", hint="check login_host.", host="db1")
    assert str(e) == "cannot connect to PostgreSQL postgres@db1:5432/app: refused Next step: check login_host."
    assert isinstance(e, DualbootError) and e.details == {"host": "db1"}
