"""The run sensors: failed runs of the real jobs, and runs that hang past their maximum
runtime, raise the right alert once."""

import logging
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
from dagster._daemon.monitoring.run_monitoring import check_run_timeout

from gtm_orchestration.definitions import defs
from gtm_orchestration.defs.monitoring import AlertingResource
from gtm_orchestration.defs.monitoring.sensors import run_failure_alerts, run_timeout_alerts
from gtm_orchestration.sandbox import free_port
from gtm_orchestration.settings import SANDBOX_SLACK_WEBHOOK_PATH, Settings
from tests.conftest import Crm, drop_file
from tests.e2e.test_file_drop import LEADS
from tests.monitoring.support import (
    Sinks,
    assert_no_personal_data,
    evaluate_monitor,
    write_thresholds,
)

UI = "http://127.0.0.1:3000"
ONE_TRY = {"config": {"max_attempts": 1}}


def _alert_on(
    sensor: dg.SensorDefinition,
    instance: dg.DagsterInstance,
    run: dg.DagsterRun,
    event_type: dg.DagsterEventType,
    thresholds: Path,
) -> None:
    """Evaluate a run status sensor on the run's event, as the daemon does."""
    (entry,) = instance.all_logs(run.run_id, of_type=event_type)[:1]
    assert entry.dagster_event is not None
    context = dg.build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_event=entry.dagster_event,
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(run.run_id) or run,
        resources={"alerting": AlertingResource(thresholds_path=str(thresholds))},
    )
    if event_type == dg.DagsterEventType.RUN_FAILURE:
        context = context.for_run_failure()
    assert sensor(context) is None


def _run_the_day(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def("lead_pipeline").execute_in_process(
        instance=instance,
        partition_key=datetime.now(UTC).date().isoformat(),
        run_config={"ops": {"hubspot_companies": ONE_TRY, "hubspot_contacts": ONE_TRY}},
        raise_on_error=False,
    )


def test_a_failed_load_run_pages_once_and_resolves_when_the_load_succeeds(
    settings: Settings,
    crm: Crm,
    sinks: Sinks,
    instance: dg.DagsterInstance,
    thresholds: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The CRM does not answer; everything else (and the alert sinks) is the sandbox.
    for name, path in (
        ("SLACK_WEBHOOK_URL", SANDBOX_SLACK_WEBHOOK_PATH),
        ("PAGERDUTY_EVENTS_URL", "/v2/enqueue"),
        ("GTM_ENRICHMENT_BASE_URL", ""),
        ("OUTREACH_BASE_URL", ""),
        ("SALESFORCE_INSTANCE_URL", ""),
    ):
        monkeypatch.setenv(name, crm.base_url + path)
    monkeypatch.setenv("HUBSPOT_BASE_URL", f"http://127.0.0.1:{free_port()}")
    drop_file(settings, "leads", "webinar.csv", LEADS)

    failed = _run_the_day(instance)
    assert not failed.success
    _alert_on(
        run_failure_alerts,
        instance,
        failed.dagster_run,
        dg.DagsterEventType.RUN_FAILURE,
        thresholds,
    )

    (slack,) = sinks.slack()
    assert slack["text"] == (
        ":rotating_light: *CRITICAL* HubSpot failing: the last 1 run(s) of hubspot_companies "
        f"failed {UI}/runs/{failed.run_id}"
    )
    details = slack["blocks"][0]["text"]["text"]
    assert "• job: lead_pipeline" in details
    assert "• failed steps: hubspot_companies" in details
    (page,) = sinks.pagerduty()
    assert page["dedup_key"] == "gtm-orchestration/destination_failing:hubspot"
    assert page["payload"]["component"] == "hubspot"
    assert page["links"][0]["href"] == f"{UI}/runs/{failed.run_id}"

    # The same failure seen again, a second failed run, the monitor's minute: no new alert.
    _alert_on(
        run_failure_alerts,
        instance,
        failed.dagster_run,
        dg.DagsterEventType.RUN_FAILURE,
        thresholds,
    )
    again = _run_the_day(instance)
    assert not again.success
    _alert_on(
        run_failure_alerts, instance, again.dagster_run, dg.DagsterEventType.RUN_FAILURE, thresholds
    )
    evaluate_monitor(instance, thresholds)
    assert (len(sinks.slack()), len(sinks.pagerduty())) == (1, 1)

    # The CRM is back; the next run loads: the incident is resolved.
    monkeypatch.setenv("HUBSPOT_BASE_URL", crm.base_url)
    assert _run_the_day(instance).success
    evaluate_monitor(instance, thresholds)
    assert sinks.pagerduty()[-1] == {
        "event_action": "resolve",
        "dedup_key": "gtm-orchestration/destination_failing:hubspot",
    }
    assert sinks.slack()[-1]["text"].startswith(":white_check_mark: *RESOLVED* HubSpot failing")
    assert sinks.incidents()[page["dedup_key"]]["status"] == "resolved"
    assert_no_personal_data(sinks.everything())


def test_other_failed_runs_warn_on_slack_at_most_once_per_job_and_cooldown(
    settings: Settings,
    sinks: Sinks,
    instance: dg.DagsterInstance,
    thresholds: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A digest run fails: an SMTP server is set, but nobody to send to.
    monkeypatch.setenv("GTM_SMTP_URL", "smtp://127.0.0.1:1")
    job = defs.resolve_job_def("send_daily_throughput_report")
    runs = [job.execute_in_process(instance=instance, raise_on_error=False) for _ in range(3)]
    assert not any(run.success for run in runs)

    for run in runs[:2]:
        _alert_on(
            run_failure_alerts,
            instance,
            run.dagster_run,
            dg.DagsterEventType.RUN_FAILURE,
            thresholds,
        )
    (warning,) = sinks.slack()
    assert warning["text"] == (
        f":warning: *WARNING* Run of send_daily_throughput_report failed {UI}/runs/{runs[0].run_id}"
    )
    assert "• failed steps: daily_throughput_digest" in warning["blocks"][0]["text"]["text"]
    assert sinks.pagerduty() == []

    no_cooldown = write_thresholds(
        tmp_path / "no-cooldown.yaml", {"delivery": {"run_failure_cooldown_minutes": 0}}
    )
    _alert_on(
        run_failure_alerts,
        instance,
        runs[2].dagster_run,
        dg.DagsterEventType.RUN_FAILURE,
        no_cooldown,
    )
    latest = sinks.slack()[-1]
    assert latest["text"].endswith(f"/runs/{runs[2].run_id}")
    assert (
        "• further failed runs of this job since the last alert: 1"
        in (latest["blocks"][0]["text"]["text"])
    )
    # The error text (it names the missing setting) stays in the run's log.
    assert "GTM_DIGEST_TO" not in sinks.everything()


@dg.op
def wait_for_a_stuck_request(context: dg.OpExecutionContext) -> None:
    # Hangs like a request that never returns, until run monitoring has given up on the run.
    while context.instance.get_run_by_id(context.run_id).status != dg.DagsterRunStatus.FAILURE:
        time.sleep(0.05)
    raise dg.Failure("the run was failed while it hung")


@dg.job
def hanging_job() -> None:
    wait_for_a_stuck_request()


def test_a_run_hanging_past_its_maximum_runtime_is_failed_and_alerted(
    sinks: Sinks, instance: dg.DagsterInstance, thresholds: Path
) -> None:
    runner = threading.Thread(
        target=hanging_job.execute_in_process,
        kwargs={
            "instance": instance,
            "tags": {"dagster/max_runtime": "1"},
            "raise_on_error": False,
        },
    )
    runner.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        records = instance.get_run_records(dg.RunsFilter(job_name="hanging_job"))
        started = [r for r in records if r.start_time and time.time() - r.start_time > 1.2]
        if started:
            break
        time.sleep(0.1)
    (record,) = started
    # What the daemon's run monitoring does to a run past its dagster/max_runtime.
    check_run_timeout(instance, record, logging.getLogger("run_monitoring"), 0.0)
    runner.join(timeout=30)
    run = instance.get_run_by_id(record.dagster_run.run_id)
    assert run is not None and run.status == dg.DagsterRunStatus.FAILURE

    _alert_on(run_failure_alerts, instance, run, dg.DagsterEventType.RUN_FAILURE, thresholds)
    (slack,) = sinks.slack()
    assert slack["text"] == (
        ":warning: *WARNING* Run of hanging_job stopped: it ran past its maximum runtime of 1 s "
        f"{UI}/runs/{run.run_id}"
    )
    assert "• failed steps: wait_for_a_stuck_request" in slack["blocks"][0]["text"]["text"]


def test_runs_canceled_for_their_runtime_are_alerted_and_those_canceled_by_hand_are_not(
    sinks: Sinks, instance: dg.DagsterInstance, thresholds: Path
) -> None:
    by_hand = instance.create_run_for_job(hanging_job)
    instance.report_run_canceling(by_hand)
    instance.report_run_canceled(by_hand)
    _alert_on(run_timeout_alerts, instance, by_hand, dg.DagsterEventType.RUN_CANCELED, thresholds)
    assert sinks.slack() == []

    # Run monitoring's own words when it stops a run whose worker then reports it canceled.
    timed_out = instance.create_run_for_job(hanging_job, tags={"dagster/max_runtime": "60"})
    instance.report_run_canceling(
        timed_out, message="Canceling due to exceeding maximum runtime of 60 seconds."
    )
    instance.report_run_canceled(timed_out)
    _alert_on(run_timeout_alerts, instance, timed_out, dg.DagsterEventType.RUN_CANCELED, thresholds)
    _alert_on(run_timeout_alerts, instance, timed_out, dg.DagsterEventType.RUN_CANCELED, thresholds)
    (slack,) = sinks.slack()
    assert slack["text"].startswith(
        ":warning: *WARNING* Run of hanging_job stopped: it ran past its maximum runtime of 60 s"
    )


def test_a_failed_run_alert_slack_did_not_take_is_sent_again_by_the_monitor(
    settings: Settings,
    sinks: Sinks,
    instance: dg.DagsterInstance,
    thresholds: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GTM_SMTP_URL", "smtp://127.0.0.1:1")  # the digest run fails
    failed = defs.resolve_job_def("send_daily_throughput_report").execute_in_process(
        instance=instance, raise_on_error=False
    )
    monkeypatch.setenv("SLACK_WEBHOOK_URL", f"http://127.0.0.1:{free_port()}/slack/x/y/z")

    with pytest.raises(Exception, match="Slack did not answer"):
        _alert_on(
            run_failure_alerts,
            instance,
            failed.dagster_run,
            dg.DagsterEventType.RUN_FAILURE,
            thresholds,
        )
    assert sinks.slack() == []

    monkeypatch.delenv("SLACK_WEBHOOK_URL")
    evaluate_monitor(instance, thresholds)
    (message,) = sinks.slack()
    assert message["text"].endswith(f"/runs/{failed.run_id}")
    evaluate_monitor(instance, thresholds)
    assert len(sinks.slack()) == 1
