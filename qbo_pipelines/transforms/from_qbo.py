"""QBO objects -> what the source app stores (pull direction, pure; no I/O).

Two shapes are produced:

* whole records for QBO records the source does not hold yet or mirrors (``QboContact``,
  ``QboSale``, ``QboReceipt``, ``CustomerTransaction``), written by the connector's upserts;
* **column values per QBO field** for records both sides hold (:func:`columns`): a field QBO
  changed since the last synced base becomes exactly the source columns it maps to, so a pull
  writes field by field (R7) and never touches a column QBO did not change.

Fields the source cannot hold for a record it owns (the lines of an invoice created from the
source, its tax detail) have no columns: :func:`columns` reports them as ``unmapped`` and the pull
records that QBO's value was kept in QBO only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from qbo_pipelines.canonical import (
    CanonicalAddress,
    CustomerTransaction,
    QboContact,
    QboId,
    QboReceipt,
    QboSale,
    QboSaleLine,
    RealmId,
    SourceId,
)

Obj = Mapping[str, Any]

CUSTOMER_TXN_TYPES: tuple[str, ...] = (
    "Invoice",
    "Payment",
    "Estimate",
    "SalesReceipt",
    "CreditMemo",
    "RefundReceipt",
)
"""QBO transactions listed per customer in the source (R26)."""


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _ref(obj: Obj, key: str) -> str | None:
    ref = obj.get(key)
    return _text(ref.get("value")) if isinstance(ref, Mapping) else None


def _money(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


def _date(value: Any) -> date | None:
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def updated_at(obj: Obj) -> datetime | None:
    """``MetaData.LastUpdatedTime`` as an aware datetime (None when absent or unreadable)."""
    meta = obj.get("MetaData")
    raw = meta.get("LastUpdatedTime") if isinstance(meta, Mapping) else None
    if not isinstance(raw, str):
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def sync_token(obj: Obj) -> int | None:
    """The SyncToken as a number (None when absent): versions compare by it."""
    try:
        return int(str(obj.get("SyncToken")))
    except ValueError:
        return None


def _email(obj: Obj, key: str = "PrimaryEmailAddr") -> str | None:
    value = obj.get(key)
    return _text(value.get("Address")) if isinstance(value, Mapping) else None


def _phone(obj: Obj) -> str | None:
    value = obj.get("PrimaryPhone")
    return _text(value.get("FreeFormNumber")) if isinstance(value, Mapping) else None


def _address(obj: Obj) -> CanonicalAddress | None:
    value = obj.get("BillAddr")
    if not isinstance(value, Mapping):
        return None
    addr = CanonicalAddress(
        line1=_text(value.get("Line1")),
        line2=_text(value.get("Line2")),
        city=_text(value.get("City")),
        region=_text(value.get("CountrySubDivisionCode")),
        postal_code=_text(value.get("PostalCode")),
        country=_text(value.get("Country")),
    )
    return None if addr.is_empty() else addr


# ------------------------------------------------------------------ what the source can hold

MONEY_LIMIT = Decimal(10) ** 13
"""The source app keeps money as numeric(15, 2): amounts must stay below 10^13."""
QTY_LIMIT = Decimal(10) ** 11
"""Quantities and unit prices are numeric(15, 4) in the source: below 10^11."""
MONEY_PLACES = 2
"""Decimals of the source's money columns (numeric(15, 2))."""
QTY_PLACES = 4
"""Decimals of the source's quantity and unit price columns (numeric(15, 4)); QBO takes 5."""


def _held(value: Any) -> Decimal | None:
    """An amount as the source can hold it: None when it is beyond (the listing still shows the
    transaction and links to it in QBO)."""
    amount = _money(value)
    return amount if amount is not None and abs(amount) < MONEY_LIMIT else None


def beyond_source(obj: Obj) -> str | None:
    """Why the source app cannot hold this QBO transaction's amounts (None: it can): a value
    too large for its column, or with more decimals than the column keeps (Postgres would round
    it silently). QBO and the warehouse keep the exact value; the source record is held back
    with this reason."""
    checks: list[tuple[str, Any, Decimal, int]] = [
        ("TotalAmt", obj.get("TotalAmt"), MONEY_LIMIT, MONEY_PLACES),
        ("Balance", obj.get("Balance"), MONEY_LIMIT, MONEY_PLACES),
    ]
    for n, line in enumerate(obj.get("Line") or (), 1):
        if not isinstance(line, Mapping):
            continue
        checks.append((f"Line {n} Amount", line.get("Amount"), MONEY_LIMIT, MONEY_PLACES))
        detail = line.get("SalesItemLineDetail")
        if isinstance(detail, Mapping):
            checks.append((f"Line {n} Qty", detail.get("Qty"), QTY_LIMIT, QTY_PLACES))
            checks.append((f"Line {n} UnitPrice", detail.get("UnitPrice"), QTY_LIMIT, QTY_PLACES))
    for name, raw, limit, places in checks:
        value = _money(raw)
        if value is None:
            continue
        if abs(value) >= limit:
            return f"{name} {raw}: an amount larger than the source app holds (below {limit:,.0f})"
        if value != round(value, places):
            return (
                f"{name} {raw}: more decimals than the source app keeps ({places}); it would be "
                "rounded"
            )
    return None


AMOUNT_FIX = "correct the amount in QBO; the next pull brings it in"


def unfit_for_source(obj: Obj, qbo_entity: str = "") -> tuple[str, str, str] | None:
    """(rule, reason, fix) when the source app cannot hold this QBO transaction as it is (the
    pull holds it back; QBO and the warehouse keep it whole), else None: amounts it would round
    or overflow (:func:`beyond_source`), or a payment a receipt cannot stand for (a source
    receipt pays one sale with its whole amount): applied to several invoices (taking one
    would credit it with the others' money), or to one for less than its amount (the rest is
    a credit QBO keeps for the customer; taking the whole amount would overpay the sale)."""
    why = beyond_source(obj)
    if why is not None:
        return "pull.amount.beyond_source", why, AMOUNT_FIX
    invoices = applied_invoices(obj)
    if len(invoices) > 1:
        return (
            "pull.payment.several_invoices",
            f"applied to {len(invoices)} invoices ({', '.join(invoices)}); a receipt in the "
            "source app pays one sale",
            "in QBO, record one payment per invoice instead (or apply this one to a single "
            "invoice); the next pull brings it in",
        )
    if qbo_entity == "Payment":
        return _not_applied_in_full(obj, invoices)
    return None


def _not_applied_in_full(obj: Obj, invoices: Sequence[QboId]) -> tuple[str, str, str] | None:
    """A payment applied to an invoice for less than its amount (a payment applied to none is
    a receipt of no sale: money on account)."""
    total = _money(obj.get("TotalAmt")) or Decimal("0")
    applied = _linked_amount(obj, "Invoice") - _linked_amount(obj, "CreditMemo")
    left = total - applied
    if left == 0 or not invoices:
        return None
    return (
        "pull.payment.partly_applied",
        f"{applied:.2f} of its {total:.2f} applied to invoice {invoices[0]}, {left:.2f} left "
        "unapplied (a credit QBO keeps for the customer); a receipt in the source app pays one "
        "sale with its whole amount",
        "in QBO, apply all of it to the invoice, or record the rest as a payment of its own; "
        "the next pull brings it in",
    )


def _linked_amount(obj: Obj, txn_type: str) -> Decimal:
    """The amount of a Payment's lines linked to transactions of ``txn_type``."""
    total = Decimal("0")
    for line in obj.get("Line") or ():
        if not isinstance(line, Mapping):
            continue
        links = line.get("LinkedTxn") or ()
        if any(isinstance(k, Mapping) and k.get("TxnType") == txn_type for k in links):
            total += _money(line.get("Amount")) or Decimal("0")
    return total


def voided(obj: Obj) -> bool:
    """A transaction voided in QBO: it stays, its amounts zeroed and "Voided" put before its
    private note (QBO_API.md 5.5; the API has no void flag)."""
    note = obj.get("PrivateNote")
    total = _money(obj.get("TotalAmt"))
    return isinstance(note, str) and note.startswith("Voided") and total == 0


# ------------------------------------------------------------------ whole records


def contact(obj: Obj, realm_id: str) -> QboContact:
    """A QBO Customer as a source contact (R8)."""
    return QboContact(
        realm_id=RealmId(realm_id),
        qbo_id=QboId(str(obj["Id"])),
        display_name=_text(obj.get("DisplayName")) or f"Customer {obj['Id']}",
        company_name=_text(obj.get("CompanyName")),
        given_name=_text(obj.get("GivenName")),
        family_name=_text(obj.get("FamilyName")),
        email=_email(obj),
        phone=_phone(obj),
        bill_addr=_address(obj),
        active=obj.get("Active") is not False,
        sync_token=_text(obj.get("SyncToken")),
        updated_at=updated_at(obj),
    )


def _sale_lines(obj: Obj) -> tuple[QboSaleLine, ...]:
    lines: list[QboSaleLine] = []
    for raw in obj.get("Line") or ():
        if not isinstance(raw, Mapping):
            continue
        kind = raw.get("DetailType")
        if kind == "SubTotalLineDetail":
            continue
        detail = raw.get("SalesItemLineDetail") or {}
        lines.append(
            QboSaleLine(
                line_no=len(lines) + 1,
                kind="discount" if kind == "DiscountLineDetail" else "item",
                description=_text(raw.get("Description")),
                item_name=_text((detail.get("ItemRef") or {}).get("name"))
                if isinstance(detail, Mapping)
                else None,
                qty=_money(detail.get("Qty")) if isinstance(detail, Mapping) else None,
                unit_price=_money(detail.get("UnitPrice")) if isinstance(detail, Mapping) else None,
                amount=_money(raw.get("Amount")) or Decimal("0"),
            )
        )
    return tuple(lines)


def sale(
    obj: Obj, realm_id: str, customer_source_id: str | None, *, deleted: bool = False
) -> QboSale:
    """A QBO Invoice as a source sale (R16); a deleted one is flagged, never removed."""
    tax = obj.get("TxnTaxDetail")
    tax_total = _money(tax.get("TotalTax")) if isinstance(tax, Mapping) else None
    return QboSale(
        realm_id=RealmId(realm_id),
        qbo_id=QboId(str(obj["Id"])),
        doc_number=_text(obj.get("DocNumber")),
        customer_qbo_id=QboId(_ref(obj, "CustomerRef") or ""),
        customer_source_id=SourceId(customer_source_id) if customer_source_id else None,
        txn_date=_date(obj.get("TxnDate")) or date(1970, 1, 1),
        due_date=_date(obj.get("DueDate")),
        currency=_ref(obj, "CurrencyRef"),
        memo=_text(obj.get("PrivateNote")),
        billing_email=_email(obj, "BillEmail"),
        lines=_sale_lines(obj),
        tax_total=tax_total or Decimal("0"),
        total=_money(obj.get("TotalAmt")) or Decimal("0"),
        balance=_money(obj.get("Balance")) or Decimal("0"),
        email_status=_text(obj.get("EmailStatus")),
        deleted=deleted,
        sync_token=_text(obj.get("SyncToken")),
        updated_at=updated_at(obj),
    )


def applied_invoices(obj: Obj) -> tuple[QboId, ...]:
    """The invoices a Payment is applied to (``Line[].LinkedTxn`` of type Invoice)."""
    out: list[QboId] = []
    for line in obj.get("Line") or ():
        for link in (line.get("LinkedTxn") or ()) if isinstance(line, Mapping) else ():
            if isinstance(link, Mapping) and link.get("TxnType") == "Invoice" and link.get("TxnId"):
                out.append(QboId(str(link["TxnId"])))
    return tuple(dict.fromkeys(out))


def receipt(
    obj: Obj,
    realm_id: str,
    customer_source_id: str | None,
    sale_source_id: str | None,
    *,
    deleted: bool = False,
) -> QboReceipt:
    """A QBO Payment as a receipt against the synced sale (R20); deleted: flagged (R22)."""
    method = obj.get("PaymentMethodRef")
    return QboReceipt(
        realm_id=RealmId(realm_id),
        qbo_id=QboId(str(obj["Id"])),
        customer_qbo_id=QboId(_ref(obj, "CustomerRef") or ""),
        customer_source_id=SourceId(customer_source_id) if customer_source_id else None,
        sale_source_id=SourceId(sale_source_id) if sale_source_id else None,
        invoice_qbo_ids=applied_invoices(obj),
        amount=_money(obj.get("TotalAmt")) or Decimal("0"),
        received_on=_date(obj.get("TxnDate")) or date(1970, 1, 1),
        payment_method_name=_text(method.get("name")) if isinstance(method, Mapping) else None,
        reference=_text(obj.get("PaymentRefNum")),
        deleted=deleted,
        sync_token=_text(obj.get("SyncToken")),
        updated_at=updated_at(obj),
    )


def customer_transaction(
    obj: Obj, txn_type: str, realm_id: str, customer_source_id: str | None, *, deleted: bool
) -> CustomerTransaction | None:
    """Any QBO transaction of a customer with its link (R26); None when it names no customer."""
    customer = _ref(obj, "CustomerRef")
    if customer is None:
        return None
    status = "Deleted" if deleted else _text(obj.get("TxnStatus") or obj.get("EmailStatus"))
    return CustomerTransaction(
        realm_id=RealmId(realm_id),
        txn_type=txn_type,
        qbo_id=QboId(str(obj["Id"])),
        customer_qbo_id=QboId(customer),
        customer_source_id=SourceId(customer_source_id) if customer_source_id else None,
        doc_number=_text(obj.get("DocNumber")),
        txn_date=_date(obj.get("TxnDate")),
        total=_held(obj.get("TotalAmt")),
        balance=_held(obj.get("Balance")),
        status=status,
        deleted=deleted,
        updated_at=updated_at(obj),
    )


# ------------------------------------------------------------------ field by field (R7)

Columns = dict[str, Any]
FieldMap = Callable[[Obj], Columns | None]
"""QBO object -> the source columns of one field (None: no place for this value)."""
OwnedMap = Callable[[Obj], Columns]
"""QBO object -> the source columns only QBO writes."""


def _addr_columns(obj: Obj) -> Columns:
    addr = _address(obj) or CanonicalAddress()
    return {
        "address_line1": addr.line1,
        "address_line2": addr.line2,
        "city": addr.city,
        "region": addr.region,
        "postal_code": addr.postal_code,
        "country": addr.country,
    }


CONTACT_FIELDS: dict[str, FieldMap] = {
    "DisplayName": lambda o: {"qbo_display_name": _text(o.get("DisplayName"))},
    "CompanyName": lambda o: {"qbo_company_name": _text(o.get("CompanyName"))},
    "GivenName": lambda o: {"given_name": _text(o.get("GivenName"))},
    "FamilyName": lambda o: {"family_name": _text(o.get("FamilyName"))},
    "PrimaryEmailAddr": lambda o: {"email": _email(o)},
    "PrimaryPhone": lambda o: {"phone": _phone(o)},
    "BillAddr": _addr_columns,
}
CONTACT_KEY = "__source_contact_id"
"""Set by the pull on a QBO transaction it plans against a source record: the source contact
its ``CustomerRef`` is linked to (absent when the customer is linked to none)."""


def _contact(o: Obj) -> Columns | None:
    """The sale's or receipt's contact from QBO's customer, or None (no place: the customer is
    not linked to a source contact, so the field is QBO's alone)."""
    contact = o.get(CONTACT_KEY)
    return {"contact_id": int(contact)} if contact else None


SALE_FIELDS: dict[str, FieldMap] = {
    "CustomerRef": _contact,
    "DocNumber": lambda o: {"doc_number": _text(o.get("DocNumber"))},
    "TxnDate": lambda o: {"txn_date": _date(o.get("TxnDate"))} if _date(o.get("TxnDate")) else {},
    "DueDate": lambda o: {"due_date": _date(o.get("DueDate"))},
    "PrivateNote": lambda o: {"memo": _text(o.get("PrivateNote"))},
}
RECEIPT_FIELDS: dict[str, FieldMap] = {
    # a receipt has a contact of its own (``receipts.contact_id``; empty, it follows its
    # sale's): a payment moved to another customer in QBO moves the receipt to that contact
    "CustomerRef": _contact,
    "TotalAmt": lambda o: (
        {"amount": _money(o.get("TotalAmt"))} if _money(o.get("TotalAmt")) is not None else {}
    ),
    "TxnDate": lambda o: (
        {"received_on": _date(o.get("TxnDate"))} if _date(o.get("TxnDate")) else {}
    ),
    "PaymentRefNum": lambda o: {"reference": _text(o.get("PaymentRefNum"))},
}
"""Per pulled entity (named by its pull spec, :mod:`qbo_pipelines.sync.pull`): QBO managed
field -> the source columns it becomes (R7)."""


def contact_owned(o: Obj) -> Columns:
    """A contact's columns only QBO writes: whether the Customer is active."""
    return {"qbo_active": o.get("Active") is not False}


def sale_owned(o: Obj) -> Columns:
    """A sale's columns only QBO writes: its balance and email status."""
    return {"balance": _money(o.get("Balance")), "qbo_email_status": _text(o.get("EmailStatus"))}


def receipt_owned(_o: Obj) -> Columns:
    """A receipt has no column only QBO writes."""
    return {}


def columns(
    maps: Mapping[str, FieldMap], obj: Obj, fields: set[str] | frozenset[str]
) -> tuple[Columns, set[str]]:
    """The source columns for QBO's values of ``fields`` by an entity's field ``maps`` (its
    pull spec's ``fields``), and the fields that have none."""
    out: Columns = {}
    unmapped: set[str] = set()
    for name in sorted(fields):
        build = maps.get(name)
        found = build(obj) if build is not None else None
        if found is None:  # no map, or none for this value
            unmapped.add(name)
        else:
            out.update(found)
    return out, unmapped
