"""The constraints on each pushed entity, as ONE table (R40): QBO's limits written once.

Each entity has a :class:`Table`: its staged columns (``staging.<entity>``, beside the canonical
JSON) and, per column, the :class:`Constraint` s QBO puts on it: required fields, lengths
(UTF-16 units, as QBO counts), name characters, control characters, email format, whole-cent
money, dates, ranges, and the record-level consistency checks (totals equal their lines, the due
date is not before the date...). The table drives both:

* the per-record rules that hold records back (:mod:`qbo_pipelines.quality.rules` evaluates
  every field constraint of the table; the record-level ones, marked ``record_level``, it
  evaluates in its record checks with richer reasons, over the same derived values);
* the Great Expectations suites over the Postgres staging tables
  (:mod:`qbo_pipelines.quality.gx_suites` turns every constraint into an expectation whose
  ``meta.rule`` is the per-record rule id, so a failing row names the rule that holds it).

Limits come from /work/shared/QBO_API.md section 11 unless marked "QBO docs". This module is
pure (no database, no GX): :func:`staged_values` gives a record's staged column values.
"""

from __future__ import annotations

import decimal
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Final, Literal

import orjson

from qbo_pipelines import entities as catalogue
from qbo_pipelines.canonical import InvalidValue

# --------------------------------------------------------------------------------------------
# QBO limits (each written once; rules and the GX suites read them from here)
# --------------------------------------------------------------------------------------------

DISPLAY_NAME_MAX: Final = 500
"""Customer/Vendor ``DisplayName`` (QBO_API §11.1: max 500; older docs said 100)."""
NAME_PART_MAX: Final = 100
"""``GivenName`` / ``FamilyName`` / ``CompanyName`` (QBO_API §11.1)."""
EMAIL_MAX: Final = 100
"""``PrimaryEmailAddr.Address`` (QBO_API §11.1)."""
PHONE_MAX: Final = 30
"""``PrimaryPhone.FreeFormNumber`` (QBO_API §11.0)."""
ITEM_NAME_MAX: Final = 100
"""Item ``Name`` (QBO_API §11.3)."""
DESCRIPTION_MAX: Final = 4000
"""Item ``Description`` and transaction ``Line.Description`` (QBO docs: max 4000)."""
DOC_NUMBER_MAX: Final = 21
"""Invoice / Bill ``DocNumber`` (QBO_API §11.4)."""
CUSTOMER_MEMO_MAX: Final = 1000
"""Invoice ``CustomerMemo`` (QBO_API §11.4); not written by the sync today."""
PRIVATE_NOTE_MAX: Final = 4000
"""``PrivateNote`` (QBO_API §11.4/11.5); sale and bill memos are written here (transforms)."""
PAYMENT_REF_MAX: Final = 21
"""Payment ``PaymentRefNum`` (QBO docs: max 21)."""
ADDRESS_LINE_MAX: Final = 500
"""``BillAddr.Line1..5`` (QBO docs, PhysicalAddress: max 500)."""
ADDRESS_PART_MAX: Final = 255
"""``City`` / ``CountrySubDivisionCode`` / ``Country`` (QBO docs, PhysicalAddress: max 255)."""
POSTAL_CODE_MAX: Final = 30
"""``PostalCode`` (QBO docs, PhysicalAddress: max 30)."""
TAXABLE_INVOICE_MAX_LINES: Final = 750
"""Taxable invoices take at most 750 lines (QBO_API §11.4)."""
MAX_LINES: Final = TAXABLE_INVOICE_MAX_LINES
"""Lines per sale or bill the sync writes. QBO documents 750 for taxable invoices and no figure
for the others; the sync applies 750 to every sale and bill (the stricter reading: a held sale
with a "split it" fix is cheap, a refused 1,000-line write is not)."""
NAME_FORBIDDEN: Final = frozenset({":", "\t", "\n", "\r"})
"""Characters QBO refuses in name fields (QBO_API §11.1, §13.15; ':' separates sub-levels)."""
MONEY_MAX: Final = Decimal("1e10")
"""Amounts are "max 15 digits in 10.5 format" (QBO_API §11.0): |amount| < 10**10."""
MAX_DECIMALS: Final = 5
"""Quantities and unit prices: at most 5 decimals ("10.5 format", QBO_API §11.0)."""
MONEY_TOLERANCE: Final = Decimal("0.005")
"""Half a cent: within this, computed and stated amounts agree (QBO rounds to the cent)."""
EARLIEST_DATE: Final = date(1900, 1, 1)
LATEST_DATE: Final = date(2099, 12, 31)
"""Business dates outside this window are typos (year 20204, zero dates), not real documents."""

EMAIL_PATTERN: Final = (
    r"^(?!\.)(?!.*\.\.)[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}(?<!\.)"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}\Z"
)
"""A plausible single ASCII address ``local@domain.tld`` (Python ``re`` and Postgres agree)."""

_EMAIL_ATOM: Final = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
EMAIL_SHAPE: Final = (
    rf"^{_EMAIL_ATOM}(\.{_EMAIL_ATOM})*@([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]+$"
)
""":data:`EMAIL_PATTERN` without its lengths, lookarounds or counted repeats: dot-separated
atoms, ``@``, DNS-style labels, a letters-only top-level domain. Postgres's regex engine runs it
about ten times faster than :data:`EMAIL_PATTERN` (2.6 against 23 us a row at 100k; the suite
evaluates it twice per row); :func:`email_lengths_sql` adds back the lengths."""


def email_lengths_sql(column: str) -> str:
    """SQL true for a value of ``column`` that has :data:`EMAIL_SHAPE` but breaks a length
    :data:`EMAIL_PATTERN` sets (a local part over 64, a label over 63, a one-letter top-level
    domain), or is longer than :data:`EMAIL_MAX`: with :data:`EMAIL_SHAPE`, exactly the values
    :data:`EMAIL_PATTERN` and :data:`EMAIL_MAX` refuse."""
    shape = "'" + EMAIL_SHAPE.replace("'", "''") + "'"
    domain = f"split_part({column}, '@', 2)"
    # The cheap tests first: the shape and the label regex run only where a length breaks.
    return (
        f"char_length({column}) > {EMAIL_MAX} OR ("
        f"(char_length(split_part({column}, '@', 1)) > 64"
        f" OR right({column}, 2) ~ '^\\.[A-Za-z]$'"
        f" OR (char_length({domain}) > 63 AND {domain} ~ '[^.]{{64}}'))"
        f" AND {column} ~ {shape})"
    )


# --------------------------------------------------------------------------------------------
# The table's shape
# --------------------------------------------------------------------------------------------

Check = Literal[
    "required",
    "not_blank",
    "max_length",
    "forbidden",
    "control",
    "email",
    "money",
    "rate",
    "date_range",
    "range",
]
"""What a constraint checks:

* ``required``: present and not blank (text) / present (other types);
* ``not_blank``: when present, not blank (a document number may be absent, not blank);
* ``max_length``: at most ``limit`` UTF-16 units (QBO is a Java service);
* ``forbidden``: none of :data:`NAME_FORBIDDEN` (names);
* ``control``: no control characters (C0 except tab and line breaks, DEL, C1);
* ``email``: a plausible single address (:data:`EMAIL_PATTERN`, at most :data:`EMAIL_MAX`);
* ``money``: finite, whole cents, below :data:`MONEY_MAX`;
* ``rate``: finite, at most :data:`MAX_DECIMALS` decimals, below :data:`MONEY_MAX`;
* ``date_range``: between :data:`EARLIEST_DATE` and :data:`LATEST_DATE`;
* ``range``: between ``minimum`` and ``maximum`` (``strict_min``: above ``minimum``).
"""


@dataclass(frozen=True, slots=True)
class Constraint:
    """One QBO constraint on one staged column.

    Attributes:
        rule: the per-record rule id it holds records with (``customer.email.format``), also
            the GX expectation's ``meta.rule``.
        check: what is checked (see :data:`Check`).
        limit: ``max_length``: the most UTF-16 units QBO takes.
        minimum: ``range``: the lowest allowed value.
        maximum: ``range``: the highest allowed value.
        strict_min: ``range``: the value must be above ``minimum``.
        label: how a reason names the field (default: the column name).
        qbo_field: the QBO field the value is written to (named in length reasons).
        fix: ``required`` and ``email``: what the person should do (else the check's own).
        record_level: evaluated by the record check in ``rules`` (a derived value: totals,
            line counts), which words the reason; the table still drives the GX expectation.
    """

    rule: str
    check: Check
    limit: int | None = None
    minimum: Decimal | None = None
    maximum: Decimal | None = None
    strict_min: bool = False
    label: str | None = None
    qbo_field: str | None = None
    fix: str | None = None
    record_level: bool = False


SqlType = Literal["text", "numeric", "date", "integer", "boolean"]


@dataclass(frozen=True, slots=True)
class Column:
    """One staged column: its Postgres type, how it is read from the canonical record, and the
    constraints on it.

    Attributes:
        name: the column of ``staging.<entity>``.
        sql_type: its Postgres type.
        value: canonical record -> the staged value (None for NULL).
        constraints: what QBO requires of it.
        create_only: checked only when the record is created in QBO (R6: the billing contact);
            not part of the GX suite, which cannot tell creates from updates.
        consequence: extra words for an email reason, from the record (``send_requested``).
        invalid_field: the canonical field whose :class:`InvalidValue` markers apply.
    """

    name: str
    sql_type: SqlType
    value: Callable[[Any], Any]
    constraints: tuple[Constraint, ...] = ()
    create_only: bool = False
    consequence: Callable[[Any], str] | None = None
    invalid_field: str | None = None


@dataclass(frozen=True, slots=True)
class Table:
    """The constraints of one entity (its staged columns), named by its catalogue row's
    ``constraints`` binding."""

    entity: str
    columns: tuple[Column, ...]

    @property
    def kind(self) -> str:
        """How rule ids and reasons name one record (the catalogue row's ``kind``)."""
        return catalogue.entity(self.entity).kind

    def column(self, name: str) -> Column:
        """The column called ``name`` (KeyError when there is none)."""
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"staging.{self.entity} has no staged column {name!r}")

    @property
    def constraints(self) -> list[tuple[Column, Constraint]]:
        """Every (column, constraint) pair, in table order."""
        return [(col, c) for col in self.columns for c in col.constraints]


# --------------------------------------------------------------------------------------------
# Column builders (one call per field: the constraints QBO puts on that kind of field)
# --------------------------------------------------------------------------------------------


def _attr(name: str) -> Callable[[Any], Any]:
    return lambda record: getattr(record, name)


def _text_or_none(name: str) -> Callable[[Any], Any]:
    """The transforms write nothing for an empty string: stage it as NULL."""
    return lambda record: getattr(record, name) or None


def _key(kind: str) -> Column:
    return Column(
        "source_id",
        "text",
        _attr("source_id"),
        (
            Constraint(
                f"{kind}.source_id.required",
                "required",
                label="source id",
                fix="This is a bug in the source connector: every record needs its id.",
            ),
        ),
    )


def _reference(kind: str, column: str, rule_field: str, label: str, fix: str) -> Column:
    return Column(
        column,
        "text",
        _attr(column),
        (Constraint(f"{kind}.{rule_field}.required", "required", label=label, fix=fix),),
    )


def _name(
    kind: str,
    column: str,
    limit: int,
    qbo_field: str,
    *,
    required: str | None = None,
    required_label: str | None = None,
) -> Column:
    """A QBO name field: length, no ':' / tab / line breaks, no control characters."""
    found: list[Constraint] = []
    if required is not None:
        found.append(
            Constraint(
                f"{kind}.{column}.required",
                "required",
                label=required_label or column,
                fix=required,
            )
        )
    found += [
        Constraint(f"{kind}.{column}.too_long", "max_length", limit=limit, qbo_field=qbo_field),
        Constraint(f"{kind}.{column}.forbidden_character", "forbidden"),
        Constraint(f"{kind}.{column}.control_character", "control"),
    ]
    value = _attr(column) if required is not None else _text_or_none(column)
    return Column(column, "text", value, tuple(found))


def _text(
    kind: str,
    column: str,
    limit: int,
    qbo_field: str,
    *,
    label: str | None = None,
    rule_field: str | None = None,
    value: Callable[[Any], Any] | None = None,
) -> Column:
    """Free or short text: length and control characters."""
    key = rule_field or column
    return Column(
        column,
        "text",
        value or _text_or_none(column),
        (
            Constraint(
                f"{kind}.{key}.too_long",
                "max_length",
                limit=limit,
                qbo_field=qbo_field,
                label=label,
            ),
            Constraint(f"{kind}.{key}.control_character", "control", label=label),
        ),
    )


BILLING_EMAIL_FIX = (
    "The billing email is the email of the organisation's billing contact (else of the "
    "contact itself): correct that contact's email in the source app (name@example.com), or "
    "clear it."
)


def _email(
    kind: str,
    column: str,
    *,
    create_only: bool = False,
    consequence: Callable[[Any], str] | None = None,
    fix: str | None = None,
) -> Column:
    return Column(
        column,
        "text",
        _text_or_none(column),
        (Constraint(f"{kind}.{column}.format", "email", fix=fix),),
        create_only=create_only,
        consequence=consequence,
    )


def _money(kind: str, column: str, label: str | None = None) -> Column:
    return Column(
        column,
        "numeric",
        _attr(column),
        (Constraint(f"{kind}.{column}.invalid", "money", label=label),),
    )


def _date(kind: str, column: str) -> Column:
    def value(record: Any) -> date | None:
        got: date | None = getattr(record, column)
        if any(v.field == column and not v.raw for v in _invalid(record)):
            return None  # a missing date: the stand-in is not a date the person entered
        return got

    return Column(
        column,
        "date",
        value,
        (
            Constraint(f"{kind}.{column}.required", "required", label=column, record_level=True),
            Constraint(f"{kind}.{column}.out_of_range", "date_range"),
        )
        if column != "due_date"
        else (Constraint(f"{kind}.{column}.out_of_range", "date_range"),),
        invalid_field=column,
    )


def _doc_number(kind: str) -> Column:
    return Column(
        "doc_number",
        "text",
        _attr("doc_number"),
        (
            Constraint(f"{kind}.doc_number.blank", "not_blank", label="document number"),
            Constraint(
                f"{kind}.doc_number.too_long",
                "max_length",
                limit=DOC_NUMBER_MAX,
                qbo_field="DocNumber",
                label="document number",
            ),
            Constraint(f"{kind}.doc_number.control_character", "control", label="document number"),
        ),
    )


def _derived(
    name: str,
    sql_type: SqlType,
    value: Callable[[Any], Any],
    rule: str,
    *,
    minimum: Decimal | int | None = None,
    maximum: Decimal | int | None = None,
    strict_min: bool = False,
) -> Column:
    """A value computed from the record (a count, a gap) and the range it must stay in; the
    record check in ``rules`` words the reason."""
    return Column(
        name,
        sql_type,
        value,
        (
            Constraint(
                rule,
                "range",
                minimum=Decimal(minimum) if minimum is not None else None,
                maximum=Decimal(maximum) if maximum is not None else None,
                strict_min=strict_min,
                record_level=True,
            ),
        ),
    )


# --------------------------------------------------------------------------------------------
# Derived values (the same arithmetic the record checks use)
# --------------------------------------------------------------------------------------------


def _invalid(record: Any) -> tuple[InvalidValue, ...]:
    invalid: tuple[InvalidValue, ...] = getattr(record, "invalid", ())
    return invalid


def _plain_decimals(value: Decimal) -> int:
    """How many decimals ``str(value)`` shows when it is plain notation of a finite number
    (no exponent, no NaN / Infinity), else -1. Those are at least the normalised value's
    decimals (normalising only drops trailing zeros), so a small count is a quick "fine" and
    anything else takes the exact check."""
    text = str(value)
    if "E" in text or not text[-1].isdigit():
        return -1
    point = text.find(".")
    return 0 if point < 0 else len(text) - point - 1


def cents_ok(value: Decimal) -> bool:
    """True when an amount is finite, whole cents and within QBO's range."""
    if 0 <= _plain_decimals(value) <= 2:
        return abs(value) < MONEY_MAX
    if not value.is_finite():
        return False
    exponent = value.normalize().as_tuple().exponent
    return isinstance(exponent, int) and exponent >= -2 and abs(value) < MONEY_MAX


def rate_ok(value: Decimal) -> bool:
    """A quantity or unit price QBO takes: finite, "10.5 format" (|x| < 1e10, 5 decimals)."""
    if 0 <= _plain_decimals(value) <= MAX_DECIMALS:
        return abs(value) < MONEY_MAX
    if not value.is_finite() or abs(value) >= MONEY_MAX:
        return False
    exponent = value.normalize().as_tuple().exponent
    return isinstance(exponent, int) and exponent >= -MAX_DECIMALS


def finite_sum(amounts: Iterable[Decimal]) -> Decimal | None:
    """The exact sum, or None when any amount is not finite."""
    total = Decimal("0")
    for a in amounts:
        if not a.is_finite():
            return None
        total += a
    return total


def _untrap(ctx: decimal.Context) -> None:
    """Decimal traps off: absurd source values give NaN/Infinity, not errors."""
    ctx.traps[decimal.Overflow] = False
    ctx.traps[decimal.InvalidOperation] = False
    ctx.traps[decimal.DivisionByZero] = False


def _safe(func: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Evaluate with Decimal traps off (:func:`_untrap`). The plain function stays reachable
    as ``__wrapped__``, for :func:`_evaluated`, which evaluates every column in one context."""

    def wrapper(record: Any) -> Any:
        with decimal.localcontext() as ctx:
            _untrap(ctx)
            return func(record)

    wrapper.__wrapped__ = func  # type: ignore[attr-defined]
    return wrapper


_SALE_TOTALS: Final = ("subtotal", "discount_total", "tax_total", "total")


def _sale_part_gap(kind: str, field: str) -> Callable[[Any], Decimal | None]:
    def gap(s: Any) -> Decimal | None:
        if not all(cents_ok(getattr(s, f)) for f in _SALE_TOTALS):
            return None
        computed = finite_sum(line.amount for line in s.lines if line.kind == kind)
        stated: Decimal = getattr(s, field)
        return None if computed is None else stated - computed

    return _safe(gap)


@_safe
def sale_total_gap(s: Any) -> Decimal | None:
    """``total - (subtotal + discount_total + tax_total)`` when every total is valid money."""
    if not all(cents_ok(getattr(s, f)) for f in _SALE_TOTALS):
        return None
    gap: Decimal = s.total - (s.subtotal + s.discount_total + s.tax_total)
    return gap


@_safe
def sale_line_gap(s: Any) -> Decimal | None:
    """The worst ``|amount - qty x unit_price|`` over item lines whose numbers QBO takes."""
    worst: Decimal | None = None
    for line in s.lines:
        if line.kind != "item" or line.qty is None or line.unit_price is None:
            continue
        if not (rate_ok(line.qty) and rate_ok(line.unit_price)) or not line.amount.is_finite():
            continue
        gap = abs(line.amount - line.qty * line.unit_price)
        worst = gap if worst is None else max(worst, gap)
    return worst


def _max_discount(s: Any) -> Decimal | None:
    amounts = [
        line.amount for line in s.lines if line.kind == "discount" and line.amount.is_finite()
    ]
    return max(amounts) if amounts else None


def _count(predicate: Callable[[Any], bool]) -> Callable[[Any], int]:
    return _safe(lambda record: sum(1 for line in record.lines if predicate(line)))


def _duplicate_line_nos(record: Any) -> int:
    numbers = [line.line_no for line in record.lines]
    if len(set(numbers)) == len(numbers):
        return 0
    counts = Counter(numbers)
    return sum(1 for n in counts.values() if n > 1)


def _due_days(record: Any) -> int | None:
    if record.due_date is None or _invalid(record):
        return None
    days: int = (record.due_date - record.txn_date).days
    return days


@_safe
def bill_total_gap(b: Any) -> Decimal | None:
    """``total - sum(lines)`` when the total is valid money and every line amount finite."""
    if not cents_ok(b.total):
        return None
    computed = finite_sum(line.amount for line in b.lines)
    return None if computed is None else b.total - computed


def _blank(value: str | None) -> bool:
    return value is None or not value.strip()


def _addr(part: str) -> Callable[[Any], str | None]:
    return lambda c: (getattr(c.bill_addr, part) or None) if c.bill_addr is not None else None


def _line_checks(kind: str) -> tuple[Column, Column]:
    """What every document's lines must satisfy: whole-cent amounts, unique line numbers."""
    return (
        _derived(
            "invalid_line_amounts",
            "integer",
            _count(lambda ln: not cents_ok(ln.amount)),
            f"{kind}.lines.amount_invalid",
            maximum=0,
        ),
        _derived(
            "duplicate_line_nos",
            "integer",
            _duplicate_line_nos,
            f"{kind}.lines.duplicate_line_no",
            maximum=0,
        ),
    )


_TOL: Final = MONEY_TOLERANCE

# --------------------------------------------------------------------------------------------
# THE TABLE
# --------------------------------------------------------------------------------------------

_ADDRESS: Final = (
    ("line1", "address line 1", ADDRESS_LINE_MAX, "BillAddr.Line1"),
    ("line2", "address line 2", ADDRESS_LINE_MAX, "BillAddr.Line2"),
    ("city", "city", ADDRESS_PART_MAX, "BillAddr.City"),
    ("region", "region", ADDRESS_PART_MAX, "BillAddr.CountrySubDivisionCode"),
    ("postal_code", "postal code", POSTAL_CODE_MAX, "BillAddr.PostalCode"),
    ("country", "country", ADDRESS_PART_MAX, "BillAddr.Country"),
)

CUSTOMERS: Final = Table(
    "customers",
    (
        _key("customer"),
        _name(
            "customer",
            "display_name",
            DISPLAY_NAME_MAX,
            "DisplayName",
            required="Give the contact an organisation name, or a given and family name, in the "
            "source app.",
            required_label="display name",
        ),
        _name("customer", "given_name", NAME_PART_MAX, "GivenName"),
        _name("customer", "family_name", NAME_PART_MAX, "FamilyName"),
        Column(
            "company_name",
            "text",
            _text_or_none("company_name"),
            (
                Constraint(
                    "customer.company_name.too_long",
                    "max_length",
                    limit=NAME_PART_MAX,
                    qbo_field="CompanyName",
                ),
                Constraint("customer.company_name.control_character", "control"),
            ),
        ),
        _email("customer", "email"),
        _text("customer", "phone", PHONE_MAX, "PrimaryPhone"),
        _email(
            "customer",
            "billing_email",
            create_only=True,
            consequence=lambda c: " (it is written to QBO when the customer is created)",
            fix=BILLING_EMAIL_FIX,
        ),
        *(
            _text(
                "customer",
                f"bill_addr_{part}",
                limit,
                qbo,
                label=label,
                rule_field=f"address.{part}",
                value=_addr(part),
            )
            for part, label, limit, qbo in _ADDRESS
        ),
    ),
)

ITEMS: Final = Table(
    "items",
    (
        _key("item"),
        _name(
            "item",
            "name",
            ITEM_NAME_MAX,
            "Item.Name",
            required="Give the product a name in the source app.",
        ),
        _text("item", "description", DESCRIPTION_MAX, "Item.Description"),
        Column(
            "unit_price",
            "numeric",
            _attr("unit_price"),
            (Constraint("item.unit_price.invalid", "rate", label="unit price"),),
        ),
    ),
)

INVOICES: Final = Table(
    "invoices",
    (
        _key("sale"),
        _reference(
            "sale",
            "customer_source_id",
            "customer",
            "customer",
            "Choose the contact this sale is for in the source app.",
        ),
        _doc_number("sale"),
        _date("sale", "txn_date"),
        _date("sale", "due_date"),
        _derived("due_days", "integer", _due_days, "sale.due_date.before_txn_date", minimum=0),
        _text("sale", "memo", PRIVATE_NOTE_MAX, "PrivateNote"),
        _email(
            "sale",
            "billing_email",
            consequence=lambda s: (
                "; the invoice is to be emailed to it, so it cannot be sent"
                if s.send_requested
                else ""
            ),
            fix=BILLING_EMAIL_FIX,
        ),
        *(_money("sale", f) for f in _SALE_TOTALS),
        _derived(
            "line_count",
            "integer",
            lambda s: len(s.lines),
            "sale.lines.too_many",
            maximum=MAX_LINES,
        ),
        _derived(
            "item_line_count",
            "integer",
            _count(lambda ln: ln.kind == "item"),
            "sale.lines.required",
            minimum=1,
        ),
        _derived(
            "lines_without_item",
            "integer",
            _count(lambda ln: ln.kind == "item" and _blank(ln.item_source_id)),
            "sale.lines.item_required",
            maximum=0,
        ),
        *_line_checks("sale"),
        _derived(
            "max_line_gap", "numeric", sale_line_gap, "sale.lines.amount_mismatch", maximum=_TOL
        ),
        _derived(
            "max_discount_line", "numeric", _max_discount, "sale.lines.discount_positive", maximum=0
        ),
        _derived(
            "subtotal_gap",
            "numeric",
            _sale_part_gap("item", "subtotal"),
            "sale.subtotal_mismatch",
            minimum=-_TOL,
            maximum=_TOL,
        ),
        _derived(
            "discount_gap",
            "numeric",
            _sale_part_gap("discount", "discount_total"),
            "sale.discount_total_mismatch",
            minimum=-_TOL,
            maximum=_TOL,
        ),
        _derived(
            "tax_gap",
            "numeric",
            _sale_part_gap("tax", "tax_total"),
            "sale.tax_total_mismatch",
            minimum=-_TOL,
            maximum=_TOL,
        ),
        _derived(
            "total_gap",
            "numeric",
            sale_total_gap,
            "sale.total_mismatch",
            minimum=-_TOL,
            maximum=_TOL,
        ),
    ),
)

PAYMENTS: Final = Table(
    "payments",
    (
        _key("receipt"),
        _reference(
            "receipt",
            "customer_source_id",
            "customer",
            "customer",
            "Choose the contact who paid in the source app.",
        ),
        Column(
            "amount",
            "numeric",
            _attr("amount"),
            (
                Constraint("receipt.amount.invalid", "money"),
                Constraint(
                    "receipt.amount.not_positive",
                    "range",
                    minimum=Decimal(0),
                    strict_min=True,
                    record_level=True,
                ),
            ),
        ),
        _date("receipt", "received_on"),
        _text("receipt", "reference", PAYMENT_REF_MAX, "PaymentRefNum"),
    ),
)

VENDORS: Final = Table(
    "vendors",
    (
        _key("vendor"),
        _name(
            "vendor",
            "display_name",
            DISPLAY_NAME_MAX,
            "DisplayName",
            required="Give the worker a trading name, or a given and family name, in the source "
            "app.",
            required_label="display name",
        ),
        _name("vendor", "given_name", NAME_PART_MAX, "GivenName"),
        _name("vendor", "family_name", NAME_PART_MAX, "FamilyName"),
        _email("vendor", "email"),
        _text("vendor", "phone", PHONE_MAX, "PrimaryPhone"),
        _text("vendor", "country", ADDRESS_PART_MAX, "BillAddr.Country"),
    ),
)

BILLS: Final = Table(
    "bills",
    (
        _key("bill"),
        _reference(
            "bill",
            "vendor_source_id",
            "vendor",
            "worker",
            "Choose the worker this invoice is from in the source app.",
        ),
        _doc_number("bill"),
        _date("bill", "txn_date"),
        _date("bill", "due_date"),
        _derived("due_days", "integer", _due_days, "bill.due_date.before_txn_date", minimum=0),
        _text("bill", "memo", PRIVATE_NOTE_MAX, "PrivateNote"),
        Column(
            "total",
            "numeric",
            _attr("total"),
            (
                Constraint("bill.total.invalid", "money"),
                Constraint("bill.total.negative", "range", minimum=Decimal(0), record_level=True),
            ),
        ),
        _derived("line_count", "integer", lambda b: len(b.lines), "bill.lines.required", minimum=1),
        _derived(
            "lines_over_limit",
            "integer",
            lambda b: max(0, len(b.lines) - MAX_LINES),
            "bill.lines.too_many",
            maximum=0,
        ),
        _derived(
            "lines_without_concept",
            "integer",
            _count(lambda ln: _blank(ln.concept)),
            "bill.lines.concept_required",
            maximum=0,
        ),
        *_line_checks("bill"),
        _derived(
            "total_gap",
            "numeric",
            bill_total_gap,
            "bill.total_mismatch",
            minimum=-_TOL,
            maximum=_TOL,
        ),
    ),
)


def _tables() -> dict[str, Table]:
    out: dict[str, Table] = {}
    for e in catalogue.CATALOGUE:
        table = e.constraint_table
        if table is not None:
            if table.entity != e.name:
                raise catalogue.BindingError(f"{e.name} names the table of {table.entity}")
            out[e.name] = table
    return out


TABLES: Final[Mapping[str, Table]] = _tables()
"""The constraint table of every catalogue entity that names one (its row's ``constraints``),
in catalogue order; mapped reference data (tax rates, payment methods) is never written and
has none."""

ENTITIES: Final = tuple(TABLES)


# --------------------------------------------------------------------------------------------
# Staged values
# --------------------------------------------------------------------------------------------

_NUMERIC_LIMIT: Final = Decimal("1e15")


def pg_numeric(value: Decimal) -> Decimal:
    """A Decimal Postgres ``numeric`` can hold, keeping what the checks need to see.

    Non-finite values pass as NaN / Infinity (Postgres has both); magnitudes beyond 1e15 become
    +-Infinity and absurdly fine fractions (1E-999999) NaN, so "not valid money" stays visible
    without overflowing the column.
    """
    if value.is_nan():
        return Decimal("NaN")
    if value.is_infinite() or abs(value) >= _NUMERIC_LIMIT:
        return Decimal("-Infinity") if value.is_signed() else Decimal("Infinity")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -1000 and not value.is_zero():
        return Decimal("NaN")
    return value


def _evaluated(columns: Sequence[Column], record: Any) -> dict[str, Any]:
    """Each column's value by name, in order, all in one trap-free Decimal context (as each
    derived column would be alone), not one context per column."""
    with decimal.localcontext() as ctx:
        _untrap(ctx)
        return {col.name: getattr(col.value, "__wrapped__", col.value)(record) for col in columns}


def staged_values(table: Table, record: Any) -> tuple[Any, ...]:
    """The record's staged column values, in ``table.columns`` order, ready for Postgres."""
    return tuple(
        pg_numeric(v) if isinstance(v, Decimal) else v
        for v in _evaluated(table.columns, record).values()
    )


def _decimal_text(value: Any) -> str:
    """orjson's fallback: a Decimal as exact text (Postgres numeric reads 1E-7, NaN, Infinity)."""
    if isinstance(value, Decimal):
        return str(pg_numeric(value))
    raise TypeError(f"not JSON: {type(value).__name__}")


def staged_json(table: Table, record: Any) -> str:
    """The record's staged column values as a JSON object ``{column: value}`` (numbers as
    their exact text, dates as ISO text): what ``raw_source.<entity>.staged`` keeps for the
    stage to cast into ``staging.<entity>`` (``source_id`` is the row's key, not repeated).
    The same values as :func:`staged_values`."""
    return orjson.dumps(_evaluated(table.columns[1:], record), default=_decimal_text).decode()


def rule_ids(entity: str) -> set[str]:
    """Every rule id the entity's table declares."""
    return {c.rule for _, c in TABLES[entity].constraints}


__all__ = [
    "ENTITIES",
    "TABLES",
    "Column",
    "Constraint",
    "Table",
    "cents_ok",
    "email_lengths_sql",
    "finite_sum",
    "pg_numeric",
    "rate_ok",
    "rule_ids",
    "staged_json",
    "staged_values",
]
