"""The push spec of each catalogue entity: which transform builds its bodies and how it matches.

Each spec is named by its catalogue row (``push="qbo_pipelines.sync.specs:CUSTOMERS"``).
"""

from __future__ import annotations

import dataclasses

from qbo_pipelines import entities as catalogue
from qbo_pipelines.canonical import (
    CanonicalBill,
    CanonicalCustomer,
    CanonicalItem,
    CanonicalReceipt,
    CanonicalSale,
    CanonicalVendor,
)
from qbo_pipelines.quality.rules import Violation
from qbo_pipelines.source_app.connector import SourceAppConnector
from qbo_pipelines.sync.push import PushSpec
from qbo_pipelines.transforms import to_qbo
from qbo_pipelines.transforms.to_qbo import BuildResult, Built, PushContext


def _customer_create(c: CanonicalCustomer, _ctx: PushContext) -> BuildResult:
    return Built(to_qbo.customer_create(c))


def _customer_fields(c: CanonicalCustomer, _ctx: PushContext) -> BuildResult:
    return Built(to_qbo.customer_fields(c))


def _no_sale(c: CanonicalCustomer) -> str | None:
    return None if c.has_sale else "contact has no sale: only contacts with a sale are pushed (R4)"


def _represented(c: CanonicalCustomer) -> str | None:
    if c.represented_by is None:
        return None
    return (
        f"one QBO customer per organisation (R5): contact #{c.represented_by} stands for "
        f"organisation #{c.organisation_id} in QBO, and this contact's sales bill it"
    )


def _item_fields(i: CanonicalItem, _ctx: PushContext) -> BuildResult:
    return Built(to_qbo.item_fields(i))


def _vendor(v: CanonicalVendor, _ctx: PushContext) -> BuildResult:
    return Built(to_qbo.vendor_fields(v))


def _invoice(s: CanonicalSale, ctx: PushContext) -> BuildResult:
    if to_qbo.is_credit_note(s):
        return to_qbo.credit_memo_body(s, ctx)
    return to_qbo.invoice_body(s, ctx)


def _payment(r: CanonicalReceipt, ctx: PushContext) -> BuildResult:
    return to_qbo.payment_body(r, ctx)


def _payment_meanwhile(
    r: CanonicalReceipt, ctx: PushContext, violations: tuple[Violation, ...]
) -> BuildResult | None:
    """A receipt held only because the sale it now pays is not in QBO yet (a receipt moved to
    a new sale, R20): its payment meanwhile applied to no invoice, so it no longer pays the
    invoice of the sale it left (which may be deleted, or enter again under its number)."""
    waiting = [v for v in violations if v.rule == "reference.invoice.unresolved"]
    deleted = ctx.deleted_in_qbo.get("invoices", frozenset())
    if not waiting or len(waiting) < len(violations) or r.sale_source_id in deleted:
        return None
    built = to_qbo.payment_body(dataclasses.replace(r, sale_source_id=None), ctx)
    return built if isinstance(built, Built) else None


def _bill(b: CanonicalBill, ctx: PushContext) -> BuildResult:
    return to_qbo.bill_body(b, ctx)


def _send(s: CanonicalSale) -> tuple[bool, str | None]:
    return s.send_requested, s.billing_email


CUSTOMERS = PushSpec(
    catalogue.entity("customers"),
    _customer_create,
    _customer_fields,
    match_field="DisplayName",
    name_space="party",
    skip_reason=_no_sale,
    written_through=_represented,
    written_by=lambda c: c.represented_by,
    group_field="CompanyName",
    referenced_by=(("invoices", "CustomerRef"), ("payments", "CustomerRef")),
    named=SourceAppConnector.contacts_named,
)
ITEMS = PushSpec(
    catalogue.entity("items"),
    to_qbo.item_create,
    _item_fields,
    match_field="Name",
    name_space="item",
)
INVOICES = PushSpec(
    catalogue.entity("invoices"),
    _invoice,
    _invoice,
    send_request=_send,
    qbo_entity=to_qbo.sale_qbo_entity,
)
PAYMENTS = PushSpec(
    catalogue.entity("payments"), _payment, _payment, meanwhile=_payment_meanwhile
)
VENDORS = PushSpec(
    catalogue.entity("vendors"),
    _vendor,
    _vendor,
    match_field="DisplayName",
    name_space="party",
)
BILLS = PushSpec(catalogue.entity("bills"), _bill, _bill)


SPECS: dict[str, PushSpec] = catalogue.bound_specs(catalogue.push_order(), "push")
"""Push spec per catalogue name, in push order: a view of the rows' ``push`` bindings (read
``catalogue.entity(name).push_spec``)."""
