"""The sandbox's Salesforce org: Bulk API 2.0 ingest jobs and reads, over loopback HTTP."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gtm_orchestration.sandbox import SandboxServer

API = "/services/data/v62.0"
FINISHED = ("JobComplete", "Failed", "Aborted")


@pytest.fixture
def org(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    """A client of the org's REST API with a bearer token."""
    with httpx.Client(
        base_url=sandbox.base_url + API, headers={"Authorization": "Bearer org-token"}, timeout=10
    ) as client:
        yield client


def create_job(org: httpx.Client, sobject: str = "Contact", **options: str) -> dict:
    external_id = {"Contact": "GTM_Email__c", "Account": "GTM_Domain__c"}[sobject]
    body = {
        "object": sobject,
        "operation": "upsert",
        "externalIdFieldName": external_id,
        "contentType": "CSV",
        "lineEnding": "LF",
    } | options
    answer = org.post("/jobs/ingest", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


def upload(org: httpx.Client, job_id: str, data: str) -> httpx.Response:
    return org.put(
        f"/jobs/ingest/{job_id}/batches", content=data, headers={"Content-Type": "text/csv"}
    )


def close(org: httpx.Client, job_id: str) -> dict:
    answer = org.patch(f"/jobs/ingest/{job_id}", json={"state": "UploadComplete"})
    assert answer.status_code == 200, answer.text
    return answer.json()


def wait(org: httpx.Client, job_id: str, timeout_s: float = 10) -> dict:
    """Poll the job until it is finished; returns its info then."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = org.get(f"/jobs/ingest/{job_id}").raise_for_status().json()
        if job["state"] in FINISHED:
            return job
        assert time.monotonic() < deadline, f"job still {job['state']}"
        time.sleep(0.02)


def run_job(org: httpx.Client, data: str, sobject: str = "Contact") -> dict:
    job = create_job(org, sobject)
    assert upload(org, job["id"], data).status_code == 201
    close(org, job["id"])
    return wait(org, job["id"])


def results(org: httpx.Client, job_id: str, kind: str) -> list[dict[str, str]]:
    answer = org.get(f"/jobs/ingest/{job_id}/{kind}/")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(answer.text)))


def contact(org: httpx.Client, email: str) -> dict | None:
    answer = org.get(f"/sobjects/Contact/GTM_Email__c/{email}")
    return None if answer.status_code == 404 else answer.raise_for_status().json()


def test_an_upsert_job_is_processed_after_upload_complete(org: httpx.Client) -> None:
    job = create_job(org)
    assert job["state"] == "Open"
    assert job["id"].startswith("750") and len(job["id"]) == 18
    assert job["contentUrl"] == f"services/data/v62.0/jobs/ingest/{job['id']}/batches"
    data = "GTM_Email__c,LastName,FirstName,Title\nada@acme.io,Lovelace,Ada,CTO\n"
    assert upload(org, job["id"], data).status_code == 201
    # Nothing is processed while the job is open.
    assert org.get(f"/jobs/ingest/{job['id']}").json()["numberRecordsProcessed"] == 0
    assert contact(org, "ada@acme.io") is None

    assert close(org, job["id"])["state"] == "UploadComplete"
    done = wait(org, job["id"])
    assert (done["state"], done["numberRecordsProcessed"], done["numberRecordsFailed"]) == (
        "JobComplete",
        1,
        0,
    )
    (written,) = results(org, job["id"], "successfulResults")
    assert written["sf__Created"] == "true"
    assert written["sf__Id"].startswith("003")
    assert {k: v for k, v in written.items() if not k.startswith("sf__")} == {
        "GTM_Email__c": "ada@acme.io",
        "LastName": "Lovelace",
        "FirstName": "Ada",
        "Title": "CTO",
    }
    record = contact(org, "ADA@acme.io")  # external ids match in any letter case
    assert record is not None
    assert (record["Id"], record["LastName"], record["Title"]) == (
        written["sf__Id"],
        "Lovelace",
        "CTO",
    )
    assert org.get(f"/sobjects/Contact/{written['sf__Id']}").json()["Id"] == written["sf__Id"]


def test_an_upsert_updates_by_external_id_and_empty_cells_leave_fields_alone(
    org: httpx.Client,
) -> None:
    run_job(org, "GTM_Email__c,LastName,Title,Phone\nada@acme.io,Lovelace,CTO,+1 555 0100\n")
    job = run_job(org, "GTM_Email__c,LastName,Title,Phone\nAda@Acme.io,,VP Engineering,#N/A\n")
    (written,) = results(org, job["id"], "successfulResults")
    assert written["sf__Created"] == "false"
    record = contact(org, "ada@acme.io")
    assert record is not None
    # Empty: left as it was; #N/A: cleared.
    assert (record["LastName"], record["Title"], record["Phone"]) == (
        "Lovelace",
        "VP Engineering",
        None,
    )


def test_refused_rows_are_failed_results_with_salesforce_errors(org: httpx.Client) -> None:
    accounts = run_job(org, "GTM_Domain__c,Name\nacme.io,Acme\n", sobject="Account")
    assert accounts["numberRecordsFailed"] == 0
    data = (
        "GTM_Email__c,LastName,GTM_Seniority__c,GTM_Country_Code__c,GTM_Fit_Score__c,"
        "Account.GTM_Domain__c\n"
        "ok@acme.io,Okay,vp,US,80,acme.io\n"
        "nolastname@acme.io,,vp,US,80,\n"
        "boss@acme.io,Boss,boss,US,80,\n"
        "long@acme.io,Long,vp,USA,80,\n"
        "score@acme.io,Score,vp,US,high,\n"
        "orphan@acme.io,Orphan,vp,US,80,unknown.io\n"
        "OK@acme.io,Again,vp,US,80,\n"
        ",Nobody,vp,US,80,\n"
    )
    job = run_job(org, data)
    assert (job["state"], job["numberRecordsProcessed"], job["numberRecordsFailed"]) == (
        "JobComplete",
        8,
        7,
    )
    (written,) = results(org, job["id"], "successfulResults")
    assert written["GTM_Email__c"] == "ok@acme.io"
    account = org.get("/sobjects/Account/GTM_Domain__c/acme.io").json()
    assert contact(org, "ok@acme.io")["AccountId"] == account["Id"]

    errors = {
        row["GTM_Email__c"]: row["sf__Error"] for row in results(org, job["id"], "failedResults")
    }
    assert errors == {
        "nolastname@acme.io": "REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]"
        ":LastName --",
        "boss@acme.io": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST:GTM Seniority: bad value for "
        "restricted picklist field: boss:GTM_Seniority__c --",
        "long@acme.io": "STRING_TOO_LONG:GTM Country Code: data value too large: USA "
        "(max length=2):GTM_Country_Code__c --",
        "score@acme.io": "INVALID_TYPE_ON_FIELD_IN_RECORD:GTM Fit Score: value not of required "
        "type: high:GTM_Fit_Score__c --",
        "orphan@acme.io": "INVALID_FIELD:Foreign key external ID: unknown.io not found for field "
        "GTM_Domain__c in entity Account:--",
        "OK@acme.io": "DUPLICATE_VALUE:Duplicate external id specified: OK@acme.io:GTM_Email__c --",
        "": "MISSING_ARGUMENT:GTM_Email__c not specified:--",
    }
    for email in ("nolastname@acme.io", "boss@acme.io", "orphan@acme.io"):
        assert contact(org, email) is None  # a refused row writes nothing
    assert results(org, job["id"], "unprocessedrecords") == []


def test_results_do_not_come_in_upload_order(org: httpx.Client) -> None:
    emails = [f"lead{n:03d}@acme.io" for n in range(200)]
    data = "GTM_Email__c,LastName\n" + "".join(f"{e},Lead {n}\n" for n, e in enumerate(emails))
    job = run_job(org, data)
    written = results(org, job["id"], "successfulResults")
    order = [row["GTM_Email__c"] for row in written]
    assert sorted(order) == emails
    assert order != emails
    # Each result still belongs to its own row: its id is the record of its external id.
    for row in written[:20]:
        assert contact(org, row["GTM_Email__c"])["Id"] == row["sf__Id"]
        assert row["LastName"] == f"Lead {int(row['GTM_Email__c'][4:7])}"


def test_an_aborted_job_leaves_its_rows_unprocessed(
    org: httpx.Client, operator: httpx.Client
) -> None:
    operator.put("/__sandbox/salesforce/processing", json={"paused": True}).raise_for_status()
    job = create_job(org)
    upload(org, job["id"], "GTM_Email__c,LastName\nada@acme.io,Lovelace\nbob@acme.io,Bob\n")
    close(org, job["id"])
    aborted = org.patch(f"/jobs/ingest/{job['id']}", json={"state": "Aborted"})
    assert aborted.json()["state"] == "Aborted"
    operator.put("/__sandbox/salesforce/processing", json={"paused": False}).raise_for_status()

    time.sleep(0.3)  # longer than the org takes to start a job
    info = org.get(f"/jobs/ingest/{job['id']}").json()
    assert (info["state"], info["numberRecordsProcessed"]) == ("Aborted", 0)
    assert results(org, job["id"], "successfulResults") == []
    unprocessed = results(org, job["id"], "unprocessedrecords")
    assert unprocessed == [
        {"GTM_Email__c": "ada@acme.io", "LastName": "Lovelace"},
        {"GTM_Email__c": "bob@acme.io", "LastName": "Bob"},
    ]
    assert contact(org, "ada@acme.io") is None
    # A finished job cannot change state again.
    again = org.patch(f"/jobs/ingest/{job['id']}", json={"state": "UploadComplete"})
    assert again.status_code == 409
    assert again.json()[0]["errorCode"] == "INVALIDJOBSTATE"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            "GTM_Email__c,LastName,Nickname__c\nada@acme.io,Lovelace,Ada\n",
            "InvalidBatch : Field name not found : Nickname__c",
        ),
        (
            "GTM_Email__c,LastName\r\nada@acme.io,Lovelace\r\n",
            "ClientInputError : LineEnding is invalid on user data. Current LineEnding setting "
            "is LF",
        ),
        (
            "Email,LastName\nada@acme.io,Lovelace\n",
            "InvalidBatch : The external ID field GTM_Email__c is missing from the header row",
        ),
    ],
)
def test_a_job_whose_data_salesforce_refuses_fails_whole(
    org: httpx.Client, data: str, message: str
) -> None:
    job = run_job(org, data)
    assert (job["state"], job["errorMessage"], job["numberRecordsProcessed"]) == (
        "Failed",
        message,
        0,
    )
    assert len(results(org, job["id"], "unprocessedrecords")) == 1
    assert contact(org, "ada@acme.io") is None


def test_errors_come_in_salesforce_shape(org: httpx.Client, sandbox: SandboxServer) -> None:
    no_token = httpx.get(f"{sandbox.base_url}{API}/jobs/ingest/7505g0000000001AAA")
    assert no_token.status_code == 401
    assert no_token.json() == [
        {"errorCode": "INVALID_SESSION_ID", "message": "Session expired or invalid"}
    ]
    missing = org.get("/jobs/ingest/7505g0000000099AAA")
    assert (missing.status_code, missing.json()[0]["errorCode"]) == (404, "NOT_FOUND")

    no_external_id = org.post("/jobs/ingest", json={"object": "Contact", "operation": "upsert"})
    assert no_external_id.status_code == 400
    assert no_external_id.json()[0] == {
        "errorCode": "INVALIDJOB",
        "message": "InvalidJob : External ID was blank for Contact. An External ID must be "
        "specified for upsert.",
    }
    not_external = org.post(
        "/jobs/ingest",
        json={"object": "Contact", "operation": "upsert", "externalIdFieldName": "LastName"},
    )
    assert not_external.status_code == 400
    assert "LastName does not match an External ID" in not_external.json()[0]["message"]

    job = create_job(org)
    assert upload(org, job["id"], "GTM_Email__c,LastName\n").status_code == 201
    twice = upload(org, job["id"], "GTM_Email__c,LastName\n")
    assert (twice.status_code, twice.json()[0]["errorCode"]) == (400, "BULK_API_ERROR")
    assert "Found multiple contents for job" in twice.json()[0]["message"]
    json_body = org.put(f"/jobs/ingest/{job['id']}/batches", json={"a": 1})
    assert json_body.status_code == 415


def test_requests_are_counted_and_faults_injected(
    org: httpx.Client, operator: httpx.Client
) -> None:
    create_job(org)
    operator.post("/__sandbox/faults", json={"error_rate": 1.0}).raise_for_status()
    faulted = org.get("/jobs/ingest/7505g0000000001AAA")
    assert (faulted.status_code, faulted.json()[0]["errorCode"]) == (500, "UNKNOWN_EXCEPTION")
    operator.post("/__sandbox/faults", json={"rate_limit_rate": 1.0}).raise_for_status()
    limited = org.get("/jobs/ingest/7505g0000000001AAA")
    assert (limited.status_code, limited.json()[0]["errorCode"]) == (403, "REQUEST_LIMIT_EXCEEDED")
    operator.post("/__sandbox/faults", json={}).raise_for_status()

    by_endpoint = operator.get("/__sandbox/stats").json()["by_endpoint"]
    assert by_endpoint["POST /services/data/{api_version}/jobs/ingest"] == {"200": 1}
    assert by_endpoint["GET /services/data/{api_version}/jobs/ingest/{id}"] == {
        "403": 1,
        "500": 1,
    }


def test_a_job_closed_before_a_restart_is_processed_after_it(tmp_path: Path) -> None:
    state = tmp_path / "sandbox"

    def org_of(server: SandboxServer) -> httpx.Client:
        headers = {"Authorization": "Bearer org-token"}
        return httpx.Client(base_url=server.base_url + API, headers=headers, timeout=10)

    with SandboxServer(state) as server, org_of(server) as org:
        httpx.put(
            f"{server.base_url}/__sandbox/salesforce/processing", json={"paused": True}
        ).raise_for_status()
        job = create_job(org)
        upload(org, job["id"], "GTM_Email__c,LastName\nada@acme.io,Lovelace\n")
        close(org, job["id"])
    # The processing settings are the operator's, in memory: the new process is not paused.
    with SandboxServer(state) as server, org_of(server) as org:
        assert wait(org, job["id"])["state"] == "JobComplete"
        assert contact(org, "ada@acme.io")["LastName"] == "Lovelace"
