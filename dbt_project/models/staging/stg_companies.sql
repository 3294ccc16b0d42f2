select
    domain,
    company as name,
    industry,
    country,
    country_code,
    employees,
    annual_revenue,
    fit_score,
    territory,
    leads,
    partition_date as landing_day
from {{ source('gtm', 'companies') }}
