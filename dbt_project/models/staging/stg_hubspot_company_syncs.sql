select run_id, record_key as domain, crm_id, action, kept_properties, error, synced_at
from {{ source('hubspot', 'company_syncs') }}
where destination = 'hubspot' and object_type = 'companies'
