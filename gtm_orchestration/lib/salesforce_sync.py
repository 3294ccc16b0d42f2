"""Loading lead and company rows into Salesforce through Bulk API 2.0 and the sync ledger.

The same rows the HubSpot load reads (``gtm.leads``, ``gtm.companies``) become Salesforce
records through the field map ``config/crm/salesforce.yaml``, with the values formatted as
for HubSpot. The ledger (``gtm.sync_ledger``, destination ``salesforce``) keeps the payload
Salesforce last confirmed per record, so a record whose payload has not changed is not
sent again. Each changed record ends one of three ways, each logged in ``gtm.crm_sync_log``:

- written (created or updated): it enters the ledger with its Salesforce id;
- refused by Salesforce (a failed result, e.g. a required field missing): counted
  ``failed``, with Salesforce's error, which names the field and the value;
- never processed (its job failed or was aborted, or could not be run): counted
  ``not_delivered``, with the job's reason.

Neither of the last two enters the ledger, so the next run sends the record again. Unlike
the HubSpot load, nothing here reads the records first: there is no protection of values a
rep edited in Salesforce, and no ``fill_if_empty`` (the field map maps none of those fields).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Literal

import duckdb
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from gtm_orchestration.lib import dlq
from gtm_orchestration.lib.config import ConfigError, config_path, load_model
from gtm_orchestration.lib.connectors.salesforce import SalesforceClient
from gtm_orchestration.lib.crm_schema import ObjectType, Payload, payload_table, portal_schema
from gtm_orchestration.lib.crm_sync import rows_for_keys
from gtm_orchestration.lib.transform import COMPANY_COLUMNS, LEAD_COLUMNS

DESTINATION = "salesforce"
NOT_PROCESSED = "NOT_PROCESSED"
FIELD_MAP_FILE = ("crm", "salesforce.yaml")
# A field API name, or Relationship.ExternalIdField for a lookup by the parent's external id.
_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)?$")
Connect = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]
COLUMNS: dict[ObjectType, tuple[str, ...]] = {
    "contacts": LEAD_COLUMNS,
    "companies": COMPANY_COLUMNS,
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SalesforceObjectMap(_Strict):
    """How one of the pipeline's object types lands in one Salesforce object."""

    sobject: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    external_id: str
    provenance: tuple[str, ...] = ()
    fields: dict[str, str]  # Salesforce field -> lead or company column


class SalesforceFieldMap(_Strict):
    version: int = Field(ge=1)
    objects: dict[ObjectType, SalesforceObjectMap]


@cache
def salesforce_field_map(path: Path | None = None) -> SalesforceFieldMap:
    """The field map in ``config/crm/salesforce.yaml`` (or ``path``), checked against the
    pipeline's columns; ConfigError names the file, the key and what was expected."""
    path = path or config_path(*FIELD_MAP_FILE)
    field_map = load_model(path, SalesforceFieldMap)
    problems = []
    for object_type, spec in field_map.objects.items():
        where = f"objects.{object_type}"
        columns = COLUMNS[object_type]
        for name, column in spec.fields.items():
            if not _FIELD_NAME.match(name):
                problems.append(
                    f"{where}.fields.{name}: not a Salesforce field name; expected e.g. "
                    "FirstName, GTM_Email__c or Account.GTM_Domain__c"
                )
            if column not in columns:
                problems.append(
                    f"{where}.fields.{name}: {column!r} is not a column of the {object_type} "
                    f"rows; expected one of {', '.join(columns)}"
                )
        for name in (spec.external_id, *spec.provenance):
            if name not in spec.fields:
                key = "external_id" if name == spec.external_id else "provenance"
                problems.append(
                    f"{where}.{key}: {name!r} is not one of the mapped fields; expected one of "
                    f"{', '.join(spec.fields)}"
                )
    if problems:
        raise ConfigError(f"{path}: " + "; ".join(problems))
    return field_map


def salesforce_payloads(
    rows: pa.Table, object_type: ObjectType, field_map: SalesforceFieldMap | None = None
) -> list[Payload]:
    """Salesforce payloads for ``rows`` (the lead or company rows the HubSpot load reads),
    one per row, in order: keyed by the external id's value, Salesforce field -> value.

    Values are formatted and empty ones left out exactly as for HubSpot (``payload_table``),
    so a blank in the source never clears a value already in Salesforce.
    """
    spec = (field_map or salesforce_field_map()).objects[object_type]
    # payload_table keys each row by the column of HubSpot's unique property; giving it the
    # external id's column under that name keys the rows by the external id. The helper
    # column is dropped: Salesforce only receives the mapped fields.
    unique = portal_schema().objects[object_type].unique_property
    mapping = {unique: spec.fields[spec.external_id], **spec.fields}
    table = payload_table(rows, mapping, object_type).drop_columns([unique])
    payloads = []
    for record in table.to_pylist():
        key = record.pop("key")
        payloads.append(Payload(key, {f: v for f, v in record.items() if v is not None}))
    return payloads


@dataclass(frozen=True)
class RecordFailure:
    """A record not written: its external id, what was sent, and why. ``category`` is what
    the dead-letter queue would file it as: ``permanent`` when Salesforce refused the record
    itself (``error_code`` is Salesforce's, e.g. ``REQUIRED_FIELD_MISSING``), ``transient``
    when it was never processed (``error_code`` ``NOT_PROCESSED``)."""

    record_key: str
    payload: dict[str, str]
    category: Literal["permanent", "transient"]
    error_code: str
    error: str


@dataclass
class SalesforceSyncSummary:
    """Counts of one sync, as ``crm_sync.SyncSummary`` has them for HubSpot, with the
    records never processed apart from those refused, and every failure."""

    object_type: str  # the stream
    payloads: int = 0
    unchanged: int = 0
    created: int = 0
    updated: int = 0
    failed: int = 0  # refused by Salesforce
    not_delivered: int = 0  # never processed: their job failed, was aborted or not run
    requests: int = 0
    jobs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    failures: list[RecordFailure] = field(default_factory=list)


def sync_rows_to_salesforce(
    client: SalesforceClient,
    connect: Connect,
    object_type: ObjectType,
    rows: pa.Table,
    *,
    run_id: str | None = None,
) -> SalesforceSyncSummary:
    """``salesforce_payloads`` of ``rows`` sent by ``sync_to_salesforce``; returns the
    summary. What a load asset calls when the CRM is Salesforce."""
    return sync_to_salesforce(
        client, connect, object_type, salesforce_payloads(rows, object_type), run_id=run_id
    )


def sync_to_salesforce(
    client: SalesforceClient,
    connect: Connect,
    object_type: ObjectType,
    payloads: Sequence[Payload],
    *,
    stream: str | None = None,
    run_id: str | None = None,
    field_map: SalesforceFieldMap | None = None,
) -> SalesforceSyncSummary:
    """Upsert the ``payloads`` whose content changed since Salesforce last confirmed them,
    and record the outcome; returns the counts and every record not written.

    ``connect`` opens a warehouse connection; one is held only to read the ledger and to
    record the outcome, never while Salesforce processes the jobs. ``stream`` names the
    ledger's record of these payloads (default: the object type). A record enters the ledger
    only once Salesforce reported it written, so a crash between the upsert and the ledger
    makes the next run send it again, which the upsert makes harmless.
    """
    spec = (field_map or salesforce_field_map()).objects[object_type]
    stream = stream or object_type
    summary = SalesforceSyncSummary(stream, payloads=len(payloads))
    with connect() as con:
        known = dict(
            con.execute(
                "SELECT record_key, payload_hash FROM gtm.sync_ledger "
                "WHERE destination = ? AND object_type = ?",
                [DESTINATION, stream],
            ).fetchall()
        )
    todo = [p for p in payloads if known.get(p.key) != _digest(p, spec.provenance)]
    summary.unchanged = len(payloads) - len(todo)
    if not todo:
        return summary
    outcome = client.upsert(spec.sobject, spec.external_id, [p.properties for p in todo])
    summary.requests += outcome.requests
    summary.jobs = [job.id for job in outcome.jobs]

    now = datetime.now(UTC)
    ledger_rows: list[list[object]] = []
    log_rows: list[list[object]] = []
    for payload in todo:
        written = outcome.succeeded.get(payload.key)
        if written is not None:
            if written.created:
                action, summary.created = "created", summary.created + 1
            else:
                action, summary.updated = "updated", summary.updated + 1
            ledger_rows.append(
                [
                    DESTINATION,
                    stream,
                    payload.key,
                    written.record_id,
                    _digest(payload, spec.provenance),
                    json.dumps(payload.properties, sort_keys=True),
                    now,
                ]
            )
            log_rows.append(_log_row(run_id, stream, payload, written.record_id, action, None, now))
            continue
        if payload.key in outcome.failed:
            error = outcome.failed[payload.key]
            code = error.split(":", 1)[0]
            failure = RecordFailure(payload.key, payload.properties, "permanent", code, error)
            summary.failed += 1
        else:
            reason = outcome.unprocessed.get(payload.key, "no result returned for the record")
            error = f"not processed: {reason}"
            failure = RecordFailure(
                payload.key, payload.properties, "transient", NOT_PROCESSED, error
            )
            summary.not_delivered += 1
        summary.failures.append(failure)
        summary.errors.append(f"{stream} {payload.key}: {failure.error}")
        log_rows.append(_log_row(run_id, stream, payload, None, "failed", failure.error, now))

    with connect() as con:
        con.begin()
        if ledger_rows:
            con.executemany(
                "INSERT OR REPLACE INTO gtm.sync_ledger (destination, object_type, record_key, "
                "crm_id, payload_hash, payload, synced_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                ledger_rows,
            )
        con.executemany(
            "INSERT INTO gtm.crm_sync_log (run_id, destination, object_type, record_key, "
            "crm_id, action, payload, kept_properties, error, synced_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            log_rows,
        )
        con.commit()
    return summary


def _log_row(
    run_id: str | None,
    stream: str,
    payload: Payload,
    crm_id: str | None,
    action: str,
    error: str | None,
    at: datetime,
) -> list[object]:
    """A ``gtm.crm_sync_log`` row; Salesforce keeps no values back (``kept_properties``)."""
    sent = json.dumps(payload.properties, sort_keys=True)
    return [run_id, DESTINATION, stream, payload.key, crm_id, action, sent, None, error, at]


def _digest(payload: Payload, provenance: Sequence[str]) -> str:
    """The payload's digest (as the HubSpot ledger computes it) without its provenance
    fields: a new mapping version that leaves the record's values as they were does not
    send it again."""
    content = {f: v for f, v in payload.properties.items() if f not in provenance}
    return Payload(payload.key, content).digest


DESTINATION = "salesforce"
# Where each stream's records are rebuilt from, and their key column.
SOURCES: dict[str, tuple[str, str]] = {
    "companies": ("gtm.companies", "domain"),
    "contacts": ("gtm.leads", "email"),
}


def deliver_to_salesforce(
    client: SalesforceClient,
    connect: Connect,
    object_type: ObjectType,
    rows: pa.Table,
    *,
    retry: Sequence[int] = (),
    run_id: str | None = None,
) -> SalesforceSyncSummary:
    """Sync ``rows`` of ``object_type`` plus the records of the dead letters ``retry`` (ids
    of pending letters of this stream), each rebuilt from the warehouse's newest data, so a
    data or mapping fix reaches Salesforce. What Salesforce does not write is queued in
    ``gtm.dead_letters`` (destination ``salesforce``); a retried letter whose record it
    confirmed leaves the queue. Returns the sync's summary."""
    table, key_column = SOURCES[object_type]
    letters: list[dlq.DeadLetter] = []
    with connect() as con:
        if retry:
            letters = dlq.dead_letters(con, ids=retry, destination=DESTINATION, stream=object_type)
        if letters:
            present = {key.lower() for key in rows.column(key_column).to_pylist() if key}
            keys = [
                letter.record_key for letter in letters if letter.record_key.lower() not in present
            ]
            again = rows_for_keys(con, table, key_column, keys).select(rows.column_names)
            rows = pa.concat_tables([rows, again.cast(rows.schema)])
    summary = sync_rows_to_salesforce(client, connect, object_type, rows, run_id=run_id)
    failed = {failure.record_key.lower() for failure in summary.failures}
    delivered = [letter.record_key for letter in letters if letter.record_key.lower() not in failed]
    now = datetime.now(UTC)
    with connect() as con:
        dlq.record_failures(
            con,
            destination=DESTINATION,
            stream=object_type,
            object_type=object_type,
            source_table=table,
            run_id=run_id,
            failures=[
                dlq.Failure(f.record_key, f.payload, f.category, f.error_code, f.error)
                for f in summary.failures
            ],
            now=now,
        )
        dlq.resolve(
            con,
            destination=DESTINATION,
            stream=object_type,
            keys=delivered,
            status="delivered",
            now=now,
        )
    return summary


def replay_dead_letters(
    client: SalesforceClient, connect: Connect, ids: Sequence[int], *, run_id: str | None = None
) -> dict[str, SalesforceSyncSummary]:
    """Send the pending Salesforce dead letters ``ids`` again, rebuilt from the warehouse's
    current data (accounts before contacts); returns each stream's summary."""
    with connect() as con:
        letters = dlq.dead_letters(con, ids=ids, destination=DESTINATION)
    summaries = {}
    for stream in ("companies", "contacts"):
        wanted = [letter.id for letter in letters if letter.stream == stream]
        if wanted:
            table, _ = SOURCES[stream]
            with connect() as con:
                empty = con.sql(f"SELECT * FROM {table} LIMIT 0").to_arrow_table()
            summaries[stream] = deliver_to_salesforce(
                client, connect, stream, empty, retry=wanted, run_id=run_id
            )
    return summaries
