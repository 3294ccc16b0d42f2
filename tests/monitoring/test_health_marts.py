"""The pipeline-health marts: the real dbt builds them, with their tests, over a warehouse
a real run filled, and they answer "how much flowed, how much failed, how late"."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from gtm_orchestration.lib.warehouse import Warehouse
from gtm_orchestration.settings import Settings
from tests.conftest import Crm, drop_file, pipeline_instance
from tests.e2e.pipeline import launch, sensor_runs
from tests.monitoring.test_metrics_pipeline import LEADS
from tests.warehouse.dbt_runs import dbt_build

HEALTH_MARTS = ("mart_stage_health", "mart_source_health", "mart_destination_health")


def test_health_marts_report_throughput_errors_and_latency(
    settings: Settings, crm: Crm, tmp_path: Path
) -> None:
    drop_file(settings, "leads", "webinar.csv", LEADS)
    with pipeline_instance() as instance:
        requests, _ = sensor_runs(instance)
        result = launch(instance, requests[0])
        assert result.success
    today = datetime.now(UTC).date()
    warehouse = Warehouse(settings.warehouse_url)
    with warehouse.connect() as con:
        # A contact the CRM refused later, waiting in the dead-letter queue.
        con.execute(
            "INSERT INTO gtm.dead_letters (destination, stream, object_type, record_key, "
            "payload, category, error_code, error, attempts, first_failed_at, last_failed_at, "
            "status) VALUES ('hubspot', 'contacts', 'contacts', 'bob@acme.com', '{}', "
            "'permanent', 'INVALID_OPTION', 'refused', 1, now(), now(), 'pending')"
        )

    built = dbt_build(warehouse, tmp_path, *HEALTH_MARTS, "mart_lead_funnel")
    assert built.returncode == 0, built.stdout + built.stderr
    # The marts' own tests ran too: none failed.
    assert "ERROR=0" in built.stdout and "PASS=" in built.stdout

    with warehouse.connect(read_only=True) as con:
        stages = con.execute(
            "SELECT stage, asset, records_in, records_out, rejected, error_rate "
            "FROM marts.mart_stage_health WHERE grain = 'day' ORDER BY stage, asset"
        ).fetchall()
        sources = con.execute(
            "SELECT source, files_ingested, rows_in, rows_accepted, rows_rejected, error_rate, "
            "latency_samples, latency_p95_s >= latency_p50_s "
            "FROM marts.mart_source_health WHERE grain = 'day'"
        ).fetchall()
        hourly_rows = con.execute(
            "SELECT sum(rows_in) FROM marts.mart_source_health WHERE grain = 'hour'"
        ).fetchone()
        destinations = con.execute(
            "SELECT object_type, records_sent, created, failed, error_rate, dead_lettered, "
            "latency_samples, latency_max_s >= latency_p95_s "
            "FROM marts.mart_destination_health WHERE grain = 'day' ORDER BY object_type"
        ).fetchall()
        funnel = con.execute(
            "SELECT landing_day, rows_landed, rows_accepted, leads, leads_in_crm, "
            "leads_dead_lettered, leads_enrolled, accepted_share, in_crm_share "
            "FROM marts.mart_lead_funnel"
        ).fetchall()

    assert stages == [
        ("extract", "raw_engagement_events", 0, 0, 0, 0.0),
        ("extract", "raw_lead_rows", 5, 4, 1, 0.2),
        ("load", "hubspot_companies", 4, 4, 0, 0.0),
        ("load", "hubspot_contacts", 4, 4, 0, 0.0),
        ("transform", "companies", 4, 4, 0, 0.0),
        ("transform", "leads", 4, 4, 0, 0.0),
    ]
    assert sources == [("leads", 1, 5, 4, 1, 0.2, 4, True)]
    assert hourly_rows == (5,)
    # Four contacts created, each first confirmed after it landed; one later refused.
    assert destinations == [
        ("companies", 4, 4, 0, 0.0, 0, 0, None),
        ("contacts", 4, 4, 0, 0.0, 1, 4, True),
    ]
    assert funnel == [(today, 5, 4, 4, 4, 1, 0, 0.8, 1.0)]
