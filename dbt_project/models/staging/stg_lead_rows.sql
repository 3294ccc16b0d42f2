select
    source,
    source_file,
    file_sha256,
    line,
    email as raw_email,
    mapping_version,
    partition_date as landing_day,
    landed_at,
    loaded_at
from {{ source('raw', 'lead_rows') }}
