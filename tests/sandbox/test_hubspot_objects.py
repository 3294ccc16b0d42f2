"""The sandbox's HubSpot CRM objects API, spoken over real HTTP as a connector would."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

UpsertContacts = Callable[..., httpx.Response]

CONTACTS = "/crm/v3/objects/contacts"
COMPANIES = "/crm/v3/objects/companies"


def test_upsert_creates_a_contact_then_updates_it(upsert_contacts: UpsertContacts) -> None:
    first = upsert_contacts(
        {"email": "Ada@Example.com", "firstname": "Ada", "annualrevenue": "5e6"}
    )
    assert first.status_code == 200
    (created,) = first.json()["results"]
    assert created["new"] is True
    assert created["properties"]["email"] == "ada@example.com"
    assert created["properties"]["annualrevenue"] == "5000000"
    assert created["properties"]["hs_object_id"] == created["id"]
    assert created["createdAt"].endswith("Z") and created["createdAt"] == created["updatedAt"]

    time.sleep(0.01)
    second = upsert_contacts({"email": "ada@example.com", "firstname": "Ada", "jobtitle": "CTO"})
    assert second.status_code == 200
    (updated,) = second.json()["results"]
    assert updated["new"] is False
    assert updated["id"] == created["id"]
    assert updated["properties"]["jobtitle"] == "CTO"
    assert updated["updatedAt"] > created["updatedAt"]
    assert second.json()["status"] == "COMPLETE"


def test_batch_upsert_refuses_more_than_100_inputs(
    crm: httpx.Client, upsert_contacts: UpsertContacts
) -> None:
    contacts = [{"email": f"lead{n}@example.com"} for n in range(101)]
    response = upsert_contacts(*contacts)
    assert response.status_code == 400
    assert response.json()["category"] == "VALIDATION_ERROR"
    assert crm.get(CONTACTS).json()["results"] == []
    assert upsert_contacts(*contacts[:100]).status_code == 200


def test_batch_upsert_applies_good_inputs_and_reports_bad_ones(
    crm: httpx.Client, upsert_contacts: UpsertContacts
) -> None:
    response = upsert_contacts(
        {"email": "good@example.com", "lifecyclestage": "lead", "hubspot_owner_id": "10002"},
        {"email": "unknown@example.com", "favourite_colour": "teal"},
        {"email": "badenum@example.com", "gtm_seniority": "wizard"},
        {"email": "badnumber@example.com", "gtm_fit_score": "high"},
        {"email": "badowner@example.com", "hubspot_owner_id": "99999"},
        {"email": "also-good@example.com", "gtm_fit_score": "87.50"},
    )
    assert response.status_code == 207
    body = response.json()
    assert body["numErrors"] == 4
    assert sorted(result["properties"]["email"] for result in body["results"]) == [
        "also-good@example.com",
        "good@example.com",
    ]
    errors = {error["context"]["id"][0]: error for error in body["errors"]}
    assert set(errors) == {
        "unknown@example.com",
        "badenum@example.com",
        "badnumber@example.com",
        "badowner@example.com",
    }
    for error in errors.values():
        assert error["status"] == "error"
        assert error["category"] == "VALIDATION_ERROR"
    unknown = errors["unknown@example.com"]
    assert unknown["errors"][0]["code"] == "PROPERTY_DOESNT_EXIST"
    assert unknown["message"].startswith("Property values were not valid: ")
    assert unknown["errors"][0]["message"] == 'Property "favourite_colour" does not exist'
    bad_enum = errors["badenum@example.com"]["errors"][0]
    assert bad_enum["code"] == "INVALID_OPTION"
    assert "wizard" in bad_enum["message"] and "individual_contributor" in bad_enum["message"]
    assert errors["badnumber@example.com"]["errors"][0]["code"] == "INVALID_FLOAT"
    assert errors["badowner@example.com"]["errors"][0]["code"] == "INVALID_OPTION"

    stored = crm.post(
        f"{CONTACTS}/search",
        json={"properties": ["email", "gtm_fit_score"], "sorts": ["email"], "limit": 10},
    ).json()
    assert [r["properties"]["email"] for r in stored["results"]] == [
        "also-good@example.com",
        "good@example.com",
    ]
    assert stored["results"][0]["properties"]["gtm_fit_score"] == "87.5"


def test_single_create_and_patch_refuse_invalid_values_with_details(crm: httpx.Client) -> None:
    response = crm.post(
        CONTACTS,
        json={"properties": {"email": "x@example.com", "shoe_size": "44", "lifecyclestage": "?"}},
    )
    assert response.status_code == 400
    body = response.json()
    assert body["category"] == "VALIDATION_ERROR"
    assert {detail["code"] for detail in body["errors"]} == {
        "PROPERTY_DOESNT_EXIST",
        "INVALID_OPTION",
    }
    assert crm.get(f"{CONTACTS}/x@example.com", params={"idProperty": "email"}).status_code == 404

    created = crm.post(CONTACTS, json={"properties": {"email": "x@example.com"}}).json()
    read_only = crm.patch(
        f"{CONTACTS}/{created['id']}", json={"properties": {"lastmodifieddate": "0"}}
    )
    assert read_only.status_code == 400
    assert read_only.json()["errors"][0]["code"] == "READ_ONLY_VALUE"


def test_create_conflicts_with_an_existing_unique_value(crm: httpx.Client) -> None:
    created = crm.post(CONTACTS, json={"properties": {"email": "dup@example.com"}})
    assert created.status_code == 201
    again = crm.post(CONTACTS, json={"properties": {"email": "DUP@example.com"}})
    assert again.status_code == 409
    assert again.json()["category"] == "CONFLICT"
    assert again.json()["message"] == f"Contact already exists. Existing ID: {created.json()['id']}"

    crm.post(COMPANIES, json={"properties": {"domain": "acme.com", "name": "Acme"}})
    company_again = crm.post(COMPANIES, json={"properties": {"domain": "ACME.com"}})
    assert company_again.status_code == 409


def test_get_and_patch_by_id_property(crm: httpx.Client) -> None:
    contact = crm.post(
        CONTACTS, json={"properties": {"email": "grace@example.com", "firstname": "Grace"}}
    ).json()
    by_email = crm.get(
        f"{CONTACTS}/GRACE@example.com",
        params={"idProperty": "email", "properties": "firstname,jobtitle"},
    )
    assert by_email.status_code == 200
    assert by_email.json()["id"] == contact["id"]
    assert by_email.json()["properties"]["firstname"] == "Grace"
    assert by_email.json()["properties"]["jobtitle"] is None

    patched = crm.patch(
        f"{CONTACTS}/grace@example.com",
        params={"idProperty": "email"},
        json={"properties": {"jobtitle": "Admiral"}},
    )
    assert patched.status_code == 200
    assert patched.json()["properties"]["jobtitle"] == "Admiral"
    by_id = crm.get(f"{CONTACTS}/{contact['id']}", params={"properties": "jobtitle"}).json()
    assert by_id["properties"]["jobtitle"] == "Admiral"

    company = crm.post(COMPANIES, json={"properties": {"domain": "navy.mil", "name": "Navy"}})
    by_domain = crm.get(f"{COMPANIES}/navy.mil", params={"idProperty": "domain"})
    assert by_domain.json()["id"] == company.json()["id"]
    assert set(by_domain.json()["properties"]) >= {"name", "domain", "hs_lastmodifieddate"}

    assert (
        crm.get(f"{CONTACTS}/nobody@example.com", params={"idProperty": "email"}).status_code == 404
    )
    missing = crm.patch(f"{CONTACTS}/987654321", json={"properties": {"firstname": "X"}})
    assert missing.status_code == 404
    assert missing.json()["category"] == "OBJECT_NOT_FOUND"


def test_batch_read_returns_history_and_names_missing_ids(
    crm: httpx.Client, upsert_contacts: UpsertContacts
) -> None:
    upsert_contacts({"email": "lin@example.com", "jobtitle": "Engineer"})
    time.sleep(0.01)
    upsert_contacts({"email": "lin@example.com", "jobtitle": "VP Engineering"})

    response = crm.post(
        f"{CONTACTS}/batch/read",
        json={
            "idProperty": "email",
            "inputs": [{"id": "lin@example.com"}, {"id": "ghost@example.com"}],
            "properties": ["jobtitle"],
            "propertiesWithHistory": ["jobtitle"],
        },
    )
    assert response.status_code == 207
    body = response.json()
    (contact,) = body["results"]
    assert contact["properties"]["jobtitle"] == "VP Engineering"
    history = contact["propertiesWithHistory"]["jobtitle"]
    assert [entry["value"] for entry in history] == ["VP Engineering", "Engineer"]
    assert all(entry["sourceType"] == "INTEGRATION" for entry in history)
    assert history[0]["timestamp"] > history[1]["timestamp"]
    (not_found,) = body["errors"]
    assert not_found["category"] == "OBJECT_NOT_FOUND"
    assert not_found["context"] == {"ids": ["ghost@example.com"]}

    by_id = crm.post(f"{CONTACTS}/batch/read", json={"inputs": [{"id": contact["id"]}]})
    assert by_id.status_code == 200
    assert by_id.json()["results"][0]["properties"]["email"] == "lin@example.com"


def test_a_crm_ui_edit_is_recorded_as_such(
    crm: httpx.Client, upsert_contacts: UpsertContacts
) -> None:
    (contact,) = upsert_contacts(
        {"email": "rep-owned@example.com", "lifecyclestage": "lead"}
    ).json()["results"]
    time.sleep(0.01)
    edited = crm.patch(
        f"{CONTACTS}/{contact['id']}",
        json={"properties": {"lifecyclestage": "opportunity"}},
        headers={"X-Sandbox-Source": "CRM_UI"},
    )
    assert edited.status_code == 200

    read = crm.get(
        f"{CONTACTS}/{contact['id']}", params={"propertiesWithHistory": "lifecyclestage"}
    ).json()
    history = read["propertiesWithHistory"]["lifecyclestage"]
    assert [(entry["value"], entry["sourceType"]) for entry in history] == [
        ("opportunity", "CRM_UI"),
        ("lead", "INTEGRATION"),
    ]


def test_a_write_of_unchanged_values_changes_nothing(
    crm: httpx.Client, operator: httpx.Client, upsert_contacts: UpsertContacts
) -> None:
    contact = {"email": "same@example.com", "firstname": "Sam", "gtm_fit_score": "70"}
    (first,) = upsert_contacts(contact).json()["results"]
    time.sleep(0.01)
    # The same values, spelled differently where HubSpot treats them as equal.
    (again,) = upsert_contacts(
        {**contact, "email": "SAME@example.com", "gtm_fit_score": "70.0"}
    ).json()["results"]
    assert again["new"] is False
    assert again["updatedAt"] == first["updatedAt"]
    assert again["properties"]["lastmodifieddate"] == first["properties"]["lastmodifieddate"]

    patched = crm.patch(f"{CONTACTS}/{first['id']}", json={"properties": {"firstname": "Sam"}})
    assert patched.json()["updatedAt"] == first["updatedAt"]

    writes = operator.get("/__sandbox/stats").json()["writes"]["contacts"]
    assert writes == {"created": 1, "updated": 0}
    history = crm.get(
        f"{CONTACTS}/{first['id']}", params={"propertiesWithHistory": "firstname"}
    ).json()["propertiesWithHistory"]["firstname"]
    assert len(history) == 1


def test_an_empty_string_clears_a_value(crm: httpx.Client, upsert_contacts: UpsertContacts) -> None:
    (contact,) = upsert_contacts({"email": "clear@example.com", "phone": "+1 555 0100"}).json()[
        "results"
    ]
    upsert_contacts({"email": "clear@example.com", "phone": ""})
    read = crm.get(
        f"{CONTACTS}/{contact['id']}",
        params={"properties": "phone", "propertiesWithHistory": "phone"},
    ).json()
    assert read["properties"]["phone"] is None
    assert [entry["value"] for entry in read["propertiesWithHistory"]["phone"]] == [
        "",
        "+1 555 0100",
    ]
    without_phone = crm.post(
        f"{CONTACTS}/search",
        json={
            "filterGroups": [{"filters": [{"propertyName": "phone", "operator": "HAS_PROPERTY"}]}]
        },
    ).json()
    assert without_phone["total"] == 0


def _search(crm: httpx.Client, **request: object) -> dict:
    response = crm.post(f"{CONTACTS}/search", json=request)
    assert response.status_code == 200, response.text
    return response.json()


def _emails(page: dict) -> list[str]:
    return [result["properties"]["email"] for result in page["results"]]


def test_search_filters_sorts_and_pages(crm: httpx.Client, upsert_contacts: UpsertContacts) -> None:
    upsert_contacts(
        {
            "email": "a@alpha.com",
            "gtm_fit_score": "90",
            "gtm_seniority": "vp",
            "country": "Germany",
        },
        {"email": "b@beta.com", "gtm_fit_score": "40", "gtm_seniority": "manager"},
        {"email": "c@gamma.com", "gtm_fit_score": "75", "gtm_seniority": "vp"},
        {"email": "d@delta.com", "gtm_fit_score": "10", "country": "France"},
    )
    time.sleep(0.02)
    cutoff_ms = int(time.time() * 1000)
    time.sleep(0.02)
    upsert_contacts({"email": "e@epsilon.com", "gtm_fit_score": "100", "gtm_seniority": "vp"})

    vp_by_score = _search(
        crm,
        filterGroups=[
            {"filters": [{"propertyName": "gtm_seniority", "operator": "EQ", "value": "VP"}]}
        ],
        sorts=[{"propertyName": "gtm_fit_score", "direction": "DESCENDING"}],
        properties=["email", "gtm_fit_score"],
    )
    assert vp_by_score["total"] == 3
    assert _emails(vp_by_score) == ["e@epsilon.com", "a@alpha.com", "c@gamma.com"]

    # Numbers compare as numbers ("100" > "75"), and groups are ORed.
    either = _search(
        crm,
        filterGroups=[
            {
                "filters": [
                    {"propertyName": "gtm_fit_score", "operator": "GTE", "value": "75"},
                    {"propertyName": "gtm_seniority", "operator": "EQ", "value": "vp"},
                ]
            },
            {"filters": [{"propertyName": "country", "operator": "IN", "values": ["france"]}]},
        ],
        sorts=[{"propertyName": "email", "direction": "ASCENDING"}],
    )
    assert _emails(either) == ["a@alpha.com", "c@gamma.com", "d@delta.com", "e@epsilon.com"]

    no_country = _search(
        crm,
        filterGroups=[{"filters": [{"propertyName": "country", "operator": "NOT_HAS_PROPERTY"}]}],
        sorts=["email"],
    )
    assert _emails(no_country) == ["b@beta.com", "c@gamma.com", "e@epsilon.com"]

    changed_since = _search(
        crm,
        filterGroups=[
            {
                "filters": [
                    {"propertyName": "lastmodifieddate", "operator": "GT", "value": str(cutoff_ms)}
                ]
            }
        ],
    )
    assert _emails(changed_since) == ["e@epsilon.com"]

    pages: list[str] = []
    after = None
    while True:
        page = _search(crm, sorts=["email"], limit=2, **({"after": after} if after else {}))
        assert page["total"] == 5
        pages.extend(_emails(page))
        after = page.get("paging", {}).get("next", {}).get("after")
        if after is None:
            break
    assert pages == ["a@alpha.com", "b@beta.com", "c@gamma.com", "d@delta.com", "e@epsilon.com"]

    assert len(_search(crm, limit=200)["results"]) == 5
    too_many = crm.post(f"{CONTACTS}/search", json={"limit": 201})
    assert too_many.status_code == 400
    assert too_many.json()["category"] == "VALIDATION_ERROR"
    unknown = crm.post(
        f"{CONTACTS}/search",
        json={
            "filterGroups": [
                {"filters": [{"propertyName": "nope", "operator": "EQ", "value": "1"}]}
            ]
        },
    )
    assert unknown.status_code == 400


def test_list_pages_through_every_record(
    crm: httpx.Client, upsert_contacts: UpsertContacts
) -> None:
    upsert_contacts(*({"email": f"page{n}@example.com"} for n in range(5)))
    seen: list[str] = []
    params: dict[str, str | int] = {"limit": 2, "properties": "email"}
    pages = 0
    while True:
        body = crm.get(CONTACTS, params=params).json()
        pages += 1
        seen.extend(result["properties"]["email"] for result in body["results"])
        if "paging" not in body:
            break
        params["after"] = body["paging"]["next"]["after"]
    assert pages == 3
    assert sorted(seen) == [f"page{n}@example.com" for n in range(5)]


def test_owners_are_the_portals_sales_team(crm: httpx.Client) -> None:
    owners = crm.get("/crm/v3/owners").json()["results"]
    assert [owner["id"] for owner in owners] == [str(n) for n in range(10001, 10009)]
    assert owners[0]["firstName"] == "Avery" and owners[0]["lastName"] == "Brooks"
    assert owners[5]["email"] == "camille.dubois@sandbox-sales.example"
    by_email = crm.get("/crm/v3/owners", params={"email": "taylor.reed@sandbox-sales.example"})
    assert [owner["id"] for owner in by_email.json()["results"]] == ["10008"]
