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
    not_in_crm: int = 0  # left alone because the stream only updates existing records
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
    stream: str | None = None,
    create: bool = True,
    run_id: str | None = None,
) -> SyncSummary:
    """Send the changed ``payloads`` in batches of 100 and record the outcome.

    ``stream`` names the ledger's record of these payloads (default: the object type), so
    that several streams (contact fields, engagement scores) can update one CRM record.
    With ``create=False`` records missing from the CRM are left alone. Returns the counts.
    The ledger row of a record is written only after the CRM confirmed it, so a crash
    between send and record makes the next run resend it, which the upsert makes harmless.
    """
    unique = portal_schema().objects[object_type].unique_property
    target = _Target(object_type, unique, destination, stream or object_type, create, run_id)
    summary = SyncSummary(target.stream, payloads=len(payloads))
    todo = _changed(con, destination, target.stream, payloads)
    summary.unchanged = len(payloads) - len(todo)
    for start in range(0, len(todo), BATCH_LIMIT):
        _sync_batch(client, con, target, todo[start : start + BATCH_LIMIT], summary)
    return summary


@dataclass(frozen=True)
class _Target:
    object_type: ObjectType
    unique: str
    destination: str
    stream: str
    create: bool
    run_id: str | None


def _sync_batch(
    client: HubSpotClient,
    con: duckdb.DuckDBPyConnection,
    target: _Target,
    batch: list[Payload],
    summary: SyncSummary,
) -> None:
    props = sorted({p for payload in batch for p in payload.properties})
    existing = client.batch_read(
        target.object_type,
        [p.key for p in batch],
        id_property=target.unique,
        properties=props,
        properties_with_history=props,
    )
    summary.requests += 1
    current = {r["properties"][target.unique].lower(): r for r in existing.results}

    fill_only = field_ownership().fill_if_empty(target.object_type)
    to_send: list[tuple[Payload, dict[str, str], set[str]]] = []
    confirmed: list[tuple[Payload, str, str, set[str]]] = []
    for payload in batch:
        record = current.get(payload.key.lower())
        if record is None and not target.create:
            summary.not_in_crm += 1
            continue
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
        result = client.batch_upsert(
            target.object_type, target.unique, [(p.key, o) for p, o, _ in to_send]
        )
        summary.requests += 1
        by_key = {r["properties"][target.unique].lower(): r for r in result.results}
        failed_msgs = _errors_by_key(result.errors)
        for payload, _, kept in to_send:
            record = by_key.get(payload.key.lower())
            if record is None:
                message = failed_msgs.get(payload.key.lower()) or _summary_error(result.errors)
                summary.failed += 1
                summary.errors.append(f"{target.stream} {payload.key}: {message}")
                _log(con, target, [(payload, None, "failed", kept, message)])
                continue
            action = "created" if record.get("new") else "updated"
            if action == "created":
                summary.created += 1
            else:
                summary.updated += 1
            confirmed.append((payload, record["id"], action, kept))
    summary.unchanged += sum(1 for _, _, action, _ in confirmed if action == "unchanged")

    if not confirmed:
        return
    now = datetime.now(UTC)
    con.executemany(
        "INSERT OR REPLACE INTO gtm.sync_ledger VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            [
                target.destination,
                target.stream,
                payload.key,
                crm_id,
                payload.digest,
                json.dumps(payload.properties, sort_keys=True),
                now,
            ]
            for payload, crm_id, _, _ in confirmed
        ],
    )
    _log(con, target, [(p, crm_id, action, kept, None) for p, crm_id, action, kept in confirmed])


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
    target: _Target,
    entries: list[tuple[Payload, str | None, str, set[str], str | None]],
) -> None:
    if not entries:
        return
    now = datetime.now(UTC)
    con.executemany(
        "INSERT INTO gtm.crm_sync_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            [
                target.run_id,
                target.destination,
                target.stream,
                payload.key,
                crm_id,
                action,
                json.dumps(payload.properties, sort_keys=True),
                ",".join(sorted(kept)) or None,
                error,
                now,
            ]
            for payload, crm_id, action, kept, error in entries
        ],
    )
