"""Runtime settings, all from the environment, with defaults that run the demo offline."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

SANDBOX_HOST = "127.0.0.1"
SANDBOX_PORT = 8765
RECEIVER_PORT = 8787
# Sandbox credentials: not secrets, they only open the local emulators.
SANDBOX_HUBSPOT_TOKEN = "sandbox-hubspot-token"
SANDBOX_HUBSPOT_CLIENT_SECRET = "sandbox-hubspot-client-secret"
SANDBOX_WEBHOOK_SECRET = "sandbox-webhook-secret"
SANDBOX_ENRICHMENT_API_KEY = "sandbox-enrichment-key"


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    warehouse_url: str
    hubspot_base_url: str
    hubspot_access_token: str = field(repr=False)  # a secret: never printed
    enrichment_base_url: str
    enrichment_api_key: str = field(repr=False)  # a secret: never printed
    receiver_port: int = RECEIVER_PORT

    @property
    def landing_dir(self) -> Path:
        return self.data_dir / "landing"

    @property
    def files_landing_dir(self) -> Path:
        return self.landing_dir / "files"

    @property
    def sandbox_dir(self) -> Path:
        return self.data_dir / "sandbox"

    @classmethod
    def from_env(cls) -> Settings:
        def env(name: str, default: str) -> str:
            return os.environ.get(name) or default  # an empty variable counts as unset

        data_dir = Path(env("GTM_DATA_DIR", "./data")).resolve()
        sandbox_url = f"http://{SANDBOX_HOST}:{SANDBOX_PORT}"
        hubspot_base_url = env("HUBSPOT_BASE_URL", sandbox_url).rstrip("/")
        # Without a HubSpot token, HUBSPOT_BASE_URL is a sandbox, and every sandbox serves
        # the enrichment API too: a demo or test pointed at another sandbox uses all of it.
        hubspot_is_sandbox = not os.environ.get("HUBSPOT_ACCESS_TOKEN")
        return cls(
            data_dir=data_dir,
            warehouse_url=env("GTM_WAREHOUSE_URL", f"duckdb:///{data_dir / 'warehouse.duckdb'}"),
            hubspot_base_url=hubspot_base_url,
            hubspot_access_token=env("HUBSPOT_ACCESS_TOKEN", SANDBOX_HUBSPOT_TOKEN),
            enrichment_base_url=env(
                "GTM_ENRICHMENT_BASE_URL", hubspot_base_url if hubspot_is_sandbox else sandbox_url
            ).rstrip("/"),
            enrichment_api_key=env("GTM_ENRICHMENT_API_KEY", SANDBOX_ENRICHMENT_API_KEY),
            receiver_port=int(env("GTM_RECEIVER_PORT", str(RECEIVER_PORT))),
        )
