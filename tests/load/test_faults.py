"""20,000 contacts loaded through an unreliable CRM: 10% server errors, 10% rate-limit
refusals, 200 ms more per answer, and records the CRM refuses. Every valid record ends in
the CRM exactly once, every invalid one in the dead-letter queue with its reason."""

from __future__ import annotations

import dagster as dg

from gtm_orchestration.defs.load.assets import hubspot_contacts
from gtm_orchestration.defs.resources import RESOURCES
from gtm_orchestration.lib.warehouse import Warehouse
from gtm_orchestration.settings import Settings
from tests.conftest import Crm, pipeline_instance
from tests.load.support import (
    all_records,
    observer,
    pending_dead_letters,
    set_faults,
    warehouse,
)

CONTACTS = 20_000
# Every 50th lead carries a seniority the portal does not offer.
INVALID_EVERY = 50
DAY, LATER_DAYS = "2026-11-02", ("2026-11-03", "2026-11-04", "2026-11-05")


def _land_leads(settings: Settings) -> None:
    """The day's leads in the warehouse, as the transform leaves them."""
    with Warehouse(settings.warehouse_url).connect() as con:
        con.execute(
            f"""
            CREATE TABLE gtm.leads AS
            SELECT 'c' || i || '@firm' || (i % 97) || '.example.com' AS email,
                'Person' AS first_name, 'Number' || i AS last_name, 'VP Marketing' AS title,
                'marketing' AS function,
                CASE WHEN i % {INVALID_EVERY} = 0 THEN 'chief_wizard' ELSE 'vp' END AS seniority,
                NULL::VARCHAR AS domain, 'leads' AS source, 2 AS mapping_version,
                DATE '{DAY}' AS partition_date
            FROM range({CONTACTS}) AS t(i)
            """
        )


def _load(instance: dg.DagsterInstance, day: str, max_attempts: int = 6) -> dict[str, int]:
    result = dg.materialize(
        [hubspot_contacts],
        partition_key=day,
        instance=instance,
        resources=RESOURCES,
        run_config={"ops": {"hubspot_contacts": {"config": {"max_attempts": max_attempts}}}},
    )
    assert result.success
    (materialization,) = result.asset_materializations_for_node("hubspot_contacts")
    return {k: v.value for k, v in materialization.metadata.items() if isinstance(v.value, int)}


def test_every_record_is_delivered_once_or_dead_lettered_with_its_reason(
    settings: Settings, crm: Crm
) -> None:
    _land_leads(settings)
    invalid = {f"c{i}@firm{i % 97}.example.com" for i in range(0, CONTACTS, INVALID_EVERY)}
    valid = {f"c{i}@firm{i % 97}.example.com" for i in range(CONTACTS)} - invalid
    set_faults(crm, error_rate=0.1, rate_limit_rate=0.1, latency_ms=200)

    with pipeline_instance() as instance:
        # Two tries a request: some batches fail both and wait in the queue as transient.
        runs = [_load(instance, DAY, max_attempts=2)]
        first = runs[0]
        assert first["records"] == CONTACTS
        assert first["created"] + first["dead_lettered"] == CONTACTS
        # An invalid record whose whole batch failed is queued as transient for now: the
        # CRM has not judged it yet.
        assert first["dead_lettered_transient"] > 0
        assert first["dead_lettered_permanent"] <= len(invalid)
        # Later loads (of other days, with nothing new) retry the transient ones, still
        # through the faults, until none is left.
        for day in LATER_DAYS:
            if not any(c == "transient" for c, _, _ in pending_dead_letters(settings).values()):
                break
            runs.append(_load(instance, day))
    set_faults(crm)
    print(
        "runs:",
        [
            {k: r[k] for k in ("created", "dead_lettered_transient", "dead_letters_retried")}
            for r in runs
        ],
    )
    assert len(runs) >= 2
    assert runs[1]["dead_letters_retried"] == first["dead_lettered_transient"]
    assert sum(r["created"] for r in runs) == len(valid)

    contacts = all_records(observer(crm), "contacts", "email")
    emails = [c["properties"]["email"] for c in contacts]
    assert len(emails) == len(set(emails)) == len(valid)
    assert set(emails) == valid
    assert crm.stats()["writes"]["contacts"] == {"created": len(valid), "updated": 0}

    letters = pending_dead_letters(settings)
    assert set(letters) == {f"contacts:{email}" for email in invalid}
    for key, (category, code, error) in letters.items():
        assert (category, code) == ("permanent", "INVALID_OPTION")
        assert error.startswith(f"{key.replace(':', ' ')}: gtm_seniority='chief_wizard': ")
    with warehouse(settings) as con:
        confirmed = con.execute(
            "SELECT count(*) FROM gtm.sync_ledger WHERE object_type = 'contacts'"
        ).fetchone()[0]
    assert confirmed + len(letters) == CONTACTS
