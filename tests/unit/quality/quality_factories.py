"""Builders of clean canonical records for the quality tests (override any field by keyword)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

from qbo_pipelines.canonical import (
    CanonicalAddress,
    CanonicalBill,
    CanonicalBillLine,
    CanonicalCustomer,
    CanonicalItem,
    CanonicalReceipt,
    CanonicalSale,
    CanonicalSaleLine,
    CanonicalVendor,
    SourceId,
)


def customer(**kw: object) -> CanonicalCustomer:
    base: dict[str, object] = {
        "source_id": SourceId("17"),
        "display_name": "Acme Ltd",
        "company_name": "Acme Ltd",
        "given_name": "Ann",
        "family_name": "Smith",
        "email": "ann@acme.example",
        "phone": "+1 555 0100",
        "billing_email": "billing@acme.example",
        "bill_addr": CanonicalAddress(line1="1 Main St", city="Springfield", postal_code="12345"),
        "has_sale": True,
    }
    base.update(kw)
    return CanonicalCustomer(**base)  # type: ignore[arg-type]


def item(**kw: object) -> CanonicalItem:
    base: dict[str, object] = {"source_id": SourceId("3"), "name": "Consulting",
                               "unit_price": D("25.00")}
    base.update(kw)
    return CanonicalItem(**base)  # type: ignore[arg-type]


def line(no: int = 1, **kw: object) -> CanonicalSaleLine:
    base: dict[str, object] = {
        "line_no": no, "kind": "item", "item_source_id": SourceId("3"), "qty": D("2.0000"),
        "unit_price": D("25.0000"), "amount": D("50.00"), "tax_rate_source_id": SourceId("1"),
    }
    base.update(kw)
    return CanonicalSaleLine(**base)  # type: ignore[arg-type]


def sale(**kw: object) -> CanonicalSale:
    lines = (
        line(1),
        line(2, qty=D("1"), unit_price=D("12.3456"), amount=D("12.35")),
        CanonicalSaleLine(line_no=3, kind="discount", amount=D("-6.24"),
                          discount_percent=D("10")),
        CanonicalSaleLine(line_no=4, kind="tax", amount=D("8.42"),
                          tax_rate_source_id=SourceId("1")),
    )
    base: dict[str, object] = {
        "source_id": SourceId("77"), "doc_number": "S-1042", "customer_source_id": SourceId("17"),
        "txn_date": date(2024, 5, 1), "due_date": date(2024, 5, 31), "memo": "Thanks",
        "billing_email": "billing@acme.example", "send_requested": True, "lines": lines,
        "subtotal": D("62.35"), "discount_total": D("-6.24"), "tax_total": D("8.42"),
        "total": D("64.53"),
    }
    base.update(kw)
    return CanonicalSale(**base)  # type: ignore[arg-type]


def receipt(**kw: object) -> CanonicalReceipt:
    base: dict[str, object] = {
        "source_id": SourceId("5"), "sale_source_id": SourceId("77"),
        "customer_source_id": SourceId("17"), "amount": D("64.53"),
        "received_on": date(2024, 6, 1), "payment_method_source_id": SourceId("2"),
        "reference": "CHK-881",
    }
    base.update(kw)
    return CanonicalReceipt(**base)  # type: ignore[arg-type]


def vendor(**kw: object) -> CanonicalVendor:
    base: dict[str, object] = {
        "source_id": SourceId("4"), "display_name": "Jane Roe Design", "given_name": "Jane",
        "family_name": "Roe", "email": "jane@roe.example", "country": "NZ",
    }
    base.update(kw)
    return CanonicalVendor(**base)  # type: ignore[arg-type]


def bill(**kw: object) -> CanonicalBill:
    base: dict[str, object] = {
        "source_id": SourceId("8"), "vendor_source_id": SourceId("4"), "doc_number": "INV-9",
        "txn_date": date(2024, 5, 2), "due_date": date(2024, 5, 16),
        "lines": (
            CanonicalBillLine(line_no=1, concept="Design", amount=D("300.00")),
            CanonicalBillLine(line_no=2, concept="Travel", amount=D("45.50")),
        ),
        "total": D("345.50"),
    }
    base.update(kw)
    return CanonicalBill(**base)  # type: ignore[arg-type]
