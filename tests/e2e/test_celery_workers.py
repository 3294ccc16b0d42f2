"""Steps in Celery workers: RabbitMQ carries them, the Dagster instance is on PostgreSQL.

Two workers are started as a deployment starts them (``celery -A gtm_orchestration.celery_app
worker``), each from a folder of its own; files are dropped and forms posted through the
receiver; ``gtm process`` runs the pipeline with ``GTM_EXECUTOR=celery``. The run's process
only orchestrates: every step executes in a worker.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
import httpx
import pytest

from gtm_orchestration.receiver.server import ReceiverServer
from gtm_orchestration.receiver.signatures import gtm_signature
from gtm_orchestration.settings import SANDBOX_WEBHOOK_SECRET, Settings
from tests.conftest import Crm, drop_file
from tests.e2e.test_file_drop import LEADS

RABBITMQ = "127.0.0.1:5672"
WORKERS = ("steps-a", "steps-b")
FILE_EMAILS = [
    "dana.whitfield@globex.com",
    "m.okafor@initech.com",
    "priya@umbrella.io",
    "raj.patel@gmail.com",
    "sam@globex.com",
]
FORMS = [
    {"event_id": "f-1", "email": "jo.park@hooli.com", "first_name": "Jo", "title": "CMO"},
    {"event_id": "f-2", "email": "li@initech.com", "first_name": "Li", "country": "Deutschland"},
]


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture
def broker_url() -> Iterator[str]:
    """A RabbitMQ virtual host and user of this test's own, deleted with the queues after."""
    name = f"cel_{uuid.uuid4().hex[:12]}"
    password = secrets.token_urlsafe(16)
    _rabbitmqctl("add_vhost", name)
    try:
        _rabbitmqctl("add_user", name, password)
        try:
            _rabbitmqctl("set_permissions", "-p", name, name, ".*", ".*", ".*")
            yield f"pyamqp://{name}:{password}@{RABBITMQ}/{name}"
        finally:
            _rabbitmqctl("delete_user", name)
    finally:
        _rabbitmqctl("delete_vhost", name)


@pytest.fixture
def backend() -> str:
    """Workers need the instance and the warehouse in PostgreSQL: this test runs once, there."""
    return "postgres"


@pytest.fixture
def postgres_instance(
    settings: Settings, pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """The project's instance settings with run and event storage in a fresh database
    (``DAGSTER_PG_URL``, as a deployment sets it)."""
    monkeypatch.setenv("DAGSTER_PG_URL", pg_database)
    yield


def _start_worker(name: str, folder: Path) -> subprocess.Popen[bytes]:
    folder.mkdir()
    command = [sys.executable, "-m", "celery", "-A", "gtm_orchestration.celery_app", "worker"]
    command += ["--concurrency", "1", "--loglevel", "INFO", "-n", f"{name}@%h"]
    with (folder / "worker.log").open("w") as log:
        return subprocess.Popen(
            command,
            cwd=folder,
            env=dict(os.environ),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop(process: subprocess.Popen) -> None:
    """Stop a process and its children (a worker's pool): SIGTERM, then SIGKILL."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _wait_until_ready(
    workers: dict[str, subprocess.Popen[bytes]], folders: dict[str, Path]
) -> None:
    deadline = time.monotonic() + 60
    waiting = set(workers)
    while waiting and time.monotonic() < deadline:
        for name in list(waiting):
            log = (folders[name] / "worker.log").read_text()
            assert workers[name].poll() is None, log[-3000:]
            if " ready." in log:
                waiting.discard(name)
        time.sleep(0.5)
    assert not waiting, f"workers not ready in time: {sorted(waiting)}"


def _parent_pid(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return None
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("PPid:"))


def test_celery_workers_execute_every_step_and_load_each_record_once(
    settings: Settings,
    crm: Crm,
    broker_url: str,
    postgres_instance: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GTM_EXECUTOR", "celery")
    monkeypatch.setenv("GTM_CELERY_BROKER_URL", broker_url)
    # The warehouse's one setting, for the workers and the launching process alike.
    monkeypatch.setenv("GTM_WAREHOUSE_URL", settings.warehouse_url)

    folders = {name: tmp_path / name for name in WORKERS}
    with ExitStack() as stack:
        workers = {}
        for name in WORKERS:
            workers[name] = _start_worker(name, folders[name])
            stack.callback(_stop, workers[name])

        drop_file(settings, "leads", "webinar.csv", LEADS)
        with (
            ReceiverServer(settings.data_dir) as server,
            httpx.Client(base_url=server.base_url, timeout=30) as http,
        ):
            for form in [*FORMS, FORMS[0]]:  # the first form is delivered twice
                body = json.dumps(form).encode()
                headers = {"X-GTM-Signature": gtm_signature(SANDBOX_WEBHOOK_SECRET, body)}
                response = http.post("/webhooks/forms/leads", content=body, headers=headers)
                assert response.status_code == 200, response.text
        # Both workers listen before the first step is sent, so each can take some.
        _wait_until_ready(workers, folders)

        launcher_dir = tmp_path / "launcher"
        launcher_dir.mkdir()
        gtm = shutil.which("gtm", path=str(Path(sys.executable).parent))
        launcher = subprocess.Popen(
            [gtm, "process"],
            cwd=launcher_dir,
            env=dict(os.environ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        stack.callback(_stop, launcher)
        output, _ = launcher.communicate(timeout=240)
        assert launcher.returncode == 0, output[-3000:]

        with dg.DagsterInstance.get() as instance:
            runs = instance.get_runs(dg.RunsFilter(tags={"gtm/launched_by": "gtm process"}))
            assert {run.job_name for run in runs} == {"lead_pipeline", "build_warehouse"}
            assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs)
            (pipeline_run,) = [run for run in runs if run.job_name == "lead_pipeline"]
            stored = [dg.serialize_value(run) for run in runs] + [
                dg.serialize_value(record)
                for run in runs
                for record in instance.all_logs(run.run_id)
            ]
            step_pids = {
                record.dagster_event.step_key: record.dagster_event.pid
                for record in instance.all_logs(
                    pipeline_run.run_id, of_type=dg.DagsterEventType.STEP_START
                )
            }
            takers = [
                record.dagster_event.engine_event_data.metadata["Celery worker"].text
                for record in instance.all_logs(
                    pipeline_run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT
                )
                if "Celery worker" in record.dagster_event.engine_event_data.metadata
            ]
        # Every step executed in a process of a worker's pool, none in the launching process.
        worker_pids = {worker.pid for worker in workers.values()}
        assert len(step_pids) == 7, step_pids
        assert launcher.pid not in step_pids.values()
        assert all(_parent_pid(pid) in worker_pids for pid in step_pids.values()), step_pids
        # Each step was taken by a worker once, and both workers took steps.
        assert len(takers) == len(step_pids)
        assert {taker.split("@")[0] for taker in takers} == set(WORKERS)

    # The workers are stopped; their logs show the steps they executed, and no log or
    # output shows the broker's password.
    password = urlsplit(broker_url).password
    assert password and password not in output
    assert not any(password in text for text in stored)
    for name in WORKERS:
        log = (folders[name] / "worker.log").read_text()
        assert "succeeded in" in log
        assert password not in log

    emails = sorted(c["properties"]["email"] for c in crm.all("contacts", "email"))
    assert emails == sorted(FILE_EMAILS + [form["email"] for form in FORMS])
