"""CRM payloads of a whole batch are the payloads ``build_payloads`` makes record by record."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from gtm_orchestration.lib.crm_schema import build_payloads, payload_table
from gtm_orchestration.lib.mapping import load_registry

REGISTRY = load_registry()
VALUES = {
    "email": ["a@acme.com", "b@acme.com", "c@acme.com", "d@acme.com", "e@acme.com"],
    "first_name": ["Ana", "", None, "Zoë", " "],
    "annual_revenue": [1.2e9, 0.5, math.nan, None, -0.0],
    "fit_score": [0, -5, None, 100, 42],
    "mapping_version": pa.array([1, 2, 1, 1, 3], pa.int32()),
    "employees_band": [True, False, None, True, False],
    "owner_id": ["10001", None, "10002", "", "10003"],
    "website": [datetime(2026, 11, 1, tzinfo=UTC), None, None, None, None],
    "employees": [Decimal("1.50"), None, Decimal("2"), None, None],
}


@pytest.mark.parametrize("object_type", ["contacts", "companies"])
def test_payload_table_is_build_payloads(object_type: str) -> None:
    rows = pa.table(VALUES)
    if object_type == "companies":
        rows = rows.append_column("domain", pa.array(["acme.com", "b.io", "c.de", "d.fr", "e.es"]))
    mapping = REGISTRY.crm[object_type]
    table = payload_table(rows, mapping, object_type)  # type: ignore[arg-type]
    payloads = build_payloads(rows.to_pylist(), mapping, object_type)  # type: ignore[arg-type]
    assert [row["key"] for row in table.to_pylist()] == [p.key for p in payloads]
    assert [
        {prop: value for prop, value in row.items() if prop != "key" and value is not None}
        for row in table.to_pylist()
    ] == [p.properties for p in payloads]
    written = [prop for prop in table.column_names if prop != "key"]
    assert written == [prop for prop in mapping if prop in written]


def test_a_batch_without_the_unique_property_is_refused() -> None:
    rows = pa.table({"email": ["a@acme.com", None]})
    with pytest.raises(KeyError, match="email"):
        payload_table(rows, REGISTRY.crm["contacts"], "contacts")
