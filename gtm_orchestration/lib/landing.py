"""The landing zone, as the sensors and the extract step see it.

- ``landing/files/<source>/<name>.csv``: dropped files; their landing day is their mtime's.
- ``landing/webhooks/<channel>/<YYYY-MM-DD>/<batch>.jsonl``: webhook batches written by the
  receiver, ``<channel>`` being ``forms/<source>``, ``engagement/<provider>`` or
  ``hubspot``; their landing day is their folder's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from gtm_orchestration.receiver.landing import scan_webhook_batches

# The first day of the pipeline's daily partitions; older files land in this partition.
PARTITION_START = date(2024, 1, 1)

# Webhook channels the lead pipeline takes; HubSpot's own events feed change capture.
LEAD_PIPELINE_CHANNELS = ("forms", "engagement")


@dataclass(frozen=True)
class LandedItem:
    """A file or webhook batch in the landing zone, as a sensor sees it (no content read).

    ``source`` is the file source for drops and the channel (``forms/leads``) for batches.
    """

    path: Path
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


def _item(path: Path, source: str, day: date | None = None) -> LandedItem:
    stat = path.stat()
    return LandedItem(path, source, stat.st_mtime_ns, stat.st_size, day)


def scan_dropped_files(files_dir: Path) -> list[LandedItem]:
    """Every ``*.csv`` one level below ``files_dir``, oldest first (mtime, then path)."""
    found = []
    if not files_dir.is_dir():
        return found
    for source_dir in sorted(p for p in files_dir.iterdir() if p.is_dir()):
        for path in source_dir.glob("*.csv"):
            if path.is_file() and not path.name.startswith("."):  # dot-files: uploads under way
                found.append(_item(path, source_dir.name))
    return sorted(found, key=lambda f: (f.mtime_ns, str(f.path)))


def scan_lead_webhook_batches(
    landing_dir: Path, *, since_day: str | None = None
) -> list[LandedItem]:
    """Form and engagement batches under ``landing_dir/webhooks``, oldest first."""
    found = []
    webhooks = landing_dir / "webhooks"
    for path in scan_webhook_batches(landing_dir, since_day=since_day):
        channel = path.parent.parent.relative_to(webhooks).as_posix()
        if channel.split("/", 1)[0] in LEAD_PIPELINE_CHANNELS:
            found.append(_item(path, channel, date.fromisoformat(path.parent.name)))
    return sorted(found, key=lambda f: (f.mtime_ns, str(f.path)))
