"""The sandbox's alert sinks answer as Slack and PagerDuty do and record what they receive."""

from __future__ import annotations

import httpx

from gtm_orchestration.settings import SANDBOX_PAGERDUTY_ROUTING_KEY, SANDBOX_SLACK_WEBHOOK_PATH
from tests.conftest import Crm

KEY = SANDBOX_PAGERDUTY_ROUTING_KEY


def _trigger(dedup_key: str | None = None, **changes: object) -> dict:
    event: dict = {
        "routing_key": KEY,
        "event_action": "trigger",
        "payload": {"summary": "HubSpot failing", "source": "gtm-host", "severity": "critical"},
    }
    if dedup_key:
        event["dedup_key"] = dedup_key
    return event | changes


def test_slack_webhook_answers_ok_and_refuses_what_slack_refuses(crm: Crm) -> None:
    http = crm.http
    ok = http.post(SANDBOX_SLACK_WEBHOOK_PATH, json={"text": "hello", "blocks": []})
    assert (ok.status_code, ok.text) == (200, "ok")
    form = http.post(SANDBOX_SLACK_WEBHOOK_PATH, data={"payload": '{"text": "as a form"}'})
    assert (form.status_code, form.text) == (200, "ok")
    assert http.post(SANDBOX_SLACK_WEBHOOK_PATH, content=b"{not json").text == "invalid_payload"
    empty = http.post(SANDBOX_SLACK_WEBHOOK_PATH, json={"username": "x"})
    assert (empty.status_code, empty.text) == (400, "no_text")
    bad_blocks = http.post(SANDBOX_SLACK_WEBHOOK_PATH, json={"text": "x", "blocks": [1]})
    assert (bad_blocks.status_code, bad_blocks.text) == (400, "invalid_blocks")

    alerts = http.get("/__sandbox/alerts").json()["alerts"]
    assert [(a["sink"], a["status"]) for a in alerts] == [
        ("slack", 200),
        ("slack", 200),
        ("slack", 400),
        ("slack", 400),
        ("slack", 400),
    ]
    assert alerts[0]["body"] == {"text": "hello", "blocks": []}
    assert alerts[1]["body"] == {"text": "as a form"}
    assert alerts[0]["target"] == "TSANDBOX/BSANDBOX"
    # The webhook's token is its credential: it is not kept.
    assert "sandbox-slack-webhook-token" not in str(alerts)


def test_pagerduty_events_open_group_and_resolve_one_incident_per_dedup_key(crm: Crm) -> None:
    http = crm.http
    first = http.post("/v2/enqueue", json=_trigger("gtm/hubspot"))
    assert first.status_code == 202
    assert first.json() == {
        "status": "success",
        "message": "Event processed",
        "dedup_key": "gtm/hubspot",
    }
    http.post("/v2/enqueue", json=_trigger("gtm/hubspot")).raise_for_status()
    incident = http.get("/__sandbox/alerts").json()["incidents"][0]
    assert (incident["status"], incident["triggers"], incident["incidents"]) == ("triggered", 2, 1)

    resolved = http.post(
        "/v2/enqueue",
        json={"routing_key": KEY, "event_action": "resolve", "dedup_key": "gtm/hubspot"},
    )
    assert resolved.status_code == 202
    assert http.get("/__sandbox/alerts").json()["incidents"][0]["status"] == "resolved"
    # Resolving again, or a key PagerDuty never saw, changes nothing and is accepted.
    for key in ("gtm/hubspot", "never-seen"):
        again = {"routing_key": KEY, "event_action": "resolve", "dedup_key": key}
        assert http.post("/v2/enqueue", json=again).status_code == 202
    # A trigger after the resolution is a new incident.
    http.post("/v2/enqueue", json=_trigger("gtm/hubspot")).raise_for_status()
    (incident,) = http.get("/__sandbox/alerts").json()["incidents"]
    assert (incident["status"], incident["incidents"]) == ("triggered", 2)

    generated = http.post("/v2/enqueue", json=_trigger()).json()["dedup_key"]
    assert len(generated) == 32
    alerts = http.get("/__sandbox/alerts").json()["alerts"]
    assert all("routing_key" not in a["body"] for a in alerts)


def test_pagerduty_refuses_invalid_events_with_its_errors(crm: Crm) -> None:
    http = crm.http

    def errors(event: object) -> list[str]:
        answer = http.post("/v2/enqueue", json=event)
        assert answer.status_code == 400
        assert answer.json()["status"] == "invalid event"
        assert answer.json()["message"] == "Event object is invalid"
        return answer.json()["errors"]

    assert errors(_trigger(routing_key="short")) == [
        "Length of 'routing_key' is incorrect (should be 32 characters)"
    ]
    assert "'routing_key' is missing or blank" in errors({"event_action": "trigger"})
    assert errors(_trigger(event_action="page")) == [
        "'event_action' is invalid (must be one of the following: 'trigger', 'acknowledge' "
        "or 'resolve')"
    ]
    assert errors({"routing_key": KEY, "event_action": "resolve"}) == [
        "'dedup_key' is missing or blank"
    ]
    no_summary = _trigger(payload={"source": "x", "severity": "loud"})
    assert errors(no_summary) == [
        "'payload.summary' is missing or blank",
        "'payload.severity' is invalid (must be one of the following: 'critical', "
        "'warning', 'error' or 'info')",
    ]
    assert errors([1, 2]) == ["Event object is not JSON"]
    assert http.get("/__sandbox/alerts").json()["incidents"] == []


def test_sinks_are_not_faulted_counted_or_kept_after_a_reset(crm: Crm) -> None:
    http = crm.http
    http.post("/__sandbox/faults", json={"error_rate": 1.0, "latency_ms": 0}).raise_for_status()
    assert http.post(SANDBOX_SLACK_WEBHOOK_PATH, json={"text": "x"}).status_code == 200
    assert http.post("/v2/enqueue", json=_trigger("k")).status_code == 202
    assert crm.stats()["total"] == 0

    assert httpx.post(f"{crm.base_url}/__sandbox/reset").status_code == 200
    assert http.get("/__sandbox/alerts").json() == {"alerts": [], "incidents": []}
