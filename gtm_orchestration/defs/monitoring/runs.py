"""What alerting reads from the Dagster instance: how a run ended, when load assets last
succeeded, and how many runs finished in a period. Error texts and tags are never read."""

import re
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime

import dagster as dg
from dagster._core.events import RunFailureReason
from dagster._core.execution.stats import StepEventStatus

from gtm_orchestration.lib.alerts import RunFailure
from gtm_orchestration.lib.digests import RunCounts

# Dagster's run monitoring says so when it stops a run for running long ("Canceling due to
# exceeding maximum runtime of 60 seconds." / "Exceeded maximum runtime of 60 seconds.").
_MAX_RUNTIME = re.compile(r"maximum runtime of (\d+(?:\.\d+)?) seconds", re.IGNORECASE)
_ENDED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


def max_runtime_exceeded(instance: dg.DagsterInstance, run_id: str) -> float | None:
    """The maximum runtime (seconds) run monitoring stopped the run for; None if it did not."""
    entries = instance.all_logs(
        run_id, of_type={dg.DagsterEventType.RUN_CANCELING, dg.DagsterEventType.RUN_FAILURE}
    )
    for entry in entries:
        message = entry.dagster_event.message if entry.dagster_event else None
        found = _MAX_RUNTIME.search(message or entry.user_message or "")
        if found:
            return float(found.group(1))
    return None


def describe_ended_run(
    instance: dg.DagsterInstance, run: dg.DagsterRun, failure_event: dg.DagsterEvent | None = None
) -> RunFailure:
    """The failed or canceled ``run`` as alerts describe it: job, failed steps (and, when run
    monitoring stopped it, the steps it stopped), why it ended."""
    stats = instance.get_run_step_stats(run.run_id)
    failed = [s.step_key for s in stats if s.status == StepEventStatus.FAILURE]
    max_runtime = max_runtime_exceeded(instance, run.run_id)
    if max_runtime is not None:
        stopped = {None, StepEventStatus.IN_PROGRESS}
        failed += [s.step_key for s in stats if s.status in stopped and s.step_key not in failed]
    start_timeout = False
    if failure_event is not None and failure_event.is_job_failure:
        # Failures reported by run monitoring may come without failure data.
        data = failure_event.job_failure_data
        start_timeout = data is not None and data.failure_reason == RunFailureReason.START_TIMEOUT
    record = instance.get_run_record_by_id(run.run_id)
    ended_at = (record.end_time if record else None) or datetime.now(UTC).timestamp()
    return RunFailure(
        run_id=run.run_id,
        job_name=run.job_name,
        failed_steps=tuple(failed),
        ended_at=ended_at,
        max_runtime_s=max_runtime,
        start_timeout=start_timeout,
    )


def last_success_times(instance: dg.DagsterInstance, assets: Iterable[str]) -> dict[str, float]:
    """When each asset was last materialized (epoch seconds); assets never materialized are
    left out."""
    times = {}
    for asset in assets:
        event = instance.get_latest_materialization_event(dg.AssetKey(asset))
        if event is not None:
            times[asset] = event.timestamp
    return times


def run_counts(instance: dg.DagsterInstance, start: datetime, end: datetime) -> RunCounts:
    """Runs that ended in [start, end), by outcome, and the failed ones by job."""
    records = instance.get_run_records(
        filters=dg.RunsFilter(statuses=_ENDED, updated_after=start, updated_before=end)
    )
    ended = [
        r
        for r in records
        if r.end_time is not None and start.timestamp() <= r.end_time < end.timestamp()
    ]
    by_status = Counter(r.dagster_run.status for r in ended)
    failed_by_job = Counter(
        r.dagster_run.job_name for r in ended if r.dagster_run.status == dg.DagsterRunStatus.FAILURE
    )
    return RunCounts(
        succeeded=by_status[dg.DagsterRunStatus.SUCCESS],
        failed=by_status[dg.DagsterRunStatus.FAILURE],
        canceled=by_status[dg.DagsterRunStatus.CANCELED],
        failed_by_job=dict(failed_by_job),
    )
