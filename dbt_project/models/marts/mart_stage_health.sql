-- Throughput, errors and latency of each stage and asset, per hour and per day (UTC), from
-- the metrics every run records. A percentile cannot be summed, so the latency columns are
-- the worst run's of the period.
with metrics as (
    select * from {{ ref('stg_stage_metrics') }}
),

grains as (
    select 'hour' as grain
    union all
    select 'day'
),

by_period as (
    select
        grains.grain,
        date_trunc(grains.grain, timezone('UTC', metrics.recorded_at)) as period_start,
        metrics.*
    from metrics
    cross join grains
)

select
    grain || ':' || {{ minute_label('period_start') }} || ':' || stage || ':' || asset
        as health_key,
    grain,
    period_start,
    stage,
    asset,
    count(distinct run_id) as runs,
    sum(records_in) as records_in,
    sum(records_out) as records_out,
    sum(rejected) as rejected,
    sum(dead_lettered) as dead_lettered,
    sum(failed) as failed,
    coalesce(
        cast(sum(rejected + failed) as double precision) / nullif(sum(records_in), 0), 0
    ) as error_rate,
    sum(latency_samples) as latency_samples,
    max(latency_p95_s) as worst_latency_p95_s,
    max(latency_max_s) as latency_max_s,
    min(email_completeness) as worst_email_completeness,
    max(unclassified_title_share) as worst_unclassified_title_share,
    max(unmatched_country_share) as worst_unmatched_country_share
from by_period
group by grain, period_start, stage, asset
