"""The operator's view of the sandbox: statistics, reset, and state that survives a restart."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from gtm_orchestration.sandbox import SandboxServer

UpsertContacts = Callable[..., httpx.Response]
CONTACTS = "/crm/v3/objects/contacts"
AUTH = {"Authorization": "Bearer operator-test-token"}


def test_health_is_ok(operator: httpx.Client) -> None:
    assert operator.get("/healthz").json() == {"status": "ok"}


def test_stats_count_requests_by_endpoint_template_and_records_written(
    crm: httpx.Client, operator: httpx.Client, upsert_contacts: UpsertContacts
) -> None:
    (contact,) = upsert_contacts({"email": "stats@example.com"}).json()["results"]
    upsert_contacts({"email": "stats@example.com", "firstname": "Stat"})
    upsert_contacts({"email": "stats@example.com", "firstname": "Stat"})
    crm.patch(f"{CONTACTS}/{contact['id']}", json={"properties": {"lastname": "Istic"}})
    crm.get(f"{CONTACTS}/stats@example.com", params={"idProperty": "email"})
    crm.get(f"{CONTACTS}/424242")
    crm.post("/crm/v3/objects/companies", json={"properties": {"domain": "stats.io"}})
    operator.get("/healthz")

    stats = operator.get("/__sandbox/stats").json()
    assert stats["by_endpoint"] == {
        f"POST {CONTACTS}/batch/upsert": {"200": 3},
        f"PATCH {CONTACTS}/{{id}}": {"200": 1},
        f"GET {CONTACTS}/{{id}}": {"200": 1, "404": 1},
        "POST /crm/v3/objects/companies": {"201": 1},
    }
    assert stats["total"] == 7
    assert stats["writes"] == {
        "contacts": {"created": 1, "updated": 2},
        "companies": {"created": 1, "updated": 0},
    }


def test_reset_wipes_records_history_and_stats(
    crm: httpx.Client, operator: httpx.Client, upsert_contacts: UpsertContacts
) -> None:
    (contact,) = upsert_contacts({"email": "gone@example.com"}).json()["results"]
    assert operator.post("/__sandbox/reset").status_code == 200

    assert crm.get(f"{CONTACTS}/{contact['id']}").status_code == 404
    stats = operator.get("/__sandbox/stats").json()
    assert stats["total"] == 1  # the GET just made
    assert stats["writes"]["contacts"] == {"created": 0, "updated": 0}
    (recreated,) = upsert_contacts({"email": "gone@example.com"}).json()["results"]
    assert recreated["new"] is True
    # Ids keep rising, so an id cached before the reset cannot name another record.
    assert int(recreated["id"]) > int(contact["id"])
    history = crm.get(
        f"{CONTACTS}/{recreated['id']}", params={"propertiesWithHistory": "email"}
    ).json()["propertiesWithHistory"]["email"]
    assert len(history) == 1


def test_records_history_and_stats_survive_a_restart(tmp_path: Path) -> None:
    state_dir = tmp_path / "sandbox-state"
    with SandboxServer(state_dir) as first_run:
        upsert = httpx.post(
            f"{first_run.base_url}{CONTACTS}/batch/upsert",
            headers=AUTH,
            json={"inputs": [{"idProperty": "email", "id": "kept@example.com", "properties": {}}]},
        )
        (contact,) = upsert.json()["results"]

    with SandboxServer(state_dir) as second_run:
        read = httpx.get(
            f"{second_run.base_url}{CONTACTS}/kept@example.com",
            headers=AUTH,
            params={"idProperty": "email", "propertiesWithHistory": "email"},
        )
        assert read.status_code == 200
        assert read.json()["id"] == contact["id"]
        assert read.json()["createdAt"] == contact["createdAt"]
        assert read.json()["propertiesWithHistory"]["email"][0]["value"] == "kept@example.com"
        stats = httpx.get(f"{second_run.base_url}/__sandbox/stats").json()
        assert stats["by_endpoint"][f"POST {CONTACTS}/batch/upsert"] == {"200": 1}
        assert stats["writes"]["contacts"]["created"] == 1
