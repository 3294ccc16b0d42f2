"""Loading the day's companies, contacts and engagement scores into the CRM."""

import dagster as dg

from gtm_orchestration.defs.partitions import landing_day, nightly_day
from gtm_orchestration.defs.resources import HubSpotResource, WarehouseResource
from gtm_orchestration.defs.versions import load_version
from gtm_orchestration.lib.crm_schema import ObjectType, build_payloads
from gtm_orchestration.lib.crm_sync import SyncSummary, sync_payloads
from gtm_orchestration.lib.mapping import load_registry

# Engagement scores only update contacts the CRM already has: an email open is no lead.
ENGAGEMENT_MAPPING = {
    "email": "email",
    "gtm_engagement_score": "engagement_score",
    "gtm_engagement_reasons": "engagement_reasons",
}


def sync_days(
    context: dg.AssetExecutionContext,
    object_type: ObjectType,
    table: str,
    mapping: dict[str, str],
    warehouse: WarehouseResource,
    hubspot: HubSpotResource,
    *,
    stream: str | None = None,
    create: bool = True,
) -> dg.MaterializeResult:
    """Sync the rows of ``table`` for the run's days; fails the step if the CRM rejects any."""
    with warehouse.connect() as con:
        # A record landed on several of the days: its newest day wins.
        rows = con.sql(
            f"SELECT * FROM {table} WHERE list_contains(?, CAST(partition_date AS VARCHAR)) "
            f"QUALIFY row_number() OVER (PARTITION BY {mapping_key(object_type)} "
            "ORDER BY partition_date DESC) = 1 ORDER BY partition_date",
            params=[list(context.partition_keys)],
        ).to_arrow_table()
        payloads = build_payloads(rows, mapping, object_type)
        with hubspot.client() as client:
            summary = sync_payloads(
                client,
                con,
                object_type,
                payloads,
                stream=stream,
                create=create,
                run_id=context.run.run_id,
            )
    for error in summary.errors[:20]:
        context.log.error(error)
    if summary.failed:
        raise dg.Failure(
            description=f"{summary.failed} of {summary.payloads} {summary.object_type} records "
            "were rejected by the CRM; they stay out of the ledger and are retried next run",
            metadata=_metadata(summary),
        )
    return dg.MaterializeResult(metadata=_metadata(summary))


def sync_engagement_scores(
    context: dg.AssetExecutionContext,
    table: str,
    warehouse: WarehouseResource,
    hubspot: HubSpotResource,
) -> dg.MaterializeResult:
    """Sync the scores of ``table`` to contacts the CRM already has. Real-time and nightly
    scores share one ledger stream: whichever wrote last, an unchanged score is not sent."""
    return sync_days(
        context,
        "contacts",
        table,
        ENGAGEMENT_MAPPING,
        warehouse,
        hubspot,
        stream="contact_engagement",
        create=False,
    )


def mapping_key(object_type: ObjectType) -> str:
    return "email" if object_type == "contacts" else "domain"


def _metadata(summary: SyncSummary) -> dict[str, dg.MetadataValue]:
    counts = {
        "records": summary.payloads,
        "unchanged": summary.unchanged,
        "created": summary.created,
        "updated": summary.updated,
        "failed": summary.failed,
        "rep_edits_kept": summary.rep_edits_kept,
        "not_in_crm": summary.not_in_crm,
        "requests": summary.requests,
    }
    return {k: dg.MetadataValue.int(v) for k, v in counts.items()}


_LOAD = {
    "group_name": "load",
    "partitions_def": landing_day,
    "backfill_policy": dg.BackfillPolicy.single_run(),
    "pool": "warehouse",
    "code_version": load_version(),
}


@dg.asset(deps=["companies"], description="Companies upserted into HubSpot by domain.", **_LOAD)
def hubspot_companies(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, hubspot: HubSpotResource
) -> dg.MaterializeResult:
    mapping = load_registry().crm["companies"]
    return sync_days(context, "companies", "gtm.companies", mapping, warehouse, hubspot)


@dg.asset(
    deps=["leads", "hubspot_companies"],
    description="Contacts upserted into HubSpot by email; reps' manual edits are kept.",
    **_LOAD,
)
def hubspot_contacts(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, hubspot: HubSpotResource
) -> dg.MaterializeResult:
    mapping = load_registry().crm["contacts"]
    return sync_days(context, "contacts", "gtm.leads", mapping, warehouse, hubspot)


@dg.asset(
    deps=["engagement_scores", "hubspot_contacts"],
    description="gtm_engagement_score of existing HubSpot contacts, as their signals arrive.",
    **_LOAD,
)
def hubspot_engagement(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, hubspot: HubSpotResource
) -> dg.MaterializeResult:
    return sync_engagement_scores(context, "gtm.engagement_scores", warehouse, hubspot)


@dg.asset(
    deps=["engagement_rescores"],
    group_name="nightly",
    partitions_def=nightly_day,
    pool="warehouse",
    code_version=load_version(),
    description="The nightly re-scored gtm_engagement_score of existing HubSpot contacts; only "
    "scores that changed since the CRM last confirmed them are sent.",
)
def hubspot_engagement_rescore(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, hubspot: HubSpotResource
) -> dg.MaterializeResult:
    return sync_engagement_scores(context, "gtm.engagement_rescores", warehouse, hubspot)
