"""Per-record data-quality rules (R40; reference helpers for R12, R19, R24; reasons for R31)."""

from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal as D

import pytest
from quality_factories import bill, customer, item, line, receipt, sale, vendor

from qbo_pipelines.canonical import (
    CanonicalAddress,
    CanonicalBillLine,
    CanonicalPaymentMethod,
    CanonicalSaleLine,
    CanonicalTaxRate,
    SourceId,
)
from qbo_pipelines.quality import rules
from qbo_pipelines.quality.rules import Violation, check


def rule_ids(vs: list[Violation]) -> list[str]:
    return [v.rule for v in vs]


def only(vs: list[Violation], rule: str) -> Violation:
    found = [v for v in vs if v.rule == rule]
    assert len(found) == 1, (rule, vs)
    return found[0]


# ---------------------------------------------------------------------------------------------
# Clean records pass
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "record",
    [customer(), item(), sale(), receipt(), vendor(), bill()],
    ids=["customer", "item", "sale", "receipt", "vendor", "bill"],
)
def test_R40_clean_records_pass(record: object) -> None:
    assert check(record) == []


def test_R40_mapped_only_entities_have_no_record_rules() -> None:
    assert check(CanonicalTaxRate(source_id=SourceId("1"), name="GST", rate=D("15"))) == []
    assert check(CanonicalPaymentMethod(source_id=SourceId("1"), name="Card")) == []


def test_R40_unknown_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="no data-quality rules for str"):
        check("not a record")


# ---------------------------------------------------------------------------------------------
# Required fields
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "rule"),
    [
        (customer(display_name="  "), "customer.display_name.required"),
        (customer(source_id=SourceId("")), "customer.source_id.required"),
        (item(name=""), "item.name.required"),
        (sale(customer_source_id=SourceId("")), "sale.customer.required"),
        (sale(lines=(line(1, item_source_id=None),)), "sale.lines.item_required"),
        (receipt(customer_source_id=SourceId(" ")), "receipt.customer.required"),
        (vendor(display_name=""), "vendor.display_name.required"),
        (bill(vendor_source_id=SourceId("")), "bill.vendor.required"),
        (bill(lines=(CanonicalBillLine(line_no=1, concept=" ", amount=D("1")),),
              total=D("1")), "bill.lines.concept_required"),
    ],
)
def test_R40_required_fields(record: object, rule: str) -> None:
    vs = check(record)
    assert rule in rule_ids(vs)
    v = only(vs, rule)
    assert v.fix


def test_R40_required_reason_names_the_record() -> None:
    v = only(check(customer(display_name="")), "customer.display_name.required")
    assert v.reason.startswith("customer #17:")
    assert "display name is empty" in v.reason


def test_R40_sale_needs_an_item_line() -> None:
    only_tax = (CanonicalSaleLine(line_no=1, kind="tax", amount=D("0")),)
    vs = check(sale(lines=only_tax, subtotal=D("0"), discount_total=D("0"), tax_total=D("0"),
                    total=D("0")))
    v = only(vs, "sale.lines.required")
    assert "sale S-1042 (#77)" in v.reason
    assert "1 line(s)" in v.reason


def test_R40_bill_needs_a_line() -> None:
    v = only(check(bill(lines=(), total=D("0"))), "bill.lines.required")
    assert v.reason == "bill INV-9 (#8): has no lines; a QBO bill needs at least one"


# ---------------------------------------------------------------------------------------------
# Email format: only where it is written
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    ["bob@@acme.example", "bob", "bob@acme", "bob @acme.example", ".bob@acme.example",
     "bo..b@acme.example", "bob@-acme.example", "a@b.c", "x" * 95 + "@a.com", "bob@acme.example,"],
)
def test_R40_malformed_contact_email_holds_the_customer(bad: str) -> None:
    v = only(check(customer(email=bad)), "customer.email.format")
    assert bad.strip()[:40] in v.reason
    assert v.reason.startswith("customer 'Acme Ltd' (#17): email ")
    assert v.fix is not None
    assert "email" in v.fix


@pytest.mark.parametrize(
    "good",
    ["a@b.co", "first.last+tag@sub.example.org", "O'Brien@example.ie", "", None],
)
def test_R40_valid_or_blank_emails_pass(good: str | None) -> None:
    assert check(customer(email=good, billing_email=good)) == []
    assert check(vendor(email=good)) == []
    assert check(sale(billing_email=good)) == []


@pytest.mark.parametrize(("value", "why"), [("  ann@acme.example ", "has spaces around it"),
                                             ("   ", "is not a valid address")])
def test_R40_emails_are_checked_as_written(value: str, why: str) -> None:
    v = only(check(customer(email=value)), "customer.email.format")
    assert v.reason == f"customer 'Acme Ltd' (#17): email '{value}' {why}"


def test_R40_normalise_email() -> None:
    assert rules.normalise_email("  a@b.co ") == "a@b.co"
    assert rules.normalise_email("   ") is None
    assert rules.normalise_email(None) is None


def test_R40_R6_billing_name_checked_when_the_customer_is_created() -> None:
    c = customer(billing_name="Ann: Smith")
    assert rule_ids(check(c)) == ["customer.billing_name.forbidden_character"]
    assert rules.check_customer(c, creating=False) == []
    long_part = customer(billing_name="Ann " + "S" * 101)
    assert rule_ids(check(long_part)) == ["customer.billing_name.too_long"]
    assert check(customer(billing_name="Ann " + "S" * 100)) == []


def test_R40_R6_billing_email_checked_only_when_the_customer_is_created() -> None:
    c = customer(billing_email="billing@@acme")
    assert rule_ids(rules.check_customer(c, creating=True)) == ["customer.billing_email.format"]
    assert "written to QBO when the customer is created" in check(c)[0].reason
    assert rules.check_customer(c, creating=False) == []
    assert check(c, creating=False) == []
    assert check(sale(billing_email="bad"), creating=False) != []


def test_R40_R18_malformed_billing_email_blocks_a_sale_to_be_sent() -> None:
    v = only(check(sale(billing_email="ap@acme")), "sale.billing_email.format")
    assert v.reason == (
        "sale S-1042 (#77): billing_email 'ap@acme' is not a valid address; the invoice is to "
        "be emailed to it, so it cannot be sent"
    )
    # The sale has no email of its own: the fix names the contact whose email it is.
    assert v.fix is not None
    assert "billing contact" in v.fix
    assert "correct that contact's email" in v.fix
    not_sent = only(check(sale(billing_email="ap@acme", send_requested=False)),
                    "sale.billing_email.format")
    assert "cannot be sent" not in not_sent.reason
    vendor_fix = only(check(vendor(email="jane at roe")), "vendor.email.format").fix
    assert vendor_fix == "Correct email in the source app (name@example.com), or clear it."


def test_R18_sale_to_send_without_billing_email_is_not_held() -> None:
    assert check(sale(billing_email=None, send_requested=True)) == []


def test_R40_vendor_email_format() -> None:
    v = only(check(vendor(email="jane at roe")), "vendor.email.format")
    assert "'jane at roe'" in v.reason


# ---------------------------------------------------------------------------------------------
# Amounts and totals
# ---------------------------------------------------------------------------------------------


def test_R40_line_amount_must_be_qty_times_unit_price() -> None:
    bad = (line(3, qty=D("2"), unit_price=D("25.00"), amount=D("40.00")),)
    vs = check(sale(lines=bad, subtotal=D("40.00"), discount_total=D("0"), tax_total=D("0"),
                    total=D("40.00")))
    v = only(vs, "sale.lines.amount_mismatch")
    assert v.reason == (
        "sale S-1042 (#77) line 3: amount 40.00 is not qty 2 × unit price 25.00 = 50.00"
    )
    assert v.fix is not None
    assert "6070" in v.fix


def test_R40_line_amount_within_half_a_cent_passes() -> None:
    ok = (line(1, qty=D("3"), unit_price=D("3.3333"), amount=D("10.00")),)
    assert check(sale(lines=ok, subtotal=D("10.00"), discount_total=D("0"), tax_total=D("0"),
                      total=D("10.00"))) == []


def test_R40_line_without_qty_and_price_checks_amount_only() -> None:
    ok = (line(1, qty=None, unit_price=None, amount=D("99.00")),)
    assert check(sale(lines=ok, subtotal=D("99.00"), discount_total=D("0"), tax_total=D("0"),
                      total=D("99.00"))) == []


def test_R40_sale_total_must_be_subtotal_plus_discounts_plus_tax() -> None:
    v = only(check(sale(total=D("70.00"))), "sale.total_mismatch")
    assert v.reason == (
        "sale S-1042 (#77): total 70.00 is not subtotal 62.35 + discounts -6.24 + tax 8.42 = 64.53"
    )


@pytest.mark.parametrize(
    ("field", "rule"),
    [("subtotal", "sale.subtotal_mismatch"), ("discount_total", "sale.discount_total_mismatch"),
     ("tax_total", "sale.tax_total_mismatch")],
)
def test_R40_sale_subtotals_must_match_their_lines(field: str, rule: str) -> None:
    s = sale()
    wrong = dataclasses.replace(s, **{field: getattr(s, field) + D("1")})
    assert rule in rule_ids(check(wrong))


def test_R40_two_bad_lines_are_two_violations_of_one_rule_merged_for_storage() -> None:
    bad = (line(1, amount=D("1.00")), line(2, amount=D("2.00")))
    vs = check(sale(lines=bad, subtotal=D("3.00"), discount_total=D("0"), tax_total=D("0"),
                    total=D("3.00")))
    assert rule_ids(vs) == ["sale.lines.amount_mismatch", "sale.lines.amount_mismatch"]
    merged = rules.merge_by_rule(vs)
    assert len(merged) == 1
    assert "line 1" in merged[0].reason
    assert "line 2" in merged[0].reason


def test_R40_discount_line_must_not_be_positive() -> None:
    lines = (line(1), CanonicalSaleLine(line_no=2, kind="discount", amount=D("5.00")))
    vs = check(sale(lines=lines, subtotal=D("50.00"), discount_total=D("5.00"),
                    tax_total=D("0"), total=D("55.00")))
    v = only(vs, "sale.lines.discount_positive")
    assert "line 2: discount amount 5.00 is positive" in v.reason


def test_R40_fractions_of_a_cent_are_refused() -> None:
    v = only(check(receipt(amount=D("10.005"))), "receipt.amount.invalid")
    assert "amount 10.005 has fractions of a cent" in v.reason


def test_R40_non_finite_amounts_do_not_raise() -> None:
    for value in (D("NaN"), D("sNaN"), D("Infinity")):
        vs = check(receipt(amount=value))
        assert "receipt.amount.invalid" in rule_ids(vs)
        vs = check(sale(total=value))
        assert "sale.total.invalid" in rule_ids(vs)
        vs = check(sale(lines=(line(1, qty=value),)))
        assert "sale.lines.qty_or_price_invalid" in rule_ids(vs)


@pytest.mark.parametrize("amount", [D("0"), D("-5.00")])
def test_R40_receipt_amount_must_be_positive(amount: D) -> None:
    v = only(check(receipt(amount=amount)), "receipt.amount.not_positive")
    assert f"receipt #5: amount {amount:.2f} is not positive" in v.reason


def test_R11_R40_negative_sale_is_a_credit_note_not_held() -> None:
    # A negative total is a credit note (pushed as a QBO CreditMemo), never held back.
    credit = (line(1, qty=D("-1"), unit_price=D("50.00"), amount=D("-50.00")),)
    vs = check(sale(lines=credit, subtotal=D("-50.00"), discount_total=D("0"),
                    tax_total=D("0"), total=D("-50.00")))
    assert vs == []


def test_R40_bill_total_is_the_sum_of_its_lines() -> None:
    v = only(check(bill(total=D("300.00"))), "bill.total_mismatch")
    assert v.reason == "bill INV-9 (#8): total 300.00 is not the sum of its lines 345.50"


def test_R40_bill_total_must_not_be_negative() -> None:
    lines = (CanonicalBillLine(line_no=1, concept="Refund", amount=D("-10.00")),)
    assert "bill.total.negative" in rule_ids(check(bill(lines=lines, total=D("-10.00"))))


def test_R40_duplicate_line_numbers() -> None:
    lines = (CanonicalBillLine(line_no=1, concept="A", amount=D("1")),
             CanonicalBillLine(line_no=1, concept="B", amount=D("2")))
    v = only(check(bill(lines=lines, total=D("3"))), "bill.lines.duplicate_line_no")
    assert "line number(s) 1 appear more than once" in v.reason


# ---------------------------------------------------------------------------------------------
# QBO length limits and forbidden characters
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "rule", "limit"),
    [
        (customer(display_name="A" * 501), "customer.display_name.too_long", 500),
        (customer(given_name="G" * 101), "customer.given_name.too_long", 100),
        (customer(company_name="C" * 101), "customer.company_name.too_long", 100),
        (customer(phone="1" * 31), "customer.phone.too_long", 30),
        (customer(bill_addr=CanonicalAddress(postal_code="9" * 31)),
         "customer.address.postal_code.too_long", 30),
        (item(name="I" * 101), "item.name.too_long", 100),
        (item(description="d" * 4001), "item.description.too_long", 4000),
        (sale(doc_number="S" * 22), "sale.doc_number.too_long", 21),
        (sale(memo="m" * 4001), "sale.memo.too_long", 4000),
        (receipt(reference="R" * 22), "receipt.reference.too_long", 21),
        (vendor(display_name="V" * 501), "vendor.display_name.too_long", 500),
        (bill(doc_number="B" * 22), "bill.doc_number.too_long", 21),
        (bill(memo="m" * 4001), "bill.memo.too_long", 4000),
    ],
)
def test_R40_qbo_length_limits(record: object, rule: str, limit: int) -> None:
    v = only(check(record), rule)
    assert f"QBO allows {limit}" in v.reason
    assert v.fix is not None
    assert f"at most {limit} characters" in v.fix


def test_R40_length_limit_is_inclusive() -> None:
    assert check(customer(display_name="A" * 500)) == []
    assert check(item(name="I" * 100)) == []
    assert check(sale(doc_number="S" * 21)) == []


def test_R40_long_values_are_shortened_in_reasons() -> None:
    v = only(check(customer(display_name="A" * 612)), "customer.display_name.too_long")
    assert "(612 characters)" in v.reason
    assert len(v.reason) < 300


@pytest.mark.parametrize(
    ("record", "rule"),
    [
        (customer(display_name="Acme: Ltd"), "customer.display_name.forbidden_character"),
        (customer(family_name="Smith\tJr"), "customer.family_name.forbidden_character"),
        (vendor(display_name="Jane\nRoe"), "vendor.display_name.forbidden_character"),
        (item(name="Consulting:Senior"), "item.name.forbidden_character"),
    ],
)
def test_R40_forbidden_characters_in_names(record: object, rule: str) -> None:
    v = only(check(record), rule)
    assert "which QBO does not allow in names" in v.reason
    assert v.fix is not None
    assert v.fix.startswith("Remove the ")


def test_R40_colon_reason_names_the_value() -> None:
    v = only(check(customer(display_name="Acme: Ltd")),
             "customer.display_name.forbidden_character")
    assert v.reason == (
        "customer 'Acme: Ltd' (#17): display_name 'Acme: Ltd' contains a colon ':', which QBO "
        "does not allow in names"
    )


# ---------------------------------------------------------------------------------------------
# Dates
# ---------------------------------------------------------------------------------------------


def test_R40_due_date_before_txn_date() -> None:
    v = only(check(sale(due_date=date(2024, 4, 30))), "sale.due_date.before_txn_date")
    assert v.reason == "sale S-1042 (#77): due date 2024-04-30 is before the sale date 2024-05-01"
    assert "bill.due_date.before_txn_date" in rule_ids(check(bill(due_date=date(2024, 1, 1))))


def test_R40_due_date_equal_to_txn_date_passes() -> None:
    assert check(sale(due_date=date(2024, 5, 1))) == []


def test_R40_absurd_dates_are_held() -> None:
    assert "sale.txn_date.out_of_range" in rule_ids(
        check(sale(txn_date=date(1, 1, 1), due_date=None)))
    assert "receipt.received_on.out_of_range" in rule_ids(
        check(receipt(received_on=date(9999, 1, 1))))


# ---------------------------------------------------------------------------------------------
# Reference helpers (decided by the planner, same dataclass)
# ---------------------------------------------------------------------------------------------


def test_R12_unmapped_tax_rate_fails_with_reason() -> None:
    s = sale()
    v = rules.missing_mapping(
        "tax_rate", "GST 15%", "qbo-pipelines mappings set tax-rate 'GST 15%' --tax-code 5",
        record=rules.record_label(s),
    )
    assert v.rule == "mapping.tax_rate.missing"
    assert v.reason == "sale S-1042 (#77): tax rate 'GST 15%' has no QBO mapping"
    assert v.fix is not None
    assert "`qbo-pipelines mappings set tax-rate 'GST 15%' --tax-code 5`" in v.fix


def test_R19_R24_missing_mapping_kinds() -> None:
    pm = rules.missing_mapping("payment_method", "Card", "qbo-pipelines mappings set pm")
    assert pm.rule == "mapping.payment_method.missing"
    assert pm.reason == "payment method 'Card' has no QBO mapping"
    ex = rules.missing_mapping("expense_concept", "Travel", "x", record="bill INV-9 (#8)")
    assert ex.reason == "bill INV-9 (#8): expense concept 'Travel' has no QBO mapping"


def test_R40_unresolved_reference() -> None:
    v = rules.unresolved_reference("customer", "17", record="sale S-1042 (#77)")
    assert v.rule == "reference.customer.unresolved"
    assert v.reason.startswith("sale S-1042 (#77): customer #17 is not in QBO yet")
    assert v.fix is not None
    assert "customer #17" in v.fix
    custom = rules.unresolved_reference("invoice", "77", why="was deleted in QBO", fix="Re-link.")
    assert custom.reason == "invoice #77 was deleted in QBO"
    assert custom.fix == "Re-link."


def test_R31_record_labels() -> None:
    assert rules.record_label(customer()) == "customer 'Acme Ltd' (#17)"
    assert rules.record_label(sale(doc_number=None)) == "sale #77"
    assert rules.record_label(sale(doc_number="has space")) == "sale 'has space' (#77)"
    assert rules.record_label(receipt()) == "receipt #5"
    assert rules.record_label(bill()) == "bill INV-9 (#8)"
    assert rules.record_label(vendor()) == "vendor 'Jane Roe Design' (#4)"
    assert rules.record_label(item()) == "item 'Consulting' (#3)"


def test_R31_every_violation_has_a_fix() -> None:
    bad = [
        customer(display_name="", email="x", phone="1" * 40),
        item(name="a:b" * 50),
        sale(total=D("1"), due_date=date(2000, 1, 1), billing_email="@", doc_number=" "),
        receipt(amount=D("-1"), reference="r" * 30),
        vendor(display_name="a\tb", email="nope"),
        bill(total=D("-1"), lines=()),
    ]
    for record in bad:
        vs = check(record)
        assert vs, record
        for v in vs:
            assert v.fix, v
            assert v.reason.startswith(rules.record_label(record)), v


# ---------------------------------------------------------------------------------------------
# Cross-record: display names unique across customers and vendors (QBO 6240, R5)
# ---------------------------------------------------------------------------------------------


