"""plan_dispatches (pure) and Dispatch rules: how writes become HTTP calls (R33, R41)."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from qbo_fakes import FakeSession, Sent, make_response

from qbo_pipelines.qbo import client as c
from qbo_pipelines.qbo import errors as e
from qbo_pipelines.qbo.ids import QboId, RealmId, SyncToken
from qbo_pipelines.qbo.limiter import Limits, RateLimiter
from qbo_pipelines.qbo.secret import Secret
from qbo_pipelines.qbo.transport import StaticTokenProvider


def creates(n: int, prefix: str = "r") -> list[c.BatchOp]:
    return [
        c.BatchOp.create("Customer", {"DisplayName": f"C{i}"}, f"{prefix}-{i}", key=str(i))
        for i in range(n)
    ]


def all_ops(plan: list[c.Dispatch]) -> list[c.BatchOp]:
    return [op for d in plan for op in d.ops]


def test_R41_fewest_calls_uses_only_batches_of_30() -> None:
    ops = creates(100)
    plan = c.plan_dispatches(ops, prefer="fewest_calls")
    assert [len(d.ops) for d in plan] == [30, 30, 30, 10]
    assert not any(d.single for d in plan)
    assert all_ops(plan) == ops


@pytest.mark.parametrize("n", [1, 29, 30, 31, 100, 1660, 10_000, 100_000])
def test_R41_fastest_splits_between_batches_and_singles(n: int) -> None:
    ops = creates(n)
    plan = c.plan_dispatches(ops, prefer="fastest")
    batches = [d for d in plan if not d.single]
    singles = [d for d in plan if d.single]
    # every op exactly once
    assert sorted(id(op) for op in all_ops(plan)) == sorted(id(op) for op in ops)
    b, s = len(batches), len(singles)
    assert b == min(math.ceil(40 * n / 1660), math.ceil(n / 30))
    assert all(len(d.ops) == 30 for d in batches[:-1])
    # time under QBO's combined bound: max(b/40, (b+s)/500) minutes; no other split is faster
    minutes = max(b / 40, (b + s) / 500)
    for other_b in range(max(0, b - 3), min(math.ceil(n / 30), b + 3) + 1):
        other_s = max(0, n - 30 * other_b)
        assert minutes <= max(other_b / 40, (other_b + other_s) / 500) + 1 / 40
    if n >= 1660:
        assert 0.70 < 30 * b / n < 0.75


def test_R41_fastest_at_100k_is_near_the_combined_bound() -> None:
    plan = c.plan_dispatches(creates(100_000), prefer="fastest")
    b = sum(1 for d in plan if not d.single)
    calls = len(plan)
    bound = 100_000 / (40 * 30 + 460)  # minutes at 40 full batches + 460 singles a minute
    assert max(b / 40, calls / 500) <= bound * 1.01


def test_R33_plan_is_deterministic_and_ids_fit_qbo() -> None:
    ops = creates(500)
    one = c.plan_dispatches(ops)
    two = c.plan_dispatches(list(ops))
    assert [(d.request_id, d.single, [o.request_id for o in d.ops]) for d in one] == [
        (d.request_id, d.single, [o.request_id for o in d.ops]) for d in two
    ]
    for d in one:
        if d.single:
            assert d.request_id == d.ops[0].request_id
            assert len(d.request_id) <= 50
        else:
            assert d.request_id == c.batch_request_id(d.ops)
            assert len(d.request_id) <= 36


def test_R33_batch_request_id_depends_on_its_ops_and_order() -> None:
    ops = creates(3)
    assert c.batch_request_id(ops) == c.batch_request_id(list(ops))
    assert c.batch_request_id(ops) != c.batch_request_id(ops[::-1])
    assert c.batch_request_id(ops) != c.batch_request_id(ops[:2])
    # batch_write's historic id (derive_request_id("batch", ...)) is kept for replays
    assert c.batch_request_id(ops) == c.derive_request_id("batch", "r-0", "r-1", "r-2")


def test_sends_are_always_single_calls() -> None:
    send = c.BatchOp.send("Invoice", QboId("7"), "send-7", send_to="a@b.c")
    ops = [*creates(40), send]
    for prefer in ("fastest", "fewest_calls"):
        plan = c.plan_dispatches(ops, prefer=prefer)  # type: ignore[arg-type]
        sends = [d for d in plan if any(o.operation == "send" for o in d.ops)]
        assert len(sends) == 1
        assert sends[0].single
        assert sends[0].request_id == "send-7"
    with pytest.raises(ValueError):
        c.Dispatch.batch([send])


def test_plan_interleaves_batches_and_singles() -> None:
    plan = c.plan_dispatches(creates(3000), prefer="fastest")
    kinds = ["b" if not d.single else "s" for d in plan]
    first_half = kinds[: len(kinds) // 2]
    assert first_half.count("b") == pytest.approx(kinds.count("b") / 2, abs=2)


def test_dispatch_rules() -> None:
    with pytest.raises(ValueError):
        c.Dispatch("x", (), single=False)
    with pytest.raises(ValueError):
        c.Dispatch.batch(creates(31))
    with pytest.raises(ValueError):
        c.Dispatch("x" * 37, tuple(creates(2)), single=False)
    with pytest.raises(ValueError):
        c.Dispatch("x" * 51, tuple(creates(1)), single=True)
    with pytest.raises(ValueError):
        c.Dispatch("x", tuple(creates(2)), single=True)
    with pytest.raises(ValueError):
        c.plan_dispatches(creates(2), prefer="slowest")  # type: ignore[arg-type]
    assert c.plan_dispatches([]) == []


# -- execute over a scripted session (transport behaviour; the real thing is in integration) --


def echo(sent: Sent) -> requests.Response:
    time.sleep(0.01)
    if sent.path.endswith("/batch"):
        items = json.loads(sent.body or b"")["BatchItemRequest"]
        out = [{"bId": it["bId"], "Customer": {**it["Customer"], "Id": "1"}} for it in items]
        return make_response(200, {"BatchItemResponse": out})
    if sent.path.endswith("/send"):
        return make_response(200, {"Invoice": {"Id": "7", "EmailStatus": "EmailSent"}})
    return make_response(200, {"Customer": {**json.loads(sent.body or b"{}"), "Id": "1"}})


class ConcurrentSession(FakeSession):
    def __init__(self) -> None:
        super().__init__(handlers=[echo])
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        try:
            return super().request(*args, **kwargs)
        finally:
            with self.lock:
                self.now -= 1


def client_for(session: FakeSession, limits: Limits | None = None) -> c.QboClient:
    return c.QboClient(
        "http://qbo.test",
        RealmId("9"),
        StaticTokenProvider(Secret("t")),
        limiter=RateLimiter(limits or Limits(per_second=1000, per_minute=100_000)),
        session=session,  # type: ignore[arg-type]
        backoff_base=0.001,
        backoff_max=0.01,
        sleep=lambda _s: None,
    )


def test_R41_execute_yields_each_dispatch_once_within_in_flight() -> None:
    session = ConcurrentSession()
    client = client_for(session, Limits(per_second=1000, per_minute=100_000, in_flight=4))
    send = c.BatchOp.send("Invoice", QboId("7"), "send-7", send_to="a@b.c")
    plan = c.plan_dispatches([*creates(200), send], prefer="fastest")
    seen = list(client.execute(plan))
    assert sorted(id(d) for d, _ in seen) == sorted(id(d) for d in plan)
    assert all(len(res) == len(d.ops) and all(r.ok for r in res) for d, res in seen)
    assert session.peak <= 4
    sent_send = [s for s in session.sent if s.path.endswith("/invoice/7/send")]
    assert sent_send[0].params["sendTo"] == "a@b.c"
    assert sent_send[0].params["requestid"] == "send-7"


def test_R33_execute_retries_with_the_same_requestid_then_reports_unknown() -> None:
    session = FakeSession(handlers=[lambda s: make_response(503, {"Fault": {}})])
    client = client_for(session)
    client.transport.max_retries = 2
    plan = c.plan_dispatches(creates(31), prefer="fastest")
    (d1, r1), (d2, r2) = sorted(client.execute(plan), key=lambda x: x[0].single)
    assert all(isinstance(r.error, e.ServerError) and r.error.retryable for r in [*r1, *r2])
    ids = {s.params["requestid"] for s in session.sent}
    assert ids == {d1.request_id, d2.request_id}
    assert len(session.sent) == 6  # 3 attempts each


def test_execute_raises_auth_errors_after_in_flight_calls() -> None:
    session = FakeSession(
        handlers=[lambda s: make_response(403, {"Fault": {"Error": [{"code": "3100"}]}})]
    )
    client = client_for(session)
    with pytest.raises(e.AuthError):
        list(client.execute(c.plan_dispatches(creates(5), prefer="fastest")))


def test_execute_single_update_and_void_paths() -> None:
    session = FakeSession(handlers=[lambda s: make_response(200, {"Payment": {"Id": "2"}})])
    client = client_for(session)
    ops = [
        c.BatchOp.void("Payment", QboId("2"), SyncToken("0"), "v-2"),
        c.BatchOp.update("Payment", QboId("2"), SyncToken("1"), {"PrivateNote": "x"}, "u-2"),
    ]
    results = [r for _, res in client.execute(map(c.Dispatch.one, ops)) for r in res]
    assert all(r.ok for r in results)
    by_rid = {s.params["requestid"]: s for s in session.sent}
    assert by_rid["v-2"].params["include"] == "void"
    assert json.loads(by_rid["u-2"].body or b"")["PrivateNote"] == "x"


def test_R41_execute_takes_a_feed_that_grows_with_the_answers() -> None:
    """A feed (one stream of chunks) may pause with None while its calls are unanswered and
    add calls once answers come; every call is yielded once."""
    session = ConcurrentSession()
    client = client_for(session)
    first, second = c.plan_dispatches(creates(40), prefer="fewest_calls"), []
    answered: list[c.Dispatch] = []

    def feed() -> Iterator[c.Dispatch | None]:
        yield from first
        while len(answered) < len(first):
            yield None
        second.extend(c.plan_dispatches(creates(5), prefer="fewest_calls"))
        yield from second

    for dispatch, results in client.execute(feed(), lookahead=2):
        assert all(r.ok for r in results)
        answered.append(dispatch)
    assert [id(d) for d in answered[-len(second) :]] == [id(d) for d in second]
    assert sorted(map(id, answered)) == sorted(map(id, [*first, *second]))


def test_R33_execute_answers_the_calls_in_flight_when_its_feed_fails() -> None:
    """A feed that fails (e.g. the next chunk's reads) stops new calls; the calls already sent
    are still yielded, so their answers are recorded, before the failure is raised."""
    session = ConcurrentSession()
    client = client_for(session)
    plan = c.plan_dispatches(creates(60), prefer="fewest_calls")

    def feed() -> Iterator[c.Dispatch | None]:
        yield from plan
        yield None  # the calls go out
        raise RuntimeError("the source went away")

    seen: list[c.Dispatch] = []
    with pytest.raises(RuntimeError, match="went away"):
        seen.extend(d for d, _ in client.execute(feed()))
    assert sorted(map(id, seen)) == sorted(map(id, plan))
