"""The webhook receiver: signed HubSpot, form and engagement deliveries landed durably on disk.

``create_receiver_app`` builds the ASGI app; ``gtm_orchestration.receiver.server`` runs it in the
foreground (``serve``, ``gtm receiver``) or on a background thread (``ReceiverServer``). The
pipeline reads what it landed with ``scan_webhook_batches`` and ``read_webhook_batch``.
"""

from gtm_orchestration.receiver.app import create_receiver_app
from gtm_orchestration.receiver.landing import (
    read_webhook_batch,
    scan_webhook_batches,
    webhook_landing_dir,
)

__all__ = [
    "create_receiver_app",
    "read_webhook_batch",
    "scan_webhook_batches",
    "webhook_landing_dir",
]
