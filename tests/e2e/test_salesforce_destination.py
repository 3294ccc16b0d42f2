"""GTM_CRM_DESTINATION=salesforce: the same drop loads into Salesforce instead of HubSpot,
through `gtm process`, as a deployment configured so would."""

from __future__ import annotations

import os
import subprocess
import sys

from gtm_orchestration.lib.connectors.salesforce import SalesforceClient
from gtm_orchestration.lib.warehouse import Warehouse
from gtm_orchestration.settings import SANDBOX_SALESFORCE_TOKEN, Settings
from tests.conftest import Crm, drop_file

LEADS = (
    "email,first_name,last_name,title,company,website,country,employees\n"
    "dana@globex.com,Dana,Whitfield,VP of Marketing,Globex Corporation,globex.com,USA,51-200\n"
    "sam@globex.com,Sam,Rivera,Marketing Manager,Globex Corporation,globex.com,US,51-200\n"
    "priya@umbrella.io,Priya,Raman,CMO,Umbrella,umbrella.io,Germany,1000\n"
)


def _process(settings: Settings, crm: Crm) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        GTM_DATA_DIR=str(settings.data_dir),
        HUBSPOT_BASE_URL=crm.base_url,
        GTM_CRM_DESTINATION="salesforce",
    )
    return subprocess.run(
        [sys.executable, "-m", "gtm_orchestration.cli", "process"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_leads_and_companies_load_into_salesforce_when_it_is_the_destination(
    settings: Settings, crm: Crm
) -> None:
    drop_file(settings, "leads", "webinar.csv", LEADS)
    done = _process(settings, crm)
    assert done.returncode == 0, done.stdout + done.stderr

    with SalesforceClient(crm.base_url, SANDBOX_SALESFORCE_TOKEN) as salesforce:
        dana = salesforce.record_by_external_id("Contact", "GTM_Email__c", "dana@globex.com")
        globex = salesforce.record_by_external_id("Account", "GTM_Domain__c", "globex.com")
        assert salesforce.record_by_external_id("Account", "GTM_Domain__c", "umbrella.io")
    assert dana is not None and globex is not None
    assert (dana["LastName"], dana["Title"]) == ("Whitfield", "VP of Marketing")
    assert dana["AccountId"] == globex["Id"]  # linked to its account by domain
    assert globex["Name"] == "Globex Corp."
    # HubSpot received nothing: it is not the destination.
    assert crm.all("contacts") == [] and crm.all("companies") == []

    with Warehouse(settings.warehouse_url).connect(read_only=True) as con:
        ledger = con.execute(
            "SELECT object_type, count(*) FROM gtm.sync_ledger "
            "WHERE destination = 'salesforce' GROUP BY 1 ORDER BY 1"
        ).fetchall()
        load_metrics = con.execute(
            "SELECT asset, records_in, records_out, latency_samples FROM gtm.stage_metrics "
            "WHERE stage = 'load' ORDER BY asset"
        ).fetchall()
    # What Salesforce confirmed is in the ledger: a later run sends only what changes.
    assert ledger == [("companies", 2), ("contacts", 3)]
    assert load_metrics == [("salesforce_accounts", 2, 2, 0), ("salesforce_contacts", 3, 3, 3)]
