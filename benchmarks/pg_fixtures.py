"""What a PostgreSQL test database costs: migrated in place and dropped, or copied and released.

    .venv/bin/python benchmarks/pg_fixtures.py [--databases 12]

Times the two ways ``ledgerflow.testing`` can give a test a ledger migrated to the head,
one database at a time, taking turns:

* in place: ``create_database`` (new admin and user roles), ``migrate_ledger``, then
  ``drop`` right away (what every PostgreSQL test paid before templates);
* copy: ``create_database(template=...)`` of a template migrated once (its making is
  printed apart), then ``PgSession.release``, whose drops run a batch at a time in the
  background; ``PgSession.close`` at the end drops what is left and is counted in the total.

Prints the median setup and teardown per database and the total wall time of each way.
PostgreSQL comes from ``LEDGERFLOW_TEST_PG`` or the server on 127.0.0.1:5432; the
benchmark drops everything it made. On a server other clients keep busy, a drop waits
for a checkpoint that flushes their writes too, so the figures vary from run to run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ledgerflow.testing.databases import migrate_ledger
from ledgerflow.testing.pgsession import PgSession
from ledgerflow.testing.postgres import PgDatabase, find_server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--databases", type=int, default=12, help="databases made each way")
    args = parser.parse_args()
    reasons: list[str] = []
    server = find_server(reasons)
    if server is None:
        sys.exit("no PostgreSQL server: " + "; ".join(reasons))
    root = Path(tempfile.mkdtemp(prefix="lf-bench-"))

    def migrate(database: PgDatabase) -> None:
        migrate_ledger(database.config_entry(), root)

    session = PgSession(server)
    start = time.perf_counter()
    session.template("ledger", migrate)
    template_time = time.perf_counter() - start

    timings: dict[str, dict[str, list[float]]] = {
        way: {"setup": [], "teardown": []} for way in ("in place", "copy")
    }
    totals = {"in place": 0.0, "copy": 0.0}
    for _ in range(args.databases):
        t0 = time.perf_counter()
        database = session.server.create_database()
        migrate(database)
        t1 = time.perf_counter()
        database.drop()
        t2 = time.perf_counter()
        timings["in place"]["setup"].append(t1 - t0)
        timings["in place"]["teardown"].append(t2 - t1)
        totals["in place"] += t2 - t0

        t0 = time.perf_counter()
        copy = session.create_database(template=session.template("ledger", migrate))
        t1 = time.perf_counter()
        session.release(copy)
        t2 = time.perf_counter()
        timings["copy"]["setup"].append(t1 - t0)
        timings["copy"]["teardown"].append(t2 - t1)
        totals["copy"] += t2 - t0
    start = time.perf_counter()
    session.close()
    close_time = time.perf_counter() - start
    totals["copy"] += close_time + template_time

    print(f"{args.databases} databases each way on {server.host}:{server.port}")
    print(f"template made once: {template_time:.3f} s; session close (last drops): {close_time:.3f} s")
    print(f"{'way':<10} {'setup (median)':>15} {'teardown (median)':>18} {'total':>9}")
    for way, phases in timings.items():
        print(
            f"{way:<10} {statistics.median(phases['setup']):>13.3f} s"
            f" {statistics.median(phases['teardown']):>16.3f} s {totals[way]:>7.2f} s"
        )
    print(f"copy / in place (total): {totals['copy'] / totals['in place']:.2f}")


if __name__ == "__main__":
    main()
