"""A failing blocking check holds the CRM load; the records wait and load after the fix."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from gtm_orchestration.lib.warehouse import Warehouse
from gtm_orchestration.settings import Settings
from tests.conftest import Crm, drop_file, pipeline_instance
from tests.e2e.pipeline import run_day

GOOD = "Email,First Name,Company Name\nada@lovelace.io,Ada,Lovelace Labs\nbob@acme.com,Bob,Acme\n"


def test_failed_check_stops_the_load_until_the_data_is_fixed(settings: Settings, crm: Crm) -> None:
    today = datetime.now(UTC).date()
    drop_file(settings, "leads", "good.csv", GOOD)
    # A row that reached the raw table without passing today's extraction rules (landed by
    # an older version of the pipeline, say): its email cannot key a CRM contact.
    with Warehouse(settings.warehouse_url).connect() as con:
        con.execute(
            "INSERT INTO raw.lead_rows (source, source_file, file_sha256, line, email, "
            "mapping_version, partition_date, landed_at, loaded_at) "
            "VALUES ('leads', 'legacy.csv', 'legacy', 2, 'broken@@acme', 1, ?, now(), now())",
            [today],
        )

    with pipeline_instance() as instance:
        blocked = run_day(instance, today.isoformat())
        assert not blocked.success
        evaluations = [
            e.event_specific_data
            for e in blocked.all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION"
        ]
        failed = [e.check_name for e in evaluations if not e.passed]
        assert failed == ["emails_valid"]
        started = {e.step_key for e in blocked.all_events if e.event_type_value == "STEP_START"}
        assert not started & {"hubspot_companies", "hubspot_contacts", "hubspot_engagement"}
        # The CRM received nothing from that run; the good rows wait in the warehouse.
        assert crm.write_requests() == 0
        assert crm.all("contacts", "email") == []

        with Warehouse(settings.warehouse_url).connect() as con:
            con.execute("DELETE FROM raw.lead_rows WHERE source_file = 'legacy.csv'")
        assert run_day(instance, today.isoformat()).success

    emails = sorted(c["properties"]["email"] for c in crm.all("contacts", "email"))
    assert emails == ["ada@lovelace.io", "bob@acme.com"]


def test_a_warning_does_not_hold_the_load(settings: Settings, crm: Crm) -> None:
    # Half the rows are rejected at extraction: far above the error-rate threshold, which
    # warns; the accepted row is fine and goes on to the CRM.
    drop_file(settings, "leads", "half.csv", "Email,First Name\nada@lovelace.io,Ada\n,Nobody\n")
    with pipeline_instance() as instance:
        result = run_day(instance, datetime.now(UTC).date().isoformat())
    assert result.success
    evaluations = {
        e.event_specific_data.check_name: e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    warned = evaluations["rejected_share_below_threshold"]
    assert (warned.passed, warned.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert [name for name, e in evaluations.items() if not e.passed] == [
        "rejected_share_below_threshold"
    ]
    assert [c["properties"]["email"] for c in crm.all("contacts", "email")] == ["ada@lovelace.io"]
