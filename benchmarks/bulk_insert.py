"""bulk_insert against the raw driver's fastest path, on SQLite and PostgreSQL.

    .venv/bin/python benchmarks/bulk_insert.py [--rows 100000] [--repeats 5] [--dialect all]

Inserts ``--rows`` rows of an 8-column table (int, str, float, bool, datetime columns)
through ``ledgerflow.db.bulk_insert`` and through the driver directly, alternating, into
a fresh table each time. The raw paths get their rows as ready-made tuples (not timed):

* SQLite, ``sqlite3`` executemany in one transaction: "adapter" passes the datetimes to a
  registered adapter (the sqlite3 documentation's recipe); "ready" gets every value already
  in the form SQLite stores (a floor no application with datetimes reaches).
* PostgreSQL, psycopg ``COPY`` in text and in binary format.

bulk_insert gets the same rows as dicts. Prints the median rows/s of each, their ratios,
and the peak memory of ``bulk_insert`` fed by a generator next to the size of the same
rows held in a list.

PostgreSQL comes from ``LEDGERFLOW_TEST_PG`` or the server on 127.0.0.1:5432; the benchmark
creates a scratch database (with admin and user roles) and drops it at the end.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Boolean, DateTime, Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ledgerflow.config import settings_from_mapping
from ledgerflow.db import Database, Model, bulk_insert

T0 = datetime(2024, 1, 1)
COLUMNS = ("id", "name", "category", "value", "score", "count", "flag", "observed_at")
TARGETS = {"sqlite": 0.8, "postgresql": 0.5}


class Sample(Model):
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    category: Mapped[str] = mapped_column(String(10))
    value: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float)
    count: Mapped[int] = mapped_column(Integer)
    flag: Mapped[bool] = mapped_column(Boolean)
    observed_at: Mapped[datetime] = mapped_column(DateTime)


def dict_rows(n: int) -> Iterator[dict[str, Any]]:
    for i in range(n):
        yield {
            "id": i,
            "name": f"object-{i}",
            "category": "abcde"[i % 5],
            "value": i * 0.25,
            "score": 1.0 / (i + 1),
            "count": i % 1000,
            "flag": i % 2 == 0,
            "observed_at": T0 + timedelta(seconds=i),
        }


def tuple_rows(n: int, *, ready: bool) -> list[tuple[Any, ...]]:
    """The same rows as tuples; ``ready``: in the form SQLite stores (bool as 1/0, dates as
    SQLAlchemy's text), else datetimes left for the driver's adapter to convert."""
    rows = []
    for row in dict_rows(n):
        values = tuple(row[c] for c in COLUMNS)
        if ready:
            at = row["observed_at"].isoformat(" ", "microseconds")
            values = (*values[:6], int(row["flag"]), at)
        else:
            values = (*values[:6], int(row["flag"]), row["observed_at"])
        rows.append(values)
    return rows


def _adapt_datetime(value: datetime) -> str:
    return value.isoformat(" ", "microseconds")


class Target:
    """One database: its settings for ledgerflow and a raw driver connection factory."""

    def __init__(self, dialect: str, entry: dict[str, Any], root: Path) -> None:
        self.dialect = dialect
        self.settings = settings_from_mapping({"databases": {"default": entry}}, path=root / "x.yml")
        self.admin = Database(self.settings, role="admin")
        self.user = Database(self.settings)

    def recreate(self) -> None:
        engine = self.admin.engine()
        Model.metadata.drop_all(engine)
        Model.metadata.create_all(engine)

    def count(self) -> int:
        with self.user.engine().connect() as conn:
            return int(conn.exec_driver_sql("SELECT count(*) FROM sample").scalar() or 0)

    def close(self) -> None:
        self.user.dispose()
        self.admin.dispose()


def timed(target: Target, rows: int, insert: Callable[[], None]) -> float:
    """Rows per second of one insert into a fresh table."""
    target.recreate()
    started = time.perf_counter()
    insert()
    elapsed = time.perf_counter() - started
    inserted = target.count()
    if inserted != rows:
        raise SystemExit(f"{target.dialect}: expected {rows} rows, found {inserted}")
    return rows / elapsed


def ledgerflow_insert(target: Target, rows: list[dict[str, Any]]) -> Callable[[], None]:
    def run() -> None:
        with target.user.transaction() as session:
            bulk_insert(session, Sample, rows)

    return run


def sqlite_raw(path: Path, rows: list[tuple[Any, ...]]) -> Callable[[], None]:
    sqlite3.register_adapter(datetime, _adapt_datetime)  # the sqlite3 documentation's recipe

    def run() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        marks = ", ".join("?" * len(COLUMNS))
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(f"INSERT INTO sample ({', '.join(COLUMNS)}) VALUES ({marks})", rows)
        conn.execute("COMMIT")
        conn.close()

    return run


def postgres_copy(conninfo: str, rows: list[tuple[Any, ...]], binary: bool) -> Callable[[], None]:
    import psycopg

    def run() -> None:
        with psycopg.connect(conninfo) as conn, conn.cursor() as cursor:
            fmt = " (FORMAT BINARY)" if binary else ""
            with cursor.copy(f"COPY sample ({', '.join(COLUMNS)}) FROM STDIN{fmt}") as copy:
                if binary:
                    copy.set_types(
                        ["int4", "varchar", "varchar", "float8", "float8", "int4", "bool",
                         "timestamp"]
                    )
                for row in rows:
                    copy.write_row(row)

    return run


def memory(target: Target, n: int) -> tuple[int, int]:
    """Peak bytes of bulk_insert fed by a generator, and the bytes of the rows as a list."""
    tracemalloc.start()
    rows = list(dict_rows(n))
    as_list = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del rows
    target.recreate()
    with target.user.transaction() as session:
        tracemalloc.start()
        bulk_insert(session, Sample, dict_rows(n))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak, as_list


def bench(target: Target, n: int, repeats: int, raw: dict[str, Callable[[], None]]) -> None:
    ours = ledgerflow_insert(target, list(dict_rows(n)))
    results: dict[str, list[float]] = {"bulk_insert": [], **{name: [] for name in raw}}
    for i in range(repeats):
        order = [("bulk_insert", ours), *raw.items()]
        for name, insert in order if i % 2 == 0 else reversed(order):
            results[name].append(timed(target, n, insert))
    medians = {name: statistics.median(values) for name, values in results.items()}
    print(f"\n{target.dialect}: {n:,} rows x {len(COLUMNS)} columns, median of {repeats}")
    for name, value in medians.items():
        spread = f"{min(results[name]):,.0f}-{max(results[name]):,.0f}"
        print(f"  {name:<22} {value:>10,.0f} rows/s   (range {spread})")
    for name in raw:
        ratio = medians["bulk_insert"] / medians[name]
        verdict = "ok" if ratio >= TARGETS[target.dialect] else "BELOW TARGET"
        print(f"  bulk_insert / {name:<14} {ratio:.2f}x  (target >= {TARGETS[target.dialect]}x: {verdict})")
    peak, as_list = memory(target, n)
    print(
        f"  peak memory of bulk_insert from a generator: {peak / 1e6:.1f} MB "
        f"(the rows as a list: {as_list / 1e6:.1f} MB, {peak / as_list:.1%})"
    )


def run_sqlite(n: int, repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        target = Target("sqlite", {"dialect": "sqlite", "path": str(path)}, Path(tmp))
        try:
            raw = {
                "executemany, adapter": sqlite_raw(path, tuple_rows(n, ready=False)),
                "executemany, ready": sqlite_raw(path, tuple_rows(n, ready=True)),
            }
            bench(target, n, repeats, raw)
        finally:
            target.close()


def run_postgres(n: int, repeats: int) -> None:
    from ledgerflow.testing.postgres import find_server

    reasons: list[str] = []
    server = find_server(reasons)
    if server is None:
        print(f"\npostgresql: skipped, no server ({'; '.join(reasons)})")
        return
    database = server.create_database(prefix="lf_bench")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            target = Target("postgresql", database.config_entry(), Path(tmp))
            rows = [(*row[:6], bool(row[6]), row[7]) for row in tuple_rows(n, ready=False)]
            conninfo = database.conninfo("user")
            raw = {
                "COPY text": postgres_copy(conninfo, rows, binary=False),
                "COPY binary": postgres_copy(conninfo, rows, binary=True),
            }
            try:
                bench(target, n, repeats, raw)
            finally:
                target.close()
    finally:
        database.drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dialect", choices=("sqlite", "postgresql", "all"), default="all")
    args = parser.parse_args()
    if args.dialect in ("sqlite", "all"):
        run_sqlite(args.rows, args.repeats)
    if args.dialect in ("postgresql", "all"):
        run_postgres(args.rows, args.repeats)


if __name__ == "__main__":
    main()
