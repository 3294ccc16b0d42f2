"""Resources of alerting: the channels and thresholds, and the digests' mail server.

Channels and mail come from the environment when an alert or a digest is sent
(SLACK_WEBHOOK_URL, PAGERDUTY_EVENTS_URL, PAGERDUTY_ROUTING_KEY, GTM_SMTP_URL,
GTM_DIGEST_TO), so no credential ever appears in configuration or the UI.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from pydantic import Field

from gtm_orchestration.lib.alerts import (
    AlertThresholds,
    default_alert_thresholds,
    load_alert_thresholds,
)
from gtm_orchestration.lib.connectors.alert_channels import AlertChannels
from gtm_orchestration.lib.smtp_digest import Digest, deliver_digest
from gtm_orchestration.settings import Settings


class AlertingResource(dg.ConfigurableResource):
    """Where alerts go (Slack, PagerDuty), what raises them (``config/alerts.yaml``) and the
    Dagster UI they link to."""

    thresholds_path: str | None = Field(
        default=None,
        description="An alert thresholds file to use instead of config/alerts.yaml (the "
        "digest schedules keep the bundled file's times).",
    )
    dagster_ui_url: str | None = Field(
        default=None, description="The Dagster UI alerts link to; unset: GTM_DAGSTER_UI_URL."
    )
    max_attempts: int = Field(default=3, ge=1, description="Tries per message, retries included.")
    backoff_base_s: float = Field(
        default=0.5, ge=0, description="First retry's wait; doubled for every further try."
    )

    def thresholds(self) -> AlertThresholds:
        """The thresholds in force; raises ConfigError naming the file, key and expectation."""
        if self.thresholds_path:
            return load_alert_thresholds(Path(self.thresholds_path))
        return default_alert_thresholds()

    @property
    def ui_url(self) -> str:
        return (self.dagster_ui_url or Settings.from_env().dagster_ui_url).rstrip("/")

    @contextmanager
    def channels(self) -> Iterator[AlertChannels]:
        """The Slack and PagerDuty channels, with their credentials from the environment."""
        settings = Settings.from_env()
        with AlertChannels(
            settings.slack_webhook_url,
            settings.pagerduty_events_url,
            settings.pagerduty_routing_key,
            self.ui_url,
            max_attempts=self.max_attempts,
            backoff_base_s=self.backoff_base_s,
        ) as channels:
            yield channels


class DigestMailResource(dg.ConfigurableResource):
    """The digests' SMTP server (GTM_SMTP_URL) and recipients (GTM_DIGEST_TO); with no
    server, digests are written to the run's log."""

    def deliver(self, digest: Digest, log: Callable[[str], None]) -> str:
        """Send ``digest`` (or log it); returns where it went."""
        settings = Settings.from_env()
        return deliver_digest(digest, settings.smtp_url, settings.digest_to, log)
