"""QboClient against a scripted fake session: retries, paging, batch mapping, 5010, 401."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
import requests
from qbo_fakes import FakeSession, Sent, make_response

from qbo_pipelines.qbo import client as c
from qbo_pipelines.qbo import errors as e
from qbo_pipelines.qbo.ids import QboId, RealmId, SyncToken
from qbo_pipelines.qbo.limiter import Limits, RateLimiter
from qbo_pipelines.qbo.secret import Secret

REALM = RealmId("123")


class CountingTokens:
    def __init__(self) -> None:
        self.current = Secret("tok-0")
        self.refreshes = 0

    def access_token(self, realm_id: RealmId) -> Secret:
        return self.current

    def refresh_access_token(self, realm_id: RealmId, rejected: Secret) -> Secret:
        self.refreshes += 1
        self.current = Secret(f"tok-{self.refreshes}")
        return self.current


def make_client(session: FakeSession, **kw: Any) -> c.QboClient:
    kw.setdefault("token_provider", CountingTokens())
    return c.QboClient(
        "http://qbo.test/",
        REALM,
        kw.pop("token_provider"),
        limiter=RateLimiter(Limits()),
        session=session,  # type: ignore[arg-type]
        backoff_base=0.001,
        backoff_max=0.01,
        throttle_backoff_base=0.001,
        sleep=lambda _s: None,
        **kw,
    )


def fault(code: str, status: int = 400) -> requests.Response:
    return make_response(
        status, {"Fault": {"Error": [{"Message": "x", "code": code}], "type": "ValidationFault"}}
    )


def customer(i: int) -> dict[str, Any]:
    return {"Id": str(i), "SyncToken": "0", "DisplayName": f"C{i}"}


def test_R41_minorversion_accept_and_auth_on_every_call(fake_session: FakeSession) -> None:
    fake_session.handlers = [lambda s: make_response(200, {"Customer": customer(1)})]
    client = make_client(fake_session)
    client.read("Customer", QboId("1"))
    sent = fake_session.sent[0]
    assert sent.path == "/v3/company/123/customer/1"
    assert sent.params["minorversion"] == "75"
    assert sent.headers["Accept"] == "application/json"
    assert sent.headers["Authorization"] == "Bearer tok-0"


def test_R41_retries_429_5xx_timeouts_then_succeeds(fake_session: FakeSession) -> None:
    fake_session.handlers = [
        lambda s: make_response(
            429,
            text="<Fault type='SERVICE'><Error code='3001'><Message>t</Message></Error></Fault>",
        ),
        lambda s: make_response(503, text="<html>down</html>"),
        lambda s: requests.Timeout("read timed out"),
        lambda s: requests.ConnectionError("reset"),
        lambda s: make_response(200, {"Customer": customer(7)}),
    ]
    client = make_client(fake_session)
    got = client.create("Customer", {"DisplayName": "C7"}, request_id="rid-1")
    assert got["Id"] == "7"
    assert len(fake_session.sent) == 5
    assert {s.params["requestid"] for s in fake_session.sent} == {"rid-1"}


def test_R41_validation_fault_not_retried(fake_session: FakeSession) -> None:
    fake_session.handlers = [lambda s: fault("6240")]
    client = make_client(fake_session)
    with pytest.raises(e.DuplicateNameError):
        client.create("Customer", {"DisplayName": "dup"}, request_id="rid")
    assert len(fake_session.sent) == 1


def test_R41_gives_up_after_max_retries(fake_session: FakeSession) -> None:
    fake_session.handlers = [lambda s: make_response(500, text="boom")]
    client = make_client(fake_session, max_retries=3)
    with pytest.raises(e.ServerError):
        client.read("Customer", QboId("1"))
    assert len(fake_session.sent) == 4


def test_R2_401_refreshes_once_then_retries(fake_session: FakeSession) -> None:
    tokens = CountingTokens()
    fake_session.handlers = [
        lambda s: make_response(401, {"fault": {"error": [{"message": "x", "code": "3200"}]}}),
        lambda s: make_response(200, {"Customer": customer(1)}),
    ]
    client = make_client(fake_session, token_provider=tokens)
    client.read("Customer", QboId("1"))
    assert tokens.refreshes == 1
    assert fake_session.sent[1].headers["Authorization"] == "Bearer tok-1"


def test_R2_second_401_is_raised(fake_session: FakeSession) -> None:
    tokens = CountingTokens()
    fake_session.handlers = [lambda s: make_response(401, text="")]
    client = make_client(fake_session, token_provider=tokens)
    with pytest.raises(e.AuthError):
        client.read("Customer", QboId("1"))
    assert tokens.refreshes == 1
    assert len(fake_session.sent) == 2


def page_handler(total: int) -> Any:
    def handle(sent: Sent) -> requests.Response:
        statement = sent.params["query"]
        start = int(statement.split("STARTPOSITION ")[1].split()[0])
        size = int(statement.split("MAXRESULTS ")[1].split()[0])
        rows = [customer(i) for i in range(start, min(total + 1, start + size))]
        if not rows:
            return make_response(200, {"QueryResponse": {}, "time": "2024-01-01T00:00:00-08:00"})
        return make_response(
            200,
            {"QueryResponse": {"Customer": rows, "startPosition": start, "maxResults": len(rows)}},
        )

    return handle


@pytest.mark.parametrize(("total", "calls"), [(0, 1), (999, 1), (1000, 2), (2500, 3), (3000, 4)])
def test_R41_paging_never_drops_last_page(
    fake_session: FakeSession, total: int, calls: int
) -> None:
    fake_session.handlers = [page_handler(total)]
    client = make_client(fake_session)
    rows = list(client.query_all("Customer"))
    assert [r["Id"] for r in rows] == [str(i) for i in range(1, total + 1)]
    assert len(fake_session.sent) == calls


def test_query_all_include_inactive_adds_active_filter(fake_session: FakeSession) -> None:
    fake_session.handlers = [page_handler(0)]
    client = make_client(fake_session)
    list(client.query_all("Customer", {"DisplayName": "A"}, include_inactive=True))
    list(client.query_all("Invoice", include_inactive=True))
    assert fake_session.sent[0].params["query"] == (
        "SELECT * FROM Customer WHERE DisplayName = 'A' AND Active IN (true, false)"
        " STARTPOSITION 1 MAXRESULTS 1000"
    )
    assert "Active" not in fake_session.sent[1].params["query"]


def test_money_is_decimal(fake_session: FakeSession) -> None:
    fake_session.handlers = [
        lambda s: make_response(200, text='{"Invoice": {"Id": "1", "TotalAmt": 150.10}}')
    ]
    inv = make_client(fake_session).read("Invoice", QboId("1"))
    assert inv["TotalAmt"] == Decimal("150.10")


def test_decimal_bodies_sent_as_exact_numbers(fake_session: FakeSession) -> None:
    fake_session.handlers = [lambda s: make_response(200, {"Invoice": {"Id": "1"}})]
    make_client(fake_session).create(
        "Invoice", {"Line": [{"Amount": Decimal("19.99")}]}, request_id="r"
    )
    body = fake_session.sent[0].body
    assert body is not None
    assert b'"Amount":19.99' in body


def test_count(fake_session: FakeSession) -> None:
    fake_session.handlers = [lambda s: make_response(200, {"QueryResponse": {"totalCount": 42}})]
    assert make_client(fake_session).count("Customer") == 42
    assert fake_session.sent[0].params["query"] == "SELECT COUNT(*) FROM Customer"


def batch_handler(fail: dict[int, str] | None = None, reverse: bool = False) -> Any:
    fail = fail or {}

    def handle(sent: Sent) -> requests.Response:
        assert sent.body is not None
        items = json.loads(sent.body)["BatchItemRequest"]
        out = []
        for item in items:
            n = int(item["Customer"].get("DisplayName", "C0")[1:] or 0)
            if n in fail:
                out.append(
                    {
                        "bId": item["bId"],
                        "Fault": {
                            "Error": [{"Message": "x", "code": fail[n]}],
                            "type": "ValidationFault",
                        },
                    }
                )
            else:
                out.append({"bId": item["bId"], "Customer": {"Id": str(n), "SyncToken": "0"}})
        if reverse:
            out.reverse()
        return make_response(200, {"BatchItemResponse": out})

    return handle


def test_R41_batch_packs_30_and_maps_results_by_bid(fake_session: FakeSession) -> None:
    fake_session.handlers = [batch_handler(fail={5: "6240", 61: "2020"}, reverse=True)]
    client = make_client(fake_session)
    ops = [
        c.BatchOp.create("Customer", {"DisplayName": f"C{i}"}, f"rid-{i}", key=str(i))
        for i in range(100)
    ]
    results = client.batch_write(ops)
    assert len(fake_session.sent) == 4
    sizes = [len(json.loads(s.body or b"")["BatchItemRequest"]) for s in fake_session.sent]
    assert sorted(sizes) == [10, 30, 30, 30]  # chunks run concurrently
    assert [r.op.key for r in results] == [str(i) for i in range(100)]
    assert isinstance(results[5].error, e.DuplicateNameError)
    assert isinstance(results[61].error, e.ValidationError)
    assert all(
        r.ok and r.entity == {"Id": str(i), "SyncToken": "0"}
        for i, r in enumerate(results)
        if i not in (5, 61)
    )
    for sent in fake_session.sent:
        assert len(sent.params["requestid"]) <= 36
        assert all(len(it["bId"]) <= 10 for it in json.loads(sent.body or b"")["BatchItemRequest"])


def test_R33_batch_requestid_is_deterministic(fake_session: FakeSession) -> None:
    fake_session.handlers = [batch_handler()]
    client = make_client(fake_session)
    ops = [c.BatchOp.create("Customer", {"DisplayName": f"C{i}"}, f"rid-{i}") for i in range(3)]
    client.batch_write(ops)
    client.batch_write(ops)
    assert fake_session.sent[0].params["requestid"] == fake_session.sent[1].params["requestid"]


def test_R41_whole_batch_failure_becomes_per_op_errors(fake_session: FakeSession) -> None:
    fake_session.handlers = [lambda s: fault("1040")]
    client = make_client(fake_session)
    ops = [c.BatchOp.create("Customer", {"DisplayName": "C1"}, "r1")]
    results = client.batch_write(ops)
    assert isinstance(results[0].error, e.ValidationError)


def test_R34_update_5010_rereads_and_reapplies(fake_session: FakeSession) -> None:
    fake_session.handlers = [
        lambda s: fault("5010"),
        lambda s: make_response(
            200, {"Customer": {"Id": "9", "SyncToken": "4", "Notes": "theirs"}}
        ),
        lambda s: make_response(200, {"Customer": {"Id": "9", "SyncToken": "5", "Notes": "ours"}}),
    ]
    client = make_client(fake_session)
    res = client.update(
        "Customer", QboId("9"), SyncToken("2"), {"Notes": "ours"}, request_id="rid-u"
    )
    assert res.conflict
    assert res.entity["SyncToken"] == "5"
    assert res.stale_entity is not None
    assert res.stale_entity["Notes"] == "theirs"
    final = json.loads(fake_session.sent[2].body or b"")
    assert final == {"Notes": "ours", "Id": "9", "SyncToken": "4", "sparse": True}
    assert fake_session.sent[2].params["requestid"] != "rid-u"


def test_R34_batch_5010_reapplied_with_fresh_token(fake_session: FakeSession) -> None:
    def handle(sent: Sent) -> requests.Response:
        if sent.path.endswith("/query"):
            return make_response(
                200, {"QueryResponse": {"Customer": [{"Id": "9", "SyncToken": "7"}]}}
            )
        items = json.loads(sent.body or b"")["BatchItemRequest"]
        out = []
        for it in items:
            if it["Customer"]["SyncToken"] == "1":
                out.append(
                    {"bId": it["bId"], "Fault": {"Error": [{"Message": "Stale", "code": "5010"}]}}
                )
            else:
                out.append({"bId": it["bId"], "Customer": {**it["Customer"], "SyncToken": "8"}})
        return make_response(200, {"BatchItemResponse": out})

    fake_session.handlers = [handle]
    client = make_client(fake_session)
    ops = [
        c.BatchOp.update("Customer", QboId("9"), SyncToken("1"), {"Notes": "n"}, "r9"),
        c.BatchOp.update("Customer", QboId("10"), SyncToken("3"), {"Notes": "n"}, "r10"),
    ]
    results = client.batch_write(ops)
    assert results[0].ok
    assert results[0].conflict
    assert results[0].entity is not None
    assert results[0].entity["SyncToken"] == "8"
    assert results[1].ok
    assert not results[1].conflict
    assert len(fake_session.sent) == 3  # batch, re-read query, re-apply batch


def test_void_and_delete_and_send_paths(fake_session: FakeSession) -> None:
    fake_session.handlers = [
        lambda s: make_response(200, {"Invoice": {"Id": "1"}, "Payment": {"Id": "2"}})
    ]
    client = make_client(fake_session)
    client.void("Invoice", QboId("1"), SyncToken("0"), request_id="a")
    client.void("Payment", QboId("2"), SyncToken("0"), request_id="b")
    client.delete("Invoice", QboId("1"), SyncToken("1"), request_id="c")
    client.send("Invoice", QboId("1"), request_id="d", send_to="a+b@x.com")
    p = [s.params for s in fake_session.sent]
    assert p[0]["operation"] == "void"
    assert p[1]["operation"] == "update"
    assert p[1]["include"] == "void"
    assert json.loads(fake_session.sent[1].body or b"")["sparse"] is True
    assert p[2]["operation"] == "delete"
    assert fake_session.sent[3].path == "/v3/company/123/invoice/1/send"
    assert p[3]["sendTo"] == "a+b@x.com"
    assert fake_session.sent[3].headers["Content-Type"] == "application/octet-stream"
    with pytest.raises(ValueError):
        client.delete("Customer", QboId("1"), SyncToken("0"), request_id="e")


def test_R33_request_ids_stable_short_and_content_sensitive() -> None:
    a = c.request_id_for(REALM, "Customer", "src-1", "hash-a", "create")
    assert a == c.request_id_for(REALM, "Customer", "src-1", "hash-a", "create")
    assert len(a) <= 36
    assert a != c.request_id_for(REALM, "Customer", "src-1", "hash-b", "create")
    assert a != c.request_id_for(RealmId("456"), "Customer", "src-1", "hash-a", "create")
    assert a != c.request_id_for(REALM, "Customer", "src-1", "hash-a", "update")
    assert c.derive_request_id(a, "stale", "3") != a


def test_backoff_grows_and_is_capped() -> None:
    lows = [c.backoff_delay(n, 1.0, 10.0, rng=lambda lo, hi: lo) for n in range(6)]
    highs = [c.backoff_delay(n, 1.0, 10.0, rng=lambda lo, hi: hi) for n in range(6)]
    assert lows == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert highs == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_client_repr_has_no_token(fake_session: FakeSession) -> None:
    client = make_client(fake_session)
    assert "tok" not in repr(client)
    assert "tok" not in repr(Secret("tok-123"))
    assert "tok" not in f"{Secret('tok-123')}"


def test_R31_attempt_changes_the_request_id_only_when_bumped() -> None:
    base = c.request_id_for(REALM, "Customer", "src-1", "h", "create")
    assert c.request_id_for(REALM, "Customer", "src-1", "h", "create", attempt=0) == base
    bumped = c.request_id_for(REALM, "Customer", "src-1", "h", "create", attempt=1)
    assert bumped != base
    assert bumped == c.request_id_for(REALM, "Customer", "src-1", "h", "create", attempt=1)
