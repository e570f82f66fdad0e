#!/usr/bin/python
# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: postgresql_freeze
short_description: Make a PostgreSQL database read-only for a cutover, and back
version_added: "0.1.0"
description:
  - V(frozen) makes the database O(login_db) read-only for new B(and) existing sessions, so the default entry takes no
    more writes while the applications move to the staged entry. V(thawed) undoes exactly what freeze did.
  - New sessions start read-only - freeze sets C(default_transaction_read_only = on) for the database.
  - Existing sessions keep the default they connected with, so freeze also puts a statement trigger C(dualboot_freeze)
    on every table that refuses C(INSERT), C(UPDATE), C(DELETE) and C(TRUNCATE) with the SQLSTATE of a read-only
    transaction (25006). Installing it waits for open write transactions on each table, at most O(wait_timeout)
    seconds; sessions still writing then are terminated with O(terminate=true), otherwise freeze is undone and fails,
    naming them.
  - What freeze did (time, the previous C(default_transaction_read_only) setting of the database, whether it created
    the C(dualboot) schema) is recorded in the comment of the function C(dualboot.freeze_guard()); thaw reads it, drops the
    triggers and the function, and restores the setting.
  - Both directions are idempotent; C(changed) is true only when something was changed.
author: dualboot.db contributors (@dualboot-db)
extends_documentation_fragment:
  - dualboot.db.postgresql
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reports what would change (setting, tables to guard, open sessions) without changing anything.
  diff_mode:
    support: full
    details: Before and after of the database setting, the frozen state and the number of guarded tables.
  platform:
    platforms: posix
options:
  state:
    description: V(frozen) to make the database read-only, V(thawed) to undo a freeze.
    type: str
    choices: [frozen, thawed]
    default: frozen
  wait_timeout:
    description:
      - Seconds to wait for open write transactions (freeze) or for sessions holding the tables (thaw) before
        O(terminate) applies.
    type: float
    default: 30
  terminate:
    description:
      - Freeze - terminate the sessions whose write transactions are still open after O(wait_timeout) (they roll back).
      - Thaw - also terminate sessions opened while the database was frozen (they started read-only and would stay so
        until they reconnect), and sessions blocking the removal of the guard after O(wait_timeout).
      - Needs superuser or membership in C(pg_signal_backend).
    type: bool
    default: false
notes:
  - The login role must own the database and its tables (or be superuser), to change the database setting and to create
    and drop triggers, and have the privileges of C(pg_read_all_stats) to see other roles' sessions. A login role that is
    not a superuser is checked before anything changes; the task fails naming each missing privilege with its GRANT.
  - A session can still switch itself to read-write with C(SET default_transaction_read_only = off); the table triggers
    refuse its writes all the same. Freeze does not stop DDL in sessions that were open before it, and tables created
    while frozen have no guard until freeze runs again.
  - Tables of the C(dualboot) schema (the collection's own bookkeeping) are not guarded.
seealso:
  - module: dualboot.db.postgresql_schema_diff
  - module: dualboot.db.postgresql_compare
"""

EXAMPLES = r"""
- name: Freeze the default entry for the cutover; end writers that do not finish within 20 s
  dualboot.db.postgresql_freeze:
    login_host: db1
    login_user: postgres
    login_password: "{{ vault_db_password }}"
    login_db: shop_blue
    wait_timeout: 20
    terminate: true

- name: Roll back - thaw the fallback entry and make its sessions reconnect writable
  dualboot.db.postgresql_freeze:
    login_host: db1
    login_db: shop_blue
    state: thawed
    terminate: true
"""

RETURN = r"""
state:
  description: The state asked for.
  returned: always
  type: str
  sample: frozen
database:
  description: The database, as C(user@host:port/db) (no password).
  returned: always
  type: str
tables_guarded_now:
  description: Tables that received the guard trigger in this run.
  returned: state=frozen
  type: int
sessions_open:
  description: Other client sessions of the database when freeze started.
  returned: state=frozen
  type: int
sessions_writing:
  description: Of those, sessions inside a transaction that had written.
  returned: state=frozen
  type: int
terminated:
  description: Sessions terminated (pid, user, application, state).
  returned: always
  type: list
  elements: dict
frozen_at:
  description: When the database was frozen (UTC), from the freeze record.
  returned: when changed
  type: str
read_only_sessions_left:
  description: Sessions opened while frozen that keep a read-only default until they reconnect.
  returned: state=thawed and changed
  type: int
warnings:
  description: Things thaw left alone, for example a read-only setting that freeze did not make.
  returned: state=thawed
  type: list
  elements: str
seconds:
  description: Wall time of the task.
  returned: always
  type: float
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.dualboot.db.plugins.module_utils import pg_freeze, runner  # noqa: E402
from ansible_collections.dualboot.db.plugins.module_utils.postgresql import PSYCOPG_IMPORT_ERROR, connection_spec  # noqa: E402


def main():
    argument_spec = connection_spec()
    argument_spec.update(
        state={"type": "str", "choices": ["frozen", "thawed"], "default": "frozen"},
        wait_timeout={"type": "float", "default": 30},
        terminate={"type": "bool", "default": False},
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    runner.require(module, "psycopg", PSYCOPG_IMPORT_ERROR)
    runner.run(module, pg_freeze.run, module.params, module.check_mode)


if __name__ == "__main__":
    main()
