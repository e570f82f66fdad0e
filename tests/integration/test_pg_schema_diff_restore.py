"""Restore rehearsals: a database and its backup restored by the collection diff empty with ``expect: []``.

PostgreSQL re-prints some expressions differently once a dump is re-parsed (a ``varchar IN (...)``
list is one); the diff compares normalised definitions, so only real changes are reported.

The rehearsal of a large real application schema runs on every schema ``make setup`` took from
Debian's packages into ``.cache/real-schema/`` (Zabbix 6.0's server schema, partitioned the way its
operators partition history and trends), plus any given in ``DUALBOOT_TEST_REAL_SCHEMA`` (``.sql`` or
``.sql.gz`` files, schema only, separated by ``:``); see docs/postgresql-verification.md. Third-party
schemas are never committed.
"""

from __future__ import annotations

import gzip
import os
import subprocess
from pathlib import Path

import pytest
from harness.paths import ROOT
from harness.pg import pg_bin

from ansible_collections.dualboot.db.plugins.module_utils import pg_backup, pg_clone, pg_diff

REPRINTED = """
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
-- printed otherwise after a restore too: nested ANDs (BETWEEN), NULL and expression elements of a list
ALTER TABLE jobs ADD COLUMN tries int, ADD COLUMN workers bigint[],
  ADD CONSTRAINT jobs_tries CHECK (tries BETWEEN 0 AND 10 AND id > 0),
  ADD CONSTRAINT jobs_kinds CHECK (kind IN ('a' || 'b', NULL, 'c'));
CREATE TABLE workers (id bigint PRIMARY KEY, name text);
CREATE VIEW busy AS SELECT j.id, w.name FROM jobs j JOIN workers w ON w.id = ANY (j.workers)
  WHERE j.tries BETWEEN 1 AND 3 AND j.kind IN ('a' || 'b', NULL);
CREATE VIEW job_ids AS SELECT j.id FROM jobs j LEFT JOIN workers w ON w.id = j.tries;
CREATE DOMAIN level AS int CHECK (VALUE BETWEEN 1 AND 5 AND VALUE <> 3);
CREATE TRIGGER jobs_retry BEFORE UPDATE ON jobs FOR EACH ROW WHEN (NEW.tries BETWEEN 1 AND 5 AND NEW.id > 0) EXECUTE FUNCTION touch();
CREATE POLICY jobs_few ON jobs USING (tries BETWEEN 0 AND 3 AND id > 0);
CREATE TABLE slots (id int, n int DEFAULT (CASE WHEN 1 BETWEEN 0 AND 2 AND true THEN 1 END),
  g int GENERATED ALWAYS AS (CASE WHEN id BETWEEN 1 AND 5 AND id > 0 THEN 1 END) STORED,
  EXCLUDE USING btree (id WITH =) WHERE (id BETWEEN 1 AND 5 AND id > 0));
CREATE INDEX slots_low ON slots ((id BETWEEN 1 AND 5 AND id > 0));
"""


@pytest.fixture
def restored(pg, tmp_path):
    """(original, restored copy): the copy made by the collection's own backup and restore."""
    os.chmod(tmp_path, 0o700)
    made = []

    def make(sql: str):
        live = pg.create_database()
        made.append(live.name)
        _load(live, sql)
        pg_backup.backup(live.conn, str(tmp_path / live.name))
        name = f"restored_{os.urandom(4).hex()}"
        made.append(name)
        pg_backup.restore(live.conn.with_db(name), str(tmp_path / live.name))
        return live, pg.db(name)

    yield make
    for name in made:
        pg.drop_database(name)


def test_reprinted_definitions_diff_empty_after_restore(restored):
    live, copy = restored(REPRINTED)
    # the server prints the same list two ways: the premise of this test
    q = "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'jobs_status'"
    assert "])::text[]" in live.scalar(q) and "])::text[]" not in copy.scalar(q)
    for a, b in ((live, copy), (copy, live)):
        r = pg_diff.compare_schemas(a.conn, b.conn, expect=[])
        assert r["identical"] and r["changes"] == [], r["summary"]


@pytest.mark.parametrize("side", ["live", "copy"])
def test_a_real_change_of_a_reprinted_definition_is_still_found(restored, side):
    live, copy = restored(REPRINTED)
    changed = live if side == "live" else copy
    changed.execute(
        "ALTER TABLE jobs DROP CONSTRAINT jobs_status, ADD CONSTRAINT jobs_status CHECK (status IN ('queued', 'running', 'failed'));"
        "DROP INDEX jobs_open; CREATE INDEX jobs_open ON jobs (id) WHERE status IN ('queued');"
        "CREATE OR REPLACE VIEW open_jobs AS SELECT id, NULL::integer AS worker, status FROM jobs WHERE status IN ('running')"
        " UNION ALL SELECT 0, NULL, 'none';"
        "ALTER TABLE jobs DROP CONSTRAINT jobs_tries, ADD CONSTRAINT jobs_tries CHECK (tries BETWEEN 0 AND 11 AND id > 0);"
        # a renamed column, and a join the planner would remove (workers.id is unique): both real changes
        "ALTER VIEW busy RENAME COLUMN name TO worker_name;"
        "CREATE OR REPLACE VIEW job_ids AS SELECT j.id FROM jobs j;"
        "ALTER DOMAIN level DROP CONSTRAINT level_check; ALTER DOMAIN level ADD CONSTRAINT level_check CHECK (VALUE BETWEEN 1 AND 5);"
        "ALTER TABLE slots ALTER COLUMN n SET DEFAULT (CASE WHEN 1 BETWEEN 0 AND 2 AND false THEN 1 END);"
        "DROP POLICY jobs_few ON jobs; CREATE POLICY jobs_few ON jobs USING (tries BETWEEN 0 AND 3 OR id > 0)"
    )
    for a, b in ((live, copy), (copy, live)):
        r = pg_diff.compare_schemas(a.conn, b.conn)
        found = {(c["kind"], c["name"], c["attribute"]) for c in r["changes"]}
        assert found == {
            ("constraint", "jobs.jobs_status", "definition"),
            ("constraint", "jobs.jobs_tries", "definition"),
            ("index", "jobs_open", "predicate"),
            ("view", "open_jobs", "definition"),
            ("view", "busy", "definition"),
            ("view", "job_ids", "definition"),
            ("domain", "level", "constraints"),
            ("column", "slots.n", "default"),
            ("policy", "jobs.jobs_few", "using"),
        }, r["summary"]
        # The suggested SQL carries the server's own text, and it applies.
        status = next(c for c in r["changes"] if c["kind"] == "constraint")
        assert "'failed'" in str(status["before"]) + str(status["after"])


def _load(db, sql: str) -> None:
    """Run a schema script as psql does (statement by statement: CREATE INDEX CONCURRENTLY refuses a transaction)."""
    env = {**os.environ, "PGPASSWORD": db.server.password}
    server = db.server
    argv = [
        str(pg_bin() / "psql"),
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        server.host,
        "-p",
        str(server.port),
        "-U",
        server.user,
        "-d",
        db.name,
    ]
    proc = subprocess.run(argv, input=sql, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]


def _real_schemas() -> list[Path]:
    given = [Path(p) for p in os.environ.get("DUALBOOT_TEST_REAL_SCHEMA", "").split(os.pathsep) if p]
    return sorted((ROOT / ".cache" / "real-schema").glob("*.sql.gz")) + given


def _read(path: Path) -> str:
    text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
    return _as_zabbix_operators_run_it(text) if path.name.startswith("zabbix") else text


ZABBIX_TIME_SERIES = ("history", "history_uint", "history_str", "history_log", "history_text", "trends", "trends_uint")


def _as_zabbix_operators_run_it(text: str) -> str:
    """Zabbix's history and trends tables, range-partitioned by clock with a partition per day (what its
    operators do once the tables grow; the schema's keys already include clock)."""
    days = 24
    for table in ZABBIX_TIME_SERIES:
        head = f"CREATE TABLE {table} (\n"
        start = text.index(head)
        end = text.index("\n);", start) + 2
        text = text[:end] + " PARTITION BY RANGE (clock)" + text[end:]
        day0 = 1_767_225_600  # 2026-01-01 UTC
        text += "".join(
            f"CREATE TABLE {table}_d{d:02d} PARTITION OF {table} FOR VALUES FROM ({day0 + d * 86400}) TO ({day0 + (d + 1) * 86400});\n"
            for d in range(days)
        )
    return text


@pytest.mark.parametrize("schema", _real_schemas() or [None], ids=lambda p: p.name if p else "none")
def test_restore_rehearsal_of_a_large_real_schema_diffs_empty(pg, restored, schema):
    """backup -> restore -> diff with expect: [] (and a piped clone) of a real application schema: hundreds of
    tables, partitions, triggers. Every false alarm here is a gate that blocks a correct cutover."""
    if schema is None:
        pytest.fail("no real application schema in .cache/real-schema/: run make setup (it takes Zabbix's from Debian)")
    live, copy = restored(_read(schema))
    r = pg_diff.compare_schemas(live.conn, copy.conn, expect=[])
    counts = r["objects"]["source"]
    assert counts["table"] >= 200 and counts["trigger"] >= 1 and counts["index"] >= 150, counts
    assert live.scalar("SELECT count(*) FROM pg_class WHERE relkind = 'p'") >= 5
    assert r["identical"] and r["objects"]["target"] == counts
    piped = f"piped_{os.urandom(4).hex()}"
    try:
        pg_clone.clone(live.conn, live.conn.with_db(piped), method="pipe")
        assert pg_diff.compare_schemas(live.conn, pg.db(piped).conn, expect=[])["identical"]
    finally:
        pg.drop_database(piped)
