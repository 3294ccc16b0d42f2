"""What the load tests share: made-up lead files, a CRM observer and warehouse reads."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import httpx

from gtm_orchestration.lib.warehouse import Warehouse
from gtm_orchestration.settings import Settings
from tests.conftest import Crm

# The sandbox's rate limit is per token: reading the CRM back never eats the load's budget.
OBSERVER_TOKEN = "load-test-observer"
HEADER = (
    "email,first_name,last_name,title,company,website,phone,country,state,city,industry,"
    "annual_revenue,employees\n"
)
TITLES = ("VP of Marketing", "Sales Manager", "Software Engineer", "CFO", "Director of IT")


def leads_csv(count: int, *, companies: int = 20, prefix: str = "lead") -> str:
    """``count`` well-formed leads at ``companies`` companies, every firmographic given (so
    the transform asks the enrichment API nothing)."""
    lines = [HEADER]
    for i in range(count):
        k = i % companies
        lines.append(
            f"{prefix}{i}@company{k}.com,Person,Number{i},{TITLES[i % len(TITLES)]},"
            f"Company {k},https://www.company{k}.com,,United States,CA,San Francisco,"
            f"Software,$12M,51-200\n"
        )
    return "".join(lines)


def observer(crm: Crm) -> Crm:
    """The CRM read through a token of its own."""
    headers = {"Authorization": f"Bearer {OBSERVER_TOKEN}"}
    return Crm(crm.base_url, httpx.Client(base_url=crm.base_url, headers=headers, timeout=60))


def all_records(crm: Crm, object_type: str, *props: str) -> list[dict]:
    """Every record of ``object_type``, page by page, waiting out the rate limit if met."""
    records: list[dict] = []
    after = None
    while True:
        params = {"limit": 100, "properties": ",".join(props)} | ({"after": after} if after else {})
        response = crm.http.get(f"/crm/v3/objects/{object_type}", params=params)
        if response.status_code == 429:
            time.sleep(1.0)
            continue
        page = response.raise_for_status().json()
        records += page["results"]
        after = page.get("paging", {}).get("next", {}).get("after")
        if not after:
            return records


def set_faults(crm: Crm, **faults: float) -> None:
    """Inject faults into the sandbox's CRM (none when called without arguments)."""
    crm.http.post("/__sandbox/faults", json=faults).raise_for_status()


@contextmanager
def warehouse(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    """The test's warehouse, read-only."""
    with Warehouse(settings.warehouse_url).connect(read_only=True) as con:
        yield con


def pending_dead_letters(settings: Settings) -> dict[str, tuple[str, str, str]]:
    """Pending dead letters as ``stream:key`` -> (category, error code, error)."""
    with warehouse(settings) as con:
        rows = con.execute(
            "SELECT stream || ':' || record_key, category, error_code, error "
            "FROM gtm.dead_letters WHERE status = 'pending'"
        ).fetchall()
    return {key: (category, code, error) for key, category, code, error in rows}


def associated_company_domains(crm: Crm, contacts: list[dict]) -> dict[str, list[str]]:
    """Each contact's associated companies' domains, read through the v4 API."""
    domains = {c["id"]: c["properties"]["domain"] for c in crm.all("companies", "domain")}
    found = {}
    for contact in contacts:
        response = crm.http.get(
            f"/crm/v4/objects/contacts/{contact['id']}/associations/companies"
        ).raise_for_status()
        found[contact["properties"]["email"]] = sorted(
            domains[str(r["toObjectId"])] for r in response.json()["results"]
        )
    return found
