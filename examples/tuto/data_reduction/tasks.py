"""The data_reduction pipeline: generate numbers, multiply them, keep each result in a table.

    ledgerflow run tuto.data_reduction.tasks:main --n 100 --multiplier 2

The second run with the same options comes entirely from the cache; `compute` also
stores its results in the plugin's `computation_result` table.
"""

from __future__ import annotations

from ledgerflow import context, task

from .models import ComputationResult


@task
def generate(i: int) -> int:
    """Stand for a data source: the i-th raw value."""
    return i * 10


@task(version="2")
def compute(some_data: int, multiplier: int) -> int:
    """An expensive computation whose result is also kept in `computation_result`."""
    row, created = context.db.get_or_create(
        ComputationResult,
        filter_by={"input_value": some_data, "multiplier": multiplier},
        defaults={"result": some_data * multiplier},
    )
    if created:
        context.logger.info("computed %s x %s", some_data, multiplier)
    return row.result


@task
def main(n: int = 10, multiplier: int = 2) -> list[int]:
    """Reduce n generated values with a multiplier.

    Args:
        n: how many values to generate.
        multiplier: what each value is multiplied by.
    """
    return [compute(generate(i), multiplier) for i in range(n)]
