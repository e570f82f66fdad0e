#!/usr/bin/python
# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: postgresql_clone
short_description: Copy the default entry into the staged entry in one step, by the fastest correct path
version_added: "0.1.0"
description:
  - Copies the O(source) database (the default entry) to the O(target) database (the staged entry) and returns the
    drift marker of the copy point, for M(dualboot.db.postgresql_drift).
  - C(template) - same server - C(CREATE DATABASE ... TEMPLATE), a file-level copy inside the server and the fastest
    path; it needs the source to have no other session while it runs.
  - C(dump_restore) - C(pg_dump --format=directory --jobs) from an exported snapshot into a private temporary
    directory (removed afterwards), then C(pg_restore --jobs --exit-on-error).
  - C(pipe) - C(pg_dump --format=custom | pg_restore), no intermediate file, one job on each side.
  - C(stream) - the schema first (C(pg_restore --section=pre-data)), then every table's rows through parallel
    C(psql COPY ... TO STDOUT | psql COPY ... FROM STDIN) pipes between the servers (tables of 16 MiB and more,
    split in ctid ranges on PostgreSQL 14+ so that one big table uses every job; the others, sequence values and
    large objects in one C(pg_dump --data-only | pg_restore)), then indexes, constraints and triggers with
    C(pg_restore --section=post-data --jobs). No intermediate data file; all reads share one exported snapshot.
    Between servers of the same major version, a table whose columns are all of PostgreSQL's own types (or enums)
    goes in binary COPY format (C(timings.binary_tables)); the others, and every table across major versions, as text.
  - C(physical) - C(pg_basebackup) of the whole source cluster into O(target_data_dir), started as a cluster of its own
    on the target's C(target.login_port) by O(os_user). The copy replays the backup's WAL and comes up as a primary
    (promoted) that shares nothing with the source; archiving and logical replication workers are switched off in it.
  - C(auto) picks C(physical) when O(target_data_dir) is given (the staged entry is a cluster of its own), else
    C(template) on the same server when no other session uses the source, else C(stream), measured fastest of the
    logical methods across servers (see the collection's benchmarks). RV(method_reason) says which and why.
  - Every method but C(physical) builds the target as C(<target>__dualboot_tmp_<random>) and renames it into place
    at the end, so a failed clone never leaves a half database under the target's name.
  - The temporary databases of the same target that an interrupted earlier run left (C(__dualboot_tmp_), C(_probe_),
    C(_check_)) are dropped first and named in RV(warnings); one with open sessions stays.
author: dualboot.db contributors (@dualboot-db)
extends_documentation_fragment:
  - dualboot.db.postgresql
  - dualboot.db.postgresql.endpoints
  - ansible.builtin.action_common_attributes
  - dualboot.db.background
attributes:
  check_mode:
    support: full
    details: Connects to both sides, runs every check and reports the method it would use; copies nothing.
  diff_mode:
    support: full
    details: Shows whether the target existed and where it is cloned from.
  platform:
    platforms: posix
options:
  method:
    description: How to copy; see the description. C(auto) chooses and says why in RV(method_reason).
    type: str
    choices: [auto, template, dump_restore, pipe, stream, physical]
    default: auto
  if_exists:
    description:
      - What to do when the target database (or O(target_data_dir) for C(physical)) exists. C(fail) stops;
        C(replace) builds the new copy first and swaps it in (C(physical) stops and deletes the old cluster first).
    type: str
    choices: [fail, replace]
    default: fail
  jobs:
    description:
      - Parallel jobs of C(dump_restore) (pg_dump and pg_restore) and C(stream) (COPY pipes, index builds). Defaults to
        the number of CPUs of the host running the task.
    type: int
  force:
    description: Overwrite the target even when it is the default entry of O(boot_record).
    type: bool
    default: false
  boot_record:
    description: Path of a boot record; its default entry (the live database) is protected from being overwritten.
    type: path
  tmp_dir:
    description:
      - Directory for the intermediate dump of C(dump_restore) and the schema archive of C(stream) (a private
        subdirectory, removed afterwards). Defaults to the system's temporary directory.
    type: path
  analyze:
    description:
      - Run C(ANALYZE) on a dumped-and-restored copy before it is renamed into place (template and physical copies
        keep their statistics).
    type: bool
    default: true
  no_owner:
    description: Restore without object ownership, for a target server that lacks the source's roles (not for C(template), C(physical)).
    type: bool
    default: false
  tablespace:
    description: Create the copy in this tablespace of the target server (not for C(physical)).
    type: str
  maintenance_db:
    description: Database to connect to on the target server to create, rename and drop databases.
    type: str
    default: postgres
  bin_dir:
    description: Directory holding the PostgreSQL client and server tools; by default those of the source's major version are looked up.
    type: path
  target_data_dir:
    description:
      - Data directory of the new cluster (C(physical) only, and C(auto) then chooses C(physical)); created, or replaced
        with O(if_exists=replace).
    type: path
  os_user:
    description: System user that owns and runs the new cluster (C(physical) only). PostgreSQL refuses to run as root.
    type: str
    default: postgres
  target_settings:
    description:
      - Settings written to the new cluster's C(postgresql.auto.conf) (C(physical) only), for example C(shared_buffers).
        C(port) is always the target's C(target.login_port).
    type: dict
    default: {}
  target_major:
    description:
      - Major version of the new cluster (C(physical) only). When newer than the source's, the base backup is upgraded
        with C(pg_upgrade) into a new cluster of this major before it starts - the fast path of a major-version upgrade.
        The source is never touched. Unset (or the source's major) keeps the source's major.
      - The new cluster gets the source's C(pg_hba.conf), C(pg_ident.conf), the other files of its data directory
        (certificates, included configuration) and every setting of its configuration files that this major still
        knows (the others are named in RV(warnings)); O(target_settings) win over them.
    type: int
  upgrade_mode:
    description:
      - How C(pg_upgrade) moves the copy's files into the new cluster (with O(target_major)). C(link) hard-links them
        (the fastest; the intermediate copy is ours and deleted afterwards), C(clone) uses reflinks (Btrfs, XFS),
        C(copy) copies them.
    type: str
    choices: [link, clone, copy]
    default: link
  target_bin_dir:
    description:
      - Directory of the server tools of O(target_major) (C(initdb), C(pg_ctl), C(pg_upgrade), C(postgres));
        by default they are looked up for that major (Debian C(/usr/lib/postgresql/<major>/bin)).
    type: path
notes:
  - C(source.login_db) (or O(login_db)) is the database to copy; C(target.login_db) the staged entry's database. For
    C(physical) the whole cluster is copied and the target database has the source's name.
  - C(physical) with O(target_major) needs the server binaries of both majors on the host of the new cluster, and
    a source that C(pg_upgrade) accepts (it refuses, for example, extensions missing from the new major); its
    findings are in the failure message. Planner statistics are gathered afterwards (C(vacuumdb --analyze-only))
    when O(analyze) is true.
  - C(physical) refuses a source cluster with tablespaces (a copy on the same host would write into their directories).
  - C(physical) needs a source whose configuration files live in its data directory, a replication connection
    (C(REPLICATION) role, C(pg_hba.conf) entry), the privileges of C(pg_read_all_settings) (or superuser) and runs on
    the host of the new cluster. Managed services (RDS, Cloud SQL, Azure) allow no physical copy.
  - A login role that is not a superuser is checked before anything is created (as M(dualboot.db.postgresql_preflight)
    with C(step=stage) does) - C(SELECT) on every table and sequence of the source, C(CREATEDB) on the target server,
    ownership of an existing target, membership in the source database's owner role unless O(no_owner) - and the task
    fails naming each missing privilege with its GRANT. C(template) needs the source owned by the login role or marked
    as a template; C(auto) copies with C(stream) instead when it is neither, and says so in RV(method_reason).
seealso:
  - module: dualboot.db.postgresql_migrate
  - module: dualboot.db.postgresql_drift
  - module: dualboot.db.postgresql_backup
"""

EXAMPLES = r"""
- name: Stage - copy the default entry (blue) into the staged entry (green) on the same server
  dualboot.db.postgresql_clone:
    login_host: db1
    login_user: dualboot
    login_password: "{{ vault_db_password }}"
    source:
      login_db: shop_blue
    target:
      login_db: shop_green
    if_exists: replace
    boot_record: /var/lib/dualboot/shop.json
  register: stage

- name: Across servers, the staged entry on its own host
  dualboot.db.postgresql_clone:
    login_user: dualboot
    login_password: "{{ vault_db_password }}"
    source: {login_host: db1, login_db: shop}
    target: {login_host: db2, login_db: shop}

- name: A whole-cluster copy as the staged entry, on port 5433 of the same host
  dualboot.db.postgresql_clone:
    method: physical
    login_user: postgres
    login_unix_socket: /run/postgresql
    source: {login_db: shop, login_port: 5432}
    target: {login_port: 5433}
    target_data_dir: /var/lib/postgresql/15/green
    os_user: postgres

- name: A major-version upgrade - the PostgreSQL 13 cluster copied and upgraded to 17, the 13 left untouched
  dualboot.db.postgresql_clone:
    method: physical
    login_user: postgres
    login_unix_socket: /run/postgresql
    source: {login_db: shop, login_port: 5432}
    target: {login_port: 5433}
    target_data_dir: /var/lib/postgresql/17/green
    target_major: 17
    os_user: postgres

- name: Later - has the default entry moved on since the copy?
  dualboot.db.postgresql_drift:
    login_host: db1
    login_db: shop_blue
    marker: "{{ stage.marker }}"
"""

RETURN = r"""
method:
  description: The method used.
  returned: always
  type: str
  sample: template
method_reason:
  description: Why that method was used.
  returned: always
  type: str
  sample: same server and no other session on the source - a file-level copy inside the server is the fastest path.
source:
  description: The source database (no password).
  returned: always
  type: str
  sample: dualboot@db1:5432/shop_blue
target:
  description: The target database (no password).
  returned: always
  type: str
  sample: dualboot@db1:5432/shop_green
replaced:
  description: Whether an existing target was replaced.
  returned: always
  type: bool
  sample: false
database_size_bytes:
  description: Size of the source database.
  returned: success
  type: int
  sample: 1073741824
jobs:
  description: Parallel jobs used (C(dump_restore)).
  returned: when method is not physical
  type: int
  sample: 2
duration_s:
  description: Seconds the whole task took.
  returned: success
  type: float
  sample: 9.8
throughput_mb_s:
  description: MiB copied (database, or whole cluster for C(physical)) divided by RV(duration_s).
  returned: success
  type: float
  sample: 104.5
timings:
  description:
    - Seconds per step (for example C(copy_s), C(dump_s), C(restore_s), C(row_count_s), C(analyze_s), C(basebackup_s)).
    - With O(target_major) also C(recovery_s) (the copy's WAL replayed), C(initdb_s) and C(upgrade_s) (C(pg_upgrade)).
  returned: success
  type: dict
  sample: {copy_s: 6.1, row_count_s: 2.9}
marker:
  description: The drift marker of the copy point; give it to M(dualboot.db.postgresql_drift).
  returned: success
  type: dict
  sample: {database: shop_blue, taken_at: "2026-11-21T16:00:00.123456Z", wal_lsn: 0/3000060, tables: []}
warnings:
  description: Notes such as a source owner missing on the target.
  returned: always
  type: list
  elements: str
  sample: []
data_dir:
  description: Data directory of the new cluster.
  returned: when method is physical
  type: str
  sample: /var/lib/postgresql/15/green
cluster_size_bytes:
  description: Size of the new cluster's data directory.
  returned: when method is physical and not in check mode
  type: int
  sample: 1181116006
stop_command:
  description: How to stop the new cluster.
  returned: when method is physical and not in check mode
  type: str
  sample: /usr/lib/postgresql/15/bin/pg_ctl -D /var/lib/postgresql/15/green stop (as postgres)
server_version_num:
  description: The new cluster's C(server_version_num) (its major differs from the source's after an upgrade).
  returned: when method is physical and not in check mode
  type: int
  sample: 170006
summary:
  description: One line for people.
  returned: always
  type: str
  sample: cloned dualboot@db1:5432/shop_blue (1.0 GiB) to dualboot@db1:5432/shop_green with template in 9.8 s (104.5 MB/s)
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.dualboot.db.plugins.module_utils import runner  # noqa: E402
from ansible_collections.dualboot.db.plugins.module_utils.pg_clone import clone  # noqa: E402
from ansible_collections.dualboot.db.plugins.module_utils.postgresql import (  # noqa: E402
    PSYCOPG_IMPORT_ERROR,
    connection_spec,
    endpoint_spec,
    from_params,
)


def main():
    argument_spec = connection_spec()
    argument_spec.update(
        source=endpoint_spec(),
        target=endpoint_spec(),
        method={"type": "str", "choices": ["auto", "template", "dump_restore", "pipe", "stream", "physical"], "default": "auto"},
        if_exists={"type": "str", "choices": ["fail", "replace"], "default": "fail"},
        jobs={"type": "int"},
        force={"type": "bool", "default": False},
        boot_record={"type": "path"},
        tmp_dir={"type": "path"},
        analyze={"type": "bool", "default": True},
        no_owner={"type": "bool", "default": False},
        tablespace={"type": "str"},
        maintenance_db={"type": "str", "default": "postgres"},
        bin_dir={"type": "path"},
        target_data_dir={"type": "path"},
        os_user={"type": "str", "default": "postgres"},
        target_settings={"type": "dict", "default": {}},
        target_major={"type": "int"},
        upgrade_mode={"type": "str", "choices": ["link", "clone", "copy"], "default": "link"},
        target_bin_dir={"type": "path"},
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_if=[("method", "physical", ["target_data_dir"])],
    )
    runner.require(module, "psycopg", PSYCOPG_IMPORT_ERROR)
    p = module.params
    source = from_params(p, side="source")
    if not (p.get("source") or {}).get("login_db") and not p["login_db"]:
        module.fail_json(msg="source.login_db (or login_db) is required: it names the database to copy.")
    whole_cluster = p["method"] == "physical" or (p["method"] == "auto" and p["target_data_dir"])
    target_db = (p.get("target") or {}).get("login_db") or p["login_db"] or (source.dbname if whole_cluster else None)
    if not target_db:
        module.fail_json(msg="target.login_db (or login_db) is required: it names the staged entry's database.")
    runner.run(
        module,
        clone,
        source,
        from_params(p, side="target", dbname=target_db),
        method=p["method"],
        if_exists=p["if_exists"],
        jobs=p["jobs"],
        force=p["force"],
        boot_record=p["boot_record"],
        tmp_dir=p["tmp_dir"],
        run_analyze=p["analyze"],
        no_owner=p["no_owner"],
        tablespace=p["tablespace"],
        maintenance_db=p["maintenance_db"],
        bin_dir=p["bin_dir"],
        physical={k: p[k] for k in ("target_data_dir", "os_user", "target_settings", "target_major", "upgrade_mode", "target_bin_dir")},
        check_mode=module.check_mode,
    )


if __name__ == "__main__":
    main()
