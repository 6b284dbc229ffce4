"""SQL views over the ledger for the common provenance questions.

The views are plain SQL that SQLite and PostgreSQL both understand, so a user can ask them
from ``sqlite3``, ``psql`` or a BI tool without ledgerflow installed::

    SELECT task_name, status, started_at FROM lf_latest_task_run WHERE task_name = 'align';
    SELECT path, task_name, run_id FROM lf_file_origin WHERE path LIKE '%.vcf';
    SELECT run_id, task_name, exception_type, exception_message FROM lf_failed_task_run;

The framework migration creates them; :func:`create_views` does the same on a connection
(tests, or a ledger made with ``metadata.create_all``).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text


@dataclass(frozen=True)
class View:
    """One view: its name, what it answers, its columns (name, meaning) and its query."""

    name: str
    description: str
    columns: tuple[tuple[str, str], ...]
    select: str

    @property
    def create_sql(self) -> str:
        return f"CREATE VIEW {self.name} AS\n{self.select.strip()}"

    @property
    def drop_sql(self) -> str:
        return f"DROP VIEW IF EXISTS {self.name}"


LATEST_TASK_RUN = View(
    name="lf_latest_task_run",
    description=(
        "The latest task run of each cache key (task hash + arguments hash): the one from "
        "the most recently started run, last attempt first. Answers 'what happened the last "
        "time this call was asked for?'."
    ),
    columns=(
        ("task_hash", "hash of the task's code (lf_task_def.hash)"),
        ("args_hash", "hash of the call's arguments (lf_argument.args_hash)"),
        ("call_hash", "the completed call (lf_call.hash); NULL unless the task run succeeded"),
        ("task_name", "name of the task"),
        ("task_run_id", "the task run (lf_task_run.id)"),
        ("run_id", "the run it belongs to (lf_run.id)"),
        ("status", "pending, running, done, cached, failed, skipped or interrupted"),
        ("attempt", "attempt number (retries count up from 1)"),
        ("started_at", "when the task run started"),
        ("ended_at", "when it ended"),
        ("duration", "seconds of execution"),
        ("value_hash", "the result (lf_value.hash), when there is one"),
        ("cached_from", "for a cache hit, the run that computed the result"),
        ("run_started_at", "when the run started (the ordering key)"),
    ),
    select="""
SELECT task_hash, args_hash, call_hash, task_name, task_run_id, run_id, status, attempt,
       started_at, ended_at, duration, value_hash, cached_from, run_started_at
FROM (
    SELECT tr.task_hash, tr.args_hash, tr.call_hash, tr.task_name, tr.id AS task_run_id,
           tr.run_id, tr.status, tr.attempt, tr.started_at, tr.ended_at, tr.duration,
           tr.value_hash, tr.cached_from, r.started_at AS run_started_at,
           ROW_NUMBER() OVER (
               PARTITION BY tr.task_hash, tr.args_hash
               ORDER BY r.started_at DESC, tr.attempt DESC, tr.id DESC
           ) AS recency
    FROM lf_task_run tr
    JOIN lf_run r ON r.id = tr.run_id
) ranked
WHERE recency = 1
""",
)

# COALESCE(status, '') = 'done' is status = 'done' that no index can serve: SQLite would
# otherwise drive these joins from the (status, started_at) index and scan every executed
# task run for each file; through call_hash they stay index lookups, and a filter on the
# file columns reaches lf_file's indexes.
_ROUTES = """EXISTS (
    SELECT 1 FROM lf_call_edge ce JOIN lf_call child ON child.hash = ce.child_hash
    WHERE ce.parent_hash = c.hash AND child.value_hash = c.value_hash
)"""
_MADE_DIRECTLY = """EXISTS (
    SELECT 1 FROM lf_call c2
    JOIN lf_task_run t2 ON t2.call_hash = c2.hash AND COALESCE(t2.status, '') = 'done'
    WHERE c2.value_hash = f.hash
)"""
_MADE_IN_CONTAINER = """EXISTS (
    SELECT 1 FROM lf_value_edge e2
    JOIN lf_call c2 ON c2.value_hash = e2.parent_hash
    JOIN lf_task_run t2 ON t2.call_hash = c2.hash AND COALESCE(t2.status, '') = 'done'
    WHERE e2.child_hash = f.hash
)"""
_FILE_COLUMNS = "f.hash AS file_hash, f.path, f.content_hash, f.size, f.mtime"
_PRODUCER_COLUMNS = (
    "tr.id AS task_run_id, tr.task_name, tr.call_hash, tr.ended_at AS produced_at,\n"
    "       r.id AS run_id, r.status AS run_status, r.started_at AS run_started_at"
)

FILE_ORIGIN = View(
    name="lf_file_origin",
    description=(
        "Every recorded file with the task run and run that produced it: the executed task "
        "run whose result is the file or else, when none is, whose result (a list, dict...) "
        "holds it directly. Calls that only pass on a child call's result are left out. A "
        "file no task produced (an input) appears once with NULL producer columns; a file "
        "produced by several runs appears once per producing task run. Filters on the file "
        "columns (say `WHERE path = ...`) use the indexes."
    ),
    columns=(
        ("file_hash", "hash of the File value (lf_file.hash = lf_value.hash)"),
        ("path", "path of the file as recorded"),
        ("content_hash", "hash of the file's content"),
        ("size", "size in bytes"),
        ("mtime", "modification time (seconds since the epoch)"),
        ("task_run_id", "the producing task run, NULL for an input file"),
        ("task_name", "the producing task"),
        ("call_hash", "the producing call"),
        ("produced_at", "when the producing task run ended"),
        ("run_id", "the run of the producing task run"),
        ("run_status", "status of that run"),
        ("run_started_at", "when that run started"),
    ),
    select=f"""
SELECT {_FILE_COLUMNS},
       {_PRODUCER_COLUMNS}
FROM lf_file f
JOIN lf_call c ON c.value_hash = f.hash
JOIN lf_task_run tr ON tr.call_hash = c.hash AND COALESCE(tr.status, '') = 'done'
JOIN lf_run r ON r.id = tr.run_id
WHERE NOT {_ROUTES}
UNION ALL
SELECT {_FILE_COLUMNS},
       {_PRODUCER_COLUMNS}
FROM lf_file f
JOIN lf_value_edge e ON e.child_hash = f.hash
JOIN lf_call c ON c.value_hash = e.parent_hash
JOIN lf_task_run tr ON tr.call_hash = c.hash AND COALESCE(tr.status, '') = 'done'
JOIN lf_run r ON r.id = tr.run_id
WHERE NOT {_ROUTES}
  AND NOT {_MADE_DIRECTLY}
UNION ALL
SELECT {_FILE_COLUMNS},
       NULL, NULL, NULL, NULL, NULL, NULL, NULL
FROM lf_file f
WHERE NOT {_MADE_DIRECTLY}
  AND NOT {_MADE_IN_CONTAINER}
""",
)

FAILED_TASK_RUN = View(
    name="lf_failed_task_run",
    description=(
        "Every failed task run with its exception, its task and its run: 'what failed last "
        "night, with which exception, on which worker?'."
    ),
    columns=(
        ("task_run_id", "the failed task run (lf_task_run.id)"),
        ("run_id", "its run (lf_run.id)"),
        ("task_name", "name of the task"),
        ("task_hash", "hash of the task's code"),
        ("args_hash", "hash of the call's arguments"),
        ("attempt", "attempt number"),
        ("worker", "where it ran"),
        ("exception_type", "qualified name of the exception class"),
        ("exception_message", "the exception's message"),
        ("traceback", "the formatted traceback"),
        ("started_at", "when the task run started"),
        ("ended_at", "when it failed"),
        ("duration", "seconds of execution"),
        ("entry_task", "the run's entry task"),
        ("run_status", "status of the run"),
        ("run_started_at", "when the run started"),
        ("host", "host the run was launched on"),
        ("run_user", "user who launched the run"),
    ),
    select="""
SELECT tr.id AS task_run_id, tr.run_id, tr.task_name, tr.task_hash, tr.args_hash, tr.attempt,
       tr.worker, tr.exception_type, tr.exception_message, tr.traceback, tr.started_at,
       tr.ended_at, tr.duration, r.entry_task, r.status AS run_status,
       r.started_at AS run_started_at, r.host, r."user" AS run_user
FROM lf_task_run tr
JOIN lf_run r ON r.id = tr.run_id
WHERE tr.status = 'failed'
""",
)

#: Every view, in creation order.
VIEWS: tuple[View, ...] = (LATEST_TASK_RUN, FILE_ORIGIN, FAILED_TASK_RUN)


def create_views(connection: Connection) -> None:
    """Create (or re-create) every view on a connection, inside its transaction."""
    for view in VIEWS:
        connection.execute(text(view.drop_sql))
        connection.execute(text(view.create_sql))


def drop_views(connection: Connection) -> None:
    """Drop every view that exists."""
    for view in reversed(VIEWS):
        connection.execute(text(view.drop_sql))
