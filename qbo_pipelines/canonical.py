"""Canonical records: the system-neutral shapes the sync moves between the source app and QBO.

Everything the sync reads is turned into one of these frozen dataclasses first: the source-app
connector (``qbo_pipelines.source_app.connector``) produces the ``Canonical*`` records, the pull
direction produces the ``Qbo*`` records (what comes back FROM QBO into the source). Transforms
turn them into QBO payloads or source rows; the warehouse stores them in ``staging``.

Conventions:

* money is :class:`~decimal.Decimal` (never float); percentages are ``Decimal('10')`` for 10 %;
* timestamps are timezone-aware :class:`~datetime.datetime` (naive ones are refused);
* business dates (``txn_date``, ``due_date``) are :class:`~datetime.date`;
* ids are typed: :data:`SourceId` for the source app, :data:`QboId` for QBO, so one cannot be
  passed where the other is expected (mypy);
* ``content_hash()`` is a stable sha256 over the fields that matter for sync (those pushed to the
  other side). It ignores ``updated_at`` and every field listed in the class's ``HASH_EXCLUDE``, so
  "unchanged since last sync" means "nothing we would write has changed". It is stable across
  processes and Python versions: Decimals are normalised (``10.0`` and ``10.00`` hash alike) and
  datetimes are converted to UTC.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, ClassVar, Literal, TypeVar, cast

import orjson

from qbo_pipelines import entities as catalogue

# The typed ids are shared with the QBO client (one definition, so mypy treats them as one type).
from qbo_pipelines.qbo.ids import QboId, RealmId, SourceId

SourceEntity = str
"""A catalogue name of an entity the source app's change log reports (``customers``,
``invoices`` ...): the names of :data:`qbo_pipelines.entities.SOURCE`."""
SOURCE_ENTITIES: tuple[SourceEntity, ...] = tuple(e.name for e in catalogue.SOURCE)
"""Every entity the source app reports, in catalogue order (mapped reference data last)."""

ChangeOp = Literal["insert", "update", "delete"]
Origin = Literal["source", "qbo"]
"""Where a source-app record was first created: in the app itself, or pulled from QBO."""

ItemKind = Literal["service", "product"]
SaleLineKind = Literal["item", "discount", "tax"]
ChangeOrigin = Literal["app", "sync"]
"""Who made a change-log entry: the app (a real change) or the sync's own write-back (an echo)."""


class CanonicalError(ValueError):
    """A canonical record was built with invalid values (e.g. a naive datetime)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class InvalidValue:
    """A source value the reader could not represent, kept so the quality rules can hold it.

    A connector that meets a value Python (or QBO) cannot hold, such as a date in year 10000,
    ``infinity`` or BC, puts a stand-in in the field (``date.min`` / ``date.max`` for dates) and
    records the original here; the record then reaches the quality rules and is held back with
    a reason quoting ``raw`` instead of crashing the read (R40).

    Attributes:
        field: the canonical field holding the stand-in, e.g. ``txn_date``.
        raw: the value as the source stores it, as text (``'infinity'``, ``'10000-01-01'``).
        problem: why it is unusable, e.g. ``"is not a date between years 1 and 9999"``.
    """

    field: str
    raw: str
    problem: str


def _require_aware(name: str, value: datetime | None) -> None:
    if value is not None and value.tzinfo is None:
        raise CanonicalError(f"{name} must be timezone-aware, got naive {value.isoformat()}")


def _normal_decimal(value: Decimal) -> str:
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def _jsonable(value: Any) -> Any:
    """A JSON-ready, deterministic rendering of a field value (recursive).

    Dispatches on the exact type first (the hot path of hashing 100k records), falling back to
    ``isinstance`` checks for subclasses.
    """
    kind = type(value)
    if value is None or kind is str or kind is int or kind is bool:
        return value
    if kind is Decimal:
        return _normal_decimal(value)
    if kind is tuple or kind is list:
        return [_jsonable(v) for v in value]
    if kind is date:
        return value.isoformat()
    if kind in _FIELDS_CACHE or hasattr(kind, "__dataclass_fields__"):
        return _hash_fields(value)
    if isinstance(value, Decimal):
        return _normal_decimal(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in sorted(value.items())}
    if isinstance(value, str | int | bool):
        return value
    raise TypeError(f"cannot hash a {type(value).__name__}")


_FIELDS_CACHE: dict[type, tuple[str, ...]] = {}


def _hashed_fields(kind: type) -> tuple[str, ...]:
    """The names of a dataclass's hashed fields (cached per class)."""
    names = _FIELDS_CACHE.get(kind)
    if names is None:
        exclude: frozenset[str] = getattr(kind, "HASH_EXCLUDE", frozenset())
        names = tuple(
            f.name
            for f in dataclasses.fields(kind)
            if f.name not in exclude and f.name != "updated_at"
        )
        _FIELDS_CACHE[kind] = names
    return names


def _hash_fields(record: Any) -> dict[str, Any]:
    return {name: _jsonable(getattr(record, name)) for name in _hashed_fields(type(record))}


def _decimal_text(value: Decimal) -> str:
    """:func:`_normal_decimal` without its two Decimal operations for the common case: a plain
    ``str`` (no exponent, no NaN / Infinity, too short for normalising to round) with the
    fraction's trailing zeros dropped is the normalised text. Anything else takes the long way.
    """
    text = str(value)
    if len(text) < 28 and text[-1].isdigit() and "E" not in text:
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return "0" if text == "-0" else text
    return _normal_decimal(value)


_PLAIN: frozenset[type] = frozenset({str, int, bool, type(None)})


def _hash_value(value: Any) -> Any:
    """One field value as :func:`_jsonable` renders it, with the common kinds first."""
    kind = type(value)
    if kind is tuple:
        return [v if type(v) in _PLAIN else _hash_value(v) for v in value]
    encode = _ENCODERS.get(kind)
    if encode is not None:
        return encode(value)
    if kind is Decimal:
        return _decimal_text(value)
    if kind is date:
        return value.isoformat()
    if hasattr(kind, "__dataclass_fields__"):
        return _encoder(kind)(value)
    return _jsonable(value)


def _encoder(kind: type) -> Callable[[Any], dict[str, Any]]:
    """The hashed fields of one dataclass as JSON-ready values: the same values as
    :func:`_hash_fields` (plain values as they are, Decimals normalised, dates ISO, nested
    records by their own class's encoder), built by one generated dict display per class (the
    hot path of planning 100k records; no per-field loop)."""
    found = _ENCODERS.get(kind)
    if found is not None:
        return found
    names = _hashed_fields(kind)
    if not all(name.isidentifier() for name in names):
        raise TypeError(f"cannot hash a {kind.__name__}: field names are not identifiers")
    encode = _ENCODERS[kind] = _generated(kind, names, _hash_value, "hash encoder")
    return encode


def _generated(
    kind: type, names: Sequence[str], convert: Callable[[Any], Any], label: str
) -> Callable[[Any], dict[str, Any]]:
    """One generated function ``r -> {name: value}`` over ``names`` (identifiers): plain values
    as they are, Decimals as their normalised text, anything else through ``convert``."""
    items = ", ".join(
        f"{name!r}: (v if (t := type(v := r.{name})) in plain"
        " else decimal_text(v) if t is Decimal else convert(v))"
        for name in names
    )
    code = f"def encode(r):\n    return {{{items}}}\n"
    scope: dict[str, Any] = {
        "plain": _PLAIN, "Decimal": Decimal, "decimal_text": _decimal_text, "convert": convert,
    }
    exec(compile(code, f"<{label} of {kind.__name__}>", "exec"), scope)  # noqa: S102
    encode: Callable[[Any], dict[str, Any]] = scope["encode"]
    return encode


_ENCODERS: dict[type, Callable[[Any], dict[str, Any]]] = {}


def _full(value: Any) -> Any:
    """:func:`as_json` by its definition, one value at a time (the reference the generated
    encoders are tested against)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _full(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_full(v) for v in value]
    return _jsonable(value)


def _json_value(value: Any) -> Any:
    """One field value as :func:`_full` renders it, with the common kinds first."""
    kind = type(value)
    if kind is tuple or kind is list:
        return [v if type(v) in _PLAIN else _json_value(v) for v in value]
    if hasattr(kind, "__dataclass_fields__"):
        return _json_encoder(kind)(value)
    if kind is Decimal:
        return _decimal_text(value)
    return _full(value)


def _json_encoder(kind: type) -> Callable[[Any], dict[str, Any]]:
    """Every field of one dataclass as :func:`_full` renders it, by one generated dict display
    per class (the extract and the stage of 100k records; no per-field loop)."""
    found = _JSON_ENCODERS.get(kind)
    if found is not None:
        return found
    names = tuple(f.name for f in dataclasses.fields(kind))
    if not all(name.isidentifier() for name in names):
        return _JSON_ENCODERS.setdefault(kind, _full)
    encode = _JSON_ENCODERS[kind] = _generated(kind, names, _json_value, "json encoder")
    return encode


_JSON_ENCODERS: dict[type, Callable[[Any], dict[str, Any]]] = {}


def as_json(record: Any) -> dict[str, Any]:
    """Every field of a canonical record as JSON-ready values (for ``staging`` / ``raw_source``).

    Decimals become strings (no precision lost), datetimes UTC ISO-8601, dates ISO dates.
    """
    kind = type(record)
    if not hasattr(kind, "__dataclass_fields__") or isinstance(record, type):
        raise TypeError(f"{kind.__name__} is not a dataclass instance")
    return _json_encoder(kind)(record)


def json_text(record: Any) -> str:
    """:func:`as_json` as JSON text, through orjson (``json.dumps`` for what orjson refuses:
    an int beyond 64 bits, a lone surrogate)."""
    data = as_json(record)
    try:
        return orjson.dumps(data).decode()
    except orjson.JSONEncodeError:
        return json.dumps(data, ensure_ascii=False)


def content_hash(record: Any) -> str:
    """Stable sha256 hex digest of a canonical record's sync-relevant fields.

    Args:
        record: any dataclass instance from this module (or with a ``HASH_EXCLUDE`` class var).

    Returns:
        64 hex characters; equal for records that would produce the same write.
    """
    kind = type(record)
    payload = {"type": kind.__name__, "fields": _encoder(kind)(record)}
    try:
        # Byte for byte what ``json.dumps(sort_keys, compact separators, ensure_ascii=False)``
        # writes for these values (tests/unit/source_app/test_canonical_fast_paths.py).
        data = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:  # an int beyond 64 bits, a lone surrogate: the slow path
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        data = text.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


class _Hashed:
    """Mixin: ``content_hash()`` over the dataclass fields minus ``HASH_EXCLUDE``."""

    __slots__ = ()
    HASH_EXCLUDE: ClassVar[frozenset[str]] = frozenset()

    def content_hash(self) -> str:
        """Stable sha256 over the fields that matter for sync (see module docstring)."""
        return content_hash(self)


# --------------------------------------------------------------------------------------------
# Source app -> QBO
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CanonicalAddress(_Hashed):
    """A postal address (QBO ``BillAddr``)."""

    line1: str | None = None
    line2: str | None = None
    city: str | None = None
    region: str | None = None
    postal_code: str | None = None
    country: str | None = None

    def is_empty(self) -> bool:
        """True when every part is blank."""
        return not any(
            (self.line1, self.line2, self.city, self.region, self.postal_code, self.country)
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class CanonicalCustomer(_Hashed):
    """A source contact, pushed as a QBO Customer (R4-R7, R9).

    ``display_name`` is the contact's organisation name when it has one, else "Given Family"
    (R5 matches QBO Customers on it). The billing contact (``billing_name``, ``billing_email``)
    is written to QBO only when the Customer is created (R6), so it is excluded from the hash:
    a change there alone never triggers an update. ``has_sale`` gates whether the contact is
    pushed at all (R4) and is not itself written, so it is excluded too.

    An organisation is one QBO Customer (R5): its lowest-id contact represents it (``has_sale``
    is then the organisation's); its other contacts carry ``represented_by`` (that contact's
    id), are never written themselves, and their sales bill the representative.
    """

    HASH_EXCLUDE: ClassVar[frozenset[str]] = frozenset(
        {"billing_name", "billing_email", "has_sale", "origin", "organisation_id", "represented_by"}
    )

    source_id: SourceId
    display_name: str
    company_name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    email: str | None = None
    phone: str | None = None
    billing_name: str | None = None
    billing_email: str | None = None
    bill_addr: CanonicalAddress | None = None
    has_sale: bool = False
    organisation_id: SourceId | None = None
    represented_by: SourceId | None = None
    origin: Origin = "source"
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        _require_aware("updated_at", self.updated_at)


@dataclass(frozen=True, slots=True, kw_only=True)
class CanonicalItem(_Hashed):
    """A source service type / product, matched to a QBO Item by exact name (R10)."""

    source_id: SourceId
    name: str
    kind: ItemKind = "service"
    description: str | None = None
    unit_price: Decimal | None = None
    active: bool = True
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        _require_aware("updated_at", self.updated_at)


@dataclass(frozen=True, slots=True, kw_only=True)
class CanonicalTaxRate(_Hashed):
    """A source tax rate; must be mapped to a QBO tax code (R12). ``rate`` is a percent."""

    source_id: SourceId
    name: str
    rate: Decimal
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        _require_aware("updated_at", self.updated_at)


@dataclass(frozen=True, slots=True, kw_only=True)
class CanonicalPaymentMethod(_Hashed):
    """A source payment method; mapped to a QBO payment method + Bank deposit account (R19)."""

    source_id: SourceId
    name: str
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        _require_aware("updated_at", self.updated_at)


@dataclass(frozen=True, slots=True, kw_only=True)
class CanonicalSaleLine(_Hashed):
    """One line of a sale (R14: item, discount and tax lines all become QBO invoice lines).

    * ``kind='item'``: ``item_source_id``, ``qty`` x ``unit_price`` = ``amount`` (may be zero or
      negative for a credit line), ``tax_rate_source_id`` (None: use the default tax code, R13);
    * ``kind='discount'``: negative ``amount``, optional ``discount_percent``;
    * ``kind='tax'``: ``amount`` of tax for ``tax_rate_source_id``.

    ``group_name`` is the source's grouping label; it is not pushed (R14), so not hashed.
    """

    HASH_EXCLUDE: ClassVar[frozenset[str]] = frozenset({"group_name"})

    line_no: int
    kind: SaleLineKind
    description: str | None = None
    item_source_id: SourceId | None = None
    qty: Decimal | None = None
    unit_price: Decimal | None = None
    amount: Decimal = Decimal("0")
    tax_rate_source_id: SourceId | None = None
    discount_percent: Decimal | None = None
    group_name: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CanonicalSale(_Hashed):
    """A source sale, pushed as a QBO Invoice (R11-R18).

    ``currency`` (R15) and ``detail_level`` / ``grouping`` (R14) are kept for analysts but never
    pushed, so they are excluded from the hash. ``send_requested`` (R18) is hashed: flipping it on
    must make the sync act. ``origin='qbo'`` marks a sale that was pulled from QBO (R16).
    Totals: ``subtotal`` = sum of item lines, ``discount_total`` = sum of discount lines
    (negative or zero), ``tax_total`` = sum of tax lines, ``total`` = their sum.
    ``customer_source_id`` is None for a sale with no contact (held: ``sale.customer.required``).
    ``invalid`` lists values the reader could not represent (see :class:`InvalidValue`); it is
    not hashed (the stand-in value is).
    """

    HASH_EXCLUDE: ClassVar[frozenset[str]] = frozenset(
        {"currency", "detail_level", "grouping", "origin", "invalid"}
    )

    source_id: SourceId
    doc_number: str | None
    customer_source_id: SourceId | None
    txn_date: date
    due_date: date | None = None
    currency: str | None = None
    memo: str | None = None
    billing_email: str | None = None
    send_requested: bool = False
    lines: tuple[CanonicalSaleLine, ...] = ()
    subtotal: Decimal = Decimal("0")
    discount_total: Decimal = Decimal("0")
    tax_total: Decimal = Decimal("0")
    total: Decimal = Decimal("0")
    detail_level: str | None = None
    grouping: str | None = None
    origin: Origin = "source"
    invalid: tuple[InvalidValue, ...] = ()
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        _require_aware("updated_at", self.updated_at)

    @property
    def qbo_total(self) -> Decimal:
        """The total QBO shows (``TotalAmt``): a credit note's negative total is its
        CreditMemo's positive one (R11)."""
        return abs(self.total)

    def tax_rate_ids(self) -> frozenset[SourceId]:
        """Every tax rate the sale uses (item and tax lines); what R12 checks for mappings."""
        return frozenset(
            line.tax_rate_source_id for line in self.lines if line.tax_rate_source_id is not None
        )

    def item_ids(self) -> frozenset[SourceId]:
        """Every service type / product the sale's item lines use."""
        return frozenset(
            line.item_source_id for line in self.lines if line.item_source_id is not None
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class CanonicalReceipt(_Hashed):
    """A source receipt, pushed as a QBO Payment linked to its invoice (R19, R21, R22).

    ``customer_source_id`` is None for a receipt with no contact (and no sale giving one): the
    quality rules hold it (``receipt.customer.required``). ``invalid`` lists values the reader
    could not represent (see :class:`InvalidValue`); it is not hashed (the stand-in is).
    """

    HASH_EXCLUDE: ClassVar[frozenset[str]] = frozenset({"origin", "invalid"})

    source_id: SourceId
    sale_source_id: SourceId | None
    customer_source_id: SourceId | None
    amount: Decimal
    received_on: date
    payment_method_source_id: SourceId | None = None
    reference: str | None = None
    origin: Origin = "source"
    invalid: tuple[InvalidValue, ...] = ()
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        _require_aware("updated_at", self.updated_at)


@dataclass(frozen=True, slots=True, kw_only=True)
class CanonicalVendor(_Hashed):
    """A source worker / contractor, pushed as a QBO Vendor (R23). ``source_id`` = worker id."""

    source_id: SourceId
    display_name: str
    given_name: str | None = None
    family_name: str | None = None
    email: str | None = None
    phone: str | None = None
    country: str | None = None
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        _require_aware("updated_at", self.updated_at)


@dataclass(frozen=True, slots=True, kw_only=True)
class CanonicalBillLine(_Hashed):
    """A worker-invoice line; ``concept`` maps to a QBO expense account (R23, R24)."""

    line_no: int
    concept: str
    description: str | None = None
    amount: Decimal = Decimal("0")


@dataclass(frozen=True, slots=True, kw_only=True)
class CanonicalBill(_Hashed):
    """A worker invoice, pushed as a QBO Bill against the worker's Vendor (R23).

    ``invalid`` lists values the reader could not represent (see :class:`InvalidValue`).
    """

    HASH_EXCLUDE: ClassVar[frozenset[str]] = frozenset({"invalid"})

    source_id: SourceId
    vendor_source_id: SourceId
    doc_number: str | None
    txn_date: date
    due_date: date | None = None
    memo: str | None = None
    lines: tuple[CanonicalBillLine, ...] = ()
    total: Decimal = Decimal("0")
    invalid: tuple[InvalidValue, ...] = ()
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        _require_aware("updated_at", self.updated_at)

    def concepts(self) -> frozenset[str]:
        """Every concept the bill's lines use (each needs an expense-account mapping)."""
        return frozenset(line.concept for line in self.lines)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeEvent:
    """One row of the source app's change log.

    Attributes:
        seq: monotonically increasing sequence number (the cursor).
        entity: catalogue entity name (see :data:`SourceEntity`).
        source_id: id of the changed record (for line tables: the parent's id, op ``update``).
        op: ``insert``, ``update`` or ``delete`` (hard delete).
        at: when the change was recorded (aware).
        origin: ``app`` for a real change, ``sync`` for the sync's own write-back (R35); the push
            direction must skip ``sync`` events but still advance its cursor past them.
    """

    seq: int
    entity: str
    source_id: SourceId
    op: ChangeOp
    at: datetime
    origin: ChangeOrigin = "app"

    def __post_init__(self) -> None:
        _require_aware("at", self.at)

    @property
    def is_echo(self) -> bool:
        """True when the sync itself made this change (ignore it: no echo loops, R35)."""
        return self.origin == "sync"


# --------------------------------------------------------------------------------------------
# QBO -> source app (pull direction). Kept simple: the fields the source app stores.
# --------------------------------------------------------------------------------------------

QBO_APP_BASE = "https://app.qbo.intuit.com/app"

_LINK_PATHS: dict[str, str] = {
    "Invoice": "invoice",
    "Payment": "recvpayment",
    "Estimate": "estimate",
    "SalesReceipt": "salesreceipt",
    "CreditMemo": "creditmemo",
    "RefundReceipt": "refundreceipt",
    "Customer": "customerdetail",
    "Vendor": "vendordetail",
    "Bill": "bill",
    "BillPayment": "billpayment",
    "Purchase": "expense",
    "JournalEntry": "journal",
}


def qbo_link(txn_type: str, qbo_id: str, base: str = QBO_APP_BASE) -> str:
    """A URL that opens a QBO record in the QBO web app (R26).

    Args:
        txn_type: the QBO entity name, e.g. ``Invoice``, ``Payment``, ``Customer``.
        qbo_id: its ``Id``.
        base: the QBO app base URL (sandbox companies use ``https://app.sandbox.qbo.intuit.com/app``).

    Returns:
        e.g. ``https://app.qbo.intuit.com/app/invoice?txnId=239``.
    """
    path = _LINK_PATHS.get(txn_type, txn_type.lower())
    key = "nameId" if txn_type in {"Customer", "Vendor"} else "txnId"
    return f"{base}/{path}?{key}={qbo_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class QboContact(_Hashed):
    """A QBO Customer as written into the source app as a contact (R7, R8)."""

    HASH_EXCLUDE: ClassVar[frozenset[str]] = frozenset({"sync_token"})

    realm_id: RealmId
    qbo_id: QboId
    display_name: str
    company_name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    email: str | None = None
    phone: str | None = None
    bill_addr: CanonicalAddress | None = None
    active: bool = True
    sync_token: str | None = None
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        _require_aware("updated_at", self.updated_at)


@dataclass(frozen=True, slots=True, kw_only=True)
class QboSaleLine(_Hashed):
    """A QBO invoice line as stored in the source (kind as in :class:`CanonicalSaleLine`)."""

    line_no: int
    kind: SaleLineKind = "item"
    description: str | None = None
    item_name: str | None = None
    qty: Decimal | None = None
    unit_price: Decimal | None = None
    amount: Decimal = Decimal("0")


@dataclass(frozen=True, slots=True, kw_only=True)
class QboSale(_Hashed):
    """A QBO Invoice as written into the source app as a sale (R16).

    ``customer_source_id`` is the source contact the invoice belongs to (resolved by the pull
    layer through ``sync.id_map``); None leaves it unlinked. ``deleted`` marks an invoice deleted
    in QBO: the source copy is flagged, never removed (R16).
    """

    HASH_EXCLUDE: ClassVar[frozenset[str]] = frozenset({"sync_token"})

    realm_id: RealmId
    qbo_id: QboId
    doc_number: str | None
    customer_qbo_id: QboId
    customer_source_id: SourceId | None = None
    txn_date: date
    due_date: date | None = None
    currency: str | None = None
    memo: str | None = None
    billing_email: str | None = None
    lines: tuple[QboSaleLine, ...] = ()
    tax_total: Decimal = Decimal("0")
    total: Decimal = Decimal("0")
    balance: Decimal = Decimal("0")
    email_status: str | None = None
    deleted: bool = False
    sync_token: str | None = None
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        _require_aware("updated_at", self.updated_at)


@dataclass(frozen=True, slots=True, kw_only=True)
class QboReceipt(_Hashed):
    """A QBO Payment as written into the source app as a receipt against the synced sale (R20).

    ``sale_source_id`` / ``customer_source_id`` are resolved by the pull layer via the id map.
    """

    HASH_EXCLUDE: ClassVar[frozenset[str]] = frozenset({"sync_token"})

    realm_id: RealmId
    qbo_id: QboId
    customer_qbo_id: QboId
    customer_source_id: SourceId | None = None
    sale_source_id: SourceId | None = None
    invoice_qbo_ids: tuple[QboId, ...] = ()
    amount: Decimal
    received_on: date
    payment_method_name: str | None = None
    reference: str | None = None
    deleted: bool = False
    sync_token: str | None = None
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        _require_aware("updated_at", self.updated_at)


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomerTransaction(_Hashed):
    """Any QBO transaction of a customer, with a link that opens it in QBO (R26)."""

    realm_id: RealmId
    txn_type: str
    qbo_id: QboId
    customer_qbo_id: QboId
    customer_source_id: SourceId | None = None
    doc_number: str | None = None
    txn_date: date | None = None
    total: Decimal | None = None
    balance: Decimal | None = None
    status: str | None = None
    url: str = ""
    deleted: bool = False
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        _require_aware("updated_at", self.updated_at)
        if not self.url:
            object.__setattr__(self, "url", qbo_link(self.txn_type, self.qbo_id))


_R = TypeVar("_R")
_MAKERS: dict[type, Callable[..., Any]] = {}


def record_maker(kind: type[_R]) -> Callable[..., _R]:
    """A positional constructor of a canonical record class: every field in declaration order,
    no defaults, ``__post_init__`` run as ``__init__`` would. The same record as
    ``kind(**fields)`` at about half the cost: the readers build 100k sales with their lines
    through it (the generated ``__init__`` of a frozen dataclass sets each field through
    ``object.__setattr__``; this one calls each slot's setter directly). Cached per class."""
    found = _MAKERS.get(kind)
    if found is not None:
        return cast(Callable[..., _R], found)
    names = [f.name for f in dataclasses.fields(cast(Any, kind))]
    if not all(name.isidentifier() for name in names) or "__slots__" not in kind.__dict__:
        raise TypeError(f"{kind.__name__} is not a slotted dataclass")
    # The generated code's own names start with "__m_", which no field name does.
    if any(name.startswith("__m_") for name in names):
        raise TypeError(f"{kind.__name__} has a field named like the maker's own names")
    scope: dict[str, Any] = {"__m_new": object.__new__, "__m_kind": kind}
    body = ["    __m_record = __m_new(__m_kind)"]
    for i, name in enumerate(names):
        scope[f"__m_set_{i}"] = kind.__dict__[name].__set__
        body.append(f"    __m_set_{i}(__m_record, {name})")
    post_init = getattr(kind, "__post_init__", None)
    if post_init is not None:
        scope["__m_post_init"] = post_init
        body.append("    __m_post_init(__m_record)")
    code = f"def make({', '.join(names)}):\n" + "\n".join(body) + "\n    return __m_record\n"
    exec(compile(code, f"<record maker of {kind.__name__}>", "exec"), scope)  # noqa: S102
    make: Callable[..., _R] = scope["make"]
    _MAKERS[kind] = make
    return make


def now_utc() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


__all__ = [
    "QBO_APP_BASE",
    "json_text",
    "SOURCE_ENTITIES",
    "CanonicalAddress",
    "CanonicalBill",
    "CanonicalBillLine",
    "CanonicalCustomer",
    "CanonicalError",
    "CanonicalItem",
    "CanonicalPaymentMethod",
    "CanonicalReceipt",
    "CanonicalSale",
    "CanonicalSaleLine",
    "CanonicalTaxRate",
    "CanonicalVendor",
    "ChangeEvent",
    "ChangeOp",
    "ChangeOrigin",
    "CustomerTransaction",
    "InvalidValue",
    "ItemKind",
    "Origin",
    "QboContact",
    "QboId",
    "QboReceipt",
    "QboSale",
    "QboSaleLine",
    "RealmId",
    "SaleLineKind",
    "SourceEntity",
    "SourceId",
    "as_json",
    "content_hash",
    "now_utc",
    "qbo_link",
    "record_maker",
]
