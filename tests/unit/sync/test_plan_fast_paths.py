"""Planning's fast paths (issue 9, speed) plan as before.

``decimal_safe`` runs a check as it is and only re-runs it with the Decimal traps off when one
fires: every generated record (NaN, Infinity, ``9E+999999``, signalling NaN...) gets the
violations the check gives under traps-off throughout. ``plan_record`` sets the send request
on a copy of the plan equal to ``dataclasses.replace``.
"""

from __future__ import annotations

import dataclasses
import decimal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qbo_pipelines.canonical import QboId, SourceId
from qbo_pipelines.quality import rules
from qbo_pipelines.sync import push
from qbo_pipelines.sync.specs import SPECS
from qbo_pipelines.transforms.to_qbo import PushContext

sys.path.insert(0, str(Path(__file__).parents[1] / "quality"))
from test_quality_properties import bills, customers, items, receipts, sales, vendors  # noqa: E402

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


def _traps_off(record: Any) -> list[rules.Violation]:
    """The record's check, undecorated, with the three traps off from the start."""
    check = {
        "CanonicalCustomer": rules.check_customer,
        "CanonicalItem": rules.check_item,
        "CanonicalSale": rules.check_sale,
        "CanonicalReceipt": rules.check_receipt,
        "CanonicalVendor": rules.check_vendor,
        "CanonicalBill": rules.check_bill,
    }[type(record).__name__]
    with decimal.localcontext() as ctx:
        ctx.traps[decimal.Overflow] = False
        ctx.traps[decimal.InvalidOperation] = False
        ctx.traps[decimal.DivisionByZero] = False
        result: list[rules.Violation] = check.__wrapped__(record)  # type: ignore[attr-defined]
        return result


@SETTINGS
@given(st.one_of(customers, items, sales, receipts, vendors, bills))
def test_checks_answer_as_with_the_traps_off_throughout(record: Any) -> None:
    assert rules.check(record) == _traps_off(record)


CTX = PushContext(
    qbo_ids={
        "customers": {SourceId(str(i)): QboId(str(i)) for i in range(50)},
        "items": {SourceId(str(i)): QboId(str(i)) for i in range(50)},
    },
    tax_codes={SourceId(str(i)): "TAX" for i in range(50)},
    default_income_account="79",
)


@SETTINGS
@given(sales)
def test_plan_record_sets_the_send_request_as_replace_does(sale: Any) -> None:
    spec = SPECS["invoices"]
    now = datetime(2025, 1, 1, tzinfo=UTC)
    try:
        expected = push._plan_write(spec, sale, None, CTX, now)
    except ArithmeticError as exc:  # a signalling NaN cannot be hashed: the same error
        with pytest.raises(type(exc)):
            push.plan_record(spec, sale, None, CTX, now)
        return
    plan = push.plan_record(spec, sale, None, CTX, now)
    if expected.action != "hold":
        expected = dataclasses.replace(
            expected, send=sale.send_requested, send_to=sale.billing_email
        )
    assert plan == expected
    assert type(plan) is push.Plan
    assert dataclasses.asdict(plan) == dataclasses.asdict(expected)


@pytest.mark.parametrize(("send", "email"), [(True, "billing@acme.example"), (False, None)])
def test_a_clean_sale_plans_a_create_with_its_send_request(send: bool, email: str | None) -> None:
    from quality_factories import sale as clean_sale

    sale = clean_sale(send_requested=send, billing_email=email)
    plan = push.plan_record(SPECS["invoices"], sale, None, CTX, datetime(2025, 1, 1, tzinfo=UTC))
    assert plan.action == "create"
    assert (plan.send, plan.send_to) == (send, email)
    assert plan.payload is not None
    assert plan.payload["Line"]
    expected = dataclasses.replace(
        push._plan_write(SPECS["invoices"], sale, None, CTX, datetime(2025, 1, 1, tzinfo=UTC)),
        send=send,
        send_to=email,
        total=str(sale.qbo_total),  # what QBO's answer is checked against
    )
    assert plan == expected
