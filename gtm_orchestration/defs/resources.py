"""Resources shared by every stage: the landing zone, the warehouse and the CRM.

Unset fields are read from the environment when a step runs (GTM_DATA_DIR,
GTM_WAREHOUSE_URL, HUBSPOT_BASE_URL, HUBSPOT_ACCESS_TOKEN), so one code location serves
any deployment and the CRM token never appears in run configuration or the UI.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from gtm_orchestration.lib.connectors.hubspot import HubSpotClient
from gtm_orchestration.lib.warehouse import Warehouse
from gtm_orchestration.settings import Settings


class LandingZoneResource(dg.ConfigurableResource):
    """The landing zone under the data folder, where files are dropped."""

    data_dir: str | None = None

    @property
    def landing_dir(self) -> Path:
        data_dir = Path(self.data_dir) if self.data_dir else Settings.from_env().data_dir
        return data_dir / "landing"

    @property
    def files_dir(self) -> Path:
        return self.landing_dir / "files"


class WarehouseResource(dg.ConfigurableResource):
    """The analytics warehouse."""

    url: str | None = None

    @property
    def resolved_url(self) -> str:
        return self.url or Settings.from_env().warehouse_url

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with Warehouse(self.resolved_url).connect() as con:
            yield con


class HubSpotResource(dg.ConfigurableResource):
    """The HubSpot portal; the token only ever comes from HUBSPOT_ACCESS_TOKEN."""

    base_url: str | None = None

    @contextmanager
    def client(self) -> Iterator[HubSpotClient]:
        settings = Settings.from_env()
        base_url = self.base_url or settings.hubspot_base_url
        with HubSpotClient(base_url, settings.hubspot_access_token) as client:
            yield client


RESOURCES = {
    "landing": LandingZoneResource(),
    "warehouse": WarehouseResource(),
    "hubspot": HubSpotResource(),
}
