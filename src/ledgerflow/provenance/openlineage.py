"""A run as OpenLineage events, built with openlineage-python (the ``openlineage`` extra).

One builder serves the live emitter (:mod:`ledgerflow.provenance.lineage_live`) and the
replay (``ledgerflow export --openlineage``), so both say the same thing about a run:

* the run is an OpenLineage run of the job ``<namespace>/<entry task>`` (``jobType`` DAG):
  START when it started, COMPLETE, FAIL or ABORT when it ended (``done``, ``failed``,
  ``interrupted``), with the files its entry call read (inputs) and the files it returned
  (outputs), the ``processing_engine`` facet and, on FAIL, ``errorMessage``;
* each other task run is a child run of the job ``<namespace>/<task name>`` (``jobType``
  TASK) with the ``parent`` facet (its calling task run, else the run; ``root``: the run):
  START, then COMPLETE (``done``, ``cached``), FAIL (with ``errorMessage``: the exception
  and its traceback) or ABORT (``skipped``, ``interrupted``); inputs are the files among its
  arguments (in lists and dicts too), outputs the files it returned;
* a task run's START carries its job's ``sourceCode`` (the task's source as recorded) and
  ``sourceCodeLocation``: ``url``, the module's file in the project when one still defines
  the task's function; when the run recorded a git commit (``version``), ``type`` git,
  ``repoUrl`` the ``origin`` remote (without credentials), else the work tree holding the
  project, ``path`` the file in that repository and ``branch`` the branch checked out
  there (when the events are built);
* a file is the dataset ``file://<host>`` / ``<absolute path>`` (the OpenLineage naming of
  a file system, through openlineage-python's ``naming``), with the ``version`` facet (its
  content hash) and ``ledgerflow_file`` (hash algorithm, content hash, size, ledger hash).

Run and task-run ids (32 hex digits) are the runs' UUIDs.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import attr
from openlineage.client import __version__ as client_version
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    DatasetFacet,
    RunFacet,
    dataset_version_dataset,
    error_message_run,
    job_type_job,
    parent_run,
    processing_engine_run,
    source_code_job,
    source_code_location_job,
)
from openlineage.client.naming.dataset import RemoteFileSystem
from openlineage.client.serde import Serde

from ledgerflow._version import __version__
from ledgerflow.provenance.run_facts import FileFact, RunFacts, TaskFact, TaskRunFact

__all__ = ["PRODUCER", "EventBuilder", "run_events", "to_json"]

PRODUCER = f"urn:ledgerflow:{__version__}"
FACETS_SCHEMA = "urn:ledgerflow:openlineage-facets:1"
_END = {"done": RunState.COMPLETE, "cached": RunState.COMPLETE, "failed": RunState.FAIL,
        "skipped": RunState.ABORT, "interrupted": RunState.ABORT}
_RUN_END = {"done": RunState.COMPLETE, "failed": RunState.FAIL, "interrupted": RunState.ABORT}


@attr.define
class LedgerflowFileDatasetFacet(DatasetFacet):
    """A file as the ledger knows it."""

    hashAlgorithm: str
    contentHash: str
    size: int | None = attr.field(default=None)
    ledgerHash: str | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return f"{FACETS_SCHEMA}#/$defs/LedgerflowFileDatasetFacet"


@attr.define
class LedgerflowTaskRunFacet(RunFacet):
    """What the ledger says of a task run beyond the run state."""

    status: str
    attempt: int
    taskHash: str
    callHash: str | None = attr.field(default=None)
    worker: str | None = attr.field(default=None)
    cachedFrom: str | None = attr.field(default=None)
    _additional_skip_redact: ClassVar[list[str]] = ["status", "attempt", "taskHash", "callHash"]

    @staticmethod
    def _get_schema() -> str:
        return f"{FACETS_SCHEMA}#/$defs/LedgerflowTaskRunFacet"


@attr.define
class LedgerflowRunFacet(RunFacet):
    """Where and by whom a run ran."""

    host: str | None = attr.field(default=None)
    user: str | None = attr.field(default=None)
    executor: str | None = attr.field(default=None)
    gitCommit: str | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return f"{FACETS_SCHEMA}#/$defs/LedgerflowRunFacet"


def run_uuid(ident: str) -> str:
    """The OpenLineage runId (a UUID) of a run or task run id."""
    try:
        return str(uuid.UUID(hex=ident))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:ledgerflow:run:{ident}"))


def _time(moment: datetime | None, fallback: datetime) -> str:
    return (moment or fallback).astimezone(UTC).isoformat()


def to_json(event: RunEvent) -> str:
    """One event as the JSON openlineage-python sends."""
    text: str = Serde.to_json(event)
    return text


@cache
def _located(root: str, module: str, function: str) -> str | None:
    """The project-relative file of ``module`` that defines ``function``, if any."""
    base = Path(root)
    last = module.rsplit(".", 1)[-1]
    candidates = [base / (module.replace(".", "/") + ".py"),
                  base / module.replace(".", "/") / "__init__.py", base / f"{last}.py"]
    for pattern in (f"*/{last}.py", f"*/*/{last}.py"):
        candidates += sorted(base.glob(pattern))[:50]
    for path in candidates:
        try:
            if path.is_file() and re.search(rf"^\s*(async\s+)?def\s+{re.escape(function)}\s*\(",
                                            path.read_text(encoding="utf-8"), re.M):
                return path.relative_to(base).as_posix()
        except (OSError, UnicodeDecodeError, ValueError):
            continue
    return None


@cache
def _checkout(root: str) -> tuple[Path, str | None, str | None] | None:
    """The git work tree holding the project, its branch and origin (see ``git_work_tree``)."""
    from ledgerflow.engine.runinfo import git_work_tree

    return git_work_tree(Path(root))


class EventBuilder:
    """The events of one run, from its ledger facts."""

    def __init__(self, namespace: str, root: Path) -> None:
        self.namespace = namespace
        self.root = root
        self.jobs: dict[str, str] = {}  # task run id -> its job name (parents' names)

    # -- pieces --------------------------------------------------------------------------

    def _dataset(self, f: FileFact, host: str, kind: type[Any]) -> Any:
        path = f.path if os.path.isabs(f.path) else os.path.normpath(self.root / f.path)
        naming = RemoteFileSystem(host=host, path=path)
        facets = {
            "version": dataset_version_dataset.DatasetVersionDatasetFacet(
                datasetVersion=f.content_hash, producer=PRODUCER),
            "ledgerflow_file": LedgerflowFileDatasetFacet(
                hashAlgorithm="blake2b-160", contentHash=f.content_hash, size=f.size,
                ledgerHash=f.value_hash, producer=PRODUCER),
        }
        dataset = kind(namespace=naming.get_namespace(), name=naming.get_name(), facets=facets)
        return dataset

    def _inputs(self, files: Iterable[FileFact], host: str) -> list[InputDataset]:
        return [self._dataset(f, host, InputDataset) for f in files]

    def _outputs(self, files: Iterable[FileFact], host: str) -> list[OutputDataset]:
        return [self._dataset(f, host, OutputDataset) for f in files]

    def _job(self, name: str, task: TaskFact | None, job_type: str, run: RunFacts) -> Job:
        facets: dict[str, Any] = {"jobType": job_type_job.JobTypeJobFacet(
            processingType="BATCH", integration="LEDGERFLOW", jobType=job_type, producer=PRODUCER)}
        if task is not None and task.source:
            facets["sourceCode"] = source_code_job.SourceCodeJobFacet(
                language="python", sourceCode=task.source, producer=PRODUCER)
            function = task.name.rsplit(".", 1)[-1]
            where = _located(str(self.root), task.module, function) if task.module else None
            target = (self.root / where if where else self.root).resolve()
            checkout = _checkout(str(self.root)) if run.code_version else None
            path, repo, branch = where, None, None
            if checkout is not None:
                top, branch, origin = checkout
                repo = origin or top.as_uri()
                try:
                    path = target.relative_to(top).as_posix() if where else None
                except ValueError:
                    pass
            facets["sourceCodeLocation"] = source_code_location_job.SourceCodeLocationJobFacet(
                type="git" if run.code_version else "file", url=target.as_uri(),
                repoUrl=repo, path=path, version=run.code_version, branch=branch,
                producer=PRODUCER)
        return Job(namespace=self.namespace, name=name, facets=facets)

    def _entry_task(self, run: RunFacts) -> TaskFact | None:
        return next((t for t in run.tasks.values() if t.name == run.entry_task), None)

    # -- the run ---------------------------------------------------------------------------

    def run_start(self, run: RunFacts) -> RunEvent:
        facets: dict[str, Any] = {
            "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
                version=run.library_version or __version__, name="ledgerflow",
                openlineageAdapterVersion=client_version, producer=PRODUCER),
            "ledgerflow_run": LedgerflowRunFacet(host=run.host, user=run.user,
                                                 executor=run.executor, gitCommit=run.code_version,
                                                 producer=PRODUCER),
        }
        return RunEvent(eventType=RunState.START, eventTime=_time(run.started_at, run.started_at),
                        run=Run(runId=run_uuid(run.id), facets=facets),
                        job=self._job(run.entry_task, None, "DAG", run),  # its tasks come later
                        producer=PRODUCER)

    def run_end(self, run: RunFacts) -> RunEvent | None:
        state = _RUN_END.get(run.status)
        if state is None:
            return None
        facets: dict[str, Any] = {}
        failed = [t for t in run.task_runs if t.status == "failed"]
        if state == RunState.FAIL and failed:
            first = failed[0]
            facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=f"{len(failed)} task run(s) failed; first: {first.task_name}: "
                        f"{first.exception_type}: {first.exception_message or ''}",
                programmingLanguage="python", stackTrace=first.traceback, producer=PRODUCER)
        host = run.host or "localhost"
        roots = run.root_task_runs()
        inputs = self._inputs(_unique(f for t in roots for f in t.files_read()), host)
        outputs = self._outputs(run.result.files if run.result is not None and state == RunState.COMPLETE
                                else (), host)
        return RunEvent(eventType=state, eventTime=_time(run.ended_at, run.started_at),
                        run=Run(runId=run_uuid(run.id), facets=facets),
                        job=self._job(run.entry_task, self._entry_task(run), "DAG", run),  # source
                        inputs=inputs, outputs=outputs, producer=PRODUCER)

    # -- task runs -------------------------------------------------------------------------

    def task_run_events(self, run: RunFacts, task_run: TaskRunFact, task: TaskFact | None,
                        roots: set[str], *, start: bool, end: bool) -> list[RunEvent]:
        """START (``start``) and the end event (``end``, when the task run has ended)."""
        self.jobs[task_run.id] = task_run.task_name
        if task_run.parent_id and task_run.parent_id not in roots and task_run.parent_id in self.jobs:
            parent_id, parent_job = task_run.parent_id, self.jobs[task_run.parent_id]
        else:
            parent_id, parent_job = run.id, run.entry_task
        parent = parent_run.ParentRunFacet(
            run=parent_run.Run(runId=run_uuid(parent_id)),
            job=parent_run.Job(namespace=self.namespace, name=parent_job),
            root=parent_run.Root(run=parent_run.RootRun(runId=run_uuid(run.id)),
                                 job=parent_run.RootJob(namespace=self.namespace, name=run.entry_task)),
            producer=PRODUCER)
        job = self._job(task_run.task_name, task, "TASK", run)  # its source: on START only
        bare = self._job(task_run.task_name, None, "TASK", run)
        host = run.host or "localhost"
        inputs = self._inputs(task_run.files_read(), host)
        events = []
        began = task_run.started_at or task_run.ended_at or run.started_at
        if start:
            events.append(RunEvent(
                eventType=RunState.START, eventTime=_time(began, run.started_at),
                run=Run(runId=run_uuid(task_run.id), facets={"parent": parent}), job=job,
                inputs=inputs, producer=PRODUCER))
        state = _END.get(task_run.status)
        if end and state is not None:
            facets: dict[str, Any] = {
                "parent": parent,
                "ledgerflow_taskRun": LedgerflowTaskRunFacet(
                    status=task_run.status, attempt=task_run.attempt, taskHash=task_run.task_hash,
                    callHash=task_run.call_hash, worker=task_run.worker,
                    cachedFrom=task_run.cached_from, producer=PRODUCER),
            }
            if state == RunState.FAIL:
                facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                    message=f"{task_run.exception_type}: {task_run.exception_message or ''}",
                    programmingLanguage="python", stackTrace=task_run.traceback, producer=PRODUCER)
            outputs = self._outputs(task_run.files_written() if state == RunState.COMPLETE else (),
                                    host)
            events.append(RunEvent(
                eventType=state, eventTime=_time(task_run.ended_at or began, run.started_at),
                run=Run(runId=run_uuid(task_run.id), facets=facets), job=bare, inputs=inputs,
                outputs=outputs, producer=PRODUCER))
        return events


def _unique(files: Iterable[FileFact]) -> list[FileFact]:
    return list({f.value_hash: f for f in files}.values())


def run_events(run: RunFacts, namespace: str, root: Path) -> list[RunEvent]:
    """Every event of a recorded run, in time order (what a live run emitted)."""
    builder = EventBuilder(namespace, root)
    roots = {t.id for t in run.root_task_runs()}
    events: list[tuple[str, int, RunEvent]] = []
    start = builder.run_start(run)
    events.append((start.eventTime, 0, start))
    for task_run in run.task_runs:
        if task_run.id in roots or task_run.status == "pending":
            continue
        for event in builder.task_run_events(run, task_run, run.tasks.get(task_run.task_hash),
                                             roots, start=True, end=True):
            events.append((event.eventTime, 1 if event.eventType == RunState.START else 2, event))
    end = builder.run_end(run)
    if end is not None:
        events.append((end.eventTime, 3, end))
    return [e for _, _, e in sorted(events, key=lambda item: (item[0], item[1]))]
