#!/usr/bin/python
# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: postgresql_migrate
short_description: Apply ordered SQL migrations to the staged entry, with a checksummed history
version_added: "0.1.0"
description:
  - Applies the pending migrations from O(migrations) and/or O(migrations_dir) to O(login_db), in version order, and
    records each one in C(dualboot.schema_history) (version, description, script, sha256 checksum, transactional,
    applied_at, duration_ms, applied_by).
  - Versions are dotted or underscored numbers compared part by part (C(1.9) < C(1.10)); trailing zeros do not count
    (C(2) equals C(2.0)). A duplicate version fails before anything runs, as does a pending version lower than an
    applied one.
  - Each migration runs in a transaction of its own, statement by statement, together with its history row.
  - "A migration marked non-transactional (C(transactional: false) in O(migrations), or the line
    C(-- dualboot: transactional=false) in its SQL) runs statement by statement in autocommit, for statements such
    as C(CREATE INDEX CONCURRENTLY)."
  - Statements are split like psql splits them (quotes, C(E'') strings, dollar quotes, comments, parentheses,
    C(BEGIN ATOMIC ... END) bodies). A failing migration reports its script, the statement number, its line and the
    server's error; the migrations before it stay applied and recorded.
  - An applied migration whose text changed since fails the task, naming the version, the script and both checksums.
  - A second run with nothing pending reports C(changed=false). An advisory lock keeps two runs on one database apart.
author: dualboot.db contributors (@dualboot-db)
extends_documentation_fragment:
  - dualboot.db.postgresql
  - ansible.builtin.action_common_attributes
  - dualboot.db.background
attributes:
  check_mode:
    support: full
    details: Reads the history, checks checksums and order, and lists RV(pending) migrations; changes nothing.
  diff_mode:
    support: full
    details: Shows the applied versions before and after.
  platform:
    platforms: posix
options:
  migrations:
    description:
      - Migrations given in the task. Each is a dict with C(version) (a string such as C('1.10'); YAML would read
        1.10 as the number 1.1, so a number with a decimal point is refused), optional C(description), exactly one of
        C(sql) (the SQL text) and C(file) (a path on the host running the task), and optional C(transactional)
        (default C(true), or what a C(-- dualboot:) line in the SQL says).
    type: list
    elements: dict
    default: []
  migrations_dir:
    description:
      - A directory (on the host running the task) of Flyway-style files C(V<version>__<description>.sql), for example
        C(V1__create_users.sql), C(V1_1__add_index.sql). Files not ending in C(.sql) are ignored; a C(.sql) file
        without that name pattern is an error, so a misnamed migration is never skipped silently.
    type: path
  boot_record:
    description: Path of a boot record; migrating its default entry (the live database) is refused unless O(force=true).
    type: path
  force:
    description: Migrate even when O(login_db) is the default entry of O(boot_record).
    type: bool
    default: false
notes:
  - Migrations are plain SQL; psql meta-commands (C(\i), C(\set), ...) and C(COPY ... FROM STDIN) are not supported.
  - A non-transactional migration that fails part way leaves its earlier statements committed and is not recorded;
    write such migrations so that they can run again (C(IF NOT EXISTS)).
  - A failed C(CREATE INDEX CONCURRENTLY) leaves an INVALID index; the failure names it. A migration is never
    recorded as applied while an index it creates by name (or one that appeared while a non-transactional migration
    ran) is INVALID, so a re-run whose C(IF NOT EXISTS) skipped the leftover fails until it is dropped.
  - Use C(lookup('file', ...)) for SQL files kept on the controller.
seealso:
  - module: dualboot.db.postgresql_clone
  - module: dualboot.db.postgresql_schema_diff
"""

EXAMPLES = r"""
- name: R1 - rename users.user_name to full_name and make it text, on the staged entry
  dualboot.db.postgresql_migrate:
    login_host: db1
    login_user: dualboot
    login_password: "{{ vault_db_password }}"
    login_db: shop_green
    boot_record: /var/lib/dualboot/shop.json
    migrations:
      - version: "1"
        description: rename user_name to full_name as text
        sql: |
          ALTER TABLE users RENAME COLUMN user_name TO full_name;
          ALTER TABLE users ALTER COLUMN full_name TYPE text;

- name: A Flyway-style directory copied to the database host
  dualboot.db.postgresql_migrate:
    login_db: shop_green
    migrations_dir: /srv/shop/migrations

- name: Build an index without blocking writes
  dualboot.db.postgresql_migrate:
    login_db: shop_green
    migrations:
      - version: "4"
        description: index on last_login
        transactional: false
        sql: CREATE INDEX CONCURRENTLY IF NOT EXISTS users_last_login ON users (last_login);
"""

RETURN = r"""
applied:
  description: Migrations applied by this run, in order.
  returned: always
  type: list
  elements: dict
  sample: [{version: "1", description: rename user_name, script: inline, transactional: true, statements: 2, duration_ms: 41}]
pending:
  description: Migrations that would run (check mode) - empty after a real run.
  returned: always
  type: list
  elements: dict
  sample: [{version: "2", description: add profiles, script: V2__add_profiles.sql, transactional: true}]
already_applied:
  description: Number of given migrations that were applied before this run.
  returned: success
  type: int
  sample: 1
applied_not_given:
  description: Versions recorded as applied in the database but not among the given migrations.
  returned: success
  type: list
  elements: str
  sample: []
current_version:
  description: Highest applied version after the run (or now, in check mode); null when none.
  returned: success
  type: str
  sample: "2"
warnings:
  description: Notes such as a refusal overridden by O(force).
  returned: always
  type: list
  elements: str
  sample: []
duration_s:
  description: Seconds the task took.
  returned: success
  type: float
  sample: 0.8
failed_migration:
  description: On failure, the migration, statement and server error.
  returned: failure of a migration
  type: dict
  sample: {version: "3", script: V3__bad.sql, statement_index: 2, line: 7, sqlstate: "42601", error: syntax error at or near "TABEL"}
summary:
  description: One line for people.
  returned: always
  type: str
  sample: applied 2 migration(s) (1, 2) to dualboot@db1:5432/shop_green in 0.8 s
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.dualboot.db.plugins.module_utils import runner  # noqa: E402
from ansible_collections.dualboot.db.plugins.module_utils.pg_migrate import migrate  # noqa: E402
from ansible_collections.dualboot.db.plugins.module_utils.postgresql import PSYCOPG_IMPORT_ERROR, connection_spec, from_params  # noqa: E402


def main():
    argument_spec = connection_spec()
    argument_spec.update(
        migrations={"type": "list", "elements": "dict", "default": []},
        migrations_dir={"type": "path"},
        boot_record={"type": "path"},
        force={"type": "bool", "default": False},
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    runner.require(module, "psycopg", PSYCOPG_IMPORT_ERROR)
    p = module.params
    if not p["login_db"]:
        module.fail_json(msg="login_db is required: it names the database to migrate (the staged entry).")
    runner.run(
        module,
        migrate,
        from_params(p),
        migrations=p["migrations"],
        migrations_dir=p["migrations_dir"],
        boot_record=p["boot_record"],
        force=p["force"],
        check_mode=module.check_mode,
    )


if __name__ == "__main__":
    main()
