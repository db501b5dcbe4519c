"""The rules' quick tests (issue 9, speed) decide nothing themselves.

Every record gets exactly the violations, in the same order, that the constraint table and the
sale-line rules give when every rule is evaluated in full; the shortcuts the helpers take
(printable text, short text, whole cents from the Decimal's text) hold for hostile values too:
NUL and other control characters, lone surrogates, emoji, NaN / Infinity / huge decimals,
dates in years 1 and 9999.
"""

from __future__ import annotations

import decimal
import unicodedata
from collections.abc import Callable
from datetime import date
from decimal import Decimal as D
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from quality_factories import bill, customer, item, receipt, sale, vendor
from test_quality_properties import bills, customers, decimals, items, receipts, sales, vendors

from qbo_pipelines.canonical import CanonicalSale
from qbo_pipelines.quality import constraints, rules
from qbo_pipelines.quality.rules import Violation

T = TypeVar("T")
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
hostile_text = st.text(
    alphabet=st.characters(codec=None, exclude_categories=()), max_size=80
) | st.sampled_from(["", " ", "A\x00B", "x\u0085", "\ud800", "😀" * 60, "a:b", "tab\there"])


def _safe(func: Callable[[], T]) -> T:
    """Evaluate as the record checks do (:func:`rules.decimal_safe`)."""
    return rules.decimal_safe(func)()


def _full_table(entity: str, record: Any, *, creating: bool = True) -> list[Violation]:
    """The table's field constraints evaluated in full, without the quick tests."""
    label = rules.record_label(record)
    return [
        v
        for col in constraints.TABLES[entity].columns
        if not (col.create_only and not creating)
        for c in col.constraints
        if not c.record_level
        for v in rules._constraint_rules(col, c, label, record)
    ]


def _same_table_rules(entity: str, record: Any, creating: bool = True) -> None:
    fast = _safe(lambda: rules._table_rules(entity, record, creating=creating))
    assert fast == _safe(lambda: _full_table(entity, record, creating=creating))


@SETTINGS
@given(customers, st.booleans())
def test_customer_table_rules_are_the_full_evaluation(record: Any, creating: bool) -> None:
    _same_table_rules("customers", record, creating)


@SETTINGS
@given(
    st.one_of(
        items.map(lambda r: ("items", r)),
        receipts.map(lambda r: ("payments", r)),
        vendors.map(lambda r: ("vendors", r)),
        bills.map(lambda r: ("bills", r)),
    )
)
def test_other_table_rules_are_the_full_evaluation(case: tuple[str, Any]) -> None:
    _same_table_rules(*case)


@SETTINGS
@given(sales)
def test_sale_table_and_line_rules_are_the_full_evaluation(sale: CanonicalSale) -> None:
    _same_table_rules("invoices", sale)
    label = rules.record_label(sale)
    assert _safe(lambda: rules._sale_line_rules(label, sale)) == _safe(
        lambda: _every_line_rule(label, sale)
    )


def _every_line_rule(label: str, s: CanonicalSale) -> list[Violation]:
    """The sale-line rules with every group evaluated for every line (no quick tests)."""
    p = "sale"
    out: list[Violation] = []
    if not [line for line in s.lines if line.kind == "item"]:
        out.append(
            Violation(
                f"{p}.lines.required",
                f"{label}: has no item lines ({len(s.lines)} line(s) in all); a QBO invoice "
                "needs at least one",
                "Add the products or services sold to the sale in the source app.",
            )
        )
    out += rules._too_many_lines(p, label, len(s.lines))
    out += rules._duplicate_line_nos(p, label, [line.line_no for line in s.lines])
    for line in s.lines:
        where = f"{label} line {line.line_no}"
        out += rules._max_len(
            f"{p}.lines.description_too_long",
            where,
            "description",
            line.description,
            constraints.DESCRIPTION_MAX,
            "Line.Description",
        )
        out += rules._no_control(
            f"{p}.lines.description_control_character",
            where,
            "description",
            line.description,
            allow_breaks=True,
        )
        out += rules._money_rules(f"{p}.lines.amount_invalid", where, "amount", line.amount)
        if line.kind == "item":
            out += rules._item_line_rules(
                where, line.item_source_id, line.qty, line.unit_price, line.amount
            )
        elif line.kind == "discount":
            out += rules._discount_line_rules(where, line.amount, line.discount_percent)
    return out


@SETTINGS
@given(hostile_text)
def test_text_shortcuts_hold_for_any_text(text: str) -> None:
    control = [ch for ch in text if unicodedata.category(ch) in ("Cc", "Cs")]
    if text.isprintable():  # the control-character shortcut
        assert control == []
    assert rules._has_control(text) == bool(control)
    assert (rules._FORBIDDEN_SEARCH(text) is not None) == any(
        ch in constraints.NAME_FORBIDDEN for ch in text
    )
    assert rules.qbo_length(text) <= 2 * len(text)  # the length shortcut


def _cents_by_normalising(value: D) -> bool:
    if not value.is_finite():
        return False
    exponent = value.normalize().as_tuple().exponent
    return isinstance(exponent, int) and exponent >= -2 and abs(value) < constraints.MONEY_MAX


def _rate_by_normalising(value: D) -> bool:
    if not value.is_finite() or abs(value) >= constraints.MONEY_MAX:
        return False
    exponent = value.normalize().as_tuple().exponent
    return isinstance(exponent, int) and exponent >= -constraints.MAX_DECIMALS


@SETTINGS
@given(
    decimals
    | st.sampled_from(
        [
            D("0.00"),
            D("-0.000"),
            D("12.50"),
            D("1.23456"),
            D("1.234560"),
            D("1E+3"),
            D("9999999999.99"),
            D("10000000000.00"),
            D("1.0050"),
        ]
    )
)
def test_money_shortcuts_are_the_normalised_answer(value: D) -> None:
    for traps in (True, False):
        with decimal.localcontext() as ctx:
            ctx.traps[decimal.Overflow] = traps
            ctx.traps[decimal.InvalidOperation] = traps
            try:
                expected = (_cents_by_normalising(value), _rate_by_normalising(value))
            except decimal.InvalidOperation:  # a signalling NaN with traps on: both raise
                continue
            assert (constraints.cents_ok(value), constraints.rate_ok(value)) == expected


def _astral(units: int) -> str:
    """Text over ``units`` UTF-16 units in about half as many characters (emoji count 2)."""
    return "😀" * (units // 2 + 1)


HOSTILE = [
    ("customers", customer(display_name=_astral(constraints.DISPLAY_NAME_MAX))),
    ("customers", customer(given_name=_astral(constraints.NAME_PART_MAX))),
    ("customers", customer(phone=_astral(constraints.PHONE_MAX))),
    ("customers", customer(email="bob@@example.com", given_name="A\x00B")),
    ("customers", customer(given_name="Sub:Level", family_name="Tab\there")),
    ("items", item(name=_astral(constraints.ITEM_NAME_MAX))),
    ("items", item(description="x\u2028" * 2001, unit_price=D("1.000001"))),
    ("invoices", sale(doc_number=_astral(constraints.DOC_NUMBER_MAX))),
    ("invoices", sale(memo=_astral(constraints.PRIVATE_NOTE_MAX))),
    ("invoices", sale(doc_number="  ", total=D("NaN"), billing_email=" x@y.co ")),
    ("invoices", sale(txn_date=date(1, 1, 1), due_date=date(9999, 12, 31))),
    ("payments", receipt(reference=_astral(constraints.PAYMENT_REF_MAX), amount=D("1.001"))),
    ("vendors", vendor(display_name=_astral(constraints.DISPLAY_NAME_MAX))),
    ("bills", bill(memo=_astral(constraints.PRIVATE_NOTE_MAX), total=D("9E+999999"))),
]


@pytest.mark.parametrize(("entity", "record"), HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_records_get_every_table_violation(entity: str, record: Any) -> None:
    fast = _safe(lambda: rules._table_rules(entity, record))
    assert fast
    assert fast == _safe(lambda: _full_table(entity, record))
