"""Entities added in round two (gap 3 of issue 10): BillPayment, JournalEntry, Deposit, Purchase,
Transfer, RefundReceipt, VendorCredit, PurchaseOrder, TimeActivity, Class, Department and
Attachable, with create/read/update/delete/void/query/CDC as QBO allows, and their links.

QBO_API.md §5 (create, SyncToken, sparse update, delete §5.4, void §5.5, name lists §5.6),
§11.5 (payments applied to invoices and credit memos), §11.7 (bill payments to bills), §3 (CDC).
"""

from __future__ import annotations

from typing import Any

import pytest

from .helpers import Api, fault_of


def _sale(amount: float) -> dict[str, Any]:
    return {"Amount": amount, "DetailType": "SalesItemLineDetail",
            "SalesItemLineDetail": {"ItemRef": {"value": "2"}}}


def _expense(amount: float, account: str = "10") -> dict[str, Any]:
    return {"Amount": amount, "DetailType": "AccountBasedExpenseLineDetail",
            "AccountBasedExpenseLineDetail": {"AccountRef": {"value": account}}}


def _je(amount: float, debit: str, credit: str, **entity: Any) -> dict[str, Any]:
    def line(kind: str, account: str) -> dict[str, Any]:
        detail: dict[str, Any] = {"PostingType": kind, "AccountRef": {"value": account}}
        if entity and account == entity.get("account"):
            detail["Entity"] = {"Type": entity["type"], "EntityRef": {"value": entity["id"]}}
        return {"Amount": amount, "DetailType": "JournalEntryLineDetail",
                "JournalEntryLineDetail": detail}
    return {"Line": [line("Debit", debit), line("Credit", credit)]}


BODIES: dict[str, dict[str, Any]] = {
    "JournalEntry": _je(25, "11", "1"),
    "Purchase": {"AccountRef": {"value": "16"}, "PaymentType": "CreditCard",
                 "EntityRef": {"value": "2", "type": "Vendor"}, "Line": [_expense(33.5, "12")]},
    "Transfer": {"FromAccountRef": {"value": "1"}, "ToAccountRef": {"value": "2"},
                 "Amount": 500},
    "RefundReceipt": {"CustomerRef": {"value": "2"}, "DepositToAccountRef": {"value": "1"},
                      "Line": [_sale(15)]},
    "VendorCredit": {"VendorRef": {"value": "1"}, "Line": [_expense(20)]},
    "PurchaseOrder": {"VendorRef": {"value": "2"}, "Line": [
        {"Amount": 50, "DetailType": "ItemBasedExpenseLineDetail",
         "ItemBasedExpenseLineDetail": {"ItemRef": {"value": "4"}, "Qty": 2, "UnitPrice": 25}}]},
    "TimeActivity": {"NameOf": "Employee", "EmployeeRef": {"value": "1"},
                     "CustomerRef": {"value": "1"}, "ItemRef": {"value": "2"}, "Hours": 3,
                     "Minutes": 30, "Description": "Site visit, Zoë's café"},
    "Attachable": {"Note": "Client called about O'Brien's order",
                   "AttachableRef": [{"EntityRef": {"type": "Customer", "value": "1"}}]},
    "Deposit": {"DepositToAccountRef": {"value": "1"}, "Line": [
        {"Amount": 80, "DetailType": "DepositLineDetail",
         "DepositLineDetail": {"AccountRef": {"value": "14"}}}]},
}


@pytest.mark.parametrize("entity", sorted(BODIES))
def test_transaction_crud_query_and_cdc(api: Api, entity: str) -> None:
    """§5.1-5.4: create (Id, SyncToken 0), read, sparse update bumps SyncToken, query by Id,
    delete answers the Deleted stub; CDC returns it (TimeActivity is not in CDC, §3)."""
    since = api.handle.control.now()
    created = api.create(entity, BODIES[entity])
    assert created["SyncToken"] == "0"
    assert created["Id"]
    read = api.ok(api.get(f"/{entity.lower()}/{created['Id']}"))[entity]
    assert read == created
    updated = api.create(entity, {"Id": created["Id"], "SyncToken": "0", "sparse": True,
                                  "PrivateNote" if entity not in ("TimeActivity", "Attachable")
                                  else "Description" if entity == "TimeActivity" else "Note":
                                  "Révisé – l'équipe"})
    assert updated["SyncToken"] == "1"
    found = api.ok(api.query(f"select * from {entity} where Id = '{created['Id']}'"))
    assert [r["Id"] for r in found["QueryResponse"][entity]] == [created["Id"]]
    cdc = api.ok(api.get("/cdc", entities=entity, changedSince=since))
    element = cdc["CDCResponse"][0]["QueryResponse"][0]
    if entity == "TimeActivity":
        assert element == {}
    else:
        assert [r["Id"] for r in element[entity]] == [created["Id"]]
    deleted = api.ok(api.post(f"/{entity.lower()}", {"Id": created["Id"], "SyncToken": "1"},
                              operation="delete"))[entity]
    assert deleted == {"status": "Deleted", "domain": "QBO", "Id": created["Id"]}
    assert api.ok(api.query(f"select * from {entity}"))["QueryResponse"] == {}


@pytest.mark.parametrize("entity", ["Class", "Department"])
def test_class_and_department_are_name_lists(api: Api, entity: str) -> None:
    """§5.6: inactivated, never deleted; sub-levels get ``Parent:Child`` names."""
    parent = api.create(entity, {"Name": "North"})
    child = api.create(entity, {"Name": "Coast", "ParentRef": {"value": parent["Id"]}})
    assert child["FullyQualifiedName"] == "North:Coast"
    assert child["SubClass" if entity == "Class" else "SubDepartment"] is True
    refused = fault_of(api.post(f"/{entity.lower()}", {"Id": child["Id"], "SyncToken": "0"},
                                operation="delete"))
    assert refused["code"] == "500"
    gone = api.create(entity, {"Id": child["Id"], "SyncToken": "0", "sparse": True,
                               "Active": False})
    assert gone["Name"] == "Coast (deleted)"
    active = api.ok(api.query(f"select * from {entity}"))["QueryResponse"][entity]
    assert child["Id"] not in [r["Id"] for r in active]
    duplicate = fault_of(api.post(f"/{entity.lower()}", {"Name": "North"}))
    assert duplicate["code"] == "6240"


def test_void_of_purchase_transfer_refund_and_bill_payment(api: Api) -> None:
    """§5.5: include=void zeroes the amounts, keeps the object, prefixes ``Voided``."""
    for entity in ("Purchase", "Transfer", "RefundReceipt"):
        created = api.create(entity, BODIES[entity])
        voided = api.ok(api.post(f"/{entity.lower()}", {"Id": created["Id"], "SyncToken": "0",
                                                        "sparse": True},
                                 operation="update", include="void"))[entity]
        assert voided["SyncToken"] == "1"
        assert voided["PrivateNote"].startswith("Voided")
        assert voided.get("TotalAmt", voided.get("Amount")) == 0


def test_payment_applies_invoice_and_credit_memo(api: Api) -> None:
    """§11.5: a payment's lines link an Invoice and a CreditMemo; both balances drop and both
    show the payment in LinkedTxn; UnappliedAmt = TotalAmt - (invoices - credits)."""
    invoice = api.create("Invoice", {"CustomerRef": {"value": "1"}, "Line": [_sale(100)]})
    credit = api.create("CreditMemo", {"CustomerRef": {"value": "1"}, "Line": [_sale(30)]})
    payment = api.create("Payment", {"CustomerRef": {"value": "1"}, "TotalAmt": 75, "Line": [
        {"Amount": 100, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]},
        {"Amount": 30, "LinkedTxn": [{"TxnId": credit["Id"], "TxnType": "CreditMemo"}]}]})
    assert payment["UnappliedAmt"] == 5.0
    invoice = api.ok(api.get(f"/invoice/{invoice['Id']}"))["Invoice"]
    credit = api.ok(api.get(f"/creditmemo/{credit['Id']}"))["CreditMemo"]
    assert (invoice["Balance"], credit["Balance"], credit["RemainingCredit"]) == (0, 0, 0)
    assert credit["LinkedTxn"] == [{"TxnId": payment["Id"], "TxnType": "Payment"}]
    refused = fault_of(api.post("/creditmemo", {"Id": credit["Id"],
                                                "SyncToken": credit["SyncToken"]},
                                operation="delete"))
    assert refused["code"] == "6000"


def test_deposit_of_undeposited_funds_and_6540(api: Api) -> None:
    """Payments land in Undeposited Funds (§11.5); a Deposit takes them to the bank; a
    deposited payment cannot change (§5.4, 6540) nor be deposited twice."""
    payment = api.create("Payment", {"CustomerRef": {"value": "1"}, "TotalAmt": 60})
    receipt = api.create("SalesReceipt", {"CustomerRef": {"value": "2"}, "Line": [_sale(40)]})
    assert payment["DepositToAccountRef"]["name"] == "Undeposited Funds"
    deposit = api.create("Deposit", {"DepositToAccountRef": {"value": "1"}, "Line": [
        {"Amount": 60, "LinkedTxn": [{"TxnId": payment["Id"], "TxnType": "Payment"}]},
        {"Amount": 40, "LinkedTxn": [{"TxnId": receipt["Id"], "TxnType": "SalesReceipt"}]}]})
    assert deposit["TotalAmt"] == 100.0
    error = fault_of(api.post("/payment", {"Id": payment["Id"], "SyncToken": "0",
                                           "sparse": True, "PrivateNote": "late edit"}))
    assert (error["code"], error["Message"]) == ("6540",
                                                 "Deposited Transaction cannot be changed")
    again = fault_of(api.post("/deposit", {"DepositToAccountRef": {"value": "2"}, "Line": [
        {"Amount": 60, "LinkedTxn": [{"TxnId": payment["Id"], "TxnType": "Payment"}]}]}))
    assert again["code"] == "6000"
    api.ok(api.post("/deposit", {"Id": deposit["Id"], "SyncToken": "0"}, operation="delete"))
    api.create("Payment", {"Id": payment["Id"], "SyncToken": "0", "sparse": True,
                           "PrivateNote": "free again"})


def test_journal_entry_must_balance_and_name_the_customer_on_ar(api: Api) -> None:
    """§7.3 2300 (JE debits ≠ credits); an A/R line needs a customer (6000)."""
    body = _je(10, "11", "1")
    body["Line"][1]["Amount"] = 9
    assert fault_of(api.post("/journalentry", body))["code"] == "2300"
    assert fault_of(api.post("/journalentry", _je(10, "4", "6")))["code"] == "6000"
    entry = api.create("JournalEntry", _je(10, "4", "6", account="4", type="Customer", id="3"))
    assert entry["TotalAmt"] == 10.0
    assert api.ok(api.get("/customer/3"))["Customer"]["Balance"] == 10.0


def test_bill_payment_by_credit_card_and_vendor_credit(api: Api) -> None:
    """§11.7: PayType CreditCard needs CreditCardPayment.CCAccountRef; a bill payment nets a
    vendor credit against a bill."""
    bill = api.create("Bill", {"VendorRef": {"value": "2"}, "Line": [_expense(90)]})
    credit = api.create("VendorCredit", {"VendorRef": {"value": "2"}, "Line": [_expense(15)]})
    missing = fault_of(api.post("/billpayment", {"VendorRef": {"value": "2"},
                                                 "PayType": "CreditCard", "TotalAmt": 75}))
    assert missing["code"] == "2020"
    payment = api.create("BillPayment", {
        "VendorRef": {"value": "2"}, "PayType": "CreditCard", "TotalAmt": 75,
        "CreditCardPayment": {"CCAccountRef": {"value": "16"}}, "Line": [
            {"Amount": 90, "LinkedTxn": [{"TxnId": bill["Id"], "TxnType": "Bill"}]},
            {"Amount": 15, "LinkedTxn": [{"TxnId": credit["Id"], "TxnType": "VendorCredit"}]}]})
    bill = api.ok(api.get(f"/bill/{bill['Id']}"))["Bill"]
    assert bill["Balance"] == 0
    assert bill["LinkedTxn"] == [{"TxnId": payment["Id"], "TxnType": "BillPaymentCreditCard"}]
    assert api.ok(api.get(f"/vendorcredit/{credit['Id']}"))["VendorCredit"]["Balance"] == 0


def test_time_activity_needs_its_worker(api: Api) -> None:
    """TimeActivity (Employee side): NameOf Employee needs EmployeeRef; not in CDC (§3)."""
    error = fault_of(api.post("/timeactivity", {"NameOf": "Employee", "Hours": 1}))
    assert error["Detail"] == "Required parameter EmployeeRef is missing in the request"
    activity = api.create("TimeActivity", BODIES["TimeActivity"])
    assert activity["EmployeeRef"] == {"value": "1", "name": "Emily Platt"}


def test_cdc_does_not_fail_for_an_entity_it_does_not_cover(api: Api) -> None:
    """§3: TimeActivity, TaxCode, TaxRate, JournalCode and TaxAgency are outside CDC; a request
    naming them alongside others still answers, one element per name ({} for those)."""
    since = api.handle.control.now()
    customer = api.create("Customer", {"DisplayName": "CDC neighbour"})
    data = api.ok(api.get("/cdc", entities="TimeActivity,Customer,TaxAgency,TaxRate",
                          changedSince=since))
    elements = data["CDCResponse"][0]["QueryResponse"]
    assert [elements[0], elements[2], elements[3]] == [{}, {}, {}]
    assert [c["Id"] for c in elements[1]["Customer"]] == [customer["Id"]]
    assert fault_of(api.get("/cdc", entities="Customer,Nonsense",
                            changedSince=since))["code"] == "2000"
