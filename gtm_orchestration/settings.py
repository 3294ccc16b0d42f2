"""Runtime settings, all from the environment, with defaults that run the demo offline."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from upath import UPath

from gtm_orchestration.lib.storage import storage_root

SANDBOX_HOST = "127.0.0.1"
SANDBOX_PORT = 8765
RECEIVER_PORT = 8787
# Sandbox credentials: not secrets, they only open the local emulators.
SANDBOX_HUBSPOT_TOKEN = "sandbox-hubspot-token"
SANDBOX_HUBSPOT_CLIENT_SECRET = "sandbox-hubspot-client-secret"
SANDBOX_WEBHOOK_SECRET = "sandbox-webhook-secret"
SANDBOX_ENRICHMENT_API_KEY = "sandbox-enrichment-key"
SANDBOX_OUTREACH_TOKEN = "sandbox-outreach-token"
SANDBOX_SALESFORCE_TOKEN = "sandbox-salesforce-token"
# The sandbox's alert sinks (sandbox/alert_sinks.py); a PagerDuty routing key has 32 characters.
SANDBOX_SLACK_WEBHOOK_PATH = "/slack/services/TSANDBOX/BSANDBOX/sandbox-slack-webhook-token"
SANDBOX_PAGERDUTY_ROUTING_KEY = "sandbox0pagerduty0routing0key000"
DAGSTER_UI_URL = "http://127.0.0.1:3000"
CRM_DESTINATIONS = ("hubspot", "salesforce")


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    warehouse_url: str = field(repr=False)  # a PostgreSQL URL may carry a password
    hubspot_base_url: str
    hubspot_access_token: str = field(repr=False)  # a secret: never printed
    enrichment_base_url: str
    enrichment_api_key: str = field(repr=False)  # a secret: never printed
    receiver_port: int = RECEIVER_PORT
    outreach_base_url: str = f"http://{SANDBOX_HOST}:{SANDBOX_PORT}"
    outreach_access_token: str = field(default=SANDBOX_OUTREACH_TOKEN, repr=False)  # secret
    # None: the quality window of config/sequences.yaml.
    enrollment_quality_window_minutes: float | None = None
    # Which CRM the load writes leads and companies to: hubspot or salesforce.
    crm_destination: str = "hubspot"
    salesforce_instance_url: str = f"http://{SANDBOX_HOST}:{SANDBOX_PORT}"
    salesforce_access_token: str = field(default=SANDBOX_SALESFORCE_TOKEN, repr=False)  # secret
    # Alert channels. A Slack webhook URL is its own credential, an SMTP URL may carry a
    # password: neither is ever printed.
    slack_webhook_url: str = field(
        default=f"http://{SANDBOX_HOST}:{SANDBOX_PORT}{SANDBOX_SLACK_WEBHOOK_PATH}", repr=False
    )
    pagerduty_events_url: str = f"http://{SANDBOX_HOST}:{SANDBOX_PORT}/v2/enqueue"
    pagerduty_routing_key: str = field(default=SANDBOX_PAGERDUTY_ROUTING_KEY, repr=False)
    smtp_url: str | None = field(default=None, repr=False)  # None: digests go to the log
    digest_to: tuple[str, ...] = ()
    dagster_ui_url: str = DAGSTER_UI_URL
    # Where the landing zone and the receiver's spool live: a local folder (by default the
    # data folder) or an object store (s3://bucket/prefix); see lib/storage.py.
    storage_url: str = ""
    s3_endpoint_url: str | None = None

    @property
    def storage_root(self) -> UPath:
        """The root of the landing zone: ``GTM_STORAGE_URL``, else the data folder."""
        return storage_root(self.storage_url or self.data_dir, endpoint_url=self.s3_endpoint_url)

    @property
    def landing_dir(self) -> UPath:
        return self.storage_root / "landing"

    @property
    def files_landing_dir(self) -> UPath:
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
            # Every sandbox also serves the sequencer, as it serves the enrichment API.
            outreach_base_url=env(
                "OUTREACH_BASE_URL", hubspot_base_url if hubspot_is_sandbox else sandbox_url
            ).rstrip("/"),
            outreach_access_token=env("OUTREACH_ACCESS_TOKEN", SANDBOX_OUTREACH_TOKEN),
            enrollment_quality_window_minutes=_minutes("GTM_ENROLLMENT_QUALITY_WINDOW_MINUTES"),
            crm_destination=_choice("GTM_CRM_DESTINATION", CRM_DESTINATIONS),
            # Every sandbox also serves the Salesforce org, as it serves the enrichment API.
            salesforce_instance_url=env(
                "SALESFORCE_INSTANCE_URL", hubspot_base_url if hubspot_is_sandbox else sandbox_url
            ).rstrip("/"),
            salesforce_access_token=env("SALESFORCE_ACCESS_TOKEN", SANDBOX_SALESFORCE_TOKEN),
            # Every sandbox also serves the alert sinks, as it serves the enrichment API.
            slack_webhook_url=env(
                "SLACK_WEBHOOK_URL",
                (hubspot_base_url if hubspot_is_sandbox else sandbox_url)
                + SANDBOX_SLACK_WEBHOOK_PATH,
            ),
            pagerduty_events_url=env(
                "PAGERDUTY_EVENTS_URL",
                (hubspot_base_url if hubspot_is_sandbox else sandbox_url) + "/v2/enqueue",
            ),
            pagerduty_routing_key=env("PAGERDUTY_ROUTING_KEY", SANDBOX_PAGERDUTY_ROUTING_KEY),
            smtp_url=os.environ.get("GTM_SMTP_URL") or None,
            digest_to=tuple(
                address.strip()
                for address in env("GTM_DIGEST_TO", "").split(",")
                if address.strip()
            ),
            dagster_ui_url=env("GTM_DAGSTER_UI_URL", DAGSTER_UI_URL).rstrip("/"),
            storage_url=env("GTM_STORAGE_URL", str(data_dir)),
            s3_endpoint_url=os.environ.get("GTM_S3_ENDPOINT_URL") or None,
        )


def _choice(name: str, choices: tuple[str, ...]) -> str:
    """The value of environment variable ``name``, one of ``choices`` (the first when unset)."""
    value = (os.environ.get(name) or choices[0]).strip().lower()
    if value not in choices:
        raise ValueError(f"{name}={value!r}: expected one of {', '.join(choices)}")
    return value


def _minutes(name: str) -> float | None:
    """The number of minutes environment variable ``name`` holds; None when unset."""
    value = os.environ.get(name)
    if not value:
        return None
    try:
        minutes = float(value)
    except ValueError:
        minutes = -1.0
    if minutes < 0:
        raise ValueError(f"{name}={value!r}: expected a number of minutes, 0 or more, e.g. 15")
    return minutes
