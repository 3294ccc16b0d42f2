"""Sensors that raise alerts: the conditions monitored every minute, failed runs, and runs
stopped by run monitoring for running past their maximum runtime.

Runs that hang are failed by Dagster's run monitoring (``dagster.yaml``: ``run_monitoring``,
``max_runtime_seconds``; a run may set its own with the ``dagster/max_runtime`` tag) instead
of holding the queue and the pools; the two run sensors below then alert on them.
"""

from datetime import UTC, datetime

import dagster as dg

from gtm_orchestration.defs.monitoring.resources import AlertingResource
from gtm_orchestration.defs.monitoring.runs import describe_ended_run, last_success_times
from gtm_orchestration.defs.monitoring.state import alert_state
from gtm_orchestration.defs.resources import WarehouseResource
from gtm_orchestration.lib.alerts import (
    AlertState,
    DispatchReport,
    Notification,
    RunFailure,
    clock,
    destination_conditions,
    dispatch,
    pipeline_conditions,
    plan_incidents,
    plan_run_failure,
    read_pipeline_metrics,
)
from gtm_orchestration.lib.warehouse import Warehouse


class AlertDeliveryError(RuntimeError):
    """An alert could not be delivered; it is tried again at the next evaluation."""


def _send(
    alerting: AlertingResource, notifications: list[Notification], state: AlertState, now: float
) -> DispatchReport:
    if not notifications:
        return DispatchReport()
    delivery = alerting.thresholds().delivery
    with alerting.channels() as channels:
        return dispatch(notifications, state, now, delivery, channels.send)


def _raise_for_problems(report: DispatchReport) -> None:
    # A failed tick shows in the UI; alert_monitor sends the message again within a minute.
    if report.problems:
        raise AlertDeliveryError("; ".join(report.problems))


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every minute: checks throughput, error rates, latency and the load "
    "destinations against config/alerts.yaml; opens, repeats and resolves incidents on "
    "Slack and PagerDuty.",
)
def alert_monitor(
    context: dg.SensorEvaluationContext, alerting: AlertingResource, warehouse: WarehouseResource
) -> dg.SkipReason:
    thresholds = alerting.thresholds()
    moment = datetime.now(UTC)
    now = clock(moment)
    metrics = read_pipeline_metrics(Warehouse(warehouse.resolved_url), moment, thresholds)
    with alert_state(context.instance) as state:
        # A load asset that succeeded since it failed is no longer failing.
        state.clear_load_failures(last_success_times(context.instance, state.load_failures))
        if metrics is None:
            conditions = destination_conditions(thresholds, state, None)
        else:
            conditions = pipeline_conditions(metrics, thresholds, state)
        notifications = [
            *state.take_pending(),
            *plan_incidents(conditions, state, now, thresholds.delivery),
        ]
        report = _send(alerting, notifications, state, now)
        holding = sorted(c.key for c in conditions if c.active)
    _raise_for_problems(report)
    summary = f"{report.describe()}; {len(conditions)} conditions checked"
    summary += f", holding: {', '.join(holding)}" if holding else ", none holds"
    if metrics is None:
        summary += " (a run holds the warehouse: its numbers are read next time)"
    return dg.SkipReason(summary)


def _alert_failure(
    context: dg.RunStatusSensorContext, alerting: AlertingResource, failure: RunFailure
) -> None:
    # Returns nothing: a run status sensor then goes on to the next run in the same tick.
    now = clock()
    with alert_state(context.instance) as state:
        notifications = plan_run_failure(failure, state, alerting.thresholds(), now)
        report = _send(alerting, notifications, state, now)
    _raise_for_problems(report)
    outcome = report.describe() if notifications else "no new alert (already alerted)"
    context.log.info(f"run {failure.run_id} of {failure.job_name}: {outcome}")


@dg.run_failure_sensor(
    name="run_failure_alerts",
    monitor_all_code_locations=True,
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts on every failed run: a failed load step means its destination is "
    "failing (critical: Slack and PagerDuty); any other failure is a warning on Slack. "
    "Messages name the job and failed steps and link to the run.",
)
def run_failure_alerts(context: dg.RunFailureSensorContext, alerting: AlertingResource) -> None:
    failure = describe_ended_run(context.instance, context.dagster_run, context.failure_event)
    _alert_failure(context, alerting, failure)


@dg.run_status_sensor(
    name="run_timeout_alerts",
    run_status=dg.DagsterRunStatus.CANCELED,
    monitor_all_code_locations=True,
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts on runs that run monitoring stopped for running past their maximum "
    "runtime (dagster.yaml's max_runtime_seconds or the run's dagster/max_runtime tag); runs "
    "canceled by hand are not alerted.",
)
def run_timeout_alerts(context: dg.RunStatusSensorContext, alerting: AlertingResource) -> None:
    failure = describe_ended_run(context.instance, context.dagster_run)
    if not failure.timed_out:
        context.log.info(f"run {failure.run_id} was canceled by hand: no alert")
        return
    _alert_failure(context, alerting, failure)
