"""The webhook receiver: authenticated endpoints that land each delivered event durably.

Every delivery is checked in the same order: the path names a safe slug (404), the body fits
in 1 MiB (413), the signature matches (401), the JSON has the expected shape (400, 422). Only
then do its events join a batch; the answer waits until that batch is on disk, so a 2xx
promises the event is durably in the landing zone. A delivery of an event id already landed in
its channel is answered 200 ``{"status": "duplicate"}`` and lands nothing.

The receiver depends on nothing but its data folder: it keeps answering (``/healthz``
included) while the pipeline, Dagster or the warehouse are down.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from gtm_orchestration.receiver.landing import (
    LandingOutcome,
    LandingUnavailable,
    WebhookEvent,
    WebhookLanding,
)
from gtm_orchestration.receiver.signatures import (
    hubspot_timestamp_is_fresh,
    verify_gtm_signature,
    verify_hubspot_v3,
)

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
MAX_EVENT_ID_LENGTH = 256
SLUG = re.compile(r"[a-z0-9_-]{1,64}")
ENGAGEMENT_TYPES = (
    "email_opened",
    "email_clicked",
    "email_replied",
    "meeting_booked",
    "page_visit",
)
ENGAGEMENT_REQUIRED_FIELDS = ("email", "occurred_at")
HUBSPOT_CHANNEL = "hubspot"


class WebhookRejected(Exception):
    """A delivery refused with ``status_code``; ``message`` tells the sender what to fix."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


def create_receiver_app(
    data_dir: Path,
    *,
    storage_root: str | os.PathLike[str] | None = None,
    hubspot_client_secret: str,
    webhook_secret: str,
    max_batch_events: int = 500,
    max_batch_age_s: float = 0.25,
    public_base_url: str | None = None,
) -> FastAPI:
    """The receiver ASGI app, landing events under ``storage_root`` (by default ``data_dir``;
    a local folder or an object store, see ``lib/storage.py``) and keeping its dedupe store
    under ``data_dir`` (see ``landing``).

    ``hubspot_client_secret`` verifies ``X-HubSpot-Signature-v3``, ``webhook_secret`` verifies
    ``X-GTM-Signature``. ``public_base_url`` (e.g. ``https://hooks.example.com``) is the scheme
    and host HubSpot calls when a proxy stands in front; by default the URL the request
    arrived on is the one verified.
    """
    if not hubspot_client_secret or not webhook_secret:
        raise ValueError("the HubSpot client secret and the webhook secret must not be empty")
    landing = WebhookLanding(
        data_dir,
        storage_root=storage_root,
        max_batch_events=max_batch_events,
        max_batch_age_s=max_batch_age_s,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await landing.start()
        try:
            yield
        finally:
            await landing.stop()

    app = FastAPI(
        title="GTM webhook receiver",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.landing = landing

    @app.exception_handler(WebhookRejected)
    async def rejected(request: Request, error: WebhookRejected) -> JSONResponse:
        logger.info(
            "rejected %s %s from %s with %d: %s",
            request.method,
            request.url.path,
            request.client.host if request.client else "an unknown client",
            error.status_code,
            error.message,
        )
        return JSONResponse(
            {"status": "rejected", "error": error.message}, status_code=error.status_code
        )

    @app.exception_handler(LandingUnavailable)
    async def unavailable(_: Request, error: LandingUnavailable) -> JSONResponse:
        return JSONResponse(
            {"status": "unavailable", "error": f"{error}; nothing was acknowledged, retry"},
            status_code=503,
            headers={"Retry-After": "1"},
        )

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", **landing.health()}

    @app.post("/webhooks/hubspot")
    async def hubspot_events(request: Request) -> JSONResponse:
        body = await read_body_within_limit(request)
        timestamp = request.headers.get("x-hubspot-request-timestamp")
        if not hubspot_timestamp_is_fresh(timestamp):
            raise WebhookRejected(
                401,
                "X-HubSpot-Request-Timestamp is missing, not epoch milliseconds, or more than "
                "5 minutes from now",
            )
        uri = hubspot_request_uri(request, public_base_url)
        signature = request.headers.get("x-hubspot-signature-v3")
        if not verify_hubspot_v3(
            hubspot_client_secret, request.method, uri, body, timestamp, signature
        ):
            raise WebhookRejected(
                401, f"X-HubSpot-Signature-v3 is missing or does not match {request.method} {uri}"
            )
        events = hubspot_events_in(parse_json(body))
        outcomes = await landing.land(events)
        landed = outcomes.count(LandingOutcome.LANDED)
        return JSONResponse(
            {
                "status": LandingOutcome.LANDED if landed else LandingOutcome.DUPLICATE,
                "landed": landed,
                "duplicates": len(outcomes) - landed,
            }
        )

    @app.post("/webhooks/forms/{source}")
    async def form_submission(source: str, request: Request) -> JSONResponse:
        channel = f"forms/{safe_slug(source, 'form source')}"
        body = await read_body_within_limit(request)
        verify_gtm_request(webhook_secret, request, body)
        submission = json_object(parse_json(body), "a form submission")
        event = WebhookEvent(channel, source, event_id_of(submission, request), submission)
        return await land_one(landing, event)

    @app.post("/webhooks/engagement/{provider}")
    async def engagement_event(provider: str, request: Request) -> JSONResponse:
        channel = f"engagement/{safe_slug(provider, 'engagement provider')}"
        body = await read_body_within_limit(request)
        verify_gtm_request(webhook_secret, request, body)
        engagement = json_object(parse_json(body), "an engagement event")
        event_id = event_id_of(engagement, request)
        check_engagement(engagement)
        return await land_one(landing, WebhookEvent(channel, provider, event_id, engagement))

    return app


async def read_body_within_limit(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The raw body, refused with 413 past ``limit`` bytes.

    A declared ``Content-Length`` over the limit is refused before reading; the limit is also
    enforced while reading, so a chunked or lying client cannot push more.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise WebhookRejected(400, f"Content-Length {declared!r} is not a byte count")
        if int(declared) > limit:
            raise WebhookRejected(413, f"the body is {declared} bytes; at most {limit} are taken")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise WebhookRejected(413, f"the body is over {limit} bytes; at most {limit} are taken")
    return bytes(body)


def hubspot_request_uri(request: Request, public_base_url: str | None) -> str:
    """The full URL HubSpot called, as it signs it: scheme, host, path and query as sent.

    The path and query come from the raw request target, never re-encoded. Behind a proxy,
    ``public_base_url`` replaces the scheme and host the request arrived with.
    """
    scope = request.scope
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    target = raw_path.decode("latin-1")
    if query := scope.get("query_string", b"").decode("latin-1"):
        target = f"{target}?{query}"
    if public_base_url:
        return public_base_url.rstrip("/") + target
    host = request.headers.get("host")
    if not host and scope.get("server"):
        server_host, server_port = scope["server"]
        host = f"{server_host}:{server_port}"
    return f"{scope['scheme']}://{host}{target}"


def verify_gtm_request(secret: str, request: Request, body: bytes) -> None:
    """Refuse with 401 unless ``X-GTM-Signature`` signs ``body`` with ``secret``."""
    if not verify_gtm_signature(secret, body, request.headers.get("x-gtm-signature")):
        raise WebhookRejected(
            401, "X-GTM-Signature is missing or is not sha256=<hex HMAC-SHA256 of the body>"
        )


def parse_json(body: bytes) -> Any:
    """The JSON document in ``body``; 400 naming the problem when it is not one."""
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as error:
        raise WebhookRejected(400, f"the body is not valid JSON: {error}") from error


def _refuse_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; landing them would break every strict reader downstream.
    raise ValueError(f"{name} is not a JSON value")


def json_object(document: Any, what: str) -> dict[str, Any]:
    """``document`` if it is a JSON object, else 400 saying that ``what`` was expected."""
    if not isinstance(document, dict):
        raise WebhookRejected(400, f"expected {what} as a JSON object, got {_json_type(document)}")
    return document


def hubspot_events_in(document: Any) -> list[WebhookEvent]:
    """The events of a HubSpot webhook delivery, a non-empty array of objects with ``eventId``."""
    if not isinstance(document, list):
        raise WebhookRejected(
            400, f"expected a JSON array of HubSpot events, got {_json_type(document)}"
        )
    if not document:
        raise WebhookRejected(400, "expected a JSON array of HubSpot events, got an empty array")
    events = []
    for index, event in enumerate(document):
        if not isinstance(event, dict):
            raise WebhookRejected(
                400, f"event [{index}]: expected a JSON object, got {_json_type(event)}"
            )
        event_id = _checked_event_id(event.get("eventId"), f"event [{index}] eventId")
        events.append(WebhookEvent(HUBSPOT_CHANNEL, HUBSPOT_CHANNEL, event_id, event))
    return events


def event_id_of(event: dict[str, Any], request: Request) -> str:
    """The delivery's event id: the ``event_id`` field, else the ``Idempotency-Key`` header."""
    if event.get("event_id") is not None:
        return _checked_event_id(event["event_id"], "event_id")
    header = request.headers.get("idempotency-key")
    if header is not None:
        return _checked_event_id(header, "the Idempotency-Key header")
    raise WebhookRejected(
        400, "missing event id: send an `event_id` field or an Idempotency-Key header"
    )


def check_engagement(event: dict[str, Any]) -> None:
    """Refuse with 422 an engagement event of an unknown type or without email/occurred_at."""
    kind = event.get("type")
    if kind not in ENGAGEMENT_TYPES:
        raise WebhookRejected(
            422,
            f"type {kind!r} is not an engagement type; expected one of "
            f"{', '.join(ENGAGEMENT_TYPES)}",
        )
    missing = [name for name in ENGAGEMENT_REQUIRED_FIELDS if not event.get(name)]
    if missing:
        raise WebhookRejected(422, f"the engagement event has no {', '.join(missing)}")


def safe_slug(value: str, what: str) -> str:
    """``value`` if it is a safe path slug, else 404 naming ``what`` and the expected form."""
    if not SLUG.fullmatch(value):
        raise WebhookRejected(
            404, f"unknown {what} {value!r}: expected 1 to 64 of a-z, 0-9, '_' and '-'"
        )
    return value


async def land_one(landing: WebhookLanding, event: WebhookEvent) -> JSONResponse:
    """Land a single-event delivery and answer with its outcome and id."""
    [outcome] = await landing.land([event])
    return JSONResponse({"status": outcome, "event_id": event.event_id})


def _checked_event_id(value: Any, where: str) -> str:
    # Numbers are allowed since HubSpot's eventId is one; they are landed as their text.
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise WebhookRejected(
            400, f"{where}: expected a string or integer event id, got {_json_type(value)}"
        )
    event_id = str(value)
    if not event_id.strip() or len(event_id) > MAX_EVENT_ID_LENGTH:
        raise WebhookRejected(
            400, f"{where}: expected a non-blank event id of at most {MAX_EVENT_ID_LENGTH} chars"
        )
    return event_id


def _json_type(value: Any) -> str:
    names: Sequence[tuple[type | tuple[type, ...], str]] = (
        (type(None), "null"),
        (bool, "a boolean"),
        ((int, float), "a number"),
        (str, "a string"),
        (list, "an array"),
        (dict, "an object"),
    )
    for kind, name in names:
        if isinstance(value, kind):
            return name
    return type(value).__name__
