"""Extraction of landed files and webhook batches into the warehouse's raw tables."""

from collections.abc import Iterator
from datetime import date

import dagster as dg

from gtm_orchestration.defs.partitions import landing_day
from gtm_orchestration.defs.resources import LandingZoneResource, WarehouseResource
from gtm_orchestration.defs.versions import extract_version
from gtm_orchestration.lib.ingestion import IngestionSummary, ingest_landed_items
from gtm_orchestration.lib.landing import scan_dropped_files, scan_lead_webhook_batches
from gtm_orchestration.lib.mapping import load_registry

RAW_ASSETS = ("raw_lead_rows", "file_ingestion_log", "rejected_lead_rows", "raw_engagement_events")


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "raw_lead_rows",
            code_version=extract_version(),
            description="Every accepted row of every dropped file and form submission, "
            "append-only, mapped to canonical fields, with source, line, load time and "
            "mapping version.",
        ),
        dg.AssetSpec(
            "file_ingestion_log",
            code_version=extract_version(),
            description="One row per landed file or webhook batch: sha256, rows, rejected "
            "rows, timestamps.",
        ),
        dg.AssetSpec(
            "rejected_lead_rows",
            code_version=extract_version(),
            description="Rows rejected at extraction, with line, field, value and reason.",
        ),
        dg.AssetSpec(
            "raw_engagement_events",
            code_version=extract_version(),
            description="Engagement events (opens, clicks, replies, meetings, page visits), "
            "once per event id however often delivered.",
        ),
    ],
    group_name="extract",
    partitions_def=landing_day,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool="warehouse",
)
def landed_data(
    context: dg.AssetExecutionContext, landing: LandingZoneResource, warehouse: WarehouseResource
) -> Iterator[dg.MaterializeResult]:
    """Ingest the files and webhook batches landed on the run's days, each once."""
    registry = load_registry()
    days = {date.fromisoformat(key) for key in context.partition_keys}
    items = scan_dropped_files(landing.files_dir) + scan_lead_webhook_batches(
        landing.landing_dir, since_day=min(days).isoformat()
    )
    total = IngestionSummary()
    with warehouse.connect() as con:
        for day in sorted(days):
            day_items = [i for i in items if i.partition_date == day]
            summary = ingest_landed_items(
                con, day_items, registry, partition_date=day, run_id=context.run.run_id
            )
            for name, value in vars(summary).items():
                if isinstance(value, int):
                    setattr(total, name, getattr(total, name) + value)
            total.problems += summary.problems
    for problem in total.problems:
        context.log.warning(problem)
    metadata = {
        name: dg.MetadataValue.int(value)
        for name, value in vars(total).items()
        if isinstance(value, int)
    }
    metadata["mapping_version"] = dg.MetadataValue.int(registry.version)
    for key in RAW_ASSETS:
        yield dg.MaterializeResult(asset_key=key, metadata=metadata)
