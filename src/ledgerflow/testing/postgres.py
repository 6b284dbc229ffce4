"""PostgreSQL for tests: find a server or start a throwaway one, then make fresh databases.

A test never touches a shared database: :meth:`PgServer.create_database` makes a new
database owned by a new *admin* role, with a new *user* role that may only read and
write rows, the way a ledgerflow deployment is set up (see the roles section of the
documentation). :meth:`PgDatabase.drop` removes all three.

A database can also start as a copy of a *template* (:meth:`PgServer.create_template`, e.g.
a ledger migrated once): the copy's objects then belong to its own admin role and the
template user's rights pass to its own user role, so it is set up exactly like a fresh
database that was migrated, at the cost of a file copy.

Where the server comes from:

* ``LEDGERFLOW_TEST_PG`` — a libpq URL for a superuser connection, e.g.
  ``postgresql://postgres@127.0.0.1:5432/postgres``. When it is set, nothing else is tried.
* otherwise a local server on ``127.0.0.1:5432`` as ``postgres`` then ``root``;
* otherwise :func:`ledgerflow.testing.cluster.start_throwaway_cluster` runs ``initdb`` and
  ``pg_ctl`` in a temporary directory (the pytest plugin does this unless
  ``LEDGERFLOW_TEST_PG_NO_CLUSTER`` is set).

psycopg is imported lazily so that ``ledgerflow.testing`` imports without it.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ledgerflow.errors import MissingExtraError

if TYPE_CHECKING:
    import psycopg

ENV_URL = "LEDGERFLOW_TEST_PG"
LOCAL_HOST = "127.0.0.1"
LOCAL_PORT = 5432
LOCAL_SUPERUSERS = ("postgres", "root")
CONNECT_TIMEOUT = 3

Role = Literal["admin", "user"]
#: ``COMMENT`` on the databases and roles a test session makes, so that the session (or a
#: later one, when this one was killed) can find and drop them.
SESSION_COMMENT = "ledgerflow test session {token}"


def _psycopg() -> Any:
    """The psycopg module, or a :class:`MissingExtraError` saying how to install it."""
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - psycopg is part of the test extra
        raise MissingExtraError("PostgreSQL test databases", "postgres", "psycopg") from exc
    return psycopg


# Run as the admin role, which owns the database (and so, on PostgreSQL 15, the public
# schema through pg_database_owner). Mirrors the deployment recipe in the documentation.
_SCHEMA_GRANTS = """
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO {user};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {user};
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {user};
ALTER DEFAULT PRIVILEGES FOR ROLE {admin} IN SCHEMA public
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {user};
ALTER DEFAULT PRIVILEGES FOR ROLE {admin} IN SCHEMA public
  GRANT USAGE, SELECT ON SEQUENCES TO {user};
"""


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class PgServer:
    """A PostgreSQL server reachable with a role allowed to create roles and databases."""

    host: str
    port: int
    superuser: str
    password: str | None = field(default=None, repr=False)
    dbname: str = "postgres"  # maintenance database used for CREATE/DROP DATABASE
    #: Test session whose name and comment the databases made here carry (see :mod:`pgsession`).
    session: str | None = field(default=None, compare=False)

    def connect(
        self, dbname: str | None = None, *, application_name: str | None = None
    ) -> psycopg.Connection[Any]:
        """An autocommit connection as the superuser."""
        psycopg = _psycopg()
        extra = {"application_name": application_name} if application_name else {}
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.superuser,
            password=self.password,
            dbname=dbname or self.dbname,
            connect_timeout=CONNECT_TIMEOUT,
            autocommit=True,
            **extra,
        )

    def create_database(
        self, prefix: str = "lf_test", *, template: PgDatabase | None = None
    ) -> PgDatabase:
        """A fresh database owned by a fresh admin role, with a fresh data-only user role.

        With ``template`` (made by :meth:`create_template`), the database starts as a copy of
        it: what the template's admin owned belongs to the new admin, and the new user has
        the rights the template's user had.
        """
        sql = _psycopg().sql

        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,40}", prefix):
            raise ValueError(f"database prefix {prefix!r} must be a lowercase SQL identifier")
        tag = f"{self.session}_" if self.session else ""
        name = f"{prefix}_{tag}{secrets.token_hex(4)}"
        db = PgDatabase(
            host=self.host,
            port=self.port,
            name=name,
            admin_name=f"{name}_admin",
            admin_password=secrets.token_hex(12),
            user_name=f"{name}_user",
            user_password=secrets.token_hex(12),
            server=self,
        )
        database, admin, user = (sql.Identifier(n) for n in (name, db.admin_name, db.user_name))
        try:
            with self.connect() as conn:
                for role, password in ((admin, db.admin_password), (user, db.user_password)):
                    conn.execute(
                        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                            role, sql.Literal(password)
                        )
                    )
                if not conn.execute(
                    "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
                ).fetchone()[0]:  # type: ignore[index]
                    # A role with CREATEROLE but not superuser must be a member of the roles
                    # to hand over (REASSIGN OWNED), drop (DROP OWNED) or end their sessions.
                    conn.execute(sql.SQL("GRANT {}, {} TO CURRENT_USER").format(admin, user))
                if self.session:
                    comment = sql.Literal(SESSION_COMMENT.format(token=self.session))
                    for role in (admin, user):
                        conn.execute(sql.SQL("COMMENT ON ROLE {} IS {}").format(role, comment))
                create = sql.SQL("CREATE DATABASE {} OWNER {}").format(database, admin)
                if template is not None:
                    create += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template.name))
                conn.execute(create)
                if self.session:
                    conn.execute(
                        sql.SQL("COMMENT ON DATABASE {} IS {}").format(database, comment)
                    )
                conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(database))
                conn.execute(
                    sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(database, user)
                )
            if template is None:
                with db.connect("admin") as conn:
                    conn.execute(sql.SQL(_SCHEMA_GRANTS).format(admin=admin, user=user))
            else:
                with self.connect(name) as conn:
                    _adopt(conn, template, db)
        except BaseException:
            with contextlib.suppress(Exception):
                db.drop()
            raise
        return db

    def create_template(
        self, prepare: Callable[[PgDatabase], None], prefix: str = "lf_tmpl"
    ) -> PgDatabase:
        """A database made by :meth:`create_database`, then ``prepare(database)``, then frozen.

        Pass it as ``template=`` to :meth:`create_database`; drop it when done. Nobody may
        connect to it any more (PostgreSQL copies a database only while it has no sessions);
        it belongs to the server's role, so its admin role owns only what ``prepare`` made.
        """
        sql = _psycopg().sql

        template = self.create_database(prefix)
        name = sql.Identifier(template.name)
        try:
            prepare(template)
            with self.connect() as conn:
                conn.execute(
                    sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(name)
                )
                end_sessions(conn, template.name)
                conn.execute(
                    sql.SQL("REVOKE ALL ON DATABASE {} FROM {}").format(
                        name, sql.Identifier(template.user_name)
                    )
                )
                conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO CURRENT_USER").format(name))
                conn.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true").format(name))
        except BaseException:
            with contextlib.suppress(Exception):
                template.drop()
            raise
        return template


# Run as the server's role in a copy of a template, with the four role names set as the
# settings ledgerflow.{old,new}_{admin,user}: what the template's roles owned or were granted
# becomes the copy's roles', then the template's roles are forgotten in the copy (so that
# either can be dropped first).
_ADOPT = """
DO $adopt$
DECLARE
  old_admin text := current_setting('ledgerflow.old_admin');
  old_user text := current_setting('ledgerflow.old_user');
  new_admin text := current_setting('ledgerflow.new_admin');
  new_user text := current_setting('ledgerflow.new_user');
  r record;
BEGIN
  EXECUTE format('REASSIGN OWNED BY %I TO %I', old_admin, new_admin);
  FOR r IN
    SELECT c.oid::regclass AS object, c.relkind, a.privilege_type
    FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
    WHERE a.grantee = old_user::regrole
  LOOP
    EXECUTE format('GRANT %s ON %s %s TO %I', r.privilege_type,
                   CASE WHEN r.relkind = 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, r.object,
                   new_user);
  END LOOP;
  FOR r IN
    SELECT p.oid::regprocedure AS routine, a.privilege_type
    FROM pg_proc p CROSS JOIN LATERAL aclexplode(p.proacl) a
    WHERE a.grantee = old_user::regrole
  LOOP
    EXECUTE format('GRANT %s ON FUNCTION %s TO %I', r.privilege_type, r.routine, new_user);
  END LOOP;
  FOR r IN
    SELECT n.nspname, a.privilege_type
    FROM pg_namespace n CROSS JOIN LATERAL aclexplode(n.nspacl) a
    WHERE a.grantee = old_user::regrole
  LOOP
    EXECUTE format('GRANT %s ON SCHEMA %I TO %I', r.privilege_type, r.nspname, new_user);
  END LOOP;
  FOR r IN
    SELECT n.nspname, d.defaclobjtype, a.privilege_type
    FROM pg_default_acl d
    LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
    CROSS JOIN LATERAL aclexplode(d.defaclacl) a
    WHERE d.defaclrole = old_admin::regrole AND a.grantee = old_user::regrole
  LOOP
    EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I %s GRANT %s ON %s TO %I',
                   new_admin,
                   CASE WHEN r.nspname IS NULL THEN '' ELSE format('IN SCHEMA %I', r.nspname) END,
                   r.privilege_type,
                   CASE r.defaclobjtype WHEN 'r' THEN 'TABLES' WHEN 'S' THEN 'SEQUENCES'
                     WHEN 'f' THEN 'FUNCTIONS' WHEN 'T' THEN 'TYPES' ELSE 'SCHEMAS' END,
                   new_user);
  END LOOP;
  -- One role at a time: in one statement, a default ACL of the admin's naming the user
  -- would be removed twice.
  EXECUTE format('DROP OWNED BY %I', old_user);
  EXECUTE format('DROP OWNED BY %I', old_admin);
END
$adopt$
"""


def _adopt(conn: psycopg.Connection[Any], template: PgDatabase, copy: PgDatabase) -> None:
    """Hand what ``template``'s roles had in ``copy`` (connected to) over to ``copy``'s roles."""
    names = {
        "old_admin": template.admin_name,
        "old_user": template.user_name,
        "new_admin": copy.admin_name,
        "new_user": copy.user_name,
    }
    with conn.transaction():
        for key, value in names.items():
            conn.execute("SELECT set_config(%s, %s, true)", [f"ledgerflow.{key}", value])
        conn.execute(_ADOPT)



@dataclass(frozen=True)
class PgDatabase:
    """One database made by :meth:`PgServer.create_database`, with its two roles."""

    host: str
    port: int
    name: str
    admin_name: str
    admin_password: str = field(repr=False)
    user_name: str
    user_password: str = field(repr=False)
    server: PgServer = field(repr=False, compare=False)

    def credentials(self, role: Role) -> tuple[str, str]:
        if role == "admin":
            return self.admin_name, self.admin_password
        if role == "user":
            return self.user_name, self.user_password
        raise ValueError(f"role must be 'admin' or 'user', not {role!r}")

    def url(self, role: Role = "user") -> str:
        """A SQLAlchemy URL, ``postgresql+psycopg://name:password@host:port/database``."""
        name, password = self.credentials(role)
        return f"postgresql+psycopg://{name}:{password}@{_netloc(self.host, self.port)}/{self.name}"

    def conninfo(self, role: Role = "user") -> str:
        """A libpq connection string for ``psycopg.connect``."""
        name, password = self.credentials(role)
        return _psycopg().conninfo.make_conninfo(
            host=self.host, port=self.port, dbname=self.name, user=name, password=password
        )

    def connect(self, role: Role = "user", *, autocommit: bool = True) -> psycopg.Connection[Any]:
        return _psycopg().connect(
            self.conninfo(role), connect_timeout=CONNECT_TIMEOUT, autocommit=autocommit
        )

    def config_entry(self) -> dict[str, str]:
        """The ``databases:`` entry of ``ledgerflow.yml`` for this database."""
        return {
            "dialect": "postgresql",
            "address": _netloc(self.host, self.port),
            "database": self.name,
            "admin": f"{self.admin_name}:{self.admin_password}",
            "user": f"{self.user_name}:{self.user_password}",
        }

    def drop(self) -> None:
        """Drop the database and both roles; safe to call twice or after a partial create."""
        with self.server.connect() as conn:
            drop_database(conn, self.name)
            drop_roles(conn, [self.admin_name, self.user_name])


def end_sessions(conn: psycopg.Connection[Any], database: str) -> None:
    """End every session connected to ``database`` but ``conn``'s own."""
    conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = %s AND pid <> pg_backend_pid()",
        [database],
    )


def drop_database(conn: psycopg.Connection[Any], name: str) -> None:
    """Drop the database ``name`` if it exists, template or not, ending its sessions."""
    sql = _psycopg().sql

    database = sql.Identifier(name)
    # A template (see PgServer.create_template) may not be dropped as such.
    if conn.execute(
        "SELECT 1 FROM pg_database WHERE datname = %s AND datistemplate", [name]
    ).fetchone():
        conn.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false").format(database))
    # FORCE terminates the sessions a test left open.
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(database))


def drop_roles(conn: psycopg.Connection[Any], names: list[str]) -> None:
    """Drop the roles that exist among ``names``, with what they own in ``conn``'s database."""
    sql = _psycopg().sql

    existing = sorted(
        row[0]
        for row in conn.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", [names])
    )
    if not existing:
        return
    roles = sql.SQL(", ").join(sql.Identifier(r) for r in existing)
    # Whatever a test made the roles own or receive in the maintenance database.
    conn.execute(sql.SQL("DROP OWNED BY {}").format(roles))
    conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(roles))


# --------------------------------------------------------------------------- finding


def check_server(server: PgServer) -> str | None:
    """Why ``server`` cannot be used, or None when it can."""
    psycopg = _psycopg()
    try:
        with server.connect() as conn:
            row = conn.execute(
                "SELECT rolsuper, rolcreaterole AND rolcreatedb FROM pg_roles"
                " WHERE rolname = current_user"
            ).fetchone()
    except psycopg.Error as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"{server.superuser}@{_netloc(server.host, server.port)}: {message}"
    if not row or not (row[0] or row[1]):
        return (
            f"{server.superuser}@{_netloc(server.host, server.port)}: role may not create "
            "roles and databases"
        )
    return None


def server_from_url(url: str) -> PgServer:
    """A :class:`PgServer` from a libpq URL or ``key=value`` string."""
    params = _psycopg().conninfo.conninfo_to_dict(url)
    return PgServer(
        host=str(params.get("host") or LOCAL_HOST),
        port=int(params.get("port") or LOCAL_PORT),
        superuser=str(params.get("user") or "postgres"),
        password=str(params["password"]) if params.get("password") else None,
        dbname=str(params.get("dbname") or "postgres"),
    )


def find_server(reasons: list[str] | None = None) -> PgServer | None:
    """The server named by ``LEDGERFLOW_TEST_PG``, else a local one; None if unreachable.

    When ``reasons`` is given, one line per server tried and refused is appended to it.
    """
    url = os.environ.get(ENV_URL)
    if url:
        try:
            candidates = [server_from_url(url)]
        except Exception as exc:
            _note(reasons, f"{ENV_URL} is not a valid libpq URL: {exc}")
            return None
    else:
        candidates = [PgServer(LOCAL_HOST, LOCAL_PORT, name) for name in LOCAL_SUPERUSERS]
    for server in candidates:
        problem = check_server(server)
        if problem is None:
            return server
        _note(reasons, problem)
    return None


def _note(reasons: list[str] | None, line: str) -> None:
    if reasons is not None:
        reasons.append(line)
