"""The prestarted run launcher under a real dagster-daemon: runs are handed to a worker
started before them, each run in its own process, code changed on disk is what runs, and a
run can be terminated from another process."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from gtm_orchestration.run_launcher import WORKER_PID_TAG

BIN = Path(sys.executable).parent

INSTANCE = """
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: 1
run_launcher:
  module: gtm_orchestration.run_launcher
  class: PrestartedRunLauncher
telemetry:
  enabled: false
"""

LOCATION = """
import os
import time
from pathlib import Path

import dagster as dg

VERSION = {version}


@dg.asset
def marker() -> None:
    out = Path(os.environ["MARKER_DIR"]) / f"{{os.getpid()}}.txt"
    out.write_text(f"version {{VERSION}}")


@dg.asset
def slow() -> None:
    time.sleep(120)


defs = dg.Definitions(
    assets=[marker, slow],
    jobs=[
        dg.define_asset_job("write_marker", [marker]),
        dg.define_asset_job("sleep", [slow]),
    ],
    executor=dg.in_process_executor,
)
"""


@dataclass
class Deployment:
    code: Path
    markers: Path
    env: dict[str, str]
    daemon: subprocess.Popen

    def write_location(self, version: int) -> None:
        (self.code / "launcher_location.py").write_text(LOCATION.format(version=version))

    def launch(self, job: str) -> str:
        """Submit a run of ``job`` to the queue; its run id."""
        with dg.DagsterInstance.get() as instance:
            before = {run.run_id for run in instance.get_runs()}
        subprocess.run(
            [
                BIN / "dagster",
                "job",
                "launch",
                "-m",
                "launcher_location",
                "-d",
                self.code,
                "-j",
                job,
            ],
            env=self.env,
            check=True,
            capture_output=True,
        )
        with dg.DagsterInstance.get() as instance:
            (run_id,) = {run.run_id for run in instance.get_runs()} - before
        return run_id

    def wait_for(self, run_id: str, statuses: set[dg.DagsterRunStatus]) -> dg.DagsterRun:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.daemon.poll() is None, "dagster-daemon exited"
            with dg.DagsterInstance.get() as instance:
                run = instance.get_run_by_id(run_id)
            if run is not None and run.status in statuses:
                return run
            time.sleep(0.2)
        raise AssertionError(f"run {run_id} never reached {statuses}")

    def waiting_workers(self) -> set[int]:
        """Process ids of the run workers started by the daemon that wait for a run."""
        found = subprocess.run(
            ["pgrep", "-f", "-P", str(self.daemon.pid), "gtm_orchestration.run_worker"],
            capture_output=True,
            text=True,
        )
        return {int(pid) for pid in found.stdout.split()}


@pytest.fixture
def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployment]:
    home, code, markers = tmp_path / "home", tmp_path / "code", tmp_path / "markers"
    for folder in (home, code, markers):
        folder.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("MARKER_DIR", str(markers))
    env = dict(os.environ)
    deployment = Deployment(code, markers, env, daemon=None)  # type: ignore[arg-type]
    deployment.write_location(version=1)
    deployment.daemon = subprocess.Popen(
        [BIN / "dagster-daemon", "run", "-m", "launcher_location", "-d", code],
        env=env,
        stdout=(tmp_path / "daemon.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield deployment
    finally:
        os.killpg(deployment.daemon.pid, signal.SIGTERM)
        deployment.daemon.wait(timeout=60)


def _wait_for_waiting_worker(deployment: Deployment) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        workers = deployment.waiting_workers()
        if len(workers) == 1:
            return workers.pop()
        time.sleep(0.2)
    raise AssertionError("no worker waiting for the next run")


def test_runs_start_in_prestarted_workers_and_run_the_code_on_disk(
    deployment: Deployment,
) -> None:
    first = deployment.wait_for(deployment.launch("write_marker"), {dg.DagsterRunStatus.SUCCESS})
    first_pid = int(first.tags[WORKER_PID_TAG])
    assert (deployment.markers / f"{first_pid}.txt").read_text() == "version 1"

    # The next run's worker exists before the run does.
    waiting = _wait_for_waiting_worker(deployment)
    second = deployment.wait_for(deployment.launch("write_marker"), {dg.DagsterRunStatus.SUCCESS})
    assert int(second.tags[WORKER_PID_TAG]) == waiting != first_pid
    assert (deployment.markers / f"{waiting}.txt").read_text() == "version 1"

    # A worker that imported version 1 before the change runs version 2.
    waiting = _wait_for_waiting_worker(deployment)
    deployment.write_location(version=2)
    third = deployment.wait_for(deployment.launch("write_marker"), {dg.DagsterRunStatus.SUCCESS})
    assert int(third.tags[WORKER_PID_TAG]) == waiting
    assert (deployment.markers / f"{waiting}.txt").read_text() == "version 2"


def test_a_run_is_terminated_from_another_process(deployment: Deployment) -> None:
    run_id = deployment.launch("sleep")
    deployment.wait_for(run_id, {dg.DagsterRunStatus.STARTED})
    with dg.DagsterInstance.get() as instance:
        assert instance.run_launcher.terminate(run_id)
    run = deployment.wait_for(run_id, {dg.DagsterRunStatus.CANCELED})
    # The worker exits: it does not sleep out its two minutes.
    pid = int(run.tags[WORKER_PID_TAG])
    deadline = time.monotonic() + 30
    while _alive(pid):
        assert time.monotonic() < deadline, f"run worker {pid} still running"
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return False
    # A finished child of the daemon may linger as a zombie until it is reaped.
    return state != "Z"
