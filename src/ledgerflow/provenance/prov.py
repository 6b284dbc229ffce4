"""The provenance of a value or file as a W3C PROV document, in PROV-JSON, PROV-N, PROV-XML
or PROV-O (Turtle), built with the ``prov`` package's model (the ``prov`` extra).

Mapping (https://www.w3.org/TR/prov-dm/):

* entities — values and files (``lf:value_<hash>``, ``lf:file_<hash>``);
* activities — the task runs that executed the calls producing them (``lf:task_run_<id>``);
* agents — the users who launched the runs (``lf:user_<name>``);
* ``wasGeneratedBy`` — a value and the task run whose call returned it (a call that only
  passes on a child call's result is skipped in favour of the child);
* ``used`` — a task run and each argument value of its call (``prov:role`` = the
  argument's name or position);
* ``hadMember`` — a list/dict/tuple value and the values it holds;
* ``wasInformedBy`` — a task run that used a value another task run generated;
* ``wasStartedBy`` — a task run and the task run whose task called it;
* ``wasAssociatedWith`` — a task run and the user of its run.

The walk goes upstream from the value to the origin arguments, level by level with batched
queries; a value with no producing call is traced through the containers holding it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from types import ModuleType
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from ledgerflow.config.settings import Settings
from ledgerflow.db import Database
from ledgerflow.db.chunks import chunks
from ledgerflow.db.model import DEFAULT_BIND
from ledgerflow.db.times import utc
from ledgerflow.errors import MissingExtraError, UsageError
from ledgerflow.ledger.schema import (
    Argument,
    CallEdge,
    CallRow,
    FileRow,
    Run,
    TaskRun,
    Value,
    ValueEdge,
)

if TYPE_CHECKING:
    from prov.model import ProvDocument

__all__ = [
    "PROV_FORMATS", "PROV_NAMESPACE", "parse_prov", "prov_document", "prov_format", "serialize_prov",
]

PROV_NAMESPACE = "urn:ledgerflow:"

#: ``--prov-format`` name -> (the ``prov`` serializer, its options, what it is called)
PROV_FORMATS: dict[str, tuple[str, dict[str, Any], str]] = {
    "json": ("json", {"indent": 2, "sort_keys": True}, "PROV-JSON"),
    "provn": ("provn", {}, "PROV-N"),
    "xml": ("xml", {}, "PROV-XML"),
    "turtle": ("rdf", {"rdf_format": "turtle"}, "PROV-O (Turtle)"),
}


def _prov_model() -> ModuleType:
    try:
        import prov.model
    except ImportError:
        raise MissingExtraError("the W3C PROV export", "prov", "prov") from None
    return prov.model


def prov_format(name: str) -> tuple[str, dict[str, Any], str]:
    """The ``prov`` serializer, its options and the format's name; an unknown name is a
    UsageError."""
    found = PROV_FORMATS.get(name)
    if found is None:
        raise UsageError(f"unknown PROV format {name!r}",
                         hint=f"choose one of {', '.join(PROV_FORMATS)}")
    return found


def serialize_prov(document: ProvDocument, format: str = "json") -> str:
    """The document as text in one of :data:`PROV_FORMATS` (``json``, ``provn``, ``xml``,
    ``turtle``)."""
    serializer, options, _ = prov_format(format)
    text = document.serialize(format=serializer, **options)
    text = text.decode("utf-8") if isinstance(text, bytes) else text
    return text if text.endswith("\n") else text + "\n"


def parse_prov(text: str, format: str = "json") -> ProvDocument:
    """A document read back from :func:`serialize_prov`'s output (PROV-N has no reader in the
    ``prov`` package: a UsageError)."""
    serializer, options, label = prov_format(format)
    if serializer == "provn":
        raise UsageError(f"{label} cannot be read back", hint="the prov package only writes it")
    options = {k: v for k, v in options.items() if k == "rdf_format"}
    document: ProvDocument = _prov_model().ProvDocument.deserialize(
        content=text, format=serializer, **options)
    return document


def _time(moment: datetime | None) -> datetime | None:
    return None if moment is None else utc(moment)


def _rows(conn: Connection, columns: Iterable[Any], key: Any, keys: Iterable[Any], *where: Any) -> list[Any]:
    out: list[Any] = []
    for batch in chunks(set(keys)):
        out.extend(conn.execute(select(*columns).where(key.in_(batch), *where)))
    return out


class _Ref(str):
    """A value hash standing for its entity, whose id (value or file) is known at the end."""


class _Document:
    """Nodes and (deduplicated) relations, rendered into a ``prov`` document at the end, when
    every value's entity id (value or file) is known."""

    def __init__(self) -> None:
        self.nodes: dict[str, dict[str, dict[str, Any]]] = {}
        self._relations: dict[tuple[str, ...], tuple[str, dict[str, Any]]] = {}

    def node(self, section: str, ident: str, attributes: dict[str, Any]) -> None:
        clean = {k: v for k, v in attributes.items() if v is not None}
        self.nodes.setdefault(section, {})[ident] = clean

    def relation(self, section: str, **members: Any) -> None:
        key = (section, *(f"{k}={v}" for k, v in sorted(members.items())))
        self._relations.setdefault(key, (section, members))

    def render(self, entity_ids: dict[str, str]) -> ProvDocument:
        model = _prov_model()
        doc = model.ProvDocument()
        lf = doc.add_namespace("lf", PROV_NAMESPACE)
        types = {"lf:File": lf["File"], "lf:Value": lf["Value"], "prov:Person": model.PROV["Person"]}

        def attributes(raw: dict[str, Any]) -> dict[str, Any]:
            return {k: types.get(v, v) if k == "prov:type" else v for k, v in raw.items()}

        for ident, attrs in self.nodes.get("entity", {}).items():
            doc.entity(ident, attributes(attrs))
        for ident, attrs in self.nodes.get("activity", {}).items():
            rest = {k: v for k, v in attrs.items() if k not in ("prov:startTime", "prov:endTime")}
            doc.activity(ident, attrs.get("prov:startTime"), attrs.get("prov:endTime"), rest)
        for ident, attrs in self.nodes.get("agent", {}).items():
            doc.agent(ident, attributes(attrs))

        def ref(value: Any) -> Any:
            return entity_ids.get(value, f"lf:value_{value}") if isinstance(value, _Ref) else value

        for section, raw in self._relations.values():
            m = {k: ref(v) for k, v in raw.items()}
            if section == "used":
                doc.used(m["activity"], m["entity"], None, None, {"prov:role": m["role"]})
            elif section == "wasGeneratedBy":
                doc.wasGeneratedBy(m["entity"], m["activity"], m.get("time"))
            elif section == "hadMember":
                doc.hadMember(m["collection"], m["entity"])
            elif section == "wasInformedBy":
                doc.wasInformedBy(m["informed"], m["informant"])
            elif section == "wasStartedBy":
                doc.wasStartedBy(m["activity"], None, m["starter"])
            elif section == "wasAssociatedWith":
                doc.wasAssociatedWith(m["activity"], m["agent"])
        return doc


class _Walk:
    """Upstream from one value, filling a PROV document."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.out = _Document()
        self.entity_ids: dict[str, str] = {}
        self.generators: dict[str, set[str]] = {}
        self.uses: list[tuple[str, str]] = []
        self.activities: dict[str, Any] = {}

    def run(self, root: str) -> ProvDocument:
        seen = {root}
        frontier = {root}
        while frontier:
            found = self._level(frontier)
            frontier = found - seen
            seen |= frontier
        self._relations()
        return self.out.render(self.entity_ids)

    def _level(self, values: set[str]) -> set[str]:
        c = self.conn
        files = {r.hash: r for r in _rows(c, FileRow.__table__.c, FileRow.hash, values)}
        for row in _rows(c, Value.__table__.c, Value.hash, values):
            self._entity(row, files.get(row.hash))
        calls = _rows(c, (CallRow.hash, CallRow.args_hash, CallRow.value_hash), CallRow.value_hash, values)
        routed = self._routing({r.hash: r.value_hash for r in calls})
        producing = [r for r in calls if r.hash not in routed]
        found: set[str] = set()
        runs = self._task_runs({r.hash for r in producing})
        args_of: dict[str, list[Any]] = {}
        for row in _rows(c, (Argument.args_hash, Argument.position, Argument.key, Argument.value_hash),
                         Argument.args_hash, {r.args_hash for r in producing}):
            args_of.setdefault(row.args_hash, []).append(row)
        produced = set()
        for call in producing:
            activity = runs.get(call.hash)
            if activity is None:
                continue
            produced.add(call.value_hash)
            self.generators.setdefault(call.value_hash, set()).add(activity)
            for arg in sorted(args_of.get(call.args_hash, ()), key=lambda a: a.position):
                role = arg.key if arg.key is not None else str(arg.position)
                self.out.relation("used", activity=activity, entity=self._ref(arg.value_hash),
                                  role=role)
                self.uses.append((activity, arg.value_hash))
                found.add(arg.value_hash)
        edges = _rows(c, (ValueEdge.parent_hash, ValueEdge.child_hash), ValueEdge.parent_hash, values)
        for parent, child in edges:
            self.out.relation("hadMember", collection=self._ref(parent), entity=self._ref(child))
            found.add(child)
        orphans = values - produced
        for parent, child in _rows(c, (ValueEdge.parent_hash, ValueEdge.child_hash),
                                   ValueEdge.child_hash, orphans):
            self.out.relation("hadMember", collection=self._ref(parent), entity=self._ref(child))
            found.add(parent)
        return found

    def _routing(self, calls: dict[str, str]) -> set[str]:
        """Calls whose result is a child call's result (they pass it on, they don't make it)."""
        children = _rows(self.conn, (CallEdge.parent_hash, CallEdge.child_hash), CallEdge.parent_hash, calls)
        child_values = {
            r.hash: r.value_hash
            for r in _rows(self.conn, (CallRow.hash, CallRow.value_hash), CallRow.hash, {c for _, c in children})
        }
        return {p for p, c in children if child_values.get(c) == calls[p]}

    def _task_runs(self, calls: set[str]) -> dict[str, str]:
        """For each call, the task run that executed it (the earliest ``done``, else any)."""
        best: dict[str, Any] = {}
        for row in _rows(self.conn, TaskRun.__table__.c, TaskRun.call_hash, calls):
            current = best.get(row.call_hash)
            if current is None or _rank(row) < _rank(current):
                best[row.call_hash] = row
        return {call: self._activity(row) for call, row in best.items()}

    def _activity(self, row: Any) -> str:
        ident = f"lf:task_run_{row.id}"
        if ident not in self.activities:
            self.activities[ident] = row
            self.out.node("activity", ident, {
                "prov:label": row.task_name,
                "prov:startTime": _time(row.started_at),
                "prov:endTime": _time(row.ended_at),
                "lf:status": row.status,
                "lf:run": row.run_id,
                "lf:call": row.call_hash,
                "lf:worker": row.worker,
            })
        return ident

    def _ref(self, value_hash: str) -> _Ref:
        return _Ref(value_hash)

    def _entity(self, row: Any, file: Any) -> None:
        if file is not None:
            ident = f"lf:file_{row.hash}"
            attributes = {
                "prov:type": "lf:File", "prov:label": file.path, "prov:location": file.path,
                "lf:content_hash": file.content_hash, "lf:size": file.size,
            }
        else:
            ident = f"lf:value_{row.hash}"
            attributes = {
                "prov:type": "lf:Value", "prov:label": row.preview, "lf:type_name": row.type_name,
                "lf:size": row.size,
            }
        self.entity_ids[row.hash] = ident
        attributes["lf:hash"] = row.hash
        self.out.node("entity", ident, attributes)

    def _relations(self) -> None:
        for value, activities in self.generators.items():
            for activity in sorted(activities):
                ended = self.activities[activity].ended_at
                self.out.relation("wasGeneratedBy", entity=self._ref(value), activity=activity,
                                  time=_time(ended))
        for consumer, value in self.uses:
            for generator in sorted(self.generators.get(value, ())):
                if generator != consumer:
                    self.out.relation("wasInformedBy", informed=consumer, informant=generator)
        for ident, row in self.activities.items():
            starter = f"lf:task_run_{row.parent_id}" if row.parent_id else None
            if starter is not None and starter in self.activities:
                self.out.relation("wasStartedBy", activity=ident, starter=starter)
        run_users = {
            r.id: r.user
            for r in _rows(self.conn, (Run.id, Run.user), Run.id, {a.run_id for a in self.activities.values()})
        }
        for ident, row in sorted(self.activities.items()):
            user = run_users.get(row.run_id)
            if user:
                agent = f"lf:user_{user}"
                self.out.node("agent", agent, {"prov:type": "prov:Person", "prov:label": user})
                self.out.relation("wasAssociatedWith", activity=ident, agent=agent)


def _rank(row: Any) -> tuple[int, str]:
    started = utc(row.started_at).isoformat() if row.started_at else "~"
    return (0 if row.status == "done" else 1, started)


def prov_document(settings: Settings, target: str, *, bind: str = DEFAULT_BIND) -> ProvDocument:
    """The PROV document of a value (id or prefix) or a file (path the ledger knows)."""
    from ledgerflow.provenance.ids import resolve

    _prov_model()  # a missing extra is said before the ledger is opened
    database = Database(settings, read_only=True)
    try:
        with database.engine(bind).connect() as conn:
            with Session(bind=conn) as session:
                found = resolve(session, target, settings.root, kinds=("value", "file"))
            return _Walk(conn).run(found.id)
    finally:
        database.dispose()
