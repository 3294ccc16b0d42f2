"""Resources shared by every stage: the landing zone, the warehouse, the CRM and the
enrichment API.

Unset fields are read from the environment when a step runs (GTM_DATA_DIR, GTM_STORAGE_URL,
GTM_S3_ENDPOINT_URL, GTM_WAREHOUSE_URL, HUBSPOT_BASE_URL, HUBSPOT_ACCESS_TOKEN,
GTM_ENRICHMENT_BASE_URL, GTM_ENRICHMENT_API_KEY), so one code location serves any
deployment and no token ever appears in run configuration or the UI.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import dagster as dg
import duckdb
from pydantic import Field
from upath import UPath

from gtm_orchestration.lib.connectors.enrichment import EnrichmentClient
from gtm_orchestration.lib.connectors.hubspot import HubSpotClient
from gtm_orchestration.lib.connectors.outreach import OutreachClient
from gtm_orchestration.lib.connectors.salesforce import SalesforceClient
from gtm_orchestration.lib.enrichment import EnrichmentTtl
from gtm_orchestration.lib.enrollment_rules import SequenceRules, default_sequence_rules
from gtm_orchestration.lib.storage import storage_root
from gtm_orchestration.lib.warehouse import Warehouse
from gtm_orchestration.settings import Settings


class LandingZoneResource(dg.ConfigurableResource):
    """The landing zone, where files are dropped and webhook batches land: under the storage
    root (GTM_STORAGE_URL: a local folder, by default the data folder, or an object store),
    read from the environment of the process that runs the step or sensor."""

    storage_url: str | None = Field(
        default=None,
        description="A local folder or s3://bucket/prefix; unset: GTM_STORAGE_URL, else "
        "the data folder.",
    )
    data_dir: str | None = Field(
        default=None, description="A local data folder; used when storage_url is unset."
    )

    @property
    def landing_dir(self) -> UPath:
        settings = Settings.from_env()
        url = self.storage_url or self.data_dir
        root = (
            storage_root(url, endpoint_url=settings.s3_endpoint_url)
            if url
            else settings.storage_root
        )
        return root / "landing"

    @property
    def files_dir(self) -> UPath:
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


class EnrichmentResource(dg.ConfigurableResource):
    """The company enrichment API and how long its answers are cached; the key only ever
    comes from GTM_ENRICHMENT_API_KEY."""

    base_url: str | None = None
    found_ttl_days: float = Field(
        default=30, gt=0, description="Days a found company's firmographics are reused."
    )
    unknown_ttl_days: float = Field(
        default=7, gt=0, description="Days a domain the API does not know is not asked again."
    )
    requests_per_second: float = Field(
        default=8.0, gt=0, description="Pace of requests, below the API's rate limit."
    )
    max_attempts: int = Field(default=4, ge=1, description="Tries per lookup, retries included.")
    backoff_base_s: float = Field(
        default=0.5, ge=0, description="First retry's wait; doubled for every further try."
    )

    @property
    def ttl(self) -> EnrichmentTtl:
        return EnrichmentTtl(
            found=timedelta(days=self.found_ttl_days),
            unknown=timedelta(days=self.unknown_ttl_days),
        )

    @contextmanager
    def client(self) -> Iterator[EnrichmentClient]:
        settings = Settings.from_env()
        with EnrichmentClient(
            self.base_url or settings.enrichment_base_url,
            settings.enrichment_api_key,
            requests_per_second=self.requests_per_second,
            max_attempts=self.max_attempts,
            backoff_base_s=self.backoff_base_s,
        ) as client:
            yield client


class OutreachResource(dg.ConfigurableResource):
    """The sequencer (Outreach API v2, OUTREACH_BASE_URL) and the enrollment rules; the token
    only ever comes from OUTREACH_ACCESS_TOKEN."""

    base_url: str | None = None
    quality_window_minutes: float | None = Field(
        default=None,
        ge=0,
        description="Minutes an enrollment is held for corrections before it is sent; unset: "
        "GTM_ENROLLMENT_QUALITY_WINDOW_MINUTES, else config/sequences.yaml.",
    )
    max_attempts: int = Field(default=5, ge=1, description="Tries per request, retries included.")
    backoff_base_s: float = Field(
        default=0.5, ge=0, description="First retry's wait; doubled for every further try."
    )

    @property
    def rules(self) -> SequenceRules:
        window = self.quality_window_minutes
        if window is None:
            window = Settings.from_env().enrollment_quality_window_minutes
        return default_sequence_rules().with_quality_window(window)

    @contextmanager
    def client(self) -> Iterator[OutreachClient]:
        settings = Settings.from_env()
        with OutreachClient(
            self.base_url or settings.outreach_base_url,
            settings.outreach_access_token,
            max_attempts=self.max_attempts,
            backoff_base_s=self.backoff_base_s,
        ) as client:
            yield client


class SalesforceResource(dg.ConfigurableResource):
    """The Salesforce org (SALESFORCE_INSTANCE_URL, SALESFORCE_ACCESS_TOKEN), written through
    Bulk API 2.0 when GTM_CRM_DESTINATION is salesforce."""

    instance_url: str | None = None

    @contextmanager
    def client(self) -> Iterator[SalesforceClient]:
        settings = Settings.from_env()
        url = self.instance_url or settings.salesforce_instance_url
        with SalesforceClient(url, settings.salesforce_access_token) as client:
            yield client


RESOURCES = {
    "landing": LandingZoneResource(),
    "warehouse": WarehouseResource(),
    "hubspot": HubSpotResource(),
    "enrichment": EnrichmentResource(),
    "outreach": OutreachResource(),
    "salesforce": SalesforceResource(),
}
