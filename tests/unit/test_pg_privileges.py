"""Privilege errors of the server (the texts PostgreSQL 15 sends) become MissingPrivilege naming the GRANT."""

from __future__ import annotations

import pytest

from ansible_collections.dualboot.db.plugins.module_utils.errors import MissingPrivilege
from ansible_collections.dualboot.db.plugins.module_utils.pg_privileges import Missing, explain, ident, refuse


@pytest.mark.parametrize(
    ("server_says", "privilege", "grant"),
    [
        (
            'must be superuser or have privileges of pg_read_all_settings to examine "data_directory"',
            "privileges of pg_read_all_settings",
            "GRANT pg_read_all_settings TO app",
        ),
        ("permission denied to create database", "CREATEDB", "ALTER ROLE app CREATEDB"),
        ("permission denied for table secret", "privileges on secret", "ON secret TO app"),
        ("must be owner of database shop_blue", "ownership of shop_blue", "shop_blue OWNER TO app"),
        ('must be able to SET ROLE "shop_owner"', "membership in role shop_owner", "GRANT shop_owner TO app"),
        ("must be member of role shop_owner", "membership in role shop_owner", "GRANT shop_owner TO app"),
        ("permission denied for schema audit", "USAGE/CREATE on schema audit", "GRANT USAGE, CREATE ON SCHEMA audit TO app"),
        (
            'permission denied to terminate process DETAIL: Only roles with privileges of the "pg_signal_backend" role may terminate',
            "privileges of pg_signal_backend",
            "GRANT pg_signal_backend TO app",
        ),
        ("must be superuser to create subscriptions", "SUPERUSER", "superuser login"),
    ],
)
def test_explain_names_the_privilege_and_the_grant(server_says, privilege, grant):
    e = explain(Exception(server_says), "app", "copying")
    assert isinstance(e, MissingPrivilege)
    assert f"lacks {privilege} while copying" in e.message and server_says in e.message
    assert grant in e.hint and e.details["missing"][0]["grant"] in e.hint


def test_refuse_lists_every_missing_privilege_and_each_grant_once():
    missing = [
        Missing("app@db1:5432/shop", "CREATEDB", "copy", "ALTER ROLE app CREATEDB"),
        Missing("app@db2:5432/shop", "CREATEDB", "copy", "ALTER ROLE app CREATEDB"),
        Missing("app@db1:5432/shop", "SELECT on public.t", "copy", "GRANT SELECT ON public.t TO app"),
    ]
    e = refuse("stage", missing)
    assert "lacks 3 privilege(s) for stage, so nothing was changed" in e.message
    assert e.details["grants"] == ["ALTER ROLE app CREATEDB", "GRANT SELECT ON public.t TO app"]
    assert "ALTER ROLE app CREATEDB; GRANT SELECT ON public.t TO app" in e.hint and len(e.details["missing"]) == 3


def test_ident_quotes_only_what_needs_it():
    assert ident("shop_owner") == "shop_owner"
    assert ident("Shop Owner") == '"Shop Owner"' and ident('a"b') == '"a""b"'


def test_client_tools_privilege_errors_are_named_and_file_errors_are_not():
    from ansible_collections.dualboot.db.plugins.module_utils.errors import ExternalToolFailed
    from ansible_collections.dualboot.db.plugins.module_utils.pg_backup import _tool_failure

    walsender = 'pg_basebackup: error: connection to server at "127.0.0.1", port 5 failed: FATAL:  must be superuser or replication role'
    e = _tool_failure("pg_basebackup", 1, walsender, None, "app")
    assert isinstance(e, MissingPrivilege) and "ALTER ROLE app REPLICATION" in e.hint
    e = _tool_failure("pg_dump", 1, "pg_dump: error: query failed: ERROR:  permission denied for table secret", None, "app")
    assert isinstance(e, MissingPrivilege) and "ON secret TO app" in e.hint
    e = _tool_failure("pg_dump", 1, 'pg_dump: error: could not open output file "/x/y": Permission denied', None, "app")
    assert isinstance(e, ExternalToolFailed)
