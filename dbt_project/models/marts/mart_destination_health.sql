-- Per destination, object type and hour and day (UTC): records sent and what became of
-- them, the error rate, the records newly dead-lettered, and for contacts the latency from
-- a lead's first landing to the CRM's first confirmation of it (as the latency alert
-- measures it), counted in the period of the confirmation.
with grains as (
    select unnest(['hour', 'day']) as grain
),

syncs as (
    select 'hubspot' as destination, * from {{ ref('fct_crm_syncs') }}
),

sent as (
    select
        grains.grain,
        date_trunc(grains.grain, timezone('UTC', synced_at)) as period_start,
        destination,
        object_type,
        count(*) as records_sent,
        count(*) filter (where action = 'created') as created,
        count(*) filter (where action = 'updated') as updated,
        count(*) filter (where action = 'unchanged') as unchanged,
        count(*) filter (where action = 'failed') as failed
    from syncs
    cross join grains
    group by all
),

dead_lettered as (
    select
        grains.grain,
        date_trunc(grains.grain, timezone('UTC', first_failed_at)) as period_start,
        destination,
        object_type,
        count(*) as dead_lettered,
        count(*) filter (where category = 'permanent') as dead_lettered_permanent
    from {{ ref('stg_dead_letters') }}
    cross join grains
    group by all
),

landed as (
    select lower(trim(raw_email)) as record_key, min(landed_at) as landed_at
    from {{ ref('stg_lead_rows') }}
    where raw_email is not null
    group by 1
),

confirmed as (
    select
        syncs.destination,
        landed.record_key,
        landed.landed_at,
        min(syncs.synced_at) as confirmed_at
    from landed
    join syncs
        on lower(syncs.record_key) = landed.record_key
        and syncs.object_type = 'contacts'
        and syncs.action <> 'failed'
        and syncs.synced_at >= landed.landed_at
    group by all
),

latencies as (
    select
        grains.grain,
        date_trunc(grains.grain, timezone('UTC', confirmed_at)) as period_start,
        destination,
        'contacts' as object_type,
        count(*) as latency_samples,
        quantile_cont(epoch(confirmed_at) - epoch(landed_at), 0.5) as latency_p50_s,
        quantile_cont(epoch(confirmed_at) - epoch(landed_at), 0.95) as latency_p95_s,
        max(epoch(confirmed_at) - epoch(landed_at)) as latency_max_s
    from confirmed
    cross join grains
    group by all
),

periods as (
    select grain, period_start, destination, object_type from sent
    union
    select grain, period_start, destination, object_type from dead_lettered
)

select
    periods.grain || ':' || strftime(periods.period_start, '%Y-%m-%dT%H:%M') || ':'
        || periods.destination || ':' || periods.object_type as health_key,
    periods.grain,
    periods.period_start,
    periods.destination,
    periods.object_type,
    coalesce(sent.records_sent, 0) as records_sent,
    coalesce(sent.created, 0) as created,
    coalesce(sent.updated, 0) as updated,
    coalesce(sent.unchanged, 0) as unchanged,
    coalesce(sent.failed, 0) as failed,
    coalesce(cast(sent.failed as double) / nullif(sent.records_sent, 0), 0) as error_rate,
    coalesce(dead_lettered.dead_lettered, 0) as dead_lettered,
    coalesce(dead_lettered.dead_lettered_permanent, 0) as dead_lettered_permanent,
    coalesce(latencies.latency_samples, 0) as latency_samples,
    latencies.latency_p50_s,
    latencies.latency_p95_s,
    latencies.latency_max_s
from periods
left join sent using (grain, period_start, destination, object_type)
left join dead_lettered using (grain, period_start, destination, object_type)
left join latencies using (grain, period_start, destination, object_type)
