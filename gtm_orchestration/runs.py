"""Running the pipeline synchronously on the configured instance (``gtm process``).

It does what the file sensor and the automation do in a running deployment, once, in this
process: one run per landing day with new files, then the warehouse models.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from gtm_orchestration.defs.extract.sensors import file_drop_run_requests
from gtm_orchestration.lib.landing import scan_dropped_files
from gtm_orchestration.settings import Settings

_CURSOR_KEY = "gtm/process/file_cursor"
INSTANCE_TEMPLATE = Path(__file__).resolve().parent.parent / "dagster.yaml"


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


def dagster_home() -> Path:
    """DAGSTER_HOME (default ./.dagster), created with the project's dagster.yaml."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path(".dagster").resolve())))
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists() and INSTANCE_TEMPLATE.exists():
        config.write_text(INSTANCE_TEMPLATE.read_text())
    return home


def _failures(result: dg.ExecuteInProcessResult) -> list[str]:
    problems = []
    for event in result.all_events:
        if event.is_step_failure:
            problems.append(
                f"step {event.step_key} failed: {event.step_failure_data.error.message.strip()}"
            )  # type: ignore[union-attr]
        elif event.event_type_value == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            if not evaluation.passed:
                key = evaluation.asset_check_key
                problems.append(
                    f"check {key.asset_key.to_user_string()}:{key.name} failed: "
                    f"{evaluation.description or ''}"
                )
        elif event.event_type_value == "STEP_SKIPPED":
            problems.append(f"step {event.step_key} skipped (an upstream check or step failed)")
    return problems


def _execute(
    defs: dg.Definitions,
    job_name: str,
    instance: dg.DagsterInstance,
    partition: str | None,
    tags: dict[str, str],
) -> RunOutcome:
    job = defs.resolve_job_def(job_name)
    result = job.execute_in_process(
        instance=instance,
        partition_key=partition,
        tags=tags,
        raise_on_error=False,
        # The full event log is in the instance (and the UI); the terminal gets warnings.
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )
    failures = _failures(result)
    return RunOutcome(job_name, result.run_id, partition, result.success and not failures, failures)


def process_landing_zone(
    instance: dg.DagsterInstance, settings: Settings | None = None, *, warehouse: bool = True
) -> ProcessReport:
    """Run the pipeline for every landing day with files not yet processed, then dbt.

    The file cursor lives in the instance, so a second call with no new files runs
    nothing. Returns every run's outcome.
    """
    from gtm_orchestration.definitions import defs

    settings = settings or Settings.from_env()
    cursor = instance.run_storage.get_cursor_values({_CURSOR_KEY}).get(_CURSOR_KEY)
    files = scan_dropped_files(settings.files_landing_dir)
    requests, new_cursor = file_drop_run_requests(files, cursor)
    report = ProcessReport()
    for request in requests:
        tags = dict(request.tags) | {"gtm/launched_by": "gtm process"}
        report.runs.append(_execute(defs, "lead_pipeline", instance, request.partition_key, tags))
    if requests and new_cursor is not None and report.success:
        instance.run_storage.set_cursor_values({_CURSOR_KEY: new_cursor})
    if warehouse and requests:
        report.runs.append(
            _execute(defs, "build_warehouse", instance, None, {"gtm/launched_by": "gtm process"})
        )
    return report
