"""Bulk API 2.0 ingest jobs: their life cycle, their processing and their results.

A job is created ``Open``, takes one CSV upload, and is processed only after its creator
sets it to ``UploadComplete``: a processor thread picks it up after a short delay, marks it
``InProgress``, works through its rows in chunks (one transaction each, so an abort between
chunks leaves the rest unprocessed and a restarted sandbox resumes where it stopped) and
marks it ``JobComplete``. A header Salesforce would refuse (an unknown field, a line ending
other than the job's) makes the job ``Failed`` with every row unprocessed.

Results are not kept in upload order: each row's result gets a random place, as in
Salesforce, where chunks are processed in parallel, so clients must join them back to
their rows by a key of their own.
"""

from __future__ import annotations

import csv
import io
import logging
import random
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gtm_orchestration.sandbox.salesforce.errors import (
    BULK_API_ERROR,
    INVALID_JOB_STATE,
    NOT_FOUND,
    NOT_FOUND_MESSAGE,
    SalesforceApiError,
)
from gtm_orchestration.sandbox.salesforce.records import (
    FieldValue,
    RecordStore,
    StoredRecord,
    salesforce_datetime,
)
from gtm_orchestration.sandbox.salesforce.schema import (
    CLEAR_VALUE,
    FieldProblem,
    FieldSpec,
    SObjectSpec,
    sobject,
)
from gtm_orchestration.sandbox.state import SandboxDatabase

logger = logging.getLogger(__name__)

JobState = Literal["Open", "UploadComplete", "InProgress", "JobComplete", "Failed", "Aborted"]
Operation = Literal["insert", "upsert"]
ResultKind = Literal["successful", "failed", "unprocessed"]

JOB_KEY_PREFIX = "750"
# The user every sandbox job is created by.
SANDBOX_USER_ID = "0055g00000SandboxAAA"
COLUMN_DELIMITERS = {
    "COMMA": ",",
    "SEMICOLON": ";",
    "TAB": "\t",
    "PIPE": "|",
    "CARET": "^",
    "BACKQUOTE": "`",
}
LINE_ENDINGS = ("LF", "CRLF")
ABORTABLE: tuple[JobState, ...] = ("Open", "UploadComplete", "InProgress")

_DDL = (
    """CREATE TABLE IF NOT EXISTS sf_jobs (
    id TEXT PRIMARY KEY,
    object TEXT NOT NULL,
    operation TEXT NOT NULL,
    external_id_field TEXT,
    line_ending TEXT NOT NULL,
    column_delimiter TEXT NOT NULL,
    api_version TEXT NOT NULL,
    state TEXT NOT NULL,
    created_date TEXT NOT NULL,
    system_modstamp TEXT NOT NULL,
    data TEXT,
    upload_complete_at REAL,
    error_message TEXT,
    processed INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    processing_ms INTEGER NOT NULL DEFAULT 0
)""",
    """CREATE TABLE IF NOT EXISTS sf_job_results (
    job_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    record_id TEXT,
    created INTEGER,
    error TEXT,
    sort_key REAL NOT NULL,
    PRIMARY KEY (job_id, position)
)""",
)
_JOB_COLUMNS = (
    "id, object, operation, external_id_field, line_ending, column_delimiter, api_version, "
    "state, created_date, system_modstamp, data IS NOT NULL, error_message, processed, failed, "
    "processing_ms"
)


class ProcessingSettings(BaseModel):
    """How the emulated org processes jobs; set by ``PUT /__sandbox/salesforce/processing``.

    ``paused`` holds every job where it is (a test can then abort one before it is
    processed); the delays keep ``UploadComplete`` and ``InProgress`` visible to pollers.
    Kept in memory, like the fault settings: a restarted sandbox processes with the defaults.
    """

    model_config = ConfigDict(extra="forbid")

    paused: bool = False
    start_delay_ms: int = Field(default=100, ge=0, le=60_000)
    chunk_size: int = Field(default=200, ge=1, le=10_000)
    chunk_delay_ms: int = Field(default=20, ge=0, le=60_000)


@dataclass(frozen=True)
class IngestJob:
    """One job as stored."""

    id: str
    object: str
    operation: Operation
    external_id_field: str | None
    line_ending: str
    column_delimiter: str
    api_version: str
    state: JobState
    created_date: str
    system_modstamp: str
    has_data: bool
    error_message: str | None
    processed: int
    failed: int
    processing_ms: int

    def info(self, *, with_counts: bool = True) -> dict[str, object]:
        """The job's JSON as Get Job Info answers it (``with_counts=False``: as Create a
        Job and Close or Abort a Job answer it)."""
        body: dict[str, object] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.object,
            "createdById": SANDBOX_USER_ID,
            "createdDate": self.created_date,
            "systemModstamp": self.system_modstamp,
            "state": self.state,
        }
        if self.external_id_field:
            body["externalIdFieldName"] = self.external_id_field
        body |= {
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(self.api_version),
            "jobType": "V2Ingest",
            "lineEnding": self.line_ending,
            "columnDelimiter": self.column_delimiter,
        }
        if self.state == "Open":
            body["contentUrl"] = f"services/data/v{self.api_version}/jobs/ingest/{self.id}/batches"
        if with_counts:
            body |= {
                "numberRecordsProcessed": self.processed,
                "numberRecordsFailed": self.failed,
                "retries": 0,
                "totalProcessingTime": self.processing_ms,
                "apiActiveProcessingTime": self.processing_ms,
                "apexProcessingTime": 0,
            }
            if self.error_message:
                body["errorMessage"] = self.error_message
        return body


@dataclass(frozen=True)
class JobData:
    """An upload read as CSV: its header as sent and its rows."""

    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Column:
    """What one header column writes: ``field`` itself, or for ``Account.GTM_Domain__c`` the
    lookup ``field`` (``AccountId``) set to the ``parent`` record whose ``parent_field``
    holds the cell's value."""

    field: FieldSpec
    parent: SObjectSpec | None = None
    parent_field: FieldSpec | None = None


@dataclass(frozen=True)
class RowOutcome:
    """A processed row: the record written and whether it was created, or the error."""

    record_id: str | None
    created: bool
    error: str | None = None


class IngestJobs:
    """The org's ingest jobs and their processing."""

    def __init__(self, database: SandboxDatabase, records: RecordStore) -> None:
        self._database = database
        self._records = records
        self._rng = random.Random()
        self.settings = ProcessingSettings()
        with database.transaction() as connection:
            for statement in _DDL:
                connection.execute(statement)

    # The API's operations -----------------------------------------------------------------

    def create(
        self,
        spec: SObjectSpec,
        operation: Operation,
        external_id_field: str | None,
        line_ending: str,
        column_delimiter: str,
        api_version: str,
    ) -> IngestJob:
        """A new ``Open`` job."""
        now = salesforce_datetime()
        with self._database.transaction() as connection:
            job_id = self._records.new_id(connection, JOB_KEY_PREFIX)
            connection.execute(
                "INSERT INTO sf_jobs (id, object, operation, external_id_field, line_ending, "
                "column_delimiter, api_version, state, created_date, system_modstamp) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 'Open', ?, ?)",
                (
                    job_id,
                    spec.name,
                    operation,
                    external_id_field,
                    line_ending,
                    column_delimiter,
                    api_version,
                    now,
                    now,
                ),
            )
            return self._job(connection, job_id)

    def job(self, job_id: str) -> IngestJob:
        """The job ``job_id``; a 404 when there is none."""
        with self._database.reading() as connection:
            return self._job(connection, job_id)

    def upload(self, job_id: str, data: str) -> None:
        """Store ``data`` as the job's CSV; a job takes one upload, while ``Open``."""
        with self._database.transaction() as connection:
            job = self._job(connection, job_id)
            if job.state != "Open":
                raise SalesforceApiError(
                    409, INVALID_JOB_STATE, f"Job {job_id} is not open for uploads: {job.state}"
                )
            if job.has_data:
                raise SalesforceApiError(
                    400,
                    BULK_API_ERROR,
                    f"Found multiple contents for job: <{job_id}>, please 'Close' / 'Abort' / "
                    "'Delete' the current Job then create a new Job and make sure you only do "
                    "'PUT' once on a given Job.",
                )
            connection.execute("UPDATE sf_jobs SET data = ? WHERE id = ?", (data, job_id))

    def change_state(self, job_id: str, state: str) -> IngestJob:
        """Close (``UploadComplete``) or abort (``Aborted``) the job; returns it."""
        with self._database.transaction() as connection:
            job = self._job(connection, job_id)
            if state == "UploadComplete" and job.state == "Open":
                moment = time.time()
            elif state == "Aborted" and job.state in ABORTABLE:
                moment = None
            else:
                raise SalesforceApiError(
                    409,
                    INVALID_JOB_STATE,
                    f"Job {job_id} cannot change from state {job.state} to {state}",
                )
            connection.execute(
                "UPDATE sf_jobs SET state = ?, system_modstamp = ?, "
                "upload_complete_at = coalesce(?, upload_complete_at) WHERE id = ?",
                (state, salesforce_datetime(), moment, job_id),
            )
            return self._job(connection, job_id)

    def results_csv(self, job_id: str, kind: ResultKind) -> str:
        """The successful, failed or unprocessed rows of the job as Salesforce serves them:
        every value quoted, ``sf__`` columns first (none for unprocessed rows), successful
        and failed rows in no particular order."""
        with self._database.reading() as connection:
            job = self._job(connection, job_id)
            (data,) = connection.execute(
                "SELECT data FROM sf_jobs WHERE id = ?", (job_id,)
            ).fetchone()
            results = connection.execute(
                "SELECT position, record_id, created, error FROM sf_job_results "
                "WHERE job_id = ? ORDER BY sort_key",
                (job_id,),
            ).fetchall()
        parsed = read_job_data(data, job)
        out = io.StringIO()
        writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
        if kind == "successful":
            writer.writerow(["sf__Id", "sf__Created", *parsed.header])
            for position, record_id, created, error in results:
                if error is None:
                    created_text = "true" if created else "false"
                    writer.writerow([record_id, created_text, *parsed.rows[position]])
        elif kind == "failed":
            writer.writerow(["sf__Id", "sf__Error", *parsed.header])
            for position, record_id, _, error in results:
                if error is not None:
                    writer.writerow([record_id or "", error, *parsed.rows[position]])
        else:
            done = {position for position, *_ in results}
            writer.writerow(parsed.header)
            for position, row in enumerate(parsed.rows):
                if position not in done:
                    writer.writerow(row)
        return out.getvalue()

    def reset(self) -> None:
        """Forget every job and restore the default processing settings."""
        with self._database.transaction() as connection:
            connection.execute("DELETE FROM sf_jobs")
            connection.execute("DELETE FROM sf_job_results")
        self.settings = ProcessingSettings()

    # Processing ---------------------------------------------------------------------------

    def ready_jobs(self) -> list[str]:
        """Jobs to work on now: closed at least the start delay ago, or left in progress."""
        settings = self.settings
        if settings.paused:
            return []
        ready_at = time.time() - settings.start_delay_ms / 1000
        with self._database.reading() as connection:
            rows = connection.execute(
                "SELECT id FROM sf_jobs WHERE state = 'InProgress' "
                "OR (state = 'UploadComplete' AND upload_complete_at <= ?) "
                "ORDER BY upload_complete_at",
                (ready_at,),
            ).fetchall()
        return [row[0] for row in rows]

    def process(self, job_id: str, stopping: threading.Event) -> None:
        """Work through the job's rows, chunk by chunk, until it is done, aborted or
        ``stopping`` is set (a restarted sandbox carries on from the last chunk)."""
        started = time.monotonic()
        with self._database.transaction() as connection:
            job = self._job(connection, job_id)
            if job.state not in ("UploadComplete", "InProgress"):
                return
            connection.execute(
                "UPDATE sf_jobs SET state = 'InProgress', system_modstamp = ? WHERE id = ?",
                (salesforce_datetime(), job_id),
            )
            data = connection.execute("SELECT data FROM sf_jobs WHERE id = ?", (job_id,)).fetchone()
            done = {
                row[0]
                for row in connection.execute(
                    "SELECT position FROM sf_job_results WHERE job_id = ?", (job_id,)
                )
            }
        spec = sobject(job.object)
        assert spec is not None  # jobs are only created for objects the org has
        prepared = (
            _prepare(job, spec, data[0])
            if job.has_data
            else "InvalidBatch : Records not processed: no data was uploaded for this job"
        )
        if isinstance(prepared, str):
            self._finish(job_id, "Failed", prepared, started)
            return
        parsed, columns, duplicates = prepared
        pending = [position for position in range(len(parsed.rows)) if position not in done]
        for chunk in _chunks(pending, self.settings.chunk_size):
            if stopping.wait(self.settings.chunk_delay_ms / 1000):
                return
            while self.settings.paused:
                if stopping.wait(0.05):
                    return
            with self._database.transaction() as connection:
                if self._job(connection, job_id).state != "InProgress":
                    return  # aborted: the rows not yet processed stay unprocessed
                failed = 0
                for position in chunk:
                    outcome = (
                        RowOutcome(None, False, duplicates[position])
                        if position in duplicates
                        else self._write_row(connection, job, spec, columns, parsed, position)
                    )
                    failed += outcome.error is not None
                    connection.execute(
                        "INSERT INTO sf_job_results VALUES (?, ?, ?, ?, ?, ?)",
                        (
                            job_id,
                            position,
                            outcome.record_id,
                            outcome.created,
                            outcome.error,
                            self._rng.random(),
                        ),
                    )
                connection.execute(
                    "UPDATE sf_jobs SET processed = processed + ?, failed = failed + ?, "
                    "processing_ms = processing_ms + ?, system_modstamp = ? WHERE id = ?",
                    (
                        len(chunk),
                        failed,
                        int((time.monotonic() - started) * 1000),
                        salesforce_datetime(),
                        job_id,
                    ),
                )
                started = time.monotonic()
        self._finish(job_id, "JobComplete", None, started)

    def fail(self, job_id: str, error: str) -> None:
        """Mark the job ``Failed`` with ``error`` as its ``errorMessage``."""
        self._finish(job_id, "Failed", error, time.monotonic())

    def _finish(self, job_id: str, state: JobState, error: str | None, started: float) -> None:
        with self._database.transaction() as connection:
            connection.execute(
                "UPDATE sf_jobs SET state = ?, error_message = ?, system_modstamp = ?, "
                "processing_ms = processing_ms + ? WHERE id = ? "
                "AND state IN ('UploadComplete', 'InProgress')",
                (
                    state,
                    error,
                    salesforce_datetime(),
                    int((time.monotonic() - started) * 1000),
                    job_id,
                ),
            )

    def _write_row(
        self,
        connection: sqlite3.Connection,
        job: IngestJob,
        spec: SObjectSpec,
        columns: Sequence[Column],
        parsed: JobData,
        position: int,
    ) -> RowOutcome:
        """Write one row's record; a refused row changes nothing."""
        row = parsed.rows[position]
        if len(row) != len(columns):
            message = f"Row has {len(row)} values; the header has {len(columns)} columns"
            return RowOutcome(None, False, FieldProblem("INVALID_FIELD", message).error)
        values: dict[str, FieldValue | None] = {}
        for column, text in zip(columns, row, strict=True):
            if text == "":
                continue  # an empty cell leaves the field as it is
            value = self._column_value(connection, column, text)
            if isinstance(value, FieldProblem):
                return RowOutcome(None, False, value.error)
            values[column.field.name] = value
        existing = None
        if job.operation == "upsert":
            key_field = spec.field(job.external_id_field or "")
            assert key_field is not None  # checked when the job was created
            key = values.get(key_field.name)
            if key is None:
                problem = FieldProblem("MISSING_ARGUMENT", f"{key_field.name} not specified")
                return RowOutcome(None, False, problem.error)
            existing = self._records.by_external_id(connection, spec, key_field.name, str(key))
        problem = self._uniqueness_problem(connection, spec, existing, values) or _missing(
            spec, existing, values
        )
        if problem is not None:
            return RowOutcome(existing.id if existing else None, False, problem.error)
        record = self._records.write(connection, spec, existing, values)
        return RowOutcome(record.id, existing is None)

    def _column_value(
        self, connection: sqlite3.Connection, column: Column, text: str
    ) -> FieldValue | FieldProblem | None:
        if text == CLEAR_VALUE:
            return None
        if column.parent is None or column.parent_field is None:
            return column.field.parse(text)
        parent = self._records.by_external_id(
            connection, column.parent, column.parent_field.name, text
        )
        if parent is None:
            return FieldProblem(
                "INVALID_FIELD",
                f"Foreign key external ID: {text} not found for field "
                f"{column.parent_field.name} in entity {column.parent.name}",
            )
        return parent.id

    def _uniqueness_problem(
        self,
        connection: sqlite3.Connection,
        spec: SObjectSpec,
        existing: StoredRecord | None,
        values: dict[str, FieldValue | None],
    ) -> FieldProblem | None:
        for spec_field in spec.fields:
            value = values.get(spec_field.name)
            if not spec_field.external_id or value is None:
                continue
            holder = self._records.by_external_id(connection, spec, spec_field.name, str(value))
            if holder is not None and (existing is None or holder.id != existing.id):
                return FieldProblem(
                    "DUPLICATE_VALUE",
                    f"duplicate value found: {spec_field.name} duplicates value on record "
                    f"with id: {holder.id}",
                    spec_field.name,
                )
        return None

    def _job(self, connection: sqlite3.Connection, job_id: str) -> IngestJob:
        row = connection.execute(
            f"SELECT {_JOB_COLUMNS} FROM sf_jobs WHERE id = ?", (job_id,)
        ).fetchone()
        if row is None:
            raise SalesforceApiError(404, NOT_FOUND, NOT_FOUND_MESSAGE)
        return IngestJob(*row[:10], bool(row[10]), *row[11:])


def _missing(
    spec: SObjectSpec, existing: StoredRecord | None, values: dict[str, FieldValue | None]
) -> FieldProblem | None:
    """REQUIRED_FIELD_MISSING when a create leaves a required field unset, or any write
    clears one."""
    missing = [
        f.name
        for f in spec.required
        if (f.name in values and values[f.name] is None)
        or (existing is None and values.get(f.name) is None)
    ]
    if not missing:
        return None
    return FieldProblem(
        "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing[0]
    )


def line_ending_problem(data: str, job: IngestJob) -> str | None:
    """The ``errorMessage`` that fails a job whose data does not end its lines as the job
    says, None when they agree."""
    first_line_end = data.find("\n")
    if first_line_end < 0:
        return None
    crlf = data[first_line_end - 1 : first_line_end] == "\r"
    if crlf == (job.line_ending == "CRLF"):
        return None
    return (
        "ClientInputError : LineEnding is invalid on user data. Current LineEnding setting is "
        f"{job.line_ending}"
    )


def read_job_data(data: str | None, job: IngestJob) -> JobData:
    """``data`` read as CSV with the job's delimiter; empty when there is none."""
    delimiter = COLUMN_DELIMITERS[job.column_delimiter]
    reader = csv.reader(io.StringIO(data or "", newline=""), delimiter=delimiter)
    rows = [row for row in reader if row]  # blank lines hold no record
    if not rows:
        return JobData([], [])
    return JobData(rows[0], rows[1:])


def resolve_columns(spec: SObjectSpec, header: Sequence[str]) -> list[Column] | str:
    """What each header column writes, or the ``errorMessage`` that fails the job."""
    columns: list[Column] = []
    seen: set[str] = set()
    for name in header:
        if name.lower() in seen:
            return f"InvalidBatch : Duplicate field name: {name}"
        seen.add(name.lower())
        relationship, _, parent_field_name = name.partition(".")
        if parent_field_name:
            lookup = spec.relationship(relationship)
            parent = sobject(lookup.reference_to or "") if lookup else None
            parent_field = parent.field(parent_field_name) if parent else None
            if lookup is None or parent is None or parent_field is None:
                return f"InvalidBatch : Field name not found : {name}"
            if not parent_field.external_id:
                return (
                    f"InvalidBatch : Field name provided, {parent_field.name} does not match an "
                    f"External ID for {parent.name}"
                )
            columns.append(Column(lookup, parent, parent_field))
            continue
        found = spec.field(name)
        if found is None:
            return f"InvalidBatch : Field name not found : {name}"
        if not found.writable:
            return f"InvalidBatch : Unable to update field: {found.name}"
        columns.append(Column(found))
    return columns


def _prepare(
    job: IngestJob, spec: SObjectSpec, data: str
) -> tuple[JobData, list[Column], dict[int, str]] | str:
    """The job's rows, their columns and the rows that repeat an earlier row's external id
    (with their error); or the ``errorMessage`` that fails the whole job."""
    problem = line_ending_problem(data, job)
    if problem is not None:
        return problem
    parsed = read_job_data(data, job)
    columns = resolve_columns(spec, parsed.header)
    if isinstance(columns, str):
        return columns
    duplicates: dict[int, str] = {}
    if job.operation == "upsert":
        key_field = spec.field(job.external_id_field or "")
        names = [column.field.name if column.parent is None else "" for column in columns]
        if key_field is None or key_field.name not in names:
            return (
                f"InvalidBatch : The external ID field {job.external_id_field} is missing "
                "from the header row"
            )
        index = names.index(key_field.name)
        seen: set[str] = set()
        for position, row in enumerate(parsed.rows):
            key = row[index].lower() if index < len(row) else ""
            if key and key in seen:
                duplicates[position] = FieldProblem(
                    "DUPLICATE_VALUE",
                    f"Duplicate external id specified: {row[index]}",
                    key_field.name,
                ).error
            seen.add(key)
    return parsed, columns, duplicates


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class JobProcessor:
    """The thread that processes closed jobs, as Salesforce's servers do asynchronously."""

    def __init__(self, jobs: IngestJobs, idle_s: float = 0.05) -> None:
        self._jobs = jobs
        self._idle_s = idle_s
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start processing (jobs left unfinished by an earlier run go on)."""
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._run, name="salesforce-bulk-processor", daemon=True
        )
        self._thread.start()

    def wake(self) -> None:
        """Look for ready jobs now rather than at the next idle tick."""
        self._wake.set()

    def close(self) -> None:
        """Stop after the chunk in hand; unfinished jobs are resumed by the next start."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self._idle_s)
            self._wake.clear()
            for job_id in self._jobs.ready_jobs():
                if self._stopping.is_set():
                    return
                try:
                    self._jobs.process(job_id, self._stopping)
                except Exception:
                    # One job's fault must not stop the org from processing the others.
                    logger.exception("processing Salesforce ingest job %s failed", job_id)
                    self._jobs.fail(job_id, "InternalServerError : the job could not be processed")
