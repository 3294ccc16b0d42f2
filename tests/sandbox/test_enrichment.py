"""The sandbox's company enrichment API: its catalogue, its gateway and the operator's view."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gtm_orchestration.lib.normalize import normalize_country, normalize_industry
from gtm_orchestration.sandbox import SandboxServer
from gtm_orchestration.sandbox.enrichment import (
    COUNTRY_BY_TLD,
    GENERIC_TLD_COUNTRIES,
    INDUSTRIES,
)

COMPANIES = "/enrichment/v1/companies"
FIELDS = {"domain", "name", "industry", "employees", "annual_revenue", "country", "updated_at"}


@pytest.fixture
def vendor(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    """A client of the enrichment API with a key."""
    with httpx.Client(
        base_url=sandbox.base_url, headers={"Authorization": "Bearer vendor-key"}, timeout=10
    ) as client:
        yield client


def test_a_known_domain_answers_the_same_firmographics_every_time(vendor: httpx.Client) -> None:
    first = vendor.get(COMPANIES, params={"domain": "acme-robotics.de"})
    assert first.status_code == 200
    company = first.json()
    assert set(company) == FIELDS
    assert company["domain"] == "acme-robotics.de"
    assert company["name"] == "Acme Robotics"
    assert company["country"] == "Germany"  # from the country-code top-level domain
    assert company["industry"] in INDUSTRIES
    assert isinstance(company["employees"], int) and company["employees"] >= 1
    assert isinstance(company["annual_revenue"], int) and company["annual_revenue"] > 0
    assert company["updated_at"].endswith("Z")

    # Case, www. and a trailing dot name the same company.
    again = vendor.get(COMPANIES, params={"domain": "WWW.Acme-Robotics.de."}).json()
    assert again == company


@pytest.mark.parametrize(
    "domain", ["example.com", "shop.example.org", "acme.test", "acme.invalid", "demo.example"]
)
def test_reserved_domains_are_unknown(vendor: httpx.Client, domain: str) -> None:
    answer = vendor.get(COMPANIES, params={"domain": domain})
    assert answer.status_code == 404
    assert domain in answer.json()["message"]


def test_a_value_that_is_no_domain_is_refused(vendor: httpx.Client) -> None:
    answer = vendor.get(COMPANIES, params={"domain": "not a domain"})
    assert answer.status_code == 400
    assert "'not a domain'" in answer.json()["message"]
    assert vendor.get(COMPANIES).status_code == 422


def test_requests_without_a_bearer_key_are_refused(sandbox: SandboxServer) -> None:
    answer = httpx.get(f"{sandbox.base_url}{COMPANIES}", params={"domain": "acme.com"})
    assert answer.status_code == 401
    assert "Bearer" in answer.json()["message"]


def test_every_generated_industry_and_country_is_one_the_pipeline_recognises() -> None:
    for industry in INDUSTRIES:
        assert normalize_industry(industry), industry
    countries = [*COUNTRY_BY_TLD.values(), *(name for name, _ in GENERIC_TLD_COUNTRIES)]
    for country in countries:
        assert normalize_country(country), country


def test_each_key_is_limited_to_ten_requests_a_second(tmp_path: Path) -> None:
    with (
        SandboxServer(tmp_path / "sandbox") as server,
        httpx.Client(base_url=server.base_url, timeout=10) as http,
    ):

        def get(key: str) -> httpx.Response:
            return http.get(
                COMPANIES, params={"domain": "acme.com"}, headers={"Authorization": f"Bearer {key}"}
            )

        answers = [get("key-a") for _ in range(12)]
        assert [a.status_code for a in answers[:10]] == [200] * 10
        throttled = answers[10]
        assert throttled.status_code == 429
        assert throttled.headers["Retry-After"] == "1"
        # Another key has an allowance of its own; the first is free again a second later.
        assert get("key-b").status_code == 200
        time.sleep(1.05)
        assert get("key-a").status_code == 200


def test_injected_faults_apply_to_enrichment(vendor: httpx.Client, operator: httpx.Client) -> None:
    operator.post("/__sandbox/faults", json={"error_rate": 1.0}).raise_for_status()
    assert vendor.get(COMPANIES, params={"domain": "acme.com"}).status_code == 500

    operator.post("/__sandbox/faults", json={"rate_limit_rate": 1.0}).raise_for_status()
    throttled = vendor.get(COMPANIES, params={"domain": "acme.com"})
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "1"

    operator.post("/__sandbox/faults", json={"latency_ms": 200}).raise_for_status()
    started = time.monotonic()
    assert vendor.get(COMPANIES, params={"domain": "acme.com"}).status_code == 200
    assert time.monotonic() - started >= 0.2


def test_stats_count_enrichment_requests_by_status(
    vendor: httpx.Client, operator: httpx.Client
) -> None:
    vendor.get(COMPANIES, params={"domain": "acme.com"})
    vendor.get(COMPANIES, params={"domain": "initech.com"})
    vendor.get(COMPANIES, params={"domain": "example.com"})
    httpx.get(f"{operator.base_url}{COMPANIES}", params={"domain": "acme.com"})

    stats = operator.get("/__sandbox/stats").json()
    assert stats["by_endpoint"] == {f"GET {COMPANIES}": {"200": 2, "401": 1, "404": 1}}
    assert stats["total"] == 4


def test_the_operator_can_change_a_company_until_reset(
    vendor: httpx.Client, operator: httpx.Client
) -> None:
    generated = vendor.get(COMPANIES, params={"domain": "acme.com"}).json()
    changed = operator.put(
        "/__sandbox/enrichment/companies/acme.com", json={"employees": 4321, "industry": "Retail"}
    )
    assert changed.status_code == 200

    company = vendor.get(COMPANIES, params={"domain": "acme.com"}).json()
    assert (company["employees"], company["industry"]) == (4321, "Retail")
    assert company["name"] == generated["name"]
    assert company["updated_at"] > generated["updated_at"]

    # An override makes even a reserved domain known.
    operator.put("/__sandbox/enrichment/companies/example.com", json={"name": "Example"})
    assert vendor.get(COMPANIES, params={"domain": "example.com"}).json()["name"] == "Example"

    operator.post("/__sandbox/reset").raise_for_status()
    assert vendor.get(COMPANIES, params={"domain": "acme.com"}).json() == generated
    assert vendor.get(COMPANIES, params={"domain": "example.com"}).status_code == 404


def test_operator_overrides_survive_a_restart(tmp_path: Path) -> None:
    state_dir = tmp_path / "sandbox-state"
    headers = {"Authorization": "Bearer vendor-key"}
    with SandboxServer(state_dir) as first_run:
        httpx.put(
            f"{first_run.base_url}/__sandbox/enrichment/companies/acme.com",
            json={"employees": 77},
        ).raise_for_status()

    with SandboxServer(state_dir) as second_run:
        company = httpx.get(
            f"{second_run.base_url}{COMPANIES}", params={"domain": "acme.com"}, headers=headers
        ).json()
    assert company["employees"] == 77
