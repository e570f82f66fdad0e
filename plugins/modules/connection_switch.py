#!/usr/bin/python
# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: connection_switch
short_description: Point an application's database setting at a boot entry (dotenv, INI, JSON, YAML, symlink, PgBouncer)
version_added: "0.1.0"
description:
  - Changes the one setting through which an application finds its database, and nothing else in the file,
    so a switch and its reversal restore the file byte for byte.
  - V(dotenv) sets C(KEY=value) in a C(.env) file, quoted the way python-dotenv and docker compose both read it
    (unquoted when safe, else the quoting the line already used when it can carry the value). An C(export)
    prefix and a trailing comment are kept.
  - V(ini) sets O(key) in [O(section)] as Python's configparser reads it (keys match case-insensitively); the
    separator and spacing of the line are kept.
  - V(json) and V(yaml) set the value at a key path (O(key) C(db.url) or a list C([db, url]); digits index lists).
    Only the value's own text is rewritten; comments, order and layout stay. A value that was a number stays a
    number. A YAML block scalar (C(|), C(>)) cannot be replaced in place, so the document is then re-serialized
    and the task warns that its comments and layout are lost.
  - V(symlink) retargets the symlink O(path) to O(value) atomically (a new link renamed over the old one).
    The target must exist.
  - V(pgbouncer) points the database alias O(key) in the C([databases]) section of C(pgbouncer.ini) at the
    entry's host, port and dbname (other parameters of the line are kept), runs C(RELOAD) on the admin console
    and proves with C(SHOW DATABASES) that PgBouncer routes the alias there. With O(pause), C(PAUSE) comes
    first (running transactions finish, new ones wait) and C(RESUME) last, so clients see a pause instead of
    errors. On a C(PAUSE) timeout or any failure the alias is resumed and the file restored.
  - The value is O(value), or O(template) filled from O(entry) (connection settings of a boot entry, as in the
    boot record) and O(password). The secret reaches only the file; the result, diff and log show C(********).
  - Files are replaced atomically (temporary file in the same directory, fsync, rename) keeping their owner,
    group and mode; a symlinked file is edited where it lives. The key must already exist (a switch changes an
    existing setting). A missing or unparsable file, a key path through a non-object or an unreachable admin
    console end the task with one message, the file untouched.
author: dualboot.db contributors (@dualboot-db)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads and parses the file, renders the value, and for PgBouncer asks the admin console what it routes to; writes nothing.
  diff_mode:
    support: full
    details: Shows only the changed lines (other lines of a configuration file often hold other secrets), secrets masked.
  platform:
    platforms: posix
options:
  format:
    description: What kind of target O(path) is.
    type: str
    required: true
    choices: [dotenv, ini, json, yaml, symlink, pgbouncer]
    aliases: [target_type]
  path:
    description: The configuration file, the symlink, or C(pgbouncer.ini).
    type: path
    required: true
  key:
    description:
      - V(dotenv) the variable name; V(ini) the key in O(section); V(json)/V(yaml) a dotted path or a list of keys;
        V(pgbouncer) the database alias. Not used by V(symlink).
    type: raw
  section:
    description: The INI section holding O(key) (V(ini)).
    type: str
  value:
    description:
      - The new value (the symlink target for V(symlink)). For V(pgbouncer), connection parameters to set on the
        alias' line, e.g. C(host=db2 port=5432 dbname=shop_green).
      - Mutually exclusive with O(entry).
    type: str
  entry:
    description:
      - Connection settings of a boot entry, e.g. C(boot.record.entries[boot.record.default]) from M(dualboot.db.boot_record).
        Filled into O(template); for V(pgbouncer), C(login_host) (or C(login_unix_socket)), C(login_port) and C(login_db)
        become host, port and dbname.
      - Must not hold a secret; pass it with O(password).
    type: dict
  template:
    description:
      - How O(entry) becomes the value, Python format syntax with the entry's fields and C(password), e.g.
        C(postgresql://{login_user}:{password!u}@{login_host}:{login_port}/{login_db}). C(!u) percent-encodes a field
        for a URI. Required with O(entry) except for V(pgbouncer).
    type: str
  password:
    description: The secret the template inserts as C({password}); written to the file only, masked everywhere else.
    type: str
  backup:
    description: Keep a copy of the file (or the old link) as C(<path>.<pid>.<time>~), mode 0600, before changing it.
    type: bool
    default: false
  pgbouncer_admin:
    description: The PgBouncer admin console (V(pgbouncer)); the user must be in C(admin_users).
    type: dict
    suboptions:
      login_host:
        description: Host or socket directory; empty uses libpq's default socket directory.
        type: str
        default: ""
      login_port:
        description: PgBouncer's C(listen_port).
        type: int
        default: 6432
      login_user:
        description: An C(admin_users) user.
        type: str
        default: pgbouncer
      login_password:
        description: Its password.
        type: str
        default: ""
      login_unix_socket:
        description: Socket directory (wins over O(pgbouncer_admin.login_host)).
        type: str
        default: ""
      connect_timeout:
        description: Seconds to wait for the connection.
        type: int
        default: 5
  pause:
    description:
      - V(pgbouncer) only. C(PAUSE) the alias before C(RELOAD) and C(RESUME) it after, so no transaction runs on the
        old entry after the switch and clients wait instead of failing. In transaction pooling PAUSE waits for running
        transactions; in session pooling it waits until clients disconnect (use O(pause_timeout)).
    type: bool
    default: false
  pause_timeout:
    description: Seconds to wait for C(PAUSE) to complete; then the alias is resumed and nothing is switched.
    type: int
    default: 30
seealso:
  - module: dualboot.db.boot_record
notes:
  - With PgBouncer in transaction pooling, a client holding a connection runs its next transaction on the new entry.
    In session pooling a client keeps its server connection (the old entry) until it reconnects.
  - Reload or restart the application yourself after a file switch (the cutover role does).
requirements:
  - PyYAML (V(yaml))
  - psycopg 3 (V(pgbouncer))
"""

EXAMPLES = r"""
- name: Point the application's DATABASE_URL at the default entry
  dualboot.db.connection_switch:
    format: dotenv
    path: /srv/shop/.env
    key: DATABASE_URL
    entry: "{{ boot.record.entries[boot.record.default] }}"
    template: "postgresql://{login_user}:{password!u}@{login_host}:{login_port}/{login_db}"
    password: "{{ vault_shop_db_password }}"
    backup: true

- name: INI setting
  dualboot.db.connection_switch:
    format: ini
    path: /etc/shop/app.ini
    section: database
    key: dbname
    entry: "{{ boot.record.entries.green }}"
    template: "{login_db}"

- name: Nested YAML key
  dualboot.db.connection_switch:
    format: yaml
    path: /etc/shop/config.yml
    key: production.database.host
    value: db2.example.com

- name: Symlink to the configuration of the entry
  dualboot.db.connection_switch:
    format: symlink
    path: /etc/shop/database.conf
    value: /etc/shop/database.green.conf

- name: Switch PgBouncer's alias, holding clients for the moment of the switch
  dualboot.db.connection_switch:
    format: pgbouncer
    path: /etc/pgbouncer/pgbouncer.ini
    key: shop
    entry: "{{ boot.record.entries.green }}"
    pause: true
    pause_timeout: 10
    pgbouncer_admin:
      login_host: 127.0.0.1
      login_user: pgbouncer_admin
      login_password: "{{ vault_pgbouncer_admin_password }}"
"""

RETURN = r"""
path:
  description: The target.
  returned: always
  type: str
format:
  description: The target's format.
  returned: always
  type: str
key:
  description: The setting (not for symlinks).
  returned: when format is not symlink
  type: raw
previous_value:
  description: The value before the task, secrets masked. For V(pgbouncer) the alias' connection string.
  returned: always
  type: raw
  sample: postgresql://app:********@db1:5432/shop_blue
value:
  description: The value now, secrets masked.
  returned: always
  type: raw
  sample: postgresql://app:********@db1:5432/shop_green
backup_file:
  description: The backup copy.
  returned: when backup is true and something changed
  type: str
reloaded:
  description: PgBouncer re-read its configuration and routes the alias to the entry.
  returned: format=pgbouncer and changed
  type: bool
database:
  description: PgBouncer's C(SHOW DATABASES) row of the alias after the switch.
  returned: format=pgbouncer and changed
  type: dict
  sample: {host: db2, port: 5432, database: shop_green, pool_mode: transaction, paused: 0}
pause_wait_s:
  description: Seconds C(PAUSE) waited for running transactions.
  returned: format=pgbouncer, pause=true and changed
  type: float
paused_s:
  description: Seconds the alias was paused (clients held), from C(PAUSE) to C(RESUME).
  returned: format=pgbouncer, pause=true and changed
  type: float
duration_s:
  description: Seconds the task took.
  returned: always
  type: float
msg:
  description: What was done, in words (secrets masked).
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.dualboot.db.plugins.module_utils import app_switch, pgbouncer, runner, switch_formats  # noqa: E402
from ansible_collections.dualboot.db.plugins.module_utils.postgresql import PSYCOPG_IMPORT_ERROR  # noqa: E402


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            **app_switch.target_spec(),
            "entry": {"type": "dict"},
            "password": {"type": "str", "no_log": True},
        },
        mutually_exclusive=[("value", "entry")],
        required_one_of=[("value", "entry")],
        required_if=[
            ("format", "dotenv", ["key"]),
            ("format", "ini", ["key", "section"]),
            ("format", "json", ["key"]),
            ("format", "yaml", ["key"]),
            ("format", "pgbouncer", ["key"]),
        ],
        supports_check_mode=True,
    )
    if module.params["format"] == "pgbouncer":
        runner.require(module, "psycopg", PSYCOPG_IMPORT_ERROR)
        runner.run(module, pgbouncer.switch, module.params, module.check_mode)
    else:
        if module.params["format"] == "yaml":
            runner.require(module, "PyYAML", switch_formats.YAML_IMPORT_ERROR)
        runner.run(module, switch_formats.switch, module.params, module.check_mode)


if __name__ == "__main__":
    main()
