"""The nightly re-score: engagement scores decay as signals age, so every contact with
signals is scored again each night, as of the end of the night's day."""

import dagster as dg

from gtm_orchestration.defs.partitions import nightly_day
from gtm_orchestration.defs.resources import WarehouseResource
from gtm_orchestration.defs.versions import engagement_version
from gtm_orchestration.lib.engagement_scores import score_all
from gtm_orchestration.lib.partitioned_tables import replace_partition


@dg.asset(
    deps=[dg.AssetDep("raw_engagement_events", partition_mapping=dg.AllPartitionMapping())],
    group_name="nightly",
    partitions_def=nightly_day,
    pool="warehouse",
    code_version=engagement_version(),
    description="Every contact's engagement score decayed to the end of the day, with its "
    "reasons; one partition per night.",
)
def engagement_rescores(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Score every contact with signals as of the end of the partition's day, so the same
    night re-run gives the same scores."""
    day = context.partition_key
    as_of = context.partition_time_window.end
    with warehouse.connect() as con:
        scores = score_all(con, as_of)
        replace_partition(con, "gtm.engagement_rescores", scores, day)
    return dg.MaterializeResult(
        metadata={
            "contacts_scored": dg.MetadataValue.int(scores.num_rows),
            "as_of": dg.MetadataValue.text(as_of.isoformat()),
        }
    )
