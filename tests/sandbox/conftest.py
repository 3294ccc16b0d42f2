"""A real sandbox on a free loopback port, in a temporary state folder, reset between tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from gtm_orchestration.sandbox import SandboxServer

TOKEN = "test-private-app-token"


@pytest.fixture(scope="module")
def sandbox_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    # A limit no test reaches by accident; the rate-limit tests start their own server.
    with SandboxServer(tmp_path_factory.mktemp("sandbox"), rate_limit=100_000) as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server: SandboxServer) -> SandboxServer:
    httpx.post(f"{sandbox_server.base_url}/__sandbox/reset").raise_for_status()
    return sandbox_server


@pytest.fixture
def crm(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    """An authenticated client of the sandbox's HubSpot API."""
    with httpx.Client(
        base_url=sandbox.base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    ) as client:
        yield client


@pytest.fixture
def operator(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    """A client of the operator endpoints."""
    with httpx.Client(base_url=sandbox.base_url, timeout=10) as client:
        yield client


@pytest.fixture
def upsert_contacts(crm: httpx.Client) -> Callable[..., httpx.Response]:
    """Batch-upsert contacts keyed by their ``email``."""

    def upsert(*contacts: dict[str, str], headers: dict[str, str] | None = None) -> httpx.Response:
        inputs = [
            {"idProperty": "email", "id": contact["email"], "properties": contact}
            for contact in contacts
        ]
        return crm.post(
            "/crm/v3/objects/contacts/batch/upsert", json={"inputs": inputs}, headers=headers
        )

    return upsert
