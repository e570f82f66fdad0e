#!/usr/bin/python
# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: postgresql_preflight
short_description: Check that the login roles have every privilege a lifecycle step needs, before it changes anything
version_added: "0.1.0"
description:
  - Checks on the default entry (O(source)) and the staged entry (O(target)) what the lifecycle step O(step) needs from
    the login role, and fails naming B(each) missing privilege with the statement that grants it (for example
    C(GRANT pg_signal_backend TO app_owner)) - before anything is created, copied or frozen.
  - Made for managed services (RDS/Aurora, Cloud SQL, Azure Database for PostgreSQL) where the login role is not a
    superuser. A superuser passes every check but V(sync) on servers where no other role may subscribe.
  - V(stage) - SELECT on every table and sequence of the default entry and USAGE on their schemas (the copy reads them
    all); C(CREATEDB) on the staged entry's server; ownership of the staged database when it exists (it is replaced);
    membership in the default entry's owner role unless O(no_owner); and what O(method) adds - C(template) needs the
    source database owned by the role or marked as a template, C(physical) needs C(REPLICATION) and
    C(pg_read_all_settings) (managed services allow no physical copy at all).
  - V(verify) - SELECT on every table and sequence of both entries; USAGE and CREATE on the C(dualboot) schema of the
    staged entry.
  - V(cutover) and V(rollback) - on both entries (cutover freezes the default entry, rollback freezes the new default and
    thaws the fallback) - ownership of the database and of every table (freeze sets C(default_transaction_read_only) and
    puts a trigger on each table), C(CREATE) on the database while it has no C(dualboot) schema, the privileges of
    C(pg_read_all_stats) (to see other roles' sessions) and, with O(terminate), of C(pg_signal_backend); SELECT on the
    default entry's tables for the drift check.
  - V(sync) - both streams, the stage's (default entry to staged entry) and the cutover's stream back (staged entry to
    default entry). On each entry as the publisher C(REPLICATION), C(CREATE) on the database and ownership of every
    table; as the subscriber a superuser on PostgreSQL 15 and older, on 16 and newer the privileges of
    C(pg_create_subscription), C(CREATE) on the database and a password for the other entry (a non-superuser's
    subscription must log in with one). On the staged entry also what the rebuild needs (C(CREATEDB), ownership of an
    existing staged database, membership in the default database's owner role).
  - docs/privileges.md has the same table with what each step does without a privilege.
author: dualboot.db contributors (@dualboot-db)
extends_documentation_fragment:
  - dualboot.db.postgresql
  - dualboot.db.postgresql.endpoints
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The module only reads the catalogs; it runs completely in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  step:
    description: The lifecycle step whose privileges are checked.
    type: str
    required: true
    choices: [stage, verify, cutover, rollback, sync]
  method:
    description: The copy method of O(step=stage) (see M(dualboot.db.postgresql_clone)); V(auto) checks what every method needs.
    type: str
    choices: [auto, template, dump_restore, pipe, stream, physical]
    default: auto
  no_owner:
    description: The copy does not keep the default entry's owners (the login role owns it); no membership in the owner role is needed.
    type: bool
    default: false
  terminate:
    description: Freeze and thaw may terminate sessions (the role variable C(dualboot_freeze_terminate)); needs C(pg_signal_backend).
    type: bool
    default: true
  maintenance_db:
    description: Database to connect to on each server to read the role and the database catalog.
    type: str
    default: postgres
notes:
  - Migrations and smoke tests need what their own SQL does; the check cannot know that.
seealso:
  - module: dualboot.db.postgresql_clone
  - module: dualboot.db.postgresql_freeze
"""

EXAMPLES = r"""
- name: Can the owner role of a managed database stage shop_blue into shop_green?
  dualboot.db.postgresql_preflight:
    step: stage
    login_host: shop.abc123.eu-west-1.rds.amazonaws.com
    login_user: shop_owner
    login_password: "{{ vault_db_password }}"
    source:
      login_db: shop_blue
    target:
      login_db: shop_green
"""

RETURN = r"""
step:
  description: The step checked.
  returned: success
  type: str
roles:
  description: The login role on each entry's server (C(default), C(staged)) - its attributes and predefined-role privileges.
  returned: success
  type: dict
missing:
  description: On failure, every missing privilege - C(entry), C(privilege), C(needed_for) and C(grant), the statement that fixes it.
  returned: failure
  type: list
  elements: dict
grants:
  description: On failure, the distinct statements to run (as the object's owner or the service's admin role).
  returned: failure
  type: list
  elements: str
summary:
  description: One line for people.
  returned: success
  type: str
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.dualboot.db.plugins.module_utils import pg_privileges, runner  # noqa: E402
from ansible_collections.dualboot.db.plugins.module_utils.postgresql import (  # noqa: E402
    PSYCOPG_IMPORT_ERROR,
    connection_spec,
    endpoint_spec,
)


def main():
    argument_spec = connection_spec()
    argument_spec.update(
        source=endpoint_spec(),
        target=endpoint_spec(),
        step={"type": "str", "required": True, "choices": list(pg_privileges.STEPS)},
        method={"type": "str", "default": "auto", "choices": ["auto", "template", "dump_restore", "pipe", "stream", "physical"]},
        no_owner={"type": "bool", "default": False},
        terminate={"type": "bool", "default": True},
        maintenance_db={"type": "str", "default": "postgres"},
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    runner.require(module, "psycopg", PSYCOPG_IMPORT_ERROR)
    runner.run(module, pg_privileges.run, module.params)


if __name__ == "__main__":
    main()
