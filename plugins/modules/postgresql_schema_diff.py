#!/usr/bin/python
# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: postgresql_schema_diff
short_description: Compare the schemas of two PostgreSQL databases, with hazards, suggested SQL and expectations
version_added: "0.1.0"
description:
  - Reads the schema of the O(source) database (the default entry) and of the O(target) database (the staged entry),
    each in one C(REPEATABLE READ READ ONLY) transaction with one catalog query per object kind, and reports every
    difference as a change record C({kind, schema, name, change, attribute, before, after, hazards}).
  - Covers schemas, tables (partitioned, unlogged, inheritance, replica identity), columns (type, default,
    nullability, identity and its sequence options, generated, collation, storage, statistics target, compression,
    optionally order), primary key, unique, foreign key, check and exclusion constraints, indexes (with their
    validity, and the indexes of partitions), views (with column names and comments), materialized views,
    sequences, functions and procedures, triggers, rules, extended statistics, enums, domains, composite types,
    extensions, row level security and policies, comments; owners and grants with O(include_owners_and_grants).
  - Kinds it does not model (aggregate definitions, operators, collations, text search configurations, range types,
    default privileges, event triggers, defaults set only on a partition, and others) are listed in RV(not_compared)
    when either database has any; they are never skipped silently.
  - An index left INVALID by a failed concurrent build differs from a valid one and fails an O(expect) that names it.
  - The C(dualboot) schema, system schemas and objects that belong to extensions are left out.
  - Suggests forward SQL (source to target) in dependency order. Changes SQL cannot express safely become
    C(-- review by hand) comments.
  - With O(expect), fails naming every unexpected change and every expected change that is missing.
  - Changes nothing on either database.
author: dualboot.db contributors (@dualboot-db)
extends_documentation_fragment:
  - dualboot.db.postgresql
  - dualboot.db.postgresql.endpoints
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
  schemas:
    description:
      - Compare only these schemas. By default every schema except the system ones and C(dualboot).
    type: list
    elements: str
  ignore:
    description:
      - Changes to leave out of the result, before O(expect) is checked. Each entry is a dict of shell-style globs
        over the fields C(kind), C(schema), C(name), C(change) and C(attribute); a field left out matches anything.
      - Column, constraint, trigger and policy names are C(table.object). A C(name) glob with a dot also matches
        C(schema.name).
    type: list
    elements: dict
    default: []
  expect:
    description:
      - The changes the migration is meant to make, as matchers like O(ignore). Every reported change must match one
        of them, and every matcher must match at least one change; otherwise the task fails and names each problem.
      - An empty list asserts that the schemas are identical. Leave it out to only report.
    type: list
    elements: dict
  include_owners_and_grants:
    description:
      - Also compare owners and privileges (role names must then be the same on both sides).
      - The suggested SQL then carries C(ALTER ... OWNER TO), C(REVOKE) and C(GRANT) statements, also for the objects it creates.
    type: bool
    default: false
  check_column_order:
    description: Also report columns whose position in their table differs.
    type: bool
    default: false
notes:
  - A column removed and another one added in the same table are flagged as a possible rename when the added column
    kept the removed one's attribute number (renamed in place) or when both have the same type.
seealso:
  - module: dualboot.db.postgresql_compare
  - module: dualboot.db.postgresql_freeze
"""

EXAMPLES = r"""
- name: Prove the staged entry has exactly the R1 change (users.user_name renamed to full_name, now text)
  dualboot.db.postgresql_schema_diff:
    login_host: db1
    login_user: dualboot
    login_password: "{{ vault_db_password }}"
    source:
      login_db: shop_blue
    target:
      login_db: shop_green
    expect:
      - {kind: column, name: users.user_name, change: removed}
      - {kind: column, name: users.full_name, change: added}

- name: Restore rehearsal - the restored copy must be identical
  dualboot.db.postgresql_schema_diff:
    source: {login_host: db1, login_db: shop}
    target: {login_host: db2, login_db: shop_restored}
    login_password: "{{ vault_db_password }}"
    expect: []

- name: Report differences of schema app only, without comments
  dualboot.db.postgresql_schema_diff:
    source: {login_db: shop_blue}
    target: {login_db: shop_green}
    schemas: [app]
    ignore:
      - {attribute: comment}
  register: schema_diff

- name: Show the suggested SQL
  ansible.builtin.debug:
    msg: "{{ schema_diff.sql | join('\n') }}"
"""

RETURN = r"""
source:
  description: The source connection, without password.
  returned: always
  type: str
  sample: postgres@db1:5432/shop_blue
target:
  description: The target connection, without password.
  returned: always
  type: str
  sample: postgres@db1:5432/shop_green
identical:
  description: Whether no change is left after O(ignore).
  returned: always
  type: bool
changes:
  description: The change records, sorted by kind, schema, name, change and attribute.
  returned: always
  type: list
  elements: dict
  sample:
    - kind: column
      schema: public
      name: users.user_name
      change: removed
      attribute: null
      before: character varying(255)
      after: null
      hazards: [deletes_data, access_exclusive_lock]
      possible_rename: {to: full_name}
summary:
  description: One line per change, for people.
  returned: always
  type: list
  elements: str
  sample: ["table public.users: column user_name removed [possible rename to full_name] (deletes data, takes an ACCESS EXCLUSIVE lock)"]
sql:
  description: Suggested forward SQL (source to target) in dependency order, one statement per item.
  returned: always
  type: list
  elements: str
possible_renames:
  description: Removed and added columns (or tables) that look like one renamed object.
  returned: always
  type: list
  elements: dict
  sample: [{kind: column, schema: public, table: users, before: user_name, after: full_name}]
not_compared:
  description: Kinds of objects present in either database that the diff does not model, with their count on each side,
    their names (those on one side only first, at most 20) and whether both sides have the same names.
    RV(identical) covers the compared kinds only.
  returned: always
  type: list
  elements: dict
  sample: [{kind: aggregate, source: 1, target: 1, names: [public.total_len(text)], same_names: true}]
hazards:
  description: Number of changes per hazard (deletes_data, rewrites_table, access_exclusive_lock, builds_index,
    may_fail_on_existing_data, breaks_dependents, invalid_index); hazards with no change are left out.
  returned: always
  type: dict
  sample: {deletes_data: 1, access_exclusive_lock: 2}
counts:
  description: Number of added, removed, modified and ignored changes.
  returned: always
  type: dict
  sample: {added: 1, removed: 1, modified: 0, ignored: 0}
objects:
  description: Number of objects read per kind on each side.
  returned: always
  type: dict
expectations:
  description: Outcome of O(expect) (C(met) and the list of problems).
  returned: when O(expect) is given
  type: dict
  sample: {met: true, problems: []}
timings:
  description: Seconds spent reading each side, diffing, and in total.
  returned: always
  type: dict
  sample: {read_source_seconds: 0.09, read_target_seconds: 0.1, diff_seconds: 0.001, total_seconds: 0.11}
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.dualboot.db.plugins.module_utils import pg_diff, runner  # noqa: E402
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
        schemas={"type": "list", "elements": "str"},
        ignore={"type": "list", "elements": "dict", "default": []},
        expect={"type": "list", "elements": "dict"},
        include_owners_and_grants={"type": "bool", "default": False},
        check_column_order={"type": "bool", "default": False},
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    runner.require(module, "psycopg", PSYCOPG_IMPORT_ERROR)
    runner.run(module, pg_diff.run, module.params)


if __name__ == "__main__":
    main()
