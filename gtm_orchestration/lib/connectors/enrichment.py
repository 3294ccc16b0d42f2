"""A company enrichment API client over httpx: firmographics by domain.

``GET /enrichment/v1/companies?domain=acme.com`` answers a company's firmographics, or 404
when the vendor knows nothing of the domain: a definite answer, not an error. Requests are
paced by a client-side token bucket below the vendor's rate limit; 429 (honouring
``Retry-After``), 5xx and transport errors are retried with exponential backoff and jitter,
a bounded number of times.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from gtm_orchestration.lib.connectors.retries import (
    error_message,
    is_retryable,
    send_with_retries,
)

COMPANIES_PATH = "/enrichment/v1/companies"


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
        attempts = send_with_retries(
            lambda: self._http.get(COMPANIES_PATH, params={"domain": domain}),
            max_attempts=self._max_attempts,
            backoff_base_s=self._backoff_base_s,
            sleep=self._sleep,
            before_try=self._bucket.acquire,
        )
        response = attempts.response
        if response is not None and response.status_code == 200:
            return Firmographics.from_answer(domain, response.json())
        if response is not None and response.status_code == 404:
            return None
        if response is not None and not is_retryable(response):
            problem = f"HTTP {response.status_code}"
            raise EnrichmentError(
                f"{what}: {problem}: {error_message(response)}",
                problem=problem,
                attempts=attempts.tries,
                status=response.status_code,
            )
        raise EnrichmentError(
            f"{what}: gave up after {attempts.tries} tries ({attempts.problem})",
            problem=attempts.problem,
            attempts=attempts.tries,
            status=attempts.status,
        )
