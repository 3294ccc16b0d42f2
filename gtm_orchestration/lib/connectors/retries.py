"""Retries shared by the HTTP connectors: 429, 5xx and transport errors are tried again with
exponential backoff and jitter, waiting at least what the server asks (``Retry-After``, in
seconds or as an HTTP date), a bounded number of times."""

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

MAX_BACKOFF_S = 30.0


@dataclass(frozen=True)
class Attempts:
    """How a request ended: the last response (None if every try failed in transport), the
    tries made, and what went wrong last (``HTTP 503``, ``transport error: ConnectError``)."""

    response: httpx.Response | None
    tries: int
    problem: str

    @property
    def status(self) -> int | None:
        return None if self.response is None else self.response.status_code


def is_retryable(response: httpx.Response) -> bool:
    """Worth trying again: rate limited or a server error."""
    return response.status_code == 429 or response.status_code >= 500


def send_with_retries(
    send: Callable[[], httpx.Response],
    *,
    max_attempts: int,
    backoff_base_s: float,
    sleep: Callable[[float], None] = time.sleep,
    before_try: Callable[[], object] | None = None,
    least_wait_s: Callable[[httpx.Response], float | None] | None = None,
    after_try: Callable[[httpx.Response | None], object] | None = None,
    retryable: Callable[[httpx.Response], bool] = is_retryable,
) -> Attempts:
    """Call ``send`` until it answers something not worth retrying, or ``max_attempts`` tries.

    Between tries: ``backoff_base_s * 2^(n-1)`` with jitter (half to all of it), at least
    ``Retry-After`` or what ``least_wait_s`` asks for the response, at most MAX_BACKOFF_S;
    none after the last try. ``before_try`` runs before every try (a rate limiter's pacing),
    ``after_try`` after every try with its response (None after a transport error), so a
    limiter can learn from every answer. ``retryable`` says which answers are worth another
    try (default: ``is_retryable``).
    """
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
    response: httpx.Response | None = None
    problem = ""
    for attempt in range(1, max_attempts + 1):
        if before_try is not None:
            before_try()
        try:
            response = send()
        except httpx.TransportError as exc:
            response, problem = None, f"transport error: {type(exc).__name__}"
        if after_try is not None:
            after_try(response)
        if response is not None:
            if not retryable(response):
                return Attempts(response, attempt, "")
            problem = f"HTTP {response.status_code}"
        if attempt < max_attempts:
            sleep(_backoff_s(attempt, backoff_base_s, response, least_wait_s))
    return Attempts(response, max_attempts, problem)


def _backoff_s(
    attempt: int,
    base_s: float,
    response: httpx.Response | None,
    least_wait_s: Callable[[httpx.Response], float | None] | None,
) -> float:
    delay = base_s * 2 ** (attempt - 1) * random.uniform(0.5, 1.0)
    if response is not None:
        for asked in (retry_after_s(response), least_wait_s and least_wait_s(response)):
            if asked is not None:
                delay = max(delay, asked)
    return min(delay, MAX_BACKOFF_S)


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


def error_message(response: httpx.Response) -> str:
    """The server's own explanation of an error answer, at most 500 characters."""
    try:
        return str(response.json().get("message", response.text))[:500]
    except (ValueError, AttributeError):
        return response.text[:500]
