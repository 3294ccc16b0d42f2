-- The dead-letter queue without payloads or error texts: what failed where, and when. The
-- loads write it; these references put the model after them:
-- depends_on: {{ source('hubspot', 'company_syncs') }}, {{ source('hubspot', 'contact_syncs') }}
select
    id as dead_letter_id,
    destination,
    stream,
    object_type,
    record_key,
    category,
    error_code,
    attempts,
    status,
    first_failed_at,
    last_failed_at,
    resolved_at,
    run_id
from {{ source('pipeline', 'dead_letters') }}
