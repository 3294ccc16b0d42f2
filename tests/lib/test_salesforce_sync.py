"""Loading leads and companies into Salesforce through Bulk API 2.0: the connector and the
ledger-backed sync, against the sandbox's org over loopback HTTP and a DuckDB warehouse."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from gtm_orchestration.lib import dlq
from gtm_orchestration.lib.config import ConfigError
from gtm_orchestration.lib.connectors.salesforce import SalesforceClient
from gtm_orchestration.lib.partitioned_tables import replace_partition
from gtm_orchestration.lib.salesforce_sync import (
    SalesforceFieldMap,
    SalesforceObjectMap,
    deliver_to_salesforce,
    replay_dead_letters,
    salesforce_field_map,
    salesforce_payloads,
    sync_rows_to_salesforce,
    sync_to_salesforce,
)
from gtm_orchestration.lib.warehouse import Warehouse
from gtm_orchestration.settings import SANDBOX_SALESFORCE_TOKEN
from tests.conftest import Crm

JOBS_CREATED = "POST /services/data/{api_version}/jobs/ingest"


@pytest.fixture
def warehouse(warehouse_url: str) -> Warehouse:
    return Warehouse(warehouse_url)


def client_of(crm: Crm, **options: float) -> SalesforceClient:
    """A client of the sandbox's org that polls and backs off quickly."""
    options = {"poll_first_s": 0.02, "backoff_base_s": 0.01} | options
    return SalesforceClient(crm.base_url, SANDBOX_SALESFORCE_TOKEN, **options)


@pytest.fixture
def salesforce(crm: Crm) -> Iterator[SalesforceClient]:
    with client_of(crm) as client:
        yield client


def lead_rows(*leads: dict[str, object]) -> pa.Table:
    """Lead rows as ``gtm.leads`` holds them; unnamed columns take a plain lead's values."""
    plain = {
        "first_name": "Pat",
        "last_name": "Lee",
        "title": "VP Marketing",
        "domain": None,
        "seniority": "vp",
        "function": "marketing",
        "fit_score": 80,
        "source": "leads",
        "mapping_version": 2,
    }
    return pa.Table.from_pylist([plain | lead for lead in leads])


def company_rows(*companies: dict[str, object]) -> pa.Table:
    plain = {"industry": "COMPUTER_SOFTWARE", "employees": 120, "annual_revenue": 1.2e7}
    return pa.Table.from_pylist([plain | company for company in companies])


def ledger(warehouse: Warehouse, stream: str = "contacts") -> dict[str, str]:
    with warehouse.connect() as con:
        rows = con.execute(
            "SELECT record_key, crm_id FROM gtm.sync_ledger "
            "WHERE destination = 'salesforce' AND object_type = ?",
            [stream],
        ).fetchall()
    return dict(rows)


def sync_log(warehouse: Warehouse) -> list[tuple[str, str, str | None]]:
    with warehouse.connect() as con:
        return con.execute(
            "SELECT record_key, action, error FROM gtm.crm_sync_log "
            "WHERE destination = 'salesforce' ORDER BY synced_at, record_key"
        ).fetchall()


def jobs_created(crm: Crm) -> int:
    return sum(crm.stats()["by_endpoint"].get(JOBS_CREATED, {}).values())


def test_results_out_of_order_are_joined_back_to_their_records(
    salesforce: SalesforceClient,
) -> None:
    records = [
        {"GTM_Email__c": f"lead{n:03d}@acme.io", "LastName": f"Lead {n}", "Title": f"Role {n}"}
        for n in range(150)
    ]
    for record in records[::10]:
        del record["LastName"]  # a new Contact without LastName is refused
    outcome = salesforce.upsert("Contact", "GTM_Email__c", records)

    refused = {record["GTM_Email__c"] for record in records[::10]}
    assert set(outcome.failed) == refused
    assert outcome.failed["lead010@acme.io"] == (
        "REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --"
    )
    assert set(outcome.succeeded) == {r["GTM_Email__c"] for r in records} - refused
    assert outcome.unprocessed == {}
    # Salesforce answered in another order than the upload's ...
    (job,) = outcome.jobs
    answered = [row["GTM_Email__c"] for row in salesforce.successful_results(job.id)]
    assert answered != [r["GTM_Email__c"] for r in records if r["GTM_Email__c"] not in refused]
    # ... and each record still got its own id.
    for email in ("lead001@acme.io", "lead077@acme.io", "lead149@acme.io"):
        stored = salesforce.record_by_external_id("Contact", "GTM_Email__c", email)
        assert stored is not None
        assert stored["Id"] == outcome.succeeded[email].record_id
        assert stored["Title"] == f"Role {int(email[4:7])}"
        assert outcome.succeeded[email].created


def test_payloads_follow_the_field_map_and_leave_blanks_out() -> None:
    (payload,) = salesforce_payloads(
        lead_rows({"email": "ada@acme.io", "title": None, "domain": "acme.io", "fit_score": 91}),
        "contacts",
    )
    assert payload.key == "ada@acme.io"
    assert payload.properties == {
        "GTM_Email__c": "ada@acme.io",
        "Email": "ada@acme.io",
        "FirstName": "Pat",
        "LastName": "Lee",
        "Account.GTM_Domain__c": "acme.io",
        "GTM_Function__c": "marketing",
        "GTM_Seniority__c": "vp",
        "GTM_Fit_Score__c": "91",
        "GTM_Source__c": "leads",
        "GTM_Mapping_Version__c": "2",
    }
    (company,) = salesforce_payloads(
        company_rows({"domain": "acme.io", "company": "Acme"}), "companies"
    )
    assert company.properties["AnnualRevenue"] == "12000000"  # no '.0', as for HubSpot


def test_a_sync_writes_what_salesforce_accepts_and_reports_each_refusal(
    salesforce: SalesforceClient, warehouse: Warehouse
) -> None:
    companies = company_rows(
        {"domain": "acme.io", "company": "Acme"},
        {"domain": "noname.io", "company": None},  # Account Name is required
    )
    accounts = sync_rows_to_salesforce(
        salesforce, warehouse.connect, "companies", companies, run_id="run-1"
    )
    assert (accounts.created, accounts.failed, accounts.not_delivered) == (1, 1, 0)

    leads = lead_rows(
        {"email": "ada@acme.io", "domain": "acme.io"},
        {"email": "bob@acme.io", "domain": "acme.io", "seniority": "boss"},
        {"email": "cy@noname.io", "domain": "noname.io"},
        {"email": "di@gmail.com"},
    )
    summary = sync_rows_to_salesforce(
        salesforce, warehouse.connect, "contacts", leads, run_id="run-1"
    )
    assert (summary.payloads, summary.created, summary.updated) == (4, 2, 0)
    assert (summary.failed, summary.not_delivered, summary.unchanged) == (2, 0, 0)
    assert summary.errors == [
        "contacts bob@acme.io: INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST:GTM Seniority: bad value "
        "for restricted picklist field: boss:GTM_Seniority__c --",
        "contacts cy@noname.io: INVALID_FIELD:Foreign key external ID: noname.io not found for "
        "field GTM_Domain__c in entity Account:--",
    ]
    assert [(f.category, f.error_code) for f in summary.failures] == [
        ("permanent", "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
        ("permanent", "INVALID_FIELD"),
    ]

    # Only what Salesforce wrote enters the ledger, with its record id.
    written = ledger(warehouse)
    assert set(written) == {"ada@acme.io", "di@gmail.com"}
    ada = salesforce.record_by_external_id("Contact", "GTM_Email__c", "ada@acme.io")
    acme = salesforce.record_by_external_id("Account", "GTM_Domain__c", "acme.io")
    assert ada is not None and acme is not None
    assert written["ada@acme.io"] == ada["Id"]
    assert ada["AccountId"] == acme["Id"]
    assert ledger(warehouse, "companies") == {"acme.io": acme["Id"]}
    # Every record sent is logged with its outcome.
    log = sync_log(warehouse)
    assert ("noname.io", "failed", accounts.failures[0].error) in log
    assert ("acme.io", "created", None) in log
    assert {(key, action) for key, action, _ in log} >= {
        ("ada@acme.io", "created"),
        ("bob@acme.io", "failed"),
        ("cy@noname.io", "failed"),
        ("di@gmail.com", "created"),
    }


def test_a_rerun_sends_only_records_whose_values_changed(
    crm: Crm, salesforce: SalesforceClient, warehouse: Warehouse
) -> None:
    leads = [{"email": f"lead{n}@acme.io", "title": f"Role {n}"} for n in range(5)]
    first = sync_rows_to_salesforce(salesforce, warehouse.connect, "contacts", lead_rows(*leads))
    assert (first.created, first.failed) == (5, 0)
    jobs = jobs_created(crm)

    again = sync_rows_to_salesforce(salesforce, warehouse.connect, "contacts", lead_rows(*leads))
    assert (again.unchanged, again.created, again.updated, again.requests) == (5, 0, 0, 0)
    assert jobs_created(crm) == jobs

    # A new mapping version alone sends nothing; a changed value sends that record only.
    leads[3]["title"] = "Chief Marketing Officer"
    bumped = [lead | {"mapping_version": 3} for lead in leads]
    changed = sync_rows_to_salesforce(salesforce, warehouse.connect, "contacts", lead_rows(*bumped))
    assert (changed.unchanged, changed.updated, changed.created) == (4, 1, 0)
    assert jobs_created(crm) == jobs + 1
    stored = salesforce.record_by_external_id("Contact", "GTM_Email__c", "lead3@acme.io")
    assert stored is not None
    assert (stored["Title"], stored["GTM_Mapping_Version__c"]) == ("Chief Marketing Officer", 3)


def test_a_refused_record_is_sent_again_by_the_next_run(
    salesforce: SalesforceClient, warehouse: Warehouse
) -> None:
    bad = lead_rows({"email": "ada@acme.io", "last_name": None})
    assert sync_rows_to_salesforce(salesforce, warehouse.connect, "contacts", bad).failed == 1
    assert ledger(warehouse) == {}
    fixed = lead_rows({"email": "ada@acme.io", "last_name": "Lovelace"})
    assert sync_rows_to_salesforce(salesforce, warehouse.connect, "contacts", fixed).created == 1
    assert set(ledger(warehouse)) == {"ada@acme.io"}


def test_records_of_an_aborted_job_are_reported_not_delivered(
    crm: Crm, warehouse: Warehouse
) -> None:
    # The org holds the job unprocessed past the client's patience: the client aborts it.
    crm.http.put("/__sandbox/salesforce/processing", json={"paused": True}).raise_for_status()
    leads = lead_rows({"email": "ada@acme.io"}, {"email": "bob@acme.io"})
    with client_of(crm, job_timeout_s=0.3) as impatient:
        summary = sync_rows_to_salesforce(
            impatient, warehouse.connect, "contacts", leads, run_id="run-1"
        )
    assert (summary.not_delivered, summary.failed, summary.created) == (2, 0, 0)
    (job_id,) = summary.jobs
    assert summary.errors == [
        f"contacts ada@acme.io: not processed: job {job_id} Aborted",
        f"contacts bob@acme.io: not processed: job {job_id} Aborted",
    ]
    assert [(f.category, f.error_code) for f in summary.failures] == [
        ("transient", "NOT_PROCESSED"),
        ("transient", "NOT_PROCESSED"),
    ]
    assert ledger(warehouse) == {}
    assert {action for _, action, _ in sync_log(warehouse)} == {"failed"}

    crm.http.put("/__sandbox/salesforce/processing", json={"paused": False}).raise_for_status()
    with client_of(crm) as patient:
        retried = sync_rows_to_salesforce(
            patient, warehouse.connect, "contacts", leads, run_id="run-2"
        )
    assert (retried.created, retried.not_delivered) == (2, 0)
    assert set(ledger(warehouse)) == {"ada@acme.io", "bob@acme.io"}


def test_records_of_a_failed_job_are_reported_not_delivered(
    salesforce: SalesforceClient, warehouse: Warehouse
) -> None:
    # A field the org does not have fails the whole job, as Salesforce does.
    field_map = SalesforceFieldMap(
        version=1,
        objects={
            "contacts": SalesforceObjectMap(
                sobject="Contact",
                external_id="GTM_Email__c",
                fields={"GTM_Email__c": "email", "LastName": "last_name", "Nickname__c": "title"},
            )
        },
    )
    payloads = salesforce_payloads(lead_rows({"email": "ada@acme.io"}), "contacts", field_map)
    summary = sync_to_salesforce(
        salesforce, warehouse.connect, "contacts", payloads, field_map=field_map
    )
    assert (summary.not_delivered, summary.created) == (1, 0)
    (job_id,) = summary.jobs
    assert summary.errors == [
        f"contacts ada@acme.io: not processed: job {job_id} Failed: InvalidBatch : Field name "
        "not found : Nickname__c"
    ]
    assert ledger(warehouse) == {}


def test_server_errors_are_retried(
    crm: Crm, salesforce: SalesforceClient, warehouse: Warehouse
) -> None:
    def answered_500() -> bool:
        return any(
            "500" in counts
            for endpoint, counts in crm.stats()["by_endpoint"].items()
            if "/services/data/" in endpoint
        )

    # One load is a handful of requests: with one in five failing, a load may meet no
    # failure at all, so loads go on (each complete) until one has met a 500.
    crm.http.post("/__sandbox/faults", json={"error_rate": 0.2}).raise_for_status()
    for load in range(8):
        leads = lead_rows(*({"email": f"lead{load}-{n}@acme.io"} for n in range(30)))
        summary = sync_rows_to_salesforce(salesforce, warehouse.connect, "contacts", leads)
        assert (summary.created, summary.failed, summary.not_delivered) == (30, 0, 0)
        if answered_500():
            break
    crm.http.post("/__sandbox/faults", json={}).raise_for_status()
    assert answered_500()


def test_a_field_map_naming_an_unknown_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "salesforce.yaml"
    path.write_text(
        "version: 1\n"
        "objects:\n"
        "  contacts:\n"
        "    sobject: Contact\n"
        "    external_id: GTM_Email__c\n"
        "    fields:\n"
        "      GTM_Email__c: email\n"
        "      Title: job_title\n"
    )
    with pytest.raises(ConfigError) as raised:
        salesforce_field_map(path)
    message = str(raised.value)
    assert str(path) in message
    assert "objects.contacts.fields.Title: 'job_title' is not a column of the contacts rows" in (
        message
    )
    assert "expected one of email, first_name" in message


def test_refused_records_wait_in_the_queue_until_the_fixed_data_is_replayed(
    salesforce: SalesforceClient, warehouse: Warehouse
) -> None:
    day = "2026-11-20"
    with warehouse.connect() as con:
        replace_partition(
            con,
            "gtm.leads",
            lead_rows({"email": "ada@acme.io"}, {"email": "bob@acme.io", "seniority": "boss"}),
            day,
        )
        rows = con.sql("SELECT * FROM gtm.leads").to_arrow_table()
    first = deliver_to_salesforce(salesforce, warehouse.connect, "contacts", rows, run_id="r1")
    assert (first.created, first.failed) == (1, 1)
    with warehouse.connect() as con:
        (letter,) = dlq.dead_letters(con, destination="salesforce")
    assert (letter.record_key, letter.category) == ("bob@acme.io", "permanent")
    assert "boss" in letter.error and "GTM_Seniority__c" in letter.error

    # The data is fixed in the warehouse; the replay rebuilds the record from it.
    with warehouse.connect() as con:
        replace_partition(
            con,
            "gtm.leads",
            lead_rows({"email": "ada@acme.io"}, {"email": "bob@acme.io", "seniority": "vp"}),
            day,
        )
    replayed = replay_dead_letters(salesforce, warehouse.connect, [letter.id], run_id="replay")
    assert replayed["contacts"].created == 1 and not replayed["contacts"].failures
    bob = salesforce.record_by_external_id("Contact", "GTM_Email__c", "bob@acme.io")
    assert bob is not None and bob["GTM_Seniority__c"] == "vp"
    with warehouse.connect() as con:
        assert dlq.dead_letters(con, destination="salesforce") == []
        (status,) = con.execute("SELECT status FROM gtm.dead_letters").fetchone()
    assert status == "delivered"
    # Nothing is pending any more: a second replay sends nothing.
    assert replay_dead_letters(salesforce, warehouse.connect, [letter.id]) == {}
