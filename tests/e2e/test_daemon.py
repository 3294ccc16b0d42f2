"""The real deployment path: the Dagster daemon's sensor launches the run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from gtm_orchestration.instance import write_instance_config
from gtm_orchestration.settings import Settings
from tests.conftest import Crm, drop_file
from tests.e2e.test_file_drop import LEADS


@pytest.mark.embedded_only(reason="the daemon on PostgreSQL: test_postgres_instance.py")
def test_daemon_sensor_launches_the_run_that_loads_the_crm(
    settings: Settings, crm: Crm, tmp_path: Path
) -> None:
    write_instance_config(Path(os.environ["DAGSTER_HOME"]))
    daemon = subprocess.Popen(
        [
            Path(sys.executable).parent / "dagster-daemon",
            "run",
            "-m",
            "gtm_orchestration.definitions",
        ],
        env=dict(os.environ),
        stdout=(tmp_path / "daemon.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        drop_file(settings, "leads", "webinar.csv", LEADS)
        runs = _wait_for_finished_sensor_runs(daemon, tmp_path / "daemon.log", timeout_s=240)
    finally:
        if daemon.poll() is None:
            os.killpg(daemon.pid, signal.SIGTERM)
            daemon.wait(timeout=60)

    assert len(runs) == 1
    assert runs[0].status == dg.DagsterRunStatus.SUCCESS
    assert runs[0].tags["gtm/landed"] == "leads/webinar.csv"
    emails = sorted(c["properties"]["email"] for c in crm.all("contacts", "email"))
    assert len(emails) == 5


def _wait_for_finished_sensor_runs(
    daemon: subprocess.Popen, log: Path, timeout_s: float
) -> list[dg.DagsterRun]:
    deadline = time.monotonic() + timeout_s
    with dg.DagsterInstance.get() as instance:
        while time.monotonic() < deadline:
            assert daemon.poll() is None, log.read_text()[-3000:]
            runs = instance.get_runs(
                dg.RunsFilter(tags={"dagster/sensor_name": "lead_file_sensor"})
            )
            if runs and all(run.is_finished for run in runs):
                return runs
            time.sleep(2)
    raise AssertionError("no finished sensor run in time:\n" + log.read_text()[-3000:])
