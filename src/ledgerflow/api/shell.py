"""``ledgerflow shell``: Python with the project's models and one session over every bind.

As Flask-SQLAlchemy's ``flask shell``: the names ``db`` (``db.session``, routed to each
model's database), ``models`` (every model of the loaded plugins, also by its own name),
``Model``, ``select`` and ``settings`` are ready, and ``User.query`` queries in
``db.session``::

    >>> u = models.User(nickname="john", email="john@email.com")
    >>> db.session.add(u)
    >>> db.session.commit()
    >>> models.User.query.get(1).posts.all()

Nothing is committed unless the user commits; the session is closed on exit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from ledgerflow.config.settings import Settings
    from ledgerflow.db import Database, RoutingSession

__all__ = ["ShellDatabase", "shell_banner", "shell_namespace"]


@dataclass
class ShellDatabase:
    """``db`` in the shell: ``db.session`` and ``db.engine(bind)``."""

    database: Database
    session: RoutingSession

    def engine(self, bind: str = "default") -> Engine:
        return self.database.engine(bind)


def _models() -> dict[str, type[Any]]:
    from ledgerflow.db import Model

    found: dict[str, type[Any]] = {}
    for mapper in sorted(Model.registry.mappers, key=lambda m: m.class_.__name__):
        found.setdefault(mapper.class_.__name__, mapper.class_)
    return found


@contextmanager
def shell_namespace(settings: Settings) -> Iterator[dict[str, Any]]:
    """The shell's names: the plugins are imported, a session is open (and ``Model.query``
    uses it) until the block ends."""
    from sqlalchemy import select

    from ledgerflow.db import Database, Model, query_session
    from ledgerflow.db.plugins import load_plugins

    load_plugins(settings)
    models = _models()
    database = Database(settings)
    session = database.session()
    try:
        with query_session(session):
            yield {
                **models,
                "db": ShellDatabase(database, session),
                "models": SimpleNamespace(**models),
                "Model": Model,
                "select": select,
                "settings": settings,
            }
    finally:
        session.close()
        database.dispose()


def shell_banner(namespace: dict[str, Any]) -> str:
    models = sorted(vars(namespace["models"]))
    shown = ", ".join(models) if models else "none (no plugin defines a model)"
    return (
        f"ledgerflow shell ({namespace['settings'].path or 'no ledgerflow.yml'})\n"
        "db.session: one session over every database (db.session.commit() to keep changes)\n"
        f"models: {shown} (also by name; Model.query works, e.g. "
        f"{models[0] if models else 'User'}.query.all())\n"
        "also: Model, select, settings"
    )
