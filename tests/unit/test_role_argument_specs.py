"""The roles' argument specs agree with each other and with the defaults every role reads.

A variable set once in group_vars reaches every role of the lifecycle: a choice one role accepts and
another refuses (``dualboot_clone_method: physical`` accepted by stage, refused by cutover's restage)
stops the lifecycle halfway.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[2] / "roles"


def specs() -> dict[str, dict]:
    out = {}
    for path in sorted(ROLES.glob("*/meta/argument_specs.yml")):
        options = yaml.safe_load(path.read_text())["argument_specs"]["main"].get("options") or {}
        out[path.parts[-3]] = options
    return out


def shared_variables() -> list[str]:
    seen: dict[str, int] = {}
    for options in specs().values():
        for name in options:
            seen[name] = seen.get(name, 0) + 1
    return sorted(n for n, count in seen.items() if count > 1)


@pytest.mark.parametrize("name", shared_variables())
def test_a_variable_read_by_several_roles_is_declared_alike(name):
    declared = {role: options[name] for role, options in specs().items() if name in options}
    shapes = {role: (o.get("type"), tuple(sorted(map(str, o.get("choices") or []))), o.get("elements")) for role, o in declared.items()}
    assert len(set(shapes.values())) == 1, f"{name} is declared differently: {shapes}"


def test_every_declared_default_is_the_one_the_roles_read():
    defaults = yaml.safe_load((ROLES / "dualboot" / "defaults" / "main.yml").read_text())
    wrong = {
        (role, name): (o["default"], defaults[name])
        for role, options in specs().items()
        for name, o in options.items()
        if "default" in o and name in defaults and o["default"] != defaults[name]
    }
    assert not wrong, wrong
