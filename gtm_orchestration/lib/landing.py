"""The landing zone of file drops: ``<data>/landing/files/<source>/<name>.csv``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

# The first day of the pipeline's daily partitions; older files land in this partition.
PARTITION_START = date(2024, 1, 1)


@dataclass(frozen=True)
class DroppedFile:
    """A file in the landing zone, as the sensor sees it (no content read)."""

    path: Path
    source: str
    mtime_ns: int
    size_bytes: int

    @property
    def partition_date(self) -> date:
        """The daily partition the file belongs to: the UTC day it was landed."""
        landed = datetime.fromtimestamp(self.mtime_ns / 1e9, tz=UTC).date()
        return max(landed, PARTITION_START)


def scan_dropped_files(files_dir: Path) -> list[DroppedFile]:
    """Every ``*.csv`` one level below ``files_dir``, oldest first (mtime, then path)."""
    found = []
    if not files_dir.is_dir():
        return found
    for source_dir in sorted(p for p in files_dir.iterdir() if p.is_dir()):
        for path in source_dir.glob("*.csv"):
            if not path.is_file() or path.name.startswith("."):
                continue  # dot-files are uploads still in progress
            stat = path.stat()
            found.append(DroppedFile(path, source_dir.name, stat.st_mtime_ns, stat.st_size))
    return sorted(found, key=lambda f: (f.mtime_ns, str(f.path)))
