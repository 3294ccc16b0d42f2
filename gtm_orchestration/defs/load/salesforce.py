"""Loading the day's companies and contacts into Salesforce (Bulk API 2.0 upserts by
external id), when ``GTM_CRM_DESTINATION`` is ``salesforce``.

Accounts load before contacts, which name their account by its external id. Records
Salesforce refuses, or never processes, go to the dead-letter queue (destination
``salesforce``) and are counted in the metadata without failing the step; a load whose
every record failed fails it. The Salesforce org has a pool of its own, so concurrent runs
load it one step at a time.
"""

import dagster as dg

from gtm_orchestration.defs.observability import stage_metadata
from gtm_orchestration.defs.partitions import landing_day
from gtm_orchestration.defs.resources import SalesforceResource, WarehouseResource
from gtm_orchestration.defs.versions import load_version
from gtm_orchestration.lib import dlq
from gtm_orchestration.lib.crm_schema import ObjectType
from gtm_orchestration.lib.crm_sync import rows_for_days
from gtm_orchestration.lib.metrics import record_load_metrics
from gtm_orchestration.lib.salesforce_sync import (
    DESTINATION,
    SalesforceSyncSummary,
    deliver_to_salesforce,
)

SALESFORCE_POOL = "salesforce"


def load_days(
    context: dg.AssetExecutionContext,
    object_type: ObjectType,
    table: str,
    key_column: str,
    warehouse: WarehouseResource,
    salesforce: SalesforceResource,
) -> dg.MaterializeResult:
    """Upsert the run's days of ``table`` into Salesforce and queue what was not written."""
    with warehouse.connect() as con:
        rows = rows_for_days(con, table, key_column, context.partition_keys)
        # Records Salesforce never processed on an earlier load are sent again with these.
        retry = [
            letter.id
            for letter in dlq.dead_letters(
                con, destination=DESTINATION, stream=object_type, category="transient"
            )
        ]
    with salesforce.client() as client:
        summary = deliver_to_salesforce(
            client, warehouse.connect, object_type, rows, retry=retry, run_id=context.run.run_id
        )
    with warehouse.connect() as con:
        metrics = record_load_metrics(
            con,
            run_id=context.run.run_id,
            asset=context.asset_key.to_user_string(),
            destination=DESTINATION,
            stream=summary.object_type,
            table=table,
            key_column=key_column,
            partition_keys=context.partition_keys,
            records_in=summary.payloads,
            records_out=summary.created + summary.updated + summary.unchanged,
            rejected=summary.failed,
            failed=summary.not_delivered,
            dead_lettered=len(summary.failures),
        )
    for error in summary.errors[:20]:
        context.log.warning(error)
    metadata = _metadata(summary) | stage_metadata(metrics)
    undelivered = summary.failed + summary.not_delivered
    if undelivered and undelivered == summary.payloads - summary.unchanged:
        raise dg.Failure(
            description=f"Salesforce wrote none of the {undelivered} {object_type} records "
            "sent; they are in the dead-letter queue (`gtm dlq list`)",
            metadata=metadata,
        )
    return dg.MaterializeResult(metadata=metadata)


def _metadata(summary: SalesforceSyncSummary) -> dict[str, dg.MetadataValue]:
    counts = {
        "records": summary.payloads,
        "unchanged": summary.unchanged,
        "created": summary.created,
        "updated": summary.updated,
        "dead_lettered": summary.failed + summary.not_delivered,
        "dead_lettered_permanent": summary.failed,
        "dead_lettered_transient": summary.not_delivered,
        "requests": summary.requests,
        "bulk_jobs": len(summary.jobs),
    }
    return {key: dg.MetadataValue.int(value) for key, value in counts.items()}


_LOAD = {
    "group_name": "load",
    "partitions_def": landing_day,
    "backfill_policy": dg.BackfillPolicy.single_run(),
    "pool": SALESFORCE_POOL,
    "code_version": load_version(),
    "kinds": {"salesforce"},
}


@dg.asset(
    deps=["companies"],
    description="Companies upserted into Salesforce as Accounts by domain (GTM_Domain__c), "
    "through Bulk API 2.0.",
    **_LOAD,
)
def salesforce_accounts(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    salesforce: SalesforceResource,
) -> dg.MaterializeResult:
    return load_days(context, "companies", "gtm.companies", "domain", warehouse, salesforce)


@dg.asset(
    deps=["leads", "salesforce_accounts"],
    description="Contacts upserted into Salesforce by email (GTM_Email__c), linked to their "
    "Account, through Bulk API 2.0.",
    **_LOAD,
)
def salesforce_contacts(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    salesforce: SalesforceResource,
) -> dg.MaterializeResult:
    return load_days(context, "contacts", "gtm.leads", "email", warehouse, salesforce)


SALESFORCE_LOADS = [salesforce_accounts, salesforce_contacts]
