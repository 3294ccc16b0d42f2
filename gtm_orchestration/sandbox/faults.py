"""Injected faults: random server errors, random 429s and added latency.

They let an operator watch the connectors' retries and dead-letter handling work. A faulted
request is answered before its handler runs, so an injected failure never applies a write.
Fault settings live in memory: a restarted sandbox serves without faults.
"""

from __future__ import annotations

import random
import threading
from enum import Enum

from pydantic import BaseModel, ConfigDict, Field


class FaultSettings(BaseModel):
    """What ``POST /__sandbox/faults`` sets; every field defaults to no fault."""

    model_config = ConfigDict(extra="forbid")

    error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    rate_limit_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    latency_ms: int = Field(default=0, ge=0, le=60_000)


class InjectedFault(Enum):
    """The failure a request is answered with instead of its handler's answer."""

    SERVER_ERROR = "server_error"
    RATE_LIMITED = "rate_limited"


class FaultInjector:
    """Draws, per request, whether to fail it; thread-safe, settings replaced as a whole."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._settings = FaultSettings()

    @property
    def settings(self) -> FaultSettings:
        return self._settings

    def configure(self, settings: FaultSettings) -> None:
        """Replace the current settings."""
        with self._lock:
            self._settings = settings

    def draw(self) -> InjectedFault | None:
        """The fault to inject into one request, or None to let it through."""
        with self._lock:
            settings = self._settings
            roll = self._rng.random()
        if roll < settings.error_rate:
            return InjectedFault.SERVER_ERROR
        if roll < settings.error_rate + settings.rate_limit_rate:
            return InjectedFault.RATE_LIMITED
        return None
