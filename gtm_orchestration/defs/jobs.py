"""Jobs: the per-day lead pipeline and the warehouse models."""

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
