"""Form fills and engagement signals: receiver -> landing zone -> sensor -> CRM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import dagster as dg
import httpx
import pytest

from gtm_orchestration.definitions import defs
from gtm_orchestration.defs.extract.sensors import (
    WARNING_CHECKS_EVERY_S,
    blocking_checks,
    landed_run_requests,
)
from gtm_orchestration.defs.resources import RESOURCES
from gtm_orchestration.lib.engagement import score_engagement
from gtm_orchestration.lib.landing import scan_lead_webhook_batches
from gtm_orchestration.receiver.server import ReceiverServer
from gtm_orchestration.receiver.signatures import gtm_signature
from gtm_orchestration.settings import SANDBOX_WEBHOOK_SECRET, Settings
from tests.conftest import Crm, drop_file, pipeline_instance
from tests.e2e.pipeline import launch, webhook_runs

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
# The landing-day pipeline, as the README tells users to select it for a backfill.
BACKFILL_SELECTION = (
    "(group:extract or group:transform or group:load) and not key:hubspot_contact_snapshot"
)


@pytest.fixture
def receiver(settings: Settings) -> Iterator[httpx.Client]:
    with (
        ReceiverServer(settings.data_dir) as server,
        httpx.Client(base_url=server.base_url, timeout=30) as http,
    ):
        yield http


def post(http: httpx.Client, path: str, event: dict) -> httpx.Response:
    body = json.dumps(event).encode()
    headers = {"X-GTM-Signature": gtm_signature(SANDBOX_WEBHOOK_SECRET, body)}
    return http.post(path, content=body, headers=headers)


def test_form_fills_become_contacts_and_signals_score_them_once(
    settings: Settings, crm: Crm, receiver: httpx.Client
) -> None:
    forms = [
        {
            "event_id": "f-1",
            "email": "Jo.Park@Hooli.com",
            "first_name": "jo",
            "last_name": "park",
            "title": "VP Marketing",
            "company": "HOOLI INC",
            "country": "USA",
            "state": "CA",
            "hidden_utm_campaign": "webinar",
        },
        {
            "event_id": "f-2",
            "email": "li@initech.com",
            "first_name": "Li",
            "title": "SDR",
            "country": "Deutschland",
        },
        {"event_id": "f-3", "email": "not-an-email", "first_name": "X"},
    ]
    for form in forms:
        assert post(receiver, "/webhooks/forms/leads", form).status_code == 200
    assert post(receiver, "/webhooks/forms/leads", forms[0]).json()["status"] == "duplicate"

    open_event = {
        "event_id": "e-1",
        "type": "email_opened",
        "email": "jo.park@hooli.com",
        "occurred_at": (NOW - timedelta(days=14)).isoformat(),
    }
    meeting = {
        "event_id": "e-2",
        "type": "meeting_booked",
        "email": "jo.park@hooli.com",
        "occurred_at": NOW.isoformat(),
    }
    for _ in range(3):  # the sender delivers the same open three times
        assert post(receiver, "/webhooks/engagement/outreach", open_event).status_code == 200
    assert post(receiver, "/webhooks/engagement/outreach", meeting).status_code == 200
    # A signal for someone the CRM does not know creates no contact.
    stranger = {
        "event_id": "e-3",
        "type": "email_clicked",
        "email": "nobody@else.io",
        "occurred_at": NOW.isoformat(),
    }
    assert post(receiver, "/webhooks/engagement/outreach", stranger).status_code == 200

    with pipeline_instance() as instance:
        cursor = webhook_runs(instance)
        assert cursor is not None
        writes = crm.writes()
        assert webhook_runs(instance, cursor) == cursor  # nothing new: no run
    assert crm.writes() == writes

    contacts = {
        c["properties"]["email"]: c["properties"]
        for c in crm.all(
            "contacts",
            "email",
            "firstname",
            "company",
            "country",
            "state",
            "gtm_persona",
            "gtm_engagement_score",
            "gtm_source",
        )
    }
    assert sorted(contacts) == ["jo.park@hooli.com", "li@initech.com"]
    jo = contacts["jo.park@hooli.com"]
    assert (jo["firstname"], jo["country"], jo["state"], jo["gtm_persona"]) == (
        "Jo",
        "United States",
        "California",
        "Marketing Leader",
    )
    assert jo["gtm_source"] == "leads"
    expected, _ = score_engagement(
        [("email_opened", NOW - timedelta(days=14)), ("meeting_booked", NOW)], NOW
    )
    assert jo["gtm_engagement_score"] == str(expected)
    assert contacts["li@initech.com"]["country"] == "Germany"
    assert contacts["li@initech.com"].get("gtm_engagement_score") is None


def _evaluations(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {
        e.event_specific_data.check_name: e.event_specific_data.passed
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


def test_form_runs_carry_the_warning_checks_once_in_ten_minutes(
    settings: Settings, crm: Crm, receiver: httpx.Client
) -> None:
    sensor = defs.resolve_sensor_def("webhook_batch_sensor")
    blocking = {"required_fields_present", "emails_unique", "emails_valid"}
    blocking |= {"enumerations_valid", "domains_unique", "domains_well_formed"}
    warnings = {"landed_within_sla", "rejected_share_below_threshold", "transformed_within_sla"}
    cursor, evaluated = None, []
    with pipeline_instance() as instance:
        for n in (1, 2):
            form = {"event_id": f"f-{n}", "email": f"lead{n}@hooli.com", "first_name": "Jo"}
            assert post(receiver, "/webhooks/forms/leads", form).status_code == 200
            context = dg.build_sensor_context(
                instance=instance, cursor=cursor, resources=RESOURCES, definitions=defs
            )
            result = sensor(context)
            cursor = result.cursor
            (request,) = result.run_requests
            run = launch(instance, request)
            assert run.success
            evaluated.append(_evaluations(run))
    # The first run checks everything; the next, minutes later, only what holds the load.
    assert blocking | warnings <= set(evaluated[0])
    assert set(evaluated[1]) == blocking
    assert all(evaluated[1].values())
    emails = sorted(c["properties"]["email"] for c in crm.all("contacts", "email"))
    assert emails == ["lead1@hooli.com", "lead2@hooli.com"]
    # Ten minutes after the last run that carried them, the warnings come back.
    checked_at = json.loads(cursor)["warning_checks_at"]
    earlier = json.dumps({"mtime_ns": 0, "paths": [], "warning_checks_at": checked_at})
    item = scan_lead_webhook_batches(settings.landing_dir)[0]
    for now, carried in (
        (checked_at + WARNING_CHECKS_EVERY_S - 1, False),
        (checked_at + WARNING_CHECKS_EVERY_S, True),
    ):
        (request,), _ = landed_run_requests(
            [item],
            earlier,
            "webhook",
            warning_checks_every_s=WARNING_CHECKS_EVERY_S,
            blocking=blocking_checks(defs.get_repository_def()),
            now=now,
        )
        assert (request.asset_check_keys is None) == carried


def test_backfill_over_a_date_range_reprocesses_the_landing_zone(
    settings: Settings, crm: Crm
) -> None:
    days = []
    for offset, email in ((2, "old@globex.com"), (1, "newer@globex.com")):
        path = drop_file(settings, "leads", f"day-{offset}.csv", f"Email\n{email}\n")
        landed = datetime.now(UTC) - timedelta(days=offset)
        os.utime(path, (landed.timestamp(), landed.timestamp()))
        days.append(landed.date().isoformat())
    command = [
        sys.executable,
        "-m",
        "dagster",
        "asset",
        "materialize",
        "-m",
        "gtm_orchestration.definitions",
        "--select",
        BACKFILL_SELECTION,
        "--partition-range",
        f"{days[0]}...{days[1]}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=os.environ)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    emails = sorted(c["properties"]["email"] for c in crm.all("contacts", "email"))
    assert emails == ["newer@globex.com", "old@globex.com"]

    # A second backfill over the same days re-derives everything and sends nothing.
    write_requests = crm.write_requests()
    again = subprocess.run(command, capture_output=True, text=True, timeout=600, env=os.environ)
    assert again.returncode == 0, again.stderr[-3000:]
    assert crm.write_requests() == write_requests
    with dg.DagsterInstance.get() as instance:
        materialized = instance.get_materialized_partitions(dg.AssetKey("hubspot_contacts"))
    assert set(days) <= materialized
