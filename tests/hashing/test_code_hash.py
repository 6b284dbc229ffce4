"""task_code_hash: normalised source, version and the user code a task calls."""

from __future__ import annotations

import importlib
import json
import linecache
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from ledgerflow.hashing import CodeHash, task_code_hash

TASKS = '''
class Task:
    """Stands in for a ledgerflow task: the engine's tasks expose the same two attributes."""

    __ledgerflow_task__ = True

    def __init__(self, func, version=None):
        self.func = func
        self.version = version


def task(version=None):
    return lambda func: Task(func, version)
'''

BASE = '''
import json
import os.path
from os.path import join

from {pkg} import steps
from {pkg}.tasks import task

THRESHOLD = 3


def helper(x):
    return x + 1


@task(version="1")
def load(n):
    return list(range(n))


@task()
def main(n):
    """Add one to everything."""
    data = load(n)
    total = helper(len(data)) + steps.scale(2)
    return os.path.join("out", join(json.dumps(total)))
'''

STEPS = """
def scale(x):
    return x * 2
"""


class Project:
    """A throwaway package on sys.path whose modules can be rewritten and re-imported."""

    def __init__(self, root: Path) -> None:
        self.pkg = f"lf_code_{uuid.uuid4().hex[:8]}"
        self.dir = root / self.pkg
        self.dir.mkdir()
        (self.dir / "__init__.py").write_text("")
        self.write("tasks", TASKS)
        self.write("steps", STEPS)
        self.write("flow", BASE)

    def write(self, name: str, source: str) -> None:
        path = self.dir / f"{name}.py"
        path.write_text(textwrap.dedent(source).format(pkg=self.pkg))
        linecache.checkcache(str(path))

    def load(self, name: str = "flow") -> ModuleType:
        for mod in [m for m in sys.modules if m == self.pkg or m.startswith(self.pkg + ".")]:
            del sys.modules[mod]
        importlib.invalidate_caches()
        return importlib.import_module(f"{self.pkg}.{name}")

    def main_hash(self, edit: Callable[[str], str] | None = None, name: str = "flow") -> CodeHash:
        if edit is not None:
            self.write(name, edit(BASE if name == "flow" else STEPS))
        return task_code_hash(self.load().main)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.syspath_prepend(str(tmp_path))
    return Project(tmp_path)


def test_comments_blank_lines_docstring_and_layout_do_not_count(project: Project) -> None:
    before = project.main_hash()
    after = project.main_hash(
        lambda src: (
            src.replace('    """Add one to everything."""\n', "    # a comment\n\n")
            .replace("data = load(n)", "data = load(  n  )  # trailing")
            .replace("def helper(x):\n", "def helper(x):  # why\n    '''Doc.'''\n")
        )
    )
    assert after.hash == before.hash
    assert "comment" not in after.source and "Add one" not in after.source


def test_body_change_changes_the_hash(project: Project) -> None:
    before = project.main_hash()
    after = project.main_hash(lambda src: src.replace("len(data)", "len(data) - 1"))
    assert after.hash != before.hash


def test_helper_body_change_changes_the_hash(project: Project) -> None:
    before = project.main_hash()
    after = project.main_hash(lambda src: src.replace("return x + 1", "return x + 2"))
    assert after.hash != before.hash
    assert (
        after.helpers[f"{project.pkg}.flow.helper"] != before.helpers[f"{project.pkg}.flow.helper"]
    )


def test_helper_in_another_user_module_counts(project: Project) -> None:
    before = project.main_hash()
    assert f"{project.pkg}.steps.scale" in before.helpers
    after = project.main_hash(lambda src: src.replace("x * 2", "x * 3"), name="steps")
    assert after.hash != before.hash


def test_called_task_body_and_version_count(project: Project) -> None:
    before = project.main_hash()
    assert f"{project.pkg}.flow.load" in before.helpers
    body = project.main_hash(lambda src: src.replace("list(range(n))", "list(range(n + 1))"))
    version = project.main_hash(lambda src: src.replace('@task(version="1")', '@task(version="2")'))
    assert len({before.hash, body.hash, version.hash}) == 3


def test_decorator_arguments_are_left_to_version(project: Project) -> None:
    before = project.main_hash()
    after = project.main_hash(
        lambda src: src.replace("@task()\ndef main", "@task(version=None)\ndef main")
    )
    assert after.hash == before.hash
    module = project.load()
    assert task_code_hash(module.main, version="2").hash != task_code_hash(module.main).hash


def test_module_constant_counts(project: Project) -> None:
    project.write("flow", BASE.replace("helper(len(data))", "helper(len(data)) * THRESHOLD"))
    before = task_code_hash(project.load().main)
    assert before.helpers[f"{project.pkg}.flow.THRESHOLD"]
    project.write(
        "flow",
        BASE.replace("helper(len(data))", "helper(len(data)) * THRESHOLD").replace("= 3", "= 4"),
    )
    assert task_code_hash(project.load().main).hash != before.hash


def test_library_functions_are_not_helpers(project: Project) -> None:
    helpers = project.main_hash().helpers
    assert not any(name.startswith(("json", "os", "posixpath")) for name in helpers)
    assert set(helpers) == {
        f"{project.pkg}.flow.helper",
        f"{project.pkg}.flow.load",
        f"{project.pkg}.steps.scale",
    }


def test_recursive_and_mutually_recursive_functions(project: Project) -> None:
    project.write(
        "flow",
        BASE
        + """
def fact(n):
    return 1 if n <= 1 else n * fact(n - 1)


def even(n):
    return n == 0 or odd(n - 1)


def odd(n):
    return n != 0 and even(n - 1)
""",
    )
    module = project.load()
    assert task_code_hash(module.fact).helpers == {}
    even = task_code_hash(module.even)
    assert set(even.helpers) == {f"{project.pkg}.flow.odd"}
    project.write(
        "flow",
        BASE
        + "\ndef even(n):\n    return n == 0 or odd(n - 1)\n\n\ndef odd(n):\n    return n != 0 and even(n + 1 - 2)\n",
    )
    assert task_code_hash(project.load().even).hash != even.hash


def test_result_is_cached_per_function_object(project: Project) -> None:
    module = project.load()
    assert task_code_hash(module.main) is task_code_hash(module.main)
    assert task_code_hash(module.main) is task_code_hash(module.main.func)


def test_functions_without_source_fall_back_to_bytecode() -> None:
    namespace: dict[str, object] = {}
    exec("def f(x):\n    return x + 1\n\ndef g(x):\n    return x + 2\n", namespace)
    f, g = namespace["f"], namespace["g"]
    assert task_code_hash(f).hash != task_code_hash(g).hash  # type: ignore[arg-type]
    assert "bytecode" in task_code_hash(f).source  # type: ignore[arg-type]
    again: dict[str, object] = {}
    exec("def f(x):\n    return x + 1\n", again)
    assert task_code_hash(again["f"]).hash == task_code_hash(f).hash  # type: ignore[arg-type]


def test_lambda_and_builtin() -> None:
    def square(x):
        return x * x
    assert "x * x" in task_code_hash(square).source
    assert task_code_hash(len).hash != task_code_hash(abs).hash


def test_code_hash_is_stable_across_processes(project: Project) -> None:
    parent = project.main_hash()
    script = (
        f"import json; from {project.pkg}.flow import main; "
        "from ledgerflow.hashing import task_code_hash; h = task_code_hash(main); "
        "print(json.dumps([h.hash, h.helpers]))"
    )
    env = dict(os.environ, PYTHONHASHSEED="999", PYTHONPATH=str(project.dir.parent))
    child = subprocess.run(
        [sys.executable, "-B", "-c", script], capture_output=True, text=True, env=env, check=True
    )
    assert json.loads(child.stdout) == [parent.hash, parent.helpers]
