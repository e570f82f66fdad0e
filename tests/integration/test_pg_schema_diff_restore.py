"""Restore rehearsals: a database and its backup restored by the collection diff empty with ``expect: []``.

PostgreSQL re-prints some expressions differently once a dump is re-parsed (a ``varchar IN (...)``
list is one); the diff compares normalised definitions, so only real changes are reported.
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.dualboot.db.plugins.module_utils import pg_backup, pg_diff

VARCHAR_IN = """
CREATE TABLE jobs (id bigint PRIMARY KEY, status varchar NOT NULL, kind varchar(20), note text,
  CONSTRAINT jobs_status CHECK (status IN ('queued', 'running', 'it''s, done')),
  CONSTRAINT jobs_kind CHECK (kind NOT IN ('x', 'y')));
CREATE INDEX jobs_open ON jobs (id) WHERE status IN ('queued', 'running');
CREATE DOMAIN switch AS varchar(3) CHECK (VALUE IN ('on', 'off'));
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
CREATE TRIGGER jobs_touch BEFORE UPDATE ON jobs FOR EACH ROW WHEN (NEW.kind IN ('x', 'z')) EXECUTE FUNCTION touch();
ALTER TABLE jobs ENABLE ROW LEVEL SECURITY;
CREATE POLICY jobs_mine ON jobs USING (status IN ('queued'));
CREATE VIEW open_jobs AS SELECT id, NULL::integer AS worker, status FROM jobs WHERE status IN ('queued', 'running')
  UNION ALL SELECT 0, NULL, 'none';
"""


@pytest.fixture
def restored(pg, tmp_path):
    """(original, restored copy): the copy made by the collection's own backup and restore."""
    os.chmod(tmp_path, 0o700)
    made = []

    def make(sql: str):
        live = pg.create_database()
        made.append(live.name)
        live.execute(sql)
        pg_backup.backup(live.conn, str(tmp_path / live.name))
        name = f"restored_{os.urandom(4).hex()}"
        made.append(name)
        pg_backup.restore(live.conn.with_db(name), str(tmp_path / live.name))
        return live, pg.db(name)

    yield make
    for name in made:
        pg.drop_database(name)


def test_varchar_in_lists_diff_empty_after_restore(restored):
    live, copy = restored(VARCHAR_IN)
    # the server prints the same list two ways: the premise of this test
    q = "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'jobs_status'"
    assert "])::text[]" in live.scalar(q) and "])::text[]" not in copy.scalar(q)
    for a, b in ((live, copy), (copy, live)):
        r = pg_diff.compare_schemas(a.conn, b.conn, expect=[])
        assert r["identical"] and r["changes"] == [], r["summary"]


@pytest.mark.parametrize("side", ["live", "copy"])
def test_a_real_change_of_such_a_list_is_still_found(restored, side):
    live, copy = restored(VARCHAR_IN)
    changed = live if side == "live" else copy
    changed.execute(
        "ALTER TABLE jobs DROP CONSTRAINT jobs_status, ADD CONSTRAINT jobs_status CHECK (status IN ('queued', 'running', 'failed'));"
        "DROP INDEX jobs_open; CREATE INDEX jobs_open ON jobs (id) WHERE status IN ('queued');"
        "CREATE OR REPLACE VIEW open_jobs AS SELECT id, NULL::integer AS worker, status FROM jobs WHERE status IN ('running')"
        " UNION ALL SELECT 0, NULL, 'none'"
    )
    for a, b in ((live, copy), (copy, live)):
        r = pg_diff.compare_schemas(a.conn, b.conn)
        found = {(c["kind"], c["name"], c["attribute"]) for c in r["changes"]}
        assert found == {
            ("constraint", "jobs.jobs_status", "definition"),
            ("index", "jobs_open", "predicate"),
            ("view", "open_jobs", "definition"),
        }, r["summary"]
        # The suggested SQL carries the server's own text, and it applies.
        status = next(c for c in r["changes"] if c["kind"] == "constraint")
        assert "'failed'" in str(status["before"]) + str(status["after"])
