"""The deployment path of a hung run: the daemon launches it, run monitoring (the project's
dagster.yaml) stops it at its dagster/max_runtime, and the run sensors alert once."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import yaml

from gtm_orchestration.instance import instance_yaml
from gtm_orchestration.settings import Settings
from tests.monitoring.support import Sinks

LOCATION = Path(__file__).with_name("stuck_run_location.py")


def test_a_run_past_its_maximum_runtime_is_stopped_and_alerted_once(
    settings: Settings, sinks: Sinks, tmp_path: Path
) -> None:
    home = Path(os.environ["DAGSTER_HOME"])
    config = yaml.safe_load(instance_yaml())
    assert config["run_monitoring"]["enabled"] is True
    config["run_monitoring"]["poll_interval_seconds"] = 1  # look at the run every second
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    log = tmp_path / "daemon.log"
    daemon = subprocess.Popen(
        [Path(sys.executable).parent / "dagster-daemon", "run", "-f", str(LOCATION)],
        env=dict(os.environ),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        messages = _wait_for_slack_messages(sinks, daemon, log, timeout_s=180)
        time.sleep(12)  # both run sensors get their look at the run
        messages = sinks.slack()
    finally:
        if daemon.poll() is None:
            os.killpg(daemon.pid, signal.SIGTERM)
            daemon.wait(timeout=60)

    with dg.DagsterInstance.get() as instance:
        (run,) = instance.get_runs(dg.RunsFilter(job_name="stuck_job"))
    assert run.status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
    (message,) = messages
    assert message["text"] == (
        ":warning: *WARNING* Run of stuck_job stopped: it ran past its maximum runtime of 2 s "
        f"http://127.0.0.1:3000/runs/{run.run_id}"
    )
    assert (
        "• failed steps: wait_for_an_answer_that_never_comes"
        in (message["blocks"][0]["text"]["text"])
    )


def _wait_for_slack_messages(
    sinks: Sinks, daemon: subprocess.Popen, log: Path, timeout_s: float
) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert daemon.poll() is None, log.read_text()[-3000:]
        if messages := sinks.slack():
            return messages
        time.sleep(1)
    raise AssertionError("no alert in time:\n" + log.read_text()[-3000:])
