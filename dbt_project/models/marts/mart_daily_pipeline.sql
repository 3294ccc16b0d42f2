-- Per landing day: what came in, what was rejected, what reached the CRM.
with files as (
    select
        landing_day,
        count(*) filter (where status = 'ingested') as files_ingested,
        count(*) filter (where status = 'rejected') as files_rejected,
        count(*) filter (where status = 'duplicate') as files_duplicate,
        sum(rows_total) as rows_in,
        sum(rows_rejected) as rows_rejected
    from {{ ref('stg_file_ingestions') }}
    group by landing_day
),

leads as (
    select landing_day, count(*) as leads from {{ ref('stg_leads') }} group by landing_day
)

select
    files.landing_day,
    files.files_ingested,
    files.files_rejected,
    files.files_duplicate,
    files.rows_in,
    files.rows_rejected,
    coalesce(leads.leads, 0) as leads
from files
left join leads on leads.landing_day = files.landing_day
