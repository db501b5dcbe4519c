"""R40 hostile input: the per-record rules added for the bad-input corpus (issue 9, point 11)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest
from quality_factories import bill, customer, item, line, receipt, sale, vendor

from qbo_pipelines.canonical import (
    CanonicalAddress,
    CanonicalBillLine,
    CanonicalSaleLine,
    InvalidValue,
    SourceId,
)
from qbo_pipelines.qbo import query as q
from qbo_pipelines.quality import rules
from qbo_pipelines.quality.rules import Violation, check


def rule_ids(vs: list[Violation]) -> list[str]:
    return [v.rule for v in vs]


def only(vs: list[Violation], rule: str) -> Violation:
    found = [v for v in vs if v.rule == rule]
    assert len(found) == 1, (rule, vs)
    return found[0]


# --------------------------------------------------------------------------- control characters


@pytest.mark.parametrize(
    "char", ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\x9b", "\ud800"],
    ids=["NUL", "BEL", "ESC", "DEL", "NEL-C1", "CSI-C1", "lone-surrogate"],
)
def test_R40_control_characters_in_names_are_held(char: str) -> None:
    v = only(check(customer(display_name=f"Acme{char}Ltd")),
             "customer.display_name.control_character")
    assert "U+" in v.reason
    assert v.fix
    assert "control character" in v.fix

    # The query builder refuses what no literal can express with a typed error; the rules
    # hold every such value first, so the R5 name match never meets one.
    if ord(char) < 0x80 or 0xD800 <= ord(char) <= 0xDFFF:
        with pytest.raises(q.UnquotableValueError):
            q.quote_string(f"Acme{char}Ltd")


def test_R40_every_name_field_refuses_control_characters() -> None:
    assert "customer.given_name.control_character" in rule_ids(check(customer(given_name="A\x07")))
    assert "customer.family_name.control_character" in rule_ids(
        check(customer(family_name="\x1bB")))
    assert "customer.company_name.control_character" in rule_ids(
        check(customer(company_name="C\x7f")))
    assert "customer.billing_name.control_character" in rule_ids(
        check(customer(billing_name="Bill\x07 Payer")))
    assert "customer.phone.control_character" in rule_ids(check(customer(phone="555\x07")))
    assert "item.name.control_character" in rule_ids(check(item(name="Widget\x07")))
    assert "vendor.display_name.control_character" in rule_ids(
        check(vendor(display_name="V\x1b")))
    assert "receipt.reference.control_character" in rule_ids(check(receipt(reference="R\x07")))
    assert "sale.doc_number.control_character" in rule_ids(check(sale(doc_number="S-\x071")))


def test_R40_tab_and_newline_in_names_stay_the_forbidden_character_rule() -> None:
    vs = check(customer(display_name="Tab\tCo"))
    assert "customer.display_name.forbidden_character" in rule_ids(vs)
    assert "customer.display_name.control_character" not in rule_ids(vs)


def test_R40_free_text_allows_tab_and_line_breaks_but_not_other_controls() -> None:
    assert check(sale(memo="Line one\r\nLine two\ttabbed")) == []
    assert "sale.memo.control_character" in rule_ids(check(sale(memo="Call me\x07")))
    bad_line = CanonicalSaleLine(line_no=5, kind="item", item_source_id=SourceId("3"),
                                 description="Esc\x1b", amount=D("0"))
    assert "sale.lines.description_control_character" in rule_ids(
        check(sale(lines=(*sale().lines, bad_line))))
    addr = CanonicalAddress(line1="1 Main\x1bSt", city="Springfield")
    assert "customer.address.line1.control_character" in rule_ids(check(customer(bill_addr=addr)))
    assert "bill.memo.control_character" in rule_ids(check(bill(memo="x\x1b")))
    bill_lines = (CanonicalBillLine(line_no=1, concept="Dev\x07", amount=D("345.50")),)
    assert "bill.lines.concept_control_character" in rule_ids(check(bill(lines=bill_lines)))


# --------------------------------------------------------------------------- what QBO accepts


@pytest.mark.parametrize(
    "name",
    [
        "Party 🎉 Café Ltd",
        "شركة الأمل للتجارة",
        "חברת אור Ltd",
        "O'Brien \"Quoted\" \\ Backslash & Sons",
        "Ends With Backslash \\",
        "Zero\u200dWidth Joiner",  # a format character (emoji sequences use it), not a control
    ],
)
def test_R40_unicode_quotes_and_backslashes_are_valid_names(name: str) -> None:
    assert check(customer(display_name=name, company_name=None)) == []
    literal = q.quote_string(name)
    assert q.unquote_string(literal) == name


def test_R40_lengths_count_utf16_units_like_qbo() -> None:
    assert rules.qbo_length("🎉") == 2
    assert rules.qbo_length("é") == 1
    assert check(customer(display_name="🎉" * 250, company_name=None)) == []
    v = only(check(customer(display_name="🎉" * 251, company_name=None)),
             "customer.display_name.too_long")
    assert "is 502 characters, QBO allows 500" in v.reason


# --------------------------------------------------------------------------- unreadable values


@pytest.mark.parametrize(
    ("raw", "stand_in"),
    [("infinity", date.max), ("10000-01-01", date.max), ("-infinity", date.min),
     ("0044-03-15 BC", date.min)],
)
def test_R40_unreadable_sale_date_is_held_quoting_the_raw_value(raw: str, stand_in: date) -> None:
    bad = InvalidValue(field="txn_date", raw=raw, problem="is not a date")
    vs = check(sale(txn_date=stand_in, due_date=None, invalid=(bad,)))
    v = only(vs, "sale.txn_date.out_of_range")
    assert f"'{raw}'" in v.reason
    assert v.fix
    assert "Correct txn_date" in v.fix
    assert "sale.due_date.before_txn_date" not in rule_ids(vs)


def test_R40_unreadable_due_date_receipt_and_bill_dates() -> None:
    due = InvalidValue(field="due_date", raw="infinity", problem="is not a date")
    assert rule_ids(check(sale(due_date=date.max, invalid=(due,)))) == [
        "sale.due_date.out_of_range"]
    got = InvalidValue(field="received_on", raw="10000-02-01", problem="is not a date")
    assert rule_ids(check(receipt(received_on=date.max, invalid=(got,)))) == [
        "receipt.received_on.out_of_range"]
    issued = InvalidValue(field="txn_date", raw="0100-01-01 BC", problem="is not a date")
    assert "bill.txn_date.out_of_range" in rule_ids(
        check(bill(txn_date=date.min, invalid=(issued,))))


def test_R40_missing_required_date_is_required_rule() -> None:
    empty = InvalidValue(field="txn_date", raw="", problem="is empty")
    assert "sale.txn_date.required" in rule_ids(check(sale(txn_date=date.max, invalid=(empty,))))


@pytest.mark.parametrize("day", [date(1, 1, 1), date(9999, 12, 31)])
def test_R40_dates_in_year_1_or_9999_are_held(day: date) -> None:
    assert "sale.txn_date.out_of_range" in rule_ids(check(sale(txn_date=day, due_date=None)))


def test_R40_invalid_marker_is_not_hashed() -> None:
    bad = InvalidValue(field="txn_date", raw="infinity", problem="x")
    assert sale(invalid=(bad,)).content_hash() == sale().content_hash()


# --------------------------------------------------------------------------- references and money


@pytest.mark.parametrize("make", [sale, receipt], ids=["sale", "receipt"])
def test_R40_no_contact_is_customer_required(make: object) -> None:
    record = make(customer_source_id=None)  # type: ignore[operator]
    vs = check(record)
    kind = "sale" if make is sale else "receipt"
    v = only(vs, f"{kind}.customer.required")
    assert "#None" not in v.reason
    assert v.fix


@pytest.mark.parametrize("amount", [D("NaN"), D("Infinity"), D("1E+30"), D("10000000000.00")])
def test_R40_absurd_amounts_are_held_not_raised(amount: D) -> None:
    assert "receipt.amount.invalid" in rule_ids(check(receipt(amount=amount)))
    lines = (line(1, qty=D("1"), unit_price=D("1"), amount=amount),)
    vs = check(sale(lines=lines, subtotal=amount, discount_total=D("0"), tax_total=D("0"),
                    total=amount))
    assert "sale.total.invalid" in rule_ids(vs)


def test_R40_quantities_and_prices_in_10_5_format() -> None:
    ok = (line(1, qty=D("3"), unit_price=D("0.33333"), amount=D("1.00")),)
    totals = {"subtotal": D("1.00"), "discount_total": D("0"), "tax_total": D("0"),
              "total": D("1.00")}
    assert check(sale(lines=ok, **totals)) == []
    too_fine = (line(1, qty=D("3"), unit_price=D("0.333333"), amount=D("1.00")),)
    assert "sale.lines.qty_or_price_invalid" in rule_ids(check(sale(lines=too_fine, **totals)))


def test_R40_more_than_750_lines_are_held_taxed_or_not() -> None:
    many = tuple(line(n, qty=D("1"), unit_price=D("1"), amount=D("1.00"),
                      tax_rate_source_id=None) for n in range(1, 1001))
    totals = {"subtotal": D("1000.00"), "discount_total": D("0"), "tax_total": D("0"),
              "total": D("1000.00")}
    v = only(check(sale(lines=many, **totals)), "sale.lines.too_many")
    assert "1000 lines" in v.reason
    assert v.fix
    assert check(sale(lines=many[:750], subtotal=D("750.00"), discount_total=D("0"),
                      tax_total=D("0"), total=D("750.00"))) == []
    bill_lines = tuple(CanonicalBillLine(line_no=n, concept="Development", amount=D("1.00"))
                       for n in range(1, 752))
    assert "bill.lines.too_many" in rule_ids(check(bill(lines=bill_lines, total=D("751.00"))))


def test_R40_zero_total_sale_syncs() -> None:
    zero = (line(1, qty=D("1"), unit_price=D("0"), amount=D("0.00")),)
    assert check(sale(lines=zero, subtotal=D("0"), discount_total=D("0"), tax_total=D("0"),
                      total=D("0"))) == []


def test_R40_unquotable_value_is_a_hold_for_that_record() -> None:
    record = customer(display_name="Acme\x07Ltd")
    with pytest.raises(q.UnquotableValueError) as raised:
        q.quote_string(record.display_name)
    v = rules.unquotable_value(record, "display_name", raised.value.value)
    assert v.rule == "customer.display_name.control_character"
    assert v.fix
