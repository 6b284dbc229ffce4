"""Finding a record from what a user types: a full id, an id prefix, or a file path.

Runs and task runs have random 32-hex ids; calls, values and files have 40-hex content
hashes (a file's hash is also its value's hash, so such a value is reported as a file).
Prefix lookups use index range scans (``id >= p AND id < p || 'g'``), so they stay fast
on large ledgers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from ledgerflow.errors import AmbiguousIdError, NotFoundError, UsageError
from ledgerflow.ledger.schema import CallRow, FileRow, Run, TaskDef, TaskRun, Value
from ledgerflow.provenance.query import path_candidates
from ledgerflow.provenance.records import Candidate, Kind

HEX = re.compile(r"[0-9a-fA-F]+")
#: How many candidates an ambiguity error lists.
MAX_CANDIDATES = 10


def is_hex(text: str) -> bool:
    return bool(HEX.fullmatch(text))


def _prefix(column: Any, prefix: str) -> Any:
    return and_(column >= prefix, column < prefix + "g", column.like(prefix + "%"))


def _runs(session: Session, prefix: str) -> list[Candidate]:
    rows = session.execute(
        select(Run.id, Run.entry_task, Run.status, Run.started_at)
        .where(_prefix(Run.id, prefix))
        .limit(MAX_CANDIDATES + 1)
    )
    return [
        Candidate("run", id_, f"{task} {status} started {started:%Y-%m-%d %H:%M}" if started else f"{task} {status}")
        for id_, task, status, started in rows
    ]


def _task_runs(session: Session, prefix: str) -> list[Candidate]:
    rows = session.execute(
        select(TaskRun.id, TaskRun.task_name, TaskRun.status, TaskRun.run_id)
        .where(_prefix(TaskRun.id, prefix))
        .limit(MAX_CANDIDATES + 1)
    )
    return [Candidate("task_run", id_, f"{task} {status} in run {run[:8]}") for id_, task, status, run in rows]


def _calls(session: Session, prefix: str) -> list[Candidate]:
    rows = session.execute(
        select(CallRow.hash, TaskDef.name)
        .join(TaskDef, TaskDef.hash == CallRow.task_hash)
        .where(_prefix(CallRow.hash, prefix))
        .limit(MAX_CANDIDATES + 1)
    )
    return [Candidate("call", hash_, f"call of {name}") for hash_, name in rows]


def _values(session: Session, prefix: str) -> list[Candidate]:
    rows = session.execute(
        select(Value.hash, Value.type_name, Value.preview, FileRow.path)
        .outerjoin(FileRow, FileRow.hash == Value.hash)
        .where(_prefix(Value.hash, prefix))
        .limit(MAX_CANDIDATES + 1)
    )
    found = []
    for hash_, type_name, preview, path in rows:
        if path is not None:
            found.append(Candidate("file", hash_, path))
        else:
            found.append(Candidate("value", hash_, f"{type_name} {preview or ''}".strip()))
    return found


_LOOKUPS = ((_runs, ("run",)), (_task_runs, ("task_run",)), (_calls, ("call",)), (_values, ("value", "file")))


def find_by_prefix(session: Session, prefix: str, kinds: tuple[Kind, ...] | None = None) -> list[Candidate]:
    """Every run, task run, call, value or file whose id starts with ``prefix`` (of
    ``kinds`` only, when given: the other tables are not searched)."""
    prefix = prefix.lower()
    found: list[Candidate] = []
    for lookup, made in _LOOKUPS:
        if kinds is None or any(kind in kinds for kind in made):
            found.extend(lookup(session, prefix))
    exact = [c for c in found if c.id == prefix]
    return exact or found


def find_file(session: Session, path: str | Path, root: Path) -> str | None:
    """The hash of the latest ``lf_file`` row for a path (as given, from here, or the root)."""
    candidates = path_candidates(path, root)
    return session.scalar(
        select(FileRow.hash)
        .where(FileRow.path.in_(candidates))
        .order_by(FileRow.created_at.desc(), FileRow.hash)
        .limit(1)
    )


def resolve(session: Session, text: str, root: Path, *, kinds: tuple[Kind, ...] | None = None) -> Candidate:
    """The one record ``text`` names, or a clear error.

    ``text`` is tried as an id or id prefix (hex), then as a file path. ``kinds`` restricts
    the search (for example ``("run",)`` for ``ledgerflow log``).
    """
    text = str(text).strip()
    if not text:
        raise UsageError("an id, id prefix or file path is needed, got an empty string")
    found: list[Candidate] = []
    if is_hex(text):
        found = [c for c in find_by_prefix(session, text, kinds) if kinds is None or c.record_kind in kinds]
    if not found and (kinds is None or "file" in kinds or "value" in kinds):
        file_hash = find_file(session, text, root)
        if file_hash is not None:
            return Candidate("file", file_hash, text)
    if not found:
        what = " or ".join(k.replace("_", " ") for k in kinds) if kinds else "record"
        raise NotFoundError(
            f"no {what} matches '{text}'",
            hint="give an id or prefix from `ledgerflow runs` / `ledgerflow query`, or a file path the ledger knows",
        )
    if len(found) > 1:
        raise AmbiguousIdError(_ambiguity_message(text, found))
    return found[0]


def _ambiguity_message(text: str, found: list[Candidate]) -> str:
    shown = found[:MAX_CANDIDATES]
    more = "" if len(found) <= MAX_CANDIDATES else "; and more"
    listing = "; ".join(str(c) for c in shown)
    return f"'{text}' matches several records, give more characters: {listing}{more}"
