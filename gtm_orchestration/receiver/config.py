"""The receiver's settings, read from the environment; empty variables count as unset."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from gtm_orchestration.settings import SANDBOX_HUBSPOT_CLIENT_SECRET, SANDBOX_WEBHOOK_SECRET

RECEIVER_HOST = "127.0.0.1"


@dataclass(frozen=True)
class ReceiverConfig:
    """Secrets that authenticate webhook senders, and the URL HubSpot is told to call.

    ``public_base_url`` (``GTM_RECEIVER_PUBLIC_URL``, e.g. ``https://hooks.example.com``) is
    the scheme and host HubSpot signs when the receiver sits behind a proxy; unset, the URL
    the request arrived on is used.
    """

    hubspot_client_secret: str = field(repr=False)  # a secret: never printed
    webhook_secret: str = field(repr=False)  # a secret: never printed
    public_base_url: str | None = None

    @classmethod
    def from_env(cls) -> ReceiverConfig:
        """``HUBSPOT_CLIENT_SECRET``, ``GTM_WEBHOOK_SECRET`` and ``GTM_RECEIVER_PUBLIC_URL``,
        falling back to the sandbox secrets so the demo runs offline."""
        return cls(
            hubspot_client_secret=os.environ.get("HUBSPOT_CLIENT_SECRET")
            or SANDBOX_HUBSPOT_CLIENT_SECRET,
            webhook_secret=os.environ.get("GTM_WEBHOOK_SECRET") or SANDBOX_WEBHOOK_SECRET,
            public_base_url=os.environ.get("GTM_RECEIVER_PUBLIC_URL") or None,
        )
