"""Engagement scores per landing day, computed in the warehouse."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from gtm_orchestration.lib.engagement import engagement_rules, score_engagement

_SCHEMA = pa.schema(
    [
        ("email", pa.string()),
        ("engagement_score", pa.int64()),
        ("engagement_reasons", pa.string()),
        ("events", pa.int64()),
        ("real_time_signals", pa.int64()),
        ("as_of", pa.timestamp("us", tz="UTC")),
    ]
)


def score_day(con: duckdb.DuckDBPyConnection, day: str) -> pa.Table:
    """Scores of the contacts with events landed on ``day``, over all their events so far.

    The score is measured at the contact's latest signal up to that day, so re-scoring the
    same day gives the same result. Returns one row per email.
    """
    real_time = list(engagement_rules().real_time)
    rows = con.execute(
        """
        WITH today AS (
            SELECT DISTINCT email FROM raw.engagement_events WHERE partition_date = ?
        )
        SELECT e.email,
               list(e.event_type ORDER BY e.occurred_at, e.event_id) AS types,
               list(e.occurred_at ORDER BY e.occurred_at, e.event_id) AS times,
               max(e.occurred_at) AS as_of,
               count(*) FILTER (WHERE list_contains(?, e.event_type)) AS real_time
        FROM raw.engagement_events e JOIN today USING (email)
        WHERE e.partition_date <= ?
        GROUP BY e.email ORDER BY e.email
        """,
        [day, real_time, day],
    ).fetchall()
    out = []
    for email, types, times, as_of, real_time_count in rows:
        score, reasons = score_engagement(list(zip(types, times, strict=True)), as_of)
        out.append(
            {
                "email": email,
                "engagement_score": score,
                "engagement_reasons": "; ".join(reasons),
                "events": len(types),
                "real_time_signals": real_time_count,
                "as_of": as_of,
            }
        )
    return pa.Table.from_pylist(out, schema=_SCHEMA)
