"""Durable landing of webhook events, committed in groups, and the store that dedupes them.

In storage (``GTM_STORAGE_URL``: the data folder by default, or an object store):

    landing/webhooks/<channel>/<YYYY-MM-DD>/<batch>.jsonl   one file per channel per commit
    receiver/spool/                                         files being written (local only)

and on the receiver's own disk, under the data folder:

    receiver/events.sqlite3                                 landed event ids (SQLite, WAL)

``<channel>`` is ``hubspot``, ``forms/<source>`` or ``engagement/<provider>``; ``<YYYY-MM-DD>``
is the UTC day the batch's first event was received; ``<batch>`` is
``20261126T210102.123456Z-<uuid4 hex>``: that moment, then a random part, so names sort by time
and never collide. Each line is one event::

    {"event_id": "...", "channel": "forms/leads", "source": "leads",
     "received_at": "2026-11-26T21:01:02.123456+00:00", "payload": {...}}

A commit writes each channel's file in the spool (same filesystem), flushes and fsyncs it,
renames it into the landing zone, fsyncs that directory and then records the event ids in the
store; only then are the waiting requests answered. So a reader of the landing zone only ever
sees whole files, and an acknowledged event is on disk. On an object store the file is one
PUT instead, which the store makes visible only once complete and durable; there is no spool.

Crash windows: a crash before the rename leaves a spool file whose requests were never
acknowledged; the spool is emptied at start and the senders deliver again. A crash after the
rename and before the ids are recorded leaves a landed file the store does not know; at start
every landed file the store does not know is read back into it (from the day before the newest
file it knows, or everything when the store is new), so redeliveries of those events are still
answered as duplicates. The same rebuilds the store of a receiver started on a new disk
beside an object store that already holds batches.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sqlite3
import threading
import uuid
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from upath import UPath

from gtm_orchestration.lib.storage import (
    StoredFile,
    as_upath,
    create_durable_folder,
    is_local,
    sync_folder,
    walk_files,
    write_atomically,
)

logger = logging.getLogger(__name__)

WEBHOOK_LANDING_SUBDIR = Path("landing") / "webhooks"
SPOOL_SUBDIR = Path("receiver") / "spool"
DEDUPE_STORE_SUBPATH = Path("receiver") / "events.sqlite3"
BATCH_SUFFIX = ".jsonl"
BATCH_LINE_FIELDS = ("event_id", "channel", "source", "received_at", "payload")
_DAY_FOLDER = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# SQLite allows 32766 bound variables; look-ups go in chunks well under that.
_LOOKUP_CHUNK = 500

EventKey = tuple[str, str]
"""``(channel, event_id)``: event ids are unique within a channel, not across channels."""


class LandingOutcome(StrEnum):
    """What became of one delivered event."""

    LANDED = "landed"
    DUPLICATE = "duplicate"


class LandingUnavailable(RuntimeError):
    """The events could not be made durable (disk error, shutting down); senders should retry."""


class WebhookBatchError(ValueError):
    """A landed batch file that is not what the receiver writes."""


@dataclass(frozen=True)
class WebhookEvent:
    """One event as delivered: its channel, source, id and the JSON object sent."""

    channel: str
    source: str
    event_id: str
    payload: Any

    @property
    def key(self) -> EventKey:
        return (self.channel, self.event_id)


@dataclass(frozen=True)
class LandedBatch:
    """A batch file in the landing zone and the events in it."""

    path: UPath
    channel: str
    keys: tuple[EventKey, ...]

    @property
    def day(self) -> str:
        return self.path.parent.name


def webhook_landing_dir(storage_root: str | os.PathLike[str]) -> UPath:
    """``<storage>/landing/webhooks`` (``$GTM_DATA_DIR/landing/webhooks`` by default): where
    batch files land."""
    return as_upath(storage_root).joinpath(*WEBHOOK_LANDING_SUBDIR.parts)


def list_webhook_batches(
    landing_dir: str | os.PathLike[str], *, since_day: str | None = None
) -> list[StoredFile]:
    """Every batch file under ``landing_dir/webhooks`` (``landing_dir`` is the landing zone,
    ``<storage>/landing``) with its size and modification time, oldest first by batch name;
    ``since_day`` (``YYYY-MM-DD``) skips the day folders before it. A file's ``folder`` is its
    channel's folders and then its day folder."""

    def keep_folder(folders: tuple[str, ...]) -> bool:
        if any(_DAY_FOLDER.fullmatch(name) for name in folders[:-1]):
            return False  # nothing below a day folder is a batch
        day = folders[-1]
        return since_day is None or not _DAY_FOLDER.fullmatch(day) or day >= since_day

    found = walk_files(as_upath(landing_dir) / "webhooks", keep_folder=keep_folder)
    batches = [
        stored
        for stored in found
        if stored.folder
        and _DAY_FOLDER.fullmatch(stored.folder[-1])
        and stored.path.name.endswith(BATCH_SUFFIX)
    ]
    return sorted(batches, key=lambda stored: (stored.path.name, str(stored.path)))


def scan_webhook_batches(
    landing_dir: str | os.PathLike[str], *, since_day: str | None = None
) -> list[UPath]:
    """The paths of ``list_webhook_batches``, oldest first by batch name."""
    return [stored.path for stored in list_webhook_batches(landing_dir, since_day=since_day)]


def read_webhook_batch(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The events of one batch file, in the order they were received.

    Raises ``WebhookBatchError`` naming the file and line when a line is not a landed event.
    """
    path = as_upath(path)
    events: list[dict[str, Any]] = []
    with path.open("rb") as batch:
        for number, line in enumerate(batch, start=1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError as error:
                raise WebhookBatchError(f"{path}: line {number} is not JSON ({error})") from error
            if not isinstance(event, dict) or any(key not in event for key in BATCH_LINE_FIELDS):
                raise WebhookBatchError(
                    f"{path}: line {number}: expected an object with the fields "
                    f"{', '.join(BATCH_LINE_FIELDS)}"
                )
            events.append(event)
    return events


def batch_file_name(opened_at: datetime) -> str:
    """A unique batch file name that sorts by ``opened_at`` (UTC)."""
    return f"{opened_at.astimezone(UTC):%Y%m%dT%H%M%S.%fZ}-{uuid.uuid4().hex}{BATCH_SUFFIX}"


def write_batch_file(
    webhooks_dir: str | os.PathLike[str],
    spool_dir: str | os.PathLike[str],
    channel: str,
    opened_at: datetime,
    events: Sequence[dict[str, Any]],
) -> LandedBatch:
    """Write ``events`` as one JSONL batch into ``webhooks_dir/<channel>/<day>/``, whole or
    not at all (``write_atomically``: locally through the spool, fsynced and renamed; on an
    object store one PUT). Locally the caller fsyncs the day folder (``sync_folder``)."""
    name = batch_file_name(opened_at)
    target = as_upath(webhooks_dir).joinpath(
        *channel.split("/"), f"{opened_at.astimezone(UTC):%Y-%m-%d}", name
    )
    content = b"".join(
        json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        for event in events
    )
    write_atomically(target, content, staging_dir=spool_dir)
    keys = tuple((channel, str(event["event_id"])) for event in events)
    return LandedBatch(path=target, channel=channel, keys=keys)


_STORE_SCHEMA = """
CREATE TABLE IF NOT EXISTS landed_batches (
    file TEXT PRIMARY KEY,          -- batch file name, unique across channels
    channel TEXT NOT NULL,
    day TEXT NOT NULL,              -- the day folder, YYYY-MM-DD
    events INTEGER NOT NULL,
    recorded_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS landed_batches_by_day ON landed_batches (day);
CREATE TABLE IF NOT EXISTS landed_events (
    channel TEXT NOT NULL,
    event_id TEXT NOT NULL,
    file TEXT NOT NULL,             -- the batch file that holds the event
    PRIMARY KEY (channel, event_id)
) WITHOUT ROWID;
"""


class DedupeStore:
    """The ids of landed events and the batch files holding them, in SQLite; thread-safe."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # The ids of an acknowledged batch must survive a power cut as the batch file does.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_STORE_SCHEMA)

    def landed(self, keys: Iterable[EventKey]) -> set[EventKey]:
        """Those of ``keys`` already landed."""
        by_channel: dict[str, list[str]] = {}
        for channel, event_id in set(keys):
            by_channel.setdefault(channel, []).append(event_id)
        found: set[EventKey] = set()
        with self._lock:
            for channel, event_ids in by_channel.items():
                for start in range(0, len(event_ids), _LOOKUP_CHUNK):
                    chunk = event_ids[start : start + _LOOKUP_CHUNK]
                    rows = self._db.execute(
                        "SELECT event_id FROM landed_events WHERE channel = ? AND event_id IN "
                        f"({', '.join('?' * len(chunk))})",
                        (channel, *chunk),
                    )
                    found.update((channel, event_id) for (event_id,) in rows)
        return found

    def record(self, batches: Sequence[LandedBatch]) -> None:
        """Record ``batches`` and their event ids in one transaction."""
        if not batches:
            return
        recorded_at = datetime.now(UTC).isoformat()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT OR IGNORE INTO landed_batches VALUES (?, ?, ?, ?, ?)",
                    [
                        (batch.path.name, batch.channel, batch.day, len(batch.keys), recorded_at)
                        for batch in batches
                    ],
                )
                self._db.executemany(
                    "INSERT OR IGNORE INTO landed_events VALUES (?, ?, ?)",
                    [
                        (channel, event_id, batch.path.name)
                        for batch in batches
                        for channel, event_id in batch.keys
                    ],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def newest_day(self) -> str | None:
        """The day folder of the newest batch recorded, or None for a new store."""
        with self._lock:
            (day,) = self._db.execute("SELECT max(day) FROM landed_batches").fetchone()
        return day

    def batch_files(self, since_day: str | None = None) -> set[str]:
        """Names of the batch files recorded, from ``since_day`` on (all when None)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT file FROM landed_batches WHERE day >= ?", (since_day or "",)
            )
            return {file for (file,) in rows}

    def counts(self) -> tuple[int, int]:
        """``(batches, events)`` recorded so far."""
        with self._lock:
            batches, events = self._db.execute(
                "SELECT count(*), coalesce(sum(events), 0) FROM landed_batches"
            ).fetchone()
        return int(batches), int(events)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def record_unknown_batches(
    store: DedupeStore, landing_dir: str | os.PathLike[str]
) -> list[LandedBatch]:
    """Read into ``store`` the landed batch files it does not know, and return them.

    These are the files renamed into the landing zone by a receiver that stopped before it
    recorded their ids. Only day folders from the day before the store's newest batch on are
    looked at (all of them for a new store), so a start stays quick on a large landing zone.
    """
    newest = store.newest_day()
    since_day = None if newest is None else str(date.fromisoformat(newest) - timedelta(days=1))
    known = store.batch_files(since_day)
    recovered: list[LandedBatch] = []
    for stored in list_webhook_batches(landing_dir, since_day=since_day):
        path = stored.path
        if path.name in known:
            continue
        try:
            events = read_webhook_batch(path)
        except (OSError, WebhookBatchError) as error:
            logger.error(
                "cannot read landed batch %s, its events are not deduplicated: %s", path, error
            )
            continue
        channel = "/".join(stored.folder[:-1])
        keys = tuple((str(event["channel"]), str(event["event_id"])) for event in events)
        batch = LandedBatch(path=path, channel=channel, keys=keys)
        store.record([batch])
        recovered.append(batch)
    return recovered


@dataclass
class _ChannelBatch:
    """The events of one channel in a batch: one file, one commit outcome."""

    channel: str
    committed: asyncio.Future[None]
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Batch:
    opened_at: datetime
    channels: dict[str, _ChannelBatch] = field(default_factory=dict)
    size: int = 0


@dataclass
class _ChannelCommit:
    """What a commit did for one channel: the file it landed (if any) and the error (if any)."""

    landed: LandedBatch | None = None
    error: BaseException | None = None


class WebhookLanding:
    """Lands webhook events durably, grouping concurrent deliveries into one commit.

    ``land()`` waits until its events are on disk. Events join the open batch, which is
    committed when it holds ``max_batch_events`` or ``max_batch_age_s`` after its first event;
    one commit runs at a time, on a worker thread, while the next batch fills. Call ``start()``
    before and ``stop()`` after, on the event loop that serves the requests.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        storage_root: str | os.PathLike[str] | None = None,
        max_batch_events: int = 500,
        max_batch_age_s: float = 0.25,
    ) -> None:
        if max_batch_events < 1:
            raise ValueError(f"max_batch_events must be at least 1, got {max_batch_events}")
        if max_batch_age_s <= 0:
            raise ValueError(f"max_batch_age_s must be positive, got {max_batch_age_s}")
        self.data_dir = data_dir
        # Batches land in storage (the data folder unless given); the dedupe store stays on
        # this process's disk and is rebuilt from storage when it is lost.
        root = as_upath(storage_root if storage_root is not None else data_dir)
        self.landing_dir = root / "landing"
        self.webhooks_dir = webhook_landing_dir(root)
        self.spool_dir = root.joinpath(*SPOOL_SUBDIR.parts)
        self.max_batch_events = max_batch_events
        self.max_batch_age_s = max_batch_age_s
        self.landed_batches = 0
        self.landed_events = 0
        self.failed_commits = 0
        self._store: DedupeStore | None = None
        self._committer: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()
        self._closing = False
        self._open: _Batch | None = None
        self._sealed: deque[_Batch] = deque()
        self._waiting_events = 0
        self._last_opened_at = datetime.min.replace(tzinfo=UTC)
        # Events in a batch not yet recorded in the store, so that a second delivery of one
        # waits for the first instead of landing again.
        self._pending: dict[EventKey, asyncio.Future[None]] = {}
        # Bumped whenever ids move from _pending to the store (see _landed_in_store).
        self._recorded_commits = 0
        # Landed files whose ids the store refused; recorded again with the next commit.
        self._unrecorded: list[LandedBatch] = []

    async def start(self) -> None:
        """Empty the spool, open the store, record landed files it misses, start committing."""
        self._store = await asyncio.to_thread(self._open_store)
        self._committer = asyncio.create_task(self._commit_batches(), name="webhook-committer")

    async def stop(self) -> None:
        """Commit what is waiting, refuse new events, close the store."""
        if self._committer is None or self._store is None:
            return
        self._closing = True
        if self._open is not None:
            self._seal(self._open)
        self._wakeup.set()
        await self._committer
        store, self._store, self._committer = self._store, None, None
        if self._unrecorded:
            await asyncio.to_thread(self._record_quietly, store, self._unrecorded)
        await asyncio.to_thread(store.close)

    def health(self) -> dict[str, int]:
        """Counts for ``/healthz``; reads memory only, so it answers during a commit."""
        return {
            "pending_events": self._waiting_events,
            "landed_batches": self.landed_batches,
            "landed_events": self.landed_events,
            "failed_commits": self.failed_commits,
        }

    async def land(self, events: Sequence[WebhookEvent]) -> list[LandingOutcome]:
        """Land ``events`` and return, for each, whether it landed or was a duplicate.

        Returns once every event is on disk, whether in a new batch or (for a duplicate still
        waiting in a batch) in the earlier delivery's. Raises ``LandingUnavailable`` when a
        commit failed or the receiver is stopping; then nothing is acknowledged.
        """
        store = self._store
        if store is None or self._closing:
            raise LandingUnavailable("the receiver is not accepting events")
        landed = await self._landed_in_store(store, events)
        # No await from here until every new event has joined a batch, so two deliveries of
        # one event cannot both find it new.
        if self._closing:
            raise LandingUnavailable("the receiver is shutting down")
        received_at = datetime.now(UTC)
        outcomes: list[LandingOutcome] = []
        waits: set[asyncio.Future[None]] = set()
        for event in events:
            if event.key in landed:
                outcomes.append(LandingOutcome.DUPLICATE)
            elif (earlier := self._pending.get(event.key)) is not None:
                outcomes.append(LandingOutcome.DUPLICATE)
                waits.add(earlier)
            else:
                committed = self._join(event, received_at)
                self._pending[event.key] = committed
                outcomes.append(LandingOutcome.LANDED)
                waits.add(committed)
        if waits:
            # asyncio.wait, unlike gather, never cancels the shared futures if this request is.
            await asyncio.wait(waits)
        for committed in waits:
            error = committed.exception()
            if error is not None:
                raise LandingUnavailable("the events could not be landed durably") from error
        return outcomes

    def _open_store(self) -> DedupeStore:
        if is_local(self.spool_dir):  # an object store needs no spool: a PUT is atomic
            self.spool_dir.mkdir(parents=True, exist_ok=True)
            # Spool files are batches whose requests were never answered: their senders retry.
            abandoned = [entry for entry in self.spool_dir.iterdir() if entry.is_file()]
            for entry in abandoned:
                entry.unlink()
            if abandoned:
                logger.warning(
                    "removed %d unacknowledged batch files from %s", len(abandoned), self.spool_dir
                )
        create_durable_folder(self.webhooks_dir)
        store = DedupeStore(self.data_dir / DEDUPE_STORE_SUBPATH)
        recovered = record_unknown_batches(store, self.landing_dir)
        if recovered:
            logger.warning(
                "recorded %d landed batches the dedupe store did not know (%s ... %s)",
                len(recovered),
                recovered[0].path.name,
                recovered[-1].path.name,
            )
        self.landed_batches, self.landed_events = store.counts()
        return store

    async def _landed_in_store(
        self, store: DedupeStore, events: Sequence[WebhookEvent]
    ) -> set[EventKey]:
        """The keys of ``events`` the store holds, as of the moment this returns.

        Events waiting in a batch are left to ``_pending``. The look-up runs on a thread; if a
        commit moved ids from ``_pending`` to the store meanwhile, one of ours may be among
        them, so it is repeated.
        """
        while True:
            recorded_commits = self._recorded_commits
            keys = {event.key for event in events if event.key not in self._pending}
            landed = await asyncio.to_thread(store.landed, keys) if keys else set()
            if recorded_commits == self._recorded_commits:
                return landed

    def _join(self, event: WebhookEvent, received_at: datetime) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        batch = self._open
        if batch is None:
            # Strictly later than the previous batch, so file names sort in batch order even
            # when one delivery fills several batches within a microsecond.
            opened_at = max(received_at, self._last_opened_at + timedelta(microseconds=1))
            batch = self._open = _Batch(opened_at=opened_at)
            self._last_opened_at = opened_at
            loop.call_later(self.max_batch_age_s, self._seal, batch)
        channel_batch = batch.channels.get(event.channel)
        if channel_batch is None:
            committed: asyncio.Future[None] = loop.create_future()
            # A failed commit whose requests have all gone away must not be reported as an
            # unretrieved exception.
            committed.add_done_callback(_retrieve_exception)
            channel_batch = batch.channels[event.channel] = _ChannelBatch(event.channel, committed)
        channel_batch.events.append(
            {
                "event_id": event.event_id,
                "channel": event.channel,
                "source": event.source,
                "received_at": received_at.isoformat(),
                "payload": event.payload,
            }
        )
        batch.size += 1
        self._waiting_events += 1
        if batch.size >= self.max_batch_events:
            self._seal(batch)
        return channel_batch.committed

    def _seal(self, batch: _Batch) -> None:
        """Close ``batch`` to new events and queue it for the committer."""
        if self._open is batch:
            self._open = None
            self._sealed.append(batch)
            self._wakeup.set()

    async def _commit_batches(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._sealed:
                await self._commit(self._sealed.popleft())
            if self._closing and self._open is None:
                return

    async def _commit(self, batch: _Batch) -> None:
        store = self._store
        assert store is not None, "commits run only between start() and stop()"
        unrecorded, self._unrecorded = self._unrecorded, []
        try:
            commits, recorded = await asyncio.to_thread(
                self._write_and_record, store, batch, unrecorded
            )
        except Exception as error:  # a bug, not a disk error: fail this batch, keep serving
            logger.exception("committing a batch of %d events failed", batch.size)
            commits = {channel: _ChannelCommit(error=error) for channel in batch.channels}
            recorded = False
        landed: list[LandedBatch] = list(unrecorded)
        for channel, channel_batch in batch.channels.items():
            commit = commits[channel]
            if commit.landed is not None:
                landed.append(commit.landed)
                self.landed_batches += 1
                self.landed_events += len(commit.landed.keys)
            else:
                for event in channel_batch.events:
                    self._pending.pop((channel, event["event_id"]), None)
            if commit.error is None:
                channel_batch.committed.set_result(None)
            else:
                self.failed_commits += 1
                channel_batch.committed.set_exception(LandingUnavailable(str(commit.error)))
        self._waiting_events -= batch.size
        if recorded:
            for landed_batch in landed:
                for key in landed_batch.keys:
                    self._pending.pop(key, None)
            self._recorded_commits += 1
        else:
            # Still landed, and still answered as duplicates from _pending until recorded.
            self._unrecorded = landed

    def _write_and_record(
        self, store: DedupeStore, batch: _Batch, unrecorded: list[LandedBatch]
    ) -> tuple[dict[str, _ChannelCommit], bool]:
        """Land each channel's file, then record every landed file in the store.

        Returns each channel's outcome and whether the store recorded them. A file renamed into
        the landing zone whose directory could not be fsynced is reported failed (its requests
        are not acknowledged) yet recorded, since the pipeline will read it: a redelivery is
        then a duplicate instead of a second copy.
        """
        commits: dict[str, _ChannelCommit] = {}
        for channel, channel_batch in batch.channels.items():
            commit = commits[channel] = _ChannelCommit()
            try:
                commit.landed = write_batch_file(
                    self.webhooks_dir,
                    self.spool_dir,
                    channel,
                    batch.opened_at,
                    channel_batch.events,
                )
                sync_folder(commit.landed.path.parent)
            except OSError as error:
                logger.error(
                    "could not land %d %s events: %s", len(channel_batch.events), channel, error
                )
                commit.error = error
        landed = [*unrecorded, *(c.landed for c in commits.values() if c.landed is not None)]
        return commits, self._record_quietly(store, landed)

    @staticmethod
    def _record_quietly(store: DedupeStore, landed: Sequence[LandedBatch]) -> bool:
        try:
            store.record(landed)
        except sqlite3.Error as error:
            logger.error(
                "could not record %d landed batches in the dedupe store: %s", len(landed), error
            )
            return False
        return True


def _retrieve_exception(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
