"""Change capture of HubSpot contacts: the snapshot asset, its poll schedule and webhook sensor."""

import os

import dagster as dg
from pydantic import Field
from upath import UPath

from gtm_orchestration.defs.resources import (
    HubSpotResource,
    LandingZoneResource,
    WarehouseResource,
)
from gtm_orchestration.lib.crm_changes import (
    DEFAULT_OVERLAP_MS,
    CaptureSummary,
    capture_contact_changes,
    hubspot_webhook_batches,
    moment_of,
)
from gtm_orchestration.lib.mapping import load_registry


class CrmChangeCaptureConfig(dg.Config):
    """How far back each poll looks before the newest change it saw last time."""

    overlap_minutes: float = Field(
        default=DEFAULT_OVERLAP_MS / 60_000,
        ge=0,
        description="Each poll starts this long before the last lastmodifieddate it saw, so "
        "a change the CRM's search indexed late is still found.",
    )


def _metadata(summary: CaptureSummary) -> dict[str, dg.MetadataValue]:
    counts = {
        "changes_webhook": summary.changes["webhook"],
        "changes_poll": summary.changes["poll"],
        "echoes_ignored": summary.echoes,
        "contacts_in_snapshot": summary.contacts,
        "webhook_batches": summary.batches_ingested,
        "webhook_batches_rejected": summary.batches_rejected,
        "webhook_events": summary.events_read,
        "webhook_events_skipped": summary.events_skipped,
        "webhook_events_rejected": summary.events_rejected,
        "versions_polled": summary.versions_seen,
        "search_requests": summary.searches,
        "search_windows": summary.search_windows,
        "history_requests": summary.history_reads,
    }
    metadata = {key: dg.MetadataValue.int(value) for key, value in counts.items()}
    for key, ms in (
        ("window_start", summary.window_start_ms),
        ("window_end", summary.window_end_ms),
    ):
        if ms is not None:
            metadata[key] = dg.MetadataValue.timestamp(moment_of(ms))
    return metadata


@dg.asset(
    group_name="extract",
    pool="warehouse",
    kinds={"hubspot", "duckdb"},
    description="HubSpot contacts as the CRM holds them, kept current from webhook events and "
    "an incremental poll; every change is logged in raw.crm_contact_changes, echoes of the "
    "pipeline's own writes flagged.",
)
def hubspot_contact_snapshot(
    context: dg.AssetExecutionContext,
    config: CrmChangeCaptureConfig,
    landing: LandingZoneResource,
    warehouse: WarehouseResource,
    hubspot: HubSpotResource,
) -> dg.MaterializeResult:
    """Ingest new HubSpot webhook batches, then poll contacts changed since the last poll."""
    registry = load_registry()
    with hubspot.client() as client:
        summary = capture_contact_changes(
            warehouse.connect,
            client,
            landing.landing_dir,
            list(registry.crm["contacts"]),
            mapping_version=registry.version,
            overlap_ms=round(config.overlap_minutes * 60_000),
            run_id=context.run.run_id,
        )
    for problem in summary.problems[:20]:
        context.log.warning(problem)
    return dg.MaterializeResult(metadata=_metadata(summary))


crm_change_capture_job = dg.define_asset_job(
    name="crm_change_capture",
    selection=dg.AssetSelection.assets(hubspot_contact_snapshot),
    description="Bring the HubSpot contact snapshot up to date from webhooks and the poll.",
)

crm_change_poll = dg.ScheduleDefinition(
    name="crm_change_poll",
    cron_schedule="*/5 * * * *",
    job=crm_change_capture_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Polls HubSpot for contacts changed since the last poll, every 5 minutes.",
)


def webhook_run_request(
    batches: list[UPath], cursor: str | None
) -> tuple[dg.RunRequest | None, str | None]:
    """A run request for the batches named after ``cursor`` (the newest batch name seen), and
    the advanced cursor. Batch names sort by the moment their batch opened."""
    new = [path for path in batches if cursor is None or path.name > cursor]
    if not new:
        return None, cursor
    newest = max(path.name for path in new)
    request = dg.RunRequest(
        run_key=f"hubspot-webhooks:{newest}",
        tags={"gtm/trigger": "hubspot_webhook", "gtm/batches": str(len(new))},
    )
    return request, newest


def new_hubspot_batches_request(
    landing_dir: str | os.PathLike[str], cursor: str | None
) -> tuple[dg.RunRequest | None, str | None]:
    """The run request for HubSpot batches landed after ``cursor``, and the new cursor."""
    # Batch names start with their UTC moment (20261126T...): the cursor's day folder and
    # later ones are all that can hold newer batches.
    since_day = f"{cursor[:4]}-{cursor[4:6]}-{cursor[6:8]}" if cursor else None
    return webhook_run_request(hubspot_webhook_batches(landing_dir, since_day), cursor)


@dg.sensor(
    job=crm_change_capture_job,
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Brings the contact snapshot up to date when HubSpot webhook batches land.",
)
def hubspot_webhook_sensor(
    context: dg.SensorEvaluationContext, landing: LandingZoneResource
) -> dg.SensorResult | dg.SkipReason:
    landing_dir = landing.landing_dir
    request, cursor = new_hubspot_batches_request(landing_dir, context.cursor)
    if request is None:
        return dg.SkipReason(
            f"no new HubSpot webhook batches in {landing_dir / 'webhooks' / 'hubspot'}"
        )
    return dg.SensorResult(run_requests=[request], cursor=cursor)


CRM_CHANGE_DEFS = {
    "assets": [hubspot_contact_snapshot],
    "jobs": [crm_change_capture_job],
    "schedules": [crm_change_poll],
    "sensors": [hubspot_webhook_sensor],
}
