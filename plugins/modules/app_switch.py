#!/usr/bin/python
# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: app_switch
short_description: Switch one application host to a boot entry in one call - its configuration, its reload, its health checks
version_added: "0.1.0"
description:
  - What the cutover and rollback roles run on each application host while writes are blocked. Every item of
    O(targets) is switched as M(dualboot.db.connection_switch) switches it; then, if any changed, the application is
    reloaded (O(reload)); then every health check of O(checks) runs. Each step is timed.
  - One call instead of a task per step, because every task costs a module start and Ansible's own work once per host,
    inside the window in which writes are blocked.
  - The first target that fails ends the switch of the host (nothing reloaded, no check run) and the task fails; the
    role then switches every touched host back. With O(undo) (switching back), every target is tried, the reload always
    runs (it may be what failed before), and a failed health check is reported without failing the task.
author: dualboot.db contributors (@dualboot-db)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Switches nothing; says what each target would change. The reload and the checks are not run.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  targets:
    description: The host's switch targets (C(dualboot_switch_targets)), each switched to O(entry).
    type: list
    elements: dict
    required: true
    suboptions:
      format:
        description: dotenv, ini, json, yaml, symlink or pgbouncer, as in M(dualboot.db.connection_switch).
        type: str
        required: true
        choices: [dotenv, ini, json, yaml, symlink, pgbouncer]
        aliases: [target_type]
      path:
        description: The file, symlink or C(pgbouncer.ini).
        type: path
        required: true
      key:
        description: The setting (variable, INI key, key path, PgBouncer alias).
        type: raw
      section:
        description: INI section.
        type: str
      value:
        description: A fixed value instead of one made from O(entry).
        type: str
      template:
        description: How O(entry) becomes the value (Python format syntax, C({password}) for O(password)).
        type: str
      backup:
        description: Keep a 0600 copy of what is replaced.
        type: bool
        default: false
      pgbouncer_admin:
        description: PgBouncer's admin console.
        type: dict
        suboptions:
          login_host:
            description: Host or socket directory.
            type: str
            default: ""
          login_port:
            description: C(listen_port).
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
            description: Socket directory.
            type: str
            default: ""
          connect_timeout:
            description: Seconds to wait.
            type: int
            default: 5
      pause:
        description: PAUSE the PgBouncer alias around its switch.
        type: bool
        default: false
      pause_timeout:
        description: Seconds PAUSE may wait.
        type: int
        default: 30
  entry:
    description: Connection settings of the boot entry (no secret), as in the boot record.
    type: dict
    required: true
  entry_name:
    description: The entry's name; command checks get it as C(DUALBOOT_ENTRY).
    type: str
  password:
    description: The entry's password, for the targets' C({password}); written to the files only (never to pgbouncer.ini).
    type: str
  reload:
    description:
      - How the application picks up its configuration (C(dualboot_app_reload)). C(command) (argv list, or a string split
        at whitespace; no shell) or C(service) with C(state) (reloaded, restarted, started, stopped; default reloaded), run
        with C(systemctl) where systemd runs, else with C(service). C(timeout) in seconds, none by default.
      - Runs when a target changed, and always with O(undo).
    type: dict
    default: {}
  checks:
    description:
      - Health checks run after the reload, in order. An item with C(url) (may contain C({host}), replaced by O(host)) is
        requested until it answers with C(status) (default 200, or a list), with C(retries) (default 5) more attempts
        C(delay) (default 1) seconds apart, each with C(timeout) (default 5) seconds. An item with C(command) runs with
        C(DUALBOOT_ENTRY) set. C(name) names the check in messages.
    type: list
    elements: dict
    default: []
  host:
    description: The host's address, for C({host}) in check URLs.
    type: str
  undo:
    description: Switching back after a failure - try every target, always reload, report failed checks without failing.
    type: bool
    default: false
  record:
    description:
      - The host's own boot record, written before anything else (write-ahead) - the options of M(dualboot.db.boot_record)
        with C(state=journal) (C(name), C(path), C(run_id), C(phase), C(operator)), and with C(entry) and C(cutover)
        (C(stage), C(verify) after a restage) the cutover marker in the same write. A record that cannot be written ends
        the switch before any target moves (step C(record)).
    type: dict
seealso:
  - module: dualboot.db.connection_switch
  - module: dualboot.db.boot_record
"""

EXAMPLES = r"""
- name: Switch this host to green, reload it and check its health
  dualboot.db.app_switch:
    targets:
      - format: dotenv
        path: /srv/shop/.env
        key: DATABASE_URL
        template: "postgresql://{login_user}:{password!u}@{login_host}:{login_port}/{login_db}"
    entry: "{{ boot.record.entries.green }}"
    entry_name: green
    password: "{{ vault_shop_db_password }}"
    reload:
      command: [systemctl, reload, shop]
    checks:
      - name: shop answers
        url: "http://{host}:8080/health"
        retries: 10
    host: "{{ ansible_host | default(inventory_hostname) }}"
  register: switched
"""

RETURN = r"""
targets:
  description: One result per target as M(dualboot.db.connection_switch) returns it (secrets masked); a failed one has
    C(failed) and C(msg). With a failure outside O(undo), the targets after it are not tried.
  returned: always
  type: list
  elements: dict
record:
  description: The write of the boot record (C(changed), C(path), C(msg)), or C(failed) and C(msg).
  returned: when O(record) is given
  type: dict
reload:
  description: The reload (C(cmd), C(rc), C(stdout), C(stderr), C(delta_s), C(failed)); empty when none ran.
  returned: always
  type: dict
checks:
  description: One result per health check (C(url), C(status), C(content), C(attempts), C(elapsed); or C(rc), C(stdout),
    C(stderr) of a command), C(failed) when it did not pass.
  returned: always
  type: list
  elements: dict
failures:
  description: The failed steps in order, each C({step, result}), step C(record), C(switch), C(reload) or C(health) (not
    C(health) with O(undo)).
  returned: always
  type: list
  elements: dict
seconds:
  description: Seconds per step - C(record), C(switch), C(reload), C(health), C(total).
  returned: always
  type: dict
  sample: {record: 0.003, switch: 0.004, reload: 0.012, health: 0.31, total: 0.33}
msg:
  description: What was done, in words.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.dualboot.db.plugins.module_utils import app_switch, runner  # noqa: E402


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "targets": {"type": "list", "elements": "dict", "required": True, "options": app_switch.target_spec()},
            "entry": {"type": "dict", "required": True},
            "entry_name": {"type": "str"},
            "password": {"type": "str", "no_log": True},
            "reload": {"type": "dict", "default": {}},
            "checks": {"type": "list", "elements": "dict", "default": []},
            "host": {"type": "str"},
            "undo": {"type": "bool", "default": False},
            "record": {"type": "dict"},
        },
        supports_check_mode=True,
    )
    runner.run(module, app_switch.execute, module.params, module.check_mode)


if __name__ == "__main__":
    main()
