"""Shared fixtures: a sandbox CRM on a free port, a data folder and a warehouse per test.

The warehouse is a DuckDB file in the test's folder; with ``GTM_TEST_WAREHOUSE=postgres``
it is a fresh PostgreSQL database instead (created for the test, dropped after it) on the
server of ``GTM_TEST_POSTGRES_URL`` (default: postgres on 127.0.0.1:5432).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg2
import pytest

from gtm_orchestration.sandbox.server import SandboxServer
from gtm_orchestration.settings import SANDBOX_HUBSPOT_TOKEN, Settings


@dataclass
class Crm:
    """The sandbox CRM as a test sees it: through its public HTTP API only."""

    base_url: str
    http: httpx.Client

    def contact(self, email: str, *props: str) -> dict | None:
        params = {"idProperty": "email"}
        if props:
            params["properties"] = ",".join(props)
            params["propertiesWithHistory"] = ",".join(props)
        response = self.http.get(f"/crm/v3/objects/contacts/{email}", params=params)
        return None if response.status_code == 404 else response.raise_for_status().json()

    def all(self, object_type: str, *props: str) -> list[dict]:
        records, after = [], None
        while True:
            params = {"limit": 100, "properties": ",".join(props)}
            if after:
                params["after"] = after
            page = self.http.get(f"/crm/v3/objects/{object_type}", params=params).json()
            records += page["results"]
            after = page.get("paging", {}).get("next", {}).get("after")
            if not after:
                return records

    def stats(self) -> dict:
        return self.http.get("/__sandbox/stats").json()

    def writes(self) -> int:
        """Records created or changed so far, over every object type."""
        return sum(sum(counts.values()) for counts in self.stats()["writes"].values())

    def write_requests(self) -> int:
        """Requests to endpoints that can change records."""
        total = 0
        for endpoint, statuses in self.stats()["by_endpoint"].items():
            method, path = endpoint.split(" ", 1)
            if (
                method in ("PATCH", "DELETE")
                or path.endswith(("/batch/upsert", "/batch/create", "/batch/update"))
                or method == "POST"
                and path.count("/") == 4
            ):
                total += sum(statuses.values())
        return total


@pytest.fixture
def crm(tmp_path: Path) -> Iterator[Crm]:
    with SandboxServer(tmp_path / "sandbox-state") as server:
        headers = {"Authorization": f"Bearer {SANDBOX_HUBSPOT_TOKEN}"}
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as http:
            yield Crm(server.base_url, http)


# Test databases on the shared server are named so; each test's has a random suffix.
TEST_DATABASE_PREFIX = "pgw_test_"


def postgres_test_warehouse() -> bool:
    """Whether the tests run their warehouses on PostgreSQL (GTM_TEST_WAREHOUSE=postgres)."""
    kind = os.environ.get("GTM_TEST_WAREHOUSE", "duckdb")
    if kind not in ("duckdb", "postgres"):
        raise ValueError(f"GTM_TEST_WAREHOUSE={kind!r}: expected duckdb or postgres")
    return kind == "postgres"


@pytest.fixture
def warehouse_url(tmp_path: Path) -> Iterator[str]:
    """This test's warehouse: ``$GTM_DATA_DIR/warehouse.duckdb`` of the test's data folder,
    or a PostgreSQL database of its own with GTM_TEST_WAREHOUSE=postgres."""
    if not postgres_test_warehouse():
        yield f"duckdb:///{tmp_path / 'data' / 'warehouse.duckdb'}"
        return
    server = os.environ.get(
        "GTM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    name = f"{TEST_DATABASE_PREFIX}{uuid.uuid4().hex[:16]}"
    _administer(server, f'CREATE DATABASE "{name}"')
    try:
        yield urlsplit(server)._replace(path=f"/{name}").geturl()
    finally:
        # FORCE: a run worker or a daemon of the test may still hold a connection.
        _administer(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _administer(server: str, statement: str) -> None:
    con = psycopg2.connect(server)
    try:
        con.autocommit = True  # CREATE / DROP DATABASE run outside a transaction
        with con.cursor() as cursor:
            cursor.execute(statement)
    finally:
        con.close()


@pytest.fixture
def settings(
    tmp_path: Path, crm: Crm, warehouse_url: str, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """A data folder, instance folder, warehouse and CRM of this test's own, set in the
    environment."""
    data_dir = tmp_path / "data"
    monkeypatch.setenv("GTM_DATA_DIR", str(data_dir))
    monkeypatch.setenv("HUBSPOT_BASE_URL", crm.base_url)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    if postgres_test_warehouse():
        monkeypatch.setenv("GTM_WAREHOUSE_URL", warehouse_url)
    else:
        # The default, as a user's: $GTM_DATA_DIR/warehouse.duckdb.
        monkeypatch.delenv("GTM_WAREHOUSE_URL", raising=False)
    monkeypatch.delenv("HUBSPOT_ACCESS_TOKEN", raising=False)
    (tmp_path / "dagster_home").mkdir()
    return Settings.from_env()


def drop_file(settings: Settings, source: str, name: str, content: str | bytes) -> Path:
    """Drop a file into the landing zone as a user would: whole, under its final name."""
    folder = settings.files_landing_dir / source
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.part"
    tmp.write_bytes(content.encode() if isinstance(content, str) else content)
    tmp.rename(folder / name)
    return folder / name
