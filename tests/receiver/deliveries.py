"""Deliveries as webhook senders make them: signed HTTP requests, plus readers of what landed."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from gtm_orchestration.receiver import read_webhook_batch, scan_webhook_batches
from gtm_orchestration.receiver.signatures import gtm_signature, hubspot_v3_signature

HUBSPOT_SECRET = "test-hubspot-client-secret"
WEBHOOK_SECRET = "test-webhook-secret"


def now_millis() -> str:
    return str(int(time.time() * 1000))


def as_body(document: Any) -> bytes:
    return json.dumps(document).encode()


@dataclass
class Sender:
    """Posts signed deliveries to one receiver."""

    base_url: str
    http: httpx.Client
    hubspot_secret: str = HUBSPOT_SECRET
    webhook_secret: str = WEBHOOK_SECRET

    def hubspot(
        self,
        events: list[dict[str, Any]] | None = None,
        *,
        body: bytes | None = None,
        signed_body: bytes | None = None,
        timestamp: str | None = None,
        signature: str | None = None,
        path: str = "/webhooks/hubspot",
        signed_url: str | None = None,
    ) -> httpx.Response:
        """POST a HubSpot delivery signed as HubSpot signs it, unless told otherwise."""
        body = as_body(events) if body is None else body
        timestamp = now_millis() if timestamp is None else timestamp
        if signature is None:
            url = signed_url or self.base_url + path
            signature = hubspot_v3_signature(
                self.hubspot_secret,
                "POST",
                url,
                body if signed_body is None else signed_body,
                timestamp,
            )
        headers = {
            "Content-Type": "application/json",
            "X-HubSpot-Signature-v3": signature,
            "X-HubSpot-Request-Timestamp": timestamp,
        }
        return self.http.post(path, content=body, headers=headers)

    def generic(
        self,
        path: str,
        document: Any = None,
        *,
        body: bytes | None = None,
        signature: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """POST a JSON document to a form or engagement endpoint with its X-GTM-Signature."""
        body = as_body(document) if body is None else body
        signed = {
            "Content-Type": "application/json",
            "X-GTM-Signature": gtm_signature(self.webhook_secret, body)
            if signature is None
            else signature,
            **(headers or {}),
        }
        return self.http.post(path, content=body, headers=signed)

    def form(self, source: str, submission: dict[str, Any], **options: Any) -> httpx.Response:
        return self.generic(f"/webhooks/forms/{source}", submission, **options)

    def engagement(self, provider: str, event: dict[str, Any], **options: Any) -> httpx.Response:
        return self.generic(f"/webhooks/engagement/{provider}", event, **options)

    def health(self) -> dict[str, Any]:
        return self.http.get("/healthz").raise_for_status().json()


def hubspot_event(event_id: int, **fields: Any) -> dict[str, Any]:
    return {
        "eventId": event_id,
        "subscriptionId": 4242,
        "portalId": 62515,
        "occurredAt": 1764190862000,
        "subscriptionType": "contact.creation",
        "objectId": 1000 + event_id,
        "changeSource": "CRM",
        "attemptNumber": 0,
        **fields,
    }


def lead(event_id: str, email: str = "ada@example.com") -> dict[str, Any]:
    return {"event_id": event_id, "email": email, "first_name": "Ada", "company": "Analytical"}


def engagement(event_id: str, kind: str = "email_opened") -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": kind,
        "email": "ada@example.com",
        "occurred_at": "2026-11-26T21:01:02Z",
    }


def landed_lines(data_dir: Path) -> list[dict[str, Any]]:
    """Every event line in the landing zone, oldest batch first."""
    landing_dir = data_dir / "landing"
    return [line for path in scan_webhook_batches(landing_dir) for line in read_webhook_batch(path)]


def landed_ids(data_dir: Path) -> list[tuple[str, str]]:
    return [(line["channel"], line["event_id"]) for line in landed_lines(data_dir)]


def landing_entries(data_dir: Path) -> list[Path]:
    """Every file under landing/webhooks, whatever its name."""
    root = data_dir / "landing" / "webhooks"
    return sorted(path for path in root.rglob("*") if path.is_file())


def raw_exchange(base_url: str, head: str, body_parts: Iterable[bytes] = ()) -> tuple[int, Any]:
    """Send a hand-written request (``head`` ends with the blank line) and read the answer.

    For what httpx will not send: a body that never comes, or a chunked body left unfinished.
    """
    address = urlsplit(base_url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        connection.sendall(head.replace("\n", "\r\n").encode())
        for part in body_parts:
            connection.sendall(part)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = connection.recv(65536)
            if not chunk:
                raise ConnectionError(f"connection closed before a full answer: {received!r}")
            received += chunk
        head_bytes, _, body = received.partition(b"\r\n\r\n")
        lines = head_bytes.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = dict(line.split(": ", 1) for line in lines[1:])
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = connection.recv(65536)
            if not chunk:
                break
            body += chunk
    return status, json.loads(body) if body else None
