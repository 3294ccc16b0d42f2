"""Pipeline observability: the numbers of every run, stage and asset, in the warehouse.

Each stage of a run appends one row per asset to ``gtm.stage_metrics``: records in and out,
rejected, dead-lettered and failed records, the error rate, the latency from landing to the
stage's end (p50, p95, max in seconds), the completeness of the fields the CRM needs, and
two shares that tell whether the dictionaries keep up with the data: titles no persona
rule classified and countries given that matched no country. The dbt health marts read the
table; the assets show the same numbers as metadata so the UI plots them over time.

Counting rules, the same for every stage (and the same as the alert conditions'):

- ``records_in``: records the stage read; a file rejected whole counts as its rows (at
  least one), as in ``lib/alerts.py``.
- ``rejected``: records refused because of the data (extraction rules, a CRM refusing a
  value); ``failed``: records not handled because a system failed (the CRM down after
  every retry). A record counts in at most one of the two, and
  ``error_rate = (rejected + failed) / records_in``.
- ``dead_lettered``: records the load queued in ``gtm.dead_letters`` (refused or failed).
- Latency counts each record the first time the stage handles it: a file read again under
  a new mapping version, or a day re-derived, keeps its old landing time and would measure
  the age of history rather than the pipeline's speed.

Nothing here knows Dagster: ``StageMetrics.numbers`` is what the assets attach.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb

from gtm_orchestration.lib.quality import (
    EXPECTED_LEAD_FIELDS,
    REQUIRED_COMPANY_FIELDS,
    REQUIRED_LEAD_FIELDS,
)

EXTRACT = "extract"
TRANSFORM = "transform"
LOAD = "load"

# Fields whose completeness each kind of record reports: what the CRM needs (the blocking
# checks hold these at 1.0 for leads) and what reps expect to find on a contact.
LEAD_FIELDS: tuple[str, ...] = (*REQUIRED_LEAD_FIELDS, *EXPECTED_LEAD_FIELDS)
RAW_LEAD_FIELDS: tuple[str, ...] = ("email", "first_name", "last_name", "company", "title")
COMPANY_FIELDS: tuple[str, ...] = (
    *REQUIRED_COMPANY_FIELDS,
    "company",
    "industry",
    "country",
    "employees",
)

# A transform flag names its field first (``country: not a known country ('Narnia')``).
_COUNTRY_FLAG = r"(^|; )country: "


@dataclass(frozen=True)
class StageMetrics:
    """One row of ``gtm.stage_metrics``: what one asset of one stage did in one run.

    Shares are None when there was nothing to measure them over (no records, no titles, no
    countries); latencies are None when no record was handled for the first time.
    """

    run_id: str
    stage: str
    asset: str
    partition_key: str | None
    records_in: int
    records_out: int
    rejected: int = 0
    dead_lettered: int = 0
    failed: int = 0
    latency_samples: int = 0
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    latency_max_s: float | None = None
    completeness: Mapping[str, float] = field(default_factory=dict)
    unclassified_title_share: float | None = None
    unmatched_country_share: float | None = None
    recorded_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def error_rate(self) -> float:
        """Rejected and failed records over the records read; 0.0 when none were read."""
        return (self.rejected + self.failed) / self.records_in if self.records_in else 0.0

    def numbers(self) -> dict[str, int | float]:
        """The figures to plot, by metadata key: counts as ints, shares and seconds as
        floats; a share or latency with nothing to measure is left out."""
        numbers: dict[str, int | float] = {
            "records_in": self.records_in,
            "records_out": self.records_out,
            "rejected": self.rejected,
            "dead_lettered": self.dead_lettered,
            "failed": self.failed,
            "error_rate": round(self.error_rate, 6),
            "latency_samples": self.latency_samples,
        }
        optional = {
            "latency_p50_s": self.latency_p50_s,
            "latency_p95_s": self.latency_p95_s,
            "latency_max_s": self.latency_max_s,
            "unclassified_title_share": self.unclassified_title_share,
            "unmatched_country_share": self.unmatched_country_share,
            **{f"completeness_{name}": share for name, share in self.completeness.items()},
        }
        numbers |= {key: round(value, 6) for key, value in optional.items() if value is not None}
        return numbers


def partition_label(partition_keys: Sequence[str]) -> str | None:
    """The ``partition_key`` of a run's row: its day, ``first..last`` for a backfill of a
    range of days in one run, None for an unpartitioned asset."""
    if not partition_keys:
        return None
    first, last = min(partition_keys), max(partition_keys)
    return first if first == last else f"{first}..{last}"


def record_stage_metrics(
    con: duckdb.DuckDBPyConnection,
    *,
    run_id: str,
    stage: str,
    asset: str,
    partition_key: str | None,
    records_in: int,
    records_out: int,
    rejected: int = 0,
    dead_lettered: int = 0,
    failed: int = 0,
    records: str | None = None,
    fields: Sequence[str] = (),
    landed: str | None = None,
    finished_at: datetime | None = None,
) -> StageMetrics:
    """Measure one asset of one stage and append its row to ``gtm.stage_metrics``.

    ``records`` is a relation (a table, view, registered Arrow table or parenthesized
    query) of the records the asset wrote: the completeness of each of ``fields`` it has is
    measured over it, and, when it has the columns, the unclassified-title share (``title``,
    ``function``) and the unmatched-country share (``country``, ``country_code``, and
    ``flags`` to see countries the transform could not match). ``landed`` is a relation with
    a ``landed_at`` column, one row per record handled for the first time, and optionally a
    ``done_at`` column (when the record was done, e.g. the CRM's confirmation); where it has
    none the stage's end, ``finished_at`` (default now), counts. Returns the row written.
    """
    finished_at = finished_at or datetime.now(UTC)
    latency = _latency(con, landed, finished_at) if landed else (0, None, None, None)
    shares = _shares(con, records, fields) if records else ({}, None, None)
    metrics = StageMetrics(
        run_id=run_id,
        stage=stage,
        asset=asset,
        partition_key=partition_key,
        records_in=records_in,
        records_out=records_out,
        rejected=rejected,
        dead_lettered=dead_lettered,
        failed=failed,
        latency_samples=latency[0],
        latency_p50_s=latency[1],
        latency_p95_s=latency[2],
        latency_max_s=latency[3],
        completeness=shares[0],
        unclassified_title_share=shares[1],
        unmatched_country_share=shares[2],
        recorded_at=finished_at,
    )
    con.execute(
        """INSERT INTO gtm.stage_metrics
           (run_id, stage, asset, partition_key, records_in, records_out, rejected,
            dead_lettered, failed, error_rate, latency_samples, latency_p50_s, latency_p95_s,
            latency_max_s, completeness, unclassified_title_share, unmatched_country_share,
            recorded_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [
            metrics.run_id,
            metrics.stage,
            metrics.asset,
            metrics.partition_key,
            metrics.records_in,
            metrics.records_out,
            metrics.rejected,
            metrics.dead_lettered,
            metrics.failed,
            metrics.error_rate,
            metrics.latency_samples,
            metrics.latency_p50_s,
            metrics.latency_p95_s,
            metrics.latency_max_s,
            json.dumps(dict(metrics.completeness), sort_keys=True),
            metrics.unclassified_title_share,
            metrics.unmatched_country_share,
            metrics.recorded_at,
        ],
    )
    return metrics


def _latency(
    con: duckdb.DuckDBPyConnection, landed: str, finished_at: datetime
) -> tuple[int, float | None, float | None, float | None]:
    done = "coalesce(done_at, ?)" if "done_at" in _columns(con, landed) else "?"
    # A file's modification time may run ahead of this host's clock: never negative.
    row = con.execute(
        f"""SELECT count(*), quantile_cont(s, 0.5), quantile_cont(s, 0.95), max(s)
            FROM (SELECT greatest(epoch({done}) - epoch(landed_at), 0) AS s
                  FROM {landed} WHERE landed_at IS NOT NULL)""",
        [finished_at],
    ).fetchone()
    if not row or not row[0]:
        return 0, None, None, None
    return int(row[0]), float(row[1]), float(row[2]), float(row[3])


def _shares(
    con: duckdb.DuckDBPyConnection, records: str, fields: Sequence[str]
) -> tuple[dict[str, float], float | None, float | None]:
    columns = _columns(con, records)
    measured = [f for f in fields if f in columns]
    selects = ["count(*)"] + [f"count({f}) / count(*)" for f in measured]
    if {"title", "function"} <= columns:
        selects.append(
            "count(*) FILTER (WHERE title IS NOT NULL AND function = 'other') "
            "/ nullif(count(title), 0)"
        )
    if {"country", "country_code"} <= columns:
        flagged = "false"
        if "flags" in columns:
            flagged = f"regexp_matches(coalesce(flags, ''), '{_COUNTRY_FLAG}')"
        given = f"(country IS NOT NULL OR country_code IS NOT NULL OR {flagged})"
        selects.append(
            f"count(*) FILTER (WHERE {given} AND country_code IS NULL) "
            f"/ nullif(count(*) FILTER (WHERE {given}), 0)"
        )
    row = con.execute(f"SELECT {', '.join(selects)} FROM {records}").fetchone()
    if not row or not row[0]:
        return {}, None, None
    values = list(row[1:])
    completeness = {f: float(values.pop(0)) for f in measured}
    unclassified = _share(values.pop(0)) if {"title", "function"} <= columns else None
    unmatched = _share(values.pop(0)) if {"country", "country_code"} <= columns else None
    return completeness, unclassified, unmatched


def _share(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def _columns(con: duckdb.DuckDBPyConnection, relation: str) -> set[str]:
    description = con.execute(f"SELECT * FROM {relation} LIMIT 0").description or []
    return {column[0] for column in description}


# --- the stages this module measures itself -------------------------------------------------

# The rows of each file ingested by a run, marked when it is the file's first reading (not a
# re-read under a newer mapping version): the extract and transform stages measure these.
_RUN_LEAD_ROWS = """
CREATE OR REPLACE TEMP TABLE metrics_run_lead_rows AS
SELECT r.*, NOT EXISTS (
           SELECT 1 FROM raw.file_ingestions e
           WHERE e.sha256 = f.sha256 AND e.status = 'ingested'
             AND e.mapping_version < f.mapping_version
       ) AS first_reading
FROM raw.lead_rows r
JOIN raw.file_ingestions f
  ON f.sha256 = r.file_sha256 AND f.file_path = r.source_file
 AND f.mapping_version = r.mapping_version AND f.partition_date = r.partition_date
WHERE f.run_id = ? AND f.status = 'ingested'
"""

# Files and batches a run read: lead sources or engagement providers.
_RUN_FILES = """
SELECT
    coalesce(sum(CASE WHEN status = 'rejected' THEN greatest(rows_total, 1)
                      ELSE rows_total END), 0),
    coalesce(sum(rows_accepted), 0),
    coalesce(sum(CASE WHEN status = 'rejected' THEN greatest(rows_total, 1)
                      ELSE rows_rejected END), 0)
FROM raw.file_ingestions
WHERE run_id = ? AND status <> 'duplicate' AND starts_with(source, 'engagement/') = ?
"""


def record_extraction_metrics(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    partition_keys: Sequence[str],
    finished_at: datetime | None = None,
) -> dict[str, StageMetrics]:
    """Measure what the extraction of run ``run_id`` landed, by asset: ``raw_lead_rows``
    (lead rows from files and form batches) and ``raw_engagement_events``. Latency runs
    from each row's landing (file modified, submission received) to the end of extraction.
    Appends both rows to ``gtm.stage_metrics`` and returns them."""
    finished_at = finished_at or datetime.now(UTC)
    partition = partition_label(partition_keys)
    con.execute(_RUN_LEAD_ROWS, [run_id])
    lead_in, lead_out, lead_rejected = con.execute(_RUN_FILES, [run_id, False]).fetchone()
    event_in, event_out, event_rejected = con.execute(_RUN_FILES, [run_id, True]).fetchone()
    con.execute(
        "CREATE OR REPLACE TEMP TABLE metrics_run_events AS "
        "SELECT e.*, e.received_at AS landed_at FROM raw.engagement_events e "
        "JOIN raw.file_ingestions f ON f.file_path = e.batch_file "
        "WHERE f.run_id = ? AND f.status = 'ingested'",
        [run_id],
    )
    return {
        "raw_lead_rows": record_stage_metrics(
            con,
            run_id=run_id,
            stage=EXTRACT,
            asset="raw_lead_rows",
            partition_key=partition,
            records_in=int(lead_in),
            records_out=int(lead_out),
            rejected=int(lead_rejected),
            records="metrics_run_lead_rows",
            fields=RAW_LEAD_FIELDS,
            landed="(SELECT landed_at FROM metrics_run_lead_rows WHERE first_reading)",
            finished_at=finished_at,
        ),
        "raw_engagement_events": record_stage_metrics(
            con,
            run_id=run_id,
            stage=EXTRACT,
            asset="raw_engagement_events",
            partition_key=partition,
            records_in=int(event_in),
            records_out=int(event_out),
            rejected=int(event_rejected),
            records="metrics_run_events",
            fields=("email",),
            landed="metrics_run_events",
            finished_at=finished_at,
        ),
    }


def record_transform_metrics(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    partition_keys: Sequence[str],
    rows_in: int,
    leads: str,
    companies: str,
    finished_at: datetime | None = None,
) -> dict[str, StageMetrics]:
    """Measure the transform of run ``run_id`` over its days, by asset: ``leads`` (the
    ``rows_in`` raw rows in, leads out) and ``companies`` (leads in, companies out), the
    relations of the leads and companies it derived for those days. Latency runs from
    landing to the end of the transform, over the rows the same run extracted for the first
    time; a transform that only re-derives rows extracted before has no latency samples.
    Appends both rows to ``gtm.stage_metrics`` and returns them."""
    finished_at = finished_at or datetime.now(UTC)
    partition = partition_label(partition_keys)
    days = list(partition_keys)
    con.execute(_RUN_LEAD_ROWS, [run_id])
    lead_count = con.execute(f"SELECT count(*) FROM {leads}").fetchone()[0]
    company_count = con.execute(f"SELECT count(*) FROM {companies}").fetchone()[0]
    con.execute(
        "CREATE OR REPLACE TEMP TABLE metrics_transform_landed AS "
        "SELECT landed_at FROM metrics_run_lead_rows "
        "WHERE first_reading AND list_contains(?, CAST(partition_date AS VARCHAR))",
        [days],
    )
    return {
        "leads": record_stage_metrics(
            con,
            run_id=run_id,
            stage=TRANSFORM,
            asset="leads",
            partition_key=partition,
            records_in=int(rows_in),
            records_out=int(lead_count),
            records=leads,
            fields=LEAD_FIELDS,
            landed="metrics_transform_landed",
            finished_at=finished_at,
        ),
        "companies": record_stage_metrics(
            con,
            run_id=run_id,
            stage=TRANSFORM,
            asset="companies",
            partition_key=partition,
            records_in=int(lead_count),
            records_out=int(company_count),
            records=companies,
            fields=COMPANY_FIELDS,
            landed="metrics_transform_landed",
            finished_at=finished_at,
        ),
    }


def record_load_metrics(
    con: duckdb.DuckDBPyConnection,
    *,
    run_id: str,
    asset: str,
    destination: str,
    stream: str,
    table: str | None,
    key_column: str,
    partition_keys: Sequence[str],
    records_in: int,
    records_out: int,
    rejected: int,
    failed: int,
    dead_lettered: int,
    finished_at: datetime | None = None,
) -> StageMetrics:
    """Measure one load of run ``run_id`` (``stream`` into ``destination`` from ``table``,
    keyed by ``key_column``) and append its row to ``gtm.stage_metrics``. Latency runs from
    when a record's newest row landed (``landed_at`` of ``table``, where it has one) to the
    CRM's confirmation of it (``gtm.crm_sync_log``), over the records this run created or
    updated. Returns the row written."""
    landed = None
    if table is not None and "landed_at" in _columns(con, table):
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE metrics_load_landed AS
                SELECT max(t.landed_at) AS landed_at, min(s.synced_at) AS done_at
                FROM gtm.crm_sync_log AS s JOIN {table} AS t ON t.{key_column} = s.record_key
                WHERE s.run_id = ? AND s.destination = ? AND s.object_type = ?
                  AND s.action IN ('created', 'updated')
                  AND list_contains(?, CAST(t.partition_date AS VARCHAR))
                GROUP BY s.record_key""",
            [run_id, destination, stream, list(partition_keys)],
        )
        landed = "metrics_load_landed"
    return record_stage_metrics(
        con,
        run_id=run_id,
        stage=LOAD,
        asset=asset,
        partition_key=partition_label(partition_keys),
        records_in=records_in,
        records_out=records_out,
        rejected=rejected,
        dead_lettered=dead_lettered,
        failed=failed,
        landed=landed,
        finished_at=finished_at,
    )
