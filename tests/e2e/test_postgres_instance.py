"""The deployment on a PostgreSQL instance: file drops and form webhooks launched by the
daemon's sensors run concurrently, each step in a process of its own, and the run queue and
the pools hold as they do on SQLite."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import httpx
import pytest
import sqlalchemy as sa

from gtm_orchestration.definitions import defs
from gtm_orchestration.instance import write_instance_config
from gtm_orchestration.lib.warehouse import Warehouse
from gtm_orchestration.receiver.server import ReceiverServer
from gtm_orchestration.settings import Settings
from tests.conftest import Crm, drop_file
from tests.e2e.test_webhooks import post

HEADER = "email,first_name,last_name,title,company,website,country\n"
# Four drops, each of another landing day, so the file sensor asks for four runs at once.
# Some people come back in another drop or a form: one contact each all the same.
FILE_DROPS = {
    4: ["ana@globex.com", "ben@initech.com", "cara@umbrella.io"],
    3: ["dev@hooli.com", "eli@globex.com", "ana@globex.com"],
    2: ["fay@piedpiper.com", "gus@initech.com", "hal@soylent.com"],
    1: ["ivy@hooli.com", "jay@wayne-enterprises.com", "ben@initech.com"],
}
# Two batches of form submissions, the second landing once the first has a run: a run each.
FORM_BATCHES = [
    ["kim@acme.com", "leo@globex.com"],
    ["mia@stark.com", "fay@piedpiper.com"],
]
EMAILS = {email for emails in [*FILE_DROPS.values(), *FORM_BATCHES] for email in emails}
DOMAINS = {email.split("@")[1] for email in EMAILS}
PIPELINE_SENSORS = ("lead_file_sensor", "webhook_batch_sensor")


@pytest.fixture
def backend() -> str:
    """This test is about PostgreSQL: the instance and the warehouse are there, once."""
    return "postgres"


@pytest.fixture
def postgres_instance(
    settings: Settings, pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dg.DagsterInstance]:
    """The deployment's instance, stored in a fresh PostgreSQL database, with the
    multiprocess executor for the pipeline's runs."""
    monkeypatch.setenv("DAGSTER_PG_URL", pg_database)
    monkeypatch.setenv("GTM_EXECUTOR", "multiprocess")
    write_instance_config(Path(os.environ["DAGSTER_HOME"]))
    with dg.DagsterInstance.get() as instance:
        yield instance


def _person(email: str) -> dict[str, str]:
    first, domain = email.split("@")
    return {
        "email": email,
        "first_name": first.title(),
        "last_name": "Tester",
        "title": "VP Marketing",
        "company": domain.split(".")[0].title(),
        "website": f"https://{domain}",
        "country": "US",
    }


def _drop_files(settings: Settings) -> None:
    for days_ago, emails in FILE_DROPS.items():
        rows = "".join(",".join(_person(email).values()) + "\n" for email in emails)
        path = drop_file(settings, "leads", f"list-{days_ago}.csv", HEADER + rows)
        landed = (datetime.now(UTC) - timedelta(days=days_ago)).timestamp()
        os.utime(path, (landed, landed))


def _post_forms(receiver: httpx.Client, emails: list[str]) -> None:
    for email in emails:
        form = {"event_id": f"form-{email}", **_person(email)}
        assert post(receiver, "/webhooks/forms/leads", form).status_code == 200


def _pipeline_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return [
        run
        for sensor in PIPELINE_SENSORS
        for run in instance.get_runs(dg.RunsFilter(tags={"dagster/sensor_name": sensor}))
    ]


def _wait_for(
    instance: dg.DagsterInstance,
    done: Callable[[list[dg.DagsterRun]], bool],
    daemon: subprocess.Popen,
    log: Path,
) -> None:
    # A guard against a hung deployment, far above what the runs take: 6.5-7.5 minutes on a
    # slow 2-CPU machine with nothing else running, longer beside the rest of the suite.
    deadline = time.monotonic() + 1500
    while time.monotonic() < deadline:
        assert daemon.poll() is None, log.read_text()[-3000:]
        if done(_pipeline_runs(instance)):
            return
        time.sleep(0.5)
    runs = [(r.run_id, r.status.value, r.tags.get("gtm/landed")) for r in _pipeline_runs(instance)]
    raise AssertionError(f"runs not done in time: {runs}\n" + log.read_text()[-3000:])


def _intervals(instance: dg.DagsterInstance, run_id: str) -> dict[str, tuple[float, float]]:
    """Each step's start and end in the run's event log (epoch seconds), and the run's own
    under the key ``run``."""
    starts, ends = {}, {}
    kinds = {
        dg.DagsterEventType.RUN_START,
        dg.DagsterEventType.RUN_SUCCESS,
        dg.DagsterEventType.STEP_START,
        dg.DagsterEventType.STEP_SUCCESS,
        dg.DagsterEventType.STEP_FAILURE,
    }
    for entry in instance.all_logs(run_id, of_type=kinds):
        kind = entry.dagster_event_type
        key = entry.step_key or "run"
        if kind in (dg.DagsterEventType.RUN_START, dg.DagsterEventType.STEP_START):
            starts[key] = entry.timestamp
        else:
            ends[key] = entry.timestamp
    return {key: (starts[key], ends[key]) for key in starts}


def _most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at the same moment."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    open_now = most = 0
    for _, change in edges:  # at a tie an end (-1) sorts first: touching is not overlapping
        open_now += change
        most = max(most, open_now)
    return most


@pytest.mark.timeout(1800)
def test_concurrent_file_drops_and_form_batches_on_a_postgres_instance(
    settings: Settings,
    crm: Crm,
    warehouse_url: str,
    postgres_instance: dg.DagsterInstance,
    pg_database: str,
    tmp_path: Path,
) -> None:
    instance = postgres_instance
    _drop_files(settings)
    log = tmp_path / "daemon.log"
    with (
        ReceiverServer(settings.data_dir) as server,
        httpx.Client(base_url=server.base_url, timeout=30) as receiver,
    ):
        daemon = subprocess.Popen(
            [
                Path(sys.executable).parent / "dagster-daemon",
                "run",
                "-m",
                "gtm_orchestration.definitions",
            ],
            env=dict(os.environ),
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _post_forms(receiver, FORM_BATCHES[0])
            _wait_for(
                instance,
                lambda runs: any(r.tags.get("gtm/trigger") == "webhook" for r in runs),
                daemon,
                log,
            )
            _post_forms(receiver, FORM_BATCHES[1])
            _wait_for(
                instance,
                lambda runs: (
                    len(runs) == len(FILE_DROPS) + len(FORM_BATCHES)
                    and all(r.is_finished for r in runs)
                ),
                daemon,
                log,
            )
        finally:
            os.killpg(daemon.pid, signal.SIGTERM)
            daemon.wait(timeout=60)

    # Every run succeeded, and the runs are rows of the PostgreSQL database.
    runs = _pipeline_runs(instance)
    assert sorted(r.tags["gtm/trigger"] for r in runs) == ["file_drop"] * 4 + ["webhook"] * 2
    assert {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}
    engine = sa.create_engine(pg_database, poolclass=sa.NullPool)
    with engine.connect() as con:
        stored = dict(con.execute(sa.text("SELECT run_id, status FROM runs")).fetchall())
    assert {r.run_id: "SUCCESS" for r in runs}.items() <= stored.items()

    # Every person and company exactly once in the CRM.
    contacts = crm.all("contacts", "email")
    assert sorted(c["properties"]["email"] for c in contacts) == sorted(EMAILS)
    companies = crm.all("companies", "domain")
    assert sorted(c["properties"]["domain"] for c in companies) == sorted(DOMAINS)

    # The ledger holds each CRM record once with the CRM's id; nothing was created twice.
    with Warehouse(warehouse_url).connect() as con:
        ledger = con.execute(
            "SELECT object_type, lower(record_key), crm_id FROM gtm.sync_ledger "
            "WHERE destination = 'hubspot' AND object_type IN ('contacts', 'companies')"
        ).fetchall()
        created_twice = con.execute(
            "SELECT object_type, record_key, count(*) FROM gtm.crm_sync_log "
            "WHERE destination = 'hubspot' AND action = 'created' "
            "GROUP BY object_type, record_key HAVING count(*) > 1"
        ).fetchall()
    assert sorted(ledger) == sorted(
        [("contacts", c["properties"]["email"], c["id"]) for c in contacts]
        + [("companies", c["properties"]["domain"], c["id"]) for c in companies]
    )
    assert created_twice == []

    # Several runs were in flight at once, each step in a process of its own; yet never
    # more CRM loads (or warehouse writers) at a time than their pool's limit.
    job = defs.resolve_job_def("lead_pipeline")
    limit = instance.get_concurrency_config().pool_config.default_pool_limit
    assert limit == 1
    by_pool: dict[str, list[tuple[float, float]]] = defaultdict(list)
    run_intervals = []
    for run in runs:
        intervals = _intervals(instance, run.run_id)
        run_intervals.append(intervals.pop("run"))
        for step, interval in intervals.items():
            by_pool[job.graph.node_dict[step].definition.pool].append(interval)
        step_pids = {
            entry.dagster_event.pid
            for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)
        }
        assert len(step_pids) == len(intervals), run.run_id
    assert _most_at_once(run_intervals) >= 2
    assert len(by_pool["hubspot"]) >= 2 * len(runs)
    assert _most_at_once(by_pool["hubspot"]) <= limit
    assert _most_at_once(by_pool["warehouse"]) <= limit
