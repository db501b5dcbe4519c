"""One budget per company across processes, and concurrent writes within it (R41, R33).

Real HTTP against the local sandbox with QBO's limits switched on (it answers 429 to any call
over 500/min, 10/s, 10 in flight or 40 batch calls/min: counting is the sandbox's), real Postgres
(a fresh migrated warehouse per test) and real worker processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from qbo_sandbox_helpers import Company

from qbo_pipelines.qbo import BatchOp, RealmId, request_id_for
from qbo_pipelines.qbo.client import Dispatch, plan_dispatches
from qbo_pipelines.qbo.limiter import PgRateLimiter, budget_key
from qbo_pipelines.warehouse import migrations

WORKER = Path(__file__).with_name("qbo_budget_worker.py")


@pytest.fixture
def warehouse(temp_database: Callable[[str], sa.Engine]) -> sa.Engine:
    engine = temp_database("budget")
    migrations.migrate_warehouse(engine)
    return engine


def url_of(engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def qbo_limits_on(company: Company) -> None:
    """The sandbox enforces QBO's real limits for this test (§8)."""
    company.control.set_throttle(
        True, per_minute=500, in_flight=10, batch_per_minute=40, per_second=10
    )


def spawn(cfg: dict[str, Any]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, str(WORKER)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(Path(__file__).parents[3]),
    )
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(cfg) + "\n")
    proc.stdin.close()
    proc.stdin = None  # communicate() must not flush it again
    return proc


def result_of(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    parsed: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return parsed


def creates(realm: RealmId, n: int, prefix: str) -> list[BatchOp]:
    return [
        BatchOp.create(
            "Customer",
            {"DisplayName": f"{prefix} {i:04d}"},
            request_id_for(realm, "Customer", f"{prefix}-{i}", "v1", "create"),
            key=str(i),
        )
        for i in range(n)
    ]


def statuses(company: Company) -> Counter[int]:
    return Counter(int(r["status"]) for r in company.requests())


@pytest.mark.timeout(300)
def test_R41_two_processes_share_one_company_budget(
    empty_company: Company, warehouse: sa.Engine
) -> None:
    """Two processes writing to one company as fast as they can: 44 batch calls and 480 single
    calls (more than 40 batch calls and 500 calls fit in a minute). The sandbox, enforcing 500/min,
    10/s, 10 in flight and 40 batch calls/min, never has to refuse one."""
    qbo_limits_on(empty_company)
    realm = empty_company.realm_id
    start_at = time.time() + 4.0  # both workers start writing together
    base = {
        "mode": "write",
        "base_url": empty_company.sandbox.base_url,
        "realm": realm,
        "token": empty_company.access_token,
        "warehouse_url": url_of(warehouse),
        "count": 900,
        "prefer": "fastest",
        "start_at": start_at,
        "max_retries": 0,  # a single 429 would show as a failed result
    }
    workers = [spawn({**base, "prefix": f"P{n}"}) for n in range(2)]
    results = [result_of(w, timeout=280) for w in workers]
    elapsed = time.time() - start_at

    for res in results:
        assert res["failed"] == 0, res["errors"]
        assert res["ok"] == 900
        assert res["dispatches"] == res["planned"] == res["batches"] + 240
        assert res["batches"] == 22
    seen = statuses(empty_company)
    assert seen[429] == 0, seen
    requests = empty_company.requests()
    assert sum(1 for r in requests if r["endpoint"] == "batch") == 44
    assert len(requests) == 44 + 480
    assert empty_company.control.max_in_flight(realm) <= 10
    # 44 batch calls (> 40) and 524 calls (> 500) cannot all fit in one minute
    assert elapsed >= 59.0
    names = [c["DisplayName"] for c in empty_company.control.entities(realm, "Customer")]
    assert len(names) == len(set(names)) == 1800


def test_R41_control_separate_budgets_are_refused_by_the_sandbox(
    empty_company: Company, warehouse: sa.Engine
) -> None:
    """The control for the test above: the same two processes, each with its own budget, go
    over 10/s or 10 in flight together, and the sandbox refuses calls (so it does count)."""
    qbo_limits_on(empty_company)
    base = {
        "mode": "write",
        "base_url": empty_company.sandbox.base_url,
        "realm": empty_company.realm_id,
        "token": empty_company.access_token,
        "warehouse_url": url_of(warehouse),
        "count": 40,
        "prefer": "singles",
        "start_at": time.time() + 3.0,
        "max_retries": 0,
        "shared": False,
    }
    workers = [spawn({**base, "prefix": f"Q{n}"}) for n in range(2)]
    results = [result_of(w, timeout=120) for w in workers]
    assert statuses(empty_company)[429] > 0
    assert sum(r["failed"] for r in results) > 0


def test_R41_killed_process_frees_its_in_flight_slots(
    empty_company: Company, warehouse: sa.Engine
) -> None:
    """A process holding all 10 in-flight slots is killed with -9: its slots come free by
    themselves (session advisory locks end with its connection), and another process's
    waiting call goes ahead."""
    base_url = empty_company.sandbox.base_url
    holder = spawn(
        {
            "mode": "hold",
            "base_url": base_url,
            "realm": empty_company.realm_id,
            "warehouse_url": url_of(warehouse),
            "slots": 10,
        }
    )
    assert holder.stdout is not None
    line = holder.stdout.readline()
    assert json.loads(line) == {"held": 10}, holder.stderr.read() if holder.stderr else ""
    ours = PgRateLimiter(warehouse, budget_key(empty_company.realm_id, base_url))
    try:
        assert ours.in_flight_everywhere() == 10
        client = empty_company.client(limiter=ours)
        done = threading.Event()
        answer: dict[str, Any] = {}

        def call() -> None:
            answer.update(client.company_info())
            done.set()

        thread = threading.Thread(target=call, daemon=True)
        thread.start()
        assert not done.wait(1.0), "a call went out while another process held every slot"
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
        assert done.wait(10.0), "the killed process's slots were never freed"
        assert answer["CompanyName"]
        deadline = time.time() + 10
        while ours.in_flight_everywhere() and time.time() < deadline:
            time.sleep(0.05)
        assert ours.in_flight_everywhere() == 0
        taken = [ours.acquire() for _ in range(10)]
        assert sorted(taken) == list(range(10))
        for slot in taken:
            ours.release(slot)
    finally:
        if holder.poll() is None:
            holder.kill()
        ours.close()


def test_R41_a_429_pauses_the_company_for_every_process(
    empty_company: Company, warehouse: sa.Engine
) -> None:
    """A 429 seen by one process holds back the next call of another (a separate budget
    connection, as another process has), for the pause QBO asks for."""
    control, realm = empty_company.control, empty_company.realm_id
    key = budget_key(realm, empty_company.sandbox.base_url)
    first = empty_company.client(limiter=PgRateLimiter(warehouse, key), throttle_pause=2.0)
    other_limiter = PgRateLimiter(warehouse, key)
    other = empty_company.client(limiter=other_limiter)
    try:
        control.inject_fault(kind="throttle", realm_id=realm, count=1)
        started = time.monotonic()
        thread = threading.Thread(target=first.company_info, daemon=True)
        thread.start()
        deadline = time.time() + 5
        while statuses(empty_company)[429] == 0 and time.time() < deadline:
            time.sleep(0.02)
        assert statuses(empty_company)[429] == 1
        time.sleep(0.1)  # the pause is written right after the 429 is read
        other.company_info()
        assert time.monotonic() - started >= 1.9
        thread.join(10)
        with warehouse.connect() as conn:
            paused = conn.execute(
                sa.text("SELECT paused_until FROM sync.rate_budget WHERE budget_key = :k"),
                {"k": key},
            ).scalar()
        assert paused is not None
    finally:
        first.limiter.close()  # type: ignore[attr-defined]
        other_limiter.close()


@pytest.mark.timeout(240)
def test_R33_execute_under_faults_returns_every_result_once_without_duplicates(
    empty_company: Company, warehouse: sa.Engine
) -> None:
    """5xx, gateway timeouts and answers lost after QBO committed: every dispatch is yielded
    exactly once with every op ok, retries reuse the call's requestid, QBO holds each record
    once."""
    qbo_limits_on(empty_company)
    control, realm = empty_company.control, empty_company.realm_id
    control.inject_fault(kind="server_error", realm_id=realm, count=None, probability=0.2)
    control.inject_fault(
        kind="drop_after_commit", realm_id=realm, method="POST", count=None, probability=0.15
    )
    control.inject_fault(
        kind="timeout", realm_id=realm, count=None, probability=0.05, delay_seconds=0.3
    )
    client = empty_company.client(budget=url_of(warehouse), limiter=None, max_retries=30)
    plan = plan_dispatches(creates(realm, 200, "Storm"), prefer="fastest")
    assert sum(1 for d in plan if not d.single) == 5

    seen: list[Dispatch] = []
    for dispatch, results in client.execute(plan):
        seen.append(dispatch)
        assert [r.op for r in results] == list(dispatch.ops)
        assert all(r.ok for r in results), [str(r.error) for r in results if not r.ok]
    control.clear_faults()

    assert sorted(map(id, seen)) == sorted(map(id, plan))
    names = [c["DisplayName"] for c in control.entities(realm, "Customer")]
    assert len(names) == len(set(names)) == 200
    writes = [r for r in empty_company.requests() if r["method"] == "POST"]
    per_id = Counter(r["request_id"] for r in writes)
    assert set(per_id) == {d.request_id for d in plan}
    assert max(per_id.values()) > 1  # some call was retried, under its own requestid
    assert statuses(empty_company)[429] == 0


def test_R33_unknown_outcome_is_replayed_verbatim_and_writes_once(
    empty_company: Company, warehouse: sa.Engine
) -> None:
    """Every answer lost after QBO committed, retries exhausted: the results carry a retryable
    error; replaying the same dispatches later returns what QBO did, without writing twice."""
    control, realm = empty_company.control, empty_company.realm_id
    control.inject_fault(kind="drop_after_commit", realm_id=realm, method="POST", count=None)
    client = empty_company.client(budget=url_of(warehouse), limiter=None, max_retries=0)
    plan = plan_dispatches(creates(realm, 40, "Lost"), prefer="fastest")
    assert sorted(d.single for d in plan) == [False] + [True] * 10

    first = [r for _, results in client.execute(plan) for r in results]
    assert len(first) == 40
    assert all(r.error is not None and r.error.retryable for r in first)
    assert control.count(realm, "Customer") == 40  # committed once, answers lost

    control.clear_faults()
    again = {r.op.key: r for _, results in client.execute(plan) for r in results}
    assert all(r.ok for r in again.values())
    assert control.count(realm, "Customer") == 40
    stored = {c["DisplayName"]: c["Id"] for c in control.entities(realm, "Customer")}
    for r in again.values():
        assert r.entity is not None
        assert stored[r.entity["DisplayName"]] == r.entity["Id"]


def test_batch_write_and_execute_share_the_warehouse_budget(
    empty_company: Company, warehouse: sa.Engine
) -> None:
    """The client built with ``budget=`` counts its calls in the warehouse."""
    client = empty_company.client(budget=warehouse, limiter=None)
    results = client.batch_write(creates(empty_company.realm_id, 45, "Shared"))
    assert all(r.ok for r in results)
    key = budget_key(empty_company.realm_id, empty_company.sandbox.base_url)
    with warehouse.connect() as conn:
        logged = conn.execute(
            sa.text(
                "SELECT count(*) FILTER (WHERE batch) FROM sync.rate_budget_call "
                "WHERE budget_key = :k"
            ),
            {"k": key},
        ).scalar_one()
    assert logged == 2


def test_R41_a_slow_call_counts_in_the_shared_budget_from_its_answer(warehouse: sa.Engine) -> None:
    """The shared budget moves an answered call to its answer's time: a call on the wire for
    a second still fills the window a second longer than its grant alone would say."""
    from qbo_pipelines.qbo.limiter import Limits

    budget = PgRateLimiter(warehouse, "answer-test", Limits(per_minute=1, margin_seconds=0.0))
    try:
        with warehouse.connect() as conn:
            before = conn.execute(sa.text("SELECT clock_timestamp()")).scalar_one()
        with budget.slot():
            time.sleep(1.0)
        with warehouse.connect() as conn:
            counted_after_grant = conn.execute(
                sa.text(
                    "SELECT extract(epoch FROM at - :before) FROM"
                    " sync.rate_budget_call WHERE budget_key = 'answer-test'"
                ),
                {"before": before},
            ).scalar_one()
        # counted from the answer (after the second on the wire), not the grant (before it);
        # no bound on how late: a loaded machine only makes the answer later
        assert float(counted_after_grant) >= 1.0
        slot, wait = budget._run(lambda conn: budget._try(conn, False))
        assert slot is None
        assert 50.0 < wait <= 60.0  # a minute from the answer (the time since is load)
    finally:
        budget.close()


def test_R41_a_call_on_the_wire_counts_as_made_now_in_every_process(
    warehouse: sa.Engine,
) -> None:
    """A call granted more than a second ago and still unanswered may reach QBO any moment:
    another process's budget counts it as made now, so its per-second window stays full
    until the answer (counted from its grant, the window would let an 11th call in)."""
    from qbo_pipelines.qbo.limiter import Limits

    limits = Limits(per_second=1, per_minute=1000, margin_seconds=0.0)
    here = PgRateLimiter(warehouse, "wire-test", limits)
    there = PgRateLimiter(warehouse, "wire-test", limits)
    try:
        slot = here.acquire()
        time.sleep(1.2)
        taken, wait = there._run(lambda conn: there._try(conn, False))
        assert taken is None
        assert 0.9 < wait <= 1.0  # a second from now: the call is still on the wire
        here.release(slot)
        taken, wait = there._run(lambda conn: there._try(conn, False))
        assert taken is None  # answered just now: a second from the answer
        assert 0.9 < wait <= 1.0
    finally:
        here.close()
        there.close()
