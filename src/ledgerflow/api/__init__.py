"""What the CLI and the dashboard call: plain functions over the project's settings.

- :mod:`ledgerflow.api.running`: running and explaining task calls, opening a ledger;
- :mod:`ledgerflow.api.reading`: ``runs``, ``log``, ``show``, ``query``, ``tag``, ``dataflow``;
- :mod:`ledgerflow.api.records`: ``export``, ``import_``, ``push``, ``pull``, ``prune``, the cache;
- :mod:`ledgerflow.api.browsing`: what the dashboard adds (keyset pages, a run's graph and
  timeline, log pages, why a task run ran, cache history);
- :mod:`ledgerflow.api.database`: migrations (``upgrade``, ``downgrade`` and what it would
  drop, ``make_migrations``, ``check``, ...);
- :mod:`ledgerflow.api.checks`: what a run checks before anything is recorded.

Every result has a ``to_json()`` (or is a list of such records): that is the command's
``--json`` and the dashboard's JSON, one documented shape (docs/provenance.md). Names are
imported on first use, so ``import ledgerflow.api`` loads neither the engine nor SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ledgerflow.api.browsing import (
        cache_per_day,
        log_page,
        open_reader,
        run_graph,
        run_id,
        run_timeline,
        runs_page,
        runs_per_day,
        stale_seconds,
        task_run_files,
        task_run_info,
        why,
    )
    from ledgerflow.api.database import DowngradePlan, plan_downgrade
    from ledgerflow.api.reading import (
        LOG_GROUP_AT,
        RUN_STATUSES,
        TASK_RUN_STATUSES,
        CallInfo,
        Candidate,
        FileInfo,
        LogEntry,
        LogGroup,
        LogLine,
        Record,
        RunInfo,
        RunLog,
        TagChange,
        TagInfo,
        TaskRunInfo,
        ValueInfo,
        dataflow,
        ledger,
        log,
        logs,
        query,
        resolve,
        run_info,
        runs,
        show,
        tag,
        untag,
    )
    from ledgerflow.api.records import (
        CacheClearReport,
        CacheReport,
        cache_clear,
        cache_list,
        export,
        export_prov,
        import_,
        prune,
        pull,
        push,
    )
    from ledgerflow.api.running import (
        Explanation,
        Failure,
        PlanEntry,
        RunObserver,
        RunResult,
        Target,
        attempt_counts,
        call_target,
        execute,
        explain,
        load_target,
        mark_dead_runs,
        open_ledger,
        preview,
        run,
    )
    from ledgerflow.ledger.status import SHOWN_ORDER
    from ledgerflow.ledger.tags import run_tags

#: public name -> the submodule that defines it
_HOMES: dict[str, str] = {
    "cache_per_day": "ledgerflow.api.browsing",
    "log_page": "ledgerflow.api.browsing",
    "open_reader": "ledgerflow.api.browsing",
    "run_graph": "ledgerflow.api.browsing",
    "run_id": "ledgerflow.api.browsing",
    "run_timeline": "ledgerflow.api.browsing",
    "runs_page": "ledgerflow.api.browsing",
    "runs_per_day": "ledgerflow.api.browsing",
    "stale_seconds": "ledgerflow.api.browsing",
    "task_run_files": "ledgerflow.api.browsing",
    "task_run_info": "ledgerflow.api.browsing",
    "why": "ledgerflow.api.browsing",
    "CallInfo": "ledgerflow.api.reading",
    "Candidate": "ledgerflow.api.reading",
    "FileInfo": "ledgerflow.api.reading",
    "LOG_GROUP_AT": "ledgerflow.api.reading",
    "LogEntry": "ledgerflow.api.reading",
    "LogGroup": "ledgerflow.api.reading",
    "LogLine": "ledgerflow.api.reading",
    "RUN_STATUSES": "ledgerflow.api.reading",
    "Record": "ledgerflow.api.reading",
    "RunInfo": "ledgerflow.api.reading",
    "RunLog": "ledgerflow.api.reading",
    "TASK_RUN_STATUSES": "ledgerflow.api.reading",
    "TagChange": "ledgerflow.api.reading",
    "TagInfo": "ledgerflow.api.reading",
    "TaskRunInfo": "ledgerflow.api.reading",
    "ValueInfo": "ledgerflow.api.reading",
    "dataflow": "ledgerflow.api.reading",
    "ledger": "ledgerflow.api.reading",
    "log": "ledgerflow.api.reading",
    "logs": "ledgerflow.api.reading",
    "query": "ledgerflow.api.reading",
    "resolve": "ledgerflow.api.reading",
    "run_info": "ledgerflow.api.reading",
    "runs": "ledgerflow.api.reading",
    "show": "ledgerflow.api.reading",
    "tag": "ledgerflow.api.reading",
    "untag": "ledgerflow.api.reading",
    "CacheClearReport": "ledgerflow.api.records",
    "CacheReport": "ledgerflow.api.records",
    "cache_clear": "ledgerflow.api.records",
    "cache_list": "ledgerflow.api.records",
    "export": "ledgerflow.api.records",
    "export_prov": "ledgerflow.api.records",
    "import_": "ledgerflow.api.records",
    "prune": "ledgerflow.api.records",
    "pull": "ledgerflow.api.records",
    "push": "ledgerflow.api.records",
    "Explanation": "ledgerflow.api.running",
    "Failure": "ledgerflow.api.running",
    "PlanEntry": "ledgerflow.api.running",
    "RunObserver": "ledgerflow.api.running",
    "RunResult": "ledgerflow.api.running",
    "call_target": "ledgerflow.api.running",
    "execute": "ledgerflow.api.running",
    "explain": "ledgerflow.api.running",
    "mark_dead_runs": "ledgerflow.api.running",
    "open_ledger": "ledgerflow.api.running",
    "run": "ledgerflow.api.running",
    "Target": "ledgerflow.api.running",
    "attempt_counts": "ledgerflow.api.running",
    "load_target": "ledgerflow.api.running",
    "preview": "ledgerflow.api.running",
    "DowngradePlan": "ledgerflow.api.database",
    "SHOWN_ORDER": "ledgerflow.ledger.status",
    "run_tags": "ledgerflow.ledger.tags",
    "plan_downgrade": "ledgerflow.api.database",
}

__all__ = [
    "LOG_GROUP_AT",
    "RUN_STATUSES",
    "SHOWN_ORDER",
    "TASK_RUN_STATUSES",
    "CacheClearReport",
    "CacheReport",
    "CallInfo",
    "Candidate",
    "DowngradePlan",
    "Explanation",
    "Failure",
    "FileInfo",
    "LogEntry",
    "LogGroup",
    "LogLine",
    "PlanEntry",
    "Record",
    "RunInfo",
    "RunLog",
    "RunObserver",
    "RunResult",
    "TagChange",
    "TagInfo",
    "Target",
    "TaskRunInfo",
    "ValueInfo",
    "attempt_counts",
    "cache_clear",
    "cache_list",
    "cache_per_day",
    "call_target",
    "dataflow",
    "execute",
    "explain",
    "export",
    "export_prov",
    "import_",
    "ledger",
    "load_target",
    "log",
    "log_page",
    "logs",
    "mark_dead_runs",
    "open_ledger",
    "open_reader",
    "plan_downgrade",
    "preview",
    "prune",
    "pull",
    "push",
    "query",
    "resolve",
    "run",
    "run_graph",
    "run_id",
    "run_info",
    "run_tags",
    "run_timeline",
    "runs",
    "runs_page",
    "runs_per_day",
    "show",
    "stale_seconds",
    "tag",
    "task_run_files",
    "task_run_info",
    "untag",
    "why",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'ledgerflow.api' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
