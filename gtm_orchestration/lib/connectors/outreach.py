"""An Outreach API v2 client over httpx: prospects, sequences, mailboxes, sequence states.

Outreach speaks JSON:API (``application/vnd.api+json``; resources under ``data`` with
``attributes`` and ``relationships``; errors as an ``errors`` array). 429, 5xx and transport
errors are retried with exponential backoff and jitter, honouring ``Retry-After``. Sequence
and mailbox ids are looked up by name and address once per client.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from gtm_orchestration.lib.connectors.retries import is_retryable, send_with_retries

MEDIA_TYPE = "application/vnd.api+json"
PAGE_SIZE = 100


class OutreachError(RuntimeError):
    """A request failed for good: after every try, or with a status not worth retrying.

    ``retryable`` says whether trying again later may succeed (the service was down or
    limiting), as opposed to a request the service refuses (``status`` 4xx).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None,
        error_id: str | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_id = error_id
        self.retryable = retryable


@dataclass(frozen=True)
class Prospect:
    """A prospect: its id and attributes (Outreach's names, e.g. ``firstName``)."""

    id: int
    attributes: Mapping[str, Any]


@dataclass(frozen=True)
class SequenceState:
    """A prospect's place in a sequence: ``state`` is ``active``, ``paused``, ``finished``,
    ..."""

    id: int
    state: str
    prospect_id: int
    sequence_id: int
    mailbox_id: int | None


def _related_id(resource: Mapping[str, Any], name: str) -> int | None:
    related = ((resource.get("relationships") or {}).get(name) or {}).get("data") or {}
    return int(related["id"]) if related.get("id") is not None else None


def _sequence_state(resource: Mapping[str, Any]) -> SequenceState:
    return SequenceState(
        id=int(resource["id"]),
        state=str((resource.get("attributes") or {}).get("state")),
        prospect_id=_related_id(resource, "prospect") or 0,
        sequence_id=_related_id(resource, "sequence") or 0,
        mailbox_id=_related_id(resource, "mailbox"),
    )


def _prospect(resource: Mapping[str, Any]) -> Prospect:
    return Prospect(id=int(resource["id"]), attributes=dict(resource.get("attributes") or {}))


def error_detail(response: httpx.Response) -> tuple[str | None, str]:
    """The first JSON:API error's id and detail (or the body's text), at most 500 characters."""
    try:
        errors = response.json().get("errors") or []
        first = errors[0]
        return first.get("id"), str(first.get("detail") or first.get("title"))[:500]
    except (ValueError, AttributeError, IndexError, TypeError):
        return None, response.text[:500]


class OutreachClient:
    """The Outreach API. ``base_url`` is the API root (the sandbox or api.outreach.io).

    ``sleep`` waits between tries.
    """

    def __init__(
        self,
        base_url: str,
        access_token: str,
        *,
        max_attempts: int = 5,
        timeout_s: float = 15.0,
        backoff_base_s: float = 0.5,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={
                "Authorization": f"Bearer {access_token}",
                "Accept": MEDIA_TYPE,
                "Content-Type": MEDIA_TYPE,
            },
            timeout=timeout_s,
            transport=transport,
        )
        self._max_attempts = max_attempts
        self._backoff_base_s = backoff_base_s
        self._sleep = sleep
        self._sequence_ids: dict[str, int] = {}
        self._sequence_names: dict[int, str] = {}
        self._mailbox_ids: dict[str, int] = {}
        self.requests = 0  # sent so far, retries included

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OutreachClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Lookups, cached for the client's life ---------------------------------------------

    def sequence_id(self, name: str) -> int:
        """The id of the one sequence named ``name``; OutreachError when none or several."""
        if name not in self._sequence_ids:
            found = list(self._collection("/api/v2/sequences", {"filter[name]": name}))
            if len(found) != 1:
                raise OutreachError(
                    f"sequence {name!r}: expected exactly one sequence of that name in the "
                    f"sequencer, found {len(found)}",
                    status=None,
                )
            self._sequence_ids[name] = int(found[0]["id"])
            self._sequence_names[int(found[0]["id"])] = name
        return self._sequence_ids[name]

    def sequence_name(self, sequence_id: int) -> str:
        """The name of sequence ``sequence_id``."""
        if sequence_id not in self._sequence_names:
            data = self._request("GET", f"/api/v2/sequences/{sequence_id}")["data"]
            self._sequence_names[sequence_id] = str(data["attributes"]["name"])
        return self._sequence_names[sequence_id]

    def mailbox_id(self, email: str) -> int:
        """The id of the mailbox of address ``email``; OutreachError when there is none."""
        key = email.strip().lower()
        if key not in self._mailbox_ids:
            found = list(self._collection("/api/v2/mailboxes", {"filter[email]": key}))
            if not found:
                raise OutreachError(
                    f"mailbox {key!r}: no mailbox of that address in the sequencer", status=None
                )
            self._mailbox_ids[key] = int(found[0]["id"])
        return self._mailbox_ids[key]

    # Prospects -------------------------------------------------------------------------

    def find_prospect(self, email: str) -> Prospect | None:
        """The prospect with ``email`` among its addresses, or None."""
        found = self._collection("/api/v2/prospects", {"filter[emails]": email.strip().lower()})
        first = next(iter(found), None)
        return None if first is None else _prospect(first)

    def create_prospect(self, attributes: Mapping[str, Any]) -> Prospect:
        """Create a prospect with ``attributes``."""
        body = {"data": {"type": "prospect", "attributes": dict(attributes)}}
        return _prospect(self._request("POST", "/api/v2/prospects", body)["data"])

    def update_prospect(self, prospect_id: int, attributes: Mapping[str, Any]) -> Prospect:
        """Set ``attributes`` of prospect ``prospect_id``; the others stay as they are."""
        body = {"data": {"type": "prospect", "id": prospect_id, "attributes": dict(attributes)}}
        path = f"/api/v2/prospects/{prospect_id}"
        return _prospect(self._request("PATCH", path, body)["data"])

    # Sequence states -------------------------------------------------------------------

    def sequence_states(
        self,
        *,
        prospect_id: int | None = None,
        sequence_id: int | None = None,
        states: Sequence[str] = (),
    ) -> list[SequenceState]:
        """Every sequence state of a prospect and/or a sequence, optionally only in
        ``states``."""
        params: dict[str, str] = {}
        if prospect_id is not None:
            params["filter[prospect][id]"] = str(prospect_id)
        if sequence_id is not None:
            params["filter[sequence][id]"] = str(sequence_id)
        if states:
            params["filter[state]"] = ",".join(states)
        return [_sequence_state(r) for r in self._collection("/api/v2/sequenceStates", params)]

    def create_sequence_state(
        self, prospect_id: int, sequence_id: int, mailbox_id: int
    ) -> SequenceState:
        """Enroll prospect ``prospect_id`` in sequence ``sequence_id``, sending from mailbox
        ``mailbox_id``. Outreach refuses (422) a prospect already active in the sequence."""
        body = {
            "data": {
                "type": "sequenceState",
                "relationships": {
                    "prospect": {"data": {"type": "prospect", "id": prospect_id}},
                    "sequence": {"data": {"type": "sequence", "id": sequence_id}},
                    "mailbox": {"data": {"type": "mailbox", "id": mailbox_id}},
                },
            }
        }
        return _sequence_state(self._request("POST", "/api/v2/sequenceStates", body)["data"])

    # Transport -------------------------------------------------------------------------

    def _collection(self, path: str, params: Mapping[str, str]) -> Iterator[dict[str, Any]]:
        query: dict[str, str] | None = {**params, "page[size]": str(PAGE_SIZE)}
        next_url: str | None = path
        while next_url is not None:
            document = self._request("GET", next_url, params=query)
            yield from document.get("data") or []
            next_url = (document.get("links") or {}).get("next")
            query = None  # the next link carries the whole query

    def _request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        def send() -> httpx.Response:
            self.requests += 1
            return self._http.request(method, path, json=body, params=params)

        attempts = send_with_retries(
            send,
            max_attempts=self._max_attempts,
            backoff_base_s=self._backoff_base_s,
            sleep=self._sleep,
        )
        response = attempts.response
        what = f"{method} {path.split('?')[0]}"
        if response is not None and response.status_code in (200, 201):
            return response.json()
        if response is not None and not is_retryable(response):
            error_id, detail = error_detail(response)
            raise OutreachError(
                f"{what}: HTTP {response.status_code}: {detail}",
                status=response.status_code,
                error_id=error_id,
            )
        raise OutreachError(
            f"{what}: gave up after {attempts.tries} tries ({attempts.problem})",
            status=attempts.status,
            retryable=True,
        )
