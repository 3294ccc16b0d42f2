"""Loading the day's companies and contacts into the CRM through the sync ledger."""

import dagster as dg

from gtm_orchestration.defs.partitions import landing_day
from gtm_orchestration.defs.resources import HubSpotResource, WarehouseResource
from gtm_orchestration.lib.crm_schema import ObjectType, build_payloads
from gtm_orchestration.lib.crm_sync import SyncSummary, sync_payloads
from gtm_orchestration.lib.mapping import load_registry

_SOURCE_TABLE: dict[ObjectType, str] = {"contacts": "gtm.leads", "companies": "gtm.companies"}


def sync_day(
    context: dg.AssetExecutionContext,
    object_type: ObjectType,
    warehouse: WarehouseResource,
    hubspot: HubSpotResource,
) -> dg.MaterializeResult:
    """Sync one landing day's records of ``object_type``; fails the step on rejects."""
    registry = load_registry()
    with warehouse.connect() as con:
        cursor = con.execute(
            f"SELECT * FROM {_SOURCE_TABLE[object_type]} WHERE partition_date = ?",
            [context.partition_key],
        )
        columns = [d[0] for d in cursor.description]
        rows = [dict(zip(columns, values, strict=True)) for values in cursor.fetchall()]
        payloads = build_payloads(rows, registry.crm[object_type], object_type)
        with hubspot.client() as client:
            summary = sync_payloads(client, con, object_type, payloads, run_id=context.run.run_id)
    for error in summary.errors[:20]:
        context.log.error(error)
    result = dg.MaterializeResult(metadata=_metadata(summary))
    if summary.failed:
        raise dg.Failure(
            description=f"{summary.failed} of {summary.payloads} {object_type} were rejected "
            "by the CRM; they stay out of the ledger and are retried on the next run",
            metadata=_metadata(summary),
        )
    return result


def _metadata(summary: SyncSummary) -> dict[str, dg.MetadataValue]:
    counts = {
        "records": summary.payloads,
        "unchanged": summary.unchanged,
        "created": summary.created,
        "updated": summary.updated,
        "failed": summary.failed,
        "rep_edits_kept": summary.rep_edits_kept,
        "requests": summary.requests,
    }
    return {k: dg.MetadataValue.int(v) for k, v in counts.items()}


@dg.asset(
    deps=["companies"],
    group_name="load",
    partitions_def=landing_day,
    pool="warehouse",
    description="Companies upserted into HubSpot by domain.",
)
def hubspot_companies(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, hubspot: HubSpotResource
) -> dg.MaterializeResult:
    return sync_day(context, "companies", warehouse, hubspot)


@dg.asset(
    deps=["leads", "hubspot_companies"],
    group_name="load",
    partitions_def=landing_day,
    pool="warehouse",
    description="Contacts upserted into HubSpot by email; reps' manual edits are kept.",
)
def hubspot_contacts(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, hubspot: HubSpotResource
) -> dg.MaterializeResult:
    return sync_day(context, "contacts", warehouse, hubspot)
