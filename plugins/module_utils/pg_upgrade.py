# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Upgrade a physical copy to a newer major version with ``pg_upgrade`` (``postgresql_clone`` method
``physical`` with ``target_major``): the fast path of a major-version upgrade by dual boot.

The source is never touched: ``pg_basebackup`` has already copied it into a directory of its own
(``<target_data_dir>.dualboot-pg<old>``). That copy is brought to a clean shutdown with the old
binaries, a new cluster is initialised with the new ones (same superuser, encoding, locale, checksums
and WAL segment size, as ``pg_upgrade`` requires), ``pg_upgrade`` moves the copy into it (``--link``
by default: the old copy is ours and is deleted afterwards), and the new cluster gets the source's
``pg_hba.conf``, ``pg_ident.conf`` and every setting of its configuration files that the new major
still knows. Both servers listen only on a private socket directory during the upgrade.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time

from ansible_collections.dualboot.db.plugins.module_utils.errors import InvalidInput, OperationFailed
from ansible_collections.dualboot.db.plugins.module_utils.pg_backup import find_tool
from ansible_collections.dualboot.db.plugins.module_utils.postgresql import PgConnection, connect

UPGRADE_MODES = ("link", "clone", "copy")
# Settings the copy sets itself (or that point at the source's files and streams): never carried over.
NOT_CARRIED = frozenset(
    {
        "data_directory",
        "config_file",
        "hba_file",
        "ident_file",
        "external_pid_file",
        "port",
        "cluster_name",
        "archive_mode",
        "archive_command",
        "archive_library",
        "restore_command",
        "primary_conninfo",
        "primary_slot_name",
        "max_logical_replication_workers",
    }
)
OLD_COPY_SUFFIX = ".dualboot-pg"
# A copy must never archive into the source's WAL archive nor consume its subscriptions.
COPY_SETTINGS = {"archive_mode": "off", "max_logical_replication_workers": "0"}


def settings_lines(comment: str, settings: dict) -> list[str]:
    """Lines for postgresql.auto.conf: the comment, then ``name = 'value'`` for each setting."""
    return [f"# {comment}\n"] + [f"{k} = '{str(v).replace(chr(39), chr(39) * 2)}'\n" for k, v in settings.items()]


def copy_settings(port: int, user_settings: dict) -> dict:
    """What the copy sets itself, then the user's target_settings, which win."""
    return {"port": str(port), **COPY_SETTINGS, **{k: str(v) for k, v in user_settings.items()}}


def cluster_facts(source: PgConnection) -> dict:
    """What ``initdb`` of the new cluster must match, and the settings of the source's configuration files."""
    with connect(source, autocommit=True) as c:
        cur = c.cursor()
        cur.execute("SELECT rolname FROM pg_roles WHERE oid = 10")
        superuser = cur.fetchone()[0]
        cur.execute("SELECT attname FROM pg_attribute WHERE attrelid = 'pg_database'::regclass AND attnum > 0")
        columns = {r[0] for r in cur.fetchall()}
        provider = "datlocprovider" if "datlocprovider" in columns else "'c'"
        icu = next((c for c in ("datlocale", "daticulocale") if c in columns), "NULL")
        cur.execute(
            f"SELECT pg_encoding_to_char(encoding), datcollate, datctype, {provider}::text, {icu} "  # noqa: S608 - catalog columns
            "FROM pg_database WHERE datname = 'template0'"
        )
        encoding, collate, ctype, provider, locale = cur.fetchone()
        cur.execute("SELECT current_setting('data_checksums'), pg_size_bytes(current_setting('wal_segment_size')) / 1048576")
        checksums, wal_mb = cur.fetchone()
        cur.execute("SELECT name, current_setting(name) FROM pg_settings WHERE source = 'configuration file' ORDER BY name")
        settings = {n: v for n, v in cur.fetchall() if n not in NOT_CARRIED}
    return {
        "superuser": superuser,
        "encoding": encoding,
        "collate": collate,
        "ctype": ctype,
        "provider": provider,
        "locale": locale,
        "checksums": checksums == "on",
        "wal_segment_mb": int(wal_mb),
        "settings": settings,
    }


def upgrade_tools(old_pg_ctl: str, old_major: int, new_major: int, target_bin_dir: str | None) -> dict:
    """The binaries of both majors (the old one's beside ``old_pg_ctl``), found before anything is written."""
    tools = {"old_pg_ctl": old_pg_ctl}
    for name in ("initdb", "pg_ctl", "pg_upgrade", "postgres"):
        tools[name] = find_tool(name, new_major, target_bin_dir, exact=True)
    tools["vacuumdb"] = find_tool("vacuumdb", new_major, target_bin_dir)
    find_tool("postgres", old_major, os.path.dirname(old_pg_ctl), exact=True)
    return tools


def check_target_major(old_major: int, target_major: int | None, mode: str) -> int | None:
    """The major to upgrade to, or None when the copy keeps the source's major."""
    if mode not in UPGRADE_MODES:
        raise InvalidInput(f"upgrade_mode must be one of {', '.join(UPGRADE_MODES)}, not {mode!r}.")
    if not target_major or target_major == old_major:
        return None
    if target_major < old_major:
        raise InvalidInput(
            f"target_major {target_major} is older than the source's PostgreSQL {old_major}: pg_upgrade only goes forward.",
            hint=f"set target_major to {old_major} or newer.",
        )
    return target_major


def _run(argv: list[str], label: str, run_as: dict, cwd: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k not in ("LC_ALL", "LANGUAGE")}
    env["LC_MESSAGES"] = "C"
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, env=env, cwd=cwd, **run_as)
    if proc.returncode != 0:
        raise OperationFailed(f"{label} failed (exit {proc.returncode}): {(proc.stdout + proc.stderr).strip()[-3000:]}")
    return proc.stdout


def _private_dir(run_as: dict) -> str:
    path = tempfile.mkdtemp(prefix="dualboot-upgrade-")
    if run_as:
        os.chown(path, run_as["user"], run_as["group"])
    return path


def _server_options(socket_dir: str, port: int) -> str:
    settings = {"listen_addresses": "''", "unix_socket_directories": f"'{socket_dir}'", "port": port, **COPY_SETTINGS}
    return " ".join(f"-c {k}={v}" for k, v in settings.items())


def _recover(old_dir: str, tools: dict, socket_dir: str, port: int, run_as: dict) -> None:
    """Replay the backup's WAL with the old binaries and shut the copy down cleanly (pg_upgrade needs both)."""
    log = os.path.join(old_dir, "dualboot-recovery.log")
    opts = _server_options(socket_dir, port)
    _run(
        [tools["old_pg_ctl"], "-D", old_dir, "-l", log, "-o", opts, "-w", "-t", "600", "start"],
        "pg_ctl start of the copy (recovery)",
        run_as,
    )
    _run([tools["old_pg_ctl"], "-D", old_dir, "-m", "fast", "-w", "-t", "600", "stop"], "pg_ctl stop of the recovered copy", run_as)


def _initdb(new_dir: str, facts: dict, tools: dict, run_as: dict) -> None:
    os.mkdir(new_dir, 0o700)
    if run_as:
        os.chown(new_dir, run_as["user"], run_as["group"])
    argv = [tools["initdb"], "-D", new_dir, "-U", facts["superuser"], "--auth-local=trust", "--auth-host=reject", "-E", facts["encoding"]]
    argv += [f"--lc-collate={facts['collate']}", f"--lc-ctype={facts['ctype']}", f"--wal-segsize={facts['wal_segment_mb']}"]
    if facts["provider"] == "i":
        argv += ["--locale-provider=icu", f"--icu-locale={facts['locale']}"]
    elif facts["provider"] == "b":
        argv += ["--locale-provider=builtin", f"--builtin-locale={facts['locale']}"]
    if facts["checksums"]:
        argv.append("--data-checksums")
    _run(argv, "initdb of the new cluster", run_as)


def _upgrade_failure(new_dir: str, error: OperationFailed) -> OperationFailed:
    """pg_upgrade names its findings in report files inside the new cluster, which is removed on failure."""
    reports = []
    for path in sorted(glob.glob(os.path.join(new_dir, "pg_upgrade_output.d", "*", "*.txt")))[:5]:
        with open(path, encoding="utf-8", errors="replace") as f:
            reports.append(f"{os.path.basename(path)}: {f.read()[:1500].strip()}")
    return OperationFailed(
        str(error) + ("\n" + "\n".join(reports) if reports else ""),
        hint="fix what pg_upgrade names on the source (or stage with a logical method: stream or sync); nothing was changed on the source.",
    )


def _config_lines(facts: dict, known: set, port: int, user_settings: dict) -> tuple[list[str], list[str]]:
    settings = {k: v for k, v in facts["settings"].items() if k in known}
    dropped = sorted(k for k in facts["settings"] if k not in known)
    settings.update(copy_settings(port, user_settings))
    comment = "dualboot.db postgresql_clone method=physical, upgraded with pg_upgrade: the source's settings"
    return settings_lines(comment, settings), dropped


# Top-level files of a data directory that belong to the server or to this copy; any other file there is
# the operator's (certificates and keys that ssl_* settings name relative to it, included configuration).
SERVER_FILES = frozenset(
    {"PG_VERSION", "postgresql.conf", "postgresql.auto.conf", "pg_hba.conf", "pg_ident.conf", "postmaster.opts", "postmaster.pid"}
    | {"backup_label", "backup_label.old", "backup_manifest", "tablespace_map", "tablespace_map.old", "current_logfiles"}
    | {"dualboot-recovery.log", "dualboot-clone.log", "standby.signal", "recovery.signal"}
)


def _carry_config(old_dir: str, new_dir: str, files: dict, lines: list[str], run_as: dict) -> None:
    """The source's access rules, its other files (certificates, included configuration), its settings;
    owned by the cluster's owner, as the server must read its key files."""
    written = []
    for name, content in files.items():
        with open(os.path.join(new_dir, name), "w", encoding="utf-8") as f:
            f.write(content)
        written.append(name)
    for name in os.listdir(old_dir):
        path = os.path.join(old_dir, name)
        if name in SERVER_FILES or not os.path.isfile(path) or os.path.islink(path) or os.path.exists(os.path.join(new_dir, name)):
            continue
        shutil.copy2(path, os.path.join(new_dir, name))
        written.append(name)
    for name in written if run_as else []:
        os.chown(os.path.join(new_dir, name), run_as["user"], run_as["group"])
    with open(os.path.join(new_dir, "postgresql.auto.conf"), "a", encoding="utf-8") as f:
        f.writelines(lines)


def upgrade(old_dir: str, new_dir: str, plan: dict, run_as: dict) -> dict:
    """Turn the stopped base backup in ``old_dir`` into a cluster of the new major in ``new_dir`` (not started).
    ``plan``: facts, tools, mode, jobs, port, settings. Returns timings and warnings."""
    facts, tools, timings = plan["facts"], plan["tools"], {}
    socket_dir = _private_dir(run_as)
    try:
        t = time.monotonic()
        _recover(old_dir, tools, socket_dir, plan["port"], run_as)
        timings["recovery_s"] = round(time.monotonic() - t, 3)
        files = {}
        for name in ("pg_hba.conf", "pg_ident.conf"):
            with open(os.path.join(old_dir, name), encoding="utf-8") as f:
                files[name] = f.read()
        # Only pg_upgrade connects, as the cluster owner, through the private socket directory.
        with open(os.path.join(old_dir, "pg_hba.conf"), "w", encoding="utf-8") as f:
            f.write("local all all trust\n")
        t = time.monotonic()
        _initdb(new_dir, facts, tools, run_as)
        timings["initdb_s"] = round(time.monotonic() - t, 3)
        argv = [tools["pg_upgrade"], "-b", os.path.dirname(tools["old_pg_ctl"]), "-B", os.path.dirname(tools["pg_upgrade"])]
        argv += ["-d", old_dir, "-D", new_dir, "-U", facts["superuser"], "-s", socket_dir, "-p", str(plan["port"]), "-P", str(plan["port"])]
        argv += [f"--{plan['mode']}", "-j", str(plan["jobs"])]
        t = time.monotonic()
        try:
            _run(argv, f"pg_upgrade --{plan['mode']}", run_as, cwd=socket_dir)
        except OperationFailed as exc:
            raise _upgrade_failure(new_dir, exc) from None
        timings["upgrade_s"] = round(time.monotonic() - t, 3)
        known = {
            line.split("\t", 1)[0]
            for line in _run([tools["postgres"], "--describe-config"], "postgres --describe-config", run_as).splitlines()
        }
        lines, dropped = _config_lines(facts, known, plan["port"], plan["settings"])
        _carry_config(old_dir, new_dir, files, lines, run_as)
    finally:
        shutil.rmtree(socket_dir, ignore_errors=True)
    shutil.rmtree(old_dir, ignore_errors=True)
    warnings = []
    if dropped:
        warnings.append(f"settings of the source that PostgreSQL {plan['major']} no longer has were not carried over: {', '.join(dropped)}")
    return {"timings": timings, "warnings": warnings}


def analyze_all(vacuumdb: str, jobs: int, env: dict) -> None:
    """pg_upgrade carries no planner statistics (before 18): gather them, as pg_upgrade's own advice says."""
    proc = subprocess.run([vacuumdb, "--all", "--analyze-only", "--jobs", str(jobs)], capture_output=True, text=True, check=False, env=env)
    if proc.returncode != 0:
        raise OperationFailed(f"vacuumdb --analyze-only of the upgraded copy failed: {proc.stderr.strip()[-2000:]}")
