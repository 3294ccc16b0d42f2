"""The asset graph, pinned: a lineage change shows up as a diff here."""

from __future__ import annotations

import os
import subprocess
import sys

import dagster as dg

from gtm_orchestration.definitions import defs as pipeline_defs
from gtm_orchestration.defs.extract.sensors import blocking_checks
from gtm_orchestration.defs.partitions import landing_day, nightly_day
from gtm_orchestration.lib.mapping import load_registry
from gtm_orchestration.warehouse_definitions import defs as warehouse_defs

# The UI shows both code locations as one asset graph.
defs = dg.Definitions.merge(pipeline_defs, warehouse_defs)

EXPECTED_GROUPS = {
    "raw_lead_rows": "extract",
    "file_ingestion_log": "extract",
    "rejected_lead_rows": "extract",
    "raw_engagement_events": "extract",
    "hubspot_contact_snapshot": "extract",
    "leads": "transform",
    "engagement_scores": "transform",
    "companies": "transform",
    "hubspot_companies": "load",
    "hubspot_contacts": "load",
    "hubspot_engagement": "load",
    "outreach_enrollments": "load",
    "engagement_rescores": "nightly",
    "hubspot_engagement_rescore": "nightly",
    "stg_lead_rows": "warehouse",
    "stg_file_ingestions": "warehouse",
    "stg_rejected_rows": "warehouse",
    "stg_leads": "warehouse",
    "stg_companies": "warehouse",
    "stg_hubspot_contact_syncs": "warehouse",
    "stg_hubspot_company_syncs": "warehouse",
    "dim_leads": "warehouse",
    "dim_companies": "warehouse",
    "fct_crm_syncs": "warehouse",
    "fct_file_ingestions": "warehouse",
    "mart_daily_pipeline": "warehouse",
    "stg_crm_contact_property_changes": "warehouse",
    "crm_contact_property_history": "warehouse",
    "stg_stage_metrics": "warehouse",
    "stg_dead_letters": "warehouse",
    "stg_sequence_enrollments": "warehouse",
    "mart_stage_health": "warehouse",
    "mart_source_health": "warehouse",
    "mart_destination_health": "warehouse",
    "mart_lead_funnel": "warehouse",
    # Tables several assets write (every stage; every load): dbt sources of their own.
    "stage_metrics": "default",
    "dead_letters": "default",
}

EXPECTED_DEPS = {
    "raw_lead_rows": set(),
    "leads": {"raw_lead_rows"},
    "companies": {"leads"},
    "hubspot_companies": {"companies"},
    "hubspot_contacts": {"leads", "hubspot_companies"},
    "engagement_scores": {"raw_engagement_events"},
    "hubspot_engagement": {"engagement_scores", "hubspot_contacts"},
    "outreach_enrollments": {"hubspot_contacts"},
    "engagement_rescores": {"raw_engagement_events"},
    "hubspot_engagement_rescore": {"engagement_rescores"},
    "stg_lead_rows": {"raw_lead_rows"},
    "stg_file_ingestions": {"file_ingestion_log"},
    "stg_rejected_rows": {"rejected_lead_rows"},
    "stg_leads": {"leads"},
    "stg_companies": {"companies"},
    "stg_hubspot_contact_syncs": {"hubspot_contacts"},
    "stg_hubspot_company_syncs": {"hubspot_companies"},
    "dim_leads": {"stg_leads", "stg_hubspot_contact_syncs"},
    "dim_companies": {"stg_companies"},
    "fct_crm_syncs": {"stg_hubspot_contact_syncs", "stg_hubspot_company_syncs"},
    "fct_file_ingestions": {"stg_file_ingestions"},
    "mart_daily_pipeline": {"stg_file_ingestions", "stg_leads"},
    "stg_crm_contact_property_changes": {"hubspot_contact_snapshot"},
    "crm_contact_property_history": {"stg_crm_contact_property_changes"},
    "stg_stage_metrics": {"stage_metrics", "raw_lead_rows", "leads", "hubspot_contacts"},
    "stg_dead_letters": {"dead_letters", "hubspot_companies", "hubspot_contacts"},
    "stg_sequence_enrollments": {"outreach_enrollments"},
    "mart_stage_health": {"stg_stage_metrics"},
    "mart_source_health": {"stg_file_ingestions", "stg_lead_rows"},
    "mart_destination_health": {"fct_crm_syncs", "stg_dead_letters", "stg_lead_rows"},
    "mart_lead_funnel": {
        "stg_file_ingestions",
        "stg_leads",
        "fct_crm_syncs",
        "stg_dead_letters",
        "stg_sequence_enrollments",
    },
}

EXPECTED_BLOCKING_CHECKS = {
    ("leads", "required_fields_present"),
    ("leads", "emails_unique"),
    ("leads", "emails_valid"),
    ("leads", "enumerations_valid"),
    ("companies", "domains_unique"),
    ("companies", "domains_well_formed"),
}


def test_asset_keys_and_groups() -> None:
    graph = defs.resolve_asset_graph()
    groups = {key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert groups == EXPECTED_GROUPS


def test_asset_dependencies() -> None:
    graph = defs.resolve_asset_graph()
    for asset, deps in EXPECTED_DEPS.items():
        parents = {k.to_user_string() for k in graph.get(dg.AssetKey(asset)).parent_keys}
        assert parents == deps, asset


def test_checks_guard_the_crm_load() -> None:
    graph = defs.resolve_asset_graph()
    checks = {
        (key.asset_key.to_user_string(), key.name): graph.get_check_spec(key)
        for key in graph.asset_check_keys
    }
    blocking = {k for k, spec in checks.items() if spec.blocking}
    assert blocking >= EXPECTED_BLOCKING_CHECKS
    # The real-time path keeps the blocking checks of the pipeline's assets, as declared.
    repository = pipeline_defs.get_repository_def()
    kept = {(k.asset_key.to_user_string(), k.name) for k in blocking_checks(repository)}
    assert kept == EXPECTED_BLOCKING_CHECKS
    # dbt tests come in as checks on the marts.
    assert ("dim_leads", "unique_dim_leads_email") in checks
    assert ("dim_companies", "unique_dim_companies_domain") in checks


def test_pipeline_assets_share_the_landing_day_partitions() -> None:
    graph = defs.resolve_asset_graph()
    by_partitions = {
        key.to_user_string(): graph.get(key).partitions_def for key in graph.get_all_asset_keys()
    }
    # Change capture follows the CRM's clock, not landing days.
    unpartitioned = {"hubspot_contact_snapshot"}
    assert {k for k, p in by_partitions.items() if p == landing_day} == {
        k
        for k, g in EXPECTED_GROUPS.items()
        if g in {"extract", "transform", "load"} and k not in unpartitioned
    }
    # The nightly work covers finished days.
    assert {k for k, p in by_partitions.items() if p == nightly_day} == {
        k for k, g in EXPECTED_GROUPS.items() if g == "nightly"
    }


def test_jobs_schedules_and_sensors() -> None:
    assert {j.name for j in defs.resolve_all_job_defs()} >= {
        "lead_pipeline",
        "build_warehouse",
        "crm_change_capture",
        "enrichment_refresh",
        "nightly_rescore",
        "release_outreach_enrollments",
        "send_daily_throughput_report",
        "send_weekly_error_summary",
    }
    lead_job = defs.resolve_job_def("lead_pipeline")
    assert "hubspot_contact_snapshot" not in {
        k.to_user_string() for k in lead_job.asset_layer.selected_asset_keys
    }
    assert defs.resolve_schedule_def("crm_change_poll").cron_schedule == "*/5 * * * *"
    for name in (
        "nightly_rescore_schedule",
        "nightly_warehouse_build",
        "weekly_enrichment_refresh",
        "outreach_enrollment_release",
        "daily_throughput_report",
        "weekly_error_summary",
    ):
        schedule = defs.resolve_schedule_def(name)
        assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING, name
    refresh = defs.resolve_schedule_def("weekly_enrichment_refresh")
    assert (refresh.cron_schedule, refresh.job_name) == ("0 4 * * 1", "enrichment_refresh")
    release = defs.resolve_schedule_def("outreach_enrollment_release")
    assert (release.cron_schedule, release.job_name) == (
        "* * * * *",
        "release_outreach_enrollments",
    )
    sensors = {
        "lead_file_sensor",
        "webhook_batch_sensor",
        "hubspot_webhook_sensor",
        "rederive_refreshed_days",
        "alert_monitor",
        "run_failure_alerts",
        "run_timeout_alerts",
    }
    for name in sensors:
        assert defs.resolve_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING


def test_definitions_load_as_code_locations() -> None:
    # What the webserver and daemon do on start: every job, sensor and name must resolve.
    for location in (pipeline_defs, warehouse_defs):
        dg.Definitions.validate_loadable(location)
        location.get_repository_def().load_all_definitions()


def test_pipeline_location_does_not_import_dbt() -> None:
    # Real-time runs start by importing the pipeline location; dbt would add seconds.
    code = "import sys, gtm_orchestration.definitions; print('dagster_dbt' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


def test_code_versions_follow_the_configuration_each_stage_applies() -> None:
    # A new mapping or rule file marks the assets that apply it stale in the UI.
    graph = defs.resolve_asset_graph()
    version = {k.to_user_string(): graph.get(k).code_version for k in graph.get_all_asset_keys()}
    registry = f"mapping-v{load_registry().version}-"
    for asset in ("raw_lead_rows", "leads", "companies", "hubspot_contacts", "hubspot_companies"):
        assert version[asset].startswith(registry), asset
    assert version["leads"] != version["raw_lead_rows"]  # the rule files count too
    assert version["engagement_scores"] == version["engagement_rescores"]


def test_crm_loads_take_their_portals_pool() -> None:
    # Each pool runs one step at a time (dagster.yaml): one load per CRM portal, so runs
    # share its rate limit; the HubSpot loads hold DuckDB only in short transactions.
    graph = pipeline_defs.resolve_asset_graph()
    pools = {
        key.to_user_string(): graph.get(key).assets_def.op.pool
        for key in graph.get_all_asset_keys()
    }
    assert {asset for asset, pool in pools.items() if pool == "hubspot"} == {
        "hubspot_companies",
        "hubspot_contacts",
        "hubspot_engagement",
        "hubspot_engagement_rescore",
    }


def test_the_pipeline_runs_in_process_unless_gtm_executor_asks_for_processes() -> None:
    code = (
        "from gtm_orchestration.definitions import defs; "
        "print(defs.resolve_job_def('lead_pipeline').executor_def.name)"
    )
    chosen = {}
    for value in ("", "multiprocess", "threads"):  # an empty variable counts as unset
        env = {**os.environ, "GTM_EXECUTOR": value}
        chosen[value] = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env
        )
    assert chosen[""].stdout.strip() == "in_process", chosen[""].stderr
    assert chosen["multiprocess"].stdout.strip() == "multiprocess", chosen["multiprocess"].stderr
    assert chosen["threads"].returncode != 0
    expected = "GTM_EXECUTOR='threads': expected one of in_process, multiprocess, celery"
    assert expected in chosen["threads"].stderr
