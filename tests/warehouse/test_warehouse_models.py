"""Every dbt model and test, built by the warehouse code location's own job over a warehouse
a real run filled, on DuckDB and on PostgreSQL (tests/warehouse/conftest.py): what the marts
say matches what the run did."""

from __future__ import annotations

from datetime import UTC, datetime

from gtm_orchestration.lib.warehouse import Warehouse
from gtm_orchestration.settings import Settings
from gtm_orchestration.warehouse_definitions import defs as warehouse_defs
from tests.conftest import Crm, drop_file, pipeline_instance
from tests.e2e.pipeline import launch, sensor_runs

LEADS = (
    "Email,First Name,Last Name,Job Title,Company Name,Website,Country\n"
    "ada@lovelace.io,Ada,Lovelace,VP Marketing,Lovelace Labs,lovelace.io,United Kingdom\n"
    "bob@acme.com,Bob,Stone,Chief Wizard,Acme,acme.com,USA\n"
    "cy@globex.com,Cy,Rao,Marketing Manager,Globex,globex.com,Germany\n"
    ",Eve,Nobody,CEO,Nowhere,nowhere.io,US\n"
)


def test_the_warehouse_job_builds_every_model_and_passes_every_test(
    settings: Settings, crm: Crm
) -> None:
    drop_file(settings, "leads", "webinar.csv", LEADS)
    with pipeline_instance() as instance:
        requests, _ = sensor_runs(instance)
        assert launch(instance, requests[0]).success
        built = warehouse_defs.resolve_job_def("build_warehouse").execute_in_process(
            instance=instance
        )
    assert built.success
    models = {e.asset_key.to_user_string() for e in built.get_asset_materialization_events()}
    assert {"dim_leads", "dim_companies", "fct_crm_syncs", "mart_daily_pipeline"} <= models
    assert {"mart_lead_funnel", "crm_contact_property_history"} <= models
    checks = built.get_asset_check_evaluations()
    assert checks and [c.check_name for c in checks if not c.passed] == []

    today = datetime.now(UTC).date()
    with Warehouse(settings.warehouse_url).connect(read_only=True) as con:
        leads = con.execute(
            "SELECT email, country_code, crm_id IS NOT NULL FROM marts.dim_leads ORDER BY email"
        ).fetchall()
        companies = con.execute("SELECT domain FROM marts.dim_companies ORDER BY 1").fetchall()
        daily = con.execute(
            "SELECT landing_day, files_ingested, rows_in, rows_rejected, leads "
            "FROM marts.mart_daily_pipeline"
        ).fetchall()
        syncs = con.execute(
            "SELECT object_type, action, count(*) FROM marts.fct_crm_syncs GROUP BY ALL "
            "ORDER BY ALL"
        ).fetchall()
    assert leads == [
        ("ada@lovelace.io", "GB", True),
        ("bob@acme.com", "US", True),
        ("cy@globex.com", "DE", True),
    ]
    assert companies == [("acme.com",), ("globex.com",), ("lovelace.io",)]
    assert daily == [(today, 1, 4, 1, 3)]
    assert syncs == [("companies", "created", 3), ("contacts", "created", 3)]
