"""A dropped CSV becomes correct CRM records: sensor -> run -> sandbox HubSpot."""

from __future__ import annotations

from datetime import UTC, datetime

from gtm_orchestration.lib.mapping import load_registry
from gtm_orchestration.lib.warehouse import Warehouse
from gtm_orchestration.settings import Settings
from tests.conftest import Crm, drop_file, pipeline_instance
from tests.e2e.pipeline import launch, sensor_runs

REGISTRY = load_registry()

HEADER = (
    "E-mail,First Name,Last Name,Job Title,Company Name,Website,Phone,Country,State,City,"
    "Industry,Annual Revenue,Employees\n"
)
LEADS = HEADER + (
    "dana.whitfield@globex.com,Dana,Whitfield,VP of Marketing,Globex Corporation,"
    "https://www.globex.com/about,+1 (415) 555-0142,USA,CA,San Francisco,Software,$1.2M,51-200\n"
    'm.okafor@initech.com,Michael,Okafor,"Vice President, Marketing","Initech, Inc.",'
    'initech.com,415-555-0199,U.S.A.,california,Palo Alto,Computer Software,"1,200,000",1001-5000\n'
    "priya@umbrella.io,Priya,Raman,VP Marketing,Umbrella,http://www.umbrella.io,,"
    "United States of America,NY,New York,SaaS,$45M,201-500\n"
    "raj.patel@gmail.com,Raj,Patel,Founder & CEO,Patel Consulting,,,US,TX,Austin,,,\n"
    " Dana.Whitfield@Globex.com ,Dana,Whitfield,CMO,Globex Corp,globex.com,,US,CA,,,,\n"
    "sam@globex.com,Sam,Rivera,Marketing Manager,Globex Corporation,globex.com,,US,CA,,,,\n"
)


def _values(records: list[dict], prop: str) -> list[str]:
    return [r["properties"].get(prop) for r in records]


def test_dropped_file_reaches_the_crm_normalized_and_deduplicated(
    settings: Settings, crm: Crm
) -> None:
    # A rep already owns Michael's record and corrected his title by hand.
    crm.http.post(
        "/crm/v3/objects/contacts",
        json={"properties": {"email": "m.okafor@initech.com", "jobtitle": "Marketing VP"}},
    ).raise_for_status()
    crm.http.patch(
        "/crm/v3/objects/contacts/m.okafor@initech.com",
        params={"idProperty": "email"},
        json={"properties": {"jobtitle": "VP, Global Marketing"}},
        headers={"X-Sandbox-Source": "CRM_UI"},
    ).raise_for_status()

    drop_file(settings, "leads", "webinar.csv", LEADS)
    with pipeline_instance() as instance:
        requests, cursor = sensor_runs(instance)
        assert len(requests) == 1
        assert requests[0].partition_key == datetime.now(UTC).date().isoformat()
        assert requests[0].run_key
        result = launch(instance, requests[0])
        assert result.success

        # Nothing new: the sensor skips.
        assert sensor_runs(instance, cursor)[0] == []

    contacts = crm.all(
        "contacts",
        "email",
        "country",
        "gtm_country_code",
        "state",
        "gtm_persona",
        "gtm_function",
        "gtm_seniority",
        "jobtitle",
        "company",
        "gtm_mapping_version",
        "gtm_source",
        "gtm_fit_score",
        "gtm_territory",
    )
    emails = sorted(_values(contacts, "email"))
    assert emails == [
        "dana.whitfield@globex.com",
        "m.okafor@initech.com",
        "priya@umbrella.io",
        "raj.patel@gmail.com",
        "sam@globex.com",
    ]
    by_email = {c["properties"]["email"]: c["properties"] for c in contacts}
    dana = by_email["dana.whitfield@globex.com"]
    assert (dana["country"], dana["gtm_country_code"], dana["state"]) == (
        "United States",
        "US",
        "California",
    )
    # The newest row for the same email wins: Dana's later row says CMO.
    assert dana["jobtitle"] == "CMO"
    assert dana["gtm_seniority"] == "c_level"
    for email in ("priya@umbrella.io",):
        assert by_email[email]["gtm_persona"] == "Marketing Leader"
        assert by_email[email]["gtm_seniority"] == "vp"
        assert by_email[email]["country"] == "United States"
    assert {p["gtm_country_code"] for p in by_email.values()} == {"US"}
    assert {p["gtm_source"] for p in by_email.values()} == {"leads"}
    # The registry in force made every record.
    assert {p["gtm_mapping_version"] for p in by_email.values()} == {str(REGISTRY.version)}
    assert all(0 <= float(p["gtm_fit_score"]) <= 100 for p in by_email.values())
    assert all(p.get("gtm_territory") for p in by_email.values())

    # The rep's edit survived; the pipeline's other properties were still written.
    michael = crm.contact("m.okafor@initech.com", "jobtitle", "gtm_persona")
    assert michael["properties"]["jobtitle"] == "VP, Global Marketing"
    assert michael["propertiesWithHistory"]["jobtitle"][0]["sourceType"] == "CRM_UI"
    assert michael["properties"]["gtm_persona"] == "Marketing Leader"

    companies = crm.all("companies", "domain", "name")
    domains = sorted(_values(companies, "domain"))
    # gmail.com is free mail: Raj's company has no domain to key it by.
    assert domains == ["globex.com", "initech.com", "umbrella.io"]


def test_ingestion_log_and_raw_rows_record_the_file(settings: Settings, crm: Crm) -> None:
    path = drop_file(settings, "leads", "list.csv", LEADS)
    with pipeline_instance() as instance:
        requests, _ = sensor_runs(instance)
        assert launch(instance, requests[0]).success
    with Warehouse(settings.warehouse_url).connect(read_only=True) as con:
        log = con.execute(
            "SELECT file_path, status, rows_total, rows_accepted, rows_rejected, length(sha256), "
            "started_at <= finished_at FROM raw.file_ingestions"
        ).fetchall()
        assert log == [(str(path), "ingested", 6, 6, 0, 64, True)]
        raw = con.execute(
            "SELECT count(*), min(mapping_version), count(DISTINCT source_file), min(loaded_at) "
            "IS NOT NULL FROM raw.lead_rows"
        ).fetchone()
        assert raw == (6, REGISTRY.version, 1, True)
