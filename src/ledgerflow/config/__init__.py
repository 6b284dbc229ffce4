"""Configuration: find, read and validate ``ledgerflow.yml`` into :class:`Settings`."""

from ledgerflow.config.loader import find_config, load_settings, redact, settings_from_mapping
from ledgerflow.config.settings import (
    CacheConfig,
    Credentials,
    DatabaseConfig,
    ExecutorConfig,
    LogsConfig,
    Settings,
    ValuesConfig,
)

__all__ = [
    "CacheConfig",
    "Credentials",
    "DatabaseConfig",
    "ExecutorConfig",
    "LogsConfig",
    "Settings",
    "ValuesConfig",
    "find_config",
    "load_settings",
    "redact",
    "settings_from_mapping",
]
