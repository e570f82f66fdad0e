"""The execution environment: ansible-builder (its own venv, .cache/venv-builder from scripts/setup.sh)
reads the collection's dependencies from meta/execution-environment.yml and makes a build context from
the example definition docs/execution-environment.yml. A full image build needs a container engine and
the base image from a registry, neither of which CI has; the context is what this test can prove."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from harness.paths import COLLECTIONS, LOCAL_CACHE, ROOT, ensure_collection_path

BUILDER = LOCAL_CACHE / "venv-builder" / "bin" / "ansible-builder"


def _run(cmd: list, cwd: Path, env: dict | None = None) -> str:
    assert BUILDER.exists(), "ansible-builder is missing: run make setup"
    proc = subprocess.run([str(c) for c in cmd], check=False, capture_output=True, text=True, cwd=cwd, env=env)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_builder_reads_the_collection_dependencies():
    ensure_collection_path()
    data = yaml.safe_load(_run([BUILDER, "introspect", COLLECTIONS], ROOT))
    python = [line.split()[0] for line in data["python"]]
    assert "psycopg[binary]>=3.1" in python and "pymongo>=4.0" in python
    # The PostgreSQL client at the newest supported major: pg_dump must be at least the server's major.
    assert [line.split("#")[0].strip() for line in data["system"]] == ["postgresql17 [platform:rpm]"]


def test_example_definition_makes_a_build_context(tmp_path):
    definition = yaml.safe_load((ROOT / "docs" / "execution-environment.yml").read_text())
    version = yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"]
    wanted = f"collections/dualboot-db-{version}.tar.gz"
    assert definition["dependencies"]["galaxy"]["collections"][0]["name"] == wanted
    shutil.copy(ROOT / "docs" / "execution-environment.yml", tmp_path)
    env = {**os.environ, "ANSIBLE_HOME": str(tmp_path / "home")}
    galaxy = Path(sys.executable).parent / "ansible-galaxy"
    _run([galaxy, "collection", "build", "--output-path", tmp_path / "collections", ROOT], ROOT, env)
    assert (tmp_path / wanted).exists()

    _run([BUILDER, "create", "-f", "execution-environment.yml", "-c", "context"], tmp_path)
    containerfile = (tmp_path / "context" / "Dockerfile").read_text()
    assert 'ANSIBLE_INSTALL_REFS="ansible-core>=2.16,<2.20 ansible-runner"' in containerfile
    assert "pgdg-redhat-repo-latest.noarch.rpm" in containerfile and "pg_dump --version" in containerfile
    assert "introspect.py introspect" in containerfile  # the collection's own dependencies are read at build time
    assert (tmp_path / "context" / "_build" / wanted).exists()
