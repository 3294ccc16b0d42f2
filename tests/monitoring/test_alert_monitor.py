"""The ``alert_monitor`` sensor against a real warehouse, instance and sandbox: each condition
raises its alert on the right channels, once, and clears with a resolution."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from gtm_orchestration.defs.monitoring.sensors import AlertDeliveryError
from gtm_orchestration.sandbox import free_port
from tests.monitoring.support import (
    PEOPLE,
    PipelineRows,
    Sinks,
    assert_no_personal_data,
    evaluate_monitor,
    write_thresholds,
)

UI = "http://127.0.0.1:3000"


def _ago(**delta: float) -> datetime:
    return datetime.now(UTC) - timedelta(**delta)


def test_zero_throughput_pages_once_and_resolves_when_records_flow_again(
    instance: dg.DagsterInstance, sinks: Sinks, rows: PipelineRows, thresholds: Path
) -> None:
    rows.lead_rows(PEOPLE, landed_at=_ago(hours=2), loaded_at=_ago(hours=2))

    evaluate_monitor(instance, thresholds)
    (slack,) = sinks.slack()
    assert slack["text"].startswith(":rotating_light: *CRITICAL* Pipeline down: no record")
    assert f"<{UI}/runs|Runs in the Dagster UI>" in slack["blocks"][1]["elements"][0]["text"]
    (page,) = sinks.pagerduty()
    assert page["event_action"] == "trigger"
    assert page["dedup_key"] == "gtm-orchestration/zero_throughput"
    assert page["payload"]["severity"] == "critical"
    assert page["payload"]["custom_details"]["records in the 24 h before"] == "5"

    # Still down a minute later: no second message, no second page.
    evaluate_monitor(instance, thresholds)
    assert (len(sinks.slack()), len(sinks.pagerduty())) == (1, 1)
    assert sinks.incidents()["gtm-orchestration/zero_throughput"]["triggers"] == 1

    rows.lead_rows(PEOPLE[:1], landed_at=_ago(minutes=1), loaded_at=_ago(seconds=5))
    evaluate_monitor(instance, thresholds)
    resolve = sinks.pagerduty()[-1]
    assert (resolve["event_action"], resolve["dedup_key"]) == (
        "resolve",
        "gtm-orchestration/zero_throughput",
    )
    assert sinks.slack()[-1]["text"].startswith(":white_check_mark: *RESOLVED* Pipeline down")
    assert sinks.incidents()["gtm-orchestration/zero_throughput"]["status"] == "resolved"

    evaluate_monitor(instance, thresholds)
    assert (len(sinks.slack()), len(sinks.pagerduty())) == (2, 2)
    assert_no_personal_data(sinks.everything())


def test_zero_throughput_is_quiet_outside_expected_hours_or_without_a_baseline(
    instance: dg.DagsterInstance, sinks: Sinks, rows: PipelineRows, tmp_path: Path
) -> None:
    tomorrow = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[
        (datetime.now(UTC).weekday() + 1) % 7
    ]
    not_today = write_thresholds(
        tmp_path / "not-today.yaml",
        {"critical": {"zero_throughput": {"expected": {"days": [tomorrow]}}}},
    )
    rows.lead_rows(PEOPLE, landed_at=_ago(hours=2), loaded_at=_ago(hours=2))
    assert "none holds" in evaluate_monitor(instance, not_today)

    idle = write_thresholds(
        tmp_path / "idle.yaml",
        {"critical": {"zero_throughput": {"expected": {"min_baseline_records": 6}}}},
    )
    assert "none holds" in evaluate_monitor(instance, idle)
    assert sinks.slack() == sinks.pagerduty() == []


def test_error_rates_above_five_percent_warn_on_slack_once_and_resolve(
    instance: dg.DagsterInstance,
    sinks: Sinks,
    rows: PipelineRows,
    thresholds: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GTM_DAGSTER_UI_URL", "http://dagster.internal:3000/")
    rows.crm_syncs([f"ok{i}@example.com" for i in range(90)], "created", _ago(minutes=10))
    # The CRM's refusals name the record and its value: none of it may reach an alert.
    refused = [PEOPLE[i % len(PEOPLE)] for i in range(10)]
    rows.crm_syncs(
        refused,
        "failed",
        _ago(minutes=5),
        run_id="failing-load-run",
        error="INVALID_EMAIL: dana.whitfield@globex.com is not valid",
    )
    rows.file_ingestion(100, 8, _ago(minutes=20), run_id="extract-run")

    evaluate_monitor(instance, thresholds)
    texts = sorted(message["text"] for message in sinks.slack())
    assert len(texts) == 2
    assert texts[0].startswith(
        ":warning: *WARNING* Error rate of the HubSpot load at 10.0% over the last 60 minutes "
        "(threshold 5.0%)"
    )
    assert texts[0].endswith("http://dagster.internal:3000/runs/failing-load-run")
    assert texts[1].startswith(":warning: *WARNING* Error rate of the extraction at 8.0%")
    assert texts[1].endswith("http://dagster.internal:3000/runs/extract-run")
    assert sinks.pagerduty() == []  # warnings do not page

    evaluate_monitor(instance, thresholds)
    assert len(sinks.slack()) == 2

    rows.crm_syncs([f"more{i}@example.com" for i in range(400)], "updated", _ago(minutes=1))
    evaluate_monitor(instance, thresholds)
    resolved = sinks.slack()[-1]
    assert resolved["text"].startswith(":white_check_mark: *RESOLVED* Error rate of the HubSpot")
    assert "• failed: 10\n• records: 500" in resolved["blocks"][0]["text"]["text"]
    assert len(sinks.slack()) == 3
    assert_no_personal_data(sinks.everything())


def test_latency_above_the_sla_warns(
    instance: dg.DagsterInstance, sinks: Sinks, rows: PipelineRows, thresholds: Path
) -> None:
    rows.lead_rows(PEOPLE, landed_at=_ago(minutes=20), loaded_at=_ago(minutes=19))
    rows.crm_syncs([p.upper() for p in PEOPLE], "created", _ago(minutes=5), run_id="slow-run")

    evaluate_monitor(instance, thresholds)
    (message,) = sinks.slack()
    assert message["text"].startswith(
        ":warning: *WARNING* Leads take 15.0 min from landing to the CRM (p95 over the last "
        "60 minutes; SLA 5 min)"
    )
    assert message["text"].endswith(f"{UI}/runs/slow-run")
    assert "• leads measured: 5" in message["blocks"][0]["text"]["text"]
    assert sinks.pagerduty() == []
    assert_no_personal_data(sinks.everything())


def test_a_destination_refusing_every_record_is_critical_until_records_go_through(
    instance: dg.DagsterInstance, sinks: Sinks, rows: PipelineRows, thresholds: Path
) -> None:
    rows.crm_syncs(PEOPLE + ("sixth@example.com",), "failed", _ago(minutes=3), run_id="r1")

    evaluate_monitor(instance, thresholds)
    (page,) = sinks.pagerduty()
    assert page["dedup_key"] == "gtm-orchestration/destination_failing:hubspot"
    assert page["payload"]["summary"] == (
        "HubSpot failing: every one of 6 records sent in the last 30 minutes failed"
    )
    assert page["links"] == [{"href": f"{UI}/runs/r1", "text": "Run in the Dagster UI"}]
    assert [m["text"].split(" failing")[0] for m in sinks.slack()] == [
        ":rotating_light: *CRITICAL* HubSpot"
    ]

    evaluate_monitor(instance, thresholds)
    assert len(sinks.pagerduty()) == 1

    rows.crm_syncs(["back@example.com"], "created", _ago(seconds=10))
    evaluate_monitor(instance, thresholds)
    assert sinks.pagerduty()[-1]["event_action"] == "resolve"
    assert sinks.incidents()[page["dedup_key"]]["status"] == "resolved"
    assert_no_personal_data(sinks.everything())


def test_the_slack_rate_limit_holds_back_messages_over_the_hourly_budget(
    instance: dg.DagsterInstance, sinks: Sinks, rows: PipelineRows, tmp_path: Path
) -> None:
    limited = write_thresholds(tmp_path / "limited.yaml", {"delivery": {"slack_per_hour": 2}})
    # Three warnings at once: extraction and HubSpot error rates, latency.
    rows.file_ingestion(100, 50, _ago(minutes=20), run_id="extract-run")
    rows.lead_rows(PEOPLE, landed_at=_ago(minutes=20), loaded_at=_ago(minutes=19))
    rows.crm_syncs(PEOPLE, "created", _ago(minutes=5))
    rows.crm_syncs([f"x{i}@example.com" for i in range(20)], "failed", _ago(minutes=4))

    outcome = evaluate_monitor(instance, limited)
    assert "2 alert message(s) sent, 1 held back by the rate limit" in outcome
    assert len(sinks.slack()) == 2

    # The held-back incident counts as announced: nothing more goes out while all three hold.
    evaluate_monitor(instance, limited)
    assert len(sinks.slack()) == 2


def test_an_undelivered_alert_is_retried_and_the_webhook_url_never_shown(
    instance: dg.DagsterInstance,
    sinks: Sinks,
    rows: PipelineRows,
    thresholds: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows.lead_rows(PEOPLE, landed_at=_ago(hours=2), loaded_at=_ago(hours=2))
    dead = f"http://127.0.0.1:{free_port()}/slack/services/T1/B1/very-secret-token"
    monkeypatch.setenv("SLACK_WEBHOOK_URL", dead)

    with pytest.raises(AlertDeliveryError) as failure:
        evaluate_monitor(instance, thresholds)
    assert "Slack did not answer (transport error: ConnectError, 3 tries)" in str(failure.value)
    assert "very-secret-token" not in str(failure.value)
    assert len(sinks.pagerduty()) == 1  # PagerDuty got its page meanwhile

    monkeypatch.delenv("SLACK_WEBHOOK_URL")
    evaluate_monitor(instance, thresholds)
    assert len(sinks.slack()) == 1
    assert len(sinks.pagerduty()) == 1  # not paged twice
