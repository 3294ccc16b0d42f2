"""The weekly refresh of stale firmographics, and the re-derivation of the days it changes.

Leads are enriched on transform through ``gtm.enrichment_cache``; an answer older than its
TTL is only asked again when a new lead of that company arrives. The weekly refresh asks
again for every existing company whose cache entry is stale, so a company's head count or
industry does not stay as it was the day its first lead came in.
"""

from datetime import UTC, datetime

import dagster as dg

from gtm_orchestration.defs.jobs import lead_pipeline_job
from gtm_orchestration.defs.load.destinations import crm_load_assets
from gtm_orchestration.defs.resources import EnrichmentResource, WarehouseResource
from gtm_orchestration.lib.enrichment import refresh_stale_entries

DAYS_METADATA_KEY = "days_to_rederive"
# What a changed answer can alter: the leads and companies, and their CRM records. The
# extraction and engagement scores of those days are left alone.
REDERIVED_ASSETS = [
    dg.AssetKey("leads"),
    dg.AssetKey("companies"),
    *(dg.AssetKey(key) for key in crm_load_assets()),
]


@dg.op(pool="warehouse", out=dg.Out(dg.Nothing))
def refresh_stale_firmographics(
    context: dg.OpExecutionContext,
    warehouse: WarehouseResource,
    enrichment: EnrichmentResource,
) -> dg.Output[None]:
    """Re-fetch the cache entries older than their TTL for domains of existing companies.

    Failed lookups keep the entry's last answer and are tried again next time. The output's
    metadata names the landing days whose companies got a changed answer; the
    ``rederive_refreshed_days`` sensor re-derives and re-loads those days.
    """
    with enrichment.client() as client:
        summary = refresh_stale_entries(
            warehouse.connect, client, datetime.now(UTC), enrichment.ttl
        )
    context.log.info(
        f"{summary.stale} stale entries: {summary.found} found, {summary.unknown} unknown, "
        f"{summary.failed} failed; {len(summary.changed)} changed, "
        f"touching {len(summary.days)} landing days"
    )
    counts = {
        "stale_entries": summary.stale,
        "looked_up": summary.looked_up,
        "found": summary.found,
        "unknown": summary.unknown,
        "failed": summary.failed,
        "changed": len(summary.changed),
    }
    metadata: dict[str, dg.MetadataValue] = {
        key: dg.MetadataValue.int(value) for key, value in counts.items()
    }
    metadata[DAYS_METADATA_KEY] = dg.MetadataValue.json(summary.days)
    return dg.Output(None, metadata=metadata)


@dg.job(
    description="Re-fetch stale firmographics of existing companies; the days whose "
    "companies changed are then re-derived and re-loaded."
)
def enrichment_refresh() -> None:
    """Only what changed reaches the CRM: the re-derived days go through the load's sync
    ledger, which skips every record whose payload is unchanged."""
    refresh_stale_firmographics()


weekly_enrichment_refresh = dg.ScheduleDefinition(
    name="weekly_enrichment_refresh",
    job=enrichment_refresh,
    # Monday 04:00 UTC: after the nightly re-score (02:00) and warehouse build (03:00).
    cron_schedule="0 4 * * 1",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every Monday at 04:00 UTC, refresh firmographics older than their TTL.",
)


def days_to_rederive(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """The landing days a finished ``enrichment_refresh`` run found changed firmographics in."""
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_OUTPUT):
        event = entry.dagster_event
        if event is None or event.step_output_data is None:
            continue
        value = event.step_output_data.metadata.get(DAYS_METADATA_KEY)
        if isinstance(value, dg.JsonMetadataValue) and isinstance(value.data, list):
            return [str(day) for day in value.data]
    return []


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[enrichment_refresh],
    request_job=lead_pipeline_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="After a firmographics refresh, re-derives and re-loads each landing day "
    "whose companies got changed firmographics; the sync ledger sends only what changed.",
)
def rederive_refreshed_days(
    context: dg.RunStatusSensorContext,
) -> list[dg.RunRequest] | dg.SkipReason:
    run_id = context.dagster_run.run_id
    days = days_to_rederive(context.instance, run_id)
    if not days:
        return dg.SkipReason(f"refresh run {run_id} changed no company's firmographics")
    return [
        dg.RunRequest(
            run_key=f"enrichment-refresh:{run_id}:{day}",
            partition_key=day,
            asset_selection=REDERIVED_ASSETS,
            tags={"gtm/trigger": "enrichment_refresh", "gtm/refresh_run": run_id},
        )
        for day in days
    ]


ENRICHMENT_DEFS = {
    "jobs": [enrichment_refresh],
    "schedules": [weekly_enrichment_refresh],
    "sensors": [rederive_refreshed_days],
}
