"""A trivial code location behind the project's webhook sensor settings: the latency floor.

Its sensor watches the receiver's landing folder of one form source,
``landing/webhooks/forms/bench_floor/``, with the ``minimum_interval_seconds`` and
``default_status`` of the project's webhook sensor and launches a job on the same kind of
executor; its asset only appends the ids of the events landed there that it has not recorded
yet, with the time it ran, to ``$GTM_DATA_DIR/bench_floor/recorded.jsonl``. What a webhook
takes to reach that file is what the sensor, the run queue and a run's start cost on this
instance, before any pipeline work.

The settings are read from the project's definitions, or from ``GTM_BENCH_FLOOR_SENSOR``
(JSON of ``ReferenceSensor``) when the benchmark has read them already, so this location does
not import the project: a run's start then costs what a trivial location's does.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import dagster as dg

from gtm_orchestration.settings import Settings

FLOOR_SOURCE = "bench_floor"
WEBHOOK_SENSOR = "webhook_batch_sensor"
# Until the webhook sensor exists, the file sensor is the project's only reference.
FALLBACK_SENSOR = "lead_file_sensor"
SETTINGS_ENV = "GTM_BENCH_FLOOR_SENSOR"
RECORDS_SUBPATH = Path("bench_floor") / "recorded.jsonl"
EXECUTORS = {
    executor.name: executor
    for executor in (
        dg.in_process_executor,
        # As the project's: step processes forked from a server that imported the location.
        dg.multiprocess_executor.configured({"start_method": {"forkserver": {}}}),
        dg.multi_or_in_process_executor,
    )
}


@dataclass(frozen=True)
class ReferenceSensor:
    """The project sensor the floor copies: its name, cadence, default status and executor."""

    name: str
    minimum_interval_seconds: int | None  # None: the daemon's default
    default_status: str
    executor: str

    @classmethod
    def from_project(cls) -> ReferenceSensor:
        """The project's webhook sensor, else its file sensor, as its definitions declare it."""
        from gtm_orchestration.definitions import defs

        names = {sensor.name for sensor in defs.sensors or []}
        sensor = defs.resolve_sensor_def(
            WEBHOOK_SENSOR if WEBHOOK_SENSOR in names else FALLBACK_SENSOR
        )
        job = (
            defs.resolve_job_def(sensor.job_name)
            if sensor.has_jobs
            else defs.resolve_implicit_global_asset_job_def()
        )
        return cls(
            name=sensor.name,
            minimum_interval_seconds=sensor.minimum_interval_seconds,
            default_status=sensor.default_status.value,
            executor=job.executor_def.name,
        )

    @classmethod
    def from_env_or_project(cls) -> ReferenceSensor:
        """From ``GTM_BENCH_FLOOR_SENSOR`` when set, else ``from_project()``."""
        if serialized := os.environ.get(SETTINGS_ENV):
            return cls(**json.loads(serialized))
        return cls.from_project()

    def to_env(self) -> dict[str, str]:
        """The environment that hands these settings to the floor's code location."""
        return {SETTINGS_ENV: json.dumps(asdict(self))}


def floor_batches(data_dir: Path) -> list[Path]:
    """The receiver's batch files of the floor's form source, in the order they landed."""
    folder = data_dir / "landing" / "webhooks" / "forms" / FLOOR_SOURCE
    return sorted(folder.glob("*/*.jsonl"), key=lambda path: path.name)


def read_floor_records(data_dir: Path) -> dict[str, float]:
    """The event ids the floor asset saw, with when it ran (epoch seconds)."""
    records: dict[str, float] = {}
    path = data_dir / RECORDS_SUBPATH
    if not path.exists():
        return records
    for line in path.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            # Overlapping runs may both record an event: the first to see it counts.
            event_id, at = record["event_id"], record["recorded_at"]
            records[event_id] = min(at, records.get(event_id, at))
    return records


@dg.asset(description="Records the ids of newly landed bench_floor form events and when it ran.")
def bench_floor_events() -> dg.MaterializeResult:
    # Like the pipeline's runs, it takes whatever has landed by the time it runs, not only
    # the batches its sensor saw.
    recorded_at = time.time()
    data_dir = Settings.from_env().data_dir
    recorded = read_floor_records(data_dir)
    new_ids = [
        event_id
        for batch in floor_batches(data_dir)
        for line in batch.read_text().splitlines()
        if line.strip() and (event_id := json.loads(line)["event_id"]) not in recorded
    ]
    path = data_dir / RECORDS_SUBPATH
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = "".join(
        json.dumps({"event_id": event_id, "recorded_at": recorded_at}) + "\n"
        for event_id in new_ids
    )
    # One O_APPEND write per run, so runs that overlap never interleave their lines.
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, lines.encode())
    finally:
        os.close(descriptor)
    return dg.MaterializeResult(metadata={"events": dg.MetadataValue.int(len(new_ids))})


REFERENCE = ReferenceSensor.from_env_or_project()

bench_floor_job = dg.define_asset_job(
    name="bench_floor",
    selection=[bench_floor_events],
    executor_def=EXECUTORS[REFERENCE.executor],
)


@dg.sensor(
    job=bench_floor_job,
    minimum_interval_seconds=REFERENCE.minimum_interval_seconds,
    default_status=dg.DefaultSensorStatus(REFERENCE.default_status),
    description=f"Launches bench_floor for new {FLOOR_SOURCE} form batches, paced like "
    f"{REFERENCE.name}.",
)
def bench_floor_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    # Batch names sort by landing time, so the newest name seen is the cursor.
    batches = [
        path
        for path in floor_batches(Settings.from_env().data_dir)
        if path.name > (context.cursor or "")
    ]
    if not batches:
        return dg.SkipReason(f"no new {FLOOR_SOURCE} form batches")
    newest = batches[-1].name
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=newest)], cursor=newest)


defs = dg.Definitions(
    assets=[bench_floor_events], jobs=[bench_floor_job], sensors=[bench_floor_sensor]
)
