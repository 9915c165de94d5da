"""A per-provider circuit breaker: closed → open after N consecutive failures → half-open
after ``reset_s`` (one probe at a time) → closed on the probe's success, open again on its
failure. Pure and clock-injectable so tests need no sleeping."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    def __init__(self, failures: int = 5, reset_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        if failures < 1:
            raise ValueError(f"breaker failures must be >= 1, got {failures}")
        self.failure_threshold = failures
        self.reset_s = reset_s
        self._clock = clock
        self._state: BreakerState = "closed"
        self._consecutive = 0
        self._opened_at = 0.0
        self._probe_in_flight = False
        self.times_opened = 0

    @property
    def state(self) -> BreakerState:
        if self._state == "open" and self._clock() - self._opened_at >= self.reset_s:
            self._state = "half_open"
            self._probe_in_flight = False
        return self._state

    def allow(self) -> bool:
        """May a request be sent now? In half-open, grants a single probe."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._probe_in_flight:
            self._probe_in_flight = True
            return True
        return False

    def record_success(self) -> None:
        self._consecutive = 0
        self._state = "closed"
        self._probe_in_flight = False

    def record_failure(self) -> None:
        self._consecutive += 1
        if self._state == "half_open" or self._consecutive >= self.failure_threshold:
            if self._state != "open":
                self.times_opened += 1
            self._state = "open"
            self._opened_at = self._clock()
            self._probe_in_flight = False

    def record_cancelled(self) -> None:
        """A request that was cancelled (lost a race) proves nothing: free the probe slot."""
        self._probe_in_flight = False

    def snapshot(self) -> dict[str, object]:
        return {
            "state": self.state,
            "consecutive_failures": self._consecutive,
            "times_opened": self.times_opened,
        }
