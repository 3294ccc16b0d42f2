"""The warehouse code location: the dbt project's models and tests.

A location of its own so that the pipeline's runs, which must start in seconds, never
import dbt. Its models depend on the pipeline's assets by key; Dagster draws the lineage
across both locations.
"""

import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource

from gtm_orchestration.defs.jobs import nightly_warehouse_schedule, warehouse_job
from gtm_orchestration.defs.resources import RESOURCES
from gtm_orchestration.defs.warehouse.dbt import dbt_project, warehouse_models

defs = dg.Definitions(
    assets=[warehouse_models],
    jobs=[warehouse_job],
    schedules=[nightly_warehouse_schedule],
    resources={
        "warehouse": RESOURCES["warehouse"],
        # dbt comes with the project's environment, whatever the PATH of the process.
        "dbt": DbtCliResource(
            project_dir=dbt_project, dbt_executable=str(Path(sys.executable).parent / "dbt")
        ),
    },
    executor=dg.in_process_executor,
)
