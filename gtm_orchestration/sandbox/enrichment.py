"""A company enrichment API: ``GET /enrichment/v1/companies?domain=acme.com`` -> firmographics.

Shaped like the firmographics lookups of enrichment vendors: a bearer key, a per-key rate
limit of 10 requests a second (429 with ``Retry-After``), one JSON object per company and
404 for a domain the vendor knows nothing about. The operator's injected faults (error
rate, 429 rate, latency) apply here as they do to the CRM.

The catalogue is generated, not stored: every domain is a known company whose name,
industry, head count, revenue, country and ``updated_at`` are drawn from a random generator
seeded with the domain, so the same domain always gets the same answer and any domain the
demo traffic or the sample files use is known. The country follows a country-code top-level
domain (``.de`` -> Germany). Reserved domains are unknown (404): those under the reserved
top-level domains ``.test``, ``.example``, ``.invalid`` and ``.localhost`` and the example
domains ``example.com``, ``example.net`` and ``example.org`` (RFC 2606), where no company
lives. ``PUT /__sandbox/enrichment/companies/{domain}`` overrides fields of one company (so
a test can watch a refresh pick up a change); overrides are kept with the sandbox's state
and cleared by ``POST /__sandbox/reset``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from gtm_orchestration.sandbox.faults import FaultInjector, InjectedFault
from gtm_orchestration.sandbox.rate_limit import RollingWindowLimiter
from gtm_orchestration.sandbox.state import SandboxDatabase

ENRICHMENT_PREFIX = "/enrichment/"
DEFAULT_RATE_LIMIT = 10  # requests per second per key
RESERVED_TLDS = frozenset({"test", "example", "invalid", "localhost"})
RESERVED_DOMAINS = frozenset({"example.com", "example.net", "example.org"})

# Vendor-style labels; each is one the pipeline's industry dictionary recognises.
INDUSTRIES = (
    "Computer Software",
    "Information Technology & Services",
    "Internet",
    "Financial Services",
    "Banking",
    "Insurance",
    "Hospital & Health Care",
    "Biotechnology",
    "Marketing & Advertising",
    "Management Consulting",
    "Retail",
    "Logistics & Supply Chain",
    "Telecommunications",
    "Real Estate",
    "Automotive",
    "Food & Beverages",
    "Construction",
    "Higher Education",
)
COUNTRY_BY_TLD = {
    "au": "Australia",
    "br": "Brazil",
    "ca": "Canada",
    "ch": "Switzerland",
    "de": "Germany",
    "es": "Spain",
    "fr": "France",
    "ie": "Ireland",
    "in": "India",
    "it": "Italy",
    "jp": "Japan",
    "kr": "South Korea",
    "mx": "Mexico",
    "nl": "Netherlands",
    "se": "Sweden",
    "sg": "Singapore",
    "uk": "United Kingdom",
    "us": "United States",
}
# Generic top-level domains (.com, .io, ...): most such companies are American.
GENERIC_TLD_COUNTRIES = (
    ("United States", 12),
    ("United Kingdom", 2),
    ("Germany", 2),
    ("Canada", 1),
    ("France", 1),
    ("Australia", 1),
    ("Netherlands", 1),
)
_CATALOGUE_START = date(2025, 1, 1)
_CATALOGUE_DAYS = 660  # updated_at falls between 2025-01-01 and late October 2026
_DOMAIN = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{1,62}")

_OVERRIDES_DDL = """
CREATE TABLE IF NOT EXISTS enrichment_overrides (
    domain TEXT PRIMARY KEY,
    fields TEXT NOT NULL,
    updated_at TEXT NOT NULL
)
"""

CallNext = Callable[[Request], Awaitable[Response]]


class CompanyOverride(BaseModel):
    """Fields of one company that replace the generated ones; unset fields stay generated."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    industry: str | None = None
    employees: int | None = Field(default=None, ge=1)
    annual_revenue: int | None = Field(default=None, ge=0)
    country: str | None = None


def normalize_domain(raw: str) -> str | None:
    """The looked-up domain, lower case, without ``www.`` or a trailing dot; None if ``raw``
    is not a host name."""
    domain = raw.strip().lower().rstrip(".")
    domain = domain.removeprefix("www.")
    return domain if _DOMAIN.fullmatch(domain) else None


def is_reserved(domain: str) -> bool:
    """Whether ``domain`` is reserved for tests and documentation, so no company's."""
    tld = domain.rsplit(".", 1)[-1]
    return tld in RESERVED_TLDS or any(
        domain == reserved or domain.endswith("." + reserved) for reserved in RESERVED_DOMAINS
    )


def generated_company(domain: str) -> dict[str, object]:
    """The catalogue's firmographics of ``domain``: the same every time for one domain."""
    seed = int.from_bytes(hashlib.sha256(domain.encode()).digest()[:8], "big")
    rng = random.Random(seed)
    label = domain.split(".", 1)[0]
    name = " ".join(word.capitalize() for word in re.split(r"[-_]+", label) if word)
    tld = domain.rsplit(".", 1)[-1]
    countries, weights = zip(*GENERIC_TLD_COUNTRIES, strict=True)
    country = COUNTRY_BY_TLD.get(tld) or rng.choices(countries, weights)[0]
    employees = _two_significant_digits(10 ** rng.uniform(0.7, 4.7))
    annual_revenue = _two_significant_digits(employees * rng.uniform(80_000, 350_000))
    updated = _CATALOGUE_START + timedelta(days=rng.randrange(_CATALOGUE_DAYS))
    return {
        "domain": domain,
        "name": name or domain,
        "industry": rng.choice(INDUSTRIES),
        "employees": employees,
        "annual_revenue": annual_revenue,
        "country": country,
        "updated_at": f"{updated.isoformat()}T00:00:00Z",
    }


def _two_significant_digits(value: float) -> int:
    return max(1, int(float(f"{value:.2g}")))


class CompanyCatalogue:
    """The companies the emulated vendor knows: generated ones plus the operator's overrides."""

    def __init__(self, database: SandboxDatabase) -> None:
        self._database = database
        with database.transaction() as connection:
            connection.execute(_OVERRIDES_DDL)

    def company(self, domain: str) -> dict[str, object] | None:
        """The firmographics of a normalized ``domain``, or None when it is unknown."""
        with self._database.reading() as connection:
            row = connection.execute(
                "SELECT fields, updated_at FROM enrichment_overrides WHERE domain = ?", (domain,)
            ).fetchone()
        if row is not None:
            return (
                generated_company(domain)
                | json.loads(row["fields"])
                | {"updated_at": row["updated_at"]}
            )
        return None if is_reserved(domain) else generated_company(domain)

    def override(self, domain: str, override: CompanyOverride) -> dict[str, object]:
        """Replace fields of ``domain``'s company (making it known); returns the company."""
        fields = override.model_dump(exclude_none=True)
        updated_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        with self._database.transaction() as connection:
            connection.execute(
                "INSERT INTO enrichment_overrides (domain, fields, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (domain) DO UPDATE SET fields = excluded.fields, "
                "updated_at = excluded.updated_at",
                (domain, json.dumps(fields), updated_at),
            )
        return generated_company(domain) | fields | {"updated_at": updated_at}

    def reset(self) -> None:
        """Forget every override."""
        with self._database.transaction() as connection:
            connection.execute("DELETE FROM enrichment_overrides")


class EnrichmentApi:
    """The emulated vendor: its catalogue and its per-key rate limit."""

    def __init__(self, database: SandboxDatabase, rate_limit: int = DEFAULT_RATE_LIMIT) -> None:
        self.catalogue = CompanyCatalogue(database)
        self.limiter = RollingWindowLimiter(rate_limit, 1.0)

    async def gateway(
        self,
        request: Request,
        call_next: CallNext,
        token: str | None,
        faults: FaultInjector,
    ) -> Response:
        """Authenticate, rate-limit and fault-inject one enrichment request, then answer it."""
        if token is None:
            return _error(401, "missing or malformed Authorization header; expected Bearer <key>")
        if not self.limiter.acquire(token).allowed:
            return _rate_limited(self.limiter.max_requests)
        settings = faults.settings
        if settings.latency_ms:
            await asyncio.sleep(settings.latency_ms / 1000)
        fault = faults.draw()
        if fault is InjectedFault.SERVER_ERROR:
            return _error(500, "internal error")
        if fault is InjectedFault.RATE_LIMITED:
            # Indistinguishable from the real limiter, so clients exercise the same path.
            return _rate_limited(self.limiter.max_requests)
        return await call_next(request)

    def reset(self) -> None:
        """Forget overrides and every key's usage."""
        self.catalogue.reset()
        self.limiter.reset()


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"status": "error", "message": message}
    return JSONResponse(body, status_code=status, headers=headers)


def _rate_limited(max_per_second: int) -> JSONResponse:
    message = f"rate limit of {max_per_second} requests per second exceeded"
    return _error(429, message, headers={"Retry-After": "1"})


def enrichment_router(api: EnrichmentApi) -> APIRouter:
    """The ``/enrichment/v1`` routes of the emulated vendor."""
    router = APIRouter(prefix="/enrichment/v1")

    @router.get("/companies")
    def company_by_domain(domain: Annotated[str, Query()]) -> Response:
        normalized = normalize_domain(domain)
        if normalized is None:
            return _error(400, f"domain {domain!r} is not a host name; expected e.g. acme.com")
        company = api.catalogue.company(normalized)
        if company is None:
            return _error(404, f"no company known for domain {normalized!r}")
        return JSONResponse(company)

    return router


def enrichment_operator_router(api: EnrichmentApi) -> APIRouter:
    """``PUT /__sandbox/enrichment/companies/{domain}``: the operator changes a company."""
    router = APIRouter(prefix="/__sandbox/enrichment")

    @router.put("/companies/{domain}")
    def override_company(domain: str, override: CompanyOverride) -> Response:
        normalized = normalize_domain(domain)
        if normalized is None:
            return _error(400, f"domain {domain!r} is not a host name; expected e.g. acme.com")
        return JSONResponse(api.catalogue.override(normalized, override))

    return router
