"""The validated settings read from ``ledgerflow.yml``.

Plain frozen dataclasses: nothing here does I/O. :mod:`ledgerflow.config.loader` builds
them from YAML; every other layer reads them.
"""

from __future__ import annotations

import getpass
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

Dialect = Literal["sqlite", "postgresql"]
REDACTED = "***"
#: The database that holds the ledger; models without ``__bind_key__`` live there too.
DEFAULT_BIND = "default"

_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")


def hide_url_passwords(text: str) -> str:
    """``scheme://name:password@host`` becomes ``scheme://name:***@host`` anywhere in ``text``."""
    return _URL_PASSWORD.sub(rf"\1{REDACTED}@", text)


@dataclass(frozen=True)
class Credentials:
    """A role name and its password; the password never shows in ``repr`` or ``str``."""

    username: str
    password: str | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return self.username if self.password is None else f"{self.username}:{REDACTED}"

    @classmethod
    def parse(cls, text: str) -> Credentials:
        """``"name:password"`` or ``"name"``."""
        name, sep, password = text.partition(":")
        return cls(name, password if sep else None)


@dataclass(frozen=True)
class DatabaseConfig:
    """One entry of ``databases:`` (a *bind*)."""

    name: str
    dialect: Dialect
    path: Path | None = None  # sqlite: absolute path of the database file
    host: str | None = None  # postgresql
    port: int = 5432
    database: str | None = None
    admin: Credentials | None = None
    user: Credentials | None = None
    options: dict[str, str] = field(default_factory=dict)
    source: str = "ledgerflow.yml"  # file the entry was read from, for error messages

    def describe(self) -> str:
        """A human location with no secret: a file path or ``host:port/database``."""
        if self.dialect == "sqlite":
            return f"sqlite:{self.path}"
        return f"postgresql://{self.host}:{self.port}/{self.database}"

    def credentials(self, role: Literal["user", "admin"]) -> Credentials | None:
        """The credentials for a role; the runtime role falls back to admin when no user is set."""
        if role == "admin":
            return self.admin
        return self.user or self.admin


#: The executors ledgerflow implements, by name: the one list read by the configuration
#: check, ``ledgerflow run --executor`` and the registry in :mod:`ledgerflow.engine.executor`
#: (each name is a module of :mod:`ledgerflow.executors`).
EXECUTOR_KINDS = ("local", "threads", "processes", "dask")


#: The batch schedulers a ``dask`` executor can start its workers under (via dask-jobqueue).
CLUSTER_KINDS = ("slurm", "pbs", "sge", "lsf")


@dataclass(frozen=True)
class ClusterConfig:
    """A dask-jobqueue cluster (``executor.cluster``): each batch job runs Dask workers."""

    kind: str
    cores: int
    memory: str
    walltime: str | None = None
    queue: str | None = None
    account: str | None = None
    job_extra_directives: tuple[str, ...] = ()
    processes: int | None = None  # worker processes per job (dask-jobqueue's default if None)
    jobs: int | None = None  # scale: {jobs: N}
    minimum_jobs: int | None = None  # adapt: {minimum_jobs, maximum_jobs}
    maximum_jobs: int | None = None
    options: dict[str, Any] = field(default_factory=dict)  # passed on to the cluster class


#: The default ``executor.by_reference_bytes`` of the dask executor (16 MiB).
BY_REFERENCE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class ExecutorConfig:
    kind: str = "local"
    workers: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    threads_per_worker: int | None = None  # dask: threads in each worker process
    address: str | None = None  # dask: an existing scheduler, ``tcp://host:8786``
    cluster: ClusterConfig | None = None  # dask: workers as batch jobs
    #: dask: a result whose pickled size is above this is stored by its worker and sent
    #: back as a reference (the value store must be writable from the workers)
    by_reference_bytes: int = BY_REFERENCE_BYTES


#: ``values.store`` naming the ledger database itself (chunks in ``lf_value_chunk``).
LEDGER_STORE = "ledger"


@dataclass(frozen=True)
class ValuesConfig:
    """Where values over ``inline_max_bytes`` live (``values:``).

    ``store`` is a local folder (a ``Path``; ``file://`` URLs become one), ``"ledger"`` (the
    ledger database itself) or an object store URL such as ``s3://bucket/prefix``, opened
    with fsspec and ``store_options``. :func:`ledgerflow.values.open_store` opens it.
    """

    inline_max_bytes: int = 1_048_576
    store: Path | str = Path(".ledgerflow/values")
    store_options: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class CacheConfig:
    file_hash: Literal["content", "fast"] = "content"
    #: claim uncached calls before computing them, so that concurrent runs compute each once
    claim: bool = True
    #: wait for calls another run has claimed (False: compute them anyway)
    wait: bool = True
    #: seconds a claim stays valid without its owner's heartbeat
    lease: float = 30.0
    #: seconds between two looks at the calls this run waits for
    poll: float = 0.5
    #: Writers whose pickled values may be loaded (unpickling runs code); None means the
    #: default: this project's own writer name and the admin role's.
    trust: tuple[str, ...] | None = None


def os_user() -> str:
    """The operating-system user running this process (its uid when it has no name)."""
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


@dataclass(frozen=True)
class LogsConfig:
    """What a task run's log keeps of the task's prints and logging (``logs:``)."""

    max_bytes: int = 1_048_576  # per task run; what is over is dropped, with a closing note
    echo: bool = True  # printed lines also go on to the terminal


@dataclass(frozen=True)
class DashboardConfig:
    """``ledgerflow dashboard``'s defaults (``dashboard:``); the command line overrides them."""

    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = field(default=None, repr=False)  # never shown: redacted like passwords


@dataclass(frozen=True)
class OpenLineageConfig:
    """Where a run's live OpenLineage events go (``lineage: openlineage:``).

    ``transport`` is handed to openlineage-python's transport factory as it is (``type:
    console | file | http | ...`` and that transport's options); ``namespace`` is the jobs'
    namespace; ``flush_timeout`` the seconds the end of a run waits, at most, for the events
    still buffered.
    """

    transport: dict[str, Any] = field(repr=False)
    namespace: str = "ledgerflow"
    flush_timeout: float = 5.0


@dataclass(frozen=True)
class LineageConfig:
    """Lineage emitted while runs run (``lineage:``); nothing by default."""

    openlineage: OpenLineageConfig | None = None


@dataclass(frozen=True)
class Settings:
    """The effective configuration of one project."""

    path: Path | None  # the ledgerflow.yml, None for settings built in code
    databases: dict[str, DatabaseConfig]
    plugins: tuple[str, ...] = ()
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    values: ValuesConfig = field(default_factory=ValuesConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    logs: LogsConfig = field(default_factory=LogsConfig)
    dashboard: DashboardConfig = field(default_factory=DashboardConfig)
    lineage: LineageConfig = field(default_factory=LineageConfig)
    auto_migrate: bool = False
    redacted: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def root(self) -> Path:
        return self.path.parent if self.path else Path.cwd()

    @property
    def default(self) -> DatabaseConfig:
        return self.databases[DEFAULT_BIND]

    def redacted_yaml(self) -> str:
        return self._redacted_yaml

    @cached_property
    def _redacted_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.redacted, sort_keys=False)

    @cached_property
    def writer(self) -> str:
        """The name the ledger records as the writer of this project's values and cache
        entries: the runtime database role on PostgreSQL (the server sets it), the
        operating-system user on SQLite."""
        db = self.default
        if db.dialect == "postgresql":
            credentials = db.credentials("user")
            if credentials is not None:
                return credentials.username
        return os_user()

    @cached_property
    def trusted_writers(self) -> frozenset[str]:
        """Writers whose pickled values are loaded: ``cache.trust``, by default this
        project's own writer and the admin role."""
        if self.cache.trust is not None:
            return frozenset(self.cache.trust)
        names = {self.writer}
        admin = self.default.admin
        if admin is not None and self.default.dialect == "postgresql":
            names.add(admin.username)
        return frozenset(names)

    @cached_property
    def hash(self) -> str:
        """Hash of the redacted configuration, as recorded with each run (``lf_run.config_hash``).

        A :func:`ledgerflow.hashing.hash_bytes` digest like every other hash; ledgers written
        before it was keep their older 64-character SHA-256 configuration hashes."""
        from ledgerflow.hashing.digest import hash_bytes

        return hash_bytes(self._redacted_yaml.encode())
