select run_id, record_key as email, crm_id, action, kept_properties, error, synced_at
from {{ source('hubspot', 'contact_syncs') }}
where destination = 'hubspot' and object_type = 'contacts'
