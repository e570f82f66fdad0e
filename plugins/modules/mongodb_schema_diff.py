#!/usr/bin/python
# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: mongodb_schema_diff
short_description: Diff the schema of two MongoDB databases, including the sampled shape of documents
version_added: "0.1.0"
description:
  - Compares O(source_database) (usually the default entry) with O(target_database) (the staged entry),
    on the same server or on two (O(source), O(target)).
  - Exact changes (RV(changes)) - collections and views added or removed, collection options, validators
    (C(validator), C(validationLevel), C(validationAction); the defaults C(strict)/C(error) are normalised),
    and indexes. Indexes are identified by their key, key order significant; names are ignored and C(v),
    C(ns), C(background) and false C(unique)/C(sparse)/C(hidden) are normalised away.
  - Shape changes (RV(shape_changes)) - from O(sample_size) sampled documents per collection, every field path
    (C(a.b); array elements as C(a[])) with its BSON types and the fraction of documents holding it. Reported
    when a path appears or disappears, its set of types changes, or its presence changes between all sampled
    documents and some. Sampling uses C($sample) where the server has it and the first documents by C(_id)
    where it does not (FerretDB).
  - Each change is a record with C(kind) (collection, index, option, validator, field), C(schema) (the source
    database name), C(name) (C(users), C(users.userName_1), C(users.user.name)), C(change) (added, removed,
    modified), C(attribute), C(before), C(after) and C(hazards).
  - O(ignore) drops matching records; O(expect) asserts that the remaining changes, exact and shape alike, are
    exactly the expected ones (the same contract as M(dualboot.db.postgresql_schema_diff)) and fails otherwise.
  - The changelog collection C(dualboot_changelog) and server-internal C(system.*) collections are not compared.
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
    description: Database before the change (the default entry).
    type: str
    required: true
  target_database:
    description: Database after the change (the staged entry).
    type: str
    required: true
  collections:
    description: Compare only these collections (default all).
    type: list
    elements: str
    default: []
  sample_size:
    description: Documents sampled per collection for shapes; C(0) compares the catalog only.
    type: int
    default: 1000
  expect:
    description:
      - Expected changes, each a dict of shell-style globs over C(kind), C(schema), C(name), C(change) and
        C(attribute). Every change must match one, and every entry must match a change. C([]) asserts no change.
        Leave unset to only report.
    type: list
    elements: dict
  ignore:
    description: Changes to leave out, same form as O(expect).
    type: list
    elements: dict
    default: []
"""

EXAMPLES = r"""
- name: R4 - the staged entry differs from live only by nesting userName under user.name
  dualboot.db.mongodb_schema_diff:
    login_uri: "mongodb://db1.example.com:27017/"
    source_database: shop_blue
    target_database: shop_green
    expect:
      - {kind: field, name: users.userName, change: removed}
      - {kind: field, name: users.user, change: added}
      - {kind: field, name: users.user.name, change: added}

- name: Restore rehearsal - no difference at all
  dualboot.db.mongodb_schema_diff:
    source: {login_uri: "mongodb://live.example.com/"}
    target: {login_uri: "mongodb://rehearsal.example.com/"}
    source_database: shop
    target_database: shop
    expect: []
"""

RETURN = r"""
changes:
  description: Exact changes from the catalog (records, see the description).
  returned: always
  type: list
  elements: dict
shape_changes:
  description: Changes of the sampled document shape (records of kind C(field)).
  returned: always
  type: list
  elements: dict
identical:
  description: Whether no change (exact or shape) is left after O(ignore).
  returned: always
  type: bool
counts:
  description: Number of C(added), C(removed), C(modified) changes (exact and shape together) and of C(ignored) ones.
  returned: always
  type: dict
expectations:
  description: C(met) and C(problems) (one line per unexpected change and per expected-but-missing one), when O(expect) is set.
  returned: when expect is set
  type: dict
ignored:
  description: Number of records dropped by O(ignore).
  returned: always
  type: int
source:
  description: C(database), C(server), C(version), C(sample_method) of the source side.
  returned: always
  type: dict
target:
  description: Same for the target side.
  returned: always
  type: dict
seconds:
  description: Duration.
  returned: always
  type: float
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.dualboot.db.plugins.module_utils import runner  # noqa: E402
from ansible_collections.dualboot.db.plugins.module_utils.mongo_schema import schema_diff  # noqa: E402
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
        collections={"type": "list", "elements": "str", "default": []},
        sample_size={"type": "int", "default": 1000},
        expect={"type": "list", "elements": "dict"},
        ignore={"type": "list", "elements": "dict", "default": []},
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    runner.require(module, "pymongo", PYMONGO_IMPORT_ERROR)
    p = module.params
    runner.run(
        module,
        schema_diff,
        from_params(p, "source"),
        from_params(p, "target"),
        p["source_database"],
        p["target_database"],
        collections=p["collections"],
        sample_size=p["sample_size"],
        expect=p["expect"],
        ignore=p["ignore"],
    )


if __name__ == "__main__":
    main()
