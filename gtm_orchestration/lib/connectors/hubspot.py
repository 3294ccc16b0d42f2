"""A HubSpot CRM client over httpx: batch create, upsert and read, search, associations.

Every request passes the portal's rate pacer first (``RollingWindowPacer``): one per portal
and token in the process, shared by every thread and client, kept just under the rolling
limit the portal announces in its ``X-HubSpot-RateLimit-*`` headers. 429, 5xx and transport
errors are retried with exponential backoff and jitter, honouring ``Retry-After`` and the
``policyName`` of a 429: a ten-secondly refusal pauses the pacer, a daily one ends the
request at once, since no backoff within a run outlasts it.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from gtm_orchestration.lib.connectors.retries import (
    error_message,
    is_retryable,
    retry_after_s,
    send_with_retries,
)

BATCH_LIMIT = 100
# HubSpot's search returns at most 200 records a page.
SEARCH_PAGE_LIMIT = 200
# HubSpot takes up to 2,000 pairs in one v4 association batch and reads up to 1,000 ids.
ASSOCIATION_BATCH_LIMIT = 1_000
# HubSpot's default (unlabeled) association types between contacts and companies.
CONTACT_TO_COMPANY = 279
COMPANY_TO_CONTACT = 280

# What a private app gets when the portal has not told otherwise yet.
DEFAULT_RATE_LIMIT = 190
DEFAULT_RATE_WINDOW_S = 10.0
DAILY_POLICY = "DAILY"


class HubSpotError(RuntimeError):
    """A request failed for good: after retries (``transient``) or with an answer that no
    retry changes (a 400, 401, 409, a daily limit). ``category`` is HubSpot's error category
    when the answer named one (``VALIDATION_ERROR``, ``CONFLICT``, ...)."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        *,
        category: str | None = None,
        transient: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.category = category
        self.transient = transient


@dataclass
class BatchResult:
    """Outcome of one batch call: records that succeeded and per-input errors."""

    results: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class SearchPage:
    """One page of a search: its records, the total matching and the cursor of the next page."""

    results: list[dict[str, Any]]
    total: int
    next_after: str | None


class RollingWindowPacer:
    """Keeps requests under a rolling-window limit (HubSpot: 190 per 10 s per token).

    ``acquire`` blocks until one more request fits the window, counting requests from the
    moment they are sent; ``observe`` learns from each answer: the portal's own limit and
    window, requests of other clients on the same token (the portal's ``Remaining`` is lower
    than this pacer's count says), and 429s, which pause every thread for the time the
    portal asks. A small margin of requests and of time keeps the pacer under the portal's
    count although the portal counts a request when it arrives, not when it is sent.
    """

    def __init__(
        self,
        max_requests: int = DEFAULT_RATE_LIMIT,
        window_s: float = DEFAULT_RATE_WINDOW_S,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_requests < 1 or window_s <= 0:
            raise ValueError(
                f"a rate limit needs max_requests >= 1 and window_s > 0, "
                f"got {max_requests} and {window_s}"
            )
        self._max = max_requests
        self._window_s = window_s
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._sent: deque[float] = deque()
        self._paused_until = 0.0
        self.waited_s = 0.0

    @property
    def budget(self) -> int:
        """Requests let through per window: the limit less a margin of 1%, at least 2."""
        return max(1, self._max - max(2, self._max // 100))

    @property
    def span_s(self) -> float:
        """How long a sent request is counted: the window and a fifth of a second, more than
        a request's time in transit varies (the portal counts it when it arrives)."""
        return self._window_s + 0.2

    @property
    def limit(self) -> tuple[int, float]:
        """The portal's limit as last announced: (requests, window in seconds)."""
        return self._max, self._window_s

    def acquire(self) -> None:
        """Wait until one more request fits, then count it as sent now."""
        while True:
            with self._lock:
                now = self._clock()
                self._expire(now)
                if now < self._paused_until:
                    wait = self._paused_until - now
                elif len(self._sent) >= self.budget:
                    wait = self._sent[0] + self.span_s - now
                else:
                    self._sent.append(now)
                    return
            self.waited_s += wait
            self._sleep(wait)

    def observe(self, response: httpx.Response | None) -> None:
        """Learn from one answer (None: the request never got one)."""
        if response is None:
            return
        headers = response.headers
        announced_max = headers.get("X-HubSpot-RateLimit-Max", "")
        interval_ms = headers.get("X-HubSpot-RateLimit-Interval-Milliseconds", "")
        remaining = headers.get("X-HubSpot-RateLimit-Remaining", "")
        with self._lock:
            now = self._clock()
            if announced_max.isdigit() and int(announced_max) > 0:
                self._max = int(announced_max)
            if interval_ms.isdigit() and int(interval_ms) > 0:
                self._window_s = int(interval_ms) / 1000
            if response.status_code == 429:
                # A refused request takes no slot; the portal's window frees gradually.
                pause = retry_after_s(response) or self._window_s / 10
                self._paused_until = max(self._paused_until, now + pause)
                return
            if remaining.isdigit():
                self._expire(now)
                foreign = (self._max - int(remaining)) - len(self._sent)
                # Requests on this token that this pacer did not send: count them as sent
                # now, which keeps them in the window at least as long as the portal does.
                self._sent.extend([now] * max(0, foreign))

    def _expire(self, now: float) -> None:
        while self._sent and self._sent[0] <= now - self.span_s:
            self._sent.popleft()


_PACERS: dict[tuple[str, str], RollingWindowPacer] = {}
_PACERS_LOCK = threading.Lock()


def portal_pacer(base_url: str, access_token: str) -> RollingWindowPacer:
    """The process's pacer for one portal and token: every client of it shares one budget."""
    key = (base_url.rstrip("/"), hashlib.sha256(access_token.encode()).hexdigest())
    with _PACERS_LOCK:
        return _PACERS.setdefault(key, RollingWindowPacer())


class HubSpotClient:
    """The CRM API. ``base_url`` is the API root (the sandbox or api.hubapi.com).

    Thread-safe: batches may be sent from several threads at once through one client.
    ``max_attempts`` (tries per request, retries included) may be lowered for a run.
    ``requests_sent`` counts every try, retries included. ``transport`` and ``sleep``
    replace the network and the waits between tries (tests of the retry behaviour).
    """

    def __init__(
        self,
        base_url: str,
        access_token: str,
        *,
        max_attempts: int = 6,
        timeout_s: float = 30.0,
        backoff_base_s: float = 0.5,
        pacer: RollingWindowPacer | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {access_token}"},
            timeout=timeout_s,
            transport=transport,
        )
        self.max_attempts = max_attempts
        self._backoff_base_s = backoff_base_s
        self._sleep = sleep
        self.pacer = pacer or portal_pacer(base_url, access_token)
        self._count_lock = threading.Lock()
        self.requests_sent = 0

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HubSpotClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def batch_create(self, object_type: str, inputs: Sequence[dict[str, str]]) -> BatchResult:
        """Create up to 100 records. HubSpot writes all or none: a 409 ``HubSpotError``
        (category ``CONFLICT``) when any unique value exists, a 400 when any value is
        invalid. Returns the created records, in input order."""
        _check_batch(len(inputs), BATCH_LIMIT)
        body = {"inputs": [{"properties": props} for props in inputs]}
        data = self._request("POST", f"/crm/v3/objects/{object_type}/batch/create", body)
        return BatchResult(data.get("results", []), data.get("errors", []))

    def batch_upsert(
        self, object_type: str, id_property: str, inputs: Sequence[tuple[str, dict[str, str]]]
    ) -> BatchResult:
        """Upsert up to 100 records given as (unique value, properties); inputs HubSpot
        refuses come back in ``errors`` while the others are written."""
        _check_batch(len(inputs), BATCH_LIMIT)
        body = {
            "inputs": [
                {"idProperty": id_property, "id": key, "properties": props} for key, props in inputs
            ]
        }
        data = self._request("POST", f"/crm/v3/objects/{object_type}/batch/upsert", body)
        return BatchResult(data.get("results", []), data.get("errors", []))

    def batch_read(
        self,
        object_type: str,
        ids: Sequence[str],
        *,
        id_property: str | None = None,
        properties: Sequence[str] = (),
        properties_with_history: Sequence[str] = (),
    ) -> BatchResult:
        """Read up to 100 records by id or by a unique property; missing ones are absent."""
        _check_batch(len(ids), BATCH_LIMIT)
        body: dict[str, Any] = {
            "inputs": [{"id": i} for i in ids],
            "properties": list(properties),
            "propertiesWithHistory": list(properties_with_history),
        }
        if id_property:
            body["idProperty"] = id_property
        data = self._request("POST", f"/crm/v3/objects/{object_type}/batch/read", body)
        return BatchResult(data.get("results", []), data.get("errors", []))

    def search(
        self,
        object_type: str,
        *,
        filter_groups: Sequence[dict[str, Any]] = (),
        sorts: Sequence[dict[str, str]] = (),
        properties: Sequence[str] = (),
        limit: int = SEARCH_PAGE_LIMIT,
        after: str | None = None,
    ) -> SearchPage:
        """One page of ``POST /crm/v3/objects/{type}/search``; ``after`` is the previous page's
        ``next_after``. HubSpot pages no further than the 10,000th result of one search."""
        if not 0 < limit <= SEARCH_PAGE_LIMIT:
            raise ValueError(f"search limit {limit} is outside HubSpot's 1..{SEARCH_PAGE_LIMIT}")
        body: dict[str, Any] = {
            "filterGroups": list(filter_groups),
            "sorts": list(sorts),
            "properties": list(properties),
            "limit": limit,
        }
        if after is not None:
            body["after"] = after
        data = self._request("POST", f"/crm/v3/objects/{object_type}/search", body)
        results = data.get("results", [])
        next_after = ((data.get("paging") or {}).get("next") or {}).get("after")
        return SearchPage(
            results=results,
            total=int(data.get("total", len(results))),
            next_after=str(next_after) if next_after is not None else None,
        )

    def associate_default(
        self, from_type: str, to_type: str, pairs: Sequence[tuple[str, str]]
    ) -> BatchResult:
        """Give each (from id, to id) pair HubSpot's default association (v4), up to 1,000
        pairs; an existing association is left as it is. Pairs HubSpot refuses (a record
        that does not exist) come back in ``errors``."""
        _check_batch(len(pairs), ASSOCIATION_BATCH_LIMIT)
        body = {"inputs": [{"from": {"id": f}, "to": {"id": t}} for f, t in pairs]}
        path = f"/crm/v4/associations/{from_type}/{to_type}/batch/associate/default"
        data = self._request("POST", path, body)
        return BatchResult(data.get("results", []), data.get("errors", []))

    def associated_ids(self, from_type: str, object_id: str, to_type: str) -> list[str]:
        """Ids of the ``to_type`` records associated with one record, every page read."""
        ids: list[str] = []
        after: str | None = None
        while True:
            params = {"limit": "500"} | ({"after": after} if after else {})
            path = f"/crm/v4/objects/{from_type}/{object_id}/associations/{to_type}"
            data = self._request("GET", path, None, params=params)
            ids += [str(result["toObjectId"]) for result in data.get("results", [])]
            after = ((data.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return ids

    def _request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        *,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        attempts = send_with_retries(
            lambda: self._send(method, path, body, params),
            max_attempts=self.max_attempts,
            backoff_base_s=self._backoff_base_s,
            sleep=self._sleep,
            before_try=self.pacer.acquire,
            after_try=self.pacer.observe,
            least_wait_s=_rolling_window_wait_s,
            retryable=_worth_retrying,
        )
        response = attempts.response
        if response is not None and response.status_code in (200, 201, 207):
            return response.json()
        if response is not None and not _worth_retrying(response):
            raise HubSpotError(
                f"{method} {path}: HTTP {response.status_code}: {error_message(response)}",
                response.status_code,
                category=_category(response),
            )
        raise HubSpotError(
            f"{method} {path}: gave up after {attempts.tries} tries ({attempts.problem})",
            attempts.status,
            category=_category(response) if response is not None else None,
            transient=True,
        )

    def _send(
        self, method: str, path: str, body: dict[str, Any] | None, params: dict[str, str] | None
    ) -> httpx.Response:
        with self._count_lock:
            self.requests_sent += 1
        return self._http.request(method, path, json=body, params=params)


def _check_batch(count: int, limit: int) -> None:
    if count > limit:
        raise ValueError(f"batch of {count} exceeds HubSpot's {limit}")


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _category(response: httpx.Response) -> str | None:
    body = _body(response)
    return body.get("category") or body.get("policyName") or body.get("errorType")


def _worth_retrying(response: httpx.Response) -> bool:
    """429 and 5xx, except a daily-limit 429: the day's allowance is not back before tomorrow."""
    if response.status_code == 429 and _body(response).get("policyName") == DAILY_POLICY:
        return False
    return is_retryable(response)


def _rolling_window_wait_s(response: httpx.Response) -> float | None:
    """After a 429 without Retry-After: a tenth of HubSpot's rolling window, which frees
    capacity gradually."""
    interval_ms = response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds", "")
    if response.status_code == 429 and interval_ms.isdigit():
        return int(interval_ms) / 10_000
    return None
