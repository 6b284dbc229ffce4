"""@task, lazy calls and argument binding (no database involved)."""

from __future__ import annotations

import inspect
import pickle
from dataclasses import dataclass
from typing import NamedTuple

import pytest

import ledgerflow
from ledgerflow import task
from ledgerflow.engine.expr import find_calls, substitute
from ledgerflow.engine.task import Call, is_task
from ledgerflow.errors import TaskDefinitionError


@task
def add(a: int, b: int = 2) -> int:
    """Add two numbers."""
    return a + b


@task(version="3", cache=False, retries=2, name="mul", namespace="maths")
def multiply(a: int, b: int) -> int:
    return a * b


@task
def flexible(a: int, *rest: int, scale: int = 1, **options: str) -> int:
    return a


def test_task_keeps_signature_docstring_and_options() -> None:
    assert inspect.signature(add) == inspect.signature(add.func)
    params = inspect.signature(add).parameters
    assert list(params) == ["a", "b"] and params["b"].default == 2
    assert add.__doc__ == "Add two numbers."
    assert add.__name__ == "add"
    assert add.__ledgerflow_task__ is True and is_task(add)
    assert (add.name, add.namespace, add.version, add.cache, add.retries) == (
        "add", __name__, None, True, 0,
    )  # fmt: skip
    assert (multiply.name, multiply.namespace, multiply.version) == ("mul", "maths", "3")
    assert multiply.cache is False and multiply.retries == 2
    assert multiply.fullname == "maths.mul"
    assert ledgerflow.task is task


def test_calling_a_task_is_lazy_and_binds_arguments() -> None:
    call = add(1)
    assert isinstance(call, Call)
    assert call.values == (1, 2)  # the default is applied
    assert add(1).values == add(a=1).values == add(1, b=2).values
    assert call.arguments == {"a": 1, "b": 2}
    assert repr(add(1, b=add(3))) == "add(a=1, b=<add(...)>)"


def test_varargs_and_keyword_only_bind_and_unbind() -> None:
    call = flexible(1, 2, 3, scale=4, mode="x")
    assert call.values == (1, (2, 3), 4, {"mode": "x"})
    assert flexible.unbind(call.values) == ((1, 2, 3), {"scale": 4, "mode": "x"})


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((1, 2, 3), {}, "takes 2 positional argument(s) but 3 were given"),
        ((), {}, "missing a required argument: 'a'"),
        ((1,), {"a": 1}, "multiple values for argument 'a'"),
        ((1,), {"c": 1}, "unexpected keyword argument 'c'"),
    ],
)
def test_wrong_arguments_fail_at_the_call_site(args: tuple, kwargs: dict, message: str) -> None:
    with pytest.raises(TaskDefinitionError, match="add\\(\\)") as info:
        add(*args, **kwargs)
    assert message in str(info.value)
    assert "signature: add(a: " in str(info.value)


def test_bad_declarations_are_refused() -> None:
    async def coroutine() -> None: ...

    with pytest.raises(TaskDefinitionError, match="plain \\(sync\\) functions"):
        task(coroutine)
    with pytest.raises(TaskDefinitionError, match="retries must be an integer >= 0"):
        task(retries=-1)(lambda: 1)
    with pytest.raises(TaskDefinitionError, match="already a task"):
        task(add)


def test_a_lazy_call_cannot_be_iterated() -> None:
    with pytest.raises(TaskDefinitionError, match="cannot iterate over the lazy call add"):
        list(add(1))


def test_tasks_pickle_by_reference_and_local_tasks_say_why_not() -> None:
    assert pickle.loads(pickle.dumps(add)) is add
    call = pickle.loads(pickle.dumps(add(1)))
    assert call.task is add and call.values == (1, 2)

    @task
    def local() -> int:
        return 1

    with pytest.raises(TaskDefinitionError, match="defined inside a function"):
        pickle.dumps(local)


@dataclass(frozen=True)
class Pair:
    left: object
    right: object


class Point(NamedTuple):
    x: object
    y: object


def test_calls_are_found_and_replaced_in_nested_values() -> None:
    a, b, c, d = add(1), add(2), add(3), add(4)
    value = {"list": [a, 1], "tuple": (b,), "pair": Pair(c, "x"), "point": Point(d, 0), "n": 5}
    assert find_calls(value) == [a, b, c, d]
    results = {id(a): 10, id(b): 20, id(c): 30, id(d): 40}
    done = substitute(value, lambda call: results[id(call)])
    assert done == {
        "list": [10, 1], "tuple": (20,), "pair": Pair(30, "x"), "point": Point(40, 0), "n": 5,
    }  # fmt: skip
    assert type(done["point"]) is Point
    plain = {"a": [1, 2]}
    assert substitute(plain, lambda call: None) is plain  # unchanged containers are kept
