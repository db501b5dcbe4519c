"""Balances maintained from transactions (gap 4 of issue 10): Customer.Balance and
BalanceWithJobs, Invoice.Balance, Bill.Balance, Vendor.Balance, Account.CurrentBalance,
including on void and delete.

QBO_API.md §11.1 (Customer.Balance/BalanceWithJobs RO), §11.4 (Invoice.Balance = TotalAmt less
payments/credits, 0 after void), §11.5 (payments reduce the linked invoice's Balance), §11.7
(Bill.Balance, BillPayment), §11.9 (Account.CurrentBalance RO), §2 (``Balance > '0'`` queries).
"""

from __future__ import annotations

from typing import Any

from .helpers import Api


def _line(amount: float, item: str = "2") -> dict[str, Any]:
    return {"Amount": amount, "DetailType": "SalesItemLineDetail",
            "SalesItemLineDetail": {"ItemRef": {"value": item}}}


def _expense(amount: float, account: str = "10") -> dict[str, Any]:
    return {"Amount": amount, "DetailType": "AccountBasedExpenseLineDetail",
            "AccountBasedExpenseLineDetail": {"AccountRef": {"value": account}}}


def _get(api: Api, entity: str, obj_id: str) -> dict[str, Any]:
    result: dict[str, Any] = api.ok(api.get(f"/{entity.lower()}/{obj_id}"))[entity]
    return result


def _account(api: Api, sub_type: str) -> dict[str, Any]:
    rows = api.ok(api.query(f"select * from Account where AccountSubType = '{sub_type}'"))
    result: dict[str, Any] = rows["QueryResponse"]["Account"][0]
    return result


def test_customer_balance_follows_invoices_payments_credits_void_and_delete(api: Api) -> None:
    """§11.1/§11.4/§11.5: Customer.Balance = open invoices - open credits - unapplied cash."""
    customer = api.create("Customer", {"DisplayName": "Balance Watcher"})
    cid = customer["Id"]
    assert _get(api, "Customer", cid)["Balance"] == 0
    first = api.create("Invoice", {"CustomerRef": {"value": cid}, "Line": [_line(100)]})
    second = api.create("Invoice", {"CustomerRef": {"value": cid}, "Line": [_line(50)]})
    assert _get(api, "Customer", cid)["Balance"] == 150.0
    payment = api.create("Payment", {"CustomerRef": {"value": cid}, "TotalAmt": 40, "Line": [
        {"Amount": 40, "LinkedTxn": [{"TxnId": first["Id"], "TxnType": "Invoice"}]}]})
    assert _get(api, "Invoice", first["Id"])["Balance"] == 60.0
    assert _get(api, "Customer", cid)["Balance"] == 110.0
    credit = api.create("CreditMemo", {"CustomerRef": {"value": cid}, "Line": [_line(10)]})
    assert _get(api, "Customer", cid)["Balance"] == 100.0
    api.ok(api.post("/invoice", {"Id": second["Id"], "SyncToken": "0"}, operation="void"))
    assert _get(api, "Customer", cid)["Balance"] == 50.0
    api.ok(api.post("/payment", {"Id": payment["Id"], "SyncToken": payment["SyncToken"],
                                 "sparse": True}, operation="update", include="void"))
    assert _get(api, "Invoice", first["Id"])["Balance"] == 100.0
    assert _get(api, "Customer", cid)["Balance"] == 90.0
    api.ok(api.post("/creditmemo", {"Id": credit["Id"], "SyncToken": "0"},
                    operation="delete"))
    customer = _get(api, "Customer", cid)
    assert (customer["Balance"], customer["BalanceWithJobs"]) == (100.0, 100.0)
    assert customer["SyncToken"] == "0"  # a balance moving is no edit of the customer


def test_balance_with_jobs_adds_sub_customers(api: Api) -> None:
    """§11.1: BalanceWithJobs (RO) is the customer's balance plus its jobs'."""
    parent = api.create("Customer", {"DisplayName": "Parent Co"})
    job = api.create("Customer", {"DisplayName": "Parent Co job", "Job": True,
                                  "ParentRef": {"value": parent["Id"]}})
    api.create("Invoice", {"CustomerRef": {"value": parent["Id"]}, "Line": [_line(30)]})
    api.create("Invoice", {"CustomerRef": {"value": job["Id"]}, "Line": [_line(12)]})
    parent = _get(api, "Customer", parent["Id"])
    assert (parent["Balance"], parent["BalanceWithJobs"]) == (30.0, 42.0)


def test_balance_with_jobs_counts_a_job_added_after_the_parent_had_postings(api: Api) -> None:
    """§11.1: a job made after its parent's first invoice (the sandbox's balances already
    kept) still moves the parent's BalanceWithJobs, and no longer once it moves to another."""
    parent = api.create("Customer", {"DisplayName": "Early Co"})
    other = api.create("Customer", {"DisplayName": "Other Co"})
    api.create("Invoice", {"CustomerRef": {"value": parent["Id"]}, "Line": [_line(30)]})
    job = api.create("Customer", {"DisplayName": "Early Co job", "Job": True,
                                  "ParentRef": {"value": parent["Id"]}})
    api.create("Invoice", {"CustomerRef": {"value": job["Id"]}, "Line": [_line(12)]})
    assert _get(api, "Customer", parent["Id"])["BalanceWithJobs"] == 42.0
    job = _get(api, "Customer", job["Id"])
    api.ok(api.post("/customer", {"Id": job["Id"], "SyncToken": job["SyncToken"],
                                  "sparse": True, "ParentRef": {"value": other["Id"]}}))
    api.create("Invoice", {"CustomerRef": {"value": job["Id"]}, "Line": [_line(1)]})
    assert _get(api, "Customer", parent["Id"])["BalanceWithJobs"] == 30.0
    assert _get(api, "Customer", other["Id"])["BalanceWithJobs"] == 13.0


def test_query_customers_with_a_balance(api: Api) -> None:
    """§2: ``select * from Customer where Balance > '0'`` (quoted number) finds the debtors."""
    debtor = api.create("Customer", {"DisplayName": "Debtor"})
    api.create("Customer", {"DisplayName": "Settled"})
    api.create("Invoice", {"CustomerRef": {"value": debtor["Id"]}, "Line": [_line(75)]})
    rows = api.ok(api.query("select * from Customer where Balance > '0'"))["QueryResponse"]
    assert [c["DisplayName"] for c in rows["Customer"]] == ["Debtor"]


def test_bill_and_vendor_balance_follow_bill_payments(api: Api) -> None:
    """§11.7: a BillPayment reduces Bill.Balance and links back (``BillPaymentCheck``)."""
    bill = api.create("Bill", {"VendorRef": {"value": "1"}, "Line": [_expense(200)]})
    assert bill["Balance"] == 200.0
    assert _get(api, "Vendor", "1")["Balance"] == 200.0
    payment = api.create("BillPayment", {
        "VendorRef": {"value": "1"}, "PayType": "Check", "TotalAmt": 150,
        "CheckPayment": {"BankAccountRef": {"value": "1"}},
        "Line": [{"Amount": 150, "LinkedTxn": [{"TxnId": bill["Id"], "TxnType": "Bill"}]}]})
    bill = _get(api, "Bill", bill["Id"])
    assert bill["Balance"] == 50.0
    assert bill["LinkedTxn"] == [{"TxnId": payment["Id"], "TxnType": "BillPaymentCheck"}]
    assert _get(api, "Vendor", "1")["Balance"] == 50.0
    api.ok(api.post("/billpayment", {"Id": payment["Id"], "SyncToken": "0"},
                    operation="delete"))
    assert _get(api, "Bill", bill["Id"])["Balance"] == 200.0
    assert _get(api, "Bill", bill["Id"])["LinkedTxn"] == []


def test_account_current_balances_move_with_postings_and_reverse_on_delete(api: Api) -> None:
    """§11.9: CurrentBalance (balance sheet accounts) follows the accrual postings."""
    ar, funds = _account(api, "AccountsReceivable"), _account(api, "UndepositedFunds")
    checking = _get(api, "Account", "1")
    assert (ar["CurrentBalance"], funds["CurrentBalance"], checking["CurrentBalance"]) == (
        0, 0, 0)
    invoice = api.create("Invoice", {"CustomerRef": {"value": "1"}, "Line": [_line(120)]})
    payment = api.create("Payment", {"CustomerRef": {"value": "1"}, "TotalAmt": 120, "Line": [
        {"Amount": 120, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}]})
    assert _account(api, "UndepositedFunds")["CurrentBalance"] == 120.0
    assert _account(api, "AccountsReceivable")["CurrentBalance"] == 0
    deposit = api.create("Deposit", {"DepositToAccountRef": {"value": "1"}, "Line": [
        {"Amount": 120, "LinkedTxn": [{"TxnId": payment["Id"], "TxnType": "Payment"}]}]})
    assert _account(api, "UndepositedFunds")["CurrentBalance"] == 0
    assert _get(api, "Account", "1")["CurrentBalance"] == 120.0
    api.create("Purchase", {"AccountRef": {"value": "1"}, "PaymentType": "Check",
                            "Line": [_expense(20, "12")]})
    assert _get(api, "Account", "1")["CurrentBalance"] == 100.0
    assert _get(api, "Account", "12")["CurrentBalance"] == 0  # P&L account: no balance
    api.ok(api.post("/deposit", {"Id": deposit["Id"], "SyncToken": "0"}, operation="delete"))
    assert _get(api, "Account", "1")["CurrentBalance"] == -20.0
    assert _account(api, "UndepositedFunds")["CurrentBalance"] == 120.0
