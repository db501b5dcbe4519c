"""Per-company (realm) rate limiter for QBO's documented limits (QBO_API.md §8, SPEC R41).

Defaults: at most 500 requests in any 60-second sliding window, at most 10 requests in flight at
once, and at most 40 batch calls per 60 seconds (batch calls also count toward the 500). All are
configurable through :class:`Limits`.

The limiter is **process-local**: it coordinates the threads of one process that share a
:class:`RateLimiter` (use :func:`limiter_for` to get the one instance per realm). Several processes
talking to the same realm each have their own budget; they stay within QBO's limits only if the
operator runs at most one sync process per company (Dagster's per-company concurrency limit does
that) or lowers the limits accordingly. A 429 from QBO is still handled by the client's retries,
and :meth:`RateLimiter.pause` lets a 429 hold back every thread of the process, not just one.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from qbo_pipelines.qbo.ids import RealmId


@dataclass(frozen=True)
class Limits:
    """QBO per-realm limits. ``window_seconds`` is the sliding window for the per-minute caps."""

    per_minute: int = 500
    in_flight: int = 10
    batch_per_minute: int = 40
    window_seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.per_minute < 1 or self.in_flight < 1 or self.batch_per_minute < 1:
            raise ValueError("limits must be at least 1")
        if self.window_seconds <= 0:
            raise ValueError("window_seconds must be positive")


class RateLimiter:
    """Thread-safe sliding-window + concurrency limiter for one realm.

    Use as ``with limiter.slot(batch=False): send_request()``. The slot is taken only for the
    request itself (not for backoff sleeps), and the window timestamp is recorded when the
    request is allowed to start.
    """

    def __init__(
        self,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits or Limits()
        self._clock = clock
        self._cond = threading.Condition()
        self._in_flight = 0
        self._recent: deque[float] = deque()
        self._recent_batch: deque[float] = deque()
        self._paused_until = 0.0
        self.max_in_flight_seen = 0
        self.total_requests = 0

    def _prune(self, now: float) -> None:
        horizon = now - self.limits.window_seconds
        while self._recent and self._recent[0] <= horizon:
            self._recent.popleft()
        while self._recent_batch and self._recent_batch[0] <= horizon:
            self._recent_batch.popleft()

    def _wait_time(self, now: float, batch: bool) -> float:
        """Seconds until a request may start (0 when it may start now)."""
        waits = [self._paused_until - now]
        if len(self._recent) >= self.limits.per_minute:
            waits.append(self._recent[0] + self.limits.window_seconds - now)
        if batch and len(self._recent_batch) >= self.limits.batch_per_minute:
            waits.append(self._recent_batch[0] + self.limits.window_seconds - now)
        return max(0.0, *waits)

    def acquire(self, batch: bool = False) -> None:
        """Block until a request may start, then count it as started."""
        with self._cond:
            while True:
                now = self._clock()
                self._prune(now)
                if self._in_flight >= self.limits.in_flight:
                    self._cond.wait()
                    continue
                wait = self._wait_time(now, batch)
                if wait > 0:
                    self._cond.wait(timeout=wait)
                    continue
                self._in_flight += 1
                self.max_in_flight_seen = max(self.max_in_flight_seen, self._in_flight)
                self.total_requests += 1
                self._recent.append(now)
                if batch:
                    self._recent_batch.append(now)
                return

    def release(self) -> None:
        """Mark a started request as finished."""
        with self._cond:
            self._in_flight -= 1
            self._cond.notify_all()

    @contextmanager
    def slot(self, batch: bool = False) -> Iterator[None]:
        """Context manager around one HTTP request."""
        self.acquire(batch=batch)
        try:
            yield
        finally:
            self.release()

    def pause(self, seconds: float) -> None:
        """Hold back every new request of this realm for ``seconds`` (after a 429)."""
        with self._cond:
            self._paused_until = max(self._paused_until, self._clock() + seconds)
            self._cond.notify_all()

    @property
    def in_flight(self) -> int:
        with self._cond:
            return self._in_flight


_REGISTRY: dict[tuple[str, RealmId], RateLimiter] = {}
_REGISTRY_LOCK = threading.Lock()


def limiter_for(realm_id: RealmId, limits: Limits | None = None, scope: str = "") -> RateLimiter:
    """The process-wide limiter of a realm (created with ``limits`` on first use).

    ``scope`` separates budgets that must not be shared (e.g. the base URL, so a sandbox and
    production company with the same id never share one).
    """
    key = (scope, realm_id)
    with _REGISTRY_LOCK:
        limiter = _REGISTRY.get(key)
        if limiter is None:
            limiter = RateLimiter(limits)
            _REGISTRY[key] = limiter
        return limiter
