"""Every run records its numbers: a dropped file's extraction and transform leave rows in
gtm.stage_metrics and the same figures on the assets' materializations."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import dagster as dg

from gtm_orchestration.lib.warehouse import Warehouse
from gtm_orchestration.settings import Settings
from tests.conftest import Crm, drop_file, pipeline_instance
from tests.e2e.pipeline import launch, sensor_runs

# Five rows: one without an email (rejected), an unknown title, an unknown country.
LEADS = (
    "Email,First Name,Last Name,Job Title,Company Name,Country\n"
    "ada@lovelace.io,Ada,Lovelace,VP Marketing,Lovelace Labs,United Kingdom\n"
    "bob@acme.com,Bob,Stone,Chief Wizard,Acme,USA\n"
    "cy@globex.com,Cy,Rao,Marketing Manager,Globex,Narnia\n"
    "di@initech.com,Di,Park,CTO,Initech,US\n"
    ",Eve,Nobody,CEO,Nowhere,US\n"
)


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, object]:
    """The metadata of ``asset``'s materialization in ``result``."""
    (materialization,) = [
        e.event_specific_data.materialization
        for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION"
        and e.event_specific_data.materialization.asset_key == dg.AssetKey(asset)
    ]
    return {k: v.value for k, v in materialization.metadata.items()}


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, tuple[bool, str]]:
    return {
        e.event_specific_data.check_name: (
            e.event_specific_data.passed,
            e.event_specific_data.severity.value,
        )
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


def test_a_run_records_its_stage_metrics(settings: Settings, crm: Crm) -> None:
    drop_file(settings, "leads", "webinar.csv", LEADS)
    with pipeline_instance() as instance:
        requests, _ = sensor_runs(instance)
        result = launch(instance, requests[0])
        # A fifth of the rows rejected warns; it does not stop the load.
        assert result.success
        run_id = result.run_id

    extracted = _metadata(result, "raw_lead_rows")
    assert (extracted["records_in"], extracted["records_out"], extracted["rejected"]) == (5, 4, 1)
    assert extracted["error_rate"] == 0.2
    assert extracted["completeness_email"] == 1.0
    assert extracted["latency_samples"] == 4
    assert 0 <= extracted["latency_p50_s"] <= extracted["latency_p95_s"]
    assert extracted["latency_p95_s"] <= extracted["latency_max_s"]

    leads = _metadata(result, "leads")
    assert (leads["records_in"], leads["records_out"], leads["rejected"]) == (4, 4, 0)
    assert leads["completeness_email"] == 1.0
    assert leads["completeness_title"] == 1.0
    # Chief Wizard is the one title of four no persona rule knows; Narnia the one country
    # of four that matched none.
    assert leads["unclassified_title_share"] == 0.25
    assert leads["unmatched_country_share"] == 0.25
    companies = _metadata(result, "companies")
    assert (companies["records_in"], companies["records_out"]) == (4, 4)

    checks = _checks(result)
    assert checks["rejected_share_below_threshold"] == (False, "WARN")
    assert checks["landed_within_sla"] == (True, "WARN")
    assert checks["transformed_within_sla"] == (True, "WARN")
    for name in ("canonical_columns_present", "emails_present", "rows_landed_once"):
        assert checks[name] == (True, "ERROR"), name
    assert checks["emails_valid"] == (True, "ERROR")

    with Warehouse(settings.warehouse_url).connect(read_only=True) as con:
        rows = con.execute(
            "SELECT stage, asset, partition_key, records_in, records_out, rejected, failed, "
            "error_rate, latency_samples, completeness, unclassified_title_share "
            "FROM gtm.stage_metrics WHERE run_id = ? ORDER BY stage, asset",
            [run_id],
        ).fetchall()
    today = datetime.now(UTC).date().isoformat()
    by_asset = {row[1]: row for row in rows}
    assert [(row[0], row[1]) for row in rows] == [
        ("extract", "raw_engagement_events"),
        ("extract", "raw_lead_rows"),
        ("load", "hubspot_companies"),
        ("load", "hubspot_contacts"),
        ("transform", "companies"),
        ("transform", "leads"),
    ]
    assert {row[2] for row in rows} == {today}
    assert by_asset["raw_lead_rows"][3:9] == (5, 4, 1, 0, 0.2, 4)
    assert by_asset["raw_engagement_events"][3:9] == (0, 0, 0, 0, 0.0, 0)
    lead_row = by_asset["leads"]
    assert lead_row[3:6] == (4, 4, 0)
    # The rows this run extracted were transformed in the same run: four latency samples.
    assert lead_row[8] == 4
    assert json.loads(lead_row[9])["email"] == 1.0
    assert lead_row[10] == 0.25
    # Four contacts created in the CRM, each measured from landing to the CRM's confirmation.
    contacts_row = by_asset["hubspot_contacts"]
    assert contacts_row[3:9] == (4, 4, 0, 0, 0.0, 4)


def test_a_rerun_over_nothing_new_measures_no_latency(settings: Settings, crm: Crm) -> None:
    drop_file(settings, "leads", "list.csv", LEADS)
    today = datetime.now(UTC).date().isoformat()
    with pipeline_instance() as instance:
        requests, _ = sensor_runs(instance)
        assert launch(instance, requests[0]).success
        again = launch(instance, requests[0])
        assert again.success
    # Nothing new landed: the extraction read nothing, the transform re-derived the day.
    extracted = _metadata(again, "raw_lead_rows")
    assert (extracted["records_in"], extracted["latency_samples"]) == (0, 0)
    assert "latency_p95_s" not in extracted
    leads = _metadata(again, "leads")
    assert (leads["records_out"], leads["latency_samples"]) == (4, 0)
    with Warehouse(settings.warehouse_url).connect(read_only=True) as con:
        runs = con.execute(
            "SELECT count(DISTINCT run_id) FROM gtm.stage_metrics WHERE partition_key = ?",
            [today],
        ).fetchone()
    assert runs == (2,)
