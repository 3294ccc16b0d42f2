"""Sequence enrollment end to end: landed leads -> pipeline -> warehouse claims -> sandbox
sequencer, with concurrent processes, crashes, corrections and the release schedule."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import httpx
import psycopg2
import pytest

from gtm_orchestration.definitions import defs
from gtm_orchestration.defs.load.sequencer import ENROLLMENTS_ASSET
from gtm_orchestration.defs.resources import RESOURCES
from gtm_orchestration.lib.connectors.outreach import OutreachClient
from gtm_orchestration.lib.enrollment import release_due_enrollments
from gtm_orchestration.lib.enrollment_rules import default_sequence_rules
from gtm_orchestration.lib.warehouse import Warehouse
from gtm_orchestration.receiver.server import ReceiverServer
from gtm_orchestration.receiver.signatures import gtm_signature
from gtm_orchestration.settings import SANDBOX_WEBHOOK_SECRET, Settings
from tests.conftest import Crm, drop_file, pipeline_instance
from tests.e2e.pipeline import launch

HEADER = (
    "E-mail,First Name,Last Name,Job Title,Company Name,Website,Phone,Country,State,City,"
    "Industry,Annual Revenue,Employees\n"
)
PRIYA_ROW = (
    "priya.raman@umbrella-analytics.io,{first_name},Raman,VP Marketing,Umbrella Analytics,"
    "http://umbrella-analytics.io/about,(212) 555-0110,U.S.A.,NY,New York,SaaS,$45M,201-500\n"
)
# Two leads no rule sequences: a practitioner outside North America, a weak fit.
OTHERS = (
    "isabella.rossi@italdesign.it,Isabella,Rossi,Marketing Manager,Italdesign S.p.A.,"
    "italdesign.it,,Italy,,Turin,Automotive,,1001-5000\n"
    "henry.young@vandelay.com,Henry,Young,Procurement Specialist,Vandelay Industries,"
    "vandelay.com,,USA,NY,New York,,,51-200\n"
)
EMAIL = "priya.raman@umbrella-analytics.io"
KEY = f"marketing_leaders:{EMAIL}"
SEQUENCE = "Marketing Leaders: Pipeline Playbook"
JSON_API = {"Content-Type": "application/vnd.api+json"}

# One enrollment process, as a run's step does it: record the day's intents, release the due.
ENROLL = """
import json, os, sys, time
from datetime import UTC, datetime
from pathlib import Path
from gtm_orchestration.lib.connectors.outreach import OutreachClient
from gtm_orchestration.lib.enrollment import enroll_days
from gtm_orchestration.lib.enrollment_rules import default_sequence_rules
from gtm_orchestration.lib.warehouse import Warehouse
from gtm_orchestration.settings import Settings

day, go = sys.argv[1], Path(sys.argv[2])
settings = Settings.from_env()
rules = default_sequence_rules().with_quality_window(settings.enrollment_quality_window_minutes)
print("ready", flush=True)
while not go.exists():
    time.sleep(0.001)
with OutreachClient(settings.outreach_base_url, settings.outreach_access_token) as client:
    summary = enroll_days(
        Warehouse(settings.warehouse_url).connect, client, rules, [day], datetime.now(UTC),
        f"process-{os.getpid()}",
    )
print(json.dumps({"enrolled": summary.enrolled, "claimed": summary.claimed}), flush=True)
"""


def leads_file(first_name: str = "Priya") -> str:
    return HEADER + PRIYA_ROW.format(first_name=first_name) + OTHERS


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def run_pipeline(
    instance: dg.DagsterInstance, selection: Sequence[dg.AssetKey] | None = None
) -> dg.ExecuteInProcessResult:
    """The lead pipeline over today's landings, or the ``selection`` of its assets."""
    return defs.resolve_job_def("lead_pipeline").execute_in_process(
        instance=instance, partition_key=today(), asset_selection=selection, raise_on_error=False
    )


def _up_to_leads() -> list[dg.AssetKey]:
    graph = defs.resolve_asset_graph()
    job_keys = defs.resolve_job_def("lead_pipeline").asset_layer.selected_asset_keys
    return [k for k in job_keys if graph.get(k).group_name in ("extract", "transform")]


# Extraction and transform only: the leads in gtm.leads, nothing loaded or enrolled yet.
UP_TO_LEADS = _up_to_leads()


def enrollment_metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    (materialization,) = [m for m in result.asset_materializations_for_node("outreach_enrollments")]
    return {k: v.value for k, v in materialization.metadata.items()}


def sequencer_posts(crm: Crm) -> dict[str, dict[str, int]]:
    """Requests that write to the sequencer, by endpoint and status."""
    by_endpoint = crm.stats()["by_endpoint"]
    return {k: v for k, v in by_endpoint.items() if k.startswith(("POST /api/v2", "PATCH /api"))}


def sequence_states(crm: Crm) -> list[dict]:
    return crm.http.get("/api/v2/sequenceStates").json()["data"]


def read_warehouse(settings: Settings, sql: str) -> list[tuple]:
    """Read the warehouse (as soon as no other process holds a DuckDB file)."""
    with Warehouse(settings.warehouse_url).connect(read_only=True) as con:
        return con.execute(sql).fetchall()


def hold_enrollments(settings: Settings) -> Callable[[], None]:
    """Keep every other process from writing the enrollments until the returned function is
    called: a DuckDB file opened by this process, PostgreSQL's tables locked in a
    transaction of this process's own."""
    warehouse = Warehouse(settings.warehouse_url)
    while not warehouse.is_postgres:
        try:
            return duckdb.connect(str(warehouse.duckdb_path), read_only=True).close
        except duckdb.IOException:
            time.sleep(0.02)  # the other process has it open this moment
    holder = psycopg2.connect(settings.warehouse_url)
    with holder.cursor() as cursor:
        cursor.execute(
            "LOCK TABLE gtm.sequence_enrollments, gtm.sequence_enrollment_log IN SHARE MODE"
        )
    return holder.close


def events(settings: Settings) -> list[str]:
    rows = read_warehouse(
        settings, "SELECT event FROM gtm.sequence_enrollment_log ORDER BY logged_at, rowid"
    )
    return [event for (event,) in rows]


def wait_for(condition: Callable[[], object], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def start_enrollment_process(go: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", ENROLL, today(), str(go)], stdout=subprocess.PIPE, text=True
    )


def start_a_claimed_release(
    settings: Settings, crm: Crm, tmp_path: Path, sequencer_latency_ms: int
) -> subprocess.Popen[str]:
    """A release process that has claimed the lead's enrollment and is in its call to the
    sequencer, which answers after ``sequencer_latency_ms``."""
    faults = {"latency_ms": sequencer_latency_ms}
    crm.http.post("/__sandbox/faults", json=faults).raise_for_status()
    go = tmp_path / "go"
    go.touch()
    process = start_enrollment_process(go)
    try:
        wait_for(
            lambda: (
                read_warehouse(settings, "SELECT status FROM gtm.sequence_enrollments")
                == [("sending",)]
            ),
            "the enrollment to be claimed",
        )
    except BaseException:
        kill(process)
        raise
    return process


def kill(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait()


@pytest.fixture
def no_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GTM_ENROLLMENT_QUALITY_WINDOW_MINUTES", "0")


def test_five_concurrent_processes_enroll_the_same_lead_exactly_once(
    settings: Settings, crm: Crm, no_window: None, tmp_path: Path
) -> None:
    drop_file(settings, "leads", "webinar.csv", leads_file())
    with pipeline_instance() as instance:
        assert run_pipeline(instance, UP_TO_LEADS).success

    go = tmp_path / "go"
    processes = [start_enrollment_process(go) for _ in range(5)]
    for process in processes:
        assert process.stdout is not None and process.stdout.readline() == "ready\n"
    go.touch()  # all five start at once
    outcomes = []
    for process in processes:
        out, _ = process.communicate(timeout=120)
        assert process.returncode == 0
        outcomes.append(json.loads(out))

    assert sum(o["enrolled"] for o in outcomes) == 1
    assert sum(o["claimed"] for o in outcomes) == 1
    (state,) = sequence_states(crm)
    assert state["attributes"]["state"] == "active"
    assert sequencer_posts(crm) == {
        "POST /api/v2/prospects": {"201": 1},
        "POST /api/v2/sequenceStates": {"201": 1},
    }
    assert events(settings) == ["held", "claimed", "enrolled"]
    assert read_warehouse(
        settings, "SELECT idempotency_key, status FROM gtm.sequence_enrollments"
    ) == [(KEY, "enrolled")]


def test_five_deliveries_of_one_form_fill_at_once_enroll_once_through_the_sensor(
    settings: Settings, crm: Crm, no_window: None
) -> None:
    # The form tool retries and double-submits: five deliveries, five event ids, one person.
    form = {
        "email": EMAIL,
        "first_name": "Priya",
        "last_name": "Raman",
        "title": "VP Marketing",
        "company": "Umbrella Analytics",
        "website": "umbrella-analytics.io",
        "country": "USA",
        "state": "NY",
        "employees": "201-500",
    }
    with (
        ReceiverServer(settings.data_dir) as server,
        httpx.Client(base_url=server.base_url, timeout=30) as receiver,
        ThreadPoolExecutor(5) as pool,
    ):

        def deliver(n: int) -> int:
            body = json.dumps(form | {"event_id": f"form-{n}"}).encode()
            headers = {"X-GTM-Signature": gtm_signature(SANDBOX_WEBHOOK_SECRET, body)}
            return receiver.post("/webhooks/forms/leads", content=body, headers=headers).status_code

        assert list(pool.map(deliver, range(5))) == [200] * 5

    sensor = defs.resolve_sensor_def("webhook_batch_sensor")
    with pipeline_instance() as instance:
        cursor, runs = None, 0
        while True:
            with dg.build_sensor_context(
                instance=instance, cursor=cursor, resources=RESOURCES, definitions=defs
            ) as context:
                result = sensor(context)
            if isinstance(result, dg.SkipReason):
                break
            for request in result.run_requests:
                assert ENROLLMENTS_ASSET in request.asset_selection
                assert launch(instance, request).success
                runs += 1
            cursor = result.cursor
    assert runs >= 1
    (state,) = sequence_states(crm)
    assert state["attributes"]["state"] == "active"
    assert sequencer_posts(crm)["POST /api/v2/sequenceStates"] == {"201": 1}
    assert events(settings) == ["held", "claimed", "enrolled"]


def test_a_release_killed_between_claim_and_call_is_enrolled_once_by_the_rerun(
    settings: Settings, crm: Crm, no_window: None, tmp_path: Path
) -> None:
    drop_file(settings, "leads", "webinar.csv", leads_file())
    with pipeline_instance() as instance:
        assert run_pipeline(instance, UP_TO_LEADS).success
        # Every sequencer call now hangs, so the process stops right after its claim.
        kill(start_a_claimed_release(settings, crm, tmp_path, sequencer_latency_ms=2500))
        crm.http.post("/__sandbox/faults", json={}).raise_for_status()
        assert sequencer_posts(crm) == {}

        rerun = run_pipeline(instance, [ENROLLMENTS_ASSET])
        assert rerun.success
    metadata = enrollment_metadata(rerun)
    assert (metadata["reclaimed"], metadata["enrolled"]) == (1, 1)
    assert len(sequence_states(crm)) == 1
    assert sequencer_posts(crm)["POST /api/v2/sequenceStates"] == {"201": 1}
    assert events(settings) == ["held", "claimed", "reclaimed", "enrolled"]


def test_a_release_killed_after_the_sequencer_took_it_is_not_sent_again(
    settings: Settings, crm: Crm, no_window: None, tmp_path: Path
) -> None:
    drop_file(settings, "leads", "webinar.csv", leads_file())
    with pipeline_instance() as instance:
        assert run_pipeline(instance, UP_TO_LEADS).success
        process = start_a_claimed_release(settings, crm, tmp_path, sequencer_latency_ms=1000)
        try:
            # Once it has claimed, hold the warehouse so that it cannot record the outcome.
            release_warehouse = hold_enrollments(settings)
            crm.http.post("/__sandbox/faults", json={}).raise_for_status()
            wait_for(
                lambda: "POST /api/v2/sequenceStates" in sequencer_posts(crm),
                "the enrollment to reach the sequencer",
            )
        finally:
            kill(process)
        release_warehouse()
        assert read_warehouse(settings, "SELECT status FROM gtm.sequence_enrollments") == [
            ("sending",)
        ]

        rerun = run_pipeline(instance, [ENROLLMENTS_ASSET])
        assert rerun.success
    metadata = enrollment_metadata(rerun)
    assert (metadata["reclaimed"], metadata["already_in_sequence"], metadata["enrolled"]) == (
        1,
        1,
        0,
    )
    assert len(sequence_states(crm)) == 1
    assert sequencer_posts(crm)["POST /api/v2/sequenceStates"] == {"201": 1}
    assert events(settings)[-2:] == ["reclaimed", "already_in_sequence"]


def test_a_correction_inside_the_quality_window_cancels_the_enrollment(
    settings: Settings, crm: Crm, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GTM_ENROLLMENT_QUALITY_WINDOW_MINUTES", "15")
    drop_file(settings, "leads", "webinar.csv", leads_file(first_name="Pryia"))
    with pipeline_instance() as instance:
        first = run_pipeline(instance)
        assert first.success
        assert (enrollment_metadata(first)["held"], enrollment_metadata(first)["claimed"]) == (1, 0)

        # The event team's corrected export arrives a few minutes later.
        drop_file(settings, "leads", "webinar-corrected.csv", leads_file(first_name="Priya"))
        second = run_pipeline(instance)
        assert second.success
    metadata = enrollment_metadata(second)
    assert (metadata["corrected"], metadata["held"], metadata["claimed"]) == (1, 1, 0)
    assert sequencer_posts(crm) == {}
    cancelled = read_warehouse(
        settings,
        "SELECT intent, reason FROM gtm.sequence_enrollment_log WHERE event = 'cancelled'",
    )
    assert cancelled == [
        (1, "the lead was corrected in its quality window: first_name 'Pryia' -> 'Priya'")
    ]

    # Once the corrected lead's own window is over, it is enrolled, with the right name.
    rules = default_sequence_rules()
    with OutreachClient(settings.outreach_base_url, settings.outreach_access_token) as client:
        later = datetime.now(UTC) + timedelta(minutes=16)
        released = release_due_enrollments(
            Warehouse(settings.warehouse_url).connect, client, rules, later
        )
    assert released.enrolled == 1
    (state,) = sequence_states(crm)
    prospect_id = state["relationships"]["prospect"]["data"]["id"]
    prospect = crm.http.get(f"/api/v2/prospects/{prospect_id}").json()["data"]["attributes"]
    assert prospect["firstName"] == "Priya"


def test_a_lead_already_active_in_another_sequence_is_not_enrolled(
    settings: Settings, crm: Crm, no_window: None
) -> None:
    # A rep put Priya in a partner sequence by hand last week.
    body = {"data": {"type": "prospect", "attributes": {"emails": [EMAIL], "firstName": "Priya"}}}
    prospect = crm.http.post("/api/v2/prospects", json=body, headers=JSON_API).json()["data"]
    body = {"data": {"type": "sequence", "attributes": {"name": "Partner Webinar Follow-up"}}}
    sequence = crm.http.post("/api/v2/sequences", json=body, headers=JSON_API).json()["data"]
    (mailbox,) = crm.http.get("/api/v2/mailboxes", params={"page[size]": 1}).json()["data"]
    relationships = {
        "prospect": {"data": {"type": "prospect", "id": prospect["id"]}},
        "sequence": {"data": {"type": "sequence", "id": sequence["id"]}},
        "mailbox": {"data": {"type": "mailbox", "id": mailbox["id"]}},
    }
    body = {"data": {"type": "sequenceState", "relationships": relationships}}
    other = crm.http.post("/api/v2/sequenceStates", json=body, headers=JSON_API).json()["data"]

    drop_file(settings, "leads", "webinar.csv", leads_file())
    with pipeline_instance() as instance:
        result = run_pipeline(instance)
        assert result.success
    metadata = enrollment_metadata(result)
    assert (metadata["routed"], metadata["cancelled"], metadata["enrolled"]) == (1, 1, 0)
    assert [s["id"] for s in sequence_states(crm)] == [other["id"]]
    assert read_warehouse(settings, "SELECT status, reason FROM gtm.sequence_enrollments") == [
        (
            "cancelled",
            f"prospect {prospect['id']} is active in sequence 'Partner Webinar Follow-up' "
            f"(sequenceState {other['id']})",
        )
    ]


def test_the_release_schedule_enrolls_held_leads_once_their_window_is_over(
    settings: Settings, crm: Crm, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GTM_ENROLLMENT_QUALITY_WINDOW_MINUTES", "0.05")  # 3 seconds
    drop_file(settings, "leads", "webinar.csv", leads_file())
    schedule = defs.resolve_schedule_def("outreach_enrollment_release")
    with pipeline_instance() as instance:
        result = run_pipeline(instance)
        assert result.success
        due_at = enrollment_metadata(result)["next_due_at"]

        def tick(at: float) -> dg.RunRequest | dg.SkipReason:
            moment = datetime.fromtimestamp(at, tz=UTC)
            with dg.build_schedule_context(
                resources=RESOURCES, scheduled_execution_time=moment
            ) as context:
                return schedule(context)

        early = tick(due_at - 1)
        assert isinstance(early, dg.SkipReason)
        assert early.skip_message == "no held sequence enrollment is due"
        request = tick(due_at)
        assert isinstance(request, dg.RunRequest)
        assert request.tags["gtm/due_enrollments"] == "1"

        time.sleep(max(0.0, due_at - time.time()) + 0.1)
        release = defs.resolve_job_def("release_outreach_enrollments").execute_in_process(
            instance=instance, tags=request.tags
        )
        assert release.success
        (observation,) = [
            event.asset_observation_data.asset_observation
            for event in release.all_events
            if event.event_type == dg.DagsterEventType.ASSET_OBSERVATION
        ]
        assert observation.asset_key == ENROLLMENTS_ASSET
        assert observation.metadata["enrolled"].value == 1
        assert isinstance(tick(time.time()), dg.SkipReason)
    assert len(sequence_states(crm)) == 1
