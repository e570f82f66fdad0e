# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module boundary: call one library function, turn its result or error into exit/fail_json.

Library code never calls ``fail_json``; it raises :class:`DualbootError` subclasses. Modules call
:func:`run` once from ``main()``.
"""

from __future__ import annotations

import traceback
from typing import Any, Callable

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.dualboot.db.plugins.module_utils.errors import DualbootError, MissingDependency


def require(module: Any, library: str, import_error: str | None) -> None:
    """Fail with Ansible's standard message when a Python library could not be imported."""
    if import_error is not None:
        module.fail_json(msg=missing_required_lib(library), exception=import_error)


def _exit(module: Any, exit_: Callable[..., None], result: dict) -> None:
    """Leave through ``exit_`` with ``result``, its ``warnings`` raised through ``module.warn``.

    Passing ``warnings`` to ``exit_json``/``fail_json`` is deprecated since ansible-core 2.19 (even an
    empty list prints a deprecation warning on every run); ``module.warn`` works on 2.16 and later,
    and Ansible still returns the warnings in the task result.
    """
    warnings = result.pop("warnings", None) or []
    for warning in [warnings] if isinstance(warnings, str) else warnings:
        module.warn(str(warning))
    exit_(**result)


def run(module: Any, func: Callable[..., dict], *args: Any, **kwargs: Any) -> None:
    """Run ``func`` and exit the module with its result dict.

    The result's ``diff`` is kept only when the user asked for ``--diff``. A ``DualbootError`` ends
    the task with its message, hint and details; so does a privilege error of the server (SQLSTATE
    42501) that a step did not foresee: the user can cause it, so it names the GRANT. Anything else
    is a bug and keeps its traceback. Library results report notes in ``warnings``; they reach the
    user as Ansible warnings.
    """
    try:
        result = func(*args, **kwargs)
    except MissingDependency as exc:
        module.fail_json(msg=str(exc), error="MissingDependency", **exc.details)
    except DualbootError as exc:
        _fail(module, exc)
    except Exception as exc:  # noqa: BLE001 - the boundary reports unexpected errors with their traceback
        # Imported here: it loads psycopg, which modules without a database (boot_record, the switch)
        # would otherwise pay for on every call (a third of their start-up).
        from ansible_collections.dualboot.db.plugins.module_utils.pg_privileges import explain, is_privilege_error

        if is_privilege_error(exc):
            _fail(module, explain(exc, login_role(module.params)))
        else:
            module.fail_json(msg=f"unexpected error: {type(exc).__name__}: {exc}", exception=traceback.format_exc())
    else:
        if not module._diff:
            result.pop("diff", None)
        _exit(module, module.exit_json, result)


def login_role(params: dict) -> str | None:
    """The login role a server's privilege error is about: the one role every side logs in as, else
    none (a two-sided module's source and target may log in as different roles; naming one would
    blame the wrong one)."""
    sides = [params[side] for side in ("source", "target") if isinstance(params.get(side), dict)]
    roles = {side.get("login_user") or params.get("login_user") for side in sides} if sides else {params.get("login_user")}
    roles.discard(None)
    return roles.pop() if len(roles) == 1 else None


def _fail(module: Any, exc: DualbootError) -> None:
    fail = {"msg": str(exc), "error": type(exc).__name__}
    if exc.hint:
        fail["hint"] = exc.hint
    fail.update(exc.details)
    _exit(module, module.fail_json, fail)
