"""Hash of a task's code: its normalised source, its version and the user code it calls.

The source is parsed with :mod:`ast` and dumped without positions, decorators or docstring,
so comments, blank lines and formatting do not count. The names the body uses are resolved in
the function's globals and closure; user functions, ledgerflow tasks, attributes of user
modules (``helpers.clean``) and simple constants (numbers, strings, tuples of them) found there
are hashed too, transitively and with cycle protection. "User code" is any function whose file
is outside the standard library, site-packages and ledgerflow itself.

Functions without retrievable source (REPL lambdas, ``exec``) are hashed from their bytecode,
which depends on the Python version. The AST dump also changes between Python minor versions,
so upgrading Python invalidates cached results.
"""

from __future__ import annotations

import ast
import inspect
import os
import site
import sysconfig
import textwrap
import types
import weakref
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from ledgerflow.hashing.canonical import hash_value
from ledgerflow.hashing.digest import hash_bytes

_CONSTANT_TYPES = (type(None), bool, int, float, complex, str, bytes)
_BYTECODE_SOURCE = "# source unavailable: hashed from bytecode"


class CodeHash(NamedTuple):
    """``hash`` of a task's code, its normalised ``source`` and the ``helpers`` it covers
    (qualified name -> hash of that helper's own code or constant value)."""

    hash: str
    source: str
    helpers: dict[str, str]


class _Body(NamedTuple):
    """What one function contributes on its own: its hash, its source and what it uses."""

    hash: str
    source: str
    references: tuple[tuple[str, Any], ...]


_BODIES: weakref.WeakKeyDictionary[types.FunctionType, _Body] = weakref.WeakKeyDictionary()
_RESULTS: weakref.WeakKeyDictionary[types.FunctionType, dict[str | None, CodeHash]] = (
    weakref.WeakKeyDictionary()
)
_USER_FILES: dict[str, bool] = {}


def _library_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    dirs.update(site.getsitepackages())
    dirs.add(site.getusersitepackages())
    dirs.add(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # ledgerflow itself
    return tuple(os.path.join(os.path.realpath(d), "") for d in dirs if d)


_LIBRARY_DIRS = _library_dirs()


def _is_user_file(filename: str) -> bool:
    known = _USER_FILES.get(filename)
    if known is None:
        real = os.path.realpath(filename)
        parts = real.split(os.sep)
        known = not (
            filename.startswith("<frozen ")
            or real.startswith(_LIBRARY_DIRS)
            or "site-packages" in parts
            or "dist-packages" in parts
        )
        _USER_FILES[filename] = known
    return known


def _user_function(obj: Any) -> types.FunctionType | None:
    """The plain user-code function behind ``obj`` (a function, a task or a wrapper), if any."""
    if getattr(obj, "__ledgerflow_task__", False) is True:
        obj = getattr(obj, "func", None)
    elif not isinstance(obj, types.FunctionType):
        obj = getattr(obj, "__wrapped__", None)
    if isinstance(obj, types.FunctionType) and _is_user_file(obj.__code__.co_filename):
        return obj
    return None


def _is_user_module(obj: Any) -> bool:
    filename = getattr(obj, "__file__", None)
    return isinstance(obj, types.ModuleType) and filename is not None and _is_user_file(filename)


def _is_constant(value: Any) -> bool:
    if type(value) in _CONSTANT_TYPES:
        return True
    if type(value) in (tuple, frozenset):
        return len(value) <= 64 and all(type(v) in _CONSTANT_TYPES for v in value)
    return False


def _qualified(func: types.FunctionType) -> str:
    return f"{func.__module__}.{func.__qualname__}"


def _find_node(tree: ast.Module, func: types.FunctionType) -> ast.AST | None:
    if func.__name__ == "<lambda>":
        lambdas = [n for n in ast.walk(tree) if isinstance(n, ast.Lambda)]
        return lambdas[0] if len(lambdas) == 1 else None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == func.__name__:
            return node
    return None


def _normalised(func: types.FunctionType) -> ast.AST | None:
    """The function's AST without decorators and docstring, or None without usable source."""
    try:
        source = textwrap.dedent(inspect.getsource(func))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError, IndentationError):
        return None
    node = _find_node(tree, func)
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        node.decorator_list = []
        body = node.body
        if (
            body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return node


def _names_in(node: ast.AST) -> Iterator[tuple[str, ...]]:
    """Every ``name`` and ``name.attr[.attr...]`` chain the code loads."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load):
            yield (sub.id,)
        elif isinstance(sub, ast.Attribute):
            chain: list[str] = [sub.attr]
            base: ast.AST = sub.value
            while isinstance(base, ast.Attribute):
                chain.append(base.attr)
                base = base.value
            if isinstance(base, ast.Name):
                chain.append(base.id)
                yield tuple(reversed(chain))


def _names_in_code(code: types.CodeType) -> Iterator[tuple[str, ...]]:
    yield from ((name,) for name in code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _names_in_code(const)


def _code_summary(code: types.CodeType) -> tuple[Any, ...]:
    consts = tuple(_code_summary(c) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    return ("code", code.co_code, consts, code.co_names, code.co_varnames, code.co_freevars)


def _namespace(func: types.FunctionType) -> dict[str, Any]:
    scope = dict(func.__globals__)
    if func.__closure__:
        for name, cell in zip(func.__code__.co_freevars, func.__closure__):
            try:
                scope[name] = cell.cell_contents
            except ValueError:
                continue
    return scope


def _resolve(chain: tuple[str, ...], scope: dict[str, Any]) -> tuple[str, Any] | None:
    """The helper or constant a name chain points to, with its qualified name."""
    if chain[0] not in scope:
        return None
    obj = scope[chain[0]]
    owner = scope.get("__name__", "")
    for attr in chain[1:]:
        if not _is_user_module(obj):
            break
        owner = obj.__name__
        if attr not in vars(obj):
            return None
        obj, chain = vars(obj)[attr], (attr,)
    func = _user_function(obj)
    if func is not None:
        return _qualified(func), obj
    if len(chain) == 1 and _is_constant(obj):
        return f"{owner}.{chain[0]}", obj
    return None


def _body(func: types.FunctionType) -> _Body:
    cached = _BODIES.get(func)
    if cached is not None:
        return cached
    node = _normalised(func)
    if node is not None:
        dump = ast.dump(node, annotate_fields=True, include_attributes=False)
        digest = hash_bytes(dump.encode())
        source = ast.unparse(node)
        chains = set(_names_in(node))
    else:
        digest = hash_value(_code_summary(func.__code__))
        source = _BYTECODE_SOURCE
        chains = set(_names_in_code(func.__code__))
    scope = _namespace(func)
    found = {}
    for chain in sorted(chains):
        resolved = _resolve(chain, scope)
        if resolved is not None:
            found[resolved[0]] = resolved[1]
    body = _Body(digest, source, tuple(sorted(found.items())))
    _BODIES[func] = body
    return body


def _helper_digest(obj: Any, version: Any) -> str:
    func = _user_function(obj)
    if func is None:
        return hash_value(obj)
    return hash_value((_body(func).hash, version))


def _collect(root: types.FunctionType) -> dict[str, str]:
    """Hashes of everything ``root`` reaches, transitively; cycles are visited once."""
    helpers: dict[str, str] = {}
    pending: list[tuple[str, Any]] = list(_body(root).references)
    root_name = _qualified(root)
    while pending:
        name, obj = pending.pop()
        if name in helpers or name == root_name:
            continue
        version = getattr(obj, "version", None) if hasattr(obj, "__ledgerflow_task__") else None
        helpers[name] = _helper_digest(obj, version)
        func = _user_function(obj)
        if func is not None:
            pending.extend(_body(func).references)
    return helpers


def task_code_hash(func: Callable[..., Any], version: str | None = None) -> CodeHash:
    """Hash of ``func``'s normalised source, ``version`` and the helpers it uses.

    Editing a comment, a blank line or the formatting keeps the hash; editing the body of the
    function or of any user function or task it calls changes it. Cached per function object.
    """
    if getattr(func, "__ledgerflow_task__", False) is True:
        func = func.func  # type: ignore[attr-defined]
    if isinstance(func, types.MethodType):
        func = func.__func__
    if not isinstance(func, types.FunctionType):
        wrapped = getattr(func, "__wrapped__", None)
        if isinstance(wrapped, types.FunctionType):
            func = wrapped
        else:
            name = getattr(func, "__qualname__", type(func).__qualname__)
            digest = hash_value(("builtin", getattr(func, "__module__", None), name, version))
            return CodeHash(digest, f"# {name}: no Python source", {})
    per_version = _RESULTS.setdefault(func, {})
    result = per_version.get(version)
    if result is None:
        body = _body(func)
        helpers = _collect(func)
        digest = hash_value((body.hash, version, tuple(sorted(helpers.items()))))
        result = per_version[version] = CodeHash(digest, body.source, helpers)
    return result
