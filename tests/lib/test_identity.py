"""Identity resolution: when one person arrives from several sources, each field takes the
value of the source that config/identity.yaml ranks first for it, the newest among equals."""

from datetime import UTC, datetime

import pyarrow as pa
import pytest

from gtm_orchestration.lib.batch import scratch_connection
from gtm_orchestration.lib.config import ConfigError
from gtm_orchestration.lib.identity import identity_rules
from gtm_orchestration.lib.mapping import CANONICAL_FIELDS
from gtm_orchestration.lib.transform import transform_leads

# The same person: first from a lead list, a week later from an event tool's export.
RECORDS = [
    (
        "leads",
        datetime(2026, 11, 2, tzinfo=UTC),
        {
            "email": "Jo.Park@hooli.com",
            "first_name": "Jo",
            "title": "VP Marketing",
            "city": "Oakland",
            "phone": "+1 415 555 0101",
        },
    ),
    (
        "event_attendees",
        datetime(2026, 11, 9, tzinfo=UTC),
        {
            "email": "jo.park@hooli.com ",
            "first_name": "Joanna",
            "title": "Marketing",
            "city": "San Francisco",
            "phone": "+1 415 555 0199",
        },
    ),
]


def _raw(records: list[tuple[str, datetime, dict[str, str]]]) -> pa.Table:
    n = len(records)
    return pa.table(
        {"line": pa.array(range(2, n + 2), pa.int32())}
        | {f: pa.array([r.get(f) for _, _, r in records], pa.string()) for f in CANONICAL_FIELDS}
        | {
            "source": pa.array([source for source, _, _ in records]),
            "source_file": pa.array([f"{source}.csv" for source, _, _ in records]),
            "landed_at": pa.array([at for _, at, _ in records]),
            "mapping_version": pa.array([1] * n, pa.int32()),
        }
    )


def _merged(records: list[tuple[str, datetime, dict[str, str]]]) -> dict:
    con = scratch_connection()
    con.register("raw_rows", _raw(records))
    leads, _ = transform_leads(con, "raw_rows")
    con.close()
    (lead,) = leads.to_pylist()
    return lead


def test_each_field_takes_the_value_of_the_source_ranked_first_for_it() -> None:
    rules = identity_rules()
    assert rules.precedence("title")[0] == "leads"
    assert rules.precedence("first_name")[0] == "event_attendees"
    assert rules.precedence("city") == ()

    lead = _merged(RECORDS)
    assert lead["email"] == "jo.park@hooli.com"
    assert lead["records_merged"] == 2
    assert lead["title"] == "VP Marketing"  # the older lead list outranks the event tool
    assert lead["phone"] == "+14155550101"
    assert lead["first_name"] == "Joanna"  # the event tool outranks the lead list
    assert lead["city"] == "San Francisco"  # no ranking: the newest value


def test_the_order_the_records_arrive_in_does_not_change_the_winner() -> None:
    swapped = [
        (source, at, record)
        for (source, _, record), (_, at, _) in zip(RECORDS, reversed(RECORDS), strict=True)
    ]
    lead = _merged(swapped)
    assert (lead["title"], lead["first_name"]) == ("VP Marketing", "Joanna")
    assert lead["city"] == "Oakland"  # now the newest


def test_a_precedence_for_an_unknown_field_is_a_config_error(tmp_path) -> None:
    path = tmp_path / "identity.yaml"
    path.write_text("version: 1\nfields:\n  jobtitle: [leads]\n")
    with pytest.raises(ConfigError, match=r"identity.yaml: fields: .*unknown field.*jobtitle"):
        identity_rules(path)


def _leads(records: list[tuple[str, datetime, dict[str, str]]]) -> list[dict]:
    con = scratch_connection()
    con.register("raw_rows", _raw(records))
    leads, _ = transform_leads(con, "raw_rows")
    con.close()
    return leads.to_pylist()


def _person(email: str, day: int, source: str = "leads", **fields: str) -> tuple:
    return (source, datetime(2026, 11, day, tzinfo=UTC), {"email": email, **fields})


def test_gmail_spellings_of_one_mailbox_are_one_lead_keyed_by_the_first_address_seen() -> None:
    leads = _leads(
        [
            _person("Jo.Park+webinar@gmail.com", 3, title="CMO"),
            _person("jopark@googlemail.com", 5, "event_attendees", city="Austin"),
            _person("JO.PARK@gmail.com", 9, phone="+1 512 555 0100"),
        ]
    )
    (lead,) = leads
    # The CRM contact keeps the address the person gave first, in lower case.
    assert lead["email"] == "jo.park+webinar@gmail.com"
    assert lead["records_merged"] == 3
    assert (lead["title"], lead["city"], lead["phone"]) == ("CMO", "Austin", "+15125550100")


def test_providers_that_only_ignore_plus_tags_keep_dots_apart() -> None:
    leads = _leads(
        [
            _person("sam.lee+news@outlook.com", 3),
            _person("sam.lee@outlook.com", 4),
            _person("samlee@outlook.com", 5),
        ]
    )
    assert sorted((lead["email"], lead["records_merged"]) for lead in leads) == [
        ("sam.lee+news@outlook.com", 2),
        ("samlee@outlook.com", 1),
    ]


def test_company_addresses_are_merged_on_case_only() -> None:
    leads = _leads(
        [
            _person("Ana.Ruiz@Initech.com", 3),
            _person("ana.ruiz@initech.com", 4),
            _person("anaruiz@initech.com", 5),
            _person("ana.ruiz+events@initech.com", 6),
        ]
    )
    assert sorted((lead["email"], lead["records_merged"]) for lead in leads) == [
        ("ana.ruiz+events@initech.com", 1),
        ("ana.ruiz@initech.com", 2),
        ("anaruiz@initech.com", 1),
    ]
