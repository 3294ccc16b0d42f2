"""A mapping change, shown by `gtm mapping diff`, then a backfill: history is re-derived from
the landing zone and only the CRM records whose payload changed are sent again."""

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gtm_orchestration.cli import main
from gtm_orchestration.lib.mapping import MAPPINGS_DIR
from gtm_orchestration.settings import Settings
from tests.conftest import Crm, drop_file, pipeline_instance
from tests.e2e.pipeline import run_day
from tests.e2e.test_file_drop import LEADS

# The events tool started exporting the attendee's city: version 1 rejects the file whole
# (an unknown column), version 2 maps it.
ATTENDEES = (
    "Attendee Email,Attendee First Name,Attendee Last Name,Company Name,Attendee Job Title,"
    "Attendee City,Ticket Type\n"
    "priya@umbrella.io,Priya,Raman,Umbrella,VP Marketing,Brooklyn,VIP\n"
    "lena.vogel@hooli.de,Lena,Vogel,Hooli GmbH,Head of Marketing,Berlin,Standard\n"
)
ATTENDEE_COUNTRY = '      country: {aliases: ["Attendee Country"]}\n'


@pytest.fixture
def registry_versions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A registry folder holding the shipped v1 and a v2 that maps the attendee's city."""
    folder = tmp_path / "mappings"
    folder.mkdir()
    v1 = (MAPPINGS_DIR / "v1.yaml").read_text()
    assert ATTENDEE_COUNTRY in v1
    (folder / "v1.yaml").write_text(v1)
    v2 = v1.replace("version: 1\n", "version: 2\n").replace(
        ATTENDEE_COUNTRY, ATTENDEE_COUNTRY + '      city: {aliases: ["Attendee City"]}\n'
    )
    (folder / "v2.yaml").write_text(v2)
    monkeypatch.setenv("GTM_MAPPINGS_DIR", str(folder))
    return folder


def _contacts(crm: Crm) -> dict[str, dict]:
    return {
        c["properties"]["email"]: c
        for c in crm.all("contacts", "email", "city", "gtm_mapping_version", "gtm_source")
    }


def _companies(crm: Crm) -> dict[str, str]:
    return {c["properties"]["domain"]: c["updatedAt"] for c in crm.all("companies", "domain")}


def test_mapping_change_backfill_resends_only_the_records_it_changes(
    settings: Settings,
    crm: Crm,
    registry_versions: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    leads = drop_file(settings, "leads", "crm-export.csv", LEADS)
    attendees = drop_file(settings, "event_attendees", "summit.csv", ATTENDEES)
    # The attendee list landed after the lead list, so its values are the newer ones.
    later = leads.stat().st_mtime + 60
    os.utime(attendees, (later, later))
    day = datetime.now(UTC).date().isoformat()

    monkeypatch.setenv("GTM_MAPPING_VERSION", "1")
    with pipeline_instance() as instance:
        assert run_day(instance, day).success
    before = _contacts(crm)
    companies_before = _companies(crm)
    assert sorted(before) == [
        "dana.whitfield@globex.com",
        "m.okafor@initech.com",
        "priya@umbrella.io",
        "raj.patel@gmail.com",
        "sam@globex.com",
    ]
    assert before["priya@umbrella.io"]["properties"]["city"] == "New York"

    # What the change would do, before it is made.
    assert main(["mapping", "diff", "1", "2"]) == 0
    diff = capsys.readouterr().out
    assert "sources.event_attendees.fields.city: added" in diff
    assert f"accepted by v2 only: {attendees}" in diff
    assert "contacts: 1 would change, 1 new, 0 gone, 4 unchanged" in diff
    assert "priya@umbrella.io: 'New York' -> 'Brooklyn'" in diff
    assert "companies: 0 would change, 1 new, 0 gone" in diff

    # The change, then a backfill of the day.
    monkeypatch.setenv("GTM_MAPPING_VERSION", "2")
    with pipeline_instance() as instance:
        assert run_day(instance, day).success
    after = _contacts(crm)

    assert sorted(set(after) - set(before)) == ["lena.vogel@hooli.de"]
    assert after["lena.vogel@hooli.de"]["properties"]["city"] == "Berlin"
    priya = after["priya@umbrella.io"]
    assert priya["properties"]["city"] == "Brooklyn"
    assert priya["properties"]["gtm_mapping_version"] == "2"
    assert priya["updatedAt"] != before["priya@umbrella.io"]["updatedAt"]
    for email in before.keys() - {"priya@umbrella.io"}:
        assert after[email]["updatedAt"] == before[email]["updatedAt"], email
        assert after[email]["properties"]["gtm_mapping_version"] == "1", email
    companies_after = _companies(crm)
    assert sorted(set(companies_after) - set(companies_before)) == ["hooli.de"]
    assert {d: companies_after[d] for d in companies_before} == companies_before
