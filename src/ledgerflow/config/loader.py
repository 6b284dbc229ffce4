"""Finding, reading and validating ``ledgerflow.yml`` into :class:`Settings`.

Relative paths (a sqlite ``path``, ``values.store``) are relative to the directory of the
main configuration file, even for entries read through ``!include``.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ledgerflow.config._yaml import Interpolated, Where, interpolate, load_yaml
from ledgerflow.config.settings import (
    REDACTED,
    CacheConfig,
    Credentials,
    DatabaseConfig,
    ExecutorConfig,
    Settings,
    ValuesConfig,
)
from ledgerflow.errors import ConfigError

CONFIG_NAMES = ("ledgerflow.yml", "ledgerflow.yaml")
ENV_VAR = "LEDGERFLOW_CONFIG"
_HINT = "run `ledgerflow init` or pass --config"

TOP_KEYS = ("databases", "plugins", "executor", "values", "cache", "auto_migrate")
SQLITE_KEYS = ("dialect", "path")
POSTGRES_KEYS = ("dialect", "address", "database", "admin", "user", "options")
DIALECTS = ("sqlite", "postgresql")
EXECUTOR_KINDS = ("local", "threads", "processes", "dask")
FILE_HASHES = ("content", "fast")

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_SECRET_KEY = re.compile(r"password|passwd|secret|token|^pwd$|^pass$|api_?key", re.I)
_URL_CREDENTIALS = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")


# -- discovery ---------------------------------------------------------------------------


def _in_dir(directory: Path) -> Path | None:
    for name in CONFIG_NAMES:
        if (directory / name).is_file():
            return directory / name
    return None


def find_config(
    explicit: str | Path | None = None,
    cwd: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Path:
    """The config file: ``explicit``, else ``$LEDGERFLOW_CONFIG``, else walk up from ``cwd``."""
    base = Path(os.path.abspath(cwd if cwd is not None else Path.cwd()))
    env = os.environ if environ is None else environ
    for given, origin in ((explicit, "--config"), (env.get(ENV_VAR) or None, ENV_VAR)):
        if given is None:
            continue
        path = Path(os.path.abspath(base / Path(given).expanduser()))
        found = _in_dir(path) if path.is_dir() else path if path.is_file() else None
        if found is None:
            raise ConfigError(f"{path}: configuration file not found (from {origin})", hint=_HINT)
        return found
    for directory in (base, *base.parents):
        found = _in_dir(directory)
        if found is not None:
            return found
    raise ConfigError(
        f"no {' or '.join(CONFIG_NAMES)} in {base} or any parent directory, "
        f"and {ENV_VAR} is not set",
        hint=_HINT,
    )


def load_settings(
    path: str | Path | None = None,
    *,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Read and validate a config file (found by :func:`find_config` when ``path`` is None)."""
    config = find_config(path, cwd, environ=environ)
    data = load_yaml(config)
    return settings_from_mapping(data, path=config, environ=environ)


def settings_from_mapping(
    data: Mapping[str, Any],
    *,
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Validate a parsed configuration; relative paths are relative to ``path``'s folder."""
    path = Path(os.path.abspath(path)) if path is not None else None
    root = Where(str(path) if path is not None else "<settings>")
    data = interpolate(data, os.environ if environ is None else environ, root)
    if not isinstance(data, Mapping):
        raise root.error(f"expected a mapping at the top level, got {_type(data)}")
    base = path.parent if path is not None else Path.cwd()
    _check_keys(data, TOP_KEYS, root)
    raw_databases = _required(data, "databases", root)
    databases = _databases(raw_databases, root.child("databases", raw_databases), base)
    plugins = _plugins(data.get("plugins"), root.child("plugins"))
    executor = _executor(data.get("executor"), root.child("executor", data.get("executor")))
    values = _values(data.get("values"), root.child("values", data.get("values")), base)
    cache = _cache(data.get("cache"), root.child("cache", data.get("cache")))
    auto_migrate = _optional(data, "auto_migrate", root, _bool, False)
    effective = {
        "databases": {name: _describe_db(db) for name, db in databases.items()},
        "plugins": list(plugins),
        "executor": {
            "kind": executor.kind,
            "workers": executor.workers,
            "address": executor.address,
            "options": executor.options,
        },
        "values": {"inline_max_bytes": values.inline_max_bytes, "store": str(values.store)},
        "cache": {"file_hash": cache.file_hash},
        "auto_migrate": auto_migrate,
    }
    return Settings(
        path=path,
        databases=databases,
        plugins=plugins,
        executor=executor,
        values=values,
        cache=cache,
        auto_migrate=auto_migrate,
        redacted=redact(effective),
    )


# -- redaction ---------------------------------------------------------------------------


def redact(mapping: Mapping[Any, Any]) -> dict[str, Any]:
    """A plain, YAML-dumpable copy of ``mapping`` with every secret replaced by ``***``.

    Masks values under keys such as ``password``, ``secret`` or ``token``, the password part
    of ``admin``/``user`` credentials and of ``scheme://name:password@host`` strings.
    """
    return {str(key): _redact_value(str(key), value) for key, value in mapping.items()}


def _redact_value(key: str, value: Any) -> Any:
    if value is not None and _SECRET_KEY.search(key):
        return REDACTED
    if isinstance(value, Mapping):
        return redact(value)
    if isinstance(value, list | tuple):
        return [_redact_value(key, item) for item in value]
    if isinstance(value, Credentials | Path):
        return str(value)
    if isinstance(value, str):
        if key in ("admin", "user"):
            return str(Credentials.parse(value))
        return _URL_CREDENTIALS.sub(rf"\1{REDACTED}@", str(value))
    return value


def _describe_db(db: DatabaseConfig) -> dict[str, Any]:
    if db.dialect == "sqlite":
        return {"dialect": db.dialect, "path": str(db.path)}
    return {
        "dialect": db.dialect,
        "address": f"{db.host}:{db.port}",
        "database": db.database,
        "admin": db.admin,
        "user": db.user,
        "options": db.options,
    }


# -- scalar checks -----------------------------------------------------------------------


def _type(value: object) -> str:
    names = {type(None): "null", bool: "boolean", int: "integer", float: "number"}
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "mapping"
    if isinstance(value, list):
        return "list"
    return names.get(type(value), type(value).__name__)


def _str(value: Any, where: Where, what: str = "a string") -> str:
    if not isinstance(value, str):
        raise where.error(f"expected {what}, got {_type(value)}")
    return str(value)


def _int(value: Any, where: Where, minimum: int) -> int:
    if isinstance(value, Interpolated) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        got = _type(value) if not isinstance(value, int) or isinstance(value, bool) else value
        raise where.error(f"expected an integer >= {minimum}, got {got}")
    return value


_BOOLS = {"true": True, "yes": True, "on": True, "1": True}
_BOOLS |= {"false": False, "no": False, "off": False, "0": False}


def _bool(value: Any, where: Where) -> bool:
    if isinstance(value, Interpolated) and value.strip().lower() in _BOOLS:
        return _BOOLS[value.strip().lower()]
    if not isinstance(value, bool):
        raise where.error(f"expected a boolean (true or false), got {_type(value)}")
    return value


def _choice(value: Any, where: Where, allowed: tuple[str, ...], what: str) -> str:
    text = _str(value, where)
    if text not in allowed:
        close = difflib.get_close_matches(text, allowed, n=1)
        raise where.error(
            f"unknown {what} {text!r}, expected one of: {', '.join(allowed)}",
            hint=f"did you mean {close[0]!r}?" if close else None,
        )
    return text


def _mapping(value: Any, where: Where) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise where.error(f"expected a mapping, got {_type(value)}")
    for key in value:
        if not isinstance(key, str):
            raise where.error(f"expected string keys, got a key of type {_type(key)}")
    return value


def _check_keys(data: Mapping[str, Any], allowed: tuple[str, ...], where: Where) -> None:
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            raise where.child(key).error(
                f"unknown key, allowed keys: {', '.join(allowed)}",
                hint=f"did you mean {close[0]!r}?" if close else None,
            )


def _required(data: Mapping[str, Any], key: str, where: Where) -> Any:
    if data.get(key) is None:
        raise where.child(key).error("required key is missing")
    return data[key]


def _optional(
    data: Mapping[str, Any], key: str, where: Where, check: Callable[..., Any], default: Any
) -> Any:
    """``check(value, where)`` for a key that is present and not null, else ``default``."""
    value = data.get(key)
    return default if value is None else check(value, where.child(key, value))


def _section(value: Any, where: Where, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    data = _mapping({} if value is None else value, where)
    _check_keys(data, allowed, where)
    return data


def _path(text: str, base: Path) -> Path:
    if text == ":memory:":
        return Path(text)
    return Path(os.path.abspath(base / Path(text).expanduser()))


# -- sections ----------------------------------------------------------------------------


def _databases(value: Any, where: Where, base: Path) -> dict[str, DatabaseConfig]:
    data = _mapping(value, where)
    if "default" not in data:
        raise where.error(
            "no 'default' database", hint="the ledger lives in databases.default; add it"
        )
    result = {}
    for name, entry in data.items():
        if not _IDENTIFIER.fullmatch(name):
            raise where.child(name).error(
                "database names must be identifiers ([A-Za-z_][A-Za-z0-9_]*)"
            )
        result[name] = _database(name, entry, where.child(name, entry), base)
    return result


def _database(name: str, value: Any, where: Where, base: Path) -> DatabaseConfig:
    data = _mapping(value, where)
    raw_dialect = _required(data, "dialect", where)
    dialect = _choice(raw_dialect, where.child("dialect"), DIALECTS, "dialect")
    if dialect == "sqlite":
        _check_keys(data, SQLITE_KEYS, where)
        text = _str(_required(data, "path", where), where.child("path"), "a file path")
        if not text:
            raise where.child("path").error("expected a file path, got an empty string")
        return DatabaseConfig(name, "sqlite", path=_path(text, base), source=where.file)
    _check_keys(data, POSTGRES_KEYS, where)
    host, port = _address(_required(data, "address", where), where.child("address"))
    database = _str(_required(data, "database", where), where.child("database"))
    admin = _optional(data, "admin", where, _credentials, None)
    user = _optional(data, "user", where, _credentials, None)
    if admin is None and user is None:
        raise where.error("expected 'admin' or 'user' credentials (or both), got neither")
    options = _optional(data, "options", where, _libpq_options, {})
    return DatabaseConfig(
        name,
        "postgresql",
        host=host,
        port=port,
        database=database,
        admin=admin,
        user=user,
        options=options,
        source=where.file,
    )


def _address(value: Any, where: Where) -> tuple[str, int]:
    """``host``, ``host:port`` or ``[ipv6]:port``; never echoes the text (it may hold a secret)."""
    text = _str(value, where, "'host[:port]'").strip()
    expected = "expected 'host[:port]' with a port from 1 to 65535"
    if "@" in text or "/" in text:
        raise where.error(expected, hint="put credentials under admin/user, not in the address")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise where.error(expected)
        port_text = rest[1:] if rest else None
    elif text.count(":") > 1:
        host, port_text = text, None  # a bare IPv6 address
    else:
        host, sep, port = text.partition(":")
        port_text = port if sep else None
    if not host:
        raise where.error(expected + ", got no host")
    if port_text is None:
        return host, 5432
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise where.error(expected)
    return host, int(port_text)


def _credentials(value: Any, where: Where) -> Credentials:
    """``"name:password"``, ``"name"`` or ``{name: ..., password: ...}``."""
    if isinstance(value, str):
        credentials = Credentials.parse(str(value))
    elif isinstance(value, Mapping):
        data = _section(value, where, ("name", "password"))
        name = _str(_required(data, "name", where), where.child("name"))
        password = _optional(data, "password", where, _password, None)
        credentials = Credentials(name, password)
    else:
        raise where.error(
            f"expected 'name:password', 'name' or a mapping {{name, password}}, got {_type(value)}"
        )
    if not credentials.username:
        raise where.error("expected 'name:password' or 'name', got an empty role name")
    return credentials


def _password(value: Any, where: Where) -> str:
    if not isinstance(value, str):
        raise where.error(f"expected a string, got {_type(value)}", hint="quote the password")
    return str(value)


def _libpq_options(value: Any, where: Where) -> dict[str, str]:
    data = _mapping(value, where)
    options = {}
    for key, option in data.items():
        if isinstance(option, int | float) and not isinstance(option, bool):
            option = str(option)
        options[key] = _str(option, where.child(key))
    return options


def _plugins(value: Any, where: Where) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise where.error(f"expected a list of module names, got {_type(value)}")
    plugins = []
    for i, item in enumerate(value):
        name = _str(item, where.child(i), "a dotted module name")
        if not _MODULE.fullmatch(name):
            raise where.child(i).error("expected a dotted module name like 'package.module'")
        plugins.append(name)
    return tuple(plugins)


def _executor(value: Any, where: Where) -> ExecutorConfig:
    data = _section(value, where, ("kind", "workers", "address", "options"))
    kind = _optional(
        data, "kind", where, lambda v, w: _choice(v, w, EXECUTOR_KINDS, "kind"), "local"
    )
    workers = _optional(data, "workers", where, lambda v, w: _int(v, w, 1), None)
    address = _optional(data, "address", where, _str, None)
    if address is not None and kind != "dask":
        raise where.child("address").error("only used with kind: dask")
    options = _optional(data, "options", where, _plain_mapping, {})
    return ExecutorConfig(kind=kind, workers=workers, address=address, options=options)


def _plain_mapping(value: Any, where: Where) -> dict[str, Any]:
    return _plain(_mapping(value, where))


def _plain(value: Any) -> Any:
    """Builtin containers and ``str`` only, so the result is YAML-dumpable."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return str(value) if isinstance(value, str) else value


def _values(value: Any, where: Where, base: Path) -> ValuesConfig:
    data = _section(value, where, ("inline_max_bytes", "store"))
    default = ValuesConfig()
    limit = _optional(data, "inline_max_bytes", where, lambda v, w: _int(v, w, 0), None)
    store = _optional(data, "store", where, lambda v, w: _str(v, w, "a folder path"), None)
    return ValuesConfig(
        inline_max_bytes=default.inline_max_bytes if limit is None else limit,
        store=_path(store or str(default.store), base),
    )


def _cache(value: Any, where: Where) -> CacheConfig:
    data = _section(value, where, ("file_hash",))
    file_hash = _optional(
        data, "file_hash", where, lambda v, w: _choice(v, w, FILE_HASHES, "file_hash"), "content"
    )
    return CacheConfig(file_hash=file_hash)
