"""Demo traffic against a real receiver on a free port, in this test's own data folder."""

from __future__ import annotations

import time
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any

from gtm_orchestration.receiver import read_webhook_batch, scan_webhook_batches
from gtm_orchestration.receiver.app import ENGAGEMENT_TYPES
from gtm_orchestration.receiver.server import ReceiverServer
from gtm_orchestration.sandbox.background import free_port
from gtm_orchestration.sandbox.traffic import DemoTraffic

SECRET = "test-webhook-secret"
LEAD_FIELDS = {
    "email", "first_name", "last_name", "title", "company", "website", "phone", "country",
    "state", "city", "industry", "annual_revenue", "employees",
}  # fmt: skip


def receiver(data_dir: Path, port: int = 0) -> ReceiverServer:
    return ReceiverServer(
        data_dir,
        port=port,
        hubspot_client_secret="test-hubspot-client-secret",
        webhook_secret=SECRET,
        max_batch_age_s=0.05,
        public_base_url=None,
    )


def landed(data_dir: Path, channel: str) -> list[dict[str, Any]]:
    """The events landed in ``channel`` (``forms/leads``, ...), oldest first."""
    folder = data_dir / "landing" / "webhooks" / channel
    return [
        event
        for path in scan_webhook_batches(data_dir / "landing")
        if folder in path.parents
        for event in read_webhook_batch(path)
    ]


def test_a_burst_lands_signed_forms_and_engagement_of_those_leads(tmp_path: Path) -> None:
    with receiver(tmp_path) as server, closing(DemoTraffic(server.base_url, SECRET)) as traffic:
        emails = traffic.post_burst(8, 12)

    forms = landed(tmp_path, "forms/leads")
    engagement = landed(tmp_path, "engagement/outreach")
    assert len(emails) == len(set(emails)) == 8
    assert [form["payload"]["email"].lower() for form in forms] == emails
    for form in forms:
        payload = form["payload"]
        assert set(payload) - {"event_id"} <= LEAD_FIELDS
        assert payload["event_id"] == form["event_id"]
    assert len(engagement) == 12
    for event in engagement:
        payload = event["payload"]
        assert payload["type"] in ENGAGEMENT_TYPES
        assert payload["email"] in emails
        assert datetime.fromisoformat(payload["occurred_at"]).utcoffset() is not None
    assert (traffic.sent, traffic.accepted, traffic.duplicates, traffic.failed) == (20, 20, 0, 0)


def test_the_same_seed_brings_the_same_people_under_new_event_ids(tmp_path: Path) -> None:
    with receiver(tmp_path) as server:
        for _ in range(2):
            with closing(DemoTraffic(server.base_url, SECRET, seed=11)) as traffic:
                traffic.post_burst(5, 0)

    forms = [form["payload"] for form in landed(tmp_path, "forms/leads")]
    first, second = forms[:5], forms[5:]
    assert len(second) == 5, "the second run's events were taken as duplicates"
    assert [{k: v for k, v in f.items() if k != "event_id"} for f in first] == [
        {k: v for k, v in f.items() if k != "event_id"} for f in second
    ]


def test_a_wrong_secret_lands_nothing(tmp_path: Path) -> None:
    with (
        receiver(tmp_path) as server,
        closing(DemoTraffic(server.base_url, "not-the-secret")) as traffic,
    ):
        assert traffic.post_burst(3, 0) == []

    assert traffic.failed == traffic.sent == 3
    assert landed(tmp_path, "forms/leads") == []


def test_the_stream_posts_at_about_the_configured_rate_and_stops(tmp_path: Path) -> None:
    with receiver(tmp_path) as server:
        traffic = DemoTraffic(server.base_url, SECRET, forms_per_minute=120)
        with traffic:
            time.sleep(4)
        sent_at_stop = traffic.sent
        time.sleep(1)

        assert traffic.sent == sent_at_stop, "requests went on after stop()"
    forms = landed(tmp_path, "forms/leads")
    engagement = landed(tmp_path, "engagement/outreach")
    # 2 forms and 3 engagement events a second, give or take the jitter.
    assert 4 <= len(forms) <= 12
    assert 6 <= len(engagement) <= 18
    # Every event landed once, whatever was delivered twice.
    events = forms + engagement
    assert len({(e["channel"], e["event_id"]) for e in events}) == len(events)
    assert traffic.duplicates >= 1
    assert traffic.failed == 0
    assert traffic.accepted == len(events) + traffic.duplicates


def test_the_stream_backs_off_while_the_receiver_is_down_and_delivers_later(
    tmp_path: Path,
) -> None:
    port = free_port()
    with DemoTraffic(f"http://127.0.0.1:{port}", SECRET, forms_per_minute=60) as traffic:
        time.sleep(1.5)
        failed_while_down = traffic.failed
        with receiver(tmp_path, port=port):
            deadline = time.monotonic() + 15
            while not landed(tmp_path, "forms/leads") and time.monotonic() < deadline:
                time.sleep(0.2)
            forms = landed(tmp_path, "forms/leads")

    # Backing off: a couple of attempts while down, not one per scheduled event.
    assert 1 <= failed_while_down <= 3
    assert forms, "nothing was delivered once the receiver came up"
    # The first form, refused while the receiver was down, was delivered after all.
    assert forms[0]["event_id"].endswith("-000001")
