"""The sequencer's records in the sandbox database: mailboxes, sequences, prospects and
sequence states.

Every check-then-write (a unique e-mail, a prospect already in a sequence) runs inside one
database transaction, and the sandbox serialises transactions, so two concurrent requests
can never both pass a check that only one of them should.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gtm_orchestration.sandbox.state import SandboxDatabase

# Sequence states a prospect cannot be added to the same sequence again from.
LIVE_STATES = ("active", "pending", "paused")
SEQUENCE_STATES = (
    "active",
    "pending",
    "paused",
    "finished",
    "failed",
    "disabled",
    "bounced",
    "opted_out",
)

_DDL = (
    # AUTOINCREMENT keeps ids rising across resets, so an id a client cached before a reset
    # answers 404 instead of naming some newer record.
    """
    CREATE TABLE IF NOT EXISTS outreach_mailboxes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        email TEXT NOT NULL UNIQUE,
        user_id INTEGER NOT NULL,
        created_at TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS outreach_sequences (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        description TEXT,
        enabled INTEGER NOT NULL,
        sequence_type TEXT NOT NULL,
        share_type TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS outreach_prospects (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        attributes TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )
    """,
    # One row per address: the org's "no duplicate prospects" setting, enforced.
    """
    CREATE TABLE IF NOT EXISTS outreach_prospect_emails (
        email TEXT PRIMARY KEY,
        prospect_id INTEGER NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS outreach_sequence_states (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        prospect_id INTEGER NOT NULL,
        sequence_id INTEGER NOT NULL,
        mailbox_id INTEGER NOT NULL,
        state TEXT NOT NULL,
        pause_reason TEXT,
        error_reason TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        state_changed_at TEXT NOT NULL
    )
    """,
    """
    CREATE INDEX IF NOT EXISTS outreach_sequence_states_by_prospect
    ON outreach_sequence_states (prospect_id, sequence_id)
    """,
)
# What a reset forgets. Mailboxes stay: they are the org's users, fixed like its owners.
_RESET_TABLES = (
    "outreach_sequence_states",
    "outreach_prospect_emails",
    "outreach_prospects",
    "outreach_sequences",
)


def now_iso() -> str:
    """The current UTC time as Outreach writes it: ``2026-11-20T15:00:00.000Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class OutreachApiError(Exception):
    """A request the sequencer refuses, answered as a JSON:API ``errors`` array."""

    def __init__(
        self,
        status: int,
        error_id: str,
        title: str,
        detail: str,
        pointer: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.error_id = error_id
        self.title = title
        self.detail = detail
        self.pointer = pointer

    def body(self) -> dict[str, Any]:
        """``{"errors": [{"id", "title", "detail", "source"}]}``."""
        error: dict[str, Any] = {"id": self.error_id, "title": self.title, "detail": self.detail}
        if self.pointer:
            error["source"] = {"pointer": self.pointer}
        return {"errors": [error]}


def validation_error(detail: str, pointer: str | None = None) -> OutreachApiError:
    """422 ``validationError``, Outreach's answer to a write that breaks a rule."""
    return OutreachApiError(422, "validationError", "Validation Error", detail, pointer)


def not_found(resource_type: str, resource_id: object) -> OutreachApiError:
    """404 ``resourceNotFound``."""
    return OutreachApiError(
        404,
        "resourceNotFound",
        "Resource Not Found",
        f"Could not find '{resource_type}' with ID '{resource_id}'.",
    )


@dataclass(frozen=True)
class Page:
    """One page of a listing: its rows and the id to continue after, if there is more."""

    rows: list[sqlite3.Row]
    total: int
    next_after: int | None


class OutreachStore:
    """The sequencer's state. ``mailboxes`` and ``sequence_names`` are seeded on creation
    and after every reset: the org's users and the sequences the pipeline is configured for.
    """

    def __init__(
        self,
        database: SandboxDatabase,
        mailboxes: Sequence[tuple[str, int]],
        sequence_names: Sequence[str],
    ) -> None:
        self._database = database
        self._mailboxes = tuple(mailboxes)
        self._sequence_names = tuple(sequence_names)
        with database.transaction() as connection:
            for statement in _DDL:
                connection.execute(statement)
            self._seed(connection)

    def _seed(self, connection: sqlite3.Connection) -> None:
        now = now_iso()
        for email, user_id in self._mailboxes:
            connection.execute(
                "INSERT OR IGNORE INTO outreach_mailboxes (email, user_id, created_at) "
                "VALUES (?, ?, ?)",
                (email, user_id, now),
            )
        for name in self._sequence_names:
            exists = connection.execute(
                "SELECT 1 FROM outreach_sequences WHERE name = ?", (name,)
            ).fetchone()
            if exists is None:
                self._insert_sequence(connection, name, None, True, now)

    def reset(self) -> None:
        """Forget every prospect, sequence state and sequence; reseed the sequences."""
        with self._database.transaction() as connection:
            for table in _RESET_TABLES:
                connection.execute(f"DELETE FROM {table}")
            self._seed(connection)

    # Mailboxes ---------------------------------------------------------------------------

    def mailboxes(self, filters: Mapping[str, list[str]], after: int, size: int) -> Page:
        """Mailboxes matching ``filters`` (``id``, ``email``) after id ``after``."""
        return self._page(
            "outreach_mailboxes", filters, {"id": "id", "email": "email"}, after, size
        )

    def mailbox(self, mailbox_id: int) -> sqlite3.Row:
        return self._one("outreach_mailboxes", mailbox_id, "mailbox")

    # Sequences ---------------------------------------------------------------------------

    def create_sequence(self, name: str, description: str | None, enabled: bool) -> sqlite3.Row:
        """A new sequence (names need not be unique, as in Outreach)."""
        with self._database.transaction() as connection:
            sequence_id = self._insert_sequence(connection, name, description, enabled, now_iso())
            return self._row(connection, "outreach_sequences", sequence_id)

    @staticmethod
    def _insert_sequence(
        connection: sqlite3.Connection,
        name: str,
        description: str | None,
        enabled: bool,
        now: str,
    ) -> int:
        cursor = connection.execute(
            "INSERT INTO outreach_sequences (name, description, enabled, sequence_type, "
            "share_type, created_at, updated_at) VALUES (?, ?, ?, 'interval', 'shared', ?, ?)",
            (name, description, int(enabled), now, now),
        )
        return int(cursor.lastrowid or 0)

    def sequences(self, filters: Mapping[str, list[str]], after: int, size: int) -> Page:
        """Sequences matching ``filters`` (``id``, ``name``, ``enabled``)."""
        columns = {"id": "id", "name": "name", "enabled": "enabled"}
        return self._page("outreach_sequences", filters, columns, after, size)

    def sequence(self, sequence_id: int) -> sqlite3.Row:
        return self._one("outreach_sequences", sequence_id, "sequence")

    # Prospects ---------------------------------------------------------------------------

    def create_prospect(self, attributes: Mapping[str, Any]) -> sqlite3.Row:
        """A new prospect; 422 when one of its e-mail addresses belongs to another."""
        now = now_iso()
        with self._database.transaction() as connection:
            cursor = connection.execute(
                "INSERT INTO outreach_prospects (attributes, created_at, updated_at) "
                "VALUES (?, ?, ?)",
                (json.dumps(dict(attributes)), now, now),
            )
            prospect_id = int(cursor.lastrowid or 0)
            self._claim_emails(connection, prospect_id, attributes.get("emails") or [])
            return self._row(connection, "outreach_prospects", prospect_id)

    def update_prospect(self, prospect_id: int, attributes: Mapping[str, Any]) -> sqlite3.Row:
        """Set the given attributes of a prospect, leaving the others as they are."""
        with self._database.transaction() as connection:
            row = self._row(connection, "outreach_prospects", prospect_id)
            if row is None:
                raise not_found("prospect", prospect_id)
            merged = json.loads(row["attributes"]) | dict(attributes)
            if "emails" in attributes:
                connection.execute(
                    "DELETE FROM outreach_prospect_emails WHERE prospect_id = ?", (prospect_id,)
                )
                self._claim_emails(connection, prospect_id, attributes.get("emails") or [])
            connection.execute(
                "UPDATE outreach_prospects SET attributes = ?, updated_at = ? WHERE id = ?",
                (json.dumps(merged), now_iso(), prospect_id),
            )
            return self._row(connection, "outreach_prospects", prospect_id)

    @staticmethod
    def _claim_emails(
        connection: sqlite3.Connection, prospect_id: int, emails: Iterable[str]
    ) -> None:
        for email in emails:
            try:
                connection.execute(
                    "INSERT INTO outreach_prospect_emails (email, prospect_id) VALUES (?, ?)",
                    (email.strip().lower(), prospect_id),
                )
            except sqlite3.IntegrityError as exc:
                # Outreach's wording when an org does not allow duplicate prospects.
                raise validation_error(
                    "Contacts email hash has already been taken.", "/data/attributes/emails"
                ) from exc

    def prospects(self, filters: Mapping[str, list[str]], after: int, size: int) -> Page:
        """Prospects matching ``filters`` (``id``, ``emails``)."""
        emails = [e.strip().lower() for e in filters.get("emails", [])]
        other = {k: v for k, v in filters.items() if k != "emails"}
        extra = None
        if emails:
            marks = ", ".join("?" for _ in emails)
            owners = f"SELECT prospect_id FROM outreach_prospect_emails WHERE email IN ({marks})"
            extra = (f"id IN ({owners})", emails)
        return self._page("outreach_prospects", other, {"id": "id"}, after, size, extra)

    def prospect(self, prospect_id: int) -> sqlite3.Row:
        return self._one("outreach_prospects", prospect_id, "prospect")

    # Sequence states ---------------------------------------------------------------------

    def create_sequence_state(
        self, prospect_id: int, sequence_id: int, mailbox_id: int
    ) -> sqlite3.Row:
        """Add a prospect to a sequence: ``active``, or ``pending`` while the sequence is
        disabled. 422 when the prospect is already active, pending or paused in it."""
        with self._database.transaction() as connection:
            references = (
                ("outreach_prospects", prospect_id, "prospect"),
                ("outreach_sequences", sequence_id, "sequence"),
                ("outreach_mailboxes", mailbox_id, "mailbox"),
            )
            for table, resource_id, kind in references:
                if self._row(connection, table, resource_id) is None:
                    error = not_found(kind, resource_id)
                    raise validation_error(error.detail, f"/data/relationships/{kind}")
            marks = ", ".join("?" for _ in LIVE_STATES)
            live = connection.execute(
                f"SELECT id FROM outreach_sequence_states WHERE prospect_id = ? "
                f"AND sequence_id = ? AND state IN ({marks})",
                (prospect_id, sequence_id, *LIVE_STATES),
            ).fetchone()
            if live is not None:
                raise validation_error(
                    "Prospect has already been added to this sequence.", "/data/relationships"
                )
            sequence = self._row(connection, "outreach_sequences", sequence_id)
            state = "active" if sequence["enabled"] else "pending"
            now = now_iso()
            cursor = connection.execute(
                "INSERT INTO outreach_sequence_states (prospect_id, sequence_id, mailbox_id, "
                "state, created_at, updated_at, state_changed_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (prospect_id, sequence_id, mailbox_id, state, now, now, now),
            )
            return self._row(connection, "outreach_sequence_states", int(cursor.lastrowid or 0))

    def sequence_states(self, filters: Mapping[str, list[str]], after: int, size: int) -> Page:
        """Sequence states matching ``filters`` (``id``, ``prospect``, ``sequence``,
        ``mailbox``, ``state``)."""
        columns = {
            "id": "id",
            "prospect": "prospect_id",
            "sequence": "sequence_id",
            "mailbox": "mailbox_id",
            "state": "state",
        }
        return self._page("outreach_sequence_states", filters, columns, after, size)

    def sequence_state(self, state_id: int) -> sqlite3.Row:
        return self._one("outreach_sequence_states", state_id, "sequenceState")

    def change_state(
        self,
        state_id: int,
        state: str,
        *,
        allowed_from: Sequence[str] | None = None,
        reason: str | None = None,
    ) -> sqlite3.Row:
        """Move a sequence state to ``state``; 422 when it is not in ``allowed_from``."""
        with self._database.transaction() as connection:
            row = self._row(connection, "outreach_sequence_states", state_id)
            if row is None:
                raise not_found("sequenceState", state_id)
            if allowed_from is not None and row["state"] not in allowed_from:
                raise validation_error(
                    f"Sequence state is {row['state']}; expected one of {', '.join(allowed_from)}."
                )
            now = now_iso()
            connection.execute(
                "UPDATE outreach_sequence_states SET state = ?, updated_at = ?, "
                "state_changed_at = ?, pause_reason = ?, error_reason = ? WHERE id = ?",
                (
                    state,
                    now,
                    now,
                    reason if state == "paused" else None,
                    reason if state in ("failed", "bounced") else None,
                    state_id,
                ),
            )
            return self._row(connection, "outreach_sequence_states", state_id)

    def counts(self) -> dict[str, int]:
        """How many prospects and sequence states exist, by kind and state."""
        with self._database.reading() as connection:
            counts = {
                "prospects": connection.execute(
                    "SELECT count(*) FROM outreach_prospects"
                ).fetchone()[0]
            }
            for state, count in connection.execute(
                "SELECT state, count(*) FROM outreach_sequence_states GROUP BY state"
            ).fetchall():
                counts[f"sequence_states_{state}"] = count
        return counts

    # Helpers -----------------------------------------------------------------------------

    @staticmethod
    def _row(connection: sqlite3.Connection, table: str, row_id: int) -> sqlite3.Row:
        return connection.execute(f"SELECT * FROM {table} WHERE id = ?", (row_id,)).fetchone()

    def _one(self, table: str, row_id: int, kind: str) -> sqlite3.Row:
        with self._database.reading() as connection:
            row = self._row(connection, table, row_id)
        if row is None:
            raise not_found(kind, row_id)
        return row

    def _page(
        self,
        table: str,
        filters: Mapping[str, list[str]],
        columns: Mapping[str, str],
        after: int,
        size: int,
        extra: tuple[str, list[Any]] | None = None,
    ) -> Page:
        clauses: list[str] = []
        params: list[Any] = []
        for name, values in filters.items():
            marks = ", ".join("?" for _ in values)
            clauses.append(f"{columns[name]} IN ({marks})")
            params.extend(values)
        if extra is not None:
            clauses.append(extra[0])
            params.extend(extra[1])
        where = " AND ".join(clauses) or "1 = 1"
        with self._database.reading() as connection:
            total = connection.execute(
                f"SELECT count(*) FROM {table} WHERE {where}", params
            ).fetchone()[0]
            rows = connection.execute(
                f"SELECT * FROM {table} WHERE {where} AND id > ? ORDER BY id LIMIT ?",
                [*params, after, size + 1],
            ).fetchall()
        more = len(rows) > size
        rows = rows[:size]
        return Page(rows, total, int(rows[-1]["id"]) if more else None)
