"""Everything the Dagster code location serves, assembled in one place."""

import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource

from gtm_orchestration.defs.extract.assets import landed_data
from gtm_orchestration.defs.extract.crm_changes import CRM_CHANGE_DEFS
from gtm_orchestration.defs.extract.sensors import lead_file_sensor, webhook_batch_sensor
from gtm_orchestration.defs.jobs import lead_pipeline_job, warehouse_job
from gtm_orchestration.defs.load.assets import (
    hubspot_companies,
    hubspot_contacts,
    hubspot_engagement,
)
from gtm_orchestration.defs.resources import RESOURCES
from gtm_orchestration.defs.transform.assets import engagement_scores, transformed_leads
from gtm_orchestration.defs.warehouse.dbt import dbt_project, warehouse_models

defs = dg.Definitions(
    assets=[
        landed_data,
        transformed_leads,
        engagement_scores,
        hubspot_companies,
        hubspot_contacts,
        hubspot_engagement,
        warehouse_models,
        *CRM_CHANGE_DEFS["assets"],
    ],
    jobs=[lead_pipeline_job, warehouse_job, *CRM_CHANGE_DEFS["jobs"]],
    schedules=CRM_CHANGE_DEFS["schedules"],
    sensors=[lead_file_sensor, webhook_batch_sensor, *CRM_CHANGE_DEFS["sensors"]],
    # Steps share the warehouse pool and run one after another anyway; one process per run
    # spares each step a fresh import of the code location.
    executor=dg.in_process_executor,
    resources=RESOURCES
    | {
        # dbt comes with the project's environment, whatever the PATH of the process.
        "dbt": DbtCliResource(
            project_dir=dbt_project, dbt_executable=str(Path(sys.executable).parent / "dbt")
        )
    },
)
