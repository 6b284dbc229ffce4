"""The provenance of a value or file as a W3C PROV-JSON document.

Mapping (https://www.w3.org/submissions/prov-json/):

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
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from ledgerflow.config.settings import Settings
from ledgerflow.db import Database
from ledgerflow.db.chunks import chunks
from ledgerflow.db.model import DEFAULT_BIND
from ledgerflow.db.times import utc
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

__all__ = ["PROV_NAMESPACE", "prov_document"]

PROV_NAMESPACE = "urn:ledgerflow:"


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else utc(moment).isoformat()


def _rows(conn: Connection, columns: Iterable[Any], key: Any, keys: Iterable[Any], *where: Any) -> list[Any]:
    out: list[Any] = []
    for batch in chunks(set(keys)):
        out.extend(conn.execute(select(*columns).where(key.in_(batch), *where)))
    return out


class _Ref(str):
    """A value hash standing for its entity, whose id (value or file) is known at the end."""


class _Document:
    def __init__(self) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}
        self._relations: dict[tuple[str, ...], tuple[str, dict[str, Any]]] = {}

    def node(self, section: str, ident: str, attributes: dict[str, Any]) -> None:
        clean = {k: v for k, v in attributes.items() if v is not None}
        self.nodes.setdefault(section, {})[ident] = clean

    def relation(self, section: str, **members: Any) -> None:
        key = (section, *(f"{k}={v}" for k, v in sorted(members.items())))
        self._relations.setdefault(key, (section, members))

    def render(self, entity_ids: dict[str, str]) -> dict[str, Any]:
        doc: dict[str, Any] = {"prefix": {"lf": PROV_NAMESPACE}, **self.nodes}
        counts: dict[str, int] = {}
        for section, members in self._relations.values():
            n = counts[section] = counts.get(section, 0) + 1
            doc.setdefault(section, {})[f"_:{section}{n}"] = {
                f"prov:{k}": entity_ids.get(v, f"lf:value_{v}") if isinstance(v, _Ref) else v
                for k, v in members.items()
                if v is not None
            }
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

    def run(self, root: str) -> dict[str, Any]:
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


def prov_document(settings: Settings, target: str, *, bind: str = DEFAULT_BIND) -> dict[str, Any]:
    """The PROV-JSON document of a value (id or prefix) or a file (path the ledger knows)."""
    from ledgerflow.provenance.ids import resolve

    database = Database(settings, read_only=True)
    try:
        with database.engine(bind).connect() as conn:
            with Session(bind=conn) as session:
                found = resolve(session, target, settings.root, kinds=("value", "file"))
            return _Walk(conn).run(found.id)
    finally:
        database.dispose()
