"""Jobs: the per-day lead pipeline and the warehouse models."""

import dagster as dg

lead_pipeline_job = dg.define_asset_job(
    name="lead_pipeline",
    selection=dg.AssetSelection.groups("extract", "transform", "load"),
    description="Extract, transform and load one landing day's files.",
    # The steps run one after another (they share the warehouse pool); one process per run
    # saves re-importing the code location for every step.
    executor_def=dg.in_process_executor,
)

warehouse_job = dg.define_asset_job(
    name="build_warehouse",
    selection=dg.AssetSelection.groups("warehouse"),
    description="Build the dbt models and run their tests over the warehouse.",
)
