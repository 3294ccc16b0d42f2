"""The transform stage: raw rows of a landing day -> leads and companies, quality-checked."""

from collections.abc import Iterator

import dagster as dg

from gtm_orchestration.defs.partitions import landing_day
from gtm_orchestration.defs.resources import WarehouseResource
from gtm_orchestration.lib import quality
from gtm_orchestration.lib.partitioned_tables import replace_partition
from gtm_orchestration.lib.transform import transform_leads

CHECKS = [
    dg.AssetCheckSpec(
        "required_fields_present",
        asset="leads",
        blocking=True,
        description="Every lead carries the fields every CRM contact needs.",
    ),
    dg.AssetCheckSpec(
        "emails_unique",
        asset="leads",
        blocking=True,
        description="One lead per email: the CRM upsert key.",
    ),
    dg.AssetCheckSpec(
        "enumerations_valid",
        asset="leads",
        blocking=True,
        description="Enumerated values are options the CRM accepts.",
    ),
    dg.AssetCheckSpec(
        "domains_unique",
        asset="companies",
        blocking=True,
        description="One company per domain: the CRM upsert key.",
    ),
    dg.AssetCheckSpec(
        "domains_well_formed",
        asset="companies",
        blocking=True,
        description="Domains are bare lower-case host names (no scheme, www, path).",
    ),
]


def _check(name: str, asset: str, result: quality.QualityResult) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=name,
        asset_key=asset,
        passed=result.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=result.description,
        metadata={"failures": dg.MetadataValue.int(result.failures)},
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "leads",
            deps=["raw_lead_rows"],
            description="One lead per email: normalized, classified, scored, routed.",
        ),
        dg.AssetSpec(
            "companies",
            deps=["leads"],
            description="One company per domain, derived from its leads.",
        ),
    ],
    check_specs=CHECKS,
    group_name="transform",
    partitions_def=landing_day,
    pool="warehouse",
)
def transformed_leads(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Re-derive the day's leads and companies from its raw rows (idempotent)."""
    day = context.partition_key
    with warehouse.connect() as con:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE day_rows AS "
            "SELECT * FROM raw.lead_rows WHERE partition_date = ?",
            [day],
        )
        rows_in = con.execute("SELECT count(*) FROM day_rows").fetchone()[0]
        leads, companies = transform_leads(con, "day_rows")
        replace_partition(con, "gtm.leads", leads, day)
        replace_partition(con, "gtm.companies", companies, day)
        con.register("day_leads", leads)
        con.register("day_companies", companies)
        results = [
            _check(
                "required_fields_present",
                "leads",
                quality.missing_required_fields(con, "day_leads"),
            ),
            _check("emails_unique", "leads", quality.duplicate_keys(con, "day_leads", "email")),
            _check("enumerations_valid", "leads", quality.invalid_enumerations(con, "day_leads")),
            _check(
                "domains_unique",
                "companies",
                quality.duplicate_keys(con, "day_companies", "domain"),
            ),
            _check(
                "domains_well_formed", "companies", quality.malformed_domains(con, "day_companies")
            ),
        ]
        flagged = con.execute("SELECT count(*) FROM day_leads WHERE flags IS NOT NULL").fetchone()[
            0
        ]
        unclassified = con.execute(
            "SELECT count(*) FROM day_leads WHERE function = 'other'"
        ).fetchone()[0]
    yield dg.MaterializeResult(
        asset_key="leads",
        metadata={
            "rows_in": dg.MetadataValue.int(rows_in),
            "leads": dg.MetadataValue.int(leads.num_rows),
            "merged_duplicates": dg.MetadataValue.int(rows_in - leads.num_rows),
            "flagged_values": dg.MetadataValue.int(flagged),
            "unclassified_titles": dg.MetadataValue.int(unclassified),
        },
    )
    yield dg.MaterializeResult(
        asset_key="companies",
        metadata={"companies": dg.MetadataValue.int(companies.num_rows)},
    )
    yield from results
