"""Enrichment: the client's retries and pacing, and enrich-on-transform through the cache.

The client's retry behaviour is tested against a fake HTTP transport; everything else runs
against the real sandbox on loopback and a DuckDB warehouse in a temporary folder.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import duckdb
import httpx
import pytest

from gtm_orchestration.lib.connectors.enrichment import (
    EnrichmentClient,
    EnrichmentError,
    TokenBucket,
)
from gtm_orchestration.lib.connectors.retries import MAX_BACKOFF_S
from gtm_orchestration.lib.enrichment import (
    MAX_CONSECUTIVE_FAILURES,
    EnrichmentTtl,
    enrich_rows,
    refresh_stale_entries,
)
from gtm_orchestration.lib.mapping import CANONICAL_FIELDS
from gtm_orchestration.lib.transform import transform_leads
from gtm_orchestration.lib.warehouse import Warehouse
from gtm_orchestration.settings import SANDBOX_ENRICHMENT_API_KEY, Settings
from tests.conftest import Crm

COMPANIES = "/enrichment/v1/companies"
ENDPOINT = f"GET {COMPANIES}"
NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
TTL = EnrichmentTtl()

# ---------------------------------------------------------------------------------------
# The client against a fake vendor


class FakeVendor:
    """Answers requests with scripted responses (or raises scripted errors), in order."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def _client(vendor: FakeVendor, sleeps: list[float], **options: float) -> EnrichmentClient:
    return EnrichmentClient(
        "https://enrichment.test",
        "secret-vendor-key",
        requests_per_second=1000,
        transport=httpx.MockTransport(vendor),
        sleep=sleeps.append,
        **options,  # type: ignore[arg-type]
    )


FOUND = httpx.Response(
    200, json={"domain": "acme.com", "name": "Acme", "industry": "Retail", "employees": 120}
)


def test_server_errors_are_retried_with_growing_backoff() -> None:
    vendor = FakeVendor(httpx.Response(503), httpx.Response(502), FOUND)
    sleeps: list[float] = []
    with _client(vendor, sleeps, backoff_base_s=1.0) as client:
        company = client.company("acme.com")
    assert company is not None
    assert (company.name, company.industry, company.employees) == ("Acme", "Retail", 120)
    assert len(vendor.requests) == 3
    assert vendor.requests[0].url.params["domain"] == "acme.com"
    assert vendor.requests[0].headers["Authorization"] == "Bearer secret-vendor-key"
    # Exponential with jitter: the n-th wait lies in [base * 2^(n-1) / 2, base * 2^(n-1)].
    assert 0.5 <= sleeps[0] <= 1.0
    assert 1.0 <= sleeps[1] <= 2.0


def test_a_429_waits_at_least_what_retry_after_asks() -> None:
    vendor = FakeVendor(httpx.Response(429, headers={"Retry-After": "3"}), FOUND)
    sleeps: list[float] = []
    with _client(vendor, sleeps, backoff_base_s=0.1) as client:
        assert client.company("acme.com") is not None
    assert sleeps == [3.0]


def test_retry_after_may_be_an_http_date() -> None:
    later = datetime.now(UTC) + timedelta(seconds=5)
    retry_after = format_datetime(later, usegmt=True)
    vendor = FakeVendor(httpx.Response(503, headers={"Retry-After": retry_after}), FOUND)
    sleeps: list[float] = []
    with _client(vendor, sleeps, backoff_base_s=0.1) as client:
        assert client.company("acme.com") is not None
    assert 3.0 <= sleeps[0] <= 5.0


def test_waits_are_capped() -> None:
    vendor = FakeVendor(httpx.Response(429, headers={"Retry-After": "600"}), FOUND)
    sleeps: list[float] = []
    with _client(vendor, sleeps) as client:
        assert client.company("acme.com") is not None
    assert sleeps == [MAX_BACKOFF_S]


def test_transport_errors_are_retried() -> None:
    vendor = FakeVendor(httpx.ConnectError("connection refused"), FOUND)
    sleeps: list[float] = []
    with _client(vendor, sleeps, backoff_base_s=0.1) as client:
        assert client.company("acme.com") is not None
    assert len(vendor.requests) == 2


def test_the_client_gives_up_after_its_tries() -> None:
    vendor = FakeVendor(httpx.Response(503))
    sleeps: list[float] = []
    with _client(vendor, sleeps, backoff_base_s=0.1) as client, pytest.raises(EnrichmentError) as e:
        client.company("acme.com")
    assert len(vendor.requests) == 4
    assert len(sleeps) == 3  # no wait after the last try
    assert (e.value.attempts, e.value.status, e.value.problem) == (4, 503, "HTTP 503")
    assert str(e.value) == f"{ENDPOINT}?domain=acme.com: gave up after 4 tries (HTTP 503)"


def test_404_is_a_definite_unknown() -> None:
    vendor = FakeVendor(httpx.Response(404, json={"message": "no company known"}))
    with _client(vendor, []) as client:
        assert client.company("nobody.example") is None
    assert len(vendor.requests) == 1


def test_a_refused_key_is_not_retried_and_never_shown() -> None:
    vendor = FakeVendor(httpx.Response(401, json={"message": "invalid API key"}))
    with _client(vendor, []) as client, pytest.raises(EnrichmentError) as e:
        client.company("acme.com")
    assert len(vendor.requests) == 1
    assert (e.value.attempts, e.value.status) == (1, 401)
    assert "invalid API key" in str(e.value)
    assert "secret-vendor-key" not in str(e.value)


def test_the_token_bucket_paces_requests() -> None:
    moments = iter([0.0, 0.0, 0.0, 0.0, 1.0])
    waits: list[float] = []
    bucket = TokenBucket(10, capacity=1, clock=lambda: next(moments), sleep=waits.append)
    assert [bucket.acquire() for _ in range(3)] == [0.0, pytest.approx(0.1), pytest.approx(0.2)]
    assert waits == [pytest.approx(0.1), pytest.approx(0.2)]
    # A second later the reserved tokens are paid back and the bucket holds one again.
    assert bucket.acquire() == 0.0


def test_a_bucket_lets_bursts_of_its_capacity_through() -> None:
    bucket = TokenBucket(5, capacity=3, clock=lambda: 0.0, sleep=lambda _: None)
    assert [bucket.acquire() for _ in range(4)] == [0.0, 0.0, 0.0, pytest.approx(0.2)]


# ---------------------------------------------------------------------------------------
# Settings


def test_the_api_defaults_to_the_sandbox_hubspot_is_pointed_at(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("GTM_ENRICHMENT_BASE_URL", "GTM_ENRICHMENT_API_KEY", "HUBSPOT_ACCESS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HUBSPOT_BASE_URL", "http://127.0.0.1:9999/")
    settings = Settings.from_env()
    assert settings.enrichment_base_url == "http://127.0.0.1:9999"
    assert settings.enrichment_api_key == SANDBOX_ENRICHMENT_API_KEY

    # With a real HubSpot token, HubSpot is no sandbox: the default is the local sandbox.
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", "pat-na1-real")
    assert Settings.from_env().enrichment_base_url == "http://127.0.0.1:8765"

    monkeypatch.setenv("GTM_ENRICHMENT_BASE_URL", "https://enrichment.vendor.test/")
    monkeypatch.setenv("GTM_ENRICHMENT_API_KEY", "vendor-secret")
    settings = Settings.from_env()
    assert settings.enrichment_base_url == "https://enrichment.vendor.test"
    assert settings.enrichment_api_key == "vendor-secret"
    assert "vendor-secret" not in repr(settings)


# ---------------------------------------------------------------------------------------
# Enrich-on-transform against the sandbox


@pytest.fixture
def con(warehouse_url: str) -> Iterator[duckdb.DuckDBPyConnection]:
    with Warehouse(warehouse_url).connect() as connection:
        yield connection


def _lookups(crm: Crm) -> int:
    return sum(crm.stats()["by_endpoint"].get(ENDPOINT, {}).values())


def _vendor(crm: Crm, domain: str) -> dict:
    response = crm.http.get(
        COMPANIES, params={"domain": domain}, headers={"Authorization": "Bearer test"}
    )
    return response.raise_for_status().json()


def _raw_rows(con: duckdb.DuckDBPyConnection, *rows: dict[str, str]) -> str:
    """A table of raw lead rows as extraction lands them; unnamed fields are empty."""
    columns = [*CANONICAL_FIELDS, "source", "source_file", "line", "landed_at", "mapping_version"]
    values = [
        {c: None for c in columns}
        | {"source": "leads", "source_file": "test.csv", "line": i, "mapping_version": 1}
        | {"landed_at": NOW}
        | row
        for i, row in enumerate(rows, start=2)
    ]
    con.execute("DROP TABLE IF EXISTS day_rows")
    con.execute(
        "CREATE TEMP TABLE day_rows ("
        + ", ".join(f"{c} VARCHAR" for c in CANONICAL_FIELDS)
        + ", source VARCHAR, source_file VARCHAR, line INTEGER, landed_at TIMESTAMPTZ, "
        "mapping_version INTEGER)"
    )
    con.executemany(
        f"INSERT INTO day_rows ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
        [[row[c] for c in columns] for row in values],
    )
    return "day_rows"


def _rows(con: duckdb.DuckDBPyConnection, relation: str) -> dict[str, dict]:
    cursor = con.execute(f"SELECT * FROM {relation}")
    names = [d[0] for d in cursor.description]
    return {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}


def _cache(con: duckdb.DuckDBPyConnection) -> dict[str, tuple]:
    rows = con.execute(
        "SELECT domain, found, firmographics, fetched_at, error FROM gtm.enrichment_cache"
    ).fetchall()
    return {row[0]: row[1:] for row in rows}


ROWS = (
    # Its own industry, nothing else.
    {
        "email": "li@acme-robotics.de",
        "website": "https://www.acme-robotics.de/en",
        "industry": "Retail",
    },
    # Every firmographic given: nothing to look up.
    {
        "email": "sam@initech.com",
        "website": "initech.com",
        "company": "Initech",
        "industry": "Software",
        "annual_revenue": "$250M",
        "employees": "1001-5000",
        "country": "US",
    },
    # Free mail and no website: no company to look up.
    {"email": "raj.patel@gmail.com", "company": "Patel Consulting"},
    # No website: the e-mail's domain.
    {"email": "ops@umbrella-analytics.io", "company": "Umbrella", "country": ""},
)


def test_empty_firmographics_are_filled_and_a_leads_own_values_win(
    crm: Crm, con: duckdb.DuckDBPyConnection
) -> None:
    with EnrichmentClient(crm.base_url, "test-key") as client:
        result = enrich_rows(con, _raw_rows(con, *ROWS), client, NOW, TTL)

    assert (result.domains, result.looked_up, result.found, result.from_cache) == (2, 2, 2, 0)
    assert _lookups(crm) == 2
    rows = _rows(con, result.relation)
    acme = _vendor(crm, "acme-robotics.de")
    li = rows["li@acme-robotics.de"]
    assert li["industry"] == "Retail"  # the lead's own value
    assert (li["company"], li["country"]) == (acme["name"], acme["country"])
    assert (li["employees"], li["annual_revenue"]) == (
        str(acme["employees"]),
        str(acme["annual_revenue"]),
    )
    umbrella = _vendor(crm, "umbrella-analytics.io")
    ops = rows["ops@umbrella-analytics.io"]
    assert (ops["company"], ops["industry"], ops["country"]) == (
        "Umbrella",
        umbrella["industry"],
        umbrella["country"],
    )
    assert rows["sam@initech.com"] == _rows(con, "day_rows")["sam@initech.com"] | {
        "enrichment_flag": None
    }
    assert rows["raj.patel@gmail.com"]["industry"] is None
    assert all(row["enrichment_flag"] is None for row in rows.values())


def test_a_value_another_lead_of_the_company_gave_wins_over_the_vendors(
    crm: Crm, con: duckdb.DuckDBPyConnection
) -> None:
    rows = (
        {"email": "dana@globex.com", "website": "globex.com", "industry": "Software"},
        {"email": "sam@globex.com", "website": "https://globex.com", "country": "US"},
    )
    with EnrichmentClient(crm.base_url, "test-key") as client:
        result = enrich_rows(con, _raw_rows(con, *rows), client, NOW, TTL)

    globex = _vendor(crm, "globex.com")
    enriched = _rows(con, result.relation)
    dana, sam = enriched["dana@globex.com"], enriched["sam@globex.com"]
    # Industry and country come from the leads, for both of them.
    assert (dana["industry"], dana["country"]) == ("Software", None)
    assert (sam["industry"], sam["country"]) == (None, "US")
    # What no lead gave comes from the vendor, on every row of the company.
    for row in (dana, sam):
        assert (row["company"], row["employees"]) == (globex["name"], str(globex["employees"]))


def test_a_company_whose_leads_give_every_firmographic_is_not_looked_up(
    crm: Crm, con: duckdb.DuckDBPyConnection
) -> None:
    rows = (
        {"email": "dana@globex.com", "industry": "Software", "employees": "51-200"},
        {"email": "sam@globex.com", "annual_revenue": "$1.2B", "country": "US"},
    )
    with EnrichmentClient(crm.base_url, "test-key") as client:
        result = enrich_rows(con, _raw_rows(con, *rows), client, NOW, TTL)

    assert (result.domains, _lookups(crm)) == (0, 0)
    assert _rows(con, result.relation)["sam@globex.com"]["industry"] is None


def test_a_second_batch_is_served_from_the_cache(crm: Crm, con: duckdb.DuckDBPyConnection) -> None:
    with EnrichmentClient(crm.base_url, "test-key") as client:
        first = enrich_rows(con, _raw_rows(con, *ROWS), client, NOW, TTL)
        second = enrich_rows(con, _raw_rows(con, *ROWS), client, NOW + timedelta(days=29), TTL)

    assert _lookups(crm) == 2
    assert (second.from_cache, second.looked_up) == (2, 0)
    assert _rows(con, second.relation) == _rows(con, first.relation)


def test_expired_answers_are_fetched_again(crm: Crm, con: duckdb.DuckDBPyConnection) -> None:
    rows = (ROWS[0], {"email": "someone@example.com"})  # example.com is unknown
    with EnrichmentClient(crm.base_url, "test-key") as client:
        enrich_rows(con, _raw_rows(con, *rows), client, NOW, TTL)
        # Past the unknown TTL (7 days), within the found one (30 days).
        week = enrich_rows(con, _raw_rows(con, *rows), client, NOW + timedelta(days=8), TTL)
        month = enrich_rows(con, _raw_rows(con, *rows), client, NOW + timedelta(days=31), TTL)

    assert (week.from_cache, week.looked_up, week.unknown) == (1, 1, 1)
    assert (month.from_cache, month.looked_up, month.found, month.unknown) == (0, 2, 1, 1)
    assert _lookups(crm) == 5
    fetched_at = _cache(con)["acme-robotics.de"][2]
    assert fetched_at == NOW + timedelta(days=31)


def test_an_unknown_domain_is_cached_as_unknown(crm: Crm, con: duckdb.DuckDBPyConnection) -> None:
    row = {"email": "someone@example.com", "company": "Example"}
    with EnrichmentClient(crm.base_url, "test-key") as client:
        first = enrich_rows(con, _raw_rows(con, row), client, NOW, TTL)
        again = enrich_rows(con, _raw_rows(con, row), client, NOW + timedelta(days=6), TTL)

    assert (first.unknown, first.flagged_rows) == (1, 0)
    assert _cache(con)["example.com"] == (False, None, NOW, None)
    assert (again.from_cache, _lookups(crm)) == (1, 1)
    assert _rows(con, again.relation)["someone@example.com"]["industry"] is None


def test_an_api_failure_flags_the_rows_and_an_answer_clears_it(
    crm: Crm, con: duckdb.DuckDBPyConnection
) -> None:
    crm.http.post("/__sandbox/faults", json={"error_rate": 1.0}).raise_for_status()
    with EnrichmentClient(crm.base_url, "test-key", backoff_base_s=0.01) as client:
        failed = enrich_rows(con, _raw_rows(con, *ROWS), client, NOW, TTL)
        rows, cache = _rows(con, failed.relation), _cache(con)
        crm.http.post("/__sandbox/faults", json={}).raise_for_status()
        answered = enrich_rows(con, _raw_rows(con, *ROWS), client, NOW, TTL)

    assert (failed.failed, failed.flagged_rows) == (2, 2)
    flag = "enrichment: API failed after 4 tries (HTTP 500)"
    assert rows["li@acme-robotics.de"]["enrichment_flag"] == flag
    assert rows["li@acme-robotics.de"]["employees"] is None
    assert rows["sam@initech.com"]["enrichment_flag"] is None
    assert cache["acme-robotics.de"] == (None, None, None, flag.removeprefix("enrichment: "))

    assert (answered.found, answered.flagged_rows) == (2, 0)
    found, _, fetched_at, error = _cache(con)["acme-robotics.de"]
    assert (found, fetched_at, error) == (True, NOW, None)


def test_a_failed_refetch_falls_back_to_the_last_answer(
    crm: Crm, con: duckdb.DuckDBPyConnection
) -> None:
    with EnrichmentClient(crm.base_url, "test-key", backoff_base_s=0.01) as client:
        first = enrich_rows(con, _raw_rows(con, ROWS[0]), client, NOW, TTL)
        crm.http.post("/__sandbox/faults", json={"error_rate": 1.0}).raise_for_status()
        later = enrich_rows(con, _raw_rows(con, ROWS[0]), client, NOW + timedelta(days=40), TTL)

    assert (later.failed, later.flagged_rows) == (1, 0)
    assert _rows(con, later.relation) == _rows(con, first.relation)
    found, _, fetched_at, error = _cache(con)["acme-robotics.de"]
    assert (found, fetched_at) == (True, NOW)
    assert error == "API failed after 4 tries (HTTP 500)"


def test_once_the_api_keeps_failing_the_rest_of_the_batch_is_not_tried(
    crm: Crm, con: duckdb.DuckDBPyConnection
) -> None:
    crm.http.post("/__sandbox/faults", json={"error_rate": 1.0}).raise_for_status()
    rows = [{"email": f"lead@company-{n}.com"} for n in range(MAX_CONSECUTIVE_FAILURES + 2)]
    with EnrichmentClient(crm.base_url, "test-key", max_attempts=1) as client:
        result = enrich_rows(con, _raw_rows(con, *rows), client, NOW, TTL)

    assert _lookups(crm) == MAX_CONSECUTIVE_FAILURES
    assert (result.looked_up, result.failed, result.flagged_rows) == (3, 5, 5)
    flags = sorted(row["enrichment_flag"] for row in _rows(con, result.relation).values())
    assert flags[:3] == ["enrichment: API failed after 1 try (HTTP 500)"] * 3
    assert (
        flags[3:]
        == ["enrichment: not tried, the API failed for the 3 domains before (HTTP 500)"] * 2
    )


def test_enrichment_flags_join_the_leads_other_flags(
    crm: Crm, con: duckdb.DuckDBPyConnection
) -> None:
    rows = (
        {"email": "li@acme-robotics.de", "website": "acme-robotics.de", "country": "Atlantis"},
        {"email": "LI@acme-robotics.de ", "employees": "12"},
        {"email": "sam@initech.com", "website": "initech.com"},
    )
    crm.http.post("/__sandbox/faults", json={"error_rate": 1.0}).raise_for_status()
    with EnrichmentClient(crm.base_url, "test-key", backoff_base_s=0.01) as client:
        result = enrich_rows(con, _raw_rows(con, *rows), client, NOW, TTL)
    leads, _ = transform_leads(con, result.relation)
    flagged = {lead["email"]: lead["flags"] for lead in leads.to_pylist()}

    failure = "enrichment: API failed after 4 tries (HTTP 500)"
    assert flagged == {
        "li@acme-robotics.de": f"country: not a known country ('Atlantis'); {failure}",
        "sam@initech.com": failure,
    }


def test_a_refresh_refetches_stale_answers_of_existing_companies(
    crm: Crm, warehouse_url: str
) -> None:
    warehouse = Warehouse(warehouse_url)
    rows = (ROWS[0], {"email": "ops@umbrella-analytics.io"}, {"email": "x@gone-company.com"})
    with warehouse.connect() as con, EnrichmentClient(crm.base_url, "test-key") as client:
        enrich_rows(con, _raw_rows(con, *rows), client, NOW, TTL)
        # gone-company.com has no company any more: its answer is not refreshed.
        con.execute(
            "CREATE TABLE gtm.companies AS SELECT * FROM (VALUES "
            "('acme-robotics.de', DATE '2026-11-01'), ('acme-robotics.de', DATE '2026-11-02'), "
            "('umbrella-analytics.io', DATE '2026-11-02')) AS c(domain, partition_date)"
        )
    crm.http.put(
        "/__sandbox/enrichment/companies/acme-robotics.de", json={"employees": 4321}
    ).raise_for_status()
    before = _lookups(crm)

    with EnrichmentClient(crm.base_url, "test-key") as client:
        fresh = refresh_stale_entries(warehouse.connect, client, NOW + timedelta(days=29), TTL)
        stale = refresh_stale_entries(warehouse.connect, client, NOW + timedelta(days=31), TTL)

    assert (fresh.stale, fresh.days) == (0, [])
    assert (stale.stale, stale.looked_up, stale.found) == (2, 2, 2)
    assert stale.changed == ["acme-robotics.de"]
    assert stale.days == ["2026-11-01", "2026-11-02"]
    assert _lookups(crm) == before + 2
    with warehouse.connect() as con:
        cache = _cache(con)
    assert json.loads(cache["acme-robotics.de"][1])["employees"] == 4321
    assert cache["gone-company.com"][2] == NOW
