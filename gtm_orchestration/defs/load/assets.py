"""Loading the day's companies, contacts and engagement scores into HubSpot.

Pools: every load of one CRM portal takes that destination's pool (``hubspot``, one step
at a time by ``dagster.yaml``'s ``default_limit: 1``), so concurrent runs share the portal's
rate budget one step after another, and the client's pacer keeps that step under the limit.
A HubSpot load does not take the ``warehouse`` pool: it never holds DuckDB while it talks to
the CRM. It reads its rows in one short connection and writes outcomes (ledger, sync log,
dead letters) in short transactions, each waiting for DuckDB's file lock; so DuckDB never has
two writers, and a transform of another run is not held up for the length of a CRM load.
"""

import dagster as dg
from pydantic import Field

from gtm_orchestration.defs.observability import stage_metadata
from gtm_orchestration.defs.partitions import landing_day, nightly_day
from gtm_orchestration.defs.resources import HubSpotResource, WarehouseResource
from gtm_orchestration.defs.versions import load_version
from gtm_orchestration.lib.crm_sync import (
    DEFAULT_MAX_IN_FLIGHT,
    LoadStream,
    SyncSummary,
    hubspot_stream,
    payloads_for_days,
    sync_stream,
)
from gtm_orchestration.lib.metrics import StageMetrics, record_load_metrics

# One pool per CRM portal: its rate limit is shared by every run.
HUBSPOT_POOL = "hubspot"


class CrmLoadConfig(dg.Config):
    """How hard a HubSpot load may push; the defaults suit a portal of its own."""

    max_in_flight: int = Field(
        default=DEFAULT_MAX_IN_FLIGHT,
        ge=1,
        le=16,
        description="Batches sent at once; the client paces them under the rate limit.",
    )
    max_attempts: int = Field(
        default=6,
        ge=1,
        le=10,
        description="Tries per request, retries included; a batch failing every try is "
        "dead-lettered as transient and retried by a later load.",
    )


def sync_days(
    context: dg.AssetExecutionContext,
    config: CrmLoadConfig,
    stream: LoadStream,
    warehouse: WarehouseResource,
    hubspot: HubSpotResource,
    *,
    associations: LoadStream | None = None,
) -> dg.MaterializeResult:
    """Sync the run's days of ``stream`` (then ``associations``, when given).

    Records the CRM refuses go to the dead-letter queue and are counted, without failing
    the step; the step fails when the CRM fails outright (see ``SyncSummary``).
    """
    summary, metrics = _sync(context, config, stream, warehouse, hubspot)
    metadata = _metadata(summary) | (stage_metadata(metrics) if metrics else {})
    if associations is not None:
        linked, _ = _sync(context, config, associations, warehouse, hubspot)
        metadata |= _metadata(linked, prefix="associations_")
    return dg.MaterializeResult(metadata=metadata)


def _sync(
    context: dg.AssetExecutionContext,
    config: CrmLoadConfig,
    stream: LoadStream,
    warehouse: WarehouseResource,
    hubspot: HubSpotResource,
) -> tuple[SyncSummary, StageMetrics | None]:
    with warehouse.connect() as con:
        payloads = payloads_for_days(con, stream, context.partition_keys)
    with hubspot.client() as client:
        client.max_attempts = config.max_attempts
        summary = sync_stream(
            client,
            warehouse.connect,
            stream,
            payloads,
            run_id=context.run.run_id,
            max_in_flight=config.max_in_flight,
        )
    for error in summary.errors[:20]:
        context.log.warning(error)
    if summary.dead_lettered:
        context.log.warning(
            f"{summary.dead_lettered} {stream.name} records went to the dead-letter queue "
            f"({summary.dead_lettered_permanent} refused by the CRM, "
            f"{summary.dead_lettered_transient} to retry): see `gtm dlq list`"
        )
    metrics = None
    # A stage's metrics count records; associations between them are not records.
    if stream.kind == "objects":
        with warehouse.connect() as con:
            metrics = record_load_metrics(
                con,
                run_id=context.run.run_id,
                asset=context.asset_key.to_user_string(),
                destination="hubspot",
                stream=stream.name,
                table=stream.table,
                key_column=stream.key_column,
                partition_keys=context.partition_keys,
                records_in=summary.payloads,
                records_out=summary.created + summary.updated + summary.unchanged,
                rejected=summary.dead_lettered_permanent,
                failed=summary.dead_lettered_transient,
                dead_lettered=summary.dead_lettered,
            )
    if summary.destination_failed:
        raise dg.Failure(
            description=f"HubSpot failed while loading {stream.name}: "
            f"{summary.aborted or 'every batch failed after every retry'}. "
            f"{summary.dead_lettered} records are in the dead-letter queue as transient; "
            "the next load retries them",
            metadata=_metadata(summary) | (stage_metadata(metrics) if metrics else {}),
        )
    return summary, metrics


def _metadata(summary: SyncSummary, prefix: str = "") -> dict[str, dg.MetadataValue]:
    counts = {
        "records": summary.payloads,
        "unchanged": summary.unchanged,
        "created": summary.created,
        "updated": summary.updated,
        "dead_lettered": summary.dead_lettered,
        "dead_lettered_permanent": summary.dead_lettered_permanent,
        "dead_lettered_transient": summary.dead_lettered_transient,
        "dead_letters_retried": summary.dead_letters_retried,
        "dead_letters_resolved": summary.dead_letters_resolved,
        "rep_edits_kept": summary.rep_edits_kept,
        "not_in_crm": summary.not_in_crm,
        "requests": summary.requests,
    }
    metadata = {f"{prefix}{k}": dg.MetadataValue.int(v) for k, v in counts.items()}
    metadata[f"{prefix}seconds"] = dg.MetadataValue.float(round(summary.seconds, 3))
    return metadata


_LOAD = {
    "group_name": "load",
    "partitions_def": landing_day,
    "backfill_policy": dg.BackfillPolicy.single_run(),
    "pool": HUBSPOT_POOL,
    "code_version": load_version(),
}


@dg.asset(deps=["companies"], description="Companies loaded into HubSpot by domain.", **_LOAD)
def hubspot_companies(
    context: dg.AssetExecutionContext,
    config: CrmLoadConfig,
    warehouse: WarehouseResource,
    hubspot: HubSpotResource,
) -> dg.MaterializeResult:
    return sync_days(context, config, hubspot_stream("companies"), warehouse, hubspot)


@dg.asset(
    deps=["leads", "hubspot_companies"],
    description="Contacts loaded into HubSpot by email, then associated with their company; "
    "reps' manual edits are kept.",
    **_LOAD,
)
def hubspot_contacts(
    context: dg.AssetExecutionContext,
    config: CrmLoadConfig,
    warehouse: WarehouseResource,
    hubspot: HubSpotResource,
) -> dg.MaterializeResult:
    return sync_days(
        context,
        config,
        hubspot_stream("contacts"),
        warehouse,
        hubspot,
        associations=hubspot_stream("contact_company"),
    )


@dg.asset(
    deps=["engagement_scores", "hubspot_contacts"],
    description="gtm_engagement_score of existing HubSpot contacts, as their signals arrive.",
    **_LOAD,
)
def hubspot_engagement(
    context: dg.AssetExecutionContext,
    config: CrmLoadConfig,
    warehouse: WarehouseResource,
    hubspot: HubSpotResource,
) -> dg.MaterializeResult:
    # Real-time and nightly scores share one ledger stream: whichever wrote last, an
    # unchanged score is not sent.
    stream = hubspot_stream("contact_engagement", "gtm.engagement_scores")
    return sync_days(context, config, stream, warehouse, hubspot)


@dg.asset(
    deps=["engagement_rescores"],
    group_name="nightly",
    partitions_def=nightly_day,
    pool=HUBSPOT_POOL,
    code_version=load_version(),
    description="The nightly re-scored gtm_engagement_score of existing HubSpot contacts; only "
    "scores that changed since the CRM last confirmed them are sent.",
)
def hubspot_engagement_rescore(
    context: dg.AssetExecutionContext,
    config: CrmLoadConfig,
    warehouse: WarehouseResource,
    hubspot: HubSpotResource,
) -> dg.MaterializeResult:
    stream = hubspot_stream("contact_engagement", "gtm.engagement_rescores")
    return sync_days(context, config, stream, warehouse, hubspot)
