"""Jobs and the schedules of the batch work: the per-day lead pipeline, the nightly
re-score, and the warehouse models."""

from datetime import UTC, timedelta

import dagster as dg

lead_pipeline_job = dg.define_asset_job(
    name="lead_pipeline",
    # CRM change capture is extracted on its own schedule, unpartitioned.
    selection=dg.AssetSelection.groups("extract", "transform", "load")
    - dg.AssetSelection.assets("hubspot_contact_snapshot"),
    description="Extract, transform and load one landing day's files and webhook batches.",
)

warehouse_job = dg.define_asset_job(
    name="build_warehouse",
    selection=dg.AssetSelection.groups("warehouse"),
    description="Build the dbt models and run their tests over the warehouse.",
)

nightly_rescore_job = dg.define_asset_job(
    name="nightly_rescore",
    selection=dg.AssetSelection.groups("nightly"),
    description="Re-score every contact's engagement as of the end of a day and send the "
    "scores that changed.",
)


@dg.schedule(
    job=nightly_rescore_job,
    cron_schedule="0 2 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every night at 02:00 UTC, the re-score of the day that just ended.",
)
def nightly_rescore_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    ended = context.scheduled_execution_time.astimezone(UTC).date() - timedelta(days=1)
    return dg.RunRequest(run_key=ended.isoformat(), partition_key=ended.isoformat())


nightly_warehouse_schedule = dg.ScheduleDefinition(
    name="nightly_warehouse_build",
    job=warehouse_job,
    cron_schedule="0 3 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Rebuild every dbt model and run its tests, after the nightly re-score.",
)
