#!/usr/bin/python
# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: postgresql_sync
short_description: Keep a PostgreSQL boot entry in sync with another by logical replication, and hand writes over
version_added: "0.1.0"
description:
  - Continuous sync of two boot entries - the B(source) (publisher) streams every change into the B(target) (subscriber)
    - so a cutover only waits for the last changes instead of a copy, and a rollback loses nothing. Each O(state) is one
    step of the stream's life; the lifecycle roles use them when C(dualboot_stage_method) is C(sync).
  - "Everything a stream creates is named for the deployment and the entry it feeds: C(dualboot_<name>_<entry>) is the
    publication and the replication slot on the source and the subscription on the target."
  - V(preflight) reports what the stream needs and what is missing - C(wal_level), free slots, WAL senders and workers,
    the replication privilege, table ownership, tables without a replica identity (with the choice of a primary key or
    C(REPLICA IDENTITY FULL) and its cost), large objects, unlogged tables, a frozen source, and whether the target
    server can open a replication connection to the source. With O(migrations) or O(migrations_dir) it applies them to a
    scratch copy of the source's schema on the target server and refuses changes a stream cannot carry (dropped or
    renamed tables and columns, type changes, new NOT NULL columns without default, new NOT NULL constraints, primary key
    or replica identity changes), naming the copy-based stage instead. Fails when anything is missing. The source may run
    PostgreSQL 13 or newer, the target 15 or newer (it publishes the stream back with column lists); the target may be
    a newer major than the source (a major-version upgrade; docs/postgresql-versions.md).
  - V(started) rebuilds the target database from the source's schema (under a temporary name, renamed into place; the
    previous target is replaced) and starts the stream; the target server's table sync workers copy the tables in
    parallel (C(max_sync_workers_per_subscription)), then the stream applies every later change.
  - V(caught_up) waits, at most O(timeout) seconds, until every table is synchronised and the target has applied the
    source's WAL up to O(lsn) (default - the position when the task starts).
  - V(sequences) copies the sequence values of the source to the target (logical replication does not carry them). A
    target sequence that is already further is left alone.
  - V(stopped) drops the subscription, the replication slot (with any table sync slots of an interrupted initial copy)
    and the publication. Idempotent; tolerates a missing database or a missing part; fails, naming what is left, when a
    server cannot be reached - a forgotten slot keeps WAL on the source forever.
  - V(reverse) starts a stream without initial copy into a target that holds the same rows already (the fallback just
    after a cutover), publishing only the columns and tables the target has (PostgreSQL 15 column lists).
  - V(status) reports the stream (tables, lag in bytes and seconds, errors, WAL the slot retains) and the guardrails of a
    handover - lag under O(max_lag_bytes), no write transaction older than O(max_transaction_seconds), no DDL running, no
    change of the published tables and no new table on the source since the stream started - as RV(ready_for_handover)
    and RV(blockers). With O(check_reverse) also whether the stream back can be started.
  - V(handover) is the database half of a cutover or rollback, in one task so that writes stop only briefly - PAUSE the
    O(pgbouncer) aliases, freeze the source (M(dualboot.db.postgresql_freeze)), wait until the target has applied
    everything up to the freeze position, then at once copy the sequences, end the stream, start the stream back into the
    source (named for O(source_entry), without copy, only the source's columns) and thaw the target if it was frozen,
    switch the O(pgbouncer) aliases that have a O(pgbouncer[].path) to the target and RESUME them. Bounded by O(timeout).
    On any failure every step is undone - the stream into the target is started again from the still frozen source, the
    source thawed, PgBouncer resumed - and the task fails saying so.
author: dualboot.db contributors (@dualboot-db)
extends_documentation_fragment:
  - dualboot.db.postgresql
  - dualboot.db.postgresql.endpoints
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - V(preflight) and V(status) read only; V(preflight) skips the scratch migration check in check mode.
      - The other states report what they would do and change nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  state:
    description: The step of the stream's life (see the description).
    type: str
    choices: [preflight, started, caught_up, sequences, stopped, reverse, status, handover]
    default: status
  name:
    description: Name of the deployment (C(dualboot_name)); part of every object name.
    type: str
    required: true
  entry:
    description: Name of the boot entry the stream feeds (the target's entry); the stream is C(dualboot_<name>_<entry>).
    type: str
    required: true
  source_entry:
    description:
      - V(handover) - name of the source's entry. When set, the handover starts the stream back into the source,
        C(dualboot_<name>_<source_entry>), so that the source keeps every later write (a lossless rollback, and a lossless
        undo). Without it nothing streams back.
    type: str
  source:
    description: The database the stream reads (the publisher), for example the default entry when staging.
    suboptions:
      login_host:
        description: Host of the source server; empty means the local Unix socket.
        type: str
        aliases: [host, login_hostname]
      login_port:
        description: Port of the source server.
        type: int
        aliases: [port]
      login_user:
        description: Role to connect to the source as.
        type: str
        aliases: [login, user]
      login_password:
        description: Password of the source role (never returned).
        type: str
      login_unix_socket:
        description: Unix socket directory of the source server.
        type: str
      login_db:
        description: Database of the source.
        type: str
        aliases: [db, database]
      ssl_mode:
        description: libpq C(sslmode) for the source.
        type: str
        choices: [allow, disable, prefer, require, verify-ca, verify-full]
      ca_cert:
        description: Certificate authorities of the source server certificate.
        type: path
        aliases: [ssl_rootcert]
      ssl_cert:
        description: Client certificate for the source.
        type: path
      ssl_key:
        description: Private key of the client certificate for the source.
        type: path
      connect_timeout:
        description: Seconds to wait for the source connection.
        type: int
      connect_params:
        description: Further libpq connection parameters for the source.
        type: dict
      replication_host:
        description:
          - Host name or address under which the B(other) server reaches this one for logical replication (the
            subscription's connection is opened by the subscriber server, not by the host running this task).
          - Default - O(source.login_host) (or the Unix socket directory).
        type: str
      replication_port:
        description: Port under which the other server reaches this one. Default - O(source.login_port).
        type: int
  target:
    description: The database the stream feeds (the subscriber), for example the staged entry when staging.
    suboptions:
      login_host:
        description: Host of the target server; empty means the local Unix socket.
        type: str
        aliases: [host, login_hostname]
      login_port:
        description: Port of the target server.
        type: int
        aliases: [port]
      login_user:
        description: Role to connect to the target as.
        type: str
        aliases: [login, user]
      login_password:
        description: Password of the target role (never returned).
        type: str
      login_unix_socket:
        description: Unix socket directory of the target server.
        type: str
      login_db:
        description: Database of the target.
        type: str
        aliases: [db, database]
      ssl_mode:
        description: libpq C(sslmode) for the target.
        type: str
        choices: [allow, disable, prefer, require, verify-ca, verify-full]
      ca_cert:
        description: Certificate authorities of the target server certificate.
        type: path
        aliases: [ssl_rootcert]
      ssl_cert:
        description: Client certificate for the target.
        type: path
      ssl_key:
        description: Private key of the client certificate for the target.
        type: path
      connect_timeout:
        description: Seconds to wait for the target connection.
        type: int
      connect_params:
        description: Further libpq connection parameters for the target.
        type: dict
      replication_host:
        description:
          - Host name or address under which the B(other) server reaches this one for logical replication (the
            subscription's connection is opened by the subscriber server, not by the host running this task).
          - Default - O(target.login_host) (or the Unix socket directory).
        type: str
      replication_port:
        description: Port under which the other server reaches this one. Default - O(target.login_port).
        type: int
  timeout:
    description:
      - Seconds V(caught_up) waits, and the budget of the whole V(handover); exceeding it in any step of the handover
        undoes it. V(stopped) waits this long for a slot to be released.
    type: float
    default: 60
  lsn:
    description: V(caught_up) - the source WAL position the target must have applied (for example C(0/16B3748)). Default - the current one.
    type: str
  replica_identity_full:
    description:
      - Tables (C(schema.table)) without primary key that may be published with C(REPLICA IDENTITY FULL). V(started) sets
        it on the source. Every UPDATE and DELETE of such a table then logs the whole old row, and the target scans the
        table for each changed row - fine for small tables, costly for big ones. A primary key is the better fix.
    type: list
    elements: str
    default: []
  migrations:
    description: V(preflight) - migrations (as M(dualboot.db.postgresql_migrate) takes them) to check for replication compatibility.
    type: list
    elements: dict
  migrations_dir:
    description: V(preflight) - a directory of C(V<version>__<description>.sql) files to check, on the host running the task.
    type: path
  max_lag_bytes:
    description: V(status) - the most WAL the target may be behind for RV(ready_for_handover).
    type: int
    default: 16777216
  max_transaction_seconds:
    description: V(status) - the oldest write transaction on the source that still counts as ready (the freeze waits for them).
    type: float
    default: 10
  check_reverse:
    description: V(status) - also check that the stream back (target -> source) can be started after a handover.
    type: bool
    default: false
  pgbouncer:
    description:
      - V(handover) - PgBouncer aliases to hold with C(PAUSE) from before the freeze, so clients wait instead of failing.
      - An item with O(pgbouncer[].path) (a pgbouncer.ini on the host running this task) is switched to the target by the
        handover itself, as M(dualboot.db.connection_switch) would, and resumed - the shortest pause. Items without it
        stay paused until their own switch resumes them (O(resume=false)), or are resumed at the end.
    type: list
    elements: dict
    default: []
    suboptions:
      key:
        description: The database alias.
        type: str
        required: true
      path:
        description: The pgbouncer.ini that defines the alias, on the host running the task.
        type: path
      backup:
        description: Keep a copy of pgbouncer.ini before switching it.
        type: bool
        default: false
      resume:
        description: Whether the handover resumes this alias at its end (an item without O(pgbouncer[].path)). Default - O(resume).
        type: bool
      pgbouncer_admin:
        description: Where the admin console listens and who may use it (as M(dualboot.db.connection_switch) takes it).
        type: dict
        suboptions:
          login_host:
            description: Host of the admin console (empty - the local Unix socket).
            type: str
            default: ''
          login_port:
            description: Port of PgBouncer.
            type: int
            default: 6432
          login_user:
            description: An admin user of PgBouncer.
            type: str
            default: pgbouncer
          login_password:
            description: Its password.
            type: str
            default: ''
          login_unix_socket:
            description: Unix socket directory of PgBouncer.
            type: str
            default: ''
          connect_timeout:
            description: Seconds to wait for the admin console.
            type: int
            default: 5
  resume:
    description: V(handover) - RESUME the O(pgbouncer) aliases without O(pgbouncer[].path) at the end (unless an item says otherwise).
    type: bool
    default: true
  freeze_wait_timeout:
    description: V(handover) - seconds the freeze waits for open write transactions on the source.
    type: float
    default: 10
  terminate:
    description: V(handover) - terminate sessions whose write transactions are still open after O(freeze_wait_timeout).
    type: bool
    default: false
  source_after:
    description:
      - V(handover) - V(frozen) keeps the source read-only afterwards (a cutover keeps its fallback frozen; the stream
        back still applies into it), V(thawed) makes it writable again (an undo).
    type: str
    choices: [frozen, thawed]
    default: frozen
  drop_database:
    description:
      - V(stopped) - also drop the target database once the stream is gone (finalize gives up the fallback this way).
        Refused while any session is connected to it.
    type: bool
    default: false
  being_replaced:
    description:
      - V(stopped) - the side(s) whose cluster the caller is about to replace by a physical copy (a stage whose staged
        entry is a cluster of its own, M(dualboot.db.postgresql_clone) C(method=physical)). When such a side is
        unreachable (not created yet, or stopped), whatever it holds goes with it, so that is a note, not a failure, and
        the other side is still cleaned. Any other unreachable side fails the task.
    type: list
    elements: str
    choices: [source, target]
    default: []
  bin_dir:
    description: Directory of pg_dump and pg_restore (V(preflight) with migrations, V(started)). Default - the ones matching the server.
    type: path
notes:
  - "The source needs C(wal_level = logical) and the replication privilege (or superuser) for the source's login role,
    which the target server uses to connect; PostgreSQL 15 lets only superusers create subscriptions on the target,
    16 and newer also members of C(pg_create_subscription) (with C(CREATE) on the database and a password in the
    source's connection): docs/privileges.md."
  - "The subscription keeps the source's password in C(pg_subscription) on the target server (readable by superusers
    only); the statements that carry it are kept out of the server log, and results never show it."
  - "Schema changes are not replicated: the target must take only replication-compatible migrations while it syncs, and
    the source no DDL at all (V(status) reports both)."
  - "Sequences move only with V(sequences) or V(handover); large objects and unlogged tables are not replicated."
seealso:
  - module: dualboot.db.postgresql_freeze
  - module: dualboot.db.connection_switch
  - module: dualboot.db.postgresql_clone
"""

EXAMPLES = r"""
- name: What is missing for a sync of blue into green, and can it take the migrations?
  dualboot.db.postgresql_sync:
    state: preflight
    name: shop
    entry: green
    source: {login_host: db1, login_db: shop_blue}
    target: {login_host: db2, login_db: shop_green}
    login_user: postgres
    login_password: "{{ vault_pg_password }}"
    migrations_dir: /srv/shop/migrations

- name: Rebuild green from blue's schema and start streaming blue into it
  dualboot.db.postgresql_sync:
    state: started
    name: shop
    entry: green
    source: {login_host: db1, login_db: shop_blue, replication_host: 10.0.0.11}
    target: {login_host: db2, login_db: shop_green}
    login_user: postgres
    login_password: "{{ vault_pg_password }}"

- name: Wait until green has every table and blue's latest changes
  dualboot.db.postgresql_sync:
    state: caught_up
    name: shop
    entry: green
    source: {login_host: db1, login_db: shop_blue}
    target: {login_host: db2, login_db: shop_green}
    timeout: 3600

- name: Hand the writes over to green, holding clients in PgBouncer meanwhile
  dualboot.db.postgresql_sync:
    state: handover
    name: shop
    entry: green
    source_entry: blue
    source: {login_host: db1, login_db: shop_blue}
    target: {login_host: db2, login_db: shop_green}
    timeout: 30
    pgbouncer:
      - key: shop
        path: /etc/pgbouncer/pgbouncer.ini
        pgbouncer_admin: {login_port: 6432, login_user: pgbouncer, login_password: "{{ vault_bouncer_password }}"}

- name: End every stream of green (idempotent)
  dualboot.db.postgresql_sync:
    state: stopped
    name: shop
    entry: green
    source: {login_host: db1, login_db: shop_blue}
    target: {login_host: db2, login_db: shop_green}
"""

RETURN = r"""
msg:
  description: What was done, for people.
  returned: always
  type: str
ready:
  description: V(preflight) - nothing is missing.
  returned: state=preflight
  type: bool
problems:
  description: V(preflight) - what is missing, one line each, with the fix.
  returned: state=preflight
  type: list
  elements: str
warnings:
  description: Costs and caveats that do not stop the stream (REPLICA IDENTITY FULL, materialized views, DDL while syncing).
  returned: state=preflight or state=started
  type: list
  elements: str
facts:
  description: V(preflight) - settings and counts of both servers (wal_level, slots, senders, workers, tables, bytes).
  returned: state=preflight
  type: dict
migration_check:
  description: V(preflight) - C(compatible), C(refused), C(cautions), C(changes) (the schema diff summary) of the migrations.
  returned: state=preflight with migrations
  type: dict
stream:
  description: The stream's names and ends (no secret), as the boot record keeps it.
  returned: state=started or state=reverse
  type: dict
  sample: {name: dualboot_shop_green, publication: dualboot_shop_green, slot: dualboot_shop_green, subscription: dualboot_shop_green}
parallel_copy_workers:
  description: V(started) - table sync workers of the initial copy (C(max_sync_workers_per_subscription) of the target).
  returned: state=started and changed
  type: int
lsn:
  description: V(caught_up) - the source position the target has applied.
  returned: state=caught_up
  type: str
ready_for_handover:
  description: V(status) - the guardrails hold.
  returned: state=status
  type: bool
blockers:
  description: V(status) - why a handover should not start now.
  returned: state=status
  type: list
  elements: str
lag_bytes:
  description: V(status) - WAL the target has not applied yet.
  returned: state=status and the slot exists
  type: int
lag_seconds:
  description: V(status) - replay lag the source measures, in seconds.
  returned: state=status and the target is connected
  type: float
retained_wal_bytes:
  description: V(status) - WAL the slot keeps on the source.
  returned: state=status and the slot exists
  type: int
copied:
  description: V(sequences) - sequence values set on the target.
  returned: state=sequences
  type: int
dropped:
  description: V(stopped) - what was removed.
  returned: state=stopped
  type: list
  elements: str
freeze_lsn:
  description: V(handover) - the source's WAL position after the freeze, applied by the target before the stream ended.
  returned: state=handover and changed
  type: str
paused_s:
  description: V(handover) - how long PgBouncer held clients (PAUSE to RESUME, or to the end of the task).
  returned: state=handover with pgbouncer
  type: float
writes_blocked_s:
  description: V(handover) - from the freeze of the source to the end of the handover.
  returned: state=handover and changed
  type: float
stream_back:
  description: V(handover) - the stream back into the source, with the tables and columns it does not carry back.
  returned: state=handover with source_entry
  type: dict
pgbouncer_switched:
  description: V(handover) - aliases the handover switched to the target itself.
  returned: state=handover and changed
  type: list
  elements: str
timings:
  description: Seconds per step.
  returned: when changed
  type: dict
seconds:
  description: Wall time of the task.
  returned: always
  type: float
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.dualboot.db.plugins.module_utils import pg_sync, pgbouncer, runner  # noqa: E402
from ansible_collections.dualboot.db.plugins.module_utils.postgresql import (  # noqa: E402
    PSYCOPG_IMPORT_ERROR,
    connection_spec,
    endpoint_spec,
)


def _endpoint() -> dict:
    spec = endpoint_spec()
    spec["options"].update(replication_host={"type": "str"}, replication_port={"type": "int"})
    return spec


def main():
    argument_spec = connection_spec()
    argument_spec.update(
        state={"type": "str", "choices": list(pg_sync.STATES), "default": "status"},
        name={"type": "str", "required": True},
        entry={"type": "str", "required": True},
        source_entry={"type": "str"},
        source=_endpoint(),
        target=_endpoint(),
        timeout={"type": "float", "default": 60},
        lsn={"type": "str"},
        replica_identity_full={"type": "list", "elements": "str", "default": []},
        migrations={"type": "list", "elements": "dict"},
        migrations_dir={"type": "path"},
        max_lag_bytes={"type": "int", "default": 16 * 1024 * 1024},
        max_transaction_seconds={"type": "float", "default": 10},
        check_reverse={"type": "bool", "default": False},
        pgbouncer={
            "type": "list",
            "elements": "dict",
            "default": [],
            "options": {
                "key": {"type": "str", "required": True, "no_log": False},
                "path": {"type": "path"},
                "backup": {"type": "bool", "default": False},
                "resume": {"type": "bool"},
                "pgbouncer_admin": {"type": "dict", "options": pgbouncer.admin_spec()},
            },
        },
        resume={"type": "bool", "default": True},
        freeze_wait_timeout={"type": "float", "default": 10},
        terminate={"type": "bool", "default": False},
        source_after={"type": "str", "choices": ["frozen", "thawed"], "default": "frozen"},
        drop_database={"type": "bool", "default": False},
        being_replaced={"type": "list", "elements": "str", "choices": ["source", "target"], "default": []},
        bin_dir={"type": "path"},
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    runner.require(module, "psycopg", PSYCOPG_IMPORT_ERROR)
    runner.run(module, pg_sync.run, module.params, module.check_mode)


if __name__ == "__main__":
    main()
