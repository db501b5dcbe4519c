"""Entity rules: delete / void / inactivate semantics, references, required fields, payments."""

from __future__ import annotations

import pytest

from .helpers import Api, fault_of


def _line(amount: float, item: str = "2", **detail: object) -> dict:
    return {"Amount": amount, "DetailType": "SalesItemLineDetail",
            "SalesItemLineDetail": {"ItemRef": {"value": item}, **detail}}


def test_invoice_totals_subtotal_line_docnumber_and_due_date(api: Api) -> None:
    invoice = api.create("Invoice", {
        "CustomerRef": {"value": "1"}, "TxnDate": "2026-01-10", "SalesTermRef": {"value": "2"},
        "Line": [_line(100, Qty=2, UnitPrice=50, TaxCodeRef={"value": "1"}), _line(20)]})
    assert invoice["TotalAmt"] == 130.0
    assert invoice["Balance"] == 130.0
    assert invoice["TxnTaxDetail"]["TotalTax"] == 10.0
    assert invoice["Line"][-1] == {"Amount": 120.0, "DetailType": "SubTotalLineDetail",
                                   "SubTotalLineDetail": {}}
    assert [ln["Id"] for ln in invoice["Line"][:2]] == ["1", "2"]
    assert invoice["DocNumber"].isdigit()
    assert invoice["DueDate"] == "2026-01-25"
    assert invoice["CustomerRef"]["name"] == "Amy's Bird Sanctuary"


def test_due_date_past_the_last_date_is_a_2070_fault_not_a_crash(api: Api) -> None:
    response = api.post("/invoice", {"CustomerRef": {"value": "1"}, "TxnDate": "9999-12-31",
                                     "SalesTermRef": {"value": "2"}, "Line": [_line(10)]})
    assert response.status_code == 400
    assert fault_of(response)["code"] == "2070"


def test_amount_must_equal_qty_times_price_6070(api: Api) -> None:
    error = fault_of(api.post("/invoice", {"CustomerRef": {"value": "1"},
                                           "Line": [_line(99, Qty=2, UnitPrice=50)]}))
    assert error["code"] == "6070"


def test_duplicate_docnumber_6140_unless_allowed(api: Api) -> None:
    body = {"CustomerRef": {"value": "1"}, "DocNumber": "INV-7", "Line": [_line(10)]}
    api.create("Invoice", body)
    error = fault_of(api.post("/invoice", body))
    assert error["code"] == "6140"
    assert error["Message"] == "Duplicate Document Number Error"
    assert "DocNumber=INV-7" in error["Detail"]
    api.create("Invoice", body, include="allowduplicatedocnum")


def test_required_fields_2020_and_references_2500_and_inactive_610(api: Api) -> None:
    missing = fault_of(api.post("/invoice", {"Line": [_line(10)]}))
    assert missing["code"] == "2020"
    assert missing["Detail"] == "Required parameter CustomerRef is missing in the request"
    unknown = fault_of(api.post("/invoice", {"CustomerRef": {"value": "4242"},
                                             "Line": [_line(10)]}))
    assert unknown["code"] == "2500"
    assert unknown["Message"] == "Invalid Reference Id"
    customer = api.create("Customer", {"DisplayName": "Sleepy"})
    api.create("Customer", {"Id": customer["Id"], "SyncToken": "0", "sparse": True,
                            "Active": False})
    inactive = fault_of(api.post("/invoice", {"CustomerRef": {"value": customer["Id"]},
                                              "Line": [_line(10)]}))
    assert inactive["code"] == "610"
    assert inactive["Message"] == "Object Not Found"


def test_name_lists_are_inactivated_not_deleted(api: Api) -> None:
    customer = api.create("Customer", {"DisplayName": "Thrifty Meats"})
    refused = fault_of(api.post("/customer", {"Id": customer["Id"], "SyncToken": "0"},
                                operation="delete"))
    assert refused["code"] == "500"
    inactive = api.create("Customer", {"Id": customer["Id"], "SyncToken": "0", "sparse": True,
                                       "Active": False})
    assert inactive["DisplayName"] == "Thrifty Meats (deleted)"
    assert inactive["Active"] is False
    api.create("Customer", {"DisplayName": "Thrifty Meats"})  # the name is free again
    read = api.ok(api.get(f"/customer/{customer['Id']}"))["Customer"]
    assert read["SyncToken"] == "1"


def test_deleted_transaction_reads_as_610(api: Api) -> None:
    invoice = api.create("Invoice", {"CustomerRef": {"value": "1"}, "Line": [_line(10)]})
    deleted = api.ok(api.post("/invoice", {"Id": invoice["Id"], "SyncToken": "0"},
                              operation="delete"))
    assert deleted["Invoice"] == {"status": "Deleted", "domain": "QBO", "Id": invoice["Id"]}
    assert fault_of(api.get(f"/invoice/{invoice['Id']}"))["code"] == "610"
    rows = api.ok(api.query(f"SELECT * FROM Invoice WHERE Id = '{invoice['Id']}'"))
    assert rows["QueryResponse"] == {}


def test_payment_links_reduce_balance_and_void_restores_it(api: Api) -> None:
    invoice = api.create("Invoice", {"CustomerRef": {"value": "1"}, "Line": [_line(100)]})
    payment = api.create("Payment", {
        "CustomerRef": {"value": "1"}, "TotalAmt": 70,
        "Line": [{"Amount": 60, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}]})
    assert payment["UnappliedAmt"] == 10.0
    assert payment["DepositToAccountRef"]["name"] == "Undeposited Funds"
    linked = api.ok(api.get(f"/invoice/{invoice['Id']}"))["Invoice"]
    assert linked["Balance"] == 40.0
    assert linked["LinkedTxn"] == [{"TxnId": payment["Id"], "TxnType": "Payment"}]
    assert linked["SyncToken"] == "1"
    refused = fault_of(api.post("/invoice", {"Id": invoice["Id"], "SyncToken": "1"},
                                operation="delete"))
    assert refused["code"] == "6000"
    voided = api.ok(api.post("/payment", {"Id": payment["Id"], "SyncToken": "0",
                                          "sparse": True}, operation="update", include="void"))
    assert voided["Payment"]["TotalAmt"] == 0.0
    assert voided["Payment"]["PrivateNote"].startswith("Voided")
    restored = api.ok(api.get(f"/invoice/{invoice['Id']}"))["Invoice"]
    assert restored["Balance"] == 100.0
    assert restored["LinkedTxn"] == []


def test_overpaying_an_invoice_is_refused(api: Api) -> None:
    invoice = api.create("Invoice", {"CustomerRef": {"value": "1"}, "Line": [_line(10)]})
    error = fault_of(api.post("/payment", {
        "CustomerRef": {"value": "1"}, "TotalAmt": 20,
        "Line": [{"Amount": 20, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}]}))
    assert error["code"] == "6000"


def test_invoice_void_zeroes_amounts_and_bumps_synctoken(api: Api) -> None:
    invoice = api.create("Invoice", {"CustomerRef": {"value": "1"}, "PrivateNote": "memo",
                                     "Line": [_line(100, Qty=1, UnitPrice=100)]})
    voided = api.ok(api.post("/invoice", {"Id": invoice["Id"], "SyncToken": "0"},
                             operation="void"))["Invoice"]
    assert voided["TotalAmt"] == 0.0
    assert voided["Balance"] == 0.0
    assert voided["SyncToken"] == "1"
    assert voided["PrivateNote"] == "Voided - memo"
    assert all(line["Amount"] == 0.0 for line in voided["Line"])


def test_full_update_clears_omitted_fields_sparse_keeps_them(api: Api) -> None:
    customer = api.create("Customer", {"DisplayName": "Full Fred", "CompanyName": "Fred Co",
                                       "Notes": "keep?"})
    sparse = api.create("Customer", {"Id": customer["Id"], "SyncToken": "0", "sparse": True,
                                     "Notes": "changed"})
    assert sparse["CompanyName"] == "Fred Co"
    full = api.create("Customer", {"Id": customer["Id"], "SyncToken": "1",
                                   "DisplayName": "Full Fred"})
    assert "CompanyName" not in full
    assert "Notes" not in full


def test_send_and_pdf(api: Api) -> None:
    invoice = api.create("Invoice", {"CustomerRef": {"value": "2"}, "Line": [_line(10)]})
    sent = api.session.post(f"{api.base}/invoice/{invoice['Id']}/send",
                            params={"sendTo": "billing@example.com", "minorversion": 75},
                            headers={"Content-Type": "application/octet-stream"}, timeout=10)
    body = api.ok(sent)["Invoice"]
    assert body["EmailStatus"] == "EmailSent"
    assert body["BillEmail"] == {"Address": "billing@example.com"}
    assert body["DeliveryInfo"]["DeliveryType"] == "Email"
    assert body["SyncToken"] == "1"
    emails = api.handle.control.emails(api.realm_id)
    assert [e["to"] for e in emails] == ["billing@example.com"]
    pdf = api.session.get(f"{api.base}/invoice/{invoice['Id']}/pdf",
                          headers={"Accept": "application/pdf"}, timeout=10)
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-")


@pytest.mark.parametrize(("entity", "path"), [("CompanyInfo", "/companyinfo/{realm}"),
                                               ("Preferences", "/preferences")])
def test_company_info_and_preferences(api: Api, entity: str, path: str) -> None:
    data = api.ok(api.get(path.format(realm=api.realm_id)))[entity]
    assert data["Id"] == "1"
    if entity == "Preferences":
        assert data["CurrencyPrefs"]["HomeCurrency"] == {"value": "USD"}


def test_user_change_in_qbo_bumps_synctoken_and_shows_in_cdc(api: Api) -> None:
    since = api.handle.control.now()
    changed = api.handle.control.user_update(api.realm_id, "Customer",
                                             {"Id": "1", "Notes": "edited in QBO"})
    assert changed["SyncToken"] == "1"
    data = api.ok(api.get("/cdc", entities="Customer", changedSince=since))
    rows = data["CDCResponse"][0]["QueryResponse"][0]["Customer"]
    assert [(r["Id"], r["Notes"]) for r in rows] == [("1", "edited in QBO")]


def test_decimal_strings_are_accepted_as_amounts(api: Api) -> None:
    invoice = api.create("Invoice", {"CustomerRef": {"value": "1"}, "Line": [
        _line("30.00", Qty="3", UnitPrice="10.00")]})  # type: ignore[arg-type]
    assert invoice["TotalAmt"] == 30.0


def test_user_void_and_delete_in_qbo(api: Api) -> None:
    control = api.handle.control
    kept = api.create("Invoice", {"CustomerRef": {"value": "1"}, "Line": [_line(10)]})
    gone = api.create("Invoice", {"CustomerRef": {"value": "1"}, "Line": [_line(10)]})
    assert control.user_void(api.realm_id, "Invoice", kept["Id"])["TotalAmt"] == 0.0
    assert control.user_delete(api.realm_id, "Invoice", gone["Id"])["status"] == "Deleted"
    assert fault_of(api.get(f"/invoice/{gone['Id']}"))["code"] == "610"
