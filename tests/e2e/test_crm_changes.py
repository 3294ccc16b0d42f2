"""Changes made in the CRM reach the warehouse's contact snapshot, the pipeline's own echoed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import duckdb
import httpx
import pytest

from gtm_orchestration.defs.extract.crm_changes import (
    CRM_CHANGE_DEFS,
    CrmChangeCaptureConfig,
    hubspot_contact_snapshot,
    hubspot_webhook_sensor,
)
from gtm_orchestration.defs.resources import RESOURCES
from gtm_orchestration.lib.connectors.hubspot import HubSpotClient
from gtm_orchestration.lib.crm_changes import epoch_ms, search_contact_versions
from gtm_orchestration.lib.crm_schema import Payload
from gtm_orchestration.lib.crm_sync import sync_payloads
from gtm_orchestration.lib.warehouse import Warehouse
from gtm_orchestration.receiver.landing import write_batch_file
from gtm_orchestration.receiver.server import ReceiverServer
from gtm_orchestration.settings import SANDBOX_HUBSPOT_TOKEN, Settings
from tests.conftest import Crm
from tests.receiver.deliveries import HUBSPOT_SECRET, Sender

MINUTE_MS = 60_000


@pytest.fixture
def instance(settings: Settings) -> Iterator[dg.DagsterInstance]:
    # In memory: these tests are about the warehouse and the CRM, not run storage.
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


def capture(instance: dg.DagsterInstance, **config: Any) -> dict[str, Any]:
    """Materialize the snapshot once; returns its metadata values."""
    result = dg.materialize(
        [hubspot_contact_snapshot],
        resources=RESOURCES,
        instance=instance,
        run_config=dg.RunConfig(ops={"hubspot_contact_snapshot": CrmChangeCaptureConfig(**config)}),
    )
    assert result.success
    [materialization] = result.asset_materializations_for_node("hubspot_contact_snapshot")
    return {key: value.value for key, value in materialization.metadata.items()}


@contextmanager
def warehouse(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    with Warehouse(settings.warehouse_url).connect() as con:
        yield con


def rows(settings: Settings, sql: str, *params: Any) -> list[tuple]:
    with warehouse(settings) as con:
        return con.execute(sql, list(params)).fetchall()


def snapshot(settings: Settings) -> dict[str, dict[str, Any]]:
    """The snapshot by email: properties plus the last CRM-side change source."""
    found = rows(settings, "SELECT email, properties, last_change_source FROM gtm.crm_contacts")
    return {email: json.loads(props) | {"_source": source} for email, props, source in found}


def create_contact(crm: Crm, email: str, **properties: str) -> dict:
    response = crm.http.post(
        "/crm/v3/objects/contacts", json={"properties": {"email": email, **properties}}
    )
    return response.raise_for_status().json()


def rep_edit(crm: Crm, email: str, **properties: str) -> dict:
    """A sales rep edits the contact by hand in the CRM."""
    response = crm.http.patch(
        f"/crm/v3/objects/contacts/{email}",
        params={"idProperty": "email"},
        json={"properties": properties},
        headers={"X-Sandbox-Source": "CRM_UI"},
    )
    return response.raise_for_status().json()


def set_high_water_mark(settings: Settings, mark_ms: int) -> None:
    with warehouse(settings) as con:
        con.execute(
            "UPDATE gtm.cdc_cursors SET high_water_mark = ? WHERE stream = 'hubspot_contacts_poll'",
            [mark_ms],
        )


def test_rep_edits_reach_the_snapshot_through_the_poll_once(
    settings: Settings, crm: Crm, instance: dg.DagsterInstance
) -> None:
    create_contact(crm, "ada@example.com", firstname="Ada", jobtitle="Engineer")
    create_contact(crm, "grace@example.com", firstname="Grace")
    first = capture(instance)
    assert (first["changes_poll"], first["contacts_in_snapshot"]) == (2, 2)
    assert first["window_start"] == 0.0  # the first poll reads every contact

    rep_edit(crm, "ada@example.com", jobtitle="Head of Engineering", lastname="Lovelace")
    rep_edit(crm, "grace@example.com", jobtitle="Rear Admiral")
    second = capture(instance)
    assert (second["changes_poll"], second["echoes_ignored"]) == (3, 0)
    contacts = snapshot(settings)
    assert contacts["ada@example.com"]["jobtitle"] == "Head of Engineering"
    assert contacts["ada@example.com"]["lastname"] == "Lovelace"
    assert contacts["ada@example.com"]["_source"] == "CRM_UI"
    assert contacts["grace@example.com"]["jobtitle"] == "Rear Admiral"
    changes = rows(
        settings,
        "SELECT email, property, value, change_source, is_echo FROM raw.crm_contact_changes "
        "WHERE change_type = 'property' ORDER BY email, property",
    )
    assert changes == [
        ("ada@example.com", "jobtitle", "Head of Engineering", "CRM_UI", False),
        ("ada@example.com", "lastname", "Lovelace", "CRM_UI", False),
        ("grace@example.com", "jobtitle", "Rear Admiral", "CRM_UI", False),
    ]

    # Polling again over the same overlap window finds the same versions and records nothing.
    logged = rows(settings, "SELECT count(*) FROM raw.crm_contact_changes")
    third = capture(instance)
    assert (third["changes_poll"], third["versions_polled"]) == (0, 2)
    assert rows(settings, "SELECT count(*) FROM raw.crm_contact_changes") == logged


def test_a_change_at_the_previous_windows_edge_is_not_missed(
    settings: Settings, crm: Crm, instance: dg.DagsterInstance
) -> None:
    create_contact(crm, "ada@example.com", jobtitle="Engineer")
    create_contact(crm, "grace@example.com", jobtitle="Officer")
    capture(instance)

    # The last poll ended on the very millisecond of this edit.
    edited = rep_edit(crm, "ada@example.com", jobtitle="CTO")
    set_high_water_mark(settings, epoch_ms(edited["updatedAt"]))
    assert capture(instance, overlap_minutes=0)["changes_poll"] == 1
    assert snapshot(settings)["ada@example.com"]["jobtitle"] == "CTO"

    # The search indexed this edit late: the last poll had already moved two minutes past it.
    edited = rep_edit(crm, "grace@example.com", jobtitle="Commodore")
    set_high_water_mark(settings, epoch_ms(edited["updatedAt"]) + 2 * MINUTE_MS)
    assert capture(instance)["changes_poll"] == 1
    assert snapshot(settings)["grace@example.com"]["jobtitle"] == "Commodore"


def test_a_search_past_the_result_cap_starts_again_and_misses_nothing(crm: Crm) -> None:
    # Five contacts written in one request share one lastmodifieddate.
    crm.http.post(
        "/crm/v3/objects/contacts/batch/upsert",
        json={
            "inputs": [
                {"idProperty": "email", "id": f"c{i}@example.com", "properties": {}}
                for i in range(5)
            ]
        },
    ).raise_for_status()
    create_contact(crm, "late1@example.com")
    create_contact(crm, "late2@example.com")
    now_ms = epoch_ms(datetime.now(UTC).isoformat())
    with HubSpotClient(crm.base_url, SANDBOX_HUBSPOT_TOKEN) as client:
        outcome = search_contact_versions(client, ["email"], 0, now_ms, page_size=2, max_results=3)
    emails = [v.email for v in outcome.versions]
    assert sorted(emails) == sorted(
        [f"c{i}@example.com" for i in range(5)] + ["late1@example.com", "late2@example.com"]
    )
    assert outcome.windows >= 3  # the shared millisecond was paged by id, then on past it


def test_the_pipelines_own_writes_are_echoes(
    settings: Settings, crm: Crm, instance: dg.DagsterInstance
) -> None:
    ada = {"email": "ada@example.com", "firstname": "Ada", "jobtitle": "VP of Marketing"}
    grace = {"email": "grace@example.com", "firstname": "Grace", "annualrevenue": "1200000"}

    def load(*payloads: dict[str, str]) -> None:
        with warehouse(settings) as con, HubSpotClient(crm.base_url, SANDBOX_HUBSPOT_TOKEN) as c:
            sync_payloads(c, con, "contacts", [Payload(p["email"], p) for p in payloads])

    load(ada, grace)
    first = capture(instance)
    assert (first["changes_poll"], first["echoes_ignored"]) == (0, 2)

    load(ada | {"jobtitle": "CMO"}, grace)
    second = capture(instance)
    assert (second["changes_poll"], second["echoes_ignored"]) == (0, 1)
    assert snapshot(settings)["ada@example.com"]["jobtitle"] == "CMO"

    # A rep's edit counts, even when the rep types back the value the pipeline sent.
    rep_edit(crm, "grace@example.com", annualrevenue="900000")
    rep_edit(crm, "ada@example.com", jobtitle="CMO, EMEA")
    assert capture(instance)["changes_poll"] == 2
    rep_edit(crm, "ada@example.com", jobtitle="CMO")
    fourth = capture(instance)
    assert (fourth["changes_poll"], fourth["echoes_ignored"]) == (1, 0)

    contacts = snapshot(settings)
    assert contacts["ada@example.com"]["_source"] == "CRM_UI"
    assert contacts["grace@example.com"]["annualrevenue"] == "900000"
    echoes = rows(
        settings,
        "SELECT email, change_type, property, change_source FROM raw.crm_contact_changes "
        "WHERE is_echo ORDER BY loaded_at, email",
    )
    assert echoes == [
        ("ada@example.com", "record", None, "INTEGRATION"),
        ("grace@example.com", "record", None, "INTEGRATION"),
        ("ada@example.com", "property", "jobtitle", "INTEGRATION"),
    ]


def hubspot_event(event_id: int, object_id: str, occurred_ms: int, **fields: Any) -> dict:
    return {
        "eventId": event_id,
        "subscriptionId": 4242,
        "portalId": 62515,
        "occurredAt": occurred_ms,
        "objectId": int(object_id),
        "attemptNumber": 0,
        **fields,
    }


def test_webhook_batches_are_ingested_once_and_update_the_snapshot(
    settings: Settings, crm: Crm, instance: dg.DagsterInstance
) -> None:
    ada = create_contact(crm, "ada@example.com", jobtitle="Engineer")
    capture(instance)

    edited = rep_edit(crm, "ada@example.com", jobtitle="CTO")
    grace = create_contact(crm, "grace@example.com")
    events = [
        hubspot_event(
            1,
            ada["id"],
            epoch_ms(edited["updatedAt"]),
            subscriptionType="contact.propertyChange",
            propertyName="jobtitle",
            propertyValue="CTO",
            changeSource="CRM_UI",
        ),
        hubspot_event(
            2,
            grace["id"],
            epoch_ms(grace["createdAt"]),
            subscriptionType="contact.creation",
            changeSource="CRM_UI",
        ),
        hubspot_event(
            3,
            grace["id"],
            epoch_ms(grace["createdAt"]),
            subscriptionType="contact.propertyChange",
            propertyName="email",
            propertyValue="grace@example.com",
            changeSource="CRM_UI",
        ),
    ]
    with (
        ReceiverServer(settings.data_dir, hubspot_client_secret=HUBSPOT_SECRET) as receiver,
        httpx.Client(base_url=receiver.base_url, timeout=10) as http,
    ):
        assert Sender(receiver.base_url, http).hubspot(events).status_code == 200

    first = capture(instance)
    assert (first["webhook_batches"], first["webhook_events"]) == (1, 3)
    assert first["changes_webhook"] == 3
    # The poll sees Ada's edit too, but the webhook already put it in the snapshot.
    assert first["changes_poll"] == 0
    contacts = snapshot(settings)
    assert contacts["ada@example.com"]["jobtitle"] == "CTO"
    assert contacts["ada@example.com"]["_source"] == "CRM_UI"
    assert "grace@example.com" in contacts

    # Run again, and land one of the events once more in a new batch: nothing is recorded twice.
    landing = settings.data_dir / "landing" / "webhooks"
    spool = settings.data_dir / "receiver" / "spool"
    spool.mkdir(parents=True, exist_ok=True)
    line = {
        "event_id": "1",
        "channel": "hubspot",
        "source": "hubspot",
        "received_at": datetime.now(UTC).isoformat(),
        "payload": events[0],
    }
    write_batch_file(landing, spool, "hubspot", datetime.now(UTC), [line])
    logged = rows(settings, "SELECT count(*) FROM raw.crm_contact_changes")
    second = capture(instance)
    assert (second["webhook_batches"], second["changes_webhook"]) == (1, 0)
    assert capture(instance)["webhook_batches"] == 0
    assert rows(settings, "SELECT count(*) FROM raw.crm_contact_changes") == logged
    assert rows(
        settings,
        "SELECT count(*), sum(rows_total) FROM raw.file_ingestions WHERE source = ?",
        "webhooks/hubspot",
    ) == [(2, 4)]


def test_the_sensor_requests_a_run_for_new_batches_and_skips_otherwise(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    def evaluate(cursor: str | None) -> dg.SensorResult | dg.SkipReason:
        context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=RESOURCES)
        return hubspot_webhook_sensor(context)

    assert isinstance(evaluate(None), dg.SkipReason)

    landing = settings.data_dir / "landing" / "webhooks"
    spool = settings.data_dir / "receiver" / "spool"
    spool.mkdir(parents=True, exist_ok=True)

    def land(event_id: str) -> str:
        line = {
            "event_id": event_id,
            "channel": "hubspot",
            "source": "hubspot",
            "received_at": datetime.now(UTC).isoformat(),
            "payload": {"eventId": event_id, "subscriptionType": "contact.creation"},
        }
        return write_batch_file(landing, spool, "hubspot", datetime.now(UTC), [line]).path.name

    first_batch = land("1")
    # A form batch is not the CRM's business.
    write_batch_file(landing, spool, "forms/leads", datetime.now(UTC), [{"event_id": "f"}])
    result = evaluate(None)
    assert isinstance(result, dg.SensorResult)
    [request] = result.run_requests or []
    assert request.run_key == f"hubspot-webhooks:{first_batch}"
    assert result.cursor == first_batch

    skipped = evaluate(result.cursor)
    assert isinstance(skipped, dg.SkipReason)
    assert "no new HubSpot webhook batches" in (skipped.skip_message or "")

    second_batch = land("2")
    again = evaluate(result.cursor)
    assert isinstance(again, dg.SensorResult)
    assert [r.run_key for r in again.run_requests or []] == [f"hubspot-webhooks:{second_batch}"]


def test_the_change_capture_definitions_load_with_the_shared_resources() -> None:
    defs = dg.Definitions(**CRM_CHANGE_DEFS, resources=RESOURCES)
    dg.Definitions.validate_loadable(defs)
    schedule = defs.resolve_schedule_def("crm_change_poll")
    assert schedule.cron_schedule == "*/5 * * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert defs.resolve_job_def("crm_change_capture").asset_layer.selected_asset_keys == {
        dg.AssetKey("hubspot_contact_snapshot")
    }
