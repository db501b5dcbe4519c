"""Write rules of the entities added in round two: Class, Department, RefundReceipt,
VendorCredit, PurchaseOrder, Purchase, BillPayment, JournalEntry, Deposit, Transfer,
TimeActivity and Attachable (QBO_API.md §5, §11).

Each preparer gets the cleaned body (read-only fields dropped) and the stored object it
replaces (``None`` on create) and returns the object to store; ``entities.Books`` stamps it.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from qbo_pipelines.sandbox import errors
from qbo_pipelines.sandbox.entities import (
    ACCOUNT_CLASSES,
    USD,
    Books,
    _apply_lines,
    _bill_line,
    _doc_number,
    _require_name,
    _sales_form,
    _txn_date,
    as_json_number,
    deposit_holding,
    money,
    ref_value,
)
from qbo_pipelines.sandbox.specs import SPECS
from qbo_pipelines.sandbox.state import Obj

Preparer = Callable[[Books, Obj, "Obj | None"], Obj]


def _category(entity: str, sub_key: str) -> Preparer:
    """Class and Department: a name list with optional parents (``Parent:Child`` names)."""

    def prepare(books: Books, data: Obj, existing: Obj | None) -> Obj:
        _require_name(data)
        name = str(data["Name"])
        if data.get("ParentRef"):
            parent = books.resolve(entity, data["ParentRef"], "ParentRef")
            if existing is not None and parent["Id"] == existing["Id"]:
                raise errors.QboFault("900", "Object can't be its own parent",
                                      f"{entity} {name} cannot be its own parent",
                                      "ParentRef")
            data["ParentRef"] = {"value": parent["Id"],
                                 "name": parent.get("FullyQualifiedName", parent["Name"])}
            data[sub_key] = True
            data["FullyQualifiedName"] = f"{parent.get('FullyQualifiedName', parent['Name'])}:" \
                                         f"{name}"
        else:
            data[sub_key] = False
            data["FullyQualifiedName"] = name
        return data

    return prepare


def _expense_form(books: Books, data: Obj, existing: Obj | None, entity: str) -> Obj:
    """Vendor-side forms: VendorRef (when named), expense lines, TotalAmt, TxnDate."""
    if "VendorRef" in data:
        books.resolve("Vendor", data["VendorRef"], "VendorRef")
        data["VendorRef"] = books.named_ref("Vendor", data["VendorRef"], "VendorRef")
    raw = data.get("Line", [])
    if not raw:
        raise errors.required("Line")
    total = Decimal(0)
    lines = []
    for n, line in enumerate(raw, 1):
        lines.append(_bill_line(books, line, n))
        total += money(line.get("Amount", 0), "Line.Amount")
    data["Line"] = lines
    data["TotalAmt"] = as_json_number(total)
    _txn_date(books, data)
    data.setdefault("CurrencyRef", USD)
    for key in ("DepartmentRef",):
        if key in data:
            data[key] = books.named_ref("Department", data[key], key)
    return data


def _ap_account(books: Books, data: Obj) -> None:
    if "APAccountRef" in data:
        data["APAccountRef"] = books.named_ref("Account", data["APAccountRef"], "APAccountRef")
    else:
        payable = books.find_account("AccountsPayable")
        if payable is not None:
            data["APAccountRef"] = {"value": payable["Id"], "name": payable["Name"]}


def _refund_receipt(books: Books, data: Obj, existing: Obj | None) -> Obj:
    if "DepositToAccountRef" not in data:
        raise errors.required("DepositToAccountRef")
    data = _sales_form(books, data, existing, "RefundReceipt")
    data["Balance"] = 0.0
    return data


def _vendor_credit(books: Books, data: Obj, existing: Obj | None) -> Obj:
    if "VendorRef" not in data:
        raise errors.required("VendorRef")
    data = _expense_form(books, data, existing, "VendorCredit")
    _ap_account(books, data)
    data["LinkedTxn"] = existing.get("LinkedTxn", []) if existing else []
    used = sum(books._applied("VendorCredit", existing["Id"]).values(), Decimal(0)) \
        if existing else Decimal(0)
    total = money(data["TotalAmt"], "TotalAmt")
    if used > total:
        raise errors.business("The vendor credit total cannot be less than the credit "
                              "applied from it.")
    data["Balance"] = as_json_number(total - used)
    return data


def _purchase_order(books: Books, data: Obj, existing: Obj | None) -> Obj:
    if "VendorRef" not in data:
        raise errors.required("VendorRef")
    data = _expense_form(books, data, existing, "PurchaseOrder")
    _ap_account(books, data)
    data.setdefault("POStatus", "Open")
    data.setdefault("EmailStatus", "NotSet")
    data.setdefault("PrintStatus", "NotSet")
    _doc_number(books, "PurchaseOrder", data)
    return data


PAYMENT_ACCOUNTS = {"CreditCard": ("Credit Card",),
                    "Check": ("Bank",), "Cash": ("Bank", "Other Current Asset")}


def _purchase(books: Books, data: Obj, existing: Obj | None) -> Obj:
    for key in ("AccountRef", "PaymentType"):
        if key not in data:
            raise errors.required(key)
    account = books.resolve("Account", data["AccountRef"], "AccountRef")
    allowed = PAYMENT_ACCOUNTS.get(str(data["PaymentType"]), ())
    if account.get("AccountType") not in allowed:
        raise errors.business(
            f"Invalid account type: a {data['PaymentType']} purchase is paid from a "
            f"{' or '.join(allowed)} account.", code="6430", element="AccountRef")
    data["AccountRef"] = books.named_ref("Account", data["AccountRef"], "AccountRef")
    if data.get("EntityRef"):
        kind = str(data["EntityRef"].get("type") or "Vendor")
        if kind not in ("Vendor", "Customer", "Employee"):
            raise errors.QboFault("2170", "Invalid Enumeration",
                                  f"Invalid Enumeration : {kind}", "EntityRef.type")
        named = books.named_ref(kind, data["EntityRef"], "EntityRef")
        data["EntityRef"] = {**named, "type": kind}
    if "PaymentMethodRef" in data:
        data["PaymentMethodRef"] = books.named_ref("PaymentMethod", data["PaymentMethodRef"],
                                                   "PaymentMethodRef")
    data = _expense_form(books, data, existing, "Purchase")
    data.setdefault("Credit", False)
    if data["PaymentType"] == "Check":
        data.setdefault("PrintStatus", "NotSet")
    return data


def _bill_payment(books: Books, data: Obj, existing: Obj | None) -> Obj:
    for key in ("VendorRef", "PayType", "TotalAmt"):
        if key not in data:
            raise errors.required(key)
    data["VendorRef"] = books.named_ref("Vendor", data["VendorRef"], "VendorRef")
    if data["PayType"] == "Check":
        check = dict(data.get("CheckPayment") or {})
        if "BankAccountRef" not in check:
            raise errors.required("CheckPayment.BankAccountRef", "CheckPayment.BankAccountRef")
        _account_of_type(books, check["BankAccountRef"], ("Bank",),
                         "CheckPayment.BankAccountRef")
        check["BankAccountRef"] = books.named_ref("Account", check["BankAccountRef"],
                                                  "CheckPayment.BankAccountRef")
        check.setdefault("PrintStatus", "NotSet")
        data["CheckPayment"] = check
        data.pop("CreditCardPayment", None)
    else:
        card = dict(data.get("CreditCardPayment") or {})
        if "CCAccountRef" not in card:
            raise errors.required("CreditCardPayment.CCAccountRef",
                                  "CreditCardPayment.CCAccountRef")
        _account_of_type(books, card["CCAccountRef"], ("Credit Card",),
                         "CreditCardPayment.CCAccountRef")
        card["CCAccountRef"] = books.named_ref("Account", card["CCAccountRef"],
                                               "CreditCardPayment.CCAccountRef")
        data["CreditCardPayment"] = card
        data.pop("CheckPayment", None)
    total = money(data["TotalAmt"], "TotalAmt")
    lines, applied = _apply_lines(books, "BillPayment", data, existing, "VendorRef")
    if applied > total:
        raise errors.business("The amount applied to bills is more than the bill payment "
                              "total (TotalAmt).", element="Line.Amount")
    data["Line"] = lines
    data["TotalAmt"] = as_json_number(total)
    _ap_account(books, data)
    _txn_date(books, data)
    data.setdefault("CurrencyRef", USD)
    return data


def _account_of_type(books: Books, ref: object, types: tuple[str, ...], element: str) -> Obj:
    account = books.resolve("Account", ref, element)
    if account.get("AccountType") not in types:
        raise errors.business(f"Invalid account type for {element}: a {' or '.join(types)} "
                              "account is required.", code="6430", element=element)
    return account


def _journal_entry(books: Books, data: Obj, existing: Obj | None) -> Obj:
    raw = data.get("Line", [])
    if not raw:
        raise errors.required("Line")
    debits = credits = Decimal(0)
    lines = []
    for n, line in enumerate(raw, 1):
        out = {**line, "Id": str(line.get("Id") or n), "LineNum": n}
        if line.get("DetailType") == "DescriptionOnly":
            out.pop("Amount", None)
            lines.append(out)
            continue
        element = "Line.JournalEntryLineDetail"
        detail = dict(line.get("JournalEntryLineDetail") or {})
        for key in ("PostingType", "AccountRef"):
            if key not in detail:
                raise errors.required(f"{element}.{key}", f"{element}.{key}")
        if "Amount" not in line:
            raise errors.required("Line.Amount", "Line.Amount")
        amount = money(line["Amount"], "Line.Amount")
        account = books.resolve("Account", detail["AccountRef"], f"{element}.AccountRef")
        detail["AccountRef"] = books.named_ref("Account", detail["AccountRef"],
                                               f"{element}.AccountRef")
        party = _journal_party(books, detail, element)
        kind = account.get("AccountType")
        if kind == "Accounts Receivable" and party != "Customer":
            raise errors.business("When you use Accounts Receivable, you must choose a "
                                  "customer in the Name field.", element=f"{element}.Entity")
        if kind == "Accounts Payable" and party != "Vendor":
            raise errors.business("When you use Accounts Payable, you must select a vendor "
                                  "in the Name field.", element=f"{element}.Entity")
        for key, entity in (("ClassRef", "Class"), ("DepartmentRef", "Department")):
            if key in detail:
                detail[key] = books.named_ref(entity, detail[key], f"{element}.{key}")
        if detail["PostingType"] == "Debit":
            debits += amount
        else:
            credits += amount
        out["Amount"] = as_json_number(amount)
        out["DetailType"] = "JournalEntryLineDetail"
        out["JournalEntryLineDetail"] = detail
        lines.append(out)
    if debits != credits:
        # Code 2300 per QBO_API.md §7.3; the message text is not quoted there.
        raise errors.QboFault("2300", "Transaction Not Balanced",
                              f"Transaction Not Balanced : debits {debits} do not equal "
                              f"credits {credits}", "Line")
    data["Line"] = lines
    data["TotalAmt"] = as_json_number(debits)
    data.setdefault("Adjustment", False)
    data.setdefault("CurrencyRef", USD)
    _txn_date(books, data)
    return data


def _journal_party(books: Books, detail: Obj, element: str) -> str | None:
    entity = detail.get("Entity")
    if not entity:
        return None
    kind = str(entity.get("Type") or "")
    if kind not in ("Customer", "Vendor", "Employee"):
        raise errors.required(f"{element}.Entity.Type", f"{element}.Entity.Type")
    named = books.named_ref(kind, entity.get("EntityRef"), f"{element}.Entity.EntityRef")
    detail["Entity"] = {"Type": kind, "EntityRef": named}
    return kind


DEPOSITABLE = ("Payment", "SalesReceipt")


def _deposit(books: Books, data: Obj, existing: Obj | None) -> Obj:
    if "DepositToAccountRef" not in data:
        raise errors.required("DepositToAccountRef")
    _account_of_type(books, data["DepositToAccountRef"], ("Bank", "Other Current Asset"),
                     "DepositToAccountRef")
    data["DepositToAccountRef"] = books.named_ref("Account", data["DepositToAccountRef"],
                                                  "DepositToAccountRef")
    raw = data.get("Line", [])
    if not raw:
        raise errors.required("Line")
    total = Decimal(0)
    lines = []
    seen: set[tuple[str, str]] = set()
    for n, line in enumerate(raw, 1):
        if "Amount" not in line:
            raise errors.required("Line.Amount", "Line.Amount")
        amount = money(line["Amount"], "Line.Amount")
        out = {**line, "Id": str(line.get("Id") or n), "LineNum": n,
               "Amount": as_json_number(amount)}
        links = line.get("LinkedTxn") or []
        if links:
            for link in links:
                _deposit_link(books, link, amount, existing, seen)
        else:
            detail = dict(line.get("DepositLineDetail") or {})
            if "AccountRef" not in detail:
                raise errors.required("Line.DepositLineDetail.AccountRef",
                                      "Line.DepositLineDetail.AccountRef")
            detail["AccountRef"] = books.named_ref("Account", detail["AccountRef"],
                                                   "Line.DepositLineDetail.AccountRef")
            if detail.get("Entity"):
                kind = str(detail["Entity"].get("type") or "Customer")
                detail["Entity"] = {**books.named_ref(kind, detail["Entity"],
                                                      "Line.DepositLineDetail.Entity"),
                                    "type": kind}
            out["DetailType"] = "DepositLineDetail"
            out["DepositLineDetail"] = detail
        total += amount
        lines.append(out)
    cash_back = data.get("CashBack")
    if cash_back:
        amount = money(cash_back.get("Amount", 0), "CashBack.Amount")
        if "AccountRef" not in cash_back:
            raise errors.required("CashBack.AccountRef", "CashBack.AccountRef")
        data["CashBack"] = {**cash_back, "Amount": as_json_number(amount),
                            "AccountRef": books.named_ref("Account", cash_back["AccountRef"],
                                                         "CashBack.AccountRef")}
        total -= amount
    data["Line"] = lines
    data["TotalAmt"] = as_json_number(total)
    data["HomeTotalAmt"] = data["TotalAmt"]
    data.setdefault("CurrencyRef", USD)
    _txn_date(books, data)
    return data


def _deposit_link(books: Books, link: Obj, amount: Decimal, existing: Obj | None,
                  seen: set[tuple[str, str]]) -> None:
    kind = str(link.get("TxnType"))
    if kind not in DEPOSITABLE:
        raise errors.QboFault("2500", errors.MSG_INVALID_REF,
                              f"Invalid Reference Id : a deposit links Payment or "
                              f"SalesReceipt transactions (TxnType={kind})",
                              "Line.LinkedTxn.TxnType")
    source = books.resolve(kind, {"value": link.get("TxnId")}, "Line.LinkedTxn.TxnId")
    key = (kind, str(source["Id"]))
    holder = deposit_holding(books.company, kind, source["Id"])
    if key in seen or (holder is not None and (existing is None or holder != existing["Id"])):
        raise errors.business(f"{kind} {source['Id']} has already been deposited.",
                              element="Line.LinkedTxn.TxnId")
    seen.add(key)
    funds = books.company.get("Account", ref_value(source.get("DepositToAccountRef")) or "")
    if (funds or {}).get("AccountSubType") != "UndepositedFunds":
        raise errors.business(f"{kind} {source['Id']} was not received into Undeposited "
                              "Funds, so it cannot be deposited.",
                              element="Line.LinkedTxn.TxnId")
    if amount != money(source.get("TotalAmt", 0), "TotalAmt"):
        raise errors.business(f"The deposit line amount {amount} must equal the total of "
                              f"{kind} {source['Id']}.", element="Line.Amount")


def _transfer(books: Books, data: Obj, existing: Obj | None) -> Obj:
    for key in ("FromAccountRef", "ToAccountRef", "Amount"):
        if key not in data:
            raise errors.required(key)
    source = books.resolve("Account", data["FromAccountRef"], "FromAccountRef")
    target = books.resolve("Account", data["ToAccountRef"], "ToAccountRef")
    if source["Id"] == target["Id"]:
        raise errors.business("You can't transfer money to the same account.",
                              element="ToAccountRef")
    for account, key in ((source, "FromAccountRef"), (target, "ToAccountRef")):
        if ACCOUNT_CLASSES.get(str(account.get("AccountType"))) not in (
                "Asset", "Liability", "Equity"):
            raise errors.business("Transfers move money between balance sheet accounts.",
                                  code="6430", element=key)
    amount = money(data["Amount"], "Amount")
    if amount <= 0:
        raise errors.business("The transfer amount must be greater than zero.",
                              element="Amount")
    data["FromAccountRef"] = books.named_ref("Account", data["FromAccountRef"],
                                             "FromAccountRef")
    data["ToAccountRef"] = books.named_ref("Account", data["ToAccountRef"], "ToAccountRef")
    data["Amount"] = as_json_number(amount)
    data.setdefault("CurrencyRef", USD)
    _txn_date(books, data)
    return data


def _time_activity(books: Books, data: Obj, existing: Obj | None) -> Obj:
    if "NameOf" not in data:
        raise errors.required("NameOf")
    who = "EmployeeRef" if data["NameOf"] == "Employee" else "VendorRef"
    if who not in data:
        raise errors.required(who)
    data[who] = books.named_ref(who[:-3], data[who], who)
    data.pop("VendorRef" if who == "EmployeeRef" else "EmployeeRef", None)
    for key, entity in (("CustomerRef", "Customer"), ("ItemRef", "Item"),
                        ("ClassRef", "Class"), ("DepartmentRef", "Department")):
        if key in data:
            data[key] = books.named_ref(entity, data[key], key)
    if not any(k in data for k in ("Hours", "Minutes", "StartTime")):
        raise errors.required("Hours")
    if "StartTime" in data and "EndTime" not in data:
        raise errors.required("EndTime")
    data.setdefault("BillableStatus", "NotBillable")
    data.setdefault("Taxable", False)
    _txn_date(books, data)
    return data


def _attachable(books: Books, data: Obj, existing: Obj | None) -> Obj:
    if not data.get("FileName") and not data.get("Note"):
        raise errors.required("Note")
    refs = []
    for entry in data.get("AttachableRef", []) or []:
        target = entry.get("EntityRef") or {}
        kind = str(target.get("type") or "")
        if kind not in SPECS:
            raise errors.QboFault("2500", errors.MSG_INVALID_REF,
                                  f"Invalid Reference Id : EntityRef type {kind!r}",
                                  "AttachableRef.EntityRef.type")
        books.resolve(kind, target, "AttachableRef.EntityRef", allow_inactive=True)
        refs.append({**entry, "EntityRef": {"type": kind, "value": str(target["value"])},
                     "IncludeOnSend": bool(entry.get("IncludeOnSend", False))})
    if refs:
        data["AttachableRef"] = refs
    if data.get("FileName"):
        data.setdefault("ContentType", "application/octet-stream")
        data.setdefault("Category", "Document")
    else:
        data.setdefault("Category", "Note")
    return data


PREPARERS: dict[str, Preparer] = {
    "Class": _category("Class", "SubClass"),
    "Department": _category("Department", "SubDepartment"),
    "RefundReceipt": _refund_receipt,
    "VendorCredit": _vendor_credit,
    "PurchaseOrder": _purchase_order,
    "Purchase": _purchase,
    "BillPayment": _bill_payment,
    "JournalEntry": _journal_entry,
    "Deposit": _deposit,
    "Transfer": _transfer,
    "TimeActivity": _time_activity,
    "Attachable": _attachable,
}
