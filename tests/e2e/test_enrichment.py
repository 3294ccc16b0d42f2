"""Leads dropped without firmographics reach the CRM enriched, through the warehouse cache;
an enrichment outage flags them without stopping the load; the weekly refresh re-sends
only the companies whose firmographics changed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import dagster as dg
import duckdb
import httpx
import pytest

from gtm_orchestration.definitions import defs
from gtm_orchestration.defs.transform.enrichment import rederive_refreshed_days
from gtm_orchestration.lib.conversion import headcount_band
from gtm_orchestration.lib.normalize import normalize_industry
from gtm_orchestration.lib.warehouse import Warehouse
from gtm_orchestration.sandbox import SandboxServer
from gtm_orchestration.settings import Settings
from tests.conftest import Crm, drop_file, pipeline_instance
from tests.e2e.pipeline import launch, run_day, sensor_runs

HEADER = (
    "E-mail,First Name,Last Name,Job Title,Company Name,Website,Phone,Country,State,City,"
    "Industry,Annual Revenue,Employees\n"
)
LEADS = HEADER + (
    # Nothing but a website: every firmographic comes from the enrichment API.
    "ana@northwind-trading.com,Ana,Silva,VP Marketing,,northwind-trading.com,,,,,,,\n"
    # The lead's own industry and country stay; its head count is filled.
    "li@acme-robotics.de,Li,Wei,Head of Sales,Acme Robotics,acme-robotics.de,,Germany,,,"
    "Retail,,\n"
    # Free mail: no company to look up.
    "joe@gmail.com,Joe,Bloggs,CTO,Bloggs Ltd,,,US,,,,,\n"
    # A domain the API does not know.
    "someone@example.com,Some,One,Marketing Manager,Example Inc,,,US,,,,,\n"
)
ENRICHMENT = "GET /enrichment/v1/companies"
CONTACT_PROPS = ("email", "company", "industry", "numemployees", "country")
COMPANY_PROPS = ("domain", "name", "industry", "numberofemployees", "country")


def _vendor(crm: Crm, domain: str) -> dict:
    response = crm.http.get(
        "/enrichment/v1/companies",
        params={"domain": domain},
        headers={"Authorization": "Bearer e2e-test"},
    )
    return response.raise_for_status().json()


def _lookups(stats: dict) -> int:
    return sum(stats["by_endpoint"].get(ENRICHMENT, {}).values())


def _by_key(records: list[dict], key: str) -> dict[str, dict]:
    return {r["properties"][key]: r["properties"] for r in records}


def _leads_metadata(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    (event,) = [
        e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey("leads")
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def _warehouse(settings: Settings) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
    return Warehouse(settings.warehouse_url).connect()


def _run_drop(settings: Settings, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    drop_file(settings, "leads", "fair.csv", LEADS)
    requests, _ = sensor_runs(instance)
    assert len(requests) == 1
    result = launch(instance, requests[0])
    assert result.success
    return result


def test_a_drop_without_firmographics_reaches_the_crm_enriched(
    settings: Settings, crm: Crm
) -> None:
    with pipeline_instance() as instance:
        result = _run_drop(settings, instance)
        northwind, acme = _vendor(crm, "northwind-trading.com"), _vendor(crm, "acme-robotics.de")
        contacts = _by_key(crm.all("contacts", *CONTACT_PROPS), "email")
        companies = _by_key(crm.all("companies", *COMPANY_PROPS), "domain")

        ana = contacts["ana@northwind-trading.com"]
        assert ana["company"] == northwind["name"]
        assert ana["industry"] == normalize_industry(northwind["industry"])
        assert ana["numemployees"] == headcount_band(northwind["employees"])
        assert ana["country"] == northwind["country"]
        company = companies["northwind-trading.com"]
        assert company["industry"] == normalize_industry(northwind["industry"])
        assert company["numberofemployees"] == str(northwind["employees"])

        li = contacts["li@acme-robotics.de"]
        assert (li["industry"], li["country"]) == ("RETAIL", "Germany")
        assert li["numemployees"] == headcount_band(acme["employees"])
        assert contacts["someone@example.com"].get("industry") is None
        assert companies["example.com"].get("industry") is None

        metadata = _leads_metadata(result)
        assert {k: metadata[f"enrichment_{k}"] for k in ("domains", "looked_up", "found")} == {
            "domains": 3,
            "looked_up": 3,
            "found": 2,
        }
        assert (metadata["enrichment_unknown"], metadata["enrichment_failed"]) == (1, 0)
        with _warehouse(settings) as con:
            assert con.execute(
                "SELECT found FROM gtm.enrichment_cache WHERE domain = 'example.com'"
            ).fetchall() == [(False,)]

        # The day again: every domain is answered by the cache, and the CRM hears nothing.
        stats, writes = crm.stats(), crm.writes()
        again = run_day(instance, result.dagster_run.tags["dagster/partition"])
        assert again.success
        assert _lookups(crm.stats()) == _lookups(stats)
        assert _leads_metadata(again)["enrichment_from_cache"] == 3
        assert crm.writes() == writes


@pytest.fixture
def enrichment_outage(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SandboxServer]:
    """An enrichment API that answers every request with a 500; the CRM stays healthy."""
    with SandboxServer(tmp_path / "failing-vendor") as vendor:
        httpx.post(f"{vendor.base_url}/__sandbox/faults", json={"error_rate": 1.0})
        monkeypatch.setenv("GTM_ENRICHMENT_BASE_URL", vendor.base_url)
        yield vendor


def test_an_enrichment_outage_flags_leads_and_the_batch_still_loads(
    settings: Settings, crm: Crm, enrichment_outage: SandboxServer
) -> None:
    drop_file(settings, "leads", "fair.csv", HEADER + LEADS.splitlines(keepends=True)[1])
    with pipeline_instance() as instance:
        requests, _ = sensor_runs(instance)
        result = launch(instance, requests[0])
        assert result.success

    metadata = _leads_metadata(result)
    assert (metadata["enrichment_failed"], metadata["enrichment_flagged_rows"]) == (1, 1)
    ana = crm.contact("ana@northwind-trading.com", "industry", "jobtitle")
    assert ana is not None
    assert ana["properties"]["jobtitle"] == "VP Marketing"
    assert ana["properties"].get("industry") is None
    with _warehouse(settings) as con:
        (flags,) = con.execute(
            "SELECT flags FROM gtm.leads WHERE email = 'ana@northwind-trading.com'"
        ).fetchone()
    assert flags == "enrichment: API failed after 4 tries (HTTP 500)"
    stats = httpx.get(f"{enrichment_outage.base_url}/__sandbox/stats").json()
    assert stats["by_endpoint"][ENRICHMENT] == {"500": 4}


def test_the_weekly_refresh_resends_only_companies_whose_firmographics_changed(
    settings: Settings, crm: Crm
) -> None:
    with pipeline_instance() as instance:
        loaded = _run_drop(settings, instance)
        day = loaded.dagster_run.tags["dagster/partition"]
        # A month passes; meanwhile the vendor learns that Northwind grew.
        with _warehouse(settings) as con:
            con.execute("UPDATE gtm.enrichment_cache SET fetched_at = fetched_at - INTERVAL 40 DAY")
        crm.http.put(
            "/__sandbox/enrichment/companies/northwind-trading.com", json={"employees": 4321}
        ).raise_for_status()
        contacts_before = _by_key(crm.all("contacts", *CONTACT_PROPS), "email")
        writes = crm.stats()["writes"]

        refresh = defs.resolve_job_def("enrichment_refresh").execute_in_process(instance=instance)
        assert refresh.success
        context = dg.build_run_status_sensor_context(
            sensor_name="rederive_refreshed_days",
            dagster_event=refresh.get_run_success_event(),
            dagster_instance=instance,
            dagster_run=refresh.dagster_run,
        )
        requests = rederive_refreshed_days(context)
        assert isinstance(requests, list)
        assert [r.partition_key for r in requests] == [day]
        (rederived,) = [launch(instance, r) for r in requests]
        assert rederived.success
        # The re-derived day passes the same blocking checks before reaching the CRM.
        checks = {e.check_name for e in rederived.get_asset_check_evaluations()}
        assert {"emails_valid", "domains_unique"} <= checks

        companies = _by_key(crm.all("companies", *COMPANY_PROPS), "domain")
        contacts = _by_key(crm.all("contacts", *CONTACT_PROPS), "email")
        assert companies["northwind-trading.com"]["numberofemployees"] == "4321"
        assert contacts["ana@northwind-trading.com"]["numemployees"] == "1000-5000"
        assert contacts["li@acme-robotics.de"] == contacts_before["li@acme-robotics.de"]
        # One company and its one contact were updated; nothing else was sent.
        after = crm.stats()["writes"]
        assert after["companies"]["updated"] - writes["companies"]["updated"] == 1
        assert after["contacts"]["updated"] - writes["contacts"]["updated"] == 1
        assert after["contacts"]["created"] == writes["contacts"]["created"]

        # Nothing is stale any more: the next refresh changes nothing and re-derives no day.
        quiet = defs.resolve_job_def("enrichment_refresh").execute_in_process(instance=instance)
        context = dg.build_run_status_sensor_context(
            sensor_name="rederive_refreshed_days",
            dagster_event=quiet.get_run_success_event(),
            dagster_instance=instance,
            dagster_run=quiet.dagster_run,
        )
        assert isinstance(rederive_refreshed_days(context), dg.SkipReason)
