"""Landing dropped files and webhook batches in the warehouse, with the ingestion log.

Every landed item (a dropped CSV, a batch of form submissions, a batch of engagement
events) is identified by its sha256 and logged in ``raw.file_ingestions``: a byte-identical
file dropped again (under any name) is logged as a duplicate and not ingested twice. A
rejected item is logged with its error and stays in the landing zone untouched, so it can
be fixed and dropped again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import duckdb
import pyarrow as pa

from gtm_orchestration.lib.config import ConfigError
from gtm_orchestration.lib.engagement import parse_engagement_batch
from gtm_orchestration.lib.landing import LandedItem
from gtm_orchestration.lib.lead_files import (
    FileRejected,
    LandedFile,
    ParsedLeadFile,
    modified_at,
    read_landed_leads,
    with_provenance,
)
from gtm_orchestration.lib.mapping import MappingRegistry
from gtm_orchestration.lib.validation import Rejection


@dataclass
class IngestionSummary:
    """What one ingestion pass did, for run metadata and the demo summary."""

    files_ingested: int = 0
    files_rejected: int = 0
    files_duplicate: int = 0
    files_skipped: int = 0  # already handled by an earlier run
    rows_in: int = 0
    rows_accepted: int = 0
    rows_rejected: int = 0
    engagement_events: int = 0
    engagement_duplicates: int = 0
    problems: list[str] = field(default_factory=list)


def ingest_landed_items(
    con: duckdb.DuckDBPyConnection,
    items: list[LandedItem],
    registry: MappingRegistry,
    *,
    partition_date: date,
    run_id: str | None = None,
) -> IngestionSummary:
    """Ingest every item of ``items`` not yet handled under ``registry``'s version.

    An item handled under an earlier mapping version is read again under this one (a
    backfill after a mapping change re-derives history from the landing zone): its rows are
    appended with the new version beside the old ones, and the transform reads each file's
    rows of its newest version (``raw.current_lead_rows``). Returns the counts.
    """
    summary = IngestionSummary()
    # Items already handled, by path, size and mtime: every real-time run of a day looks at
    # all of the day's items, and only new or changed ones are worth reading and hashing.
    handled = set(
        con.execute(
            "SELECT file_path, size_bytes, file_modified_at FROM raw.file_ingestions "
            "WHERE partition_date = ? AND mapping_version = ?",
            [partition_date, registry.version],
        ).fetchall()
    )
    for item in items:
        if (str(item.path), item.size_bytes, modified_at(item.mtime_ns)) in handled:
            summary.files_skipped += 1
            continue
        _ingest_one(con, item, registry, partition_date, run_id, summary)
    return summary


def _ingest_one(
    con: duckdb.DuckDBPyConnection,
    item: LandedItem,
    registry: MappingRegistry,
    partition_date: date,
    run_id: str | None,
    summary: IngestionSummary,
) -> None:
    started = datetime.now(UTC)
    landed = LandedFile.inspect(item.path, item.source)
    path = str(landed.path)
    handled = con.execute(
        "SELECT 1 FROM raw.file_ingestions WHERE sha256 = ? AND file_path = ? "
        "AND mapping_version = ?",
        [landed.sha256, path, registry.version],
    ).fetchone()
    if handled:
        summary.files_skipped += 1
        return
    log = _LogEntry(landed, registry.version, partition_date, started, run_id)
    earlier = con.execute(
        "SELECT file_path FROM raw.file_ingestions "
        "WHERE sha256 = ? AND status = 'ingested' AND file_path <> ?",
        [landed.sha256, path],
    ).fetchone()
    if earlier is not None:
        summary.files_duplicate += 1
        log.write(con, "duplicate", f"identical to {earlier[0]}, already ingested")
        return

    try:
        if item.is_webhook_batch and item.source.startswith("engagement/"):
            _ingest_engagement(con, item, landed, partition_date, summary, log)
            return
        parsed = read_landed_leads(item, registry)
    except (FileRejected, ConfigError) as exc:
        summary.files_rejected += 1
        summary.problems.append(str(exc))
        log.write(con, "rejected", str(exc))
        return
    rows = with_provenance(
        parsed, item.source_name, landed.path, landed.modified_at, registry.version
    )
    _land_lead_rows(con, parsed, rows, landed, registry.version, partition_date, summary, log)


def _land_lead_rows(
    con: duckdb.DuckDBPyConnection,
    parsed: ParsedLeadFile,
    rows: pa.Table,
    landed: LandedFile,
    mapping_version: int,
    partition_date: date,
    summary: IngestionSummary,
    log: _LogEntry,
) -> None:
    """Append ``rows`` (``parsed``'s accepted rows with their provenance) to the raw table."""
    now = datetime.now(UTC)
    n = rows.num_rows
    extra = {
        "file_sha256": pa.array([landed.sha256] * n, pa.string()),
        "partition_date": pa.array([partition_date] * n, pa.date32()),
        "loaded_at": pa.array([now] * n, pa.timestamp("us", tz="UTC")),
    }
    for name, array in extra.items():
        rows = rows.append_column(name, array)
    con.register("incoming_lead_rows", rows)
    con.execute("INSERT INTO raw.lead_rows BY NAME SELECT * FROM incoming_lead_rows")
    con.unregister("incoming_lead_rows")
    _reject_rows(con, parsed.rejections, landed, mapping_version, partition_date, summary)
    summary.files_ingested += 1
    summary.rows_in += parsed.rows_total
    summary.rows_accepted += n
    summary.rows_rejected += len(parsed.rejections)
    log.write(con, "ingested", None, parsed.rows_total, n, len(parsed.rejections))


def _ingest_engagement(
    con: duckdb.DuckDBPyConnection,
    item: LandedItem,
    landed: LandedFile,
    partition_date: date,
    summary: IngestionSummary,
    log: _LogEntry,
) -> None:
    provider = item.source.split("/", 1)[1]
    events, rejections = parse_engagement_batch(item.path)
    now = datetime.now(UTC)
    table = pa.Table.from_pylist(
        [
            {
                "provider": provider,
                "event_id": e.event_id,
                "event_type": e.event_type,
                "email": e.email,
                "occurred_at": e.occurred_at,
                "received_at": e.received_at,
                "batch_file": str(item.path),
                "line": e.line,
                "payload": json.dumps(e.payload, sort_keys=True),
                "partition_date": partition_date,
                "loaded_at": now,
            }
            for e in events
        ],
        schema=_ENGAGEMENT_SCHEMA,
    )
    con.register("incoming_events", table)
    # The same event delivered twice counts once, whichever batch it came in.
    inserted = con.execute(
        """
        INSERT INTO raw.engagement_events BY NAME
        SELECT DISTINCT ON (provider, event_id) * FROM incoming_events i
        WHERE NOT EXISTS (
            SELECT 1 FROM raw.engagement_events e
            WHERE e.provider = i.provider AND e.event_id = i.event_id
        )
        """
    ).fetchone()[0]
    con.unregister("incoming_events")
    _reject_rows(con, rejections, landed, log.mapping_version, partition_date, summary)
    summary.files_ingested += 1
    summary.rows_in += len(events) + len(rejections)
    summary.rows_rejected += len(rejections)
    summary.engagement_events += inserted
    summary.engagement_duplicates += len(events) - inserted
    log.write(con, "ingested", None, len(events) + len(rejections), inserted, len(rejections))


_ENGAGEMENT_SCHEMA = pa.schema(
    [
        ("provider", pa.string()),
        ("event_id", pa.string()),
        ("event_type", pa.string()),
        ("email", pa.string()),
        ("occurred_at", pa.timestamp("us", tz="UTC")),
        ("received_at", pa.timestamp("us", tz="UTC")),
        ("batch_file", pa.string()),
        ("line", pa.int32()),
        ("payload", pa.string()),
        ("partition_date", pa.date32()),
        ("loaded_at", pa.timestamp("us", tz="UTC")),
    ]
)


def _reject_rows(
    con: duckdb.DuckDBPyConnection,
    rejections: list[Rejection],
    landed: LandedFile,
    mapping_version: int,
    partition_date: date,
    summary: IngestionSummary,
) -> None:
    if not rejections:
        return
    now = datetime.now(UTC)
    con.executemany(
        "INSERT INTO raw.rejected_rows (source, source_file, file_sha256, line, field, value, "
        "reason, partition_date, loaded_at, mapping_version) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            [
                landed.source,
                str(landed.path),
                landed.sha256,
                r.line,
                r.field,
                r.value,
                r.reason,
                partition_date,
                now,
                mapping_version,
            ]
            for r in rejections
        ],
    )
    summary.problems.extend(r.describe(str(landed.path)) for r in rejections[:20])


@dataclass
class _LogEntry:
    landed: LandedFile
    mapping_version: int
    partition_date: date
    started_at: datetime
    run_id: str | None

    def write(
        self,
        con: duckdb.DuckDBPyConnection,
        status: str,
        error: str | None,
        rows_total: int = 0,
        rows_accepted: int = 0,
        rows_rejected: int = 0,
    ) -> None:
        landed = self.landed
        con.execute(
            """INSERT INTO raw.file_ingestions
               (source, file_path, file_name, sha256, size_bytes, status, error, rows_total,
                rows_accepted, rows_rejected, mapping_version, partition_date,
                file_modified_at, started_at, finished_at, run_id)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [
                landed.source,
                str(landed.path),
                landed.path.name,
                landed.sha256,
                landed.size_bytes,
                status,
                error,
                rows_total,
                rows_accepted,
                rows_rejected,
                self.mapping_version,
                self.partition_date,
                landed.modified_at,
                self.started_at,
                datetime.now(UTC),
                self.run_id,
            ],
        )
