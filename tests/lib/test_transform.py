"""The transform runs the rules that read a whole lead (fit, route) once per distinct
combination of the values they treat differently, and deals round-robin owners in SQL: every
lead still gets what the rules give it."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pyarrow as pa
import pytest

from gtm_orchestration.lib import transform
from gtm_orchestration.lib.batch import scratch_connection
from gtm_orchestration.lib.mapping import CANONICAL_FIELDS
from gtm_orchestration.lib.routing import ROUND_ROBIN_SQL, round_robin_owner, route_lead
from gtm_orchestration.lib.scoring import score_fit
from gtm_orchestration.lib.transform import transform_leads
from gtm_orchestration.sandbox.traffic import DemoLeads

ODD_LEADS = [
    {"email": "Pat <pat@initech.com>", "country": "US", "employees": "12"},
    {"email": "sam@globex.co.uk", "website": "acme.com", "country": "Germany"},
    {"email": "lee@gmail.com", "website": "https://www.hooli.com", "employees": "20000"},
    {"email": "kim@umbrella-corp.de", "country": "France", "state": "", "employees": "999"},
    {"email": "ana@acme.com", "country": "Canada", "state": "BC", "employees": "1000"},
    {"email": "ANA@ACME.COM ", "country": "Canada", "state": "Ontario", "employees": "5,000"},
    {"email": "mailto:raj@acme.io", "country": "Atlantis", "employees": "lots"},
    {"email": "zoe@acme.io", "country": "Brazil", "title": "VP Sales", "industry": "SaaS"},
]


def _raw_rows() -> pa.Table:
    leads = DemoLeads(seed=3)
    records = [leads.form_submission() for _ in range(400)] + ODD_LEADS
    records += [dict(record, title="CEO") for record in records[:40]]  # merged with the first
    columns = {f: [record.get(f) or None for record in records] for f in CANONICAL_FIELDS}
    n = len(records)
    return pa.table(
        {"line": pa.array(range(2, n + 2), pa.int32())}
        | {f: pa.array(values, pa.string()) for f, values in columns.items()}
        | {
            "source": pa.array(["leads"] * n),
            "source_file": pa.array(["drop.csv"] * n),
            "landed_at": pa.array([datetime(2026, 11, 2, tzinfo=UTC)] * n),
            "mapping_version": pa.array([1] * n, pa.int32()),
        }
    )


def test_each_lead_is_scored_and_routed_as_the_rules_score_and_route_it() -> None:
    con = scratch_connection()
    con.register("raw_rows", _raw_rows())
    leads, _ = transform_leads(con, "raw_rows")
    con.close()

    assert leads.num_rows > 400
    for lead in leads.to_pylist():
        score = score_fit(
            industry=lead["company_industry"],
            employees=lead["employees"],
            country_code=lead["country_code"],
            seniority=lead["seniority"],
            function=lead["function"],
        )
        route = route_lead(
            email=lead["email"],
            domain=lead["domain"],
            country_code=lead["country_code"],
            state=lead["state"],
            employees=lead["employees"],
        )
        assert (lead["fit_score"], lead["fit_reasons"]) == (score.value, "; ".join(score.reasons))
        assert (lead["territory"], lead["owner_id"], lead["routing_rule"]) == (
            route.territory,
            route.owner_id,
            route.rule,
        )


def test_the_same_rows_give_the_same_leads_in_any_order_from_a_table_or_a_relation() -> None:
    rows = _raw_rows()
    con = scratch_connection()
    leads, companies = transform_leads(con, rows)
    reversed_rows = rows.take(pa.array(range(rows.num_rows - 1, -1, -1)))
    con.register("reversed_rows", reversed_rows)
    from_relation = transform_leads(con, "reversed_rows")
    con.close()

    # Leads come in the order of their identities, whatever the order of the rows; merged
    # leads take the same values either way.
    assert leads.to_pylist() == from_relation[0].to_pylist()
    assert companies.to_pylist() == from_relation[1].to_pylist()
    # Every row is in exactly one lead, and the repeated records were merged.
    assert sum(leads["records_merged"].to_pylist()) == rows.num_rows
    assert leads.num_rows <= rows.num_rows - 40


def test_rules_over_several_columns_tell_every_combination_apart_when_keys_are_renumbered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A combination of several columns' codes is one number until it would pass a bound,
    # then renumbered; a bound of a few combinations renumbers at every column.
    rows = _raw_rows()
    con = scratch_connection()
    leads, companies = transform_leads(con, rows)
    monkeypatch.setattr(transform, "_KEY_BOUND", 16)
    renumbered = transform_leads(con, rows)
    con.close()

    assert leads.equals(renumbered[0])
    assert companies.equals(renumbered[1])


def test_the_round_robin_deals_in_sql_as_in_python() -> None:
    emails = [f"lead{i}@acme{i % 7}.com" for i in range(500)] + ["jane@acme.com", "x@y.org"]
    con = scratch_connection()
    con.register("emails", pa.table({"email": emails}))
    for size in (1, 2, 3, 5):
        owners = [f"owner{i}" for i in range(size)]
        deal = ROUND_ROBIN_SQL.format(email="email", owners=size)
        dealt = con.execute(f"SELECT email, {deal} FROM emails").fetchall()
        assert all(owners[index] == round_robin_owner(email, owners) for email, index in dealt)
    con.close()


def _rows(records: list[tuple[str, dict[str, str]]], version: int = 3) -> pa.Table:
    n = len(records)
    return pa.table(
        {"line": pa.array(range(2, n + 2), pa.int32())}
        | {f: pa.array([r.get(f) for _, r in records], pa.string()) for f in CANONICAL_FIELDS}
        | {
            "source": pa.array([source for source, _ in records]),
            "source_file": pa.array([f"{source}.csv" for source, _ in records]),
            "landed_at": pa.array([datetime(2026, 11, 2, tzinfo=UTC)] * n),
            "mapping_version": pa.array([version] * n, pa.int32()),
        }
    )


def _lead(
    email: str, submitted_at: str, opt_in: str | None = None, source: str = "leads"
) -> tuple[str, dict[str, str]]:
    return source, {"email": email, "submitted_at": submitted_at, "marketing_opt_in": opt_in}


def test_dates_are_read_in_each_sources_locale_and_opt_ins_as_yes_or_no() -> None:
    records = [
        _lead("a@initech.com", "03/04/2025", "Yes"),
        _lead("b@initech.com", "03/04/2025", source="event_attendees"),
        _lead("c@initech.com", "March 4, 2025", "opted-out"),
        _lead("d@initech.com", "1741046400", "1"),
        _lead("e@initech.com", "1741046400000", "nein"),
        _lead("f@initech.com", "2025-03-04T23:30:00-05:00"),
        _lead("g@initech.com", "13/04/2025", "maybe"),
        _lead("h@initech.com", "soon"),
    ]
    con = scratch_connection()
    con.register("raw_rows", _rows(records))
    leads, _ = transform_leads(con, "raw_rows")
    con.close()
    by_email = {lead["email"]: lead for lead in leads.to_pylist()}

    def seen(email: str) -> tuple:
        lead = by_email[email]
        return lead["submitted_at"], lead["marketing_opt_in"]

    march_4 = date(2025, 3, 4)
    assert seen("a@initech.com") == (march_4, True)  # en_US: month first
    assert seen("b@initech.com") == (date(2025, 4, 3), None)  # the events tool writes en_GB
    assert seen("c@initech.com") == (march_4, False)
    assert seen("d@initech.com") == (march_4, True)  # Unix seconds
    assert seen("e@initech.com") == (march_4, False)  # Unix milliseconds
    assert seen("f@initech.com") == (date(2025, 3, 5), None)  # a moment: its UTC day
    # What cannot be converted is not guessed: empty in the CRM, kept raw in the flags.
    g = by_email["g@initech.com"]
    assert (g["submitted_at"], g["marketing_opt_in"]) == (None, None)
    assert "submitted_at:" in g["flags"] and "'13/04/2025'" in g["flags"]
    assert "marketing_opt_in: not a yes/no value" in g["flags"] and "'maybe'" in g["flags"]
    assert "submitted_at:" in by_email["h@initech.com"]["flags"]
    assert by_email["a@initech.com"]["flags"] is None


def test_dates_and_opt_ins_reach_the_crm_payload_in_its_wire_format() -> None:
    from gtm_orchestration.lib.crm_schema import build_payloads
    from gtm_orchestration.lib.mapping import load_registry

    records = [_lead("a@initech.com", "2025-03-04", "TRUE")]
    con = scratch_connection()
    con.register("raw_rows", _rows(records))
    leads, _ = transform_leads(con, "raw_rows")
    con.close()
    (payload,) = build_payloads(leads, load_registry(3).crm["contacts"], "contacts")
    assert payload.properties["gtm_submitted_at"] == "2025-03-04"
    assert payload.properties["gtm_marketing_opt_in"] == "true"
