"""CRM payloads of a whole batch: every value formatted as ``format_value`` formats it."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from gtm_orchestration.lib.crm_schema import build_payloads, field_ownership, format_value
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
def test_batch_payloads_format_each_value_as_the_rule_does(object_type: str) -> None:
    rows = pa.table(VALUES)
    if object_type == "companies":
        rows = rows.append_column("domain", pa.array(["acme.com", "b.io", "c.de", "d.fr", "e.es"]))
    mapping = REGISTRY.crm[object_type]
    payloads = build_payloads(rows, mapping, object_type)  # type: ignore[arg-type]
    excluded = field_ownership().not_written(object_type)  # type: ignore[arg-type]
    expected = [
        {
            prop: format_value(row.get(column))
            for prop, column in mapping.items()
            if prop not in excluded and format_value(row.get(column)) is not None
        }
        for row in rows.to_pylist()
    ]
    assert [p.properties for p in payloads] == expected
    unique = "email" if object_type == "contacts" else "domain"
    assert [p.key for p in payloads] == [row[unique] for row in rows.to_pylist()]


def test_a_batch_without_the_unique_property_is_refused() -> None:
    rows = pa.table({"email": ["a@acme.com", None]})
    with pytest.raises(KeyError, match="email"):
        build_payloads(rows, REGISTRY.crm["contacts"], "contacts")
