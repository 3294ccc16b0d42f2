"""The transform stage: raw rows of a landing day -> leads and companies, quality-checked."""

from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg
import pyarrow as pa

from gtm_orchestration.defs.observability import (
    DAILY_FRESHNESS,
    FRESHNESS_SLA_S,
    check_result,
    selected_checks,
    stage_metadata,
)
from gtm_orchestration.defs.partitions import landing_day
from gtm_orchestration.defs.resources import EnrichmentResource, WarehouseResource
from gtm_orchestration.defs.versions import engagement_version, transform_version
from gtm_orchestration.lib import quality
from gtm_orchestration.lib.engagement_scores import score_day
from gtm_orchestration.lib.enrichment import enrich_rows
from gtm_orchestration.lib.identity import remember_identities
from gtm_orchestration.lib.metrics import record_transform_metrics
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
        "emails_valid",
        asset="leads",
        blocking=True,
        description="Every lead's email is one the CRM can key a contact by.",
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
    # Lateness alone never holds records back: it warns.
    dg.AssetCheckSpec(
        "transformed_within_sla",
        asset="leads",
        description="Freshness (warns): the p95 from landing to the end of the transform, "
        "over the rows the run extracted, is within the landed -> CRM latency SLA.",
    ),
]


# Each check runs per landing day: a lead may come back on a later day, legitimately.
LEAD_CHECKS = {
    "required_fields_present": quality.missing_required_fields,
    "emails_unique": lambda con, rel: quality.duplicate_keys(con, rel, "email"),
    "emails_valid": quality.malformed_emails,
    "enumerations_valid": quality.invalid_enumerations,
}
COMPANY_CHECKS = {
    "domains_unique": lambda con, rel: quality.duplicate_keys(con, rel, "domain"),
    "domains_well_formed": quality.malformed_domains,
}
# Enrichment counts shown on the leads: distinct domains of rows missing firmographics, how
# many came from the cache or the API, what the API said, and the rows flagged.
ENRICHMENT_METADATA = (
    "domains",
    "from_cache",
    "looked_up",
    "found",
    "unknown",
    "failed",
    "flagged_rows",
)


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "leads",
            deps=["raw_lead_rows"],
            description="One lead per email: enriched, normalized, classified, scored, routed.",
            code_version=transform_version(),
            freshness_policy=DAILY_FRESHNESS,
        ),
        dg.AssetSpec(
            "companies",
            deps=["leads"],
            description="One company per domain, derived from its leads.",
            code_version=transform_version(),
            freshness_policy=DAILY_FRESHNESS,
        ),
    ],
    check_specs=CHECKS,
    # A real-time run leaves out the warning-level check (see WARNING_CHECKS_EVERY_S).
    can_subset=True,
    group_name="transform",
    partitions_def=landing_day,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool="warehouse",
)
def transformed_leads(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    enrichment: EnrichmentResource,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Re-derive each day's leads and companies from its raw rows (idempotent), after
    filling missing firmographics from the enrichment API through its cache; measure them
    (``gtm.stage_metrics``) and check them."""
    outcomes: dict[str, list[quality.QualityResult]] = defaultdict(list)
    counts: Counter[str] = Counter()
    derived: dict[str, list[pa.Table]] = defaultdict(list)
    with warehouse.connect() as con, enrichment.client() as client:
        for day in context.partition_keys:
            con.execute(
                "CREATE OR REPLACE TEMP TABLE day_rows AS "
                "SELECT * FROM raw.current_lead_rows WHERE partition_date = ?",
                [day],
            )
            enriched = enrich_rows(con, "day_rows", client, datetime.now(UTC), enrichment.ttl)
            for key in ENRICHMENT_METADATA:
                counts[f"enrichment_{key}"] += getattr(enriched, key)
            leads, companies = transform_leads(con, enriched.relation)
            leads = remember_identities(con, leads)
            replace_partition(con, "gtm.leads", leads, day)
            replace_partition(con, "gtm.companies", companies, day)
            con.register("day_leads", leads)
            con.register("day_companies", companies)
            derived["leads"].append(leads)
            derived["companies"].append(companies)
            for name, check in LEAD_CHECKS.items():
                outcomes[name].append(check(con, "day_leads"))
            for name, check in COMPANY_CHECKS.items():
                outcomes[name].append(check(con, "day_companies"))
            counts["rows_in"] += con.execute("SELECT count(*) FROM day_rows").fetchone()[0]
            counts["leads"] += leads.num_rows
            counts["companies"] += companies.num_rows
            counts["flagged_values"] += con.execute(
                "SELECT count(*) FROM day_leads WHERE flags IS NOT NULL"
            ).fetchone()[0]
            counts["unclassified_titles"] += con.execute(
                "SELECT count(*) FROM day_leads WHERE function = 'other'"
            ).fetchone()[0]
        # Measured on what the run derived, not read back from the warehouse.
        for name, tables in derived.items():
            con.register(f"run_{name}", pa.concat_tables(tables))
        measured = record_transform_metrics(
            con,
            context.run.run_id,
            context.partition_keys,
            counts["rows_in"],
            "run_leads",
            "run_companies",
        )
    counts["merged_duplicates"] = counts["rows_in"] - counts["leads"]
    lead_metadata = (
        "rows_in",
        "leads",
        "merged_duplicates",
        "flagged_values",
        "unclassified_titles",
        *(f"enrichment_{key}" for key in ENRICHMENT_METADATA),
    )
    # Both tables are always derived together; a run selecting one records that one.
    if dg.AssetKey("leads") in context.selected_asset_keys:
        yield dg.MaterializeResult(
            asset_key="leads",
            metadata={k: dg.MetadataValue.int(counts[k]) for k in lead_metadata}
            | stage_metadata(measured["leads"]),
        )
    if dg.AssetKey("companies") in context.selected_asset_keys:
        yield dg.MaterializeResult(
            asset_key="companies",
            metadata={"companies": dg.MetadataValue.int(counts["companies"])}
            | stage_metadata(measured["companies"]),
        )
    selected = selected_checks(context)
    for name in LEAD_CHECKS:
        if name in selected:
            yield check_result(name, "leads", outcomes[name])
    for name in COMPANY_CHECKS:
        if name in selected:
            yield check_result(name, "companies", outcomes[name])
    if "transformed_within_sla" not in selected:
        return
    leads = measured["leads"]
    yield check_result(
        "transformed_within_sla",
        "leads",
        [
            quality.latency_above(
                leads.latency_p95_s, leads.latency_samples, FRESHNESS_SLA_S, "leads"
            )
        ],
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"sla_seconds": dg.MetadataValue.float(FRESHNESS_SLA_S)},
    )


@dg.asset(
    deps=["raw_engagement_events"],
    group_name="transform",
    partitions_def=landing_day,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool="warehouse",
    code_version=engagement_version(),
    description="Engagement score (0-100, decaying) of every contact with signals that day, "
    "with the reasons that make it up.",
)
def engagement_scores(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Score each contact with events on the run's days over all its events so far."""
    scored = 0
    with warehouse.connect() as con:
        for day in context.partition_keys:
            scores = score_day(con, day)
            replace_partition(con, "gtm.engagement_scores", scores, day)
            scored += scores.num_rows
    return dg.MaterializeResult(metadata={"contacts_scored": dg.MetadataValue.int(scored)})
