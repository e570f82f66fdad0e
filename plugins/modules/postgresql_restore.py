#!/usr/bin/python
# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: postgresql_restore
short_description: Restore a PostgreSQL backup into a database, verified first and renamed into place at the end
version_added: "0.1.0"
description:
  - Restores a backup made by M(dualboot.db.postgresql_backup) into the database O(login_db).
  - Verifies the backup before touching any server - every file's presence, size and sha256 against C(manifest.json),
    and the manifest's own checksum - and refuses a backup of a newer PostgreSQL major version than the target's.
  - Builds the database under a temporary name C(<login_db>__dualboot_tmp_<random>) with C(pg_restore --jobs
    --exit-on-error) (C(psql --single-transaction) for plain dumps), runs C(ANALYZE), re-applies the source's
    database-level settings and owner, and only then renames it to O(login_db). A failed restore drops the temporary
    database and leaves the target as it was; with O(if_exists=replace) the old target is dropped only after the new
    one is in place. The temporary databases of the same target that an interrupted earlier run left are dropped first
    and named in RV(warnings); one with open sessions stays.
  - Refuses to overwrite the database the backup was made from (same system identifier and database name, which also
    matches a physical copy of that server) and the default entry of O(boot_record), unless O(force=true).
author: dualboot.db contributors (@dualboot-db)
extends_documentation_fragment:
  - dualboot.db.postgresql
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Verifies the backup, connects and runs every check; creates nothing.
  diff_mode:
    support: full
    details: Shows whether the target existed and which backup it is restored from.
  platform:
    platforms: posix
options:
  src:
    description: The backup directory (the O(dualboot.db.postgresql_backup#module:dest) of a backup), on the host running the task.
    type: path
    required: true
  if_exists:
    description:
      - What to do when O(login_db) exists. C(fail) stops before restoring; C(replace) restores under a temporary name
        and swaps the new database in, dropping the old one afterwards. Sessions connected to the target make it fail.
    type: str
    choices: [fail, replace]
    default: fail
  jobs:
    description: Parallel pg_restore jobs. Defaults to the number of CPUs of the host running the task.
    type: int
  force:
    description:
      - Overwrite the target even when it is the backup's own source database or the default entry of O(boot_record).
    type: bool
    default: false
  boot_record:
    description: Path of a boot record; its default entry (the live database) is protected from being overwritten.
    type: path
  no_owner:
    description:
      - Restore without object ownership (C(pg_restore --no-owner)), for a target server that lacks the source's roles.
        Objects then belong to O(login_user). Not available for plain-format backups.
    type: bool
    default: false
  tablespace:
    description: Create the restored database in this tablespace of the target server.
    type: str
  analyze:
    description: Run C(ANALYZE) on the restored database before it is renamed into place, so planner statistics exist.
    type: bool
    default: true
  maintenance_db:
    description: Database to connect to on the target server to create, rename and drop databases.
    type: str
    default: postgres
  bin_dir:
    description: Directory holding C(pg_restore) and C(psql); by default the tools of the matching major version are looked up.
    type: path
notes:
  - O(login_db) is the target database (the staged entry); the other connection options name its server.
  - The login role needs C(CREATEDB), and ownership of the target to replace it.
seealso:
  - module: dualboot.db.postgresql_backup
  - module: dualboot.db.postgresql_clone
"""

EXAMPLES = r"""
- name: Restore rehearsal (R5) - last night's backup of the live entry into the staged entry
  dualboot.db.postgresql_restore:
    login_host: db1
    login_user: dualboot
    login_password: "{{ vault_db_password }}"
    login_db: shop_green
    src: /var/backups/dualboot/shop-latest
    if_exists: replace
    boot_record: /var/lib/dualboot/shop.json

- name: Restore onto a server without the source's roles
  dualboot.db.postgresql_restore:
    login_host: db2
    login_db: shop_copy
    src: /var/backups/dualboot/shop-latest
    no_owner: true
"""

RETURN = r"""
target:
  description: The target database (C(user@host:port/db), no password).
  returned: always
  type: str
  sample: dualboot@db1:5432/shop_green
src:
  description: The backup restored.
  returned: always
  type: str
  sample: /var/backups/dualboot/shop-latest
backup_id:
  description: Id of the backup (from its manifest).
  returned: success
  type: str
  sample: 6f1c2a0e-0d0b-4c45-9a61-3f0f3b0c9a11
source_database:
  description: The database the backup was made from.
  returned: success
  type: str
  sample: shop
snapshot_time:
  description: Time of the backup's snapshot (UTC).
  returned: success
  type: str
  sample: "2026-11-21T16:00:00.123456Z"
replaced:
  description: Whether an existing target database was replaced.
  returned: always
  type: bool
  sample: true
jobs:
  description: Parallel restore jobs used.
  returned: success
  type: int
  sample: 2
verified:
  description: What the verification checked (files, bytes, seconds).
  returned: always
  type: dict
  sample: {files: 7, bytes: 734003200, seconds: 1.9}
duration_s:
  description: Seconds the whole task took.
  returned: success
  type: float
  sample: 21.7
throughput_mb_s:
  description: Source database size in MiB divided by RV(duration_s).
  returned: success
  type: float
  sample: 47.2
timings:
  description: Seconds per step (C(verify_s), C(restore_s), C(analyze_s)).
  returned: success
  type: dict
  sample: {verify_s: 1.9, restore_s: 18.2, analyze_s: 1.1}
marker:
  description: The drift marker stored with the backup (the point in time the restored data describes).
  returned: success
  type: dict
  sample: {database: shop, taken_at: "2026-11-21T16:00:00.123456Z", tables: []}
warnings:
  description: Notes such as a safety refusal overridden by O(force) or a source owner missing on the target.
  returned: always
  type: list
  elements: str
  sample: []
summary:
  description: One line for people.
  returned: always
  type: str
  sample: restored shop (snapshot 2026-11-21T16:00:00Z, 1.0 GiB) into dualboot@db1:5432/shop_green in 21.7 s (47.2 MB/s, 2 job(s))
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.dualboot.db.plugins.module_utils import runner  # noqa: E402
from ansible_collections.dualboot.db.plugins.module_utils.pg_backup import restore  # noqa: E402
from ansible_collections.dualboot.db.plugins.module_utils.postgresql import PSYCOPG_IMPORT_ERROR, connection_spec, from_params  # noqa: E402


def main():
    argument_spec = connection_spec()
    argument_spec.update(
        src={"type": "path", "required": True},
        if_exists={"type": "str", "choices": ["fail", "replace"], "default": "fail"},
        jobs={"type": "int"},
        force={"type": "bool", "default": False},
        boot_record={"type": "path"},
        no_owner={"type": "bool", "default": False},
        tablespace={"type": "str"},
        analyze={"type": "bool", "default": True},
        maintenance_db={"type": "str", "default": "postgres"},
        bin_dir={"type": "path"},
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    runner.require(module, "psycopg", PSYCOPG_IMPORT_ERROR)
    p = module.params
    if not p["login_db"]:
        module.fail_json(msg="login_db is required: it names the database to restore into.")
    runner.run(
        module,
        restore,
        from_params(p),
        p["src"],
        if_exists=p["if_exists"],
        jobs=p["jobs"],
        force=p["force"],
        boot_record=p["boot_record"],
        no_owner=p["no_owner"],
        tablespace=p["tablespace"],
        run_analyze=p["analyze"],
        maintenance_db=p["maintenance_db"],
        bin_dir=p["bin_dir"],
        check_mode=module.check_mode,
    )


if __name__ == "__main__":
    main()
