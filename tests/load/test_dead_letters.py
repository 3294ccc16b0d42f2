"""Records the CRM refuses wait in the dead-letter queue until a fix is replayed; a CRM that
fails outright fails the load and its records are retried by the next one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from gtm_orchestration.definitions import defs
from gtm_orchestration.lib.mapping import MAPPINGS_DIR
from gtm_orchestration.settings import Settings
from tests.conftest import Crm, drop_file, pipeline_instance
from tests.load.support import (
    associated_company_domains,
    observer,
    pending_dead_letters,
    set_faults,
)

DOMAINS = ("globex.com", "initech.com", "umbrella.io")
# Two people at each of three companies; one of each pair gives a head count.
LEADS = (
    "email,first_name,last_name,title,company,website,phone,country,state,city,industry,"
    "annual_revenue,employees\n"
    + "".join(
        f"{who}@{domain},{who.title()},Lee,VP Marketing,{domain.split('.')[0].title()},"
        f"https://{domain},,United States,CA,San Francisco,Software,$12M,{employees}\n"
        for domain in DOMAINS
        for who, employees in (("ann", "51-200"), ("bob", ""))
    )
)
WITH_HEAD_COUNT = {f"ann@{d}" for d in DOMAINS}


def _lead_pipeline(
    instance: dg.DagsterInstance, day: str, run_config: dict | None = None
) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def("lead_pipeline").execute_in_process(
        instance=instance, partition_key=day, run_config=run_config or {}, raise_on_error=False
    )


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, object]:
    (materialization,) = result.asset_materializations_for_node(asset)
    return {k: v.value for k, v in materialization.metadata.items()}


def _gtm(settings: Settings, crm: Crm, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        GTM_DATA_DIR=str(settings.data_dir),
        HUBSPOT_BASE_URL=crm.base_url,
    )
    return subprocess.run(
        [sys.executable, "-m", "gtm_orchestration.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def mappings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A registry of this test's own, a copy of the shipped one."""
    folder = tmp_path / "mappings"
    shutil.copytree(MAPPINGS_DIR, folder)
    monkeypatch.setenv("GTM_MAPPINGS_DIR", str(folder))
    return folder


def _new_version(folder: Path, edit: tuple[str, str] | None = None) -> int:
    """Copy the newest registry version to the next, with one line edited."""
    newest = max(int(p.stem[1:]) for p in folder.glob("v*.yaml"))
    text = (folder / f"v{newest}.yaml").read_text()
    text = text.replace(f"\nversion: {newest}\n", f"\nversion: {newest + 1}\n")
    if edit is not None:
        assert edit[0] in text
        text = text.replace(*edit)
    (folder / f"v{newest + 1}.yaml").write_text(text)
    return newest + 1


def test_refused_records_wait_in_the_queue_until_the_fixed_mapping_is_replayed(
    settings: Settings, crm: Crm, mappings: Path
) -> None:
    # A new mapping version sends the raw head count where HubSpot wants one of its bands.
    _new_version(mappings, ("    numemployees: employees_band\n", "    numemployees: employees\n"))
    drop_file(settings, "leads", "webinar.csv", LEADS)
    today = datetime.now(UTC).date().isoformat()
    with pipeline_instance() as instance:
        result = _lead_pipeline(instance, today)
    # Records refused one by one do not fail the run; they are counted.
    assert result.success
    contacts = _metadata(result, "hubspot_contacts")
    assert (contacts["created"], contacts["dead_lettered"]) == (3, 3)
    assert (contacts["associations_created"], contacts["associations_dead_lettered"]) == (3, 3)

    listed = _gtm(settings, crm, "dlq", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    letters = {(d["stream"], d["record_key"]): d for d in json.loads(listed.stdout)}
    assert set(letters) == {("contacts", e) for e in WITH_HEAD_COUNT} | {
        ("contact_company", e) for e in WITH_HEAD_COUNT
    }
    refused = letters[("contacts", "ann@globex.com")]
    assert (refused["category"], refused["error_code"], refused["status"]) == (
        "permanent",
        "INVALID_OPTION",
        "pending",
    )
    assert refused["error"].startswith("contacts ann@globex.com: numemployees='")
    assert refused["payload"]["email"] == "ann@globex.com"
    assert refused["attempts"] == 1 and refused["first_failed_at"] == refused["last_failed_at"]
    waiting = letters[("contact_company", "ann@globex.com")]
    assert waiting["category"] == "transient"
    assert "contact ann@globex.com is not in the CRM yet" in waiting["error"]
    assert "ann@globex.com" in _gtm(settings, crm, "dlq", "list").stdout

    # Replayed before the fix, a record fails again, and stays queued.
    again = _gtm(settings, crm, "dlq", "replay", "--id", str(refused["id"]))
    assert again.returncode == 1
    assert "contacts: 1 replayed, 0 delivered, 1 still failing" in again.stdout
    unknown = _gtm(settings, crm, "dlq", "replay", "--id", "999999")
    assert (unknown.returncode, unknown.stderr.strip()) == (2, "not pending dead letters: 999999")

    # The mapping is fixed; the replay rebuilds the records from the warehouse with it.
    _new_version(mappings, ("    numemployees: employees\n", "    numemployees: employees_band\n"))
    one = _gtm(settings, crm, "dlq", "replay", "--id", str(refused["id"]))
    assert one.returncode == 0, one.stdout + one.stderr
    assert one.stdout.strip() == "contacts: 1 replayed, 1 delivered, 0 still failing"
    replayed = _gtm(settings, crm, "dlq", "replay")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "contacts: 2 replayed, 2 delivered, 0 still failing" in replayed.stdout
    assert "contact_company: 3 replayed, 3 delivered, 0 still failing" in replayed.stdout
    assert pending_dead_letters(settings) == {}

    reader = observer(crm)
    people = reader.all("contacts", "email", "numemployees")
    bands = {p["properties"]["email"]: p["properties"].get("numemployees") for p in people}
    assert set(bands) == {f"{who}@{d}" for d in DOMAINS for who in ("ann", "bob")}
    assert all(bands[email] for email in WITH_HEAD_COUNT)
    assert not any(band for email, band in bands.items() if email not in WITH_HEAD_COUNT)
    assert associated_company_domains(reader, people) == {
        p["properties"]["email"]: [p["properties"]["email"].split("@")[1]] for p in people
    }

    # Replaying again sends nothing: a delivered record has left the queue.
    requests = crm.stats()["total"]
    again = _gtm(settings, crm, "dlq", "replay")
    assert (again.returncode, again.stdout.strip()) == (0, "nothing to replay")
    assert crm.stats()["total"] == requests
    history = json.loads(_gtm(settings, crm, "dlq", "list", "--all", "--json").stdout)
    assert {d["status"] for d in history} == {"delivered"}
    first = next(d for d in history if d["id"] == refused["id"])
    assert first["attempts"] == 2 and first["resolved_at"] is not None


def test_a_crm_failing_outright_fails_the_load_and_the_next_load_delivers(
    settings: Settings, crm: Crm
) -> None:
    drop_file(settings, "leads", "webinar.csv", LEADS)
    today = datetime.now(UTC).date().isoformat()
    set_faults(crm, error_rate=1.0)
    quick = {"ops": {"hubspot_companies": {"config": {"max_attempts": 2}}}}
    with pipeline_instance() as instance:
        failed = _lead_pipeline(instance, today, quick)
        assert not failed.success
        (failure,) = [e for e in failed.all_events if e.is_step_failure]
        assert failure.step_key == "hubspot_companies"
        assert "HubSpot failed while loading companies" in failure.step_failure_data.error.message
        assert {k: c for k, (c, _, _) in pending_dead_letters(settings).items()} == {
            f"companies:{d}": "transient" for d in DOMAINS
        }

        set_faults(crm)
        assert _lead_pipeline(instance, today).success
    assert pending_dead_letters(settings) == {}
    assert len(observer(crm).all("companies", "domain")) == 3
    assert len(observer(crm).all("contacts", "email")) == 6
