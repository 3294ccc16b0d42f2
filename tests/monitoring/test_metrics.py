"""record_stage_metrics, as a load calls it: counts, error rate, latency to the CRM's
confirmation, completeness and the dictionary shares, in one row of gtm.stage_metrics."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from gtm_orchestration.lib.metrics import (
    LOAD,
    partition_label,
    record_stage_metrics,
)
from gtm_orchestration.lib.warehouse import Warehouse

NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def warehouse(warehouse_url: str) -> Warehouse:
    return Warehouse(warehouse_url)


def test_a_load_row_measures_latency_to_the_crm_confirmation(warehouse: Warehouse) -> None:
    sent = pa.table(
        {
            "email": ["ada@lovelace.io", "bob@acme.com", "cy@globex.com", "di@initech.com"],
            "title": ["VP Marketing", "Chief Wizard", None, "CTO"],
            "function": ["marketing", "other", "other", "engineering"],
            "country": ["United Kingdom", "United States", None, None],
            "country_code": ["GB", "US", None, None],
            "flags": [None, None, None, "country: not a known country ('Narnia')"],
        }
    )
    # Landed 10, 20, 30 and 40 s before the CRM confirmed them; the last one not yet.
    confirmations = pa.table(
        {
            "landed_at": [NOON - timedelta(seconds=s) for s in (10, 20, 30, 40)],
            "done_at": [NOON, NOON, NOON, None],
        }
    )
    with warehouse.connect() as con:
        con.register("sent", sent)
        con.register("confirmations", confirmations)
        metrics = record_stage_metrics(
            con,
            run_id="run-1",
            stage=LOAD,
            asset="hubspot_contacts",
            partition_key="2026-03-02",
            records_in=4,
            records_out=2,
            rejected=1,
            dead_lettered=2,
            failed=1,
            records="sent",
            fields=("email", "title", "country"),
            landed="confirmations",
            finished_at=NOON + timedelta(seconds=60),
        )
        row = con.execute(
            "SELECT error_rate, latency_samples, latency_max_s, completeness, recorded_at "
            "FROM gtm.stage_metrics WHERE run_id = 'run-1'"
        ).fetchone()

    assert metrics.error_rate == 0.5
    # The unconfirmed record counts until the stage's end: 100 s.
    assert (metrics.latency_samples, metrics.latency_max_s) == (4, 100.0)
    assert metrics.latency_p50_s == 25.0
    assert metrics.completeness == {"email": 1.0, "title": 0.75, "country": 0.5}
    # One of three titles unclassified; one of three countries given matched none.
    assert metrics.unclassified_title_share == pytest.approx(1 / 3)
    assert metrics.unmatched_country_share == pytest.approx(1 / 3)
    assert row[:3] == (0.5, 4, 100.0)
    assert json.loads(row[3]) == {"country": 0.5, "email": 1.0, "title": 0.75}
    assert row[4] == NOON + timedelta(seconds=60)
    numbers = metrics.numbers()
    assert isinstance(numbers["records_in"], int) and isinstance(numbers["error_rate"], float)
    assert numbers["completeness_title"] == 0.75


def test_nothing_to_measure_leaves_shares_and_latency_empty(warehouse: Warehouse) -> None:
    with warehouse.connect() as con:
        con.register("sent", pa.table({"email": pa.array([], pa.string())}))
        metrics = record_stage_metrics(
            con,
            run_id="run-2",
            stage=LOAD,
            asset="hubspot_companies",
            partition_key=None,
            records_in=0,
            records_out=0,
            records="sent",
            fields=("email",),
        )
    assert (metrics.error_rate, metrics.latency_samples, metrics.completeness) == (0.0, 0, {})
    assert set(metrics.numbers()) == {
        "records_in",
        "records_out",
        "rejected",
        "dead_lettered",
        "failed",
        "error_rate",
        "latency_samples",
    }


def test_a_backfill_of_several_days_is_one_row_over_the_range() -> None:
    assert partition_label(["2026-03-02"]) == "2026-03-02"
    assert partition_label(["2026-03-04", "2026-03-02", "2026-03-03"]) == "2026-03-02..2026-03-04"
    assert partition_label([]) is None
