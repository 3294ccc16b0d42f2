"""Landing dropped files in the warehouse, with the ingestion log.

Each file is identified by its sha256: a byte-identical file dropped again (under any
name) is logged as a duplicate and not ingested twice. A rejected file is logged with its
error and stays in the landing zone untouched, so it can be fixed and dropped again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import duckdb
import pyarrow as pa

from gtm_orchestration.lib.config import ConfigError
from gtm_orchestration.lib.landing import DroppedFile
from gtm_orchestration.lib.lead_files import FileRejected, LandedFile, read_lead_file
from gtm_orchestration.lib.mapping import CANONICAL_FIELDS, MappingRegistry


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
    problems: list[str] = field(default_factory=list)


def ingest_dropped_files(
    con: duckdb.DuckDBPyConnection,
    files: list[DroppedFile],
    registry: MappingRegistry,
    *,
    partition_date: date,
    run_id: str | None = None,
) -> IngestionSummary:
    """Ingest every file of ``files`` not ingested before; returns the counts."""
    summary = IngestionSummary()
    for dropped in files:
        _ingest_one(con, dropped, registry, partition_date, run_id, summary)
    return summary


def _already(con: duckdb.DuckDBPyConnection, sql: str, params: list) -> bool:
    return con.execute(sql, params).fetchone() is not None


def _ingest_one(
    con: duckdb.DuckDBPyConnection,
    dropped: DroppedFile,
    registry: MappingRegistry,
    partition_date: date,
    run_id: str | None,
    summary: IngestionSummary,
) -> None:
    started = datetime.now(UTC)
    landed = LandedFile.inspect(dropped.path, dropped.source)
    path = str(landed.path)
    if _already(
        con,
        "SELECT 1 FROM raw.file_ingestions WHERE sha256 = ? AND file_path = ? "
        "AND (status IN ('ingested', 'duplicate') OR mapping_version = ?)",
        [landed.sha256, path, registry.version],
    ):
        summary.files_skipped += 1
        return
    log = {
        "source": landed.source,
        "file_path": path,
        "file_name": landed.path.name,
        "sha256": landed.sha256,
        "size_bytes": landed.size_bytes,
        "mapping_version": registry.version,
        "partition_date": partition_date,
        "file_modified_at": landed.modified_at,
        "started_at": started,
        "run_id": run_id,
    }
    earlier = con.execute(
        "SELECT file_path FROM raw.file_ingestions WHERE sha256 = ? AND status = 'ingested'",
        [landed.sha256],
    ).fetchone()
    if earlier is not None:
        summary.files_duplicate += 1
        _write_log(con, log, "duplicate", f"identical to {earlier[0]}, already ingested", 0, 0, 0)
        return
    try:
        source = registry.source(landed.source)
        parsed = read_lead_file(landed.path, source)
    except (FileRejected, ConfigError) as exc:
        summary.files_rejected += 1
        summary.problems.append(str(exc))
        _write_log(con, log, "rejected", str(exc), 0, 0, 0)
        return

    now = datetime.now(UTC)
    n = parsed.accepted.num_rows
    rows = parsed.accepted.select(["line", *CANONICAL_FIELDS])
    extra = {
        "source": pa.array([landed.source] * n, pa.string()),
        "source_file": pa.array([path] * n, pa.string()),
        "file_sha256": pa.array([landed.sha256] * n, pa.string()),
        "mapping_version": pa.array([registry.version] * n, pa.int32()),
        "partition_date": pa.array([partition_date] * n, pa.date32()),
        "landed_at": pa.array([landed.modified_at] * n, pa.timestamp("us", tz="UTC")),
        "loaded_at": pa.array([now] * n, pa.timestamp("us", tz="UTC")),
    }
    for name, array in extra.items():
        rows = rows.append_column(name, array)
    con.register("incoming_lead_rows", rows)
    con.execute("INSERT INTO raw.lead_rows BY NAME SELECT * FROM incoming_lead_rows")
    con.unregister("incoming_lead_rows")
    if parsed.rejections:
        con.executemany(
            "INSERT INTO raw.rejected_rows VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                [
                    landed.source,
                    path,
                    landed.sha256,
                    r.line,
                    r.field,
                    r.value,
                    r.reason,
                    partition_date,
                    now,
                ]
                for r in parsed.rejections
            ],
        )
        summary.problems.extend(r.describe(path) for r in parsed.rejections[:20])
    summary.files_ingested += 1
    summary.rows_in += parsed.rows_total
    summary.rows_accepted += n
    summary.rows_rejected += len(parsed.rejections)
    _write_log(con, log, "ingested", None, parsed.rows_total, n, len(parsed.rejections))


def _write_log(
    con: duckdb.DuckDBPyConnection,
    log: dict,
    status: str,
    error: str | None,
    rows_total: int,
    rows_accepted: int,
    rows_rejected: int,
) -> None:
    con.execute(
        """INSERT INTO raw.file_ingestions
           (source, file_path, file_name, sha256, size_bytes, status, error, rows_total,
            rows_accepted, rows_rejected, mapping_version, partition_date, file_modified_at,
            started_at, finished_at, run_id)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [
            log["source"],
            log["file_path"],
            log["file_name"],
            log["sha256"],
            log["size_bytes"],
            status,
            error,
            rows_total,
            rows_accepted,
            rows_rejected,
            log["mapping_version"],
            log["partition_date"],
            log["file_modified_at"],
            log["started_at"],
            datetime.now(UTC),
            log["run_id"],
        ],
    )
