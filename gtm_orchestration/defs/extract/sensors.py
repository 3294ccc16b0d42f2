"""The sensor that turns dropped files into pipeline runs."""

import hashlib
import json
from collections import defaultdict

import dagster as dg

from gtm_orchestration.defs.jobs import lead_pipeline_job
from gtm_orchestration.defs.resources import LandingZoneResource
from gtm_orchestration.lib.landing import DroppedFile, scan_dropped_files


def _new_files(files: list[DroppedFile], cursor: str | None) -> list[DroppedFile]:
    """Files newer than the cursor: later mtime, or the same mtime and not yet seen."""
    if not cursor:
        return files
    state = json.loads(cursor)
    newest, seen = state["mtime_ns"], set(state["paths"])
    return [
        f
        for f in files
        if f.mtime_ns > newest or (f.mtime_ns == newest and str(f.path) not in seen)
    ]


def _advance(files: list[DroppedFile], cursor: str | None) -> str:
    state = json.loads(cursor) if cursor else {"mtime_ns": 0, "paths": []}
    newest = max([state["mtime_ns"], *(f.mtime_ns for f in files)])
    paths = {p for p in state["paths"]} if newest == state["mtime_ns"] else set()
    paths |= {str(f.path) for f in files if f.mtime_ns == newest}
    return json.dumps({"mtime_ns": newest, "paths": sorted(paths)})


def file_drop_run_requests(
    files: list[DroppedFile], cursor: str | None
) -> tuple[list[dg.RunRequest], str | None]:
    """One run request per landing day with new files, and the advanced cursor."""
    new = _new_files(files, cursor)
    if not new:
        return [], cursor
    by_day: dict[str, list[DroppedFile]] = defaultdict(list)
    for f in new:
        by_day[f.partition_date.isoformat()].append(f)
    requests = []
    for day, day_files in sorted(by_day.items()):
        identity = "\n".join(f"{f.path}:{f.mtime_ns}:{f.size_bytes}" for f in day_files)
        names = ", ".join(f"{f.source}/{f.path.name}" for f in day_files)
        requests.append(
            dg.RunRequest(
                run_key=f"files:{hashlib.sha256(identity.encode()).hexdigest()[:20]}",
                partition_key=day,
                tags={"gtm/trigger": "file_drop", "gtm/files": names[:1000]},
            )
        )
    return requests, _advance(new, cursor)


@dg.sensor(
    job=lead_pipeline_job,
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Launches a pipeline run for each landing day with newly dropped files.",
)
def lead_file_sensor(
    context: dg.SensorEvaluationContext, landing: LandingZoneResource
) -> dg.SensorResult | dg.SkipReason:
    files = scan_dropped_files(landing.files_dir)
    requests, cursor = file_drop_run_requests(files, context.cursor)
    if not requests:
        return dg.SkipReason(f"no new files in {landing.files_dir} ({len(files)} seen before)")
    return dg.SensorResult(run_requests=requests, cursor=cursor)
