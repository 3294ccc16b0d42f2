"""The daily throughput report and the weekly error summary: e-mailed through a real SMTP
server to GTM_DIGEST_TO, or written to the run's log when GTM_SMTP_URL is unset."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from gtm_orchestration.definitions import defs
from gtm_orchestration.settings import Settings
from tests.monitoring.support import (
    PEOPLE,
    PipelineRows,
    SmtpServer,
    assert_no_personal_data,
    evaluate_monitor,
)

TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
YESTERDAY = TODAY - timedelta(days=1)


def _digest(instance: dg.DagsterInstance, job: str, op: str, period_end: datetime) -> str:
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance,
        run_config={"ops": {op: {"config": {"period_end": period_end.date().isoformat()}}}},
    )
    assert result.success
    return result.run_id


def _seed_yesterday(rows: PipelineRows) -> None:
    noon = YESTERDAY + timedelta(hours=12)
    rows.file_ingestion(100, 8, noon, run_id="extract-run")
    rows.rejected_rows("email", ["raj.patel@gmail", "priya@umbrella"], noon)
    rows.rejected_rows("country", ["Atlantis"], noon)
    rows.lead_rows(PEOPLE[:3], landed_at=noon, loaded_at=noon + timedelta(seconds=20))
    rows.crm_syncs(PEOPLE[:3], "created", noon + timedelta(minutes=2))
    rows.crm_syncs(PEOPLE[3:], "failed", noon + timedelta(minutes=2), error=f"{PEOPLE[3]} refused")
    # Today's records are not yesterday's.
    rows.crm_syncs(["today@example.com"], "created", TODAY + timedelta(minutes=1))


def test_the_daily_throughput_report_is_mailed_to_the_digest_recipients(
    settings: Settings,
    smtp: SmtpServer,
    rows: PipelineRows,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GTM_SMTP_URL", smtp.url)
    monkeypatch.setenv("GTM_DIGEST_TO", "gtm-eng@example.org, revops@example.org")
    _seed_yesterday(rows)

    _digest(instance, "send_daily_throughput_report", "daily_throughput_digest", TODAY)

    (mail,) = smtp.received
    assert mail.sender == "gtm-alerts@example.org"
    assert mail.recipients == ["gtm-eng@example.org", "revops@example.org"]
    day = YESTERDAY.date().isoformat()
    assert mail.message["Subject"] == f"GTM pipeline: daily throughput report for {day}"
    body = mail.body
    assert "files and webhook batches ingested: 1 (rejected whole: 0" in body
    assert "rows read: 100; accepted: 92; rejected: 8 (8.0%)" in body
    assert "hubspot contacts: created 3, updated 0, unchanged 0, failed 2" in body
    assert "p50 2.0 min, p95 2.0 min over 3 leads" in body
    assert "Runs: 0 succeeded, 0 failed, 0 canceled" in body
    assert "Dagster UI: http://127.0.0.1:3000/runs" in body
    assert_no_personal_data(body)


def test_the_weekly_error_summary_counts_errors_by_field_destination_and_alert(
    settings: Settings,
    smtp: SmtpServer,
    rows: PipelineRows,
    instance: dg.DagsterInstance,
    thresholds: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GTM_SMTP_URL", smtp.url)
    monkeypatch.setenv("GTM_DIGEST_TO", "gtm-eng@example.org")
    _seed_yesterday(rows)
    # An incident opened this week: the pipeline went quiet.
    rows.lead_rows(
        PEOPLE, landed_at=TODAY - timedelta(hours=3), loaded_at=TODAY - timedelta(hours=3)
    )
    evaluate_monitor(instance, thresholds)

    tomorrow = TODAY + timedelta(days=1)
    _digest(instance, "send_weekly_error_summary", "weekly_error_digest", tomorrow)

    (mail,) = smtp.received
    first = (tomorrow - timedelta(days=7)).date().isoformat()
    assert mail.message["Subject"] == (
        f"GTM pipeline: weekly error summary, {first} to {TODAY.date().isoformat()}"
    )
    body = mail.body
    assert "8 of 100 rows rejected (8.0%) in 1 files and batches; 0 rejected whole" in body
    assert "by field: email 2, country 1" in body
    assert "hubspot contacts: 2 of 6 records failed (33.3%)" in body
    assert "Alerts: 1 opened, 0 resolved\n  zero_throughput (critical): 1" in body
    assert_no_personal_data(body)
    assert "Atlantis" not in body  # rejected values stay in the warehouse


def test_without_an_smtp_server_the_digest_is_written_to_the_log(
    settings: Settings,
    smtp: SmtpServer,
    rows: PipelineRows,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GTM_SMTP_URL", raising=False)
    _seed_yesterday(rows)

    run_id = _digest(instance, "send_daily_throughput_report", "daily_throughput_digest", TODAY)

    logged = "\n".join(entry.user_message for entry in instance.all_logs(run_id))
    assert f"GTM pipeline: daily throughput report for {YESTERDAY.date().isoformat()}" in logged
    assert "rows read: 100; accepted: 92; rejected: 8 (8.0%)" in logged
    assert "written to the log (GTM_SMTP_URL is unset)" in logged
    assert smtp.received == []
    assert_no_personal_data(logged)


def test_the_digest_schedules_cover_the_periods_before_their_tick() -> None:
    daily = defs.resolve_schedule_def("daily_throughput_report")
    weekly = defs.resolve_schedule_def("weekly_error_summary")
    assert (daily.cron_schedule, daily.job_name) == ("0 7 * * *", "send_daily_throughput_report")
    assert (weekly.cron_schedule, weekly.job_name) == ("0 7 * * 1", "send_weekly_error_summary")

    monday = datetime(2026, 11, 23, 7, tzinfo=UTC)
    with dg.build_schedule_context(scheduled_execution_time=monday) as context:
        request = weekly.evaluate_tick(context).run_requests[0]
    assert request.run_key == "weekly_error_summary:2026-11-23"
    assert request.run_config == {
        "ops": {"weekly_error_digest": {"config": {"period_end": "2026-11-23"}}}
    }
