"""Rows in and out of the quick start project through ledgerflow's helpers.

    python examples/quickstart.py PROJECT_DIR

Runs again and again: get_or_create and upsert find the rows written by a previous run.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from sqlalchemy import func, select

from ledgerflow.config import load_settings
from ledgerflow.db import Database, Helpers
from ledgerflow.db.plugins import load_plugins
from ledgerflow.errors import LedgerflowError
from ledgerflow.migrations import ensure_current


def main(project: Path) -> None:
    settings = load_settings(project / "ledgerflow.yml")
    ensure_current(settings)  # stops with the command to run if a migration is missing
    load_plugins(settings)
    Measurement = importlib.import_module("pipeline.models").Measurement

    with Database(settings) as db, db.transaction() as session:
        helpers = Helpers(session)
        row, created = helpers.get_or_create(
            Measurement,
            filter_by={"sample": "S0001", "quantity": "temperature"},
            defaults={"value": 21.5, "unit": "C"},
        )
        print(f"get_or_create: {row.sample}/{row.quantity} = {row.value} {row.unit} "
              f"({'created' if created else 'already there'})")

        masses = ({"sample": f"S{i:04d}", "quantity": "mass", "value": i * 0.1, "unit": "g"}
                  for i in range(1, 1001))
        print(f"upsert: {helpers.upsert(Measurement, masses, on=['sample', 'quantity'])} rows")

        count = select(func.count()).select_from(Measurement).filter_by(quantity="flux")
        if not session.scalar(count):
            fluxes = ({"sample": f"S{i:04d}", "quantity": "flux", "value": 1e-3 * i, "unit": "Jy"}
                      for i in range(1, 10_001))
            print(f"bulk_insert: {helpers.bulk_insert(Measurement, fluxes)} rows")

        helpers.update(row, {"value": row.value + 0.5})
        print(f"update: {row.sample}/{row.quantity} is now {row.value} {row.unit}")

    with Database(settings) as db, db.session() as session:
        helpers = Helpers(session)
        print(f"find: {len(helpers.find(Measurement, quantity='mass'))} masses")
        query = select(Measurement).filter_by(quantity="mass").order_by(Measurement.value.desc())
        page = helpers.paginate(query, page=1, per_page=3)
        print(f"paginate: page {page.page} of {page.pages} ({page.total} rows), heaviest first:")
        for m in page.items:
            print(f"  {m.sample}  {m.value:6.1f} {m.unit}")


if __name__ == "__main__":
    try:
        main(Path(sys.argv[1] if len(sys.argv) > 1 else "."))
    except LedgerflowError as exc:  # one line, the way the ledgerflow command reports errors
        sys.exit(f"Error: {exc}")
