"""The warehouse: DuckDB by default, one schema of pipeline tables.

Tables written by the pipeline (all append-only except the current-state ones, marked):

- ``raw.file_ingestions``   the ingestion log: one row per file seen, with its sha256.
- ``raw.lead_rows``         every accepted row as landed, mapped to canonical fields, under
  every mapping version a backfill re-derived it with; ``raw.current_lead_rows`` (a view)
  keeps each file's rows of its newest version.
- ``raw.rejected_rows``     every row rejected at extraction, with line, field and reason.
- ``raw.engagement_events``  every engagement event landed by webhook, once per event id.
- ``gtm.leads``             (current state per partition) transformed, deduplicated leads.
- ``gtm.companies``         (current state per partition) companies derived from leads.
- ``gtm.sync_ledger``       (current state) what was last confirmed per CRM record.
- ``gtm.crm_sync_log``      every record sent to a CRM, with the outcome.
- ``raw.crm_contact_changes`` every change of a HubSpot contact seen by webhook or poll, once
  per event id / (object id, lastmodifieddate, property); echoes of the pipeline's own
  writes are kept and flagged ``is_echo``.
- ``gtm.crm_contacts``      (current state) each HubSpot contact as the change feeds last saw it.
- ``gtm.cdc_cursors``       (current state) the high-water mark of each change-capture stream.
- ``gtm.identities``        (append-only) each person's identity (``identity_email``) and the
  address the pipeline first saw them with: the key of their CRM contact.
- ``gtm.enrichment_cache``  (current state) the enrichment API's last answer per company
  domain, with when it was fetched: found (firmographics as JSON) or unknown; ``error`` holds
  the last failed lookup's reason until an answer replaces it.
- ``gtm.sequence_enrollments`` (current state) one row per sequence enrollment key
  (``<sequence key>:<email>``): held, sending, enrolled, cancelled or failed, with the reason.
- ``gtm.sequence_enrollment_log`` every step of every enrollment: held, cancelled, claimed,
  enrolled, retried, failed.
- ``gtm.stage_metrics``     (append-only) the numbers of every run, stage and asset: records
  in and out, rejected, failed, latency, completeness (``lib/metrics.py``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from gtm_orchestration.lib.mapping import CANONICAL_FIELDS

_CANONICAL_COLUMNS = ",\n    ".join(f"{field} VARCHAR" for field in CANONICAL_FIELDS)

DDL: tuple[str, ...] = (
    "CREATE SCHEMA IF NOT EXISTS raw",
    "CREATE SCHEMA IF NOT EXISTS gtm",
    """CREATE TABLE IF NOT EXISTS raw.file_ingestions (
    source VARCHAR NOT NULL,
    file_path VARCHAR NOT NULL,
    file_name VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL,
    size_bytes BIGINT NOT NULL,
    status VARCHAR NOT NULL,          -- ingested | rejected | duplicate
    error VARCHAR,
    rows_total INTEGER NOT NULL,
    rows_accepted INTEGER NOT NULL,
    rows_rejected INTEGER NOT NULL,
    mapping_version INTEGER NOT NULL,
    partition_date DATE NOT NULL,
    file_modified_at TIMESTAMPTZ NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ NOT NULL,
    run_id VARCHAR
)""",
    f"""CREATE TABLE IF NOT EXISTS raw.lead_rows (
    source VARCHAR NOT NULL,
    source_file VARCHAR NOT NULL,
    file_sha256 VARCHAR NOT NULL,
    line INTEGER NOT NULL,
    event_id VARCHAR,                 -- the form submission's id (webhook batches only)
    {_CANONICAL_COLUMNS},
    mapping_version INTEGER NOT NULL,
    partition_date DATE NOT NULL,
    landed_at TIMESTAMPTZ NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL
)""",
    # Warehouses created before a canonical field was added to the registry.
    *(
        f"ALTER TABLE raw.lead_rows ADD COLUMN IF NOT EXISTS {field} VARCHAR"
        for field in CANONICAL_FIELDS
    ),
    """CREATE TABLE IF NOT EXISTS raw.rejected_rows (
    source VARCHAR NOT NULL,
    source_file VARCHAR NOT NULL,
    file_sha256 VARCHAR NOT NULL,
    line INTEGER,
    field VARCHAR,
    value VARCHAR,
    reason VARCHAR NOT NULL,
    partition_date DATE NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL,
    mapping_version INTEGER
)""",
    # Warehouses created before rejections carried the mapping version that made them.
    "ALTER TABLE raw.rejected_rows ADD COLUMN IF NOT EXISTS mapping_version INTEGER",
    # Each file's rows as read by the newest mapping version it was ingested under; older
    # versions' rows stay in raw.lead_rows as history.
    """CREATE OR REPLACE VIEW raw.current_lead_rows AS
SELECT * FROM raw.lead_rows
QUALIFY mapping_version = max(mapping_version) OVER (PARTITION BY partition_date, source_file)""",
    """CREATE TABLE IF NOT EXISTS raw.engagement_events (
    provider VARCHAR NOT NULL,
    event_id VARCHAR NOT NULL,
    event_type VARCHAR NOT NULL,
    email VARCHAR NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    batch_file VARCHAR NOT NULL,
    line INTEGER NOT NULL,
    payload VARCHAR NOT NULL,
    partition_date DATE NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS gtm.sync_ledger (
    destination VARCHAR NOT NULL,
    object_type VARCHAR NOT NULL,
    record_key VARCHAR NOT NULL,
    crm_id VARCHAR,
    payload_hash VARCHAR NOT NULL,
    payload VARCHAR NOT NULL,
    synced_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (destination, object_type, record_key)
)""",
    """CREATE TABLE IF NOT EXISTS gtm.crm_sync_log (
    run_id VARCHAR,
    destination VARCHAR NOT NULL,
    object_type VARCHAR NOT NULL,
    record_key VARCHAR NOT NULL,
    crm_id VARCHAR,
    action VARCHAR NOT NULL,          -- created | updated | unchanged | failed
    payload VARCHAR NOT NULL,
    kept_properties VARCHAR,          -- properties left alone because a rep edited them
    error VARCHAR,
    synced_at TIMESTAMPTZ NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS raw.crm_contact_changes (
    feed VARCHAR NOT NULL,            -- webhook | poll
    change_type VARCHAR NOT NULL,     -- creation | property | record (a poll's first sight)
    object_id VARCHAR NOT NULL,
    email VARCHAR,
    property VARCHAR,                 -- NULL for creation and record rows
    value VARCHAR,                    -- record rows: every tracked property, as JSON
    changed_at TIMESTAMPTZ NOT NULL,
    change_source VARCHAR,            -- CRM_UI, INTEGRATION, API, ... when known
    is_echo BOOLEAN NOT NULL,         -- the CRM reporting back the pipeline's own write
    event_id VARCHAR,                 -- HubSpot's eventId (webhook rows)
    dedupe_key VARCHAR NOT NULL,      -- hubspot:<eventId> | <object id>:<modified ms>[:<property>]
    landed_file VARCHAR,              -- the webhook batch file
    loaded_at TIMESTAMPTZ NOT NULL,
    run_id VARCHAR
)""",
    """CREATE TABLE IF NOT EXISTS gtm.crm_contacts (
    object_id VARCHAR PRIMARY KEY,
    email VARCHAR,
    properties VARCHAR NOT NULL,          -- JSON: tracked property -> value
    property_changed_at VARCHAR NOT NULL, -- JSON: tracked property -> epoch millis of its value
    last_modified TIMESTAMPTZ,
    first_seen_at TIMESTAMPTZ NOT NULL,
    last_seen_at TIMESTAMPTZ NOT NULL,
    last_change_source VARCHAR,           -- of the last change that was not an echo
    last_change_at TIMESTAMPTZ
)""",
    """CREATE TABLE IF NOT EXISTS gtm.identities (
    identity_key VARCHAR PRIMARY KEY,
    email VARCHAR NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS gtm.cdc_cursors (
    stream VARCHAR PRIMARY KEY,
    high_water_mark BIGINT NOT NULL,      -- epoch millis
    updated_at TIMESTAMPTZ NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS gtm.enrichment_cache (
    domain VARCHAR PRIMARY KEY,
    found BOOLEAN,                        -- NULL until the API has answered once
    firmographics VARCHAR,                -- JSON, when found
    fetched_at TIMESTAMPTZ,               -- when the API last answered
    error VARCHAR                         -- why the last lookup failed; NULL once answered
)""",
    # The dead-letter queue (lib/dlq.py): every record a load could not deliver.
    "CREATE SEQUENCE IF NOT EXISTS gtm.dead_letter_ids",
    """CREATE TABLE IF NOT EXISTS gtm.dead_letters (
    id BIGINT PRIMARY KEY DEFAULT nextval('gtm.dead_letter_ids'),
    destination VARCHAR NOT NULL,     -- hubspot, ...
    stream VARCHAR NOT NULL,          -- the sync ledger's stream: contacts, companies, ...
    object_type VARCHAR NOT NULL,     -- the CRM object type
    record_key VARCHAR NOT NULL,      -- email, domain
    source_table VARCHAR,             -- where a replay rebuilds the payload from
    payload VARCHAR NOT NULL,         -- JSON: what was sent, or would have been
    category VARCHAR NOT NULL,        -- transient (retried by later loads) | permanent
    error_code VARCHAR,               -- INVALID_OPTION, HTTP 503, ...
    error VARCHAR NOT NULL,           -- names the record, the property and the value
    attempts INTEGER NOT NULL,        -- deliveries that failed
    first_failed_at TIMESTAMPTZ NOT NULL,
    last_failed_at TIMESTAMPTZ NOT NULL,
    status VARCHAR NOT NULL,          -- pending | delivered | skipped
    resolved_at TIMESTAMPTZ,
    run_id VARCHAR                    -- the run that failed it last
)""",
    # Sequence enrollments (lib/enrollment.py): one row per idempotency key, and every step.
    """CREATE TABLE IF NOT EXISTS gtm.sequence_enrollments (
    idempotency_key VARCHAR PRIMARY KEY,  -- <sequence key>:<email>
    email VARCHAR NOT NULL,
    sequence_key VARCHAR NOT NULL,        -- a key of config/sequences.yaml
    sequence_name VARCHAR NOT NULL,       -- the sequence's name in the sequencer
    intent INTEGER NOT NULL,              -- 1, 2, ...: a corrected lead is a new intent
    status VARCHAR NOT NULL,              -- held | sending | enrolled | cancelled | failed
    reason VARCHAR,                       -- why cancelled or failed; what the sequencer said
    fingerprint VARCHAR NOT NULL,         -- sha256 of what would be sent
    payload VARCHAR NOT NULL,             -- JSON: prospect attributes and mailbox
    held_at TIMESTAMPTZ NOT NULL,
    due_at TIMESTAMPTZ NOT NULL,          -- end of the quality window, or the next retry
    attempts INTEGER NOT NULL,            -- claims of this intent so far
    claimed_by VARCHAR,                   -- host:pid:token of the release sending it
    claim_expires_at TIMESTAMPTZ,
    prospect_id BIGINT,
    sequence_state_id BIGINT,
    updated_at TIMESTAMPTZ NOT NULL,
    run_id VARCHAR
)""",
    """CREATE TABLE IF NOT EXISTS gtm.sequence_enrollment_log (
    logged_at TIMESTAMPTZ NOT NULL,
    run_id VARCHAR,
    idempotency_key VARCHAR NOT NULL,
    email VARCHAR NOT NULL,
    sequence_key VARCHAR NOT NULL,
    intent INTEGER NOT NULL,
    event VARCHAR NOT NULL,               -- held | cancelled | claimed | reclaimed | enrolled |
                                          -- already_in_sequence | retry | failed
    status VARCHAR NOT NULL,              -- the key's status after the event
    reason VARCHAR,
    attempt INTEGER NOT NULL,
    claimed_by VARCHAR,
    prospect_id BIGINT,
    sequence_state_id BIGINT
)""",
    # Pipeline observability (lib/metrics.py): one row per run, stage and asset.
    """CREATE TABLE IF NOT EXISTS gtm.stage_metrics (
    run_id VARCHAR NOT NULL,
    stage VARCHAR NOT NULL,               -- extract | transform | load
    asset VARCHAR NOT NULL,
    partition_key VARCHAR,                -- the landing day; first..last for a range
    records_in BIGINT NOT NULL,
    records_out BIGINT NOT NULL,
    rejected BIGINT NOT NULL,             -- refused for the data's sake
    dead_lettered BIGINT NOT NULL,        -- queued in gtm.dead_letters
    failed BIGINT NOT NULL,               -- not handled because a system failed
    error_rate DOUBLE NOT NULL,           -- (rejected + failed) / records_in
    latency_samples BIGINT NOT NULL,      -- records handled for the first time
    latency_p50_s DOUBLE,                 -- landing -> the stage's end (load: the CRM's
    latency_p95_s DOUBLE,                 -- confirmation), seconds
    latency_max_s DOUBLE,
    completeness VARCHAR NOT NULL,        -- JSON: field -> share of records holding it
    unclassified_title_share DOUBLE,      -- of records with a title, function 'other'
    unmatched_country_share DOUBLE,       -- of records with a country, no country code
    recorded_at TIMESTAMPTZ NOT NULL
)""",
)


# Warehouses whose tables this process has already made sure of: a run's steps share one.
_PREPARED: set[Path] = set()


class WarehouseError(RuntimeError):
    """The warehouse URL is not usable."""


@dataclass(frozen=True)
class Warehouse:
    """Where the warehouse lives; opens short-lived connections."""

    url: str

    @property
    def duckdb_path(self) -> Path:
        prefix = "duckdb:///"
        if not self.url.startswith(prefix):
            raise WarehouseError(
                f"GTM_WAREHOUSE_URL {self.url.split('://')[0]}://... is not supported here; "
                "expected duckdb:///<path>"
            )
        return Path(self.url[len(prefix) :])

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection with the pipeline's tables present.

        DuckDB lets one process hold the file for writing; another process that wants it
        (a concurrent run's step, a dry run) waits for it rather than failing at once.
        """
        path = self.duckdb_path
        path.parent.mkdir(parents=True, exist_ok=True)
        con = _connect_with_retry(path, read_only=read_only and path.exists())
        try:
            if not read_only and path not in _PREPARED:
                for statement in DDL:
                    con.execute(statement)
                _PREPARED.add(path)
            yield con
        finally:
            con.close()


def _connect_with_retry(
    path: Path, *, read_only: bool, timeout_s: float = 120.0
) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(delay + random.uniform(0, delay))
            delay = min(delay * 2, 1.0)
