from __future__ import annotations

from ansible_collections.dualboot.db.plugins.module_utils.errors import ConnectionFailed, DualbootError


def test_error_message_names_cause_and_next_step():
    e = ConnectionFailed("cannot connect to PostgreSQL postgres@db1:5432/app: refused", hint="check login_host.", host="db1")
    assert str(e) == "cannot connect to PostgreSQL postgres@db1:5432/app: refused Next step: check login_host."
    assert isinstance(e, DualbootError) and e.details == {"host": "db1"}


def test_privilege_error_names_the_login_role_only_when_it_is_one():
    from ansible_collections.dualboot.db.plugins.module_utils.runner import login_role

    assert login_role({"login_user": "app"}) == "app"
    assert login_role({"login_user": "postgres", "source": {"login_user": "owner"}, "target": {"login_user": "owner"}}) == "owner"
    assert login_role({"login_user": "postgres", "source": {"login_user": "owner"}, "target": {"login_db": "x"}}) is None
    assert login_role({"login_user": "postgres", "source": {}, "target": None}) == "postgres"
