"""The mapping registry: header matching, aliases, versions and config errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from gtm_orchestration.lib.config import ConfigError
from gtm_orchestration.lib.mapping import (
    MAPPINGS_DIR,
    available_versions,
    load_registry,
    normalize_header,
)
from gtm_orchestration.lib.mapping_diff import diff_registries


def test_contract_headers_and_aliases_map_to_canonical_fields() -> None:
    leads = load_registry().source("leads")
    check = leads.check_headers(
        [
            "E-mail",
            "First Name",
            "last_name",
            "Job Title",
            "Company Name",
            "Website",
            "Phone",
            "Country",
            "State",
            "City",
            "Industry",
            "Annual Revenue",
            "Employees",
            "Notes",
        ]
    )
    assert check.ok
    assert check.columns[0] == "email"
    assert check.columns[3] == "title"
    assert check.columns[4] == "company"
    assert 13 not in check.columns  # "Notes" is declared as ignored


def test_headers_that_do_not_fit_are_named() -> None:
    attendees = load_registry().source("event_attendees")
    check = attendees.check_headers(
        ["Attendee Email", "Attendee First Name", "Attendee Last Name", "Company", "Badge"]
    )
    assert not check.ok
    assert check.missing == ("Company Name",)
    assert check.unexpected == ("Company", "Badge")
    message = check.describe("event_attendees")
    assert "'Company Name'" in message and "'Company'" in message and "'Badge'" in message


def test_two_headers_for_one_field_are_refused() -> None:
    check = load_registry().source("leads").check_headers(["Email", "E-mail"])
    assert check.duplicated == ("email",)


def test_header_comparison_ignores_case_spacing_and_bom() -> None:
    assert normalize_header("\ufeff  First_Name ") == normalize_header("first   name")


def test_unknown_source_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="no such source registered.*event_attendees, leads"):
        load_registry().source("partners")


def test_form_submission_keys_map_like_headers() -> None:
    values, unexpected = (
        load_registry()
        .source("leads")
        .map_record({"email": "a@b.co", "Company Name": "B", "utm_campaign": "x"})
    )
    assert values["email"] == "a@b.co" and values["company"] == "B"
    assert unexpected == ["utm_campaign"]


def test_registry_versions_on_disk() -> None:
    assert available_versions()[0] == 1
    assert load_registry().version == available_versions()[-1]


def test_a_bad_registry_names_file_key_and_expectation(tmp_path: Path) -> None:
    (tmp_path / "v1.yaml").write_text(
        "version: 1\nsources:\n  leads:\n    fields:\n      email: {required: yes}\n"
        "      favourite_colour: {}\ncrm: {contacts: {}, companies: {}}\n"
    )
    with pytest.raises(ConfigError) as error:
        load_registry(directory=tmp_path)
    assert str(tmp_path / "v1.yaml") in str(error.value)
    assert "sources.leads" in str(error.value) and "favourite_colour" in str(error.value)


def test_registry_diff_names_every_changed_key(tmp_path: Path) -> None:
    v1 = (MAPPINGS_DIR / "v1.yaml").read_text()
    v2 = (
        v1.replace("version: 1\n", "version: 2\n")
        .replace('"Given Name"]', '"Given Name", "Vorname"]')
        .replace('"Surname", ', "")
        .replace("    jobtitle: title\n", "")
        .replace("    gtm_persona: persona\n", "    gtm_persona: seniority\n")
        .replace("    city: city\n", "    city: city\n    zip: city\n")
    )
    (tmp_path / "v1.yaml").write_text(v1)
    (tmp_path / "v2.yaml").write_text(v2)
    changes = diff_registries(
        load_registry(1, directory=tmp_path), load_registry(2, directory=tmp_path)
    )
    assert changes == [
        "sources.leads.fields.first_name.aliases: 'Vorname' added",
        "sources.leads.fields.last_name.aliases: 'Surname' removed",
        "crm.contacts.gtm_persona: persona -> seniority",
        "crm.contacts.jobtitle: no longer written (was title)",
        "crm.contacts.zip: now written from city",
    ]
