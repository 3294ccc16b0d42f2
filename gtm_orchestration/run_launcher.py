"""A run launcher that keeps a started worker process ready for each code location.

Dagster's default launcher starts a fresh Python process for every run, which then imports
Dagster and the code location before the first step: several seconds on a small machine, and
the largest part of a real-time run's latency. ``PrestartedRunLauncher`` pays that cost before
the run exists: after each launch it starts the next worker for the same code location
(``gtm_orchestration.run_worker``), which imports everything, runs the warm-up hooks and
waits. A run is handed to a waiting worker, so it starts executing at once. Every run still
gets a process of its own, and a worker whose code changed on disk while it waited reloads
before it runs.

Starting a worker costs a few seconds of CPU. While another worker still waits, the
replacement of a taken worker is started only once the run it took has ended (or after
``top_up_delay_seconds``), so on a small machine the new worker's imports do not compete
with the run for the CPU. With no worker left waiting, the replacement starts at once.

Configured in ``dagster.yaml``::

    run_launcher:
      module: gtm_orchestration.run_launcher
      class: PrestartedRunLauncher
      config:
        warm_up: [gtm_orchestration.lib.warm_up:load_rule_dictionaries]

The launcher lives in the process that launches runs (the daemon, under the queued run
coordinator); workers are its children and exit when it does. Termination and run-worker
health checks act on the worker's process id, recorded as run tags, on the same host.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Mapping
from typing import Any, Self

from dagster import _check as check
from dagster._config import Field, IntSource, Noneable
from dagster._core.launcher.base import (
    CheckRunHealthResult,
    LaunchRunContext,
    RunLauncher,
    WorkerStatus,
)
from dagster._core.storage.dagster_run import DagsterRun
from dagster._serdes import ConfigurableClass, ConfigurableClassData, serialize_value

WORKER_PID_TAG = "gtm/run_worker_pid"
WORKER_HOST_TAG = "gtm/run_worker_host"

# (python executable, serialized code pointer): the workers of one code location are
# interchangeable.
WorkerKey = tuple[str, str]


class PrestartedRunLauncher(RunLauncher, ConfigurableClass):
    """Launches each run in a worker process started, and warmed up, before the run."""

    def __init__(
        self,
        inst_data: ConfigurableClassData | None = None,
        warm_up: list[str] | None = None,
        spares: int = 1,
        top_up_delay_seconds: float = 30.0,
    ):
        self._inst_data = inst_data
        self._warm_up = list(warm_up or [])
        self._spares = check.int_param(spares, "spares")
        self._top_up_delay_s = float(top_up_delay_seconds)
        self._lock = threading.Lock()
        self._top_up_lock = threading.Lock()
        self._waiting: dict[WorkerKey, list[subprocess.Popen[bytes]]] = {}
        self._running: dict[str, subprocess.Popen[bytes]] = {}
        self._disposed = False
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict[str, Field]:
        return {
            "warm_up": Field(
                Noneable([str]),
                is_required=False,
                description="module:callable hooks each worker calls after importing its code "
                "location, to load what the first run would otherwise load.",
            ),
            "spares": Field(
                IntSource,
                is_required=False,
                default_value=1,
                description="Workers kept waiting per code location.",
            ),
            "top_up_delay_seconds": Field(
                float,
                is_required=False,
                default_value=30.0,
                description="While a worker still waits, how long the replacement of a taken "
                "worker may wait for the run it took to end before it is started anyway.",
            ),
        }

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> Self:
        return cls(
            inst_data=inst_data,
            warm_up=config_value.get("warm_up"),
            spares=config_value.get("spares", 1),
            top_up_delay_seconds=config_value.get("top_up_delay_seconds", 30.0),
        )

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        origin = check.not_none(run.job_code_origin, "the run has no code origin")
        repository = origin.repository_origin
        key: WorkerKey = (repository.executable_path, serialize_value(repository.code_pointer))

        worker = self._take_worker(key)
        assert worker.stdin is not None
        worker.stdin.write(json.dumps({"run_id": run.run_id}).encode() + b"\n")
        worker.stdin.close()
        with self._lock:
            self._running[run.run_id] = worker
        self._instance.add_run_tags(
            run.run_id, {WORKER_PID_TAG: str(worker.pid), WORKER_HOST_TAG: socket.gethostname()}
        )
        with self._lock:
            still_waiting = bool(self._waiting.get(key))
        if still_waiting:
            # The next run has a worker: start the replacement once this run is over.
            threading.Thread(target=self._top_up_after, args=(key, worker), daemon=True).start()
        else:
            self._top_up(key)

    def _top_up_after(self, key: WorkerKey, worker: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.wait(timeout=self._top_up_delay_s)
        if not self._disposed:
            self._top_up(key)

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if not run or run.is_finished:
            return False
        self._instance.report_run_canceling(run)
        pid = _worker_pid(run)
        if pid is None:
            self._instance.report_engine_event(
                "No run worker on this host to send the termination to.", run, cls=self.__class__
            )
            return False
        try:
            # The worker turns SIGTERM into an interrupt: the run is marked canceled.
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return False
        return True

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        worker = self._running.get(run.run_id)
        if worker is not None:
            code = worker.poll()
            if code is None:
                return CheckRunHealthResult(WorkerStatus.RUNNING)
            return CheckRunHealthResult(
                WorkerStatus.SUCCESS if code == 0 else WorkerStatus.FAILED,
                f"run worker exited with {code}",
            )
        pid = _worker_pid(run)
        if pid is None:
            # Not a worker of this launcher: a run executed in its own process (`gtm process`)
            # or on another host. Run monitoring would fail it as UNKNOWN; only its maximum
            # runtime applies to it.
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no run worker on this host")
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return CheckRunHealthResult(WorkerStatus.NOT_FOUND, f"run worker {pid} is gone")
        return CheckRunHealthResult(WorkerStatus.RUNNING)

    def dispose(self) -> None:
        """Retire the waiting workers: an empty line tells them to exit."""
        with self._lock:
            self._disposed = True
            waiting = [w for workers in self._waiting.values() for w in workers]
            self._waiting.clear()
        for worker in waiting:
            try:
                assert worker.stdin is not None
                worker.stdin.close()
            except OSError:
                pass

    def _take_worker(self, key: WorkerKey) -> subprocess.Popen[bytes]:
        """A waiting worker of the code location, or a new one if none is alive."""
        with self._lock:
            self._reap()
            waiting = self._waiting.setdefault(key, [])
            while waiting:
                worker = waiting.pop(0)
                if worker.poll() is None:
                    return worker
        return self._start_worker(key)

    def _top_up(self, key: WorkerKey) -> None:
        # One top-up at a time: a delayed one and an immediate one must not both start the
        # missing workers.
        with self._top_up_lock:
            with self._lock:
                missing = self._spares - len(self._waiting.setdefault(key, []))
            for _ in range(missing):
                worker = self._start_worker(key)
                with self._lock:
                    self._waiting[key].append(worker)

    def _start_worker(self, key: WorkerKey) -> subprocess.Popen[bytes]:
        executable, code_pointer = key
        command = [
            executable,
            "-m",
            "gtm_orchestration.run_worker",
            "--code-pointer",
            code_pointer,
            "--instance-ref",
            serialize_value(self._instance.get_ref()),
        ]
        for hook in self._warm_up:
            command += ["--warm-up", hook]
        # Output goes where the launcher's goes, as the default launcher's run workers do.
        return subprocess.Popen(command, stdin=subprocess.PIPE)

    def _reap(self) -> None:
        """Forget finished run workers (and collect their exit status)."""
        for run_id, worker in list(self._running.items()):
            if worker.poll() is not None:
                del self._running[run_id]


def _worker_pid(run: DagsterRun) -> int | None:
    """The run's worker process id, if the worker runs on this host."""
    pid = run.tags.get(WORKER_PID_TAG)
    if pid is None or run.tags.get(WORKER_HOST_TAG) != socket.gethostname():
        return None
    return int(pid)
