"""What every stage's assets show in the UI: their metrics as plotted metadata, and the
results of their quality checks."""

from collections.abc import Sequence
from datetime import timedelta

import dagster as dg

from gtm_orchestration.lib.alerts import load_alert_thresholds
from gtm_orchestration.lib.metrics import StageMetrics
from gtm_orchestration.lib.quality import QualityResult

# Leads land every working day: an asset not updated for a day warns, for a long weekend
# fails (Dagster's freshness policies, shown as the asset's health).
DAILY_FRESHNESS = dg.FreshnessPolicy.time_window(
    warn_window=timedelta(days=1), fail_window=timedelta(days=3)
)
# Data older than this when it reaches a stage is late: the alerts' landed -> CRM SLA, since
# each stage on the way must be within it for the load to be.
_WARNINGS = load_alert_thresholds().warning
FRESHNESS_SLA_S = _WARNINGS.latency.sla_minutes * 60
# A larger share of rows rejected at extraction warns, as the error-rate alert does.
MAX_REJECTED_SHARE = _WARNINGS.error_rate.max_share


def stage_metadata(metrics: StageMetrics) -> dict[str, dg.MetadataValue]:
    """``metrics`` as asset metadata: ints and floats, which the UI plots over time."""
    return {
        key: dg.MetadataValue.int(value)
        if isinstance(value, int)
        else dg.MetadataValue.float(value)
        for key, value in metrics.numbers().items()
    }


def selected_checks(context: dg.AssetExecutionContext) -> set[str]:
    """Names of the checks the run asked the step for."""
    return {key.name for key in context.selected_asset_check_keys}


def check_result(
    name: str,
    asset: str,
    results: Sequence[QualityResult],
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
    metadata: dict[str, dg.MetadataValue] | None = None,
) -> dg.AssetCheckResult:
    """One check's result over ``results`` (one per landing day, say): passed only if each
    passed; its metadata counts the failures, plus ``metadata``."""
    result = QualityResult.combine(list(results))
    return dg.AssetCheckResult(
        check_name=name,
        asset_key=asset,
        passed=result.passed,
        severity=severity,
        description=result.description,
        metadata={"failures": dg.MetadataValue.int(result.failures), **(metadata or {})},
    )
