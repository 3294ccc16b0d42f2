"""Loading payloads into the CRM through the sync ledger.

The ledger keeps, per CRM record, the payload last confirmed by the CRM. A record whose
payload has not changed since is not sent at all, so rerunning over unchanged data costs
nothing and changes nothing. Properties whose latest change in the CRM came from a rep in
the CRM's UI are left out of what is sent: a rep's manual edit is never overwritten.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb

from gtm_orchestration.lib.connectors.hubspot import BATCH_LIMIT, HubSpotClient
from gtm_orchestration.lib.crm_schema import ObjectType, Payload, field_ownership, portal_schema

REP_EDIT_SOURCE = "CRM_UI"


@dataclass
class SyncSummary:
    """Counts of one sync, as shown in run metadata and the demo summary."""

    object_type: str
    payloads: int = 0
    unchanged: int = 0
    created: int = 0
    updated: int = 0
    failed: int = 0
    rep_edits_kept: int = 0
    requests: int = 0
    errors: list[str] = field(default_factory=list)


def _changed(
    con: duckdb.DuckDBPyConnection, destination: str, object_type: str, payloads: Sequence[Payload]
) -> list[Payload]:
    known = dict(
        con.execute(
            "SELECT record_key, payload_hash FROM gtm.sync_ledger "
            "WHERE destination = ? AND object_type = ?",
            [destination, object_type],
        ).fetchall()
    )
    return [p for p in payloads if known.get(p.key) != p.digest]


def _rep_owned(record: dict) -> set[str]:
    """Properties whose newest history entry is a manual edit in the CRM UI."""
    owned = set()
    for prop, history in (record.get("propertiesWithHistory") or {}).items():
        if history and history[0].get("sourceType") == REP_EDIT_SOURCE:
            owned.add(prop)
    return owned


def sync_payloads(
    client: HubSpotClient,
    con: duckdb.DuckDBPyConnection,
    object_type: ObjectType,
    payloads: Sequence[Payload],
    *,
    destination: str = "hubspot",
    run_id: str | None = None,
) -> SyncSummary:
    """Send the changed ``payloads`` in batches of 100 and record the outcome.

    Returns the counts. The ledger row of a record is written only after the CRM
    confirmed it, so a crash between send and record makes the next run resend it, which
    the upsert makes harmless.
    """
    unique = portal_schema().objects[object_type].unique_property
    summary = SyncSummary(object_type, payloads=len(payloads))
    todo = _changed(con, destination, object_type, payloads)
    summary.unchanged = len(payloads) - len(todo)
    for start in range(0, len(todo), BATCH_LIMIT):
        batch = todo[start : start + BATCH_LIMIT]
        _sync_batch(client, con, object_type, unique, batch, destination, run_id, summary)
    return summary


def _sync_batch(
    client: HubSpotClient,
    con: duckdb.DuckDBPyConnection,
    object_type: ObjectType,
    unique: str,
    batch: list[Payload],
    destination: str,
    run_id: str | None,
    summary: SyncSummary,
) -> None:
    props = sorted({p for payload in batch for p in payload.properties})
    existing = client.batch_read(
        object_type,
        [p.key for p in batch],
        id_property=unique,
        properties=props,
        properties_with_history=props,
    )
    summary.requests += 1
    current = {r["properties"][unique].lower(): r for r in existing.results}

    fill_only = field_ownership().fill_if_empty(object_type)
    to_send: list[tuple[Payload, dict[str, str], set[str]]] = []
    confirmed: list[tuple[Payload, str, str, set[str]]] = []
    for payload in batch:
        record = current.get(payload.key.lower())
        kept = _rep_owned(record) & set(payload.properties) if record else set()
        summary.rep_edits_kept += len(kept)
        if record:
            kept |= {p for p in fill_only if record["properties"].get(p)}
        outgoing = {k: v for k, v in payload.properties.items() if k not in kept}
        if record and all(record["properties"].get(k) == v for k, v in outgoing.items()):
            # The CRM already holds these values: record them, send nothing.
            confirmed.append((payload, record["id"], "unchanged", kept))
        else:
            to_send.append((payload, outgoing, kept))

    if to_send:
        result = client.batch_upsert(object_type, unique, [(p.key, o) for p, o, _ in to_send])
        summary.requests += 1
        by_key = {r["properties"][unique].lower(): r for r in result.results}
        failed_msgs = _errors_by_key(result.errors)
        for payload, _, kept in to_send:
            record = by_key.get(payload.key.lower())
            if record is None:
                message = failed_msgs.get(payload.key.lower()) or _summary_error(result.errors)
                summary.failed += 1
                summary.errors.append(f"{object_type} {payload.key}: {message}")
                _log(con, run_id, destination, object_type, payload, None, "failed", kept, message)
                continue
            action = "created" if record.get("new") else "updated"
            if action == "created":
                summary.created += 1
            else:
                summary.updated += 1
            confirmed.append((payload, record["id"], action, kept))
    summary.unchanged += sum(1 for _, _, action, _ in confirmed if action == "unchanged")

    now = datetime.now(UTC)
    for payload, crm_id, action, kept in confirmed:
        con.execute(
            "INSERT OR REPLACE INTO gtm.sync_ledger VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                destination,
                object_type,
                payload.key,
                crm_id,
                payload.digest,
                json.dumps(payload.properties, sort_keys=True),
                now,
            ],
        )
        _log(con, run_id, destination, object_type, payload, crm_id, action, kept, None)


def _errors_by_key(errors: list[dict]) -> dict[str, str]:
    by_key = {}
    for error in errors:
        message = error.get("message", "rejected")
        for key in (error.get("context") or {}).get("id", []) or []:
            by_key[str(key).lower()] = message
    return by_key


def _summary_error(errors: list[dict]) -> str:
    return errors[0].get("message", "rejected by the CRM") if errors else "no result returned"


def _log(
    con: duckdb.DuckDBPyConnection,
    run_id: str | None,
    destination: str,
    object_type: str,
    payload: Payload,
    crm_id: str | None,
    action: str,
    kept: set[str],
    error: str | None,
) -> None:
    con.execute(
        "INSERT INTO gtm.crm_sync_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            run_id,
            destination,
            object_type,
            payload.key,
            crm_id,
            action,
            json.dumps(payload.properties, sort_keys=True),
            ",".join(sorted(kept)) or None,
            error,
            datetime.now(UTC),
        ],
    )
