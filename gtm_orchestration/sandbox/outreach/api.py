"""Outreach API v2 wire protocol (JSON:API): prospects, sequences, mailboxes, sequence states.

Shapes follow Outreach's public API: resources as ``{"type", "id", "attributes",
"relationships", "links"}`` under ``data``, errors as a JSON:API ``errors`` array, filters as
``filter[emails]=...`` and ``filter[prospect][id]=...`` (several values comma-separated),
cursor paging with ``page[size]`` (at most 1000, 50 by default) and ``links.next``.
Writes must be sent as ``application/vnd.api+json`` (415 otherwise). Adding a prospect who
is already active, pending or paused in a sequence to it again is refused with 422, as
Outreach does; being in *other* sequences is not checked: that is the client's business.

The gateway in front of it: a bearer token, Outreach's per-token limit of 10,000 requests
an hour (429 with ``X-RateLimit-*`` and ``Retry-After``), and the operator's faults.
``POST /api/v2/sequenceStates/{id}/actions/{pause|resume|finish}`` move a state as a rep
would; ``PUT /__sandbox/outreach/sequenceStates/{id}/state`` lets the operator set any state
(``bounced``, ``opted_out``, ...) to stage what real prospects do.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

from gtm_orchestration.lib.enrollment_rules import load_sequence_rules
from gtm_orchestration.sandbox.faults import FaultInjector, InjectedFault
from gtm_orchestration.sandbox.hubspot.owners import OWNERS
from gtm_orchestration.sandbox.outreach.store import (
    SEQUENCE_STATES,
    OutreachApiError,
    OutreachStore,
    Page,
    validation_error,
)
from gtm_orchestration.sandbox.rate_limit import RollingWindowLimiter
from gtm_orchestration.sandbox.state import SandboxDatabase

OUTREACH_PREFIX = "/api/v2/"
MEDIA_TYPE = "application/vnd.api+json"
# Outreach allows 10,000 requests an hour per user token.
DEFAULT_RATE_LIMIT = 10_000
DEFAULT_RATE_WINDOW_S = 3600.0
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
_FILTER = re.compile(r"^filter\[(\w+)\](?:\[id\])?$")

# Attributes a prospect accepts, as Outreach names them (custom1..custom150 besides).
PROSPECT_ATTRIBUTES = frozenset(
    {
        "addressCity",
        "addressCountry",
        "addressState",
        "addressStreet",
        "addressZip",
        "company",
        "companyIndustry",
        "companySize",
        "emails",
        "externalId",
        "externalSource",
        "firstName",
        "homePhones",
        "lastName",
        "linkedInUrl",
        "middleName",
        "mobilePhones",
        "nickname",
        "occupation",
        "otherPhones",
        "personalNote1",
        "source",
        "tags",
        "timeZone",
        "title",
        "websiteUrl1",
        "workPhones",
    }
)
_CUSTOM_FIELD = re.compile(r"^custom([1-9]\d?|1[0-4]\d|150)$")
# The filters each collection takes, by the name in ``filter[...]``.
FILTERS = {
    "prospects": ("id", "emails"),
    "sequences": ("id", "name", "enabled"),
    "mailboxes": ("id", "email"),
    "sequenceStates": ("id", "prospect", "sequence", "mailbox", "state"),
}
_INTEGER_FILTERS = frozenset({"id", "prospect", "sequence", "mailbox"})
# Rep actions on a sequence state: the states each may start from, and where it goes.
ACTIONS = {
    "pause": (("active",), "paused"),
    "resume": (("paused",), "active"),
    "finish": (("active", "pending", "paused"), "finished"),
}

CallNext = Callable[[Request], Awaitable[Response]]


def configured_sequence_names() -> list[str]:
    """The sequences the pipeline enrolls leads in (``config/sequences.yaml``): the org has
    them from the start, as a real org would before the pipeline is pointed at it."""
    return [spec.name for spec in load_sequence_rules().sequences.values()]


def sandbox_mailboxes() -> list[tuple[str, int]]:
    """The org's mailboxes: one per sales rep of the sandbox portal."""
    return [(owner.email, owner.user_id) for owner in OWNERS]


class OutreachApi:
    """The emulated sequencer: its records and its per-token rate limit."""

    def __init__(
        self,
        database: SandboxDatabase,
        sequence_names: Sequence[str] | None = None,
        rate_limit: int = DEFAULT_RATE_LIMIT,
        rate_window_s: float = DEFAULT_RATE_WINDOW_S,
    ) -> None:
        names = configured_sequence_names() if sequence_names is None else sequence_names
        self.store = OutreachStore(database, sandbox_mailboxes(), names)
        self.limiter = RollingWindowLimiter(rate_limit, rate_window_s)

    async def gateway(
        self,
        request: Request,
        call_next: CallNext,
        token: str | None,
        faults: FaultInjector,
    ) -> Response:
        """Authenticate, check the media type, rate-limit and fault-inject one request."""
        if token is None:
            return _error(
                OutreachApiError(
                    401,
                    "unauthorized",
                    "Unauthorized",
                    "Missing or malformed Authorization header; expected Bearer <token>.",
                )
            )
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if request.method in ("POST", "PATCH", "PUT") and media_type != MEDIA_TYPE:
            return _error(
                OutreachApiError(
                    415,
                    "unsupportedMediaType",
                    "Unsupported Media Type",
                    f"Expected Content-Type header to be '{MEDIA_TYPE}'.",
                )
            )
        decision = self.limiter.acquire(token)
        headers = {
            "X-RateLimit-Limit": str(decision.max_requests),
            "X-RateLimit-Remaining": str(decision.remaining),
        }
        if not decision.allowed:
            return _rate_limited(decision.max_requests, headers)
        settings = faults.settings
        if settings.latency_ms:
            await asyncio.sleep(settings.latency_ms / 1000)
        fault = faults.draw()
        if fault is InjectedFault.SERVER_ERROR:
            error = OutreachApiError(
                500, "internalServerError", "Internal Server Error", "Something went wrong."
            )
            return _error(error, headers)
        if fault is InjectedFault.RATE_LIMITED:
            # Indistinguishable from the real limiter, so clients exercise the same path.
            return _rate_limited(decision.max_requests, headers | {"X-RateLimit-Remaining": "0"})
        response = await call_next(request)
        response.headers.update(headers)
        return response

    def reset(self) -> None:
        """Forget prospects, sequence states and every token's usage; reseed the rest."""
        self.store.reset()
        self.limiter.reset()


def _error(error: OutreachApiError, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        error.body(), status_code=error.status, headers=dict(headers or {}), media_type=MEDIA_TYPE
    )


def _rate_limited(limit: int, headers: Mapping[str, str]) -> JSONResponse:
    error = OutreachApiError(
        429,
        "rateLimitExceeded",
        "Rate Limit Exceeded",
        f"You have exceeded your permitted rate limit of {limit:,} requests per hour.",
    )
    return _error(error, {**headers, "Retry-After": "60"})


def _document(data: object, status: int = 200, **top: object) -> JSONResponse:
    return JSONResponse({"data": data, **top}, status_code=status, media_type=MEDIA_TYPE)


def _relationship(kind: str, resource_id: int) -> dict[str, Any]:
    return {"data": {"type": kind, "id": resource_id}}


def _resource(base: str, kind: str, path: str, row: sqlite3.Row, attributes: dict) -> dict:
    return {
        "type": kind,
        "id": row["id"],
        "attributes": attributes,
        "relationships": {},
        "links": {"self": f"{base}/api/v2/{path}/{row['id']}"},
    }


def render_prospect(base: str, row: sqlite3.Row) -> dict[str, Any]:
    """A prospect as Outreach renders one."""
    attributes = json.loads(row["attributes"]) | {
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
    }
    resource = _resource(base, "prospect", "prospects", row, attributes)
    related = f"{base}/api/v2/sequenceStates?filter[prospect][id]={row['id']}"
    resource["relationships"] = {"sequenceStates": {"links": {"related": related}}}
    return resource


def render_sequence(base: str, row: sqlite3.Row) -> dict[str, Any]:
    """A sequence as Outreach renders one."""
    attributes = {
        "name": row["name"],
        "description": row["description"],
        "enabled": bool(row["enabled"]),
        "sequenceType": row["sequence_type"],
        "shareType": row["share_type"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
    }
    return _resource(base, "sequence", "sequences", row, attributes)


def render_mailbox(base: str, row: sqlite3.Row) -> dict[str, Any]:
    """A mailbox as Outreach renders one."""
    attributes = {"email": row["email"], "createdAt": row["created_at"]}
    resource = _resource(base, "mailbox", "mailboxes", row, attributes)
    resource["relationships"] = {"user": _relationship("user", row["user_id"])}
    return resource


def render_sequence_state(base: str, row: sqlite3.Row) -> dict[str, Any]:
    """A sequence state as Outreach renders one."""
    attributes = {
        "state": row["state"],
        "stateChangedAt": row["state_changed_at"],
        "activeAt": row["created_at"] if row["state"] == "active" else None,
        "pauseReason": row["pause_reason"],
        "errorReason": row["error_reason"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
    }
    resource = _resource(base, "sequenceState", "sequenceStates", row, attributes)
    resource["relationships"] = {
        "prospect": _relationship("prospect", row["prospect_id"]),
        "sequence": _relationship("sequence", row["sequence_id"]),
        "mailbox": _relationship("mailbox", row["mailbox_id"]),
    }
    return resource


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _listing_query(request: Request, collection: str) -> tuple[dict[str, list[str]], int, int]:
    """The filters, cursor and page size of a collection request; 400 when unreadable."""
    filters: dict[str, list[str]] = {}
    after, size = 0, DEFAULT_PAGE_SIZE
    for name, value in request.query_params.multi_items():
        if name == "page[size]":
            size = _integer(name, value)
            if not 1 <= size <= MAX_PAGE_SIZE:
                raise _bad_request(f"page[size] must be 1 to {MAX_PAGE_SIZE}; got {value}.")
        elif name == "page[after]":
            after = _integer(name, value)
        elif name in ("sort", "count"):
            continue
        elif match := _FILTER.match(name):
            field = match.group(1)
            if field not in FILTERS[collection]:
                raise _bad_request(
                    f"{name} is not a filter of {collection}; expected one of "
                    f"{', '.join(f'filter[{f}]' for f in FILTERS[collection])}."
                )
            values = [v.strip() for v in value.split(",") if v.strip()]
            if field in _INTEGER_FILTERS:
                values = [str(_integer(name, v)) for v in values]
            if field == "enabled":
                values = ["1" if v.lower() == "true" else "0" for v in values]
            filters.setdefault(field, []).extend(values)
        else:
            raise _bad_request(f"Unknown query parameter {name!r}.")
    return filters, after, size


def _integer(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError as exc:
        raise _bad_request(f"{name} must be an integer; got {value!r}.") from exc


def _bad_request(detail: str) -> OutreachApiError:
    return OutreachApiError(400, "badRequest", "Bad Request", detail)


def _collection(
    request: Request, page: Page, render: Callable[[str, sqlite3.Row], dict]
) -> JSONResponse:
    base = _base(request)
    links: dict[str, str] = {}
    if page.next_after is not None:
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "page[after]"]
        params.append(("page[after]", str(page.next_after)))
        links["next"] = f"{base}{request.url.path}?{urlencode(params)}"
    return _document(
        [render(base, row) for row in page.rows],
        meta={"count": page.total, "count_truncated": False},
        links=links,
    )


async def _data(request: Request, kind: str) -> dict[str, Any]:
    """The ``data`` object of a write; 400 for unreadable JSON, 409 for another type."""
    try:
        body = json.loads(await request.body())
    except ValueError as exc:
        raise _bad_request(f"The request body is not valid JSON: {exc}.") from exc
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise _bad_request("Expected a JSON:API document with a top-level 'data' object.")
    if data.get("type") != kind:
        raise OutreachApiError(
            409,
            "typeMismatch",
            "Type Mismatch",
            f"Expected data.type to be '{kind}'; got {data.get('type')!r}.",
            "/data/type",
        )
    return data


def _prospect_attributes(data: Mapping[str, Any]) -> dict[str, Any]:
    attributes = data.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise validation_error("Attributes must be an object.", "/data/attributes")
    for name, value in attributes.items():
        if name not in PROSPECT_ATTRIBUTES and not _CUSTOM_FIELD.match(name):
            raise validation_error(
                f"'{name}' is not a prospect attribute.", f"/data/attributes/{name}"
            )
        if name == "emails" and not (
            isinstance(value, list) and all(isinstance(e, str) and "@" in e for e in value)
        ):
            raise validation_error(
                f"emails must be a list of e-mail addresses; got {value!r}.",
                "/data/attributes/emails",
            )
    return attributes


def _related_id(data: Mapping[str, Any], name: str) -> int:
    relationship = (data.get("relationships") or {}).get(name) or {}
    related = relationship.get("data") if isinstance(relationship, dict) else None
    pointer = f"/data/relationships/{name}"
    if not isinstance(related, dict) or related.get("id") is None:
        raise validation_error(f"{name[0].upper()}{name[1:]} can't be blank.", pointer)
    try:
        return int(related["id"])
    except (TypeError, ValueError) as exc:
        raise validation_error(f"{name} id must be an integer; got {related['id']!r}.") from exc


def _path_id(value: str, kind: str) -> int:
    try:
        return int(value)
    except ValueError as exc:
        raise OutreachApiError(
            404,
            "resourceNotFound",
            "Resource Not Found",
            f"Could not find '{kind}' with ID '{value}'.",
        ) from exc


class _OutreachRoute(APIRoute):
    """Answers an ``OutreachApiError`` raised by a handler as Outreach does."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except OutreachApiError as error:
                return _error(error)

        return answer


def outreach_router(api: OutreachApi) -> APIRouter:
    """The ``/api/v2`` routes of the emulated sequencer. Reads are plain functions (run in
    the thread pool); writes read their body, then hand the store call to the pool."""
    router = APIRouter(prefix="/api/v2", route_class=_OutreachRoute)
    store = api.store

    # Prospects

    @router.get("/prospects")
    def list_prospects(request: Request) -> Response:
        filters, after, size = _listing_query(request, "prospects")
        return _collection(request, store.prospects(filters, after, size), render_prospect)

    @router.post("/prospects")
    async def create_prospect(request: Request) -> Response:
        attributes = _prospect_attributes(await _data(request, "prospect"))
        row = await run_in_threadpool(store.create_prospect, attributes)
        return _document(render_prospect(_base(request), row), status=201)

    @router.get("/prospects/{prospect_id}")
    def get_prospect(request: Request, prospect_id: str) -> Response:
        row = store.prospect(_path_id(prospect_id, "prospect"))
        return _document(render_prospect(_base(request), row))

    @router.patch("/prospects/{prospect_id}")
    async def update_prospect(request: Request, prospect_id: str) -> Response:
        resource_id = _path_id(prospect_id, "prospect")
        data = await _data(request, "prospect")
        if str(data.get("id")) != str(resource_id):
            raise OutreachApiError(
                409,
                "idMismatch",
                "ID Mismatch",
                f"Expected data.id to be {resource_id}; got {data.get('id')!r}.",
                "/data/id",
            )
        attributes = _prospect_attributes(data)
        row = await run_in_threadpool(store.update_prospect, resource_id, attributes)
        return _document(render_prospect(_base(request), row))

    # Sequences

    @router.get("/sequences")
    def list_sequences(request: Request) -> Response:
        filters, after, size = _listing_query(request, "sequences")
        return _collection(request, store.sequences(filters, after, size), render_sequence)

    @router.post("/sequences")
    async def create_sequence(request: Request) -> Response:
        attributes = (await _data(request, "sequence")).get("attributes") or {}
        name = attributes.get("name")
        if not isinstance(name, str) or not name.strip():
            raise validation_error("Name can't be blank.", "/data/attributes/name")
        row = await run_in_threadpool(
            store.create_sequence,
            name.strip(),
            attributes.get("description"),
            bool(attributes.get("enabled", True)),
        )
        return _document(render_sequence(_base(request), row), status=201)

    @router.get("/sequences/{sequence_id}")
    def get_sequence(request: Request, sequence_id: str) -> Response:
        row = store.sequence(_path_id(sequence_id, "sequence"))
        return _document(render_sequence(_base(request), row))

    # Mailboxes

    @router.get("/mailboxes")
    def list_mailboxes(request: Request) -> Response:
        filters, after, size = _listing_query(request, "mailboxes")
        return _collection(request, store.mailboxes(filters, after, size), render_mailbox)

    @router.get("/mailboxes/{mailbox_id}")
    def get_mailbox(request: Request, mailbox_id: str) -> Response:
        row = store.mailbox(_path_id(mailbox_id, "mailbox"))
        return _document(render_mailbox(_base(request), row))

    # Sequence states

    @router.get("/sequenceStates")
    def list_sequence_states(request: Request) -> Response:
        filters, after, size = _listing_query(request, "sequenceStates")
        for state in filters.get("state", []):
            if state not in SEQUENCE_STATES:
                raise _bad_request(
                    f"filter[state] {state!r} is not a sequence state; expected one of "
                    f"{', '.join(SEQUENCE_STATES)}."
                )
        page = store.sequence_states(filters, after, size)
        return _collection(request, page, render_sequence_state)

    @router.post("/sequenceStates")
    async def create_sequence_state(request: Request) -> Response:
        data = await _data(request, "sequenceState")
        ids = [_related_id(data, name) for name in ("prospect", "sequence", "mailbox")]
        row = await run_in_threadpool(store.create_sequence_state, *ids)
        return _document(render_sequence_state(_base(request), row), status=201)

    @router.get("/sequenceStates/{state_id}")
    def get_sequence_state(request: Request, state_id: str) -> Response:
        row = store.sequence_state(_path_id(state_id, "sequenceState"))
        return _document(render_sequence_state(_base(request), row))

    @router.post("/sequenceStates/{state_id}/actions/{action}")
    def act_on_sequence_state(request: Request, state_id: str, action: str) -> Response:
        resource_id = _path_id(state_id, "sequenceState")
        if action not in ACTIONS:
            raise _bad_request(f"Unknown action {action!r}; expected one of {', '.join(ACTIONS)}.")
        allowed_from, target = ACTIONS[action]
        row = store.change_state(resource_id, target, allowed_from=allowed_from)
        return _document(render_sequence_state(_base(request), row))

    return router


class StateChange(BaseModel):
    """What ``PUT /__sandbox/outreach/sequenceStates/{id}/state`` sets."""

    model_config = ConfigDict(extra="forbid")

    state: str
    reason: str | None = None


def outreach_operator_router(api: OutreachApi) -> APIRouter:
    """``PUT /__sandbox/outreach/sequenceStates/{id}/state``: the operator stages what a
    prospect did (bounced, opted out, replied and finished, ...)."""
    router = APIRouter(prefix="/__sandbox/outreach")

    @router.put("/sequenceStates/{state_id}/state")
    def set_sequence_state(request: Request, state_id: int, change: StateChange) -> Response:
        try:
            if change.state not in SEQUENCE_STATES:
                raise _bad_request(
                    f"{change.state!r} is not a sequence state; expected one of "
                    f"{', '.join(SEQUENCE_STATES)}."
                )
            row = api.store.change_state(state_id, change.state, reason=change.reason)
        except OutreachApiError as error:
            return _error(error)
        return _document(render_sequence_state(_base(request), row))

    return router
