"""Shared by the PostgreSQL staging tests: the reference ``users`` database and fingerprints of a database
computed independently of the code under test (row counts, md5 of every table's rows in key order,
sequence positions, database-level settings)."""

from __future__ import annotations

import os
import subprocess
import tempfile
from contextlib import contextmanager

import psycopg
import pytest

USERS = """
CREATE TABLE users (user_id serial PRIMARY KEY, user_name varchar(255), creation_date timestamp);
INSERT INTO users (user_name, creation_date)
  SELECT 'user ' || i, timestamp '2025-01-01' + i * interval '37 minutes' FROM generate_series(1, {rows}) i;
CREATE INDEX users_creation_date ON users (creation_date);
CREATE TABLE orders (order_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, user_id int REFERENCES users, amount numeric(10,2),
                     note text, meta jsonb);
INSERT INTO orders (user_id, amount, note, meta)
  SELECT 1 + i % {rows}, i * 1.25, 'semi;colon ''quoted'' ' || i, jsonb_build_object('i', i) FROM generate_series(1, {rows}) i;
CREATE VIEW big_orders AS SELECT order_id, amount FROM orders WHERE amount > 100;
CREATE FUNCTION user_count() RETURNS bigint LANGUAGE sql STABLE BEGIN ATOMIC SELECT count(*) FROM users; END;
"""


def make_users(db, rows: int = 2000) -> None:
    """The reference starting point (docs: EXAMPLES.md) plus a second table, a view, an identity, an SQL function body
    and a database-level setting."""
    db.execute(USERS.format(rows=rows))
    db.execute(f'ALTER DATABASE "{db.name}" SET search_path = "$user", public')


def fingerprint(db) -> dict:
    """Every user table's row count and md5 of its rows in primary-key order, sequence positions, settings
    and large objects."""
    out = {}
    with db.connect() as c:
        tables = c.execute(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'dualboot') ORDER BY 1"
        ).fetchall()
        for (t,) in tables:
            out[t] = c.execute(f"SELECT count(*), md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM {t} AS x").fetchone()
        for name, value in c.execute(
            "SELECT format('%I.%I', schemaname, sequencename), last_value FROM pg_sequences ORDER BY 1"
        ).fetchall():
            out[f"sequence {name}"] = value
        out["settings"] = c.execute(
            "SELECT setconfig FROM pg_db_role_setting WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchall()
        out["large objects"] = c.execute("SELECT lo_get(oid) FROM pg_largeobject_metadata ORDER BY oid").fetchall()
    return out


def databases(server) -> list[str]:
    with psycopg.connect(server.uri(), autocommit=True) as c:
        return [r[0] for r in c.execute("SELECT datname FROM pg_database ORDER BY 1")]


def temp_leftovers(server) -> list[str]:
    return [d for d in databases(server) if "__dualboot_" in d]


@contextmanager
def tiny_filesystem(size: str, owner_uid: int | None = None):
    """A real small filesystem (tmpfs) to run out of space on; needs root."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill up needs root")
    path = tempfile.mkdtemp(prefix="dualboot-tiny-")
    opts = f"size={size},mode=0700" + (f",uid={owner_uid}" if owner_uid is not None else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", path], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", path], check=False)
        os.rmdir(path)
