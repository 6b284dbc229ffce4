"""The ledger in the field's provenance formats: what ``ledgerflow export --prov``,
``--ro-crate`` and ``--openlineage`` call.

* :func:`export_prov` — how one value or file was made, as a W3C PROV document (PROV-JSON,
  PROV-N, PROV-XML or PROV-O Turtle; the ``prov`` extra);
* :func:`export_ro_crate` — one run as a Provenance Run Crate (Workflow Run RO-Crate; the
  ``rocrate`` extra);
* :func:`export_openlineage` — runs replayed as the OpenLineage events a live run emits
  (JSON lines; the ``openlineage`` extra).

Each writes its file whole or not at all (a temporary file in the target's directory,
renamed at the end), and refuses a target it cannot write before reading the ledger. Each
result has a ``to_json()``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:

    from ledgerflow.config.settings import Settings

from ledgerflow.errors import LineageSendError, MissingExtraError, UsageError

__all__ = ["CrateExport", "LineageExport", "ProvExport", "export_openlineage", "export_prov",
           "export_ro_crate"]

Output = str | os.PathLike[str] | IO[Any]


def _shown(output: Output) -> str:
    if hasattr(output, "write"):
        return "stream"
    name = os.fspath(output)  # type: ignore[arg-type]
    return "stdout" if name == "-" else name


def _check(output: Output) -> None:
    from ledgerflow.provenance._atomic import check_target

    if not hasattr(output, "write") and os.fspath(output) != "-":  # type: ignore[arg-type]
        check_target(output)  # type: ignore[arg-type]


def _run_ids(settings: Settings, runs: Sequence[str]) -> list[str]:
    """Full run ids of ids or unique prefixes; one that matches no run is a NotFoundError."""
    from sqlalchemy.orm import Session

    from ledgerflow.db import Database
    from ledgerflow.provenance.ids import resolve

    database = Database(settings, read_only=True)
    try:
        with Session(bind=database.engine()) as session:
            return [resolve(session, run, settings.root, kinds=("run",)).id for run in runs]
    finally:
        database.dispose()


def _reading(settings: Settings) -> Any:
    from ledgerflow.db import Database

    return Database(settings, read_only=True)


@dataclass(frozen=True)
class ProvExport:
    """What ``export --prov`` wrote: the document's format and size."""

    target: str
    format: str
    label: str
    output: str
    entities: int
    activities: int
    agents: int

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "format": self.format, "output": self.output,
                "entities": self.entities, "activities": self.activities, "agents": self.agents}


def export_prov(
    settings: Settings,
    target: str,
    *,
    format: str = "json",
    output: Output = "-",
) -> ProvExport:
    """Write the W3C PROV document of how one value or file (id, prefix or path) was made, as
    PROV-JSON (``json``), PROV-N (``provn``), PROV-XML (``xml``) or PROV-O (``turtle``), to
    ``output`` (a path, written whole or not at all; ``-`` for stdout; or a text stream)."""
    from ledgerflow.provenance._atomic import atomic_stream
    from ledgerflow.provenance.prov import prov_document, prov_format, serialize_prov

    label = prov_format(format)[2]
    _check(output)
    document = prov_document(settings, target)
    text = serialize_prov(document, format)
    with atomic_stream(output) as stream:
        stream.write(text)
    records = list(document.get_records())
    kinds = [type(r).__name__ for r in records]
    return ProvExport(target, format, label, _shown(output), kinds.count("ProvEntity"),
                      kinds.count("ProvActivity"), kinds.count("ProvAgent"))


@dataclass(frozen=True)
class CrateExport:
    """What ``export --ro-crate`` wrote."""

    run: str
    output: str
    task_runs: int
    files: int
    embedded: int

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def export_ro_crate(
    settings: Settings, run: str, *, output: Output, include_files: bool = False
) -> CrateExport:
    """Write run ``run`` (id or unique prefix) as a Provenance Run Crate, zipped, to
    ``output`` (a path; ``-`` for stdout; or a binary stream). ``include_files`` embeds
    the files whose bytes on disk still have the content hash the ledger recorded."""
    from ledgerflow.provenance._atomic import atomic_stream
    from ledgerflow.provenance.ro_crate import build_crate
    from ledgerflow.provenance.run_facts import read_run

    _check(output)
    run_id = _run_ids(settings, [run])[0]
    database = _reading(settings)
    try:
        with database.engine().connect() as conn:
            facts = read_run(conn, run_id)
    finally:
        database.dispose()
    crate = build_crate(facts, settings.root, include_files=include_files)
    referenced = [e for e in crate.get_entities() if e.id.startswith("#file-")]
    embedded = [e for e in crate.data_entities
                if not e.id.startswith("workflow/") and e.id != "README.md"]
    with atomic_stream(output, binary=True) as stream:
        for chunk in crate.stream_zip():
            stream.write(chunk)
    task_runs = len(facts.task_runs) - len(facts.root_task_runs())
    return CrateExport(run_id, _shown(output), task_runs, len(referenced) + len(embedded),
                       len(embedded))


@dataclass(frozen=True)
class LineageExport:
    """What ``export --openlineage`` wrote."""

    runs: list[str]
    events: int
    output: str

    def to_json(self) -> dict[str, Any]:
        return {"runs": list(self.runs), "events": self.events, "output": self.output}


def _openlineage() -> Any:
    import importlib

    try:
        importlib.import_module("openlineage.client")
        return importlib.import_module("ledgerflow.provenance.openlineage")
    except ImportError:
        raise MissingExtraError("the OpenLineage export", "openlineage", "openlineage-python") from None


def export_openlineage(
    settings: Settings, runs: Sequence[str] | None = None, *, output: Output = "-",
    send: bool = False,
) -> LineageExport:
    """Write the OpenLineage events of recorded runs (ids or unique prefixes; every run when
    none is given), as JSON lines in time order: the events a live run emits (namespace:
    ``lineage.openlineage.namespace``, else ``ledgerflow``). With ``send``, send them through
    the configured transport instead (a catalogue that missed a run's live events); one that
    fails stops it with a :class:`~ledgerflow.errors.LineageSendError`."""
    from sqlalchemy import select

    from ledgerflow.ledger import tables
    from ledgerflow.provenance._atomic import atomic_stream
    from ledgerflow.provenance.run_facts import read_run

    openlineage = _openlineage()
    config = settings.lineage.openlineage
    if send:
        if config is None:
            raise UsageError("--send needs an OpenLineage transport",
                             hint="set lineage: {openlineage: {transport: ...}} in ledgerflow.yml")
        return _send(settings, config, runs, openlineage)
    _check(output)
    namespace = config.namespace if config is not None else "ledgerflow"
    database = _reading(settings)
    try:
        if runs:
            ids = _run_ids(settings, runs)
        else:
            with database.engine().connect() as conn:
                ids = list(conn.execute(select(tables.run.c.id)
                                        .order_by(tables.run.c.started_at, tables.run.c.id)).scalars())
        count = 0
        with atomic_stream(output) as stream, database.engine().connect() as conn:
            for run_id in ids:
                facts = read_run(conn, run_id)
                for event in openlineage.run_events(facts, namespace, settings.root):
                    stream.write(openlineage.to_json(event) + "\n")
                    count += 1
    finally:
        database.dispose()
    return LineageExport(ids, count, _shown(output))


def _send(settings: Settings, config: Any, runs: Sequence[str] | None, openlineage: Any) -> LineageExport:
    from sqlalchemy import select

    from ledgerflow.ledger import tables
    from ledgerflow.provenance.lineage_live import make_client, make_transport
    from ledgerflow.provenance.run_facts import read_run

    kind = str(config.transport.get("type"))
    try:
        client = make_client(make_transport(config.transport))
    except Exception as exc:
        raise LineageSendError(f"cannot open the OpenLineage {kind} transport: {_first(exc)}",
                               hint="check lineage.openlineage.transport in ledgerflow.yml") from None
    ids = _run_ids(settings, runs) if runs else None
    database = _reading(settings)
    sent = 0
    try:
        with database.engine().connect() as conn:
            if ids is None:
                ids = list(conn.execute(select(tables.run.c.id)
                                        .order_by(tables.run.c.started_at, tables.run.c.id)).scalars())
            for run_id in ids:
                for event in openlineage.run_events(read_run(conn, run_id), config.namespace,
                                                    settings.root):
                    try:
                        client.emit(event)
                    except Exception as exc:
                        raise LineageSendError(
                            f"the OpenLineage {kind} transport failed after {sent} event(s): "
                            f"{_first(exc)}",
                            hint="check that the endpoint is up; sending again is harmless, "
                            "catalogues merge repeated events") from None
                    sent += 1
    finally:
        database.dispose()
    return LineageExport(ids, sent, f"the {kind} transport")


def _first(exc: BaseException) -> str:
    """The first line of an error, without the passwords of the URLs it names."""
    from ledgerflow.config.settings import hide_url_passwords

    lines = str(exc).strip().splitlines()
    return hide_url_passwords(f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__)
