"""What stands before the sandbox's CRM API: authentication, the rate limit, injected faults."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from gtm_orchestration.sandbox import SandboxServer

UpsertContacts = Callable[..., httpx.Response]
CONTACTS = "/crm/v3/objects/contacts"


def test_a_request_without_a_token_is_refused(sandbox: SandboxServer) -> None:
    response = httpx.get(f"{sandbox.base_url}{CONTACTS}")
    assert response.status_code == 401
    body = response.json()
    assert body["status"] == "error"
    assert body["category"] == "INVALID_AUTHENTICATION"
    assert body["correlationId"]


@pytest.fixture
def limited_sandbox(tmp_path: Path) -> Iterator[SandboxServer]:
    with SandboxServer(tmp_path / "limited", rate_limit=3, rate_window_s=2.0) as server:
        yield server


def test_the_rate_limit_answers_429_per_token_until_the_window_rolls(
    limited_sandbox: SandboxServer,
) -> None:
    def get(token: str) -> httpx.Response:
        return httpx.get(
            f"{limited_sandbox.base_url}{CONTACTS}", headers={"Authorization": f"Bearer {token}"}
        )

    allowed = [get("rep-a") for _ in range(3)]
    assert [response.status_code for response in allowed] == [200, 200, 200]
    assert [response.headers["X-HubSpot-RateLimit-Remaining"] for response in allowed] == [
        "2",
        "1",
        "0",
    ]
    assert allowed[0].headers["X-HubSpot-RateLimit-Max"] == "3"
    assert allowed[0].headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "2000"

    refused = get("rep-a")
    assert refused.status_code == 429
    body = refused.json()
    assert body["status"] == "error"
    assert body["errorType"] == "RATE_LIMIT"
    assert body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    assert body["groupName"] and body["correlationId"]
    assert refused.headers["X-HubSpot-RateLimit-Remaining"] == "0"

    # Another token has an allowance of its own.
    assert get("rep-b").status_code == 200

    time.sleep(2.05)
    assert get("rep-a").status_code == 200


def test_injected_faults_fail_requests_without_applying_writes(
    crm: httpx.Client, operator: httpx.Client, upsert_contacts: UpsertContacts
) -> None:
    assert operator.get("/__sandbox/faults").json() == {
        "error_rate": 0.0,
        "rate_limit_rate": 0.0,
        "latency_ms": 0,
    }

    operator.post("/__sandbox/faults", json={"error_rate": 1.0}).raise_for_status()
    failed = upsert_contacts({"email": "lost@example.com"})
    assert failed.status_code == 500
    assert failed.json()["status"] == "error"

    operator.post("/__sandbox/faults", json={"rate_limit_rate": 1.0}).raise_for_status()
    throttled = upsert_contacts({"email": "lost@example.com"})
    assert throttled.status_code == 429
    assert throttled.json()["policyName"] == "TEN_SECONDLY_ROLLING"
    assert "X-HubSpot-RateLimit-Max" in throttled.headers

    operator.post("/__sandbox/faults", json={"latency_ms": 200}).raise_for_status()
    assert operator.get("/__sandbox/faults").json()["latency_ms"] == 200
    started = time.monotonic()
    missing = crm.get(f"{CONTACTS}/lost@example.com", params={"idProperty": "email"})
    assert time.monotonic() - started >= 0.2
    assert missing.status_code == 404

    stats = operator.get("/__sandbox/stats").json()
    assert stats["writes"]["contacts"] == {"created": 0, "updated": 0}
    assert stats["by_endpoint"][f"POST {CONTACTS}/batch/upsert"] == {"500": 1, "429": 1}

    operator.post("/__sandbox/reset").raise_for_status()
    assert operator.get("/__sandbox/faults").json()["latency_ms"] == 0
