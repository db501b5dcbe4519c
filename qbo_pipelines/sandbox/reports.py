"""``GET /v3/company/{realm}/reports/{Name}``: ProfitAndLoss, BalanceSheet, AgedReceivables,
CustomerBalance and GeneralLedger, computed from the company's postings (``ledger``), in QBO's
report JSON shape: ``{"Header": {...}, "Columns": {"Column": [...]}, "Rows": {"Row": [...]}}``
where a row is ``{"ColData": [...], "type": "Data"}`` or a section
``{"Header", "Rows", "Summary", "type": "Section", "group"}`` (QBO_API.md §1.1 ``reports``).

Parameters: ``start_date``/``end_date`` (default: this calendar year to date), ``report_date``
or ``as_of`` (aging and balances; default: ``end_date``, else today), ``accounting_method``
(``Accrual``, the default; ``Cash`` is refused), ``summarize_column_by`` (``Total``, ``Month``,
``Quarter`` or ``Year``, for ProfitAndLoss and BalanceSheet).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from qbo_pipelines.sandbox import errors, ledger
from qbo_pipelines.sandbox.clock import fmt_seconds, local_date
from qbo_pipelines.sandbox.ledger import ZERO, Posting, account_class, account_name, dec, ref
from qbo_pipelines.sandbox.state import Company, Obj

REPORTS = ("ProfitAndLoss", "BalanceSheet", "AgedReceivables", "CustomerBalance",
           "GeneralLedger")
TXN_TYPES = {"Invoice": "Invoice", "Payment": "Payment", "SalesReceipt": "Sales Receipt",
             "CreditMemo": "Credit Memo", "RefundReceipt": "Refund", "Bill": "Bill",
             "VendorCredit": "Vendor Credit", "Purchase": "Expense",
             "BillPayment": "Bill Payment (Check)", "Deposit": "Deposit",
             "Transfer": "Transfer", "JournalEntry": "Journal Entry"}
AGING = ("Current", "1 - 30", "31 - 60", "61 - 90", "91 and over")


@dataclass
class Period:
    title: str
    start: date | None
    end: date


def run(company: Company, name: str, params: dict[str, str], epoch: float) -> Obj:
    match = {r.lower(): r for r in REPORTS}.get(name.lower())
    if match is None:
        raise errors.unsupported(f"Operation reports/{name} is not supported.")
    method = params.get("accounting_method", "Accrual")
    if method.lower() != "accrual":
        raise errors.unsupported(f"accounting_method={method} is not supported by the "
                                 "sandbox (Accrual only).")
    today = local_date(epoch, company.utc_offset)
    ctx = _Context(company, params, today, fmt_seconds(epoch, company.utc_offset))
    builders: dict[str, Callable[[_Context], Obj]] = {
        "ProfitAndLoss": _profit_and_loss, "BalanceSheet": _balance_sheet,
        "AgedReceivables": _aged_receivables, "CustomerBalance": _customer_balance,
        "GeneralLedger": _general_ledger}
    return builders[match](ctx)


def _date(params: dict[str, str], key: str) -> date | None:
    raw = params.get(key)
    if not raw:
        return None
    try:
        return date.fromisoformat(raw[:10])
    except ValueError as exc:
        raise errors.QboFault("2070", "Invalid Date", f"Invalid Date : {key} {raw}",
                              key) from exc


class _Context:
    def __init__(self, company: Company, params: dict[str, str], today: date,
                 now: str) -> None:
        self.company = company
        self.params = params
        self.now = now
        self.end = _date(params, "end_date") or today
        self.start = _date(params, "start_date") or date(self.end.year, 1, 1)
        if self.start > self.end:
            raise errors.business("The report start date is after its end date.",
                                  element="start_date")
        self.as_of = _date(params, "report_date") or _date(params, "as_of") or _date(
            params, "end_date") or today
        self.postings = ledger.ledger_of(company).all()
        self.by = params.get("summarize_column_by", "Total")

    def header(self, name: str, start: date | None, end: date, **extra: Any) -> Obj:
        header: Obj = {"Time": self.now, "ReportName": name, "ReportBasis": "Accrual"}
        if start is not None:
            header["StartPeriod"] = start.isoformat()
        header["EndPeriod"] = end.isoformat()
        header.update(extra)
        header["Currency"] = "USD"
        header["Option"] = [{"Name": "AccountingStandard", "Value": "GAAP"},
                            {"Name": "NoReportData", "Value": "false"}]
        return header

    def periods(self, start: date, end: date) -> list[Period]:
        """Columns for ``summarize_column_by`` (Total, Month, Quarter, Year)."""
        by = self.by.lower()
        if by in ("", "total"):
            return []
        if by not in ("month", "quarter", "year"):
            raise errors.QboFault("2170", "Invalid Enumeration",
                                  f"Invalid Enumeration : summarize_column_by {self.by}",
                                  "summarize_column_by")
        months = {"month": 1, "quarter": 3, "year": 12}[by]
        out = []
        cursor = start
        while cursor <= end:
            if by == "quarter":
                first = date(cursor.year, (cursor.month - 1) // 3 * 3 + 1, 1)
            elif by == "year":
                first = date(cursor.year, 1, 1)
            else:
                first = date(cursor.year, cursor.month, 1)
            last = min(_period_end(first, months), end)
            title = {"month": f"{cursor:%b} {cursor.year}",
                     "quarter": f"Q{(first.month - 1) // 3 + 1} {first.year}",
                     "year": str(first.year)}[by]
            out.append(Period(title, cursor, last))
            if last >= end:  # (the last day there is has no day after it)
                break
            cursor = last + timedelta(days=1)
        return out


def _period_end(first: date, months: int) -> date:
    """The last day of the ``months``-month period that begins on ``first``."""
    month = first.month - 1 + months
    year = first.year + month // 12
    if year > date.max.year:
        return date.max
    return date(year, month % 12 + 1, 1) - timedelta(days=1)


def _money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'))}"


def _data(label: str, values: list[Decimal], row_id: str | None = None) -> Obj:
    first: Obj = {"value": label}
    if row_id is not None:
        first["id"] = row_id
    return {"ColData": [first, *({"value": _money(v)} for v in values)], "type": "Data"}


def _summary(label: str, values: list[Decimal]) -> Obj:
    return {"ColData": [{"value": label}, *({"value": _money(v)} for v in values)]}


def _section(group: str, title: str | None, rows: list[Obj], total_label: str | None,
             totals: list[Decimal]) -> Obj:
    section: Obj = {"type": "Section", "group": group}
    if title is not None:
        section["Header"] = {"ColData": [{"value": title}, *({"value": ""} for _ in totals)]}
    if rows:
        section["Rows"] = {"Row": rows}
    if total_label is not None:
        section["Summary"] = _summary(total_label, totals)
    return section


def _money_columns(titles: list[str]) -> list[Obj]:
    return [{"ColTitle": "", "ColType": "Account",
             "MetaData": [{"Name": "ColKey", "Value": "account"}]},
            *({"ColTitle": t, "ColType": "Money",
               "MetaData": [{"Name": "ColKey", "Value": t.lower().replace(" ", "_")}]}
              for t in titles)]


def _natural(company: Company, account_id: str, amount: Decimal) -> Decimal:
    """Debit-positive to the account's natural sign (credits positive for revenue etc.)."""
    return amount if account_class(company, account_id) in ("Asset", "Expense") else -amount


def _type_of(company: Company, account_id: str) -> str:
    return ledger.account_type(company, account_id)


def _sum_by_account(company: Company, postings: list[Posting], start: date | None,
                    end: date) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    low, high = (start.isoformat() if start else ""), end.isoformat()
    for p in postings:
        if low <= p.day <= high:
            out[p.account] = out.get(p.account, ZERO) + p.amount
    return out


# ---------------------------------------------------------------------------------------------
# Profit and Loss

PL_SECTIONS = (("Income", "Income", ("Income",)),
               ("COGS", "Cost of Goods Sold", ("Cost of Goods Sold",)),
               ("Expenses", "Expenses", ("Expense",)),
               ("OtherIncome", "Other Income", ("Other Income",)),
               ("OtherExpenses", "Other Expenses", ("Other Expense",)))


def net_income(company: Company, postings: list[Posting], start: date | None,
               end: date) -> Decimal:
    sums = _sum_by_account(company, postings, start, end)
    return -sum((v for a, v in sums.items()
                 if account_class(company, a) in ("Revenue", "Expense")), ZERO)


def _profit_and_loss(ctx: _Context) -> Obj:
    company = ctx.company
    periods = ctx.periods(ctx.start, ctx.end)
    spans = [(p.start, p.end) for p in periods] + [(ctx.start, ctx.end)]
    sums = [_sum_by_account(company, ctx.postings, s, e) for s, e in spans]
    totals: dict[str, list[Decimal]] = {}
    rows = []
    for group, title, types in PL_SECTIONS:
        accounts = sorted({a for s in sums for a in s if _type_of(company, a) in types},
                          key=lambda a: account_name(company, a).lower())
        data = []
        section_totals = [ZERO] * len(spans)
        for account in accounts:
            values = [_natural(company, account, s.get(account, ZERO)) for s in sums]
            if not any(values):
                continue
            data.append(_data(account_name(company, account), values, account))
            section_totals = [t + v for t, v in zip(section_totals, values, strict=True)]
        totals[group] = section_totals
        rows.append(_section(group, title, data, f"Total {title}", section_totals))
        if group == "COGS":
            gross = [i - c for i, c in zip(totals["Income"], section_totals, strict=True)]
            totals["GrossProfit"] = gross
            rows.append(_section("GrossProfit", None, [], "Gross Profit", gross))
        if group == "Expenses":
            operating = [g - x for g, x in zip(totals["GrossProfit"], section_totals,
                                               strict=True)]
            totals["NetOperatingIncome"] = operating
            rows.append(_section("NetOperatingIncome", None, [], "Net Operating Income",
                                 operating))
    other = [i - x for i, x in zip(totals["OtherIncome"], totals["OtherExpenses"], strict=True)]
    rows.append(_section("NetOtherIncome", None, [], "Net Other Income", other))
    net = [o + n for o, n in zip(totals["NetOperatingIncome"], other, strict=True)]
    rows.append(_section("NetIncome", None, [], "Net Income", net))
    return {"Header": ctx.header("ProfitAndLoss", ctx.start, ctx.end,
                                 SummarizeColumnsBy=ctx.by),
            "Columns": {"Column": _money_columns([p.title for p in periods] + ["Total"])},
            "Rows": {"Row": rows}}


# ---------------------------------------------------------------------------------------------
# Balance Sheet

ASSET_GROUPS = (("BankAccounts", "Bank Accounts", ("Bank",)),
                ("AR", "Accounts Receivable", ("Accounts Receivable",)),
                ("OtherCurrentAssets", "Other Current Assets", ("Other Current Asset",)))
LIABILITY_GROUPS = (("AP", "Accounts Payable", ("Accounts Payable",)),
                    ("CreditCards", "Credit Cards", ("Credit Card",)),
                    ("OtherCurrentLiabilities", "Other Current Liabilities",
                     ("Other Current Liability",)))


def _balance_sheet(ctx: _Context) -> Obj:
    company = ctx.company
    end = _date(ctx.params, "end_date") or ctx.as_of
    start = _date(ctx.params, "start_date") or date(end.year, 1, 1)
    periods = ctx.periods(start, end)
    ends = [p.end for p in periods] + [end]
    sums = [_sum_by_account(company, ctx.postings, None, e) for e in ends]
    n = len(ends)

    def group_section(group: str, title: str, types: tuple[str, ...]) -> tuple[Obj, list[Decimal]]:
        accounts = sorted({a for s in sums for a in s if _type_of(company, a) in types},
                          key=lambda a: account_name(company, a).lower())
        rows, total = [], [ZERO] * n
        for account in accounts:
            values = [_natural(company, account, s.get(account, ZERO)) for s in sums]
            if any(values):
                rows.append(_data(account_name(company, account), values, account))
                total = [t + v for t, v in zip(total, values, strict=True)]
        return _section(group, title, rows, f"Total {title}", total), total

    def add(*lists: list[Decimal]) -> list[Decimal]:
        return [sum(values, ZERO) for values in zip(*lists, strict=True)]

    current_assets = [group_section(*g) for g in ASSET_GROUPS]
    current_total = add(*(t for _, t in current_assets))
    current = _section("CurrentAssets", "Current Assets", [s for s, _ in current_assets],
                       "Total Current Assets", current_total)
    fixed, fixed_total = group_section("FixedAssets", "Fixed Assets", ("Fixed Asset",))
    other, other_total = group_section("OtherAssets", "Other Assets", ("Other Asset",))
    assets_total = add(current_total, fixed_total, other_total)
    assets = _section("TotalAssets", "ASSETS", [current, fixed, other], "TOTAL ASSETS",
                      assets_total)

    current_liabilities = [group_section(*g) for g in LIABILITY_GROUPS]
    cl_total = add(*(t for _, t in current_liabilities))
    cl = _section("CurrentLiabilities", "Current Liabilities",
                  [s for s, _ in current_liabilities], "Total Current Liabilities", cl_total)
    long_term, lt_total = group_section("LongTermLiabilities", "Long-Term Liabilities",
                                        ("Long Term Liability",))
    liabilities_total = add(cl_total, lt_total)
    liabilities = _section("Liabilities", "Liabilities", [cl, long_term], "Total Liabilities",
                           liabilities_total)

    equity_rows, equity_total = [], [ZERO] * n
    retained = [ZERO] * n
    for account in sorted({a for s in sums for a in s if _type_of(company, a) == "Equity"},
                          key=lambda a: account_name(company, a).lower()):
        values = [_natural(company, account, s.get(account, ZERO)) for s in sums]
        acct = company.get("Account", account) or {}
        if acct.get("AccountSubType") == "RetainedEarnings":
            retained = [r + v for r, v in zip(retained, values, strict=True)]
            continue
        if any(values):
            equity_rows.append(_data(account_name(company, account), values, account))
            equity_total = [t + v for t, v in zip(equity_total, values, strict=True)]
    fiscal_starts = [date(e.year, 1, 1) for e in ends]
    # (nothing is dated before year 1: its fiscal year has no prior one)
    prior = [net_income(company, ctx.postings, None, fs - timedelta(days=1))
             if fs > date.min else ZERO for fs in fiscal_starts]
    retained = [r + p for r, p in zip(retained, prior, strict=True)]
    income = [net_income(company, ctx.postings, fs, e)
              for fs, e in zip(fiscal_starts, ends, strict=True)]
    equity_rows.append(_data("Retained Earnings", retained))
    equity_rows.append(_data("Net Income", income))
    equity_total = add(equity_total, retained, income)
    equity = _section("Equity", "Equity", equity_rows, "Total Equity", equity_total)
    both_total = add(liabilities_total, equity_total)
    both = _section("TotalLiabilitiesAndEquity", "LIABILITIES AND EQUITY",
                    [liabilities, equity], "TOTAL LIABILITIES AND EQUITY", both_total)
    return {"Header": ctx.header("BalanceSheet", start, end, SummarizeColumnsBy=ctx.by),
            "Columns": {"Column": _money_columns([p.title for p in periods] + ["Total"])},
            "Rows": {"Row": [assets, both]}}


# ---------------------------------------------------------------------------------------------
# Receivables


def open_items(company: Company, as_of: date) -> list[tuple[str, date, Decimal]]:
    """(customer id, aging date, open amount) of every open A/R item dated on or before
    ``as_of``: open invoices (by due date) less open credits and unapplied payments, plus
    journal lines to A/R naming the customer."""
    limit = as_of.isoformat()
    items: list[tuple[str, date, Decimal]] = []

    def add(customer: str | None, day: Any, amount: Decimal) -> None:
        if customer and amount:
            items.append((customer, date.fromisoformat(str(day)[:10]), amount))

    for inv in company.entities.get("Invoice", {}).values():
        if str(inv.get("TxnDate", "")) <= limit:
            add(ref(inv.get("CustomerRef")), inv.get("DueDate") or inv.get("TxnDate"),
                dec(inv.get("Balance")))
    for memo in company.entities.get("CreditMemo", {}).values():
        if str(memo.get("TxnDate", "")) <= limit:
            add(ref(memo.get("CustomerRef")), memo.get("TxnDate"), -dec(memo.get("Balance")))
    for pay in company.entities.get("Payment", {}).values():
        if str(pay.get("TxnDate", "")) <= limit:
            add(ref(pay.get("CustomerRef")), pay.get("TxnDate"), -dec(pay.get("UnappliedAmt")))
    for p in ledger.ledger_of(company).all():
        if p.entity == "JournalEntry" and p.party and p.party[0] == "Customer" \
                and p.day <= limit and _receivable(company, p.account):
            add(p.party[1], p.day, p.amount)
    return items


def _receivable(company: Company, account_id: str) -> bool:
    """Whether a posting's account is an A/R account: a journal line to another account may
    name a customer too, and moves no receivable."""
    return (company.get("Account", account_id) or {}).get("AccountType") == \
        "Accounts Receivable"


def _customer_name(company: Company, customer_id: str) -> str:
    customer = company.get("Customer", customer_id) or {}
    return str(customer.get("FullyQualifiedName") or customer.get("DisplayName") or
               customer_id)


def _aged_receivables(ctx: _Context) -> Obj:
    company, as_of = ctx.company, ctx.as_of
    buckets: dict[str, list[Decimal]] = {}
    for customer, day, amount in open_items(company, as_of):
        late = (as_of - day).days
        index = 0 if late <= 0 else min((late - 1) // 30 + 1, 4)
        row = buckets.setdefault(customer, [ZERO] * 5)
        row[index] += amount
    rows, totals = [], [ZERO] * 6
    for customer in sorted(buckets, key=lambda c: _customer_name(company, c).lower()):
        values = [*buckets[customer], sum(buckets[customer], ZERO)]
        if not any(values):
            continue
        rows.append(_data(_customer_name(company, customer), values, customer))
        totals = [t + v for t, v in zip(totals, values, strict=True)]
    rows.append({"Summary": _summary("TOTAL", totals), "type": "Section", "group":
                 "GrandTotal"})
    return {"Header": ctx.header("AgedReceivables", None, as_of,
                                 ReportDate=as_of.isoformat()),
            "Columns": {"Column": [{"ColTitle": "", "ColType": "Customer"},
                                   *({"ColTitle": t, "ColType": "Money"}
                                     for t in (*AGING, "Total"))]},
            "Rows": {"Row": rows}}


def _customer_balance(ctx: _Context) -> Obj:
    company, as_of = ctx.company, ctx.as_of
    limit = as_of.isoformat()
    balances: dict[str, Decimal] = {}
    for p in ctx.postings:
        if p.party and p.party[0] == "Customer" and p.day <= limit and (
                p.entity != "JournalEntry" or _receivable(company, p.account)):
            balances[p.party[1]] = balances.get(p.party[1], ZERO) + p.amount
    rows, total = [], ZERO
    for customer in sorted(balances, key=lambda c: _customer_name(company, c).lower()):
        if balances[customer]:
            rows.append(_data(_customer_name(company, customer), [balances[customer]],
                              customer))
            total += balances[customer]
    rows.append({"Summary": _summary("TOTAL", [total]), "type": "Section",
                 "group": "GrandTotal"})
    return {"Header": ctx.header("CustomerBalance", None, as_of,
                                 ReportDate=as_of.isoformat()),
            "Columns": {"Column": [{"ColTitle": "", "ColType": "Customer"},
                                   {"ColTitle": "Total", "ColType": "Money"}]},
            "Rows": {"Row": rows}}


# ---------------------------------------------------------------------------------------------
# General Ledger

GL_COLUMNS = (("Date", "tx_date"), ("Transaction Type", "txn_type"), ("Num", "doc_num"),
              ("Name", "name"), ("Memo/Description", "memo"), ("Split", "split_acc"),
              ("Amount", "subt_nat_amount"), ("Balance", "rbal_nat_amount"))


def _general_ledger(ctx: _Context) -> Obj:
    company = ctx.company
    low, high = ctx.start.isoformat(), ctx.end.isoformat()
    by_account: dict[str, list[Posting]] = {}
    opening: dict[str, Decimal] = {}
    for p in ctx.postings:
        if p.day < low:
            opening[p.account] = opening.get(p.account, ZERO) + p.amount
        elif p.day <= high:
            by_account.setdefault(p.account, []).append(p)
    groups: dict[tuple[str, str], list[Posting]] = {}
    for p in ctx.postings:
        groups.setdefault((p.entity, p.txn_id), []).append(p)
    sections = []
    for account in sorted(set(by_account) | {a for a, v in opening.items() if v},
                          key=lambda a: account_name(company, a).lower()):
        name = account_name(company, account)
        balance_sheet = account_class(company, account) in ledger.BALANCE_SHEET
        running = _natural(company, account, opening.get(account, ZERO)) \
            if balance_sheet else ZERO
        rows: list[Obj] = []
        if balance_sheet:
            rows.append({"ColData": [{"value": ctx.start.isoformat()},
                                     {"value": "Beginning Balance"}, *({"value": ""}
                                                                       for _ in range(4)),
                                     {"value": ""}, {"value": _money(running)}],
                         "type": "Data"})
        total = ZERO
        for p in sorted(by_account.get(account, []), key=lambda x: (x.day, x.entity,
                                                                    int(x.txn_id))):
            amount = _natural(company, account, p.amount)
            running += amount
            total += amount
            txn = company.get(p.entity, p.txn_id) or {}
            others = {q.account for q in groups[(p.entity, p.txn_id)] if q.account != account}
            split = account_name(company, next(iter(others))) if len(others) == 1 else \
                "-Split-"
            party = txn.get("CustomerRef") or txn.get("VendorRef") or txn.get("EntityRef") or {}
            rows.append({"ColData": [
                {"value": p.day}, {"value": TXN_TYPES.get(p.entity, p.entity),
                                   "id": p.txn_id},
                {"value": str(txn.get("DocNumber", ""))},
                {"value": str(party.get("name", "")), "id": str(party.get("value", ""))},
                {"value": str(txn.get("PrivateNote", ""))[:100]}, {"value": split},
                {"value": _money(amount)}, {"value": _money(running)}], "type": "Data"})
        summary = {"ColData": [{"value": f"Total for {name}"}, *({"value": ""}
                                                                 for _ in range(5)),
                               {"value": _money(total)}, {"value": ""}]}
        sections.append({"Header": {"ColData": [{"value": name, "id": account},
                                                *({"value": ""} for _ in range(7))]},
                         "Rows": {"Row": rows}, "Summary": summary, "type": "Section"})
    return {"Header": ctx.header("GeneralLedger", ctx.start, ctx.end),
            "Columns": {"Column": [{"ColTitle": title, "ColType": key,
                                    "MetaData": [{"Name": "ColKey", "Value": key}]}
                                   for title, key in GL_COLUMNS]},
            "Rows": {"Row": sections}}
