#!/usr/bin/python
# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: mongodb_migrate
short_description: Apply ordered MongoDB migrations (declarative YAML/JSON or Python) exactly once each
version_added: "0.1.0"
description:
  - Applies the migrations of O(path) (files named C(V<version>__<description>.yml|yaml|json|py), versions
    compared numerically) and of O(migrations) (inline) in version order, each once.
  - Declarative migrations list operations - C(update_many) and C(update_one) (C(collection), C(filter),
    C(update) with update operators or an aggregation pipeline, C(upsert), C(array_filters)),
    C(rename_collection) (C(collection), C(to), C(drop_target)), C(create_index) (C(collection), C(keys) and
    MongoDB index options such as C(name), C(unique), C(expireAfterSeconds), C(partialFilterExpression)),
    C(drop_index) (C(collection), C(name)) and C(drop_collection) (C(collection)). Values may use relaxed
    Extended JSON (C($date), C($oid), ... wrappers).
  - Python migrations define C(up(db)) (a pymongo Database) and optionally C(down(db)) (kept for your own
    tooling; going back is a boot-entry switch, not a down migration).
  - Every migration is loaded and checked before the first one runs, so a malformed file changes nothing.
  - Applied migrations are recorded in the collection C(dualboot_changelog) of the database with the sha256 of
    their file. A second run is C(changed=false); an applied migration whose file was edited afterwards, or a
    new migration older than an applied one, fails with a clear message.
  - MongoDB has no transactional DDL; a migration that fails part way may be partly applied. Migrations are
    meant for the staged entry, which is restaged from the backup after a failure. With O(boot_record) the
    module refuses to migrate the default entry unless O(force=true).
author: dualboot.db contributors (@dualboot-db)
extends_documentation_fragment:
  - dualboot.db.mongodb
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Loads and checks every migration, reads the changelog and lists the pending migrations without applying them.
  diff_mode:
    support: full
    details: The list of applied migrations before and after.
  platform:
    platforms: posix
options:
  database:
    description: Database to migrate (the staged entry).
    type: str
    required: true
  path:
    description: Directory of migration files.
    type: path
  migrations:
    description:
      - Inline declarative migrations, each with C(version), C(description) and C(operations) (as in a file).
        Their checksum covers description and operations.
    type: list
    elements: dict
    default: []
  boot_record:
    description: Path of the deployment's boot record; its default entry is refused unless O(force=true).
    type: path
  force:
    description: Migrate even the default entry of O(boot_record).
    type: bool
    default: false
"""

EXAMPLES = r"""
# migrations/V1__nest_user_name.yml:
#   description: nest userName under user.name
#   operations:
#     - update_many:
#         collection: users
#         filter: {userName: {$exists: true}}
#         update: {$rename: {userName: user.name}}
#     - create_index: {collection: users, keys: {user.name: 1}}
- name: Migrate the staged entry
  dualboot.db.mongodb_migrate:
    login_uri: "mongodb://db1.example.com:27017/"
    database: shop_green
    path: "{{ playbook_dir }}/migrations"
    boot_record: /var/lib/dualboot/shop.json

- name: An inline migration
  dualboot.db.mongodb_migrate:
    login_host: db1.example.com
    database: shop_green
    migrations:
      - version: "7"
        description: drop the legacy sessions collection
        operations:
          - drop_collection: {collection: legacy_sessions}
"""

RETURN = r"""
database:
  description: The database migrated.
  returned: always
  type: str
changelog:
  description: Name of the changelog collection.
  returned: always
  type: str
applied:
  description:
    - Migrations applied by this run - C(id), C(kind), C(description), C(seconds) and, for declarative ones,
      per operation C(op), C(collection), C(matched), C(modified).
  returned: always
  type: list
  elements: dict
pending:
  description: Migrations that were not applied before this run (in check mode - would be applied).
  returned: always
  type: list
  elements: str
already_applied:
  description: Migrations found in the changelog.
  returned: always
  type: list
  elements: str
unknown_applied:
  description: Changelog entries without a migration file (a warning is shown).
  returned: always
  type: list
  elements: str
seconds:
  description: Duration of the applied migrations.
  returned: when migrations were applied
  type: float
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.dualboot.db.plugins.module_utils import runner  # noqa: E402
from ansible_collections.dualboot.db.plugins.module_utils.mongo_migrate import migrate  # noqa: E402
from ansible_collections.dualboot.db.plugins.module_utils.mongodb import PYMONGO_IMPORT_ERROR, connection_spec, from_params  # noqa: E402


def main() -> None:
    argument_spec = connection_spec()
    argument_spec.update(
        database={"type": "str", "required": True},
        path={"type": "path"},
        migrations={"type": "list", "elements": "dict", "default": []},
        boot_record={"type": "path"},
        force={"type": "bool", "default": False},
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True, required_one_of=[("path", "migrations")])
    runner.require(module, "pymongo", PYMONGO_IMPORT_ERROR)
    p = module.params
    runner.run(
        module,
        migrate,
        from_params(p),
        p["database"],
        path=p["path"],
        inline=p["migrations"],
        boot_record_path=p["boot_record"],
        force=p["force"],
        check_mode=module.check_mode,
    )


if __name__ == "__main__":
    main()
