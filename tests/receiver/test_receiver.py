"""The receiver over real HTTP on loopback: authentication, limits, dedupe, the landed format."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gtm_orchestration.receiver.server import ReceiverServer
from gtm_orchestration.receiver.signatures import gtm_signature, hubspot_v3_signature
from tests.receiver.conftest import receiver_server
from tests.receiver.deliveries import (
    HUBSPOT_SECRET,
    WEBHOOK_SECRET,
    Sender,
    as_body,
    engagement,
    hubspot_event,
    landed_ids,
    landed_lines,
    landing_entries,
    lead,
    now_millis,
    raw_exchange,
)

MIB = 1024 * 1024
BATCH_PATH = re.compile(
    r"(?P<channel>hubspot|forms/[a-z0-9_-]+|engagement/[a-z0-9_-]+)/(?P<day>\d{4}-\d{2}-\d{2})/"
    r"(?P<moment>\d{8}T\d{6}\.\d{6}Z)-[0-9a-f]{32}\.jsonl"
)


def assert_nothing_landed(sender: Sender, data_dir: Path) -> None:
    assert sender.health()["landed_events"] == 0
    assert landing_entries(data_dir) == []


def flip_one_char(text: str) -> str:
    return ("B" if text[0] == "A" else "A") + text[1:]


def test_a_signed_hubspot_delivery_lands_each_event(sender: Sender, data_dir: Path) -> None:
    events = [
        hubspot_event(1),
        hubspot_event(
            2,
            subscriptionType="contact.propertyChange",
            propertyName="email",
            propertyValue="ada@example.com",
        ),
    ]

    response = sender.hubspot(events)

    assert response.status_code == 200, response.text
    assert response.json() == {"status": "landed", "landed": 2, "duplicates": 0}
    assert [(line["event_id"], line["payload"]) for line in landed_lines(data_dir)] == [
        ("1", events[0]),
        ("2", events[1]),
    ]


def test_the_hubspot_signature_covers_the_url_as_hubspot_signs_it(
    sender: Sender, receiver: ReceiverServer
) -> None:
    body, timestamp = as_body([hubspot_event(7)]), now_millis()
    # As HubSpot documents it: the full URL called, with %3A (among others) decoded to ':'.
    message = f"POST{receiver.base_url}/webhooks/hubspot?portal=a:b".encode() + body
    digest = hmac.new(HUBSPOT_SECRET.encode(), message + timestamp.encode(), hashlib.sha256)
    signature = base64.b64encode(digest.digest()).decode()

    accepted = sender.hubspot(
        body=body, path="/webhooks/hubspot?portal=a%3Ab", timestamp=timestamp, signature=signature
    )
    other_query = sender.hubspot(
        body=body, path="/webhooks/hubspot?portal=a%3Ac", timestamp=timestamp, signature=signature
    )

    assert accepted.status_code == 200, accepted.text
    assert other_query.status_code == 401


def test_one_wrong_byte_in_body_or_signature_is_rejected_and_nothing_lands(
    sender: Sender, data_dir: Path
) -> None:
    body, timestamp = as_body([hubspot_event(1)]), now_millis()
    url = f"{sender.base_url}/webhooks/hubspot"
    signature = hubspot_v3_signature(HUBSPOT_SECRET, "POST", url, body, timestamp)
    tampered_body = body.replace(b'"objectId": 1001', b'"objectId": 1002')
    assert tampered_body != body

    hubspot_answers = [
        sender.hubspot(body=tampered_body, timestamp=timestamp, signature=signature),
        sender.hubspot(body=body, timestamp=timestamp, signature=flip_one_char(signature)),
        sender.hubspot(body=body, timestamp=timestamp, signature=""),
    ]
    form = as_body(lead("f-1"))
    form_answers = [
        sender.form(
            "leads",
            {},
            body=form.replace(b"Ada", b"Adb"),
            signature=gtm_signature(WEBHOOK_SECRET, form),
        ),
        sender.form("leads", {}, body=form, signature=gtm_signature("wrong-secret", form)),
        sender.http.post("/webhooks/forms/leads", content=form),
    ]

    for answer in hubspot_answers + form_answers:
        assert answer.status_code == 401, answer.text
        assert answer.json()["status"] == "rejected"
    assert "X-HubSpot-Signature-v3" in hubspot_answers[0].json()["error"]
    assert "X-GTM-Signature" in form_answers[0].json()["error"]
    assert_nothing_landed(sender, data_dir)
    # The untouched delivery is accepted: only the wrong byte made the difference.
    assert sender.hubspot(body=body, timestamp=timestamp, signature=signature).status_code == 200


@pytest.mark.parametrize("offset", [timedelta(minutes=-6), timedelta(minutes=6)])
def test_a_timestamp_outside_five_minutes_is_rejected(
    sender: Sender, data_dir: Path, offset: timedelta
) -> None:
    moment = datetime.now(UTC) + offset
    response = sender.hubspot([hubspot_event(1)], timestamp=str(int(moment.timestamp() * 1000)))

    assert response.status_code == 401
    assert "5 minutes" in response.json()["error"]
    assert_nothing_landed(sender, data_dir)


def test_behind_a_proxy_the_public_url_is_the_one_verified(tmp_path: Path) -> None:
    public_url = "https://hooks.example.com"
    with (
        receiver_server(tmp_path, public_base_url=public_url) as receiver,
        httpx.Client(base_url=receiver.base_url, timeout=10) as http,
    ):
        sender = Sender(receiver.base_url, http)
        as_called = sender.hubspot([hubspot_event(1)], signed_url=f"{public_url}/webhooks/hubspot")
        as_arrived = sender.hubspot([hubspot_event(2)])

    assert as_called.status_code == 200, as_called.text
    assert as_arrived.status_code == 401
    assert landed_ids(tmp_path) == [("hubspot", "1")]


def test_a_body_over_one_mib_is_rejected_declared_or_streamed(
    sender: Sender, data_dir: Path
) -> None:
    host = sender.base_url.removeprefix("http://")
    # Declared too large: answered at once, without waiting for a body that never comes.
    declared, answer = raw_exchange(
        sender.base_url,
        f"POST /webhooks/forms/leads HTTP/1.1\nHost: {host}\nContent-Type: application/json\n"
        f"Content-Length: {MIB + 1}\n\n",
    )
    assert declared == 413, answer
    # Chunked with no length: cut off once past the limit, though the body never ends.
    chunk = b"x" * (64 * 1024)
    streamed, answer = raw_exchange(
        sender.base_url,
        f"POST /webhooks/forms/leads HTTP/1.1\nHost: {host}\nContent-Type: application/json\n"
        "Transfer-Encoding: chunked\n\n",
        [f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" for _ in range(MIB // len(chunk) + 1)],
    )
    assert streamed == 413, answer
    # Through an ordinary client too, signed, so only the size is wrong.
    oversized = as_body({**lead("f-big"), "notes": "x" * MIB})
    assert sender.form("leads", {}, body=oversized).status_code == 413
    chunked = sender.http.post(
        "/webhooks/forms/leads",
        content=iter([oversized]),
        headers={"X-GTM-Signature": gtm_signature(WEBHOOK_SECRET, oversized)},
    )
    assert chunked.status_code == 413
    assert_nothing_landed(sender, data_dir)
    # Exactly 1 MiB is still taken.
    padding = MIB - len(as_body({**lead("f-max"), "notes": ""}))
    at_limit = as_body({**lead("f-max"), "notes": "x" * padding})
    assert len(at_limit) == MIB
    assert sender.form("leads", {}, body=at_limit).status_code == 200


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        ("/webhooks/forms/leads", b'{"event_id": "f-1", "email": ', "not valid JSON"),
        ("/webhooks/forms/leads", b"\xff\xfe{}", "not valid JSON"),
        ("/webhooks/forms/leads", b'{"event_id": "f-1", "score": NaN}', "not valid JSON"),
        ("/webhooks/forms/leads", b'[{"event_id": "f-1"}]', "JSON object, got an array"),
        ("/webhooks/engagement/mailer", b'"email_opened"', "JSON object, got a string"),
        ("/webhooks/hubspot", b'{"eventId": 1}', "JSON array of HubSpot events, got an object"),
        ("/webhooks/hubspot", b"[]", "empty array"),
        ("/webhooks/hubspot", b'[{"eventId": 1}, 2]', "event [1]: expected a JSON object"),
        ("/webhooks/hubspot", b'[{"objectId": 1}]', "event [0] eventId"),
        ("/webhooks/forms/leads", b'{"event_id": {"id": 1}}', "event_id: expected a string"),
        ("/webhooks/forms/leads", b'{"event_id": "  "}', "non-blank event id"),
    ],
)
def test_malformed_or_misshapen_json_is_rejected(
    sender: Sender, data_dir: Path, path: str, body: bytes, expected: str
) -> None:
    if path == "/webhooks/hubspot":
        response = sender.hubspot(body=body)
    else:
        response = sender.generic(path, body=body)

    assert response.status_code == 400, response.text
    assert expected in response.json()["error"]
    assert_nothing_landed(sender, data_dir)


def test_a_form_takes_its_event_id_from_the_field_or_the_idempotency_key(
    sender: Sender, data_dir: Path
) -> None:
    submission = {"email": "ada@example.com", "first_name": "Ada"}

    missing = sender.form("leads", submission)
    keyed = sender.form("leads", submission, headers={"Idempotency-Key": "key-1"})
    both = sender.form("leads", lead("f-1"), headers={"Idempotency-Key": "key-2"})

    assert missing.status_code == 400
    assert "event_id" in missing.json()["error"]
    assert "Idempotency-Key" in missing.json()["error"]
    assert keyed.json() == {"status": "landed", "event_id": "key-1"}
    assert both.json() == {"status": "landed", "event_id": "f-1"}, "the field wins"
    assert landed_ids(data_dir) == [("forms/leads", "key-1"), ("forms/leads", "f-1")]


def test_engagement_events_must_be_of_a_known_type(sender: Sender, data_dir: Path) -> None:
    unknown = sender.engagement("mailer", engagement("e-1", kind="email_bounced"))
    no_email = sender.engagement("mailer", {**engagement("e-2"), "email": ""})

    assert unknown.status_code == 422
    for kind in ("email_opened", "email_clicked", "email_replied", "meeting_booked", "page_visit"):
        assert kind in unknown.json()["error"]
    assert no_email.status_code == 422
    assert_nothing_landed(sender, data_dir)
    assert sender.engagement("mailer", engagement("e-3", "meeting_booked")).status_code == 200
    assert landed_ids(data_dir) == [("engagement/mailer", "e-3")]


@pytest.mark.parametrize(
    "path", ["/webhooks/forms/Leads", "/webhooks/forms/le.ads", "/webhooks/engagement/" + "m" * 65]
)
def test_a_source_or_provider_must_be_a_safe_slug(sender: Sender, path: str) -> None:
    response = sender.generic(path, lead("f-1"))
    assert response.status_code == 404
    assert "a-z, 0-9" in response.json()["error"]


def test_the_same_event_posted_three_times_lands_once(sender: Sender, data_dir: Path) -> None:
    answers = [sender.form("leads", lead("f-1")).json() for _ in range(3)]
    hubspot = [sender.hubspot([hubspot_event(9), hubspot_event(9)]).json() for _ in range(2)]

    assert [answer["status"] for answer in answers] == ["landed", "duplicate", "duplicate"]
    assert hubspot == [
        {"status": "landed", "landed": 1, "duplicates": 1},
        {"status": "duplicate", "landed": 0, "duplicates": 2},
    ]
    assert landed_ids(data_dir) == [("forms/leads", "f-1"), ("hubspot", "9")]


def test_the_same_event_posted_three_times_at_once_lands_once(
    sender: Sender, data_dir: Path
) -> None:
    start = threading.Barrier(3)
    statuses: list[tuple[int, str]] = []

    def deliver() -> None:
        with httpx.Client(base_url=sender.base_url, timeout=10) as http:
            start.wait()
            response = Sender(sender.base_url, http).form("leads", lead("f-1"))
            statuses.append((response.status_code, response.json()["status"]))

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [(200, "duplicate"), (200, "duplicate"), (200, "landed")]
    assert landed_ids(data_dir) == [("forms/leads", "f-1")]


def test_a_landed_file_has_the_documented_line_format(sender: Sender, data_dir: Path) -> None:
    before = datetime.now(UTC)
    submission = {**lead("f-1"), "company": "Zoë & Co"}
    assert sender.form("web-signup_2", submission).status_code == 200
    after = datetime.now(UTC)

    [path] = landing_entries(data_dir)
    relative = path.relative_to(data_dir / "landing" / "webhooks").as_posix()
    match = BATCH_PATH.fullmatch(relative)
    assert match, relative
    assert match["channel"] == "forms/web-signup_2"
    assert match["day"] == before.strftime("%Y-%m-%d") or match["day"] == after.strftime("%Y-%m-%d")
    assert stat.S_IMODE(path.stat().st_mode) & 0o137 == 0, "owner rw, group r at most"
    assert not list((data_dir / "receiver" / "spool").iterdir())

    [line] = path.read_text(encoding="utf-8").splitlines()
    event: dict[str, Any] = json.loads(line)
    assert list(event) == ["event_id", "channel", "source", "received_at", "payload"]
    assert event["event_id"] == "f-1"
    assert event["channel"] == "forms/web-signup_2"
    assert event["source"] == "web-signup_2"
    assert event["payload"] == submission
    received_at = datetime.fromisoformat(event["received_at"])
    assert received_at.utcoffset() == timedelta(0)
    assert before <= received_at <= after


def test_dedupe_survives_a_receiver_restart(data_dir: Path) -> None:
    def deliver() -> list[str]:
        with (
            receiver_server(data_dir) as receiver,
            httpx.Client(base_url=receiver.base_url, timeout=10) as http,
        ):
            sender = Sender(receiver.base_url, http)
            return [
                sender.form("leads", lead("f-1")).json()["status"],
                sender.hubspot([hubspot_event(1)]).json()["status"],
                sender.engagement("mailer", engagement("e-1")).json()["status"],
            ]

    assert deliver() == ["landed"] * 3
    assert deliver() == ["duplicate"] * 3
    assert sorted(landed_ids(data_dir)) == [
        ("engagement/mailer", "e-1"),
        ("forms/leads", "f-1"),
        ("hubspot", "1"),
    ]


def test_healthz_reports_pending_and_landed_counts(sender: Sender, data_dir: Path) -> None:
    assert sender.health() == {
        "status": "ok",
        "pending_events": 0,
        "landed_batches": 0,
        "landed_events": 0,
        "failed_commits": 0,
    }
    sender.hubspot([hubspot_event(1), hubspot_event(2)])
    sender.form("leads", lead("f-1"))
    health = sender.health()
    assert (health["landed_events"], health["pending_events"]) == (3, 0)
    assert health["landed_batches"] == len(landing_entries(data_dir))


def test_secrets_reach_neither_logs_nor_error_bodies(
    sender: Sender, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answers = [
        sender.hubspot([hubspot_event(1)], signature="forged"),
        sender.form("leads", lead("f-1"), signature="sha256=forged"),
        sender.form("leads", {}, body=b"{"),
    ]

    assert [answer.status_code for answer in answers] == [401, 401, 400]
    for secret in (HUBSPOT_SECRET, WEBHOOK_SECRET):
        assert secret not in caplog.text
        assert all(secret not in answer.text for answer in answers)
