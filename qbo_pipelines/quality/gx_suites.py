"""Great Expectations 1.x suites over the staged tables, wired by hand (R40).

``dagster-ge`` is pinned to GX < 1, so the Dagster layer wraps :func:`validate` in its own
``@asset_check`` and turns the plain :class:`SuiteOutcome` into an ``AssetCheckResult``. Nothing
here imports Dagster.

* Each entity has a flat **staged frame**, one row per record, built from canonical records by
  :func:`to_frame` (``customers_frame``, ``invoices_frame``...). Besides the record's own fields
  it carries computed columns the expectations need: line counts, ``total_gap`` (stated total
  minus the sum it should be, computed exactly in Decimal), ``max_line_gap`` (worst
  ``|amount - qty x unit_price|``), ``due_days``.
* Each entity has a suite, **as data** (:data:`SUITES`, a tuple of :class:`ExpectationSpec` per
  entity), turned into a ``gx.ExpectationSuite`` only when validating. Each spec carries a stable
  ``rule`` id (``invoices.total.consistent``) so a failure names what broke, not just the GX type.
* GX is imported lazily (about 4 s) and its ephemeral context, pandas data source, assets and
  batch definitions are built once per process (thread-safe).

The suites are the aggregate view over a staged batch (uniqueness, counts, distributions); the
per-record verdicts that hold records back come from :mod:`qbo_pipelines.quality.rules`. The two
agree on the limits: both read them from ``rules``.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final

import pandas as pd  # type: ignore[import-untyped]

from qbo_pipelines.canonical import (
    CanonicalBill,
    CanonicalCustomer,
    CanonicalItem,
    CanonicalReceipt,
    CanonicalSale,
    CanonicalVendor,
)
from qbo_pipelines.quality import rules

ENTITIES: Final = ("customers", "items", "invoices", "payments", "vendors", "bills")
"""Catalogue entities that have a staged frame and a suite."""

SAMPLE_SIZE: Final = 5
"""How many unexpected values (and their source ids) a failure reports."""

_TOL: Final = float(rules.MONEY_TOLERANCE)
_NAME_FORBIDDEN_RE: Final = r"[:\t\n\r]"
_NOT_BLANK_RE: Final = r"\S"
_EMAIL_RE: Final = rules.EMAIL_PATTERN


# --------------------------------------------------------------------------------------------
# Result objects (plain: the Dagster layer wraps them)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FailedExpectation:
    """One expectation that failed on a staged batch.

    Attributes:
        name: the GX expectation type, e.g. ``expect_column_values_to_be_unique``.
        column: the column it looked at (None for table-level expectations).
        unexpected_count: how many rows broke it (None when GX raised instead).
        sample_unexpected: up to :data:`SAMPLE_SIZE` offending values (JSON-ready).
        rule: our stable id for it, e.g. ``customers.source_id.unique``.
        sample_source_ids: the source ids of the sampled rows.
        unexpected_percent: share of non-null rows that broke it.
        error: the exception message when the expectation could not run (e.g. missing column).
    """

    name: str
    column: str | None
    unexpected_count: int | None
    sample_unexpected: list[Any]
    rule: str = ""
    sample_source_ids: list[str] = field(default_factory=list)
    unexpected_percent: float | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class SuiteOutcome:
    """The outcome of one entity's suite over one staged batch.

    Attributes:
        entity: catalogue entity name.
        success: True when every expectation held.
        evaluated: how many expectations ran.
        failed: the ones that did not hold.
        statistics: GX's statistics plus ``rows`` (the batch size).
    """

    entity: str
    success: bool
    evaluated: int
    failed: list[FailedExpectation]
    statistics: dict[str, float]

    def metadata(self) -> dict[str, Any]:
        """A JSON-ready summary for check metadata (counts and each failure in one line)."""
        return {
            "entity": self.entity,
            "rows": int(self.statistics.get("rows", 0)),
            "evaluated": self.evaluated,
            "failed": len(self.failed),
            "failures": [
                {
                    "rule": f.rule,
                    "expectation": f.name,
                    "column": f.column,
                    "unexpected_count": f.unexpected_count,
                    "sample": f.sample_unexpected,
                    "source_ids": f.sample_source_ids,
                    "error": f.error,
                }
                for f in self.failed
            ],
        }


@dataclass(frozen=True, slots=True)
class ExpectationSpec:
    """One expectation as data: our rule id, the GX class name and its arguments."""

    rule: str
    expectation: str
    kwargs: Mapping[str, Any]

    @property
    def column(self) -> str | None:
        """The column the expectation is about, if any."""
        value = self.kwargs.get("column")
        return str(value) if value is not None else None


# --------------------------------------------------------------------------------------------
# Staged frames
# --------------------------------------------------------------------------------------------


def _f(value: Decimal | None) -> float:
    """Decimal -> float for the frame; None and NaN -> NaN (a missing value to GX)."""
    if value is None or value.is_nan():
        return math.nan
    return float(value)


def _text(value: str | None) -> str | None:
    """Optional text as written: empty means absent (the transforms write nothing for '')."""
    return value if value else None


def _days(start: date, end: date | None) -> int | None:
    return (end - start).days if end is not None else None


@rules.decimal_safe
def _gap(stated: Decimal, parts: Iterable[Decimal]) -> float:
    """``stated - sum(parts)`` computed exactly, as a float (NaN when any value is not finite)."""
    values = [stated, *parts]
    if not all(v.is_finite() for v in values):
        return math.nan
    return float(stated - sum(values[1:], Decimal("0")))


def _frame(rows: list[dict[str, Any]], dtypes: Mapping[str, str]) -> pd.DataFrame:
    data = {col: pd.Series([row[col] for row in rows], dtype=dt) for col, dt in dtypes.items()}
    return pd.DataFrame(data, columns=list(dtypes))


CUSTOMER_COLUMNS: Final = {
    "source_id": "str", "display_name": "str", "company_name": "str", "given_name": "str",
    "family_name": "str", "email": "str", "billing_email": "str", "phone": "str",
    "has_sale": "boolean", "origin": "str", "organisation_id": "str",
    "display_name_owners": "Int64",
}
ITEM_COLUMNS: Final = {
    "source_id": "str", "name": "str", "kind": "str", "description": "str",
    "unit_price": "float64", "active": "boolean",
}
INVOICE_COLUMNS: Final = {
    "source_id": "str", "doc_number": "str", "customer_source_id": "str",
    "txn_date": "datetime64[s]", "due_date": "datetime64[s]", "due_days": "Int64",
    "billing_email": "str", "send_requested": "boolean", "memo": "str",
    "line_count": "Int64", "item_line_count": "Int64", "subtotal": "float64",
    "discount_total": "float64", "tax_total": "float64", "total": "float64",
    "subtotal_gap": "float64", "discount_gap": "float64", "tax_gap": "float64",
    "total_gap": "float64", "max_line_gap": "float64", "max_discount_line": "float64",
}
PAYMENT_COLUMNS: Final = {
    "source_id": "str", "sale_source_id": "str", "customer_source_id": "str",
    "amount": "float64", "received_on": "datetime64[s]", "payment_method_source_id": "str",
    "reference": "str",
}
VENDOR_COLUMNS: Final = {
    "source_id": "str", "display_name": "str", "given_name": "str", "family_name": "str",
    "email": "str", "phone": "str", "country": "str",
}
BILL_COLUMNS: Final = {
    "source_id": "str", "vendor_source_id": "str", "doc_number": "str",
    "txn_date": "datetime64[s]", "due_date": "datetime64[s]", "due_days": "Int64", "memo": "str",
    "line_count": "Int64", "total": "float64", "total_gap": "float64",
}
FRAME_COLUMNS: Final[Mapping[str, Mapping[str, str]]] = {
    "customers": CUSTOMER_COLUMNS, "items": ITEM_COLUMNS, "invoices": INVOICE_COLUMNS,
    "payments": PAYMENT_COLUMNS, "vendors": VENDOR_COLUMNS, "bills": BILL_COLUMNS,
}
"""Column -> pandas dtype of each staged frame."""


def _owner(c: CanonicalCustomer) -> str:
    """Who a display name belongs to: the organisation, else the contact itself."""
    return f"org:{c.organisation_id}" if c.organisation_id else f"contact:{c.source_id}"


def customers_frame(records: Iterable[CanonicalCustomer]) -> pd.DataFrame:
    """The staged customers frame: one row per contact to push.

    Contacts of one organisation share its name and become one QBO Customer (R5), so the
    frame's ``display_name_owners`` counts the distinct organisations (or lone contacts) that
    use each display name: more than one means two different customers would collide on one
    QBO DisplayName (6240, or a wrong R5 match).
    """
    records = list(records)
    owners: dict[str, set[str]] = {}
    for c in records:
        owners.setdefault(rules.name_key(c.display_name), set()).add(_owner(c))
    rows = [
        {
            "source_id": c.source_id, "display_name": c.display_name,
            "company_name": _text(c.company_name), "given_name": _text(c.given_name),
            "family_name": _text(c.family_name), "email": _text(c.email),
            "billing_email": _text(c.billing_email), "phone": _text(c.phone),
            "has_sale": c.has_sale, "origin": c.origin,
            "organisation_id": c.organisation_id,
            "display_name_owners": (
                len(owners[rules.name_key(c.display_name)]) if c.display_name.strip() else None
            ),
        }
        for c in records
    ]
    return _frame(rows, CUSTOMER_COLUMNS)


def items_frame(records: Iterable[CanonicalItem]) -> pd.DataFrame:
    """The staged items frame: one row per service type / product."""
    rows = [
        {
            "source_id": i.source_id, "name": i.name, "kind": i.kind,
            "description": _text(i.description), "unit_price": _f(i.unit_price),
            "active": i.active,
        }
        for i in records
    ]
    return _frame(rows, ITEM_COLUMNS)


@rules.decimal_safe
def _line_gap(s: CanonicalSale) -> float:
    worst = 0.0
    for line in s.lines:
        if line.kind != "item" or line.qty is None or line.unit_price is None:
            continue
        gap = _gap(line.amount, [line.qty * line.unit_price]) if (
            line.qty.is_finite() and line.unit_price.is_finite()
        ) else math.nan
        if math.isnan(gap):
            return math.nan
        worst = max(worst, abs(gap))
    return worst


def _invoice_row(s: CanonicalSale) -> dict[str, Any]:
    kinds: dict[str, list[Decimal]] = {"item": [], "discount": [], "tax": []}
    for line in s.lines:
        kinds[line.kind].append(line.amount)
    discounts = [_f(a) for a in kinds["discount"]]
    return {
        "source_id": s.source_id, "doc_number": s.doc_number,
        "customer_source_id": _text(s.customer_source_id),
        "txn_date": s.txn_date, "due_date": s.due_date, "due_days": _days(s.txn_date, s.due_date),
        "billing_email": _text(s.billing_email), "send_requested": s.send_requested,
        "memo": _text(s.memo), "line_count": len(s.lines), "item_line_count": len(kinds["item"]),
        "subtotal": _f(s.subtotal), "discount_total": _f(s.discount_total),
        "tax_total": _f(s.tax_total), "total": _f(s.total),
        "subtotal_gap": _gap(s.subtotal, kinds["item"]),
        "discount_gap": _gap(s.discount_total, kinds["discount"]),
        "tax_gap": _gap(s.tax_total, kinds["tax"]),
        "total_gap": _gap(s.total, [s.subtotal, s.discount_total, s.tax_total]),
        "max_line_gap": _line_gap(s),
        "max_discount_line": max(discounts) if discounts else math.nan,
    }


def invoices_frame(records: Iterable[CanonicalSale]) -> pd.DataFrame:
    """The staged invoices frame: one row per sale, with line counts and total gaps."""
    return _frame([_invoice_row(s) for s in records], INVOICE_COLUMNS)


def payments_frame(records: Iterable[CanonicalReceipt]) -> pd.DataFrame:
    """The staged payments frame: one row per receipt."""
    rows = [
        {
            "source_id": r.source_id, "sale_source_id": _text(r.sale_source_id),
            "customer_source_id": _text(r.customer_source_id), "amount": _f(r.amount),
            "received_on": r.received_on,
            "payment_method_source_id": _text(r.payment_method_source_id),
            "reference": _text(r.reference),
        }
        for r in records
    ]
    return _frame(rows, PAYMENT_COLUMNS)


def vendors_frame(records: Iterable[CanonicalVendor]) -> pd.DataFrame:
    """The staged vendors frame: one row per worker / contractor."""
    rows = [
        {
            "source_id": v.source_id, "display_name": v.display_name,
            "given_name": _text(v.given_name), "family_name": _text(v.family_name),
            "email": _text(v.email), "phone": _text(v.phone), "country": _text(v.country),
        }
        for v in records
    ]
    return _frame(rows, VENDOR_COLUMNS)


def bills_frame(records: Iterable[CanonicalBill]) -> pd.DataFrame:
    """The staged bills frame: one row per worker invoice, with line count and total gap."""
    rows = [
        {
            "source_id": b.source_id, "vendor_source_id": _text(b.vendor_source_id),
            "doc_number": b.doc_number, "txn_date": b.txn_date, "due_date": b.due_date,
            "due_days": _days(b.txn_date, b.due_date), "memo": _text(b.memo),
            "line_count": len(b.lines), "total": _f(b.total),
            "total_gap": _gap(b.total, [line.amount for line in b.lines]),
        }
        for b in records
    ]
    return _frame(rows, BILL_COLUMNS)


_FRAMES: Final[Mapping[str, Callable[[Iterable[Any]], pd.DataFrame]]] = {
    "customers": customers_frame, "items": items_frame, "invoices": invoices_frame,
    "payments": payments_frame, "vendors": vendors_frame, "bills": bills_frame,
}


def to_frame(entity: str, records: Iterable[Any]) -> pd.DataFrame:
    """The staged frame of an entity from its canonical records.

    Args:
        entity: one of :data:`ENTITIES`.
        records: the canonical records of that entity.

    Returns:
        A DataFrame with exactly the columns of ``FRAME_COLUMNS[entity]`` (also when empty).

    Raises:
        KeyError: for an entity without a staged frame.
    """
    try:
        build = _FRAMES[entity]
    except KeyError:
        raise KeyError(f"no staged frame for entity {entity!r}; known: {ENTITIES}") from None
    return build(records)


# --------------------------------------------------------------------------------------------
# Suites as data
# --------------------------------------------------------------------------------------------


def _spec(rule: str, expectation: str, **kwargs: Any) -> ExpectationSpec:
    return ExpectationSpec(rule, expectation, kwargs)


def _key(entity: str) -> tuple[ExpectationSpec, ...]:
    return (
        _spec(f"{entity}.source_id.not_null", "ExpectColumnValuesToNotBeNull", column="source_id"),
        _spec(f"{entity}.source_id.unique", "ExpectColumnValuesToBeUnique", column="source_id"),
    )


def _name(entity: str, column: str, limit: int, *, unique: bool) -> tuple[ExpectationSpec, ...]:
    specs = [
        _spec(f"{entity}.{column}.not_null", "ExpectColumnValuesToNotBeNull", column=column),
        _spec(f"{entity}.{column}.not_blank", "ExpectColumnValuesToMatchRegex", column=column,
              regex=_NOT_BLANK_RE),
        _spec(f"{entity}.{column}.max_length", "ExpectColumnValueLengthsToBeBetween",
              column=column, min_value=1, max_value=limit),
        _spec(f"{entity}.{column}.no_forbidden_characters", "ExpectColumnValuesToNotMatchRegex",
              column=column, regex=_NAME_FORBIDDEN_RE),
    ]
    if unique:
        specs.append(
            _spec(f"{entity}.{column}.unique", "ExpectColumnValuesToBeUnique", column=column)
        )
    return tuple(specs)


def _max_len(entity: str, column: str, limit: int) -> ExpectationSpec:
    return _spec(f"{entity}.{column}.max_length", "ExpectColumnValueLengthsToBeBetween",
                 column=column, max_value=limit)


def _email(entity: str, column: str) -> ExpectationSpec:
    return _spec(f"{entity}.{column}.format", "ExpectColumnValuesToMatchRegex", column=column,
                 regex=_EMAIL_RE)


def _within_tolerance(entity: str, column: str, rule: str) -> ExpectationSpec:
    return _spec(f"{entity}.{rule}", "ExpectColumnValuesToBeBetween", column=column,
                 min_value=-_TOL, max_value=_TOL)


def _not_null(entity: str, column: str) -> ExpectationSpec:
    return _spec(f"{entity}.{column}.not_null", "ExpectColumnValuesToNotBeNull", column=column)


SUITES: Final[Mapping[str, tuple[ExpectationSpec, ...]]] = {
    "customers": (
        *_key("customers"),
        *_name("customers", "display_name", rules.DISPLAY_NAME_MAX, unique=False),
        # DisplayName is unique across Customer/Vendor/Employee in QBO (6240), and R5 matches
        # on it: two different organisations (or lone contacts) with one name would land on
        # one QBO customer. Contacts of the same organisation may share it.
        _spec("customers.display_name.one_owner", "ExpectColumnValuesToBeBetween",
              column="display_name_owners", min_value=1, max_value=1),
        _max_len("customers", "given_name", rules.NAME_PART_MAX),
        _max_len("customers", "family_name", rules.NAME_PART_MAX),
        _max_len("customers", "company_name", rules.NAME_PART_MAX),
        _email("customers", "email"),
        _max_len("customers", "email", rules.EMAIL_MAX),
        _email("customers", "billing_email"),
        _max_len("customers", "billing_email", rules.EMAIL_MAX),
        _max_len("customers", "phone", rules.PHONE_MAX),
    ),
    "items": (
        *_key("items"),
        # Item Name is unique in QBO and R10 matches on it exactly.
        *_name("items", "name", rules.ITEM_NAME_MAX, unique=True),
        _spec("items.kind.known", "ExpectColumnValuesToBeInSet", column="kind",
              value_set=["service", "product"]),
        _max_len("items", "description", rules.DESCRIPTION_MAX),
    ),
    "invoices": (
        *_key("invoices"),
        _not_null("invoices", "customer_source_id"),
        _not_null("invoices", "txn_date"),
        _spec("invoices.doc_number.unique", "ExpectColumnValuesToBeUnique", column="doc_number"),
        _max_len("invoices", "doc_number", rules.DOC_NUMBER_MAX),
        _spec("invoices.lines.at_least_one_item", "ExpectColumnValuesToBeBetween",
              column="item_line_count", min_value=1),
        _spec("invoices.due_date.not_before_txn_date", "ExpectColumnValuesToBeBetween",
              column="due_days", min_value=0),
        _email("invoices", "billing_email"),
        _max_len("invoices", "memo", rules.PRIVATE_NOTE_MAX),
        _not_null("invoices", "total"),
        # A QBO invoice cannot total less than zero (credits are credit memos).
        _spec("invoices.total.not_negative", "ExpectColumnValuesToBeBetween", column="total",
              min_value=0),
        _within_tolerance("invoices", "total_gap", "total.consistent"),
        _within_tolerance("invoices", "subtotal_gap", "subtotal.consistent"),
        _within_tolerance("invoices", "discount_gap", "discount_total.consistent"),
        _within_tolerance("invoices", "tax_gap", "tax_total.consistent"),
        _spec("invoices.lines.amount_is_qty_times_price", "ExpectColumnValuesToBeBetween",
              column="max_line_gap", min_value=0, max_value=_TOL),
        _spec("invoices.lines.discounts_not_positive", "ExpectColumnValuesToBeBetween",
              column="max_discount_line", max_value=0),
    ),
    "payments": (
        *_key("payments"),
        _not_null("payments", "customer_source_id"),
        _not_null("payments", "received_on"),
        _not_null("payments", "amount"),
        _spec("payments.amount.positive", "ExpectColumnValuesToBeBetween", column="amount",
              min_value=0, strict_min=True),
        _max_len("payments", "reference", rules.PAYMENT_REF_MAX),
    ),
    "vendors": (
        *_key("vendors"),
        *_name("vendors", "display_name", rules.DISPLAY_NAME_MAX, unique=True),
        _max_len("vendors", "given_name", rules.NAME_PART_MAX),
        _max_len("vendors", "family_name", rules.NAME_PART_MAX),
        _email("vendors", "email"),
        _max_len("vendors", "email", rules.EMAIL_MAX),
        _max_len("vendors", "phone", rules.PHONE_MAX),
    ),
    "bills": (
        *_key("bills"),
        _not_null("bills", "vendor_source_id"),
        _not_null("bills", "txn_date"),
        _max_len("bills", "doc_number", rules.DOC_NUMBER_MAX),
        _spec("bills.lines.at_least_one", "ExpectColumnValuesToBeBetween", column="line_count",
              min_value=1),
        _spec("bills.due_date.not_before_txn_date", "ExpectColumnValuesToBeBetween",
              column="due_days", min_value=0),
        _max_len("bills", "memo", rules.PRIVATE_NOTE_MAX),
        _not_null("bills", "total"),
        _spec("bills.total.not_negative", "ExpectColumnValuesToBeBetween", column="total",
              min_value=0),
        _within_tolerance("bills", "total_gap", "total.consistent"),
    ),
}
"""Each entity's expectations, as data (validated by :func:`validate`)."""


# --------------------------------------------------------------------------------------------
# GX wiring (lazy, cached per process)
# --------------------------------------------------------------------------------------------

_LOCK: Final = threading.Lock()
_STATE: dict[str, Any] = {}
_DATASOURCE: Final = "qbo_pipelines_staged"


def _gx() -> Any:
    """The ``great_expectations`` module (imported on first use: it takes ~4 s)."""
    import great_expectations as gx

    return gx


def _context() -> Any:
    """The process-wide ephemeral GX context with the pandas data source (built once)."""
    with _LOCK:
        ctx = _STATE.get("context")
        if ctx is None:
            gx = _gx()
            from great_expectations.data_context.types.base import ProgressBarsConfig

            ctx = gx.get_context(mode="ephemeral")
            ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
            ctx.data_sources.add_pandas(name=_DATASOURCE)
            _STATE["context"] = ctx
        return ctx


def _batch_definition(entity: str) -> Any:
    ctx = _context()
    with _LOCK:
        key = f"batch:{entity}"
        definition = _STATE.get(key)
        if definition is None:
            source = ctx.data_sources.get(_DATASOURCE)
            asset = source.add_dataframe_asset(name=f"staged_{entity}")
            definition = asset.add_batch_definition_whole_dataframe(name=f"staged_{entity}_all")
            _STATE[key] = definition
        return definition


def build_suite(entity: str, specs: Sequence[ExpectationSpec] | None = None) -> Any:
    """The ``gx.ExpectationSuite`` for an entity (not registered in the context).

    Args:
        entity: one of :data:`ENTITIES`.
        specs: the expectations (default: ``SUITES[entity]``).

    Returns:
        A ``great_expectations.ExpectationSuite``; each expectation's ``meta`` holds its rule.
    """
    _context()  # GX binds suites to the current context; make sure ours exists
    gx = _gx()
    suite = gx.ExpectationSuite(name=f"staged_{entity}")
    for spec in specs if specs is not None else SUITES[entity]:
        cls = getattr(gx.expectations, spec.expectation)
        suite.add_expectation(cls(**dict(spec.kwargs), meta={"rule": spec.rule}))
    return suite


def _jsonable(value: Any) -> Any:
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        with contextlib.suppress(ValueError, TypeError):
            value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, datetime | date | pd.Timestamp):
        return value.isoformat()
    if isinstance(value, str):
        return value if len(value) <= 80 else f"{value[:80]}… ({len(value)} characters)"
    if isinstance(value, int | float | bool):
        return value
    return str(value)


def _error_message(exception_info: Any) -> str | None:
    if not isinstance(exception_info, Mapping):
        return None
    if exception_info.get("raised_exception"):
        return str(exception_info.get("exception_message"))
    for nested in exception_info.values():
        if isinstance(nested, Mapping) and nested.get("raised_exception"):
            return str(nested.get("exception_message"))
    return None


def _failure(result: Any) -> FailedExpectation:
    config = result.expectation_config
    details: Mapping[str, Any] = result.result or {}
    column = config.kwargs.get("column")
    index_list = details.get("partial_unexpected_index_list") or []
    count = details.get("unexpected_count")
    percent = details.get("unexpected_percent")
    return FailedExpectation(
        name=str(config.type),
        column=str(column) if column is not None else None,
        unexpected_count=int(count) if count is not None else None,
        sample_unexpected=[
            _jsonable(v) for v in (details.get("partial_unexpected_list") or [])[:SAMPLE_SIZE]
        ],
        rule=str((config.meta or {}).get("rule", "")),
        sample_source_ids=[
            str(row.get("source_id")) for row in index_list[:SAMPLE_SIZE]
            if isinstance(row, Mapping)
        ],
        unexpected_percent=float(percent) if percent is not None else None,
        error=_error_message(result.exception_info),
    )


def validate(
    entity: str, frame: pd.DataFrame, specs: Sequence[ExpectationSpec] | None = None
) -> SuiteOutcome:
    """Run an entity's suite over its staged frame.

    Args:
        entity: one of :data:`ENTITIES`.
        frame: the staged frame (see :func:`to_frame`); it needs a ``source_id`` column for
            failures to name records.
        specs: override the expectations (default: ``SUITES[entity]``).

    Returns:
        A plain :class:`SuiteOutcome` (failures ordered by rule).
    """
    suite = build_suite(entity, specs)
    batch = _batch_definition(entity).get_batch(batch_parameters={"dataframe": frame})
    result_format: dict[str, Any] = {
        "result_format": "SUMMARY",
        "partial_unexpected_count": SAMPLE_SIZE,
    }
    if "source_id" in frame.columns:
        result_format["unexpected_index_column_names"] = ["source_id"]
    result = batch.validate(suite, result_format=result_format)
    failed = sorted(
        (_failure(r) for r in result.results if not r.success),
        key=lambda f: (f.rule, f.name, f.column or ""),
    )
    stats = {str(k): float(v) for k, v in (result.statistics or {}).items() if v is not None}
    stats["rows"] = float(len(frame))
    return SuiteOutcome(
        entity=entity,
        success=bool(result.success),
        evaluated=int(stats.get("evaluated_expectations", len(result.results))),
        failed=failed,
        statistics=stats,
    )


def validate_records(entity: str, records: Iterable[Any]) -> SuiteOutcome:
    """:func:`to_frame` then :func:`validate`: the suite over canonical records."""
    return validate(entity, to_frame(entity, records))


__all__ = [
    "ENTITIES",
    "FRAME_COLUMNS",
    "SUITES",
    "ExpectationSpec",
    "FailedExpectation",
    "SuiteOutcome",
    "bills_frame",
    "build_suite",
    "customers_frame",
    "invoices_frame",
    "items_frame",
    "payments_frame",
    "to_frame",
    "validate",
    "validate_records",
    "vendors_frame",
]
