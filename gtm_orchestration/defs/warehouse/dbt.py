"""The dbt project as Dagster assets: staging and marts over the pipeline's tables."""

import getpass
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from gtm_orchestration.defs.resources import WarehouseResource
from gtm_orchestration.lib.warehouse import Warehouse

DBT_PROJECT_DIR = Path(__file__).resolve().parents[3] / "dbt_project"

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


class WarehouseTranslator(DagsterDbtTranslator):
    """dbt models join the Python assets' lineage in the ``warehouse`` group."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        # Models are named for what they hold; the schema is a warehouse detail.
        if dbt_resource_props["resource_type"] == "model":
            return dg.AssetKey(dbt_resource_props["name"])
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return "warehouse"

    def get_automation_condition(
        self, dbt_resource_props: Mapping[str, Any]
    ) -> dg.AutomationCondition | None:
        # Models refresh once their upstream tables changed, so the UI stays current.
        return dg.AutomationCondition.eager()


def dbt_environment(warehouse_url: str) -> dict[str, str]:
    """Environment that points the dbt profile (``dbt_project/profiles.yml``) at the
    pipeline's warehouse: its ``duckdb`` target for a DuckDB file, its ``postgres`` target
    for a PostgreSQL database."""
    warehouse = Warehouse(warehouse_url)
    if not warehouse.is_postgres:
        return {"GTM_DBT_TARGET": "duckdb", "GTM_DUCKDB_PATH": str(warehouse.duckdb_path)}
    location = warehouse.postgres
    return {
        "GTM_DBT_TARGET": "postgres",
        "GTM_DBT_PG_HOST": location.host,
        "GTM_DBT_PG_PORT": str(location.port),
        # libpq's default user, as the warehouse connection itself takes it.
        "GTM_DBT_PG_USER": location.user or getpass.getuser(),
        "DBT_ENV_SECRET_GTM_PG_PASSWORD": location.password,
        "GTM_DBT_PG_DATABASE": location.database,
        "GTM_DBT_PG_SSLMODE": location.sslmode or "prefer",
    }


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=WarehouseTranslator(),
    pool="warehouse",
)
def warehouse_models(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
) -> Iterator[Any]:
    """``dbt build``: models and their tests (shown as asset checks)."""
    os.environ.update(dbt_environment(warehouse.resolved_url))
    # The warehouse tables exist before dbt reads them, even on a first run.
    with warehouse.connect():
        pass
    yield from dbt.cli(["build"], context=context).stream()
