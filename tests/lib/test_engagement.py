"""Engagement batches: each provider's way of writing when a signal happened."""

import json
from datetime import UTC, datetime
from pathlib import Path

from gtm_orchestration.lib.engagement import parse_engagement_batch

MOMENT = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


def _batch(tmp_path: Path, occurred: list[object]) -> Path:
    path = tmp_path / "batch.jsonl"
    lines = [
        {
            "event_id": f"e-{i}",
            "channel": "engagement",
            "source": "outreach",
            "received_at": MOMENT.isoformat(),
            "payload": {"type": "email_opened", "email": "jo@hooli.com", "occurred_at": value},
        }
        for i, value in enumerate(occurred)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_occurred_at_in_iso_unix_seconds_or_milliseconds(tmp_path: Path) -> None:
    path = _batch(
        tmp_path,
        [
            "2026-11-20T15:00:00Z",
            "2026-11-20T16:00:00+01:00",
            int(MOMENT.timestamp()),
            int(MOMENT.timestamp() * 1000),
            str(int(MOMENT.timestamp() * 1000)),
        ],
    )
    events, rejections = parse_engagement_batch(path)
    assert rejections == []
    assert [e.occurred_at for e in events] == [MOMENT] * 5


def test_a_date_without_time_or_a_non_date_is_rejected_with_the_reason(tmp_path: Path) -> None:
    events, rejections = parse_engagement_batch(_batch(tmp_path, ["2026-11-20", "yesterday"]))
    assert events == []
    assert [(r.line, r.field, r.value) for r in rejections] == [
        (1, "occurred_at", "2026-11-20"),
        (2, "occurred_at", "yesterday"),
    ]
    assert "without a time of day" in rejections[0].reason
    assert rejections[1].reason
