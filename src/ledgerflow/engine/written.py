"""Cached results that wrote rows: recorded with the call, checked before a cache hit is used.

A task that writes rows through ``context.session`` / ``context.db`` reports them (see
:mod:`ledgerflow.db.tracking`) and the scheduler records them in ``lf_written`` with the
call's other rows: ``(call hash, bind, table, row key)``. The row key is JSON:
``{"key": {"id": 3}, "run": "<run id>"}`` (``"key": null`` when only the table is known:
it must then exist and hold rows). A call that returned calls also records every row its
sub-calls rely on, since its cached value stands for theirs.

``lf_written`` is append-only, so each run that computes a call adds its own set of rows
(its *generation*, named by the run). A cache hit is used only while one generation of its
call is complete. The check is batched: for the hits that became ready together, one query
reads their ``lf_written`` rows, then one query per table (per :data:`CHECK_PARAMS` keys)
asks the plugin's database which of those keys still exist. Hits that come one by one (a
chain of dependent calls) are checked like that only :data:`PREFETCH_AFTER` times per task:
then every row the task's calls ever recorded is read and checked at once, and its later
hits in the run cost no query (rows deleted after that moment are noticed by the next run).

A task some of whose calls wrote rows is marked by one more row, ``(task hash, "", "",
"task")``, so that a run learns which tasks need the check by looking up task hashes (one
query for the tasks met together), whatever the number of their calls: a task that never
wrote costs nothing more.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ledgerflow.db.chunks import chunks
from ledgerflow.errors import ConfigError, DatabaseError
from ledgerflow.ledger.status import CACHED

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from ledgerflow.db import Database
    from ledgerflow.db.tracking import WrittenRow
    from ledgerflow.engine.cache import CacheHit
    from ledgerflow.engine.node import Node
    from ledgerflow.ledger.recorder import Recorder

#: Call hashes per ``lf_written`` query.
CHUNK = 400
#: Bound parameters per existence query on a plugin table.
CHECK_PARAMS = 10_000
#: After this many checks of one task in a run (a chain of calls, say), every row its calls
#: ever recorded is read and checked at once: its later hits cost no query.
PREFETCH_AFTER = 4
#: A task whose calls recorded more rows than this is always checked hit by hit.
PREFETCH_MAX = 100_000
#: ``lf_written.row_key`` of the row marking a task (its hash as call_hash, empty bind and table).
TASK_MARK = "task"
#: Driver messages and SQLSTATEs of a table (or key column) that no longer exists.
_MISSING = ("no such table", "no such column", "does not exist")
_MISSING_STATES = ("42P01", "42703")

Where = tuple[str, str]  # (bind, table)
Generations = dict[str, frozenset["WrittenRow"]]  # run -> the rows it recorded for a call


def row_key(run_id: str, key: str | None) -> str:
    """The ``lf_written.row_key`` of one written row of a run."""
    return f'{{"key":{key if key is not None else "null"},"run":{json.dumps(run_id)}}}'


class WrittenRows:
    """Records the rows calls wrote and checks them before their cache hits are used."""

    def __init__(self, database: Database, ledger: Engine, run_id: str = "") -> None:
        self.database = database
        self.ledger = ledger
        self.run_id = run_id
        #: queries this object sent (ledger and plugin databases)
        self.queries = 0
        self._writes: dict[str, bool] = {}  # task hash -> whether any call of it wrote rows
        self._marked: set[str] = set()  # task hashes marked as writers by this run
        self._outcomes: dict[int, list[WrittenRow]] = {}  # id(node) -> rows its task wrote
        #: call hash -> the rows its value relies on (computed now, or checked for a hit)
        self.rows_of: dict[str, frozenset[WrittenRow]] = {}
        self._checks: dict[str, int] = defaultdict(int)  # task hash -> batches checked
        #: task hash -> call hash -> its generations, every call of the task read at once
        self._prefetched: dict[str, dict[str, Generations] | None] = {}
        self._known: dict[Where, set[str | None] | str] = {}  # presence read by a prefetch
        self._covered: dict[Where, set[str | None]] = defaultdict(set)  # keys it covers

    # -- recording -----------------------------------------------------------------------

    def wrote(self, node: Node, rows: list[WrittenRow]) -> None:
        """The task of ``node`` returned after writing ``rows``."""
        if rows:
            self._outcomes[id(node)] = rows

    def finished(self, node: Node, call_hash: str, recorder: Recorder) -> None:
        """``node`` is done as ``call_hash``: record its rows and those of its sub-calls."""
        found = set(self._outcomes.pop(id(node), ()))
        rows_of = self.rows_of
        unseen = [
            child.call_hash
            for child in node.children
            if child.call_hash is not None
            and child.call_hash not in rows_of
            and child.phase == CACHED
            and self._writes.get(child.task_hash, True)
        ]
        if unseen:  # a result this run took without checking it (another run's, say)
            self._learn(unseen)
        for child in node.children:
            if child.call_hash is not None:
                found.update(rows_of.get(child.call_hash, ()))
        if not found:
            return
        self.rows_of[call_hash] = frozenset(found)
        run = self.run_id
        recorder.written(
            (call_hash, bind, table, row_key(run, key))
            for bind, table, key in sorted(found, key=_order)
        )
        task_hash = node.task_hash
        if task_hash not in self._marked:
            self._marked.add(task_hash)
            recorder.written([(task_hash, "", "", TASK_MARK)])

    def _learn(self, call_hashes: list[str]) -> None:
        """The rows the values of ``call_hashes`` rely on: the complete generation of each
        (else the one missing fewest rows: the call is then found gone by the next run)."""
        generations = self._generations(call_hashes)
        present = self._presence(generations.values())
        for call_hash in call_hashes:
            by_run = generations.get(call_hash)
            if not by_run:
                self.rows_of[call_hash] = frozenset()
                continue
            ranked = sorted(
                by_run.values(), key=lambda rows: sum(not _exists(present, r) for r in rows)
            )
            self.rows_of[call_hash] = ranked[0]

    # -- checking ------------------------------------------------------------------------

    def check(self, hits: Iterable[CacheHit], *, fresh: bool = False) -> dict[str, str]:
        """Why each of ``hits`` may not be used (call hash -> reason); absent: still valid.

        ``fresh``: the hits were just written by other runs (calls this run waited for), so
        what this run learnt of their tasks may be out of date: ask again."""
        hits = list(hits)
        if not hits:
            return {}
        if fresh:
            for hit in hits:
                if not self._writes.get(hit.task_hash, True):
                    del self._writes[hit.task_hash]
        self._ask_writers({hit.task_hash for hit in hits})
        calls = {hit.call_hash: hit for hit in hits if self._writes.get(hit.task_hash)}
        if not calls:
            return {}
        for task_hash in {hit.task_hash for hit in calls.values()}:
            self._checks[task_hash] += 1
            if self._checks[task_hash] >= PREFETCH_AFTER and task_hash not in self._prefetched:
                self._prefetch(task_hash)
        generations: dict[str, Generations] = {}
        ask = []
        for call_hash, hit in calls.items():
            known = self._prefetched.get(hit.task_hash)
            if known is not None and call_hash in known:
                if known[call_hash]:
                    generations[call_hash] = known[call_hash]
            else:
                ask.append(call_hash)
        if ask:
            generations.update(self._generations(ask))
        present = self._presence(generations.values())
        gone: dict[str, str] = {}
        for call_hash, by_run in generations.items():
            best: tuple[tuple[int, int], frozenset[WrittenRow]] | None = None
            for run, rows in by_run.items():
                missing = frozenset(row for row in rows if not _exists(present, row))
                if not missing:
                    self.rows_of[call_hash] = rows
                    break
                rank = (0 if run == calls[call_hash].run_id else 1, len(missing))
                if best is None or rank < best[0]:
                    best = (rank, missing)
            else:
                assert best is not None
                gone[call_hash] = _reason(best[1], present)
        return gone

    def _ask_writers(self, task_hashes: set[str]) -> None:
        """Learn, once per task, whether any of its calls recorded written rows (its mark)."""
        from sqlalchemy import bindparam, text

        unknown = sorted(t for t in task_hashes if t not in self._writes)
        if not unknown:
            return
        sql = text(
            "SELECT call_hash FROM lf_written WHERE call_hash IN :tasks AND bind = '' "
            "AND table_name = ''"
        ).bindparams(bindparam("tasks", expanding=True))
        writers: set[str] = set()
        with self._ledger() as conn:
            for chunk in chunks(unknown, CHUNK):
                writers.update(row[0] for row in conn.execute(sql, {"tasks": chunk}))
                self.queries += 1
        for task_hash in unknown:
            self._writes[task_hash] = task_hash in writers

    def _generations(self, call_hashes: list[str]) -> dict[str, Generations]:
        """call hash -> run -> the rows that run recorded for the call."""
        from sqlalchemy import bindparam, text

        sql = text(
            "SELECT call_hash, bind, table_name, row_key FROM lf_written WHERE call_hash IN :calls"
        ).bindparams(bindparam("calls", expanding=True))
        found: dict[str, dict[str, set[WrittenRow]]] = defaultdict(lambda: defaultdict(set))
        with self._ledger() as conn:
            for chunk in chunks(call_hashes, CHUNK):
                for call_hash, bind, table, text_key in conn.execute(sql, {"calls": chunk}):
                    run, row = _parse(bind, table, text_key)
                    found[call_hash][run].add(row)
                self.queries += 1
        return {call: _frozen(by_run) for call, by_run in found.items()}

    def _prefetch(self, task_hash: str) -> None:
        """Read the rows every call of the task recorded, and which of them still exist."""
        from sqlalchemy import text

        sql = text(
            "SELECT c.hash, w.bind, w.table_name, w.row_key FROM lf_call c "
            "LEFT JOIN lf_written w ON w.call_hash = c.hash "
            f"WHERE c.task_hash = :task LIMIT {PREFETCH_MAX + 1}"
        )
        with self._ledger() as conn:
            rows = conn.execute(sql, {"task": task_hash}).all()
        self.queries += 1
        if len(rows) > PREFETCH_MAX:
            self._prefetched[task_hash] = None
            return
        found: dict[str, dict[str, set[WrittenRow]]] = defaultdict(lambda: defaultdict(set))
        for call_hash, bind, table, text_key in rows:
            calls = found[call_hash]
            if text_key is not None:
                run, row = _parse(bind, table, text_key)
                calls[run].add(row)
        known = {call: _frozen(by_run) for call, by_run in found.items()}
        self._prefetched[task_hash] = known
        wanted = _wanted(known.values())
        for where, keys in wanted.items():
            keys -= self._covered[where]
            if keys:
                self._known[where] = _merge(self._known.get(where), self._present(where, keys))
                self._covered[where] |= keys

    def _presence(self, generations: Iterable[Generations]) -> dict[Where, set[str | None] | str]:
        """Which of the keys of ``generations`` exist, by table (or why none can)."""
        present: dict[Where, set[str | None] | str] = {}
        for where, keys in _wanted(generations).items():
            known = self._known.get(where)
            rest = keys - self._covered[where] if known is not None else keys
            found: set[str | None] | str | None = known
            if rest:
                found = _merge(found, self._present(where, rest))
            present[where] = found if found is not None else set()
        return present

    def _ledger(self) -> Any:
        from sqlalchemy.exc import DBAPIError

        try:
            return self.ledger.connect()
        except DBAPIError as exc:
            raise DatabaseError(f"cannot open the ledger: {exc.orig}") from None

    def _present(self, where: Where, keys: set[str | None]) -> set[str | None] | str:
        """The keys of ``keys`` that exist (None in it: the table holds rows), or why none
        can (the table or its bind is gone)."""
        from sqlalchemy import column, literal, select, table, tuple_
        from sqlalchemy.exc import DBAPIError

        bind, name = where
        schema, _, bare = name.rpartition(".")
        try:
            engine = self.database.engine(bind)
        except ConfigError:
            return f"bind {bind} is no longer configured"
        by_columns: dict[tuple[str, ...], list[tuple[str, tuple[Any, ...]]]] = defaultdict(list)
        for key in keys:
            if key is None:
                continue
            try:
                values = json.loads(key)
            except ValueError:
                continue
            if isinstance(values, dict) and values:
                columns = tuple(sorted(values))
                by_columns[columns].append((key, tuple(values[c] for c in columns)))
        present: set[str | None] = set()
        try:
            with engine.connect() as conn:
                for columns, entries in by_columns.items():
                    target = table(bare, *(column(c) for c in columns), schema=schema or None)
                    cols = [target.c[c] for c in columns]
                    for chunk in chunks(entries, max(1, CHECK_PARAMS // len(columns))):
                        values = [v for _, v in chunk]
                        if len(cols) == 1:
                            condition = cols[0].in_([v[0] for v in values])
                        else:
                            condition = tuple_(*cols).in_(values)
                        rows = conn.execute(select(*cols).where(condition)).all()
                        self.queries += 1
                        for row in rows:
                            present.add(_canonical(dict(zip(columns, row))))
                if None in keys and not present:
                    target = table(bare, schema=schema or None)
                    holds = conn.execute(select(literal(1)).select_from(target).limit(1)).first()
                    self.queries += 1
                    if holds is not None:
                        present.add(None)
                elif None in keys:
                    present.add(None)  # a row found: the table holds rows
        except DBAPIError as exc:
            if _missing(exc):
                return f"table {name} (bind {bind}) is gone"
            raise DatabaseError(
                f"checking the rows cached calls wrote in {name} (bind {bind}) failed: "
                f"{_first_line(exc)}",
                hint="check that this role may read the table (`ledgerflow db upgrade` grants it)",
            ) from None
        return present


def _parse(bind: str, table: str, text_key: str) -> tuple[str, WrittenRow]:
    """(run, row) of one ``lf_written`` row."""
    try:
        parsed = json.loads(text_key)
        run = str(parsed["run"])
        key = parsed["key"]
    except (ValueError, KeyError, TypeError):
        run, key = "", text_key  # not ours: a key that never matches
    return run, (bind, table, None if key is None else _canonical(key))


def _frozen(by_run: dict[str, set[WrittenRow]]) -> Generations:
    return {run: frozenset(rows) for run, rows in by_run.items()}


def _wanted(generations: Iterable[Generations]) -> dict[Where, set[str | None]]:
    """The keys to look for, by table."""
    wanted: dict[Where, set[str | None]] = defaultdict(set)
    for by_run in generations:
        for rows in by_run.values():
            for bind, table, key in rows:
                wanted[(bind, table)].add(key)
    return wanted


def _merge(
    before: set[str | None] | str | None, more: set[str | None] | str
) -> set[str | None] | str:
    """Presence read in two parts: a table gone in either is gone."""
    if before is None:
        return more
    if isinstance(before, str):
        return before
    if isinstance(more, str):
        return more
    return before | more


def _canonical(key: Any) -> str:
    return json.dumps(key, sort_keys=True, separators=(",", ":"), default=str)


def _order(row: WrittenRow) -> tuple[str, str, str]:
    return (row[0], row[1], row[2] or "")


def _exists(present: dict[Where, set[str | None] | str], row: WrittenRow) -> bool:
    found = present.get((row[0], row[1]))
    return isinstance(found, set) and row[2] in found


def _reason(missing: frozenset[WrittenRow], present: dict[Where, set[str | None] | str]) -> str:
    """Why rows are missing: "3 rows of computation_result (bind default) are gone", one
    clause per table."""
    by_table: dict[Where, int] = defaultdict(int)
    for bind, table, _key in missing:
        by_table[(bind, table)] += 1
    parts = []
    for (bind, table), count in sorted(by_table.items()):
        found = present.get((bind, table))
        keys = count - ((bind, table, None) in missing)
        if isinstance(found, str):
            parts.append(found)
        elif keys == 0:
            parts.append(f"the rows of {table} (bind {bind}) are gone")
        else:
            rows, verb = ("1 row", "is") if keys == 1 else (f"{keys} rows", "are")
            parts.append(f"{rows} of {table} (bind {bind}) {verb} gone")
    return "; ".join(parts)


def _missing(exc: Any) -> bool:
    orig = getattr(exc, "orig", None)
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if state is not None:  # PostgreSQL: by error code only
        return state in _MISSING_STATES
    text = str(orig if orig is not None else exc).lower()
    return any(word in text for word in _MISSING)


def _first_line(exc: Any) -> str:
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
