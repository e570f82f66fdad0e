"""The collection as users get it: `ansible-galaxy collection build` makes a tarball that installs,
and every module's documentation renders with ansible-doc from the installed copy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from harness.paths import ROOT

BIN = Path(sys.executable).parent


def _run(cmd: list[str], env: dict) -> str:
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, cwd=ROOT)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_build_install_and_render_docs(tmp_path):
    env = {**os.environ, "ANSIBLE_HOME": str(tmp_path / "home"), "ANSIBLE_COLLECTIONS_PATH": str(tmp_path / "installed")}
    _run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path / "dist"), str(ROOT)], env)
    tarballs = list((tmp_path / "dist").glob("dualboot-db-*.tar.gz"))
    assert len(tarballs) == 1
    _run([str(BIN / "ansible-galaxy"), "collection", "install", "-p", str(tmp_path / "installed"), str(tarballs[0])], env)
    installed = tmp_path / "installed" / "ansible_collections" / "dualboot" / "db"
    assert (installed / "MANIFEST.json").exists()
    assert not list(installed.rglob("__pycache__")), "build must not ship compiled files"

    modules = sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if p.stem != "__init__")
    assert modules, "the collection has no modules yet"
    listed = json.loads(_run([str(BIN / "ansible-doc"), "--list", "--json", "dualboot.db"], env))
    assert sorted(name.split(".")[-1] for name in listed) == modules
    docs = json.loads(
        _run(
            [
                str(
                    BIN / "ansible-doc",
                ),
                "--json",
                *[f"dualboot.db.{m}" for m in modules],
            ],
            env,
        )
    )
    for m in modules:
        doc = docs[f"dualboot.db.{m}"]["doc"]
        assert doc["short_description"] and doc["options"], f"{m} documentation is incomplete"
        assert docs[f"dualboot.db.{m}"]["examples"], f"{m} has no EXAMPLES"
