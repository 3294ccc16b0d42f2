"""A small HubSpot CRM v3 client over httpx: batch upsert, batch read and search.

Retries 429, 5xx and transport errors with exponential backoff and jitter, honouring
``Retry-After`` and the ten-second rolling window that HubSpot's 429 names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from gtm_orchestration.lib.connectors.retries import (
    error_message,
    is_retryable,
    send_with_retries,
)

BATCH_LIMIT = 100
# HubSpot's search returns at most 200 records a page.
SEARCH_PAGE_LIMIT = 200


class HubSpotError(RuntimeError):
    """A request failed for good (after retries, or with a non-retryable status)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


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


class HubSpotClient:
    """CRM v3 objects API. ``base_url`` is the API root (the sandbox or api.hubapi.com)."""

    def __init__(
        self,
        base_url: str,
        access_token: str,
        *,
        max_attempts: int = 6,
        timeout_s: float = 30.0,
        backoff_base_s: float = 0.5,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {access_token}"},
            timeout=timeout_s,
        )
        self._max_attempts = max_attempts
        self._backoff_base_s = backoff_base_s

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HubSpotClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def batch_upsert(
        self, object_type: str, id_property: str, inputs: Sequence[tuple[str, dict[str, str]]]
    ) -> BatchResult:
        """Upsert up to 100 records given as (unique value, properties)."""
        if len(inputs) > BATCH_LIMIT:
            raise ValueError(f"batch of {len(inputs)} exceeds HubSpot's {BATCH_LIMIT}")
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

    def _request(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        attempts = send_with_retries(
            lambda: self._http.request(method, path, json=body),
            max_attempts=self._max_attempts,
            backoff_base_s=self._backoff_base_s,
            least_wait_s=_rolling_window_wait_s,
        )
        response = attempts.response
        if response is not None and response.status_code in (200, 201, 207):
            return response.json()
        if response is not None and not is_retryable(response):
            raise HubSpotError(
                f"{method} {path}: HTTP {response.status_code}: {error_message(response)}",
                response.status_code,
            )
        raise HubSpotError(
            f"{method} {path}: gave up after {attempts.tries} tries ({attempts.problem})"
        )


def _rolling_window_wait_s(response: httpx.Response) -> float | None:
    """After a 429 without Retry-After: a tenth of HubSpot's rolling window, which frees
    capacity gradually."""
    interval_ms = response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds", "")
    if response.status_code == 429 and interval_ms.isdigit():
        return int(interval_ms) / 10_000
    return None
