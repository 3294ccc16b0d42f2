"""Loading payloads into HubSpot through the sync ledger and the dead-letter queue.

The ledger (``gtm.sync_ledger``) keeps, per CRM record and stream, the payload the CRM last
confirmed; a record whose payload has not changed since is not sent, so rerunning over
unchanged data costs nothing and changes nothing. A ledger row is written only after the CRM
confirmed the record; ``gtm.crm_sync_log`` gets one row per record sent, never updated.

How a changed record is sent:

- A record the ledger has never confirmed goes out with ``batch/create``. A create never
  overwrites anything, so it needs no read first: one request per 100 records. HubSpot
  writes a create batch whole or not at all; when it answers that a record already exists
  (409) or refuses a value (400), the batch is sent again the careful way below.
- Any other record is read first with its property history, then upserted without the
  properties a rep last edited in the CRM's UI (a rep's edit is never overwritten) and
  without ``fill_if_empty`` properties the CRM already holds; one read and one upsert per
  100 records. A record HubSpot refuses comes back in the upsert's ``errors`` while the
  others of its batch are written.

Batches go out from a few threads at once, paced by the client under the portal's rate
limit. Outcomes reach the warehouse every second in one short transaction, so the load
never holds DuckDB while it waits for the CRM, and a killed load loses at most the last
second's bookkeeping: those records are sent again by the next run, where ``batch/create``
answers 409 and the read finds the values already there, so nothing is written twice.

A record that cannot be delivered goes to the dead-letter queue (``lib/dlq.py``): a refused
record as ``permanent``, a batch that failed after every retry as ``transient``. Every load
of a stream first retries its stream's transient dead letters, rebuilt from the warehouse's
current data. When the CRM fails outright (several batches in a row failing after every
retry, a refused token, the daily limit), the load stops sending, queues what it had not
sent as transient, and reports the destination failed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Literal

import duckdb
import pyarrow as pa

from gtm_orchestration.lib import dlq
from gtm_orchestration.lib.connectors.hubspot import (
    ASSOCIATION_BATCH_LIMIT,
    BATCH_LIMIT,
    HubSpotClient,
    HubSpotError,
)
from gtm_orchestration.lib.crm_schema import (
    ObjectType,
    Payload,
    build_payloads,
    field_ownership,
    invalid_values,
    portal_schema,
)
from gtm_orchestration.lib.mapping import load_registry
from gtm_orchestration.lib.warehouse import WarehouseError

REP_EDIT_SOURCE = "CRM_UI"
DESTINATION = "hubspot"
# Outcomes are written to the warehouse this often, or sooner when this many are waiting.
FLUSH_INTERVAL_S = 1.0
FLUSH_RECORDS = 5_000
# This many batches in a row failing after every retry means the CRM is down, not unlucky.
MAX_CONSECUTIVE_BATCH_FAILURES = 5
DEFAULT_MAX_IN_FLIGHT = 4
# Answers after which no further batch of the run can succeed: a refused token, missing
# scopes, or the daily allowance spent.
_FATAL_STATUSES = (401, 403)
_FATAL_CATEGORIES = ("DAILY",)
# Per-record error categories a later try may not meet again; any other needs a fix.
_TRANSIENT_RECORD_CATEGORIES = frozenset(
    {"RATE_LIMITS", "INTERNAL_ERROR", "LOCKED", "TIMEOUT", "SERVICE_UNAVAILABLE"}
)
ASSOCIATION_PROPERTY = "company_domain"

# Engagement scores only update contacts the CRM already has: an email open is no lead.
ENGAGEMENT_MAPPING = {
    "email": "email",
    "gtm_engagement_score": "engagement_score",
    "gtm_engagement_reasons": "engagement_reasons",
}

Connect = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]
StreamKind = Literal["objects", "associations"]


@dataclass(frozen=True)
class LoadStream:
    """One kind of record loaded into the CRM: its ledger stream, CRM object type, the
    warehouse table its payloads come from (None when payloads are given directly), the
    table's key column, and the mapping of CRM properties to columns."""

    name: str
    object_type: ObjectType
    table: str | None
    key_column: str
    mapping: dict[str, str]
    create: bool = True
    kind: StreamKind = "objects"


def hubspot_stream(name: str, table: str | None = None) -> LoadStream:
    """The HubSpot load stream ``name`` as the current mapping registry defines it, reading
    ``table`` (default: the stream's usual table). Raises KeyError for an unknown stream."""
    registry = load_registry()
    if name == "companies":
        mapping = registry.crm["companies"]
        return LoadStream(name, "companies", table or "gtm.companies", "domain", mapping)
    if name == "contacts":
        return LoadStream(name, "contacts", table or "gtm.leads", "email", registry.crm["contacts"])
    if name == "contact_engagement":
        table = table or "gtm.engagement_scores"
        return LoadStream(name, "contacts", table, "email", ENGAGEMENT_MAPPING, create=False)
    if name == "contact_company":
        mapping = {"email": "email", ASSOCIATION_PROPERTY: "domain"}
        return LoadStream(
            name, "contacts", table or "gtm.leads", "email", mapping, kind="associations"
        )
    raise KeyError(f"{name!r} is not a HubSpot load stream")


def payloads_for_days(
    con: duckdb.DuckDBPyConnection, stream: LoadStream, days: Sequence[str]
) -> list[Payload]:
    """The payloads of ``stream``'s records newest on one of ``days`` (see rows_for_days)."""
    assert stream.table is not None, f"{stream.name} has no table to read payloads from"
    return _payloads(rows_for_days(con, stream.table, stream.key_column, days), stream)


def rows_for_days(
    con: duckdb.DuckDBPyConnection, table: str, key_column: str, days: Sequence[str]
) -> pa.Table:
    """The rows of ``table`` (partitioned by landing day) whose record, by ``key_column``,
    is newest on one of ``days``.

    A record landed on several days: its newest day wins, also over days not listed, so
    that re-running an older day never sends older values.
    """
    return con.sql(
        f"SELECT * FROM (FROM {table} QUALIFY row_number() OVER (PARTITION BY "
        f"{key_column} ORDER BY partition_date DESC) = 1) "
        "WHERE list_contains(?, CAST(partition_date AS VARCHAR)) ORDER BY partition_date",
        params=[list(days)],
    ).to_arrow_table()


def payloads_for_keys(
    con: duckdb.DuckDBPyConnection, stream: LoadStream, keys: Iterable[str]
) -> dict[str, Payload]:
    """The current payload of each of ``keys`` (lower case) that ``stream``'s table holds,
    from its newest day, built with the current mapping."""
    if stream.table is None:
        return {}
    rows = rows_for_keys(con, stream.table, stream.key_column, keys)
    return {payload.key.lower(): payload for payload in _payloads(rows, stream)}


def rows_for_keys(
    con: duckdb.DuckDBPyConnection, table: str, key_column: str, keys: Iterable[str]
) -> pa.Table:
    """The newest row (by landing day) of ``table`` of each of ``keys`` (any case) it holds."""
    wanted = sorted({key.lower() for key in keys})
    return con.sql(
        f"SELECT * FROM {table} WHERE lower({key_column}) IN (SELECT unnest(?::VARCHAR[])) "
        f"QUALIFY row_number() OVER (PARTITION BY lower({key_column}) "
        "ORDER BY partition_date DESC) = 1",
        params=[wanted],
    ).to_arrow_table()


def _payloads(rows: pa.Table, stream: LoadStream) -> list[Payload]:
    payloads = build_payloads(rows, stream.mapping, stream.object_type)
    if stream.kind == "associations":
        # A contact without a company domain has no company to be associated with.
        return [
            Payload(p.key, {ASSOCIATION_PROPERTY: p.properties[ASSOCIATION_PROPERTY]})
            for p in payloads
            if p.properties.get(ASSOCIATION_PROPERTY)
        ]
    return payloads


@dataclass
class SyncSummary:
    """Counts of one sync, as shown in run metadata and the demo summary."""

    object_type: str  # the stream
    payloads: int = 0
    unchanged: int = 0
    created: int = 0
    updated: int = 0
    failed: int = 0  # records not delivered: each is in the dead-letter queue
    dead_lettered_permanent: int = 0
    dead_lettered_transient: int = 0
    dead_letters_retried: int = 0
    dead_letters_resolved: int = 0
    rep_edits_kept: int = 0
    not_in_crm: int = 0  # left alone because the stream only updates existing records
    requests: int = 0
    batches_failed: int = 0
    seconds: float = 0.0
    aborted: str | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def dead_lettered(self) -> int:
        """Records this sync put in (or kept in) the dead-letter queue."""
        return self.dead_lettered_permanent + self.dead_lettered_transient

    @property
    def destination_failed(self) -> bool:
        """Whether the CRM failed outright: the sync stopped early, or every batch that
        reached it failed. Records the CRM refused one by one do not count."""
        delivered_any = self.created + self.updated > 0
        return self.aborted is not None or (self.batches_failed > 0 and not delivered_any)


def sync_payloads(
    client: HubSpotClient,
    con: duckdb.DuckDBPyConnection,
    object_type: ObjectType,
    payloads: Sequence[Payload],
    *,
    destination: str = DESTINATION,
    stream: str | None = None,
    create: bool = True,
    run_id: str | None = None,
) -> SyncSummary:
    """Send the changed ``payloads`` through ``con`` (held by the caller); see ``sync_stream``.

    ``stream`` names the ledger's record of these payloads (default: the object type), so
    that several streams (contact fields, engagement scores) can update one CRM record.
    With ``create=False`` records missing from the CRM are left alone. Returns the counts.
    """
    unique = portal_schema().objects[object_type].unique_property
    load = LoadStream(stream or object_type, object_type, None, unique, {}, create)
    return sync_stream(
        client, lambda: nullcontext(con), load, payloads, destination=destination, run_id=run_id
    )


def sync_stream(
    client: HubSpotClient,
    connect: Connect,
    stream: LoadStream,
    payloads: Sequence[Payload],
    *,
    destination: str = DESTINATION,
    run_id: str | None = None,
    retry_dead_letters: bool = True,
    only_dead_letters: Sequence[int] = (),
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
) -> SyncSummary:
    """Send the changed ``payloads`` of ``stream``, record the outcomes; returns the counts.

    ``connect`` opens a short warehouse connection; it is called at the start and each time
    outcomes are written, never held while waiting for the CRM. With ``retry_dead_letters``
    the stream's pending transient dead letters are sent along, rebuilt from the warehouse;
    ``only_dead_letters`` sends exactly those pending dead letters (any category) instead.
    """
    started = time.monotonic()
    summary = SyncSummary(stream.name, payloads=len(payloads))
    target = _Target(stream, destination, run_id)
    requests_before = client.requests_sent
    with connect() as con:
        queued = _queued_payloads(con, target, retry_dead_letters, only_dead_letters)
        summary.dead_letters_retried = len(queued)
        todo, already, known = _changed(con, target, _unique_by_key([*payloads, *queued]))
        deliverer = _deliverer(con, client, target, todo, known)
        summary.dead_letters_resolved = dlq.resolve(
            con,
            destination=destination,
            stream=stream.name,
            keys=already,
            status=dlq.DELIVERED,
            now=datetime.now(UTC),
        )
    run_keys = _keys(payloads)
    summary.unchanged = sum(1 for key in already if key.lower() in run_keys)
    _run_batches(connect, target, deliverer, deliverer.batches(todo), summary, max_in_flight)
    summary.requests = client.requests_sent - requests_before
    summary.seconds = time.monotonic() - started
    return summary


def replay_dead_letters(
    client: HubSpotClient,
    connect: Connect,
    ids: Sequence[int] = (),
    *,
    destination: str = DESTINATION,
    run_id: str | None = None,
) -> dict[str, SyncSummary]:
    """Send pending dead letters of ``destination`` again (all, or those of ``ids``), each
    rebuilt from the warehouse's current data with the current mapping, so a data or
    mapping fix reaches the CRM. Companies go first and associations last, as in a load.
    A dead letter whose record the CRM confirms leaves the queue; replaying again sends
    nothing. Returns each replayed stream's counts."""
    with connect() as con:
        letters = dlq.dead_letters(con, ids=ids, destination=destination)
    by_stream: dict[str, list[int]] = {}
    for letter in letters:
        by_stream.setdefault(letter.stream, []).append(letter.id)
    order = ["companies", "contacts", "contact_engagement", "contact_company"]
    summaries = {}
    for name in sorted(by_stream, key=lambda s: (order.index(s) if s in order else len(order), s)):
        stream = _stream_of(name, letters)
        summaries[name] = sync_stream(
            client,
            connect,
            stream,
            [],
            destination=destination,
            run_id=run_id,
            only_dead_letters=by_stream[name],
        )
    return summaries


def _stream_of(name: str, letters: Sequence[dlq.DeadLetter]) -> LoadStream:
    try:
        return hubspot_stream(name)
    except KeyError:
        # A stream loaded from payloads given directly: replayed from the stored payloads.
        letter = next(letter for letter in letters if letter.stream == name)
        object_type: ObjectType = letter.object_type  # type: ignore[assignment]
        unique = portal_schema().objects[object_type].unique_property
        return LoadStream(name, object_type, None, unique, {})


# Preparing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    stream: LoadStream
    destination: str
    run_id: str | None
    # Each payload's digest by key (lower case), computed once: hashing is most of the
    # load's own CPU time.
    digests: dict[str, str] = field(default_factory=dict)

    def digest(self, payload: Payload) -> str:
        key = payload.key.lower()
        if key not in self.digests:
            self.digests[key] = payload.digest
        return self.digests[key]

    @property
    def unique(self) -> str:
        return portal_schema().objects[self.stream.object_type].unique_property


def _keys(payloads: Iterable[Payload]) -> set[str]:
    return {p.key.lower() for p in payloads}


def _unique_by_key(payloads: Iterable[Payload]) -> list[Payload]:
    """One payload per record (keys compared in lower case); the first one wins."""
    seen: dict[str, Payload] = {}
    for payload in payloads:
        seen.setdefault(payload.key.lower(), payload)
    return list(seen.values())


def _queued_payloads(
    con: duckdb.DuckDBPyConnection,
    target: _Target,
    retry_transient: bool,
    only_ids: Sequence[int],
) -> list[Payload]:
    """Payloads of the dead letters to send along: rebuilt from their source table with the
    current mapping; the stored payload when the warehouse no longer has the record."""
    if only_ids:
        letters = dlq.dead_letters(
            con, ids=only_ids, destination=target.destination, stream=target.stream.name
        )
    elif retry_transient:
        letters = dlq.dead_letters(
            con,
            destination=target.destination,
            stream=target.stream.name,
            category=dlq.TRANSIENT,
        )
    else:
        return []
    by_table: dict[str | None, list[dlq.DeadLetter]] = {}
    for letter in letters:
        by_table.setdefault(letter.source_table or target.stream.table, []).append(letter)
    payloads = []
    for table, group in by_table.items():
        stream = replace(target.stream, table=table)
        current = payloads_for_keys(con, stream, [letter.record_key for letter in group])
        for letter in group:
            stored = Payload(letter.record_key, letter.payload)
            payloads.append(current.get(letter.record_key.lower(), stored))
    return payloads


def _changed(
    con: duckdb.DuckDBPyConnection, target: _Target, payloads: Sequence[Payload]
) -> tuple[list[Payload], list[str], set[str]]:
    """The payloads differing from what the ledger last confirmed, the keys of the others
    (in the CRM as they are), and the keys (lower case) the ledger knows at all."""
    if not payloads:
        return [], [], set()
    confirmed = dict(
        con.execute(
            "SELECT lower(record_key), payload_hash FROM gtm.sync_ledger "
            "WHERE destination = ? AND object_type = ? "
            "AND lower(record_key) IN (SELECT unnest(?::VARCHAR[]))",
            [target.destination, target.stream.name, sorted(_keys(payloads))],
        ).fetchall()
    )
    changed = [p for p in payloads if confirmed.get(p.key.lower()) != target.digest(p)]
    same = [p.key for p in payloads if confirmed.get(p.key.lower()) == target.digest(p)]
    return changed, same, set(confirmed)


def _ledger_ids(
    con: duckdb.DuckDBPyConnection, destination: str, stream: str, keys: Iterable[str]
) -> dict[str, str]:
    """The CRM id the ledger holds for each of ``keys`` (lower case) of ``stream``."""
    wanted = sorted({key.lower() for key in keys})
    if not wanted:
        return {}
    return dict(
        con.execute(
            "SELECT lower(record_key), crm_id FROM gtm.sync_ledger "
            "WHERE destination = ? AND object_type = ? AND crm_id IS NOT NULL "
            "AND lower(record_key) IN (SELECT unnest(?::VARCHAR[]))",
            [destination, stream, wanted],
        ).fetchall()
    )


# Delivering ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Delivered:
    payload: Payload
    crm_id: str
    action: Literal["created", "updated", "unchanged"]
    kept: frozenset[str] = frozenset()


@dataclass
class _Outcome:
    """What became of one batch."""

    delivered: list[_Delivered] = field(default_factory=list)
    failures: list[dlq.Failure] = field(default_factory=list)
    skipped: list[Payload] = field(default_factory=list)  # not in the CRM, left alone
    rep_edits_kept: int = 0
    batch_error: HubSpotError | None = None


@dataclass(frozen=True)
class _Batch:
    payloads: list[Payload]
    create: bool = False


class _ObjectDeliverer:
    """Creates, or reads then upserts, batches of one object type."""

    def __init__(self, client: HubSpotClient, target: _Target, known: set[str]) -> None:
        self.client = client
        self.target = target
        self.known = known
        self.fill_only = field_ownership().fill_if_empty(target.stream.object_type)

    def batches(self, todo: Sequence[Payload]) -> list[_Batch]:
        """Records the ledger never confirmed and whose values the portal's schema accepts
        are created; the others are read and upserted, so HubSpot judges each one alone."""
        stream = self.target.stream
        creates, upserts = [], []
        for payload in todo:
            creatable = stream.create and payload.key.lower() not in self.known
            if creatable and not invalid_values(stream.object_type, payload.properties):
                creates.append(payload)
            else:
                upserts.append(payload)
        return [
            *(
                _Batch(creates[i : i + BATCH_LIMIT], True)
                for i in range(0, len(creates), BATCH_LIMIT)
            ),
            *(_Batch(upserts[i : i + BATCH_LIMIT]) for i in range(0, len(upserts), BATCH_LIMIT)),
        ]

    def deliver(self, batch: _Batch) -> _Outcome:
        try:
            if batch.create:
                created = self._create(batch.payloads)
                if created is not None:
                    return created
            return self._read_and_upsert(batch.payloads)
        except HubSpotError as error:
            return _batch_failed(self.target, batch.payloads, error)

    def _create(self, batch: list[Payload]) -> _Outcome | None:
        """The created batch, or None when HubSpot refused it whole (409: a record exists,
        400: a value is refused) and it must be sent the careful way."""
        object_type = self.target.stream.object_type
        try:
            result = self.client.batch_create(object_type, [p.properties for p in batch])
        except HubSpotError as error:
            if error.status in (400, 409):
                return None
            raise
        by_key = _by_unique(result.results, self.target.unique)
        outcome = _Outcome()
        for payload in batch:
            record = by_key.get(payload.key.lower())
            if record is None:
                outcome.failures.append(_no_result(self.target, payload))
            else:
                outcome.delivered.append(_Delivered(payload, str(record["id"]), "created"))
        return outcome

    def _read_and_upsert(self, batch: list[Payload]) -> _Outcome:
        target, unique = self.target, self.target.unique
        props = sorted({p for payload in batch for p in payload.properties})
        existing = self.client.batch_read(
            target.stream.object_type,
            [p.key for p in batch],
            id_property=unique,
            properties=props,
            properties_with_history=props,
        )
        current = _by_unique(existing.results, unique)
        outcome = _Outcome()
        to_send: list[tuple[Payload, dict[str, str], frozenset[str]]] = []
        for payload in batch:
            record = current.get(payload.key.lower())
            if record is None and not target.stream.create:
                outcome.skipped.append(payload)
                continue
            kept = _rep_owned(record) & set(payload.properties) if record else set()
            outcome.rep_edits_kept += len(kept)
            if record:
                kept |= {p for p in self.fill_only if record["properties"].get(p)}
            outgoing = {k: v for k, v in payload.properties.items() if k not in kept}
            if record and all(record["properties"].get(k) == v for k, v in outgoing.items()):
                # The CRM already holds these values: record them, send nothing.
                outcome.delivered.append(
                    _Delivered(payload, str(record["id"]), "unchanged", frozenset(kept))
                )
            else:
                to_send.append((payload, outgoing, frozenset(kept)))
        if not to_send:
            return outcome
        result = self.client.batch_upsert(
            target.stream.object_type, unique, [(p.key, o) for p, o, _ in to_send]
        )
        by_key = _by_unique(result.results, unique)
        errors = _errors_by_key(result.errors)
        for payload, _, kept in to_send:
            record = by_key.get(payload.key.lower())
            if record is not None:
                action = "created" if record.get("new") else "updated"
                outcome.delivered.append(_Delivered(payload, str(record["id"]), action, kept))
            elif payload.key.lower() in errors:
                outcome.failures.append(_refused(target, payload, errors[payload.key.lower()]))
            else:
                outcome.failures.append(_no_result(target, payload))
        return outcome


class _AssociationDeliverer:
    """Associates contacts with their companies (HubSpot's default association), by the
    CRM ids the ledger holds for both."""

    def __init__(
        self,
        client: HubSpotClient,
        target: _Target,
        contact_ids: dict[str, str],
        company_ids: dict[str, str],
    ) -> None:
        self.client = client
        self.target = target
        self.contact_ids = contact_ids
        self.company_ids = company_ids

    def batches(self, todo: Sequence[Payload]) -> list[_Batch]:
        step = ASSOCIATION_BATCH_LIMIT
        return [_Batch(list(todo[i : i + step])) for i in range(0, len(todo), step)]

    def deliver(self, batch: _Batch) -> _Outcome:
        outcome = _Outcome()
        pairs: dict[str, tuple[Payload, str]] = {}
        for payload in batch.payloads:
            domain = payload.properties[ASSOCIATION_PROPERTY]
            contact_id = self.contact_ids.get(payload.key.lower())
            company_id = self.company_ids.get(domain.lower())
            if contact_id is None or company_id is None:
                missing = f"contact {payload.key}" if contact_id is None else f"company {domain}"
                outcome.failures.append(
                    dlq.Failure(
                        payload.key,
                        payload.properties,
                        dlq.TRANSIENT,
                        "WAITING_FOR_RECORD",
                        f"{self.target.stream.name} {payload.key}: {missing} is not in the CRM "
                        "yet; associated once it is",
                    )
                )
            else:
                pairs[contact_id] = (payload, company_id)
        if not pairs:
            return outcome
        try:
            result = self.client.associate_default(
                "contacts", "companies", [(c, company) for c, (_, company) in pairs.items()]
            )
        except HubSpotError as error:
            return _batch_failed(self.target, [p for p, _ in pairs.values()], error, outcome)
        associated = {str(r["from"]["id"]) for r in result.results}
        refused = {
            str(contact_id): error.get("message", "refused")
            for error in result.errors
            for contact_id in (error.get("context") or {}).get("fromObjectId", [])
        }
        for contact_id, (payload, company_id) in pairs.items():
            if contact_id in associated:
                outcome.delivered.append(_Delivered(payload, company_id, "created"))
            elif contact_id in refused:
                message = f"{self.target.stream.name} {payload.key}: {refused[contact_id]}"
                failure = dlq.Failure(
                    payload.key, payload.properties, dlq.PERMANENT, "OBJECT_NOT_FOUND", message
                )
                outcome.failures.append(failure)
            else:
                outcome.failures.append(_no_result(self.target, payload))
        return outcome


_Deliverer = _ObjectDeliverer | _AssociationDeliverer


def _deliverer(
    con: duckdb.DuckDBPyConnection,
    client: HubSpotClient,
    target: _Target,
    todo: Sequence[Payload],
    known: set[str],
) -> _Deliverer:
    """The deliverer of ``target``'s stream, with what it needs from the ledger."""
    if target.stream.kind == "associations":
        contacts = _ledger_ids(con, target.destination, "contacts", [p.key for p in todo])
        domains = [p.properties[ASSOCIATION_PROPERTY] for p in todo]
        companies = _ledger_ids(con, target.destination, "companies", domains)
        return _AssociationDeliverer(client, target, contacts, companies)
    return _ObjectDeliverer(client, target, known)


def _by_unique(records: Iterable[dict], unique: str) -> dict[str, dict]:
    """Records by their unique property's value, in lower case."""
    return {str(r["properties"].get(unique) or "").lower(): r for r in records}


def _rep_owned(record: dict) -> set[str]:
    """Properties whose newest history entry is a manual edit in the CRM UI."""
    owned = set()
    for prop, history in (record.get("propertiesWithHistory") or {}).items():
        if history and history[0].get("sourceType") == REP_EDIT_SOURCE:
            owned.add(prop)
    return owned


def _errors_by_key(errors: list[dict]) -> dict[str, dict]:
    by_key = {}
    for error in errors:
        for key in (error.get("context") or {}).get("id", []) or []:
            by_key[str(key).lower()] = error
    return by_key


def _refused(target: _Target, payload: Payload, error: dict) -> dlq.Failure:
    """A record HubSpot refused: the message names the record, each property and value."""
    category = str(error.get("category") or "")
    details = error.get("errors") or []
    problems = []
    for detail in details:
        names = (detail.get("context") or {}).get("propertyName") or [detail.get("in")]
        for name in [n for n in names if n]:
            value = payload.properties.get(name)
            problems.append(f"{name}={value!r}: {detail.get('message', '')}".rstrip(": "))
    reason = "; ".join(problems) or str(error.get("message") or "refused by the CRM")
    code = str((details[0].get("code") if details else None) or category or "REFUSED")
    kind = dlq.TRANSIENT if category in _TRANSIENT_RECORD_CATEGORIES else dlq.PERMANENT
    message = f"{target.stream.name} {payload.key}: {reason}"
    return dlq.Failure(payload.key, payload.properties, kind, code, message)


def _no_result(target: _Target, payload: Payload) -> dlq.Failure:
    message = f"{target.stream.name} {payload.key}: the CRM answered without this record"
    return dlq.Failure(payload.key, payload.properties, dlq.TRANSIENT, "NO_RESULT", message)


def _batch_failed(
    target: _Target,
    batch: Sequence[Payload],
    error: HubSpotError,
    outcome: _Outcome | None = None,
) -> _Outcome:
    """A batch the CRM did not take: every record of it is dead-lettered with the reason."""
    outcome = outcome or _Outcome()
    outcome.batch_error = error
    # A batch refused for its content (400) needs a fix; any other batch failure is the
    # CRM's or the connection's, which a later run may get past.
    kind = dlq.PERMANENT if error.status == 400 and not error.transient else dlq.TRANSIENT
    code = f"HTTP {error.status}" if error.status else "TRANSPORT"
    for payload in batch:
        message = f"{target.stream.name} {payload.key}: batch of {len(batch)} failed: {error}"
        outcome.failures.append(dlq.Failure(payload.key, payload.properties, kind, code, message))
    return outcome


def _not_sent(target: _Target, batch: _Batch, reason: str) -> _Outcome:
    outcome = _Outcome()
    for payload in batch.payloads:
        message = f"{target.stream.name} {payload.key}: not sent: {reason}"
        outcome.failures.append(
            dlq.Failure(payload.key, payload.properties, dlq.TRANSIENT, "NOT_SENT", message)
        )
    return outcome


# Running and recording ----------------------------------------------------------------------


def _run_batches(
    connect: Connect,
    target: _Target,
    deliverer: _Deliverer,
    batches: list[_Batch],
    summary: SyncSummary,
    max_in_flight: int,
) -> None:
    """Deliver ``batches`` from ``max_in_flight`` threads, recording outcomes as they come."""
    pending = list(reversed(batches))
    waiting: list[_Outcome] = []
    running: dict[Future[_Outcome], _Batch] = {}
    failures_in_a_row = 0
    last_flush = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, max_in_flight)) as pool:
        try:
            while pending or running:
                # A few batches queued beyond those in flight keep every thread busy.
                while pending and summary.aborted is None and len(running) < 2 * max_in_flight:
                    batch = pending.pop()
                    running[pool.submit(deliverer.deliver, batch)] = batch
                if summary.aborted is not None:
                    waiting += [_not_sent(target, b, summary.aborted) for b in pending]
                    pending.clear()
                done, _ = wait(running, timeout=FLUSH_INTERVAL_S, return_when=FIRST_COMPLETED)
                for future in done:
                    del running[future]
                    outcome = future.result()
                    waiting.append(outcome)
                    error = outcome.batch_error
                    failures_in_a_row = failures_in_a_row + 1 if error else 0
                    if error is not None and summary.aborted is None:
                        summary.aborted = _abort_reason(error, failures_in_a_row)
                records = sum(len(o.delivered) + len(o.failures) for o in waiting)
                if records >= FLUSH_RECORDS or time.monotonic() - last_flush >= FLUSH_INTERVAL_S:
                    try:
                        _record(connect, target, waiting, summary)
                    except (duckdb.IOException, WarehouseError):
                        # Another process held the DuckDB file past the connection's
                        # patience, or PostgreSQL could not be reached: the outcomes wait for
                        # the next write rather than fail the load.
                        pass
                    else:
                        waiting = []
                    last_flush = time.monotonic()
        finally:
            # Whatever was confirmed is recorded, also when a batch raised something else.
            _record(connect, target, waiting, summary)


def _abort_reason(error: HubSpotError, failures_in_a_row: int) -> str | None:
    """Why no further batch should be sent, or None to go on."""
    if error.status in _FATAL_STATUSES or error.category in _FATAL_CATEGORIES:
        return f"the CRM refuses every request: {error}"
    if failures_in_a_row >= MAX_CONSECUTIVE_BATCH_FAILURES:
        return f"{failures_in_a_row} batches in a row failed after every retry; last: {error}"
    return None


def _record(
    connect: Connect, target: _Target, outcomes: Sequence[_Outcome], summary: SyncSummary
) -> None:
    """Write ``outcomes`` to the ledger, the sync log and the dead-letter queue, in one
    transaction, and count them in ``summary``."""
    delivered = [d for o in outcomes for d in o.delivered]
    failures = [f for o in outcomes for f in o.failures]
    skipped = [p for o in outcomes for p in o.skipped]
    if not (delivered or failures or skipped):
        return
    now = datetime.now(UTC)
    stream = target.stream.name
    with connect() as con:
        con.begin()
        try:
            texts = [json.dumps(d.payload.properties, sort_keys=True) for d in delivered]
            _write_ledger(con, target, delivered, texts, now)
            _write_log(con, target, delivered, texts, failures, now)
            dlq.record_failures(
                con,
                destination=target.destination,
                stream=stream,
                object_type=target.stream.object_type,
                source_table=target.stream.table,
                run_id=target.run_id,
                failures=failures,
                now=now,
            )
            resolved = dlq.resolve(
                con,
                destination=target.destination,
                stream=stream,
                keys=[d.payload.key for d in delivered],
                status=dlq.DELIVERED,
                now=now,
            )
            resolved += dlq.resolve(
                con,
                destination=target.destination,
                stream=stream,
                keys=[p.key for p in skipped],
                status=dlq.SKIPPED,
                now=now,
            )
            con.commit()
        except BaseException:
            con.rollback()
            raise
    summary.dead_letters_resolved += resolved
    for outcome in outcomes:
        summary.rep_edits_kept += outcome.rep_edits_kept
        summary.not_in_crm += len(outcome.skipped)
        summary.batches_failed += outcome.batch_error is not None
    for item in delivered:
        setattr(summary, item.action, getattr(summary, item.action) + 1)
    summary.failed += len(failures)
    for failure in failures:
        if failure.category == dlq.PERMANENT:
            summary.dead_lettered_permanent += 1
        else:
            summary.dead_lettered_transient += 1
        if len(summary.errors) < 100:
            summary.errors.append(failure.error)


def _write_ledger(
    con: duckdb.DuckDBPyConnection,
    target: _Target,
    delivered: Sequence[_Delivered],
    texts: Sequence[str],
    now: datetime,
) -> None:
    if not delivered:
        return
    rows = pa.table(
        {
            "destination": [target.destination] * len(delivered),
            "object_type": [target.stream.name] * len(delivered),
            "record_key": [d.payload.key for d in delivered],
            "crm_id": [d.crm_id for d in delivered],
            "payload_hash": [target.digest(d.payload) for d in delivered],
            "payload": list(texts),
            "synced_at": pa.array([now] * len(delivered), pa.timestamp("us", tz="UTC")),
        }
    )
    con.register("confirmed_records", rows)
    try:
        con.execute(
            "INSERT OR REPLACE INTO gtm.sync_ledger (destination, object_type, record_key, "
            "crm_id, payload_hash, payload, synced_at) SELECT * FROM confirmed_records"
        )
    finally:
        con.unregister("confirmed_records")


def _write_log(
    con: duckdb.DuckDBPyConnection,
    target: _Target,
    delivered: Sequence[_Delivered],
    texts: Sequence[str],
    failures: Sequence[dlq.Failure],
    now: datetime,
) -> None:
    entries = [
        (d.payload.key, d.crm_id, d.action, text, d.kept, None)
        for d, text in zip(delivered, texts, strict=True)
    ] + [
        (f.record_key, None, "failed", json.dumps(f.payload, sort_keys=True), frozenset(), f.error)
        for f in failures
    ]
    rows = pa.table(
        {
            "run_id": pa.array([target.run_id] * len(entries), pa.string()),
            "destination": [target.destination] * len(entries),
            "object_type": [target.stream.name] * len(entries),
            "record_key": [e[0] for e in entries],
            "crm_id": pa.array([e[1] for e in entries], pa.string()),
            "action": [e[2] for e in entries],
            "payload": [e[3] for e in entries],
            "kept_properties": pa.array(
                [",".join(sorted(e[4])) or None for e in entries], pa.string()
            ),
            "error": pa.array([e[5] for e in entries], pa.string()),
            "synced_at": pa.array([now] * len(entries), pa.timestamp("us", tz="UTC")),
        }
    )
    con.register("sent_records", rows)
    try:
        con.execute(
            "INSERT INTO gtm.crm_sync_log (run_id, destination, object_type, record_key, crm_id, "
            "action, payload, kept_properties, error, synced_at) SELECT * FROM sent_records"
        )
    finally:
        con.unregister("sent_records")
