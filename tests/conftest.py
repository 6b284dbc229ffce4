"""Shared fixtures: ledgerflow's own test suite uses the public pytest plugin."""

pytest_plugins = ["ledgerflow.testing.plugin", "ledgerflow.testing.projects"]
pytest_plugins += ["ledgerflow.testing.pipelines"]
