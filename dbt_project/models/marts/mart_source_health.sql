-- Per source and per hour and day (UTC): files and rows read, rows rejected, the error rate,
-- and the latency from landing (file modified, submission received) to the row being loaded
-- in the warehouse. A file read again under a newer mapping version is not counted again.
with grains as (
    select 'hour' as grain
    union all
    select 'day'
),

first_readings as (
    select * from (
        select
            *,
            min(mapping_version) over (partition by sha256, file_path) as first_version
        from {{ ref('stg_file_ingestions') }}
    ) as readings
    where mapping_version = first_version
),

files as (
    select
        grains.grain,
        date_trunc(grains.grain, timezone('UTC', finished_at)) as period_start,
        source,
        count(*) filter (where status = 'ingested') as files_ingested,
        count(*) filter (where status = 'rejected') as files_rejected,
        count(*) filter (where status = 'duplicate') as files_duplicate,
        -- A file rejected whole counts as its rows, at least one, as the alerts count it.
        sum(case when status = 'rejected' then greatest(rows_total, 1) else rows_total end)
            filter (where status <> 'duplicate') as rows_in,
        sum(rows_accepted) as rows_accepted,
        sum(case when status = 'rejected' then greatest(rows_total, 1) else rows_rejected end)
            filter (where status <> 'duplicate') as rows_rejected
    from first_readings
    cross join grains
    group by grains.grain, 2, source
),

first_read_rows as (
    select
        *,
        greatest({{ epoch_seconds('loaded_at') }} - {{ epoch_seconds('landed_at') }}, 0)
            as latency_s
    from (
        select
            *,
            min(mapping_version) over (partition by file_sha256, source_file) as first_version
        from {{ ref('stg_lead_rows') }}
    ) as readings
    where mapping_version = first_version
),

latencies as (
    select
        grains.grain,
        date_trunc(grains.grain, timezone('UTC', loaded_at)) as period_start,
        source,
        count(*) as latency_samples,
        {{ percentile('latency_s', 0.5) }} as latency_p50_s,
        {{ percentile('latency_s', 0.95) }} as latency_p95_s,
        max(latency_s) as latency_max_s
    from first_read_rows
    cross join grains
    group by grains.grain, 2, source
)

select
    files.grain || ':' || {{ minute_label("files.period_start") }} || ':' || files.source
        as health_key,
    files.grain,
    files.period_start,
    files.source,
    files.files_ingested,
    files.files_rejected,
    files.files_duplicate,
    coalesce(files.rows_in, 0) as rows_in,
    coalesce(files.rows_accepted, 0) as rows_accepted,
    coalesce(files.rows_rejected, 0) as rows_rejected,
    coalesce(cast(files.rows_rejected as double precision) / nullif(files.rows_in, 0), 0) as error_rate,
    coalesce(latencies.latency_samples, 0) as latency_samples,
    latencies.latency_p50_s,
    latencies.latency_p95_s,
    latencies.latency_max_s
from files
left join latencies
    on latencies.grain = files.grain
    and latencies.period_start = files.period_start
    and latencies.source = files.source
