-- Throughput, errors and latency of each stage and asset, per hour and per day (UTC), from
-- the metrics every run records. A percentile cannot be summed, so the latency columns are
-- the worst run's of the period.
with metrics as (
    select * from {{ ref('stg_stage_metrics') }}
),

grains as (
    select unnest(['hour', 'day']) as grain
)

select
    grains.grain || ':' || strftime(date_trunc(grains.grain, timezone('UTC', metrics.recorded_at)), '%Y-%m-%dT%H:%M')
        || ':' || metrics.stage || ':' || metrics.asset as health_key,
    grains.grain,
    date_trunc(grains.grain, timezone('UTC', metrics.recorded_at)) as period_start,
    metrics.stage,
    metrics.asset,
    count(distinct metrics.run_id) as runs,
    sum(metrics.records_in) as records_in,
    sum(metrics.records_out) as records_out,
    sum(metrics.rejected) as rejected,
    sum(metrics.dead_lettered) as dead_lettered,
    sum(metrics.failed) as failed,
    coalesce(
        cast(sum(metrics.rejected + metrics.failed) as double) / nullif(sum(metrics.records_in), 0),
        0
    ) as error_rate,
    sum(metrics.latency_samples) as latency_samples,
    max(metrics.latency_p95_s) as worst_latency_p95_s,
    max(metrics.latency_max_s) as latency_max_s,
    min(metrics.email_completeness) as worst_email_completeness,
    max(metrics.unclassified_title_share) as worst_unclassified_title_share,
    max(metrics.unmatched_country_share) as worst_unmatched_country_share
from metrics
cross join grains
group by all
