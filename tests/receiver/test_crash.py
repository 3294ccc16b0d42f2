"""A receiver killed with SIGKILL mid-stream has lost no event it acknowledged."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from gtm_orchestration.receiver import read_webhook_batch
from gtm_orchestration.sandbox.background import free_port
from tests.receiver.conftest import receiver_server
from tests.receiver.deliveries import (
    HUBSPOT_SECRET,
    WEBHOOK_SECRET,
    Sender,
    engagement,
    hubspot_event,
    landed_ids,
    landing_entries,
    lead,
)

SENDERS = 8
EventKey = tuple[str, str]


def start_receiver_process(data_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """``python -m gtm_orchestration.receiver.server`` with the test secrets, once it answers."""
    env = {
        **os.environ,
        "HUBSPOT_CLIENT_SECRET": HUBSPOT_SECRET,
        "GTM_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    env.pop("GTM_RECEIVER_PUBLIC_URL", None)  # HubSpot deliveries are signed for loopback
    command = [
        sys.executable,
        "-m",
        "gtm_orchestration.receiver.server",
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
        "--max-batch-age-s",
        "0.02",
    ]
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the receiver exited with {process.returncode}: {log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise TimeoutError(f"the receiver did not answer within 20 s: {log.read_text()}")


def stream_deliveries(
    base_url: str,
    sender_number: int,
    stop: threading.Event,
    acknowledged: list[EventKey],
    attempted: list[EventKey],
    failures: list[BaseException],
) -> None:
    """Deliver new events one after another until ``stop``, alternating the three channels."""
    with httpx.Client(base_url=base_url, timeout=10) as http:
        sender = Sender(base_url, http)
        for n in range(1_000_000):
            if stop.is_set():
                return
            deliver, keys = delivery(sender, sender_number, n)
            attempted.extend(keys)
            try:
                response = deliver()
            except httpx.TransportError as error:
                failures.append(error)
                return
            if response.is_success:
                acknowledged.extend(keys)


def delivery(
    sender: Sender, sender_number: int, n: int
) -> tuple[Callable[[], httpx.Response], list[EventKey]]:
    event_id = f"{sender_number}-{n}"
    if n % 3 == 0:
        number = sender_number * 1_000_000 + n * 2
        events = [hubspot_event(number), hubspot_event(number + 1)]
        keys = [("hubspot", str(number)), ("hubspot", str(number + 1))]
        return lambda: sender.hubspot(events), keys
    if n % 3 == 1:
        return lambda: sender.form("leads", lead(event_id)), [("forms/leads", event_id)]
    return (
        lambda: sender.engagement("mailer", engagement(event_id)),
        [("engagement/mailer", event_id)],
    )


def kill_mid_stream(tmp_path: Path) -> tuple[Path, list[EventKey], list[EventKey]]:
    """Stream deliveries from several threads, SIGKILL the receiver, stop the senders.

    Returns the data folder, the events acknowledged with a 2xx and every event attempted.
    """
    data_dir = tmp_path / "data"
    port = free_port()
    process = start_receiver_process(data_dir, port, tmp_path / "receiver.log")
    stop = threading.Event()
    acknowledged: list[EventKey] = []
    attempted: list[EventKey] = []
    failures: list[BaseException] = []
    threads = [
        threading.Thread(
            target=stream_deliveries,
            args=(f"http://127.0.0.1:{port}", number, stop, acknowledged, attempted, failures),
        )
        for number in range(SENDERS)
    ]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while len(acknowledged) < 300 and time.monotonic() < deadline:
            time.sleep(0.01)
        process.kill()
        process.wait(timeout=10)
    finally:
        stop.set()
        process.kill()
        for thread in threads:
            thread.join(timeout=15)
    assert process.returncode == -9
    assert len(acknowledged) >= 300, "the receiver acknowledged too little before the kill"
    assert failures, "no delivery was in flight when the receiver was killed"
    return data_dir, acknowledged, attempted


def test_sigkill_mid_stream_loses_no_acknowledged_event(tmp_path: Path) -> None:
    data_dir, acknowledged, attempted = kill_mid_stream(tmp_path)

    for path in landing_entries(data_dir):
        assert path.suffix == ".jsonl" and not path.name.startswith("."), path
        assert read_webhook_batch(path), f"{path} is empty"  # whole lines only, else it raises
    landed = landed_ids(data_dir)
    assert len(landed) == len(set(landed)), "an event landed twice"
    assert set(acknowledged) <= set(landed)

    # Restarted, the receiver answers every acknowledged event as a duplicate, and lands the
    # others once as their senders retry them.
    with (
        receiver_server(data_dir) as receiver,
        httpx.Client(base_url=receiver.base_url, timeout=10) as http,
    ):
        assert not list((data_dir / "receiver" / "spool").iterdir()), "the spool was emptied"
        sender = Sender(receiver.base_url, http)
        for channel, event_id in acknowledged:
            answer = redeliver(sender, channel, event_id)
            assert answer.json()["status"] == "duplicate", (channel, event_id)
        for channel, event_id in set(attempted) - set(acknowledged):
            assert redeliver(sender, channel, event_id).status_code == 200

    landed = landed_ids(data_dir)
    assert sorted(landed) == sorted(set(attempted))


def redeliver(sender: Sender, channel: str, event_id: str) -> httpx.Response:
    if channel == "hubspot":
        return sender.hubspot([hubspot_event(int(event_id))])
    if channel == "forms/leads":
        return sender.form("leads", lead(event_id))
    return sender.engagement("mailer", engagement(event_id))
