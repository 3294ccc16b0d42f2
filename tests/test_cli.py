"""The gtm command line as a user runs it."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

from gtm_orchestration.lib.crm_schema import portal_schema


def _gtm(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gtm_orchestration.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_dry_run_writes_the_payload_and_loads_nothing(tmp_path: Path) -> None:
    source = tmp_path / "list.csv"
    source.write_text(
        "Email,First Name,Job Title,Company Name,Website,Country,State\n"
        "dana@globex.com,Dana,VP of Marketing,Globex,https://www.globex.com/x,USA,CA\n"
        'eve@evil.example.com,"=HYPERLINK(""http://evil"",""x"")",VP,Evil,,US,\n'
        "DANA@globex.com ,Dana,CMO,Globex,,,\n"
        "no-email,Pat,,,,,\n"
    )
    out = tmp_path / "payload.csv"
    result = _gtm("dry-run", "leads", str(source), "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "4 records: 1 ready, 1 merged into another record, 2 rejected" in result.stdout

    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    contact_properties = set(portal_schema().objects["contacts"].properties)
    assert {"status", "reason"} <= set(rows[0])
    assert set(rows[0]) - {"line", "status", "reason"} <= contact_properties
    by_line = {row["line"]: row for row in rows}
    assert by_line["2"]["status"] == "merged" and "line 4" in by_line["2"]["reason"]
    ready = by_line["4"]
    assert ready["status"] == "ready"
    assert (ready["email"], ready["jobtitle"], ready["gtm_seniority"]) == (
        "dana@globex.com",
        "CMO",
        "c_level",
    )
    assert (ready["country"], ready["state"], ready["gtm_country_code"]) == (
        "United States",
        "California",
        "US",
    )
    assert by_line["3"]["status"] == "rejected"
    assert "first_name" in by_line["3"]["reason"] and "formula" in by_line["3"]["reason"]
    # The report itself is safe to open in a spreadsheet.
    assert not any(v.startswith("=") for row in rows for v in row.values())
    assert by_line["5"]["status"] == "rejected" and "malformed email" in by_line["5"]["reason"]
    # Nothing was loaded or landed.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["list.csv", "payload.csv"]


def test_dry_run_names_the_problem_of_a_file_it_would_reject(tmp_path: Path) -> None:
    source = tmp_path / "summit.csv"
    source.write_text("Attendee Email,Company\nkim@globex.com,Globex\n")
    result = _gtm("dry-run", "event_attendees", str(source), cwd=tmp_path)
    assert result.returncode == 2
    assert "summit.csv" in result.stderr and "'Company Name'" in result.stderr

    unknown = _gtm("dry-run", "partners", str(source), cwd=tmp_path)
    assert unknown.returncode == 2 and "no such source registered" in unknown.stderr
