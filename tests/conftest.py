"""Shared fixtures: a sandbox CRM on a free port, a data folder, a warehouse and a Dagster
instance per test, a local S3 server.

A test runs on one of two backends (fixture ``backend``): ``embedded``, the defaults (a
SQLite instance in the test's folder, a DuckDB warehouse file, steps in the run's process),
or ``postgres``: the instance and the warehouse each in a fresh PostgreSQL database of the
test's own (created before it, dropped after it) on the server of ``GTM_TEST_PG_URL``
(default: postgres on 127.0.0.1:5432), with the multiprocess executor. The end-to-end tests
run on both (``tests/e2e/conftest.py``); ``GTM_TEST_BACKEND=postgres`` puts every other test
on PostgreSQL too.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import dagster as dg
import httpx
import pytest
import sqlalchemy as sa
from moto.server import ThreadedMotoServer

from bench.postgres import scratch_database
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


# The PostgreSQL server the tests make their databases on (a trust login on loopback here).
POSTGRES_SERVER_URL = (
    os.environ.get("GTM_TEST_PG_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
)
BACKENDS = ("embedded", "postgres")


@pytest.fixture
def backend() -> str:
    """Where this test's instance and warehouse live: ``GTM_TEST_BACKEND``, else embedded."""
    chosen = os.environ.get("GTM_TEST_BACKEND") or "embedded"
    if chosen not in BACKENDS:
        raise ValueError(f"GTM_TEST_BACKEND={chosen!r}: expected one of {', '.join(BACKENDS)}")
    return chosen


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A new, empty PostgreSQL database of this test's own, dropped after it; its URL."""
    server = sa.engine.make_url(POSTGRES_SERVER_URL)
    try:
        sa.create_engine(server, poolclass=sa.NullPool).connect().close()
    except sa.exc.OperationalError as error:
        raise RuntimeError(
            f"PostgreSQL at {server.host}:{server.port or 5432} (GTM_TEST_PG_URL) is needed "
            f"by this test and does not answer: {error.orig}"
        ) from None
    with scratch_database(POSTGRES_SERVER_URL, "gtm_test") as url:
        yield url


@pytest.fixture
def instance_database(pg_database: str) -> str:
    """The PostgreSQL database of a ``postgres`` backend's Dagster instance."""
    return pg_database


@pytest.fixture
def warehouse_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """This test's warehouse: ``$GTM_DATA_DIR/warehouse.duckdb`` of the test's data folder,
    or a PostgreSQL database of its own on the ``postgres`` backend."""
    if backend != "postgres":
        yield f"duckdb:///{tmp_path / 'data' / 'warehouse.duckdb'}"
        return
    with scratch_database(POSTGRES_SERVER_URL, "gtm_test_warehouse") as url:
        yield url


@pytest.fixture
def settings(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    crm: Crm,
    backend: str,
    warehouse_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:
    """A data folder, instance folder, warehouse and CRM of this test's own, set in the
    environment."""
    data_dir = tmp_path / "data"
    monkeypatch.setenv("GTM_DATA_DIR", str(data_dir))
    monkeypatch.setenv("HUBSPOT_BASE_URL", crm.base_url)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.delenv("GTM_STORAGE_URL", raising=False)
    monkeypatch.delenv("GTM_S3_ENDPOINT_URL", raising=False)
    if backend == "postgres":
        monkeypatch.setenv("GTM_WAREHOUSE_URL", warehouse_url)
        monkeypatch.setenv("DAGSTER_PG_URL", request.getfixturevalue("instance_database"))
        monkeypatch.setenv("GTM_EXECUTOR", "multiprocess")
    else:
        # The defaults, as a user's: $GTM_DATA_DIR/warehouse.duckdb, a SQLite instance in
        # $DAGSTER_HOME, steps in the run's process.
        monkeypatch.delenv("GTM_WAREHOUSE_URL", raising=False)
        monkeypatch.delenv("DAGSTER_PG_URL", raising=False)
        monkeypatch.delenv("GTM_EXECUTOR", raising=False)
    monkeypatch.delenv("HUBSPOT_ACCESS_TOKEN", raising=False)
    (tmp_path / "dagster_home").mkdir()
    return Settings.from_env()


@dataclass
class ObjectStore:
    """An S3-compatible server on loopback and one bucket of this test's own."""

    endpoint_url: str
    bucket: str

    def client(self) -> Any:
        return boto3.client("s3", endpoint_url=self.endpoint_url)

    def keys(self, prefix: str = "") -> list[str]:
        pages = (
            self.client()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=self.bucket, Prefix=prefix)
        )
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def get(self, key: str) -> bytes:
        return self.client().get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def put(self, key: str, content: bytes) -> None:
        self.client().put_object(Bucket=self.bucket, Key=key, Body=content)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's S3 server on a free loopback port, shared by the session; its endpoint URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def object_store(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> ObjectStore:
    """A new bucket on the local S3 server, with the AWS variables a deployment would set."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "gtm-test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "gtm-test-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    store = ObjectStore(s3_server, f"gtm-{uuid.uuid4().hex[:12]}")
    store.client().create_bucket(Bucket=store.bucket)
    return store


@pytest.fixture
def s3_settings(
    settings: Settings, object_store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """``settings`` with the landing zone in ``object_store`` (prefix ``gtm``)."""
    monkeypatch.setenv("GTM_STORAGE_URL", f"s3://{object_store.bucket}/gtm")
    monkeypatch.setenv("GTM_S3_ENDPOINT_URL", object_store.endpoint_url)
    return Settings.from_env()


@contextmanager
def pipeline_instance() -> Iterator[dg.DagsterInstance]:
    """A Dagster instance for a test that drives runs itself: in a temporary folder, stored
    in the backend's database when ``DAGSTER_PG_URL`` is set (the ``postgres`` backend)."""
    url = os.environ.get("DAGSTER_PG_URL")
    overrides = {"storage": {"postgres": {"postgres_url": url}}} if url else None
    with dg.instance_for_test(overrides=overrides) as instance:
        yield instance


def drop_file(settings: Settings, source: str, name: str, content: str | bytes) -> Path:
    """Drop a file into the landing zone as a user would: whole, under its final name."""
    folder = settings.files_landing_dir / source
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.part"
    tmp.write_bytes(content.encode() if isinstance(content, str) else content)
    tmp.rename(folder / name)
    return folder / name
