"""QBO's per-company limits: 500 requests/min, 10 in flight, 40 batch calls/min.

Counting is done on the event loop (single thread), so in-flight numbers are exact.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from dataclasses import dataclass, field


@dataclass
class ThrottleSettings:
    enabled: bool = False
    per_minute: int = 500
    in_flight: int = 10
    batch_per_minute: int = 40
    per_second: int | None = None  # QBO's 10/s rule; off unless asked for


@dataclass
class Throttle:
    settings: ThrottleSettings = field(default_factory=ThrottleSettings)
    _calls: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))
    _batches: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))
    _in_flight: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    _max_in_flight: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def enter(self, realm: str) -> None:
        self._in_flight[realm] += 1
        self._max_in_flight[realm] = max(self._max_in_flight[realm], self._in_flight[realm])

    def leave(self, realm: str) -> None:
        self._in_flight[realm] -= 1

    def max_in_flight(self, realm: str) -> int:
        return self._max_in_flight.get(realm, 0)

    def reset_stats(self) -> None:
        self._max_in_flight.clear()

    def admit(self, realm: str, is_batch: bool) -> bool:
        """Count the call; False if it is over a limit (it then does not count)."""
        if not self.settings.enabled:
            return True
        now = time.monotonic()
        calls = _window(self._calls[realm], now, 60.0)
        batches = _window(self._batches[realm], now, 60.0)
        if self._in_flight[realm] > self.settings.in_flight:
            return False
        if len(calls) >= self.settings.per_minute:
            return False
        if is_batch and len(batches) >= self.settings.batch_per_minute:
            return False
        per_second = self.settings.per_second
        if per_second is not None and sum(1 for t in calls if t > now - 1.0) >= per_second:
            return False
        calls.append(now)
        if is_batch:
            batches.append(now)
        return True


def _window(times: deque[float], now: float, seconds: float) -> deque[float]:
    while times and times[0] <= now - seconds:
        times.popleft()
    return times
