"""The per-realm limiter: sliding window, in-flight cap, batch cap, pause (R41)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from qbo_pipelines.qbo.ids import RealmId
from qbo_pipelines.qbo.limiter import (
    IN_FLIGHT_HORIZON,
    Limits,
    RateLimiter,
    admission_wait,
    budget_key,
    limiter_for,
    lock_key,
)


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
    limiter = RateLimiter(Limits(per_minute=3, batch_per_minute=2, margin_seconds=0.0), clock=clock)
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


def test_R41_ten_per_second_with_margin() -> None:
    limits = Limits(margin_seconds=0.15)
    calls = [(100.0 + i * 0.01, False) for i in range(10)]
    # the 11th call waits until the first is 1.15 s old
    assert admission_wait(limits, 100.5, calls, 0.0, batch=False) == pytest.approx(0.65)
    assert admission_wait(limits, 101.16, calls, 0.0, batch=False) == 0.0
    assert admission_wait(limits, 100.5, calls[:9], 0.0, batch=False) == 0.0


def test_R41_per_minute_window_and_pause() -> None:
    limits = Limits(per_minute=500, margin_seconds=0.0)
    calls = [(i * 0.1, False) for i in range(500)]  # 500 calls in the last 50 s
    assert admission_wait(limits, 50.0, calls, 0.0, batch=False) == pytest.approx(10.0)
    assert admission_wait(limits, 60.05, calls, 0.0, batch=False) == 0.0
    assert admission_wait(limits, 70.0, [], 95.0, batch=False) == pytest.approx(25.0)


def test_R41_batch_calls_capped_and_reserved_from_singles() -> None:
    limits = Limits(per_minute=500, batch_per_minute=40, margin_seconds=0.0)
    batches = [(float(i), True) for i in range(40)]
    assert admission_wait(limits, 45.0, batches, 0.0, batch=True) == pytest.approx(15.0)
    assert admission_wait(limits, 45.0, batches, 0.0, batch=False) == 0.0
    # one batch call made: singles keep the other 39 free -> 460 singles + 1 batch = 461 max
    mixed = [(0.0, True)] + [(1.0 + i * 0.1, False) for i in range(460)]
    assert admission_wait(limits, 48.0, mixed, 0.0, batch=False) > 0
    assert admission_wait(limits, 48.0, mixed, 0.0, batch=True) == 0.0
    # with no batch call in the window singles get the whole 500
    singles = [(1.0 + i * 0.1, False) for i in range(460)]
    assert admission_wait(limits, 48.0, singles, 0.0, batch=False) == 0.0


def test_R41_in_process_limiter_never_exceeds_ten_per_second() -> None:
    limiter = RateLimiter(Limits(per_second=10, margin_seconds=0.15, window_seconds=5.0))
    starts: list[float] = []
    for _ in range(25):
        with limiter.slot():
            starts.append(time.monotonic())
    for i, t in enumerate(starts):
        assert sum(1 for u in starts[i:] if u < t + 1.0) <= 10
    assert starts[-1] - starts[0] >= 2.0


def test_budget_keys_are_scoped_and_positive() -> None:
    a = budget_key(RealmId("1"), "http://a")
    assert a != budget_key(RealmId("1"), "http://b")
    assert 0 <= lock_key(a) < 2**31
    assert lock_key(a) == lock_key(a)
    with pytest.raises(ValueError):
        Limits(per_second=0)


def test_R41_a_call_counts_from_its_answer_once_answered() -> None:
    """QBO counts a call when it arrives, between our grant and its answer: a call held up on
    its way (5 s here) must keep its place in the window until it was answered, or the next
    grant would let QBO see two calls in one window of a 1-a-minute budget (a 429)."""
    clock = FakeClock()
    limiter = RateLimiter(Limits(per_minute=1, margin_seconds=0.0), clock=clock)
    with limiter.slot():
        clock.now += 5.0  # on the wire for 5 s
    assert limiter._wait_time(clock.now, batch=False) == pytest.approx(60.0)
    clock.now += 56.0  # 61 s after the grant, 56 s after the answer
    assert limiter._wait_time(clock.now, batch=False) == pytest.approx(4.0)


def test_R41_a_call_on_the_wire_counts_as_now_until_answered() -> None:
    """QBO counts a call when it arrives, at most at its answer: one still in flight counts as
    made now, one answered from its answer, one unanswered for minutes (its process died) from
    its grant."""
    limits = Limits(per_second=1, per_minute=1000, margin_seconds=0.0)
    assert admission_wait(limits, 10.0, [(8.0, False, False)], 0.0, batch=False) == 1.0
    assert admission_wait(limits, 10.0, [(8.0, False, True)], 0.0, batch=False) == 0.0
    lost = [(10.0 - IN_FLIGHT_HORIZON - 1, False, False)]
    assert admission_wait(limits, 10.0, lost, 0.0, batch=False) == 0.0
    clock = [100.0]
    limiter = RateLimiter(limits, clock=lambda: clock[0])
    entry = limiter.acquire()
    clock[0] = 105.0
    assert limiter._wait_time(105.0, batch=False) == 1.0
    limiter.release(entry)
    assert limiter._wait_time(105.5, batch=False) == 0.5


def test_R41_two_spellings_of_one_api_share_one_budget_of_a_company() -> None:
    """Two processes configured with different spellings of the same base URL (case, default
    port, trailing slash) counted in two budgets of one company: twice QBO's limits."""
    spellings = ["HTTPS://Quickbooks.API.intuit.com:443/v3/", "https://quickbooks.api.intuit.com/v3"]
    assert len({budget_key(RealmId("r-spell"), s) for s in spellings}) == 1
    a, b = (limiter_for(RealmId("r-spell"), scope=s) for s in spellings)
    assert a is b
    assert budget_key(RealmId("r-spell"), "http://127.0.0.1:8765") != budget_key(
        RealmId("r-spell"), "http://127.0.0.1:8766"
    )
