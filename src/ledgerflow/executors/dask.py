"""The ``dask`` executor: jobs run on the workers of a ``dask.distributed`` cluster.

Three ways to get a cluster (``executor:`` in ``ledgerflow.yml``, see docs/cluster.md):

- nothing set: a ``LocalCluster`` started for the run (``workers`` processes with
  ``threads_per_worker`` threads each) and closed at its end, however it ends;
- ``address: tcp://host:8786``: an existing scheduler (left running);
- ``cluster: {kind: slurm|pbs|sge|lsf, ...}``: a dask-jobqueue cluster whose batch jobs run
  the workers, scaled to ``scale.jobs`` or adapting between ``adapt`` bounds.

Workers only compute. Each job travels pickled; the worker puts the run's module paths on
``sys.path`` before it unpickles it (so the task's module imports there as it does here),
runs it with :func:`~ledgerflow.engine.worker.run_job` and returns the outcome, whose value
was pickled once on the worker (into nothing) so that a value that cannot travel fails its
task by name. A result
whose pickled size is above ``by_reference_bytes`` (``executor.by_reference_bytes``,
default 16 MiB) is written by its worker to the value store and comes back as the rows to
record (see :mod:`ledgerflow.executors._dask_worker`), so its bytes never pass through the
Dask scheduler nor the run's process unless a later step needs the value there. The
scheduler process stays the only writer of the ledger; tasks that use ``context.session``
open their own database session on the worker with the user credentials.

A worker that dies while running a job fails that job with "worker lost" (a started
``LocalCluster`` does not run a job again after it killed a worker: the task's own
``retries`` decide); jobs that were only waiting on that worker are sent again, once.
A lost connection to the scheduler ends the run interrupted.

A job past its task's ``timeout=`` (counted from the moment its worker reported that the
task's code started) is failed with :class:`~ledgerflow.errors.TaskTimeoutError` at once; its future is
cancelled and the process of the worker that runs it is ended (Dask cannot stop a running
task otherwise), so the cluster keeps its size. Other jobs that were running on that same
worker process (``threads_per_worker`` > 1) are lost with it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import pickle
import queue
import time
from typing import TYPE_CHECKING, Any

from ledgerflow.config.settings import BY_REFERENCE_BYTES
from ledgerflow.engine.executor import Executor, Job, Outcome, WorkerEnv, worker_label
from ledgerflow.errors import ConfigError, LedgerflowError, MissingExtraError
from ledgerflow.executors.threads import failed_outcome

if TYPE_CHECKING:
    from ledgerflow.config.settings import ClusterConfig, ExecutorConfig

log = logging.getLogger(__name__)

#: How long to wait for a scheduler to answer, and for a started cluster's workers.
CONNECT_TIMEOUT = 30.0
#: The dask-jobqueue class for each ``cluster.kind``.
JOBQUEUE_CLASSES = {
    "slurm": "SLURMCluster",
    "pbs": "PBSCluster",
    "sge": "SGECluster",
    "lsf": "LSFCluster",
}
WORKER_LOST = "worker lost"
#: For a started cluster: a job whose worker died fails at once (the task's own retries
#: decide what follows).
LOCAL_SCHEDULER_CONFIG = {"distributed.scheduler.allowed-failures": 0}
#: A LocalCluster's scheduler without a dashboard still serves a small HTTP server (health
#: checks), on port 8787 unless told otherwise: two clusters at once would compete for it.
#: Any free port on the loopback instead (``scheduler_kwargs`` of a ``LocalCluster``).
LOCAL_SCHEDULER_HTTP = {"dashboard": False, "dashboard_address": "127.0.0.1:0"}


def require_dask() -> None:
    """Raise :class:`MissingExtraError` when dask.distributed is not installed."""
    for module in ("dask", "distributed"):
        if importlib.util.find_spec(module) is None:
            raise MissingExtraError("the dask executor", "dask", module)


# -- on the scheduler ----------------------------------------------------------------------


class DaskExecutor(Executor):
    """Jobs as Dask futures; finished ones are queued by the futures' callbacks."""

    name = "dask"
    accepts_stored_results = True

    def __init__(
        self,
        workers: int | None = None,
        *,
        address: str | None = None,
        threads_per_worker: int | None = None,
        cluster: ClusterConfig | None = None,
        by_reference_bytes: int | None = None,
    ) -> None:
        require_dask()
        self._explicit_workers = workers
        super().__init__(workers=workers)
        self.address = address
        self.threads_per_worker = threads_per_worker
        self.cluster_config = cluster
        #: results whose pickled size is above this are stored by their worker
        self.by_reference_bytes = by_reference_bytes
        self._client: Any = None
        self._cluster: Any = None
        self._futures: dict[str, Any] = {}
        self._done: queue.SimpleQueue[tuple[Job, Any]] = queue.SimpleQueue()
        self._kept: list[Outcome] = []  # collected when the scheduler was lost
        self._lost = False
        self._started: set[str] = set()  # jobs a worker reported starting
        self._resent: set[str] = set()  # jobs sent again after their worker died
        self._timed: dict[str, Job] = {}  # submitted jobs whose task has a timeout
        self._started_at: dict[str, float] = {}  # monotonic time they were reported started

    def default_workers(self) -> int:
        return min(os.cpu_count() or 1, 4)

    @property
    def capacity(self) -> int:
        # jobs wait in Dask's queues, so that workers are not idle between jobs
        threads = self.workers * (self.threads_per_worker or 1)
        return max(threads * 16, 64)

    # -- starting and stopping

    def start(self, env: WorkerEnv) -> None:
        config = env.settings.executor
        if config.kind == "dask":
            self._apply(config)
        if self.by_reference_bytes is None:
            self.by_reference_bytes = BY_REFERENCE_BYTES
        self._env = env
        self._futures = {}
        self._done = queue.SimpleQueue()
        self._kept = []
        self._lost = False
        try:
            self._client = self._connect()
            from ledgerflow.executors._dask_worker import (
                STARTED_TOPIC,
                TIMED_TOPIC,
                RunPlugin,
                module_paths,
                plugin_name,
            )

            self._plugin = plugin_name(env.run_id)
            plugin = RunPlugin(env, module_paths(), self.by_reference_bytes)
            self._client.register_plugin(plugin, name=self._plugin)
            self._started, self._resent = set(), set()
            self._timed, self._started_at = {}, {}
            self._client.subscribe_topic(STARTED_TOPIC, self._on_started)
            self._client.subscribe_topic(TIMED_TOPIC, self._on_timed_start)
        except BaseException:
            self._close(cancel=True)
            raise

    def _apply(self, config: ExecutorConfig) -> None:
        """Settings from ``executor:`` that were not given to the constructor."""
        if self.address is None and self.cluster_config is None:
            self.address = config.address
            self.cluster_config = config.cluster
        if self.threads_per_worker is None:
            self.threads_per_worker = config.threads_per_worker
        if self.by_reference_bytes is None:
            self.by_reference_bytes = config.by_reference_bytes

    def _connect(self) -> Any:
        from distributed import Client

        if self.address is not None:
            try:
                return Client(self.address, timeout=CONNECT_TIMEOUT, set_as_default=False)
            except OSError as exc:
                raise LedgerflowError(
                    f"cannot reach the Dask scheduler at {self.address}: {exc}",
                    hint="start it (`dask scheduler`) or fix executor.address",
                )
        if self.cluster_config is not None:
            self._cluster = jobqueue_cluster(self.cluster_config)
        else:
            self._cluster = self._local_cluster()
        return Client(self._cluster, set_as_default=False)

    def _local_cluster(self) -> Any:
        import dask
        from distributed import LocalCluster

        try:
            with dask.config.set(LOCAL_SCHEDULER_CONFIG):
                return LocalCluster(
                    n_workers=self.workers,
                    threads_per_worker=self.threads_per_worker or 1,
                    processes=True,
                    dashboard_address=None,
                    scheduler_kwargs=dict(LOCAL_SCHEDULER_HTTP),
                    scheduler_port=0,
                    silence_logs=logging.ERROR,
                )
        except Exception as exc:
            raise LedgerflowError(
                f"the Dask LocalCluster could not start its {self.workers} worker(s): {exc}",
                hint="a script that starts a run on the dask executor must do it under "
                "`if __name__ == '__main__':` (each worker process imports the script)",
            )

    @property
    def dashboard_link(self) -> str | None:
        return getattr(self._client, "dashboard_link", None)

    def shutdown(self, *, cancel: bool = False) -> None:
        self._close(cancel=cancel)

    def _close(self, *, cancel: bool) -> None:
        client, cluster = self._client, self._cluster
        self._client = self._cluster = None
        futures = list(self._futures.values())
        self._futures.clear()
        try:
            if client is not None and client.status == "running":
                if futures:
                    client.cancel(futures)
                try:
                    from ledgerflow.executors._dask_worker import STARTED_TOPIC, TIMED_TOPIC

                    client.unsubscribe_topic(STARTED_TOPIC)
                    client.unsubscribe_topic(TIMED_TOPIC)
                except Exception:
                    log.debug("could not unsubscribe from the workers' events", exc_info=True)
                if cluster is None:  # a shared cluster: free this run's state on its workers
                    try:
                        client.unregister_worker_plugin(self._plugin)
                    except Exception:
                        log.debug("could not close the run on the Dask workers", exc_info=True)
            if client is not None:
                client.close()
        finally:
            if cluster is not None:
                cluster.close()

    # -- jobs

    def submit(self, job: Job) -> None:
        from ledgerflow.errors import SerializationError

        try:
            data = pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
        except LedgerflowError:
            raise
        except Exception as exc:
            raise SerializationError(
                f"the arguments of task {job.task.fullname} cannot be sent to a Dask worker: {exc}"
            )
        from ledgerflow.executors._dask_worker import run_on_worker

        future = self._client.submit(
            run_on_worker, self._env.run_id, job.id, data, key=self._key(job),
            pure=False,
        )  # fmt: skip
        self._futures[job.id] = future
        if job.task.timeout is not None:
            self._timed[job.id] = job
        future.add_done_callback(lambda f, job=job: self._done.put((job, f)))

    def _outcome(self, job: Job, future: Any, fetched: Any = None) -> Outcome:
        try:
            outcome: Outcome = fetched or future.result(timeout=CONNECT_TIMEOUT)
        except Exception as exc:  # the task's own exceptions are in its outcome
            if type(exc).__name__ == "KilledWorker":
                return failed_outcome(job, exc, f"{WORKER_LOST}: the Dask worker running it died")
            return failed_outcome(job, exc, "the Dask cluster could not run it")
        return outcome

    def _key(self, job: Job) -> str:
        again = "-again" if job.id in self._resent else ""  # a new key: the first one erred
        return f"{job.task.name}-{job.id}{again}"

    def _on_started(self, event: tuple[float, Any]) -> None:
        """From the client's thread: a worker started a job."""
        self._started.add(event[1])

    def _on_timed_start(self, event: tuple[float, Any]) -> None:
        """From the client's thread: the code of a job with a timeout started on a worker."""
        if event[1] in self._timed:
            self._started_at[event[1]] = time.monotonic()

    def _innocent(self, job: Job, future: Any) -> bool:
        """Whether a job lost with its worker never started there (it waited behind the
        job that killed the worker): it is sent again, once, rather than failed."""
        if future.status != "error" or job.id in self._started or job.id in self._resent:
            return False
        try:
            problem = future.exception(timeout=CONNECT_TIMEOUT)
        except Exception:
            return False
        return type(problem).__name__ == "KilledWorker"

    def _fetch(self, futures: list[Any]) -> list[Any]:
        """The outcomes of finished futures, in one round trip (None where it failed)."""
        if len(futures) < 2:
            return [None] * len(futures)
        try:
            fetched: list[Any] = self._client.gather(futures)
        except Exception:  # one by one, to find which
            return [None] * len(futures)
        return fetched

    def _take(self, first: tuple[Job, Any] | None) -> list[Outcome]:
        pairs = [] if first is None else [first]
        while True:
            try:
                pairs.append(self._done.get_nowait())
            except queue.Empty:
                break
        outcomes, self._kept = self._kept, []
        taken = []
        for job, future in pairs:
            if job.id not in self._futures:
                continue  # cancelled at shutdown
            if future.status == "cancelled":  # not by this run: the scheduler went away
                self._lost = True
                continue  # the run ends interrupted, this job with it
            del self._futures[job.id]
            if self._innocent(job, future):
                self._resent.add(job.id)
                self.submit(job)
                continue
            taken.append((job, future))
        finished = [f for _, f in taken if f.status == "finished"]
        fetched = dict(zip(map(id, finished), self._fetch(finished)))
        for job, future in taken:
            outcomes.append(self._outcome(job, future, fetched.get(id(future))))
        return outcomes

    def _scheduler_lost(self) -> bool:
        client = self._client
        lost = client is None or client.status in ("closing", "closed", "failed")
        return self._lost or lost

    def collect(self, timeout: float) -> list[Outcome]:
        if not self._futures:
            return []
        deadline = self._next_deadline()
        if deadline is not None:
            timeout = max(0.0, min(timeout, deadline - time.monotonic()))
        try:
            first = self._done.get(timeout=timeout)
        except queue.Empty:
            first = None
        outcomes = self._take(first) if first is not None else []
        if self._timed:
            outcomes += self._expire()
        if self._scheduler_lost():
            # the client gave up reconnecting: end the run interrupted, like Ctrl-C, with
            # what finished recorded (the scheduler takes it from take_finished)
            self._kept = outcomes
            log.error(
                "lost the connection to the Dask scheduler%s; the run ends interrupted",
                f" at {self.address}" if self.address else "",
            )
            raise KeyboardInterrupt
        return outcomes

    def take_finished(self) -> list[Outcome]:
        return self._take(None)

    # -- timeouts

    def _deadline(self, job_id: str) -> float | None:
        job, started = self._timed.get(job_id), self._started_at.get(job_id)
        if job is None or started is None or job.task.timeout is None:
            return None
        return started + job.task.timeout

    def _next_deadline(self) -> float | None:
        deadlines = [d for d in map(self._deadline, list(self._timed)) if d is not None]
        return min(deadlines, default=None)

    def _expire(self) -> list[Outcome]:
        """Fail the jobs past their task's timeout and end the worker processes running them."""
        from ledgerflow.engine.worker import timeout_outcome

        now = time.monotonic()
        outcomes = []
        for job_id in list(self._timed):
            if job_id not in self._futures:  # finished (or cancelled) meanwhile
                self._timed.pop(job_id, None)
                self._started_at.pop(job_id, None)
                continue
            deadline = self._deadline(job_id)
            if deadline is None or now < deadline:
                continue
            job = self._timed.pop(job_id)
            started = self._started_at.pop(job_id)
            future = self._futures.pop(job_id)
            address, label = self._running_on(future.key)
            self._client.cancel([future])
            if address is not None:
                self._restart(address)
            elapsed = now - started
            outcomes.append(timeout_outcome(job, time.time() - elapsed, elapsed, label))
        return outcomes

    def _running_on(self, key: str) -> tuple[str | None, str]:
        """The address and label (host:pid) of the worker running ``key``, if any."""
        from ledgerflow.executors._dask_worker import processing_on

        try:
            address: str | None = self._client.run_on_scheduler(processing_on, key)
        except Exception:
            log.debug("could not find the worker running %s", key, exc_info=True)
            return None, ""
        if address is None:
            return None, ""
        try:
            labels = self._client.run(worker_label, workers=[address], on_error="return")
            label = labels.get(address)
        except Exception:
            label = None
        return address, label if isinstance(label, str) else address

    def _restart(self, address: str) -> None:
        """End the worker's process at once: its nanny starts a new one, as after a crash."""
        from ledgerflow.executors._dask_worker import end_worker_process

        try:
            self._client.run(end_worker_process, workers=[address], wait=False)
        except Exception:
            log.warning("could not stop the Dask worker %s after a task timed out", address,
                        exc_info=True)


def jobqueue_cluster(config: ClusterConfig) -> Any:
    """A dask-jobqueue cluster for ``executor.cluster``, scaled or adaptive as configured."""
    if importlib.util.find_spec("dask_jobqueue") is None:
        raise MissingExtraError(f"a {config.kind} cluster", "dask", "dask_jobqueue")
    import dask_jobqueue

    cls = getattr(dask_jobqueue, JOBQUEUE_CLASSES[config.kind])
    kwargs: dict[str, Any] = {"cores": config.cores, "memory": config.memory}
    for key in ("walltime", "queue", "account", "processes"):
        value = getattr(config, key)
        if value is not None:
            kwargs[key] = value
    if config.job_extra_directives:
        kwargs["job_extra_directives"] = list(config.job_extra_directives)
    # No dashboard, as for a LocalCluster; the scheduler's small HTTP server (health checks)
    # takes a free port, so that runs on one login node do not compete for 8787.
    kwargs["scheduler_options"] = {"dashboard": False, "dashboard_address": ":0"}
    kwargs.update(config.options)
    try:
        cluster = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"executor.cluster ({config.kind}): {exc}")
    if config.maximum_jobs is not None:
        cluster.adapt(minimum_jobs=config.minimum_jobs or 0, maximum_jobs=config.maximum_jobs)
    else:
        cluster.scale(jobs=1 if config.jobs is None else config.jobs)
    return cluster


EXECUTOR = DaskExecutor
