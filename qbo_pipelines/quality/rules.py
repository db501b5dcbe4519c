"""Per-record data-quality rules over canonical records (R40, R12, R31).

Every function here is pure: it takes a canonical record and returns the list of
:class:`Violation` s that hold it back from QBO. An empty list means "clean, write it". The push
planner calls :func:`check` for each staged record, adds the reference violations it finds
through the mapping tables (:func:`missing_mapping`, :func:`unresolved_reference`), quarantines
the records with any violation (:mod:`qbo_pipelines.quality.quarantine`) and writes the rest.

Policy choices (what a demanding data engineer expects):

* **Every violation holds the record.** There is no "warning and write anyway": anything that
  QBO would reject (a validation fault costs an API call and surfaces later, with a worse
  message) or that would silently make QBO differ from the source is caught here. Silently
  dropping a bad field is worse than holding: the sync would record the record as synced with a
  content hash that claims QBO has the value.
* **Emails are checked only where they would be written.** A contact's ``email`` is always
  written (``PrimaryEmailAddr``). Its ``billing_email`` is written only when the Customer is
  created (R6), so :func:`check_customer` checks it only with ``creating=True`` (the default).
  A sale's ``billing_email`` becomes the invoice's ``BillEmail``; with ``send_requested`` a
  malformed one would also make QBO email the wrong address or fail (6420), and the reason says
  so. A missing billing email never holds a sale: R18 says it is then only copied.
* **Rules see what is written.** The transforms write an email exactly as stored whenever it is
  not empty, so an empty email is absent and anything else (spaces around it included) must be
  a valid address. :func:`normalise_email` is offered to connectors that trim; trimming when the
  canonical record is built keeps the rules and the written value in step.
* **Money** must be finite, within QBO's "15 digits in 10.5 format", and amounts (not unit
  prices or quantities) must be whole cents. Consistency is checked within
  :data:`MONEY_TOLERANCE`. A sale whose total is negative is a credit note (pushed as a QBO
  CreditMemo), not an error; absurd magnitudes (beyond QBO's range) are held.
* **Text** (hostile input, R40): control characters (C0, DEL, C1) and broken UTF-16 (lone
  surrogates) are held in every text field QBO receives, except tab and line breaks in free
  text (memos, descriptions, addresses); names also refuse ':', tab and line breaks (QBO
  §11.1). Such a value also could not be put in a QBO query literal (the name match, R5), so
  holding it is what keeps it from failing the run. Everything else Unicode (accents, emoji,
  right-to-left scripts, quotes, backslashes) is valid QBO text and syncs as is; lengths are
  counted in UTF-16 code units (QBO is a Java service, an emoji counts 2), the stricter
  reading. Surrounding blanks of names are trimmed by the connector (QBO trims names itself).
* **Values the reader could not represent** (a date in year 10000, ``infinity``, BC) arrive as
  a stand-in plus an :class:`~qbo_pipelines.canonical.InvalidValue` marker and are held with
  the date rules' ids (``sale.txn_date.out_of_range``), quoting the raw value.

Rule ids are stable strings ``<record kind>.<field>.<problem>`` (e.g.
``sale.lines.amount_mismatch``); a record can break the same rule several times (two bad lines),
:func:`merge_by_rule` folds those into one violation per rule for storage.
"""

from __future__ import annotations

import decimal
import functools
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import Any, Final, ParamSpec, TypeVar

from qbo_pipelines import entities as catalogue
from qbo_pipelines.canonical import (
    CanonicalBill,
    CanonicalCustomer,
    CanonicalItem,
    CanonicalReceipt,
    CanonicalSale,
    CanonicalVendor,
    InvalidValue,
)

# QBO's limits live in the constraint table's module, written once; re-exported here.
from qbo_pipelines.quality import constraints as _table  # noqa: E402
from qbo_pipelines.quality.constraints import (  # noqa: E402
    ADDRESS_LINE_MAX,
    ADDRESS_PART_MAX,
    CUSTOMER_MEMO_MAX,
    DESCRIPTION_MAX,
    DISPLAY_NAME_MAX,
    DOC_NUMBER_MAX,
    EARLIEST_DATE,
    EMAIL_MAX,
    EMAIL_PATTERN,
    ITEM_NAME_MAX,
    LATEST_DATE,
    MAX_DECIMALS,
    MAX_LINES,
    MONEY_MAX,
    MONEY_TOLERANCE,
    NAME_FORBIDDEN,
    NAME_PART_MAX,
    PAYMENT_REF_MAX,
    PHONE_MAX,
    POSTAL_CODE_MAX,
    PRIVATE_NOTE_MAX,
    TAXABLE_INVOICE_MAX_LINES,
    cents_ok,
)
from qbo_pipelines.quality.constraints import finite_sum as _sum  # noqa: E402
from qbo_pipelines.quality.constraints import rate_ok as _rate_ok  # noqa: E402

_EMAIL_RE: Final = re.compile(EMAIL_PATTERN)
_FORBIDDEN_SEARCH: Final = re.compile("[" + re.escape("".join(sorted(NAME_FORBIDDEN))) + "]").search


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule on one record.

    Attributes:
        rule: stable id, e.g. ``customer.display_name.required``; the quarantine key.
        reason: one sentence a person can act on, naming the record and the offending value.
        fix: what to do about it, or None when the reason says it all.
        qbo_field: the QBO field the offending value is written to (``DisplayName``,
            ``BillAddr.City``), where one field's value is at fault; None for record-level
            rules. An update that does not write that field is not held for it (QBO holds the
            value already).
    """

    rule: str
    reason: str
    fix: str | None = None
    qbo_field: str | None = None


_P = ParamSpec("_P")
_R = TypeVar("_R")


_TRAPS: Final = (decimal.Overflow, decimal.InvalidOperation, decimal.DivisionByZero)


def decimal_safe(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run a check with Decimal overflow/invalid-operation traps off.

    Source data can hold absurd values (``9E+999999``); arithmetic on them then yields
    Infinity or NaN, which the rules report, instead of raising in the middle of a batch.

    The check first runs as it is (no context to set up: the common case, and the hot path of
    planning 100k records); only when one of those traps fires does it run again with them
    off. The checks are pure, and where no trap fires the two contexts give the same values.
    """

    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return func(*args, **kwargs)
        except _TRAPS:
            pass
        with decimal.localcontext() as ctx:
            for trap in _TRAPS:
                ctx.traps[trap] = False
            return func(*args, **kwargs)

    return wrapper


# --------------------------------------------------------------------------------------------
# Small helpers: rendering values in reasons, text and money predicates
# --------------------------------------------------------------------------------------------


def show(value: object, limit: int = 60) -> str:
    """Render a value for a reason: quoted, control characters escaped, long text shortened.

    Args:
        value: the offending value.
        limit: how many characters of a long string to show.

    Returns:
        e.g. ``'bob@@example.com'`` or ``'Aaaa…' (612 characters)``.
    """
    if value is None:
        return "(empty)"
    if isinstance(value, Decimal):
        return money(value)
    text = str(value)
    escaped = text.encode("unicode_escape").decode("ascii") if _has_control(text) else text
    if len(escaped) > limit:
        return f"'{escaped[:limit]}…' ({len(text)} characters)"
    return f"'{escaped}'"


def _has_control(text: str) -> bool:
    # A printable text has no Cc / Cs character (the quick answer for nearly every value).
    return not text.isprintable() and any(_is_control(ch) for ch in text)


def _is_control(ch: str) -> bool:
    """C0, DEL and C1 control characters and lone surrogates (never valid QBO text)."""
    return unicodedata.category(ch) in ("Cc", "Cs")


def qbo_length(value: str) -> int:
    """Length as QBO counts it: UTF-16 code units (an emoji or other astral character is 2).

    QBO is a Java service and its limits are documented in characters; Java strings count
    UTF-16 units, so this is the reading that never lets a too-long value through.
    """
    return len(value.encode("utf-16-le", errors="surrogatepass")) // 2


def money(value: Decimal) -> str:
    """A Decimal as people write it: ``40.00`` for whole cents, else every digit (``2.505``).

    Absurd magnitudes (beyond 15 digits either side) are shown in scientific notation so a
    reason never balloons.
    """
    if not value.is_finite():
        return str(value)
    if not _displayable(value):
        return f"{value:.6E}"
    exponent = value.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -2:
        return f"{value:.2f}"
    return format(value.normalize(), "f")


def _displayable(value: Decimal) -> bool:
    """True when plain notation stays short (|value| < 1e15 and at most 15 decimals)."""
    if value.is_zero():
        return True
    return Decimal("1e-15") <= abs(value) < Decimal("1e15")


def number(value: Decimal) -> str:
    """A quantity without trailing zeros (``2`` for ``2.0000``)."""
    if not value.is_finite():
        return str(value)
    if not _displayable(value):
        return f"{value:.6E}"
    return format(value.normalize(), "f")


def is_blank(value: str | None) -> bool:
    """True for None, ``''`` and whitespace-only text."""
    return value is None or not value.strip()


def normalise_email(value: str | None) -> str | None:
    """The email as the sync writes it: trimmed; blank means no email.

    Args:
        value: an email field as stored in the source.

    Returns:
        The trimmed address, or None when there is none.
    """
    if value is None:
        return None
    trimmed = value.strip()
    return trimmed or None


def is_valid_email(value: str) -> bool:
    """True when ``value`` is a plausible single address QBO will accept (<= 100 chars).

    ASCII ``local@domain.tld``: no spaces, one ``@``, no leading/trailing/double dots in the
    local part, DNS-style labels and an alphabetic top-level domain.
    """
    return len(value) <= EMAIL_MAX and _EMAIL_RE.fullmatch(value) is not None


def close(a: Decimal, b: Decimal) -> bool:
    """True when two finite amounts agree within :data:`MONEY_TOLERANCE`."""
    if not (a.is_finite() and b.is_finite()):
        return False
    return abs(a - b) <= MONEY_TOLERANCE


def merge_by_rule(violations: Iterable[Violation]) -> list[Violation]:
    """Fold violations of the same rule into one (reasons and fixes joined, duplicates dropped).

    The quarantine keeps one row per record and rule; two bad lines of one sale break
    ``sale.lines.amount_mismatch`` twice and are stored as one row naming both.

    Args:
        violations: the violations of ONE record.

    Returns:
        One violation per rule, in first-seen order.
    """
    reasons: dict[str, list[str]] = {}
    fixes: dict[str, list[str]] = {}
    for v in violations:
        bucket = reasons.setdefault(v.rule, [])
        if v.reason not in bucket:
            bucket.append(v.reason)
        fix_bucket = fixes.setdefault(v.rule, [])
        if v.fix is not None and v.fix not in fix_bucket:
            fix_bucket.append(v.fix)
    return [
        Violation(rule, "; ".join(reasons[rule]), " ".join(fixes[rule]) or None)
        for rule in reasons
    ]


# --------------------------------------------------------------------------------------------
# Field-level rule builders (shared by the record checks)
# --------------------------------------------------------------------------------------------


def _required(rule: str, label: str, field: str, value: str | None, fix: str) -> list[Violation]:
    if is_blank(value):
        return [Violation(rule, f"{label}: {field} is empty ({show(value)})", fix)]
    return []


def _max_len(
    rule: str, label: str, field: str, value: str | None, limit: int, qbo_field: str
) -> list[Violation]:
    if value is None or len(value) * 2 <= limit:  # at most 2 UTF-16 units per character
        return []
    length = qbo_length(value)
    if length > limit:
        return [
            Violation(
                rule,
                f"{label}: {field} {show(value)} is {length} characters, QBO allows "
                f"{limit} in {qbo_field}",
                f"Shorten {field} to at most {limit} characters in the source app.",
            )
        ]
    return []


def _no_forbidden(rule: str, label: str, field: str, value: str | None) -> list[Violation]:
    if value is None or _FORBIDDEN_SEARCH(value) is None:
        return []
    found = sorted({ch for ch in value if ch in NAME_FORBIDDEN}, key=":\t\n\r".index)
    if not found:
        return []
    names = [_CHAR_NAMES[ch] for ch in found]
    return [
        Violation(
            rule,
            f"{label}: {field} {show(value)} contains {' and '.join('a ' + n for n in names)}, "
            "which QBO does not allow in names",
            f"Remove the {' and the '.join(names)} from {field} in the source app (QBO uses "
            "':' to separate sub-levels).",
        )
    ]


_CHAR_NAMES: Final = {":": "colon ':'", "\t": "tab", "\n": "line break", "\r": "carriage return"}


_BREAKS: Final = frozenset({"\t", "\n", "\r"})


def _no_control(
    rule: str, label: str, field: str, value: str | None, *, allow_breaks: bool
) -> list[Violation]:
    """Hold control characters (BEL, ESC, NUL, DEL, C1...) and lone surrogates.

    Tab and line breaks are allowed in free text (``allow_breaks``); in names they are
    :data:`NAME_FORBIDDEN` and reported by that rule instead.
    """
    if value is None or value.isprintable():  # printable: no Cc / Cs character at all
        return []
    found = sorted({ch for ch in value if _is_control(ch) and ch not in _BREAKS}, key=ord)
    if not allow_breaks:
        found = [ch for ch in found if ch not in NAME_FORBIDDEN]
    if not found:
        return []
    codes = ", ".join(_char_code(ch) for ch in found)
    return [
        Violation(
            rule,
            f"{label}: {field} {show(value)} contains control character(s) {codes}, which QBO "
            "cannot store or search for",
            f"Retype {field} in the source app without the invisible control character(s) "
            f"({codes}); they usually come from a paste or an import.",
        )
    ]


def _char_code(ch: str) -> str:
    name = unicodedata.name(ch, "")
    code = f"U+{ord(ch):04X}"
    return f"{code} {name}" if name else code




def _email_rules(
    prefix: str,
    label: str,
    field: str,
    value: str | None,
    consequence: str = "",
    fix: str | None = None,
) -> list[Violation]:
    if not value:  # the transforms write nothing for None or ''
        return []
    if is_valid_email(value):
        return []
    if value != value.strip() and is_valid_email(value.strip()):
        why = "has spaces around it"
    elif len(value) > EMAIL_MAX:
        why = f"is longer than {EMAIL_MAX} characters"
    else:
        why = "is not a valid address"
    return [
        Violation(
            f"{prefix}.{field}.format",
            f"{label}: {field} {show(value)} {why}{consequence}",
            fix or f"Correct {field} in the source app (name@example.com), or clear it.",
        )
    ]


def _money_rules(rule: str, label: str, field: str, value: Decimal) -> list[Violation]:
    if cents_ok(value):
        return []
    if not value.is_finite():
        problem = "is not a number"
    elif abs(value) >= MONEY_MAX:
        problem = "is too large for QBO (at most 10 digits before the point)"
    else:
        problem = "has fractions of a cent"
    return [
        Violation(
            rule,
            f"{label}: {field} {money(value)} {problem}",
            f"Correct {field} in the source app to a whole-cent amount.",
        )
    ]


def _date_rules(
    prefix: str, label: str, field: str, value: date | None,
    invalid: Sequence[InvalidValue] = (),
) -> list[Violation]:
    bad = [v for v in invalid if v.field == field]
    if bad:
        return [_invalid_date(prefix, label, v) for v in bad]
    if value is None or EARLIEST_DATE <= value <= LATEST_DATE:
        return []
    return [
        Violation(
            f"{prefix}.{field}.out_of_range",
            f"{label}: {field} {value.isoformat()} is outside "
            f"{EARLIEST_DATE.isoformat()}..{LATEST_DATE.isoformat()}",
            f"Correct {field} in the source app.",
        )
    ]


def _invalid_date(prefix: str, label: str, v: InvalidValue) -> Violation:
    """A date the reader could not represent (stand-in value plus marker, see canonical)."""
    if not v.raw:
        return Violation(
            f"{prefix}.{v.field}.required",
            f"{label}: {v.field} {v.problem}",
            f"Enter the {v.field.replace('_', ' ')} in the source app.",
        )
    return Violation(
        f"{prefix}.{v.field}.out_of_range",
        f"{label}: {v.field} {show(v.raw)} {v.problem}",
        f"Correct {v.field} in the source app to a real date between "
        f"{EARLIEST_DATE.isoformat()} and {LATEST_DATE.isoformat()}.",
    )


def _due_rules(
    prefix: str, label: str, txn_date: date, due_date: date | None,
    invalid: Sequence[InvalidValue] = (),
) -> list[Violation]:
    if due_date is None or due_date >= txn_date or invalid:
        return []
    return [
        Violation(
            f"{prefix}.due_date.before_txn_date",
            f"{label}: due date {due_date.isoformat()} is before the {prefix} date "
            f"{txn_date.isoformat()}",
            "Correct the due date (or the date) in the source app.",
        )
    ]



def _duplicate_line_nos(prefix: str, label: str, line_nos: Sequence[int]) -> list[Violation]:
    if len(set(line_nos)) == len(line_nos):
        return []
    counts = Counter(line_nos)
    dupes = sorted(n for n, count in counts.items() if count > 1)
    if not dupes:
        return []
    return [
        Violation(
            f"{prefix}.lines.duplicate_line_no",
            f"{label}: line number(s) {', '.join(map(str, dupes))} appear more than once",
            "Renumber the lines in the source app.",
        )
    ]


# --------------------------------------------------------------------------------------------
# Record labels (how a reason names the record)
# --------------------------------------------------------------------------------------------


def _named(kind: str, source_id: str, name: str | None) -> str:
    if is_blank(name):
        return f"{kind} #{source_id}"
    return f"{kind} {show(name, limit=40)} (#{source_id})"


def _numbered(kind: str, source_id: str, doc_number: str | None) -> str:
    if is_blank(doc_number):
        return f"{kind} #{source_id}"
    return f"{kind} {_bare(doc_number or '')} (#{source_id})"


def _bare(text: str) -> str:
    """A short identifier as is (``S-1042``), or quoted and shortened when long or odd."""
    if len(text) <= 40 and text.isprintable() and " " not in text and "'" not in text:
        return text
    return show(text, limit=40)


def record_label(record: object) -> str:
    """How reasons name a record: ``customer 'Acme Ltd' (#17)``, ``sale S-1042 (#77)``.

    The kind and the naming field come from the record's catalogue row (``kind``,
    ``label_field``): a ``doc_number`` reads as a number, any other field as a quoted name.

    Args:
        record: a canonical record.

    Returns:
        A short human label (falls back to the type name and ``source_id``).
    """
    source_id = str(getattr(record, "source_id", "?"))
    row = catalogue.of_record(record)
    if row is None:
        return f"{type(record).__name__} #{source_id}"
    if row.label_field is None:
        return f"{row.kind} #{source_id}"
    value = getattr(record, row.label_field)
    if row.label_field == "doc_number":
        return _numbered(row.kind, source_id, value)
    return _named(row.kind, source_id, value)


# --------------------------------------------------------------------------------------------
# The constraint table, evaluated per record
# --------------------------------------------------------------------------------------------


def _constraint_rules(
    col: _table.Column, c: _table.Constraint, label: str, record: Any
) -> list[Violation]:
    """The violations of one field constraint of the table on one record, each naming the
    QBO field the column is written to."""
    found = _constraint_violations(col, c, label, record)
    qbo_field = _qbo_field(col) if found else None
    return [replace(v, qbo_field=qbo_field) for v in found] if qbo_field else found


def _constraint_violations(
    col: _table.Column, c: _table.Constraint, label: str, record: Any
) -> list[Violation]:
    field = c.label or col.name
    value = col.value(record)
    if c.check == "required":
        if col.sql_type != "text":
            return []  # dates: the reader's missing-value markers are reported by date_range
        return _required(c.rule, label, field, value, c.fix or f"Enter the {field}.")
    if c.check == "not_blank":
        if value is None or value.strip():
            return []
        return [Violation(c.rule, f"{label}: the {field} is blank ({show(value)})",
                          "Clear the number (QBO then numbers it) or enter one in the source app.")]
    if c.check == "max_length":
        return _max_len(c.rule, label, field, value, c.limit or 0, c.qbo_field or field)
    if c.check == "forbidden":
        return _no_forbidden(c.rule, label, field, value)
    if c.check == "control":
        return _no_control(c.rule, label, field, value, allow_breaks=True)
    if c.check == "email":
        prefix = c.rule.rsplit(".", 2)[0]
        extra = col.consequence(record) if col.consequence is not None else ""
        return _email_rules(prefix, label, col.name, value, extra, c.fix)
    if c.check == "money":
        return _money_rules(c.rule, label, field, value)
    if c.check == "rate":
        if value is None or _rate_ok(value):
            return []
        return [Violation(c.rule, f"{label}: {field} {money(value)} is not a usable amount",
                          f"Correct the {field} in the source app.")]
    if c.check == "date_range":
        prefix = c.rule.rsplit(".", 2)[0]
        return _date_rules(prefix, label, col.name, getattr(record, col.name),
                           getattr(record, "invalid", ()))
    raise ValueError(f"{c.rule}: a {c.check!r} constraint must be record_level")


def _date_ok(record: Any, name: str) -> bool:
    if getattr(record, "invalid", ()):
        return False
    value = getattr(record, name)
    return value is None or EARLIEST_DATE <= value <= LATEST_DATE


_QUICK: Final[dict[str, str]] = {
    "required": "v is not None and bool(v.strip())",
    "not_blank": "v is None or bool(v.strip())",
    "max_length": "v is None or len(v) <= {half}",
    "forbidden": "v is None or forbidden(v) is None",
    "control": "v is None or (type(v) is str and v.isprintable())",
    "email": "not v or valid_email(v)",
    "money": "cents_ok(v)",
    "rate": "v is None or rate_ok(v)",
    "date_range": "date_ok(r, {name!r})",
}
"""The quick test of each kind of field constraint, on the column's value ``v`` of record
``r``: True only when the constraint's rule certainly finds nothing. Lengths: a text of n
characters is at most 2n UTF-16 units. Control characters: a printable text has none
(``str.isprintable`` is False for every Cc and Cs character, and for tabs and line breaks,
which then take the full evaluation)."""


def _quick(col: _table.Column, c: _table.Constraint) -> str:
    """The quick test of one constraint as an expression (``False``: none, always evaluate)."""
    if c.check == "required" and col.sql_type != "text":
        return "True"  # dates: the reader's missing-value markers are reported by date_range
    template = _QUICK.get(c.check)
    if template is None:
        return "False"
    return template.format(half=(c.limit or 0) // 2, name=col.name)


@functools.cache
def _all_pass(entity: str, creating: bool) -> Callable[[Any], bool]:
    """One function per entity testing every field constraint of its table quickly: True only
    when none can hold the record. Generated once (one expression per constraint, each column
    read once), so a clean record costs no loop, no reason and no label."""
    scope: dict[str, Any] = {
        "forbidden": _FORBIDDEN_SEARCH, "valid_email": is_valid_email, "cents_ok": cents_ok,
        "rate_ok": _rate_ok, "date_ok": _date_ok,
    }
    body: list[str] = []
    for i, col in enumerate(_columns(entity, creating)):
        tests = [_quick(col, c) for c in col.constraints if not c.record_level]
        if not tests:
            continue
        scope[f"value_{i}"] = col.value
        body.append(f"    v = value_{i}(r)")
        body += [f"    if not ({test}):\n        return False" for test in tests]
    code = "def all_pass(r):\n" + "\n".join([*body, "    return True"]) + "\n"
    exec(compile(code, f"<quick tests of {entity}>", "exec"), scope)  # noqa: S102
    all_pass: Callable[[Any], bool] = scope["all_pass"]
    return all_pass


def _columns(entity: str, creating: bool) -> tuple[_table.Column, ...]:
    return tuple(
        col for col in _table.TABLES[entity].columns if not (col.create_only and not creating)
    )


def _table_rules(entity: str, record: Any, *, creating: bool = True) -> list[Violation]:
    """Every field constraint of the entity's table (:mod:`.constraints`) on one record.

    The record-level constraints (totals, line counts, due date) are checked by the record
    check itself, which words their reasons; the table still declares them for the GX suite.
    The quick tests (:func:`_all_pass`) clear a clean record at once; any doubt evaluates every
    constraint in full, so every reason and its order are the rules' own.
    """
    if _all_pass(entity, creating)(record):
        return []
    label = record_label(record)
    return [
        v
        for col in _columns(entity, creating)
        for c in col.constraints
        if not c.record_level
        for v in _constraint_rules(col, c, label, record)
    ]


def _qbo_field(col: _table.Column) -> str | None:
    """The QBO field a column is written to (its constraints name it), if any."""
    return next((c.qbo_field for c in col.constraints if c.qbo_field), None)


# --------------------------------------------------------------------------------------------
# Record checks
# --------------------------------------------------------------------------------------------


@decimal_safe
def check_customer(c: CanonicalCustomer, *, creating: bool = True) -> list[Violation]:
    """Rules for a contact pushed as a QBO Customer (R4-R7).

    Args:
        c: the canonical customer.
        creating: True when the Customer will be created in QBO; the billing contact is only
            written then (R6), so only then are ``billing_email`` and ``billing_name`` checked.

    Returns:
        The violations (empty when the customer can be written).
    """
    out = _table_rules("customers", c, creating=creating)
    if creating:
        out += _billing_name_rules(record_label(c), c.billing_name)
    return out


def _billing_name_rules(label: str, billing_name: str | None) -> list[Violation]:
    """The billing contact's name is split into GivenName / FamilyName on create (R6)."""
    if is_blank(billing_name):
        return []
    name = (billing_name or "").strip()
    parts = name.split(None, 1)
    out = _no_forbidden("customer.billing_name.forbidden_character", label, "billing_name", name)
    out += _no_control(
        "customer.billing_name.control_character", label, "billing_name", name,
        allow_breaks=False,
    )
    if any(qbo_length(part) > NAME_PART_MAX for part in parts):
        out.append(
            Violation(
                "customer.billing_name.too_long",
                f"{label}: billing_name {show(name)} has a part longer than {NAME_PART_MAX} "
                "characters (QBO GivenName / FamilyName)",
                f"Shorten the billing contact's given and family names to at most "
                f"{NAME_PART_MAX} characters each in the source app.",
            )
        )
    return out


@decimal_safe
def check_item(i: CanonicalItem, *, creating: bool = True) -> list[Violation]:
    """Rules for a service type / product matched to or created as a QBO Item (R10).

    Args:
        i: the canonical item.

    Returns:
        The violations (empty when the item can be written).
    """
    return _table_rules("items", i)


@decimal_safe
def check_sale(s: CanonicalSale, *, creating: bool = True) -> list[Violation]:
    """Rules for a sale pushed as a QBO Invoice (R11-R15, R18).

    Lines: at least one item line; each item line names its product; where quantity and unit
    price are given, ``amount = qty x unit_price`` (QBO 6070); discount lines are not positive.
    Totals: ``subtotal`` = sum of item lines, ``discount_total`` = sum of discount lines,
    ``tax_total`` = sum of tax lines and ``total = subtotal + discount_total + tax_total``.

    Args:
        s: the canonical sale.

    Returns:
        The violations (empty when the invoice can be written, mappings aside).
    """
    label = record_label(s)
    out = _table_rules("invoices", s)
    out += _due_rules("sale", label, s.txn_date, s.due_date, s.invalid)
    out += _sale_line_rules(label, s)
    out += _sale_total_rules(label, s)
    return out



def _sale_line_rules(label: str, s: CanonicalSale) -> list[Violation]:
    p = "sale"
    lines = s.lines
    out: list[Violation] = []
    if not any(line.kind == "item" for line in lines):
        out.append(
            Violation(
                f"{p}.lines.required",
                f"{label}: has no item lines ({len(lines)} line(s) in all); a QBO invoice "
                "needs at least one",
                "Add the products or services sold to the sale in the source app.",
            )
        )
    out += _too_many_lines(p, label, len(lines))
    out += _duplicate_line_nos(p, label, [line.line_no for line in lines])
    for line in lines:
        # Each group of rules runs only when its quick test leaves a doubt (see _passes), so a
        # clean line builds no reason; the groups keep their order.
        description = line.description
        if description is not None and not (
            len(description) <= DESCRIPTION_MAX // 2 and description.isprintable()
        ):
            where = f"{label} line {line.line_no}"
            out += _max_len(
                f"{p}.lines.description_too_long", where, "description", description,
                DESCRIPTION_MAX, "Line.Description",
            )
            out += _no_control(
                f"{p}.lines.description_control_character", where, "description",
                description, allow_breaks=True,
            )
        if not cents_ok(line.amount):
            out += _money_rules(
                f"{p}.lines.amount_invalid", f"{label} line {line.line_no}", "amount",
                line.amount,
            )
        if line.kind == "item":
            if not _item_line_passes(line.item_source_id, line.qty, line.unit_price, line.amount):
                out += _item_line_rules(f"{label} line {line.line_no}", line.item_source_id,
                                        line.qty, line.unit_price, line.amount)
        elif line.kind == "discount" and not _discount_line_passes(
            line.amount, line.discount_percent
        ):
            out += _discount_line_rules(
                f"{label} line {line.line_no}", line.amount, line.discount_percent
            )
    return out


def _item_line_passes(
    item_source_id: str | None, qty: Decimal | None, unit_price: Decimal | None, amount: Decimal
) -> bool:
    """True when :func:`_item_line_rules` certainly finds nothing (the same tests, no reasons)."""
    if item_source_id is None or not item_source_id.strip():
        return False
    if qty is None or unit_price is None:
        return True
    if not (_rate_ok(qty) and _rate_ok(unit_price)):
        return False
    return not amount.is_finite() or close(amount, qty * unit_price)


def _discount_line_passes(amount: Decimal, discount_percent: Decimal | None) -> bool:
    """True when :func:`_discount_line_rules` certainly finds nothing."""
    if amount.is_finite() and amount > 0:
        return False
    return discount_percent is None or (
        discount_percent.is_finite() and 0 <= discount_percent <= 100
    )


def _too_many_lines(prefix: str, label: str, count: int) -> list[Violation]:
    if count <= MAX_LINES:
        return []
    return [
        Violation(
            f"{prefix}.lines.too_many",
            f"{label}: has {count} lines; QBO takes at most {MAX_LINES} lines on one "
            "document (750 on a taxable invoice, QBO_API §11.4)",
            f"Split it into documents of at most {MAX_LINES} lines each in the source app.",
        )
    ]


def _item_line_rules(
    where: str,
    item_source_id: str | None,
    qty: Decimal | None,
    unit_price: Decimal | None,
    amount: Decimal,
) -> list[Violation]:
    p = "sale"
    out = _required(
        f"{p}.lines.item_required", where, "product", item_source_id,
        "Choose the product or service for this line in the source app.",
    )
    if qty is None or unit_price is None:
        return out
    if not (_rate_ok(qty) and _rate_ok(unit_price)):
        out.append(
            Violation(
                f"{p}.lines.qty_or_price_invalid",
                f"{where}: qty {number(qty)} or unit price {number(unit_price)} is not a "
                f"number QBO takes (finite, under 10 digits before the point and at most "
                f"{MAX_DECIMALS} after)",
                "Correct the quantity and unit price in the source app.",
            )
        )
        return out
    expected = qty * unit_price
    if amount.is_finite() and not close(amount, expected):
        out.append(
            Violation(
                f"{p}.lines.amount_mismatch",
                f"{where}: amount {money(amount)} is not qty {number(qty)} × unit price "
                f"{money(unit_price)} = {money(expected)}",
                "Correct the line's quantity, unit price or amount in the source app "
                "(QBO rejects the invoice otherwise, error 6070).",
            )
        )
    return out


def _discount_line_rules(
    where: str, amount: Decimal, discount_percent: Decimal | None
) -> list[Violation]:
    p = "sale"
    out: list[Violation] = []
    if amount.is_finite() and amount > 0:
        out.append(
            Violation(
                f"{p}.lines.discount_positive",
                f"{where}: discount amount {money(amount)} is positive; a discount reduces the "
                "total",
                "Enter the discount as a negative amount (or make it an item line).",
            )
        )
    if discount_percent is not None and not (
        discount_percent.is_finite() and 0 <= discount_percent <= 100
    ):
        out.append(
            Violation(
                f"{p}.lines.discount_percent_out_of_range",
                f"{where}: discount percent {number(discount_percent)} is not between 0 and 100",
                "Correct the discount percentage in the source app.",
            )
        )
    return out


def _sale_total_rules(label: str, s: CanonicalSale) -> list[Violation]:
    p = "sale"
    out: list[Violation] = []
    if not all(cents_ok(v) for v in (s.subtotal, s.discount_total, s.tax_total, s.total)):
        return out  # reported by the table's sale.<total>.invalid
    fix = "Recalculate the sale in the source app so its totals match its lines."
    for field, kind, stated in (
        ("subtotal", "item", s.subtotal),
        ("discount_total", "discount", s.discount_total),
        ("tax_total", "tax", s.tax_total),
    ):
        computed = _sum(line.amount for line in s.lines if line.kind == kind)
        if computed is not None and not close(stated, computed):
            out.append(
                Violation(
                    f"{p}.{field}_mismatch",
                    f"{label}: {field} {money(stated)} is not the sum of its {kind} lines "
                    f"{money(computed)}",
                    fix,
                )
            )
    expected = s.subtotal + s.discount_total + s.tax_total
    if not close(s.total, expected):
        out.append(
            Violation(
                f"{p}.total_mismatch",
                f"{label}: total {money(s.total)} is not subtotal {money(s.subtotal)} + "
                f"discounts {money(s.discount_total)} + tax {money(s.tax_total)} = "
                f"{money(expected)}",
                fix,
            )
        )
    # A negative total is a credit note: pushed as a QBO CreditMemo, never held (R11).
    return out


@decimal_safe
def check_receipt(r: CanonicalReceipt, *, creating: bool = True) -> list[Violation]:
    """Rules for a receipt pushed as a QBO Payment (R19).

    Args:
        r: the canonical receipt.

    Returns:
        The violations (empty when the payment can be written, references aside).
    """
    out = _table_rules("payments", r)
    if cents_ok(r.amount) and r.amount <= 0:
        out.append(
            Violation(
                "receipt.amount.not_positive",
                f"{record_label(r)}: amount {money(r.amount)} is not positive; a QBO payment "
                "must be more than zero",
                "Correct the amount in the source app (record refunds as refunds).",
            )
        )
    return out


@decimal_safe
def check_vendor(v: CanonicalVendor, *, creating: bool = True) -> list[Violation]:
    """Rules for a worker / contractor pushed as a QBO Vendor (R23).

    Args:
        v: the canonical vendor.

    Returns:
        The violations (empty when the vendor can be written).
    """
    return _table_rules("vendors", v)


@decimal_safe
def check_bill(b: CanonicalBill, *, creating: bool = True) -> list[Violation]:
    """Rules for a worker invoice pushed as a QBO Bill (R23).

    At least one line, each with a concept (it picks the expense account, R24) and a whole-cent
    amount; ``total`` equals the sum of the lines and is not negative.

    Args:
        b: the canonical bill.

    Returns:
        The violations (empty when the bill can be written, mappings aside).
    """
    label = record_label(b)
    p = "bill"
    out = _table_rules("bills", b)
    out += _due_rules(p, label, b.txn_date, b.due_date, b.invalid)
    out += _too_many_lines(p, label, len(b.lines))
    if not b.lines:
        out.append(
            Violation(
                f"{p}.lines.required",
                f"{label}: has no lines; a QBO bill needs at least one",
                "Add the invoice's lines in the source app.",
            )
        )
    out += _duplicate_line_nos(p, label, [line.line_no for line in b.lines])
    for line in b.lines:
        where = f"{label} line {line.line_no}"
        out += _required(
            f"{p}.lines.concept_required", where, "concept", line.concept,
            "Choose the concept of this line in the source app (it picks the expense account).",
        )
        out += _max_len(
            f"{p}.lines.description_too_long", where, "description", line.description,
            DESCRIPTION_MAX, "Line.Description",
        )
        out += _no_control(
            f"{p}.lines.description_control_character", where, "description",
            line.description, allow_breaks=True,
        )
        out += _no_control(
            f"{p}.lines.concept_control_character", where, "concept", line.concept,
            allow_breaks=False,
        )
        out += _money_rules(f"{p}.lines.amount_invalid", where, "amount", line.amount)
    if not cents_ok(b.total):
        return out  # reported by the table's bill.total.invalid
    if b.total < 0:
        out.append(
            Violation(
                f"{p}.total.negative",
                f"{label}: total {money(b.total)} is negative; a QBO bill cannot be",
                "Record a negative worker invoice as a vendor credit, or correct it.",
            )
        )
    computed = _sum(line.amount for line in b.lines)
    if computed is not None and not close(b.total, computed):
        out.append(
            Violation(
                f"{p}.total_mismatch",
                f"{label}: total {money(b.total)} is not the sum of its lines {money(computed)}",
                "Recalculate the invoice in the source app so its total matches its lines.",
            )
        )
    return out


def check(record: Any, *, creating: bool = True) -> list[Violation]:
    """Run the rules for any canonical record.

    Tax rates and payment methods are mapped, never written (R12, R19), so they have no
    per-record rules here; their mappings are checked by the planner.

    Args:
        record: a ``Canonical*`` record.
        creating: False when the record already exists in QBO (an update). Only customers use
            it: their billing contact is written on create only (R6), so it is not checked on
            updates. Pass ``creating=current is None`` from the planner.

    Returns:
        The violations; empty when the record may be written.

    Raises:
        TypeError: for a type that is not a canonical source record.
    """
    row = catalogue.of_record(record)
    if row is not None:
        rules = row.rule_check
        return [] if rules is None else rules(record, creating=creating)
    raise TypeError(f"no data-quality rules for {type(record).__name__}")


# --------------------------------------------------------------------------------------------
# Cross-record rule: QBO display names are unique across customers and vendors
# --------------------------------------------------------------------------------------------


def name_key(name: str) -> str:
    """How QBO compares display names: blanks collapsed, case ignored."""
    # QBO compares names without regard to case or surrounding blanks (assumption, stricter
    # than exact match: a false hold is visible and cheap, a 6240 or a wrong R5 match is not).
    return " ".join(name.split()).casefold()


def unquotable_value(record: object, field: str, value: str) -> Violation:
    """The hold for a value the QBO query builder refused (``qbo.query.UnquotableValueError``).

    The rules already hold every such value, so the push should never need this; it is the
    safety net for the engine: catch the error around one record's name query and hold that
    record with this violation, instead of failing the run.

    Args:
        record: the canonical record whose value was refused.
        field: the canonical field, e.g. ``display_name``.
        value: the refused value.

    Returns:
        The violation, rule ``<kind>.<field>.control_character``.
    """
    row = catalogue.of_record(record)
    kind = row.kind if row is not None else type(record).__name__.lower()
    found = _no_control(
        f"{kind}.{field}.control_character", record_label(record), field, value,
        allow_breaks=False,
    ) + _no_forbidden(f"{kind}.{field}.control_character", record_label(record), field, value)
    if found:
        return found[0]
    return Violation(
        f"{kind}.{field}.control_character",
        f"{record_label(record)}: {field} {show(value)} cannot be searched for in QBO",
        f"Retype {field} in the source app without invisible or special characters.",
    )


# --------------------------------------------------------------------------------------------
# Reference violations (decided by the push planner through the mapping module)
# --------------------------------------------------------------------------------------------


def missing_mapping(
    kind: str, value_name: str, fix_command: str, *, record: str | None = None
) -> Violation:
    """A reference that needs a mapping the company has not configured (R12, R19, R24).

    Example: ``missing_mapping("tax_rate", "GST 15%", "qbo-pipelines mappings set tax-rate
    'GST 15%' --tax-code <id>", record="sale S-1042 (#77)")`` gives rule
    ``mapping.tax_rate.missing`` and reason ``sale S-1042 (#77): tax rate 'GST 15%' has no QBO
    mapping``. Once the mapping exists the planner stops producing it and the record is released.

    Args:
        kind: what is unmapped: ``tax_rate``, ``payment_method``, ``expense_concept``, ``item``...
        value_name: the source-side name of the unmapped value.
        fix_command: the command (or UI step) that adds the mapping.
        record: the label of the record held back (see :func:`record_label`), if any.

    Returns:
        The violation, rule ``mapping.<kind>.missing``.
    """
    what = kind.replace("_", " ")
    prefix = f"{record}: " if record else ""
    return Violation(
        f"mapping.{kind}.missing",
        f"{prefix}{what} {show(value_name)} has no QBO mapping",
        f"Run `{fix_command}`; the next sync then writes it with no other action.",
    )


def unresolved_reference(
    kind: str,
    reference_id: str,
    *,
    record: str | None = None,
    why: str | None = None,
    fix: str | None = None,
) -> Violation:
    """A reference to another record that has no QBO counterpart (yet).

    Typical: a sale whose customer is itself held back or not yet synced, a receipt whose sale
    never reached QBO, a bill whose worker is not a vendor yet.

    Args:
        kind: the referenced entity: ``customer``, ``item``, ``invoice``, ``vendor``...
        reference_id: its source id (or name).
        record: the label of the record held back, if any.
        why: why it is unresolved (default: "is not in QBO yet").
        fix: what to do (default: fix the referenced record first).

    Returns:
        The violation, rule ``reference.<kind>.unresolved``.
    """
    what = kind.replace("_", " ")
    prefix = f"{record}: " if record else ""
    because = why or "is not in QBO yet (not synced, or held back itself)"
    return Violation(
        f"reference.{kind}.unresolved",
        f"{prefix}{what} #{reference_id} {because}",
        fix
        or f"Resolve the problems of {what} #{reference_id} first; this record then syncs on "
        "the next run.",
    )


__all__ = [
    "ADDRESS_LINE_MAX",
    "ADDRESS_PART_MAX",
    "CUSTOMER_MEMO_MAX",
    "DESCRIPTION_MAX",
    "DISPLAY_NAME_MAX",
    "DOC_NUMBER_MAX",
    "EARLIEST_DATE",
    "EMAIL_MAX",
    "EMAIL_PATTERN",
    "ITEM_NAME_MAX",
    "LATEST_DATE",
    "MAX_DECIMALS",
    "MAX_LINES",
    "MONEY_MAX",
    "MONEY_TOLERANCE",
    "NAME_FORBIDDEN",
    "NAME_PART_MAX",
    "PAYMENT_REF_MAX",
    "PHONE_MAX",
    "POSTAL_CODE_MAX",
    "PRIVATE_NOTE_MAX",
    "TAXABLE_INVOICE_MAX_LINES",
    "cents_ok",
    "Violation",
    "check",
    "check_bill",
    "check_customer",
    "check_item",
    "check_receipt",
    "check_sale",
    "check_vendor",
    "close",
    "decimal_safe",
    "is_valid_email",
    "merge_by_rule",
    "name_key",
    "missing_mapping",
    "normalise_email",
    "qbo_length",
    "record_label",
    "show",
    "unquotable_value",
    "unresolved_reference",
]
