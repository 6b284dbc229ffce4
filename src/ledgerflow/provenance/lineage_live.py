"""A run's OpenLineage events, emitted while it runs, off its hot path.

:class:`LineageObserver` is a :class:`~ledgerflow.engine.RunObserver` that the API attaches
to a run when ``lineage: openlineage:`` is configured. Its methods start a thread and raise
a flag at the end; the thread does the work: every half second (longer when a read takes
long: it keeps to a tenth of the time) it reads the ledger, which the run's recorder flushes
every 0.3 s (SQLite WAL and PostgreSQL let it read while the run writes), builds the events with
:class:`~ledgerflow.provenance.openlineage.EventBuilder` (the builder the replay uses, so a
live run and ``export --openlineage`` say the same) and sends them through
openlineage-python's transport.

It never fails or stops a run: a transport that fails (a catalogue down, a file that cannot
be written) costs one warning, and the events after it are dropped (``ledgerflow export
--openlineage RUN --send`` sends them later). When the run ends, the thread sends what is left;
the run waits for it at most ``flush_timeout`` seconds.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from ledgerflow.config.settings import OpenLineageConfig, Settings
    from ledgerflow.engine.results import Failure, RunResult

__all__ = ["LineageObserver", "check_transport_type", "make_client", "make_transport"]

log = logging.getLogger("ledgerflow")

#: Seconds between two reads of the ledger while nothing wakes the thread.
POLL_INTERVAL = 0.5
#: A read of the ledger is followed by a pause of at least this many times its duration, so
#: the thread takes a tenth of the interpreter at most from a large run.
POLL_SHARE = 10
#: An HTTP transport's retries unless the configuration sets them: a catalogue that is down
#: is given up quickly (the events can be replayed).
HTTP_RETRY = {"total": 2, "connect": 1, "read": 1, "backoff_factor": 0.2,
              "status_forcelist": [500, 502, 503, 504], "allowed_methods": ["HEAD", "POST"]}


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to the ``sys.stderr`` of the moment (which a test or a notebook may swap)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.setStream(sys.stderr)
        super().emit(record)


def make_transport(config: dict[str, Any]) -> Any:
    """An openlineage-python transport from the ``transport:`` mapping."""
    from openlineage.client.transport import get_default_factory

    options = dict(config)
    kind = str(options.get("type", "")).lower()
    if kind == "http":
        options.setdefault("retry", HTTP_RETRY)
    if kind == "file":
        options.setdefault("append", True)
    if kind == "console":
        console = logging.getLogger("openlineage.client.transport.console")
        if not console.handlers:  # its events are INFO records: show them on stderr
            handler = _Stderr(sys.stderr)
            handler.setFormatter(logging.Formatter("%(message)s"))
            console.addHandler(handler)
            console.setLevel(logging.INFO)
            console.propagate = False
    return get_default_factory().create(options)


def check_transport_type(config: dict[str, Any]) -> None:
    """Refuse a ``transport:`` whose ``type`` names no openlineage-python transport (neither
    a registered name nor the importable dotted path of a ``Transport`` class), before a run
    starts: a misspelt type would otherwise cost the whole run's events."""
    from openlineage.client.transport import Transport, get_default_factory

    from ledgerflow.errors import ConfigError

    kind = str(config.get("type", ""))
    known = get_default_factory().transports
    if kind in known:
        return
    problem = "it is neither a transport name nor a Transport class's dotted path"
    if "." in kind:
        import importlib

        module, _, name = kind.rpartition(".")
        try:
            found = getattr(importlib.import_module(module), name)
        except Exception as exc:
            problem = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        else:
            if isinstance(found, type) and issubclass(found, Transport):
                return
            problem = "it is not a Transport class"
    raise ConfigError(
        f"lineage.openlineage.transport: cannot use the transport type {kind!r} ({problem})",
        hint=f"use one of {', '.join(sorted(known))} or a Transport class's dotted path")


def make_client(transport: Any, config: dict[str, Any] | None = None) -> Any:
    """An ``OpenLineageClient`` sending through ``transport`` (``config``: the client's own
    configuration, else its usual sources). Unlike the stock client it does not scan the
    process environment for every event when no ``facets.environment_variables`` are
    configured: the scan finds nothing then, and cost a sixth of each event's sending."""
    return _client_class()(transport=transport, config=config)


@cache
def _client_class() -> type:
    from openlineage.client import OpenLineageClient

    class Client(OpenLineageClient):  # type: ignore[misc]
        def _collect_environment_variables(self) -> dict[str, str]:
            if not self.config.facets.environment_variables:
                return {}
            collected: dict[str, str] = super()._collect_environment_variables()
            return collected

    return Client


class LineageObserver:
    """Emits a run's OpenLineage events from a background thread (see the module)."""

    def __init__(self, settings: Settings, config: OpenLineageConfig,
                 transport: Any | None = None) -> None:
        self.settings = settings
        self.config = config
        self._transport = transport
        self.run_id: str | None = None
        self._final = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent = 0
        self.dropped = 0
        self.failure: str | None = None
        # imported here, before the run starts, not by the thread while tasks run (imports
        # hold the interpreter lock)
        import openlineage.client  # noqa: F401

        import ledgerflow.provenance.openlineage  # noqa: F401

    # -- RunObserver: a flag only ---------------------------------------------------------

    def run_started(self, run_id: str, entry: str) -> None:
        self.run_id = run_id
        self._thread = threading.Thread(target=self._work, name="ledgerflow-openlineage",
                                        daemon=True)
        self._thread.start()

    def counts_changed(self, counts: dict[str, int], elapsed: float) -> None:
        pass  # the thread reads the ledger every POLL_INTERVAL seconds

    def task_failed(self, failure: Failure) -> None:
        pass

    def run_finished(self, result: RunResult) -> None:
        self._final.set()
        thread = self._thread
        if thread is None:
            return
        thread.join(self.config.flush_timeout)
        if thread.is_alive():
            log.warning("OpenLineage: events of run %s still unsent after %.0f s (flush_timeout); "
                        "`ledgerflow export --openlineage %s --send` sends them later",
                        (self.run_id or "")[:12], self.config.flush_timeout, (self.run_id or "")[:12])

    # -- the thread ----------------------------------------------------------------------

    def _send(self, event: Any) -> None:
        if self.failure is not None:
            self.dropped += 1
            return
        try:
            self._client.emit(event)
            self.sent += 1
        except Exception as exc:
            from ledgerflow.config.settings import hide_url_passwords

            detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            self.failure = hide_url_passwords(f"{type(exc).__name__}: {detail}")
            self.dropped += 1
            log.warning("OpenLineage: cannot send the events of run %s (%s); the run goes on "
                        "without them; `ledgerflow export --openlineage %s --send` sends them later",
                        (self.run_id or "")[:12], self.failure, (self.run_id or "")[:12])

    def _work(self) -> None:
        try:
            self._emit_all()
        except Exception:
            log.warning("OpenLineage: the event emitter stopped; the run goes on",
                        exc_info=True)

    def _emit_all(self) -> None:
        from ledgerflow.db import Database
        from ledgerflow.provenance.openlineage import EventBuilder

        assert self.run_id is not None
        try:
            transport = self._transport or make_transport(self.config.transport)
            self._client = make_client(transport)
        except Exception as exc:
            self.failure = f"{type(exc).__name__}: {exc}"
            log.warning("OpenLineage: cannot open the transport (%s); the run goes on without "
                        "events", self.failure)
            return
        builder = EventBuilder(self.config.namespace, self.settings.root)
        database = Database(self.settings, read_only=True)
        try:
            with database.engine().connect() as conn:
                self._follow(conn, builder)
        finally:
            database.dispose()
            try:
                self._client.close(1.0)
            except Exception:
                pass

    def _follow(self, conn: Connection, builder: Any) -> None:
        from sqlalchemy import select

        from ledgerflow.ledger import tables
        from ledgerflow.ledger.status import FINAL
        from ledgerflow.provenance.run_facts import read_run, read_task_runs, read_tasks

        run_id = self.run_id
        assert run_id is not None
        head = read_run(conn, run_id, task_runs=False)
        conn.rollback()
        self._send(builder.run_start(head))
        started: set[str] = set()
        ended: set[str] = set()
        roots: set[str] = set()
        t = tables.task_run.c
        pause = POLL_INTERVAL
        while True:
            self._final.wait(pause)  # woken early by the end of the run
            last = self._final.is_set()
            began = time.monotonic()
            rows = conn.execute(select(t.id, t.status, t.parent_id, t.task_name)
                                .where(t.run_id == run_id)).all()
            conn.rollback()  # a fresh snapshot at every read
            roots |= {r.id for r in rows if r.parent_id is None and r.task_name == head.entry_task}
            changed = [r.id for r in rows if r.id not in roots and r.status != "pending"
                       and (r.id not in started or (r.status in FINAL and r.id not in ended))]
            if changed:
                facts = read_task_runs(conn, run_id, changed)
                tasks = read_tasks(conn, {f.task_hash for f in facts} - set(head.tasks))
                conn.rollback()
                head.tasks.update(tasks)
                for fact in facts:
                    final = fact.status in FINAL
                    for event in builder.task_run_events(head, fact, head.tasks.get(fact.task_hash),
                                                         roots, start=fact.id not in started,
                                                         end=final):
                        self._send(event)
                    started.add(fact.id)
                    if final:
                        ended.add(fact.id)
            if last:
                break
            pause = max(POLL_INTERVAL, POLL_SHARE * (time.monotonic() - began))
        whole = read_run(conn, run_id)
        conn.rollback()
        end = builder.run_end(whole)
        if end is not None:
            self._send(end)
