select
    source,
    source_file,
    line,
    field,
    reason,
    partition_date as landing_day,
    loaded_at
from {{ source('raw', 'rejected_rows') }}
