"""Bad drops get the documented treatment, and nothing already landed is lost."""

from __future__ import annotations

import dagster as dg

from gtm_orchestration.lib.warehouse import Warehouse
from gtm_orchestration.settings import Settings
from tests.conftest import Crm, drop_file, pipeline_instance
from tests.e2e.pipeline import launch, sensor_runs

GOOD = "Email,First Name,Company Name\nada@lovelace.io,Ada,Lovelace Labs\n"


def _process(settings: Settings) -> list[dg.ExecuteInProcessResult]:
    with pipeline_instance() as instance:
        requests, _ = sensor_runs(instance)
        return [launch(instance, r) for r in requests]


def _log(settings: Settings) -> dict[str, tuple]:
    with Warehouse(settings.warehouse_url).connect(read_only=True) as con:
        rows = con.execute(
            "SELECT file_name, status, error, rows_total, rows_rejected FROM raw.file_ingestions"
        ).fetchall()
    return {r[0]: r[1:] for r in rows}


def _rejected_rows(settings: Settings) -> list[tuple]:
    with Warehouse(settings.warehouse_url).connect(read_only=True) as con:
        rows = con.execute(
            "SELECT line, field, value, reason FROM raw.rejected_rows ORDER BY line"
        ).fetchall()
    return rows


def test_wrong_headers_reject_the_file_whole_and_name_the_headers(
    settings: Settings, crm: Crm
) -> None:
    # The events tool renamed "Company Name" to "Company"; no alias covers it.
    drop_file(
        settings,
        "event_attendees",
        "summit.csv",
        "Attendee Email,Attendee First Name,Attendee Last Name,Company\n"
        "kim@globex.com,Kim,Lee,Globex\n",
    )
    drop_file(settings, "leads", "good.csv", GOOD)
    results = _process(settings)
    assert all(r.success for r in results)

    status, error, rows, _ = _log(settings)["summit.csv"]
    assert status == "rejected" and rows == 0
    assert "summit.csv" in error
    assert "missing required header(s) 'Company Name'" in error
    assert "unexpected header(s) 'Company'" in error
    # The good file dropped beside it went through; the rejected one is untouched.
    assert [c["properties"]["email"] for c in crm.all("contacts", "email")] == ["ada@lovelace.io"]
    assert (
        (settings.files_landing_dir / "event_attendees" / "summit.csv")
        .read_text()
        .startswith("Attendee Email")
    )


def test_bad_rows_are_rejected_one_by_one_with_reasons(settings: Settings, crm: Crm) -> None:
    drop_file(
        settings,
        "leads",
        "mixed.csv",
        "Email,First Name,Company Name\n"
        "ok@acme.com,Ok,Acme\n"
        ",Nobody,No Email Inc\n"
        "not-an-email,Pat,Broken Co\n"
        "extra@acme.com,Too,Many,Fields\n"
        'eve@evil.example.com,"=HYPERLINK(""http://evil.example.com"",""click"")",Evil\n'
        "fine@acme.com,Fine,Acme\n",
    )
    assert all(r.success for r in _process(settings))
    assert _log(settings)["mixed.csv"][0] == "ingested"
    assert _log(settings)["mixed.csv"][2:] == (6, 4)
    rejected = _rejected_rows(settings)
    assert [r[0] for r in rejected] == [3, 4, 5, 6]
    assert rejected[0][1] == "email" and "missing email" in rejected[0][3]
    assert rejected[1][1:3] == ("email", "not-an-email") and "malformed" in rejected[1][3]
    assert "expected 3 fields" in rejected[2][3]
    assert rejected[3][1] == "first_name" and rejected[3][2].startswith("=HYPERLINK")
    assert "formula" in rejected[3][3]
    emails = sorted(c["properties"]["email"] for c in crm.all("contacts", "email"))
    assert emails == ["fine@acme.com", "ok@acme.com"]


def test_non_utf8_file_is_rejected_with_the_line_and_byte(settings: Settings, crm: Crm) -> None:
    content = "Email,First Name,Company Name\nok@acme.com,Ok,Acme\nrene@acme.fr,René,Acme\n"
    drop_file(settings, "leads", "excel.csv", content.encode("cp1252"))
    assert all(r.success for r in _process(settings))
    status, error, _, _ = _log(settings)["excel.csv"]
    assert status == "rejected"
    assert "line 3" in error and "0xe9" in error and "UTF-8" in error
    assert crm.all("contacts", "email") == []


def test_empty_file_is_rejected_and_header_only_file_is_ingested(
    settings: Settings, crm: Crm
) -> None:
    drop_file(settings, "leads", "empty.csv", b"")
    drop_file(settings, "leads", "header_only.csv", "Email,First Name\n")
    assert all(r.success for r in _process(settings))
    log = _log(settings)
    assert log["empty.csv"][0] == "rejected" and "empty" in log["empty.csv"][1]
    assert log["header_only.csv"][0] == "ingested" and log["header_only.csv"][2] == 0
    assert crm.all("contacts", "email") == []


def test_unregistered_source_folder_is_logged_not_lost(settings: Settings, crm: Crm) -> None:
    drop_file(settings, "partner_referrals", "q4.csv", GOOD)
    assert all(r.success for r in _process(settings))
    status, error, _, _ = _log(settings)["q4.csv"]
    assert status == "rejected" and "partner_referrals" in error and "leads" in error
