"""The declarative base users derive their tables from.

``class ComputationResult(Model)`` maps to the table ``computation_result`` in the
``default`` database; ``__tablename__`` overrides the name and ``__bind_key__`` routes the
model to another database of ``ledgerflow.yml``. The table records its bind and the module
that defined it in ``Table.info`` so sessions route it and migrations give it to the
plugin that owns it.

``User.query`` is a query on the model in the current session (``ledgerflow shell`` opens
one; elsewhere ``with query_session(session):``), as Flask-SQLAlchemy's ``Model.query``:
``User.query.all()``, ``User.query.get(1)``, ``User.query.filter_by(nickname="john")``.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import MetaData, text
from sqlalchemy.orm import DeclarativeBase, Query, declared_attr

from ledgerflow.config.settings import DEFAULT_BIND
from ledgerflow.db.naming import NAMING_CONVENTION
from ledgerflow.db.naming import bind_of as bind_of  # where tests and plugins found it
from ledgerflow.db.session import current_query_session
from ledgerflow.errors import ContextError, ModelError
from ledgerflow.hashing import combine, fingerprint, hash_value

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake_case(name: str) -> str:
    """``ComputationResult`` -> ``computation_result``, ``HTTPServer`` -> ``http_server``."""
    return _CAMEL.sub("_", name).lower()


class _TableRegistry:
    """Which model claimed which table name, across every bind."""

    def __init__(self) -> None:
        self._owners: dict[str, tuple[str, str]] = {}

    def claim(self, table_name: str, model: str, bind: str) -> None:
        owner = self._owners.get(table_name)
        if owner is not None and owner[0] != model:
            other_model, other_bind = owner
            where = (
                f"binds '{other_bind}' and '{bind}'"
                if other_bind != bind
                else f"bind '{bind}'"
            )
            raise ModelError(
                f"table name '{table_name}' is used by two models, {other_model} and {model}, "
                f"in {where}",
                hint="give one of them another __tablename__",
            )
        self._owners[table_name] = (model, bind)

    def clear(self) -> None:
        self._owners.clear()


_registry = _TableRegistry()


class ModelQuery(Query[Any]):
    """``Model.query``: a SQLAlchemy ``Query`` whose ``get(id)`` reads by primary key and
    whose ``order_by`` also takes SQL text (``order_by("nickname desc")``)."""

    def get(self, ident: Any) -> Any:
        entity: Any = self.column_descriptions[0]["entity"]
        return self.session.get(entity, ident)

    def order_by(self, *clauses: Any) -> ModelQuery:  # type: ignore[override]
        return super().order_by(*(text(c) if isinstance(c, str) else c for c in clauses))


class _QueryProperty:
    """``Model.query``: a :class:`ModelQuery` on the class in the current query session."""

    def __get__(self, obj: object, cls: type[Any]) -> ModelQuery:
        session = current_query_session()
        if session is None:
            raise ContextError(
                f"{cls.__name__}.query has no session to query",
                hint="use it in `ledgerflow shell`, or inside `with ledgerflow.db."
                "query_session(session):`; a task has `context.session.query(...)`",
            )
        return ModelQuery(cls, session=session)


class Model(DeclarativeBase):
    """Base class of every user table.

    Class attributes understood besides SQLAlchemy's own:

    ``__bind_key__``
        name of the database in ``ledgerflow.yml`` (default ``"default"``).
    """

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    __abstract__ = True
    query = _QueryProperty()

    @declared_attr.directive
    @classmethod
    def __tablename__(cls) -> str:
        return snake_case(cls.__name__)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        if not cls.__dict__.get("__abstract__", False) and "__table__" not in cls.__dict__:
            bind = getattr(cls, "__bind_key__", None) or DEFAULT_BIND
            name = cls.__dict__.get("__tablename__")
            table_name = name if isinstance(name, str) else snake_case(cls.__name__)
            _registry.claim(table_name, f"{cls.__module__}.{cls.__qualname__}", bind)
        super().__init_subclass__(**kwargs)
        table = cls.__dict__.get("__table__")
        if table is not None:
            table.info.setdefault("bind_key", getattr(cls, "__bind_key__", None) or DEFAULT_BIND)
            table.info.setdefault("module", cls.__module__)

    def __repr__(self) -> str:
        mapper = self.__mapper__
        names = [mapper.get_property_by_column(col).key for col in mapper.primary_key]
        keys = ", ".join(f"{name}={getattr(self, name, None)!r}" for name in names)
        return f"<{type(self).__name__} {keys}>"


def clear_models() -> None:
    """Forget every user model: mappers, tables and claimed names.

    For test suites that import plugin packages afresh in each test; classes mapped before
    the call are unusable after it.
    """
    Model.registry.dispose()
    Model.metadata.clear()
    _registry.clear()


def _fingerprint_model(obj: Model) -> str:
    """A mapped row hashes by its type and column values (what it holds, not its identity)."""
    mapper = type(obj).__mapper__
    columns = {attr.key: getattr(obj, attr.key, None) for attr in mapper.column_attrs}
    return combine(hash_value(f"{type(obj).__module__}.{type(obj).__qualname__}"), hash_value(columns))


fingerprint.register(Model, _fingerprint_model)
