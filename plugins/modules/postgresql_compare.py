#!/usr/bin/python
# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: postgresql_compare
short_description: Compare the data of two PostgreSQL databases (row counts, checksums, SQL assertions)
version_added: "0.1.0"
description:
  - Compares every table (or a selection) of the O(source) database (the default entry) with the O(target) database
    (the staged entry) - row counts and content checksums computed by the servers, ordered by primary key and streamed in
    key ranges of O(chunk_rows) rows, so a large table never fills memory.
  - Both sides are read in one C(REPEATABLE READ READ ONLY) transaction each, a consistent snapshot.
  - Tables the migration changed are left out with O(exclude) or compared through O(mappings) (a query per side).
  - O(assertions) check SQL results on the target, or that a query on each side gives the same result.
  - Mismatches are reported with the table and the key range or the counts; row contents only with O(show_rows).
  - Fails when anything differs (unless O(fail_on_mismatch=false)). Changes nothing.
author: dualboot.db contributors (@dualboot-db)
extends_documentation_fragment:
  - dualboot.db.postgresql
  - dualboot.db.postgresql.endpoints
  - ansible.builtin.action_common_attributes
  - dualboot.db.background
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
    description: Compare tables of these schemas only. By default every schema except the system ones and C(dualboot).
    type: list
    elements: str
  tables:
    description:
      - Compare only tables matching these globs (C(schema.table), or C(table) for any schema). By default all tables.
    type: list
    elements: str
  exclude:
    description: Leave out tables matching these globs (same form as O(tables)).
    type: list
    elements: str
    default: []
  mappings:
    description:
      - Tables the migration changed, compared through one query per side instead of column by column. The two results
        are compared as multisets of rows (order does not matter), by count and checksum.
    type: list
    elements: dict
    default: []
    suboptions:
      table:
        description: The table this mapping replaces in the comparison (C(schema.table) or C(table) in C(public)).
        type: str
        required: true
      source_query:
        description: Query on the source.
        type: str
        required: true
      target_query:
        description: Query on the target whose rows must equal those of O(mappings[].source_query).
        type: str
        required: true
  assertions:
    description:
      - SQL checks. Either O(assertions[].query) with O(assertions[].expect) (run on the target, must return one value
        equal to C(expect)), or O(assertions[].source_query) and O(assertions[].target_query) (their results must be equal).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name used in the result and in messages.
        type: str
      query:
        description: Query run on the target.
        type: str
      expect:
        description: Expected single value of O(assertions[].query) (numbers compare numerically).
        type: raw
      source_query:
        description: Query run on the source.
        type: str
      target_query:
        description: Query run on the target; its rows must equal those of O(assertions[].source_query), in order.
        type: str
  chunk_rows:
    description: Rows per key range.
    type: int
    default: 50000
  show_rows:
    description: Include the differing rows (at most 10 per range) and multi-row assertion results in the result.
    type: bool
    default: false
  fail_on_mismatch:
    description: Fail the task when anything differs. With V(false) the result's RV(equal) says it.
    type: bool
    default: true
notes:
  - Range checksums combine two 64-bit C(hash_record_extended) fingerprints of each row (XOR for keyed tables, sum
    otherwise) with the row count, over the columns both sides have. Columns are hashed as their own type only where
    that agrees with their text (integers, booleans, dates, times, timestamps, uuid, bytea, deterministic text and
    varchar, same type on both sides), otherwise as text; so rows are equal exactly when they print the same.
    When either side runs PostgreSQL 13 the fingerprint is C(hashtextextended) of the row's text, summed exactly.
  - Values print the same on both sides because the module fixes DateStyle, IntervalStyle, TimeZone,
    extra_float_digits and bytea_output for its sessions.
seealso:
  - module: dualboot.db.postgresql_schema_diff
"""

EXAMPLES = r"""
- name: R1 - users compared through a mapping, everything else column by column
  dualboot.db.postgresql_compare:
    login_host: db1
    login_password: "{{ vault_db_password }}"
    source: {login_db: shop_blue}
    target: {login_db: shop_green}
    mappings:
      - table: users
        source_query: SELECT user_id, user_name FROM users
        target_query: SELECT user_id, full_name FROM users

- name: R2 - one profile per user, names carried over
  dualboot.db.postgresql_compare:
    source: {login_db: shop_blue}
    target: {login_db: shop_green}
    exclude: [users]
    assertions:
      - name: one profile per user
        source_query: SELECT count(*) FROM users
        target_query: SELECT count(*) FROM user_profiles
      - name: every profile has a name
        query: SELECT count(*) FROM user_profiles WHERE profile_data->>'name' IS NULL
        expect: 0
"""

RETURN = r"""
equal:
  description: Whether all compared tables, mappings and assertions agree.
  returned: always
  type: bool
problems:
  description: One line per mismatch (table and counts or key range; never row contents).
  returned: always
  type: list
  elements: str
  sample: ["table public.users: content differs in 1 key range(s) (same row count 1000)"]
tables:
  description:
    - Per table the method (key ranges, key ranges in one pass, key ranges with sampled bounds, or whole table), key, ranges,
      rows and bytes per side, mismatched ranges.
    - A mismatched range is bounded by C(after) (excluded) and C(through) (included), or for sampled bounds by C(from)
      (included) and C(before) (excluded); a missing bound is open.
    - With sampled bounds, C(range_key) names the leading key columns the ranges are cut on (and the bounds are given in);
      a composite key is cut on the fewest that leave no sampled range over twice O(chunk_rows).
  returned: always
  type: list
  elements: dict
tables_only_in_source:
  description: Selected tables the target lacks (each is a mismatch).
  returned: always
  type: list
  elements: str
tables_only_in_target:
  description: Tables only the target has (new tables; not a mismatch).
  returned: always
  type: list
  elements: str
mappings:
  description: Result of each mapping.
  returned: always
  type: list
  elements: dict
assertions:
  description: Result of each assertion with its value(s).
  returned: always
  type: list
  elements: dict
rows:
  description: Rows read on both sides.
  returned: always
  type: int
bytes:
  description: Bytes of row data checksummed on both sides (each row's size as the server holds it; its text before PostgreSQL 14).
  returned: always
  type: int
seconds:
  description: Wall time of the comparison.
  returned: always
  type: float
mb_per_s:
  description: Throughput, RV(bytes) divided by RV(seconds), in MB (10^6 bytes) per second.
  returned: always
  type: float
summary:
  description: One line for people.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.dualboot.db.plugins.module_utils import pg_compare, runner  # noqa: E402
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
        tables={"type": "list", "elements": "str"},
        exclude={"type": "list", "elements": "str", "default": []},
        mappings={
            "type": "list",
            "elements": "dict",
            "default": [],
            "options": {
                "table": {"type": "str", "required": True},
                "source_query": {"type": "str", "required": True},
                "target_query": {"type": "str", "required": True},
            },
        },
        assertions={
            "type": "list",
            "elements": "dict",
            "default": [],
            "options": {
                "name": {"type": "str"},
                "query": {"type": "str"},
                "expect": {"type": "raw"},
                "source_query": {"type": "str"},
                "target_query": {"type": "str"},
            },
        },
        chunk_rows={"type": "int", "default": 50000},
        show_rows={"type": "bool", "default": False},
        fail_on_mismatch={"type": "bool", "default": True},
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    runner.require(module, "psycopg", PSYCOPG_IMPORT_ERROR)
    runner.run(module, pg_compare.run, module.params)


if __name__ == "__main__":
    main()
