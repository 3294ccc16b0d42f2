-- Per landing day: how far the day's leads got. Rows landed (read from files and form
-- batches, rejected ones included) -> accepted -> leads (one per person) -> in the CRM
-- (confirmed at least once) -> enrolled in a sequence; and the leads still waiting in the
-- dead-letter queue.
with first_readings as (
    select * from (
        select
            *,
            min(mapping_version) over (partition by sha256, file_path) as first_version
        from {{ ref('stg_file_ingestions') }}
        where not starts_with(source, 'engagement/')
    ) as readings
    -- A file read again under a newer mapping version is the same rows again.
    where mapping_version = first_version
),

file_days as (
    select
        landing_day,
        count(*) filter (where status = 'ingested') as files_landed,
        sum(case when status = 'rejected' then greatest(rows_total, 1) else rows_total end)
            filter (where status <> 'duplicate') as rows_landed,
        sum(rows_accepted) as rows_accepted
    from first_readings
    group by landing_day
),

leads as (
    select landing_day, lower(email) as record_key from {{ ref('stg_leads') }}
),

synced as (
    select distinct lower(record_key) as record_key
    from {{ ref('fct_crm_syncs') }}
    where object_type = 'contacts' and action <> 'failed'
),

waiting as (
    select distinct lower(record_key) as record_key
    from {{ ref('stg_dead_letters') }}
    where object_type = 'contacts' and status = 'pending'
),

enrolled as (
    select distinct lower(email) as record_key
    from {{ ref('stg_sequence_enrollments') }}
    where status = 'enrolled'
),

by_day as (
    select
        leads.landing_day,
        count(*) as leads,
        count(synced.record_key) as leads_in_crm,
        count(waiting.record_key) as leads_dead_lettered,
        count(enrolled.record_key) as leads_enrolled
    from leads
    left join synced using (record_key)
    left join waiting using (record_key)
    left join enrolled using (record_key)
    group by leads.landing_day
)

select
    coalesce(file_days.landing_day, by_day.landing_day) as landing_day,
    coalesce(file_days.files_landed, 0) as files_landed,
    coalesce(file_days.rows_landed, 0) as rows_landed,
    coalesce(file_days.rows_accepted, 0) as rows_accepted,
    coalesce(by_day.leads, 0) as leads,
    coalesce(by_day.leads_in_crm, 0) as leads_in_crm,
    coalesce(by_day.leads_enrolled, 0) as leads_enrolled,
    coalesce(by_day.leads_dead_lettered, 0) as leads_dead_lettered,
    cast(file_days.rows_accepted as double precision) / nullif(file_days.rows_landed, 0) as accepted_share,
    cast(by_day.leads_in_crm as double precision) / nullif(by_day.leads, 0) as in_crm_share
from file_days
full outer join by_day on by_day.landing_day = file_days.landing_day
