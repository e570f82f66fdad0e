#!/usr/bin/python
# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: boot_record
short_description: Read, define, switch and lock the boot record of a dual-booted database
version_added: "0.1.0"
description:
  - The boot record is one small JSON document per deployment on every application host
    (default C(/var/lib/dualboot/<name>.json), mode 0600) holding the boot entries (connection settings
    without secrets), which entry is the default and which the fallback, the stage/verify evidence
    of the staged entry, a lock, and an append-only history of every switch.
  - O(state=query) reads it; O(state=defined) creates it or updates its entries; O(state=evidence)
    records stage/verify evidence of the staged entry; O(state=switched) makes another entry the default
    (the old default becomes the fallback, a history entry is appended); O(state=locked) and
    O(state=unlocked) take and release the lock that keeps two cutovers from running at once;
    O(state=journal) writes the intent journal of a cutover or rollback and moves its phase.
  - The intent journal makes an interrupted cutover or rollback recoverable from the records alone. The plan
    (O(journal) with action, from, to and hosts) is written with the lock, before anything changes; each step moves
    O(phase) forward before it runs. V(done) makes the plan's C(to) the default and releases the lock in the same
    write; V(undone) restores the record's default, fallback and staged entry as they were before the plan and
    releases the lock.
  - Every change is written atomically (temporary file in the same directory, fsync, rename, fsync of the
    directory) under an exclusive lock on the directory, so concurrent runs on one host never lose an
    update. A record that is not valid JSON or not a valid boot record is reported with its path and never
    overwritten.
  - While the record is locked, only the run holding the lock (O(run_id)) may change it.
    An expired lock is not released silently, because a crashed cutover may have left application hosts
    half switched. O(force) clears a lock deliberately and leaves a history entry. O(takeover) takes over the lock
    of one named run that the caller has found dead (the roles check that the run's controller process is gone,
    or that its lock expired); it too leaves a history entry.
  - A rollback is a switch back to the fallback entry; the roles decide when (O(reason) names it in the history).
author: dualboot.db contributors (@dualboot-db)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads the record and computes the new one, refusing exactly what a real run would refuse; writes nothing.
  diff_mode:
    support: full
    details: A summary before and after (default, fallback and staged entry, entries, evidence kinds, lock, journal,
      last switch), never marker JSON.
  platform:
    platforms: posix
options:
  name:
    description: The deployment's name (C(dualboot_name)); also names the default O(path).
    type: str
    required: true
  path:
    description: The record file. Default C(/var/lib/dualboot/<name>.json).
    type: path
  state:
    description:
      - V(query) returns the record (RV(exists=false) when there is none yet).
      - V(defined) creates the record (needs O(engine), O(entries), O(default)) or replaces its entries.
        It never changes the default entry (that is a switch) and refuses to remove the default, fallback
        or staged entry. Evidence of an entry whose settings change is dropped.
      - V(evidence) stores O(stage) and/or O(verify) evidence of O(entry). New stage evidence replaces
        the entry's earlier evidence and makes it the staged entry. Verify evidence needs stage evidence.
      - V(switched) makes O(to) the default entry. Switching to the current default changes nothing.
      - V(locked) takes the lock for O(run_id) for O(ttl) seconds; the same run extends it.
      - V(unlocked) releases the lock of O(run_id).
      - V(journal) moves the journal of O(run_id) to O(phase) (with O(journal), starts or adopts a plan first).
        Needs the lock of O(run_id).
    type: str
    choices: [query, defined, evidence, switched, locked, unlocked, journal]
    default: query
  engine:
    description: The engine of the deployment (V(defined)); it cannot change later.
    type: str
    choices: [postgresql, mongodb]
  entries:
    description:
      - Boot entries (V(defined)), name to connection settings, e.g. C(login_host), C(login_port), C(login_user),
        C(login_db) for PostgreSQL; C(login_uri) without password, or C(login_host)/C(login_port), plus C(database)
        for MongoDB. The complete set of entries (entries left out are removed).
      - Secrets are refused (C(login_password), C(password), any C(*_password), a URI with a password).
        A reference such as C(password_var) or C(password_file) is fine.
    type: dict
  default:
    description: The default entry of a new record (V(defined)). On an existing record it must name the current default.
    type: str
  entry:
    description: The staged entry that O(stage)/O(verify) describe (V(evidence)). Never the default entry.
    type: str
  stage:
    description: Stage evidence (V(evidence)), e.g. backup id, migration versions, schema fingerprint. C(at) is added when missing.
    type: dict
  verify:
    description: Verify evidence (V(evidence)), e.g. C(verdict), report path, schema fingerprint. C(at) is added when missing.
    type: dict
  cutover:
    description:
      - Cutover evidence (V(evidence)) of the entry applications are switching to, e.g. the drift marker taken
        just before the switch, which rollback compares with. Needs passing verify evidence. C(at) is added when missing.
      - With V(journal) and O(entry), recorded in the same write as the phase (with O(stage) and O(verify) when given),
        so the record holds the marker whenever it holds the phase.
    type: dict
  to:
    description: The entry to make the default (V(switched)).
    type: str
  reason:
    description: Recorded as the history entry's C(action) (V(switched)), e.g. V(cutover) or V(rollback).
    type: str
    default: switch
  run_id:
    description:
      - Identifies the run (a cutover, a rollback). Required for V(locked). While the record is locked, changes
        are allowed only with the lock's O(run_id). Recorded in history entries.
    type: str
  by:
    description: Who makes the change, recorded in history entries (V(switched), forced V(unlocked)). Default the user running the module.
    type: str
  operator:
    description:
      - The person who launched the run, recorded in the journal and in history entries (V(switched), a
        taken-over V(locked), forced V(unlocked), a journal's V(done) or V(undone)) beside O(by), the account
        that runs the module.
      - The roles pass C(dualboot_operator), else the user who launched the AWX or Automation Platform job
        (C(awx_user_name), C(tower_user_name)) with its job id, else the controller's user.
    type: str
  owner:
    description: Who holds the lock (V(locked)), shown to anyone the lock refuses. Default the user running the module.
    type: str
  ttl:
    description: Seconds until the lock expires (V(locked)). Choose the longest the run may take.
    type: int
    default: 3600
  force:
    description:
      - With V(unlocked), clear the lock whoever holds it (a crashed run's); with V(locked), take over a lock
        only when it has expired. Either leaves a history entry naming the cleared lock.
    type: bool
    default: false
  controller:
    description:
      - Where the run holding the lock runs (V(locked)), the C(host) and C(pid) of its ansible-playbook process, stored in the lock so
        another run can tell whether the holder is still alive.
    type: dict
  takeover:
    description:
      - With V(locked), the run id of a dead run whose lock is taken over. Refused when another run holds the lock.
    type: str
  journal:
    description:
      - The plan of a cutover or rollback (V(locked) or V(journal)), with C(action) (V(cutover) or V(rollback)),
        C(from), C(to), C(hosts) and optionally C(run_id) (default O(run_id); a run that finishes or undoes a crashed
        run passes the crashed run's id) and anything else the run needs to resume (e.g. C(method)).
        The record's default, fallback and staged entry are saved beside it.
    type: dict
  phase:
    description:
      - The journal phase (V(journal)), written before the step it names runs.
    type: str
    choices: [locked, marked, frozen, switching, undoing, done, undone]
seealso:
  - module: dualboot.db.connection_switch
notes:
  - Each application host keeps its own record; the roles keep them consistent.
  - Timestamps are UTC, ISO 8601 (C(2026-11-21T16:00:00Z)).
"""

EXAMPLES = r"""
- name: Define the deployment (first run) or update its entries
  dualboot.db.boot_record:
    name: shop
    state: defined
    engine: postgresql
    default: blue
    entries:
      blue: {login_host: db1.example.com, login_port: 5432, login_user: app, login_db: shop_blue}
      green: {login_host: db1.example.com, login_port: 5432, login_user: app, login_db: shop_green}

- name: Record what stage produced
  dualboot.db.boot_record:
    name: shop
    state: evidence
    entry: green
    stage: {backup_id: "20261121T160000Z", migrations: ["V2__rename_user_name"]}

- name: Take the lock for this cutover
  dualboot.db.boot_record:
    name: shop
    state: locked
    owner: "{{ lookup('env', 'USER') }}@controller"
    run_id: "{{ cutover_run_id }}"
    ttl: 1800

- name: Make green the default entry (blue becomes the fallback)
  dualboot.db.boot_record:
    name: shop
    state: switched
    to: green
    reason: cutover
    run_id: "{{ cutover_run_id }}"
  register: switched

- name: Release the lock
  dualboot.db.boot_record:
    name: shop
    state: unlocked
    run_id: "{{ cutover_run_id }}"

- name: Read the record
  dualboot.db.boot_record:
    name: shop
  register: boot

- name: Show where applications boot now
  ansible.builtin.debug:
    msg: "default {{ boot.record.default }}, fallback {{ boot.record.fallback }}"

- name: Clear the lock of a crashed run (after checking the hosts)
  dualboot.db.boot_record:
    name: shop
    state: unlocked
    force: true
"""

RETURN = r"""
path:
  description: The record file.
  returned: always
  type: str
  sample: /var/lib/dualboot/shop.json
exists:
  description: Whether the record exists (after the task; in check mode, whether it would).
  returned: always
  type: bool
record:
  description: The record after the task (before it for a refused change), without secrets; null when there is none.
  returned: always
  type: dict
  sample:
    format: 1
    name: shop
    engine: postgresql
    entries:
      blue: {login_host: db1, login_port: 5432, login_user: app, login_db: shop_blue}
      green: {login_host: db1, login_port: 5432, login_user: app, login_db: shop_green}
    default: green
    fallback: blue
    staged: null
    evidence: {}
    lock: null
    history:
      - {action: cutover, from: blue, to: green, at: "2026-11-21T16:00:00Z", run_id: r1, by: root,
         operator: "alice (AWX job 42)", outcome: ok}
    updated: "2026-11-21T16:00:00Z"
previous_default:
  description: The default entry before the switch.
  returned: state=switched
  type: str
  sample: blue
from:
  description: Same as RV(previous_default).
  returned: state=switched
  type: str
to:
  description: The default entry after the switch.
  returned: state=switched
  type: str
lock:
  description: The lock now held (owner, run_id, acquired, expires).
  returned: state=locked
  type: dict
cleared_lock:
  description: The lock that was released, cleared or taken over, if any.
  returned: state=locked or state=unlocked
  type: dict
journal:
  description: The journal of the run after the task (action, run_id, from, to, hosts, phase, before, phases).
  returned: state=journal, or state=locked with O(journal)
  type: dict
lock_expired:
  description: Whether the record holds a lock that has expired (a run that probably crashed).
  returned: state=query
  type: bool
msg:
  description: What was done, in words.
  returned: always
  type: str
  sample: switched the default entry from blue to green (fallback blue)
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.dualboot.db.plugins.module_utils import boot_record, runner  # noqa: E402


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "path": {"type": "path"},
            "state": {
                "type": "str",
                "default": "query",
                "choices": ["query", "defined", "evidence", "switched", "locked", "unlocked", "journal"],
            },
            "engine": {"type": "str", "choices": ["postgresql", "mongodb"]},
            "entries": {"type": "dict"},
            "default": {"type": "str"},
            "entry": {"type": "str"},
            "stage": {"type": "dict"},
            "verify": {"type": "dict"},
            "cutover": {"type": "dict"},
            "to": {"type": "str"},
            "reason": {"type": "str", "default": "switch"},
            "run_id": {"type": "str"},
            "by": {"type": "str"},
            "operator": {"type": "str"},
            "owner": {"type": "str"},
            "ttl": {"type": "int", "default": 3600},
            "force": {"type": "bool", "default": False},
            "controller": {"type": "dict"},
            "takeover": {"type": "str"},
            "journal": {"type": "dict"},
            "phase": {"type": "str", "choices": ["locked", "marked", "frozen", "switching", "undoing", "done", "undone"]},
        },
        required_if=[
            ("state", "evidence", ["entry"]),
            ("state", "evidence", ["stage", "verify", "cutover"], True),
            ("state", "switched", ["to"]),
            ("state", "locked", ["run_id"]),
            ("state", "journal", ["run_id", "phase"]),
        ],
        supports_check_mode=True,
    )
    runner.run(module, boot_record.execute, module.params, module.check_mode)


if __name__ == "__main__":
    main()
