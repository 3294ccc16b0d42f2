-- The current lead per email across landing days: the newest day's version wins.
with ranked as (
    select
        *,
        row_number() over (partition by email order by landing_day desc, landed_at desc) as recency
    from {{ ref('stg_leads') }}
),

synced as (
    select email, max(crm_id) as crm_id, max(synced_at) as last_synced_at
    from {{ ref('stg_hubspot_contact_syncs') }}
    where action in ('created', 'updated', 'unchanged')
    group by email
)

select
    ranked.email,
    ranked.first_name,
    ranked.last_name,
    ranked.title,
    ranked.company,
    ranked.domain,
    ranked.country,
    ranked.country_code,
    ranked.state,
    ranked.city,
    ranked.industry,
    ranked.annual_revenue,
    ranked.employees,
    ranked.function,
    ranked.seniority,
    ranked.persona,
    ranked.fit_score,
    ranked.territory,
    ranked.owner_id,
    ranked.source,
    ranked.mapping_version,
    ranked.flags,
    ranked.landing_day,
    synced.crm_id,
    synced.last_synced_at
from ranked
left join synced on synced.email = ranked.email
where ranked.recency = 1
