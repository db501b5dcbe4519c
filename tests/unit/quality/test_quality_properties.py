"""Property tests: the rules never raise, whatever the source app holds (R40, R31)."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal as D
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
from qbo_pipelines.quality import constraints, rules
from qbo_pipelines.quality.rules import check

text = st.text(max_size=700)
opt_text = st.none() | text
ids = st.text(max_size=12).map(SourceId)
decimals = (
    st.decimals(allow_nan=True, allow_infinity=True)
    | st.decimals(min_value=-10**12, max_value=10**12, places=4)
    | st.sampled_from([D("9E+999999"), D("-9E+999999"), D("1E-999999"), D("sNaN"), D("-0")])
)
opt_decimals = st.none() | decimals
dates = st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31))

addresses = st.none() | st.builds(
    CanonicalAddress, line1=opt_text, line2=opt_text, city=opt_text, region=opt_text,
    postal_code=opt_text, country=opt_text,
)
customers = st.builds(
    CanonicalCustomer, source_id=ids, display_name=text, company_name=opt_text,
    given_name=opt_text, family_name=opt_text, email=opt_text, phone=opt_text,
    billing_name=opt_text, billing_email=opt_text, bill_addr=addresses, has_sale=st.booleans(),
)
items = st.builds(
    CanonicalItem, source_id=ids, name=text, kind=st.sampled_from(["service", "product"]),
    description=opt_text, unit_price=opt_decimals, active=st.booleans(),
)
sale_lines = st.builds(
    CanonicalSaleLine, line_no=st.integers(-5, 50),
    kind=st.sampled_from(["item", "discount", "tax"]), description=opt_text,
    item_source_id=st.none() | ids, qty=opt_decimals, unit_price=opt_decimals, amount=decimals,
    tax_rate_source_id=st.none() | ids, discount_percent=opt_decimals,
)
sales = st.builds(
    CanonicalSale, source_id=ids, doc_number=opt_text, customer_source_id=ids, txn_date=dates,
    due_date=st.none() | dates, memo=opt_text, billing_email=opt_text,
    send_requested=st.booleans(), lines=st.lists(sale_lines, max_size=6).map(tuple),
    subtotal=decimals, discount_total=decimals, tax_total=decimals, total=decimals,
)
receipts = st.builds(
    CanonicalReceipt, source_id=ids, sale_source_id=st.none() | ids, customer_source_id=ids,
    amount=decimals, received_on=dates, payment_method_source_id=st.none() | ids,
    reference=opt_text,
)
vendors = st.builds(
    CanonicalVendor, source_id=ids, display_name=text, given_name=opt_text,
    family_name=opt_text, email=opt_text, phone=opt_text, country=opt_text,
)
bill_lines = st.builds(
    CanonicalBillLine, line_no=st.integers(-5, 50), concept=text, description=opt_text,
    amount=decimals,
)
bills = st.builds(
    CanonicalBill, source_id=ids, vendor_source_id=ids, doc_number=opt_text, txn_date=dates,
    due_date=st.none() | dates, memo=opt_text, lines=st.lists(bill_lines, max_size=6).map(tuple),
    total=decimals,
)
records = customers | items | sales | receipts | vendors | bills


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records)
def test_R40_check_never_raises_and_names_the_record(record: Any) -> None:
    violations = check(record)
    label = rules.record_label(record)
    for v in violations:
        assert v.rule
        assert v.reason.startswith(label)
        assert v.fix
        assert len(v.reason) < 4 * 700  # values are shortened, never dumped whole
    for merged in rules.merge_by_rule(violations):
        assert merged.rule in {v.rule for v in violations}


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_R40_email_check_never_raises_and_agrees_with_its_pattern(value: str) -> None:
    import re

    assert rules.is_valid_email(value) == (
        len(value) <= rules.EMAIL_MAX and re.match(rules.EMAIL_PATTERN, value) is not None
    )
    check(CanonicalCustomer(source_id=SourceId("1"), display_name="X", email=value,
                            billing_email=value))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(sales, max_size=4), st.lists(bills, max_size=4), st.lists(customers, max_size=4))
def test_R40_staged_values_never_raise(
    s: list[CanonicalSale], b: list[CanonicalBill], c: list[CanonicalCustomer]
) -> None:
    for entity, records in (("invoices", s), ("bills", b), ("customers", c)):
        table = constraints.TABLES[entity]
        for record in records:
            values = constraints.staged_values(table, record)
            assert len(values) == len(table.columns)
            # what the extract keeps for the stage to cast in Postgres: every column but the key
            kept = json.loads(constraints.staged_json(table, record))
            assert list(kept) == [col.name for col in table.columns[1:]]


@settings(max_examples=200, deadline=None)
@given(text, st.text(max_size=50), st.text(max_size=50))
def test_R12_reference_helpers_never_raise(name: str, kind: str, command: str) -> None:
    v = rules.missing_mapping(kind or "tax_rate", name, command, record="sale S-1 (#1)")
    assert v.rule.startswith("mapping.")
    assert v.reason.startswith("sale S-1 (#1): ")
    u = rules.unresolved_reference(kind or "customer", name)
    assert u.rule.startswith("reference.")
