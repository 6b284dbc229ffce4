"""The import graph of the cheap entry points: the package root and the CLI's help.

Start-up time is measured by benchmarks/startup.py; this guards what makes it possible:
``import ledgerflow``, ``from ledgerflow import task, File, context``, ``ledgerflow --help``
and ``--version`` load neither SQLAlchemy, Alembic nor rich. Each check runs in a fresh
interpreter, since this test process has imported all of them already.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("sqlalchemy", "alembic", "rich")

_REPORT = """
import json, sys
{body}
loaded = sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r}))
loaded += ["sqlalchemy.orm"] if "sqlalchemy.orm" in sys.modules else []
print(json.dumps(loaded), file=sys.stderr)
"""

_CLI = """
from ledgerflow.cli.main import main
try:
    main({argv!r})
except SystemExit:
    pass
"""


def _run(body: str, cwd: Path | None = None) -> tuple[list[str], str]:
    """The heavy libraries loaded by ``body`` in a fresh interpreter, and what it printed."""
    code = _REPORT.format(body=body, heavy=HEAVY)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=cwd
    )
    assert proc.returncode == 0, proc.stderr
    loaded: list[str] = json.loads(proc.stderr.strip().splitlines()[-1])
    return loaded, proc.stdout


def _heavy_modules_after(body: str) -> list[str]:
    return _run(body)[0]


@pytest.mark.parametrize(
    "body",
    [
        "import ledgerflow",
        "import ledgerflow; ledgerflow.__version__",
        "from ledgerflow import task, File, context, LedgerflowError",
        _CLI.format(argv=["--help"]),
        _CLI.format(argv=["--version"]),
    ],
    ids=["import", "version-attribute", "authoring-names", "cli-help", "cli-version"],
)
def test_cheap_entry_points_do_not_import_heavy_libraries(body: str) -> None:
    assert _heavy_modules_after(body) == []


def test_python_dash_m_help_does_not_import_heavy_libraries() -> None:
    body = (
        "import runpy, sys\n"
        "sys.argv = ['ledgerflow', '--help']\n"
        "try:\n"
        "    runpy.run_module('ledgerflow', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
    )
    assert _heavy_modules_after(body) == []


def test_the_guard_sees_a_heavy_import() -> None:
    """The check itself can fail: importing the ledger reader loads SQLAlchemy's ORM."""
    assert _heavy_modules_after("from ledgerflow import Ledger") == ["sqlalchemy", "sqlalchemy.orm"]


def test_public_names_resolve_to_their_homes() -> None:
    import ledgerflow
    from ledgerflow._version import __version__
    from ledgerflow.engine.task import task
    from ledgerflow.provenance.ledger import Ledger

    assert ledgerflow.task is task and ledgerflow.Ledger is Ledger
    assert ledgerflow.__version__ == __version__
    assert set(ledgerflow.__all__) <= set(dir(ledgerflow))
    for name in ledgerflow.__all__:
        assert getattr(ledgerflow, name) is not None
    with pytest.raises(AttributeError):
        ledgerflow.no_such_name  # noqa: B018


def test_run_and_runs_load_no_orm_and_no_alembic(tmp_path: Path) -> None:
    """A run off a terminal needs SQLAlchemy Core only (no ORM); listing runs reads over the
    driver alone: rich for the table, no SQLAlchemy at all."""
    from ledgerflow import migrations
    from ledgerflow.testing.projects import make_project

    settings = make_project(tmp_path, {"dialect": "sqlite", "path": "ledger.db"})
    migrations.upgrade(settings)
    (tmp_path / "one.py").write_text(
        "from ledgerflow import task\n\n@task\ndef one() -> int:\n    return 1\n"
    )

    loaded, printed = _run(_CLI.format(argv=["run", "one.py:one"]), cwd=tmp_path)
    assert "result: 1" in printed and " done in " in printed
    assert loaded == ["sqlalchemy"]

    loaded, printed = _run(_CLI.format(argv=["runs"]), cwd=tmp_path)
    assert "one.one()" in printed and "1 done" in printed
    assert loaded == ["rich"]

    loaded, printed = _run(_CLI.format(argv=["runs", "--json", "--task", "one", "--since", "1d"]), cwd=tmp_path)
    assert '"entry_task": "one.one"' in printed
    assert "sqlalchemy" not in loaded


LAZY_PACKAGES = ["ledgerflow", "ledgerflow.db", "ledgerflow.migrations"]


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_lazy_names_never_share_a_name_with_a_submodule(package: str) -> None:
    """Importing a submodule sets the package attribute of its name, which would then hide a
    public name imported on first use (``ledgerflow.migrations.check`` was one)."""
    import importlib
    import pkgutil

    module = importlib.import_module(package)
    submodules = {info.name for info in pkgutil.iter_modules(module.__path__)}
    assert not set(module.__all__) & submodules
    for name in module.__all__:
        assert not isinstance(getattr(module, name), type(module)), name
