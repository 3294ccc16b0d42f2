"""CRM records, their property history and write counts, stored in the sandbox database.

A write that sets every property to the value it already has changes nothing: no history
entry, no new last-modified time, no write counted. That is what lets a client see that a
re-sent batch was a no-op, as it can against HubSpot.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from gtm_orchestration.lib.hubspot_time import iso_from_ms, now_ms
from gtm_orchestration.sandbox.state import SandboxDatabase

_DDL = (
    # AUTOINCREMENT keeps ids rising across resets, so an id a client cached before a reset
    # answers 404 instead of silently naming some newer record.
    """
    CREATE TABLE IF NOT EXISTS crm_records (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        object_type TEXT NOT NULL,
        unique_value TEXT,
        properties TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL,
        updated_at_ms INTEGER NOT NULL
    )
    """,
    """
    CREATE UNIQUE INDEX IF NOT EXISTS crm_records_unique_value
    ON crm_records (object_type, unique_value) WHERE unique_value IS NOT NULL
    """,
    """
    CREATE TABLE IF NOT EXISTS crm_property_history (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        record_id INTEGER NOT NULL,
        property TEXT NOT NULL,
        value TEXT NOT NULL,
        timestamp_ms INTEGER NOT NULL,
        source_type TEXT NOT NULL,
        source_id TEXT,
        updated_by_user_id INTEGER
    )
    """,
    """
    CREATE INDEX IF NOT EXISTS crm_property_history_by_record
    ON crm_property_history (record_id, property, seq)
    """,
    # Each association is kept in both directions, as HubSpot reports it from either side.
    """
    CREATE TABLE IF NOT EXISTS crm_associations (
        from_type TEXT NOT NULL,
        from_id INTEGER NOT NULL,
        to_type TEXT NOT NULL,
        to_id INTEGER NOT NULL,
        type_id INTEGER NOT NULL,
        created_at_ms INTEGER NOT NULL,
        PRIMARY KEY (from_type, from_id, to_type, to_id, type_id)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS crm_write_stats (
        object_type TEXT NOT NULL,
        kind TEXT NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (object_type, kind)
    )
    """,
)


@dataclass(frozen=True)
class WriteSource:
    """Who made a change, as HubSpot's property history reports it."""

    source_type: str
    source_id: str | None = None
    updated_by_user_id: int | None = None


@dataclass(frozen=True)
class HistoryEntry:
    """One past value of a property."""

    value: str
    timestamp_ms: int
    source: WriteSource

    def as_hubspot(self) -> dict[str, object]:
        """HubSpot's ``ValueWithTimestamp`` shape."""
        entry: dict[str, object] = {
            "value": self.value,
            "timestamp": iso_from_ms(self.timestamp_ms),
            "sourceType": self.source.source_type,
        }
        if self.source.source_id is not None:
            entry["sourceId"] = self.source.source_id
        if self.source.updated_by_user_id is not None:
            entry["updatedByUserId"] = self.source.updated_by_user_id
        return entry


@dataclass
class CrmRecord:
    """One contact or company: its id, current property values (strings) and timestamps."""

    id: int
    object_type: str
    properties: dict[str, str]
    created_at_ms: int
    updated_at_ms: int


@dataclass(frozen=True)
class WriteResult:
    """A record after a write, and whether the write created it or changed anything."""

    record: CrmRecord
    created: bool
    changed: bool


@dataclass(frozen=True)
class PlannedWrite:
    """Values to write to an existing record (``record_id``) or to a new one (None)."""

    record_id: int | None
    values: Mapping[str, str] = field(default_factory=dict)


class UniqueValueConflict(Exception):
    """The write would give a record a unique value (email, domain) another record holds."""

    def __init__(self, unique_value: str, existing_id: int) -> None:
        super().__init__(f"{unique_value!r} already belongs to record {existing_id}")
        self.unique_value = unique_value
        self.existing_id = existing_id


class CrmStore:
    """Records of every CRM object type, keyed by id and by their unique property."""

    def __init__(self, database: SandboxDatabase, unique_properties: Mapping[str, str]) -> None:
        self._database = database
        self._unique_properties = dict(unique_properties)
        with database.transaction() as connection:
            for statement in _DDL:
                connection.execute(statement)

    # Reads ---------------------------------------------------------------------------------

    def find(self, object_type: str, key: str, by_unique_property: bool) -> CrmRecord | None:
        """The record whose id, or whose unique value when ``by_unique_property``, is ``key``."""
        found = self.find_many(object_type, [key], by_unique_property)
        return next(iter(found.values()), None)

    def find_many(
        self, object_type: str, keys: Sequence[str], by_unique_property: bool
    ) -> dict[str, CrmRecord]:
        """Records found for ``keys``, keyed by the key as given; missing keys are left out."""
        with self._database.reading() as connection:
            return {
                key: record
                for key in keys
                if (record := _lookup(connection, object_type, key, by_unique_property))
            }

    def page(self, object_type: str, first_id: int, limit: int) -> list[CrmRecord]:
        """Up to ``limit`` records with ids from ``first_id`` on, in id order."""
        with self._database.reading() as connection:
            rows = connection.execute(
                "SELECT * FROM crm_records WHERE object_type = ? AND id >= ? ORDER BY id LIMIT ?",
                (object_type, first_id, limit),
            ).fetchall()
        return [_record_from_row(row) for row in rows]

    def all_records(self, object_type: str) -> list[CrmRecord]:
        """Every record of ``object_type``, in id order."""
        with self._database.reading() as connection:
            rows = connection.execute(
                "SELECT * FROM crm_records WHERE object_type = ? ORDER BY id", (object_type,)
            ).fetchall()
        return [_record_from_row(row) for row in rows]

    def history(
        self, record_ids: Iterable[int], names: Sequence[str]
    ) -> dict[int, dict[str, list[HistoryEntry]]]:
        """Each record's history of the named properties, newest first; [] for none."""
        ids = list(record_ids)
        result: dict[int, dict[str, list[HistoryEntry]]] = {
            record_id: {name: [] for name in names} for record_id in ids
        }
        if not ids or not names:
            return result
        with self._database.reading() as connection:
            rows = connection.execute(
                f"SELECT * FROM crm_property_history "
                f"WHERE record_id IN ({_marks(ids)}) AND property IN ({_marks(names)}) "
                f"ORDER BY timestamp_ms DESC, seq DESC",
                [*ids, *names],
            ).fetchall()
        for row in rows:
            source = WriteSource(row["source_type"], row["source_id"], row["updated_by_user_id"])
            entry = HistoryEntry(row["value"], row["timestamp_ms"], source)
            result[row["record_id"]][row["property"]].append(entry)
        return result

    def existing_ids(self, object_type: str, record_ids: Iterable[int]) -> set[int]:
        """Those of ``record_ids`` that name a record of ``object_type``."""
        ids = sorted(set(record_ids))
        if not ids:
            return set()
        with self._database.reading() as connection:
            rows = connection.execute(
                f"SELECT id FROM crm_records WHERE object_type = ? AND id IN ({_marks(ids)})",
                [object_type, *ids],
            ).fetchall()
        return {row["id"] for row in rows}

    def associations(
        self, from_type: str, from_ids: Sequence[int], to_type: str
    ) -> dict[int, list[tuple[int, int]]]:
        """Each record's associated ``to_type`` records as (record id, association type id),
        in record id order; [] for a record with none."""
        found: dict[int, list[tuple[int, int]]] = {record_id: [] for record_id in from_ids}
        if not from_ids:
            return found
        with self._database.reading() as connection:
            rows = connection.execute(
                f"SELECT from_id, to_id, type_id FROM crm_associations "
                f"WHERE from_type = ? AND to_type = ? AND from_id IN ({_marks(from_ids)}) "
                f"ORDER BY from_id, to_id, type_id",
                [from_type, to_type, *from_ids],
            ).fetchall()
        for row in rows:
            found[row["from_id"]].append((row["to_id"], row["type_id"]))
        return found

    def write_counts(self) -> dict[str, dict[str, int]]:
        """Records created and changed so far, by object type."""
        counts = {
            object_type: {"created": 0, "updated": 0} for object_type in self._unique_properties
        }
        with self._database.reading() as connection:
            rows = connection.execute("SELECT object_type, kind, count FROM crm_write_stats")
            for row in rows:
                counts.setdefault(row["object_type"], {"created": 0, "updated": 0})
                counts[row["object_type"]][row["kind"]] = row["count"]
        return counts

    # Writes --------------------------------------------------------------------------------

    def upsert(
        self, object_type: str, inputs: Sequence[tuple[str, Mapping[str, str]]], source: WriteSource
    ) -> list[WriteResult]:
        """Create or update records by unique value, all in one transaction.

        ``inputs`` pairs a normalised unique value with the values to write. Returns one
        result per input, in order.
        """
        unique_property = self._unique_properties[object_type]
        written_at = now_ms()
        results = []
        with self._database.transaction() as connection:
            changes = _Changes(source, written_at)
            for unique_value, values in inputs:
                existing = _lookup(connection, object_type, unique_value, True)
                merged = {**values, unique_property: unique_value}
                results.append(self._apply(connection, object_type, existing, merged, changes))
            changes.save(connection, object_type)
        return results

    def write(
        self, object_type: str, planned: Sequence[PlannedWrite], source: WriteSource
    ) -> list[WriteResult | None]:
        """Apply planned creates and updates atomically; None where an update's id is gone.

        Raises UniqueValueConflict, with nothing applied, when a value of the unique property
        already belongs to another record.
        """
        written_at = now_ms()
        results: list[WriteResult | None] = []
        with self._database.transaction() as connection:
            changes = _Changes(source, written_at)
            for plan in planned:
                existing = None
                if plan.record_id is not None:
                    existing = _lookup(connection, object_type, str(plan.record_id), False)
                    if existing is None:
                        results.append(None)
                        continue
                results.append(self._apply(connection, object_type, existing, plan.values, changes))
            changes.save(connection, object_type)
        return results

    def associate(
        self,
        from_type: str,
        to_type: str,
        pairs: Sequence[tuple[int, int]],
        type_id: int,
        reverse_type_id: int,
    ) -> None:
        """Associate each (from id, to id) pair both ways, in one transaction; a pair already
        associated is left as it is."""
        written_at = now_ms()
        rows = [(from_type, f, to_type, t, type_id, written_at) for f, t in pairs]
        rows += [(to_type, t, from_type, f, reverse_type_id, written_at) for f, t in pairs]
        with self._database.transaction() as connection:
            connection.executemany(
                "INSERT OR IGNORE INTO crm_associations "
                "(from_type, from_id, to_type, to_id, type_id, created_at_ms) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )

    def reset(self) -> None:
        """Delete every record, its history and associations, and the write counts."""
        with self._database.transaction() as connection:
            connection.execute("DELETE FROM crm_associations")
            connection.execute("DELETE FROM crm_records")
            connection.execute("DELETE FROM crm_property_history")
            connection.execute("DELETE FROM crm_write_stats")

    def _apply(
        self,
        connection: sqlite3.Connection,
        object_type: str,
        existing: CrmRecord | None,
        values: Mapping[str, str],
        batch: _Changes,
    ) -> WriteResult:
        unique_property = self._unique_properties[object_type]
        written_at = batch.written_at
        current = existing.properties if existing is not None else {}
        changes = {name: value for name, value in values.items() if current.get(name, "") != value}
        if existing is not None and not changes:
            return WriteResult(existing, created=False, changed=False)

        if unique_property in changes and changes[unique_property]:
            holder = _lookup(connection, object_type, changes[unique_property], True)
            if holder is not None and (existing is None or holder.id != existing.id):
                raise UniqueValueConflict(changes[unique_property], holder.id)

        properties = {name: value for name, value in {**current, **changes}.items() if value}
        stamp = iso_from_ms(written_at)
        if existing is None:
            cursor = connection.execute(
                "INSERT INTO crm_records "
                "(object_type, unique_value, properties, created_at_ms, updated_at_ms) "
                "VALUES (?, ?, '{}', ?, ?)",
                (object_type, properties.get(unique_property), written_at, written_at),
            )
            record_id = int(cursor.lastrowid or 0)
            system = {"hs_object_id": str(record_id), "createdate": stamp}
            created_at = written_at
        else:
            record_id = existing.id
            system = {}
            created_at = existing.created_at_ms
        system |= {"lastmodifieddate": stamp, "hs_lastmodifieddate": stamp}
        properties |= system
        changes |= system

        connection.execute(
            "UPDATE crm_records SET unique_value = ?, properties = ?, updated_at_ms = ? "
            "WHERE id = ?",
            (properties.get(unique_property), json.dumps(properties), written_at, record_id),
        )
        batch.history += [(record_id, name, value) for name, value in changes.items()]
        batch.kinds["created" if existing is None else "updated"] += 1
        record = CrmRecord(record_id, object_type, properties, created_at, written_at)
        return WriteResult(record, created=existing is None, changed=True)


@dataclass
class _Changes:
    """The history entries and write counts of one transaction, saved together at its end
    (one statement each rather than one per record)."""

    source: WriteSource
    written_at: int
    history: list[tuple[int, str, str]] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)

    def save(self, connection: sqlite3.Connection, object_type: str) -> None:
        source = self.source
        connection.executemany(
            "INSERT INTO crm_property_history "
            "(record_id, property, value, timestamp_ms, source_type, source_id, updated_by_user_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (record_id, name, value, self.written_at, *_source_columns(source))
                for record_id, name, value in self.history
            ],
        )
        connection.executemany(
            "INSERT INTO crm_write_stats (object_type, kind, count) VALUES (?, ?, ?) "
            "ON CONFLICT (object_type, kind) DO UPDATE SET count = count + excluded.count",
            [(object_type, kind, count) for kind, count in self.kinds.items()],
        )


def _source_columns(source: WriteSource) -> tuple[str, str | None, int | None]:
    return source.source_type, source.source_id, source.updated_by_user_id


def _lookup(
    connection: sqlite3.Connection, object_type: str, key: str, by_unique_property: bool
) -> CrmRecord | None:
    if by_unique_property:
        row = connection.execute(
            "SELECT * FROM crm_records WHERE object_type = ? AND unique_value = ?",
            (object_type, key.strip().lower()),
        ).fetchone()
    else:
        if not key.strip().isdigit():
            return None
        row = connection.execute(
            "SELECT * FROM crm_records WHERE object_type = ? AND id = ?",
            (object_type, int(key)),
        ).fetchone()
    return _record_from_row(row) if row is not None else None


def _record_from_row(row: sqlite3.Row) -> CrmRecord:
    return CrmRecord(
        id=row["id"],
        object_type=row["object_type"],
        properties=json.loads(row["properties"]),
        created_at_ms=row["created_at_ms"],
        updated_at_ms=row["updated_at_ms"],
    )


def _marks(items: Sequence[object]) -> str:
    return ", ".join("?" for _ in items)
