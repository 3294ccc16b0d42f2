"""Sequence enrollment that never enrolls anyone twice.

A lead a rule routes to a sequence becomes an enrollment *intent*, kept in
``gtm.sequence_enrollments`` under its idempotency key (``<sequence key>:<email>``), one row
per key, and held for the quality window. Every step is appended to
``gtm.sequence_enrollment_log``.

- Recording (``record_intents``): a new intent is held until ``now + window``, or cancelled
  at once when a personalization field is unfit. The same lead recorded again (a retry, a
  duplicate webhook, a rerun) changes nothing. A lead whose data changed (what would be sent
  differs) cancels a held intent, and is a new intent with a window of its own; a lead that
  now routes elsewhere cancels its held intent there.
- Releasing (``release_due_enrollments``): due intents are first checked against the lead as
  it is now, then *claimed* in one warehouse transaction (status ``sending``, the claimant
  process and a lease) before the sequencer is called, so concurrent releases, also in other
  processes, never both send one key. The sequencer is then asked first: a prospect already
  in the sequence is not sent again (this is what makes a release after a crash between
  claim and call safe), one active, pending or paused (or as configured) in another sequence
  is not enrolled. Outcomes: ``enrolled``; ``cancelled`` with the reason; ``held`` again to
  retry after a failure the sequencer may get over (5xx, 429, network), ``failed`` after
  ``max_attempts`` or when the sequencer refuses the request.
- A claim whose process is gone (same host, process id no longer running) or whose lease ran
  out is taken over by the next release, which asks the sequencer before sending anything.

``enrolled`` is final for a key: nothing is ever sent for it again.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

import duckdb

from gtm_orchestration.lib.connectors.outreach import OutreachClient, OutreachError
from gtm_orchestration.lib.enrollment_rules import (
    PROSPECT_ATTRIBUTES,
    EnrollmentIntent,
    SequenceRules,
    build_intent,
)
from gtm_orchestration.lib.warehouse import Warehouse, is_write_conflict

Connect = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]
T = TypeVar("T")

HELD, SENDING, ENROLLED, CANCELLED, FAILED = "held", "sending", "enrolled", "cancelled", "failed"
ENROLLMENTS = "gtm.sequence_enrollments"
LOG = "gtm.sequence_enrollment_log"
# A warehouse transaction that lost a write conflict to another connection is tried again.
_TRANSACTION_TRIES = 5
# Waits between tries of an enrollment the sequencer could not take: 1, 2, 4, ... minutes.
_MAX_RETRY_WAIT = timedelta(hours=1)
_COLUMNS = (
    "idempotency_key",
    "email",
    "sequence_key",
    "sequence_name",
    "intent",
    "status",
    "reason",
    "fingerprint",
    "payload",
    "held_at",
    "due_at",
    "attempts",
    "claimed_by",
    "claim_expires_at",
    "prospect_id",
    "sequence_state_id",
    "updated_at",
    "run_id",
)
_ATTRIBUTE_FIELDS = {attribute: name for name, attribute in PROSPECT_ATTRIBUTES.items()}

# Claim tokens of the releases running in this process: a claim by this process id whose
# token is not here was left by an earlier, failed release of this process.
_LIVE_CLAIMS: set[str] = set()


@dataclass
class EnrollmentSummary:
    """Counts of one recording and/or release, as shown in run metadata."""

    leads: int = 0  # leads looked at
    routed: int = 0  # of which a rule sends to a sequence
    held: int = 0  # new intents now waiting for their quality window
    unchanged: int = 0  # intents already recorded as they are: duplicates changed nothing
    corrected: int = 0  # held intents cancelled because the lead changed in the window
    rerouted: int = 0  # held intents cancelled because the lead now routes elsewhere
    rejected: int = 0  # new intents cancelled by a personalization check
    claimed: int = 0  # due intents this release claimed
    reclaimed: int = 0  # of which abandoned claims taken over
    in_flight_elsewhere: int = 0  # due intents another live release is sending
    enrolled: int = 0
    already_in_sequence: int = 0  # found in the sequence: not sent again
    cancelled: int = 0  # cancelled by the sequencer check (in another sequence)
    retrying: int = 0
    failed: int = 0
    requests: int = 0
    waiting: int = 0  # intents held after this run
    next_due_at: datetime | None = None
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Outcome:
    status: str
    event: str
    reason: str
    prospect_id: int | None = None
    sequence_state_id: int | None = None


@contextmanager
def _transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> list[dict]:
    cursor = con.execute(sql, list(params))
    names = [d[0] for d in cursor.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    found = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [schema, table],
    ).fetchone()
    return bool(found and found[0])


def newest_leads(
    con: duckdb.DuckDBPyConnection,
    *,
    days: Sequence[str] | None = None,
    emails: Sequence[str] | None = None,
) -> list[dict]:
    """The newest row of ``gtm.leads`` (over every landing day) of each lead landed on
    ``days`` or with one of ``emails``; empty before the first transform."""
    if not _table_exists(con, "gtm", "leads"):
        return []
    if days is not None:
        scope = (
            "SELECT lower(email) FROM gtm.leads "
            "WHERE list_contains(?, CAST(partition_date AS VARCHAR))"
        )
        params: list[Any] = [list(days)]
    else:
        scope = "SELECT unnest(?::VARCHAR[])"
        params = [[e.lower() for e in emails or ()]]
    return _rows(
        con,
        f"SELECT * FROM gtm.leads WHERE lower(email) IN ({scope}) "
        "QUALIFY row_number() OVER (PARTITION BY lower(email) ORDER BY partition_date DESC) = 1 "
        "ORDER BY email",
        params,
    )


# Recording -------------------------------------------------------------------------------


def record_intents(
    connect: Connect,
    leads: Sequence[Mapping[str, Any]],
    rules: SequenceRules,
    now: datetime,
    run_id: str | None = None,
    summary: EnrollmentSummary | None = None,
) -> EnrollmentSummary:
    """Bring the intents of ``leads`` (rows of ``gtm.leads``, newest per e-mail) in line with
    them, in one transaction; returns the counts."""
    summary = summary or EnrollmentSummary()
    with connect() as con:
        _in_transaction(
            con, summary, lambda counts: _reconcile(con, leads, rules, now, run_id, counts)
        )
    return summary


def _in_transaction(
    con: duckdb.DuckDBPyConnection,
    summary: EnrollmentSummary,
    work: Callable[[EnrollmentSummary], T],
) -> T:
    """Run ``work`` in one transaction, again when it lost a write conflict to another
    connection; only the counts of the try that committed are added to ``summary``."""
    attempt = 0
    while True:
        attempt += 1
        counts = EnrollmentSummary()
        try:
            with _transaction(con):
                result = work(counts)
        except duckdb.Error as error:
            if not is_write_conflict(error) or attempt >= _TRANSACTION_TRIES:
                raise
            continue
        _merge(summary, counts)
        return result


def _reconcile(
    con: duckdb.DuckDBPyConnection,
    leads: Sequence[Mapping[str, Any]],
    rules: SequenceRules,
    now: datetime,
    run_id: str | None,
    summary: EnrollmentSummary,
) -> None:
    emails = sorted({str(lead.get("email") or "").lower() for lead in leads} - {""})
    existing: dict[str, list[dict]] = {}
    for row in _rows(
        con, f"SELECT * FROM {ENROLLMENTS} WHERE email IN (SELECT unnest(?::VARCHAR[]))", [emails]
    ):
        existing.setdefault(row["email"], []).append(row)
    for lead in leads:
        summary.leads += 1
        intent = build_intent(lead, rules)
        rows = existing.get(str(lead.get("email") or "").lower(), [])
        for row in rows:
            if row["status"] == HELD and (intent is None or row["idempotency_key"] != intent.key):
                where = f"now routes to {intent.sequence.name!r}" if intent else "matches no rule"
                reason = f"the lead {where} since it was held for {row['sequence_name']!r}"
                _close(con, row, CANCELLED, "cancelled", reason, now, run_id)
                summary.rerouted += 1
        if intent is None:
            continue
        summary.routed += 1
        row = next((r for r in rows if r["idempotency_key"] == intent.key), None)
        if row is None:
            _new_intent(con, intent, 1, now, rules, run_id, summary)
        elif row["status"] in (ENROLLED, SENDING) or row["fingerprint"] == intent.fingerprint:
            summary.unchanged += 1
        else:
            if row["status"] == HELD:
                reason = "the lead was corrected in its quality window: " + _changes(
                    json.loads(row["payload"]), intent.payload
                )
                _close(con, row, CANCELLED, "cancelled", reason, now, run_id)
                summary.corrected += 1
            _new_intent(con, intent, row["intent"] + 1, now, rules, run_id, summary)


def _changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    """What differs between two payloads, by lead field: ``company 'Hooly' -> 'Hooli'``."""
    old, new = dict(before.get("attributes") or {}), dict(after.get("attributes") or {})
    changes = []
    for attribute in sorted(set(old) | set(new)):
        if old.get(attribute) != new.get(attribute):
            name = _ATTRIBUTE_FIELDS.get(attribute, attribute)
            changes.append(f"{name} {old.get(attribute)!r} -> {new.get(attribute)!r}")
    if before.get("mailbox") != after.get("mailbox"):
        changes.append(f"mailbox {before.get('mailbox')!r} -> {after.get('mailbox')!r}")
    return "; ".join(changes) or "nothing sent changed"


def _new_intent(
    con: duckdb.DuckDBPyConnection,
    intent: EnrollmentIntent,
    number: int,
    now: datetime,
    rules: SequenceRules,
    run_id: str | None,
    summary: EnrollmentSummary,
) -> None:
    if intent.problems:
        status, reason = CANCELLED, "personalization unfit: " + "; ".join(intent.problems)
        summary.rejected += 1
    else:
        status, reason = HELD, None
        summary.held += 1
    row = {
        "idempotency_key": intent.key,
        "email": intent.email,
        "sequence_key": intent.sequence.key,
        "sequence_name": intent.sequence.name,
        "intent": number,
        "status": status,
        "reason": reason,
        "fingerprint": intent.fingerprint,
        "payload": json.dumps(intent.payload, sort_keys=True),
        "held_at": now,
        "due_at": now + timedelta(minutes=rules.quality_window_minutes),
        "attempts": 0,
        "claimed_by": None,
        "claim_expires_at": None,
        "prospect_id": None,
        "sequence_state_id": None,
        "updated_at": now,
        "run_id": run_id,
    }
    con.execute(
        f"INSERT OR REPLACE INTO {ENROLLMENTS} ({', '.join(_COLUMNS)}) "
        f"VALUES ({', '.join('?' for _ in _COLUMNS)})",
        [row[c] for c in _COLUMNS],
    )
    _log(con, row, status if status == CANCELLED else HELD, reason, now, run_id)


def _close(
    con: duckdb.DuckDBPyConnection,
    row: Mapping[str, Any],
    status: str,
    event: str,
    reason: str,
    now: datetime,
    run_id: str | None,
) -> None:
    con.execute(
        f"UPDATE {ENROLLMENTS} SET status = ?, reason = ?, updated_at = ?, run_id = ? "
        "WHERE idempotency_key = ?",
        [status, reason, now, run_id, row["idempotency_key"]],
    )
    _log(con, {**row, "status": status}, event, reason, now, run_id)


def _log(
    con: duckdb.DuckDBPyConnection,
    row: Mapping[str, Any],
    event: str,
    reason: str | None,
    now: datetime,
    run_id: str | None,
) -> None:
    con.execute(
        f"INSERT INTO {LOG} (logged_at, run_id, idempotency_key, email, sequence_key, intent, "
        "event, status, reason, attempt, claimed_by, prospect_id, sequence_state_id) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            now,
            run_id,
            row["idempotency_key"],
            row["email"],
            row["sequence_key"],
            row["intent"],
            event,
            row["status"],
            reason,
            row.get("attempts") or 0,
            row.get("claimed_by"),
            row.get("prospect_id"),
            row.get("sequence_state_id"),
        ],
    )


# Claims ----------------------------------------------------------------------------------


def new_claimant() -> str:
    """A claimant name unique to one release: ``host:pid:token``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def claim_abandoned(claimed_by: str | None, expires_at: datetime | None, now: datetime) -> bool:
    """Whether a ``sending`` claim can be taken over: its lease ran out, or its process on
    this host is gone (or is this process, which no longer runs that release)."""
    if not claimed_by or expires_at is None or expires_at <= now:
        return True
    host, _, rest = claimed_by.partition(":")
    pid_text, _, token = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return claimed_by not in _LIVE_CLAIMS
    return not _process_running(pid)


def _process_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    return True


def _claim_due(
    con: duckdb.DuckDBPyConnection,
    rules: SequenceRules,
    now: datetime,
    claimant: str,
    run_id: str | None,
    summary: EnrollmentSummary,
) -> list[dict]:
    """Re-check the due intents against their leads, then claim them; returns the claimed
    rows. One transaction: another release sees either none or all of these claims."""
    due = _rows(
        con,
        f"SELECT * FROM {ENROLLMENTS} WHERE status = ? AND due_at <= ? ORDER BY due_at",
        [HELD, now],
    )
    if due:
        # A correction that landed after the intent was recorded, or a lead gone.
        leads = newest_leads(con, emails=[row["email"] for row in due])
        present = {str(lead["email"]).lower() for lead in leads}
        for row in due:
            if row["email"] not in present:
                reason = "the lead is no longer in gtm.leads"
                _close(con, row, CANCELLED, "cancelled", reason, now, run_id)
                summary.rerouted += 1
        # Only what the re-check changed counts: the leads were counted when recorded.
        recheck = EnrollmentSummary()
        _reconcile(con, leads, rules, now, run_id, recheck)
        for name in ("held", "corrected", "rerouted", "rejected"):
            setattr(summary, name, getattr(summary, name) + getattr(recheck, name))
    claimed: list[dict] = []
    lease = now + timedelta(minutes=rules.claim_lease_minutes)
    # Claims of other releases first, so that this release's own fresh claims are not among them.
    for row in _rows(con, f"SELECT * FROM {ENROLLMENTS} WHERE status = ?", [SENDING]):
        if not claim_abandoned(row["claimed_by"], row["claim_expires_at"], now):
            summary.in_flight_elsewhere += 1
            continue
        reason = (
            f"claim of {row['claimed_by']} abandoned (process gone or lease over); "
            "the sequencer is asked before anything is sent"
        )
        if taken := _claim(con, row, claimant, lease, now, run_id, "reclaimed", reason):
            claimed.append(taken)
            summary.reclaimed += 1
    for row in _rows(
        con,
        f"SELECT * FROM {ENROLLMENTS} WHERE status = ? AND due_at <= ? ORDER BY due_at",
        [HELD, now],
    ):
        if taken := _claim(con, row, claimant, lease, now, run_id, "claimed", None):
            claimed.append(taken)
    summary.claimed += len(claimed)
    return claimed


def _claim(
    con: duckdb.DuckDBPyConnection,
    row: Mapping[str, Any],
    claimant: str,
    lease: datetime,
    now: datetime,
    run_id: str | None,
    event: str,
    reason: str | None,
) -> dict | None:
    """Claim ``row`` if it is still as read (compare and set); None when it changed."""
    claimed = {
        **row,
        "status": SENDING,
        "claimed_by": claimant,
        "claim_expires_at": lease,
        "attempts": row["attempts"] + 1,
    }
    updated = con.execute(
        f"UPDATE {ENROLLMENTS} SET status = ?, claimed_by = ?, claim_expires_at = ?, "
        "attempts = ?, updated_at = ?, run_id = ? WHERE idempotency_key = ? AND status = ? "
        "AND claimed_by IS NOT DISTINCT FROM ?",
        [
            SENDING,
            claimant,
            lease,
            claimed["attempts"],
            now,
            run_id,
            row["idempotency_key"],
            row["status"],
            row["claimed_by"],
        ],
    ).fetchone()
    if not updated or not updated[0]:
        return None
    _log(con, claimed, event, reason, now, run_id)
    return claimed


# Releasing -------------------------------------------------------------------------------


def release_due_enrollments(
    connect: Connect,
    client: OutreachClient,
    rules: SequenceRules,
    now: datetime,
    run_id: str | None = None,
    summary: EnrollmentSummary | None = None,
) -> EnrollmentSummary:
    """Enroll every intent whose quality window is over (and take over abandoned claims);
    each outcome is recorded as soon as the sequencer answered. Returns the counts."""
    summary = summary or EnrollmentSummary()
    claimant = new_claimant()
    _LIVE_CLAIMS.add(claimant)
    requests_before = client.requests
    try:
        with connect() as con:
            claimed = _in_transaction(
                con, summary, lambda counts: _claim_due(con, rules, now, claimant, run_id, counts)
            )
        for row in claimed:
            outcome = _attempt(client, rules, row, now)
            with connect() as con:
                _record_outcome(con, row, outcome, now, run_id, summary)
    finally:
        _LIVE_CLAIMS.discard(claimant)
        summary.requests += client.requests - requests_before
    with connect() as con:
        waiting(con, summary)
    return summary


def _merge(summary: EnrollmentSummary, part: EnrollmentSummary) -> None:
    for name, value in vars(part).items():
        if isinstance(value, int):
            setattr(summary, name, getattr(summary, name) + value)


def _attempt(
    client: OutreachClient, rules: SequenceRules, row: Mapping[str, Any], now: datetime
) -> _Outcome:
    """Send one claimed enrollment unless the sequencer says not to; failures become
    outcomes (held for a retry, or failed) so that every claim is settled."""
    try:
        return _send(client, rules, row)
    except OutreachError as error:
        return _failure(row, str(error), error.retryable, rules, now)
    except Exception as error:  # a claim must be settled whatever went wrong
        return _failure(row, f"{type(error).__name__}: {error}", True, rules, now)


def _failure(
    row: Mapping[str, Any], problem: str, retryable: bool, rules: SequenceRules, now: datetime
) -> _Outcome:
    tries = f"try {row['attempts']} of {rules.max_attempts}"
    if retryable and row["attempts"] < rules.max_attempts:
        return _Outcome(HELD, "retry", f"{tries} failed: {problem}")
    return _Outcome(FAILED, "failed", f"{tries} failed for good: {problem}")


def _send(client: OutreachClient, rules: SequenceRules, row: Mapping[str, Any]) -> _Outcome:
    payload = json.loads(row["payload"])
    attributes: dict[str, Any] = payload["attributes"]
    sequence_id = client.sequence_id(row["sequence_name"])
    prospect = client.find_prospect(row["email"])
    if prospect is not None:
        states = client.sequence_states(prospect_id=prospect.id)
        in_sequence = [s for s in states if s.sequence_id == sequence_id]
        if in_sequence:
            state = in_sequence[0]
            return _Outcome(
                ENROLLED,
                "already_in_sequence",
                f"already in the sequence (sequenceState {state.id}, {state.state}); "
                "not sent again",
                prospect.id,
                state.id,
            )
        for state in states:
            if state.state in rules.blocking_states:
                other = client.sequence_name(state.sequence_id)
                return _Outcome(
                    CANCELLED,
                    "cancelled",
                    f"prospect {prospect.id} is {state.state} in sequence {other!r} "
                    f"(sequenceState {state.id})",
                    prospect.id,
                )
        changed = {
            k: v for k, v in attributes.items() if k != "emails" and prospect.attributes.get(k) != v
        }
        if changed:
            client.update_prospect(prospect.id, changed)
    else:
        try:
            prospect = client.create_prospect(attributes)
        except OutreachError as error:
            # Created meanwhile (by a rep, or a try whose answer was lost): use that one.
            found = client.find_prospect(row["email"]) if error.status == 422 else None
            if found is None:
                raise
            prospect = found
    mailbox_id = client.mailbox_id(payload["mailbox"])
    try:
        state = client.create_sequence_state(prospect.id, sequence_id, mailbox_id)
    except OutreachError as error:
        if error.status != 422:
            raise
        # Outreach refuses a prospect already in the sequence: an earlier try went through.
        found = client.sequence_states(prospect_id=prospect.id, sequence_id=sequence_id)
        if not found:
            raise
        return _Outcome(
            ENROLLED,
            "already_in_sequence",
            f"the sequencer already had it (sequenceState {found[0].id}, {found[0].state}); "
            "not sent again",
            prospect.id,
            found[0].id,
        )
    return _Outcome(
        ENROLLED,
        "enrolled",
        f"sequenceState {state.id} ({state.state})",
        prospect.id,
        state.id,
    )


def _record_outcome(
    con: duckdb.DuckDBPyConnection,
    row: Mapping[str, Any],
    outcome: _Outcome,
    now: datetime,
    run_id: str | None,
    summary: EnrollmentSummary,
) -> None:
    due_at = row["due_at"]
    if outcome.status == HELD:
        wait = min(timedelta(minutes=2 ** (row["attempts"] - 1)), _MAX_RETRY_WAIT)
        due_at = now + wait
    settled = {
        **row,
        "status": outcome.status,
        "prospect_id": outcome.prospect_id,
        "sequence_state_id": outcome.sequence_state_id,
    }

    def write(_: EnrollmentSummary) -> None:
        # Only while the claim is still ours: a release that took it over settles it.
        con.execute(
            f"UPDATE {ENROLLMENTS} SET status = ?, reason = ?, due_at = ?, "
            "claimed_by = NULL, claim_expires_at = NULL, prospect_id = ?, "
            "sequence_state_id = ?, updated_at = ?, run_id = ? "
            "WHERE idempotency_key = ? AND claimed_by = ?",
            [
                outcome.status,
                outcome.reason,
                due_at,
                outcome.prospect_id,
                outcome.sequence_state_id,
                now,
                run_id,
                row["idempotency_key"],
                row["claimed_by"],
            ],
        )
        _log(con, settled, outcome.event, outcome.reason, now, run_id)

    _in_transaction(con, summary, write)
    counter = {
        "enrolled": "enrolled",
        "already_in_sequence": "already_in_sequence",
        "cancelled": "cancelled",
        "retry": "retrying",
        "failed": "failed",
    }[outcome.event]
    setattr(summary, counter, getattr(summary, counter) + 1)
    if outcome.event in ("retry", "failed"):
        summary.problems.append(f"{row['idempotency_key']}: {outcome.reason}")


def waiting(con: duckdb.DuckDBPyConnection, summary: EnrollmentSummary) -> None:
    """Fill in how many intents are held and when the first is due."""
    count, first = con.execute(
        f"SELECT count(*), min(due_at) FROM {ENROLLMENTS} WHERE status = ?", [HELD]
    ).fetchone() or (0, None)
    summary.waiting, summary.next_due_at = int(count), first


# Entry points ----------------------------------------------------------------------------


def enroll_days(
    connect: Connect,
    client: OutreachClient,
    rules: SequenceRules,
    days: Sequence[str],
    now: datetime,
    run_id: str | None = None,
) -> EnrollmentSummary:
    """Record the intents of the leads landed on ``days``, then release every due one."""
    summary = EnrollmentSummary()
    with connect() as con:
        leads = newest_leads(con, days=days)
    record_intents(connect, leads, rules, now, run_id, summary)
    return release_due_enrollments(connect, client, rules, now, run_id, summary)


def due_enrollments(warehouse: Warehouse, now: datetime) -> int | None:
    """How many enrollments are due to be sent or taken over, read without waiting: None
    when another process holds the (DuckDB) warehouse (ask again later)."""
    with warehouse.connect_without_waiting() as con:
        if con is None:
            return None
        if not _table_exists(con, "gtm", "sequence_enrollments"):
            return 0
        due = con.execute(
            f"SELECT count(*) FROM {ENROLLMENTS} WHERE status = ? AND due_at <= ?", [HELD, now]
        ).fetchone()
        claims = con.execute(
            f"SELECT claimed_by, claim_expires_at FROM {ENROLLMENTS} WHERE status = ?", [SENDING]
        ).fetchall()
    abandoned = sum(
        1 for claimed_by, expires in claims if claim_abandoned(claimed_by, expires, now)
    )
    return (int(due[0]) if due else 0) + abandoned
