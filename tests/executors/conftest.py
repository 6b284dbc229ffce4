"""Tests marked ``dask`` need the test extra's dask.distributed and dask-jobqueue: skipped without it on a
developer's machine (with the command to install it), failed when ``CI=true``."""

from __future__ import annotations

import importlib.util

import pytest

from ledgerflow.testing.plugin import ci_enabled


@pytest.fixture(autouse=True)
def _dask_installed(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("dask") is None:
        return
    missing = [m for m in ("distributed", "dask_jobqueue") if importlib.util.find_spec(m) is None]
    if missing:
        reason = f"{', '.join(missing)} not installed: pip install -e '.[test]'"
        if ci_enabled():
            pytest.fail(f"{reason} (dask tests must run when CI=true)", pytrace=False)
        pytest.skip(reason)
