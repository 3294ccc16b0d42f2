"""The informational digests: a daily throughput report and a weekly error summary.

Both are read from the warehouse (and the run counts the caller passes in) and written as
plain text of counts: the names of sources' fields, destinations, jobs and error codes
appear, never a record, an e-mail address or an error text.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import duckdb

from gtm_orchestration.lib.alerts import existing_tables, run_url
from gtm_orchestration.lib.smtp_digest import Digest


@dataclass(frozen=True)
class RunCounts:
    """Runs that finished in the period, by outcome, and the failed ones by job."""

    succeeded: int = 0
    failed: int = 0
    canceled: int = 0
    failed_by_job: Mapping[str, int] = field(default_factory=dict)


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any]) -> list[tuple]:
    return con.execute(sql, list(params)).fetchall()


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "n/a"


def _window(start: datetime, end: datetime) -> list[datetime]:
    return [start, end]


def throughput_report(
    con: duckdb.DuckDBPyConnection,
    day: date,
    start: datetime,
    end: datetime,
    runs: RunCounts,
    ui_url: str,
) -> Digest:
    """What went through the pipeline in [start, end) (the day ``day``)."""
    tables = existing_tables(con)
    lines = [
        f"What the GTM pipeline moved from {start:%Y-%m-%d %H:%M %Z} to {end:%Y-%m-%d %H:%M %Z}.",
        "",
    ]
    lines.append("Extraction")
    if "raw.file_ingestions" in tables:
        ((ingested, rejected, duplicates, total, accepted, rows_rejected),) = _rows(
            con,
            """SELECT count(*) FILTER (WHERE status = 'ingested'),
                      count(*) FILTER (WHERE status = 'rejected'),
                      count(*) FILTER (WHERE status = 'duplicate'),
                      coalesce(sum(rows_total), 0), coalesce(sum(rows_accepted), 0),
                      coalesce(sum(rows_rejected), 0)
               FROM raw.file_ingestions WHERE finished_at >= ? AND finished_at < ?""",
            _window(start, end),
        )
        lines += [
            f"  files and webhook batches ingested: {ingested} (rejected whole: {rejected}, "
            f"duplicates skipped: {duplicates})",
            f"  rows read: {total}; accepted: {accepted}; rejected: {rows_rejected} "
            f"({_share(rows_rejected, total)})",
        ]
    if "raw.engagement_events" in tables:
        events = _rows(
            con,
            """SELECT event_type, count(*) FROM raw.engagement_events
               WHERE loaded_at >= ? AND loaded_at < ? GROUP BY 1 ORDER BY 1""",
            _window(start, end),
        )
        total_events = sum(n for _, n in events)
        by_type = ", ".join(f"{kind} {n}" for kind, n in events)
        lines.append(f"  engagement events: {total_events}" + (f" ({by_type})" if by_type else ""))
    lines += ["", "Loads"]
    if "gtm.crm_sync_log" in tables:
        sent = _rows(
            con,
            """SELECT destination, object_type,
                      count(*) FILTER (WHERE action = 'created'),
                      count(*) FILTER (WHERE action = 'updated'),
                      count(*) FILTER (WHERE action = 'unchanged'),
                      count(*) FILTER (WHERE action = 'failed')
               FROM gtm.crm_sync_log WHERE synced_at >= ? AND synced_at < ?
               GROUP BY 1, 2 ORDER BY 1, 2""",
            _window(start, end),
        )
        lines += [
            f"  {destination} {stream}: created {created}, updated {updated}, "
            f"unchanged {unchanged}, failed {failed}"
            for destination, stream, created, updated, unchanged, failed in sent
        ] or ["  no record sent to a CRM"]
    if "gtm.sequence_enrollment_log" in tables:
        steps = dict(
            _rows(
                con,
                """SELECT event, count(*) FROM gtm.sequence_enrollment_log
                   WHERE logged_at >= ? AND logged_at < ? GROUP BY 1""",
                _window(start, end),
            )
        )
        lines.append(
            f"  sequence enrollments: enrolled {steps.get('enrolled', 0)}, held "
            f"{steps.get('held', 0)}, cancelled {steps.get('cancelled', 0)}, failed "
            f"{steps.get('failed', 0)}"
        )
    if "gtm.dead_letters" in tables:
        ((opened, resolved, pending),) = _rows(
            con,
            """SELECT count(*) FILTER (WHERE first_failed_at >= ? AND first_failed_at < ?),
                      count(*) FILTER (WHERE resolved_at >= ? AND resolved_at < ?),
                      count(*) FILTER (WHERE status = 'pending')
               FROM gtm.dead_letters""",
            [start, end, start, end],
        )
        lines.append(
            f"  dead-letter queue: {opened} opened, {resolved} resolved, {pending} pending now"
        )
    if {"raw.lead_rows", "gtm.crm_sync_log"} <= tables:
        ((p50, p95, leads),) = _rows(
            con,
            """WITH landed AS (
                   SELECT lower(trim(email)) AS record, min(landed_at) AS landed_at
                   FROM raw.lead_rows
                   WHERE landed_at >= ? AND landed_at < ? AND email IS NOT NULL GROUP BY 1
               ), reached AS (
                   SELECT epoch(min(s.synced_at)) - epoch(l.landed_at) AS seconds
                   FROM landed l JOIN gtm.crm_sync_log s
                     ON lower(s.record_key) = l.record AND s.synced_at >= l.landed_at
                    AND s.object_type = 'contacts' AND s.action <> 'failed'
                   GROUP BY l.record, l.landed_at
               )
               SELECT quantile_cont(seconds, 0.5), quantile_cont(seconds, 0.95), count(*)
               FROM reached""",
            _window(start, end),
        )
        lines += ["", "Latency, landed -> in the CRM"]
        lines.append(
            f"  p50 {p50 / 60:.1f} min, p95 {p95 / 60:.1f} min over {leads} leads"
            if leads
            else "  no lead reached the CRM"
        )
    lines += [
        "",
        f"Runs: {runs.succeeded} succeeded, {runs.failed} failed, {runs.canceled} canceled",
        "",
        f"Dagster UI: {run_url(ui_url, None)}",
    ]
    return Digest(f"GTM pipeline: daily throughput report for {day.isoformat()}", "\n".join(lines))


def error_summary(
    con: duckdb.DuckDBPyConnection,
    first_day: date,
    last_day: date,
    start: datetime,
    end: datetime,
    runs: RunCounts,
    alert_history: Sequence[Mapping[str, Any]],
    ui_url: str,
) -> Digest:
    """What went wrong in [start, end) (``first_day`` to ``last_day``): rejections by field,
    load failures by destination and error code, failed runs by job, alerts raised."""
    tables = existing_tables(con)
    period = f"{first_day.isoformat()} to {last_day.isoformat()}"
    lines = [f"What went wrong in the GTM pipeline from {period}.", "", "Extraction"]
    if "raw.file_ingestions" in tables:
        ((files, rejected_files, rows_rejected, rows_total),) = _rows(
            con,
            """SELECT count(*) FILTER (WHERE rows_rejected > 0),
                      count(*) FILTER (WHERE status = 'rejected'),
                      coalesce(sum(rows_rejected), 0), coalesce(sum(rows_total), 0)
               FROM raw.file_ingestions
               WHERE finished_at >= ? AND finished_at < ? AND status <> 'duplicate'""",
            _window(start, end),
        )
        lines.append(
            f"  {rows_rejected} of {rows_total} rows rejected "
            f"({_share(rows_rejected, rows_total)}) in {files} files and batches; "
            f"{rejected_files} rejected whole"
        )
    if "raw.rejected_rows" in tables:
        by_field = _rows(
            con,
            """SELECT coalesce(field, '(whole row)'), count(*) FROM raw.rejected_rows
               WHERE loaded_at >= ? AND loaded_at < ? GROUP BY 1 ORDER BY 2 DESC, 1""",
            _window(start, end),
        )
        if by_field:
            lines.append("  by field: " + ", ".join(f"{name} {n}" for name, n in by_field))
    lines += ["", "Loads"]
    if "gtm.crm_sync_log" in tables:
        failed = _rows(
            con,
            """SELECT destination, object_type, count(*) FILTER (WHERE action = 'failed'),
                      count(*)
               FROM gtm.crm_sync_log WHERE synced_at >= ? AND synced_at < ?
               GROUP BY 1, 2 ORDER BY 1, 2""",
            _window(start, end),
        )
        lines += [
            f"  {destination} {stream}: {n} of {total} records failed ({_share(n, total)})"
            for destination, stream, n, total in failed
        ] or ["  no record sent to a CRM"]
    if "gtm.dead_letters" in tables:
        codes = _rows(
            con,
            """SELECT destination, category, coalesce(error_code, 'unknown'), count(*)
               FROM gtm.dead_letters WHERE last_failed_at >= ? AND last_failed_at < ?
               GROUP BY 1, 2, 3 ORDER BY 4 DESC, 1, 2, 3""",
            _window(start, end),
        )
        if codes:
            lines.append(
                "  dead letters by error code: "
                + ", ".join(f"{d} {code} ({cat}) {n}" for d, cat, code, n in codes)
            )
    if "gtm.sequence_enrollment_log" in tables:
        ((enroll_failed, retried),) = _rows(
            con,
            """SELECT count(*) FILTER (WHERE event = 'failed'),
                      count(*) FILTER (WHERE event = 'retry')
               FROM gtm.sequence_enrollment_log WHERE logged_at >= ? AND logged_at < ?""",
            _window(start, end),
        )
        lines.append(f"  sequence enrollments: {enroll_failed} failed, {retried} retried")
    lines += [
        "",
        f"Runs: {runs.failed} failed, {runs.canceled} canceled, {runs.succeeded} succeeded",
    ]
    lines += [f"  {job}: {n} failed" for job, n in sorted(runs.failed_by_job.items())]
    in_period = [h for h in alert_history if start.timestamp() <= h["at"] < end.timestamp()]
    opened = Counter((h["key"], h["severity"]) for h in in_period if h["event"] == "opened")
    resolved = sum(1 for h in in_period if h["event"] == "resolved")
    lines += ["", f"Alerts: {sum(opened.values())} opened, {resolved} resolved"]
    lines += [f"  {key} ({severity}): {n}" for (key, severity), n in sorted(opened.items())]
    lines += ["", f"Dagster UI: {run_url(ui_url, None)}"]
    return Digest(f"GTM pipeline: weekly error summary, {period}", "\n".join(lines))
