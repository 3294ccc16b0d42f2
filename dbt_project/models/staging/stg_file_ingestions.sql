select
    source,
    file_path,
    file_name,
    sha256,
    size_bytes,
    status,
    error,
    rows_total,
    rows_accepted,
    rows_rejected,
    mapping_version,
    partition_date as landing_day,
    file_modified_at,
    started_at,
    finished_at,
    run_id
from {{ source('raw', 'file_ingestions') }}
