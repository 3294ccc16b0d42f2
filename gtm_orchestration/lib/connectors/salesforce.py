"""A small Salesforce Bulk API 2.0 client over httpx: upsert records through ingest jobs.

An upsert is one ingest job per at most ``max_records_per_job`` records: create the job,
upload the records as one CSV, close it (``UploadComplete``), poll it with growing waits
until Salesforce has processed it (``JobComplete``, or ``Failed`` / ``Aborted``), then read
its successful, failed and unprocessed rows. Salesforce returns those rows in no particular
order, so each is joined back to its record by the external id, case-insensitively as
Salesforce matches it. Every request is retried on 5xx and transport errors with backoff
(``lib/connectors/retries.py``); Salesforce's errors (a JSON list of ``errorCode`` and
``message``) are raised as ``SalesforceError``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from gtm_orchestration.lib.connectors.retries import is_retryable, send_with_retries

DEFAULT_API_VERSION = "62.0"
# Well below Bulk API 2.0's 100 MB a job, so one job's CSV stays small in memory.
MAX_RECORDS_PER_JOB = 10_000
FINISHED_STATES = ("JobComplete", "Failed", "Aborted")
# Closing a job that was already closed (a retried request whose first answer was lost)
# finds it in one of these states.
CLOSED_STATES = ("UploadComplete", "InProgress", *FINISHED_STATES)

Operation = Literal["upsert", "insert"]


class SalesforceError(RuntimeError):
    """A request failed for good (after retries, or with a non-retryable status)."""

    def __init__(self, message: str, status: int | None = None, error_code: str | None = None):
        super().__init__(message)
        self.status = status
        self.error_code = error_code


@dataclass(frozen=True)
class IngestJob:
    """An ingest job as Get Job Info shows it."""

    id: str
    object: str
    state: str
    records_processed: int = 0
    records_failed: int = 0
    error_message: str | None = None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> IngestJob:
        return cls(
            id=str(body["id"]),
            object=str(body.get("object", "")),
            state=str(body["state"]),
            records_processed=int(body.get("numberRecordsProcessed") or 0),
            records_failed=int(body.get("numberRecordsFailed") or 0),
            error_message=body.get("errorMessage") or None,
        )


@dataclass(frozen=True)
class RecordResult:
    """What Salesforce did with one record: its id and whether it was created."""

    record_id: str
    created: bool


@dataclass
class UpsertOutcome:
    """Per record of an upsert (by external id as sent): written, refused with Salesforce's
    error, or never processed (its job failed or was aborted first), and the jobs run."""

    succeeded: dict[str, RecordResult] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    unprocessed: dict[str, str] = field(default_factory=dict)
    jobs: list[IngestJob] = field(default_factory=list)
    requests: int = 0


class SalesforceClient:
    """Bulk API 2.0 ingest and sObject reads. ``instance_url`` is the org's root
    (``https://MyDomain.my.salesforce.com``, or the sandbox)."""

    def __init__(
        self,
        instance_url: str,
        access_token: str,
        *,
        api_version: str = DEFAULT_API_VERSION,
        max_attempts: int = 6,
        timeout_s: float = 60.0,
        backoff_base_s: float = 0.5,
        poll_first_s: float = 0.1,
        poll_max_s: float = 10.0,
        job_timeout_s: float = 600.0,
        max_records_per_job: int = MAX_RECORDS_PER_JOB,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._http = httpx.Client(
            base_url=f"{instance_url.rstrip('/')}/services/data/v{api_version}",
            headers={"Authorization": f"Bearer {access_token}"},
            timeout=timeout_s,
        )
        self._max_attempts = max_attempts
        self._backoff_base_s = backoff_base_s
        self._poll_first_s = poll_first_s
        self._poll_max_s = poll_max_s
        self._job_timeout_s = job_timeout_s
        self._max_records_per_job = max_records_per_job
        self._sleep = sleep
        self.requests = 0

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SalesforceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Ingest jobs, step by step -------------------------------------------------------------

    def create_ingest_job(
        self, sobject: str, operation: Operation = "upsert", external_id_field: str | None = None
    ) -> IngestJob:
        """A new ``Open`` job for CSV with LF line endings.

        A retried create whose first answer was lost leaves an empty ``Open`` job behind,
        which holds no data and is never processed.
        """
        body: dict[str, str] = {
            "object": sobject,
            "operation": operation,
            "contentType": "CSV",
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
        }
        if external_id_field:
            body["externalIdFieldName"] = external_id_field
        return IngestJob.from_json(self._request("POST", "/jobs/ingest", json=body).json())

    def upload_job_data(self, job_id: str, csv_text: str) -> None:
        """Upload the job's one CSV."""
        self._request(
            "PUT",
            f"/jobs/ingest/{job_id}/batches",
            content=csv_text.encode("utf-8"),
            headers={"Content-Type": "text/csv"},
        )

    def close_job(self, job_id: str) -> IngestJob:
        """Set the job ``UploadComplete``: Salesforce starts processing it."""
        try:
            body = self._request(
                "PATCH", f"/jobs/ingest/{job_id}", json={"state": "UploadComplete"}
            )
        except SalesforceError:
            # A retried close whose first answer was lost finds the job already closed.
            job = self.job(job_id)
            if job.state in CLOSED_STATES:
                return job
            raise
        return IngestJob.from_json(body.json())

    def abort_job(self, job_id: str) -> IngestJob:
        """Abort the job; rows it has not processed yet stay unprocessed."""
        body = self._request("PATCH", f"/jobs/ingest/{job_id}", json={"state": "Aborted"})
        return IngestJob.from_json(body.json())

    def job(self, job_id: str) -> IngestJob:
        """The job's state and counts."""
        return IngestJob.from_json(self._request("GET", f"/jobs/ingest/{job_id}").json())

    def wait_for_job(self, job_id: str) -> IngestJob:
        """Poll the job, waiting ``poll_first_s`` then twice as long each time (at most
        ``poll_max_s``), until it is finished; returns it. Past ``job_timeout_s`` the job is
        aborted, so that what it has not processed yet is reported unprocessed."""
        deadline = time.monotonic() + self._job_timeout_s
        wait = self._poll_first_s
        while True:
            job = self.job(job_id)
            if job.state in FINISHED_STATES:
                return job
            if time.monotonic() + wait > deadline:
                # A job that finished meanwhile can no longer be aborted: it is read as it is.
                with contextlib.suppress(SalesforceError):
                    self.abort_job(job_id)
                return self.job(job_id)
            self._sleep(wait)
            wait = min(wait * 2, self._poll_max_s)

    def successful_results(self, job_id: str) -> list[dict[str, str]]:
        """The job's written rows: ``sf__Id``, ``sf__Created`` and the columns uploaded."""
        return self._csv_rows(f"/jobs/ingest/{job_id}/successfulResults/")

    def failed_results(self, job_id: str) -> list[dict[str, str]]:
        """The job's refused rows: ``sf__Id``, ``sf__Error`` and the columns uploaded."""
        return self._csv_rows(f"/jobs/ingest/{job_id}/failedResults/")

    def unprocessed_records(self, job_id: str) -> list[dict[str, str]]:
        """The job's rows never processed: the columns uploaded."""
        return self._csv_rows(f"/jobs/ingest/{job_id}/unprocessedrecords/")

    # The whole upsert ---------------------------------------------------------------------

    def upsert(
        self,
        sobject: str,
        external_id_field: str,
        records: Sequence[Mapping[str, str]],
    ) -> UpsertOutcome:
        """Upsert ``records`` (field -> value; each holds ``external_id_field``, unique
        case-insensitively) by their external id. An empty value leaves the field as it is.

        Returns, per external id as sent, the record written, Salesforce's error, or why the
        record was not processed. A job that cannot be run to its end (its create, upload or
        close refused, its results unreadable) leaves its records, and those of the jobs
        after it, unprocessed with the error as the reason: what Salesforce did with them is
        then unknown, and an upsert sent again does no harm.
        """
        keys = [str(record.get(external_id_field) or "") for record in records]
        _check_keys(external_id_field, keys)
        outcome = UpsertOutcome()
        start_requests = self.requests
        for start in range(0, len(records), self._max_records_per_job):
            chunk = records[start : start + self._max_records_per_job]
            try:
                self._upsert_job(sobject, external_id_field, chunk, outcome)
            except SalesforceError as error:
                answered = outcome.succeeded.keys() | outcome.failed.keys()
                for key in keys[start:]:
                    if key not in answered:
                        outcome.unprocessed[key] = str(error)
                break
        outcome.requests = self.requests - start_requests
        return outcome

    def _upsert_job(
        self,
        sobject: str,
        external_id_field: str,
        records: Sequence[Mapping[str, str]],
        outcome: UpsertOutcome,
    ) -> None:
        job = self.create_ingest_job(sobject, "upsert", external_id_field)
        try:
            self.upload_job_data(job.id, records_csv(records, external_id_field))
            self.close_job(job.id)
        except SalesforceError:
            self._abort_quietly(job.id)
            raise
        job = self.wait_for_job(job.id)
        outcome.jobs.append(job)
        sent = {str(record[external_id_field]).lower(): record for record in records}
        for row in self.successful_results(job.id):
            key = self._joined_key(row, external_id_field, sent)
            outcome.succeeded[key] = RecordResult(row["sf__Id"], row["sf__Created"] == "true")
        for row in self.failed_results(job.id):
            key = self._joined_key(row, external_id_field, sent)
            outcome.failed[key] = row.get("sf__Error") or "refused by Salesforce"
        reason = f"job {job.id} {job.state}" + (
            f": {job.error_message}" if job.error_message else ""
        )
        for row in self.unprocessed_records(job.id):
            outcome.unprocessed[self._joined_key(row, external_id_field, sent)] = reason
        # A record in no result at all was not delivered either.
        answered = outcome.succeeded.keys() | outcome.failed.keys() | outcome.unprocessed.keys()
        for record in records:
            key = str(record[external_id_field])
            if key not in answered:
                outcome.unprocessed[key] = f"{reason}; no result returned for the record"

    @staticmethod
    def _joined_key(
        row: Mapping[str, str], external_id_field: str, sent: Mapping[str, Mapping[str, str]]
    ) -> str:
        """The external id as sent of the record a result row is about."""
        value = row.get(external_id_field)
        if value is None:
            raise SalesforceError(
                f"a result row has no {external_id_field} column to join it to its record"
            )
        record = sent.get(value.lower())
        if record is None:
            raise SalesforceError(
                f"a result row has {external_id_field} {value!r}, which no record sent has"
            )
        return str(record[external_id_field])

    def _abort_quietly(self, job_id: str) -> None:
        # Should the abort fail too, the job was never closed: it is never processed either.
        with contextlib.suppress(SalesforceError):
            self.abort_job(job_id)

    # Reads ---------------------------------------------------------------------------------

    def record_by_external_id(
        self, sobject: str, external_id_field: str, value: str
    ) -> dict[str, Any] | None:
        """The record whose external id is ``value``, every field; None if there is none."""
        try:
            response = self._request("GET", f"/sobjects/{sobject}/{external_id_field}/{value}")
        except SalesforceError as error:
            if error.status == 404 and error.error_code == "NOT_FOUND":
                return None
            raise
        return response.json()

    # HTTP ----------------------------------------------------------------------------------

    def _csv_rows(self, path: str) -> list[dict[str, str]]:
        text = self._request("GET", path).text
        return list(csv.DictReader(io.StringIO(text, newline="")))

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        def send() -> httpx.Response:
            self.requests += 1
            return self._http.request(method, path, **kwargs)

        attempts = send_with_retries(
            send, max_attempts=self._max_attempts, backoff_base_s=self._backoff_base_s
        )
        response = attempts.response
        if response is not None and response.status_code < 300:
            return response
        if response is not None and not is_retryable(response):
            code, message = _error_of(response)
            raise SalesforceError(
                f"{method} {path}: HTTP {response.status_code}: {code}: {message}",
                response.status_code,
                code,
            )
        raise SalesforceError(
            f"{method} {path}: gave up after {attempts.tries} tries ({attempts.problem})",
            attempts.status,
        )


def records_csv(records: Sequence[Mapping[str, str]], external_id_field: str) -> str:
    """``records`` as a Bulk API CSV: the external id first, then every other field any record
    has, in the order first seen; a field a record lacks is an empty cell."""
    columns = list(dict.fromkeys([external_id_field, *(f for r in records for f in r)]))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for record in records:
        writer.writerow([record.get(column, "") for column in columns])
    return out.getvalue()


def _check_keys(external_id_field: str, keys: Sequence[str]) -> None:
    """Results are joined back by external id: each record needs one of its own."""
    seen: set[str] = set()
    for position, key in enumerate(keys):
        if not key:
            raise ValueError(f"record {position + 1}: {external_id_field} is empty")
        if key.lower() in seen:
            raise ValueError(
                f"record {position + 1}: {external_id_field} {key!r} repeats an earlier "
                "record's (external ids match case-insensitively)"
            )
        seen.add(key.lower())


def _error_of(response: httpx.Response) -> tuple[str | None, str]:
    """Salesforce's ``errorCode`` and ``message`` of an error answer."""
    try:
        body = response.json()
    except ValueError:
        return None, response.text[:500]
    first = body[0] if isinstance(body, list) and body else body
    if isinstance(first, dict):
        return first.get("errorCode"), str(first.get("message", ""))[:500]
    return None, response.text[:500]
