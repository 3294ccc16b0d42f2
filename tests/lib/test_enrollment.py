"""Sequence enrollment: the rules, the checks, and the never-twice protocol against a real
sandbox sequencer and a DuckDB warehouse of the test's own."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest

from gtm_orchestration.lib.config import ConfigError, config_path
from gtm_orchestration.lib.connectors.outreach import OutreachClient
from gtm_orchestration.lib.enrollment import (
    EnrollmentSummary,
    claim_abandoned,
    due_enrollments,
    enroll_days,
    new_claimant,
    record_intents,
    release_due_enrollments,
)
from gtm_orchestration.lib.enrollment_rules import (
    SequenceRules,
    build_intent,
    default_sequence_rules,
    load_sequence_rules,
    personalization_problems,
)
from gtm_orchestration.lib.partitioned_tables import replace_partition
from gtm_orchestration.lib.warehouse import Warehouse
from gtm_orchestration.sandbox import SandboxServer

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
DAY = "2026-11-20"
JSON_API = {"Content-Type": "application/vnd.api+json"}
REP_MAILBOX = "jordan.lee@sandbox-sales.example"

# A lead as the transform leaves it in gtm.leads.
PRIYA = {
    "email": "priya.raman@umbrella-analytics.io",
    "first_name": "Priya",
    "last_name": "Raman",
    "title": "VP Marketing",
    "company": "Umbrella Analytics",
    "website": "umbrella-analytics.io",
    "phone": "+12125550110",
    "country": "United States",
    "country_code": "US",
    "state": "New York",
    "city": "New York",
    "industry": "COMPUTER_SOFTWARE",
    "function": "marketing",
    "seniority": "vp",
    "persona": "Marketing Leader",
    "fit_score": 100,
    "territory": "NA East",
    "owner_id": "10008",
    "flags": None,
}


def lead(**changes: Any) -> dict[str, Any]:
    return PRIYA | changes


# ---------------------------------------------------------------------------------------
# Rules and checks: pure functions


def test_the_bundled_rules_load() -> None:
    rules = default_sequence_rules()
    assert rules.quality_window_minutes == 15
    assert {"active", "pending", "paused"} <= rules.blocking_states
    assert rules.sequences["marketing_leaders"].personalization == (
        "first_name",
        "company",
        "title",
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("quality_window_minutes: 15", "quality_window_minutes: soon"),
            "quality_window_minutes: Input should be a valid number",
        ),
        (
            (
                "blocking_states: [active, pending, paused, bounced, opted_out]",
                "blocking_states: [active]",
            ),
            "blocking_states: expected a list including pending, paused",
        ),
        (
            (
                "blocking_states: [active, pending, paused, bounced, opted_out]",
                "blocking_states: [active, pending, paused, asleep]",
            ),
            "blocking_states[3]: Input should be 'active', 'pending'",
        ),
        (
            ("  - sequence: executive_briefing", "  - sequence: exec_briefing"),
            "rules[0].sequence: expected a key under sequences (executive_briefing, ",
        ),
        (
            ("personas: [Marketing Leader]", "personas: [Marketing Guru]"),
            "rules[1].personas: expected a persona label of personas.yaml (found 'Marketing Guru')",
        ),
        (
            ("territories: [NA East, NA West, NA Enterprise]", "territories: [Narnia]"),
            "rules[3].territories: expected a territory or segment name of territories.yaml",
        ),
        (
            ("seniorities: [c_level]", "seniorities: [boss]"),
            "rules[0].seniorities[0]: Value error, expected a gtm_seniority option",
        ),
        (
            ("personalization: [first_name, company]", "personalization: [first_name, nickname]"),
            "sequences.practitioner_nurture.personalization[1]: Input should be 'first_name'",
        ),
        (
            (
                '"10008": taylor.reed@sandbox-sales.example',
                '"99999": taylor.reed@sandbox-sales.example',
            ),
            "owner_mailboxes: expected an owner id the routing rules of territories.yaml deal",
        ),
        (
            ("default_mailbox: avery.brooks@sandbox-sales.example", "default_mailbox: avery"),
            "default_mailbox: Value error, expected a mailbox e-mail address",
        ),
        (
            ('name: "Practitioner Nurture"', 'name: "Executive Briefing"'),
            "sequences.practitioner_nurture.name: expected a name no other sequence has",
        ),
        (
            ("min_fit_score: 70", "min_fit_score: 170"),
            "rules[0].min_fit_score: Input should be less than or equal to 100",
        ),
    ],
)
def test_a_bad_rules_file_is_refused_naming_file_key_and_expectation(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    text = config_path("sequences.yaml").read_text()
    assert change[0] in text
    path = tmp_path / "sequences.yaml"
    path.write_text(text.replace(change[0], change[1], 1))
    with pytest.raises(ConfigError) as refused:
        load_sequence_rules(path)
    message = str(refused.value)
    assert message.startswith(f"{path}: ")
    assert expected in message


@pytest.mark.parametrize(
    ("changes", "sequence"),
    [
        ({}, "marketing_leaders"),
        (
            {"seniority": "c_level", "title": "Chief Marketing Officer", "fit_score": 75},
            "executive_briefing",
        ),
        # Too weak a fit for the executive briefing; still a marketing leader.
        ({"seniority": "c_level", "fit_score": 65}, "marketing_leaders"),
        ({"persona": "RevOps", "function": "operations", "fit_score": 70}, "revenue_leaders"),
        (
            {"persona": "Sales Practitioner", "fit_score": 63, "territory": "NA Enterprise"},
            "practitioner_nurture",
        ),
        # Practitioners outside North America are not sequenced.
        ({"persona": "Sales Practitioner", "fit_score": 63, "territory": "EMEA"}, None),
        ({"persona": "Engineering Practitioner", "fit_score": 90}, None),
        ({"fit_score": 45}, None),
        ({"fit_score": None}, None),
    ],
)
def test_leads_route_to_the_first_matching_rule(changes: dict, sequence: str | None) -> None:
    intent = build_intent(lead(**changes), default_sequence_rules())
    assert (intent and intent.sequence.key) == sequence


def test_an_intent_carries_the_key_the_owner_mailbox_and_the_prospect_attributes() -> None:
    intent = build_intent(lead(email="Priya.Raman@Umbrella-Analytics.io"), default_sequence_rules())
    assert intent is not None
    assert intent.key == "marketing_leaders:priya.raman@umbrella-analytics.io"
    assert intent.mailbox == "taylor.reed@sandbox-sales.example"  # owner 10008
    assert intent.attributes == {
        "emails": ["priya.raman@umbrella-analytics.io"],
        "firstName": "Priya",
        "lastName": "Raman",
        "title": "VP Marketing",
        "company": "Umbrella Analytics",
        "addressCity": "New York",
        "addressState": "New York",
        "addressCountry": "United States",
        "companyIndustry": "COMPUTER_SOFTWARE",
        "websiteUrl1": "umbrella-analytics.io",
    }
    unowned = build_intent(lead(owner_id=None), default_sequence_rules())
    assert unowned is not None and unowned.mailbox == "avery.brooks@sandbox-sales.example"
    assert (
        intent.fingerprint != build_intent(lead(title="CMO"), default_sequence_rules()).fingerprint
    )


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("first_name", "Priya", None),
        ("first_name", "Jo", None),
        ("first_name", "Li", None),
        ("first_name", "Anne-Marie", None),
        ("first_name", "Sofía", None),
        ("last_name", "O'Neil", None),
        ("last_name", "van der Berg", None),
        ("company", "IBM", None),
        ("company", "3M", None),
        ("company", "Acme Logistics S.L.", None),
        ("title", "VP, Marketing & Growth", None),
        ("first_name", None, "missing"),
        ("first_name", "   ", "missing"),
        ("first_name", "{{first_name}}", "a template placeholder left in"),
        ("first_name", "{{ contact.firstname }}", "a template placeholder left in"),
        ("company", "%COMPANY%", "a template placeholder left in"),
        ("company", "{company}", "a template placeholder left in"),
        ("company", "${company_name}", "a template placeholder left in"),
        ("title", "[Job Title]", "a template placeholder left in"),
        ("first_name", "JOHN", "in capitals only"),
        ("last_name", "MCALLISTER", "in capitals only"),
        ("first_name", "J.", "a single initial"),
        ("first_name", "john.miller@hooli.com", "not a person's name"),
        ("last_name", "Miller2", "not a person's name"),
        ("company", "N/A", "a placeholder value"),
        ("company", "n.a.", "a placeholder value"),
        ("company", "Unknown", "a placeholder value"),
        ("company", "none", "a placeholder value"),
        ("company", "TEST", "a placeholder value"),
        ("company", "-", "punctuation only"),
        ("company", "--", "punctuation only"),
        ("title", "TBD", "a placeholder value"),
        ("first_name", "First Name", "a placeholder value"),
    ],
)
def test_personalization_values_are_checked(
    field: str, value: str | None, problem: str | None
) -> None:
    problems = personalization_problems(lead(**{field: value}), (field,), default_sequence_rules())
    if problem is None:
        assert problems == []
    else:
        assert problems == [
            f"{field} {(value or '').strip()!r}: {problem}; expected a real "
            f"{field.replace('_', ' ')}"
        ]


def test_a_field_the_transform_flagged_is_unfit_and_other_flags_do_not_matter() -> None:
    rules = default_sequence_rules()
    flags = "annual_revenue: no exchange rate from VND to USD; title: not a job title"
    assert personalization_problems(lead(flags=flags), ("first_name", "company"), rules) == []
    (problem,) = personalization_problems(lead(flags=flags), ("title",), rules)
    assert problem == (
        "title 'VP Marketing': flagged by the transform (title: not a job title); "
        "expected a real title"
    )


# ---------------------------------------------------------------------------------------
# The protocol, against the sandbox sequencer


@pytest.fixture(scope="module")
def sandbox_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    with SandboxServer(tmp_path_factory.mktemp("sandbox")) as server:
        yield server


@pytest.fixture
def sequencer(sandbox_server: SandboxServer) -> Iterator[httpx.Client]:
    """The sequencer as an operator or a rep sees it, reset for each test."""
    httpx.post(f"{sandbox_server.base_url}/__sandbox/reset").raise_for_status()
    headers = {"Authorization": "Bearer rep-token"}
    with httpx.Client(base_url=sandbox_server.base_url, headers=headers, timeout=10) as http:
        yield http


@pytest.fixture
def client(sandbox_server: SandboxServer, sequencer: httpx.Client) -> Iterator[OutreachClient]:
    with OutreachClient(sandbox_server.base_url, "pipeline-token", max_attempts=1) as outreach:
        yield outreach


@pytest.fixture
def warehouse(warehouse_url: str) -> Warehouse:
    return Warehouse(warehouse_url)


def land(warehouse: Warehouse, *leads: dict[str, Any], day: str = DAY) -> None:
    """Put ``leads`` into gtm.leads for ``day``, as the transform does."""
    with warehouse.connect() as con:
        replace_partition(con, "gtm.leads", pa.Table.from_pylist(list(leads)), day)


def window(minutes: float) -> SequenceRules:
    return default_sequence_rules().with_quality_window(minutes)


def log(warehouse: Warehouse) -> list[tuple[str, int, str, str | None]]:
    with warehouse.connect() as con:
        return con.execute(
            "SELECT idempotency_key, intent, event, reason FROM gtm.sequence_enrollment_log "
            "ORDER BY rowid"
        ).fetchall()


def enrollment(warehouse: Warehouse, key: str) -> dict[str, Any]:
    with warehouse.connect() as con:
        cursor = con.execute(
            "SELECT * FROM gtm.sequence_enrollments WHERE idempotency_key = ?", [key]
        )
        names = [d[0] for d in cursor.description]
        return dict(zip(names, cursor.fetchone(), strict=True))


def states(sequencer: httpx.Client) -> list[dict]:
    return sequencer.get("/api/v2/sequenceStates").json()["data"]


def posts(sequencer: httpx.Client, path: str) -> int:
    by_endpoint = sequencer.get("/__sandbox/stats").json()["by_endpoint"]
    return sum(by_endpoint.get(f"POST {path}", {}).values())


def prospect_in_sequence(sequencer: httpx.Client, email: str, sequence_name: str) -> int:
    """A rep's doing: ``email`` created as a prospect and added to ``sequence_name``."""
    body = {"data": {"type": "prospect", "attributes": {"emails": [email]}}}
    prospect = sequencer.post("/api/v2/prospects", json=body, headers=JSON_API).json()["data"]
    found = sequencer.get("/api/v2/sequences", params={"filter[name]": sequence_name}).json()
    if found["data"]:
        sequence_id = found["data"][0]["id"]
    else:
        body = {"data": {"type": "sequence", "attributes": {"name": sequence_name}}}
        created = sequencer.post("/api/v2/sequences", json=body, headers=JSON_API)
        sequence_id = created.json()["data"]["id"]
    mailboxes = sequencer.get("/api/v2/mailboxes", params={"filter[email]": REP_MAILBOX})
    (mailbox,) = mailboxes.json()["data"]
    relationships = {
        "prospect": {"data": {"type": "prospect", "id": prospect["id"]}},
        "sequence": {"data": {"type": "sequence", "id": sequence_id}},
        "mailbox": {"data": {"type": "mailbox", "id": mailbox["id"]}},
    }
    body = {"data": {"type": "sequenceState", "relationships": relationships}}
    state = sequencer.post("/api/v2/sequenceStates", json=body, headers=JSON_API)
    return state.raise_for_status().json()["data"]["id"]


KEY = "marketing_leaders:priya.raman@umbrella-analytics.io"


def test_a_due_lead_is_enrolled_once_with_its_personalization(
    warehouse: Warehouse, client: OutreachClient, sequencer: httpx.Client
) -> None:
    land(warehouse, PRIYA)
    summary = enroll_days(warehouse.connect, client, window(0), [DAY], NOW, "run-1")
    assert (summary.held, summary.claimed, summary.enrolled) == (1, 1, 1)
    assert (summary.in_flight_elsewhere, summary.reclaimed) == (0, 0)

    (state,) = states(sequencer)
    assert state["attributes"]["state"] == "active"
    prospect = sequencer.get(
        f"/api/v2/prospects/{state['relationships']['prospect']['data']['id']}"
    ).json()["data"]["attributes"]
    assert (prospect["firstName"], prospect["company"], prospect["title"]) == (
        "Priya",
        "Umbrella Analytics",
        "VP Marketing",
    )
    mailbox = sequencer.get(f"/api/v2/mailboxes/{state['relationships']['mailbox']['data']['id']}")
    assert mailbox.json()["data"]["attributes"]["email"] == "taylor.reed@sandbox-sales.example"
    row = enrollment(warehouse, KEY)
    assert (row["status"], row["sequence_state_id"], row["attempts"]) == (
        "enrolled",
        state["id"],
        1,
    )
    assert [event for _, _, event, _ in log(warehouse)] == ["held", "claimed", "enrolled"]

    # Retries, duplicate triggers and reruns: nothing more is sent, ever.
    for _ in range(3):
        again = enroll_days(warehouse.connect, client, window(0), [DAY], NOW, "run-2")
        assert (again.unchanged, again.claimed, again.requests) == (1, 0, 0)
    assert posts(sequencer, "/api/v2/sequenceStates") == 1


def test_an_intent_is_held_for_its_quality_window(
    warehouse: Warehouse, client: OutreachClient, sequencer: httpx.Client
) -> None:
    land(warehouse, PRIYA)
    held = enroll_days(warehouse.connect, client, window(15), [DAY], NOW)
    assert (held.held, held.claimed, held.waiting, held.requests) == (1, 0, 1, 0)
    assert held.next_due_at == NOW + timedelta(minutes=15)
    assert due_enrollments(warehouse, NOW + timedelta(minutes=14)) == 0

    assert due_enrollments(warehouse, NOW + timedelta(minutes=15)) == 1
    released = release_due_enrollments(
        warehouse.connect, client, window(15), NOW + timedelta(minutes=15)
    )
    assert (released.enrolled, released.waiting) == (1, 0)
    assert len(states(sequencer)) == 1


def test_a_correction_in_the_window_cancels_and_the_corrected_lead_is_a_new_intent(
    warehouse: Warehouse, client: OutreachClient, sequencer: httpx.Client
) -> None:
    rules = window(15)
    land(warehouse, lead(company="Umbrela Analytic"))
    record_intents(warehouse.connect, [lead(company="Umbrela Analytic")], rules, NOW)

    # The rep fixes the company name five minutes later; the pipeline sees the new row.
    fixed_at = NOW + timedelta(minutes=5)
    land(warehouse, PRIYA)
    corrected = record_intents(warehouse.connect, [PRIYA], rules, fixed_at)
    assert (corrected.corrected, corrected.held) == (1, 1)

    # When the first intent would have been due, nothing is sent.
    at_first_due = release_due_enrollments(
        warehouse.connect, client, rules, NOW + timedelta(minutes=15)
    )
    assert (at_first_due.claimed, at_first_due.requests) == (0, 0)
    assert states(sequencer) == []

    released = release_due_enrollments(
        warehouse.connect, client, rules, fixed_at + timedelta(minutes=15)
    )
    assert released.enrolled == 1
    (state,) = states(sequencer)
    prospect_id = state["relationships"]["prospect"]["data"]["id"]
    company = sequencer.get(f"/api/v2/prospects/{prospect_id}").json()["data"]["attributes"]
    assert company["company"] == "Umbrella Analytics"
    assert log(warehouse) == [
        (KEY, 1, "held", None),
        (
            KEY,
            1,
            "cancelled",
            "the lead was corrected in its quality window: "
            "company 'Umbrela Analytic' -> 'Umbrella Analytics'",
        ),
        (KEY, 2, "held", None),
        (KEY, 2, "claimed", None),
        (KEY, 2, "enrolled", f"sequenceState {state['id']} (active)"),
    ]


def test_a_correction_that_lands_unrecorded_is_caught_at_release(
    warehouse: Warehouse, client: OutreachClient, sequencer: httpx.Client
) -> None:
    rules = window(15)
    record_intents(warehouse.connect, [PRIYA], rules, NOW)
    # A later file changed the lead, and no recording has run since.
    land(warehouse, lead(first_name="PRIYA"))
    release = release_due_enrollments(warehouse.connect, client, rules, NOW + timedelta(hours=1))
    # The held intent was for 'Priya'; gtm.leads now says 'PRIYA', which fails its check.
    assert (release.corrected, release.rejected, release.claimed) == (1, 1, 0)
    assert states(sequencer) == []
    assert enrollment(warehouse, KEY)["reason"] == (
        "personalization unfit: first_name 'PRIYA': in capitals only; expected a real first name"
    )


def test_a_lead_that_fails_a_check_is_cancelled_at_once_and_never_sent(
    warehouse: Warehouse, client: OutreachClient, sequencer: httpx.Client
) -> None:
    land(warehouse, lead(first_name="{{first_name}}", company="N/A"))
    summary = enroll_days(warehouse.connect, client, window(0), [DAY], NOW)
    assert (summary.rejected, summary.claimed, summary.requests) == (1, 0, 0)
    row = enrollment(warehouse, KEY)
    assert row["status"] == "cancelled"
    assert row["reason"] == (
        "personalization unfit: first_name '{{first_name}}': a template placeholder left in; "
        "expected a real first name; company 'N/A': a placeholder value; expected a real company"
    )
    # The same bad data again changes nothing; fixed data is a new intent.
    assert enroll_days(warehouse.connect, client, window(0), [DAY], NOW).unchanged == 1
    land(warehouse, PRIYA)
    assert enroll_days(warehouse.connect, client, window(0), [DAY], NOW).enrolled == 1
    assert enrollment(warehouse, KEY)["intent"] == 2


def test_a_lead_that_now_routes_elsewhere_cancels_its_held_intent(
    warehouse: Warehouse, client: OutreachClient
) -> None:
    rules = window(15)
    record_intents(warehouse.connect, [PRIYA], rules, NOW)
    promoted = lead(seniority="c_level", title="Chief Marketing Officer")
    summary = record_intents(warehouse.connect, [promoted], rules, NOW + timedelta(minutes=1))
    assert (summary.rerouted, summary.held) == (1, 1)
    assert enrollment(warehouse, KEY)["status"] == "cancelled"
    assert enrollment(warehouse, KEY)["reason"] == (
        "the lead now routes to 'Executive Briefing' since it was held for "
        "'Marketing Leaders: Pipeline Playbook'"
    )
    executive = enrollment(warehouse, "executive_briefing:priya.raman@umbrella-analytics.io")
    assert executive["status"] == "held"


@pytest.mark.parametrize(
    ("state", "enrolled"),
    [
        ("active", False),
        ("paused", False),
        ("pending", False),
        ("bounced", False),
        ("opted_out", False),
        ("finished", True),
        ("failed", True),
    ],
)
def test_a_prospect_live_in_another_sequence_is_not_enrolled(
    warehouse: Warehouse,
    client: OutreachClient,
    sequencer: httpx.Client,
    state: str,
    enrolled: bool,
) -> None:
    other = prospect_in_sequence(sequencer, PRIYA["email"], "Partner Webinar Follow-up")
    sequencer.put(f"/__sandbox/outreach/sequenceStates/{other}/state", json={"state": state})
    land(warehouse, PRIYA)
    summary = enroll_days(warehouse.connect, client, window(0), [DAY], NOW)
    row = enrollment(warehouse, KEY)
    if enrolled:
        assert (summary.enrolled, row["status"]) == (1, "enrolled")
        assert len(states(sequencer)) == 2
    else:
        assert (summary.cancelled, row["status"]) == (1, "cancelled")
        assert re.fullmatch(
            rf"prospect \d+ is {state} in sequence 'Partner Webinar Follow-up' "
            rf"\(sequenceState {other}\)",
            row["reason"],
        )
        assert posts(sequencer, "/api/v2/sequenceStates") == 1  # the rep's, only


def test_a_prospect_a_rep_already_put_in_the_sequence_is_not_sent_again(
    warehouse: Warehouse, client: OutreachClient, sequencer: httpx.Client
) -> None:
    mine = prospect_in_sequence(sequencer, PRIYA["email"], "Marketing Leaders: Pipeline Playbook")
    land(warehouse, PRIYA)
    summary = enroll_days(warehouse.connect, client, window(0), [DAY], NOW)
    assert (summary.already_in_sequence, summary.enrolled) == (1, 0)
    row = enrollment(warehouse, KEY)
    assert (row["status"], row["sequence_state_id"]) == ("enrolled", mine)
    assert (
        row["reason"] == f"already in the sequence (sequenceState {mine}, active); not sent again"
    )
    assert posts(sequencer, "/api/v2/sequenceStates") == 1


def test_concurrent_releases_in_one_process_send_once(
    warehouse: Warehouse, sandbox_server: SandboxServer, sequencer: httpx.Client
) -> None:
    land(warehouse, PRIYA)
    record_intents(warehouse.connect, [PRIYA], window(0), NOW)
    barrier = threading.Barrier(5)

    def release() -> EnrollmentSummary:
        with OutreachClient(sandbox_server.base_url, "pipeline-token") as own_client:
            barrier.wait()
            return release_due_enrollments(warehouse.connect, own_client, window(0), NOW)

    with ThreadPoolExecutor(5) as pool:
        summaries = list(pool.map(lambda _: release(), range(5)))
    assert sum(s.enrolled for s in summaries) == 1
    assert sum(s.claimed for s in summaries) == 1
    assert posts(sequencer, "/api/v2/sequenceStates") == 1
    assert enrollment(warehouse, KEY)["status"] == "enrolled"


def _dead_process_id() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _claim_as(warehouse: Warehouse, claimed_by: str, lease_until: datetime) -> None:
    """Leave the key claimed by ``claimed_by``, as a release that stopped mid-way does."""
    with warehouse.connect() as con:
        con.execute(
            "UPDATE gtm.sequence_enrollments SET status = 'sending', claimed_by = ?, "
            "claim_expires_at = ?, attempts = attempts + 1 WHERE idempotency_key = ?",
            [claimed_by, lease_until, KEY],
        )


def test_a_claim_left_by_a_crash_after_the_sequencer_took_it_is_not_sent_again(
    warehouse: Warehouse, client: OutreachClient, sequencer: httpx.Client
) -> None:
    land(warehouse, PRIYA)
    record_intents(warehouse.connect, [PRIYA], window(0), NOW)
    dead = f"{socket.gethostname()}:{_dead_process_id()}:0123456789ab"
    _claim_as(warehouse, dead, NOW + timedelta(minutes=10))
    # The crashed release had enrolled her before it could record so.
    sent = prospect_in_sequence(sequencer, PRIYA["email"], "Marketing Leaders: Pipeline Playbook")

    assert due_enrollments(warehouse, NOW) == 1
    summary = release_due_enrollments(warehouse.connect, client, window(0), NOW)
    assert (summary.reclaimed, summary.already_in_sequence) == (1, 1)
    assert posts(sequencer, "/api/v2/sequenceStates") == 1
    row = enrollment(warehouse, KEY)
    assert (row["status"], row["sequence_state_id"], row["claimed_by"]) == ("enrolled", sent, None)
    assert log(warehouse)[1][2:] == (
        "reclaimed",
        f"claim of {dead} abandoned (process gone or lease over); "
        "the sequencer is asked before anything is sent",
    )


def test_a_live_claim_is_left_to_its_release_until_its_lease_ends(
    warehouse: Warehouse, client: OutreachClient, sequencer: httpx.Client
) -> None:
    land(warehouse, PRIYA)
    record_intents(warehouse.connect, [PRIYA], window(0), NOW)
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as other:
        try:
            claimant = f"{socket.gethostname()}:{other.pid}:0123456789ab"
            _claim_as(warehouse, claimant, NOW + timedelta(minutes=10))
            busy = release_due_enrollments(warehouse.connect, client, window(0), NOW)
            assert (busy.in_flight_elsewhere, busy.claimed, busy.requests) == (1, 0, 0)
            assert due_enrollments(warehouse, NOW) == 0
            # Its lease over, the claim is taken over even though its process still runs.
            later = NOW + timedelta(minutes=10)
            taken = release_due_enrollments(warehouse.connect, client, window(0), later)
            assert (taken.reclaimed, taken.enrolled) == (1, 1)
        finally:
            other.kill()
    assert len(states(sequencer)) == 1


def test_claims_of_this_process_are_alive_only_while_their_release_runs() -> None:
    lease = NOW + timedelta(minutes=10)
    assert claim_abandoned(new_claimant(), lease, NOW)  # no release of ours holds it
    assert not claim_abandoned(f"elsewhere.example:{os.getpid()}:x", lease, NOW)
    assert claim_abandoned(f"elsewhere.example:{os.getpid()}:x", NOW, NOW)


def test_a_sequencer_outage_is_retried_with_backoff_then_recorded_as_failed(
    warehouse: Warehouse, client: OutreachClient, sequencer: httpx.Client
) -> None:
    land(warehouse, PRIYA)
    rules = window(0)
    sequencer.post("/__sandbox/faults", json={"error_rate": 1.0}).raise_for_status()
    moments = [NOW, NOW + timedelta(minutes=1), NOW + timedelta(minutes=3)]
    moments += [NOW + timedelta(minutes=7), NOW + timedelta(minutes=15)]
    outcomes: list[tuple[int, int]] = []
    try:
        first = enroll_days(warehouse.connect, client, rules, [DAY], moments[0])
        outcomes.append((first.retrying, first.failed))
        # Not due again before its backoff is over.
        early = release_due_enrollments(warehouse.connect, client, rules, moments[0])
        assert early.claimed == 0
        for moment in moments[1:]:
            summary = release_due_enrollments(warehouse.connect, client, rules, moment)
            outcomes.append((summary.retrying, summary.failed))
    finally:
        sequencer.post("/__sandbox/faults", json={}).raise_for_status()
    assert outcomes == [(1, 0), (1, 0), (1, 0), (1, 0), (0, 1)]
    row = enrollment(warehouse, KEY)
    assert row["status"] == "failed"
    assert row["reason"] == (
        "try 5 of 5 failed for good: GET /api/v2/sequences: gave up after 1 tries (HTTP 500)"
    )
    assert states(sequencer) == []
    assert [event for _, _, event, _ in log(warehouse)].count("retry") == 4


def test_due_enrollments_does_not_wait_for_a_busy_warehouse(warehouse: Warehouse) -> None:
    record_intents(warehouse.connect, [PRIYA], window(0), NOW)
    # Another process writing: it holds the DuckDB file, or PostgreSQL's rows in a
    # transaction it has not committed.
    if warehouse.is_postgres:
        hold, target = (
            (
                "import psycopg2\n"
                "con = psycopg2.connect(sys.argv[1])\n"
                "con.cursor().execute('UPDATE gtm.sequence_enrollments SET updated_at = now()')\n"
            ),
            warehouse.url,
        )
    else:
        hold, target = "con = duckdb.connect(sys.argv[1])\n", str(warehouse.duckdb_path)
    code = f"import duckdb, sys, time\n{hold}print('open', flush=True)\ntime.sleep(30)\n"
    holder = subprocess.Popen(
        [sys.executable, "-c", code, target], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        # A DuckDB file: ask again later. PostgreSQL: the committed state, at once.
        due = due_enrollments(warehouse, NOW)
        assert holder.poll() is None, "due_enrollments waited for the writer to finish"
        assert due == (1 if warehouse.is_postgres else None)
    finally:
        holder.kill()
        holder.wait()
    assert due_enrollments(warehouse, NOW) == 1
