"""QBO's limits (QBO_API.md §8), enforced by default.

- 500 requests/min per realm (all apps together);
- 10 requests/s per realm+app;
- 10 requests in flight per realm+app;
- 40 batch calls/min per realm+app, and 120 batch calls/min per realm;
- the sandbox's 40 emails/day per realm (``/send``; checked by the runtime, §8 and §12).

"app" is the OAuth client the bearer token was issued to. Any limit set to ``None`` is off;
``enabled=False`` turns them all off (tests that measure something else opt out this way).
Counting is done on the event loop (single thread), so in-flight numbers are exact. A refused
call does not count towards the windows.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from dataclasses import dataclass, field

Key = tuple[str, str]  # (realm, client id)


@dataclass
class ThrottleSettings:
    enabled: bool = True
    per_minute: int | None = 500  # per realm
    per_second: int | None = 10  # per realm+app
    in_flight: int | None = 10  # per realm+app
    batch_per_minute: int | None = 40  # per realm+app
    realm_batch_per_minute: int | None = 120  # per realm
    emails_per_day: int | None = 40  # per realm (sandbox companies)

    @classmethod
    def off(cls) -> ThrottleSettings:
        return cls(enabled=False)


@dataclass
class Throttle:
    settings: ThrottleSettings = field(default_factory=ThrottleSettings)
    _calls: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))
    _app_calls: dict[Key, deque[float]] = field(default_factory=lambda: defaultdict(deque))
    _batches: dict[Key, deque[float]] = field(default_factory=lambda: defaultdict(deque))
    _realm_batches: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))
    _in_flight: dict[Key, int] = field(default_factory=lambda: defaultdict(int))
    _realm_in_flight: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    _max_in_flight: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def enter(self, realm: str, app: str = "") -> None:
        self._in_flight[(realm, app)] += 1
        self._realm_in_flight[realm] += 1
        self._max_in_flight[realm] = max(self._max_in_flight[realm],
                                         self._realm_in_flight[realm])

    def leave(self, realm: str, app: str = "") -> None:
        self._in_flight[(realm, app)] -= 1
        self._realm_in_flight[realm] -= 1

    def max_in_flight(self, realm: str) -> int:
        return self._max_in_flight.get(realm, 0)

    def reset_stats(self) -> None:
        self._max_in_flight.clear()

    def admit(self, realm: str, is_batch: bool, app: str = "") -> bool:
        """Count the call; False if it is over a limit (it then does not count)."""
        s = self.settings
        if not s.enabled:
            return True
        now = time.monotonic()
        key = (realm, app)
        calls = _window(self._calls[realm], now, 60.0)
        app_calls = _window(self._app_calls[key], now, 1.0)
        batches = _window(self._batches[key], now, 60.0)
        realm_batches = _window(self._realm_batches[realm], now, 60.0)
        if s.in_flight is not None and self._in_flight[key] > s.in_flight:
            return False
        if s.per_minute is not None and len(calls) >= s.per_minute:
            return False
        if s.per_second is not None and len(app_calls) >= s.per_second:
            return False
        if is_batch and s.batch_per_minute is not None and len(batches) >= s.batch_per_minute:
            return False
        if (is_batch and s.realm_batch_per_minute is not None
                and len(realm_batches) >= s.realm_batch_per_minute):
            return False
        calls.append(now)
        app_calls.append(now)
        if is_batch:
            batches.append(now)
            realm_batches.append(now)
        return True


def _window(times: deque[float], now: float, seconds: float) -> deque[float]:
    while times and times[0] <= now - seconds:
        times.popleft()
    return times
