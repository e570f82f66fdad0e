#!/usr/bin/python
# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: mongodb_backup
short_description: Back up a MongoDB database in the mongodump directory layout, with a manifest
version_added: "0.1.0"
description:
  - Writes O(path)/<database>/<collection>.bson (length-prefixed BSON documents back to back, exactly as
    the server returned them, never decoded) and <collection>.metadata.json (canonical Extended JSON with
    C(options), C(indexes), C(uuid), C(collectionName), C(type)), file names escaped like mongodump, so
    C(mongorestore) reads the result too.
  - Adds O(path)/manifest.json with the sha256 and size of every file, the document count, BSON bytes and an
    order-independent content hash per collection, the server version, the source database and the time.
    M(dualboot.db.mongodb_restore) verifies it before writing anything.
  - Collections are dumped in parallel (O(jobs)); memory stays bounded (one server batch per collection).
  - Views are recorded in the metadata (C(viewOn), C(pipeline)), not dumped as data. Server-internal
    C(system.*) collections are skipped, as mongodump does. Time-series collections are refused with a clear
    message (exclude them and use mongodump).
  - The backup is built in a sibling directory and moved to O(path) only when complete, so a failed run never
    leaves a half backup at O(path). Directories are created 0700, files 0600.
  - Each collection is read by one plain cursor - not a snapshot read and not point-in-time across collections. A write
    during the dump may or may not be in it; on MongoDB a document moved during the read may be missed or read twice
    (then the restore fails on the duplicate key). The RV(marker) describes exactly what was read, so
    M(dualboot.db.mongodb_drift) against it reports every write the backup does not hold.
  - Collects, during the same read, the drift marker - per collection the document count and content hash - in the
    manifest and in RV(marker).
author: dualboot.db contributors (@dualboot-db)
extends_documentation_fragment:
  - dualboot.db.mongodb
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Connects, lists the collections that would be dumped with their estimated document counts, writes nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  database:
    description: Database to back up.
    type: str
    required: true
  path:
    description:
      - Directory to write the backup to (like C(mongodump --out)). It must not exist or be empty unless
        O(overwrite=true).
    type: path
    required: true
  collections:
    description: Back up only these collections (default all).
    type: list
    elements: str
    default: []
  exclude_collections:
    description: Collections to leave out.
    type: list
    elements: str
    default: []
  gzip:
    description: Compress each file with gzip (C(.bson.gz), C(.metadata.json.gz)), as C(mongodump --gzip).
    type: bool
    default: false
  jobs:
    description: Number of collections dumped in parallel.
    type: int
    default: 4
  overwrite:
    description:
      - Replace an existing backup at O(path). The old backup is removed only after the new one is complete.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Back up the live shop database before staging
  dualboot.db.mongodb_backup:
    login_uri: "mongodb://db1.example.com:27017/"
    login_user: backup
    login_password: "{{ vault_mongo_backup_password }}"
    database: shop
    path: /var/backups/dualboot/shop-{{ ansible_date_time.iso8601_basic_short }}
    gzip: true
  register: backup

- name: Show throughput
  ansible.builtin.debug:
    msg: "{{ backup.documents }} documents at {{ backup.mb_per_second }} MB/s"
"""

RETURN = r"""
path:
  description: Absolute path of the backup directory.
  returned: always
  type: str
manifest:
  description: Path of the manifest file.
  returned: success and not check mode
  type: str
database:
  description: The database backed up.
  returned: always
  type: str
server_version:
  description: Version the server reported (buildInfo).
  returned: success and not check mode
  type: str
collections:
  description:
    - One entry per collection or view, as in the manifest - C(name), C(type), C(documents), C(bson_bytes),
      C(data_file), C(data_sha256), C(content_hash), C(metadata_file), C(indexes), C(seconds). In check mode
      C(name), C(type) and C(estimated_documents).
  returned: always
  type: list
  elements: dict
marker:
  description:
    - The drift marker of the dump (also in the manifest) - C(kind) (C(mongodb-fingerprint)), C(database), C(server),
      C(hosts), C(taken_at), C(source), C(collections) (per collection C(documents) and C(content_hash)), C(scope) when
      O(collections) or O(exclude_collections) filtered the dump. Give it to M(dualboot.db.mongodb_drift).
  returned: success and not check mode
  type: dict
documents:
  description: Documents written.
  returned: success and not check mode
  type: int
bson_bytes:
  description: Bytes of BSON documents written (before gzip).
  returned: success and not check mode
  type: int
disk_bytes:
  description: Bytes on disk (after gzip when O(gzip=true)).
  returned: success and not check mode
  type: int
seconds:
  description: Duration of the dump.
  returned: success and not check mode
  type: float
documents_per_second:
  description: Throughput in documents per second.
  returned: success and not check mode
  type: float
mb_per_second:
  description: Throughput in MB (10^6 bytes) of BSON per second.
  returned: success and not check mode
  type: float
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.dualboot.db.plugins.module_utils import runner  # noqa: E402
from ansible_collections.dualboot.db.plugins.module_utils.mongo_dump import BackupRequest, backup  # noqa: E402
from ansible_collections.dualboot.db.plugins.module_utils.mongodb import PYMONGO_IMPORT_ERROR, connection_spec, from_params  # noqa: E402


def main() -> None:
    argument_spec = connection_spec()
    argument_spec.update(
        database={"type": "str", "required": True},
        path={"type": "path", "required": True},
        collections={"type": "list", "elements": "str", "default": []},
        exclude_collections={"type": "list", "elements": "str", "default": []},
        gzip={"type": "bool", "default": False},
        jobs={"type": "int", "default": 4},
        overwrite={"type": "bool", "default": False},
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    runner.require(module, "pymongo", PYMONGO_IMPORT_ERROR)
    p = module.params
    req = BackupRequest(
        database=p["database"],
        path=p["path"],
        collections=p["collections"],
        exclude_collections=p["exclude_collections"],
        gzip=p["gzip"],
        jobs=p["jobs"],
        overwrite=p["overwrite"],
    )
    runner.run(module, backup, from_params(p), req, check_mode=module.check_mode)


if __name__ == "__main__":
    main()
