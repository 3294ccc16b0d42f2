"""Change capture rules: poll windows, deduplication, echoes, webhook events, the snapshot."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gtm_orchestration.lib.connectors.hubspot import SearchPage
from gtm_orchestration.lib.crm_changes import (
    ContactChange,
    ContactVersion,
    SearchWindow,
    SentPayloads,
    WebhookEventError,
    apply_change,
    attribute_change,
    contact_version,
    dedupe_versions,
    epoch_ms,
    flag_echo,
    is_echo,
    next_window,
    parse_webhook_event,
    version_changes,
    window_complete,
    window_start,
)

TRACKED = ("email", "firstname", "jobtitle", "annualrevenue")
MINUTE = 60_000
SEEN = datetime(2026, 11, 26, 21, 0, tzinfo=UTC)


def version(object_id: str, modified: int, **properties: str) -> ContactVersion:
    return ContactVersion(object_id, modified, {p: properties.get(p) for p in TRACKED})


def landed(payload: dict, event_id: str = "7") -> dict:
    return {
        "event_id": event_id,
        "channel": "hubspot",
        "source": "hubspot",
        "received_at": "2026-11-26T21:01:02.123456+00:00",
        "payload": payload,
    }


# Windows ----------------------------------------------------------------------------------


def test_the_first_poll_reads_everything_later_ones_overlap_the_high_water_mark() -> None:
    assert window_start(None) == 0
    assert window_start(1_000 * MINUTE) == 995 * MINUTE  # five minutes by default
    assert window_start(1_000 * MINUTE, overlap_ms=0) == 1_000 * MINUTE
    assert window_start(2 * MINUTE) == 0  # never before the epoch
    with pytest.raises(ValueError, match="negative"):
        window_start(1_000, overlap_ms=-1)


def test_a_window_includes_both_edges_and_sorts_ascending() -> None:
    window = SearchWindow(1_000, 2_000)
    assert window.filter_groups() == [
        {
            "filters": [
                {"propertyName": "lastmodifieddate", "operator": "GTE", "value": "1000"},
                {"propertyName": "lastmodifieddate", "operator": "LTE", "value": "2000"},
            ]
        }
    ]
    assert window.sorts() == [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}]


def test_a_window_read_to_its_end_is_the_last() -> None:
    assert next_window(SearchWindow(1_000, 2_000), version("5", 1_500), complete=True) is None


def test_past_the_result_cap_the_search_starts_again_at_the_last_timestamp_seen() -> None:
    following = next_window(SearchWindow(1_000, 2_000), version("5", 1_500), complete=False)
    assert following == SearchWindow(1_500, 2_000)


def test_a_millisecond_holding_more_than_the_cap_is_paged_by_record_id() -> None:
    stuck = next_window(SearchWindow(1_000, 2_000), version("42", 1_000), complete=False)
    assert stuck == SearchWindow(1_000, 2_000, tie_after_id=42)
    assert stuck.filter_groups()[0]["filters"] == [
        {"propertyName": "lastmodifieddate", "operator": "EQ", "value": "1000"},
        {"propertyName": "hs_object_id", "operator": "GT", "value": "42"},
    ]
    assert stuck.sorts() == [{"propertyName": "hs_object_id", "direction": "ASCENDING"}]
    # Still more at that millisecond: on by id; then on past it.
    assert next_window(stuck, version("90", 1_000), complete=False) == SearchWindow(
        1_000, 2_000, tie_after_id=90
    )
    assert next_window(stuck, version("90", 1_000), complete=True) == SearchWindow(1_001, 2_000)
    assert next_window(SearchWindow(2_000, 2_000, 7), version("9", 2_000), True) is None


@pytest.mark.parametrize(
    ("page", "read", "total", "cap", "complete"),
    [
        (SearchPage([], 250, None), 250, 250, 10_000, True),  # no next page
        (SearchPage([], 250, "200"), 200, 250, 10_000, False),  # more pages to come
        (SearchPage([], 249, None), 250, 250, 10_000, False),  # a record left mid-paging
        (SearchPage([], 12_000, None), 10_000, 12_000, 10_000, False),  # at the cap, more left
        (SearchPage([], 10_000, None), 10_000, 10_000, 10_000, True),  # at the cap, all read
    ],
)
def test_when_a_window_is_read_to_its_end(
    page: SearchPage, read: int, total: int, cap: int, complete: bool
) -> None:
    assert window_complete(page, read, total, cap) is complete


# Deduplication ----------------------------------------------------------------------------


def test_versions_read_on_overlapping_pages_count_once() -> None:
    first_window = [version("1", 100), version("2", 200), version("3", 300)]
    # The next window starts again at 300: record 3 comes back, record 1 changed again.
    second_window = [version("3", 300), version("4", 300), version("1", 400)]
    unique = dedupe_versions(first_window + second_window)
    assert [v.key for v in unique] == [("1", 100), ("2", 200), ("3", 300), ("4", 300), ("1", 400)]


def test_a_search_result_becomes_a_version_with_millis_whatever_the_spelling() -> None:
    record = {
        "id": "501",
        "properties": {
            "email": "ada@example.com",
            "jobtitle": "",
            "lastmodifieddate": "2025-11-26T21:01:02.123Z",
            "createdate": "2025-11-01T09:00:00.000Z",
        },
    }
    parsed = contact_version(record, TRACKED)
    assert parsed.key == ("501", 1764190862123)
    assert parsed.properties == {
        "email": "ada@example.com",
        "firstname": None,
        "jobtitle": None,
        "annualrevenue": None,
    }
    assert epoch_ms("1764190862123") == epoch_ms("2025-11-26T21:01:02.123+00:00")
    with pytest.raises(ValueError, match="lastmodifieddate"):
        contact_version({"id": "502", "properties": {}}, TRACKED)


# Echoes -----------------------------------------------------------------------------------

SENT = {"email": "ada@example.com", "jobtitle": "VP of Marketing", "annualrevenue": "1200000"}


@pytest.mark.parametrize(
    ("source", "prop", "value", "sent", "echo"),
    [
        ("INTEGRATION", "jobtitle", "VP of Marketing", SENT, True),
        (None, "jobtitle", "VP of Marketing", SENT, True),  # poll without history: by value
        ("API", "annualrevenue", "1200000.0", SENT, True),  # the same number
        ("CRM_UI", "jobtitle", "VP of Marketing", SENT, False),  # a rep's edit never is
        ("INTEGRATION", "jobtitle", "CMO", SENT, False),  # another value than we sent
        ("INTEGRATION", "firstname", "Ada", SENT, False),  # a property we never sent
        ("INTEGRATION", "jobtitle", None, SENT, False),  # cleared
        ("INTEGRATION", "jobtitle", "VP of Marketing", None, False),  # we never sent the contact
        ("INTEGRATION", None, None, SENT, True),  # our integration created a contact we sent
        ("CRM_UI", None, None, SENT, False),  # a rep created it
        ("INTEGRATION", None, None, None, False),  # another integration's contact
    ],
)
def test_echo_of_the_pipelines_own_write(
    source: str | None, prop: str | None, value: str | None, sent: dict | None, echo: bool
) -> None:
    assert is_echo(source, prop, value, sent) is echo


def test_a_first_seen_record_is_an_echo_only_if_all_of_it_is_what_we_sent() -> None:
    ours = ContactChange(
        "poll",
        "record",
        "501",
        1_000,
        "501:1000",
        properties={"email": "ada@example.com", "jobtitle": "VP of Marketing", "firstname": None},
        property_sources={"email": "INTEGRATION", "jobtitle": "INTEGRATION"},
    )
    assert flag_echo(ours, SENT).is_echo
    retitled = ContactChange(
        "poll",
        "record",
        "501",
        1_000,
        "501:1000",
        properties={"email": "ada@example.com", "jobtitle": "VP of Marketing"},
        property_sources={"email": "INTEGRATION", "jobtitle": "CRM_UI"},
    )
    assert not flag_echo(retitled, SENT).is_echo


def test_the_ledger_finds_a_contact_by_email_or_by_crm_id() -> None:
    sent = SentPayloads({"ada@example.com": SENT}, {"501": "ada@example.com"})
    assert sent.for_contact("999", "Ada@Example.com") == SENT
    assert sent.for_contact("501", None) == SENT
    assert sent.for_contact("999", None) is None


# Webhook events ---------------------------------------------------------------------------


def test_a_property_change_event_becomes_a_change() -> None:
    event = {
        "eventId": 7,
        "subscriptionType": "contact.propertyChange",
        "objectId": 501,
        "propertyName": "jobtitle",
        "propertyValue": "CMO",
        "occurredAt": 1764190862000,
        "changeSource": "CRM_UI",
    }
    change = parse_webhook_event(landed(event), "batch.jsonl", 1)
    assert change == ContactChange(
        feed="webhook",
        kind="property",
        object_id="501",
        changed_at_ms=1764190862000,
        dedupe_key="hubspot:7",
        property_name="jobtitle",
        value="CMO",
        change_source="CRM_UI",
        event_id="7",
        landed_file="batch.jsonl",
    )
    cleared = parse_webhook_event(landed(event | {"propertyValue": ""}), "batch.jsonl", 1)
    assert cleared is not None and cleared.value is None


def test_a_creation_event_has_no_property_and_other_subscriptions_are_skipped() -> None:
    creation = {
        "eventId": 8,
        "subscriptionType": "contact.creation",
        "objectId": 502,
        "occurredAt": 1764190862000,
        "changeSource": "INTEGRATION",
    }
    change = parse_webhook_event(landed(creation, "8"), "batch.jsonl", 2)
    assert change is not None
    assert (change.kind, change.property_name, change.value) == ("creation", None, None)
    deal = creation | {"subscriptionType": "deal.creation"}
    assert parse_webhook_event(landed(deal, "9"), "batch.jsonl", 3) is None


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"subscriptionType": "contact.creation", "occurredAt": 1}, "objectId"),
        ({"subscriptionType": "contact.creation", "objectId": 5}, "occurredAt"),
        (
            {"subscriptionType": "contact.propertyChange", "objectId": 5, "occurredAt": 1},
            "propertyName",
        ),
    ],
)
def test_an_incomplete_contact_event_names_the_file_event_and_field(
    payload: dict, message: str
) -> None:
    with pytest.raises(WebhookEventError, match=rf"batch\.jsonl: event 4: {message}"):
        parse_webhook_event(landed(payload), "batch.jsonl", 4)


# The snapshot -----------------------------------------------------------------------------


def property_change(
    prop: str, value: str | None, at: int, source: str = "CRM_UI", echo: bool = False
) -> ContactChange:
    return ContactChange(
        "webhook",
        "property",
        "501",
        at,
        f"hubspot:{prop}{at}",
        property_name=prop,
        value=value,
        change_source=source,
        is_echo=echo,
    )


def test_a_late_event_never_overwrites_a_newer_value() -> None:
    contact = apply_change(None, property_change("jobtitle", "CMO", 2_000), TRACKED, SEEN)
    contact = apply_change(contact, property_change("jobtitle", "VP", 1_000), TRACKED, SEEN)
    contact = apply_change(contact, property_change("firstname", "Ada", 1_500), TRACKED, SEEN)
    assert contact.properties == {"jobtitle": "CMO", "firstname": "Ada"}
    assert contact.last_modified_ms == 2_000
    contact = apply_change(contact, property_change("jobtitle", None, 3_000), TRACKED, SEEN)
    assert contact.properties == {"firstname": "Ada"}


def test_an_echo_leaves_the_last_change_source_at_the_crm_side() -> None:
    contact = apply_change(None, property_change("jobtitle", "CMO", 1_000), TRACKED, SEEN)
    echo = property_change("firstname", "Ada", 2_000, source="INTEGRATION", echo=True)
    contact = apply_change(contact, echo, TRACKED, SEEN)
    assert contact.properties["firstname"] == "Ada"
    assert contact.last_change_source == "CRM_UI"


def test_a_polled_version_gives_only_what_differs_from_the_snapshot() -> None:
    first = version_changes(
        version("501", 1_000, email="ada@example.com", jobtitle="VP"), None, TRACKED
    )
    assert [(c.kind, c.dedupe_key) for c in first] == [("record", "501:1000")]
    contact = apply_change(None, first[0], TRACKED, SEEN)

    again = version("501", 1_000, email="ada@example.com", jobtitle="VP")
    assert version_changes(again, contact, TRACKED) == []

    edited = version("501", 2_000, email="ada@example.com", jobtitle="CMO", firstname="Ada")
    changes = version_changes(edited, contact, TRACKED)
    assert [(c.property_name, c.value, c.dedupe_key) for c in changes] == [
        ("firstname", "Ada", "501:2000:firstname"),
        ("jobtitle", "CMO", "501:2000:jobtitle"),
    ]
    # A version older than a value the snapshot holds is not a change of that value.
    contact = apply_change(contact, property_change("jobtitle", "CTO", 3_000), TRACKED, SEEN)
    assert [c.property_name for c in version_changes(edited, contact, TRACKED)] == ["firstname"]


def test_the_property_history_says_who_made_a_polled_change_and_when() -> None:
    change = version_changes(
        version("501", 5_000, jobtitle="CMO"),
        apply_change(None, property_change("jobtitle", "VP", 1_000), TRACKED, SEEN),
        TRACKED,
    )[0]
    history = {
        "jobtitle": [
            {"value": "CTO", "timestamp": "1970-01-01T00:00:06.000Z", "sourceType": "API"},
            {"value": "CMO", "timestamp": "1970-01-01T00:00:04.500Z", "sourceType": "CRM_UI"},
            {"value": "VP", "timestamp": "1970-01-01T00:00:01.000Z", "sourceType": "INTEGRATION"},
        ]
    }
    attributed = attribute_change(change, history)
    assert (attributed.change_source, attributed.changed_at_ms) == ("CRM_UI", 4_500)
