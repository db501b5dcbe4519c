"""The content hash and the positional record maker (issue 9, speed) change nothing.

``content_hash`` must stay the digest stored in ``sync.record_state.source_hash`` for every
record already synced: it is checked here against the definition it replaced (sha256 of
``json.dumps(sort_keys, compact, ensure_ascii=False)`` over the hashed fields) for generated and
hostile records (NUL, control characters, emoji, huge / NaN decimals, dates in years 1 and
9999, an int beyond 64 bits, a lone surrogate).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from datetime import UTC, date, datetime
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qbo_pipelines import canonical
from qbo_pipelines.canonical import (
    CanonicalAddress,
    CanonicalCustomer,
    CanonicalError,
    CanonicalSale,
    CanonicalSaleLine,
    InvalidValue,
    SourceId,
    content_hash,
    record_maker,
)

sys.path.insert(0, str(Path(__file__).parents[1] / "quality"))
from test_quality_properties import (  # noqa: E402
    bills,
    customers,
    decimals,
    items,
    receipts,
    sales,
    vendors,
)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
records = st.one_of(customers, items, sales, receipts, vendors, bills)


def reference_hash(record: Any) -> str:
    """The content hash as it was defined before the fast path."""
    payload = {"type": type(record).__name__, "fields": canonical._hash_fields(record)}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _sale(**kw: Any) -> CanonicalSale:
    fields: dict[str, Any] = {
        "source_id": SourceId("7"),
        "doc_number": "S-7",
        "customer_source_id": SourceId("3"),
        "txn_date": date(2025, 1, 31),
        "lines": (
            CanonicalSaleLine(
                line_no=1,
                kind="item",
                item_source_id=SourceId("2"),
                qty=D("1.5000"),
                unit_price=D("10.0000"),
                amount=D("15.00"),
            ),
        ),
        "subtotal": D("15.00"),
        "total": D("15.00"),
    }
    fields.update(kw)
    return CanonicalSale(**fields)


HOSTILE = [
    _sale(memo="NUL \x00 BEL \x07 ESC \x1b DEL \x7f C1 \x85 \u2028 \u2029"),
    _sale(memo="emoji 😀👩‍👩‍👧 RTL \u202e עברית", doc_number='“quotes” "\\ /'),
    _sale(total=D("9E+999999"), subtotal=D("-9E+999999"), tax_total=D("1E-999999")),
    _sale(total=D("NaN"), subtotal=D("-Infinity"), discount_total=D("-0.000")),
    _sale(total=D("12345678901234567890123456789.123456789"), tax_total=D("1E+30")),
    _sale(txn_date=date(1, 1, 1), due_date=date(9999, 12, 31)),
    _sale(
        txn_date=date.max,
        invalid=(InvalidValue(field="txn_date", raw="infinity", problem="is not a date"),),
    ),
    _sale(lines=(CanonicalSaleLine(line_no=2**70, kind="item", amount=D("0.10")),)),
    _sale(updated_at=datetime(2025, 1, 1, tzinfo=UTC)),
    CanonicalCustomer(
        source_id=SourceId("1"),
        display_name=" Ünïcødé \t Ltd ",
        bill_addr=CanonicalAddress(line1="\x00", country="🇫🇷"),
    ),
]


@pytest.mark.parametrize("record", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_records_hash_as_before(record: Any) -> None:
    assert content_hash(record) == reference_hash(record)


def test_a_lone_surrogate_fails_as_before() -> None:
    record = _sale(memo="half \ud800 a pair")
    with pytest.raises(UnicodeEncodeError):
        reference_hash(record)
    with pytest.raises(UnicodeEncodeError):
        content_hash(record)


@SETTINGS
@given(records)
def test_generated_records_hash_as_before(record: Any) -> None:
    try:
        expected = reference_hash(record)
    except (UnicodeEncodeError, ArithmeticError) as exc:  # a lone surrogate, a signalling NaN
        with pytest.raises(type(exc)):
            content_hash(record)
        return
    assert content_hash(record) == expected


@SETTINGS
@given(decimals)
def test_decimal_text_is_the_normalised_decimal(value: D) -> None:
    try:
        expected = canonical._normal_decimal(value)
    except ArithmeticError as exc:  # a signalling NaN: the same error either way
        with pytest.raises(type(exc)):
            canonical._decimal_text(value)
        return
    assert canonical._decimal_text(value) == expected


@SETTINGS
@given(records)
def test_the_maker_builds_the_same_record(record: Any) -> None:
    make = record_maker(type(record))
    values = [getattr(record, f.name) for f in dataclasses.fields(record)]
    made = make(*values)
    assert made == record
    assert type(made) is type(record)
    assert [getattr(made, f.name) for f in dataclasses.fields(made)] == values


def test_the_maker_keeps_the_records_own_checks() -> None:
    make = record_maker(CanonicalSale)
    values = [getattr(_sale(), f.name) for f in dataclasses.fields(CanonicalSale)]
    values[-1] = datetime(2025, 1, 1)  # naive updated_at: __post_init__ refuses it
    with pytest.raises(CanonicalError):
        make(*values)
    made = make(*[getattr(_sale(), f.name) for f in dataclasses.fields(CanonicalSale)])
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.memo = "x"  # type: ignore[misc]


def _json_as_before(record: Any) -> Any:
    """What raw_source / staging stored before the generated encoders: json.dumps of _full."""
    return json.loads(json.dumps(canonical._full(record), ensure_ascii=False))


@pytest.mark.parametrize("record", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_records_render_as_json_as_before(record: Any) -> None:
    assert canonical.as_json(record) == canonical._full(record)
    assert json.loads(canonical.json_text(record)) == _json_as_before(record)


def test_a_lone_surrogate_renders_as_before() -> None:
    record = _sale(memo="half \ud800 a pair")
    assert canonical.json_text(record) == json.dumps(canonical._full(record), ensure_ascii=False)


@SETTINGS
@given(records)
def test_generated_records_render_as_json_as_before(record: Any) -> None:
    try:
        reference = canonical._full(record)
    except ArithmeticError as exc:  # a signalling NaN
        with pytest.raises(type(exc)):
            canonical.as_json(record)
        return
    assert canonical.as_json(record) == reference
    try:
        expected = _json_as_before(record)
    except (UnicodeEncodeError, ValueError):
        return
    assert json.loads(canonical.json_text(record)) == expected
