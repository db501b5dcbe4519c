"""Pure transforms: canonical source records -> QBO request bodies (push direction).

Nothing here does I/O. Every function takes a canonical record and a :class:`PushContext` (a
snapshot of the id map and the company's mappings, loaded once per run) and returns either the
QBO body or the list of reasons it cannot be built (unresolvable references, missing mappings),
which the caller quarantines (R40, R12).

Rules implemented here: R5 (DisplayName), R6 (billing contact only on create), R10 (items: a
Service item with the default income account), R12/R13 (tax codes mapped, default code), R14
(tax and discount lines pushed; grouping not), R15 (currency never pushed), R19/R21 (payment
linked to its invoice, deposited per mapping), R23/R24 (bills with an expense account per concept).
"""

from __future__ import annotations

import decimal
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from qbo_pipelines.canonical import (
    CanonicalAddress,
    CanonicalBill,
    CanonicalCustomer,
    CanonicalItem,
    CanonicalReceipt,
    CanonicalSale,
    CanonicalSaleLine,
    CanonicalVendor,
    QboId,
    SourceId,
)
from qbo_pipelines.quality.rules import Violation, missing_mapping, unresolved_reference

Body = dict[str, Any]
CENT = Decimal("0.01")


@dataclass(frozen=True)
class PaymentMethodTarget:
    """Where a source payment method lands in QBO (R19, R21)."""

    payment_method_id: str | None
    deposit_account_id: str


@dataclass(frozen=True)
class PushContext:
    """Everything a transform may reference, resolved up front (no I/O during transforms).

    Attributes:
        qbo_ids: per entity, source id -> QBO Id of records already synced (the id map).
        tax_codes: source tax rate id -> QBO TaxCode Id (mapping, R12).
        tax_code_rates: QBO TaxCode Id -> (QBO TaxRate Id, percent) of its sales rate.
        tax_rate_names: source tax rate id -> its name (for reasons people can act on).
        default_tax_code: QBO TaxCode Id for lines with no rate (R13), if configured.
        payment_methods: source payment method id -> target (mapping, R19).
        payment_method_names: source payment method id -> name (for reasons).
        expense_accounts: worker-invoice concept -> QBO expense Account Id (R23, R24).
        default_income_account: Income account for items the sync creates (R10).
        item_names: source item id -> name (for reasons).
        deleted_in_qbo: per entity, source ids whose QBO record was deleted in QBO (the
            sync never brings those back: what refers to them needs a person).
        credit_memos: source sale id -> QBO CreditMemo Id of the sales pushed as credit notes
            (a negative total, R11): a receipt cannot pay one.
        awaiting_pull: per entity, source ids whose QBO record holds values the source does
            not have yet (a conflict QBO won): what copies their values waits for the pull.
        replan_all: a mapping the records use changed since they were synced: a record whose
            source content is unchanged is still built and compared with what QBO was sent.
    """

    qbo_ids: Mapping[str, Mapping[SourceId, QboId]] = field(default_factory=dict)
    tax_codes: Mapping[SourceId, str] = field(default_factory=dict)
    tax_code_rates: Mapping[str, tuple[str, Decimal]] = field(default_factory=dict)
    tax_rate_names: Mapping[SourceId, str] = field(default_factory=dict)
    default_tax_code: str | None = None
    payment_methods: Mapping[SourceId, PaymentMethodTarget] = field(default_factory=dict)
    payment_method_names: Mapping[SourceId, str] = field(default_factory=dict)
    expense_accounts: Mapping[str, str] = field(default_factory=dict)
    default_income_account: str | None = None
    item_names: Mapping[SourceId, str] = field(default_factory=dict)
    deleted_in_qbo: Mapping[str, frozenset[SourceId]] = field(default_factory=dict)
    awaiting_pull: Mapping[str, frozenset[SourceId]] = field(default_factory=dict)
    replan_all: bool = False
    credit_memos: Mapping[SourceId, QboId] = field(default_factory=dict)

    def qbo_id(self, entity: str, source_id: SourceId | None) -> QboId | None:
        if source_id is None:
            return None
        return self.qbo_ids.get(entity, {}).get(source_id)


@dataclass(frozen=True)
class Built:
    """A body ready to write."""

    body: Body


@dataclass(frozen=True)
class Blocked:
    """The record cannot be written yet; each violation says why and how to fix it."""

    violations: tuple[Violation, ...]


BuildResult = Built | Blocked


def money(value: Decimal) -> Decimal:
    """Round to cents, half-up (QBO keeps 2 dp for currency amounts).

    A value that cannot be rounded (NaN, Infinity, beyond Decimal's precision) is returned as
    it is: the quality rules hold its record (R40), so it is never written, and building the
    body must not crash the run first.
    """
    if not value.is_finite():
        return value
    try:
        return value.quantize(CENT)
    except decimal.InvalidOperation:
        return value


def _ref(value: str) -> dict[str, str]:
    return {"value": str(value)}


def _drop_none(body: Body) -> Body:
    return {k: v for k, v in body.items() if v is not None}


def not_in_qbo(entity: str, record: str, what: str) -> Violation:
    """A reference to a record that has not reached QBO yet (held until its push succeeds)."""
    return unresolved_reference(entity, what, record=record)


def missing_reference(
    ctx: PushContext, entity: str, kind: str, record: str, source_id: SourceId
) -> Violation:
    """A reference with no QBO record: not there yet (:func:`not_in_qbo`), or deleted in QBO,
    which no later run undoes (the sync never brings back what was deleted there)."""
    if source_id not in ctx.deleted_in_qbo.get(entity, frozenset()):
        return not_in_qbo(kind, record, source_id)
    return unresolved_reference(
        kind,
        source_id,
        record=record,
        why="was deleted in QBO, and the sync never brings back what was deleted there",
        fix=f"In the source app, link this record to another {kind} or delete it; to send the "
        f"{kind} again, enter it again in the source app as a new record.",
    )


def address(addr: CanonicalAddress | None) -> Body | None:
    """QBO ``PhysicalAddress`` (BillAddr) or None when empty."""
    if addr is None or addr.is_empty():
        return None
    return _drop_none(
        {
            "Line1": addr.line1,
            "Line2": addr.line2,
            "City": addr.city,
            "CountrySubDivisionCode": addr.region,
            "PostalCode": addr.postal_code,
            "Country": addr.country,
        }
    )


def _email(value: str | None) -> Body | None:
    return {"Address": value} if value else None


def _phone(value: str | None) -> Body | None:
    return {"FreeFormNumber": value} if value else None


def _split_name(full: str | None) -> tuple[str | None, str | None]:
    if not full or not full.strip():
        return None, None
    parts = full.strip().split(None, 1)
    return parts[0], (parts[1] if len(parts) > 1 else None)


# ------------------------------------------------------------------ customers and vendors


def customer_fields(c: CanonicalCustomer) -> Body:
    """The Customer fields the sync keeps in step (R7); billing contact excluded (R6)."""
    return _drop_none(
        {
            "DisplayName": c.display_name,
            "CompanyName": c.company_name,
            "GivenName": c.given_name,
            "FamilyName": c.family_name,
            "PrimaryEmailAddr": _email(c.email),
            "PrimaryPhone": _phone(c.phone),
            "BillAddr": address(c.bill_addr),
        }
    )


BILLING_CONTACT_FIELDS: Final = ("GivenName", "FamilyName", "PrimaryEmailAddr")
"""The Customer fields a create fills from the organisation's billing contact (R6)."""


def customer_create(c: CanonicalCustomer) -> Body:
    """Create body: the contact's fields, with the billing contact on top (R6: create only)
    when it is someone else (the contact's own name and email are kept as they are, never
    split again from the full name)."""
    body = customer_fields(c)
    own = " ".join(p.strip() for p in (c.given_name, c.family_name) if p and p.strip())
    given, family = _split_name(c.billing_name)
    if given and " ".join((c.billing_name or "").split()) != " ".join(own.split()):
        body["GivenName"] = given
        if family:
            body["FamilyName"] = family
        else:
            body.pop("FamilyName", None)
    if c.billing_email and c.billing_email != c.email:
        body["PrimaryEmailAddr"] = {"Address": c.billing_email}
    return body


def foreign_fields(
    qbo_entity: str, source_base: Mapping[str, Any] | None, qbo_base: Mapping[str, Any] | None
) -> frozenset[str]:
    """Billing contact fields QBO holds for someone else: a Customer created with its
    organisation's billing contact (R6), or matched while QBO named another person. Their two
    bases differ and QBO's is not empty; neither side's change is written to the other (the
    contact's own name and email never overwrite the billing contact's in QBO, and QBO's
    billing contact never lands on the contact)."""
    if qbo_entity != "Customer" or source_base is None or qbo_base is None:
        return frozenset()
    return frozenset(
        f
        for f in BILLING_CONTACT_FIELDS
        if qbo_base.get(f) not in (None, "", {})
        and _normal_text(qbo_base.get(f)) != _normal_text(source_base.get(f))
    )


def _normal_text(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _normal_text(v) for k, v in value.items()}
    return value.strip().casefold() if isinstance(value, str) else value


def vendor_fields(v: CanonicalVendor) -> Body:
    """Vendor body for a worker / contractor (R23)."""
    return _drop_none(
        {
            "DisplayName": v.display_name,
            "GivenName": v.given_name,
            "FamilyName": v.family_name,
            "PrimaryEmailAddr": _email(v.email),
            "PrimaryPhone": _phone(v.phone),
            "BillAddr": {"Country": v.country} if v.country else None,
        }
    )


# ------------------------------------------------------------------ items


def item_create(item: CanonicalItem, ctx: PushContext) -> BuildResult:
    """A Service item with the configured default income account (R10)."""
    if not ctx.default_income_account:
        return Blocked(
            (
                missing_mapping(
                    "default_income_account",
                    "default income account",
                    "qbo-pipelines mappings set default-income-account <QBO Income account>",
                    record=f"item {item.name!r} (not in QBO, so it must be created)",
                ),
            )
        )
    body = _drop_none(
        {
            "Name": item.name,
            "Type": "Service",
            "IncomeAccountRef": _ref(ctx.default_income_account),
            "Description": item.description,
            "UnitPrice": money(item.unit_price) if item.unit_price is not None else None,
        }
    )
    return Built(body)


def item_fields(item: CanonicalItem) -> Body:
    """Fields kept in step on an item the sync created (name, description, price)."""
    return _drop_none(
        {
            "Name": item.name,
            "Description": item.description,
            "UnitPrice": money(item.unit_price) if item.unit_price is not None else None,
        }
    )


# ------------------------------------------------------------------ invoices


def _missing_tax(sale: CanonicalSale, rate_id: SourceId, ctx: PushContext) -> Violation:
    name = ctx.tax_rate_names.get(rate_id, rate_id)
    return missing_mapping(
        "tax_rate",
        name,
        f"qbo-pipelines mappings set tax-rate '{name}' <QBO tax code>",
        record=f"sale {sale.doc_number or sale.source_id}",
    )


def _tax_code(
    sale: CanonicalSale, rate_id: SourceId | None, ctx: PushContext
) -> str | Violation | None:
    if rate_id is None:
        return ctx.default_tax_code  # R13; None: QBO's own default applies
    code = ctx.tax_codes.get(rate_id)
    return code if code is not None else _missing_tax(sale, rate_id, ctx)


def _item_line(
    sale: CanonicalSale, line: CanonicalSaleLine, ctx: PushContext, problems: list[Violation]
) -> Body | None:
    item_id = ctx.qbo_id("items", line.item_source_id)
    if item_id is None:
        if line.item_source_id is None:
            return None  # a line with no product: the rule sale.line.item_required says so
        name = ctx.item_names.get(line.item_source_id)
        problems.append(
            not_in_qbo(
                "item",
                f"sale {sale.doc_number or sale.source_id} line {line.line_no}",
                f"{line.item_source_id} ({name!r})" if name else str(line.item_source_id),
            )
        )
        return None
    code = _tax_code(sale, line.tax_rate_source_id, ctx)
    if isinstance(code, Violation):
        problems.append(code)
        return None
    detail: Body = {"ItemRef": _ref(item_id)}
    if line.qty is not None:
        detail["Qty"] = line.qty
    if line.unit_price is not None:
        detail["UnitPrice"] = line.unit_price
    if code is not None:
        detail["TaxCodeRef"] = _ref(code)
    return _drop_none(
        {
            "LineNum": line.line_no,
            "DetailType": "SalesItemLineDetail",
            "Amount": money(line.amount),
            "Description": line.description,  # line names are pushed (R14)
            "SalesItemLineDetail": detail,
        }
    )


def _discount_line(line: CanonicalSaleLine) -> Body:
    detail: Body = {"PercentBased": line.discount_percent is not None}
    if line.discount_percent is not None:
        detail["DiscountPercent"] = line.discount_percent
    return _drop_none(
        {
            "LineNum": line.line_no,
            "DetailType": "DiscountLineDetail",
            "Amount": money(abs(line.amount)),
            "Description": line.description,
            "DiscountLineDetail": detail,
        }
    )


def _tax_lines(sale: CanonicalSale, ctx: PushContext, problems: list[Violation]) -> Body | None:
    """Tax lines of the source invoice as QBO ``TxnTaxDetail.TaxLine`` entries (R14)."""
    tax_lines: list[Body] = []
    total = Decimal("0")
    for line in sale.lines:
        if line.kind != "tax":
            continue
        code = _tax_code(sale, line.tax_rate_source_id, ctx)
        if isinstance(code, Violation):
            problems.append(code)
            continue
        rate = ctx.tax_code_rates.get(code) if code else None
        detail: Body = {"PercentBased": rate is not None}
        if rate is not None:
            detail["TaxRateRef"] = _ref(rate[0])
            detail["TaxPercent"] = rate[1]
        detail["NetAmountTaxable"] = money(sale.subtotal + sale.discount_total)
        tax_lines.append(
            {"Amount": money(line.amount), "DetailType": "TaxLineDetail", "TaxLineDetail": detail}
        )
        total += line.amount
    if not tax_lines:
        return None
    return {"TotalTax": money(total), "TaxLine": tax_lines}


def invoice_body(sale: CanonicalSale, ctx: PushContext) -> BuildResult:
    """Full Invoice body for create, or for the Line/header part of a sparse update.

    Currency (R15) and the grouping / detail level (R14) are never sent.
    """
    problems: list[Violation] = []
    customer_id = ctx.qbo_id("customers", sale.customer_source_id)
    # No contact at all is the rule ``sale.customer.required``, not an unresolved reference.
    if customer_id is None and sale.customer_source_id is not None:
        problems.append(
            missing_reference(
                ctx,
                "customers",
                "customer",
                f"sale {sale.doc_number or sale.source_id}",
                sale.customer_source_id,
            )
        )
    waiting = _awaiting_pull(sale, ctx)
    if waiting is not None:
        problems.append(waiting)
    lines: list[Body] = []
    for line in sale.lines:
        if line.kind == "item":
            built = _item_line(sale, line, ctx, problems)
            if built is not None:
                lines.append(built)
        elif line.kind == "discount":
            lines.append(_discount_line(line))
    tax = _tax_lines(sale, ctx, problems)
    if problems:
        return Blocked(tuple(_dedupe(problems)))
    body = _drop_none(
        {
            "CustomerRef": _ref(customer_id or ""),
            "DocNumber": sale.doc_number,
            "TxnDate": sale.txn_date.isoformat(),
            "DueDate": sale.due_date.isoformat() if sale.due_date else None,
            "PrivateNote": sale.memo,
            "BillEmail": _email(sale.billing_email),
            "Line": lines,
            "TxnTaxDetail": tax,
        }
    )
    return Built(body)


AWAITING_PULL_FIX = (
    "Nothing to do: the next pull brings QBO's values into the source app (or run "
    "`qbo-pipelines sync pull`), then the next push syncs this record."
)


def _awaiting_pull(sale: CanonicalSale, ctx: PushContext) -> Violation | None:
    """A sale copies its customer's email (R18). When that customer was changed on both sides
    and QBO's values were kept (the conflict policy), the source still holds the values that
    lost until the pull brings QBO's: the sale waits, so no invoice carries (or is emailed
    to) a losing address (R34)."""
    customer = sale.customer_source_id
    if customer is None or customer not in ctx.awaiting_pull.get("customers", frozenset()):
        return None
    return Violation(
        "reference.customer.awaiting_pull",
        f"sale {sale.doc_number or sale.source_id}: customer #{customer} was changed in QBO and "
        "in the source app, and QBO's values were kept (conflict policy); they are not in the "
        "source app yet, so the sale waits rather than carry the values that lost",
        AWAITING_PULL_FIX,
    )


def _dedupe(violations: list[Violation]) -> list[Violation]:
    seen: set[tuple[str, str]] = set()
    out: list[Violation] = []
    for v in violations:
        if (v.rule, v.reason) not in seen:
            seen.add((v.rule, v.reason))
            out.append(v)
    return out


# ------------------------------------------------------------------ payments


def _credit_note_paid(ctx: PushContext, record: str, sale: SourceId) -> Violation | None:
    """A receipt on a sale QBO holds as a credit note: a QBO payment applies to invoices."""
    memo = ctx.credit_memos.get(sale)
    if memo is None:
        return None
    return Violation(
        "reference.invoice.credit_note",
        f"{record}: sale #{sale} is a credit note (QBO CreditMemo {memo}: its total is "
        "negative), and a QBO payment pays invoices only",
        "Link the receipt to the invoice it pays in the source app, or delete it; money paid "
        "back to the customer on a credit note is entered in QBO as a refund receipt.",
    )


def payment_body(receipt: CanonicalReceipt, ctx: PushContext) -> BuildResult:
    """A Payment linked to its invoice, deposited per the payment-method mapping (R19, R21)."""
    problems: list[Violation] = []
    label = receipt.reference or receipt.source_id
    customer_id = ctx.qbo_id("customers", receipt.customer_source_id)
    if customer_id is None and receipt.customer_source_id is not None:  # else the rule holds it
        problems.append(
            missing_reference(
                ctx, "customers", "customer", f"receipt {label}", receipt.customer_source_id
            )
        )
    invoice_id = ctx.qbo_id("invoices", receipt.sale_source_id)
    if receipt.sale_source_id is not None and invoice_id is None:
        problems.append(
            _credit_note_paid(ctx, f"receipt {label}", receipt.sale_source_id)
            or missing_reference(
                ctx, "invoices", "invoice", f"receipt {label}", receipt.sale_source_id
            )
        )
    target = None
    if receipt.payment_method_source_id is not None:
        target = ctx.payment_methods.get(receipt.payment_method_source_id)
        if target is None:
            name = ctx.payment_method_names.get(
                receipt.payment_method_source_id, receipt.payment_method_source_id
            )
            problems.append(
                missing_mapping(
                    "payment_method",
                    name,
                    f"qbo-pipelines mappings set payment-method '{name}' <QBO payment method>"
                    " --deposit-account <Bank account>",
                    record=f"receipt {label}",
                )
            )
    if problems:
        return Blocked(tuple(problems))
    amount = money(receipt.amount)
    body: Body = {
        "CustomerRef": _ref(customer_id or ""),
        "TotalAmt": amount,
        "TxnDate": receipt.received_on.isoformat(),
    }
    if receipt.reference:
        body["PaymentRefNum"] = receipt.reference
    if target is not None:
        body["DepositToAccountRef"] = _ref(target.deposit_account_id)
        if target.payment_method_id:
            body["PaymentMethodRef"] = _ref(target.payment_method_id)
    if invoice_id is not None:
        body["Line"] = [
            {"Amount": amount, "LinkedTxn": [{"TxnId": invoice_id, "TxnType": "Invoice"}]}
        ]
    return Built(body)


# ------------------------------------------------------------------ bills


def bill_body(bill: CanonicalBill, ctx: PushContext) -> BuildResult:
    """A Bill against the worker's Vendor, one expense line per invoice line (R23, R24)."""
    problems: list[Violation] = []
    label = bill.doc_number or bill.source_id
    vendor_id = ctx.qbo_id("vendors", bill.vendor_source_id)
    if vendor_id is None:
        problems.append(
            missing_reference(ctx, "vendors", "vendor", f"worker invoice {label}",
                              bill.vendor_source_id)
        )
    lines: list[Body] = []
    for line in bill.lines:
        account = ctx.expense_accounts.get(line.concept)
        if account is None:
            problems.append(
                missing_mapping(
                    "expense_concept",
                    line.concept,
                    f"qbo-pipelines mappings set expense-concept '{line.concept}' "
                    "<QBO expense account>",
                    record=f"worker invoice {label}",
                )
            )
            continue
        lines.append(
            _drop_none(
                {
                    "LineNum": line.line_no,
                    "DetailType": "AccountBasedExpenseLineDetail",
                    "Amount": money(line.amount),
                    "Description": line.description or line.concept,
                    "AccountBasedExpenseLineDetail": {"AccountRef": _ref(account)},
                }
            )
        )
    if problems:
        return Blocked(tuple(_dedupe(problems)))
    return Built(
        _drop_none(
            {
                "VendorRef": _ref(vendor_id or ""),
                "DocNumber": bill.doc_number,
                "TxnDate": bill.txn_date.isoformat(),
                "DueDate": bill.due_date.isoformat() if bill.due_date else None,
                "PrivateNote": bill.memo,
                "Line": lines,
            }
        )
    )


# ------------------------------------------------------------------ sparse updates


MANAGED_FIELDS: dict[str, tuple[str, ...]] = {
    "Customer": ("DisplayName", "CompanyName", "GivenName", "FamilyName", "PrimaryEmailAddr",
                 "PrimaryPhone", "BillAddr"),
    "Vendor": ("DisplayName", "GivenName", "FamilyName", "PrimaryEmailAddr", "PrimaryPhone",
               "BillAddr"),
    "Item": ("Name", "Description", "UnitPrice"),
    "Invoice": ("CustomerRef", "DocNumber", "TxnDate", "DueDate", "PrivateNote", "BillEmail",
                "Line", "TxnTaxDetail"),
    "CreditMemo": ("CustomerRef", "DocNumber", "TxnDate", "PrivateNote", "BillEmail", "Line",
                   "TxnTaxDetail"),
    "Payment": ("CustomerRef", "TotalAmt", "TxnDate", "PaymentRefNum", "DepositToAccountRef",
                "PaymentMethodRef", "Line"),
    "Bill": ("VendorRef", "DocNumber", "TxnDate", "DueDate", "PrivateNote", "Line"),
}
"""Per QBO entity, every top-level field the sync writes (whether or not a given record sets
it): what a change made in QBO is judged on (R34), so a value a person adds in QBO to a field
the source left empty is seen too."""


def is_credit_note(sale: CanonicalSale) -> bool:
    """A sale whose total is negative is a credit note: it becomes a QBO CreditMemo (R11).

    A NaN total (hostile input) is neither; ordering it would raise, the rules hold it (R40).
    """
    return not sale.total.is_nan() and sale.total < 0


def sale_qbo_entity(sale: CanonicalSale) -> str:
    """The QBO entity a sale becomes: Invoice, or CreditMemo for a credit note (R11)."""
    return "CreditMemo" if is_credit_note(sale) else "Invoice"


def credit_memo_body(sale: CanonicalSale, ctx: PushContext) -> BuildResult:
    """A credit note as a QBO CreditMemo: the invoice body with signs turned, so the memo's
    total is the credit's amount (positive), and no due date (a CreditMemo has none)."""
    built = invoice_body(sale, ctx)
    if isinstance(built, Blocked):
        return built
    body = dict(built.body)
    body.pop("DueDate", None)
    lines: list[Body] = []
    for line in body.get("Line", []):
        line = dict(line)
        if line.get("DetailType") == "SalesItemLineDetail":
            line["Amount"] = -line["Amount"]
            detail = dict(line["SalesItemLineDetail"])
            if "Qty" in detail:
                detail["Qty"] = -detail["Qty"]
            elif "UnitPrice" in detail:
                detail["UnitPrice"] = -detail["UnitPrice"]
            line["SalesItemLineDetail"] = detail
        lines.append(line)
    body["Line"] = lines
    tax = body.get("TxnTaxDetail")
    if tax:
        body["TxnTaxDetail"] = {
            "TotalTax": -tax["TotalTax"],
            "TaxLine": [
                {
                    **t,
                    "Amount": -t["Amount"],
                    "TaxLineDetail": {
                        **t["TaxLineDetail"],
                        "NetAmountTaxable": -t["TaxLineDetail"]["NetAmountTaxable"],
                    },
                }
                for t in tax["TaxLine"]
            ],
        }
    return Built(body)
