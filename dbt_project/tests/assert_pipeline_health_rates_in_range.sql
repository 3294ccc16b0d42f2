-- Error rates and shares are fractions, and a funnel only narrows. Rows returned are
-- violations.
select 'mart_stage_health' as model, health_key as row_key, 'error_rate' as problem
from {{ ref('mart_stage_health') }}
where error_rate not between 0 and 1
union all
select 'mart_source_health', health_key, 'error_rate'
from {{ ref('mart_source_health') }}
where error_rate not between 0 and 1
union all
select 'mart_destination_health', health_key, 'error_rate'
from {{ ref('mart_destination_health') }}
where error_rate not between 0 and 1
union all
select 'mart_lead_funnel', cast(landing_day as varchar), 'funnel widens'
from {{ ref('mart_lead_funnel') }}
where rows_accepted > rows_landed
   or leads > rows_accepted
   or leads_in_crm > leads
   or leads_enrolled > leads
