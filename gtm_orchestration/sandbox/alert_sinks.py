"""Alert sinks: a Slack incoming webhook and the PagerDuty Events API v2, recording what
they receive.

Both answer as the real services do, so the alerting code cannot tell them apart:

- ``POST /slack/services/{team}/{channel}/{token}`` takes ``{"text": ..., "blocks": [...]}``
  as JSON (or form-encoded as ``payload=<json>``) and answers ``200 ok`` as text; a body
  that is not JSON is ``400 invalid_payload``, one without text or blocks ``400 no_text``,
  blocks that are not a list of typed objects ``400 invalid_blocks``.
- ``POST /v2/enqueue`` takes an event (``routing_key``, ``event_action`` trigger,
  acknowledge or resolve, ``dedup_key``, ``payload{summary, source, severity, ...}``) and
  answers ``202 {"status": "success", "message": "Event processed", "dedup_key": ...}``,
  or ``400 {"status": "invalid event", "message": "Event object is invalid", "errors":
  [...]}``. A trigger without ``dedup_key`` gets one. Events with one ``dedup_key`` make one
  incident: a trigger while it is open adds to it instead of paging again, a resolve closes
  it, a trigger after that opens a new one.

The sinks are operator-like: no authentication, rate limit or injected faults, and they are
not counted in the request statistics. ``GET /__sandbox/alerts`` lists every request they
received, in order (with the status answered), and PagerDuty's incidents;
``POST /__sandbox/reset`` forgets both. Routing keys and webhook tokens are not kept.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from gtm_orchestration.sandbox.state import SandboxDatabase

SLACK_PREFIX = "/slack/services/"
PAGERDUTY_ENQUEUE_PATH = "/v2/enqueue"
# Paths the sandbox's gateway lets through untouched, like its operator endpoints.
ALERT_SINK_PATHS = (SLACK_PREFIX, PAGERDUTY_ENQUEUE_PATH)

EVENT_ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")
ROUTING_KEY_LENGTH = 32
MAX_DEDUP_KEY_LENGTH = 255
TRIGGERED, ACKNOWLEDGED, RESOLVED = "triggered", "acknowledged", "resolved"

_DDL = (
    """CREATE TABLE IF NOT EXISTS alert_sink_requests (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    sink TEXT NOT NULL,              -- slack | pagerduty
    received_at TEXT NOT NULL,
    status INTEGER NOT NULL,         -- what the sink answered
    target TEXT,                     -- slack: team/channel of the webhook
    body TEXT NOT NULL               -- JSON as received (routing key removed), or the raw text
)""",
    """CREATE TABLE IF NOT EXISTS pagerduty_incidents (
    dedup_key TEXT PRIMARY KEY,
    status TEXT NOT NULL,            -- triggered | acknowledged | resolved
    summary TEXT,
    severity TEXT,
    source TEXT,
    triggers INTEGER NOT NULL,       -- trigger events while this incident was open
    opened_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    resolved_at TEXT,
    incidents INTEGER NOT NULL       -- incidents opened under this key so far
)""",
)


class AlertSinks:
    """What the Slack webhook and PagerDuty received, kept in the sandbox's database."""

    def __init__(self, database: SandboxDatabase) -> None:
        self._database = database
        with database.transaction() as connection:
            for statement in _DDL:
                connection.execute(statement)

    def slack(self, target: str, raw: bytes, content_type: str) -> tuple[int, str]:
        """Take one webhook delivery; returns Slack's status code and text answer."""
        message, problem = _slack_message(raw, content_type)
        status, answer = (400, problem) if problem else (200, "ok")
        body = json.dumps(message) if message is not None else raw.decode(errors="replace")
        self._record("slack", status, target, body)
        return status, answer

    def pagerduty(self, raw: bytes) -> tuple[int, dict[str, Any]]:
        """Take one Events API v2 event; returns PagerDuty's status code and JSON answer."""
        try:
            event = json.loads(raw)
        except ValueError:
            event = None
        errors = validate_event(event) if isinstance(event, dict) else ["Event object is not JSON"]
        if errors:
            stored = _without_routing_key(event) if isinstance(event, dict) else None
            self._record(
                "pagerduty",
                400,
                None,
                json.dumps(stored) if stored is not None else raw.decode(errors="replace"),
            )
            answer = {"status": "invalid event", "message": "Event object is invalid"}
            return 400, answer | {"errors": errors}
        assert isinstance(event, dict)
        dedup_key = str(event.get("dedup_key") or uuid.uuid4().hex)
        event = _without_routing_key(event) | {"dedup_key": dedup_key}
        with self._database.transaction() as connection:
            self._insert(connection, "pagerduty", 202, None, json.dumps(event))
            _apply_to_incident(connection, event, dedup_key, _now())
        return 202, {"status": "success", "message": "Event processed", "dedup_key": dedup_key}

    def received(self) -> list[dict[str, Any]]:
        """Every request the sinks received, oldest first."""
        with self._database.reading() as connection:
            rows = connection.execute(
                "SELECT seq, sink, received_at, status, target, body FROM alert_sink_requests "
                "ORDER BY seq"
            ).fetchall()
        return [
            {
                "seq": row["seq"],
                "sink": row["sink"],
                "received_at": row["received_at"],
                "status": row["status"],
                **({"target": row["target"]} if row["target"] else {}),
                "body": _parsed(row["body"]),
            }
            for row in rows
        ]

    def incidents(self) -> list[dict[str, Any]]:
        """PagerDuty's incidents by dedup key, oldest first."""
        with self._database.reading() as connection:
            rows = connection.execute(
                "SELECT dedup_key, status, summary, severity, source, triggers, opened_at, "
                "updated_at, resolved_at, incidents FROM pagerduty_incidents ORDER BY opened_at"
            ).fetchall()
        return [dict(row) for row in rows]

    def reset(self) -> None:
        """Forget everything received."""
        with self._database.transaction() as connection:
            connection.execute("DELETE FROM alert_sink_requests")
            connection.execute("DELETE FROM pagerduty_incidents")

    def _record(self, sink: str, status: int, target: str | None, body: str) -> None:
        with self._database.transaction() as connection:
            self._insert(connection, sink, status, target, body)

    @staticmethod
    def _insert(
        connection: sqlite3.Connection, sink: str, status: int, target: str | None, body: str
    ) -> None:
        connection.execute(
            "INSERT INTO alert_sink_requests (sink, received_at, status, target, body) "
            "VALUES (?, ?, ?, ?, ?)",
            (sink, _now(), status, target, body),
        )


def validate_event(event: Mapping[str, Any]) -> list[str]:
    """What is wrong with an Events API v2 event, in PagerDuty's words; empty when valid."""
    errors = []
    routing_key = event.get("routing_key")
    if not isinstance(routing_key, str) or not routing_key.strip():
        errors.append("'routing_key' is missing or blank")
    elif len(routing_key) != ROUTING_KEY_LENGTH:
        errors.append(
            f"Length of 'routing_key' is incorrect (should be {ROUTING_KEY_LENGTH} characters)"
        )
    action = event.get("event_action")
    if action not in EVENT_ACTIONS:
        errors.append(
            "'event_action' is invalid (must be one of the following: 'trigger', "
            "'acknowledge' or 'resolve')"
        )
    dedup_key = event.get("dedup_key")
    if dedup_key is not None and (not isinstance(dedup_key, str) or not dedup_key.strip()):
        errors.append("'dedup_key' is invalid (must be a non-blank string)")
    elif isinstance(dedup_key, str) and len(dedup_key) > MAX_DEDUP_KEY_LENGTH:
        errors.append(f"Length of 'dedup_key' is too long (max {MAX_DEDUP_KEY_LENGTH})")
    if action in ("acknowledge", "resolve") and not dedup_key:
        errors.append("'dedup_key' is missing or blank")
    if action == "trigger":
        payload = event.get("payload")
        if not isinstance(payload, dict):
            errors.append("'payload' is missing or blank")
        else:
            for name in ("summary", "source"):
                value = payload.get(name)
                if not isinstance(value, str) or not value.strip():
                    errors.append(f"'payload.{name}' is missing or blank")
            if payload.get("severity") not in SEVERITIES:
                errors.append(
                    "'payload.severity' is invalid (must be one of the following: "
                    "'critical', 'warning', 'error' or 'info')"
                )
    return errors


def _apply_to_incident(
    connection: sqlite3.Connection, event: Mapping[str, Any], dedup_key: str, now: str
) -> None:
    """Open, add to, acknowledge or resolve the incident of ``dedup_key`` as PagerDuty does."""
    row = connection.execute(
        "SELECT status, incidents FROM pagerduty_incidents WHERE dedup_key = ?", (dedup_key,)
    ).fetchone()
    action = event["event_action"]
    if action == "trigger":
        payload = event["payload"]
        if row is not None and row["status"] != RESOLVED:
            connection.execute(
                "UPDATE pagerduty_incidents SET triggers = triggers + 1, updated_at = ? "
                "WHERE dedup_key = ?",
                (now, dedup_key),
            )
            return
        connection.execute(
            "INSERT OR REPLACE INTO pagerduty_incidents (dedup_key, status, summary, severity, "
            "source, triggers, opened_at, updated_at, resolved_at, incidents) "
            "VALUES (?, ?, ?, ?, ?, 1, ?, ?, NULL, ?)",
            (
                dedup_key,
                TRIGGERED,
                payload["summary"][:1024],  # PagerDuty truncates longer summaries
                payload["severity"],
                payload["source"],
                now,
                now,
                (row["incidents"] if row is not None else 0) + 1,
            ),
        )
        return
    # Acknowledging or resolving an incident that is not open changes nothing, as on PagerDuty.
    if row is None or row["status"] == RESOLVED:
        return
    status = RESOLVED if action == "resolve" else ACKNOWLEDGED
    connection.execute(
        "UPDATE pagerduty_incidents SET status = ?, updated_at = ?, resolved_at = ? "
        "WHERE dedup_key = ?",
        (status, now, now if status == RESOLVED else None, dedup_key),
    )


def _slack_message(raw: bytes, content_type: str) -> tuple[dict[str, Any] | None, str | None]:
    """The message of a webhook delivery and, when Slack would refuse it, its error code."""
    text = raw.decode(errors="replace")
    if content_type.startswith("application/x-www-form-urlencoded"):
        text = (parse_qs(text).get("payload") or [""])[0]
    try:
        message = json.loads(text)
    except ValueError:
        return None, "invalid_payload"
    if not isinstance(message, dict):
        return None, "invalid_payload"
    blocks = message.get("blocks")
    if blocks is not None and not (
        isinstance(blocks, list)
        and all(isinstance(block, dict) and isinstance(block.get("type"), str) for block in blocks)
    ):
        return message, "invalid_blocks"
    if not message.get("text") and not blocks and not message.get("attachments"):
        return message, "no_text"
    return message, None


def _without_routing_key(event: Mapping[str, Any]) -> dict[str, Any]:
    # The routing key opens the service to anyone holding it: it is not stored.
    return {k: v for k, v in event.items() if k != "routing_key"}


def _parsed(body: str) -> object:
    try:
        return json.loads(body)
    except ValueError:
        return body


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def alert_sink_router(sinks: AlertSinks) -> APIRouter:
    """The Slack webhook, PagerDuty's ``/v2/enqueue`` and ``GET /__sandbox/alerts``."""
    router = APIRouter()

    @router.post(SLACK_PREFIX + "{team_id}/{channel_id}/{token}")
    async def slack_webhook(
        team_id: str, channel_id: str, token: str, request: Request
    ) -> Response:
        raw = await request.body()
        content_type = request.headers.get("content-type", "application/json")
        status, answer = await run_in_threadpool(
            sinks.slack, f"{team_id}/{channel_id}", raw, content_type
        )
        return PlainTextResponse(answer, status_code=status)

    @router.post(PAGERDUTY_ENQUEUE_PATH)
    async def pagerduty_enqueue(request: Request) -> Response:
        status, answer = await run_in_threadpool(sinks.pagerduty, await request.body())
        return JSONResponse(answer, status_code=status)

    @router.get("/__sandbox/alerts")
    def received_alerts() -> dict[str, list[dict[str, Any]]]:
        return {"alerts": sinks.received(), "incidents": sinks.incidents()}

    return router
