"""Extraction of landed files and webhook batches into the warehouse's raw tables."""

from collections.abc import Iterator
from datetime import date

import dagster as dg
import duckdb

from gtm_orchestration.defs.observability import (
    DAILY_FRESHNESS,
    FRESHNESS_SLA_S,
    MAX_REJECTED_SHARE,
    check_result,
    selected_checks,
    stage_metadata,
)
from gtm_orchestration.defs.partitions import landing_day
from gtm_orchestration.defs.resources import LandingZoneResource, WarehouseResource
from gtm_orchestration.defs.versions import extract_version
from gtm_orchestration.lib import quality
from gtm_orchestration.lib.ingestion import IngestionSummary, ingest_landed_items
from gtm_orchestration.lib.landing import scan_dropped_files, scan_lead_webhook_batches
from gtm_orchestration.lib.mapping import load_registry
from gtm_orchestration.lib.metrics import record_extraction_metrics

RAW_ASSETS = ("raw_lead_rows", "file_ingestion_log", "rejected_lead_rows", "raw_engagement_events")

# None blocks: extraction's rules already keep bad rows out of the raw tables, and the checks
# that guard the CRM run on the leads. These say when extraction itself went wrong.
WARN = dg.AssetCheckSeverity.WARN
CHECKS = [
    dg.AssetCheckSpec(
        "canonical_columns_present",
        asset="raw_lead_rows",
        description="Schema: the raw table has a column for every canonical field of the "
        "mapping registry and for the rows' provenance.",
    ),
    dg.AssetCheckSpec(
        "emails_present",
        asset="raw_lead_rows",
        description="Completeness: every row landed by the run has an email (the CRM key).",
    ),
    dg.AssetCheckSpec(
        "rows_landed_once",
        asset="raw_lead_rows",
        description="Duplicates: no line of a file is landed twice under one mapping version.",
    ),
    dg.AssetCheckSpec(
        "landed_within_sla",
        asset="raw_lead_rows",
        description="Freshness (warns): the p95 from landing to the end of extraction is "
        "within the landed -> CRM latency SLA.",
    ),
    dg.AssetCheckSpec(
        "rejected_share_below_threshold",
        asset="rejected_lead_rows",
        description="Rejections (warns): the share of rows rejected is at most the "
        "error-rate alert's threshold.",
    ),
    dg.AssetCheckSpec(
        "statuses_valid",
        asset="file_ingestion_log",
        description="Enumerations: every file is logged ingested, rejected or duplicate.",
    ),
    dg.AssetCheckSpec(
        "event_ids_unique",
        asset="raw_engagement_events",
        description="Duplicates: each provider's event is landed once, however often sent.",
    ),
]


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "raw_lead_rows",
            code_version=extract_version(),
            freshness_policy=DAILY_FRESHNESS,
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
    check_specs=CHECKS,
    # A run may leave out checks (see WARNING_CHECKS_EVERY_S in sensors.py); the four
    # tables are always extracted together.
    can_subset=True,
    group_name="extract",
    partitions_def=landing_day,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool="warehouse",
)
def landed_data(
    context: dg.AssetExecutionContext, landing: LandingZoneResource, warehouse: WarehouseResource
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Ingest the files and webhook batches landed on the run's days, each once; measure
    what was landed (``gtm.stage_metrics``) and check it."""
    registry = load_registry()
    days = {date.fromisoformat(key) for key in context.partition_keys}
    items = scan_dropped_files(landing.files_dir) + scan_lead_webhook_batches(
        landing.landing_dir, since_day=min(days).isoformat()
    )
    total = IngestionSummary()
    run_id = context.run.run_id
    with warehouse.connect() as con:
        for day in sorted(days):
            day_items = [i for i in items if i.partition_date == day]
            summary = ingest_landed_items(
                con, day_items, registry, partition_date=day, run_id=run_id
            )
            for name, value in vars(summary).items():
                if isinstance(value, int):
                    setattr(total, name, getattr(total, name) + value)
            total.problems += summary.problems
        measured = record_extraction_metrics(con, run_id, context.partition_keys)
        selected = selected_checks(context)
        checks = list(_run_checks(con, selected, run_id, sorted(days)))
    for problem in total.problems:
        context.log.warning(problem)
    metadata = {
        name: dg.MetadataValue.int(value)
        for name, value in vars(total).items()
        if isinstance(value, int)
    }
    metadata["mapping_version"] = dg.MetadataValue.int(registry.version)
    leads, events = measured["raw_lead_rows"], measured["raw_engagement_events"]
    for key in RAW_ASSETS:
        if dg.AssetKey(key) in context.selected_asset_keys:
            stage = events if key == "raw_engagement_events" else leads
            yield dg.MaterializeResult(asset_key=key, metadata=metadata | stage_metadata(stage))
    yield from checks
    if "landed_within_sla" in selected:
        yield check_result(
            "landed_within_sla",
            "raw_lead_rows",
            [
                quality.latency_above(
                    leads.latency_p95_s, leads.latency_samples, FRESHNESS_SLA_S, "raw rows"
                )
            ],
            severity=WARN,
            metadata={"sla_seconds": dg.MetadataValue.float(FRESHNESS_SLA_S)},
        )
    if "rejected_share_below_threshold" in selected:
        yield check_result(
            "rejected_share_below_threshold",
            "rejected_lead_rows",
            [
                quality.share_above(
                    leads.rejected, leads.records_in, MAX_REJECTED_SHARE, "rows rejected"
                )
            ],
            severity=WARN,
            metadata={"error_rate": dg.MetadataValue.float(round(leads.error_rate, 6))},
        )


def _run_checks(
    con: duckdb.DuckDBPyConnection, selected: set[str], run_id: str, days: list[date]
) -> Iterator[dg.AssetCheckResult]:
    """The selected checks that look at the warehouse, computed only if selected (a
    real-time run leaves out the ones that re-read the whole day)."""
    if "canonical_columns_present" in selected:
        yield check_result(
            "canonical_columns_present",
            "raw_lead_rows",
            [quality.missing_columns(con, "raw.lead_rows", quality.RAW_LEAD_COLUMNS)],
        )
    if "emails_present" in selected:
        yield check_result(
            "emails_present",
            "raw_lead_rows",
            [quality.rows_missing(con, "metrics_run_lead_rows", ["email"], _FILE_LINE)],
        )
    if "rows_landed_once" in selected:
        yield check_result(
            "rows_landed_once",
            "raw_lead_rows",
            [quality.duplicate_rows(con, quality.raw_lead_rows_of_days(days), _RAW_ROW_KEY)],
        )
    if "statuses_valid" in selected:
        yield check_result(
            "statuses_valid",
            "file_ingestion_log",
            [quality.ingestion_statuses_outside(con, run_id)],
        )
    if "event_ids_unique" in selected:
        yield check_result(
            "event_ids_unique",
            "raw_engagement_events",
            [quality.duplicate_rows(con, quality.engagement_events_of_days(days), _EVENT_KEY)],
        )


# How a raw row is named in a check's examples, and what identifies it.
_FILE_LINE = "source_file || ':' || line"
_RAW_ROW_KEY = ("source_file", "file_sha256", "line", "mapping_version")
_EVENT_KEY = ("provider", "event_id")
