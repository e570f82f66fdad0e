#!/usr/bin/python
# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: mongodb_compare
short_description: Verify the data of two MongoDB databases - counts, content hashes, query assertions
version_added: "0.1.0"
description:
  - Compares, per collection, the document count and an order-independent content hash (the sum of the SHA-256
    of every raw BSON document, the value M(dualboot.db.mongodb_backup) records in its manifest) of
    O(source_database) and O(target_database), on one server or two (O(source), O(target)), collections in
    parallel.
  - Runs query assertions (O(checks)) - a filtered count on one side against C(expect_count), equal filtered
    counts on both sides, or a cross-database field comparison joined on a key (every target C(user.name)
    equals the source C(userName) of the same C(_id)).
  - Fails, with the whole report in the result, when a count, a hash or a check differs. Read-only.
  - The changelog collection C(dualboot_changelog), views and server-internal C(system.*) collections are not
    compared unless named in O(collections).
author: dualboot.db contributors (@dualboot-db)
extends_documentation_fragment:
  - dualboot.db.mongodb
  - dualboot.db.mongodb.endpoints
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Read-only; runs the same in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  source_database:
    description: Database of reference (the default entry, or the one backed up).
    type: str
    required: true
  target_database:
    description: Database to verify (the staged entry).
    type: str
    required: true
  collections:
    description:
      - Collections to compare, each a name or C({name, content}); C(content=false) compares the count only (for a
        collection a migration changed on purpose). Default all collections of both sides, counts and content.
      - An empty list compares no collection (checks only) when O(checks) is set.
    type: list
    elements: raw
  checks:
    description:
      - Query assertions, each with C(name) and C(source) and/or C(target) (C(collection), C(filter), C(field)),
        optional C(key) (join key, default C(_id)) and C(expect_count).
      - One side - its filtered count must equal C(expect_count). Both sides without C(field) - the counts must be
        equal. Both sides with C(field) - joined on C(key), the fields must be equal for every key and no key may be
        on one side only.
      - Filters may use relaxed Extended JSON (C($oid), C($date), ... wrappers).
    type: list
    elements: dict
    default: []
  jobs:
    description: Collections hashed in parallel.
    type: int
    default: 4
"""

EXAMPLES = r"""
- name: R4 - counts unchanged and user.name equals the old userName for every _id
  dualboot.db.mongodb_compare:
    login_uri: "mongodb://db1.example.com:27017/"
    source_database: shop_blue
    target_database: shop_green
    collections:
      - {name: users, content: false}
    checks:
      - name: user.name equals the old userName
        source: {collection: users, field: userName}
        target: {collection: users, field: user.name}
      - name: no user without a name
        target: {collection: users, filter: {user.name: {$exists: false}}}
        expect_count: 0

- name: R5 - the rehearsal restore equals live
  dualboot.db.mongodb_compare:
    source: {login_uri: "mongodb://live.example.com/"}
    target: {login_uri: "mongodb://rehearsal.example.com/"}
    source_database: shop
    target_database: shop
"""

RETURN = r"""
equal:
  description: Whether every count, hash and check matched (the task fails otherwise).
  returned: always
  type: bool
collections:
  description:
    - Per collection - C(name), C(source_count), C(target_count), C(counts_equal), C(source_hash), C(target_hash),
      C(content_equal), durations.
  returned: always
  type: list
  elements: dict
checks:
  description: Per check - C(name), C(passed), C(problems), counts, and for joins C(compared), C(different),
    C(only_source), C(only_target) and a few example keys.
  returned: always
  type: list
  elements: dict
differences:
  description: One line per difference found.
  returned: always
  type: list
  elements: str
documents_read:
  description: Documents read on both sides together.
  returned: always
  type: int
seconds:
  description: Duration.
  returned: always
  type: float
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.dualboot.db.plugins.module_utils import runner  # noqa: E402
from ansible_collections.dualboot.db.plugins.module_utils.mongo_compare import compare  # noqa: E402
from ansible_collections.dualboot.db.plugins.module_utils.mongodb import (  # noqa: E402
    PYMONGO_IMPORT_ERROR,
    connection_spec,
    endpoint_spec,
    from_params,
)


def main() -> None:
    argument_spec = connection_spec()
    argument_spec.update(
        source=endpoint_spec(),
        target=endpoint_spec(),
        source_database={"type": "str", "required": True},
        target_database={"type": "str", "required": True},
        collections={"type": "list", "elements": "raw"},
        checks={"type": "list", "elements": "dict", "default": []},
        jobs={"type": "int", "default": 4},
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    runner.require(module, "pymongo", PYMONGO_IMPORT_ERROR)
    p = module.params
    runner.run(
        module,
        compare,
        from_params(p, "source"),
        from_params(p, "target"),
        p["source_database"],
        p["target_database"],
        collections=p["collections"],
        checks=p["checks"],
        jobs=p["jobs"],
    )


if __name__ == "__main__":
    main()
