"""The emulated org's records, kept in the sandbox's SQLite database.

Each record's field values are one JSON object; external-id values are also kept in an
index of their own, lower-cased, because Salesforce matches them case-insensitively and
keeps them unique per object.
"""

from __future__ import annotations

import json
import sqlite3
import string
from dataclasses import dataclass
from datetime import UTC, datetime

from gtm_orchestration.sandbox.salesforce.schema import SObjectSpec
from gtm_orchestration.sandbox.state import SandboxDatabase

FieldValue = str | int | float

_DDL = (
    """CREATE TABLE IF NOT EXISTS sf_records (
    id TEXT PRIMARY KEY,
    sobject TEXT NOT NULL,
    fields TEXT NOT NULL,
    created_date TEXT NOT NULL,
    last_modified_date TEXT NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS sf_external_ids (
    sobject TEXT NOT NULL,
    field TEXT NOT NULL,
    value TEXT NOT NULL,
    record_id TEXT NOT NULL,
    PRIMARY KEY (sobject, field, value)
)""",
    """CREATE TABLE IF NOT EXISTS sf_sequences (
    prefix TEXT PRIMARY KEY,
    next INTEGER NOT NULL
)""",
)
_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_CHECKSUM = string.ascii_uppercase + "012345"
# Every id the sandbox org makes carries this instance part after the key prefix.
_INSTANCE = "5g"


def salesforce_datetime(moment: datetime | None = None) -> str:
    """A moment as the REST API writes it: ``2026-11-27T09:30:00.000+0000``."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def eighteen_character_id(id15: str) -> str:
    """The case-insensitive 18-character form of a 15-character record id."""
    suffix = ""
    for start in range(0, 15, 5):
        chunk = id15[start : start + 5]
        flags = sum(1 << bit for bit, char in enumerate(chunk) if char.isupper())
        suffix += _CHECKSUM[flags]
    return id15 + suffix


@dataclass(frozen=True)
class StoredRecord:
    """One record: its id, object, field values and audit dates."""

    id: str
    sobject: str
    fields: dict[str, FieldValue]
    created_date: str
    last_modified_date: str


class RecordStore:
    """Records of every object, with their external-id index and the id sequences."""

    def __init__(self, database: SandboxDatabase) -> None:
        self._database = database
        with database.transaction() as connection:
            for statement in _DDL:
                connection.execute(statement)

    def new_id(self, connection: sqlite3.Connection, prefix: str) -> str:
        """A new 18-character id starting with ``prefix`` (``003`` Contact, ``750`` job)."""
        row = connection.execute(
            "INSERT INTO sf_sequences (prefix, next) VALUES (?, 2) "
            "ON CONFLICT (prefix) DO UPDATE SET next = next + 1 RETURNING next - 1",
            (prefix,),
        ).fetchone()
        number, digits = int(row[0]), ""
        while number:
            number, digit = divmod(number, 62)
            digits = _BASE62[digit] + digits
        return eighteen_character_id(f"{prefix}{_INSTANCE}{digits.rjust(10, '0')}")

    def by_external_id(
        self, connection: sqlite3.Connection, spec: SObjectSpec, field: str, value: str
    ) -> StoredRecord | None:
        """The record of ``spec`` whose external-id ``field`` holds ``value`` in any case."""
        row = connection.execute(
            "SELECT record_id FROM sf_external_ids WHERE sobject = ? AND field = ? AND value = ?",
            (spec.name, field, value.lower()),
        ).fetchone()
        return None if row is None else self.get(connection, spec.name, row[0])

    def get(
        self, connection: sqlite3.Connection, sobject: str, record_id: str
    ) -> StoredRecord | None:
        """The record ``record_id`` (15 or 18 characters) of ``sobject``, if it exists."""
        row = connection.execute(
            "SELECT id, sobject, fields, created_date, last_modified_date FROM sf_records "
            "WHERE substr(id, 1, 15) = ? AND sobject = ?",
            (record_id[:15], sobject),
        ).fetchone()
        if row is None:
            return None
        return StoredRecord(row[0], row[1], json.loads(row[2]), row[3], row[4])

    def write(
        self,
        connection: sqlite3.Connection,
        spec: SObjectSpec,
        existing: StoredRecord | None,
        values: dict[str, FieldValue | None],
    ) -> StoredRecord:
        """Create a record of ``spec`` (``existing`` None) or update ``existing`` with
        ``values`` (None clears a field); returns the record as stored. External-id
        uniqueness is the caller's to check first."""
        now = salesforce_datetime()
        fields = dict(existing.fields) if existing else {}
        for name, value in values.items():
            if value is None:
                fields.pop(name, None)
            else:
                fields[name] = value
        if existing is None:
            record = StoredRecord(
                self.new_id(connection, spec.key_prefix), spec.name, fields, now, now
            )
            connection.execute(
                "INSERT INTO sf_records VALUES (?, ?, ?, ?, ?)",
                (record.id, spec.name, json.dumps(fields), now, now),
            )
        else:
            record = StoredRecord(existing.id, spec.name, fields, existing.created_date, now)
            connection.execute(
                "UPDATE sf_records SET fields = ?, last_modified_date = ? WHERE id = ?",
                (json.dumps(fields), now, record.id),
            )
        for spec_field in spec.fields:
            if spec_field.external_id and spec_field.name in values:
                connection.execute(
                    "DELETE FROM sf_external_ids WHERE sobject = ? AND field = ? AND record_id = ?",
                    (spec.name, spec_field.name, record.id),
                )
                if fields.get(spec_field.name) is not None:
                    connection.execute(
                        "INSERT INTO sf_external_ids VALUES (?, ?, ?, ?)",
                        (
                            spec.name,
                            spec_field.name,
                            str(fields[spec_field.name]).lower(),
                            record.id,
                        ),
                    )
        return record

    def reset(self) -> None:
        """Forget every record; ids start again from the first."""
        with self._database.transaction() as connection:
            for table in ("sf_records", "sf_external_ids", "sf_sequences"):
                connection.execute(f"DELETE FROM {table}")
