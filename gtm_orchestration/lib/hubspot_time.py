"""HubSpot's two spellings of a moment: ISO 8601 with milliseconds and Z, and epoch millis.

Shared by the connectors that read HubSpot and the sandbox that emulates it.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

_EPOCH_MILLIS = re.compile(r"^-?\d+$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def now_ms() -> int:
    """The current time in epoch milliseconds."""
    return time.time_ns() // 1_000_000


def iso_from_ms(ms: int) -> str:
    """``2024-05-01T12:00:00.123Z`` for epoch millis, as HubSpot writes timestamps."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def ms_from_text(text: str) -> int | None:
    """Epoch millis for an epoch-millis string or an ISO date/datetime; None if neither.

    HubSpot accepts both spellings in datetime property values and search filters; an ISO
    value without a zone is read as UTC.
    """
    text = text.strip()
    if _EPOCH_MILLIS.match(text):
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # Integer arithmetic: float seconds * 1000 can land one millisecond short.
    return (moment - _EPOCH) // timedelta(milliseconds=1)
