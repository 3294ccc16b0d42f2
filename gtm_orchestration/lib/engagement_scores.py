"""Engagement scores, computed in the warehouse: per landing day as signals arrive, and
nightly for every contact as the signals age."""

from __future__ import annotations

from datetime import datetime

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
    rows = con.execute(
        f"""
        WITH today AS (
            SELECT DISTINCT email FROM raw.engagement_events WHERE partition_date = ?
        )
        SELECT {_EVENTS_BY_CONTACT}, max(e.occurred_at) AS as_of
        FROM raw.engagement_events e JOIN today USING (email)
        WHERE e.partition_date <= ?
        GROUP BY e.email ORDER BY e.email
        """,
        [day, list(engagement_rules().real_time), day],
    ).fetchall()
    return _scores(rows)


def score_all(con: duckdb.DuckDBPyConnection, as_of: datetime) -> pa.Table:
    """Scores of every contact with events that occurred before ``as_of``, decayed to
    ``as_of``: the nightly re-score, since a score falls as its signals age. The same
    ``as_of`` gives the same result. Returns one row per email."""
    rows = con.execute(
        f"""
        SELECT {_EVENTS_BY_CONTACT}, CAST(? AS TIMESTAMPTZ) AS as_of
        FROM raw.engagement_events e
        WHERE e.occurred_at < CAST(? AS TIMESTAMPTZ)
        GROUP BY e.email ORDER BY e.email
        """,
        [list(engagement_rules().real_time), as_of, as_of],
    ).fetchall()
    return _scores(rows)


# Per contact: its event types and times in order, and how many were real-time signals
# (the real-time event types are the first query parameter).
_EVENTS_BY_CONTACT = """e.email,
               list(e.event_type ORDER BY e.occurred_at, e.event_id) AS types,
               list(e.occurred_at ORDER BY e.occurred_at, e.event_id) AS times,
               count(*) FILTER (WHERE list_contains(?, e.event_type)) AS real_time"""


def _scores(rows: list[tuple]) -> pa.Table:
    out = []
    for email, types, times, real_time_count, as_of in rows:
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
