"""Change capture of HubSpot contacts: webhook events and an incremental poll, one snapshot.

Two feeds report what changed in the CRM:

- webhook events (``contact.creation``, ``contact.propertyChange``) that the receiver landed
  under ``landing/webhooks/hubspot/``; each batch file is read once and logged in
  ``raw.file_ingestions`` (source ``webhooks/hubspot``), each event recorded once per id;
- a poll that searches contacts on ``lastmodifieddate`` from the stored high-water mark minus
  an overlap up to the moment the poll started, ascending, paging with ``after``. A window
  that would pass HubSpot's 10,000-result cap, or whose result count moved while it was paged
  (offsets shifted), is searched again from the last timestamp seen. Versions are deduplicated
  by (object id, lastmodifieddate), so a record at a window's edge is read twice, counted once.

A polled version is compared with the snapshot, property by property; only differences
become change rows, so a change already applied from a webhook is not counted again by the
poll. The property history of changed records (one batch read per 100) tells who made each
change. Every change is appended to ``raw.crm_contact_changes`` and applied to
``gtm.crm_contacts``, where each property remembers when its value was set, so a late event
never overwrites a newer value.

A change is an echo of the pipeline's own write when its value is what ``gtm.sync_ledger``
says the pipeline last sent for that property (a creation: when our integration made it and
the ledger knows the record). Echoes are recorded and flagged, and count as no CRM-side
change. A rep's edit in the CRM UI is never an echo, whatever its value.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import duckdb
from upath import UPath

from gtm_orchestration.lib.connectors.hubspot import (
    BATCH_LIMIT,
    SEARCH_PAGE_LIMIT,
    HubSpotClient,
    SearchPage,
)
from gtm_orchestration.lib.crm_sync import REP_EDIT_SOURCE
from gtm_orchestration.lib.hubspot_time import ms_from_text, now_ms
from gtm_orchestration.receiver.landing import (
    WebhookBatchError,
    list_webhook_batches,
    read_webhook_batch,
)

WEBHOOK_CHANNEL = "hubspot"
# How hubspot webhook batches are named in the ingestion log.
WEBHOOK_INGESTION_SOURCE = "webhooks/hubspot"
POLL_STREAM = "hubspot_contacts_poll"
DEFAULT_OVERLAP_MS = 5 * 60 * 1000
# HubSpot's search pages no further than this many results of one search.
SEARCH_RESULT_CAP = 10_000
INTEGRATION_SOURCE = "INTEGRATION"
CONTACT_CREATION = "contact.creation"
CONTACT_PROPERTY_CHANGE = "contact.propertyChange"
LAST_MODIFIED = "lastmodifieddate"
CREATED = "createdate"
OBJECT_ID = "hs_object_id"

Feed = Literal["webhook", "poll"]
ChangeKind = Literal["creation", "property", "record"]
VersionKey = tuple[str, int]
Connect = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class WebhookEventError(ValueError):
    """A landed HubSpot event without the fields a contact change needs."""


# Timestamps -------------------------------------------------------------------------------


def epoch_ms(value: object) -> int | None:
    """Epoch millis of a HubSpot timestamp (epoch millis, as number or text, or ISO 8601)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    return ms_from_text(str(value))


def moment_of(ms: int) -> datetime:
    """The UTC moment of epoch millis, exactly (no float rounding)."""
    return _EPOCH + timedelta(milliseconds=ms)


# Changes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContactChange:
    """One observed change of a contact, from either feed.

    ``kind`` is ``creation`` (webhook, no property), ``property`` (one property's new value,
    None when cleared) or ``record`` (a poll's first sight of a contact: every tracked
    property in ``properties``, who last set each in ``property_sources``).
    """

    feed: Feed
    kind: ChangeKind
    object_id: str
    changed_at_ms: int
    dedupe_key: str
    property_name: str | None = None
    value: str | None = None
    properties: Mapping[str, str | None] = field(default_factory=dict)
    property_sources: Mapping[str, str | None] = field(default_factory=dict)
    change_source: str | None = None
    email: str | None = None
    event_id: str | None = None
    landed_file: str | None = None
    is_echo: bool = False

    @property
    def row_value(self) -> str | None:
        """The ``value`` column: the property's value, or a whole record's values as JSON."""
        if self.kind == "record":
            return json.dumps(dict(self.properties), sort_keys=True)
        return self.value


def parse_webhook_event(
    line: Mapping[str, Any], landed_file: str, position: int
) -> ContactChange | None:
    """The contact change a landed HubSpot event reports; None for other subscription types.

    ``line`` is one line of a batch file (``event_id``, ``payload``, ...), ``position`` its
    1-based place in the file. Raises WebhookEventError naming the file, the event and the
    field when a contact event lacks what is needed.
    """
    payload = line.get("payload")
    where = f"{landed_file}: event {position}"
    if not isinstance(payload, dict):
        raise WebhookEventError(f"{where}: payload: expected a HubSpot event object")
    kind = payload.get("subscriptionType")
    if kind not in (CONTACT_CREATION, CONTACT_PROPERTY_CHANGE):
        return None
    object_id = payload.get("objectId")
    if isinstance(object_id, bool) or not isinstance(object_id, int | str) or not str(object_id):
        raise WebhookEventError(f"{where}: objectId: expected a record id, got {object_id!r}")
    occurred = payload.get("occurredAt")
    occurred_ms = epoch_ms(occurred)
    if occurred_ms is None:
        raise WebhookEventError(f"{where}: occurredAt: expected epoch millis, got {occurred!r}")
    event_id = str(line.get("event_id") or payload.get("eventId") or "")
    if not event_id:
        raise WebhookEventError(f"{where}: eventId: missing")
    change = ContactChange(
        feed="webhook",
        kind="creation",
        object_id=str(object_id),
        changed_at_ms=occurred_ms,
        dedupe_key=f"{WEBHOOK_CHANNEL}:{event_id}",
        change_source=payload.get("changeSource") or None,
        event_id=event_id,
        landed_file=landed_file,
    )
    if kind == CONTACT_CREATION:
        return change
    name = payload.get("propertyName")
    if not isinstance(name, str) or not name:
        raise WebhookEventError(f"{where}: propertyName: expected a property name, got {name!r}")
    value = payload.get("propertyValue")
    # HubSpot reports a cleared property as an empty value.
    text = None if value is None or value == "" else str(value)
    return replace(change, kind="property", property_name=name, value=text)


# Echoes -----------------------------------------------------------------------------------


def same_crm_value(sent: str, observed: str | None) -> bool:
    """Whether a value read from the CRM is the one sent: the same text, or the same number
    (the CRM keeps one spelling per number, ``1200000`` for ``1200000.0``)."""
    if observed is None:
        return False
    if sent.strip() == observed.strip():
        return True
    try:
        return Decimal(sent.strip()) == Decimal(observed.strip())
    except InvalidOperation:
        return False


def is_echo(
    change_source: str | None,
    prop: str | None,
    value: str | None,
    sent: Mapping[str, str] | None,
) -> bool:
    """Whether a change is the CRM reporting back the pipeline's own write.

    ``sent`` is the payload the ledger says the pipeline last sent for the contact (None if
    it never sent any). A property change is an echo when its value is the one sent for that
    property; a creation (``prop`` None) when our integration made a contact the ledger
    knows. A rep's edit in the CRM UI never is.
    """
    if change_source == REP_EDIT_SOURCE or sent is None:
        return False
    if prop is None:
        return change_source == INTEGRATION_SOURCE
    return prop in sent and same_crm_value(sent[prop], value)


def is_record_echo(
    properties: Mapping[str, str | None],
    sources: Mapping[str, str | None],
    sent: Mapping[str, str] | None,
) -> bool:
    """Whether a whole record is the pipeline's write: every property holding a value holds
    what was sent, and none was last set by a rep."""
    if sent is None:
        return False
    return all(
        is_echo(sources.get(prop), prop, value, sent)
        for prop, value in properties.items()
        if value is not None
    )


def flag_echo(change: ContactChange, sent: Mapping[str, str] | None) -> ContactChange:
    """``change`` with ``is_echo`` set against the payload last sent for its contact."""
    if change.kind == "record":
        echo = is_record_echo(change.properties, change.property_sources, sent)
    else:
        echo = is_echo(change.change_source, change.property_name, change.value, sent)
    return replace(change, is_echo=echo)


@dataclass(frozen=True)
class SentPayloads:
    """What the ledger says the pipeline last sent, per contact email and per CRM id."""

    by_email: Mapping[str, Mapping[str, str]]
    email_by_crm_id: Mapping[str, str]

    def email_of(self, object_id: str) -> str | None:
        return self.email_by_crm_id.get(object_id)

    def for_contact(self, object_id: str, email: str | None) -> Mapping[str, str] | None:
        """The payload last sent for the contact with this email or CRM id, None if none was."""
        for key in ((email or "").lower(), self.email_by_crm_id.get(object_id, "")):
            if key in self.by_email:
                return self.by_email[key]
        return None


# The poll ---------------------------------------------------------------------------------


def window_start(high_water_mark_ms: int | None, overlap_ms: int = DEFAULT_OVERLAP_MS) -> int:
    """Where the next poll starts: the high-water mark minus the overlap (0 for the first)."""
    if overlap_ms < 0:
        raise ValueError(f"the poll overlap must not be negative, got {overlap_ms} ms")
    if high_water_mark_ms is None:
        return 0
    return max(0, high_water_mark_ms - overlap_ms)


@dataclass(frozen=True)
class ContactVersion:
    """A contact as one search result showed it: its id, last-modified time and properties."""

    object_id: str
    last_modified_ms: int
    properties: Mapping[str, str | None]
    created: str | None = None

    @property
    def key(self) -> VersionKey:
        return (self.object_id, self.last_modified_ms)

    @property
    def email(self) -> str | None:
        return self.properties.get("email")


def contact_version(record: Mapping[str, Any], tracked: Sequence[str]) -> ContactVersion:
    """The version a search result shows; ValueError when it has no id or lastmodifieddate."""
    properties = record.get("properties") or {}
    modified = epoch_ms(properties.get(LAST_MODIFIED))
    if not record.get("id") or modified is None:
        raise ValueError(
            f"search result {record.get('id')!r}: expected an id and a {LAST_MODIFIED}, got "
            f"{properties.get(LAST_MODIFIED)!r}"
        )
    return ContactVersion(
        object_id=str(record["id"]),
        last_modified_ms=modified,
        properties={prop: properties.get(prop) or None for prop in tracked},
        created=properties.get(CREATED) or None,
    )


def dedupe_versions(versions: Iterable[ContactVersion]) -> list[ContactVersion]:
    """One version per (object id, lastmodifieddate), oldest change first."""
    unique: dict[VersionKey, ContactVersion] = {}
    for version in versions:
        unique.setdefault(version.key, version)
    return sorted(unique.values(), key=lambda v: (v.last_modified_ms, v.object_id.zfill(20)))


@dataclass(frozen=True)
class SearchWindow:
    """Contacts modified from ``start_ms`` to ``end_ms`` (both included), ascending.

    With ``tie_after_id`` set, only those modified at exactly ``start_ms`` with a larger
    record id, ascending by id: how a window goes on when more records than one search can
    page through share a single millisecond.
    """

    start_ms: int
    end_ms: int
    tie_after_id: int | None = None

    def filter_groups(self) -> list[dict[str, Any]]:
        if self.tie_after_id is None:
            filters = [
                {"propertyName": LAST_MODIFIED, "operator": "GTE", "value": str(self.start_ms)},
                {"propertyName": LAST_MODIFIED, "operator": "LTE", "value": str(self.end_ms)},
            ]
        else:
            filters = [
                {"propertyName": LAST_MODIFIED, "operator": "EQ", "value": str(self.start_ms)},
                {"propertyName": OBJECT_ID, "operator": "GT", "value": str(self.tie_after_id)},
            ]
        return [{"filters": filters}]

    def sorts(self) -> list[dict[str, str]]:
        by = LAST_MODIFIED if self.tie_after_id is None else OBJECT_ID
        return [{"propertyName": by, "direction": "ASCENDING"}]


def next_window(
    window: SearchWindow, last: ContactVersion | None, complete: bool
) -> SearchWindow | None:
    """The search that continues ``window`` after its last result ``last``; None when done.

    ``complete`` says the window was read to its end. Otherwise (the result cap was reached,
    or offsets shifted) the next window starts again at the last timestamp seen; records at
    that timestamp are read again and deduplicated. When that would not move forward (every
    result so far shares the window's first millisecond), it pages that millisecond by id.
    """
    if complete or last is None:
        if window.tie_after_id is None or window.start_ms >= window.end_ms:
            return None
        return SearchWindow(window.start_ms + 1, window.end_ms)
    if window.tie_after_id is None and last.last_modified_ms > window.start_ms:
        return SearchWindow(last.last_modified_ms, window.end_ms)
    return SearchWindow(window.start_ms, window.end_ms, tie_after_id=int(last.object_id))


def window_complete(page: SearchPage, read: int, window_total: int, max_results: int) -> bool:
    """Whether a window was read to its end, judged after ``page``; ``read`` results so far."""
    if page.total != window_total:
        return False  # records entered or left the window while it was paged
    if read >= max_results:
        return window_total <= read
    return page.next_after is None


@dataclass
class PollOutcome:
    """What one poll's searches found."""

    start_ms: int
    end_ms: int
    versions: list[ContactVersion] = field(default_factory=list)
    searches: int = 0
    windows: int = 0


def search_contact_versions(
    client: HubSpotClient,
    tracked: Sequence[str],
    start_ms: int,
    end_ms: int,
    *,
    page_size: int = SEARCH_PAGE_LIMIT,
    max_results: int = SEARCH_RESULT_CAP,
) -> PollOutcome:
    """Every contact version modified from ``start_ms`` to ``end_ms``, deduplicated.

    ``max_results`` is how far one search may page (HubSpot's cap); past it, the search is
    started again from the last timestamp seen.
    """
    properties = [*tracked, LAST_MODIFIED, CREATED]
    outcome = PollOutcome(start_ms, end_ms)
    found: list[ContactVersion] = []
    window: SearchWindow | None = SearchWindow(start_ms, end_ms)
    while window is not None:
        outcome.windows += 1
        read, after, total, last = 0, None, None, None
        while True:
            page = client.search(
                "contacts",
                filter_groups=window.filter_groups(),
                sorts=window.sorts(),
                properties=properties,
                limit=min(page_size, max_results - read),
                after=after,
            )
            outcome.searches += 1
            versions = [contact_version(record, tracked) for record in page.results]
            found.extend(versions)
            read += len(versions)
            last = versions[-1] if versions else last
            total = page.total if total is None else total
            complete = window_complete(page, read, total, max_results)
            if complete or page.total != total or read >= max_results:
                break
            after = page.next_after
        window = next_window(window, last, complete)
    outcome.versions = dedupe_versions(found)
    return outcome


# The snapshot -----------------------------------------------------------------------------


@dataclass
class SnapshotContact:
    """A contact's current state in ``gtm.crm_contacts``.

    ``changed_at`` holds, per property, the epoch millis of the change that set its value.
    """

    object_id: str
    email: str | None
    properties: dict[str, str]
    changed_at: dict[str, int]
    last_modified_ms: int | None
    first_seen_at: datetime
    last_seen_at: datetime
    last_change_source: str | None = None
    last_change_ms: int | None = None

    @classmethod
    def first_seen(cls, object_id: str, seen_at: datetime) -> SnapshotContact:
        return cls(object_id, None, {}, {}, None, seen_at, seen_at)

    def copy(self) -> SnapshotContact:
        return replace(self, properties=dict(self.properties), changed_at=dict(self.changed_at))


def _set_property(contact: SnapshotContact, prop: str, value: str | None, at_ms: int) -> None:
    if at_ms < contact.changed_at.get(prop, -1):
        return  # the snapshot already holds a newer value
    contact.changed_at[prop] = at_ms
    if value is None:
        contact.properties.pop(prop, None)
    else:
        contact.properties[prop] = value
    if prop == "email" and value:
        contact.email = value.lower()


def apply_change(
    contact: SnapshotContact | None,
    change: ContactChange,
    tracked: Iterable[str],
    seen_at: datetime,
) -> SnapshotContact:
    """``contact`` (a new one if None) with ``change`` applied, and returned.

    Only tracked properties are held. A value older than the one held is left out; an echo
    leaves ``last_change_source`` at the last change made on the CRM side.
    """
    contact = contact or SnapshotContact.first_seen(change.object_id, seen_at)
    held = set(tracked)
    if change.kind == "property" and change.property_name in held:
        _set_property(contact, change.property_name, change.value, change.changed_at_ms)
    elif change.kind == "record":
        for prop, value in change.properties.items():
            if prop in held:
                _set_property(contact, prop, value, change.changed_at_ms)
    if contact.email is None and change.email:
        contact.email = change.email.lower()
    contact.last_modified_ms = max(contact.last_modified_ms or 0, change.changed_at_ms)
    contact.last_seen_at = seen_at
    newer = contact.last_change_ms is None or change.changed_at_ms >= contact.last_change_ms
    if not change.is_echo and change.change_source and newer:
        contact.last_change_source = change.change_source
        contact.last_change_ms = change.changed_at_ms
    return contact


def observe_version(
    contact: SnapshotContact, version: ContactVersion, seen_at: datetime
) -> SnapshotContact:
    """``contact`` marked as seen in ``version``: last modified, creation time, last seen."""
    contact.last_modified_ms = max(contact.last_modified_ms or 0, version.last_modified_ms)
    if version.created:
        contact.properties[CREATED] = version.created
    if contact.email is None and version.email:
        contact.email = version.email.lower()
    contact.last_seen_at = seen_at
    return contact


def version_changes(
    version: ContactVersion, known: SnapshotContact | None, tracked: Sequence[str]
) -> list[ContactChange]:
    """What ``version`` shows changed since the snapshot ``known`` (None: never seen).

    A contact never seen is one ``record`` change holding every tracked property; a known
    one gives a ``property`` change per tracked property whose value differs, unless the
    snapshot's value is newer than the version.
    """
    key = f"{version.object_id}:{version.last_modified_ms}"
    common: dict[str, Any] = {
        "feed": "poll",
        "object_id": version.object_id,
        "changed_at_ms": version.last_modified_ms,
        "email": version.email,
    }
    if known is None:
        return [
            ContactChange(
                kind="record",
                dedupe_key=key,
                properties={prop: version.properties.get(prop) for prop in tracked},
                **common,
            )
        ]
    return [
        ContactChange(
            kind="property",
            dedupe_key=f"{key}:{prop}",
            property_name=prop,
            value=version.properties.get(prop),
            **common,
        )
        for prop in tracked
        if version.properties.get(prop) != known.properties.get(prop)
        and version.last_modified_ms >= known.changed_at.get(prop, -1)
    ]


def _history_entry_at(
    history: Sequence[Mapping[str, Any]], at_ms: int
) -> tuple[Mapping[str, Any], int] | None:
    """The newest history entry (HubSpot lists newest first) made at or before ``at_ms``."""
    for entry in history:
        stamp = epoch_ms(entry.get("timestamp"))
        if stamp is not None and stamp <= at_ms:
            return entry, stamp
    return None


def attribute_change(
    change: ContactChange, history: Mapping[str, Sequence[Mapping[str, Any]]]
) -> ContactChange:
    """``change`` with who made it (``sourceType``) and when, from the contact's property
    ``history`` (property -> entries, newest first). A whole record gets each property's
    source, and the newest of them as its own."""
    if change.kind == "record":
        sources: dict[str, str | None] = {}
        newest: tuple[int, str | None] | None = None
        for prop in change.properties:
            found = _history_entry_at(history.get(prop, ()), change.changed_at_ms)
            if found is None:
                continue
            entry, stamp = found
            sources[prop] = entry.get("sourceType")
            if newest is None or stamp > newest[0]:
                newest = (stamp, entry.get("sourceType"))
        return replace(
            change,
            property_sources=sources,
            change_source=newest[1] if newest else change.change_source,
        )
    if change.property_name is None:
        return change  # a creation: no property history tells more
    found = _history_entry_at(history.get(change.property_name, ()), change.changed_at_ms)
    if found is None:
        return change
    entry, stamp = found
    if (entry.get("value") or None) != change.value:
        return change  # the history moved on; its newest entry is not this change
    return replace(change, change_source=entry.get("sourceType"), changed_at_ms=stamp)


# The warehouse ----------------------------------------------------------------------------


@contextmanager
def _transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    con.begin()
    try:
        yield
    except BaseException:
        con.rollback()
        raise
    con.commit()


def load_snapshot(
    con: duckdb.DuckDBPyConnection, object_ids: Iterable[str]
) -> dict[str, SnapshotContact]:
    """The snapshot rows of ``object_ids`` that exist, by id."""
    ids = sorted(set(object_ids))
    if not ids:
        return {}
    rows = con.execute(
        "SELECT object_id, email, properties, property_changed_at, epoch_ms(last_modified), "
        "first_seen_at, last_seen_at, last_change_source, epoch_ms(last_change_at) "
        "FROM gtm.crm_contacts WHERE object_id IN (SELECT unnest(?::VARCHAR[]))",
        [ids],
    ).fetchall()
    return {
        row[0]: SnapshotContact(
            object_id=row[0],
            email=row[1],
            properties=json.loads(row[2]),
            changed_at=json.loads(row[3]),
            last_modified_ms=row[4],
            first_seen_at=row[5],
            last_seen_at=row[6],
            last_change_source=row[7],
            last_change_ms=row[8],
        )
        for row in rows
    }


def save_snapshot(con: duckdb.DuckDBPyConnection, contacts: Iterable[SnapshotContact]) -> None:
    """Write ``contacts`` to ``gtm.crm_contacts``, replacing their rows."""
    values = [
        [
            c.object_id,
            c.email,
            json.dumps(c.properties, sort_keys=True),
            json.dumps(c.changed_at, sort_keys=True),
            moment_of(c.last_modified_ms) if c.last_modified_ms is not None else None,
            c.first_seen_at,
            c.last_seen_at,
            c.last_change_source,
            moment_of(c.last_change_ms) if c.last_change_ms is not None else None,
        ]
        for c in contacts
    ]
    if values:
        con.executemany(
            "INSERT OR REPLACE INTO gtm.crm_contacts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", values
        )


def load_sent_payloads(
    con: duckdb.DuckDBPyConnection, object_ids: Iterable[str], emails: Iterable[str | None]
) -> SentPayloads:
    """The ledger's last-sent contact payloads for these CRM ids or emails."""
    ids = sorted(set(object_ids))
    keys = sorted({e.lower() for e in emails if e})
    if not ids and not keys:
        return SentPayloads({}, {})
    rows = con.execute(
        "SELECT record_key, crm_id, payload FROM gtm.sync_ledger "
        "WHERE destination = 'hubspot' AND object_type = 'contacts' "
        "AND (crm_id IN (SELECT unnest(?::VARCHAR[])) "
        "OR record_key IN (SELECT unnest(?::VARCHAR[])))",
        [ids, keys],
    ).fetchall()
    return SentPayloads(
        by_email={key.lower(): json.loads(payload) for key, _, payload in rows},
        email_by_crm_id={crm_id: key.lower() for key, crm_id, _ in rows if crm_id},
    )


def recorded_keys(con: duckdb.DuckDBPyConnection, keys: Iterable[str]) -> set[str]:
    """Those of ``keys`` already in ``raw.crm_contact_changes``."""
    wanted = sorted(set(keys))
    if not wanted:
        return set()
    rows = con.execute(
        "SELECT dedupe_key FROM raw.crm_contact_changes "
        "WHERE dedupe_key IN (SELECT unnest(?::VARCHAR[]))",
        [wanted],
    ).fetchall()
    return {key for (key,) in rows}


def record_changes(
    con: duckdb.DuckDBPyConnection,
    changes: Sequence[ContactChange],
    loaded_at: datetime,
    run_id: str | None,
) -> None:
    """Append ``changes`` to ``raw.crm_contact_changes``."""
    if not changes:
        return
    con.executemany(
        """INSERT INTO raw.crm_contact_changes
           (feed, change_type, object_id, email, property, value, changed_at, change_source,
            is_echo, event_id, dedupe_key, landed_file, loaded_at, run_id)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [
            [
                c.feed,
                c.kind,
                c.object_id,
                c.email,
                c.property_name,
                c.row_value,
                moment_of(c.changed_at_ms),
                c.change_source,
                c.is_echo,
                c.event_id,
                c.dedupe_key,
                c.landed_file,
                loaded_at,
                run_id,
            ]
            for c in changes
        ],
    )


def read_high_water_mark(con: duckdb.DuckDBPyConnection, stream: str = POLL_STREAM) -> int | None:
    """The newest lastmodifieddate (epoch millis) a stream has seen, None before its first."""
    row = con.execute(
        "SELECT high_water_mark FROM gtm.cdc_cursors WHERE stream = ?", [stream]
    ).fetchone()
    return int(row[0]) if row else None


def save_high_water_mark(
    con: duckdb.DuckDBPyConnection, mark_ms: int, stream: str = POLL_STREAM
) -> None:
    """Store ``mark_ms`` as the stream's high-water mark."""
    con.execute(
        "INSERT OR REPLACE INTO gtm.cdc_cursors VALUES (?, ?, ?)",
        [stream, mark_ms, datetime.now(UTC)],
    )


def snapshot_size(con: duckdb.DuckDBPyConnection) -> int:
    """Contacts in the snapshot."""
    (count,) = con.execute("SELECT count(*) FROM gtm.crm_contacts").fetchone() or (0,)
    return int(count)


# Capture ----------------------------------------------------------------------------------


@dataclass
class CaptureSummary:
    """What one capture did, for run metadata."""

    changes: dict[str, int] = field(default_factory=lambda: {"webhook": 0, "poll": 0})
    echoes: int = 0
    batches_ingested: int = 0
    batches_rejected: int = 0
    events_read: int = 0
    events_skipped: int = 0  # other subscription types, or delivered before
    events_rejected: int = 0
    versions_seen: int = 0
    searches: int = 0
    search_windows: int = 0
    history_reads: int = 0
    window_start_ms: int | None = None
    window_end_ms: int | None = None
    contacts: int = 0  # in the snapshot afterwards
    problems: list[str] = field(default_factory=list)

    def count(self, changes: Iterable[ContactChange]) -> None:
        for change in changes:
            if change.is_echo:
                self.echoes += 1
            else:
                self.changes[change.feed] += 1


def _apply_all(
    changes: Sequence[ContactChange],
    snapshot: dict[str, SnapshotContact],
    tracked: Sequence[str],
    seen_at: datetime,
) -> None:
    for change in sorted(changes, key=lambda c: c.changed_at_ms):
        snapshot[change.object_id] = apply_change(
            snapshot.get(change.object_id), change, tracked, seen_at
        )


def hubspot_webhook_batches(
    landing_dir: str | os.PathLike[str], since_day: str | None = None
) -> list[UPath]:
    """The HubSpot batch files under ``landing_dir/webhooks/hubspot``, oldest first."""
    return [
        stored.path
        for stored in list_webhook_batches(landing_dir, since_day=since_day)
        if stored.folder[:-1] == (WEBHOOK_CHANNEL,)
    ]


def _batches_to_ingest(
    con: duckdb.DuckDBPyConnection, landing_dir: str | os.PathLike[str]
) -> list[UPath]:
    """Batch files not in the ingestion log, looking from the day before the newest logged.

    The receiver names and files a batch by the moment it opened and lands it within
    seconds, so older day folders hold nothing new.
    """
    (newest,) = con.execute(
        "SELECT max(partition_date) FROM raw.file_ingestions WHERE source = ?",
        [WEBHOOK_INGESTION_SOURCE],
    ).fetchone() or (None,)
    since_day = None if newest is None else str(newest - timedelta(days=1))
    batches = hubspot_webhook_batches(landing_dir, since_day)
    logged = {
        name
        for (name,) in con.execute(
            "SELECT file_name FROM raw.file_ingestions WHERE source = ? AND partition_date >= ?",
            [WEBHOOK_INGESTION_SOURCE, date.fromisoformat(since_day or "1970-01-01")],
        ).fetchall()
    }
    return [path for path in batches if path.name not in logged]


def ingest_webhook_batches(
    con: duckdb.DuckDBPyConnection,
    landing_dir: str | os.PathLike[str],
    tracked: Sequence[str],
    *,
    mapping_version: int,
    run_id: str | None = None,
    summary: CaptureSummary | None = None,
) -> CaptureSummary:
    """Record and apply the contact changes of every HubSpot batch file not ingested yet.

    ``landing_dir`` is the landing zone (``$GTM_DATA_DIR/landing``). Each batch is applied
    and logged in one transaction, so a batch is ingested whole, once; an event already
    recorded (delivered again in a later batch) is skipped.
    """
    summary = summary or CaptureSummary()
    for path in _batches_to_ingest(con, landing_dir):
        started = datetime.now(UTC)
        try:
            lines = read_webhook_batch(path)
        except (OSError, WebhookBatchError) as error:
            summary.batches_rejected += 1
            summary.problems.append(str(error))
            with _transaction(con):
                _log_batch(
                    con, path, started, "rejected", str(error), 0, 0, mapping_version, run_id
                )
            continue
        changes: list[ContactChange] = []
        rejected = 0
        for position, line in enumerate(lines, start=1):
            try:
                change = parse_webhook_event(line, str(path), position)
            except WebhookEventError as error:
                rejected += 1
                summary.problems.append(str(error))
                continue
            if change is None:
                summary.events_skipped += 1
            else:
                changes.append(change)
        with _transaction(con):
            known_keys = recorded_keys(con, (c.dedupe_key for c in changes))
            fresh = list(
                {c.dedupe_key: c for c in changes if c.dedupe_key not in known_keys}.values()
            )
            summary.events_skipped += len(changes) - len(fresh)
            ids = {c.object_id for c in fresh}
            snapshot = load_snapshot(con, ids)
            emails = [c.value for c in fresh if c.property_name == "email"]
            emails += [s.email for s in snapshot.values()]
            sent = load_sent_payloads(con, ids, emails)
            flagged = []
            for change in fresh:
                known = snapshot.get(change.object_id)
                email = (
                    (change.value if change.property_name == "email" else None)
                    or (known.email if known else None)
                    or sent.email_of(change.object_id)
                )
                change = replace(change, email=email)
                flagged.append(flag_echo(change, sent.for_contact(change.object_id, email)))
            loaded_at = datetime.now(UTC)
            _apply_all(flagged, snapshot, tracked, loaded_at)
            save_snapshot(con, snapshot.values())
            record_changes(con, flagged, loaded_at, run_id)
            _log_batch(
                con, path, started, "ingested", None, len(lines), rejected, mapping_version, run_id
            )
        summary.count(flagged)
        summary.batches_ingested += 1
        summary.events_read += len(lines)
        summary.events_rejected += rejected
    return summary


def _log_batch(
    con: duckdb.DuckDBPyConnection,
    path: UPath,
    started: datetime,
    status: str,
    error: str | None,
    events: int,
    rejected: int,
    mapping_version: int,
    run_id: str | None,
) -> None:
    try:
        content = path.read_bytes()
        modified_at = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
    except OSError:
        content, modified_at = b"", started
    con.execute(
        """INSERT INTO raw.file_ingestions
           (source, file_path, file_name, sha256, size_bytes, status, error, rows_total,
            rows_accepted, rows_rejected, mapping_version, partition_date, file_modified_at,
            started_at, finished_at, run_id)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [
            WEBHOOK_INGESTION_SOURCE,
            str(path),
            path.name,
            hashlib.sha256(content).hexdigest(),
            len(content),
            status,
            error,
            events,
            events - rejected,
            rejected,
            mapping_version,
            date.fromisoformat(path.parent.name),
            modified_at,
            started,
            datetime.now(UTC),
            run_id,
        ],
    )


def _read_histories(
    client: HubSpotClient, changes: Sequence[ContactChange], tracked: Sequence[str]
) -> tuple[dict[str, dict[str, list[dict[str, Any]]]], int]:
    """Property histories of the contacts ``changes`` touch, 100 contacts a request."""
    wanted: dict[str, set[str]] = {}
    for change in changes:
        props = wanted.setdefault(change.object_id, set())
        props.update([change.property_name] if change.property_name else tracked)
    ids = sorted(wanted)
    histories: dict[str, dict[str, list[dict[str, Any]]]] = {}
    requests = 0
    for start in range(0, len(ids), BATCH_LIMIT):
        chunk = ids[start : start + BATCH_LIMIT]
        names = sorted(set().union(*(wanted[i] for i in chunk)))
        result = client.batch_read("contacts", chunk, properties_with_history=names)
        requests += 1
        for record in result.results:
            histories[str(record["id"])] = record.get("propertiesWithHistory") or {}
    return histories, requests


def apply_polled_versions(
    client: HubSpotClient,
    con: duckdb.DuckDBPyConnection,
    outcome: PollOutcome,
    tracked: Sequence[str],
    *,
    run_id: str | None = None,
    summary: CaptureSummary | None = None,
) -> CaptureSummary:
    """Record the changes the polled versions show, apply them and advance the cursor.

    Versions are compared with the snapshot in modification order; the property history of
    the contacts that changed tells who changed what. All of it is written in one
    transaction with the new high-water mark.
    """
    summary = summary or CaptureSummary()
    versions = outcome.versions
    snapshot = load_snapshot(con, (v.object_id for v in versions))
    working = {object_id: contact.copy() for object_id, contact in snapshot.items()}
    seen_at = datetime.now(UTC)
    pending: list[ContactChange] = []
    for version in versions:
        found = version_changes(version, working.get(version.object_id), tracked)
        for change in found:
            working[version.object_id] = apply_change(
                working.get(version.object_id), change, tracked, seen_at
            )
        pending.extend(found)
    histories, reads = _read_histories(client, pending, tracked)
    summary.history_reads += reads
    sent = load_sent_payloads(
        con,
        (c.object_id for c in pending),
        [c.email for c in pending] + [s.email for s in snapshot.values()],
    )
    flagged = []
    for change in pending:
        change = attribute_change(change, histories.get(change.object_id, {}))
        email = change.email or working[change.object_id].email
        change = replace(change, email=email)
        flagged.append(flag_echo(change, sent.for_contact(change.object_id, email)))
    with _transaction(con):
        # A snapshot row rebuilt or removed by hand must not make a version count twice.
        known_keys = recorded_keys(con, (c.dedupe_key for c in flagged))
        fresh = [c for c in flagged if c.dedupe_key not in known_keys]
        _apply_all(fresh, snapshot, tracked, seen_at)
        for version in versions:
            contact = snapshot.get(version.object_id) or SnapshotContact.first_seen(
                version.object_id, seen_at
            )
            snapshot[version.object_id] = observe_version(contact, version, seen_at)
        save_snapshot(con, snapshot.values())
        record_changes(con, fresh, seen_at, run_id)
        if versions:
            newest = max(v.last_modified_ms for v in versions)
            mark = read_high_water_mark(con)
            save_high_water_mark(con, max(newest, mark or 0))
    summary.count(fresh)
    summary.versions_seen += len(versions)
    return summary


def capture_contact_changes(
    connect: Connect,
    client: HubSpotClient,
    landing_dir: str | os.PathLike[str],
    tracked: Sequence[str],
    *,
    mapping_version: int,
    overlap_ms: int = DEFAULT_OVERLAP_MS,
    run_id: str | None = None,
    page_size: int = SEARCH_PAGE_LIMIT,
    max_results: int = SEARCH_RESULT_CAP,
) -> CaptureSummary:
    """Ingest new webhook batches, then poll contacts modified since the high-water mark.

    ``connect`` opens a warehouse connection; the warehouse is not held while the poll
    pages through the CRM. Webhooks go first, so the poll does not count again a change a
    webhook already reported.
    """
    summary = CaptureSummary()
    with connect() as con:
        ingest_webhook_batches(
            con,
            landing_dir,
            tracked,
            mapping_version=mapping_version,
            run_id=run_id,
            summary=summary,
        )
        start_ms = window_start(read_high_water_mark(con), overlap_ms)
    # The window ends when the poll starts, so paging ends even while contacts keep changing;
    # a CRM clock ahead of ours only delays what it stamped later than our now.
    end_ms = max(start_ms, now_ms())
    outcome = search_contact_versions(
        client, tracked, start_ms, end_ms, page_size=page_size, max_results=max_results
    )
    summary.searches += outcome.searches
    summary.search_windows += outcome.windows
    summary.window_start_ms, summary.window_end_ms = outcome.start_ms, outcome.end_ms
    with connect() as con:
        apply_polled_versions(client, con, outcome, tracked, run_id=run_id, summary=summary)
        summary.contacts = snapshot_size(con)
    return summary
