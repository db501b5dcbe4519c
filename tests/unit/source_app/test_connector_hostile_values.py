"""R40: the connector turns values Python cannot hold into held records, never a crash."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal as D
from typing import Any

import pytest

from qbo_pipelines.canonical import InvalidValue
from qbo_pipelines.quality.rules import check
from qbo_pipelines.source_app import connector
from qbo_pipelines.source_app.queries import load_text


def _sale_row(**kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "source_id": 9, "doc_number": "S-9", "customer_source_id": 4,
        "txn_date": date(2025, 5, 1), "txn_date_invalid": None, "due_date": None,
        "due_date_invalid": None, "currency": "USD", "memo": None, "billing_email": None,
        "send_requested": False, "subtotal": D("0"), "discount_total": D("0"),
        "tax_total": D("0"), "total": D("0"), "detail_level": "summary", "grouping": None,
        "origin": "source", "updated_at": datetime(2025, 5, 1, tzinfo=UTC),
    }
    row.update(kw)
    return row


def _sale(row: dict[str, Any]) -> Any:
    """The connector's sale builder over one row given as a dict (column name -> value)."""
    cols = {name: i for i, name in enumerate(row)}
    return connector._sale_builder(cols)(tuple(row.values()), ())


@pytest.mark.parametrize(
    ("raw", "stand_in"),
    [("infinity", date.max), ("10000-01-01", date.max), ("-infinity", date.min),
     ("0044-03-15 BC", date.min)],
)
def test_R40_unreadable_date_becomes_stand_in_and_marker(raw: str, stand_in: date) -> None:
    sale = _sale(_sale_row(txn_date=None, txn_date_invalid=raw))
    assert sale.txn_date == stand_in
    assert sale.invalid == (
        InvalidValue(field="txn_date", raw=raw, problem=connector.DATE_PROBLEM),
    )
    assert "sale.txn_date.out_of_range" in [v.rule for v in check(sale)]


def test_R40_queries_without_the_invalid_column_still_work() -> None:
    row = _sale_row()
    del row["txn_date_invalid"], row["due_date_invalid"]
    sale = _sale(row)
    assert sale.txn_date == date(2025, 5, 1)
    assert sale.invalid == ()


def test_R40_missing_required_date_is_marked() -> None:
    sale = _sale(_sale_row(txn_date=None))
    assert sale.invalid[0].field == "txn_date"
    assert sale.invalid[0].raw == ""


def test_R40_no_contact_is_none_not_the_string_None() -> None:
    sale = _sale(_sale_row(customer_source_id=None))
    assert sale.customer_source_id is None
    rules = [v.rule for v in check(sale)]
    assert "sale.customer.required" in rules


def test_R40_names_are_trimmed_like_qbo_trims_them() -> None:
    assert connector._name("  Spacey Trading  ") == "Spacey Trading"
    assert connector._name("   ") is None
    assert connector._display_name("   ") == ""  # blank: the rules hold it (required)
    assert connector._display_name(None) == ""


@pytest.mark.parametrize("name", ["read_sales", "read_receipts", "read_bills"])
def test_R40_date_columns_are_read_safely(name: str) -> None:
    sql = load_text(name)
    assert "_invalid" in sql
    assert "DATE '9999-12-31'" in sql


@pytest.mark.parametrize(
    "name",
    ["read_customers", "read_items", "read_tax_rates", "read_payment_methods", "read_sales",
     "read_receipts", "read_vendors", "read_bills"],
)
def test_R40_updated_at_is_read_safely(name: str) -> None:
    assert "TIMESTAMPTZ '9999-12-29" in load_text(name)
