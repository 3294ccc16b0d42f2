"""Reading dropped files: encoding, headers, row validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from gtm_orchestration.lib.lead_files import FileRejected, read_lead_file
from gtm_orchestration.lib.mapping import load_registry
from gtm_orchestration.lib.validation import looks_like_formula

LEADS = load_registry().source("leads")


def _write(tmp_path: Path, content: bytes | str) -> Path:
    path = tmp_path / "drop.csv"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def test_rows_keep_their_line_numbers_across_multiline_values(tmp_path: Path) -> None:
    path = _write(tmp_path, 'Email,Company Name\na@acme.com,"Acme\nWest"\n\nb@acme.com,Acme\n')
    parsed = read_lead_file(path, LEADS)
    assert parsed.accepted.column("line").to_pylist() == [2, 5]
    assert parsed.accepted.column("company").to_pylist() == ["Acme\nWest", "Acme"]
    assert parsed.rows_total == 2


def test_utf8_with_bom_is_read(tmp_path: Path) -> None:
    path = _write(tmp_path, "\ufeffEmail,First Name\nrene@acme.fr,René\n".encode())
    parsed = read_lead_file(path, LEADS)
    assert parsed.accepted.column("first_name").to_pylist() == ["René"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "the file is empty"),
        (b"   \n", "the file is empty"),
        ("Email,Name\nrené@x.fr,René\n".encode("latin-1"), "line 2: byte 0xe9"),
        (b"Mail,Name\n", "missing required header(s) 'email'"),
    ],
)
def test_whole_file_rejections_name_file_and_line(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    path = _write(tmp_path, content)
    with pytest.raises(FileRejected) as error:
        read_lead_file(path, LEADS)
    assert str(path) in str(error.value)
    assert expected in str(error.value)


def test_row_rejections_name_line_field_and_value(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "Email,First Name,Phone\n"
        "ok@acme.com,Ok,+1 415 555 0100\n"
        "Ok2@Acme.com ,Ok,-\n"
        "bad@,Bad,\n"
        "x@acme.com,@SUM(A1:A9),\n"
        "y@acme.com,Y,+cmd|' /C calc'!A0\n",
    )
    parsed = read_lead_file(path, LEADS)
    assert parsed.accepted.column("email").to_pylist() == ["ok@acme.com", "Ok2@Acme.com"]
    described = [r.describe(str(path)) for r in parsed.rejections]
    assert described[0] == f"{path}: line 4: field 'email': value 'bad@': malformed email address"
    assert "line 5: field 'first_name': value '@SUM(A1:A9)'" in described[1]
    assert "line 6: field 'phone'" in described[2]


@pytest.mark.parametrize(
    ("value", "formula"),
    [
        ('=HYPERLINK("http://x","y")', True),
        ("@SUM(1)", True),
        ("+cmd|x", True),
        ("-2+3+cmd", True),
        ("\t=1", True),
        ("+1 (415) 555-0100", False),
        ("-5", False),
        ("Acme", False),
        ("Smith-Jones", False),
    ],
)
def test_formula_detection(value: str, formula: bool) -> None:
    assert looks_like_formula(value) is formula
