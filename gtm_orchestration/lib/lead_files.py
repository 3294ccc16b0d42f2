"""Reading dropped lead files: encoding, header validation and row validation.

A file is either rejected whole (empty, not UTF-8, headers that do not fit the source) or
read into canonical rows, each row accepted or rejected with a reason that names the file,
the line, the field and the value. The file itself is only ever read.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from gtm_orchestration.lib.mapping import CANONICAL_FIELDS, Source
from gtm_orchestration.lib.validation import Rejection, validate_lead_rows
from gtm_orchestration.receiver.landing import WebhookBatchError, read_webhook_batch

# Lines longer than this are not a lead list; csv's own limit (128 KiB) errors less clearly.
_MAX_FIELD_CHARS = 64 * 1024


class FileRejected(ValueError):
    """The whole file cannot be ingested; the message says why."""


def modified_at(mtime_ns: int) -> datetime:
    """A file's mtime as the ingestion log records it (whole microseconds, UTC)."""
    return datetime.fromtimestamp(mtime_ns // 1000 / 1e6, tz=UTC)


@dataclass(frozen=True)
class LandedFile:
    """Identity of a dropped file: what the ingestion log records about it."""

    path: Path
    source: str
    sha256: str
    size_bytes: int
    modified_at: datetime

    @classmethod
    def inspect(cls, path: Path, source: str) -> LandedFile:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        stat = path.stat()
        return cls(
            path=path,
            source=source,
            sha256=digest.hexdigest(),
            size_bytes=stat.st_size,
            modified_at=modified_at(stat.st_mtime_ns),
        )


@dataclass
class ParsedLeadFile:
    """Rows of one file: accepted canonical rows and the rejected ones with reasons."""

    rows_total: int
    accepted: pa.Table  # columns: line, then CANONICAL_FIELDS (strings or nulls)
    rejections: list[Rejection] = field(default_factory=list)


def decode_lead_file(data: bytes, path: Path) -> str:
    """The file's text; FileRejected naming the line and byte when it is not UTF-8."""
    if not data.strip():
        raise FileRejected(f"{path}: the file is empty; expected a header row and lead rows")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        bad = data[exc.start : exc.start + 1].hex()
        raise FileRejected(
            f"{path}: line {line}: byte 0x{bad} at offset {exc.start} is not valid UTF-8; "
            "save the file as UTF-8 (CSV UTF-8 in Excel) and drop it again"
        ) from None


def read_lead_file(path: Path, source: Source) -> ParsedLeadFile:
    """Read and validate a dropped CSV for ``source``.

    Returns the accepted rows and the rejections; raises FileRejected when the file as a
    whole cannot be used (empty, not UTF-8, unparsable, headers that do not fit).
    """
    text = decode_lead_file(path.read_bytes(), path)
    return parse_lead_csv(text, source, path)


def parse_lead_csv(text: str, source: Source, path: Path) -> ParsedLeadFile:
    """Parse CSV text already decoded; see read_lead_file."""
    csv.field_size_limit(_MAX_FIELD_CHARS)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        headers = next(reader)
    except (StopIteration, csv.Error) as exc:
        raise FileRejected(f"{path}: line 1: no readable header row ({exc})") from None
    check = source.check_headers(headers)
    if not check.ok:
        raise FileRejected(f"{path}: line 1: {check.describe(source.name)}")

    lines: list[int] = []
    columns: dict[str, list[str | None]] = {f: [] for f in CANONICAL_FIELDS}
    rejections: list[Rejection] = []
    rows_total = 0
    line = 1
    while True:
        start = line + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise FileRejected(f"{path}: line {reader.line_num}: malformed CSV ({exc})") from None
        line = reader.line_num
        if not record or all(not value.strip() for value in record):
            continue  # blank lines are not rows
        rows_total += 1
        if len(record) != len(headers):
            rejections.append(
                Rejection(
                    line=start,
                    field=None,
                    value=None,
                    reason=f"expected {len(headers)} fields as in the header, found {len(record)}",
                )
            )
            continue
        lines.append(start)
        row = dict.fromkeys(CANONICAL_FIELDS)
        for index, canonical in check.columns.items():
            value = record[index].strip()
            row[canonical] = value or None
        for canonical in CANONICAL_FIELDS:
            columns[canonical].append(row[canonical])

    table = pa.table(
        {"line": pa.array(lines, pa.int32())}
        | {f: pa.array(columns[f], pa.string()) for f in CANONICAL_FIELDS}
    )
    accepted, row_rejections = validate_lead_rows(table)
    return ParsedLeadFile(rows_total, accepted, sorted(rejections + row_rejections, key=_by_line))


def _by_line(rejection: Rejection) -> int:
    return rejection.line or 0


def read_form_batch(path: Path, source: Source) -> ParsedLeadFile:
    """Read a webhook batch of form submissions for ``source``.

    Each submission is one JSON line; its keys map like a file's headers, keys that match
    no field are ignored (forms gain hidden fields at will). Returns the accepted rows, with
    ``event_id`` and ``received_at`` columns besides ``line`` and the canonical fields, and
    the rejections; raises FileRejected when the batch cannot be read.
    """
    try:
        events = read_webhook_batch(path)
    except WebhookBatchError as exc:
        raise FileRejected(str(exc)) from None
    lines: list[int] = []
    event_ids: list[str] = []
    received: list[datetime] = []
    columns: dict[str, list[str | None]] = {f: [] for f in CANONICAL_FIELDS}
    rejections: list[Rejection] = []
    for line, event in enumerate(events, start=1):
        payload = event["payload"]
        if not isinstance(payload, dict):
            rejections.append(Rejection(line, None, None, "a form submission is a JSON object"))
            continue
        values, _ = source.map_record(payload)
        lines.append(line)
        event_ids.append(str(event["event_id"]))
        received.append(datetime.fromisoformat(event["received_at"]))
        for canonical in CANONICAL_FIELDS:
            value = values[canonical]
            columns[canonical].append(value.strip() or None if value is not None else None)
    table = pa.table(
        {"line": pa.array(lines, pa.int32())}
        | {f: pa.array(columns[f], pa.string()) for f in CANONICAL_FIELDS}
        | {
            "event_id": pa.array(event_ids, pa.string()),
            "received_at": pa.array(received, pa.timestamp("us", tz="UTC")),
        }
    )
    accepted, row_rejections = validate_lead_rows(table)
    rows_total = len(events)
    return ParsedLeadFile(rows_total, accepted, sorted(rejections + row_rejections, key=_by_line))
