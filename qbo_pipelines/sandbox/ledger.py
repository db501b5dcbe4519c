"""Double-entry postings of a company's transactions (accrual basis) and the balances QBO
derives from them: ``Account.CurrentBalance``, ``Customer.Balance``/``BalanceWithJobs`` and
``Vendor.Balance`` (QBO_API.md §11.1, §11.2, §11.9).

Each posting transaction (invoice, payment, bill, journal entry, ...) is turned into postings
(account, signed amount: debit positive) when it is stored and its previous postings are taken
back, so balances move with creates, updates, voids (zero amounts post nothing) and deletes.
Balances are written into the stored objects without a new SyncToken or LastUpdatedTime: QBO
does not version a customer or an account because a transaction moved its balance.

The postings map lives next to the company (not persisted): it is rebuilt from the stored
transactions the first time it is needed after a start or a state load.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from qbo_pipelines.sandbox.state import Company, Obj

CENT = Decimal("0.01")
ZERO = Decimal(0)
SALES = {"Invoice": 1, "SalesReceipt": 1, "CreditMemo": -1, "RefundReceipt": -1}
POSTING = ("Invoice", "SalesReceipt", "CreditMemo", "RefundReceipt", "Payment", "Bill",
           "VendorCredit", "Purchase", "BillPayment", "Deposit", "Transfer", "JournalEntry")
BALANCE_SHEET = ("Asset", "Liability", "Equity")
DEBIT_NORMAL = ("Asset", "Expense")
# Accounts the ledger needs when a transaction does not name one: AccountSubType, AccountType.
SYSTEM = {
    "AR": ("AccountsReceivable", "Accounts Receivable"),
    "AP": ("AccountsPayable", "Accounts Payable"),
    "UF": ("UndepositedFunds", "Other Current Asset"),
    "TAX": ("SalesTaxPayable", "Other Current Liability"),
    "INCOME": ("", "Income"),
    "EXPENSE": ("", "Expense"),
    "EQUITY": ("OpeningBalanceEquity", "Equity"),
}
SYSTEM_NAMES = {"~AR": "Accounts Receivable (A/R)", "~AP": "Accounts Payable (A/P)",
                "~UF": "Undeposited Funds", "~TAX": "Sales Tax Payable",
                "~INCOME": "Uncategorized Income", "~EXPENSE": "Uncategorized Expense",
                "~EQUITY": "Opening Balance Equity"}
SYSTEM_TYPES = {"~AR": "Accounts Receivable", "~AP": "Accounts Payable",
                "~UF": "Other Current Asset", "~TAX": "Other Current Liability",
                "~INCOME": "Income", "~EXPENSE": "Expense", "~EQUITY": "Equity"}


@dataclass(frozen=True)
class Posting:
    account: str
    amount: Decimal  # debit positive, credit negative
    day: str
    entity: str
    txn_id: str
    party: tuple[str, str] | None = None  # ("Customer", id) on A/R, ("Vendor", id) on A/P


@dataclass
class Ledger:
    postings: dict[tuple[str, str], list[Posting]] = field(default_factory=dict)
    accounts: dict[str, Decimal] = field(default_factory=dict)
    parties: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    # Sub-customers (jobs) by parent, kept as customers are written: a posting write moves
    # its customer's parents' BalanceWithJobs without scanning every customer.
    jobs: dict[str, set[str]] = field(default_factory=dict)
    parent: dict[str, str] = field(default_factory=dict)

    def place(self, customer_id: str, parent_id: str | None) -> None:
        """Record ``customer_id``'s parent (None: a top-level customer, or deleted)."""
        old = self.parent.pop(customer_id, None)
        if old is not None:
            self.jobs.get(old, set()).discard(customer_id)
        if parent_id:
            self.parent[customer_id] = parent_id
            self.jobs.setdefault(parent_id, set()).add(customer_id)

    def apply(self, postings: Iterable[Posting], sign: int) -> None:
        for p in postings:
            self.accounts[p.account] = self.accounts.get(p.account, ZERO) + sign * p.amount
            if p.party is not None:
                self.parties[p.party] = self.parties.get(p.party, ZERO) + sign * p.amount

    def all(self) -> list[Posting]:
        return [p for group in self.postings.values() for p in group]


def dec(value: Any) -> Decimal:
    try:
        return Decimal(str(value if value not in (None, "") else 0)).quantize(CENT)
    except InvalidOperation:
        return ZERO


def ref(value: Any) -> str | None:
    if isinstance(value, dict) and value.get("value") not in (None, ""):
        return str(value["value"])
    return None


def account_class(company: Company, account_id: str) -> str:
    account = company.get("Account", account_id)
    account_type = str(account.get("AccountType")) if account else SYSTEM_TYPES.get(
        account_id, "Expense")
    from qbo_pipelines.sandbox.entities import ACCOUNT_CLASSES
    return ACCOUNT_CLASSES.get(account_type, "Expense")


def account_type(company: Company, account_id: str) -> str:
    account = company.get("Account", account_id)
    return str(account.get("AccountType")) if account else SYSTEM_TYPES.get(account_id, "")


def account_name(company: Company, account_id: str) -> str:
    account = company.get("Account", account_id)
    if account is None:
        return SYSTEM_NAMES.get(account_id, account_id)
    return str(account.get("FullyQualifiedName") or account.get("Name"))


def system_account(company: Company, key: str) -> str:
    sub_type, acct_type = SYSTEM[key]
    fallback = None
    for account in company.table("Account").values():
        if account.get("Active", True) is False:
            continue
        if sub_type and account.get("AccountSubType") == sub_type:
            return str(account["Id"])
        if fallback is None and account.get("AccountType") == acct_type and (
                not sub_type or key in ("AR", "AP")):
            fallback = str(account["Id"])
    return fallback or f"~{key}"


def _lines(obj: Obj) -> list[Obj]:
    return [ln for ln in obj.get("Line", []) if isinstance(ln, dict)]


def postings_for(company: Company, entity: str, obj: Obj) -> list[Posting]:
    """The postings of one transaction as it stands (a voided one posts nothing)."""
    day = str(obj.get("TxnDate", ""))[:10]
    txn_id = str(obj["Id"])
    raw: list[tuple[str, Decimal, tuple[str, str] | None]] = []
    if entity in SALES:
        raw = _sales(company, entity, obj)
    elif entity == "Payment":
        total = dec(obj.get("TotalAmt"))
        customer = ref(obj.get("CustomerRef"))
        raw = [(ref(obj.get("DepositToAccountRef")) or system_account(company, "UF"), total,
                None),
               (ref(obj.get("ARAccountRef")) or system_account(company, "AR"), -total,
                ("Customer", customer) if customer else None)]
    elif entity in ("Bill", "VendorCredit"):
        sign = 1 if entity == "Bill" else -1
        raw = [(a, sign * amt, None) for a, amt in _expense_lines(company, obj)]
        vendor = ref(obj.get("VendorRef"))
        raw.append((ref(obj.get("APAccountRef")) or system_account(company, "AP"),
                    -sum((r[1] for r in raw), ZERO), ("Vendor", vendor) if vendor else None))
    elif entity == "Purchase":
        sign = -1 if obj.get("Credit") in (True, "true") else 1
        raw = [(a, sign * amt, None) for a, amt in _expense_lines(company, obj)]
        raw.append((ref(obj.get("AccountRef")) or system_account(company, "EXPENSE"),
                    -sum((r[1] for r in raw), ZERO), None))
    elif entity == "BillPayment":
        total = dec(obj.get("TotalAmt"))
        vendor = ref(obj.get("VendorRef"))
        source = ref((obj.get("CheckPayment") or {}).get("BankAccountRef")) or ref(
            (obj.get("CreditCardPayment") or {}).get("CCAccountRef")) or system_account(
            company, "EXPENSE")
        raw = [(ref(obj.get("APAccountRef")) or system_account(company, "AP"), total,
                ("Vendor", vendor) if vendor else None), (source, -total, None)]
    elif entity == "Deposit":
        raw = _deposit(company, obj)
    elif entity == "Transfer":
        amount = dec(obj.get("Amount"))
        raw = [(ref(obj.get("ToAccountRef")) or "~UF", amount, None),
               (ref(obj.get("FromAccountRef")) or "~UF", -amount, None)]
    elif entity == "JournalEntry":
        raw = _journal(obj)
    return [Posting(a, amt, day, entity, txn_id, party) for a, amt, party in raw if amt]


def _sales(company: Company, entity: str, obj: Obj) -> list[tuple[str, Decimal,
                                                               tuple[str, str] | None]]:
    sign = SALES[entity]
    out: list[tuple[str, Decimal, tuple[str, str] | None]] = []
    default_income = system_account(company, "INCOME")
    for line in _lines(obj):
        kind = line.get("DetailType")
        amount = dec(line.get("Amount"))
        if kind == "SalesItemLineDetail":
            item = company.get("Item", ref((line.get(kind) or {}).get("ItemRef")) or "")
            income = ref((item or {}).get("IncomeAccountRef")) or default_income
            out.append((income, -sign * amount, None))
        elif kind == "DiscountLineDetail":
            account = ref((line.get(kind) or {}).get("DiscountAccountRef")) or default_income
            out.append((account, sign * amount, None))
    tax = dec((obj.get("TxnTaxDetail") or {}).get("TotalTax"))
    if tax:
        out.append((system_account(company, "TAX"), -sign * tax, None))
    balance = -sum((r[1] for r in out), ZERO)
    if entity in ("Invoice", "CreditMemo"):
        customer = ref(obj.get("CustomerRef"))
        out.append((system_account(company, "AR"), balance,
                    ("Customer", customer) if customer else None))
    else:
        out.append((ref(obj.get("DepositToAccountRef")) or system_account(company, "UF"),
                    balance, None))
    return out


def _expense_lines(company: Company, obj: Obj) -> list[tuple[str, Decimal]]:
    out = []
    for line in _lines(obj):
        kind = line.get("DetailType")
        detail = line.get(kind) if isinstance(kind, str) else None
        if not isinstance(detail, dict):
            continue
        account = ref(detail.get("AccountRef"))
        if account is None and ref(detail.get("ItemRef")):
            item = company.get("Item", ref(detail.get("ItemRef")) or "") or {}
            account = ref(item.get("ExpenseAccountRef")) or ref(item.get("AssetAccountRef"))
        out.append((account or system_account(company, "EXPENSE"), dec(line.get("Amount"))))
    return out


def _deposit(company: Company, obj: Obj) -> list[tuple[str, Decimal,
                                                   tuple[str, str] | None]]:
    out: list[tuple[str, Decimal, tuple[str, str] | None]] = []
    for line in _lines(obj):
        amount = dec(line.get("Amount"))
        account = None
        for link in line.get("LinkedTxn", []) or []:
            source = company.get(str(link.get("TxnType")), str(link.get("TxnId")))
            if source is not None:
                account = ref(source.get("DepositToAccountRef"))
        if account is None:
            account = ref((line.get("DepositLineDetail") or {}).get("AccountRef"))
        out.append((account or system_account(company, "UF"), -amount, None))
    cash_back = obj.get("CashBack") or {}
    if dec(cash_back.get("Amount")):
        out.append((ref(cash_back.get("AccountRef")) or system_account(company, "UF"),
                    dec(cash_back.get("Amount")), None))
    out.append((ref(obj.get("DepositToAccountRef")) or system_account(company, "UF"),
                -sum((r[1] for r in out), ZERO), None))
    return out


def _journal(obj: Obj) -> list[tuple[str, Decimal, tuple[str, str] | None]]:
    out: list[tuple[str, Decimal, tuple[str, str] | None]] = []
    for line in _lines(obj):
        detail = line.get("JournalEntryLineDetail")
        if not isinstance(detail, dict):
            continue
        amount = dec(line.get("Amount"))
        if detail.get("PostingType") == "Credit":
            amount = -amount
        entity = detail.get("Entity") or {}
        party_id = ref(entity.get("EntityRef"))
        party = (str(entity.get("Type")), party_id) if party_id and entity.get("Type") else None
        out.append((ref(detail.get("AccountRef")) or "~EQUITY", amount, party))
    return out


# ---------------------------------------------------------------------------------------------
# The company's ledger and the balances written back into objects


def ledger_of(company: Company) -> Ledger:
    ledger = company.__dict__.get("_ledger")
    if isinstance(ledger, Ledger):
        return ledger
    ledger = Ledger()
    for entity in POSTING:
        for obj in company.entities.get(entity, {}).values():
            group = postings_for(company, entity, obj)
            if group:
                ledger.postings[(entity, str(obj["Id"]))] = group
                ledger.apply(group, 1)
    for cid, customer in company.table("Customer").items():
        ledger.place(cid, ref(customer.get("ParentRef")))
    company.__dict__["_ledger"] = ledger
    _write_accounts(company, ledger, set(company.table("Account")))
    parties = {("Customer", i) for i in company.table("Customer")} | {
        ("Vendor", i) for i in company.table("Vendor")}
    _write_parties(company, ledger, parties)
    return ledger


def forget(company: Company) -> None:
    """Drop the postings map (after a state load): it is rebuilt on next use."""
    company.__dict__.pop("_ledger", None)


def on_change(company: Company, entity: str, obj_id: str) -> None:
    """Re-post one transaction (after create/update/void/delete) and move the balances; keep
    the index of sub-customers as customers are written."""
    kept = company.__dict__.get("_ledger")
    if entity == "Customer" and isinstance(kept, Ledger):
        before = kept.parent.get(obj_id)
        kept.place(obj_id, ref((company.get(entity, obj_id) or {}).get("ParentRef")))
        if before != kept.parent.get(obj_id):  # a job moved: both parents' jobs balances move
            moved = {("Customer", obj_id)} | ({("Customer", before)} if before else set())
            _write_parties(company, kept, moved)
    if entity not in POSTING:
        return
    fresh = "_ledger" not in company.__dict__
    ledger = ledger_of(company)
    if fresh:
        return  # the rebuild already saw the stored state
    key = (entity, obj_id)
    old = ledger.postings.pop(key, [])
    obj = company.get(entity, obj_id)
    new = postings_for(company, entity, obj) if obj is not None else []
    if new:
        ledger.postings[key] = new
    if old == new:
        return
    ledger.apply(old, -1)
    ledger.apply(new, 1)
    _write_accounts(company, ledger, {p.account for p in (*old, *new)})
    _write_parties(company, ledger, {p.party for p in (*old, *new) if p.party is not None})


def _write_accounts(company: Company, ledger: Ledger, account_ids: set[str]) -> None:
    table = company.table("Account")
    for account_id in account_ids:
        account = table.get(account_id)
        if account is None:
            continue
        klass = account_class(company, account_id)
        if klass not in BALANCE_SHEET:
            balance = ZERO  # QBO: CurrentBalance is valid for balance sheet accounts only
        else:
            raw = ledger.accounts.get(account_id, ZERO)
            balance = raw if klass in DEBIT_NORMAL else -raw
        value = float(balance)
        if account.get("CurrentBalance") != value or account.get(
                "CurrentBalanceWithSubAccounts") != value:
            table[account_id] = {**account, "CurrentBalance": value,
                                 "CurrentBalanceWithSubAccounts": value}


def _write_parties(company: Company, ledger: Ledger,
                   parties: set[tuple[str, str]]) -> None:
    customers: set[str] = set()
    for kind, party_id in parties:
        if kind == "Customer":
            customers.add(party_id)
        elif kind == "Vendor":
            vendors = company.table("Vendor")
            vendor = vendors.get(party_id)
            if vendor is not None:
                value = float(-ledger.parties.get(("Vendor", party_id), ZERO))
                if vendor.get("Balance") != value:
                    vendors[party_id] = {**vendor, "Balance": value}
    table = company.table("Customer")
    todo = set(customers)
    for customer_id in customers:  # a job's balance also moves its parents' BalanceWithJobs
        parent = ledger.parent.get(customer_id)
        seen = 0
        while parent and seen < 6:
            todo.add(parent)
            parent = ledger.parent.get(parent)
            seen += 1

    def with_jobs(cid: str, depth: int = 0) -> Decimal:
        own = ledger.parties.get(("Customer", cid), ZERO)
        if depth > 6:
            return own
        return own + sum((with_jobs(k, depth + 1) for k in ledger.jobs.get(cid, ())), ZERO)

    for customer_id in todo:
        customer = table.get(customer_id)
        if customer is None:
            continue
        balance = float(ledger.parties.get(("Customer", customer_id), ZERO))
        jobs = float(with_jobs(customer_id))
        if customer.get("Balance") != balance or customer.get("BalanceWithJobs") != jobs:
            table[customer_id] = {**customer, "Balance": balance, "BalanceWithJobs": jobs}
