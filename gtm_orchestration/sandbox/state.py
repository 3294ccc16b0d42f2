"""The sandbox's persistent state: one SQLite file under the state folder.

The sandbox is one process; a single connection behind a lock serialises every transaction,
which keeps read-then-write sequences (an upsert's lookup and insert) atomic without retries.
WAL keeps readers of the file (an operator's ``sqlite3`` shell) from blocking the server.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DATABASE_FILE = "sandbox.sqlite3"

_REQUEST_STATS_DDL = """
CREATE TABLE IF NOT EXISTS request_stats (
    endpoint TEXT NOT NULL,
    status INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (endpoint, status)
)
"""


class SandboxDatabase:
    """The SQLite database holding every emulator's records and the request statistics."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / DATABASE_FILE
        self._lock = threading.RLock()
        # Autocommit mode: transactions are opened explicitly by ``transaction()``.
        self._connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._connection.row_factory = sqlite3.Row
        self._connection.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable across a crash of the sandbox process, which is all it needs.
        self._connection.execute("PRAGMA synchronous=NORMAL")
        self._connection.execute("PRAGMA busy_timeout=5000")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; committed on success, rolled back on any exception."""
        with self._lock:
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                yield self._connection
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise
            self._connection.execute("COMMIT")

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The connection for reads; no write can interleave while it is held."""
        with self._lock:
            yield self._connection

    def close(self) -> None:
        """Close the connection; the file keeps the state for the next start."""
        with self._lock:
            self._connection.close()


class RequestStats:
    """Requests answered, by endpoint and HTTP status, kept with the rest of the state."""

    def __init__(self, database: SandboxDatabase) -> None:
        self._database = database
        with database.transaction() as connection:
            connection.execute(_REQUEST_STATS_DDL)

    def record(self, endpoint: str, status: int) -> None:
        """Count one answered request."""
        with self._database.transaction() as connection:
            connection.execute(
                "INSERT INTO request_stats (endpoint, status, count) VALUES (?, ?, 1) "
                "ON CONFLICT (endpoint, status) DO UPDATE SET count = count + 1",
                (endpoint, status),
            )

    def snapshot(self) -> tuple[int, dict[str, dict[str, int]]]:
        """The total and the counts by endpoint then status (statuses as strings, like JSON)."""
        by_endpoint: dict[str, dict[str, int]] = {}
        total = 0
        with self._database.reading() as connection:
            rows = connection.execute(
                "SELECT endpoint, status, count FROM request_stats ORDER BY endpoint, status"
            ).fetchall()
        for row in rows:
            by_endpoint.setdefault(row["endpoint"], {})[str(row["status"])] = row["count"]
            total += row["count"]
        return total, by_endpoint

    def reset(self) -> None:
        """Forget every counted request."""
        with self._database.transaction() as connection:
            connection.execute("DELETE FROM request_stats")
