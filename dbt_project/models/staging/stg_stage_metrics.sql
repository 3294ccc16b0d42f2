-- Every run's metrics, one row per run, stage and asset. The rows are written by the
-- extraction, the transform and the loads; these references put the model after them:
-- depends_on: {{ source('raw', 'lead_rows') }}, {{ source('gtm', 'leads') }},
-- {{ source('hubspot', 'contact_syncs') }}
select
    run_id,
    stage,
    asset,
    partition_key,
    records_in,
    records_out,
    rejected,
    dead_lettered,
    failed,
    error_rate,
    latency_samples,
    latency_p50_s,
    latency_p95_s,
    latency_max_s,
    cast({{ json_text('completeness', "'email'") }} as double precision) as email_completeness,
    completeness,
    unclassified_title_share,
    unmatched_country_share,
    recorded_at
from {{ source('pipeline', 'stage_metrics') }}
