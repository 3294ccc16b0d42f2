"""The landing zone in an S3 bucket: drops and webhooks go through the whole pipeline."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from gtm_orchestration.defs.extract.sensors import landed_run_requests
from gtm_orchestration.lib.landing import OBJECT_STORE_LATE_DROPS, LandedItem, late_listing_ns
from gtm_orchestration.lib.storage import storage_root
from gtm_orchestration.lib.warehouse import Warehouse
from gtm_orchestration.receiver.server import ReceiverServer
from gtm_orchestration.receiver.signatures import gtm_signature
from gtm_orchestration.settings import SANDBOX_WEBHOOK_SECRET, Settings
from tests.conftest import Crm, ObjectStore, pipeline_instance
from tests.e2e.pipeline import launch, sensor_runs, webhook_runs

LEADS = (
    "E-mail,First Name,Last Name,Job Title,Company Name,Country\n"
    "dana.whitfield@globex.com,Dana,Whitfield,VP of Marketing,Globex Corporation,USA\n"
    "priya@umbrella.io,Priya,Raman,Marketing Manager,Umbrella,Deutschland\n"
    "not-an-email,No,Body,,,\n"
)


def _ingestions(settings: Settings) -> list[tuple[str, str, int, int]]:
    with Warehouse(settings.warehouse_url).connect(read_only=True) as con:
        return con.execute(
            "SELECT file_path, status, rows_accepted, rows_rejected FROM raw.file_ingestions "
            "ORDER BY started_at"
        ).fetchall()


def test_a_csv_dropped_in_the_bucket_reaches_the_crm_once(
    s3_settings: Settings, object_store: ObjectStore, crm: Crm
) -> None:
    key = "gtm/landing/files/leads/webinar.csv"
    object_store.put(key, LEADS.encode())
    url = f"s3://{object_store.bucket}/{key}"

    with pipeline_instance() as instance:
        requests, cursor = sensor_runs(instance)
        assert len(requests) == 1
        assert requests[0].partition_key == datetime.now(UTC).date().isoformat()
        assert launch(instance, requests[0]).success
        assert sensor_runs(instance, cursor)[0] == [], "nothing new: no run"

        contacts = {
            c["properties"]["email"]: c["properties"]
            for c in crm.all("contacts", "email", "country", "gtm_persona", "gtm_source")
        }
        assert sorted(contacts) == ["dana.whitfield@globex.com", "priya@umbrella.io"]
        assert contacts["priya@umbrella.io"]["country"] == "Germany"
        assert contacts["dana.whitfield@globex.com"]["gtm_persona"] == "Marketing Leader"
        assert _ingestions(s3_settings) == [(url, "ingested", 2, 1)]
        writes = crm.writes()

        # The same bytes dropped again under another name: seen, logged, not ingested twice.
        copy = "gtm/landing/files/leads/webinar (1).csv"
        object_store.put(copy, LEADS.encode())
        requests, _ = sensor_runs(instance, cursor)
        assert len(requests) == 1
        assert launch(instance, requests[0]).success

    assert crm.writes() == writes
    assert _ingestions(s3_settings)[1] == (
        f"s3://{object_store.bucket}/{copy}",
        "duplicate",
        0,
        0,
    )
    # Dropped objects are only ever read; nothing of the landing zone is on the local disk.
    assert object_store.get(key) == LEADS.encode()
    assert sorted(object_store.keys()) == [copy, key]
    assert not (s3_settings.data_dir / "landing").exists()


@pytest.fixture
def s3_receiver(s3_settings: Settings) -> Iterator[httpx.Client]:
    with (
        ReceiverServer(s3_settings.data_dir, storage_root=s3_settings.storage_root) as server,
        httpx.Client(base_url=server.base_url, timeout=30) as http,
    ):
        yield http


def test_a_signed_form_fill_lands_in_the_bucket_and_becomes_a_contact(
    s3_settings: Settings, object_store: ObjectStore, crm: Crm, s3_receiver: httpx.Client
) -> None:
    form = {
        "event_id": "f-1",
        "email": "Jo.Park@Hooli.com",
        "first_name": "jo",
        "title": "VP Marketing",
        "company": "HOOLI INC",
        "country": "USA",
    }
    body = json.dumps(form).encode()
    headers = {"X-GTM-Signature": gtm_signature(SANDBOX_WEBHOOK_SECRET, body)}
    answer = s3_receiver.post("/webhooks/forms/leads", content=body, headers=headers)
    assert answer.status_code == 200
    # The 2xx came after the PUT: the batch is in the bucket, whole, under its final name.
    (key,) = object_store.keys("gtm/landing/webhooks/")
    day = datetime.now(UTC).date().isoformat()
    assert key.startswith(f"gtm/landing/webhooks/forms/leads/{day}/") and key.endswith(".jsonl")
    (line,) = object_store.get(key).splitlines()
    assert json.loads(line)["payload"] == form
    # A redelivery is answered as a duplicate and lands nothing.
    again = s3_receiver.post("/webhooks/forms/leads", content=body, headers=headers)
    assert again.json()["status"] == "duplicate"
    assert object_store.keys("gtm/landing/webhooks/") == [key]
    # A bad signature: 401, nothing landed.
    forged = s3_receiver.post(
        "/webhooks/forms/leads", content=body, headers={"X-GTM-Signature": "sha256=00"}
    )
    assert forged.status_code == 401
    assert object_store.keys() == [key]

    with pipeline_instance() as instance:
        cursor = webhook_runs(instance)
        assert cursor is not None
        assert webhook_runs(instance, cursor) == cursor
    jo = crm.contact("jo.park@hooli.com", "firstname", "company", "country", "gtm_source")
    assert jo is not None
    assert (jo["properties"]["firstname"], jo["properties"]["country"]) == ("Jo", "United States")
    assert jo["properties"]["gtm_source"] == "leads"
    assert not (s3_settings.data_dir / "landing").exists()


def test_an_upload_stamped_before_a_newer_object_still_starts_a_run(tmp_path: Path) -> None:
    # An S3 object's last-modified time is when its upload started: a large file can show up
    # in a listing after a small one that started later.
    files = storage_root("s3://lead-drops/gtm") / "landing" / "files"
    late_ns = late_listing_ns(files, OBJECT_STORE_LATE_DROPS)
    assert late_ns > 0
    assert late_listing_ns(tmp_path / "landing", OBJECT_STORE_LATE_DROPS) == 0
    newer = LandedItem(files / "leads" / "small.csv", "leads", 2_000 * 10**9, 10)
    older = LandedItem(files / "leads" / "large.csv", "leads", 1_990 * 10**9, 10**9)

    requests, cursor = landed_run_requests([newer], None, "file_drop", late_ns=late_ns)
    assert len(requests) == 1
    requests, cursor = landed_run_requests([older, newer], cursor, "file_drop", late_ns=late_ns)
    assert [r.tags["gtm/landed"] for r in requests] == ["leads/large.csv"]
    assert landed_run_requests([older, newer], cursor, "file_drop", late_ns=late_ns)[0] == []
