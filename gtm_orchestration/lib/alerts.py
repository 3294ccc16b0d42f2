"""Alerting: the conditions that raise alerts, their severities, deduplication, rate limits
and the messages sent (``config/alerts.yaml`` holds the thresholds).

- Critical (Slack and a PagerDuty page): zero throughput for ``quiet_minutes`` while traffic
  is expected; a destination failing outright (its last load runs failed, or every record
  sent to it failed).
- Warning (Slack): an error rate above ``max_share``, a landed-to-CRM latency above the SLA,
  a failed run of any other job.
- Informational: the daily and weekly e-mail digests (``lib/digests.py``).

A condition that holds is an incident, keyed by the condition (``destination_failing:hubspot``):
it is announced once, paged once (PagerDuty's ``dedup_key`` is the key), announced again only
every ``repeat_after_minutes`` while it holds, and resolved (PagerDuty too) once it no longer
does. Slack messages and pages are rate-limited per hour. Every message is built from fixed
wording, counts and the names of jobs, steps and destinations: never an error text or a
record, so no e-mail address or name can reach a channel (``redact`` guards the rest).

Nothing here knows Dagster or HTTP: the numbers come from the warehouse through the query
functions below, run facts are passed in, and messages leave through a ``send`` callable.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from gtm_orchestration.lib.config import config_path, load_model
from gtm_orchestration.lib.warehouse import Warehouse

Severity = Literal["critical", "warning", "info"]
CRITICAL: Severity = "critical"
WARNING: Severity = "warning"
INFO: Severity = "info"
Channel = Literal["slack", "pagerduty"]
SLACK: Channel = "slack"
PAGERDUTY: Channel = "pagerduty"
# open: an incident's first announcement (Slack) or page (PagerDuty); repeat: a reminder
# that it still holds; resolve: it cleared; message: a one-off (a failed run).
Action = Literal["open", "repeat", "resolve", "message"]

ZERO_THROUGHPUT = "zero_throughput"
DESTINATION_FAILING = "destination_failing"
ERROR_RATE = "error_rate"
LATENCY = "latency"
RUN_FAILED = "run_failed"
# PagerDuty's dedup_key of an incident: stable across evaluations and restarts.
DEDUP_PREFIX = "gtm-orchestration/"
HOUR_S = 3600.0
# Runs already alerted are remembered this long, at most this many: the two run sensors
# see a timed-out run within seconds of each other, and never replay older events.
_RUN_MEMORY_S = 24 * HOUR_S
_MAX_RUNS_REMEMBERED = 5_000
# Opened and resolved incidents are kept this long for the weekly summary.
_HISTORY_S = 8 * 24 * HOUR_S
_MAX_FAILURES_KEPT = 20

_EMAIL = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


# --- thresholds (config/alerts.yaml) ------------------------------------------------------


def _clock_time(value: str) -> str:
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d|24:00", value):
        raise ValueError("expected a time of day as HH:MM, 00:00 to 24:00")
    return value


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError("expected an IANA time zone such as UTC or America/New_York") from exc
    return value


def _cron(value: str) -> str:
    if len(value.split()) != 5:
        raise ValueError("expected a cron expression of five fields, e.g. '0 7 * * *'")
    return value


ClockTime = Annotated[str, AfterValidator(_clock_time)]
TimeZoneName = Annotated[str, AfterValidator(_timezone)]
Cron = Annotated[str, AfterValidator(_cron)]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExpectedTraffic(_Strict):
    """When traffic is expected: these hours of these days, after a busy enough baseline."""

    timezone: TimeZoneName = "UTC"
    days: list[Weekday] = Field(min_length=1)
    start: ClockTime
    end: ClockTime
    baseline_hours: float = Field(gt=0)
    min_baseline_records: int = Field(ge=0)

    @model_validator(mode="after")
    def _start_before_end(self) -> ExpectedTraffic:
        if self.start >= self.end:
            raise ValueError(f"expected start ({self.start}) before end ({self.end})")
        return self

    def covers(self, moment: datetime) -> bool:
        """Whether ``moment`` falls inside the expected days and hours."""
        local = moment.astimezone(ZoneInfo(self.timezone))
        if _WEEKDAYS[local.weekday()] not in self.days:
            return False
        clock = local.strftime("%H:%M")
        return self.start <= clock < self.end


class ZeroThroughput(_Strict):
    quiet_minutes: float = Field(gt=0)
    expected: ExpectedTraffic


class DestinationFailing(_Strict):
    failed_runs: int = Field(ge=1)
    window_minutes: float = Field(gt=0)
    min_records: int = Field(ge=1)
    destinations: dict[str, list[str]] = Field(min_length=1)

    @model_validator(mode="after")
    def _assets_named_once(self) -> DestinationFailing:
        seen: dict[str, str] = {}
        for destination, assets in self.destinations.items():
            if not assets:
                raise ValueError(f"destination {destination!r}: expected at least one load asset")
            for asset in assets:
                if asset in seen:
                    raise ValueError(
                        f"load asset {asset!r} is listed under {seen[asset]!r} and "
                        f"{destination!r}: expected one destination per asset"
                    )
                seen[asset] = destination
        return self

    def destination_of(self, asset: str) -> str | None:
        """The destination a load asset sends to; None for any other asset."""
        for destination, assets in self.destinations.items():
            if asset in assets:
                return destination
        return None


class Critical(_Strict):
    zero_throughput: ZeroThroughput
    destination_failing: DestinationFailing


class ErrorRate(_Strict):
    max_share: float = Field(gt=0, lt=1)
    window_minutes: float = Field(gt=0)
    min_records: int = Field(ge=1)


class Latency(_Strict):
    sla_minutes: float = Field(gt=0)
    percentile: float = Field(gt=0, le=1)
    window_minutes: float = Field(gt=0)
    min_records: int = Field(ge=1)


class Warnings(_Strict):
    error_rate: ErrorRate
    latency: Latency


class DigestSchedule(_Strict):
    cron: Cron
    timezone: TimeZoneName = "UTC"


class Informational(_Strict):
    daily_throughput_report: DigestSchedule
    weekly_error_summary: DigestSchedule


class Delivery(_Strict):
    repeat_after_minutes: float = Field(gt=0)
    run_failure_cooldown_minutes: float = Field(ge=0)
    slack_per_hour: int = Field(ge=1)
    pagerduty_triggers_per_hour: int = Field(ge=1)


class AlertThresholds(_Strict):
    """``config/alerts.yaml``: what raises an alert and how often one may be sent."""

    version: int
    critical: Critical
    warning: Warnings
    informational: Informational
    delivery: Delivery


def load_alert_thresholds(path: Path | None = None) -> AlertThresholds:
    """The thresholds in ``path`` (default: the bundled ``config/alerts.yaml``).

    Raises ConfigError naming the file, the key and what was expected.
    """
    return load_model(path or config_path("alerts.yaml"), AlertThresholds)


@cache
def default_alert_thresholds() -> AlertThresholds:
    """The bundled thresholds, read once per process."""
    return load_alert_thresholds()


# --- the numbers, read from the warehouse ----------------------------------------------


@dataclass(frozen=True)
class ErrorCounts:
    """Records handled in a window and how many of them failed; ``run_id`` is the newest run
    with a failure (the one an alert links to)."""

    records: int = 0
    failed: int = 0
    run_id: str | None = None

    @property
    def share(self) -> float:
        return self.failed / self.records if self.records else 0.0


@dataclass(frozen=True)
class LatencyStats:
    """Landed -> in the CRM: the configured percentile in seconds, over ``samples`` leads."""

    seconds: float
    samples: int
    run_id: str | None


@dataclass(frozen=True)
class PipelineMetrics:
    """What the alert conditions look at, read from the warehouse at ``now``."""

    now: datetime
    recent_records: int = 0  # extracted or sent in the quiet window
    baseline_records: int = 0  # in the baseline hours before it
    last_record_at: datetime | None = None
    extraction: ErrorCounts = ErrorCounts()
    loads: Mapping[str, ErrorCounts] = field(default_factory=dict)  # error-rate window
    recent_loads: Mapping[str, ErrorCounts] = field(default_factory=dict)  # failing window
    latency: LatencyStats | None = None


def existing_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    """``schema.name`` of every table and view: older warehouses lack newer tables."""
    rows = con.execute(
        "SELECT schema_name || '.' || table_name FROM duckdb_tables() "
        "UNION ALL SELECT schema_name || '.' || view_name FROM duckdb_views()"
    ).fetchall()
    return {row[0] for row in rows}


def count_throughput(
    con: duckdb.DuckDBPyConnection, tables: set[str], start: datetime, end: datetime
) -> tuple[int, datetime | None]:
    """Records extracted (lead rows, engagement events) or sent to a CRM in [start, end), and
    the newest such moment before ``end``."""
    sources = [
        (table, column)
        for table, column in (
            ("raw.lead_rows", "loaded_at"),
            ("raw.engagement_events", "loaded_at"),
            ("gtm.crm_sync_log", "synced_at"),
        )
        if table in tables
    ]
    if not sources:
        return 0, None
    union = " UNION ALL ".join(
        f"SELECT {column} AS moment FROM {table} WHERE {column} < ?" for table, column in sources
    )
    row = con.execute(
        f"SELECT count(*) FILTER (WHERE moment >= ?), max(moment) FROM ({union})",
        [start, *([end] * len(sources))],
    ).fetchone()
    return (int(row[0]), row[1]) if row else (0, None)


def extraction_errors(
    con: duckdb.DuckDBPyConnection, tables: set[str], start: datetime, end: datetime
) -> ErrorCounts:
    """Rows read from files and webhook batches finished in [start, end), and how many were
    rejected; a file rejected whole counts as its rows (at least one)."""
    if "raw.file_ingestions" not in tables:
        return ErrorCounts()
    row = con.execute(
        """SELECT
            coalesce(sum(CASE WHEN status = 'rejected' THEN greatest(rows_total, 1)
                              ELSE rows_total END), 0),
            coalesce(sum(CASE WHEN status = 'rejected' THEN greatest(rows_total, 1)
                              ELSE rows_rejected END), 0),
            arg_max(run_id, finished_at) FILTER (WHERE status = 'rejected' OR rows_rejected > 0)
        FROM raw.file_ingestions
        WHERE finished_at >= ? AND finished_at < ? AND status <> 'duplicate'""",
        [start, end],
    ).fetchone()
    return ErrorCounts(int(row[0]), int(row[1]), row[2]) if row else ErrorCounts()


def load_errors(
    con: duckdb.DuckDBPyConnection, tables: set[str], start: datetime, end: datetime
) -> dict[str, ErrorCounts]:
    """Per destination, records sent in [start, end) and how many failed: CRM records from
    ``gtm.crm_sync_log``, sequence enrollments (``outreach``) from their log."""
    counts: dict[str, ErrorCounts] = {}
    if "gtm.crm_sync_log" in tables:
        rows = con.execute(
            """SELECT destination, count(*), count(*) FILTER (WHERE action = 'failed'),
                   arg_max(run_id, synced_at) FILTER (WHERE action = 'failed')
            FROM gtm.crm_sync_log WHERE synced_at >= ? AND synced_at < ?
            GROUP BY destination""",
            [start, end],
        ).fetchall()
        counts |= {row[0]: ErrorCounts(int(row[1]), int(row[2]), row[3]) for row in rows}
    if "gtm.sequence_enrollment_log" in tables:
        row = con.execute(
            """SELECT count(*), count(*) FILTER (WHERE event IN ('failed', 'retry')),
                   arg_max(run_id, logged_at) FILTER (WHERE event IN ('failed', 'retry'))
            FROM gtm.sequence_enrollment_log
            WHERE logged_at >= ? AND logged_at < ?
              AND event IN ('enrolled', 'already_in_sequence', 'failed', 'retry')""",
            [start, end],
        ).fetchone()
        if row and row[0]:
            counts["outreach"] = ErrorCounts(int(row[0]), int(row[1]), row[2])
    return counts


def lead_latency(
    con: duckdb.DuckDBPyConnection,
    tables: set[str],
    start: datetime,
    end: datetime,
    percentile: float,
) -> LatencyStats | None:
    """Landed -> first confirmed by a CRM, for the leads landed in [start, end) that reached
    one: the ``percentile`` in seconds. None when none did. Only counts leave the query."""
    if not {"raw.lead_rows", "gtm.crm_sync_log"} <= tables:
        return None
    row = con.execute(
        """WITH landed AS (
            SELECT lower(trim(email)) AS record, min(landed_at) AS landed_at
            FROM raw.lead_rows
            WHERE landed_at >= ? AND landed_at < ? AND email IS NOT NULL
            GROUP BY 1
        ), confirmed AS (
            SELECT lower(record_key) AS record, synced_at, run_id FROM gtm.crm_sync_log
            WHERE synced_at >= ? AND object_type = 'contacts' AND action <> 'failed'
        ), reached AS (
            SELECT l.record, l.landed_at, min(c.synced_at) AS synced_at,
                   arg_min(c.run_id, c.synced_at) AS run_id
            FROM landed l JOIN confirmed c ON c.record = l.record AND c.synced_at >= l.landed_at
            GROUP BY l.record, l.landed_at
        )
        SELECT quantile_cont(epoch(synced_at) - epoch(landed_at), ?), count(*),
               arg_max(run_id, epoch(synced_at) - epoch(landed_at))
        FROM reached""",
        [start, end, start, percentile],
    ).fetchone()
    if not row or not row[1]:
        return None
    return LatencyStats(float(row[0]), int(row[1]), row[2])


def read_pipeline_metrics(
    warehouse: Warehouse, now: datetime, thresholds: AlertThresholds
) -> PipelineMetrics | None:
    """Every number the conditions need, over the windows the thresholds set, as of ``now``;
    None when a writer holds the (DuckDB) warehouse."""
    zero = thresholds.critical.zero_throughput
    failing = thresholds.critical.destination_failing
    error_rate = thresholds.warning.error_rate
    latency = thresholds.warning.latency
    quiet_start = now - timedelta(minutes=zero.quiet_minutes)
    baseline_start = quiet_start - timedelta(hours=zero.expected.baseline_hours)
    with warehouse.connect_without_waiting() as con:
        if con is None:
            return None
        tables = existing_tables(con)
        recent, last_at = count_throughput(con, tables, quiet_start, now)
        baseline, _ = count_throughput(con, tables, baseline_start, quiet_start)
        error_start = now - timedelta(minutes=error_rate.window_minutes)
        return PipelineMetrics(
            now=now,
            recent_records=recent,
            baseline_records=baseline,
            last_record_at=last_at,
            extraction=extraction_errors(con, tables, error_start, now),
            loads=load_errors(con, tables, error_start, now),
            recent_loads=load_errors(
                con, tables, now - timedelta(minutes=failing.window_minutes), now
            ),
            latency=lead_latency(
                con,
                tables,
                now - timedelta(minutes=latency.window_minutes),
                now,
                latency.percentile,
            ),
        )


# --- conditions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    """One alert condition as evaluated: its key (the incident's identity), severity, whether
    it holds, a one-line title and facts (counts and names only), and the run to link to."""

    key: str
    severity: Severity
    active: bool
    title: str
    facts: tuple[tuple[str, str], ...] = ()
    run_id: str | None = None
    component: str = "pipeline"
    # A destination failing only because every record sent to it failed (no failed run).
    by_records: bool = False


@dataclass(frozen=True)
class RunFailure:
    """A run that ended badly, as the alerts describe it: no error text, no tags."""

    run_id: str
    job_name: str
    failed_steps: tuple[str, ...]
    ended_at: float
    max_runtime_s: float | None = None  # set when run monitoring stopped it for running long
    start_timeout: bool = False  # it never started

    @property
    def timed_out(self) -> bool:
        return self.max_runtime_s is not None


def _percent(share: float) -> str:
    return f"{share:.1%}"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def _destination_name(destination: str) -> str:
    return {"hubspot": "HubSpot", "outreach": "Outreach", "salesforce": "Salesforce"}.get(
        destination, destination
    )


def pipeline_conditions(
    metrics: PipelineMetrics, thresholds: AlertThresholds, state: AlertState
) -> list[Condition]:
    """Every warehouse-based condition at ``metrics.now``: zero throughput, the error rates
    (extraction, each destination), latency, and each destination failing."""
    now = metrics.now
    zero = thresholds.critical.zero_throughput
    quiet_since = now - timedelta(minutes=zero.quiet_minutes)
    expected = (
        zero.expected.covers(quiet_since)
        and zero.expected.covers(now)
        and metrics.baseline_records >= zero.expected.min_baseline_records
    )
    last = metrics.last_record_at
    conditions = [
        Condition(
            key=ZERO_THROUGHPUT,
            severity=CRITICAL,
            active=expected and metrics.recent_records == 0,
            title=f"Pipeline down: no record extracted or sent to a CRM for "
            f"{zero.quiet_minutes:g} minutes during expected traffic hours",
            facts=(
                (
                    "last record",
                    last.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if last else "none",
                ),
                (
                    f"records in the {zero.expected.baseline_hours:g} h before",
                    str(metrics.baseline_records),
                ),
            ),
        )
    ]
    rate = thresholds.warning.error_rate
    by_key = {f"{ERROR_RATE}:extract": ("extraction", metrics.extraction)}
    by_key |= {
        f"{ERROR_RATE}:{destination}": (f"{_destination_name(destination)} load", counts)
        for destination, counts in metrics.loads.items()
    }
    # A destination with an open incident and nothing sent since reads as clear.
    by_key |= {
        key: (f"{_destination_name(key.split(':', 1)[1])} load", ErrorCounts())
        for key in state.incidents
        if key.startswith(f"{ERROR_RATE}:") and key not in by_key
    }
    for key, (stage, counts) in by_key.items():
        conditions.append(
            Condition(
                key=key,
                severity=WARNING,
                active=counts.records >= rate.min_records and counts.share > rate.max_share,
                title=f"Error rate of the {stage} at {_percent(counts.share)} over the last "
                f"{rate.window_minutes:g} minutes (threshold {_percent(rate.max_share)})",
                facts=(("failed", str(counts.failed)), ("records", str(counts.records))),
                run_id=counts.run_id,
                component=key.split(":", 1)[1],
            )
        )
    latency = thresholds.warning.latency
    stats = metrics.latency
    if stats is not None or LATENCY in state.incidents:
        seconds = stats.seconds if stats else 0.0
        samples = stats.samples if stats else 0
        conditions.append(
            Condition(
                key=LATENCY,
                severity=WARNING,
                active=samples >= latency.min_records and seconds > latency.sla_minutes * 60,
                title=f"Leads take {_minutes(seconds)} from landing to the CRM "
                f"(p{latency.percentile * 100:g} over the last {latency.window_minutes:g} "
                f"minutes; SLA {latency.sla_minutes:g} min)",
                facts=(("leads measured", str(samples)),),
                run_id=stats.run_id if stats else None,
                component="crm",
            )
        )
    conditions += destination_conditions(thresholds, state, metrics.recent_loads)
    return conditions


def destination_conditions(
    thresholds: AlertThresholds,
    state: AlertState,
    recent_loads: Mapping[str, ErrorCounts] | None = None,
) -> list[Condition]:
    """Whether each destination is failing outright: one of its load assets failed its last
    ``failed_runs`` runs (``state.load_failures``), or every record sent to it in the window
    failed (``recent_loads``; None when the warehouse was not read)."""
    failing = thresholds.critical.destination_failing
    conditions = []
    for destination, assets in failing.destinations.items():
        streaks = {a: state.load_failures.get(a, []) for a in assets}
        failed_assets = sorted(a for a, runs in streaks.items() if len(runs) >= failing.failed_runs)
        counts = (recent_loads or {}).get(destination, ErrorCounts())
        refused_all = counts.records >= failing.min_records and counts.failed == counts.records
        latest = max(
            (run for a in failed_assets for run in streaks[a]),
            key=lambda run: run["at"],
            default=None,
        )
        name = _destination_name(destination)
        if failed_assets:
            title = (
                f"{name} failing: the last {failing.failed_runs} run(s) of "
                f"{', '.join(failed_assets)} failed"
            )
        else:
            title = (
                f"{name} failing: every one of {counts.records} records sent in the last "
                f"{failing.window_minutes:g} minutes failed"
            )
        facts = [("destination", destination)]
        if failed_assets:
            facts.append(("failed load assets", ", ".join(failed_assets)))
            facts += [("job", latest["job"])] if latest and latest.get("job") else []
            steps = latest.get("steps") if latest else None
            facts += [("failed steps", ", ".join(steps))] if steps else []
        if counts.records:
            facts.append(("records failed / sent", f"{counts.failed} / {counts.records}"))
        conditions.append(
            Condition(
                key=f"{DESTINATION_FAILING}:{destination}",
                severity=CRITICAL,
                active=bool(failed_assets) or refused_all,
                title=title,
                facts=tuple(facts),
                run_id=latest["run_id"] if latest else counts.run_id,
                component=destination,
                by_records=refused_all and not failed_assets,
            )
        )
    if recent_loads is None:
        # Without the warehouse, only a failing asset can be told: leave the rest as they are.
        return [c for c in conditions if c.active or not _opened_by_records(c.key, state)]
    return conditions


def _opened_by_records(key: str, state: AlertState) -> bool:
    incident = state.incidents.get(key)
    return incident is not None and incident.by_records


# --- state: incidents, what was sent, what failed ------------------------------------------


@dataclass
class Incident:
    """An open incident: when it opened, when Slack last heard of it, whether PagerDuty holds
    it, and whether its resolution reached Slack."""

    key: str
    severity: Severity
    title: str
    opened_at: float
    notified_at: float | None = None
    paged: bool = False
    clearing: bool = False  # the condition cleared; waiting for the resolution to go out
    clear_announced: bool = False
    by_records: bool = False  # held because every record sent failed, not because a run did


@dataclass
class AlertState:
    """Everything alerting remembers between evaluations; serialized as JSON."""

    incidents: dict[str, Incident] = field(default_factory=dict)
    # Channel -> when its recent messages went out (the last hour), and how many were held
    # back by the rate limit since the last one sent.
    sent: dict[str, list[float]] = field(default_factory=dict)
    held_back: dict[str, int] = field(default_factory=dict)
    # Run id -> when it was alerted: each failed run is alerted once.
    runs_alerted: dict[str, float] = field(default_factory=dict)
    # Job -> {"notified_at", "since"}: failed runs of a job within the cooldown are counted.
    job_failures: dict[str, dict[str, float]] = field(default_factory=dict)
    # Load asset -> its failed runs since it last succeeded, oldest first.
    load_failures: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # Incidents opened and resolved lately: {"at", "key", "severity", "event"}.
    history: list[dict[str, Any]] = field(default_factory=list)
    # One-off messages (failed runs) not delivered yet: the monitor sends them again.
    pending: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> str:
        """The state as JSON."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> AlertState:
        """The state saved by ``to_json``; an empty state for None."""
        if not text:
            return cls()
        data = json.loads(text)
        # Fields added or dropped by a later version of this code are tolerated.
        incident_fields = {f.name for f in fields(Incident)}
        incidents = {
            key: Incident(**{k: v for k, v in value.items() if k in incident_fields})
            for key, value in data.pop("incidents", {}).items()
        }
        known = {f.name for f in fields(cls)} - {"incidents"}
        return cls(incidents=incidents, **{k: v for k, v in data.items() if k in known})

    def forget_old(self, now: float) -> None:
        """Drop what no evaluation can need any more."""
        self.sent = {c: [t for t in ts if now - t < HOUR_S] for c, ts in self.sent.items()}
        recent = sorted(
            ((t, r) for r, t in self.runs_alerted.items() if now - t < _RUN_MEMORY_S),
            reverse=True,
        )
        self.runs_alerted = {r: t for t, r in recent[:_MAX_RUNS_REMEMBERED]}
        self.history = [h for h in self.history if now - h["at"] < _HISTORY_S]

    def take_pending(self) -> list[Notification]:
        """The one-off messages still to be delivered, removed from the state (``dispatch``
        puts back those that fail again)."""
        pending, self.pending = self.pending, []
        return [Notification.from_dict(message) for message in pending]

    def record_load_failure(self, asset: str, failure: RunFailure) -> None:
        """Count a failed run of a load asset (once per run)."""
        runs = self.load_failures.setdefault(asset, [])
        if any(run["run_id"] == failure.run_id for run in runs):
            return
        runs.append(
            {
                "run_id": failure.run_id,
                "at": failure.ended_at,
                "job": failure.job_name,
                "steps": list(failure.failed_steps),
            }
        )
        del runs[:-_MAX_FAILURES_KEPT]

    def clear_load_failures(self, succeeded_at: Mapping[str, float]) -> list[str]:
        """Forget the failures of load assets that succeeded since (asset -> when it last
        succeeded); returns the assets cleared."""
        cleared = []
        for asset, runs in list(self.load_failures.items()):
            if not runs or succeeded_at.get(asset, 0.0) > max(run["at"] for run in runs):
                del self.load_failures[asset]
                cleared.append(asset)
        return cleared


# --- what to send ------------------------------------------------------------------------


@dataclass(frozen=True)
class Notification:
    """One message to one channel."""

    channel: Channel
    action: Action
    key: str
    severity: Severity
    title: str
    facts: tuple[tuple[str, str], ...] = ()
    run_id: str | None = None
    component: str = "pipeline"
    opened_at: float | None = None  # the incident's, for reminders

    @property
    def dedup_key(self) -> str:
        """PagerDuty's key of the incident (one incident per condition)."""
        return DEDUP_PREFIX + self.key

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Notification:
        """A notification saved with ``dataclasses.asdict``."""
        facts = tuple((str(label), str(value)) for label, value in data.get("facts", ()))
        return cls(**{**data, "facts": facts})


def plan_incidents(
    conditions: Iterable[Condition], state: AlertState, now: float, delivery: Delivery
) -> list[Notification]:
    """The messages the conditions call for, given the open incidents: an incident opens
    (Slack; PagerDuty too when critical) once, is repeated on Slack every
    ``repeat_after_minutes`` while it holds, and resolves (both) when it no longer does.
    A message that could not be delivered is planned again. Opens new incidents in
    ``state``; what was delivered is recorded by ``dispatch``."""
    notifications: list[Notification] = []
    repeat_s = delivery.repeat_after_minutes * 60
    for condition in conditions:
        incident = state.incidents.get(condition.key)

        def note(channel: Channel, action: Action, c: Condition = condition) -> Notification:
            opened = state.incidents[c.key].opened_at if c.key in state.incidents else None
            return Notification(
                channel, action, c.key, c.severity, c.title, c.facts, c.run_id, c.component, opened
            )

        if condition.active:
            if incident is None:
                incident = Incident(condition.key, condition.severity, condition.title, now)
                state.incidents[condition.key] = incident
                state.history.append(
                    {
                        "at": now,
                        "key": condition.key,
                        "severity": condition.severity,
                        "event": "opened",
                    }
                )
            incident.clearing = False
            incident.clear_announced = False
            incident.by_records = condition.by_records
            if incident.notified_at is None:
                notifications.append(note(SLACK, "open"))
            elif now - incident.notified_at >= repeat_s:
                notifications.append(note(SLACK, "repeat"))
            if condition.severity == CRITICAL and not incident.paged:
                notifications.append(note(PAGERDUTY, "open"))
        elif incident is not None:
            incident.clearing = True
            # The resolution names what was wrong, with the facts as they are now.
            cleared = replace(condition, title=incident.title)
            if incident.paged:
                notifications.append(note(PAGERDUTY, "resolve", cleared))
            if incident.notified_at is not None and not incident.clear_announced:
                notifications.append(note(SLACK, "resolve", cleared))
            _close_if_done(state, incident, now)
    return notifications


def plan_run_failure(
    failure: RunFailure, state: AlertState, thresholds: AlertThresholds, now: float
) -> list[Notification]:
    """The messages a failed run calls for, once per run.

    A failed load step counts against its asset; a destination whose asset failed its last
    ``failed_runs`` runs is failing (critical: Slack and a page, once per incident). Any
    other failure is a warning on Slack, at most one per job per cooldown; the next one says
    how many failed meanwhile."""
    if failure.run_id in state.runs_alerted:
        return []
    failing = thresholds.critical.destination_failing
    destinations = set()
    for step in failure.failed_steps:
        destination = failing.destination_of(step)
        if destination is not None:
            state.record_load_failure(step, failure)
            destinations.add(destination)
    if destinations:
        conditions = [
            c
            for c in destination_conditions(thresholds, state)
            if c.component in destinations and c.active
        ]
        if conditions:
            state.runs_alerted[failure.run_id] = now
            return plan_incidents(conditions, state, now, thresholds.delivery)
    cooldown_s = thresholds.delivery.run_failure_cooldown_minutes * 60
    job = state.job_failures.get(failure.job_name)
    if job is not None and now - job["notified_at"] < cooldown_s:
        job["since"] = job.get("since", 0) + 1
        state.runs_alerted[failure.run_id] = now
        return []
    return [_run_failure_message(failure, int(job.get("since", 0)) if job else 0)]


def _run_failure_message(failure: RunFailure, failed_since: int) -> Notification:
    if failure.start_timeout:
        title = f"Run of {failure.job_name} never started (run monitoring's start timeout)"
    elif failure.timed_out:
        title = (
            f"Run of {failure.job_name} stopped: it ran past its maximum runtime of "
            f"{failure.max_runtime_s:g} s"
        )
    else:
        title = f"Run of {failure.job_name} failed"
    facts = [("job", failure.job_name)]
    if failure.failed_steps:
        facts.append(("failed steps", ", ".join(failure.failed_steps)))
    if failed_since:
        facts.append(("further failed runs of this job since the last alert", str(failed_since)))
    return Notification(
        SLACK,
        "message",
        f"{RUN_FAILED}:{failure.job_name}",
        WARNING,
        title,
        tuple(facts),
        failure.run_id,
        component=failure.job_name,
    )


def _close_if_done(state: AlertState, incident: Incident, now: float) -> None:
    announced = incident.notified_at is None or incident.clear_announced
    if incident.clearing and not incident.paged and announced:
        del state.incidents[incident.key]
        state.history.append(
            {"at": now, "key": incident.key, "severity": incident.severity, "event": "resolved"}
        )


@dataclass
class DispatchReport:
    """What ``dispatch`` did: messages delivered, held back by the rate limit, and the
    problems of those that could not be delivered (no secrets in them)."""

    delivered: list[Notification] = field(default_factory=list)
    held_back: list[Notification] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """One line for the sensor's tick."""
        parts = [f"{len(self.delivered)} alert message(s) sent"]
        if self.held_back:
            parts.append(f"{len(self.held_back)} held back by the rate limit")
        if self.problems:
            parts.append(f"{len(self.problems)} not delivered")
        return ", ".join(parts)


# (notification, Slack messages held back since the last one sent) -> None when delivered,
# else what went wrong.
Send = Callable[[Notification, int], str | None]


def dispatch(
    notifications: Sequence[Notification],
    state: AlertState,
    now: float,
    delivery: Delivery,
    send: Send,
) -> DispatchReport:
    """Send each notification through ``send`` within the hourly limits, recording in
    ``state`` what went out. Slack messages over ``slack_per_hour`` are held back (counted;
    the next one sent says how many); pages over ``pagerduty_triggers_per_hour`` wait for
    room; resolutions always go out. Undelivered messages are left for the next round:
    incidents are planned again, one-off messages are kept in ``state.pending``."""
    report = DispatchReport()
    state.forget_old(now)
    for notification in notifications:
        if not _admitted(notification, state, delivery):
            if notification.channel == SLACK:
                state.held_back[SLACK] = state.held_back.get(SLACK, 0) + 1
                _record_delivered(state, notification, now)
            report.held_back.append(notification)
            continue
        problem = send(notification, state.held_back.get(notification.channel, 0))
        if problem is not None:
            report.problems.append(f"{notification.channel} {notification.key}: {problem}")
            if notification.action == "message":
                # No evaluation plans a one-off message again: keep it for the next round.
                state.pending.append(asdict(notification))
            continue
        state.sent.setdefault(notification.channel, []).append(now)
        state.held_back[notification.channel] = 0
        _record_delivered(state, notification, now)
        report.delivered.append(notification)
    return report


def _admitted(notification: Notification, state: AlertState, delivery: Delivery) -> bool:
    sent = len(state.sent.get(notification.channel, []))
    if notification.channel == PAGERDUTY:
        return notification.action == "resolve" or sent < delivery.pagerduty_triggers_per_hour
    return sent < delivery.slack_per_hour


def _record_delivered(state: AlertState, notification: Notification, now: float) -> None:
    if notification.action == "message":
        state.runs_alerted[notification.run_id or ""] = now
        job = notification.component
        state.job_failures[job] = {"notified_at": now, "since": 0}
        return
    incident = state.incidents.get(notification.key)
    if incident is None:
        return
    if notification.channel == PAGERDUTY:
        incident.paged = notification.action != "resolve"
    elif notification.action == "resolve":
        incident.clear_announced = True
    else:
        incident.notified_at = now
    _close_if_done(state, incident, now)


# --- rendering ---------------------------------------------------------------------------


def redact(text: str) -> str:
    """``text`` with anything shaped like an e-mail address replaced: a last guard, since
    messages are built from counts and names of jobs, steps and destinations only."""
    return _EMAIL.sub("[redacted]", text)


def run_url(ui_url: str, run_id: str | None) -> str:
    """The run's page in the Dagster UI; the runs list when there is no run to point at."""
    base = ui_url.rstrip("/")
    return f"{base}/runs/{run_id}" if run_id else f"{base}/runs"


_HEADINGS = {
    CRITICAL: ":rotating_light: *CRITICAL*",
    WARNING: ":warning: *WARNING*",
    INFO: ":information_source: *INFO*",
}


def slack_message(notification: Notification, held_back: int, ui_url: str) -> dict[str, Any]:
    """A Slack incoming-webhook message (``text`` and ``blocks``) for the notification."""
    if notification.action == "resolve":
        heading = ":white_check_mark: *RESOLVED*"
    elif notification.action == "repeat":
        heading = f"{_HEADINGS[notification.severity]} (still open)"
    else:
        heading = _HEADINGS[notification.severity]
    text = redact(f"{heading} {notification.title}")
    lines = [f"• {label}: {value}" for label, value in notification.facts]
    if notification.action == "repeat" and notification.opened_at is not None:
        opened = datetime.fromtimestamp(notification.opened_at, UTC)
        lines.append(f"• open since: {opened:%Y-%m-%d %H:%M} UTC")
    link = run_url(ui_url, notification.run_id)
    context = [f"<{link}|{'Run' if notification.run_id else 'Runs'} in the Dagster UI>"]
    context.append(f"alert `{notification.key}`")
    if held_back:
        context.append(f"{held_back} alert message(s) held back by the rate limit this hour")
    blocks = [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": redact("\n".join([text, *lines]))},
        },
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": redact(" | ".join(context))}],
        },
    ]
    return {"text": f"{text} {link}", "blocks": blocks}


def pagerduty_event(
    notification: Notification, routing_key: str, source: str, ui_url: str
) -> dict[str, Any]:
    """An Events API v2 event: trigger (with the incident's ``dedup_key``) or resolve."""
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "dedup_key": notification.dedup_key,
        "event_action": "resolve" if notification.action == "resolve" else "trigger",
    }
    if notification.action == "resolve":
        return event
    link = run_url(ui_url, notification.run_id)
    return event | {
        "payload": {
            "summary": redact(notification.title)[:1024],
            "source": source,
            "severity": notification.severity,
            "component": notification.component,
            "group": "gtm-pipeline",
            "class": notification.key.split(":", 1)[0],
            "custom_details": {label: redact(value) for label, value in notification.facts},
        },
        "client": "gtm-orchestration",
        "client_url": ui_url,
        "links": [
            {"href": link, "text": "Run in the Dagster UI" if notification.run_id else "Runs"}
        ],
    }


def clock(moment: datetime | None = None) -> float:
    """Seconds since the epoch of ``moment`` (default now): the state's clock."""
    return (moment or datetime.now(UTC)).timestamp()
