#!/usr/bin/python
# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: mongodb_drift
short_description: Tell exactly whether a MongoDB database took writes since a backup, stage or mark
version_added: "0.1.0"
description:
  - Compares the database O(database) (the default entry) with a drift marker - the per-collection fingerprint
    (document count and order-independent content hash of every raw BSON document) that M(dualboot.db.mongodb_backup)
    collects during the dump's own read - and reports whether it took writes since, naming every collection that was
    written, added or dropped with its document counts before and now.
  - No false negatives - every insert and delete, and every update that changes a byte of a document, changes the
    count or the hash of its collection. Writes made while the dump ran are either in the copy and in the marker, or in
    neither and reported. An update that writes identical bytes is no change.
  - The check reads every collection once (RV(method) C(content_fingerprint)). FerretDB has neither change streams
    nor C(dbHash); on MongoDB neither can be compared with a fingerprint taken during a dump, so the same read is used
    and RV(method_reason) says so.
  - With O(mark), takes a marker of O(database) now instead (the cutover marks the staged entry so that rollback can
    tell whether the new default took writes).
  - Read only.
author: dualboot.db contributors (@dualboot-db)
extends_documentation_fragment:
  - dualboot.db.mongodb
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
  database:
    description: The database to check (or mark).
    type: str
    required: true
  marker:
    description: The RV(dualboot.db.mongodb_backup#module:marker) of a backup, or the RV(marker) of an earlier O(mark).
    type: dict
  backup:
    description: A backup directory made by M(dualboot.db.mongodb_backup); the marker in its manifest is used.
    type: path
  mark:
    description: Take a marker of O(database) now (one read of every collection), returned as RV(marker).
    type: bool
    default: false
notes:
  - The marker must be of the same database on the same server (database name and host:port are checked).
  - Cost - one read of every document; see the collection's benchmarks/README.md for measured figures beside a plain
    C(find()).
seealso:
  - module: dualboot.db.mongodb_backup
  - module: dualboot.db.postgresql_drift
"""

EXAMPLES = r"""
- name: Back up the default entry (the result carries the marker)
  dualboot.db.mongodb_backup:
    login_uri: "mongodb://db1.example.com:27017/"
    database: shop_blue
    path: /var/backups/dualboot/shop
  register: backup

- name: Later - did the default entry take writes since?
  dualboot.db.mongodb_drift:
    login_uri: "mongodb://db1.example.com:27017/"
    database: shop_blue
    marker: "{{ backup.marker }}"
  register: drift

- name: Stop when it did
  ansible.builtin.assert:
    that: not drift.drift
    fail_msg: "{{ drift.summary }}"
"""

RETURN = r"""
drift:
  description: Whether the database took writes since the marker (absent with O(mark)).
  returned: unless O(mark)
  type: bool
  sample: true
collections:
  description:
    - Changed collections - C(collection), C(change) (C(written), C(added), C(dropped)), C(documents_before),
      C(documents_now), C(documents_delta). An update changes no count, so C(documents_delta) may be 0.
  returned: unless O(mark)
  type: list
  elements: dict
  sample: [{collection: users, change: written, documents_before: 500, documents_now: 502, documents_delta: 2}]
method:
  description: How the answer was reached - C(content_fingerprint) (every collection read and hashed).
  returned: success
  type: str
  sample: content_fingerprint
method_reason:
  description: Why that method, on this server.
  returned: success
  type: str
marker:
  description:
    - With O(mark), the whole new marker (C(kind), C(database), C(server), C(hosts), C(taken_at), C(source),
      C(collections) with C(documents) and C(content_hash) each), to keep and give to O(marker) later.
    - Otherwise where and when the compared marker was taken.
  returned: success
  type: dict
documents_read:
  description: Documents read.
  returned: success
  type: int
bytes_read:
  description: BSON bytes read.
  returned: success
  type: int
seconds:
  description: Duration of the read.
  returned: success
  type: float
mb_per_second:
  description: Read throughput (BSON MB per second).
  returned: success
  type: float
summary:
  description: One line for people.
  returned: success
  type: str
  sample: >-
    'shop_blue' on db1:27017 took writes since the marker of 2026-12-01T10:00:00Z (content_fingerprint):
    users (written, 500 -> 502 documents)
"""

import json  # noqa: E402
import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.dualboot.db.plugins.module_utils import runner  # noqa: E402
from ansible_collections.dualboot.db.plugins.module_utils.mongo_drift import drift, mark  # noqa: E402
from ansible_collections.dualboot.db.plugins.module_utils.mongodb import PYMONGO_IMPORT_ERROR, connection_spec, from_params  # noqa: E402


def _backup_marker(path: str) -> dict | None:
    manifest = os.path.join(path, "manifest.json")
    try:
        with open(manifest, encoding="utf-8") as f:
            return json.load(f).get("marker")
    except (OSError, ValueError, AttributeError):
        return None


def main() -> None:
    argument_spec = connection_spec()
    argument_spec.update(
        database={"type": "str", "required": True},
        marker={"type": "dict"},
        backup={"type": "path"},
        mark={"type": "bool", "default": False},
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        mutually_exclusive=[("marker", "backup", "mark")],
        required_one_of=[("marker", "backup", "mark")],
    )
    runner.require(module, "pymongo", PYMONGO_IMPORT_ERROR)
    p = module.params
    if p["mark"]:
        runner.run(module, mark, from_params(p), p["database"])
    marker = _backup_marker(p["backup"]) if p["backup"] else p["marker"]
    runner.run(module, drift, from_params(p), p["database"], marker)


if __name__ == "__main__":
    main()
