-- Per destination, object type and hour and day (UTC): records sent and what became of
-- them, the error rate, the records newly dead-lettered, and for contacts the latency from
-- a lead's first landing to the CRM's first confirmation of it (as the latency alert
-- measures it), counted in the period of the confirmation.
with grains as (
    select 'hour' as grain
    union all
    select 'day'
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
    group by grains.grain, 2, destination, object_type
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
    group by grains.grain, 2, destination, object_type
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
    group by syncs.destination, landed.record_key, landed.landed_at
),

confirmed_latencies as (
    select
        *,
        {{ epoch_seconds('confirmed_at') }} - {{ epoch_seconds('landed_at') }} as latency_s
    from confirmed
),

latencies as (
    select
        grains.grain,
        date_trunc(grains.grain, timezone('UTC', confirmed_at)) as period_start,
        destination,
        'contacts' as object_type,
        count(*) as latency_samples,
        {{ percentile('latency_s', 0.5) }} as latency_p50_s,
        {{ percentile('latency_s', 0.95) }} as latency_p95_s,
        max(latency_s) as latency_max_s
    from confirmed_latencies
    cross join grains
    group by grains.grain, 2, destination
),

periods as (
    select grain, period_start, destination, object_type from sent
    union
    select grain, period_start, destination, object_type from dead_lettered
)

select
    periods.grain || ':' || {{ minute_label("periods.period_start") }} || ':'
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
    coalesce(cast(sent.failed as double precision) / nullif(sent.records_sent, 0), 0) as error_rate,
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
