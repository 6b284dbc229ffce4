"""``@task`` and the lazy calls it returns.

Calling a task does not run it: it returns a :class:`Call`, a promise of the task's result.
Passing a call to another task makes a dependency; the scheduler runs the calls.
Arguments are bound to the function's parameters when the call is made (so a wrong
argument fails at the call site) and defaults are applied, so ``f(1)`` and ``f(x=1)``
are the same call.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from ledgerflow.errors import TaskDefinitionError

if TYPE_CHECKING:
    from ledgerflow.hashing import CodeHash

P = ParamSpec("P")
R = TypeVar("R")

_POK = inspect.Parameter.POSITIONAL_OR_KEYWORD
_VAR_POS = inspect.Parameter.VAR_POSITIONAL
_VAR_KW = inspect.Parameter.VAR_KEYWORD
_KW_ONLY = inspect.Parameter.KEYWORD_ONLY
_EMPTY = inspect.Parameter.empty


class Task(Generic[P, R]):
    """A function whose calls are lazy, cached and recorded in the ledger."""

    __ledgerflow_task__ = True

    def __init__(
        self,
        func: Callable[P, R],
        *,
        name: str | None = None,
        namespace: str | None = None,
        version: str | int | None = None,
        cache: bool = True,
        retries: int = 0,
        timeout: float | None = None,
    ) -> None:
        if isinstance(func, Task):
            raise TaskDefinitionError(f"{func.name} is already a task", hint="apply @task once")
        if not callable(func):
            raise TaskDefinitionError(f"@task needs a function, got {type(func).__name__}")
        if inspect.iscoroutinefunction(func) or inspect.isgeneratorfunction(func):
            raise TaskDefinitionError(
                f"{getattr(func, '__qualname__', func)}: tasks must be plain (sync) functions",
                hint="return values (or further calls) instead of yielding or awaiting",
            )
        if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
            raise TaskDefinitionError(
                f"{func.__qualname__}: retries must be an integer >= 0 (got {retries!r})"
            )
        if timeout is not None and not _positive_seconds(timeout):
            raise TaskDefinitionError(
                f"{func.__qualname__}: timeout must be a positive number of seconds (got {timeout!r})",
                hint="e.g. @task(timeout=60), or leave it out for no limit",
            )
        functools.update_wrapper(self, func)
        self.func = func
        self.name: str = name or func.__name__
        self.namespace: str = func.__module__ if namespace is None else namespace
        self.version: str | None = None if version is None else str(version)
        self.cache = bool(cache)
        self.retries = retries
        #: Seconds a task run may take (None: no limit); see docs/tasks.md.
        self.timeout: float | None = None if timeout is None else float(timeout)
        self.fullname = f"{self.namespace}.{self.name}" if self.namespace else self.name
        self._code: CodeHash | None = None
        self._bind_setup(inspect.signature(func))

    # -- binding -----------------------------------------------------------------------

    def _bind_setup(self, signature: inspect.Signature) -> None:
        params = list(signature.parameters.values())
        self.param_names: tuple[str, ...] = tuple(p.name for p in params)
        self._kinds = tuple(p.kind for p in params)
        self._defaults = {p.name: p.default for p in params if p.default is not _EMPTY}
        self._signature = signature
        self._simple = all(k is _POK for k in self._kinds)

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        """Argument values in parameter order with defaults applied (``*args`` as a tuple,
        ``**kwargs`` as a dict)."""
        if self._simple:
            names = self.param_names
            if len(args) > len(names):
                raise self._bind_error(
                    f"takes {len(names)} positional argument(s) but {len(args)} were given"
                )
            if not kwargs and len(args) == len(names):
                return args
            values = list(args)
            for name in names[: len(args)]:
                if name in kwargs:
                    raise self._bind_error(f"got multiple values for argument '{name}'")
            used = 0
            for name in names[len(args) :]:
                if name in kwargs:
                    values.append(kwargs[name])
                    used += 1
                elif name in self._defaults:
                    values.append(self._defaults[name])
                else:
                    raise self._bind_error(f"missing a required argument: '{name}'")
            if used != len(kwargs):
                unknown = sorted(set(kwargs) - set(names))
                raise self._bind_error(f"got an unexpected keyword argument '{unknown[0]}'")
            return tuple(values)
        try:
            bound = self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise self._bind_error(str(exc)) from None
        bound.apply_defaults()
        return tuple(bound.arguments[name] for name in self.param_names)

    def _bind_error(self, detail: str) -> TaskDefinitionError:
        return TaskDefinitionError(
            f"{self.name}(): {detail}", hint=f"signature: {self.name}{self._signature}"
        )

    def unbind(self, values: tuple[Any, ...]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """``(args, kwargs)`` to call the function with, from :meth:`bind`'s values."""
        if self._simple:
            return values, {}
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for name, kind, value in zip(self.param_names, self._kinds, values):
            if kind is _VAR_POS:
                args.extend(value)
            elif kind is _VAR_KW:
                kwargs.update(value)
            elif kind is _KW_ONLY:
                kwargs[name] = value
            else:
                args.append(value)
        return tuple(args), kwargs

    # -- calling -----------------------------------------------------------------------

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """A lazy :class:`Call` (typed as the result so pipelines type-check)."""
        return Call(self, self.bind(args, kwargs))  # type: ignore[return-value]

    @property
    def code(self) -> CodeHash:
        """The task's code hash (source, version and helpers), computed once per process."""
        if self._code is None:
            from ledgerflow.hashing import task_code_hash

            self._code = task_code_hash(self.func, self.version)
        return self._code

    @property
    def hash(self) -> str:
        return self.code.hash

    def __repr__(self) -> str:
        return f"<task {self.fullname}>"

    def __reduce__(self) -> tuple[Any, ...]:
        module = getattr(self.func, "__module__", None)
        qualname = getattr(self.func, "__qualname__", "")
        if module is None or "<locals>" in qualname:
            raise TaskDefinitionError(
                f"task {self.fullname} is defined inside a function and cannot be sent to "
                "another process",
                hint="define tasks at module level to use the processes executor",
            )
        return _load_task, (module, qualname)


def _positive_seconds(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return 0 < value < float("inf")


def _load_task(module: str, qualname: str) -> Task[Any, Any]:
    value: Any = importlib.import_module(module)
    for part in qualname.split("."):
        value = getattr(value, part)
    return value  # type: ignore[no-any-return]


class Call:
    """A lazy call of a task: the promise of its result."""

    __slots__ = ("task", "values")

    def __init__(self, task: Task[Any, Any], values: tuple[Any, ...]) -> None:
        self.task = task
        self.values = values

    @property
    def arguments(self) -> dict[str, Any]:
        """Argument name -> value (values may still be calls)."""
        return dict(zip(self.task.param_names, self.values))

    def __repr__(self) -> str:
        parts = (f"{n}={_short(v)}" for n, v in zip(self.task.param_names, self.values))
        return f"{self.task.name}({', '.join(parts)})"

    def __iter__(self) -> Any:
        raise TaskDefinitionError(
            f"cannot iterate over the lazy call {self.task.name}(...) inside a task",
            hint="pass it to another task, which receives the concrete value",
        )


def _short(value: Any) -> str:
    if isinstance(value, Call):
        return f"<{value.task.name}(...)>"
    text = repr(value) if isinstance(value, (int, float, str, bool, type(None))) else None
    if text is None:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 40 else text[:37] + "..."


@overload
def task(func: Callable[P, R], /) -> Task[P, R]: ...


@overload
def task(
    *,
    version: str | int | None = None,
    cache: bool = True,
    retries: int = 0,
    timeout: float | None = None,
    name: str | None = None,
    namespace: str | None = None,
) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def task(
    func: Callable[P, R] | None = None,
    /,
    *,
    version: str | int | None = None,
    cache: bool = True,
    retries: int = 0,
    timeout: float | None = None,
    name: str | None = None,
    namespace: str | None = None,
) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
    """Make a function a task: ``@task`` or ``@task(version="2", retries=1, timeout=60, ...)``."""
    options: dict[str, Any] = {
        "version": version, "cache": cache, "retries": retries, "timeout": timeout, "name": name,
        "namespace": namespace,
    }
    if func is not None:
        return Task(func, **options)

    def decorate(f: Callable[P, R]) -> Task[P, R]:
        return Task(f, **options)

    return decorate


def rerun_covers(task: Task[Any, Any], names: frozenset[str]) -> bool:
    """Whether ``--rerun NAME`` applies to ``task``: it is that task, or its code calls it
    (a cached result of a caller would hide the rerun). Names are short or qualified."""
    if not names:
        return False
    if task.name in names or task.fullname in names:
        return True
    for helper in task.code.helpers:
        if helper in names or helper.rpartition(".")[2] in names:
            return True
    return False


def is_task(obj: Any) -> bool:
    return getattr(obj, "__ledgerflow_task__", False) is True
