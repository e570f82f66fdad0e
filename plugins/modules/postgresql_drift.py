#!/usr/bin/python
# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: postgresql_drift
short_description: Tell whether the default entry took writes since a backup or clone
version_added: "0.1.0"
description:
  - Compares the database O(login_db) (the default entry) with the drift marker that
    M(dualboot.db.postgresql_backup) or M(dualboot.db.postgresql_clone) recorded at its copy point, and reports
    whether it took writes since, which tables and about how many rows.
  - No false negatives - every committed C(INSERT), C(UPDATE), C(DELETE) and C(TRUNCATE) since the marker is reported.
    A "no" is always proven, either by the transaction id horizon (no transaction completed on the server since the
    marker) or by an exact scan of every table. A "yes" may include writes that were rolled back.
  - Order of checks, cheapest first - catalog (tables added, dropped or rewritten), transaction id horizon, the
    statistics counters (C(pg_stat_user_tables)), and the exact scan, which reads every table once. The statistics
    only ever prove writes - PostgreSQL 15 publishes a session's counters when the session goes idle - and after a
    statistics reset they are not used at all.
  - Read only; runs in one C(REPEATABLE READ READ ONLY) transaction.
author: dualboot.db contributors (@dualboot-db)
extends_documentation_fragment:
  - dualboot.db.postgresql
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The module only reads; it runs completely in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  marker:
    description: The RV(dualboot.db.postgresql_clone#module:marker) of a clone or backup result.
    type: dict
  backup:
    description: A backup directory made by M(dualboot.db.postgresql_backup); its manifest's marker is used.
    type: path
  mark:
    description:
      - Take a marker of O(login_db) now instead of checking one, returned as RV(marker) for a later check. Counts
        every table's rows (one read of the database). Cutover marks the entry applications are about to write to,
        so rollback can tell whether it took writes since.
    type: bool
    default: false
  exact:
    description:
      - Always read every table (unless the transaction id horizon proves that nothing was written), so RV(tables) is
        complete and its row numbers exact. Otherwise rising statistics counters answer "yes" without the scan.
    type: bool
    default: false
notes:
  - The marker must come from the same server and database (system identifier and name are checked).
  - Cost - catalog, horizon and counters are a few milliseconds; the exact scan reads each table sequentially once
    (see the collection's docs/postgresql-staging.md for measured figures).
seealso:
  - module: dualboot.db.postgresql_clone
  - module: dualboot.db.postgresql_backup
"""

EXAMPLES = r"""
- name: Stage, then later check whether live moved on
  dualboot.db.postgresql_clone:
    source: {login_db: shop_blue}
    target: {login_db: shop_green}
  register: stage

- name: Drift check before the cutover
  dualboot.db.postgresql_drift:
    login_db: shop_blue
    marker: "{{ stage.marker }}"
  register: drift

- name: Stop when live took writes
  ansible.builtin.assert:
    that: not drift.drift
    fail_msg: "{{ drift.summary }}"

- name: Against a backup, listing every written table exactly
  dualboot.db.postgresql_drift:
    login_db: shop
    backup: /var/backups/dualboot/shop-latest
    exact: true
"""

RETURN = r"""
drift:
  description: Whether the database took writes (or DDL) since the marker.
  returned: success
  type: bool
  sample: true
method:
  description:
    - How the answer was reached - C(xid_horizon), C(counters), C(exact_scan), or C(conservative) (drift assumed because
      the marker cannot be compared any more, for example after 2^31 transactions).
  returned: success
  type: str
  sample: exact_scan
reason:
  description: The answer in a sentence.
  returned: success
  type: str
  sample: "exact scan (counters show no writes): every table was read and compared with the marker's row counts; 1 table(s) changed."
tables:
  description:
    - Tables with changes - C(table), C(change) (C(written), C(added), C(dropped), C(rewritten)), C(rows_changed)
      (approximate rows inserted, updated or deleted) and C(detail) (counter deltas, or rows written and removed).
  returned: success
  type: list
  elements: dict
  sample: [{table: public.users, change: written, rows_changed: 2, detail: {rows_written_since: 1, rows_removed_since: 1}}]
tables_complete:
  description: Whether RV(tables) lists every changed table (false when the counters answered).
  returned: success
  type: bool
  sample: true
marker:
  description:
    - The marker compared against (database, taken_at, wal_lsn, snapshot, system_identifier, tables).
    - With O(mark), the whole new marker, to keep and give to O(marker) later.
  returned: success
  type: dict
  sample: {database: shop, taken_at: "2026-11-21T16:00:00.123456Z", wal_lsn: 0/3000060, snapshot: "745:745:", tables: 4}
seconds_since_marker:
  description: Age of the marker.
  returned: success
  type: float
  sample: 3600.5
wal_bytes_since_marker:
  description: WAL written by the whole server since the marker (an upper bound of the write volume).
  returned: success
  type: int
  sample: 1048576
stats_reset:
  description: When the database's statistics were last reset (null when never).
  returned: success
  type: str
  sample: null
duration_s:
  description: Seconds the check took.
  returned: success
  type: float
  sample: 0.02
summary:
  description: One line for people.
  returned: success
  type: str
  sample: "app@db1:5432/shop took writes since the marker of 2026-11-21T16:00:00Z (exact_scan): public.users (written, ~2 rows)"
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.dualboot.db.plugins.module_utils import runner  # noqa: E402
from ansible_collections.dualboot.db.plugins.module_utils.pg_drift import drift, mark  # noqa: E402
from ansible_collections.dualboot.db.plugins.module_utils.postgresql import PSYCOPG_IMPORT_ERROR, connection_spec, from_params  # noqa: E402


def main():
    argument_spec = connection_spec()
    argument_spec.update(
        marker={"type": "dict"},
        backup={"type": "path"},
        exact={"type": "bool", "default": False},
        mark={"type": "bool", "default": False},
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        mutually_exclusive=[("marker", "backup", "mark")],
        required_one_of=[("marker", "backup", "mark")],
    )
    runner.require(module, "psycopg", PSYCOPG_IMPORT_ERROR)
    p = module.params
    if not p["login_db"]:
        module.fail_json(msg="login_db is required: it names the default entry's database to check.")
    if p["mark"]:
        runner.run(module, mark, from_params(p))
    runner.run(module, drift, from_params(p), marker=p["marker"], backup=p["backup"], exact=p["exact"])


if __name__ == "__main__":
    main()
