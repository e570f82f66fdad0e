# Copyright: dualboot.db contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What each lifecycle step needs from the PostgreSQL login role, checked before anything changes.

Managed services (RDS/Aurora, Cloud SQL, Azure) give no superuser: an owner role with CREATEDB and
CREATEROLE, membership in a few predefined roles (pg_signal_backend, pg_read_all_stats,
pg_read_all_settings or pg_monitor) and a logical-replication grant. Every step that can run with
that does; :func:`preflight` names each privilege a step lacks on each entry, with the statement
that grants it (docs/privileges.md is the same table for people). :func:`explain` turns a
privilege error the server raised anyway (SQLSTATE 42501) into a :class:`MissingPrivilege` with
the GRANT and the next step.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from ansible_collections.dualboot.db.plugins.module_utils.errors import InvalidInput, MissingPrivilege
from ansible_collections.dualboot.db.plugins.module_utils.postgresql import PgConnection, connect, from_params

STEPS = ("stage", "verify", "cutover", "rollback", "sync")
# Statements an administrator runs; on managed services the master/admin role (rds_superuser,
# cloudsqlsuperuser, azure_pg_admin) or the owner of the object can run them.
ADMIN = (
    "the owner of the object or an administrator (a superuser; on managed services the admin role: "
    "rds_superuser, cloudsqlsuperuser, azure_pg_admin)"
)
LISTED = 10  # objects named one by one in a message; the result lists all of them


def ident(name: str) -> str:
    """``name`` quoted as an SQL identifier when it needs quotes (for GRANT statements shown to people)."""
    if re.fullmatch(r"[a-z_][a-z0-9_$]*", name):
        return name
    return '"' + name.replace('"', '""') + '"'


@dataclasses.dataclass(frozen=True)
class Missing:
    """One privilege the login role lacks on one entry, and the statement that grants it."""

    entry: str
    privilege: str
    needed_for: str
    grant: str

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


Q_ROLE = """
SELECT current_user, r.rolsuper, r.rolcreatedb, r.rolcreaterole, r.rolreplication,
  pg_has_role('pg_read_all_settings', 'USAGE'), pg_has_role('pg_read_all_stats', 'USAGE'),
  pg_has_role('pg_signal_backend', 'USAGE'), current_setting('server_version_num')::int,
  EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pg_create_subscription')
    AND pg_has_role(current_user, (SELECT oid FROM pg_roles WHERE rolname = 'pg_create_subscription'), 'USAGE')
FROM pg_roles r WHERE r.rolname = current_user
"""

Q_DATABASE = """
SELECT d.datname, pg_get_userbyid(d.datdba), pg_has_role(d.datdba, 'USAGE'), d.datistemplate,
  has_database_privilege(d.oid, 'CONNECT'), has_database_privilege(d.oid, 'CREATE')
FROM pg_database d WHERE d.datname = %s
"""

# Relations of the current database outside the system schemas and extensions: what a dump reads
# (tables, sequences) and what freeze guards (tables).
Q_RELATIONS = """
SELECT n.nspname, c.relname, c.relkind::text, pg_get_userbyid(c.relowner), pg_has_role(c.relowner, 'USAGE'),
  has_table_privilege(c.oid, 'SELECT'), has_schema_privilege(n.oid, 'USAGE')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'S') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'dualboot')
  AND n.nspname NOT LIKE 'pg\\_%%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_class'::regclass AND e.objid = c.oid AND e.deptype = 'e')
ORDER BY 1, 2
"""

Q_DUALBOOT_SCHEMA = (
    "SELECT has_schema_privilege(oid, 'USAGE'), has_schema_privilege(oid, 'CREATE') FROM pg_namespace WHERE nspname = 'dualboot'"
)


@dataclasses.dataclass
class Role:
    """The login role on one server."""

    name: str
    superuser: bool
    createdb: bool
    createrole: bool
    replication: bool
    read_all_settings: bool
    read_all_stats: bool
    signal_backend: bool
    server_version_num: int
    create_subscription: bool

    def facts(self) -> dict:
        return dataclasses.asdict(self)


def role(cur: Any) -> Role:
    cur.execute(Q_ROLE)
    return Role(*cur.fetchone())


class Entry:
    """The login role's view of one entry's database: what it owns and may read."""

    def __init__(self, conn: PgConnection, maintenance_db: str = "postgres") -> None:
        self.conn = conn
        self.maint = conn.with_db(maintenance_db)
        self.label = conn.label()
        with connect(self.maint, autocommit=True) as c:
            cur = c.cursor()
            self.role = role(cur)
            cur.execute(Q_DATABASE, (conn.dbname,))
            row = cur.fetchone()
        self.exists = row is not None
        self.owner, self.owns, self.is_template, self.can_connect, self.can_create = row[1:] if row else (None, False, False, False, False)
        self.relations: list[tuple] = []
        self.dualboot_schema: tuple | None = None
        if self.exists and self.can_connect and not self.role.superuser:  # a superuser needs no per-object check
            with connect(conn, autocommit=True) as c:
                cur = c.cursor()
                cur.execute(Q_RELATIONS)
                self.relations = cur.fetchall()
                cur.execute(Q_DUALBOOT_SCHEMA)
                self.dualboot_schema = cur.fetchone()

    @property
    def user(self) -> str:
        return ident(self.role.name)

    def missing(self, privilege: str, needed_for: str, grant: str) -> Missing:
        return Missing(self.label, privilege, needed_for, grant)


def _connect_needs(e: Entry, why: str) -> list[Missing]:
    if e.role.superuser or not e.exists or e.can_connect:
        return []
    return [e.missing(f"CONNECT on database {e.conn.dbname}", why, f"GRANT CONNECT ON DATABASE {ident(e.conn.dbname)} TO {e.user}")]


def read_needs(e: Entry, why: str) -> list[Missing]:
    """SELECT on every table and sequence and USAGE on their schemas (dump, compare, drift)."""
    out = _connect_needs(e, why)
    if e.role.superuser:
        return out
    schemas = sorted({nsp for nsp, _n, _k, _o, _own, _sel, usage in e.relations if not usage})
    for nsp in schemas:
        out.append(e.missing(f"USAGE on schema {nsp}", why, f"GRANT USAGE ON SCHEMA {ident(nsp)} TO {e.user}"))
    for nsp, name, kind, _owner, _owns, can_select, _usage in e.relations:
        if not can_select:
            what = "SEQUENCE " if kind == "S" else ""
            out.append(e.missing(f"SELECT on {nsp}.{name}", why, f"GRANT SELECT ON {what}{ident(nsp)}.{ident(name)} TO {e.user}"))
    return out


def _create_needs(e: Entry, why: str) -> list[Missing]:
    """CREATE on the entry's database (a schema, a publication), when the database exists and the role lacks it."""
    if not e.exists or e.can_create:
        return []
    return [e.missing(f"CREATE on database {e.conn.dbname}", why, f"GRANT CREATE ON DATABASE {ident(e.conn.dbname)} TO {e.user}")]


def _table_owner_needs(e: Entry, why: str, alter: bool = False) -> list[Missing]:
    """Ownership of every table of the entry (sequences aside); ``alter`` also names the ALTER TABLE way out."""
    out = []
    for nsp, name, kind, owner, owns, _sel, _usage in e.relations:
        if kind != "S" and not owns:
            grant = f"GRANT {ident(owner)} TO {e.user}"
            if alter:
                grant += f"  -- or: ALTER TABLE {ident(nsp)}.{ident(name)} OWNER TO {e.user}"
            out.append(e.missing(f"ownership of table {nsp}.{name} (owned by {owner})", why, grant))
    return out


def _owner_needs(e: Entry, why: str) -> list[Missing]:
    """Ownership of the database (ALTER DATABASE ... SET, DROP DATABASE)."""
    if e.role.superuser or not e.exists or e.owns:
        return []
    return [
        e.missing(
            f"ownership of database {e.conn.dbname} (owned by {e.owner})",
            why,
            f"ALTER DATABASE {ident(e.conn.dbname)} OWNER TO {e.user}  -- or: GRANT {ident(e.owner)} TO {e.user}",
        )
    ]


def freeze_needs(e: Entry, terminate: bool) -> list[Missing]:
    """postgresql_freeze both ways: the database setting, the guard triggers, seeing and ending sessions."""
    why = "freeze/thaw (cutover, rollback)"
    out = _connect_needs(e, why) + _owner_needs(e, why + ": ALTER DATABASE ... SET default_transaction_read_only")
    if e.role.superuser:
        return out
    if e.dualboot_schema is None:
        out += _create_needs(e, why + ": the dualboot schema holds the guard function")
    out += _table_owner_needs(e, why + ": CREATE/DROP TRIGGER dualboot_freeze", alter=True)
    if not e.role.read_all_stats:
        out.append(
            e.missing("privileges of pg_read_all_stats", why + ": see other roles' sessions", f"GRANT pg_read_all_stats TO {e.user}")
        )
    if terminate and not e.role.signal_backend:
        out.append(
            e.missing(
                "privileges of pg_signal_backend", why + ": terminate sessions (terminate: true)", f"GRANT pg_signal_backend TO {e.user}"
            )
        )
    return out


def migrate_needs(e: Entry) -> list[Missing]:
    """postgresql_migrate's history table in schema dualboot (the migrations themselves need what they do)."""
    why = "migrate: the history table dualboot.schema_migrations"
    if e.role.superuser or not e.exists:
        return []
    out = _connect_needs(e, why)
    if e.dualboot_schema is None and not e.can_create:
        out.append(e.missing(f"CREATE on database {e.conn.dbname}", why, f"GRANT CREATE ON DATABASE {ident(e.conn.dbname)} TO {e.user}"))
    elif e.dualboot_schema is not None and not all(e.dualboot_schema):
        out.append(e.missing("USAGE and CREATE on schema dualboot", why, f"GRANT USAGE, CREATE ON SCHEMA dualboot TO {e.user}"))
    return out


def copy_target_needs(target: Entry, source: Entry, no_owner: bool) -> list[Missing]:
    """Build the copy under a temporary name, give it the source's owner, rename it over the old target."""
    why = "copy (stage): CREATE DATABASE of the new copy"
    if target.role.superuser:
        return []
    out = []
    if not target.role.createdb:
        out.append(target.missing("CREATEDB", why, f"ALTER ROLE {target.user} CREATEDB"))
    out += _owner_needs(target, "copy (stage): replace the old staged database (DROP/RENAME DATABASE)")
    owner = source.owner
    if not no_owner and owner and owner != target.role.name and not _member_of(target, owner):
        out.append(
            target.missing(
                f"membership in role {owner} (owner of the default entry's database and objects)",
                "copy (stage): give the copy the source's owners",
                f"GRANT {ident(owner)} TO {target.user}  -- or set no_owner: true (the login role then owns the copy)",
            )
        )
    return out


def _member_of(e: Entry, owner: str) -> bool:
    with connect(e.maint, autocommit=True) as c:
        row = c.execute("SELECT pg_has_role(oid, 'MEMBER') FROM pg_roles WHERE rolname = %s", (owner,)).fetchone()
    return bool(row and row[0])


def method_needs(method: str, source: Entry, target: Entry) -> list[Missing]:
    """Privileges of the copy methods beyond a dump: template and physical."""
    r = source.role
    if r.superuser:
        return []
    if method == "template" and not (source.owns or source.is_template):
        return [
            source.missing(
                f"ownership of database {source.conn.dbname} (owned by {source.owner}), or the database marked as a template",
                "copy method template: CREATE DATABASE ... TEMPLATE copies only a template or a database the role owns",
                f"GRANT {ident(source.owner)} TO {source.user}  -- or use method: stream (auto does)",
            )
        ]
    if method == "physical":
        out = []
        if not r.replication:
            out.append(
                source.missing(
                    "REPLICATION (physical replication connections)",
                    "copy method physical: pg_basebackup of the whole cluster",
                    f"ALTER ROLE {source.user} REPLICATION  -- managed services allow no physical copy: use method: stream",
                )
            )
        if not r.read_all_settings:
            out.append(
                source.missing(
                    "privileges of pg_read_all_settings",
                    "copy method physical: reads data_directory, config_file and hba_file to check the copy",
                    f"GRANT pg_read_all_settings TO {source.user}  -- or use method: stream",
                )
            )
        return out
    return []


# PostgreSQL 16 added the predefined role that lets a non-superuser create subscriptions.
SUBSCRIPTION_ROLE_SINCE = 160000


def _subscriber_needs(e: Entry, publisher: Entry, why: str) -> list[Missing]:
    """CREATE SUBSCRIPTION: a superuser up to PostgreSQL 15; from 16 the privileges of pg_create_subscription and
    CREATE on the database, and a password in the connection to the publisher (password_required)."""
    if e.role.superuser:
        return []
    if e.role.server_version_num < SUBSCRIPTION_ROLE_SINCE:
        return [
            e.missing(
                f"SUPERUSER (PostgreSQL {e.role.server_version_num // 10000} lets only superusers create subscriptions)",
                why,
                "upgrade this server to PostgreSQL 16 or newer (then GRANT pg_create_subscription TO "
                f"{e.user}), connect this entry as a superuser, or stage by copy (dualboot_stage_method: copy), "
                "which needs no superuser",
            )
        ]
    out = []
    if not e.role.create_subscription:
        out.append(e.missing("privileges of pg_create_subscription", why, f"GRANT pg_create_subscription TO {e.user}"))
    if e.exists and not e.can_create:
        out.append(e.missing(f"CREATE on database {e.conn.dbname}", why, f"GRANT CREATE ON DATABASE {ident(e.conn.dbname)} TO {e.user}"))
    if not publisher.conn.password:
        out.append(
            e.missing(
                f"a password for {publisher.label} in the subscription's connection",
                why + ": a subscription a non-superuser owns must log in with a password (password_required)",
                f"set login_password of the entry {publisher.label} (a password file on this host does not reach the server)",
            )
        )
    return out


def _publisher_needs(e: Entry, why: str) -> list[Missing]:
    """CREATE PUBLICATION ... FOR TABLE (owner of each table, CREATE on the database) and the slot (REPLICATION)."""
    if e.role.superuser:
        return []
    out = []
    if not e.role.replication:
        out.append(
            e.missing("REPLICATION", why + ": its replication slot", f"ALTER ROLE {e.user} REPLICATION  -- on RDS: GRANT rds_replication")
        )
    out += _create_needs(e, why + ": CREATE PUBLICATION")
    out += _table_owner_needs(e, why + ": CREATE PUBLICATION ... FOR TABLE lists only tables its creator owns")
    return out


def sync_needs(source: Entry, target: Entry) -> list[Missing]:
    """Continuous sync, both streams: stage streams the default entry (publisher) into the staged entry
    (subscriber, rebuilt from the default entry's schema); the cutover starts the stream back, staged entry
    (publisher) into the default entry (subscriber)."""
    forward, back = "sync: the stream into the staged entry", "sync: the stream back into the fallback (cutover)"
    return (
        _publisher_needs(source, forward)
        + copy_target_needs(target, source, False)
        + _subscriber_needs(target, source, forward + ": CREATE SUBSCRIPTION")
        + _publisher_needs(target, back)
        + _subscriber_needs(source, target, back + ": CREATE SUBSCRIPTION")
    )


def needs(step: str, source: Entry, target: Entry, method: str = "auto", no_owner: bool = False, terminate: bool = True) -> list[Missing]:
    """Every privilege ``step`` needs on the default entry (``source``) and the staged entry (``target``) that the role lacks."""
    if step == "stage":
        return (
            read_needs(source, "copy (stage): pg_dump/COPY read every table and sequence")
            + method_needs(method, source, target)
            + copy_target_needs(target, source, no_owner)
        )
    if step == "verify":
        return (
            read_needs(source, "verify: schema diff, compare, drift")
            + read_needs(target, "verify: schema diff, compare")
            + migrate_needs(target)
        )
    if step in ("cutover", "rollback"):
        # Cutover freezes the default entry; rollback freezes the new default and thaws the fallback: both entries, both steps.
        return read_needs(source, f"{step}: drift check") + freeze_needs(source, terminate) + freeze_needs(target, terminate)
    if step == "sync":
        return read_needs(source, "sync: the initial copy") + sync_needs(source, target)
    raise InvalidInput(f"step must be one of {', '.join(STEPS)}, not {step!r}.")


def _listing(missing: list[Missing]) -> str:
    shown = [f"{m.privilege} on {m.entry} (for {m.needed_for})" for m in missing[:LISTED]]
    more = f"; and {len(missing) - LISTED} more (see missing)" if len(missing) > LISTED else ""
    return "; ".join(shown) + more


def refuse(step: str, missing: list[Missing]) -> MissingPrivilege:
    grants = list(dict.fromkeys(m.grant for m in missing))
    return MissingPrivilege(
        f"the login role lacks {len(missing)} privilege(s) for {step}, so nothing was changed: {_listing(missing)}.",
        hint=f"have {ADMIN} run: {'; '.join(grants[:LISTED])}{' ...' if len(grants) > LISTED else ''} - then run {step} again "
        "(docs/privileges.md lists what each step needs).",
        missing=[m.as_dict() for m in missing],
        grants=grants,
    )


def preflight(
    step: str,
    source: PgConnection,
    target: PgConnection,
    method: str = "auto",
    no_owner: bool = False,
    terminate: bool = True,
    maintenance_db: str = "postgres",
) -> dict:
    """Check ``step``'s privileges on both entries; raise :class:`MissingPrivilege` naming every missing one."""
    if step not in STEPS:
        raise InvalidInput(f"step must be one of {', '.join(STEPS)}, not {step!r}.")
    src = Entry(source, maintenance_db)
    if step == "stage" and method == "physical":
        # The copy creates the staged entry's cluster (with the source's roles): its server need not exist yet.
        missing = read_needs(src, "copy (stage): pg_basebackup reads the whole cluster") + method_needs(method, src, src)
        if missing:
            raise refuse(step, missing)
        return {
            "changed": False,
            "step": step,
            "roles": {"default": src.role.facts()},
            "summary": f"the login role has every privilege a physical copy of {source.label()} needs (the copy makes {target.label()})",
        }
    tgt = Entry(target, maintenance_db)
    if step not in ("stage", "sync") and not tgt.exists:  # both create the staged database
        raise InvalidInput(f"the staged entry's database {target.label()} does not exist.", hint="run stage first.")
    missing = needs(step, src, tgt, method, no_owner, terminate)
    if missing:
        raise refuse(step, missing)
    return {
        "changed": False,
        "step": step,
        "roles": {"default": src.role.facts(), "staged": tgt.role.facts()},
        "summary": f"the login roles have every privilege {step} needs on {source.label()} and {target.label()}",
    }


# ---------------------------------------------------------------------------------------------
# Privilege errors the server raised anyway
# ---------------------------------------------------------------------------------------------

# (pattern of the server's message, privilege, GRANT template); {user} is the login role, {1} the first group.
_PATTERNS = [
    (r"privileges of (?:the )?\"?(pg_\w+)", "privileges of {1}", "GRANT {1} TO {user}"),
    (r"(?:member of (?:the )?role|SET ROLE) \"?([^\"\s]+)\"?", "membership in role {1}", "GRANT {1} TO {user}"),
    (r"permission denied to create database", "CREATEDB", "ALTER ROLE {user} CREATEDB"),
    (
        r"permission denied to copy database \"?([^\"\s]+)\"?",
        "ownership of database {1} (template copy)",
        "use method: stream, or GRANT <owner of {1}> TO {user}",
    ),
    (
        r"must be owner of (?:database|table|relation|schema|function|sequence|view|materialized view) \"?([^\"\s]+)\"?",
        "ownership of {1}",
        "ALTER ... {1} OWNER TO {user} (or GRANT <its owner> TO {user})",
    ),
    (
        r"permission denied for (?:table|relation|sequence|view) \"?([^\"\s]+)\"?",
        "privileges on {1}",
        "GRANT SELECT (or what the statement needs) ON {1} TO {user}",
    ),
    (r"permission denied for schema \"?([^\"\s]+)\"?", "USAGE/CREATE on schema {1}", "GRANT USAGE, CREATE ON SCHEMA {1} TO {user}"),
    (
        r"permission denied for database \"?([^\"\s]+)\"?",
        "CONNECT/CREATE on database {1}",
        "GRANT CONNECT, CREATE ON DATABASE {1} TO {user}",
    ),
    (r"replication", "REPLICATION", "ALTER ROLE {user} REPLICATION"),
    (r"superuser", "SUPERUSER", "none short of a superuser login; docs/privileges.md names the step's alternative"),
]


def _grant_for(text: str, user: str) -> tuple[str, str]:
    for pattern, privilege, grant in _PATTERNS:
        m = re.search(pattern, text, re.I)
        if m:
            first = m.group(1) if m.groups() else ""
            return privilege.replace("{1}", first), grant.replace("{1}", first).replace("{user}", user)
    return "a privilege", f"the GRANT the message names, TO {user}"


def explain(exc: object, user: str | None = None, doing: str | None = None) -> MissingPrivilege:
    """A :class:`MissingPrivilege` for a server's privilege error (SQLSTATE 42501) or a tool's 'permission denied'."""
    diag = getattr(exc, "diag", None)
    parts = [diag.message_primary, diag.message_detail, diag.message_hint] if diag is not None and diag.message_primary else [str(exc)]
    text = " ".join(" ".join(p for p in parts if p).split())
    privilege, grant = _grant_for(text, ident(user) if user else "<login role>")
    where = f" while {doing}" if doing else ""
    return MissingPrivilege(
        f"the login role{f' {user}' if user else ''} lacks {privilege}{where}: the server said: {text}",
        hint=f"have {ADMIN} run: {grant}; or connect as a role that has it. "
        "Run dualboot.db.postgresql_preflight for the step to see everything it needs (docs/privileges.md).",
        missing=[{"privilege": privilege, "grant": grant}],
    )


def is_privilege_error(exc: BaseException) -> bool:
    return getattr(exc, "sqlstate", None) == "42501"


def run(params: dict) -> dict:
    """Entry point of the postgresql_preflight module."""
    return preflight(
        params["step"],
        from_params(params, side="source"),
        from_params(params, side="target"),
        method=params.get("method") or "auto",
        no_owner=bool(params.get("no_owner")),
        terminate=bool(params.get("terminate", True)),
        maintenance_db=params.get("maintenance_db") or "postgres",
    )
