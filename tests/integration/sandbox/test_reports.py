"""The reports endpoint (gap 3 of issue 10): ProfitAndLoss, BalanceSheet, AgedReceivables,
CustomerBalance and GeneralLedger in QBO's report JSON shape, computed from the company's
transactions on the accrual basis, voided and deleted ones excluded.

QBO_API.md §1.1 (``reports/{ReportName}`` resource), §11.4-§11.7 (the transactions whose
amounts the reports add up), §11.9 (account types and classifications).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from .helpers import Api, fault_of


def _sale(amount: float, item: str = "2") -> dict[str, Any]:
    return {"Amount": amount, "DetailType": "SalesItemLineDetail",
            "SalesItemLineDetail": {"ItemRef": {"value": item}}}


def _expense(amount: float, account: str) -> dict[str, Any]:
    return {"Amount": amount, "DetailType": "AccountBasedExpenseLineDetail",
            "AccountBasedExpenseLineDetail": {"AccountRef": {"value": account}}}


def _summary(rows: list[dict[str, Any]], group: str) -> list[Decimal]:
    for row in rows:
        if row.get("group") == group and "Summary" in row:
            return [Decimal(c["value"]) for c in row["Summary"]["ColData"][1:]]
        found = _summary(row.get("Rows", {}).get("Row", []), group)
        if found:
            return found
    return []


def _report(api: Api, name: str, **params: Any) -> dict[str, Any]:
    data: dict[str, Any] = api.ok(api.get(f"/reports/{name}", **params))
    return data


@pytest.fixture
def books(api: Api) -> dict[str, Any]:
    """A small year of business: sales, collections, a deposit, bills, expenses, a journal
    entry, a credit memo, a voided and a deleted invoice."""
    day = "2026-03-10"
    first = api.create("Invoice", {"CustomerRef": {"value": "1"}, "TxnDate": day,
                                   "DueDate": "2026-03-20", "Line": [_sale(1000)]})
    api.create("Invoice", {"CustomerRef": {"value": "2"}, "TxnDate": "2026-05-01",
                           "DueDate": "2026-05-31", "Line": [_sale(400), _sale(50, "4")]})
    voided = api.create("Invoice", {"CustomerRef": {"value": "2"}, "TxnDate": day,
                                    "Line": [_sale(999)]})
    api.ok(api.post("/invoice", {"Id": voided["Id"], "SyncToken": "0"}, operation="void"))
    deleted = api.create("Invoice", {"CustomerRef": {"value": "3"}, "TxnDate": day,
                                     "Line": [_sale(777)]})
    api.ok(api.post("/invoice", {"Id": deleted["Id"], "SyncToken": "0"}, operation="delete"))
    payment = api.create("Payment", {"CustomerRef": {"value": "1"}, "TotalAmt": 600,
                                     "TxnDate": "2026-04-01", "Line": [
                                         {"Amount": 600, "LinkedTxn": [
                                             {"TxnId": first["Id"], "TxnType": "Invoice"}]}]})
    api.create("Deposit", {"DepositToAccountRef": {"value": "1"}, "TxnDate": "2026-04-02",
                           "Line": [{"Amount": 600, "LinkedTxn": [
                               {"TxnId": payment["Id"], "TxnType": "Payment"}]}]})
    api.create("SalesReceipt", {"CustomerRef": {"value": "4"}, "TxnDate": "2026-06-01",
                                "Line": [_sale(120)]})
    api.create("CreditMemo", {"CustomerRef": {"value": "2"}, "TxnDate": "2026-06-02",
                              "Line": [_sale(30)]})
    bill = api.create("Bill", {"VendorRef": {"value": "1"}, "TxnDate": "2026-03-15",
                               "Line": [_expense(300, "9"), _expense(45, "10")]})
    api.create("BillPayment", {"VendorRef": {"value": "1"}, "PayType": "Check",
                               "TotalAmt": 300, "TxnDate": "2026-04-15",
                               "CheckPayment": {"BankAccountRef": {"value": "1"}}, "Line": [
                                   {"Amount": 300, "LinkedTxn": [
                                       {"TxnId": bill["Id"], "TxnType": "Bill"}]}]})
    api.create("Purchase", {"AccountRef": {"value": "16"}, "PaymentType": "CreditCard",
                            "TxnDate": "2026-02-01", "Line": [_expense(80, "11")]})
    api.create("JournalEntry", {"TxnDate": "2026-06-30", "Line": [
        {"Amount": 25, "DetailType": "JournalEntryLineDetail", "JournalEntryLineDetail": {
            "PostingType": "Debit", "AccountRef": {"value": "13"}}},
        {"Amount": 25, "DetailType": "JournalEntryLineDetail", "JournalEntryLineDetail": {
            "PostingType": "Credit", "AccountRef": {"value": "1"}}}]})
    api.create("Transfer", {"FromAccountRef": {"value": "1"}, "ToAccountRef": {"value": "2"},
                            "Amount": 100, "TxnDate": "2026-06-15"})
    # Income 1000 + 450 + 120 - 30 = 1540; expenses 300 + 45 + 80 + 25 = 450.
    return {"income": Decimal("1540.00"), "expenses": Decimal("450.00"),
            "open_invoices": Decimal("850.00"), "credits": Decimal("30.00")}


def test_profit_and_loss_shape_and_net_income(api: Api, books: dict[str, Any]) -> None:
    """Accrual P&L: income by account, expenses, Net Income; voided/deleted excluded."""
    report = _report(api, "ProfitAndLoss", start_date="2026-01-01", end_date="2026-12-31")
    header = report["Header"]
    assert (header["ReportName"], header["ReportBasis"]) == ("ProfitAndLoss", "Accrual")
    assert (header["StartPeriod"], header["EndPeriod"]) == ("2026-01-01", "2026-12-31")
    assert [c["ColType"] for c in report["Columns"]["Column"]] == ["Account", "Money"]
    rows = report["Rows"]["Row"]
    assert [r["group"] for r in rows] == ["Income", "COGS", "GrossProfit", "Expenses",
                                          "NetOperatingIncome", "OtherIncome",
                                          "OtherExpenses", "NetOtherIncome", "NetIncome"]
    assert rows[0]["Header"]["ColData"][0]["value"] == "Income"
    assert rows[0]["Rows"]["Row"][0]["type"] == "Data"
    assert _summary(rows, "Income") == [books["income"]]
    assert _summary(rows, "Expenses") == [books["expenses"]]
    assert _summary(rows, "NetIncome") == [books["income"] - books["expenses"]]
    march = _report(api, "ProfitAndLoss", start_date="2026-03-01", end_date="2026-03-31")
    assert _summary(march["Rows"]["Row"], "NetIncome") == [Decimal("655.00")]


def test_profit_and_loss_by_month_columns_add_up(api: Api, books: dict[str, Any]) -> None:
    """``summarize_column_by=Month``: one money column per month, then Total."""
    report = _report(api, "ProfitAndLoss", start_date="2026-01-01", end_date="2026-06-30",
                     summarize_column_by="Month")
    titles = [c["ColTitle"] for c in report["Columns"]["Column"]]
    assert titles == ["", "Jan 2026", "Feb 2026", "Mar 2026", "Apr 2026", "May 2026",
                      "Jun 2026", "Total"]
    net = _summary(report["Rows"]["Row"], "NetIncome")
    assert sum(net[:-1]) == net[-1] == books["income"] - books["expenses"]


def test_balance_sheet_balances_with_net_income(api: Api, books: dict[str, Any]) -> None:
    """Assets = liabilities + equity, Net Income (this year) inside equity."""
    report = _report(api, "BalanceSheet", end_date="2026-12-31")
    rows = report["Rows"]["Row"]
    assets = _summary(rows, "TotalAssets")
    assert assets == _summary(rows, "TotalLiabilitiesAndEquity")
    # Checking 600 - 300 - 25 - 100 = 175; savings 100; undeposited 120; A/R 850 - 30.
    assert assets == [Decimal("175.00") + 100 + 120 + books["open_invoices"] - books["credits"]]
    equity = next(r for r in rows[1]["Rows"]["Row"] if r["group"] == "Equity")
    net_row = next(r for r in equity["Rows"]["Row"] if r["ColData"][0]["value"] ==
                   "Net Income")
    assert Decimal(net_row["ColData"][1]["value"]) == books["income"] - books["expenses"]


def test_balance_sheet_carries_last_year_into_retained_earnings(api: Api) -> None:
    """Prior fiscal years' income moves from Net Income to Retained Earnings."""
    api.create("SalesReceipt", {"CustomerRef": {"value": "1"}, "TxnDate": "2025-12-30",
                                "Line": [_sale(70)]})
    rows = _report(api, "BalanceSheet", end_date="2026-01-31")["Rows"]["Row"]
    equity = next(r for r in rows[1]["Rows"]["Row"] if r["group"] == "Equity")
    values = {r["ColData"][0]["value"]: r["ColData"][1]["value"]
              for r in equity["Rows"]["Row"]}
    assert (values["Retained Earnings"], values["Net Income"]) == ("70.00", "0.00")
    assert _summary(rows, "TotalAssets") == _summary(rows, "TotalLiabilitiesAndEquity")


def test_aged_receivables_total_is_the_open_balance(api: Api, books: dict[str, Any]) -> None:
    """Aging buckets by days past due; the total is what customers owe (open invoices less
    open credits), which is also the A/R balance and the sum of Customer.Balance."""
    report = _report(api, "AgedReceivables", report_date="2026-07-15")
    columns = [c["ColTitle"] for c in report["Columns"]["Column"]]
    assert columns == ["", "Current", "1 - 30", "31 - 60", "61 - 90", "91 and over", "Total"]
    rows = report["Rows"]["Row"]
    total = _summary(rows, "GrandTotal")
    open_balance = books["open_invoices"] - books["credits"]
    assert total[-1] == open_balance
    amy = next(r for r in rows if r.get("ColData", [{}])[0].get("value") ==
               "Amy's Bird Sanctuary")
    assert [c["value"] for c in amy["ColData"][1:]] == ["0.00", "0.00", "0.00", "0.00",
                                                       "400.00", "400.00"]
    customers = api.ok(api.query("select * from Customer"))["QueryResponse"]["Customer"]
    assert sum(Decimal(str(c["Balance"])) for c in customers) == open_balance
    ar = api.ok(api.query("select * from Account where AccountType = 'Accounts Receivable'"))
    assert Decimal(str(ar["QueryResponse"]["Account"][0]["CurrentBalance"])) == open_balance
    balances = _report(api, "CustomerBalance")
    assert _summary(balances["Rows"]["Row"], "GrandTotal") == [open_balance]


def test_general_ledger_sections_per_account(api: Api, books: dict[str, Any]) -> None:
    """One section per account, rows per posting with a running balance; every
    transaction's postings balance, so the totals of all sections net to zero."""
    report = _report(api, "GeneralLedger", start_date="2026-01-01", end_date="2026-12-31")
    assert [c["ColType"] for c in report["Columns"]["Column"]][:2] == ["tx_date", "txn_type"]
    sections = {s["Header"]["ColData"][0]["value"]: s for s in report["Rows"]["Row"]}
    checking = sections["Checking"]["Rows"]["Row"]
    assert checking[0]["ColData"][1]["value"] == "Beginning Balance"
    assert [r["ColData"][1]["value"] for r in checking[1:]] == [
        "Deposit", "Bill Payment (Check)", "Transfer", "Journal Entry"]
    assert checking[-1]["ColData"][-1]["value"] == "175.00"
    assert sections["Travel"]["Summary"]["ColData"][6]["value"] == "80.00"


def test_unknown_report_and_cash_basis_are_refused(api: Api) -> None:
    """Only the five reports are served; cash basis is not computed by the sandbox."""
    assert fault_of(api.get("/reports/TrialBalanceXYZ"))["code"] == "500"
    assert fault_of(api.get("/reports/ProfitAndLoss", accounting_method="Cash"))["code"] == \
        "500"


def test_reports_cover_the_first_and_last_dates_there_are(api: Api) -> None:
    """A transaction dated in year 1, one due on 9999-12-31: the balance sheet's prior years
    and the columns reaching the last day are computed (before: HTTP 500 from a date past
    the first day there is, and the tie-out of the marts failed on every run)."""
    api.create("Invoice", {"CustomerRef": {"value": "1"}, "TxnDate": "0001-01-01",
                           "DueDate": "9999-12-31", "Line": [_sale(12.5)]})
    rows = _report(api, "BalanceSheet", start_date="0001-01-01",
                   end_date="0001-03-31", summarize_column_by="Month")["Rows"]["Row"]
    assert _summary(rows, "TotalAssets") == [Decimal("12.50")] * 4  # 3 months and the total
    assert _summary(rows, "TotalAssets") == _summary(rows, "TotalLiabilitiesAndEquity")
    report = _report(api, "ProfitAndLoss", start_date="9999-10-01", end_date="9999-12-31",
                     summarize_column_by="Quarter")
    assert [c["ColTitle"] for c in report["Columns"]["Column"]][1:] == ["Q4 9999", "Total"]
    aged = _report(api, "AgedReceivables", report_date="9999-12-31")
    assert _summary(aged["Rows"]["Row"], "GrandTotal")[-1] >= Decimal("12.50")
