"""Reading dropped lead files: encoding, header validation and row validation.

A file is either rejected whole (empty, not UTF-8, headers that do not fit the source) or
read into canonical rows, each row accepted or rejected with a reason that names the file,
the line, the field and the value. The file itself is only ever read, in blocks, from the
local folder or the object store it was dropped in (``lib/storage.py``): never whole into
memory.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from upath import UPath

from gtm_orchestration.lib.batch import in_parallel, scratch_connection
from gtm_orchestration.lib.config import ConfigError
from gtm_orchestration.lib.landing import LandedItem
from gtm_orchestration.lib.mapping import CANONICAL_FIELDS, MappingRegistry, Source
from gtm_orchestration.lib.storage import as_upath, duckdb_reader, stat_file
from gtm_orchestration.lib.validation import Rejection, find_rejections, validate_lead_rows
from gtm_orchestration.receiver.landing import WebhookBatchError, read_webhook_batch

# Lines longer than this are not a lead list; csv's own limit (128 KiB) errors less clearly.
_MAX_FIELD_CHARS = 64 * 1024
# Files are read in blocks of this size: hashing, the shape of their lines, UTF-8 checks.
_BLOCK_BYTES = 1 << 20
_BOM = b"\xef\xbb\xbf"
# What str.strip() removes (every character whose isspace() is true), so that values
# stripped in batch are stripped exactly as the row-by-row reader strips them.
PY_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


class FileRejected(ValueError):
    """The whole file cannot be ingested; the message says why."""


def modified_at(mtime_ns: int) -> datetime:
    """A file's mtime as the ingestion log records it (whole microseconds, UTC)."""
    return datetime.fromtimestamp(mtime_ns // 1000 / 1e6, tz=UTC)


@dataclass(frozen=True)
class LandedFile:
    """Identity of a dropped file: what the ingestion log records about it."""

    path: UPath
    source: str
    sha256: str
    size_bytes: int
    modified_at: datetime

    @classmethod
    def inspect(cls, path: str | os.PathLike[str], source: str) -> LandedFile:
        """Hash ``path`` (in blocks) and read its size and modification time."""
        path = as_upath(path)
        digest = hashlib.sha256()
        for block in _blocks(path):
            digest.update(block)
        size_bytes, mtime_ns = stat_file(path)
        return cls(
            path=path,
            source=source,
            sha256=digest.hexdigest(),
            size_bytes=size_bytes,
            modified_at=modified_at(mtime_ns),
        )


def _blocks(path: UPath) -> Iterator[bytes]:
    """The bytes of ``path``, block by block."""
    with path.open("rb") as handle:
        yield from iter(lambda: handle.read(_BLOCK_BYTES), b"")


@dataclass
class _FileShape:
    """What the batch reading needs to know of a file's bytes, gathered in one pass."""

    size: int = 0
    blank: bool = True  # nothing but ASCII whitespace (bytes.strip() leaves nothing)
    bom: bool = False
    ends_with_lf: bool = False
    ends_with_crlf: bool = False
    cr: int = 0
    lf: int = 0
    crlf: int = 0

    @classmethod
    def of(cls, blocks: Iterable[bytes]) -> _FileShape:
        shape = cls()
        head = tail = b""  # the first and the last bytes seen, across blocks
        for block in blocks:
            if len(head) < len(_BOM):
                head = (head + block)[: len(_BOM)]
            shape.size += len(block)
            shape.blank = shape.blank and not block.strip()
            cr = block.count(b"\r")
            shape.cr += cr
            shape.lf += block.count(b"\n")
            # A block without CR has no CRLF of its own: a file with LF alone is counted once.
            shape.crlf += (block.count(b"\r\n") if cr else 0) + (
                tail.endswith(b"\r") and block[:1] == b"\n"
            )
            tail = (tail + block)[-2:]
        shape.bom = head == _BOM
        shape.ends_with_lf = tail.endswith(b"\n")
        shape.ends_with_crlf = tail == b"\r\n"
        return shape


@dataclass
class ParsedLeadFile:
    """Rows of one file: accepted canonical rows and the rejected ones with reasons."""

    rows_total: int
    accepted: pa.Table  # columns: line, then CANONICAL_FIELDS (strings or nulls)
    rejections: list[Rejection] = field(default_factory=list)


def _empty_file(path: object) -> FileRejected:
    return FileRejected(f"{path}: the file is empty; expected a header row and lead rows")


def _check_utf8(blocks: Iterable[bytes], path: object) -> None:
    """FileRejected naming the line, the byte and its offset where ``blocks`` stop being
    UTF-8; nothing when they are UTF-8 throughout."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = lines = 0  # bytes and line breaks before the current block
    error: UnicodeDecodeError | None = None
    pending = data = b""
    for data in blocks:
        pending = decoder.getstate()[0]
        try:
            decoder.decode(data)
        except UnicodeDecodeError as exc:
            error = exc
            break
        offset += len(data)
        lines += data.count(b"\n")
    else:
        pending, data = decoder.getstate()[0], b""
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            error = exc
    if error is None:
        return
    # The decoder's positions count the bytes it held back from the block before.
    at = offset - len(pending) + error.start
    line = lines + data[: max(0, error.start - len(pending))].count(b"\n") + 1
    bad = (pending + data)[error.start : error.start + 1].hex()
    raise FileRejected(
        f"{path}: line {line}: byte 0x{bad} at offset {at} is not valid UTF-8; "
        "save the file as UTF-8 (CSV UTF-8 in Excel) and drop it again"
    )


def decode_lead_file(data: bytes, path: object) -> str:
    """The file's text; FileRejected naming the line and byte when it is not UTF-8."""
    if not data.strip():
        raise _empty_file(path)
    _check_utf8([data], path)
    return data.decode("utf-8-sig")


def read_lead_file(path: str | os.PathLike[str], source: Source) -> ParsedLeadFile:
    """Read and validate a dropped CSV for ``source``, from a local folder or an object
    store, in blocks.

    Returns the accepted rows and the rejections; raises FileRejected when the file as a
    whole cannot be used (empty, not UTF-8, unparsable, headers that do not fit).
    """
    path = as_upath(path)
    shape = _FileShape.of(_blocks(path))
    parsed = _read_in_batch(path, source, shape)
    if parsed is not None:
        return parsed
    if shape.blank:
        raise _empty_file(path)
    _check_utf8(_blocks(path), path)
    with path.open("rb") as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as text:
        return parse_lead_csv(text, source, path)


def parse_lead_csv(text: str | Iterable[str], source: Source, path: object) -> ParsedLeadFile:
    """Parse CSV text already decoded (a string, or a text stream opened with
    ``newline=""``); see read_lead_file."""
    csv.field_size_limit(_MAX_FIELD_CHARS)
    lines = io.StringIO(text, newline="") if isinstance(text, str) else text
    reader = csv.reader(lines, strict=True)
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
        if _blank(record):
            continue  # blank lines are not rows
        rows_total += 1
        if len(record) != len(headers):
            rejections.append(_wrong_width(start, len(headers), len(record)))
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


def _blank(values: list[str]) -> bool:
    """Whether a record read by csv is blank (no values, or only whitespace): not a row."""
    return all(not value.strip() for value in values)


def _by_line(rejection: Rejection) -> int:
    return rejection.line or 0


def _read_in_batch(
    path: str | os.PathLike[str], source: Source, shape: _FileShape | None = None
) -> ParsedLeadFile | None:
    """``parse_lead_csv`` of the file, run over whole columns in DuckDB: the same rows,
    lines, values and rejections, in a fraction of the time for a large file.

    DuckDB splits the file into lines, which tell the file's shape: a record spans several
    lines only where a quoted value holds a line break, which the parity of the quotes on
    each line tells. DuckDB's CSV reader then parses the records (``_read_by_duckdb``); csv
    reads the few over several lines and those of another width again, to check them and
    name them. Returns None for anything this reading does not decide exactly as
    ``parse_lead_csv`` would (empty or not UTF-8, lone carriage returns, unbalanced or
    malformed quotes, over-long values, a header that does not fit): ``parse_lead_csv`` then
    reads the file and names the problem. ``shape`` is the file's ``_FileShape`` when already known.
    """
    path = as_upath(path)
    shape = shape or _FileShape.of(_blocks(path))
    newline = _newline(shape)
    if newline is None:
        return None
    with duckdb_reader(path, scratch_connection) as (con, name):
        return _read_lines(con, name, shape, source, path, newline)


def _newline(shape: _FileShape) -> str | None:
    """The line break of a non-empty file, or None when the file is empty or breaks lines
    with a lone CR somewhere (csv ends a line there too; only CRLF throughout is read in
    batch)."""
    if shape.blank:
        return None
    if not shape.cr:
        return "\n"
    return "\r\n" if shape.cr == shape.crlf == shape.lf else None


def _read_lines(
    con: duckdb.DuckDBPyConnection,
    name: str,
    shape: _FileShape,
    source: Source,
    path: UPath,
    newline: str,
) -> ParsedLeadFile | None:
    """The work of _read_in_batch, in temporary tables of ``con``, which reads the file
    as ``name``."""
    try:
        con.execute(
            "CREATE TEMP TABLE file_lines AS "
            "SELECT coalesce(line, '') AS line, "
            "strlen(line) - strlen(replace(line, '\"', '')) AS quotes "
            "FROM read_csv($path, columns = {'line': 'VARCHAR'}, delim = chr(1), quote = '', "
            "escape = '', header = false, auto_detect = false, strict_mode = true, "
            "compression = 'none')",
            {"path": name},
        )
    except duckdb.Error:
        return None  # not UTF-8, or a line DuckDB does not take as one value
    lines, size, longest = con.execute(
        "SELECT count(*), coalesce(sum(strlen(line)), 0), coalesce(max(length(line)), 0) "
        "FROM file_lines"
    ).fetchall()[0]
    bom = 3 if shape.bom else 0
    ends_with_newline = shape.ends_with_crlf if newline == "\r\n" else shape.ends_with_lf
    breaks = lines - 1 + ends_with_newline
    if not lines or size + breaks * len(newline) + bom != shape.size or longest > _MAX_FIELD_CHARS:
        return None  # the lines are not the file, or a value csv would refuse

    # Lines with an odd number of quotes open and close the values over several lines.
    toggles = [
        n for (n,) in con.execute("SELECT rowid FROM file_lines WHERE quotes % 2 = 1").fetchall()
    ]
    toggles.sort()
    if len(toggles) % 2 or (toggles and toggles[0] == 0):
        return None  # unbalanced quotes, or a header row over several lines
    spans = list(zip(toggles[::2], toggles[1::2], strict=True))
    spanning = [n for first, last in spans for n in range(first, last + 1)]
    con.register("spanning_lines", pa.table({"n": pa.array(spanning, pa.int64())}))

    csv.field_size_limit(_MAX_FIELD_CHARS)
    header = con.execute("SELECT line FROM file_lines WHERE rowid = 0").fetchall()[0][0]
    try:
        headers = next(csv.reader([header], strict=True)) if header else []
    except csv.Error:
        return None
    check = source.check_headers(headers)
    if not headers or not check.ok:
        return None
    width = len(headers)
    by_field = {canonical: index for index, canonical in check.columns.items()}
    return _read_by_duckdb(con, name, width, spans, by_field, newline)


# DuckDB's reader refuses a record of another width with these; anything else it refuses
# (a malformed quote) is left to the other readers.
_WIDTH_ERRORS = ("TOO MANY COLUMNS", "MISSING COLUMNS")


def _read_by_duckdb(
    con: duckdb.DuckDBPyConnection,
    name: str,
    width: int,
    spans: list[tuple[int, int]],
    by_field: dict[str, int],
    newline: str,
) -> ParsedLeadFile | None:
    """The records of the file as DuckDB's CSV reader parses them, each on the line csv
    would give it; None when that reading could differ from csv's.

    DuckDB and csv read well-formed quoted values alike, over several lines too; they part
    on quotes that do not open or close a value (`` "x"``, ``"x"y``), so every line with
    quotes must be a record of well-formed values, and each record over several lines
    (``spans``, from ``file_lines``) must have the values csv reads from its lines. DuckDB
    skips empty lines, refuses records of another width (their ``line`` counts the lines
    that begin a record) and gives the others in file order: the n-th is the n-th line that
    begins a record, is not empty and was not refused.
    """
    quoted = con.execute(
        "SELECT count(*) FROM file_lines WHERE rowid > 0 AND quotes > 0 "
        "AND rowid NOT IN (SELECT n FROM spanning_lines) "
        f"AND NOT regexp_full_match(line, '{_well_formed_record()}')"
    ).fetchall()[0][0]
    if quoted:
        return None
    columns = "{" + ", ".join(f"'f{i}': 'VARCHAR'" for i in range(width)) + "}"
    # The records in file order (the reader keeps it), straight into Arrow.
    try:
        parsed = con.execute(
            "SELECT * FROM read_csv($path, header = true, "
            f"columns = {columns}, delim = ',', quote = '\"', escape = '\"', "
            "strict_mode = true, auto_detect = false, null_padding = false, "
            "store_rejects = true, rejects_table = 'file_rejects', "
            "rejects_scan = 'file_reject_scans', compression = 'none')",
            # No new_line: the file breaks lines with LF or CRLF throughout (_newline), which
            # DuckDB tells; given '\\r\\n', DuckDB 1.5 reads no rows at all.
            {"path": name},
        ).to_arrow_table()
    except duckdb.Error:
        return None
    refused = con.execute("SELECT line, error_type FROM file_rejects").fetchall()
    con.execute("DROP TABLE file_rejects")
    con.execute("DROP TABLE file_reject_scans")
    if any(error not in _WIDTH_ERRORS for _, error in refused):
        return None
    continued = [n for first, last in spans for n in range(first + 1, last + 1)]
    con.register("continued_lines", pa.table({"n": pa.array(continued, pa.int64())}))
    # The lines that begin a record (not continuing one), numbered from 1 as DuckDB's
    # rejects number records; a scan of one table keeps the lines in order.
    empty = (
        con.execute("SELECT strlen(line) = 0 AS empty FROM file_lines")
        .to_arrow_table()
        .column("empty")
        .to_numpy()
    )
    begins = np.ones(len(empty), dtype=bool)
    begins[continued] = False
    starts = np.flatnonzero(begins)
    refused_starts = np.isin(np.arange(1, len(starts) + 1), [line for line, _ in refused])
    refused_lines = starts[refused_starts].tolist()
    # The line of each record DuckDB read: not the header, not empty, not refused.
    record_starts = starts[(starts > 0) & ~empty[starts] & ~refused_starts]
    if len(record_starts) != parsed.num_rows or len(refused_lines) != len(refused):
        return None

    # Records over several lines, and the refused ones, as csv reads them.
    firsts = {first for first, _ in spans}
    by_csv = _records_by_csv(
        con.execute(
            "SELECT rowid, line, rowid IN (SELECT n FROM continued_lines) FROM file_lines "
            "WHERE rowid IN (SELECT n FROM spanning_lines) OR rowid IN "
            f"({', '.join(map(str, refused_lines)) or 'NULL'}) ORDER BY rowid"
        ).fetchall(),
        newline,
    )
    if by_csv is None:
        return None
    refused_at = set(refused_lines)
    rows_total = 0
    rejections: list[Rejection] = []
    spanning_values: dict[int, list[str]] = {}
    for first, values in by_csv:
        if (first in refused_at) == (len(values) == width):
            return None  # DuckDB and csv disagree on the record's width
        if first in refused_at:
            if not _blank(values):
                rows_total += 1
                rejections.append(_wrong_width(first + 1, width, len(values)))
        elif first in firsts:
            spanning_values[first] = values
    if spanning_values:
        lines = np.array(list(spanning_values), dtype=np.int64)
        at = np.searchsorted(record_starts, lines).clip(max=max(len(record_starts) - 1, 0))
        read = (record_starts[at] == lines) if len(record_starts) else np.zeros(0, dtype=bool)
        lines, records = lines[read].tolist(), at[read]
        parsed_spanning = parsed.take(pa.array(records, pa.int64())).to_pylist()
        # DuckDB reads an empty value as NULL.
        parsed_values = {
            n: [v or "" for v in record.values()]
            for n, record in zip(lines, parsed_spanning, strict=True)
        }
        if parsed_values != spanning_values:
            return None

    # Each record on its line.
    record_lines = pa.chunked_array([pa.array(record_starts + 1, pa.int32())])
    con.execute("DROP TABLE file_lines")
    values = in_parallel(_stripped, [parsed.column(f"f{i}") for i in range(width)])
    del parsed
    # A record of empty values is a blank line: neither a row nor rejected.
    blank = np.logical_and.reduce([v.is_null().to_numpy(zero_copy_only=False) for v in values])
    rows = pa.table(
        {
            c: values[by_field[c]] if c in by_field else pa.nulls(len(blank), pa.string())
            for c in CANONICAL_FIELDS
        }
    )
    candidates = np.flatnonzero(~blank)
    rows_total += len(candidates)
    # Validated as numbered by record; the rejections get their lines after.
    checked = rows.take(pa.array(candidates)) if blank.any() else rows
    by_record = find_rejections(con, checked.add_column(0, "line", pa.array(candidates)))
    rejected = np.array([r.line for r in by_record], dtype=np.int64)
    lines = pc.take(record_lines, pa.array(rejected)).to_pylist()
    row_rejections = [replace(r, line=line) for r, line in zip(by_record, lines, strict=True)]
    kept = ~blank
    kept[rejected] = False
    if not kept.all():
        mask = pa.array(kept)
        *columns, record_lines = in_parallel(
            lambda column: column.filter(mask), [*rows.columns, record_lines]
        )
        rows = pa.Table.from_arrays(columns, names=rows.column_names)
    accepted = rows.add_column(0, "line", record_lines)
    return ParsedLeadFile(rows_total, accepted, sorted(rejections + row_rejections, key=_by_line))


def _stripped(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """``values`` stripped as str.strip() strips them, empty ones null (as DuckDB reads an
    empty value): one pass of Arrow's trim, where DuckDB's trim() with a set of characters
    took ten seconds for a million records of sixteen fields."""
    stripped = pc.utf8_trim(values, PY_WHITESPACE)
    return pc.if_else(pc.equal(stripped, ""), pa.scalar(None, pa.string()), stripped)


def _well_formed_record() -> str:
    """A regular expression matching a record of well-formed fields, quoted or not, of any
    width."""
    field = '"(?:[^"]|"")*"|[^",]*'
    return f"(?:{field})(?:,(?:{field}))*"


def _records_by_csv(
    lines: list[tuple[int, str, bool]], newline: str
) -> list[tuple[int, list[str]]] | None:
    """The first line (0-based) and values of each record csv reads from ``lines``
    (number, text, whether it goes on the record of the line before, in file order); None
    when csv does not read exactly one record from each group of lines."""
    first_lines: list[int] = []
    grouped: list[str] = []
    for n, text, continued in lines:
        if continued:
            grouped[-1] += newline + text
        else:
            first_lines.append(n)
            grouped.append(text)
    try:
        records = list(csv.reader(grouped, strict=True))
    except csv.Error:
        return None
    if len(records) != len(grouped):
        return None
    return list(zip(first_lines, records, strict=True))


def _wrong_width(line: int, width: int, found: int) -> Rejection:
    return Rejection(
        line=line,
        field=None,
        value=None,
        reason=f"expected {width} fields as in the header, found {found}",
    )


def read_form_batch(path: str | os.PathLike[str], source: Source) -> ParsedLeadFile:
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


def read_landed_leads(item: LandedItem, registry: MappingRegistry) -> ParsedLeadFile:
    """A landed file drop or form batch read as ``registry`` maps it.

    Raises FileRejected when the item is rejected whole, ConfigError when its source is not
    registered (or a batch's source takes no forms).
    """
    if not item.is_webhook_batch:
        return read_lead_file(item.path, registry.source(item.source))
    source = registry.source(item.source_name)
    if "form" not in source.spec.kinds:
        raise ConfigError(f"{registry.path}: sources.{item.source_name}: not a form source")
    return read_form_batch(item.path, source)


def with_provenance(
    parsed: ParsedLeadFile,
    source: str,
    path: str | os.PathLike[str],
    file_modified_at: datetime,
    mapping_version: int,
) -> pa.Table:
    """The accepted rows with the provenance columns the transform reads: ``source``,
    ``source_file``, ``landed_at`` (each submission's arrival for form batches, the file's
    mtime for drops) and ``mapping_version``."""
    rows = parsed.accepted
    n = rows.num_rows
    if "received_at" in rows.column_names:  # form submissions land one by one
        landed_at = rows.column("received_at").cast(pa.timestamp("us", tz="UTC"))
        rows = rows.drop_columns(["received_at"])
    else:
        landed_at = pa.array([file_modified_at] * n, pa.timestamp("us", tz="UTC"))
    extra = {
        "source": pa.array([source] * n, pa.string()),
        "source_file": pa.array([str(path)] * n, pa.string()),
        "landed_at": landed_at,
        "mapping_version": pa.array([mapping_version] * n, pa.int32()),
    }
    for name, array in extra.items():
        rows = rows.append_column(name, array)
    return rows
