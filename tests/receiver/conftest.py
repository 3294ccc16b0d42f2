"""A receiver on a free loopback port, in this test's own data folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gtm_orchestration.receiver.server import ReceiverServer
from tests.receiver.deliveries import HUBSPOT_SECRET, WEBHOOK_SECRET, Sender


def receiver_server(data_dir: Path, **options: object) -> ReceiverServer:
    """A receiver with the test secrets and a short batch age, not yet started."""
    return ReceiverServer(
        data_dir,
        hubspot_client_secret=HUBSPOT_SECRET,
        webhook_secret=WEBHOOK_SECRET,
        **{"max_batch_age_s": 0.05, "public_base_url": None, **options},
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def receiver(data_dir: Path) -> Iterator[ReceiverServer]:
    with receiver_server(data_dir) as server:
        yield server


@pytest.fixture
def sender(receiver: ReceiverServer) -> Iterator[Sender]:
    with httpx.Client(base_url=receiver.base_url, timeout=10) as http:
        yield Sender(receiver.base_url, http)
