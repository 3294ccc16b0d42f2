-- Every record the pipeline sent to the CRM, with what happened to it.
select 'contacts' as object_type, email as record_key, crm_id, action, kept_properties,
       error, run_id, synced_at
from {{ ref('stg_hubspot_contact_syncs') }}
union all
select 'companies' as object_type, domain as record_key, crm_id, action, kept_properties,
       error, run_id, synced_at
from {{ ref('stg_hubspot_company_syncs') }}
