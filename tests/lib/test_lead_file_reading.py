"""Large drops are read in batch: the same rows, lines, values and rejections as csv reads."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gtm_orchestration.lib.lead_files import (
    PY_WHITESPACE,
    FileRejected,
    ParsedLeadFile,
    _read_in_batch,
    decode_lead_file,
    parse_lead_csv,
    read_lead_file,
)
from gtm_orchestration.lib.mapping import load_registry

LEADS = load_registry().source("leads")

# Files the batch reader reads itself.
READ_IN_BATCH = {
    "multiline values and blank lines": (
        'Email,Company Name,Notes\na@acme.com,"Acme\nWest","one\n\ntwo ""quoted"""\n\n'
        "b@acme.com,Acme,\n"
    ),
    "crlf": 'Email,Company Name\r\na@acme.com,"Acme\r\nWest"\r\n\r\nb@acme.com,Acme\r\n',
    "bom": "\ufeffEmail,First Name\nrene@acme.fr,René\n",
    "padding, blanks, unicode spaces": (
        "Email,Company,Title\n,,\n ,\n\u3000a@b.com\u00a0, \u2003x ,\x1c\n"
        '"  ",""," "\nB@C.COM ,"  y  ",\t\n'
    ),
    "ragged rows": 'Email,Company\na@b.com\na@b.com,x,y\n"a@b.com","x","y"\nq@r.com,"a,b"\n',
    "a row too wide after values over several lines": (
        'Email,Company\na@b.com,"Acme\nWest"\n\nb@c.com,x,y\nc@d.com,z\n'
    ),
    "a record over several lines of another width": (
        'Email,Company\na@b.com,"x\n\ny",z\nc@d.com,"w\nv"\n'
    ),
    "no final line break": "Email,Company\na@b.com,x",
    "header only": "Email,Company\n",
    "bad rows": (
        "Email,First Name,Phone\nok@acme.com,Ok,+1 415 555 0100\nOk2@Acme.com ,Ok,-\n"
        "bad@,Bad,\nx@acme.com,@SUM(A1:A9),\ny@acme.com,Y,+cmd|' /C calc'!A0\n"
        "Jane <jane@acme.com>,Jane,\nmailto:j@acme.com,J,\n,Nobody,\n"
    ),
    "nul": "Email,Company\na@b.com,x\x00y\n",
}
# Files it leaves to csv, which reads them or names what is wrong.
LEFT_TO_CSV = {
    "text after a closing quote": 'Email,Company\na@b.com,"x"y\n',
    "quote inside a value": 'Email,Company\na@b.com,x"y\nc@d.com,z\n',
    # DuckDB's reader would take the quotes off (x); csv keeps them (' "x"').
    "whitespace before a quoted value": 'Email,Company\na@b.com, "x"\nc@d.com,z\n',
    "unbalanced quote": 'Email,Company\na@b.com,"x\n',
    "header over two lines": '"Email","Company\nName"\na@b.com,x\n',
    "lone carriage return": "Email,Company\na@b.com,x\rc@d.com,y\n",
    "blank first line": "\nEmail,Company\na@b.com,x\n",
    "control character": "Email,Company\na@b.com,\x01x\n",
    "not utf-8": "Email,Company\nrené@x.fr,René\n".encode("latin-1"),
    "wrong header": "Mail,Company\na@b.com,x\n",
}


def _write(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "drop.csv"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def _by_csv(path: Path) -> ParsedLeadFile:
    return parse_lead_csv(decode_lead_file(path.read_bytes(), path), LEADS, path)


def _outcome(read: object) -> object:
    try:
        parsed = read()  # type: ignore[operator]
    except FileRejected as rejected:
        return str(rejected)
    return (
        parsed.rows_total,
        parsed.accepted.schema,
        parsed.accepted.to_pylist(),
        parsed.rejections,
    )


@pytest.mark.parametrize("content", READ_IN_BATCH.values(), ids=READ_IN_BATCH.keys())
def test_batch_reading_is_csv_reading(tmp_path: Path, content: str) -> None:
    path = _write(tmp_path, content)
    in_batch = _read_in_batch(path, LEADS)
    assert in_batch is not None
    assert _outcome(lambda: in_batch) == _outcome(lambda: _by_csv(path))
    assert _outcome(lambda: read_lead_file(path, LEADS)) == _outcome(lambda: _by_csv(path))


@pytest.mark.parametrize("content", LEFT_TO_CSV.values(), ids=LEFT_TO_CSV.keys())
def test_files_left_to_csv_read_as_before(tmp_path: Path, content: str | bytes) -> None:
    path = _write(tmp_path, content)
    assert _read_in_batch(path, LEADS) is None
    assert _outcome(lambda: read_lead_file(path, LEADS)) == _outcome(lambda: _by_csv(path))


def test_values_are_stripped_of_what_str_strip_strips() -> None:
    assert set(PY_WHITESPACE) == {c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace()}


def test_a_crlf_split_between_two_blocks_is_still_read_in_batch(tmp_path: Path) -> None:
    # Files are scanned in 1 MiB blocks: the header is padded so that a row's CR ends the
    # first block and its LF starts the second.
    boundary = 1024 * 1024
    row = b"lead@acme.com,Acme\r\n"
    padding = (boundary + 1 - len(b"Email,Company\r\n")) % len(row)
    header = b"Email,Company" + b" " * padding + b"\r\n"
    rows = (boundary - len(header)) // len(row) + 2
    content = header + row * rows
    assert content[boundary - 1 : boundary + 1] == b"\r\n"
    path = _write(tmp_path, content)
    in_batch = _read_in_batch(path, LEADS)
    assert in_batch is not None
    assert in_batch.rows_total == rows
    assert _outcome(lambda: in_batch) == _outcome(lambda: _by_csv(path))


def test_a_file_read_on_several_threads_keeps_its_rows_in_line_order(tmp_path: Path) -> None:
    # Enough rows for DuckDB to read, strip and filter them in several parts at once, with
    # what moves a row off its record's position spread through the file: blank lines, a
    # value over two lines, a row too wide, rows rejected for their address or a formula.
    lines = ["Email,Company Name,Job Title"]
    for i in range(400_000):
        if i % 50_000 == 7:
            lines.append("")
        lines.append(f"lead{i}@acme{i % 97}.com,Acme {i % 1000},VP Sales")
    lines[120_000] = 'multi@acme.com,"Acme\nWest",CMO'
    lines[200_000] = "wide@acme.com,Acme,CMO,extra"
    lines[250_000] = "not an address,Acme,CMO"
    lines[300_000] = "formula@acme.com,=HYPERLINK(1),CMO"
    path = _write(tmp_path, "\n".join(lines) + "\n")
    in_batch = _read_in_batch(path, LEADS)
    assert in_batch is not None
    assert in_batch.accepted.num_rows == 399_997
    assert _outcome(lambda: in_batch) == _outcome(lambda: _by_csv(path))
