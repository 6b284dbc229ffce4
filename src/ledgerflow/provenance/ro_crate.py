"""A run as a Provenance Run Crate (Workflow Run RO-Crate, step-level provenance), built with
the ``rocrate`` package (the ``rocrate`` extra).

Profile: https://w3id.org/ro/wfrun/provenance/0.5. The crate holds:

* the workflow (the crate's ``mainEntity``, a ``File``/``SoftwareSourceCode``/
  ``ComputationalWorkflow``/``HowTo``): ``workflow/<module>.py``, the source of every task
  the run used, as the ledger recorded it when the run started (so the crate says what ran
  even when the project's files changed since);
* each task the workflow called as a tool (``SoftwareApplication``, its inputs and output as
  ``FormalParameter``) and a ``HowToStep`` pointing at it;
* the run as a ``CreateAction`` of the workflow, each task run as a ``CreateAction`` of its
  tool (``object``: the argument values, ``result``: the value it returned, ``startTime``,
  ``endTime``, ``actionStatus``, ``error``), each tied to its step by a ``ControlAction``,
  all ``object`` of the ledgerflow ``OrganizeAction``;
* files as ``File`` entities identified by their ledger hash (path and content), with their
  BLAKE2b content hash and size; ``include_files=True`` embeds those whose bytes on disk
  still have the recorded content hash (at their project-relative path); other values as
  ``PropertyValue`` (their preview).
"""

from __future__ import annotations

import io
import mimetypes
import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledgerflow.errors import MissingExtraError
from ledgerflow.hashing import hash_bytes
from ledgerflow.provenance.run_facts import FileFact, RunFacts, TaskFact, TaskRunFact, ValueFact

if TYPE_CHECKING:
    from rocrate.rocrate import ROCrate

__all__ = ["PROFILES", "build_crate"]

WFRUN = "https://w3id.org/ro/wfrun"
#: The profiles the crate conforms to: (permalink, name, version)
PROFILES = (
    (f"{WFRUN}/process/0.5", "Process Run Crate", "0.5"),
    (f"{WFRUN}/workflow/0.5", "Workflow Run Crate", "0.5"),
    (f"{WFRUN}/provenance/0.5", "Provenance Run Crate", "0.5"),
    ("https://w3id.org/workflowhub/workflow-ro-crate/1.0", "Workflow RO-Crate", "1.0"),
)
_COMPUTATIONAL_WORKFLOW = "https://bioschemas.org/profiles/ComputationalWorkflow/1.0-RELEASE"
#: Tools (tasks) are named by their definition hash, an absolute URI as the profile asks.
TASK_URN = "urn:ledgerflow:task:"
_STATUS = {"done": "CompletedActionStatus", "cached": "CompletedActionStatus",
           "failed": "FailedActionStatus", "interrupted": "FailedActionStatus",
           "skipped": "FailedActionStatus", "running": "ActiveActionStatus",
           "pending": "PotentialActionStatus"}
_TYPES = {"int": "Integer", "float": "Float", "bool": "Boolean", "str": "Text"}


def _rocrate() -> Any:
    try:
        from rocrate import rocrate
    except ImportError:
        raise MissingExtraError("the Workflow Run RO-Crate export", "rocrate", "rocrate") from None
    return rocrate


def _when(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="milliseconds")


def _short(type_name: str) -> str:
    return type_name.rsplit(".", 1)[-1]


def _additional_type(value: ValueFact) -> str:
    if value.files:  # a file, or files in a list or dict (multipleValues)
        return "File"
    return _TYPES.get(_short(value.type_name), "PropertyValue")


class _Builder:
    def __init__(self, facts: RunFacts, root: Path, include_files: bool) -> None:
        rocrate = _rocrate()
        from rocrate.model.computerlanguage import ComputerLanguage
        from rocrate.model.contextentity import ContextEntity
        from rocrate.model.softwareapplication import SoftwareApplication

        self.ContextEntity = ContextEntity
        self.SoftwareApplication = SoftwareApplication
        self.ComputerLanguage = ComputerLanguage
        self.crate: ROCrate = rocrate.ROCrate(version="1.1")
        self.facts = facts
        self.root = root
        self.include_files = include_files
        self.entities: dict[str, Any] = {}
        self.parameters: dict[str, Any] = {}
        self.agent: Any = None

    # -- data --------------------------------------------------------------------------

    def _file(self, f: FileFact) -> Any:
        key = f"file:{f.value_hash}"
        if key in self.entities:
            return self.entities[key]
        properties: dict[str, Any] = {
            "name": f.path,
            "identifier": f.value_hash,
            "contentSize": f.size,
            "description": f"content hash (BLAKE2b-160) {f.content_hash}",
        }
        properties = {k: v for k, v in properties.items() if v is not None}
        source = self._on_disk(f) if self.include_files else None
        if source is not None:
            kind = mimetypes.guess_type(f.path)[0] or "application/octet-stream"
            entity = self.crate.add_file(str(source), dest_path=_inside(f.path),
                                         properties={**properties, "encodingFormat": kind})
        else:
            entity = self.crate.add(self.ContextEntity(
                self.crate, f"#file-{f.value_hash}", properties={"@type": "File", **properties}))
        self.entities[key] = entity
        return entity

    def _on_disk(self, f: FileFact) -> Path | None:
        from ledgerflow.hashing import file_digest

        path = Path(f.path) if os.path.isabs(f.path) else self.root / f.path
        try:
            return path if path.is_file() and file_digest(path) == f.content_hash else None
        except OSError:
            return None

    def _values(self, value: ValueFact, name: str) -> list[Any]:
        """The entities standing for a value: its files, else one PropertyValue."""
        if value.files:
            return [self._file(f) for f in value.files]
        key = f"value:{value.hash}:{name}"
        if key not in self.entities:
            self.entities[key] = self.crate.add(self.ContextEntity(
                self.crate, f"#value-{value.hash}-{_slug(name)}",
                properties={"@type": "PropertyValue", "name": name,
                            "value": value.preview if value.preview is not None else "",
                            "identifier": value.hash}))
        return [self.entities[key]]

    # -- definitions -------------------------------------------------------------------

    def _parameter(self, owner: str, direction: str, name: str, value: ValueFact) -> Any:
        ident = f"{owner}-{direction}-{_slug(name)}"
        if ident not in self.parameters:
            self.parameters[ident] = self.crate.add_formal_parameter(
                name=name, additionalType=_additional_type(value), identifier=ident,
                properties={"multipleValues": len(value.files) > 1} if value.files else None)
        return self.parameters[ident]

    def _link(self, parameter: Any, entities: Iterable[Any]) -> None:
        for entity in entities:
            if parameter not in _as_list(entity.get("exampleOfWork")):
                entity.append_to("exampleOfWork", parameter)
            if entity not in _as_list(parameter.get("workExample")):
                parameter.append_to("workExample", entity)

    def _tool(self, task: TaskFact | None, name: str, task_hash: str) -> Any:
        key = f"tool:{task_hash}"
        if key not in self.entities:
            properties: dict[str, Any] = {"name": name, "identifier": task_hash}
            if task is not None and task.version:
                properties["softwareVersion"] = task.version
            if task is not None and task.module:
                properties["description"] = f"task {name} of module {task.module}"
            self.entities[key] = self.crate.add(self.SoftwareApplication(
                self.crate, f"{TASK_URN}{task_hash}", properties=properties))
        return self.entities[key]

    def _workflow(self) -> Any:
        facts = self.facts
        module = _module(facts)
        python = self.crate.add(self.ComputerLanguage(self.crate, "#python", properties={
            "name": "Python", "url": {"@id": "https://www.python.org/"},
            "identifier": {"@id": "https://www.python.org/"}}))
        source = _sources(facts)
        workflow = self.crate.add_workflow(
            io.StringIO(source), dest_path=f"workflow/{module}.py", main=True,
            lang=python, properties={
                "encodingFormat": "text/x-python",
                "@type": ["File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo"],
                "name": facts.entry_task,
                "description": f"the tasks of ledgerflow run {facts.id}",
                "version": facts.code_version or hash_bytes(source.encode()),
                "conformsTo": {"@id": _COMPUTATIONAL_WORKFLOW}})
        return workflow

    # -- actions -----------------------------------------------------------------------

    def build(self) -> ROCrate:
        facts, crate = self.facts, self.crate
        for uri, name, version in PROFILES:
            crate.add(self.ContextEntity(crate, uri, properties={
                "@type": "CreativeWork", "name": name, "version": version}))
        crate.root_dataset["conformsTo"] = [{"@id": uri} for uri, _, _ in PROFILES]
        crate.name = f"ledgerflow run {facts.id}"
        crate.description = (f"Run {facts.id} of {facts.entry_task} ({facts.status}), with the "
                             "provenance of each task run, exported from the ledgerflow ledger.")
        crate.datePublished = facts.ended_at or facts.started_at
        crate.license = "notspecified"
        workflow = self._workflow()
        engine = crate.add(self.SoftwareApplication(crate, "urn:ledgerflow:engine", properties={
            "name": "ledgerflow", "softwareVersion": facts.library_version or ""}))
        self.agent = None
        if facts.user:
            self.agent = crate.add(self.ContextEntity(crate, f"#user-{_slug(facts.user)}",
                                                      properties={"@type": "Person",
                                                                  "name": facts.user}))

        roots = facts.root_task_runs()
        root_ids = {t.id for t in roots}
        run_action = crate.add_action(workflow, identifier=f"#run-{facts.id}", properties={
            "name": f"run {facts.id} of {facts.entry_task}",
            "startTime": _when(facts.started_at), "endTime": _when(facts.ended_at),
            "actionStatus": f"http://schema.org/{_STATUS.get(facts.status, 'FailedActionStatus')}",
        })
        run_action["description"] = (f"ledgerflow run {facts.id} of {facts.entry_task}"
                                     f" ({facts.status})"
                                     + (f", git commit {facts.code_version}" if facts.code_version else ""))
        if self.agent is not None:
            run_action["agent"] = self.agent
        crate.root_dataset.append_to("mentions", run_action)
        crate.add_file(io.StringIO(_readme(facts)), dest_path="README.md", properties={
            "name": "About this crate", "about": {"@id": "./"},
            "encodingFormat": "text/markdown"})
        for root in roots:
            for name, value in root.inputs:
                entities = self._values(value, name)
                self._link(self._parameter("#workflow", "in", name, value), entities)
                workflow.append_to("input", self.parameters[f"#workflow-in-{_slug(name)}"])
                for e in entities:
                    run_action.append_to("object", e)
            if root.output is not None:
                entities = self._values(root.output, "result")
                parameter = self._parameter("#workflow", "out", "result", root.output)
                self._link(parameter, entities)
                workflow.append_to("output", parameter)
                for e in entities:
                    run_action.append_to("result", e)
        _dedupe(workflow, "input", "output")
        _dedupe(run_action, "object", "result")

        organize = crate.add_action(engine, identifier=f"#organize-{facts.id}", properties={
            "@type": "OrganizeAction", "name": f"ledgerflow orchestration of run {facts.id}",
            "startTime": _when(facts.started_at), "endTime": _when(facts.ended_at)})
        organize["result"] = run_action
        steps: dict[str, Any] = {}
        for task_run in facts.task_runs:
            if task_run.id in root_ids:
                continue
            action = self._task_run(task_run, steps, workflow)
            control = crate.add(self.ContextEntity(crate, f"#control-{task_run.id}", properties={
                "@type": "ControlAction", "name": f"orchestrate {task_run.task_name}"}))
            control["instrument"] = steps[task_run.task_hash]
            control["object"] = action
            organize.append_to("object", control)
        for entity in crate.get_entities():  # RO-Crate 1.1: one value, not a one-item list
            properties = entity.properties()
            for key, value in list(properties.items()):
                if not key.startswith("@") and isinstance(value, list) and len(value) == 1:
                    properties[key] = value[0]
        return crate

    def _task_run(self, task_run: TaskRunFact, steps: dict[str, Any], workflow: Any) -> Any:
        crate = self.crate
        tool = self._tool(self.facts.tasks.get(task_run.task_hash), task_run.task_name,
                          task_run.task_hash)
        if task_run.task_hash not in steps:
            step = crate.add(self.ContextEntity(crate, f"#step-{task_run.task_hash}", properties={
                "@type": "HowToStep", "name": task_run.task_name, "position": str(len(steps))}))
            step["workExample"] = tool
            steps[task_run.task_hash] = step
            workflow.append_to("step", step)
            workflow.append_to("hasPart", tool)
        properties: dict[str, Any] = {
            "name": f"{task_run.task_name} (task run {task_run.id})",
            "identifier": task_run.id,
            "actionStatus": f"http://schema.org/{_STATUS.get(task_run.status, 'FailedActionStatus')}",
        }
        if task_run.started_at is not None:
            properties["startTime"] = _when(task_run.started_at)
        if task_run.ended_at is not None:
            properties["endTime"] = _when(task_run.ended_at)
        if task_run.exception_type:
            properties["error"] = f"{task_run.exception_type}: {task_run.exception_message or ''}"
        properties["description"] = (
            f"result served from the cache of run {task_run.cached_from}" if task_run.cached_from
            else f"task run {task_run.id} of {task_run.task_name} (attempt {task_run.attempt}, "
            f"{task_run.status}" + (f", on {task_run.worker}" if task_run.worker else "") + ")")
        action = crate.add_action(tool, identifier=f"#task-run-{task_run.id}", properties=properties)
        if self.agent is not None:
            action["agent"] = self.agent
        crate.root_dataset.append_to("mentions", action)
        owner = f"#task-{task_run.task_hash}"  # its parameters: #task-<hash>-in-<name>, -out-result
        for name, value in task_run.inputs:
            entities = self._values(value, name)
            parameter = self._parameter(owner, "in", name, value)
            self._link(parameter, entities)
            tool.append_to("input", parameter)
            for e in entities:
                action.append_to("object", e)
        if task_run.output is not None:
            entities = self._values(task_run.output, "result")
            parameter = self._parameter(owner, "out", "result", task_run.output)
            self._link(parameter, entities)
            tool.append_to("output", parameter)
            for e in entities:
                action.append_to("result", e)
        _dedupe(tool, "input", "output")
        _dedupe(action, "object", "result")
        return action


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _dedupe(entity: Any, *keys: str) -> None:
    for key in keys:
        items = _as_list(entity.get(key))
        if len(items) > 1:
            unique = list({item.id: item for item in items}.values())
            entity[key] = unique


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)


def _inside(path: str) -> str:
    """Where a file goes in the crate: its project-relative path (absolute ones under
    ``files/``)."""
    clean = Path(path)
    if clean.is_absolute() or ".." in clean.parts:
        return "files/" + "/".join(p for p in clean.parts if p not in ("/", ".."))
    return clean.as_posix()


def _module(facts: RunFacts) -> str:
    entry = next((t for t in facts.tasks.values() if t.name == facts.entry_task), None)
    if entry is not None and entry.module:
        return _slug(entry.module.rsplit(".", 1)[-1])
    return _slug(facts.entry_task.rsplit(".", 1)[0] or "workflow")


def _sources(facts: RunFacts) -> str:
    """The recorded source of each task the run used, grouped by module."""
    lines = [f'"""The tasks of ledgerflow run {facts.id} ({facts.entry_task}), as recorded in '
             'the ledger."""', ""]
    for task in sorted(facts.tasks.values(), key=lambda t: (t.module or "", t.name)):
        lines.append(f"# {task.name} (module {task.module or '?'}, version {task.version or '-'}, "
                     f"definition {task.hash})")
        lines.append((task.source or "# (source not recorded)").rstrip())
        lines.append("")
    return "\n".join(lines) + "\n"


def _readme(facts: RunFacts) -> str:
    return (f"# ledgerflow run {facts.id}\n\n"
            f"Run of `{facts.entry_task}` ({facts.status}), started {_when(facts.started_at)}"
            f" on {facts.host or 'an unknown host'}, exported from the ledgerflow ledger as a "
            "Provenance Run Crate (https://w3id.org/ro/wfrun/provenance/0.5).\n\n"
            "`ro-crate-metadata.json` holds one CreateAction per task run with the values and "
            f"files it used and made; `workflow/` holds the recorded source of its tasks.\n")


def build_crate(facts: RunFacts, root: Path, *, include_files: bool = False) -> ROCrate:
    """The Provenance Run Crate of a run (``root``: the project directory, where relative
    file paths point)."""
    return _Builder(facts, root, include_files).build()
