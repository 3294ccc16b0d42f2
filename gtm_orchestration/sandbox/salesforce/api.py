"""Salesforce REST wire protocol: Bulk API 2.0 ingest jobs and sObject reads by external id.

Routes live under ``/services/data/vXX.X/`` (API version 41.0 or later, as Bulk API 2.0
needs). Requests pass the org's gateway first: a bearer token (any token opens the sandbox
org; none is a 401 ``INVALID_SESSION_ID``) and the operator's injected faults, answered as
Salesforce answers them: a 500 ``UNKNOWN_EXCEPTION`` for an error and a 403
``REQUEST_LIMIT_EXCEEDED`` for a rate limit, which Salesforce counts per day, not per second.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from gtm_orchestration.sandbox.faults import FaultInjector, InjectedFault
from gtm_orchestration.sandbox.salesforce.bulk import (
    COLUMN_DELIMITERS,
    LINE_ENDINGS,
    IngestJobs,
    JobProcessor,
    ProcessingSettings,
    ResultKind,
)
from gtm_orchestration.sandbox.salesforce.errors import (
    BULK_API_ERROR,
    INVALID_JOB,
    INVALID_JOB_STATE,
    INVALID_SESSION_ID,
    JSON_PARSER_ERROR,
    NOT_FOUND,
    NOT_FOUND_MESSAGE,
    REQUEST_LIMIT_EXCEEDED,
    SESSION_MESSAGE,
    UNKNOWN_EXCEPTION,
    UNSUPPORTED_MEDIA_TYPE,
    SalesforceApiError,
    error_response,
)
from gtm_orchestration.sandbox.salesforce.records import RecordStore, StoredRecord
from gtm_orchestration.sandbox.salesforce.schema import SObjectSpec, sobject
from gtm_orchestration.sandbox.state import SandboxDatabase

SALESFORCE_PREFIX = "/services/data/"
# Bulk API 2.0 exists from API version 41.0 on.
FIRST_BULK_V2_VERSION = 41
SUPPORTED_OPERATIONS = ("insert", "upsert")
_API_VERSION = re.compile(r"^v(\d{2,3})\.0$")

CallNext = Callable[[Request], Awaitable[Response]]


class SalesforceOrg:
    """The emulated org: its records, its ingest jobs and the thread that processes them."""

    def __init__(self, database: SandboxDatabase) -> None:
        self.records = RecordStore(database)
        self.jobs = IngestJobs(database, self.records)
        self.processor = JobProcessor(self.jobs)
        self._database = database

    def start(self) -> None:
        """Start processing jobs (those a previous run left unfinished too)."""
        self.processor.start()

    def close(self) -> None:
        """Stop processing; the state stays in the database for the next start."""
        self.processor.close()

    def reset(self) -> None:
        """Forget every record and job and restore the default processing settings."""
        self.jobs.reset()
        self.records.reset()

    def record(self, spec: SObjectSpec, record_id: str) -> StoredRecord | None:
        with self._database.reading() as connection:
            return self.records.get(connection, spec.name, record_id)

    def record_by_external_id(
        self, spec: SObjectSpec, field: str, value: str
    ) -> StoredRecord | None:
        with self._database.reading() as connection:
            return self.records.by_external_id(connection, spec, field, value)

    async def gateway(
        self, request: Request, call_next: CallNext, token: str | None, faults: FaultInjector
    ) -> Response:
        """Authenticate and fault-inject one request, then answer it."""
        if token is None:
            return error_response(401, INVALID_SESSION_ID, SESSION_MESSAGE)
        settings = faults.settings
        if settings.latency_ms:
            await asyncio.sleep(settings.latency_ms / 1000)
        fault = faults.draw()
        if fault is InjectedFault.SERVER_ERROR:
            return error_response(
                500,
                UNKNOWN_EXCEPTION,
                "An unexpected error occurred. Please include this ErrorId if you contact "
                "support: 1234567890-12345 (-1234567890)",
            )
        if fault is InjectedFault.RATE_LIMITED:
            return error_response(403, REQUEST_LIMIT_EXCEEDED, "TotalRequests Limit exceeded.")
        return await call_next(request)


def _api_version(text: str) -> str:
    """``v62.0`` -> ``62.0``; a 404 for a version the org does not serve."""
    match = _API_VERSION.match(text)
    if match is None or int(match.group(1)) < FIRST_BULK_V2_VERSION:
        raise SalesforceApiError(404, NOT_FOUND, NOT_FOUND_MESSAGE)
    return f"{match.group(1)}.0"


def _sobject(name: str) -> SObjectSpec:
    spec = sobject(name)
    if spec is None:
        raise SalesforceApiError(404, NOT_FOUND, f"The requested resource does not exist: {name}")
    return spec


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError) as exc:
        raise SalesforceApiError(400, JSON_PARSER_ERROR, f"Unexpected request body: {exc}") from exc
    if not isinstance(body, dict):
        raise SalesforceApiError(400, JSON_PARSER_ERROR, "Expected a JSON object")
    return body


def _record_json(record: StoredRecord, spec: SObjectSpec, api_version: str) -> dict[str, object]:
    """A record as ``GET .../sobjects/{sObject}/...`` answers it: every field, null if unset."""
    body: dict[str, object] = {
        "attributes": {
            "type": spec.name,
            "url": f"/services/data/v{api_version}/sobjects/{spec.name}/{record.id}",
        }
    }
    audit = {
        "CreatedDate": record.created_date,
        "LastModifiedDate": record.last_modified_date,
        "SystemModstamp": record.last_modified_date,
    }
    for spec_field in spec.fields:
        if spec_field.name == "Id":
            body["Id"] = record.id
        elif spec_field.name in audit:
            body[spec_field.name] = audit[spec_field.name]
        else:
            body[spec_field.name] = record.fields.get(spec_field.name)
    return body


def _csv(text: str) -> PlainTextResponse:
    return PlainTextResponse(text, media_type="text/csv")


def salesforce_router(org: SalesforceOrg) -> APIRouter:
    """The ``/services/data/vXX.X`` routes of the sandbox org."""
    router = APIRouter(prefix="/services/data/{api_version}")

    @router.post("/jobs/ingest")
    @router.post("/jobs/ingest/", include_in_schema=False)
    async def create_job(api_version: str, request: Request) -> JSONResponse:
        version = _api_version(api_version)
        body = await _json_object(request)
        name = str(body.get("object") or "")
        spec = sobject(name)
        if spec is None:
            raise SalesforceApiError(
                400, INVALID_JOB, f"InvalidJob : Unable to find object: {name}"
            )
        operation = body.get("operation")
        if operation not in SUPPORTED_OPERATIONS:
            raise SalesforceApiError(
                400,
                INVALID_JOB,
                f"InvalidJob : Operation {operation!r} is not supported by the sandbox org; "
                f"expected one of {', '.join(SUPPORTED_OPERATIONS)}",
            )
        external_id = body.get("externalIdFieldName")
        if operation == "upsert":
            if not external_id:
                raise SalesforceApiError(
                    400,
                    INVALID_JOB,
                    f"InvalidJob : External ID was blank for {spec.name}. An External ID must "
                    "be specified for upsert.",
                )
            key_field = spec.field(str(external_id))
            if key_field is None or not key_field.external_id:
                raise SalesforceApiError(
                    400,
                    INVALID_JOB,
                    f"InvalidJob : Field name provided, {external_id} does not match an "
                    f"External ID, Salesforce Id, or indexed field for {spec.name}",
                )
            external_id = key_field.name
        options = {
            "contentType": (body.get("contentType", "CSV"), ("CSV",)),
            "lineEnding": (body.get("lineEnding", "LF"), LINE_ENDINGS),
            "columnDelimiter": (body.get("columnDelimiter", "COMMA"), tuple(COLUMN_DELIMITERS)),
        }
        for option, (value, allowed) in options.items():
            if value not in allowed:
                raise SalesforceApiError(
                    400,
                    JSON_PARSER_ERROR,
                    f"Cannot deserialize value of {option} from {value!r}: expected one of "
                    f"{', '.join(allowed)}",
                )
        job = await asyncio.to_thread(
            org.jobs.create,
            spec,
            operation,
            external_id if operation == "upsert" else None,
            options["lineEnding"][0],
            options["columnDelimiter"][0],
            version,
        )
        return JSONResponse(job.info(with_counts=False))

    @router.put("/jobs/ingest/{job_id}/batches")
    async def upload_job_data(
        api_version: str,
        job_id: str,
        request: Request,
        content_type: Annotated[str | None, Header()] = None,
    ) -> Response:
        _api_version(api_version)
        if not (content_type or "").lower().startswith("text/csv"):
            raise SalesforceApiError(
                415,
                UNSUPPORTED_MEDIA_TYPE,
                f"Content-Type {content_type!r} is not supported; upload job data as text/csv",
            )
        try:
            data = (await request.body()).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SalesforceApiError(
                400, BULK_API_ERROR, f"Job data must be UTF-8 encoded: {exc}"
            ) from exc
        await asyncio.to_thread(org.jobs.upload, job_id, data)
        return Response(status_code=201)

    @router.patch("/jobs/ingest/{job_id}")
    @router.patch("/jobs/ingest/{job_id}/", include_in_schema=False)
    async def change_job_state(api_version: str, job_id: str, request: Request) -> JSONResponse:
        _api_version(api_version)
        body = await _json_object(request)
        state = body.get("state")
        if state not in ("UploadComplete", "Aborted"):
            raise SalesforceApiError(
                400,
                INVALID_JOB_STATE,
                f"Invalid job state {state!r}: expected UploadComplete or Aborted",
            )
        job = await asyncio.to_thread(org.jobs.change_state, job_id, state)
        org.processor.wake()
        return JSONResponse(job.info(with_counts=False))

    @router.get("/jobs/ingest/{job_id}")
    @router.get("/jobs/ingest/{job_id}/", include_in_schema=False)
    async def job_info(api_version: str, job_id: str) -> JSONResponse:
        _api_version(api_version)
        job = await asyncio.to_thread(org.jobs.job, job_id)
        return JSONResponse(job.info())

    def results_route(kind: ResultKind, path: str) -> None:
        async def results(api_version: str, job_id: str) -> PlainTextResponse:
            _api_version(api_version)
            return _csv(await asyncio.to_thread(org.jobs.results_csv, job_id, kind))

        results.__name__ = f"{kind}_results"
        for suffix in ("", "/"):
            router.add_api_route(
                f"/jobs/ingest/{{job_id}}/{path}{suffix}",
                results,
                methods=["GET"],
                include_in_schema=not suffix,
            )

    results_route("successful", "successfulResults")
    results_route("failed", "failedResults")
    results_route("unprocessed", "unprocessedrecords")

    @router.get("/sobjects/{sobject_name}/{record_id}")
    async def record_by_id(api_version: str, sobject_name: str, record_id: str) -> JSONResponse:
        version = _api_version(api_version)
        spec = _sobject(sobject_name)
        record = await asyncio.to_thread(org.record, spec, record_id)
        if record is None:
            raise SalesforceApiError(404, NOT_FOUND, NOT_FOUND_MESSAGE)
        return JSONResponse(_record_json(record, spec, version))

    @router.get("/sobjects/{sobject_name}/{field_name}/{value}")
    async def record_by_external_id(
        api_version: str, sobject_name: str, field_name: str, value: str
    ) -> JSONResponse:
        version = _api_version(api_version)
        spec = _sobject(sobject_name)
        key_field = spec.field(field_name)
        if key_field is None or not key_field.external_id:
            raise SalesforceApiError(
                404,
                NOT_FOUND,
                f"Provided external ID field does not exist or is not accessible: {field_name}",
            )
        record = await asyncio.to_thread(org.record_by_external_id, spec, key_field.name, value)
        if record is None:
            raise SalesforceApiError(404, NOT_FOUND, NOT_FOUND_MESSAGE)
        return JSONResponse(_record_json(record, spec, version))

    return router


def salesforce_operator_router(org: SalesforceOrg) -> APIRouter:
    """``/__sandbox/salesforce/processing``: how (and whether) the org processes jobs."""
    router = APIRouter(prefix="/__sandbox/salesforce")

    @router.get("/processing")
    def processing_settings() -> ProcessingSettings:
        return org.jobs.settings

    @router.put("/processing")
    def set_processing_settings(settings: ProcessingSettings) -> ProcessingSettings:
        org.jobs.settings = settings
        org.processor.wake()
        return settings

    return router
