#!/usr/bin/python
# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: mongodb_restore
short_description: Restore a MongoDB backup (ours or mongodump's) into a target database
version_added: "0.1.0"
description:
  - Reads a backup written by M(dualboot.db.mongodb_backup) or by C(mongodump) (plain or C(--gzip) directory
    layout) and restores it into O(database).
  - Before anything is written the backup is verified - against its manifest (sha256 and size of every file, count
    and content hash of every collection) when it has one, else by checking the BSON framing of every document -
    and every metadata file is parsed. A truncated document or invalid Extended JSON ends the task before the target is touched.
  - Documents travel as raw BSON (never decoded); collections are restored in parallel (O(jobs)), each with
    O(insertion_workers) parallel unordered inserts in batches of at most O(batch_bytes). Document validation
    is bypassed while loading, as mongorestore does.
  - Collection options, indexes and views are recreated. Options, indexes or views the target server refuses
    or silently drops (for example validators, TTL and partial indexes on FerretDB) are listed in RV(unsupported)
    and in a warning, never dropped silently.
  - Every collection is restored under a temporary name (C(dualboot_new_<token>_<n>)) in O(database) and renamed to its
    own name only when all of them are complete, on every server (MongoDB and FerretDB alike rename within a database).
    The collections of a replaced target stay untouched until then - a failed or killed restore, even a server that
    dies mid-restore, leaves the old content complete; the temporary collections are dropped on failure, or by the
    next restore when the server was gone. Only the swap itself (renames, milliseconds per collection) replaces the
    old collections; if it is interrupted, the old ones are kept as C(dualboot_old_<token>_<n>) and the next restore
    refuses until they are looked at.
  - Before any write, the count and content hash of every collection's documents are checked against the manifest
    (in the same read as the file checksums); a mismatch is reported as a content hash mismatch.
  - Refuses a target that already holds collections unless O(replace=true), and refuses the default entry of
    O(boot_record) unless O(force=true).
author: dualboot.db contributors (@dualboot-db)
extends_documentation_fragment:
  - dualboot.db.mongodb
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Verifies the backup and the safety checks, reports the collections it would restore, writes nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  path:
    description:
      - The backup directory - the O(dualboot.db.mongodb_backup#module:path) of a backup, a C(mongodump --out)
        directory holding one database directory, or a database directory itself.
    type: path
    required: true
  database:
    description: Target database to restore into.
    type: str
    required: true
  source_database:
    description:
      - Database directory of the backup to restore, when the backup holds several (mongodump of a whole server).
    type: str
  collections:
    description: Restore only these collections (default all).
    type: list
    elements: str
    default: []
  jobs:
    description: Collections restored in parallel.
    type: int
    default: 4
  insertion_workers:
    description: Parallel insert batches per collection.
    type: int
    default: 2
  batch_bytes:
    description: Largest insert batch in bytes (at most 1000 documents a batch, as mongorestore).
    type: int
    default: 4194304
  replace:
    description:
      - Allow a target database that already holds collections; its content is replaced, and the old collections are
        dropped only after every new one is complete (see the description).
    type: bool
    default: false
  boot_record:
    description:
      - Path of the deployment's boot record. When given, the restore refuses to write into the database of its
        default entry (the live database) unless O(force=true).
    type: path
  force:
    description: Restore even into the default entry of O(boot_record).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Restore rehearsal - the live backup into the staged entry
  dualboot.db.mongodb_restore:
    login_uri: "mongodb://db1.example.com:27017/"
    path: /var/backups/dualboot/shop-20261121
    database: shop_green
    replace: true
    boot_record: /var/lib/dualboot/shop.json
  register: restore

- name: Restore a mongodump --gzip output of a whole server, one database of it
  dualboot.db.mongodb_restore:
    login_host: db2.example.com
    path: /srv/dump
    source_database: shop
    database: shop_restored
"""

RETURN = r"""
database:
  description: Target database.
  returned: always
  type: str
method:
  description: C(swap) - restored under temporary names, then renamed into place.
  returned: success and not check mode
  type: str
how:
  description: One sentence saying what was done, for people.
  returned: success and not check mode
  type: str
incomplete_dropped:
  description: Temporary collections of an earlier, killed restore that this one dropped first.
  returned: success and not check mode
  type: list
  elements: str
verified:
  description: How the backup was checked before the restore (C(method), C(files_checked), C(documents), C(seconds)).
  returned: always
  type: dict
replaces:
  description: Collections the target held before (replaced, and dropped after the swap, because O(replace=true)).
  returned: always
  type: list
  elements: str
collections:
  description:
    - Per collection - C(name), C(documents), C(bson_bytes), C(content_hash), C(indexes) created, C(seconds),
      C(index_seconds). In check mode C(name) and C(type).
  returned: always
  type: list
  elements: dict
views:
  description: Views created.
  returned: success and not check mode
  type: list
  elements: str
unsupported:
  description:
    - What the target server refused or silently dropped and was therefore not restored - C(collection),
      C(what) (option, index, index option, view), C(detail), C(reason).
  returned: success and not check mode
  type: list
  elements: dict
skipped:
  description: Collections of the backup not restored on purpose (server-internal ones), with the reason.
  returned: always
  type: list
  elements: dict
documents:
  description: Documents restored.
  returned: success and not check mode
  type: int
bson_bytes:
  description: BSON bytes restored.
  returned: success and not check mode
  type: int
seconds:
  description: Duration of the restore (after verification).
  returned: success and not check mode
  type: float
documents_per_second:
  description: Throughput in documents per second.
  returned: success and not check mode
  type: float
mb_per_second:
  description: Throughput in MB of BSON per second.
  returned: success and not check mode
  type: float
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.dualboot.db.plugins.module_utils import runner  # noqa: E402
from ansible_collections.dualboot.db.plugins.module_utils.mongo_dump import RestoreRequest, restore  # noqa: E402
from ansible_collections.dualboot.db.plugins.module_utils.mongodb import PYMONGO_IMPORT_ERROR, connection_spec, from_params  # noqa: E402


def main() -> None:
    argument_spec = connection_spec()
    argument_spec.update(
        path={"type": "path", "required": True},
        database={"type": "str", "required": True},
        source_database={"type": "str"},
        collections={"type": "list", "elements": "str", "default": []},
        jobs={"type": "int", "default": 4},
        insertion_workers={"type": "int", "default": 2},
        batch_bytes={"type": "int", "default": 4194304},
        replace={"type": "bool", "default": False},
        boot_record={"type": "path"},
        force={"type": "bool", "default": False},
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    runner.require(module, "pymongo", PYMONGO_IMPORT_ERROR)
    p = module.params
    req = RestoreRequest(
        path=p["path"],
        database=p["database"],
        source_database=p["source_database"],
        collections=p["collections"],
        jobs=p["jobs"],
        insertion_workers=p["insertion_workers"],
        batch_bytes=p["batch_bytes"],
        replace=p["replace"],
        boot_record=p["boot_record"],
        force=p["force"],
    )
    runner.run(module, restore, from_params(p), req, check_mode=module.check_mode)


if __name__ == "__main__":
    main()
