"""The sandbox's Outreach-style sequencer (JSON:API): prospects, sequences, sequence states,
its gateway, and the client the pipeline talks to it with."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gtm_orchestration.lib.connectors.outreach import OutreachClient, OutreachError
from gtm_orchestration.lib.enrollment_rules import default_sequence_rules
from gtm_orchestration.sandbox import SandboxServer
from gtm_orchestration.sandbox.rate_limit import RollingWindowLimiter

MEDIA_TYPE = "application/vnd.api+json"
REP_MAILBOX = "sam.patel@sandbox-sales.example"


@pytest.fixture
def outreach(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    """A client of the sequencer's API, with a token and the JSON:API media type."""
    headers = {"Authorization": "Bearer outreach-test-token", "Content-Type": MEDIA_TYPE}
    with httpx.Client(base_url=sandbox.base_url, headers=headers, timeout=10) as client:
        yield client


def create_prospect(outreach: httpx.Client, **attributes: object) -> httpx.Response:
    return outreach.post(
        "/api/v2/prospects", json={"data": {"type": "prospect", "attributes": attributes}}
    )


def create_sequence(outreach: httpx.Client, name: str, enabled: bool = True) -> int:
    body = {"data": {"type": "sequence", "attributes": {"name": name, "enabled": enabled}}}
    response = outreach.post("/api/v2/sequences", json=body)
    assert response.status_code == 201, response.text
    return response.json()["data"]["id"]


def mailbox_id(outreach: httpx.Client, email: str = REP_MAILBOX) -> int:
    (mailbox,) = outreach.get("/api/v2/mailboxes", params={"filter[email]": email}).json()["data"]
    return mailbox["id"]


def enroll(outreach: httpx.Client, prospect: int, sequence: int, mailbox: int) -> httpx.Response:
    relationships = {
        "prospect": {"data": {"type": "prospect", "id": prospect}},
        "sequence": {"data": {"type": "sequence", "id": sequence}},
        "mailbox": {"data": {"type": "mailbox", "id": mailbox}},
    }
    body = {"data": {"type": "sequenceState", "relationships": relationships}}
    return outreach.post("/api/v2/sequenceStates", json=body)


def test_a_prospect_is_created_read_and_found_by_any_of_its_addresses(
    outreach: httpx.Client,
) -> None:
    created = create_prospect(
        outreach,
        emails=["priya.raman@umbrella-analytics.io", "priya@raman.me"],
        firstName="Priya",
        lastName="Raman",
        title="VP Marketing",
        company="Umbrella Analytics",
    )
    assert created.status_code == 201
    assert created.headers["content-type"].startswith(MEDIA_TYPE)
    data = created.json()["data"]
    assert data["type"] == "prospect"
    assert data["attributes"]["firstName"] == "Priya"
    assert data["attributes"]["createdAt"].endswith("Z")
    assert data["links"]["self"].endswith(f"/api/v2/prospects/{data['id']}")
    related = data["relationships"]["sequenceStates"]["links"]["related"]
    assert related.endswith(f"/api/v2/sequenceStates?filter[prospect][id]={data['id']}")

    assert outreach.get(f"/api/v2/prospects/{data['id']}").json()["data"] == data
    found = outreach.get("/api/v2/prospects", params={"filter[emails]": "PRIYA@raman.me"}).json()
    assert [p["id"] for p in found["data"]] == [data["id"]]
    assert found["meta"]["count"] == 1
    nobody = outreach.get("/api/v2/prospects", params={"filter[emails]": "nobody@example.com"})
    assert nobody.json()["data"] == []


def test_prospect_writes_are_refused_as_outreach_refuses_them(outreach: httpx.Client) -> None:
    assert create_prospect(outreach, emails=["dana@globex.com"]).status_code == 201

    duplicate = create_prospect(outreach, emails=["Dana@Globex.com"], firstName="Dana")
    assert duplicate.status_code == 422
    (error,) = duplicate.json()["errors"]
    assert error["id"] == "validationError"
    assert error["detail"] == "Contacts email hash has already been taken."
    assert error["source"] == {"pointer": "/data/attributes/emails"}

    unknown = create_prospect(outreach, emails=["x@globex.com"], favouriteColour="teal")
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["source"]["pointer"] == "/data/attributes/favouriteColour"

    wrong_type = outreach.post("/api/v2/prospects", json={"data": {"type": "account"}})
    assert (wrong_type.status_code, wrong_type.json()["errors"][0]["id"]) == (409, "typeMismatch")
    assert outreach.get("/api/v2/prospects/999999").json()["errors"][0] == {
        "id": "resourceNotFound",
        "title": "Resource Not Found",
        "detail": "Could not find 'prospect' with ID '999999'.",
    }


def test_patch_sets_the_given_attributes_and_keeps_the_others(outreach: httpx.Client) -> None:
    prospect = create_prospect(outreach, emails=["jo@hooli.com"], firstName="JO", title="CMO")
    prospect_id = prospect.json()["data"]["id"]
    body = {"data": {"type": "prospect", "id": prospect_id, "attributes": {"firstName": "Jo"}}}
    patched = outreach.patch(f"/api/v2/prospects/{prospect_id}", json=body)
    assert patched.status_code == 200
    attributes = patched.json()["data"]["attributes"]
    assert (attributes["firstName"], attributes["title"]) == ("Jo", "CMO")


def test_the_configured_sequences_exist_and_more_can_be_created(outreach: httpx.Client) -> None:
    names = {s["attributes"]["name"] for s in outreach.get("/api/v2/sequences").json()["data"]}
    assert names == {spec.name for spec in default_sequence_rules().sequences.values()}

    sequence_id = create_sequence(outreach, "Partner Webinar Follow-up", enabled=False)
    by_name = outreach.get(
        "/api/v2/sequences", params={"filter[name]": "Partner Webinar Follow-up"}
    ).json()["data"]
    assert [s["id"] for s in by_name] == [sequence_id]
    assert by_name[0]["attributes"]["enabled"] is False
    assert outreach.get(f"/api/v2/sequences/{sequence_id}").json()["data"] == by_name[0]


def test_enrolling_creates_a_sequence_state_and_a_second_enrollment_is_refused(
    outreach: httpx.Client,
) -> None:
    prospect = create_prospect(outreach, emails=["li@initech.com"]).json()["data"]["id"]
    sequence = create_sequence(outreach, "Revenue Leaders: Q4")
    mailbox = mailbox_id(outreach)

    enrolled = enroll(outreach, prospect, sequence, mailbox)
    assert enrolled.status_code == 201
    state = enrolled.json()["data"]
    assert state["type"] == "sequenceState"
    assert state["attributes"]["state"] == "active"
    assert state["relationships"] == {
        "prospect": {"data": {"type": "prospect", "id": prospect}},
        "sequence": {"data": {"type": "sequence", "id": sequence}},
        "mailbox": {"data": {"type": "mailbox", "id": mailbox}},
    }

    again = enroll(outreach, prospect, sequence, mailbox)
    assert again.status_code == 422
    assert (
        again.json()["errors"][0]["detail"] == "Prospect has already been added to this sequence."
    )

    # Paused is still in the sequence; finished is not.
    paused = outreach.post(f"/api/v2/sequenceStates/{state['id']}/actions/pause")
    assert paused.json()["data"]["attributes"]["state"] == "paused"
    assert enroll(outreach, prospect, sequence, mailbox).status_code == 422
    outreach.post(f"/api/v2/sequenceStates/{state['id']}/actions/finish").raise_for_status()
    assert enroll(outreach, prospect, sequence, mailbox).status_code == 201


def test_a_prospect_added_to_a_disabled_sequence_is_pending(outreach: httpx.Client) -> None:
    prospect = create_prospect(outreach, emails=["ava@massive-dynamic.com"]).json()["data"]["id"]
    sequence = create_sequence(outreach, "Draft Sequence", enabled=False)
    state = enroll(outreach, prospect, sequence, mailbox_id(outreach)).json()["data"]
    assert state["attributes"]["state"] == "pending"


def test_an_enrollment_names_what_is_missing(outreach: httpx.Client) -> None:
    prospect = create_prospect(outreach, emails=["kim@k-partner.kr"]).json()["data"]["id"]
    missing_mailbox = enroll(outreach, prospect, create_sequence(outreach, "Seq"), 424242)
    assert missing_mailbox.status_code == 422
    (error,) = missing_mailbox.json()["errors"]
    assert error["detail"] == "Could not find 'mailbox' with ID '424242'."
    assert error["source"] == {"pointer": "/data/relationships/mailbox"}
    no_relationships = outreach.post(
        "/api/v2/sequenceStates", json={"data": {"type": "sequenceState"}}
    )
    assert no_relationships.json()["errors"][0]["detail"] == "Prospect can't be blank."


def test_sequence_states_filter_by_prospect_sequence_and_state_and_page(
    outreach: httpx.Client, operator: httpx.Client
) -> None:
    mailbox = mailbox_id(outreach)
    first, second = (create_sequence(outreach, f"Sequence {n}") for n in (1, 2))
    prospects = [
        create_prospect(outreach, emails=[f"p{n}@example.org"]).json()["data"]["id"]
        for n in range(3)
    ]
    states = [enroll(outreach, p, first, mailbox).json()["data"]["id"] for p in prospects]
    enroll(outreach, prospects[0], second, mailbox).raise_for_status()
    operator.put(
        f"/__sandbox/outreach/sequenceStates/{states[1]}/state",
        json={"state": "bounced", "reason": "mailbox does not exist"},
    ).raise_for_status()

    def ids(**params: object) -> list[int]:
        return [
            s["id"] for s in outreach.get("/api/v2/sequenceStates", params=params).json()["data"]
        ]

    assert len(ids(**{"filter[prospect][id]": prospects[0]})) == 2
    assert ids(**{"filter[sequence][id]": first}) == states
    assert ids(**{"filter[state]": "bounced"}) == [states[1]]
    assert len(ids(**{"filter[state]": "active,bounced", "filter[sequence][id]": first})) == 3
    bounced = outreach.get(f"/api/v2/sequenceStates/{states[1]}").json()["data"]["attributes"]
    assert bounced["errorReason"] == "mailbox does not exist"

    page = outreach.get("/api/v2/sequenceStates", params={"page[size]": 3}).json()
    assert (len(page["data"]), page["meta"]["count"]) == (3, 4)
    rest = outreach.get(page["links"]["next"]).json()
    assert len(rest["data"]) == 1 and "next" not in rest["links"]

    unknown = outreach.get("/api/v2/sequenceStates", params={"filter[state]": "asleep"})
    assert unknown.status_code == 400
    assert "asleep" in unknown.json()["errors"][0]["detail"]


def test_the_gateway_wants_a_token_and_the_json_api_media_type(
    sandbox: SandboxServer, outreach: httpx.Client
) -> None:
    no_token = httpx.get(f"{sandbox.base_url}/api/v2/prospects")
    assert no_token.status_code == 401
    assert no_token.json()["errors"][0]["id"] == "unauthorized"

    plain_json = outreach.post(
        "/api/v2/prospects",
        json={"data": {"type": "prospect", "attributes": {"emails": ["a@b.io"]}}},
        headers={"Content-Type": "application/json"},
    )
    assert plain_json.status_code == 415
    assert plain_json.json()["errors"][0]["id"] == "unsupportedMediaType"
    assert (
        outreach.get("/api/v2/prospects", params={"filter[emails]": "a@b.io"}).json()["data"] == []
    )


def test_requests_are_counted_by_endpoint_and_faults_apply(
    outreach: httpx.Client, operator: httpx.Client
) -> None:
    prospect = create_prospect(outreach, emails=["stats@example.org"]).json()["data"]["id"]
    outreach.get(f"/api/v2/prospects/{prospect}")
    operator.post("/__sandbox/faults", json={"error_rate": 1.0}).raise_for_status()
    failed = create_prospect(outreach, emails=["lost@example.org"])
    operator.post("/__sandbox/faults", json={}).raise_for_status()

    assert failed.status_code == 500
    assert failed.json()["errors"][0]["id"] == "internalServerError"
    assert (
        outreach.get("/api/v2/prospects", params={"filter[emails]": "lost@example.org"}).json()[
            "data"
        ]
        == []
    )
    by_endpoint = operator.get("/__sandbox/stats").json()["by_endpoint"]
    assert by_endpoint["POST /api/v2/prospects"] == {"201": 1, "500": 1}
    assert by_endpoint["GET /api/v2/prospects/{id}"] == {"200": 1}


def test_the_rate_limit_answers_429_with_outreach_headers(
    sandbox: SandboxServer, outreach: httpx.Client
) -> None:
    services = sandbox.app.state.sandbox
    default = services.outreach.limiter
    services.outreach.limiter = RollingWindowLimiter(2, 60.0)
    try:
        allowed = [outreach.get("/api/v2/sequences") for _ in range(2)]
        refused = outreach.get("/api/v2/sequences")
    finally:
        services.outreach.limiter = default
    assert [r.headers["X-RateLimit-Remaining"] for r in allowed] == ["1", "0"]
    assert allowed[0].headers["X-RateLimit-Limit"] == "2"
    assert refused.status_code == 429
    assert refused.json()["errors"][0]["id"] == "rateLimitExceeded"
    assert refused.headers["Retry-After"] == "60"


def test_reset_forgets_prospects_and_states_and_reseeds_sequences(
    outreach: httpx.Client, operator: httpx.Client
) -> None:
    create_prospect(outreach, emails=["gone@example.org"]).raise_for_status()
    create_sequence(outreach, "Temporary")
    operator.post("/__sandbox/reset").raise_for_status()
    assert outreach.get("/api/v2/prospects").json()["data"] == []
    names = [s["attributes"]["name"] for s in outreach.get("/api/v2/sequences").json()["data"]]
    assert "Temporary" not in names and len(names) == len(default_sequence_rules().sequences)


def test_state_survives_a_restart(tmp_path: Path) -> None:
    headers = {"Authorization": "Bearer t", "Content-Type": MEDIA_TYPE}
    with (
        SandboxServer(tmp_path) as server,
        httpx.Client(base_url=server.base_url, headers=headers) as client,
    ):
        prospect = create_prospect(client, emails=["kept@example.org"]).json()["data"]["id"]
        sequence = create_sequence(client, "Kept")
        enroll(client, prospect, sequence, mailbox_id(client)).raise_for_status()
    with (
        SandboxServer(tmp_path) as server,
        httpx.Client(base_url=server.base_url, headers=headers) as client,
    ):
        states = client.get("/api/v2/sequenceStates", params={"filter[prospect][id]": prospect})
        assert [s["attributes"]["state"] for s in states.json()["data"]] == ["active"]
        sequences = client.get("/api/v2/sequences", params={"filter[name]": "Kept"}).json()
        assert len(sequences["data"]) == 1


def test_the_client_speaks_the_protocol(sandbox: SandboxServer) -> None:
    with OutreachClient(sandbox.base_url, "client-token") as client:
        sequence = client.sequence_id("Executive Briefing")
        mailbox = client.mailbox_id(REP_MAILBOX.upper())
        prospect = client.create_prospect({"emails": ["zoe+news@gringotts.co.uk"]})
        assert client.find_prospect("ZOE+news@gringotts.co.uk") == prospect
        state = client.create_sequence_state(prospect.id, sequence, mailbox)
        assert (state.state, state.prospect_id, state.sequence_id) == (
            "active",
            prospect.id,
            sequence,
        )
        assert client.sequence_states(prospect_id=prospect.id, states=["active"]) == [state]
        assert client.sequence_name(sequence) == "Executive Briefing"
        with pytest.raises(OutreachError) as refused:
            client.create_sequence_state(prospect.id, sequence, mailbox)
        assert (refused.value.status, refused.value.error_id) == (422, "validationError")
        assert not refused.value.retryable
        with pytest.raises(OutreachError, match="expected exactly one sequence"):
            client.sequence_id("No Such Sequence")


def test_the_client_retries_server_errors_and_rate_limits_but_not_refusals() -> None:
    answers = iter([503, 429, 201])
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["content-type"])
        status = next(answers)
        body = {"data": {"type": "prospect", "id": 7, "attributes": {}}} if status == 201 else {}
        return httpx.Response(status, json=body, headers={"Retry-After": "0"})

    client = OutreachClient(
        "http://outreach.test", "t", transport=httpx.MockTransport(answer), sleep=lambda _: None
    )
    assert client.create_prospect({"emails": ["a@b.io"]}).id == 7
    assert seen == [MEDIA_TYPE] * 3 and client.requests == 3

    refusals = httpx.MockTransport(
        lambda _: httpx.Response(422, json={"errors": [{"id": "validationError", "detail": "no"}]})
    )
    client = OutreachClient("http://outreach.test", "t", transport=refusals, sleep=lambda _: None)
    with pytest.raises(OutreachError, match="HTTP 422: no"):
        client.create_prospect({"emails": ["a@b.io"]})
    assert client.requests == 1

    down = httpx.MockTransport(lambda _: httpx.Response(503))
    client = OutreachClient(
        "http://outreach.test", "t", transport=down, sleep=lambda _: None, max_attempts=3
    )
    with pytest.raises(OutreachError, match="gave up after 3 tries") as gave_up:
        client.find_prospect("a@b.io")
    assert gave_up.value.retryable
