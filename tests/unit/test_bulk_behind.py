"""``bulk.Behind``, the extract's write-behind (R40's snapshot is one transaction): writes run
one at a time, in order, never two at once; an error surfaces at the next submit or at the end,
and the write in flight ends before the block is left."""

from __future__ import annotations

import threading
import time

import pytest

from qbo_pipelines.warehouse import bulk


def test_writes_run_in_order_one_at_a_time_and_are_totalled() -> None:
    done: list[int] = []
    busy = threading.Lock()

    def write(n: int) -> int:
        assert busy.acquire(blocking=False), "two writes at once"
        try:
            time.sleep(0.01)
            done.append(n)
        finally:
            busy.release()
        return n

    with bulk.Behind() as behind:
        for n in range(1, 6):
            behind.submit(write, n)
        assert behind.wait() == 15
    assert done == [1, 2, 3, 4, 5]


def test_a_failed_write_surfaces_at_the_next_submit_and_stops_the_rest() -> None:
    done: list[int] = []

    def write(n: int) -> int:
        if n == 2:
            raise RuntimeError("write 2 failed")
        done.append(n)
        return 1

    def run() -> None:
        with bulk.Behind() as behind:
            for n in range(1, 6):
                behind.submit(write, n)

    with pytest.raises(RuntimeError, match="write 2 failed"):
        run()
    assert done == [1]


def test_the_last_write_is_waited_for_and_its_error_raised_on_leaving() -> None:
    def fail() -> int:
        time.sleep(0.02)
        raise ValueError("last write failed")

    with pytest.raises(ValueError, match="last write failed"), bulk.Behind() as behind:
        behind.submit(fail)


def test_an_error_in_the_block_waits_for_the_write_in_flight() -> None:
    finished = threading.Event()

    def slow() -> int:
        time.sleep(0.05)
        finished.set()
        return 1

    def run() -> None:
        with bulk.Behind() as behind:
            behind.submit(slow)
            raise KeyError("the caller failed")

    with pytest.raises(KeyError):
        run()
    assert finished.is_set()  # the transaction is rolled back only after the write ended
