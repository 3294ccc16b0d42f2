-- One row per dropped file seen, with its share of rejected rows.
select
    *,
    case when rows_total > 0 then cast(rows_rejected as double precision) / rows_total end as rejected_share
from {{ ref('stg_file_ingestions') }}
