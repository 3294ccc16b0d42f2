"""Extraction of dropped lead files into the warehouse's raw tables."""

from collections.abc import Iterator
from datetime import date

import dagster as dg

from gtm_orchestration.defs.partitions import landing_day
from gtm_orchestration.defs.resources import LandingZoneResource, WarehouseResource
from gtm_orchestration.lib.ingestion import ingest_dropped_files
from gtm_orchestration.lib.landing import scan_dropped_files
from gtm_orchestration.lib.mapping import load_registry


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "raw_lead_rows",
            description="Every accepted row of every dropped file, append-only, mapped to "
            "canonical fields, with source file, line, load time and mapping version.",
        ),
        dg.AssetSpec(
            "file_ingestion_log",
            description="One row per dropped file: sha256, rows, rejected rows, timestamps.",
        ),
        dg.AssetSpec(
            "rejected_lead_rows",
            description="Rows rejected at extraction, with line, field, value and reason.",
        ),
    ],
    group_name="extract",
    partitions_def=landing_day,
    pool="warehouse",
)
def lead_files(
    context: dg.AssetExecutionContext, landing: LandingZoneResource, warehouse: WarehouseResource
) -> Iterator[dg.MaterializeResult]:
    """Ingest the files dropped on the partition's day that were not ingested before."""
    day = date.fromisoformat(context.partition_key)
    registry = load_registry()
    files = [f for f in scan_dropped_files(landing.files_dir) if f.partition_date == day]
    with warehouse.connect() as con:
        summary = ingest_dropped_files(
            con, files, registry, partition_date=day, run_id=context.run.run_id
        )
    for problem in summary.problems:
        context.log.warning(problem)
    counts = {
        "files_ingested": summary.files_ingested,
        "files_rejected": summary.files_rejected,
        "files_duplicate": summary.files_duplicate,
        "rows_in": summary.rows_in,
        "rows_accepted": summary.rows_accepted,
        "rows_rejected": summary.rows_rejected,
    }
    metadata = {k: dg.MetadataValue.int(v) for k, v in counts.items()}
    metadata["mapping_version"] = dg.MetadataValue.int(registry.version)
    for key in ("raw_lead_rows", "file_ingestion_log", "rejected_lead_rows"):
        yield dg.MaterializeResult(asset_key=key, metadata=metadata)
