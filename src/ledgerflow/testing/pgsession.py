"""One test session's PostgreSQL databases: tagged, copied from templates, dropped in batches.

Dropping a database makes PostgreSQL run a checkpoint, which on a busy server costs more
than making the database; drops running at the same moment share one. So :meth:`release`
ends a test's connections at once and queues its database, and the queue is dropped a batch
at a time, the whole batch at once, in the background; :meth:`PgSession.close` drops the rest.

Every database and role made through :attr:`PgSession.server` carries the session's token in
its name and in its ``COMMENT``; :meth:`PgSession.close` drops all of them, also those a test
made itself and never dropped, so a failing test leaves nothing behind. While it lives the
session holds one connection named ``ledgerflow-tests-TOKEN``: a new session drops what
sessions without such a connection left (a run that was killed), and never touches the
databases of a session that is still running, on this machine or another.

Templates (:meth:`PgSession.template`) are made once per session, on first use.
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait

from ledgerflow.errors import DatabaseError
from ledgerflow.testing.postgres import (
    SESSION_COMMENT,
    PgDatabase,
    PgServer,
    drop_database,
    drop_roles,
    end_sessions,
)

APPLICATION_NAME = "ledgerflow-tests-{token}"
#: Databases dropped together (each on its own connection, sharing the checkpoint).
DROP_BATCH = 6


class PgSession:
    """The databases and roles one test session makes on ``server``."""

    def __init__(self, server: PgServer, token: str | None = None) -> None:
        self.token = token or secrets.token_hex(3)
        #: The server; what it makes is the session's (named and tagged with its token).
        self.server = dataclasses.replace(server, session=self.token)
        self._keeper = server.connect(application_name=APPLICATION_NAME.format(token=self.token))
        self._templates: dict[str, PgDatabase] = {}
        self._queue: list[PgDatabase] = []
        self._drops: list[Future[None]] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=DROP_BATCH, thread_name_prefix="lf-pg-drop")
        self.sweep_abandoned()

    def __repr__(self) -> str:
        return f"PgSession({self.token!r}, {self.server!r})"

    # ------------------------------------------------------------------ databases

    def template(self, key: str, prepare: Callable[[PgDatabase], None]) -> PgDatabase:
        """The template ``key``, made by ``prepare(database)`` the first time it is asked for.

        Give it to ``session.server.create_database(template=...)``. ``key`` is part of the
        database's name: lowercase letters, digits and underscores.
        """
        with self._lock:
            template = self._templates.get(key)
        if template is None:
            template = self.server.create_template(prepare, prefix=f"lf_tmpl_{key}")
            with self._lock:
                self._templates[key] = template
        return template

    def create_database(
        self, prefix: str = "lf_test", *, template: PgDatabase | None = None
    ) -> PgDatabase:
        """:meth:`PgServer.create_database` on the session's server."""
        return self.server.create_database(prefix, template=template)

    def release(self, database: PgDatabase) -> None:
        """End ``database``'s connections now; drop it (and its roles) with the next batch."""
        end_sessions(self._keeper, database.name)
        with self._lock:
            self._queue.append(database)
            if len(self._queue) < DROP_BATCH:
                return
            batch, self._queue = self._queue, []
            self._drops += [self._pool.submit(db.drop) for db in batch]

    def close(self) -> None:
        """Drop every database and role of the session, then let go of the server.

        Raises :class:`~ledgerflow.errors.DatabaseError` naming what could not be dropped.
        Closing a closed session does nothing.
        """
        if self._keeper.closed:
            return
        try:
            with self._lock:
                # Copies no longer refer to their template's roles (see postgres._adopt), so
                # templates go in the same round as the last copies.
                batch = self._queue + list(self._templates.values())
                self._queue, self._templates = [], {}
                drops = self._drops + [self._pool.submit(db.drop) for db in batch]
                self._drops = []
            wait(drops)
            self._sweep([self.token])
            left = self._tagged([self.token])
        finally:
            self._pool.shutdown(wait=True)
            self._keeper.close()
        if left[0] or left[1]:
            raise DatabaseError(
                f"the test session {self.token} could not drop "
                + ", ".join([*(f"database {d}" for d in left[0]), *(f"role {r}" for r in left[1])]),
                hint="drop them by hand (DROP DATABASE ... WITH (FORCE); DROP OWNED BY ...; "
                "DROP ROLE ...)",
            )

    # ------------------------------------------------------------------ sweeping

    def sweep_abandoned(self) -> list[str]:
        """Drop what sessions that no longer run left on the server; returns their tokens."""
        prefix = SESSION_COMMENT.format(token="")
        rows = self._keeper.execute(
            "SELECT DISTINCT substr(description, length(%s) + 1) FROM pg_shdescription"
            " WHERE starts_with(description, %s)",
            [prefix, prefix],
        ).fetchall()
        live = {
            row[0]
            for row in self._keeper.execute(
                "SELECT application_name FROM pg_stat_activity WHERE application_name <> ''"
            )
        }
        dead = sorted(
            token
            for (token,) in rows
            if token != self.token and APPLICATION_NAME.format(token=token) not in live
        )
        if dead:
            self._sweep(dead)
        return dead

    def _tagged(self, tokens: Iterable[str]) -> tuple[list[str], list[str]]:
        """The databases and roles whose comment names one of ``tokens``."""
        comments = [SESSION_COMMENT.format(token=t) for t in tokens]
        databases = self._keeper.execute(
            "SELECT d.datname FROM pg_database d JOIN pg_shdescription s ON s.objoid = d.oid"
            " AND s.classoid = 'pg_database'::regclass WHERE s.description = ANY(%s) ORDER BY 1",
            [comments],
        ).fetchall()
        roles = self._keeper.execute(
            "SELECT r.rolname FROM pg_roles r JOIN pg_shdescription s ON s.objoid = r.oid"
            " AND s.classoid = 'pg_authid'::regclass WHERE s.description = ANY(%s) ORDER BY 1",
            [comments],
        ).fetchall()
        return [row[0] for row in databases], [row[0] for row in roles]

    def _sweep(self, tokens: Iterable[str]) -> None:
        """Drop the databases, then the roles, tagged with one of ``tokens``."""
        databases, roles = self._tagged(tokens)
        outcomes = [self._pool.submit(self._drop_database, name) for name in databases]
        wait(outcomes)
        if roles:
            try:
                drop_roles(self._keeper, roles)
            except Exception:
                for role in roles:  # one at a time, so that one stuck role keeps only itself
                    try:
                        drop_roles(self._keeper, [role])
                    except Exception:
                        continue

    def _drop_database(self, name: str) -> None:
        with self.server.connect() as conn:
            drop_database(conn, name)

