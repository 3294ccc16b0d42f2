"""One person under several spellings of one mailbox stays one CRM contact, across days."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from gtm_orchestration.lib.warehouse import Warehouse
from gtm_orchestration.settings import Settings
from tests.conftest import Crm, drop_file, pipeline_instance
from tests.e2e.pipeline import launch, sensor_runs

HEADER = "email,first_name,last_name,title,company,website,country,employees\n"


def test_a_later_spelling_of_a_gmail_address_updates_the_first_contact(
    settings: Settings, crm: Crm
) -> None:
    first = drop_file(
        settings,
        "leads",
        "webinar.csv",
        HEADER + "Jo.Park@gmail.com,Jo,Park,Marketing Manager,Park Labs,parklabs.io,US,12\n",
    )
    yesterday = (datetime.now(UTC) - timedelta(days=1)).timestamp()
    os.utime(first, (yesterday, yesterday))
    drop_file(
        settings,
        "leads",
        "event.csv",
        HEADER
        + "jopark+summit@googlemail.com,Jo,Park,VP Marketing,Park Labs,parklabs.io,US,40\n"
        + "jo.park@outlook.com,Jo,Park,Engineer,Other Jo Inc,otherjo.com,US,5\n",
    )

    with pipeline_instance() as instance:
        requests, _ = sensor_runs(instance)
        assert len(requests) == 2
        for request in sorted(requests, key=lambda r: r.partition_key):
            assert launch(instance, request).success
        # Both days again: nothing changes.
        writes = crm.writes()
        for request in requests:
            assert launch(instance, request).success
        assert crm.writes() == writes

    contacts = {
        c["properties"]["email"]: c["properties"]
        for c in crm.all("contacts", "email", "jobtitle", "numemployees")
    }
    # The gmail address is one person: the later day updated the contact of the first
    # address; the outlook address with the same local part is somebody else.
    assert sorted(contacts) == ["jo.park@gmail.com", "jo.park@outlook.com"]
    assert contacts["jo.park@gmail.com"]["jobtitle"] == "VP Marketing"

    with Warehouse(settings.warehouse_url).connect(read_only=True) as con:
        assert con.execute(
            "SELECT identity_key, email FROM gtm.identities ORDER BY 1"
        ).fetchall() == [
            ("jo.park@outlook.com", "jo.park@outlook.com"),
            ("jopark@gmail.com", "jo.park@gmail.com"),
        ]
