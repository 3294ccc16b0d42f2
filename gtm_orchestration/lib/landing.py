"""The landing zone, as the sensors and the extract step see it.

It lives in storage (``lib/storage.py``): the data folder by default, or an object store.

- ``landing/files/<source>/<name>.csv``: dropped files; their landing day is their mtime's
  (an object's last-modified time on an object store).
- ``landing/webhooks/<channel>/<YYYY-MM-DD>/<batch>.jsonl``: webhook batches written by the
  receiver, ``<channel>`` being ``forms/<source>``, ``engagement/<provider>`` or
  ``hubspot``; their landing day is their folder's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from upath import UPath

from gtm_orchestration.lib.storage import StoredFile, is_local, walk_files
from gtm_orchestration.receiver.landing import list_webhook_batches

# The first day of the pipeline's daily partitions; older files land in this partition.
PARTITION_START = date(2024, 1, 1)

# Webhook channels the lead pipeline takes; HubSpot's own events feed change capture.
LEAD_PIPELINE_CHANNELS = ("forms", "engagement")

# On an object store an object's modification time is when its upload started (for an S3
# multipart upload, when it was initiated), so a large drop can first appear in a listing
# after smaller objects stamped later. Sensors look back this far for items they have not
# seen yet; on a local folder a file appears under its name (renamed) with its final mtime.
OBJECT_STORE_LATE_DROPS = timedelta(minutes=15)
# The receiver PUTs its batches one at a time, each in well under a second.
OBJECT_STORE_LATE_BATCHES = timedelta(minutes=1)


@dataclass(frozen=True)
class LandedItem:
    """A file or webhook batch in the landing zone, as a sensor sees it (no content read).

    ``source`` is the file source for drops and the channel (``forms/leads``) for batches.
    """

    path: UPath
    source: str
    mtime_ns: int
    size_bytes: int
    day: date | None = None

    @property
    def partition_date(self) -> date:
        """The daily partition the item belongs to: the UTC day it landed."""
        landed = self.day or datetime.fromtimestamp(self.mtime_ns / 1e9, tz=UTC).date()
        return max(landed, PARTITION_START)

    @property
    def is_webhook_batch(self) -> bool:
        return self.day is not None

    @property
    def source_name(self) -> str:
        """The registry source (or engagement provider) the item is for: ``leads`` for a
        drop in ``files/leads/`` and for a batch of channel ``forms/leads``."""
        return self.source.split("/", 1)[-1]


def late_listing_ns(landing_dir: str | os.PathLike[str], lookback: timedelta) -> int:
    """How far back (ns) a sensor watching ``landing_dir`` looks for items it has not seen:
    ``lookback`` on an object store, 0 on a local folder."""
    return 0 if is_local(landing_dir) else int(lookback.total_seconds() * 1e9)


def _item(stored: StoredFile, source: str, day: date | None = None) -> LandedItem:
    return LandedItem(stored.path, source, stored.mtime_ns, stored.size_bytes, day)


def scan_dropped_files(files_dir: str | os.PathLike[str]) -> list[LandedItem]:
    """Every ``*.csv`` one level below ``files_dir``, oldest first (mtime, then path).

    Dot-files are uploads under way and skipped."""
    found = [
        _item(stored, stored.folder[0])
        for stored in walk_files(files_dir, max_depth=1)
        if len(stored.folder) == 1 and stored.path.name.endswith(".csv")
    ]
    return sorted(found, key=lambda f: (f.mtime_ns, str(f.path)))


def scan_lead_webhook_batches(
    landing_dir: str | os.PathLike[str], *, since_day: str | None = None
) -> list[LandedItem]:
    """Form and engagement batches under ``landing_dir/webhooks``, oldest first."""
    found = []
    for stored in list_webhook_batches(landing_dir, since_day=since_day):
        channel = "/".join(stored.folder[:-1])
        if stored.folder[0] in LEAD_PIPELINE_CHANNELS:
            found.append(_item(stored, channel, date.fromisoformat(stored.folder[-1])))
    return sorted(found, key=lambda f: (f.mtime_ns, str(f.path)))
