"""Engagement events: reading landed batches and scoring contacts with time decay."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gtm_orchestration.lib.config import config_path, load_model
from gtm_orchestration.lib.conversion import parse_date
from gtm_orchestration.lib.normalize import is_valid_email, normalize_email
from gtm_orchestration.lib.validation import Rejection
from gtm_orchestration.receiver.landing import read_webhook_batch

EVENT_TYPES = ("email_opened", "email_clicked", "email_replied", "meeting_booked", "page_visit")


class EngagementRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int
    half_life_days: float = Field(gt=0)
    points: dict[str, float]
    real_time: tuple[str, ...] = ()


@cache
def engagement_rules(path: Path | None = None) -> EngagementRules:
    """The rules in ``config/engagement.yaml`` (or ``path``)."""
    return load_model(path or config_path("engagement.yaml"), EngagementRules)


@dataclass(frozen=True)
class EngagementEvent:
    event_id: str
    event_type: str
    email: str
    occurred_at: datetime
    received_at: datetime
    line: int
    payload: dict[str, Any]


def parse_engagement_batch(
    path: str | os.PathLike[str],
) -> tuple[list[EngagementEvent], list[Rejection]]:
    """The valid engagement events of a landed batch, and a rejection for each other line."""
    events, rejections = [], []
    for line, landed in enumerate(read_webhook_batch(path), start=1):
        payload = landed["payload"]
        event_type = payload.get("type")
        email = normalize_email(payload.get("email"))
        if event_type not in EVENT_TYPES:
            rejections.append(
                Rejection(
                    line, "type", str(event_type), f"expected one of {', '.join(EVENT_TYPES)}"
                )
            )
            continue
        if email is None or not is_valid_email(email):
            rejections.append(Rejection(line, "email", payload.get("email"), "malformed email"))
            continue
        # Providers write the moment their own way: ISO 8601, Unix seconds or milliseconds.
        converted = parse_date(payload.get("occurred_at"))
        occurred_at = converted.value
        if not isinstance(occurred_at, datetime):
            reason = converted.error or "expected a timestamp"
            if isinstance(occurred_at, date):
                reason = "expected a timestamp, found a date without a time of day"
            rejections.append(
                Rejection(line, "occurred_at", str(payload.get("occurred_at")), reason)
            )
            continue
        events.append(
            EngagementEvent(
                event_id=str(landed["event_id"]),
                event_type=event_type,
                email=email,
                occurred_at=occurred_at,
                received_at=datetime.fromisoformat(landed["received_at"]),
                line=line,
                payload=payload,
            )
        )
    return events, rejections


def score_engagement(
    events: list[tuple[str, datetime]], as_of: datetime, rules: EngagementRules | None = None
) -> tuple[int, tuple[str, ...]]:
    """Score (0-100) and reasons for one contact's ``(event_type, occurred_at)`` events.

    Each event adds its points halved every ``half_life_days`` of age at ``as_of``; events
    after ``as_of`` count at full value. Reasons read like ``meeting_booked x1 +45.0``.
    """
    rules = rules or engagement_rules()
    totals: dict[str, tuple[int, float]] = {}
    for event_type, occurred_at in events:
        age_days = max((as_of - occurred_at).total_seconds() / 86_400, 0.0)
        value = rules.points.get(event_type, 0.0) * 0.5 ** (age_days / rules.half_life_days)
        count, points = totals.get(event_type, (0, 0.0))
        totals[event_type] = (count + 1, points + value)
    score = min(100, round(sum(points for _, points in totals.values())))
    reasons = tuple(
        f"{event_type} x{count} +{points:.1f}"
        for event_type, (count, points) in sorted(totals.items(), key=lambda kv: -kv[1][1])
    )
    return score, reasons
