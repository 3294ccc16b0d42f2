"""Running the pipeline synchronously on the configured instance (``gtm process``).

It does what the sensors and the automation do in a running deployment, once, in this
process: one run per landing day with new files or webhook batches, CRM change capture
when HubSpot webhooks arrived, then the warehouse models.
"""

from __future__ import annotations

import importlib
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from gtm_orchestration.defs.extract.crm_changes import new_hubspot_batches_request
from gtm_orchestration.defs.extract.sensors import cursor_day, landed_run_requests
from gtm_orchestration.lib.landing import (
    OBJECT_STORE_LATE_BATCHES,
    OBJECT_STORE_LATE_DROPS,
    late_listing_ns,
    scan_dropped_files,
    scan_lead_webhook_batches,
)
from gtm_orchestration.settings import Settings

_FILE_CURSOR = "gtm/process/file_cursor"
_WEBHOOK_CURSOR = "gtm/process/webhook_cursor"
_HUBSPOT_CURSOR = "gtm/process/hubspot_webhook_cursor"
# The code locations' modules (workspace.yaml).
PIPELINE_LOCATION = "gtm_orchestration.definitions"
WAREHOUSE_LOCATION = "gtm_orchestration.warehouse_definitions"


@dataclass
class RunOutcome:
    job: str
    run_id: str
    partition: str | None
    success: bool
    failures: list[str] = field(default_factory=list)


@dataclass
class ProcessReport:
    runs: list[RunOutcome] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return all(r.success for r in self.runs)

    @property
    def run_ids(self) -> list[str]:
        return [r.run_id for r in self.runs]


def pass_tags() -> dict[str, str]:
    """The tags of the runs a pipeline pass (``gtm process``, the demo's pass) executes.

    ``gtm/pass_lock`` names the host and instance folder whose pass lock the pass holds: an
    instance stored in PostgreSQL may be shared by passes on several hosts, and a pass may
    only close the unfinished runs of its own lock's earlier holders.
    """
    home = Path(os.environ.get("DAGSTER_HOME") or ".dagster").resolve()
    return {"gtm/launched_by": "gtm process", "gtm/pass_lock": f"{socket.gethostname()}:{home}"}


def _failures(result: dg.ExecuteInProcessResult | dg.JobExecutionResult) -> list[str]:
    problems = []
    for event in result.all_events:
        if event.is_step_failure:
            problems.append(
                f"step {event.step_key} failed: {event.step_failure_data.error.message.strip()}"
            )  # type: ignore[union-attr]
        elif event.event_type_value == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            # A warning reports (on the asset's Checks tab); it fails nothing.
            if not evaluation.passed and evaluation.severity != dg.AssetCheckSeverity.WARN:
                key = evaluation.asset_check_key
                problems.append(
                    f"check {key.asset_key.to_user_string()}:{key.name} failed: "
                    f"{evaluation.description or ''}"
                )
        elif event.event_type_value == "STEP_SKIPPED":
            problems.append(f"step {event.step_key} skipped (an upstream check or step failed)")
    return problems


def _outcome(
    job_name: str, partition: str | None, result: dg.ExecuteInProcessResult | dg.JobExecutionResult
) -> RunOutcome:
    failures = _failures(result)
    return RunOutcome(job_name, result.run_id, partition, result.success and not failures, failures)


def location_job(location: str, job_name: str) -> dg.JobDefinition:
    """Job ``job_name`` of the code location whose module is ``location``."""
    return importlib.import_module(location).defs.resolve_job_def(job_name)


def _execute(
    location: str,
    job_name: str,
    instance: dg.DagsterInstance,
    partition: str | None,
    tags: dict[str, str],
) -> RunOutcome:
    job = location_job(location, job_name)
    # The full event log is in the instance (and the UI); the terminal gets warnings.
    run_config = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    if job.executor_def.name == dg.in_process_executor.name:
        result = job.execute_in_process(
            instance=instance,
            partition_key=partition,
            tags=tags,
            raise_on_error=False,
            run_config=run_config,
        )
        return _outcome(job_name, partition, result)
    # The steps execute in other processes (GTM_EXECUTOR), which rebuild the job from here.
    reconstructable = dg.build_reconstructable_job(
        __name__, location_job.__name__, reconstructable_args=(location, job_name)
    )
    if partition:
        tags = tags | {"dagster/partition": partition}
    with dg.execute_job(reconstructable, instance, run_config=run_config, tags=tags) as result:
        return _outcome(job_name, partition, result)


def process_landing_zone(
    instance: dg.DagsterInstance,
    settings: Settings | None = None,
    *,
    warehouse: bool = True,
    poll_crm: bool = False,
) -> ProcessReport:
    """Run the pipeline for every landing day with new files or batches, then dbt.

    The cursors live in the instance, so a second call with nothing new runs nothing.
    ``poll_crm`` also runs CRM change capture when no HubSpot webhook arrived, as its
    schedule would. Returns every run's outcome.
    """
    settings = settings or Settings.from_env()
    cursors = instance.run_storage.get_cursor_values(
        {_FILE_CURSOR, _WEBHOOK_CURSOR, _HUBSPOT_CURSOR}
    )
    landing_dir = settings.landing_dir
    files = scan_dropped_files(landing_dir / "files")
    file_requests, file_cursor = landed_run_requests(
        files,
        cursors.get(_FILE_CURSOR),
        "file_drop",
        late_ns=late_listing_ns(landing_dir, OBJECT_STORE_LATE_DROPS),
    )
    batches = scan_lead_webhook_batches(
        landing_dir, since_day=cursor_day(cursors.get(_WEBHOOK_CURSOR))
    )
    batch_requests, webhook_cursor = landed_run_requests(
        batches,
        cursors.get(_WEBHOOK_CURSOR),
        "webhook",
        late_ns=late_listing_ns(landing_dir, OBJECT_STORE_LATE_BATCHES),
    )
    # One run per landing day takes in everything new of that day.
    days = sorted({r.partition_key for r in file_requests + batch_requests if r.partition_key})
    report = ProcessReport()
    for day in days:
        report.runs.append(_execute(PIPELINE_LOCATION, "lead_pipeline", instance, day, pass_tags()))
    if days and report.success:
        new_cursors = {_FILE_CURSOR: file_cursor, _WEBHOOK_CURSOR: webhook_cursor}
        instance.run_storage.set_cursor_values({k: v for k, v in new_cursors.items() if v})
    request, hubspot_cursor = new_hubspot_batches_request(landing_dir, cursors.get(_HUBSPOT_CURSOR))
    if request is not None or poll_crm:
        outcome = _execute(PIPELINE_LOCATION, "crm_change_capture", instance, None, pass_tags())
        report.runs.append(outcome)
        if outcome.success and hubspot_cursor:
            instance.run_storage.set_cursor_values({_HUBSPOT_CURSOR: hubspot_cursor})
    if warehouse and report.runs:
        report.runs.append(
            _execute(WAREHOUSE_LOCATION, "build_warehouse", instance, None, pass_tags())
        )
    return report
