"""HubSpot's per-token rate limits: a rolling ten-second window and a daily allowance.

A refused request does not take a slot in the window; only the calls let through count. So
a client that backs off for the window's length finds its full allowance again, and one that
keeps retrying is never locked out for longer than the window, which is how HubSpot's
rolling limit behaves for clients that honour it. Usage lives in memory: a restarted sandbox
starts with fresh windows.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

# The daily allowance of a Professional portal's private app; reported in the headers and
# enforced, though nothing run against the sandbox comes near it.
DAILY_LIMIT = 650_000


@dataclass(frozen=True)
class RateDecision:
    """Whether one request may go through, and what the rate-limit headers report."""

    allowed: bool
    policy_name: str | None
    group_name: str
    max_requests: int
    remaining: int
    interval_ms: int
    secondly: int
    secondly_remaining: int
    daily_remaining: int

    def headers(self) -> dict[str, str]:
        """HubSpot's ``X-HubSpot-RateLimit-*`` headers for this decision."""
        return {
            "X-HubSpot-RateLimit-Daily": str(DAILY_LIMIT),
            "X-HubSpot-RateLimit-Daily-Remaining": str(self.daily_remaining),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(self.interval_ms),
            "X-HubSpot-RateLimit-Max": str(self.max_requests),
            "X-HubSpot-RateLimit-Remaining": str(self.remaining),
            # HubSpot still sends the per-second pair, computed from the ten-second limit,
            # though it no longer enforces it.
            "X-HubSpot-RateLimit-Secondly": str(self.secondly),
            "X-HubSpot-RateLimit-Secondly-Remaining": str(self.secondly_remaining),
        }


class RollingWindowLimiter:
    """At most ``max_requests`` per token in any ``window_s`` seconds, and DAILY_LIMIT a day."""

    def __init__(
        self,
        max_requests: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_requests < 1 or window_s <= 0:
            raise ValueError(
                f"rate limit needs max_requests >= 1 and window_s > 0, "
                f"got {max_requests} and {window_s}"
            )
        self.max_requests = max_requests
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, deque[float]] = {}
        self._days: dict[str, tuple[str, int]] = {}

    def acquire(self, token: str) -> RateDecision:
        """Take a slot for ``token`` if one is free; the decision says which policy refused."""
        now = self._clock()
        today = datetime.now(UTC).date().isoformat()
        with self._lock:
            window = self._windows.setdefault(token, deque())
            while window and window[0] <= now - self.window_s:
                window.popleft()
            day, used_today = self._days.get(token, (today, 0))
            if day != today:
                used_today = 0
            policy = None
            if used_today >= DAILY_LIMIT:
                policy = "DAILY"
            elif len(window) >= self.max_requests:
                policy = "TEN_SECONDLY_ROLLING"
            else:
                window.append(now)
                used_today += 1
            self._days[token] = (today, used_today)
            last_second = sum(1 for moment in window if moment > now - 1.0)
            secondly = max(1, int(self.max_requests / self.window_s))
            return RateDecision(
                allowed=policy is None,
                policy_name=policy,
                group_name=f"api-calls:{_token_fingerprint(token)}",
                max_requests=self.max_requests,
                remaining=max(0, self.max_requests - len(window)),
                interval_ms=int(self.window_s * 1000),
                secondly=secondly,
                secondly_remaining=max(0, secondly - last_second),
                daily_remaining=max(0, DAILY_LIMIT - used_today),
            )

    def reset(self) -> None:
        """Forget every token's usage."""
        with self._lock:
            self._windows.clear()
            self._days.clear()


def _token_fingerprint(token: str) -> str:
    """A stable name for a token that does not repeat the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]
