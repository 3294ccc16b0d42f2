"""A load killed with SIGKILL in the middle of its batches: the rerun neither duplicates nor
loses a contact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from gtm_orchestration.settings import Settings
from tests.conftest import Crm, drop_file
from tests.load.support import (
    associated_company_domains,
    leads_csv,
    observer,
    pending_dead_letters,
    set_faults,
    warehouse,
)

LEADS = 3_000


def _gtm_process(settings: Settings, crm: Crm) -> subprocess.Popen[str]:
    env = dict(
        os.environ,
        GTM_DATA_DIR=str(settings.data_dir),
        HUBSPOT_BASE_URL=crm.base_url,
        DAGSTER_HOME=os.environ["DAGSTER_HOME"],
    )
    return subprocess.Popen(
        [sys.executable, "-m", "gtm_orchestration.cli", "process"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _contacts_created(crm: Crm) -> int:
    return crm.stats()["writes"]["contacts"]["created"]


def test_a_load_killed_mid_batch_is_rerun_without_duplicates_or_loss(
    settings: Settings, crm: Crm
) -> None:
    drop_file(settings, "leads", "conference.csv", leads_csv(LEADS))
    # Every CRM answer takes 200 ms more: the load spends its time with batches in flight.
    set_faults(crm, latency_ms=200)
    first = _gtm_process(settings, crm)
    deadline = time.monotonic() + 240
    while _contacts_created(crm) < LEADS // 4:
        assert first.poll() is None, first.communicate()[0]
        assert time.monotonic() < deadline, "the load never started"
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = _contacts_created(crm)
    assert LEADS // 4 <= killed_at < LEADS
    set_faults(crm)

    rerun = _gtm_process(settings, crm)
    output = rerun.communicate(timeout=400)[0]
    assert rerun.returncode == 0, output

    reader = observer(crm)
    contacts = reader.all("contacts", "email", "lastname")
    emails = [c["properties"]["email"] for c in contacts]
    assert len(emails) == len(set(emails)) == LEADS
    assert set(emails) == {f"lead{i}@company{i % 20}.com" for i in range(LEADS)}
    # Each contact was created once and never written again: the rerun's creates of the
    # records the killed run had sent were refused, and their reads found them complete.
    assert crm.stats()["writes"]["contacts"] == {"created": LEADS, "updated": 0}
    assert {c["properties"]["lastname"] for c in contacts} == {f"Number{i}" for i in range(LEADS)}
    with warehouse(settings) as con:
        ledger = con.execute(
            "SELECT object_type, count(*), count(DISTINCT record_key) FROM gtm.sync_ledger "
            "WHERE destination = 'hubspot' GROUP BY ALL ORDER BY 1"
        ).fetchall()
    assert ledger == [
        ("companies", 20, 20),
        ("contact_company", LEADS, LEADS),
        ("contacts", LEADS, LEADS),
    ]
    assert pending_dead_letters(settings) == {}
    sample = [c for c in contacts if c["properties"]["email"].startswith("lead1")][:20]
    assert associated_company_domains(reader, sample) == {
        c["properties"]["email"]: [c["properties"]["email"].split("@")[1]] for c in sample
    }
