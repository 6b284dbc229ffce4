"""Every error ledgerflow raises on purpose.

Each class carries a message a user can act on (what went wrong, where, how to fix it)
and the exit code the CLI uses. The CLI catches :class:`LedgerflowError` only and prints
its message on one line; anything else is a bug and shows a traceback.
"""

from __future__ import annotations


class LedgerflowError(Exception):
    """Base of every ledgerflow error."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class UsageError(LedgerflowError):
    """Bad input on the command line or to a public function."""

    exit_code = 2


class ConfigError(LedgerflowError):
    """ledgerflow.yml is missing, malformed or invalid."""

    exit_code = 3


class ProjectExistsError(LedgerflowError):
    """`init` refuses to overwrite an existing project."""

    exit_code = 3


class PluginImportError(LedgerflowError):
    """A plugin named in the configuration cannot be imported."""

    exit_code = 3


class MissingExtraError(LedgerflowError):
    """An optional dependency is not installed."""

    exit_code = 3

    def __init__(self, feature: str, extra: str, module: str) -> None:
        super().__init__(
            f"{feature} needs the Python package '{module}', which is not installed",
            hint=f"pip install 'ledgerflow[{extra}]'",
        )


class ModelError(LedgerflowError):
    """A model definition is invalid (for example a table name used in two binds)."""

    exit_code = 3


class DatabaseError(LedgerflowError):
    """A database could not be reached or refused an operation."""

    exit_code = 4


class ConnectionFailedError(DatabaseError):
    """The server is unreachable or refused the credentials."""


class PrivilegeError(DatabaseError):
    """The database role may not do what was asked (an admin operation as the user role)."""


class ValueStoreError(LedgerflowError):
    """The value store (``values.store``) cannot be reached, read or written."""

    exit_code = 4


class LineageSendError(LedgerflowError):
    """A lineage endpoint (an OpenLineage transport) could not be reached or refused events."""

    exit_code = 4


class MigrationError(LedgerflowError):
    """A migration could not be created or applied."""

    exit_code = 5


class SchemaOutdatedError(MigrationError):
    """The database is older than the library or the plugins' migrations."""


class SchemaTooNewError(MigrationError):
    """The database was migrated by a newer ledgerflow than this one."""


class TaskDefinitionError(LedgerflowError):
    """A task is declared or called incorrectly."""

    exit_code = 2


class ContextError(LedgerflowError):
    """`context` was used outside a running task."""


class TaskTimeoutError(LedgerflowError):
    """A task run went past its ``timeout=`` (recorded as the task run's failure)."""


class SerializationError(LedgerflowError):
    """A value cannot be stored in the ledger."""


class IntegrityError(LedgerflowError):
    """A stored value or cache entry failed its content check (bytes that do not hash to
    their address, an entry inconsistent with its call)."""

    exit_code = 6


class UntrustedValueError(IntegrityError):
    """A pickled value whose writer is not trusted (``cache.trust``): it is not loaded."""


class RunFailedError(LedgerflowError):
    """A run finished with failed tasks."""

    exit_code = 1


def signal_name(signum: int | None) -> str:
    """``SIGTERM`` for ``signal.SIGTERM``; ``SIGINT`` for None (a plain Ctrl-C)."""
    import signal

    if signum is None:
        return "SIGINT"
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class RunInterrupt(KeyboardInterrupt):
    """A stop signal (``signum``) arrived: a KeyboardInterrupt, so Ctrl-C code sees it.

    ``after_end``: it arrived once the run's end was recorded (nothing was interrupted).
    """

    def __init__(self, signum: int = 2, *, after_end: bool = False) -> None:
        super().__init__(signal_name(signum))
        self.signum = signum
        self.after_end = after_end


def interrupt_on_signal(signum: int, frame: object) -> None:
    """A signal handler: raise :class:`RunInterrupt` at once.

    The command line handles SIGTERM and SIGHUP with it (:func:`stop_signals_interrupt`)
    outside a run's recording: while it loads the task, and after the run's end is
    recorded. A run replaces it with its own handler while it records (see
    :mod:`ledgerflow.engine.interrupts`).
    """
    raise RunInterrupt(signum)


def stop_signals_interrupt() -> None:
    """Make SIGTERM and SIGHUP raise :class:`RunInterrupt` like Ctrl-C raises
    KeyboardInterrupt (each only where its handler is the default: an ignored SIGHUP, under
    ``nohup``, stays ignored). Main thread only."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    for name in ("SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        if signum is not None and signal.getsignal(signum) is signal.SIG_DFL:
            signal.signal(signum, interrupt_on_signal)


class RunInterruptedError(LedgerflowError):
    """A run was interrupted (Ctrl-C, SIGTERM or SIGHUP): exit code 128 + the signal's
    number (130 after Ctrl-C, 143 after SIGTERM, 129 after SIGHUP)."""

    exit_code = 130

    def __init__(self, message: str, *, hint: str | None = None, signum: int | None = None):
        super().__init__(message, hint=hint)
        if signum is not None:
            self.exit_code = 128 + signum


class NotFoundError(LedgerflowError):
    """No ledger record matches an id, prefix or path (or a named file does not exist).

    A usage error (exit code 2), like an ambiguous prefix: the input names nothing. Exit
    code 4 stays reserved for a database that cannot be reached.
    """

    exit_code = 2


class AmbiguousIdError(LedgerflowError):
    """An id prefix matches several records."""

    exit_code = 2


class ImportRecordsError(LedgerflowError):
    """An export file holds a corrupt or invalid record."""

    exit_code = 6
