"""Reads against the sandbox: paging, counts, literals, typed values (R41, R8, R26)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from qbo_sandbox_helpers import Company

from qbo_pipelines.qbo import NotFoundError, QboId, eq, last_updated, like
from qbo_pipelines.qbo import query as q


def bulk_customers(company: Company, n: int, prefix: str = "Cust") -> None:
    bodies = [{"DisplayName": f"{prefix} {i:05d}"} for i in range(n)]
    for i in range(0, n, 1000):
        company.control.bulk_create(company.realm_id, "Customer", bodies[i : i + 1000])


def test_R41_2500_customers_read_in_exactly_3_query_calls(empty_company: Company) -> None:
    bulk_customers(empty_company, 2500)
    empty_company.control.reset_requests()
    client = empty_company.client()
    rows = list(client.query_all("Customer"))
    assert len(rows) == 2500
    assert len({r["Id"] for r in rows}) == 2500
    assert empty_company.calls("query") == 3
    queries = [r["query"] for r in empty_company.requests()]
    assert all("MAXRESULTS 1000" in s for s in queries)


def test_R41_exact_multiple_of_page_size_reads_the_last_page(empty_company: Company) -> None:
    bulk_customers(empty_company, 2000)
    rows = list(empty_company.client().query_all("Customer"))
    assert len(rows) == 2000


def test_R41_count_and_inactive_rows(empty_company: Company) -> None:
    bulk_customers(empty_company, 5)
    client = empty_company.client()
    first = next(iter(client.query_all("Customer", order_by="DisplayName")))
    client.update(
        "Customer", QboId(first["Id"]), first["SyncToken"], {"Active": False}, request_id="deact-1"
    )
    assert client.count("Customer") == 4
    assert client.count("Customer", include_inactive=True) == 5
    assert len(list(client.query_all("Customer", include_inactive=True))) == 5


def test_R41_query_literals_round_trip(empty_company: Company) -> None:
    client = empty_company.client()
    names = ['O\'Brien \\ "x"', "Café ☕ 東京", "back\\slash\\", "50% off_", "it''s"]
    for i, name in enumerate(names):
        client.create("Customer", {"DisplayName": name}, request_id=f"lit-{i}")
    for name in names:
        rows = list(client.query_all("Customer", [eq("DisplayName", name)]))
        assert [r["DisplayName"] for r in rows] == [name]


@pytest.mark.parametrize(
    "crafted",
    [
        "x' OR DisplayName LIKE '%",
        "x\\' OR Id > '0",
        "%",
        "' AND Active IN (true, false) --",
    ],
)
def test_R41_crafted_name_cannot_widen_query(empty_company: Company, crafted: str) -> None:
    bulk_customers(empty_company, 20, prefix="Victim")
    client = empty_company.client()
    assert list(client.query_all("Customer", [eq("DisplayName", crafted)])) == []
    client.create("Customer", {"DisplayName": crafted}, request_id="crafted")
    rows = list(client.query_all("Customer", [eq("DisplayName", crafted)]))
    assert [r["DisplayName"] for r in rows] == [crafted]


def test_like_pattern_is_escaped_too(empty_company: Company) -> None:
    bulk_customers(empty_company, 3, prefix="Acme")
    rows = list(empty_company.client().query_all("Customer", [like("DisplayName", "Acme%")]))
    assert len(rows) == 3


def test_typed_values_timestamps_and_money(new_company: Callable[..., Company]) -> None:
    company = new_company(seed=True)
    client = company.client()
    customer = next(iter(client.query_all("Customer")))
    item = next(iter(client.query_all("Item", {"Name": "Consulting"})))
    line = {
        "Amount": Decimal("19.99"),
        "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": {
            "ItemRef": {"value": item["Id"]},
            "Qty": 1,
            "UnitPrice": Decimal("19.99"),
            "TaxCodeRef": {"value": "NON"},
        },
    }
    created = client.create(
        "Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [line]}, request_id="inv-1"
    )
    inv = client.read("Invoice", QboId(created["Id"]))
    assert inv["TotalAmt"] == Decimal("19.99")
    assert isinstance(inv["TotalAmt"], Decimal)
    stamp = last_updated(inv)
    assert stamp is not None
    assert stamp.utcoffset() is not None


def test_read_and_not_found(empty_company: Company) -> None:
    client = empty_company.client()
    created = client.create("Customer", {"DisplayName": "Readable"}, request_id="read-1")
    got = client.read("Customer", QboId(created["Id"]))
    assert got["DisplayName"] == "Readable"
    with pytest.raises(NotFoundError) as info:
        client.read("Customer", QboId("999999"))
    assert info.value.code == "610"


def test_changed_since_is_incremental(empty_company: Company) -> None:
    client = empty_company.client()
    client.create("Customer", {"DisplayName": "Old"}, request_id="inc-1")
    empty_company.control.advance_clock(600)
    mark = client.server_time()
    empty_company.control.advance_clock(60)
    client.create("Customer", {"DisplayName": "New"}, request_id="inc-2")
    rows = list(client.changed_since("Customer", mark))
    assert [r["DisplayName"] for r in rows] == ["New"]
    until = mark + timedelta(seconds=1)
    assert list(client.changed_since("Customer", mark - timedelta(minutes=20), until)) != []


def test_read_many_and_missing(empty_company: Company) -> None:
    client = empty_company.client()
    ids = [
        QboId(client.create("Customer", {"DisplayName": f"M{i}"}, request_id=f"m{i}")["Id"])
        for i in range(3)
    ]
    found = client.read_many("Customer", [*ids, QboId("424242")])
    assert set(found) == set(ids)
    assert client.missing("Customer", [*ids, QboId("424242")]) == {QboId("424242")}


def test_query_statement_builder_used_directly(empty_company: Company) -> None:
    bulk_customers(empty_company, 3)
    page = empty_company.client().query(q.select("Customer").order_by("DisplayName").page(1, 2))
    assert [r["DisplayName"] for r in page.entities] == ["Cust 00000", "Cust 00001"]
    assert isinstance(page.time, datetime)
