"""The CRM's history in the warehouse: the real dbt builds a property history from the
append-only change log, and "what did the CRM hold last Tuesday" is one query."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gtm_orchestration.lib.crm_changes import ContactChange, record_changes
from gtm_orchestration.lib.warehouse import Warehouse
from tests.warehouse.dbt_runs import dbt_build

MONDAY = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
AS_OF = """
    SELECT property, value FROM marts.crm_contact_property_history
    WHERE object_id = ? AND valid_from <= ? AND (valid_to IS NULL OR valid_to > ?)
    ORDER BY property
"""


def at(days: float, hours: float = 0) -> int:
    """Epoch millis ``days`` and ``hours`` after Monday 09:00 UTC."""
    moment = MONDAY + timedelta(days=days, hours=hours)
    return int(moment.timestamp() * 1000)


def moment(days: float, hours: float = 0) -> datetime:
    return MONDAY + timedelta(days=days, hours=hours)


def webhook(
    object_id: str,
    prop: str,
    value: str | None,
    ms: int,
    *,
    change_source: str | None = None,
    is_echo: bool = False,
    email: str | None = None,
) -> ContactChange:
    """A property change as a HubSpot webhook event reports it."""
    return ContactChange(
        feed="webhook",
        kind="property",
        object_id=object_id,
        changed_at_ms=ms,
        dedupe_key=f"hubspot:{object_id}-{prop}-{ms}",
        property_name=prop,
        value=value,
        change_source=change_source,
        is_echo=is_echo,
        email=email,
    )


@pytest.fixture
def warehouse(warehouse_url: str) -> Warehouse:
    """A warehouse whose change log saw two contacts change over a week, some changes
    logged days after the CRM made them."""
    warehouse = Warehouse(warehouse_url)
    first_poll = ContactChange(
        feed="poll",
        kind="record",
        object_id="101",
        changed_at_ms=at(0),
        dedupe_key=f"101:{at(0)}",
        properties={"jobtitle": "Engineer", "lifecyclestage": "lead", "phone": None},
        email="ada@acme.io",
    )
    logged = [
        # Monday: the poll meets Ada. Wednesday: a rep retitles her; webhook and poll both
        # report it. Friday: she becomes a customer; the CRM echoes it back on Saturday.
        (moment(0, 1), [first_poll]),
        (moment(2, 1), [webhook("101", "jobtitle", "CTO", at(2), change_source="CRM_UI")]),
        (
            moment(2, 2),
            [
                ContactChange(
                    feed="poll",
                    kind="property",
                    object_id="101",
                    changed_at_ms=at(2),
                    dedupe_key=f"101:{at(2)}:jobtitle",
                    property_name="jobtitle",
                    value="CTO",
                    email="ada@acme.io",
                )
            ],
        ),
        (moment(4, 1), [webhook("101", "lifecyclestage", "customer", at(4))]),
        (
            moment(5, 1),
            [webhook("101", "lifecyclestage", "customer", at(5), is_echo=True)],
        ),
        # Saturday: the title is cleared. Thursday's phone change arrives only on Sunday.
        (moment(5, 2), [webhook("101", "jobtitle", None, at(5, 1))]),
        (moment(6), [webhook("101", "phone", "+1 555 0100", at(3, 3))]),
        # Another contact, known from webhooks only, from Tuesday on.
        (moment(1, 1), [webhook("202", "jobtitle", "Buyer", at(1), email="bo@globex.io")]),
        # Two values for one moment: the one logged last holds.
        (moment(2, 1), [webhook("202", "jobtitle", "Senior Buyer", at(2))]),
        (moment(2, 2), [webhook("202", "jobtitle", "Head of Buying", at(2))]),
    ]
    with warehouse.connect() as con:
        for loaded_at, changes in logged:
            record_changes(con, changes, loaded_at, run_id=None)
    return warehouse


def test_the_crm_as_of_a_past_moment_is_a_query(warehouse: Warehouse, tmp_path: Path) -> None:
    built = dbt_build(warehouse, tmp_path, "crm_contact_property_history")
    assert built.returncode == 0, built.stdout + built.stderr
    # The history's own tests ran too: none failed.
    assert "ERROR=0" in built.stdout and "PASS=" in built.stdout

    with warehouse.connect(read_only=True) as con:

        def state(object_id: str, when: datetime) -> dict[str, str | None]:
            return dict(con.execute(AS_OF, [object_id, when, when]).fetchall())

        # Before the CRM was first seen, the history knows nothing.
        assert state("101", moment(-1)) == {}
        # Last Tuesday, and Thursday evening (the phone change logged on Sunday is in its
        # place), and now.
        assert state("101", moment(1, 3)) == {
            "jobtitle": "Engineer",
            "lifecyclestage": "lead",
            "phone": None,
        }
        assert state("101", moment(3, 9)) == {
            "jobtitle": "CTO",
            "lifecyclestage": "lead",
            "phone": "+1 555 0100",
        }
        assert state("101", moment(7)) == {
            "jobtitle": None,
            "lifecyclestage": "customer",
            "phone": "+1 555 0100",
        }
        assert state("202", moment(1, 3)) == {"jobtitle": "Buyer"}
        assert state("202", moment(2, 3)) == {"jobtitle": "Head of Buying"}

        # A value reported twice, or echoed back, is one version; who set it is kept.
        titles = con.execute(
            "SELECT value, valid_from, valid_to, change_source, feed, is_current, email "
            "FROM marts.crm_contact_property_history "
            "WHERE object_id = '101' AND property = 'jobtitle' ORDER BY valid_from"
        ).fetchall()
        assert titles == [
            ("Engineer", moment(0), moment(2), None, "poll", False, "ada@acme.io"),
            ("CTO", moment(2), moment(5, 1), "CRM_UI", "webhook", False, "ada@acme.io"),
            (None, moment(5, 1), None, None, "webhook", True, "ada@acme.io"),
        ]
        (stages,) = con.execute(
            "SELECT count(*) FROM marts.crm_contact_property_history "
            "WHERE object_id = '101' AND property = 'lifecyclestage'"
        ).fetchone()
        assert stages == 2
