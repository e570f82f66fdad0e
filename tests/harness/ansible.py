"""Run a module of the collection through Ansible itself (ansible-playbook on localhost), not by
importing its main(): argument parsing, no_log masking, check/diff mode and the module's packaging
are exercised exactly as users meet them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .paths import LOCAL_CACHE, ROOT, ensure_collection_path


@dataclass
class ModuleResult:
    result: dict
    output: str
    returncode: int

    def __getitem__(self, key):
        return self.result[key]

    def get(self, key, default=None):
        return self.result.get(key, default)

    @property
    def failed(self) -> bool:
        return bool(self.result.get("failed"))

    @property
    def changed(self) -> bool:
        return bool(self.result.get("changed"))

    @property
    def msg(self) -> str:
        return str(self.result.get("msg", ""))


def ansible_bin(core: str | None = None) -> Path:
    """Directory of the ansible executables: the test venv's (the pinned ansible-core), or for
    ``core`` ("2.16", ...) the controller venv ``.cache/venv-core-<core>`` that scripts/setup.sh
    installs. Modules run on the test venv's Python either way (ANSIBLE_PYTHON_INTERPRETER)."""
    if core is None:
        return Path(sys.executable).parent
    path = LOCAL_CACHE / f"venv-core-{core}" / "bin"
    if not (path / "ansible-playbook").exists():
        raise AssertionError(f"no ansible-core {core} venv at {path.parent}: run `make setup`")
    return path


def ansible_env(workdir: Path) -> dict:
    env = dict(os.environ)
    env.update(
        {
            "ANSIBLE_COLLECTIONS_PATH": str(ensure_collection_path()),
            "ANSIBLE_HOME": str(workdir / "ansible-home"),
            "ANSIBLE_LOCAL_TEMP": str(workdir / "tmp"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "ANSIBLE_HOST_KEY_CHECKING": "0",
            "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
            "ANSIBLE_LOCALHOST_WARNING": "0",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    return env


def run_module(
    module: str,
    args: dict,
    check: bool = False,
    diff: bool = False,
    timeout: float = 600,
    environment: dict | None = None,
    core: str | None = None,
) -> ModuleResult:
    """Run ``dualboot.db.<module>`` with ``args`` on localhost and return its registered result.

    A failing module does not raise: look at ``.failed`` and ``.msg``. ``.output`` is everything
    ansible-playbook printed, for tests that assert no secret is shown.
    """
    name = module if "." in module else f"dualboot.db.{module}"
    work = Path(tempfile.mkdtemp(prefix="dualboot-ansible-"))
    os.chmod(work, 0o700)
    try:
        out = work / "result.json"
        task = {"name": "module under test", name: args, "register": "r", "ignore_errors": True}
        if environment:
            task["environment"] = environment
        play = [
            {
                "hosts": "localhost",
                "gather_facts": False,
                "connection": "local",
                "tasks": [
                    task,
                    {
                        "name": "save result",
                        "check_mode": False,
                        "no_log": True,
                        "ansible.builtin.copy": {"content": "{{ r | to_json }}", "dest": str(out), "mode": "0600"},
                    },
                ],
            }
        ]
        (work / "play.yml").write_text(json.dumps(play))
        cmd = [str(ansible_bin(core) / "ansible-playbook"), "-i", "localhost,", str(work / "play.yml")]
        if check:
            cmd.append("--check")
        if diff:
            cmd.append("--diff")
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=ansible_env(work), cwd=ROOT, timeout=timeout)
        output = proc.stdout + proc.stderr
        if not out.exists():
            raise AssertionError(f"ansible-playbook did not run the module (rc={proc.returncode}):\n{output[-4000:]}")
        return ModuleResult(json.loads(out.read_text()), output, proc.returncode)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_playbook(
    playbook: str | Path,
    extra_vars: dict | None = None,
    inventory: str = "localhost,",
    check: bool = False,
    timeout: float = 1800,
    cwd: Path | None = None,
    core: str | None = None,
) -> subprocess.CompletedProcess:
    """Run a playbook (a path, or the FQCN ``dualboot.db.<name>``); extra vars go through a 0600 file.
    ``core`` runs it with an older ansible-core (see :func:`ansible_bin`)."""
    work = Path(tempfile.mkdtemp(prefix="dualboot-ansible-"))
    os.chmod(work, 0o700)
    try:
        cmd = [str(ansible_bin(core) / "ansible-playbook"), "-i", inventory, str(playbook)]
        if extra_vars:
            vf = work / "vars.json"
            vf.write_text(json.dumps(extra_vars))
            os.chmod(vf, 0o600)
            cmd += ["-e", f"@{vf}"]
        if check:
            cmd.append("--check")
        return subprocess.run(cmd, check=False, capture_output=True, text=True, env=ansible_env(work), cwd=cwd or ROOT, timeout=timeout)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def local_deployment(workdir: Path, switch_targets: dict, entries: dict, change: str) -> tuple[Path, dict]:
    """A deployment 'shop' run from this machine: an inventory whose application hosts (names in
    ``switch_targets``, each with its switch targets) are all local and keep their own boot record
    under ``workdir/records``, and the lifecycle variables for ``entries`` with the demo change
    ``change`` (r1, r3, ...). Returns (inventory path, variables)."""
    import yaml

    records = workdir / "records"
    inventory = workdir / "inventory.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
                    "children": {
                        "dualboot_db": {"hosts": {"db1": {}}},
                        "dualboot_app": {
                            "hosts": {
                                name: {"dualboot_switch_targets": targets, "dualboot_record_path": str(records / f"{name}.json")}
                                for name, targets in switch_targets.items()
                            }
                        },
                    },
                }
            }
        )
    )
    variables = {
        "dualboot_name": "shop",
        "dualboot_entries": entries,
        "dualboot_record_dir": str(records),
        "dualboot_report_dir": str(workdir / "reports"),
        "dualboot_work_dir": str(workdir / "work"),
        "dualboot_demo_dir": str(ROOT / "demo"),
        **yaml.safe_load((ROOT / "demo" / "changes" / change / "dualboot.yml").read_text()),
    }
    return inventory, variables
