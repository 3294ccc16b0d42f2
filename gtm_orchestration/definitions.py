"""Everything the Dagster code location serves, assembled in one place."""

import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource

from gtm_orchestration.defs.extract.assets import lead_files
from gtm_orchestration.defs.extract.sensors import lead_file_sensor
from gtm_orchestration.defs.jobs import lead_pipeline_job, warehouse_job
from gtm_orchestration.defs.load.assets import hubspot_companies, hubspot_contacts
from gtm_orchestration.defs.resources import RESOURCES
from gtm_orchestration.defs.transform.assets import transformed_leads
from gtm_orchestration.defs.warehouse.dbt import dbt_project, warehouse_models

defs = dg.Definitions(
    assets=[lead_files, transformed_leads, hubspot_companies, hubspot_contacts, warehouse_models],
    jobs=[lead_pipeline_job, warehouse_job],
    sensors=[lead_file_sensor],
    resources=RESOURCES
    | {
        # dbt comes with the project's environment, whatever the PATH of the process.
        "dbt": DbtCliResource(
            project_dir=dbt_project, dbt_executable=str(Path(sys.executable).parent / "dbt")
        )
    },
)
