"""A sales rep's manual edit in the CRM survives later syncs that carry another value."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from gtm_orchestration.settings import Settings
from tests.conftest import Crm, drop_file, pipeline_instance
from tests.e2e.pipeline import run_day

HEADER = (
    "email,first_name,last_name,title,company,website,phone,country,state,city,industry,"
    "annual_revenue,employees\n"
)


def _lead(title: str, city: str) -> str:
    return (
        f"{HEADER}dana@globex.com,Dana,Whitfield,{title},Globex,globex.com,,United States,CA,"
        f"{city},Software,$12M,51-200\n"
    )


def _contacts_metadata(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    (materialization,) = result.asset_materializations_for_node("hubspot_contacts")
    return {k: v.value for k, v in materialization.metadata.items()}


def test_a_reps_edit_survives_a_later_sync_carrying_another_value(
    settings: Settings, crm: Crm
) -> None:
    today = datetime.now(UTC).date().isoformat()
    drop_file(settings, "leads", "monday.csv", _lead("VP of Marketing", "San Francisco"))
    with pipeline_instance() as instance:
        assert _contacts_metadata(run_day(instance, today))["created"] == 1

        # The rep corrects the title by hand in the CRM.
        crm.http.patch(
            "/crm/v3/objects/contacts/dana@globex.com",
            params={"idProperty": "email"},
            json={"properties": {"jobtitle": "Head of Growth"}},
            headers={"X-Sandbox-Source": "CRM_UI"},
        ).raise_for_status()

        # A later list says another title, and another city.
        drop_file(settings, "leads", "tuesday.csv", _lead("CMO", "Oakland"))
        second = run_day(instance, today)
        assert second.success
        counts = _contacts_metadata(second)
        assert (counts["updated"], counts["rep_edits_kept"]) == (1, 1)

    dana = crm.contact("dana@globex.com", "jobtitle", "city", "gtm_seniority")
    assert dana["properties"]["jobtitle"] == "Head of Growth"
    assert dana["propertiesWithHistory"]["jobtitle"][0]["sourceType"] == "CRM_UI"
    # What the rep did not touch follows the newer list.
    assert dana["properties"]["city"] == "Oakland"
    assert dana["properties"]["gtm_seniority"] == "c_level"
    assert dana["propertiesWithHistory"]["city"][0]["sourceType"] == "INTEGRATION"
