"""Sensors that turn landed files and webhook batches into pipeline runs."""

import hashlib
import json
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import dagster as dg

from gtm_orchestration.defs.jobs import lead_pipeline_job
from gtm_orchestration.defs.load.destinations import crm_destination, crm_load_assets
from gtm_orchestration.defs.resources import LandingZoneResource
from gtm_orchestration.lib.landing import (
    OBJECT_STORE_LATE_BATCHES,
    OBJECT_STORE_LATE_DROPS,
    LandedItem,
    late_listing_ns,
    scan_dropped_files,
    scan_lead_webhook_batches,
)


def _seen(cursor: str | None) -> tuple[int, dict[str, int]]:
    """The cursor's newest mtime and the items it has seen (path -> mtime) that may still
    matter: those of the newest mtime and, on an object store, the recent ones."""
    if not cursor:
        return 0, {}
    state = json.loads(cursor)
    seen = dict.fromkeys(state["paths"], state["mtime_ns"])
    seen.update(state.get("recent", {}))
    return state["mtime_ns"], seen


def _new_items(items: list[LandedItem], cursor: str | None, late_ns: int = 0) -> list[LandedItem]:
    """Items newer than the cursor: later mtime, or not yet seen and at most ``late_ns``
    older than the newest seen (only the same mtime on a local folder, where ``late_ns``
    is 0)."""
    newest, seen = _seen(cursor)
    return [
        i
        for i in items
        if i.mtime_ns > newest or (i.mtime_ns >= newest - late_ns and str(i.path) not in seen)
    ]


def _advance(
    items: list[LandedItem], cursor: str | None, late_ns: int = 0, checks_at: float | None = None
) -> str:
    newest, seen = _seen(cursor)
    seen.update({str(i.path): i.mtime_ns for i in items})
    newest = max([newest, *(i.mtime_ns for i in items)])
    state: dict[str, object] = {
        "mtime_ns": newest,
        "paths": sorted(path for path, mtime in seen.items() if mtime == newest),
    }
    recent = {path: m for path, m in sorted(seen.items()) if newest - late_ns <= m < newest}
    if recent:
        state["recent"] = recent
    if checks_at is not None:
        state["warning_checks_at"] = checks_at
    return json.dumps(state)


def cursor_day(cursor: str | None) -> str | None:
    """The day before the cursor's newest item: older day folders need no scanning."""
    if not cursor:
        return None
    newest = datetime.fromtimestamp(json.loads(cursor)["mtime_ns"] / 1e9, tz=UTC)
    return (newest - timedelta(days=1)).date().isoformat()


# What each kind of landed item feeds; a run takes only what its items need, which keeps
# the real-time path short (an email open needs no lead re-derived).
_LEAD_ASSETS = ("leads", "companies", *crm_load_assets(), "outreach_enrollments")
# Engagement scores update HubSpot contacts; with Salesforce they are scored, not loaded.
_ENGAGEMENT_LOADS = ("hubspot_engagement",) if crm_destination() == "hubspot" else ()
_ENGAGEMENT_ASSETS = ("engagement_scores", *_ENGAGEMENT_LOADS)
_EXTRACT_ASSETS = (
    "raw_lead_rows",
    "file_ingestion_log",
    "rejected_lead_rows",
    "raw_engagement_events",
)


# The checks that hold the CRM load back run in every run. The warning-level ones re-read the
# whole landing day (duplicates, freshness, rejection share); on the real-time path they
# run with the first webhook run of every WARNING_CHECKS_EVERY_S (file drops always carry
# them), which keeps a form fill's run short. gtm.stage_metrics still measures every run,
# and the error-rate and latency alerts read those.
WARNING_CHECKS_EVERY_S = 600.0


def blocking_checks(repository: dg.RepositoryDefinition) -> list[dg.AssetCheckKey]:
    """The blocking checks of the pipeline job's assets, as the definitions declare them."""
    graph = repository.asset_graph
    job_assets = repository.get_job(lead_pipeline_job.name).asset_layer.selected_asset_keys
    keys = [
        key
        for key in graph.asset_check_keys
        if key.asset_key in job_assets and graph.get_check_spec(key).blocking
    ]
    return sorted(keys, key=lambda key: (key.asset_key.to_user_string(), key.name))


def assets_for(items: list[LandedItem]) -> list[dg.AssetKey] | None:
    """The assets a run over ``items`` must materialize (None: the whole job)."""
    kinds = {i.source.split("/", 1)[0] if i.is_webhook_batch else "files" for i in items}
    if kinds == {"engagement"}:
        return [dg.AssetKey(k) for k in _EXTRACT_ASSETS + _ENGAGEMENT_ASSETS]
    if "engagement" not in kinds:
        return [dg.AssetKey(k) for k in _EXTRACT_ASSETS + _LEAD_ASSETS]
    return None


def landed_run_requests(
    items: list[LandedItem],
    cursor: str | None,
    trigger: str,
    *,
    late_ns: int = 0,
    warning_checks_every_s: float | None = None,
    blocking: Sequence[dg.AssetCheckKey] | None = None,
    now: float | None = None,
) -> tuple[list[dg.RunRequest], str | None]:
    """One run request per landing day with new items, and the advanced cursor; ``late_ns``
    is how far back before the newest item seen new items may still appear (see
    ``late_listing_ns``).

    With ``warning_checks_every_s``, the runs carry the warning-level checks only if the
    last runs that did were requested at least that long ago (kept in the cursor);
    otherwise only the ``blocking`` checks (``blocking_checks``) of their assets. Without
    ``blocking``, which checks block is not known, and every run carries every check."""
    new = _new_items(items, cursor, late_ns)
    if not new:
        return [], cursor
    checks_at: float | None = None
    all_checks = True
    if warning_checks_every_s is not None and blocking is not None:
        now = time.time() if now is None else now
        checks_at = json.loads(cursor).get("warning_checks_at") if cursor else None
        all_checks = checks_at is None or now - checks_at >= warning_checks_every_s
        if all_checks:
            checks_at = now
    by_day: dict[str, list[LandedItem]] = defaultdict(list)
    for item in new:
        by_day[item.partition_date.isoformat()].append(item)
    requests = []
    for day, day_items in sorted(by_day.items()):
        identity = "\n".join(f"{i.path}:{i.mtime_ns}:{i.size_bytes}" for i in day_items)
        names = ", ".join(f"{i.source}/{i.path.name}" for i in day_items)
        assets = assets_for(day_items)
        checks = None  # every check of the assets
        if not all_checks and blocking is not None:
            checks = [k for k in blocking if assets is None or k.asset_key in assets]
        requests.append(
            dg.RunRequest(
                run_key=f"{trigger}:{hashlib.sha256(identity.encode()).hexdigest()[:20]}",
                partition_key=day,
                tags={"gtm/trigger": trigger, "gtm/landed": names[:1000]},
                asset_selection=assets,
                asset_check_keys=checks,
            )
        )
    return requests, _advance(new, cursor, late_ns, checks_at)


@dg.sensor(
    job=lead_pipeline_job,
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Launches a pipeline run for each landing day with newly dropped files.",
)
def lead_file_sensor(
    context: dg.SensorEvaluationContext, landing: LandingZoneResource
) -> dg.SensorResult | dg.SkipReason:
    files_dir = landing.files_dir
    files = scan_dropped_files(files_dir)
    late_ns = late_listing_ns(files_dir, OBJECT_STORE_LATE_DROPS)
    requests, cursor = landed_run_requests(files, context.cursor, "file_drop", late_ns=late_ns)
    if not requests:
        return dg.SkipReason(f"no new files in {files_dir} ({len(files)} seen before)")
    return dg.SensorResult(run_requests=requests, cursor=cursor)


@dg.sensor(
    job=lead_pipeline_job,
    # Form fills and engagement signals are the real-time path: look often.
    minimum_interval_seconds=1,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Launches a pipeline run for each landing day with new form or engagement "
    "webhook batches.",
)
def webhook_batch_sensor(
    context: dg.SensorEvaluationContext, landing: LandingZoneResource
) -> dg.SensorResult | dg.SkipReason:
    landing_dir = landing.landing_dir
    batches = scan_lead_webhook_batches(landing_dir, since_day=cursor_day(context.cursor))
    late_ns = late_listing_ns(landing_dir, OBJECT_STORE_LATE_BATCHES)
    repository = context.repository_def
    requests, cursor = landed_run_requests(
        batches,
        context.cursor,
        "webhook",
        late_ns=late_ns,
        warning_checks_every_s=WARNING_CHECKS_EVERY_S,
        blocking=blocking_checks(repository) if repository else None,
    )
    if not requests:
        return dg.SkipReason(f"no new form or engagement batches in {landing_dir}")
    return dg.SensorResult(run_requests=requests, cursor=cursor)
