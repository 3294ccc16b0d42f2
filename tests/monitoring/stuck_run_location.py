"""A code location for the stuck-run test: a job that never finishes, launched once by a
sensor, beside the project's alert sensors and resources."""

import time

import dagster as dg

from gtm_orchestration.defs.monitoring import MONITORING_DEFS
from gtm_orchestration.defs.resources import RESOURCES


@dg.op
def wait_for_an_answer_that_never_comes() -> None:
    while True:
        time.sleep(0.1)


# In one process, as the project's jobs run.
@dg.job(tags={"dagster/max_runtime": "2"}, executor_def=dg.in_process_executor)
def stuck_job() -> None:
    wait_for_an_answer_that_never_comes()


@dg.sensor(job=stuck_job, minimum_interval_seconds=1, default_status=dg.DefaultSensorStatus.RUNNING)
def launch_the_stuck_run_once() -> dg.RunRequest:
    return dg.RunRequest(run_key="the-only-run")


defs = dg.Definitions(
    jobs=[stuck_job],
    sensors=[launch_the_stuck_run_once, *MONITORING_DEFS["sensors"]],
    resources={**RESOURCES, **MONITORING_DEFS["resources"]},
)
