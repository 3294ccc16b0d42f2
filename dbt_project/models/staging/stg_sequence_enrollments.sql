select
    idempotency_key,
    email,
    sequence_key,
    status,
    held_at,
    updated_at
from {{ source('pipeline', 'sequence_enrollments') }}
