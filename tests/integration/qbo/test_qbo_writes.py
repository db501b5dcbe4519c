"""Writes against the sandbox: batching, retries, idempotency, stale SyncTokens (R33, R41)."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest
from qbo_sandbox_helpers import Company

from qbo_pipelines.qbo import (
    BatchOp,
    BatchResult,
    DuplicateNameError,
    QboId,
    RealmId,
    SyncToken,
    request_id_for,
)
from qbo_pipelines.qbo.limiter import Limits, RateLimiter


def create_ops(realm: RealmId, n: int, prefix: str = "Batch") -> list[BatchOp]:
    return [
        BatchOp.create(
            "Customer",
            {"DisplayName": f"{prefix} {i:04d}"},
            request_id_for(realm, "Customer", f"src-{prefix}-{i}", "v1", "create"),
            key=str(i),
        )
        for i in range(n)
    ]


def test_R41_100_creates_in_4_batch_calls(empty_company: Company) -> None:
    client = empty_company.client()
    results = client.batch_write(create_ops(empty_company.realm_id, 100))
    assert all(r.ok for r in results), [str(r.error) for r in results if not r.ok]
    assert empty_company.calls("batch") == 4
    assert len(empty_company.requests()) == 4
    assert empty_company.control.count(empty_company.realm_id, "Customer") == 100
    assert [r.op.key for r in results] == [str(i) for i in range(100)]
    assert all(r.entity is not None and r.entity["SyncToken"] == "0" for r in results)


def test_R33_rerun_of_same_batch_writes_nothing_new(empty_company: Company) -> None:
    client = empty_company.client()
    ops = create_ops(empty_company.realm_id, 45)
    first = client.batch_write(ops)
    second = client.batch_write(ops)
    assert [r.entity["Id"] for r in first if r.entity] == [
        r.entity["Id"] for r in second if r.entity
    ]
    assert empty_company.control.count(empty_company.realm_id, "Customer") == 45


def test_R41_failed_item_does_not_fail_the_others(empty_company: Company) -> None:
    client = empty_company.client()
    client.create("Customer", {"DisplayName": "Batch 0007"}, request_id="pre-existing")
    results = client.batch_write(create_ops(empty_company.realm_id, 30))
    failed = [r for r in results if not r.ok]
    assert [r.op.key for r in failed] == ["7"]
    assert isinstance(failed[0].error, DuplicateNameError)
    assert failed[0].error.code == "6240"
    assert empty_company.control.count(empty_company.realm_id, "Customer") == 30


def test_R41_validation_fault_is_not_retried(empty_company: Company) -> None:
    client = empty_company.client()
    client.create("Customer", {"DisplayName": "Twin"}, request_id="twin-1")
    with pytest.raises(DuplicateNameError):
        client.create("Customer", {"DisplayName": "Twin"}, request_id="twin-2")
    assert empty_company.calls("create:Customer") == 2


def test_R41_429_storm_and_500s_job_completes_without_duplicates(empty_company: Company) -> None:
    control, realm = empty_company.control, empty_company.realm_id
    control.set_throttle(True, per_minute=100_000, in_flight=10, batch_per_minute=100_000)
    control.set_latency(0.02)
    control.inject_fault(kind="throttle", realm_id=realm, count=None, probability=0.3)
    control.inject_fault(kind="server_error", realm_id=realm, count=None, probability=0.3)
    limiter = RateLimiter(Limits(in_flight=10))
    client = empty_company.client(limiter=limiter, max_retries=25)

    singles = [
        (f"Single {i:04d}", request_id_for(realm, "Customer", f"s{i}", "v1", "create"))
        for i in range(120)
    ]
    batches = [create_ops(realm, 60, prefix=f"Storm{b}") for b in range(5)]

    def single(item: tuple[str, str]) -> str:
        return str(client.create("Customer", {"DisplayName": item[0]}, request_id=item[1])["Id"])

    def batch(ops: list[BatchOp]) -> list[BatchResult]:
        return client.batch_write(ops)

    with ThreadPoolExecutor(max_workers=24) as pool:
        batch_futures = [pool.submit(batch, ops) for ops in batches]
        single_ids = list(pool.map(single, singles))
        batch_results = [r for f in batch_futures for r in f.result()]
    control.clear_faults()
    control.set_latency(0)

    assert len(set(single_ids)) == 120
    assert all(r.ok for r in batch_results), [str(r.error) for r in batch_results if not r.ok]
    assert control.count(realm, "Customer") == 120 + 300
    names = [c["DisplayName"] for c in control.entities(realm, "Customer")]
    assert len(names) == len(set(names)) == 420
    statuses = [r["status"] for r in empty_company.requests()]
    assert statuses.count(429) > 5
    assert statuses.count(500) > 5
    assert control.max_in_flight(realm) <= 10
    assert limiter.max_in_flight_seen <= 10


def test_R33_lost_response_is_retried_with_same_requestid(empty_company: Company) -> None:
    control, realm = empty_company.control, empty_company.realm_id
    control.inject_fault(
        kind="drop_after_commit", realm_id=realm, method="POST", path="^/customer$"
    )
    client = empty_company.client()
    rid = request_id_for(realm, "Customer", "src-lost", "v1", "create")
    created = client.create("Customer", {"DisplayName": "Lost Response"}, request_id=rid)
    assert control.count(realm, "Customer") == 1
    writes = [r for r in empty_company.requests() if r["endpoint"] == "create:Customer"]
    assert [r["request_id"] for r in writes] == [rid, rid]
    assert created["DisplayName"] == "Lost Response"


def test_R33_lost_batch_response_is_replayed(empty_company: Company) -> None:
    control, realm = empty_company.control, empty_company.realm_id
    control.inject_fault(kind="drop_after_commit", realm_id=realm, path="^/batch$")
    client = empty_company.client()
    results = client.batch_write(create_ops(realm, 30))
    assert all(r.ok for r in results)
    assert control.count(realm, "Customer") == 30
    assert empty_company.calls("batch") == 2


def test_R34_stale_synctoken_rereads_and_reapplies(empty_company: Company) -> None:
    control, realm = empty_company.control, empty_company.realm_id
    client = empty_company.client()
    created = client.create("Customer", {"DisplayName": "Stale"}, request_id="stale-c")
    qbo_id, token = QboId(created["Id"]), SyncToken(created["SyncToken"])
    control.user_update(realm, "Customer", {"Id": qbo_id, "Notes": "edited in QBO"})
    result = client.update("Customer", qbo_id, token, {"CompanyName": "Ours"}, request_id="stale-u")
    assert result.conflict
    assert result.stale_entity is not None
    assert result.stale_entity["Notes"] == "edited in QBO"
    assert result.entity["CompanyName"] == "Ours"
    assert result.entity["Notes"] == "edited in QBO"  # sparse: their field kept
    no_conflict = client.update(
        "Customer",
        qbo_id,
        SyncToken(result.entity["SyncToken"]),
        {"CompanyName": "Again"},
        request_id="stale-u2",
    )
    assert not no_conflict.conflict


def test_R34_batch_stale_update_flagged_conflict(empty_company: Company) -> None:
    control, realm = empty_company.control, empty_company.realm_id
    client = empty_company.client()
    made = [r.entity for r in client.batch_write(create_ops(realm, 3)) if r.entity]
    control.user_update(realm, "Customer", {"Id": made[1]["Id"], "Notes": "theirs"})
    ops = [
        BatchOp.update(
            "Customer",
            QboId(e["Id"]),
            SyncToken(e["SyncToken"]),
            {"CompanyName": "Mine"},
            f"upd-{e['Id']}",
            key=e["Id"],
        )
        for e in made
    ]
    results = client.batch_write(ops)
    assert all(r.ok for r in results)
    assert [r.conflict for r in results] == [False, True, False]
    assert all(r.entity is not None and r.entity["CompanyName"] == "Mine" for r in results)


def _invoice_body(client: Any) -> dict[str, Any]:
    customer = next(iter(client.query_all("Customer")))
    item = next(iter(client.query_all("Item", {"Name": "Consulting"})))
    line = {
        "Amount": Decimal("150.00"),
        "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": {
            "ItemRef": {"value": item["Id"]},
            "Qty": 1,
            "UnitPrice": Decimal("150.00"),
            "TaxCodeRef": {"value": "NON"},
        },
    }
    return {
        "CustomerRef": {"value": customer["Id"]},
        "Line": [line],
        "BillEmail": {"Address": "billing@example.com"},
    }


def test_R17_R18_invoice_send_void_delete(new_company: Callable[..., Company]) -> None:
    company = new_company(seed=True)
    client = company.client()
    inv = client.create("Invoice", _invoice_body(client), request_id="inv-a")
    sent = client.send(
        "Invoice", QboId(inv["Id"]), request_id="send-a", send_to="someone@example.com"
    )
    assert sent["EmailStatus"] == "EmailSent"
    voided = client.void(
        "Invoice", QboId(inv["Id"]), SyncToken(sent["SyncToken"]), request_id="void-a"
    )
    assert voided["TotalAmt"] == 0
    inv2 = client.create("Invoice", _invoice_body(client), request_id="inv-b")
    stub = client.delete(
        "Invoice", QboId(inv2["Id"]), SyncToken(inv2["SyncToken"]), request_id="del-b"
    )
    assert stub["status"] == "Deleted"
    assert company.control.emails(company.realm_id)[-1]["to"] == "someone@example.com"


def test_R22_payment_void_and_batch_delete(new_company: Callable[..., Company]) -> None:
    company = new_company(seed=True)
    client = company.client()
    customer = next(iter(client.query_all("Customer")))
    body = {"CustomerRef": {"value": customer["Id"]}, "TotalAmt": Decimal("25.50")}
    pay = client.create("Payment", body, request_id="pay-a")
    assert pay["TotalAmt"] == Decimal("25.50")
    voided = client.void("Payment", QboId(pay["Id"]), SyncToken(pay["SyncToken"]), request_id="pv")
    assert voided["TotalAmt"] == 0
    pay2 = client.create("Payment", body, request_id="pay-b")
    results = client.batch_write(
        [BatchOp.delete("Payment", QboId(pay2["Id"]), SyncToken(pay2["SyncToken"]), "pay-del")]
    )
    assert results[0].ok
    assert results[0].entity is not None
    assert results[0].entity["status"] == "Deleted"


def test_R41_read_timeout_and_xml_fault_are_retried(empty_company: Company) -> None:
    control, realm = empty_company.control, empty_company.realm_id
    control.inject_fault(kind="timeout", realm_id=realm, method="POST", delay_seconds=1.5)
    control.inject_fault(kind="xml", realm_id=realm, method="POST", status=503, code="10000")
    client = empty_company.client(timeout=(2.0, 0.5))
    rid = request_id_for(realm, "Customer", "src-timeout", "v1", "create")
    client.create("Customer", {"DisplayName": "Slow"}, request_id=rid)
    assert control.count(realm, "Customer") == 1
    assert client.calls == {"POST": 3}
    time.sleep(1.2)  # the sandbox logs the timed-out call when its handler finishes
    assert [r["request_id"] for r in empty_company.requests()].count(rid) == 3
