"""Pure push transforms and planning: canonical source records -> QBO bodies and actions."""

from dataclasses import replace
from datetime import date
from decimal import Decimal

from qbo_pipelines import entities
from qbo_pipelines.canonical import (
    CanonicalAddress,
    CanonicalBill,
    CanonicalBillLine,
    CanonicalCustomer,
    CanonicalItem,
    CanonicalReceipt,
    CanonicalSale,
    CanonicalSaleLine,
    QboId,
    SourceId,
)
from qbo_pipelines.sync.engine import diff
from qbo_pipelines.sync.engine.records import RecordState
from qbo_pipelines.sync.push import plan_delete, plan_record
from qbo_pipelines.sync.specs import SPECS
from qbo_pipelines.transforms import to_qbo
from qbo_pipelines.transforms.to_qbo import Blocked, Built, PaymentMethodTarget, PushContext

S = SourceId


def _ctx(**overrides: object) -> PushContext:
    base: dict[str, object] = {
        "qbo_ids": {
            "customers": {S("c1"): QboId("58")},
            "items": {S("p1"): QboId("7")},
            "invoices": {S("s1"): QboId("130")},
            "vendors": {S("w1"): QboId("91")},
        },
        "tax_codes": {S("t10"): "3"},
        "tax_code_rates": {"3": ("12", Decimal("10"))},
        "tax_rate_names": {S("t10"): "GST 10%", S("t25"): "Luxury 25%"},
        "default_tax_code": "2",
        "payment_methods": {S("pm1"): PaymentMethodTarget("4", "35")},
        "payment_method_names": {S("pm1"): "Visa", S("pm9"): "Bitcoin"},
        "expense_accounts": {"Development": "60"},
        "default_income_account": "79",
        "item_names": {S("p1"): "Consulting", S("p2"): "Training"},
    }
    base.update(overrides)
    return PushContext(**base)  # type: ignore[arg-type]


def _sale(**overrides: object) -> CanonicalSale:
    lines = (
        CanonicalSaleLine(
            line_no=1,
            kind="item",
            description="Consulting, March",
            item_source_id=S("p1"),
            qty=Decimal("2"),
            unit_price=Decimal("100"),
            amount=Decimal("200"),
            tax_rate_source_id=S("t10"),
            group_name="Phase 1",
        ),
        CanonicalSaleLine(
            line_no=2,
            kind="item",
            description="Support",
            item_source_id=S("p1"),
            qty=Decimal("1"),
            unit_price=Decimal("50"),
            amount=Decimal("50"),
        ),
        CanonicalSaleLine(
            line_no=3,
            kind="discount",
            description="Loyalty 10%",
            amount=Decimal("-25"),
            discount_percent=Decimal("10"),
        ),
        CanonicalSaleLine(
            line_no=4,
            kind="tax",
            description="GST",
            amount=Decimal("20"),
            tax_rate_source_id=S("t10"),
        ),
    )
    fields: dict[str, object] = {
        "source_id": S("s1"),
        "doc_number": "S-1001",
        "customer_source_id": S("c1"),
        "txn_date": date(2026, 3, 1),
        "due_date": date(2026, 3, 31),
        "currency": "EUR",
        "lines": lines,
        "subtotal": Decimal("250"),
        "discount_total": Decimal("-25"),
        "tax_total": Decimal("20"),
        "total": Decimal("245"),
        "grouping": "by phase",
        "detail_level": "summary",
    }
    fields.update(overrides)
    return CanonicalSale(**fields)  # type: ignore[arg-type]


def _built(result: to_qbo.BuildResult) -> dict[str, object]:
    assert isinstance(result, Built), result
    return result.body


def test_R15_currency_is_never_pushed() -> None:
    body = _built(to_qbo.invoice_body(_sale(), _ctx()))
    assert "CurrencyRef" not in body
    assert "EUR" not in repr(body)


def test_R14_tax_and_discount_lines_pushed_grouping_not() -> None:
    body = _built(to_qbo.invoice_body(_sale(), _ctx()))
    kinds = [line["DetailType"] for line in body["Line"]]  # type: ignore[index]
    assert kinds == ["SalesItemLineDetail", "SalesItemLineDetail", "DiscountLineDetail"]
    assert body["Line"][0]["Description"] == "Consulting, March"  # type: ignore[index]
    assert body["Line"][2]["Amount"] == Decimal("25.00")  # type: ignore[index]
    tax = body["TxnTaxDetail"]
    assert tax["TotalTax"] == Decimal("20.00")  # type: ignore[index]
    assert tax["TaxLine"][0]["TaxLineDetail"]["TaxRateRef"] == {"value": "12"}  # type: ignore[index]
    assert "Phase 1" not in repr(body)
    assert "by phase" not in repr(body)
    assert "summary" not in repr(body)


def test_R12_unmapped_tax_rate_fails_with_reason() -> None:
    sale = _sale(
        lines=(
            CanonicalSaleLine(
                line_no=1,
                kind="item",
                item_source_id=S("p1"),
                qty=Decimal("1"),
                unit_price=Decimal("10"),
                amount=Decimal("10"),
                tax_rate_source_id=S("t25"),
            ),
        )
    )
    result = to_qbo.invoice_body(sale, _ctx())
    assert isinstance(result, Blocked)
    [violation] = result.violations
    assert violation.rule == "mapping.tax_rate.missing"
    assert "Luxury 25%" in violation.reason
    assert "S-1001" in violation.reason
    assert violation.fix is not None
    assert "mappings set tax-rate" in violation.fix
    # Once the mapping is added, the same record builds (no other action needed).
    ok = to_qbo.invoice_body(sale, _ctx(tax_codes={S("t10"): "3", S("t25"): "5"}))
    assert isinstance(ok, Built)


def test_R13_default_tax_code_used_where_a_line_has_none() -> None:
    body = _built(to_qbo.invoice_body(_sale(), _ctx()))
    detail = body["Line"][1]["SalesItemLineDetail"]  # type: ignore[index]
    assert detail["TaxCodeRef"] == {"value": "2"}
    mapped = body["Line"][0]["SalesItemLineDetail"]  # type: ignore[index]
    assert mapped["TaxCodeRef"] == {"value": "3"}


def test_R11_invoice_references_customer_and_items_by_qbo_id() -> None:
    body = _built(to_qbo.invoice_body(_sale(), _ctx()))
    assert body["CustomerRef"] == {"value": "58"}
    assert body["Line"][0]["SalesItemLineDetail"]["ItemRef"] == {"value": "7"}  # type: ignore[index]
    assert body["DocNumber"] == "S-1001"


def test_R11_invoice_waits_for_its_customer() -> None:
    result = to_qbo.invoice_body(_sale(customer_source_id=S("c404")), _ctx())
    assert isinstance(result, Blocked)
    assert result.violations[0].rule == "reference.customer.unresolved"


def _customer(**overrides: object) -> CanonicalCustomer:
    fields: dict[str, object] = {
        "source_id": S("c1"),
        "display_name": "Zoë's Café",
        "company_name": "Zoë's Café",
        "given_name": "Zoë",
        "family_name": "Müller",
        "email": "zoe@example.com",
        "billing_name": "Ann O'Brien",
        "billing_email": "billing@example.com",
        "bill_addr": CanonicalAddress(line1="1 Main St", city="Wellington"),
        "has_sale": True,
    }
    fields.update(overrides)
    return CanonicalCustomer(**fields)  # type: ignore[arg-type]


def test_R6_billing_contact_is_written_only_on_create() -> None:
    created = to_qbo.customer_create(_customer())
    assert created["PrimaryEmailAddr"] == {"Address": "billing@example.com"}
    assert created["GivenName"] == "Ann"
    assert created["FamilyName"] == "O'Brien"
    updated = to_qbo.customer_fields(_customer())
    assert "billing@example.com" not in repr(updated)
    assert "O'Brien" not in repr(updated)


def test_R6_a_contact_that_is_its_own_billing_contact_keeps_its_names_as_they_are() -> None:
    """With no other billing contact the reader gives the contact's own full name and email as
    the billing ones: the create writes the contact's fields, never a re-split full name."""
    own = _customer(
        given_name="Mary Ann",
        family_name="Lee",
        billing_name="Mary Ann Lee",
        email="mal@example.com",
        billing_email="mal@example.com",
    )
    assert to_qbo.customer_create(own) == to_qbo.customer_fields(own)
    assert to_qbo.customer_create(own)["GivenName"] == "Mary Ann"


def test_R6_billing_fields_qbo_holds_for_someone_else_are_foreign() -> None:
    created = to_qbo.customer_create(_customer())
    kept = to_qbo.customer_fields(_customer())
    assert to_qbo.foreign_fields("Customer", kept, created) == {
        "GivenName",
        "FamilyName",
        "PrimaryEmailAddr",
    }
    assert to_qbo.foreign_fields("Customer", kept, kept) == frozenset()
    empty = {k: v for k, v in created.items() if k != "PrimaryEmailAddr"}
    assert "PrimaryEmailAddr" not in to_qbo.foreign_fields("Customer", kept, empty)
    assert to_qbo.foreign_fields("Vendor", kept, created) == frozenset()


def test_R6_billing_contact_change_alone_triggers_no_update() -> None:
    before = _customer()
    after = _customer(billing_email="new-billing@example.com", billing_name="Someone Else")
    assert before.content_hash() == after.content_hash()


def test_R7_update_is_sparse_and_field_level() -> None:
    last = to_qbo.customer_fields(_customer())
    new = to_qbo.customer_fields(_customer(email="zoe.new@example.com"))
    assert diff.changed_fields(new, last) == {
        "PrimaryEmailAddr": {"Address": "zoe.new@example.com"}
    }
    assert diff.changed_fields(last, last) == {}


def test_R10_unmatched_item_is_a_service_item_with_the_default_income_account() -> None:
    item = CanonicalItem(source_id=S("p2"), name="Training", unit_price=Decimal("80"))
    body = _built(to_qbo.item_create(item, _ctx()))
    assert body["Type"] == "Service"
    assert body["IncomeAccountRef"] == {"value": "79"}
    blocked = to_qbo.item_create(item, _ctx(default_income_account=None))
    assert isinstance(blocked, Blocked)
    assert "income" in blocked.violations[0].reason


def test_R19_R21_payment_linked_to_invoice_and_deposited_per_mapping() -> None:
    receipt = CanonicalReceipt(
        source_id=S("r1"),
        sale_source_id=S("s1"),
        customer_source_id=S("c1"),
        amount=Decimal("100"),
        received_on=date(2026, 3, 5),
        payment_method_source_id=S("pm1"),
        reference="R-1",
    )
    body = _built(to_qbo.payment_body(receipt, _ctx()))
    assert body["Line"] == [
        {"Amount": Decimal("100.00"), "LinkedTxn": [{"TxnId": "130", "TxnType": "Invoice"}]}
    ]
    assert body["DepositToAccountRef"] == {"value": "35"}
    assert body["PaymentMethodRef"] == {"value": "4"}
    unmapped = to_qbo.payment_body(replace(receipt, payment_method_source_id=S("pm9")), _ctx())
    assert isinstance(unmapped, Blocked)
    assert "Bitcoin" in unmapped.violations[0].reason


def test_R23_R24_bill_lines_take_the_expense_account_of_their_concept() -> None:
    bill = CanonicalBill(
        source_id=S("b1"),
        vendor_source_id=S("w1"),
        doc_number="W-7",
        txn_date=date(2026, 3, 2),
        lines=(
            CanonicalBillLine(line_no=1, concept="Development", amount=Decimal("900")),
            CanonicalBillLine(line_no=2, concept="Travel", amount=Decimal("120")),
        ),
        total=Decimal("1020"),
    )
    blocked = to_qbo.bill_body(bill, _ctx())
    assert isinstance(blocked, Blocked)
    assert "Travel" in blocked.violations[0].reason
    body = _built(
        to_qbo.bill_body(bill, _ctx(expense_accounts={"Development": "60", "Travel": "61"}))
    )
    assert body["VendorRef"] == {"value": "91"}
    accounts = [
        ln["AccountBasedExpenseLineDetail"]["AccountRef"]["value"]  # type: ignore[index]
        for ln in body["Line"]
    ]  # type: ignore[union-attr]
    assert accounts == ["60", "61"]


def _row(entity: str, created_by: str, **overrides: object) -> RecordState:
    fields: dict[str, object] = {
        "realm_id": "1",
        "entity": entity,
        "source_id": S("s1"),
        "qbo_id": QboId("130"),
        "created_by": created_by,
        "sync_token": "0",
    }
    fields.update(overrides)
    return RecordState(**fields)  # type: ignore[arg-type]


def test_R33_unchanged_record_plans_no_write() -> None:
    sale = _sale()
    row = _row("invoices", "sync", source_hash=sale.content_hash())
    plan = plan_record(SPECS["invoices"], sale, row, _ctx())
    assert plan.action == "skip"
    assert plan.reason == "unchanged"


def test_R4_contact_without_a_sale_is_not_pushed() -> None:
    plan = plan_record(SPECS["customers"], _customer(has_sale=False), None, _ctx())
    assert plan.action == "skip"
    assert "R4" in (plan.reason or "")


def test_R9_deleting_a_contact_never_deletes_the_customer() -> None:
    plan = plan_delete(entities.entity("customers"), _row("customers", "sync"))
    assert plan.action == "skip"


def test_R17_sale_deleted_in_source_deletes_invoice_only_if_sync_created_it() -> None:
    invoices = entities.entity("invoices")
    assert plan_delete(invoices, _row("invoices", "sync")).action == "delete"
    assert plan_delete(invoices, _row("invoices", "qbo")).action == "skip"
    assert plan_delete(invoices, _row("invoices", "matched")).action == "skip"


def test_R22_receipt_deleted_in_source_deletes_payment_only_if_sync_created_it() -> None:
    payments = entities.entity("payments")
    assert plan_delete(payments, _row("payments", "sync")).action == "delete"
    assert plan_delete(payments, _row("payments", "qbo")).action == "skip"


def test_push_order_follows_references() -> None:
    order = [e.name for e in entities.push_order()]
    assert order.index("customers") < order.index("invoices") < order.index("payments")
    assert order.index("items") < order.index("invoices")
    assert order.index("vendors") < order.index("bills")


def test_R17_refused_delete_is_retried_then_voided() -> None:
    """Issue 9 #8: the void fallback. A delete QBO keeps refusing (a payment still applied, a
    deposit) is retried as a delete, then carried out as a void of the invoice."""
    invoices = entities.entity("invoices")
    row = _row("invoices", "sync", qbo_entity="Invoice", error_code="6000")
    assert plan_delete(invoices, replace(row, attempt=1)).action == "delete"
    assert plan_delete(invoices, replace(row, attempt=3)).action == "void"
    gone = replace(row, attempt=3, error_code="610")
    assert plan_delete(invoices, gone).action == "delete"


def test_R31_a_610_about_an_inactive_reference_says_to_reactivate_it_not_that_it_was_deleted() -> (
    None
):
    """QBO refuses a create (or an update) naming an inactive customer or item with 610: the fix
    names what to make active again, never "the invoice was deleted in QBO" (the invoice is
    not in QBO at all)."""
    from qbo_pipelines.qbo.errors import QboError
    from qbo_pipelines.sync.engine.writes import fix_for

    detail = "Object Not Found : Something you're trying to use has been made inactive."
    item = QboError(
        "Object Not Found", code="610", detail=detail, element="Line.SalesItemLineDetail.ItemRef"
    )
    assert "sales item line detail" not in fix_for(item, "Invoice", "update")
    assert "item this record refers to is inactive" in fix_for(item, "Invoice", "update")
    customer = QboError("Object Not Found", code="610", detail=detail, element="CustomerRef")
    assert "customer this record refers to is inactive" in fix_for(customer, "Invoice", "create")
    bare = QboError("Object Not Found", code="610", detail=detail)
    assert "deleted in QBO" not in fix_for(bare, "Invoice", "create")
    gone = QboError(
        "Object Not Found", code="610", detail="Another user has deleted this transaction."
    )
    assert "the invoice was deleted in QBO" in fix_for(gone, "Invoice", "update")
