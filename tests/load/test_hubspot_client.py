"""The HubSpot client's retries and pacing: an HTTP fake for the retry behaviour, the real
sandbox for staying under its rate limit."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from gtm_orchestration.lib.connectors.hubspot import (
    HubSpotClient,
    HubSpotError,
    RollingWindowPacer,
)
from gtm_orchestration.sandbox.server import SandboxServer

RATE_HEADERS = {
    "X-HubSpot-RateLimit-Max": "190",
    "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
}


class FakeClock:
    """Time that passes only when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _answer(status: int, body: dict | None = None, **headers: str) -> httpx.Response:
    return httpx.Response(status, content=json.dumps(body or {}), headers=RATE_HEADERS | headers)


def _client(answers: list[httpx.Response | Exception], clock: FakeClock) -> HubSpotClient:
    """A client of a fake portal answering ``answers`` in turn."""

    def answer(request: httpx.Request) -> httpx.Response:
        item = answers.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    pacer = RollingWindowPacer(clock=clock.time, sleep=clock.sleep)
    return HubSpotClient(
        "https://api.example.test",
        "token",
        max_attempts=4,
        pacer=pacer,
        transport=httpx.MockTransport(answer),
        sleep=clock.sleep,
    )


def _rolling_429() -> httpx.Response:
    body = {"status": "error", "errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"}
    return _answer(429, body, **{"X-HubSpot-RateLimit-Remaining": "0"})


def test_a_rolling_limit_429_waits_what_the_portal_asks_then_succeeds() -> None:
    clock = FakeClock()
    ok = _answer(200, {"results": [{"id": "1"}]})
    client = _client(
        [_answer(429, {"policyName": "TEN_SECONDLY_ROLLING"}, **{"Retry-After": "3"}), ok], clock
    )
    assert client.batch_read("contacts", ["1"]).results == [{"id": "1"}]
    assert client.requests_sent == 2
    # Retry-After is honoured, however small the first backoff would be.
    assert sum(clock.slept) >= 3


def test_a_daily_limit_429_is_not_retried() -> None:
    clock = FakeClock()
    daily = _answer(429, {"status": "error", "policyName": "DAILY", "message": "daily limit"})
    client = _client([daily, _answer(200)], clock)
    with pytest.raises(HubSpotError) as refused:
        client.batch_read("contacts", ["1"])
    assert (refused.value.status, refused.value.category, refused.value.transient) == (
        429,
        "DAILY",
        False,
    )
    assert client.requests_sent == 1


def test_server_and_transport_errors_are_retried_with_growing_backoff() -> None:
    clock = FakeClock()
    answers: list[httpx.Response | Exception] = [
        _answer(502),
        httpx.ConnectError("connection refused"),
        _answer(503),
        _answer(200, {"results": []}),
    ]
    client = _client(answers, clock)
    client.batch_read("contacts", ["1"])
    assert client.requests_sent == 4
    # Exponential with jitter: each wait is half to all of 0.5 s, 1 s, 2 s.
    waits = clock.slept
    assert [0.25 <= waits[0] <= 0.5, 0.5 <= waits[1] <= 1.0, 1.0 <= waits[2] <= 2.0] == [True] * 3


def test_a_request_failing_every_try_is_a_transient_error() -> None:
    clock = FakeClock()
    client = _client([_answer(500), _answer(500), _rolling_429(), _answer(500)], clock)
    with pytest.raises(HubSpotError) as failed:
        client.batch_upsert("contacts", "email", [("a@example.com", {"firstname": "A"})])
    assert failed.value.transient and failed.value.status == 500
    assert "gave up after 4 tries (HTTP 500)" in str(failed.value)


def test_a_refused_request_is_not_retried_and_names_the_reason() -> None:
    clock = FakeClock()
    conflict = {"status": "error", "category": "CONFLICT", "message": "Contact already exists"}
    client = _client([_answer(409, conflict)], clock)
    with pytest.raises(HubSpotError) as refused:
        client.batch_create("contacts", [{"email": "a@example.com"}])
    assert (refused.value.status, refused.value.category, refused.value.transient) == (
        409,
        "CONFLICT",
        False,
    )
    assert "Contact already exists" in str(refused.value)


def test_the_pacer_keeps_under_the_announced_limit_and_counts_other_clients() -> None:
    clock = FakeClock()
    pacer = RollingWindowPacer(clock=clock.time, sleep=clock.sleep)
    # The portal announces 10 requests per second, 4 of them used by another client.
    pacer.observe(
        _answer(
            200,
            **{
                "X-HubSpot-RateLimit-Max": "10",
                "X-HubSpot-RateLimit-Interval-Milliseconds": "1000",
                "X-HubSpot-RateLimit-Remaining": "6",
            },
        )
    )
    assert pacer.limit == (10, 1.0)
    sent_at = []
    for _ in range(12):
        pacer.acquire()
        sent_at.append(clock.now)
    # 8 a window (10 less a margin of 2), 4 of them already taken by the other client.
    assert sent_at[:4] == [sent_at[0]] * 4
    assert sent_at[4] > sent_at[0] + 1.0
    in_any_window = max(sum(1 for t in sent_at if start <= t < start + 1.0) for start in sent_at)
    assert in_any_window <= 8


def test_a_429_pauses_every_request_of_the_portal() -> None:
    clock = FakeClock()
    pacer = RollingWindowPacer(clock=clock.time, sleep=clock.sleep)
    pacer.observe(_rolling_429())
    pacer.acquire()
    # No Retry-After: a tenth of the ten-second window.
    assert clock.slept == [pytest.approx(1.0)]


@pytest.fixture
def small_limit_portal(tmp_path: Path) -> Iterator[SandboxServer]:
    # A window of seconds, not HubSpot's ten, keeps the test short; long enough that the
    # sandbox, sharing this process's interpreter, counts each request near when it left.
    with SandboxServer(tmp_path / "sandbox", rate_limit=10, rate_window_s=2.0) as server:
        yield server


def test_many_threads_through_one_client_never_meet_the_real_limit(
    small_limit_portal: SandboxServer,
) -> None:
    base_url = small_limit_portal.base_url
    with HubSpotClient(base_url, "pacing-test") as client:

        def read(i: int) -> object:
            return client.batch_read("contacts", [f"p{i}@example.com"], id_property="email")

        started = time.monotonic()
        with ThreadPoolExecutor(4) as threads:
            list(threads.map(read, range(24)))
        elapsed = time.monotonic() - started
    statuses = httpx.get(f"{base_url}/__sandbox/stats").json()["by_endpoint"]
    answers = statuses.pop("POST /crm/v3/objects/contacts/batch/read")
    assert statuses == {}
    assert answers.pop("207") == 24
    # The pacer keeps a margin of 0.2 s, but this sandbox shares the test's interpreter: on a
    # busy machine it may count a request late enough to land in the next window. One 429,
    # retried, is that; an unpaced client would meet the limit in every window.
    assert answers.get("429", 0) <= 1 and set(answers) <= {"429"}
    # 24 requests at 8 a window need two windows after the first.
    assert elapsed >= 2 * 2.0
