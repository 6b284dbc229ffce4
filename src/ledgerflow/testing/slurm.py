"""A throwaway single-node Slurm for tests: ``munged``, ``slurmctld`` and ``slurmd`` on localhost.

:func:`start_local_slurm` needs Debian's ``slurm-wlm`` and ``munge`` packages (the daemons
and the client commands) and root, which ``slurmd`` needs to start jobs. It writes, in a new
temporary directory, a munge key and a ``slurm.conf`` describing this machine as the only
node (its CPUs and memory) of one default partition, with process tracking by
``proctrack/linuxproc`` (no cgroups), no accounting, and its state, spool, pid and log files
in that directory. The daemons listen on free ports and munge on a socket in that
directory, so two test sessions on one machine, and a Slurm the machine already runs, never
meet. Client commands (``sbatch``, ``sinfo``, ``scancel``, and so dask-jobqueue) find that
cluster through ``SLURM_CONF``: see :meth:`LocalSlurm.environment`.

:meth:`LocalSlurm.stop` (also run at exit) cancels the cluster's jobs, stops the daemons and
deletes the directory. Daemons started here also die if the process that started them dies.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ledgerflow.errors import LedgerflowError

INSTALL_HINT = "install Debian's packages 'slurm-wlm' and 'munge': apt-get install -y slurm-wlm munge"
#: The programs a local Slurm needs.
PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "sinfo", "squeue", "scancel")
#: Seconds the daemons get to start and report the node idle.
START_TIMEOUT = 30.0
#: Seconds the cluster's jobs and then its daemons get to end when it stops.
STOP_TIMEOUT = 10.0
PARTITION = "debug"
_PR_SET_PDEATHSIG = 1

SLURM_CONF = """\
# A single-node Slurm started by ledgerflow's tests; deleted when they end.
ClusterName={cluster}
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={controller_port}
SlurmdPort={node_port}
SlurmUser={user}
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
PlugStackConfig={root}/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
KillWait=5
MinJobAge=30
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} State=UNKNOWN
PartitionName={partition} Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


class SlurmUnavailable(LedgerflowError):
    """A local Slurm could not be started: the message says why."""


@dataclass
class LocalSlurm:
    """A Slurm started by :func:`start_local_slurm`; :meth:`stop` stops and deletes it."""

    root: Path
    host: str
    partition: str = PARTITION
    daemons: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    def environment(self) -> dict[str, str]:
        """What a process needs in its environment to use this cluster's commands."""
        return {"SLURM_CONF": str(self.conf)}

    def command(self, *argv: str, timeout: float = 15) -> subprocess.CompletedProcess[str]:
        """Run a Slurm client command against this cluster."""
        return subprocess.run(
            list(argv), env={**os.environ, **self.environment()}, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def node_state(self) -> str:
        """The node's state as ``sinfo`` reports it (``idle``, ``alloc``, ...), or ``""``."""
        try:
            out = self.command("sinfo", "-h", "-N", "-o", "%t", timeout=5)
        except subprocess.TimeoutExpired:
            return ""
        return out.stdout.strip() if out.returncode == 0 else ""

    def jobs(self) -> list[str]:
        """The ids of the jobs the controller still knows as pending or running."""
        out = self.command("squeue", "-h", "-o", "%i", "-t", "PD,R,CG,CF", timeout=5)
        return out.stdout.split() if out.returncode == 0 else []

    def logs(self) -> str:
        """The end of each daemon's log, to explain a failure."""
        parts = []
        for name in ("munged", "slurmctld", "slurmd"):
            path = self.root / f"{name}.log"
            if path.exists():
                text = path.read_text(errors="replace").strip().splitlines()
                parts.append(f"--- {name}.log\n" + "\n".join(text[-15:]))
        return "\n".join(parts)

    def stop(self) -> None:
        """Cancel the jobs, stop the daemons (terminate, then kill), delete the directory."""
        if not self.root.exists():
            return
        if self.daemons.get("slurmctld") is not None and self.daemons["slurmctld"].poll() is None:
            try:
                if self.jobs():
                    self.command("scancel", "--quiet", f"--partition={self.partition}", timeout=5)
                    deadline = time.monotonic() + STOP_TIMEOUT
                    while self.jobs() and time.monotonic() < deadline:
                        time.sleep(0.2)
            except (OSError, subprocess.TimeoutExpired):
                pass
        for name in ("slurmd", "slurmctld", "munged"):
            daemon = self.daemons.get(name)
            if daemon is None or daemon.poll() is not None:
                continue
            daemon.terminate()
            try:
                daemon.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        self.daemons.clear()
        shutil.rmtree(self.root, ignore_errors=True)


def _die_with_parent() -> None:
    """In the daemon, before exec: ask the kernel to SIGTERM it when its parent dies."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _memory_mb() -> int:
    """The memory to declare for the node: a little under the machine's (Slurm drains a
    node that has less than its configuration says)."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    return max(1, int(total * 0.9))


def missing_programs() -> list[str]:
    """The programs a local Slurm needs that are not installed."""
    return [name for name in PROGRAMS if _which(name) is None]


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def start_local_slurm(base_dir: str | Path | None = None) -> LocalSlurm:
    """Start munge and a single-node Slurm in a new directory; return once the node is idle.

    Raises :class:`SlurmUnavailable` when a program is missing, when not run as root, or
    when the node is not idle within :data:`START_TIMEOUT` seconds (with the daemons' logs).
    """
    missing = missing_programs()
    if missing:
        raise SlurmUnavailable(
            f"cannot start a local Slurm: {', '.join(missing)} not installed", hint=INSTALL_HINT
        )
    if os.geteuid() != 0:
        raise SlurmUnavailable(
            "cannot start a local Slurm: slurmd must run as root to start jobs",
            hint="run the Slurm tests as root, or in CI (.ci/run runs as root)",
        )
    base = Path(base_dir) if base_dir is not None else Path(tempfile.gettempdir())
    root = Path(tempfile.mkdtemp(prefix="lf-slurm-", dir=base))
    root.chmod(0o755)  # munged wants every directory up to its socket searchable by all
    slurm = LocalSlurm(root, socket.gethostname().split(".")[0])
    atexit.register(slurm.stop)
    try:
        _start(slurm)
    except BaseException:
        slurm.stop()
        raise
    return slurm


def _start(slurm: LocalSlurm) -> None:
    root = slurm.root
    for directory in ("state", "spool"):
        (root / directory).mkdir(mode=0o755)
    key = root / "munge.key"
    key.write_bytes(secrets.token_bytes(1024))
    key.chmod(0o600)
    (root / "plugstack.conf").write_text("")
    munge_socket = root / "munge.socket"
    controller_port, node_port = _free_ports(2)
    slurm.conf.write_text(
        SLURM_CONF.format(
            cluster=f"lf{secrets.token_hex(3)}", host=slurm.host, root=root,
            controller_port=controller_port, node_port=node_port, user="root",
            munge_socket=munge_socket, cpus=os.cpu_count() or 1, memory=_memory_mb(),
            partition=slurm.partition,
        )
    )  # fmt: skip
    env = {**os.environ, **slurm.environment()}
    deadline = time.monotonic() + START_TIMEOUT

    def launch(name: str, *argv: str) -> None:
        program = _which(name)
        assert program is not None
        with open(root / f"{name}.out", "wb") as out:
            slurm.daemons[name] = subprocess.Popen(
                [program, *argv], cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent,
            )  # fmt: skip

    launch(
        "munged", "-F", f"--socket={munge_socket}", f"--key-file={key}",
        f"--pid-file={root}/munged.pid", f"--log-file={root}/munged.log",
        f"--seed-file={root}/munged.seed",
    )  # fmt: skip
    _wait(slurm, deadline, "munged to open its socket", munge_socket.exists)
    launch("slurmctld", "-D", "-i", "-f", str(slurm.conf))
    launch("slurmd", "-D", "-f", str(slurm.conf), "-N", slurm.host)
    _wait(slurm, deadline, "the node to be idle", lambda: slurm.node_state() == "idle")


def _wait(slurm: LocalSlurm, deadline: float, what: str, ready: object) -> None:
    assert callable(ready)
    while not ready():
        dead = [n for n, p in slurm.daemons.items() if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            why = f"{', '.join(dead)} exited" if dead else f"timed out after {START_TIMEOUT:.0f} s"
            outputs = "\n".join(
                f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}"
                for p in sorted(slurm.root.glob("*.out"))
                if p.stat().st_size
            )
            raise SlurmUnavailable(
                f"cannot start a local Slurm: waiting for {what}: {why}\n{slurm.logs()}\n{outputs}",
                hint=INSTALL_HINT,
            )
        time.sleep(0.2)
