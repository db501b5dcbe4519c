"""The QBO query language: paging, COUNT(*), operators, escapes, inactive rows, faults."""

from __future__ import annotations

import pytest

from qbo_pipelines.sandbox.testing import SandboxHandle

from .helpers import Api, fault_of


def test_R41_paging_2500_customers_returns_each_once_and_count_agrees(
        sandbox: SandboxHandle, api: Api) -> None:
    sandbox.control.bulk_create(api.realm_id, "Customer",
                                [{"DisplayName": f"Paged {n:04d}"} for n in range(2500)])
    total = api.ok(api.query("SELECT COUNT(*) FROM Customer"))["QueryResponse"]["totalCount"]
    seen: list[str] = []
    start = 1
    while True:
        page = api.ok(api.query(f"SELECT * FROM Customer STARTPOSITION {start} MAXRESULTS 1000"))
        rows = page["QueryResponse"].get("Customer", [])
        if rows:
            assert page["QueryResponse"]["startPosition"] == start
            assert page["QueryResponse"]["maxResults"] == len(rows)
        seen += [row["Id"] for row in rows]
        if len(rows) < 1000:
            break
        start += 1000
    assert len(seen) == len(set(seen)) == total
    assert total == sandbox.control.count(api.realm_id, "Customer", include_inactive=False)


def test_default_page_is_100_and_empty_result_is_empty_object(
        sandbox: SandboxHandle, api: Api) -> None:
    sandbox.control.bulk_create(api.realm_id, "Customer",
                                [{"DisplayName": f"Many {n}"} for n in range(150)])
    page = api.ok(api.get("/query", query="select * from customer"))["QueryResponse"]
    assert len(page["Customer"]) == 100
    empty = api.ok(api.query("SELECT * FROM Customer STARTPOSITION 5000"))
    assert empty["QueryResponse"] == {}


def test_maxresults_bounds_are_4001(api: Api) -> None:
    over = fault_of(api.query("SELECT * FROM Customer MAXRESULTS 1500"))
    assert over["code"] == "4001"
    assert over["Message"] == "Invalid query"
    assert over["Detail"] == ("QueryValidationError: value 1500 is too large. "
                              "Max allowed value is 1000")
    zero = fault_of(api.query("SELECT * FROM Customer MAXRESULTS 0"))
    assert zero["Detail"] == "QueryValidationError: value 0 is too small. Min allowed value is 1"


@pytest.mark.parametrize("text", [
    "SELECT * FROM Customer WHERE DisplayName = 'O'Brien'",
    "SELECT * FROM Customer, Vendor",
    "SELECT * FROM Customer JOIN Vendor",
    "SELECT * FROM Customer WHERE DisplayName = 'abc\\'",
    "SELECT * FROM Customer WHERE DisplayName != 'x'",
])
def test_unparseable_queries_are_4000(api: Api, text: str) -> None:
    response = api.query(text)
    assert response.status_code == 400
    error = fault_of(response)
    assert error["code"] == "4000"
    assert error["Message"] == "Error parsing query"
    assert error["Detail"].startswith("QueryParserError: ")


@pytest.mark.parametrize("text", [
    "SELECT * FROM Customer WHERE DisplayName = 'a' OR DisplayName = 'b'",
    "SELECT * FROM Customer WHERE Shoe = 'x'",
    "SELECT * FROM Nonsense",
])
def test_rejected_queries_are_4001(api: Api, text: str) -> None:
    error = fault_of(api.query(text))
    assert error["code"] == "4001"


def test_backslash_escape_like_in_and_case_insensitivity(api: Api) -> None:
    api.create("Customer", {"DisplayName": "O'Brien Bakery"})
    api.create("Customer", {"DisplayName": "O'Hara Bakery"})
    rows = api.ok(api.query("select * from customer where displayname = 'O\\'Brien Bakery'"))
    assert [r["DisplayName"] for r in rows["QueryResponse"]["Customer"]] == ["O'Brien Bakery"]
    like = api.ok(api.query("SELECT * FROM Customer WHERE DisplayName LIKE '%Bakery'"))
    assert len(like["QueryResponse"]["Customer"]) == 2
    ids = [r["Id"] for r in like["QueryResponse"]["Customer"]]
    chosen = api.ok(api.query(f"Select * From Customer Where Id IN ('{ids[0]}', '{ids[1]}') "
                              "OrderBy DisplayName DESC"))
    assert [r["DisplayName"] for r in chosen["QueryResponse"]["Customer"]] == [
        "O'Hara Bakery", "O'Brien Bakery"]


def test_inactive_rows_hidden_unless_active_filtered(api: Api) -> None:
    customer = api.create("Customer", {"DisplayName": "Gone Gary"})
    api.create("Customer", {"Id": customer["Id"], "SyncToken": customer["SyncToken"],
                            "sparse": True, "Active": False})
    default = api.ok(api.query("SELECT * FROM Customer WHERE DisplayName LIKE 'Gone%'"))
    assert default["QueryResponse"] == {}
    both = api.ok(api.query("SELECT * FROM Customer WHERE DisplayName LIKE 'Gone%' "
                            "AND Active IN (true, false)"))
    assert [r["DisplayName"] for r in both["QueryResponse"]["Customer"]] == [
        "Gone Gary (deleted)"]
    inactive = api.ok(api.query("SELECT COUNT(*) FROM Customer WHERE Active = false"))
    assert inactive["QueryResponse"]["totalCount"] == 1


def test_metadata_and_reference_filters(api: Api) -> None:
    invoice = api.create("Invoice", {"CustomerRef": {"value": "1"}, "Line": [
        {"Amount": 40, "DetailType": "SalesItemLineDetail",
         "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}]})
    stamp = invoice["MetaData"]["LastUpdatedTime"]
    rows = api.ok(api.query(
        f"SELECT * FROM Invoice WHERE MetaData.LastUpdatedTime >= '{stamp}' AND "
        "CustomerRef = '1' ORDER BY Metadata.LastUpdatedTime ASC STARTPOSITION 1 "
        "MAXRESULTS 1000"))
    assert [r["Id"] for r in rows["QueryResponse"]["Invoice"]] == [invoice["Id"]]
    numbers = api.ok(api.query("SELECT * FROM Invoice WHERE TotalAmt > '30.00'"))
    assert numbers["QueryResponse"]["Invoice"][0]["Id"] == invoice["Id"]
    selected = api.ok(api.query("SELECT *, Sku FROM Item WHERE Name = 'Widget'"))
    assert selected["QueryResponse"]["Item"][0]["Sku"] == "WID-1"


def test_get_query_and_post_application_text_agree(api: Api) -> None:
    text = "SELECT * FROM Account WHERE AccountType = 'Bank'"
    by_get = api.ok(api.get("/query", query=text))["QueryResponse"]
    by_post = api.ok(api.query(text))["QueryResponse"]
    assert by_get == by_post
    assert {a["Name"] for a in by_get["Account"]} == {"Checking", "Savings"}
