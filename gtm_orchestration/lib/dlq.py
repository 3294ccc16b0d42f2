"""The dead-letter queue: every record a load could not deliver, in ``gtm.dead_letters``.

A record has at most one pending dead letter per destination and stream; each further
failure updates it (attempts, last failure, latest error and payload). Categories:

- ``transient``: the destination failed (429 or 5xx after every retry, a transport error,
  a run stopped before sending it); later load runs retry it on their own.
- ``permanent``: the destination refused the record itself (an invalid value, a conflict);
  it waits for a fix of the data or the mapping, then ``gtm dlq replay``.

A dead letter leaves the queue (``delivered``, or ``skipped`` when its stream only updates
records the CRM has and the CRM has none) the moment the destination confirms the record,
by whichever load or replay sends it. Rows are never deleted: the queue keeps its history.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import duckdb
import pyarrow as pa

Category = Literal["transient", "permanent"]
TRANSIENT: Category = "transient"
PERMANENT: Category = "permanent"
PENDING = "pending"
DELIVERED = "delivered"
SKIPPED = "skipped"

_COLUMNS = (
    "id, destination, stream, object_type, record_key, source_table, payload, category, "
    "error_code, error, attempts, first_failed_at, last_failed_at, status, resolved_at, run_id"
)


@dataclass(frozen=True)
class Failure:
    """One record a delivery failed for: its key, what was sent, and why it failed."""

    record_key: str
    payload: dict[str, str]
    category: Category
    error_code: str
    error: str


@dataclass(frozen=True)
class DeadLetter:
    """One row of ``gtm.dead_letters``."""

    id: int
    destination: str
    stream: str
    object_type: str
    record_key: str
    source_table: str | None
    payload: dict[str, str]
    category: str
    error_code: str | None
    error: str
    attempts: int
    first_failed_at: datetime
    last_failed_at: datetime
    status: str
    resolved_at: datetime | None
    run_id: str | None

    def as_json(self) -> dict[str, Any]:
        """The dead letter as JSON-ready values (timestamps in ISO 8601)."""
        values = dict(self.__dict__)
        for name in ("first_failed_at", "last_failed_at", "resolved_at"):
            moment = values[name]
            values[name] = moment.isoformat() if moment is not None else None
        return values


def record_failures(
    con: duckdb.DuckDBPyConnection,
    *,
    destination: str,
    stream: str,
    object_type: str,
    source_table: str | None,
    run_id: str | None,
    failures: Sequence[Failure],
    now: datetime,
) -> None:
    """Queue ``failures``: a record already pending gets one more attempt and the newest
    error; any other gets a new dead letter."""
    if not failures:
        return
    rows = pa.table(
        {
            "destination": [destination] * len(failures),
            "stream": [stream] * len(failures),
            "object_type": [object_type] * len(failures),
            "record_key": [f.record_key for f in failures],
            "source_table": pa.array([source_table] * len(failures), pa.string()),
            "payload": [json.dumps(f.payload, sort_keys=True) for f in failures],
            "category": [f.category for f in failures],
            "error_code": [f.error_code for f in failures],
            "error": [f.error for f in failures],
            "run_id": pa.array([run_id] * len(failures), pa.string()),
            "failed_at": pa.array([now] * len(failures), pa.timestamp("us", tz="UTC")),
        }
    )
    con.register("failed_records", rows)
    try:
        con.execute(
            "UPDATE gtm.dead_letters AS d SET payload = f.payload, category = f.category, "
            "error_code = f.error_code, error = f.error, attempts = d.attempts + 1, "
            "last_failed_at = f.failed_at, run_id = f.run_id, "
            "source_table = coalesce(f.source_table, d.source_table) "
            "FROM failed_records AS f WHERE d.status = 'pending' "
            "AND d.destination = f.destination AND d.stream = f.stream "
            "AND d.record_key = f.record_key"
        )
        con.execute(
            "INSERT INTO gtm.dead_letters (destination, stream, object_type, record_key, "
            "source_table, payload, category, error_code, error, attempts, first_failed_at, "
            "last_failed_at, status, run_id) "
            "SELECT destination, stream, object_type, record_key, source_table, payload, "
            "category, error_code, error, 1, failed_at, failed_at, 'pending', run_id "
            "FROM failed_records AS f WHERE NOT EXISTS (SELECT 1 FROM gtm.dead_letters AS d "
            "WHERE d.status = 'pending' AND d.destination = f.destination "
            "AND d.stream = f.stream AND d.record_key = f.record_key)"
        )
    finally:
        con.unregister("failed_records")


def resolve(
    con: duckdb.DuckDBPyConnection,
    *,
    destination: str,
    stream: str,
    keys: Sequence[str],
    status: str,
    now: datetime,
) -> int:
    """Take the pending dead letters of ``keys`` out of the queue with ``status``
    (``delivered`` or ``skipped``). Returns how many there were."""
    if not keys:
        return 0
    # The count of updated rows, not RETURNING: PostgreSQL tables attached to DuckDB take
    # no RETURNING on UPDATE.
    resolved = con.execute(
        "UPDATE gtm.dead_letters SET status = ?, resolved_at = ? "
        "WHERE status = 'pending' AND destination = ? AND stream = ? "
        "AND record_key IN (SELECT unnest(?::VARCHAR[]))",
        [status, now, destination, stream, list(keys)],
    ).fetchone()
    return int(resolved[0]) if resolved else 0


def dead_letters(
    con: duckdb.DuckDBPyConnection,
    *,
    pending_only: bool = True,
    ids: Sequence[int] = (),
    destination: str | None = None,
    stream: str | None = None,
    category: str | None = None,
) -> list[DeadLetter]:
    """Dead letters, oldest first: pending ones (or all with ``pending_only=False``),
    narrowed to ``ids``, a destination, a stream or a category when given."""
    clauses, params = [], []
    if pending_only:
        clauses.append("status = 'pending'")
    if ids:
        clauses.append("id IN (SELECT unnest(?::BIGINT[]))")
        params.append(list(ids))
    for column, value in (("destination", destination), ("stream", stream), ("category", category)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = con.execute(
        f"SELECT {_COLUMNS} FROM gtm.dead_letters {where} ORDER BY id", params
    ).fetchall()
    return [
        DeadLetter(*row[:6], json.loads(row[6]), *row[7:])  # type: ignore[arg-type]
        for row in rows
    ]
