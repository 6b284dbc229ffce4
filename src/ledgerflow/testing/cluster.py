"""A throwaway PostgreSQL cluster for tests, when no server is reachable.

:func:`start_throwaway_cluster` runs ``initdb`` and ``pg_ctl`` (found on ``PATH`` or in
Debian's ``/usr/lib/postgresql/*/bin``) in a new temporary directory; the cluster trusts
local connections, listens on 127.0.0.1 on a free port, runs without durability, and
:meth:`ThrowawayCluster.stop` (also run at exit) deletes it.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledgerflow.errors import DatabaseError
from ledgerflow.testing.postgres import LOCAL_HOST, PgServer, check_server

DEBIAN_BIN_GLOB = "/usr/lib/postgresql/*/bin"
INSTALL_HINT = "install the Debian package 'postgresql': apt-get install -y postgresql"


def find_pg_bin_dir() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl``: PATH first, then Debian's layout."""
    initdb = shutil.which("initdb")
    if initdb:
        directory = Path(initdb).resolve().parent
        if (directory / "pg_ctl").exists():
            return directory
    versions = []
    for candidate in glob.glob(DEBIAN_BIN_GLOB):
        version = Path(candidate).parent.name
        if version.replace(".", "").isdigit() and (Path(candidate) / "initdb").exists():
            versions.append((tuple(int(p) for p in version.split(".")), Path(candidate)))
    if versions:
        return max(versions)[1]
    raise DatabaseError(
        "cannot start a throwaway PostgreSQL cluster: 'initdb' and 'pg_ctl' were found "
        "neither on PATH nor in /usr/lib/postgresql/*/bin",
        hint=INSTALL_HINT,
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCAL_HOST, 0))
        return int(sock.getsockname()[1])


def _unprivileged_account() -> pwd.struct_passwd | None:
    """The account to run PostgreSQL as: None when we are not root (run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise DatabaseError(
        "cannot start a throwaway PostgreSQL cluster as root: PostgreSQL refuses to run as "
        "root and there is no 'postgres' or 'nobody' account to run it as",
        hint=INSTALL_HINT,
    )


def _reachable_by(path: Path, account: pwd.struct_passwd) -> bool:
    """Whether ``account`` may traverse every directory leading to ``path``."""
    for directory in [path, *path.parents]:
        st = directory.stat()
        if st.st_uid == account.pw_uid:
            allowed = st.st_mode & 0o100
        elif st.st_gid == account.pw_gid:
            allowed = st.st_mode & 0o010
        else:
            allowed = st.st_mode & 0o001
        if not allowed:
            return False
    return True


@dataclass(frozen=True)
class ThrowawayCluster(PgServer):
    """A cluster started by :func:`start_throwaway_cluster`; :meth:`stop` removes it."""

    root: Path = field(default=Path(), compare=False)
    bin_dir: Path = field(default=Path(), compare=False)
    account: pwd.struct_passwd | None = field(default=None, repr=False, compare=False)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    def stop(self) -> None:
        """Stop the server (immediately: its data is thrown away) and delete its files."""
        if not self.root.exists():
            return
        if (self.data_dir / "postmaster.pid").exists():
            _run_pg(
                [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate",
                 "-w", "stop"],
                self.account, self.root, check=False,
            )
        shutil.rmtree(self.root, ignore_errors=True)


def _run_pg(
    argv: list[str], account: pwd.struct_passwd | None, cwd: Path, *, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL program, as ``account`` when we are root."""
    kwargs: dict[str, Any] = {}
    env = dict(os.environ)
    if account is not None:
        kwargs = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        env.update(HOME=account.pw_dir, USER=account.pw_name, LOGNAME=account.pw_name)
    result = subprocess.run(
        argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=120, **kwargs,
    )
    if check and result.returncode != 0:
        output = (result.stderr or result.stdout).strip()
        raise DatabaseError(
            f"cannot start a throwaway PostgreSQL cluster: {Path(argv[0]).name} exited with "
            f"status {result.returncode}: {output[-2000:]}",
            hint=INSTALL_HINT if result.returncode == 127 else None,
        )
    return result


_MAX_SOCKET_DIR = 90
_CLUSTER_SETTINGS = """
# ledgerflow throwaway test cluster: durability off, it is deleted at the end.
listen_addresses = '127.0.0.1'
unix_socket_directories = '{socket_dir}'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
log_min_messages = warning
"""


def start_throwaway_cluster(base_dir: str | Path | None = None) -> ThrowawayCluster:
    """``initdb`` a cluster in a new directory under ``base_dir`` and start it.

    ``base_dir`` defaults to the system temporary directory. Authentication is ``trust``
    and the server listens on 127.0.0.1 only, on a free port; the superuser is
    ``postgres``. As root, PostgreSQL runs as the ``postgres`` account. Call
    :meth:`ThrowawayCluster.stop` to stop it and delete its files (also done at exit).
    """
    bin_dir = find_pg_bin_dir()
    account = _unprivileged_account()
    base = Path(base_dir) if base_dir is not None else Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="lf-pg-", dir=base))
    if account is not None:
        if not _reachable_by(base.resolve(), account):
            shutil.rmtree(root)
            raise DatabaseError(
                f"cannot start a throwaway PostgreSQL cluster in {base}: the "
                f"'{account.pw_name}' account that runs it cannot reach that directory",
                hint="pass a base directory every user may traverse, such as /tmp",
            )
        os.chown(root, account.pw_uid, account.pw_gid)
    try:
        cluster = _init_and_start(root, bin_dir, account)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    atexit.register(cluster.stop)
    return cluster


def _init_and_start(
    root: Path, bin_dir: Path, account: pwd.struct_passwd | None
) -> ThrowawayCluster:
    data = root / "data"
    _run_pg(
        [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
         "--encoding=UTF8", "--locale=C", "--no-sync"],
        account, root,
    )
    with open(data / "postgresql.conf", "a", encoding="utf-8") as conf:
        # A Unix socket path longer than ~107 bytes is refused: then TCP only.
        socket_dir = str(root) if len(str(root)) <= _MAX_SOCKET_DIR else ""
        conf.write(_CLUSTER_SETTINGS.format(socket_dir=socket_dir))
    last_error: DatabaseError | None = None
    for _attempt in range(3):  # another process may grab the free port before we bind it
        port = _free_port()
        cluster = ThrowawayCluster(
            LOCAL_HOST, port, "postgres", root=root, bin_dir=bin_dir, account=account
        )
        try:
            _run_pg(
                [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(cluster.log_file),
                 "-o", f"-p {port}", "-w", "-t", "60", "start"],
                account, root,
            )
        except DatabaseError as exc:
            log = cluster.log_file.read_text(errors="replace") if cluster.log_file.exists() else ""
            last_error = DatabaseError(f"{exc.message}\n{log[-2000:]}")
            continue
        _wait_ready(cluster)
        return cluster
    assert last_error is not None
    raise last_error


def _wait_ready(server: PgServer, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        problem = check_server(server)
        if problem is None:
            return
        if time.monotonic() > deadline:
            raise DatabaseError(f"the throwaway PostgreSQL cluster did not accept connections: "
                                f"{problem}")
        time.sleep(0.1)
