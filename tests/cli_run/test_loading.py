"""Finding a task from ``MODULE:TASK`` or ``path/to/file.py:TASK`` (no database involved)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ledgerflow.cli.main import main
from ledgerflow.engine.loading import load_task, split_target
from ledgerflow.errors import PluginImportError, UsageError

TASKS = '''
from ledgerflow.engine.task import task

@task
def main(n: int = 10, multiplier: int = 2) -> list[int]:
    """Reduce n generated values with a multiplier."""
    return [n * multiplier]

@task
def other(x: int) -> int:
    return x

def helper(x: int) -> int:
    return x

CONSTANT = 3


class Model:
    pass
'''


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
        raise SystemExit(0)
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


@pytest.fixture
def package(write_module, unique: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:  # type: ignore[no-untyped-def]
    write_module(f"{unique}/tasks.py", TASKS)
    monkeypatch.chdir(tmp_path)
    return unique


def test_load_by_module_from_the_working_directory(package: str) -> None:
    loaded = load_task(f"{package}.tasks:main")
    assert loaded.name == "main" and loaded.func.__module__ == f"{package}.tasks"


def test_load_by_module_from_the_project_root(write_module, unique: str, tmp_path: Path,  # type: ignore[no-untyped-def]
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    write_module(f"project/{unique}/tasks.py", TASKS)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    with pytest.raises(UsageError, match="not found"):
        load_task(f"{unique}.tasks:main")
    loaded = load_task(f"{unique}.tasks:main", root=tmp_path / "project")
    assert loaded.name == "main"
    assert str(tmp_path / "project") in sys.path


def test_load_by_file_path(write_module, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    write_module("pipelines/flow_a.py", TASKS, package=False)
    monkeypatch.chdir(tmp_path)
    loaded = load_task("pipelines/flow_a.py:other")
    assert loaded.name == "other"
    module = sys.modules[loaded.func.__module__]
    assert Path(module.__file__).resolve() == (tmp_path / "pipelines/flow_a.py").resolve()
    assert load_task("pipelines/flow_a.py:other") is loaded  # imported once


def test_file_inside_a_package_keeps_its_dotted_name(write_module, unique: str, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    write_module(f"{unique}/sub/tasks.py", TASKS)
    monkeypatch.chdir(tmp_path)
    loaded = load_task(f"{unique}/sub/tasks.py:main")
    assert loaded.func.__module__ == f"{unique}.sub.tasks"


def test_two_files_with_the_same_name_do_not_collide(write_module, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    write_module("a/flow_same.py", TASKS, package=False)
    write_module("b/flow_same.py", TASKS.replace("[n * multiplier]", "[0]"), package=False)
    monkeypatch.chdir(tmp_path)
    first = load_task("a/flow_same.py:main")
    second = load_task("b/flow_same.py:main")
    assert first is not second
    assert first.func(1, 1) == [1] and second.func(1, 1) == [0]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nocolon", "'nocolon' is not a task target"),
        ("mod:", "is not a task target"),
        ("mod:bad-name", "'bad-name' in 'mod:bad-name' is not a valid task name"),
        ("no_such_module_xyz.tasks:main", "module 'no_such_module_xyz.tasks' not found"),
        ("missing/flow.py:main", "flow.py' not found"),
    ],
)
def test_bad_targets(target: str, message: str, package: str) -> None:
    with pytest.raises(UsageError) as info:
        load_task(target)
    assert message in info.value.message


def test_missing_attribute_lists_the_tasks(package: str) -> None:
    with pytest.raises(UsageError) as info:
        load_task(f"{package}.tasks:mian")
    assert f"'{package}.tasks'" in info.value.message and "no attribute 'mian'" in info.value.message
    assert info.value.hint == "tasks in this module: main, other"


@pytest.mark.parametrize(("name", "kind"), [("helper", "function"), ("CONSTANT", "int"),
                                           ("Model", "class")])
def test_not_a_task(package: str, name: str, kind: str) -> None:
    with pytest.raises(UsageError) as info:
        load_task(f"{package}.tasks:{name}")
    assert info.value.message == f"'{package}.tasks:{name}' is a {kind}, not a task (decorate it with @task)"
    assert "main, other" in (info.value.hint or "")


def test_import_error_inside_the_module_is_not_module_not_found(write_module, unique: str,  # type: ignore[no-untyped-def]
                                                                tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    write_module(f"{unique}/broken.py", "import no_such_dependency_xyz\n")
    write_module(f"{unique}/syntax.py", "def f(:\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PluginImportError) as info:
        load_task(f"{unique}.broken:main")
    assert "ModuleNotFoundError: No module named 'no_such_dependency_xyz'" in info.value.message
    with pytest.raises(PluginImportError, match="SyntaxError"):
        load_task(f"{unique}/syntax.py:main")


def test_split_target_keeps_colons_in_paths() -> None:
    assert split_target("C:/x/flow.py:main") == ("C:/x/flow.py", "main")
    assert split_target("pkg.mod:Class.attr") == ("pkg.mod", "Class.attr")


# -- through the command line: one line, an exit code, no traceback --------------------------


@pytest.mark.parametrize("command", ["run", "explain"])
@pytest.mark.parametrize(
    ("suffix", "code", "fragment"),
    [
        (".tasks:mian", 2, "no attribute 'mian' (tasks in this module: main, other)"),
        (".tasks:helper", 2, "is a function, not a task"),
        ("_nope.tasks:main", 2, "not found"),
        (".tasks", 2, "is not a task target"),
    ],
)
def test_bad_targets_on_the_command_line(package: str, capsys: pytest.CaptureFixture[str],
                                         command: str, suffix: str, code: int, fragment: str) -> None:
    exit_code, out, err = cli([command, package + suffix], capsys)
    assert exit_code == code
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and fragment in lines[0]


def test_broken_module_on_the_command_line(write_module, unique: str, tmp_path: Path,  # type: ignore[no-untyped-def]
                                           monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    write_module(f"{unique}/broken.py", "raise RuntimeError('boom at import')\n")
    monkeypatch.chdir(tmp_path)
    exit_code, _, err = cli(["run", f"{unique}.broken:main"], capsys)
    assert exit_code == 3
    assert err.strip() == (f"Error: importing '{unique}.broken' failed: RuntimeError: boom at import "
                           "(run with --debug for the traceback)")


def test_missing_target(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    exit_code, _, err = cli(["run"], capsys)
    assert exit_code == 2
    assert "missing TARGET" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("order", ["help-first", "help-last"])
def test_run_help_by_module_and_by_file(package: str, tmp_path: Path, order: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    for target in (f"{package}.tasks:main", f"{package}/tasks.py:main"):
        args = ["run", "--help", target] if order == "help-first" else ["run", target, "--help"]
        exit_code, out, _ = cli(args, capsys)
        assert exit_code == 0
        assert "Reduce n generated values with a multiplier." in out
        assert "--n INT" in out and "--multiplier INT" in out
        assert "--dry-run" in out and "--rerun TASK_NAME" in out


def test_run_help_without_target_documents_the_engine_options(capsys: pytest.CaptureFixture[str]) -> None:
    exit_code, out, _ = cli(["run", "--help"], capsys)
    assert exit_code == 0
    for option in ("--no-cache", "--rerun", "--executor [local|threads|processes|dask]", "--workers",
                   "--tag KEY=VALUE", "--dry-run", "--quiet", "--json"):
        assert option in out
    assert "Usage: ledgerflow run [OPTIONS] TARGET [TASK OPTIONS]" in out
