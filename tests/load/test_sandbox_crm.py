"""The sandbox's HubSpot endpoints the load relies on: all-or-nothing batch create and the
v4 default associations between contacts and companies."""

from __future__ import annotations

from tests.conftest import Crm

CONTACTS = "/crm/v3/objects/contacts"
ASSOCIATE = "/crm/v4/associations/contacts/companies/batch/associate/default"


def _create(crm: Crm, object_type: str, *properties: dict[str, str]) -> list[str]:
    response = crm.http.post(
        f"/crm/v3/objects/{object_type}/batch/create",
        json={"inputs": [{"properties": p} for p in properties]},
    )
    assert response.status_code == 201, response.text
    return [r["id"] for r in response.json()["results"]]


def test_batch_create_writes_all_or_nothing(crm: Crm) -> None:
    _create(crm, "contacts", {"email": "ada@example.com"}, {"email": "alan@example.com"})

    existing = crm.http.post(
        f"{CONTACTS}/batch/create",
        json={
            "inputs": [
                {"properties": {"email": "grace@example.com"}},
                {"properties": {"email": "ADA@example.com"}},
            ]
        },
    )
    assert existing.status_code == 409
    assert existing.json()["category"] == "CONFLICT"

    invalid = crm.http.post(
        f"{CONTACTS}/batch/create",
        json={
            "inputs": [
                {"properties": {"email": "grace@example.com"}},
                {"properties": {"email": "edsger@example.com", "gtm_seniority": "wizard"}},
            ]
        },
    )
    assert invalid.status_code == 400
    assert invalid.json()["category"] == "VALIDATION_ERROR"
    # Neither refused batch wrote anything.
    assert crm.contact("grace@example.com") is None
    assert crm.stats()["writes"]["contacts"] == {"created": 2, "updated": 0}


def test_default_associations_are_created_once_and_read_from_both_sides(crm: Crm) -> None:
    ada, alan = _create(crm, "contacts", {"email": "ada@example.com"}, {"email": "alan@ex.com"})
    (globex,) = _create(crm, "companies", {"domain": "globex.com", "name": "Globex"})
    pairs = {"inputs": [{"from": {"id": ada}, "to": {"id": globex}}]}

    first = crm.http.post(ASSOCIATE, json=pairs)
    assert first.status_code == 200
    assert first.json()["results"] == [
        {
            "from": {"id": ada},
            "to": {"id": globex},
            "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 279},
        }
    ]
    # Associating again changes nothing.
    assert crm.http.post(ASSOCIATE, json=pairs).status_code == 200

    from_contact = crm.http.get(f"/crm/v4/objects/contacts/{ada}/associations/companies").json()
    assert from_contact == {
        "results": [
            {
                "toObjectId": int(globex),
                "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 279, "label": None}],
            }
        ]
    }
    from_company = crm.http.get(f"/crm/v4/objects/companies/{globex}/associations/contacts")
    assert [r["toObjectId"] for r in from_company.json()["results"]] == [int(ada)]
    assert from_company.json()["results"][0]["associationTypes"][0]["typeId"] == 280

    read = crm.http.post(
        "/crm/v4/associations/contacts/companies/batch/read",
        json={"inputs": [{"id": ada}, {"id": alan}]},
    ).json()
    assert [(r["from"]["id"], [t["toObjectId"] for t in r["to"]]) for r in read["results"]] == [
        (ada, [int(globex)])
    ]


def test_an_association_to_a_missing_record_is_refused_alone(crm: Crm) -> None:
    ada, alan = _create(crm, "contacts", {"email": "ada@example.com"}, {"email": "alan@ex.com"})
    (globex,) = _create(crm, "companies", {"domain": "globex.com"})
    response = crm.http.post(
        ASSOCIATE,
        json={
            "inputs": [
                {"from": {"id": ada}, "to": {"id": globex}},
                {"from": {"id": alan}, "to": {"id": "999999"}},
            ]
        },
    )
    assert response.status_code == 207
    body = response.json()
    assert [r["from"]["id"] for r in body["results"]] == [ada]
    (error,) = body["errors"]
    assert error["category"] == "OBJECT_NOT_FOUND"
    assert error["context"] == {"fromObjectId": [alan], "toObjectId": ["999999"]}
    assert "Company 999999 not found" in error["message"]
    missing = crm.http.get("/crm/v4/objects/contacts/999999/associations/companies")
    assert missing.status_code == 404
