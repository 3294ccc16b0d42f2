"""A company enrichment API client over httpx: firmographics by domain.

``GET /enrichment/v1/companies?domain=acme.com`` answers a company's firmographics, or 404
when the vendor knows nothing of the domain: a definite answer, not an error. Requests are
paced by a client-side token bucket below the vendor's rate limit; 429 (honouring
``Retry-After``), 5xx and transport errors are retried with exponential backoff and jitter,
a bounded number of times.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from gtm_orchestration.lib.connectors.hubspot import _message

COMPANIES_PATH = "/enrichment/v1/companies"
MAX_BACKOFF_S = 30.0


class EnrichmentError(RuntimeError):
    """A lookup failed for good: after every try, or with a status not worth retrying."""

    def __init__(self, message: str, *, problem: str, attempts: int, status: int | None) -> None:
        super().__init__(message)
        self.problem = problem  # e.g. "HTTP 503", "transport error: ConnectError"
        self.attempts = attempts
        self.status = status


@dataclass(frozen=True)
class Firmographics:
    """What the vendor knows of one company; any field may be missing."""

    domain: str
    name: str | None = None
    industry: str | None = None
    employees: int | None = None
    annual_revenue: float | None = None
    country: str | None = None
    updated_at: str | None = None

    @classmethod
    def from_answer(cls, domain: str, body: dict[str, Any]) -> Firmographics:
        """Parse the vendor's JSON answer for ``domain``."""

        def text(key: str) -> str | None:
            value = body.get(key)
            if value is None:
                return None
            return str(value).strip() or None

        def number(key: str) -> float | None:
            value = body.get(key)
            return float(value) if isinstance(value, int | float) else None

        employees = number("employees")
        return cls(
            domain=domain,
            name=text("name"),
            industry=text("industry"),
            employees=None if employees is None else int(employees),
            annual_revenue=number("annual_revenue"),
            country=text("country"),
            updated_at=text("updated_at"),
        )

    def as_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (the cache stores this)."""
        return asdict(self)


class TokenBucket:
    """Paces requests: ``rate_per_s`` on average, at most ``capacity`` back to back.

    ``acquire`` takes a token, sleeping until one is there. Thread-safe: callers reserve
    their token under the lock and sleep outside it, so the pacing holds across threads.
    """

    def __init__(
        self,
        rate_per_s: float,
        capacity: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate_per_s <= 0 or capacity < 1:
            raise ValueError(
                f"token bucket needs rate_per_s > 0 and capacity >= 1, "
                f"got {rate_per_s} and {capacity}"
            )
        self.rate_per_s = rate_per_s
        self.capacity = capacity
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = capacity
        self._updated = clock()

    def acquire(self) -> float:
        """Take one token; returns the seconds waited for it."""
        with self._lock:
            now = self._clock()
            self._tokens = min(
                self.capacity, self._tokens + (now - self._updated) * self.rate_per_s
            )
            self._updated = now
            self._tokens -= 1
            wait = -self._tokens / self.rate_per_s if self._tokens < 0 else 0.0
        if wait:
            self._sleep(wait)
        return wait


def retry_after_s(response: httpx.Response, now: datetime | None = None) -> float | None:
    """The wait a ``Retry-After`` header asks for, in seconds or as an HTTP date; None if
    absent or unreadable."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


class EnrichmentClient:
    """The company enrichment API. ``base_url`` is the API root (the sandbox or the vendor's).

    ``requests_per_second`` paces every request, retries included; the sandbox allows 10 a
    second per key, so the default keeps a margin for network jitter. ``sleep`` waits
    between tries.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        requests_per_second: float = 8.0,
        max_attempts: int = 4,
        timeout_s: float = 10.0,
        backoff_base_s: float = 0.5,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout_s,
            transport=transport,
        )
        self._bucket = TokenBucket(requests_per_second)
        self._max_attempts = max_attempts
        self._backoff_base_s = backoff_base_s
        self._sleep = sleep

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> EnrichmentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def company(self, domain: str) -> Firmographics | None:
        """The firmographics of ``domain``, or None when the vendor does not know it (404).

        Raises EnrichmentError when the lookup failed for good.
        """
        what = f"GET {COMPANIES_PATH}?domain={domain}"
        problem = ""
        for attempt in range(1, self._max_attempts + 1):
            self._bucket.acquire()
            try:
                response = self._http.get(COMPANIES_PATH, params={"domain": domain})
            except httpx.TransportError as exc:
                problem = f"transport error: {type(exc).__name__}"
                self._back_off(attempt, None)
                continue
            if response.status_code == 200:
                return Firmographics.from_answer(domain, response.json())
            if response.status_code == 404:
                return None
            problem = f"HTTP {response.status_code}"
            if response.status_code == 429 or response.status_code >= 500:
                self._back_off(attempt, response)
                continue
            raise EnrichmentError(
                f"{what}: {problem}: {_message(response)}",
                problem=problem,
                attempts=attempt,
                status=response.status_code,
            )
        status = int(problem.removeprefix("HTTP ")) if problem.startswith("HTTP ") else None
        raise EnrichmentError(
            f"{what}: gave up after {self._max_attempts} tries ({problem})",
            problem=problem,
            attempts=self._max_attempts,
            status=status,
        )

    def _back_off(self, attempt: int, response: httpx.Response | None) -> None:
        """Wait before try ``attempt + 1``: exponential with jitter, at least Retry-After."""
        if attempt >= self._max_attempts:
            return
        delay = self._backoff_base_s * 2 ** (attempt - 1) * random.uniform(0.5, 1.0)
        asked = retry_after_s(response) if response is not None else None
        if asked is not None:
            delay = max(delay, asked)
        self._sleep(min(delay, MAX_BACKOFF_S))
