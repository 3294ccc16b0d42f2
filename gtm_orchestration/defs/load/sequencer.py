"""Enrolling the day's leads in their sequencer (Outreach) sequences, and releasing held
enrollments once their quality window is over.

The rules and the never-twice protocol live in ``lib/enrollment_rules.py`` and
``lib/enrollment.py``; here they are only run and their counts shown.
"""

import hashlib
from datetime import UTC, datetime

import dagster as dg

from gtm_orchestration.defs.load.destinations import crm_load_assets
from gtm_orchestration.defs.partitions import landing_day
from gtm_orchestration.defs.resources import OutreachResource, WarehouseResource
from gtm_orchestration.lib.config import config_path
from gtm_orchestration.lib.enrollment import (
    EnrollmentSummary,
    due_enrollments,
    enroll_days,
    release_due_enrollments,
)
from gtm_orchestration.lib.warehouse import Warehouse

ENROLLMENTS_ASSET = dg.AssetKey("outreach_enrollments")
_COUNTS = (
    "leads",
    "routed",
    "held",
    "unchanged",
    "corrected",
    "rerouted",
    "rejected",
    "claimed",
    "reclaimed",
    "in_flight_elsewhere",
    "enrolled",
    "already_in_sequence",
    "cancelled",
    "retrying",
    "failed",
    "requests",
    "waiting",
)


def sequences_version() -> str:
    """A digest of ``config/sequences.yaml``: a rule change marks the enrollments stale."""
    digest = hashlib.sha256(config_path("sequences.yaml").read_bytes()).hexdigest()[:10]
    return f"sequences-{digest}"


def _metadata(summary: EnrollmentSummary) -> dict[str, dg.MetadataValue]:
    metadata: dict[str, dg.MetadataValue] = {
        name: dg.MetadataValue.int(getattr(summary, name)) for name in _COUNTS
    }
    if summary.next_due_at is not None:
        metadata["next_due_at"] = dg.MetadataValue.timestamp(summary.next_due_at)
    return metadata


def _report(log: dg.DagsterLogManager, summary: EnrollmentSummary) -> None:
    for problem in summary.problems[:20]:
        log.warning(problem)
    if summary.failed:
        raise dg.Failure(
            description=f"{summary.failed} sequence enrollment(s) failed for good; "
            "gtm.sequence_enrollments has each reason (they are tried again only when the "
            "lead changes)",
            metadata=_metadata(summary),
        )


@dg.asset(
    deps=[crm_load_assets()[1]],
    group_name="load",
    partitions_def=landing_day,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool="warehouse",
    code_version=sequences_version(),
    kinds={"outreach", "duckdb"},
    description="Leads enrolled in their sequencer sequence by config/sequences.yaml: held "
    "for the quality window, checked (personalization fields, not in another sequence), "
    "then enrolled at most once per lead and sequence (gtm.sequence_enrollments).",
)
def outreach_enrollments(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, outreach: OutreachResource
) -> dg.MaterializeResult:
    """Record the enrollment intents of the run's leads, then enroll every due one."""
    with outreach.client() as client:
        summary = enroll_days(
            warehouse.connect,
            client,
            outreach.rules,
            context.partition_keys,
            datetime.now(UTC),
            context.run.run_id,
        )
    _report(context.log, summary)
    return dg.MaterializeResult(metadata=_metadata(summary))


@dg.op(pool="warehouse")
def release_due_sequence_enrollments(
    context: dg.OpExecutionContext, warehouse: WarehouseResource, outreach: OutreachResource
) -> None:
    """Enroll the held enrollments whose quality window is over; the counts are shown on
    ``outreach_enrollments`` as an observation."""
    with outreach.client() as client:
        summary = release_due_enrollments(
            warehouse.connect, client, outreach.rules, datetime.now(UTC), context.run.run_id
        )
    context.log_event(dg.AssetObservation(asset_key=ENROLLMENTS_ASSET, metadata=_metadata(summary)))
    _report(context.log, summary)


@dg.job(description="Enroll the held sequence enrollments whose quality window is over.")
def release_outreach_enrollments() -> None:
    release_due_sequence_enrollments()


@dg.schedule(
    job=release_outreach_enrollments,
    cron_schedule="* * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every minute: releases held sequence enrollments whose quality window is "
    "over (and takes over claims of crashed runs); skips while none is due.",
)
def outreach_enrollment_release(
    context: dg.ScheduleEvaluationContext, warehouse: WarehouseResource
) -> dg.RunRequest | dg.SkipReason:
    tick = context.scheduled_execution_time or datetime.now(UTC)
    due = due_enrollments(Warehouse(warehouse.resolved_url), tick)
    if due is None:
        return dg.SkipReason("the warehouse is in use by a run; looking again next minute")
    if not due:
        return dg.SkipReason("no held sequence enrollment is due")
    return dg.RunRequest(
        run_key=f"outreach-enrollment-release:{tick.isoformat()}",
        tags={"gtm/trigger": "enrollment_release", "gtm/due_enrollments": str(due)},
    )


SEQUENCER_DEFS = {
    "assets": [outreach_enrollments],
    "jobs": [release_outreach_enrollments],
    "schedules": [outreach_enrollment_release],
}
