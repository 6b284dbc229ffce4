"""Finding, reading and validating ``ledgerflow.yml`` into :class:`Settings`.

Relative paths (a sqlite ``path``, ``values.store``) are relative to the directory of the
main configuration file, even for entries read through ``!include``.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ledgerflow.config import _checks as check
from ledgerflow.config._yaml import Where, interpolate, load_yaml
from ledgerflow.config.settings import (
    BY_REFERENCE_BYTES,
    CLUSTER_KINDS,
    DEFAULT_BIND,
    EXECUTOR_KINDS,
    LEDGER_STORE,
    REDACTED,
    CacheConfig,
    ClusterConfig,
    Credentials,
    DashboardConfig,
    DatabaseConfig,
    ExecutorConfig,
    LineageConfig,
    LogsConfig,
    OpenLineageConfig,
    Settings,
    ValuesConfig,
    hide_url_passwords,
)
from ledgerflow.errors import ConfigError

CONFIG_NAMES = ("ledgerflow.yml", "ledgerflow.yaml")
ENV_VAR = "LEDGERFLOW_CONFIG"
_HINT = "run `ledgerflow init` or pass --config"

TOP_KEYS = ("databases", "plugins", "executor", "values", "cache", "logs", "dashboard", "lineage",
            "auto_migrate")
SQLITE_KEYS = ("dialect", "path")
POSTGRES_KEYS = ("dialect", "address", "database", "admin", "user", "options")
DIALECTS = ("sqlite", "postgresql")
FILE_HASHES = ("content", "fast")

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


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
    for given, origin in ((explicit, "--config"), (env.get(ENV_VAR) or None, f"${ENV_VAR}")):
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
        raise root.error(f"expected a mapping at the top level, got {check.type_name(data)}")
    check.mapping(data, root)
    base = path.parent if path is not None else Path.cwd()
    check.known_keys(data, TOP_KEYS, root)
    raw_databases = check.required(data, "databases", root)
    databases = _databases(raw_databases, root.child("databases", raw_databases), base)
    plugins = _plugins(data.get("plugins"), root.child("plugins", data.get("plugins")))
    executor = _executor(data.get("executor"), root.child("executor", data.get("executor")))
    values = _values(
        data.get("values"), root.child("values", data.get("values")), base,
        databases[DEFAULT_BIND].dialect if DEFAULT_BIND in databases else "sqlite",
    )  # fmt: skip
    cache = _cache(data.get("cache"), root.child("cache", data.get("cache")))
    logs = _logs(data.get("logs"), root.child("logs", data.get("logs")))
    dashboard = _dashboard(data.get("dashboard"), root.child("dashboard", data.get("dashboard")))
    lineage = _lineage(data.get("lineage"), root.child("lineage", data.get("lineage")))
    auto_migrate = check.optional(data, "auto_migrate", root, check.boolean, False)
    effective = {
        "databases": {name: _describe_db(db) for name, db in databases.items()},
        "plugins": list(plugins),
        "executor": _describe_executor(executor),
        "values": _describe_values(values),
        "cache": _describe_cache(cache),
        "logs": {"max_bytes": logs.max_bytes, "echo": logs.echo},
        "auto_migrate": auto_migrate,
    }
    if data.get("dashboard") is not None:  # shown (and hashed) only when the file sets it
        effective["dashboard"] = {"host": dashboard.host, "port": dashboard.port, "token": dashboard.token}
    if lineage.openlineage is not None:  # where events go, without the transport's credentials
        transport = lineage.openlineage.transport
        effective["lineage"] = {"openlineage": {
            "namespace": lineage.openlineage.namespace,
            "transport": {k: transport[k] for k in ("type", "url", "endpoint", "log_file_path")
                          if k in transport},
        }}
    return Settings(
        path=path,
        databases=databases,
        plugins=plugins,
        executor=executor,
        values=values,
        cache=cache,
        logs=logs,
        dashboard=dashboard,
        lineage=lineage,
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
    if value is not None and check.SECRET_KEY.search(key):
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
        return hide_url_passwords(str(value))
    return value


def _describe_db(db: DatabaseConfig) -> dict[str, Any]:
    if db.dialect == "sqlite":
        return {"dialect": db.dialect, "path": str(db.path)}
    return {
        "dialect": db.dialect,
        "address": f"[{db.host}]:{db.port}" if ":" in str(db.host) else f"{db.host}:{db.port}",
        "database": db.database,
        "admin": db.admin,
        "user": db.user,
        "options": db.options,
    }


# -- sections ----------------------------------------------------------------------------


def _databases(value: Any, where: Where, base: Path) -> dict[str, DatabaseConfig]:
    data = check.mapping(value, where)
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
    data = check.mapping(value, where)
    raw_dialect = check.required(data, "dialect", where)
    dialect = check.choice(raw_dialect, where.child("dialect"), DIALECTS, "dialect")
    if dialect == "sqlite":
        check.known_keys(data, SQLITE_KEYS, where)
        raw_path = check.required(data, "path", where)
        text = check.path_text(raw_path, where.child("path"))
        return DatabaseConfig(name, "sqlite", path=check.absolute(text, base), source=where.file)
    check.known_keys(data, POSTGRES_KEYS, where)
    host, port = _address(check.required(data, "address", where), where.child("address"))
    database = check.string(check.required(data, "database", where), where.child("database"))
    admin = check.optional(data, "admin", where, _credentials, None)
    user = check.optional(data, "user", where, _credentials, None)
    if admin is None and user is None:
        raise where.error("expected 'admin' or 'user' credentials (or both), got neither")
    options = check.optional(data, "options", where, _libpq_options, {})
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
    text = check.string(value, where, "'host[:port]'").strip()
    expected = "expected 'host[:port]' with a port from 1 to 65535"
    if "@" in text:
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
        data = check.section(value, where, ("name", "password"))
        name = check.string(check.required(data, "name", where), where.child("name"))
        password = check.optional(data, "password", where, _password, None)
        credentials = Credentials(name, password)
    else:
        raise where.error(
            "expected 'name:password', 'name' or a mapping {name, password}, "
            f"got {check.type_name(value)}"
        )
    if not credentials.username:
        raise where.error("expected 'name:password' or 'name', got an empty role name")
    return credentials


def _password(value: Any, where: Where) -> str:
    if not isinstance(value, str):
        got = check.type_name(value)
        raise where.error(f"expected a string, got {got}", hint="quote the password")
    return str(value)


def _libpq_options(value: Any, where: Where) -> dict[str, str]:
    data = check.mapping(value, where)
    options = {}
    for key, option in data.items():
        if isinstance(option, int | float) and not isinstance(option, bool):
            option = str(option)
        options[key] = check.mask(key, check.string(option, where.child(key)))
    return options


def _plugins(value: Any, where: Where) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise where.error(f"expected a list of module names, got {check.type_name(value)}")
    plugins = []
    for i, item in enumerate(value):
        name = check.string(item, where.index(i), "a dotted module name")
        if not _MODULE.fullmatch(name):
            raise where.index(i).error("expected a dotted module name like 'package.module'")
        plugins.append(name)
    return tuple(plugins)


EXECUTOR_KEYS = (
    "kind", "workers", "options", "threads_per_worker", "address", "cluster",
    "by_reference_bytes",
)  # fmt: skip
DASK_KEYS = ("threads_per_worker", "address", "cluster", "by_reference_bytes")
CLUSTER_KEYS = (
    "kind", "cores", "memory", "walltime", "queue", "account", "job_extra_directives",
    "processes", "scale", "adapt", "options",
)  # fmt: skip


def _executor(value: Any, where: Where) -> ExecutorConfig:
    data = check.section(value, where, EXECUTOR_KEYS)
    kind = check.optional(data, "kind", where, check.choice_of(EXECUTOR_KINDS, "kind"), "local")
    workers = check.optional(data, "workers", where, check.integer_from(1), None)
    options = check.optional(data, "options", where, _plain_mapping, {})
    if kind != "dask":
        for key in DASK_KEYS:
            if data.get(key) is not None:
                raise where.child(key, data[key]).error(
                    f"'{key}' is a setting of the dask executor, not of '{kind}'"
                )
    threads = check.optional(data, "threads_per_worker", where, check.integer_from(1), None)
    address = check.optional(data, "address", where, _scheduler_address, None)
    by_reference = check.optional(
        data, "by_reference_bytes", where, check.integer_from(0), BY_REFERENCE_BYTES
    )
    raw_cluster = data.get("cluster")
    cluster = None
    if raw_cluster is not None:
        cluster = _cluster(raw_cluster, where.child("cluster", raw_cluster))
    if address is not None and cluster is not None:
        raise where.error("give either 'address' (an existing scheduler) or 'cluster', not both")
    return ExecutorConfig(
        kind=kind, workers=workers, options=options, threads_per_worker=threads,
        address=address, cluster=cluster, by_reference_bytes=by_reference,
    )  # fmt: skip


def _scheduler_address(value: Any, where: Where) -> str:
    text = check.string(value, where, "a scheduler address like 'tcp://host:8786'")
    if not re.fullmatch(r"[a-z]+://\S+", text):
        raise where.error(f"expected a scheduler address like 'tcp://host:8786', got '{text}'")
    return text


def _cluster(value: Any, where: Where) -> ClusterConfig:
    data = check.section(value, where, CLUSTER_KEYS)
    kind = check.choice(check.required(data, "kind", where), where.child("kind", data.get("kind")),
                        CLUSTER_KINDS, "kind")  # fmt: skip
    cores = check.integer(check.required(data, "cores", where),
                          where.child("cores", data.get("cores")), 1)  # fmt: skip
    memory = check.string(check.required(data, "memory", where),
                          where.child("memory", data.get("memory")), "a memory size like '16GB'")  # fmt: skip

    def text(key: str) -> str | None:
        return check.optional(data, key, where, check.string, None)  # type: ignore[no-any-return]

    directives = data.get("job_extra_directives") or []
    spot = where.child("job_extra_directives", directives)
    if not isinstance(directives, list):
        raise spot.error(f"expected a list of strings, got {check.type_name(directives)}")
    extra = tuple(check.string(item, spot.index(i)) for i, item in enumerate(directives))
    processes = check.optional(data, "processes", where, check.integer_from(1), None)
    if data.get("scale") is not None and data.get("adapt") is not None:
        raise where.error("give either 'scale' or 'adapt', not both")
    jobs = minimum = maximum = None
    if data.get("scale") is not None:
        scale_where = where.child("scale", data["scale"])
        scale = check.section(data["scale"], scale_where, ("jobs",))
        jobs = check.integer(check.required(scale, "jobs", scale_where),
                             scale_where.child("jobs", scale.get("jobs")), 0)  # fmt: skip
    if data.get("adapt") is not None:
        adapt_where = where.child("adapt", data["adapt"])
        adapt = check.section(data["adapt"], adapt_where, ("minimum_jobs", "maximum_jobs"))
        minimum = check.optional(adapt, "minimum_jobs", adapt_where, check.integer_from(0), 0)
        maximum = check.integer(check.required(adapt, "maximum_jobs", adapt_where),
                                adapt_where.child("maximum_jobs", adapt.get("maximum_jobs")), 1)  # fmt: skip
        if minimum > maximum:
            raise adapt_where.error(f"minimum_jobs ({minimum}) is above maximum_jobs ({maximum})")
    if jobs is None and maximum is None:
        jobs = 1
    return ClusterConfig(
        kind=kind, cores=cores, memory=memory, walltime=text("walltime"), queue=text("queue"),
        account=text("account"), job_extra_directives=extra, processes=processes, jobs=jobs,
        minimum_jobs=minimum, maximum_jobs=maximum,
        options=check.optional(data, "options", where, _plain_mapping, {}),
    )  # fmt: skip


def _describe_executor(executor: ExecutorConfig) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "kind": executor.kind, "workers": executor.workers, "options": executor.options,
    }  # fmt: skip
    if executor.kind == "dask":
        shown["threads_per_worker"] = executor.threads_per_worker
        shown["address"] = executor.address
        shown["by_reference_bytes"] = executor.by_reference_bytes
        if executor.cluster is not None:
            cluster = asdict(executor.cluster)
            cluster["job_extra_directives"] = list(executor.cluster.job_extra_directives)
            shown["cluster"] = cluster
    return shown


def _plain_mapping(value: Any, where: Where) -> dict[str, Any]:
    return {key: _plain(item, key) for key, item in check.mapping(value, where).items()}


def _plain(value: Any, key: str) -> Any:
    """Builtin containers and ``str``; secrets (by ``key``) are masked in ``repr``."""
    if isinstance(value, Mapping):
        return {k: _plain(item, str(k)) for k, item in value.items()}
    if isinstance(value, list):
        return [_plain(item, key) for item in value]
    return check.mask(key, str(value)) if isinstance(value, str) else value


def _values(value: Any, where: Where, base: Path, dialect: str) -> ValuesConfig:
    data = check.section(value, where, ("inline_max_bytes", "store", "store_options"))
    default = ValuesConfig()
    limit = check.optional(data, "inline_max_bytes", where, check.integer_from(0), None)
    store = check.optional(data, "store", where, check.path_text, None)
    options = check.optional(data, "store_options", where, _plain_mapping, {})
    return ValuesConfig(
        inline_max_bytes=default.inline_max_bytes if limit is None else limit,
        store=_value_store(store, base, dialect, where.child("store", store)),
        store_options=options,
    )


#: ``scheme://`` at the start of a ``values.store`` that names a URL rather than a folder.
_URL_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")


def _value_store(text: str | None, base: Path, dialect: str, where: Where) -> Path | str:
    """A folder (``Path``), ``"ledger"`` or an object store URL, from ``values.store``.

    Unset, large values live in the ledger database when it is PostgreSQL (so every checkout
    reaches them) and in ``.ledgerflow/values`` beside the configuration of a SQLite ledger."""
    if text is None:
        if dialect == "postgresql":
            return LEDGER_STORE
        return check.absolute(str(ValuesConfig().store), base)
    if text == LEDGER_STORE:
        return LEDGER_STORE
    scheme = _URL_SCHEME.match(text)
    if scheme is None:
        return check.absolute(text, base)
    if scheme.group(1).lower() == "file":
        path = urllib.parse.unquote(urllib.parse.urlsplit(text).path)
        if not path:
            raise where.error("a file:// URL needs a path, e.g. file:///shared/ledgerflow-values")
        return check.absolute(path, base)
    return text


def _describe_values(values: ValuesConfig) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "inline_max_bytes": values.inline_max_bytes, "store": hide_url_passwords(str(values.store)),
    }  # fmt: skip
    if values.store_options:
        shown["store_options"] = values.store_options
    return shown


def _cache(value: Any, where: Where) -> CacheConfig:
    data = check.section(value, where, ("file_hash", "claim", "wait", "lease", "poll", "trust"))
    default = CacheConfig()
    file_hash = check.optional(
        data, "file_hash", where, check.choice_of(FILE_HASHES, "file_hash"), "content"
    )
    lease = check.optional(data, "lease", where, check.seconds_from(0.5), default.lease)
    poll = check.optional(data, "poll", where, check.seconds_from(0.05), default.poll)
    return CacheConfig(
        file_hash=file_hash,
        claim=check.optional(data, "claim", where, check.boolean, default.claim),
        wait=check.optional(data, "wait", where, check.boolean, default.wait),
        lease=lease,
        poll=poll,
        trust=check.optional(data, "trust", where, _writer_names, None),
    )


def _writer_names(value: Any, where: Where) -> tuple[str, ...]:
    """``cache.trust``: a list of writer names (database roles or operating-system users)."""
    if not isinstance(value, list):
        raise where.error(
            f"expected a list of writer names, got {check.type_name(value)}",
            hint="e.g. trust: [alice, pipeline_admin]",
        )
    names = []
    for position, item in enumerate(value):
        name = check.string(item, where.index(position, item), "a writer name").strip()
        if not name:
            raise where.error("expected writer names, got an empty string")
        names.append(name)
    return tuple(dict.fromkeys(names))


def _describe_cache(cache: CacheConfig) -> dict[str, Any]:
    shown: dict[str, Any] = {"file_hash": cache.file_hash, "claim": cache.claim,
                             "wait": cache.wait, "lease": cache.lease, "poll": cache.poll}
    if cache.trust is not None:
        shown["trust"] = list(cache.trust)
    return shown


def _logs(value: Any, where: Where) -> LogsConfig:
    data = check.section(value, where, ("max_bytes", "echo"))
    default = LogsConfig()
    return LogsConfig(
        max_bytes=check.optional(
            data, "max_bytes", where, check.integer_from(0), default.max_bytes
        ),
        echo=check.optional(data, "echo", where, check.boolean, default.echo),
    )


def _dashboard(value: Any, where: Where) -> DashboardConfig:
    data = check.section(value, where, ("host", "port", "token"))
    default = DashboardConfig()
    host = check.optional(data, "host", where, check.string, default.host).strip()
    if not host:
        raise where.child("host").error("expected an address to listen on, got an empty string")
    port = check.optional(data, "port", where, check.integer_from(0), default.port)
    if port > 65535:
        raise where.child("port").error(f"expected a port from 0 to 65535, got {port}")
    token = check.optional(data, "token", where, _token, None)
    return DashboardConfig(host=host, port=port, token=token or None)


def _lineage(value: Any, where: Where) -> LineageConfig:
    data = check.section(value, where, ("openlineage",))
    raw = data.get("openlineage")
    if raw is None:
        return LineageConfig()
    here = where.child("openlineage", raw)
    section = check.section(raw, here, ("transport", "namespace", "flush_timeout"))
    transport = check.mapping(check.required(section, "transport", here),
                              here.child("transport", section.get("transport")))
    kind = transport.get("type")
    if not isinstance(kind, str) or not kind.strip():
        raise here.child("transport", transport).error(
            "expected a transport with a 'type' (console, file, http, ...)",
            hint="for example transport: {type: http, url: http://localhost:5000}")
    namespace = check.optional(section, "namespace", here, check.string, "ledgerflow").strip()
    if not namespace:
        raise here.child("namespace").error("expected a namespace, got an empty string")
    flush = section.get("flush_timeout", 5.0)
    if isinstance(flush, bool) or not isinstance(flush, int | float) or flush < 0:
        raise here.child("flush_timeout", flush).error(
            f"expected seconds (a number from 0), got {flush!r}")
    return LineageConfig(OpenLineageConfig(dict(transport), namespace, float(flush)))


def _token(value: Any, where: Where) -> str:
    """The dashboard's access token: a string, masked in ``repr`` like any secret."""
    if not isinstance(value, str):
        raise where.error(f"expected a string, got {check.type_name(value)}", hint="quote the token")
    masked: str = check.mask("token", str(value))
    return masked
