"""The per-realm limiter: sliding window, in-flight cap, batch cap, pause (R41)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from qbo_pipelines.qbo.ids import RealmId
from qbo_pipelines.qbo.limiter import Limits, RateLimiter, limiter_for


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_R41_in_flight_never_exceeds_limit() -> None:
    limiter = RateLimiter(Limits(in_flight=3, per_minute=10_000))
    current = 0
    peak = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal current, peak
        with limiter.slot():
            with lock:
                current += 1
                peak = max(peak, current)
            time.sleep(0.01)
            with lock:
                current -= 1

    with ThreadPoolExecutor(max_workers=12) as pool:
        for _ in range(60):
            pool.submit(work)
    assert peak <= 3
    assert limiter.max_in_flight_seen <= 3
    assert limiter.in_flight == 0
    assert limiter.total_requests == 60


def test_R41_sliding_window_blocks_until_oldest_expires() -> None:
    limiter = RateLimiter(Limits(per_minute=5, window_seconds=0.3))
    started = time.monotonic()
    for _ in range(5):
        with limiter.slot():
            pass
    assert time.monotonic() - started < 0.2
    with limiter.slot():
        pass
    assert time.monotonic() - started >= 0.28


def test_R41_wait_time_uses_window_and_batch_cap() -> None:
    clock = FakeClock()
    limiter = RateLimiter(Limits(per_minute=3, batch_per_minute=2), clock=clock)
    for _ in range(2):
        limiter.acquire(batch=True)
        limiter.release()
    assert limiter._wait_time(clock.now, batch=False) == 0.0
    assert limiter._wait_time(clock.now, batch=True) == pytest.approx(60.0)
    limiter.acquire()
    limiter.release()
    assert limiter._wait_time(clock.now, batch=False) == pytest.approx(60.0)
    clock.now += 30
    limiter._prune(clock.now)
    assert limiter._wait_time(clock.now, batch=False) == pytest.approx(30.0)
    clock.now += 30.001
    limiter._prune(clock.now)
    assert limiter._wait_time(clock.now, batch=True) == 0.0


def test_pause_holds_back_new_requests() -> None:
    limiter = RateLimiter(Limits())
    limiter.pause(0.2)
    started = time.monotonic()
    with limiter.slot():
        pass
    assert time.monotonic() - started >= 0.18


def test_limits_validated() -> None:
    with pytest.raises(ValueError):
        Limits(in_flight=0)
    with pytest.raises(ValueError):
        Limits(window_seconds=0)


def test_limiter_for_is_shared_per_realm_and_scope() -> None:
    a = limiter_for(RealmId("r-limiter-1"), scope="http://x")
    assert limiter_for(RealmId("r-limiter-1"), scope="http://x") is a
    assert limiter_for(RealmId("r-limiter-2"), scope="http://x") is not a
    assert limiter_for(RealmId("r-limiter-1"), scope="http://y") is not a
