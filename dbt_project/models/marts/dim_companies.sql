-- The current company per domain across landing days.
with ranked as (
    select
        *,
        row_number() over (partition by domain order by landing_day desc) as recency
    from {{ ref('stg_companies') }}
)

select
    domain, name, industry, country, country_code, employees, annual_revenue, fit_score,
    territory, leads, landing_day
from ranked
where recency = 1
