"""Doing the same thing twice changes nothing in the CRM the second time."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from gtm_orchestration.settings import Settings
from tests.conftest import Crm, drop_file, pipeline_instance
from tests.e2e.pipeline import launch, run_day, sensor_runs
from tests.e2e.test_file_drop import LEADS


def _updated_at(crm: Crm) -> dict[str, str]:
    return {
        r["properties"].get("email") or r["properties"].get("domain"): r["updatedAt"]
        for kind in ("contacts", "companies")
        for r in crm.all(kind, "email", "domain")
    }


def test_same_file_dropped_twice_is_ingested_once(settings: Settings, crm: Crm) -> None:
    with pipeline_instance() as instance:
        drop_file(settings, "leads", "monday.csv", LEADS)
        requests, cursor = sensor_runs(instance)
        assert launch(instance, requests[0]).success
        writes, write_requests, updated = crm.writes(), crm.write_requests(), _updated_at(crm)
        assert writes > 0

        drop_file(settings, "leads", "monday (copy).csv", LEADS)
        requests, _ = sensor_runs(instance, cursor)
        assert len(requests) == 1
        assert launch(instance, requests[0]).success

    assert (crm.writes(), crm.write_requests()) == (writes, write_requests)
    assert _updated_at(crm) == updated


def test_materializing_everything_twice_changes_nothing(settings: Settings, crm: Crm) -> None:
    drop_file(settings, "leads", "monday.csv", LEADS)
    today = datetime.now(UTC).date().isoformat()
    with pipeline_instance() as instance:
        assert run_day(instance, today).success
        writes, write_requests, updated = crm.writes(), crm.write_requests(), _updated_at(crm)
        assert run_day(instance, today).success
    assert (crm.writes(), crm.write_requests()) == (writes, write_requests)
    assert _updated_at(crm) == updated


def _demo_once(settings: Settings, crm: Crm) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        GTM_DATA_DIR=str(settings.data_dir),
        HUBSPOT_BASE_URL=crm.base_url,
        GTM_RECEIVER_PORT="0",
    )
    return subprocess.run(
        [sys.executable, "-m", "gtm_orchestration.cli", "demo", "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.embedded_only(reason="the demo is the embedded quick start")
def test_demo_once_twice_on_the_same_data_folder(settings: Settings, crm: Crm) -> None:
    first = _demo_once(settings, crm)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "contacts created" in first.stdout and "rows rejected" in first.stdout
    created = int(first.stdout.split("contacts created")[1].split()[0])
    assert created > 10
    # The sample form fills posted to the receiver are contacts too.
    assert "posted 12 form fills" in first.stdout
    emails = {
        c["properties"]["email"] for c in crm.all("contacts", "email", "gtm_engagement_score")
    }
    assert len(emails) >= created
    writes, write_requests, updated = crm.writes(), crm.write_requests(), _updated_at(crm)

    second = _demo_once(settings, crm)
    assert second.returncode == 0, second.stdout + second.stderr
    assert (crm.writes(), crm.write_requests()) == (writes, write_requests)
    assert _updated_at(crm) == updated
