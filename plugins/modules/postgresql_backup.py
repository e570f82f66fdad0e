#!/usr/bin/python
# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: postgresql_backup
short_description: Back up a PostgreSQL database with pg_dump, a verifiable manifest and a drift marker
version_added: "0.1.0"
description:
  - Dumps the database O(login_db) with C(pg_dump) into the directory O(dest), by default in directory format with
    parallel O(jobs), and writes C(manifest.json) next to the dump, with the sha256 and size of every file, the server
    version and system identifier, the database, the snapshot time, the WAL position and the drift marker (per-table
    write counters and row classes that M(dualboot.db.postgresql_drift) compares later).
  - pg_dump runs inside a snapshot exported by a C(REPEATABLE READ) transaction that stays open for the whole dump,
    so the marker describes exactly the dumped data.
  - The backup is written to C(<dest>.partial-<random>) and renamed to O(dest) only when the dump is complete,
    C(pg_restore --list) reads it and the manifest is on disk, so an interrupted backup is never mistaken for a good
    one. Files are created C(0600), directories C(0700).
  - pg_dump's exit code and its error output are both checked (pg_dump has exited 0 after errors).
  - The password goes to pg_dump through the environment, never on its command line.
author: dualboot.db contributors (@dualboot-db)
extends_documentation_fragment:
  - dualboot.db.postgresql
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Connects, checks O(dest) and the client tools, and reports what it would write; writes nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  dest:
    description:
      - Directory to create for the backup, on the host running the task. Its parent must exist.
    type: path
    required: true
  format:
    description:
      - C(directory) is pg_dump's directory format, dumped and restorable with parallel jobs.
      - C(custom) is one compressed-capable archive file, restorable with parallel jobs.
      - C(plain) is an SQL script, restored with psql.
    type: str
    choices: [directory, custom, plain]
    default: directory
  jobs:
    description:
      - Parallel pg_dump jobs (directory format only). Defaults to the number of CPUs of the host running the task.
      - Each job holds one connection to the server.
    type: int
  compress:
    description:
      - pg_dump compression level, C(0) (none) to C(9). Off by default, which is fastest for local staging copies.
    type: int
    default: 0
  if_exists:
    description:
      - What to do when O(dest) exists. C(fail) stops; C(replace) replaces it once the new backup is complete, and
        only when it is a backup made by this module (or an empty directory).
    type: str
    choices: [fail, replace]
    default: fail
  bin_dir:
    description:
      - Directory holding C(pg_dump) and C(pg_restore). By default the tools of the server's major version are
        looked up in C(/usr/lib/postgresql/<major>/bin), C(/usr/pgsql-<major>/bin) and the PATH (a newer major works too).
    type: path
notes:
  - O(login_db) names the database to back up. Roles and other cluster-wide objects are not part of a database dump;
    database-level settings (C(ALTER DATABASE ... SET)), encoding, locale and owner are recorded in the manifest and
    re-applied by M(dualboot.db.postgresql_restore).
  - While pg_dump runs, the snapshot transaction counts the rows of every table (the exact part of the drift marker);
    this reads the database once more and shows in C(row_count_s) in RV(timings).
seealso:
  - module: dualboot.db.postgresql_restore
  - module: dualboot.db.postgresql_drift
  - module: dualboot.db.postgresql_clone
"""

EXAMPLES = r"""
- name: Back up the live database before staging
  dualboot.db.postgresql_backup:
    login_host: db1
    login_user: dualboot
    login_password: "{{ vault_db_password }}"
    login_db: shop
    dest: /var/backups/dualboot/shop-{{ ansible_date_time.iso8601_basic_short }}
  register: backup

- name: One archive file, compressed, replacing yesterday's
  dualboot.db.postgresql_backup:
    login_db: shop
    login_unix_socket: /run/postgresql
    dest: /var/backups/dualboot/shop-latest
    format: custom
    compress: 6
    if_exists: replace
"""

RETURN = r"""
dest:
  description: The backup directory.
  returned: always
  type: str
  sample: /var/backups/dualboot/shop-20261121T160000
format:
  description: pg_dump format used.
  returned: always
  type: str
  sample: directory
jobs:
  description: Parallel pg_dump jobs used.
  returned: always
  type: int
  sample: 2
compress:
  description: Compression level used.
  returned: success
  type: int
  sample: 0
database:
  description: The database backed up.
  returned: always
  type: str
  sample: shop
database_size_bytes:
  description: Size of the database on the server (C(pg_database_size)).
  returned: always
  type: int
  sample: 1073741824
size_bytes:
  description: Bytes written (all files of the backup except the manifest).
  returned: success
  type: int
  sample: 734003200
files:
  description: Number of files in the backup besides the manifest.
  returned: success
  type: int
  sample: 7
duration_s:
  description: Seconds the whole task took.
  returned: success
  type: float
  sample: 12.4
throughput_mb_s:
  description: Database size in MiB divided by RV(duration_s).
  returned: success
  type: float
  sample: 82.6
timings:
  description: Seconds per step (C(dump_s) includes the concurrent row count, C(row_count_s), C(checksum_s)).
  returned: success
  type: dict
  sample: {dump_s: 10.1, row_count_s: 3.2, checksum_s: 1.8}
replaced:
  description: Whether an existing backup at O(dest) was replaced.
  returned: always
  type: bool
  sample: false
manifest:
  description: Path, id and checksum of the manifest.
  returned: success
  type: dict
  sample: {path: /var/backups/dualboot/shop/manifest.json, id: 6f1c2a0e-0d0b-4c45-9a61-3f0f3b0c9a11, checksum: 9b1f...}
server_version:
  description: Version of the server backed up.
  returned: success
  type: str
  sample: "15.10"
marker:
  description:
    - The drift marker of the dump's snapshot (also stored in the manifest); give it, or O(dest), to
      M(dualboot.db.postgresql_drift).
  returned: success
  type: dict
  sample: {database: shop, taken_at: "2026-11-21T16:00:00.123456Z", wal_lsn: 0/3000060, snapshot: "745:745:", tables: []}
summary:
  description: One line for people.
  returned: always
  type: str
  sample: backed up app@db1:5432/shop (1.0 GiB, 10000000 rows in 4 tables) to /var/backups/dualboot/shop in 12.4 s (82.6 MB/s, ...)
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.dualboot.db.plugins.module_utils import runner  # noqa: E402
from ansible_collections.dualboot.db.plugins.module_utils.pg_backup import backup  # noqa: E402
from ansible_collections.dualboot.db.plugins.module_utils.postgresql import PSYCOPG_IMPORT_ERROR, connection_spec, from_params  # noqa: E402


def main():
    argument_spec = connection_spec()
    argument_spec.update(
        dest={"type": "path", "required": True},
        format={"type": "str", "choices": ["directory", "custom", "plain"], "default": "directory"},
        jobs={"type": "int"},
        compress={"type": "int", "default": 0},
        if_exists={"type": "str", "choices": ["fail", "replace"], "default": "fail"},
        bin_dir={"type": "path"},
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    runner.require(module, "psycopg", PSYCOPG_IMPORT_ERROR)
    if not module.params["login_db"]:
        module.fail_json(msg="login_db is required: it names the database to back up.")
    p = module.params
    runner.run(
        module,
        backup,
        from_params(p),
        p["dest"],
        fmt=p["format"],
        jobs=p["jobs"],
        compress=p["compress"],
        if_exists=p["if_exists"],
        bin_dir=p["bin_dir"],
        check_mode=module.check_mode,
    )


if __name__ == "__main__":
    main()
