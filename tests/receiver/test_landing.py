"""The landing writer, committer and dedupe store, driven directly without HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import pytest

from gtm_orchestration.receiver.landing import (
    DEDUPE_STORE_SUBPATH,
    SPOOL_SUBDIR,
    LandingOutcome,
    WebhookBatchError,
    WebhookEvent,
    WebhookLanding,
    read_webhook_batch,
    scan_webhook_batches,
    webhook_landing_dir,
    write_batch_file,
)
from tests.receiver.deliveries import landed_ids, landing_entries, lead

T = TypeVar("T")


def with_landing(
    data_dir: Path, use: Callable[[WebhookLanding], Awaitable[T]], **options: float
) -> T:
    """Start a landing on ``data_dir``, run ``use`` with it, stop it; returns what ``use`` did."""

    async def run() -> T:
        landing = WebhookLanding(data_dir, **options)  # type: ignore[arg-type]
        await landing.start()
        try:
            return await use(landing)
        finally:
            await landing.stop()

    return asyncio.run(run())


def form_event(event_id: str, source: str = "leads") -> WebhookEvent:
    return WebhookEvent(f"forms/{source}", source, event_id, lead(event_id))


def test_concurrent_deliveries_share_one_commit_per_channel(tmp_path: Path) -> None:
    async def spike(landing: WebhookLanding) -> list[list[LandingOutcome]]:
        deliveries = [[form_event(f"f-{n}")] for n in range(40)]
        deliveries += [[form_event(f"w-{n}", source="webinar")] for n in range(10)]
        return await asyncio.gather(*(landing.land(events) for events in deliveries))

    outcomes = with_landing(tmp_path, spike, max_batch_age_s=0.5)

    assert all(outcome == [LandingOutcome.LANDED] for outcome in outcomes)
    batches = scan_webhook_batches(tmp_path / "landing")
    assert sorted(path.parent.parent.name for path in batches) == ["leads", "webinar"]
    assert sorted(len(read_webhook_batch(path)) for path in batches) == [10, 40]


def test_a_batch_commits_when_it_reaches_max_batch_events(tmp_path: Path) -> None:
    async def deliver(landing: WebhookLanding) -> list[LandingOutcome]:
        return await landing.land([form_event(f"f-{n}") for n in range(25)])

    assert with_landing(tmp_path, deliver, max_batch_events=10) == [LandingOutcome.LANDED] * 25
    batches = scan_webhook_batches(tmp_path / "landing")
    assert [len(read_webhook_batch(path)) for path in batches] == [10, 10, 5]
    assert [line["event_id"] for path in batches for line in read_webhook_batch(path)] == [
        f"f-{n}" for n in range(25)
    ]


def test_an_event_delivered_three_times_at_once_lands_once(tmp_path: Path) -> None:
    async def triple(landing: WebhookLanding) -> list[list[LandingOutcome]]:
        return await asyncio.gather(*(landing.land([form_event("f-1")]) for _ in range(3)))

    outcomes = sorted(outcome for [outcome] in with_landing(tmp_path, triple))
    assert outcomes == [LandingOutcome.DUPLICATE, LandingOutcome.DUPLICATE, LandingOutcome.LANDED]
    assert landed_ids(tmp_path) == [("forms/leads", "f-1")]


def test_ids_are_deduplicated_per_channel(tmp_path: Path) -> None:
    async def deliver(landing: WebhookLanding) -> list[LandingOutcome]:
        await landing.land([form_event("same-id")])
        return await landing.land([form_event("same-id", source="webinar")])

    assert with_landing(tmp_path, deliver) == [LandingOutcome.LANDED]


def test_a_file_landed_but_never_recorded_is_recognised_at_start(tmp_path: Path) -> None:
    # What a receiver killed between the rename and recording the ids leaves behind.
    spool = tmp_path / SPOOL_SUBDIR
    spool.mkdir(parents=True)
    line = {
        "event_id": "f-1",
        "channel": "forms/leads",
        "source": "leads",
        "received_at": datetime.now(UTC).isoformat(),
        "payload": lead("f-1"),
    }
    write_batch_file(webhook_landing_dir(tmp_path), spool, "forms/leads", datetime.now(UTC), [line])
    (spool / "20261126T000000.000000Z-abandoned.jsonl.part").write_text('{"event_id": "f-2"')

    async def redeliver(landing: WebhookLanding) -> list[LandingOutcome]:
        assert landing.health()["landed_events"] == 1
        return await landing.land([form_event("f-1"), form_event("f-2")])

    assert with_landing(tmp_path, redeliver) == [LandingOutcome.DUPLICATE, LandingOutcome.LANDED]
    assert list(spool.iterdir()) == [], "an unacknowledged spool file is removed, never landed"
    assert sorted(landed_ids(tmp_path)) == [("forms/leads", "f-1"), ("forms/leads", "f-2")]


def test_a_lost_dedupe_store_is_rebuilt_from_the_landing_zone(tmp_path: Path) -> None:
    async def deliver(landing: WebhookLanding) -> list[LandingOutcome]:
        return await landing.land([form_event("f-1"), form_event("f-2")])

    with_landing(tmp_path, deliver)
    for path in (tmp_path / DEDUPE_STORE_SUBPATH).parent.glob("events.sqlite3*"):
        path.unlink()

    assert with_landing(tmp_path, deliver) == [LandingOutcome.DUPLICATE] * 2
    assert len(landing_entries(tmp_path)) == 1


def test_stopping_commits_the_open_batch(tmp_path: Path) -> None:
    async def deliver_and_stop(landing: WebhookLanding) -> None:
        delivery = asyncio.create_task(landing.land([form_event("f-1")]))
        await asyncio.sleep(0.05)  # joined the open batch, which commits after 60 s
        assert landing.health()["pending_events"] == 1
        await landing.stop()
        assert await delivery == [LandingOutcome.LANDED]

    with_landing(tmp_path, deliver_and_stop, max_batch_age_s=60)
    assert landed_ids(tmp_path) == [("forms/leads", "f-1")]


def test_read_webhook_batch_names_the_file_and_line_of_a_bad_line(tmp_path: Path) -> None:
    batch = tmp_path / "batch.jsonl"
    batch.write_text('{"event_id": "1", "channel": "hubspot"}\n')
    with pytest.raises(WebhookBatchError, match=r"batch\.jsonl: line 1: expected an object"):
        read_webhook_batch(batch)
    batch.write_text("not json\n")
    with pytest.raises(WebhookBatchError, match=r"batch\.jsonl: line 1 is not JSON"):
        read_webhook_batch(batch)


def test_scan_finds_only_batch_files_in_day_folders_in_time_order(tmp_path: Path) -> None:
    root = tmp_path / "landing" / "webhooks"
    names = {
        "hubspot/2026-11-26/20261126T100000.000000Z-b.jsonl": True,
        "forms/leads/2026-11-26/20261126T090000.000000Z-a.jsonl": True,
        "engagement/mailer/2026-11-27/20261127T000000.000000Z-c.jsonl": True,
        "forms/leads/2026-11-26/.hidden.jsonl": False,
        "forms/leads/notes.jsonl": False,
        "forms/leads/2026-11-26/readme.txt": False,
    }
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("")
    expected = sorted((name for name, batch in names.items() if batch), key=lambda n: n[-30:])
    found = scan_webhook_batches(tmp_path / "landing")
    assert [path.relative_to(root).as_posix() for path in found] == expected
    since = scan_webhook_batches(tmp_path / "landing", since_day="2026-11-27")
    assert [path.parent.name for path in since] == ["2026-11-27"]
