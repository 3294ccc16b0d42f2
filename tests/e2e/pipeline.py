"""Driving the pipeline the way a deployment does, for the end-to-end tests."""

from __future__ import annotations

import dagster as dg

from gtm_orchestration.definitions import defs
from gtm_orchestration.defs.resources import RESOURCES


def sensor_runs(instance: dg.DagsterInstance, cursor: str | None = None) -> tuple[list, str | None]:
    """Evaluate the file sensor once; returns its run requests and new cursor."""
    sensor = defs.resolve_sensor_def("lead_file_sensor")
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=RESOURCES)
    result = sensor(context)
    if isinstance(result, dg.SkipReason):
        return [], cursor
    return list(result.run_requests or []), result.cursor


def webhook_runs(instance: dg.DagsterInstance, cursor: str | None = None) -> str | None:
    """Evaluate the webhook sensor and launch what it asks for; returns the new cursor."""
    sensor = defs.resolve_sensor_def("webhook_batch_sensor")
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources=RESOURCES, definitions=defs
    )
    result = sensor(context)
    if isinstance(result, dg.SkipReason):
        return cursor
    for request in result.run_requests:
        assert launch(instance, request).success
    return result.cursor


def launch(instance: dg.DagsterInstance, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    """Execute a run request of the sensor on the instance, as the daemon would launch it."""
    job = defs.resolve_job_def("lead_pipeline")
    selection = request.asset_selection
    if request.asset_check_keys is not None:
        # The request leaves out checks: run the subset the daemon would.
        assets = selection or job.asset_layer.selected_asset_keys
        job = job.get_subset(
            asset_selection=set(assets), asset_check_selection=set(request.asset_check_keys)
        )
        selection = None
    return job.execute_in_process(
        instance=instance,
        partition_key=request.partition_key,
        tags=dict(request.tags) | {"dagster/run_key": request.run_key or ""},
        asset_selection=selection,
        raise_on_error=False,
    )


def run_day(instance: dg.DagsterInstance, day: str) -> dg.ExecuteInProcessResult:
    """Materialize every pipeline asset of one landing day."""
    return defs.resolve_job_def("lead_pipeline").execute_in_process(
        instance=instance, partition_key=day, raise_on_error=False
    )
