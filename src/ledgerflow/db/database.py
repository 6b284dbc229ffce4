"""One project's databases: an engine per bind, and sessions that reach every bind.

The ORM is imported when the first session is made: a run records through the engines.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from ledgerflow.config.settings import DEFAULT_BIND, DatabaseConfig, Settings
from ledgerflow.db.engines import Role, connection_error, create_bind_engine
from ledgerflow.errors import ConfigError

if TYPE_CHECKING:
    from ledgerflow.db.session import RoutingSession


class Database:
    """The engines of a project's binds for one role, created on first use.

    ``role="user"`` is what pipelines and readers use; migrations use ``role="admin"``.
    """

    def __init__(self, settings: Settings, role: Role = "user", *, read_only: bool = False):
        self.settings = settings
        self.role = role
        self.read_only = read_only
        self._engines: dict[str, Engine] = {}
        self._sessionmaker: Any = None

    def config(self, bind: str = DEFAULT_BIND) -> DatabaseConfig:
        try:
            return self.settings.databases[bind]
        except KeyError:
            known = ", ".join(sorted(self.settings.databases))
            where = self.settings.path or "ledgerflow.yml"
            raise ConfigError(
                f"{where}: databases.{bind} is not configured (configured: {known})",
                hint=f"add a '{bind}' entry under databases:",
            ) from None

    def engine(self, bind: str = DEFAULT_BIND) -> Engine:
        engine = self._engines.get(bind)
        if engine is None:
            engine = create_bind_engine(self.config(bind), self.role, read_only=self.read_only)
            self._engines[bind] = engine
        return engine

    def check_connection(self, bind: str = DEFAULT_BIND) -> None:
        """Connect once, turning driver errors into a one-line :class:`ConnectionFailedError`."""
        try:
            with self.engine(bind).connect() as conn:
                conn.execute(text("SELECT 1"))
        except DBAPIError as exc:
            raise connection_error(self.config(bind), self.role, exc) from None

    def session(self, **kwargs: Any) -> RoutingSession:
        if self._sessionmaker is None:
            from sqlalchemy.orm import sessionmaker

            from ledgerflow.db.session import RoutingSession

            self._sessionmaker = sessionmaker(class_=RoutingSession, database=self)
        session: RoutingSession = self._sessionmaker(**kwargs)
        return session

    @contextmanager
    def transaction(self) -> Iterator[RoutingSession]:
        """A session committed on success and rolled back on error."""
        session = self.session()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()
