"""The source-app connector: change capture, canonical readers and write-backs (no Dagster).

It runs only the SQL in ``sql/source_app/queries`` (see :mod:`qbo_pipelines.source_app.queries`),
so it works against any SQLAlchemy database whose schema those files are adapted to. Reading is
streamed in chunks (keyset pagination, one query per chunk; lines in one extra query per chunk),
and every write-back is a bulk ``executemany`` in one transaction marked as the sync's own
(``mark_sync_origin.sql``), so the change log records it with ``origin = 'sync'`` and it never
comes back as a change (R35).

Typical push usage::

    conn = SourceAppConnector(engine)
    batch = conn.read_changes(cursor, limit=10_000)       # real changes, echoes skipped
    per_entity = summarize(batch.events)                  # ids changed / deleted per entity
    for chunk in conn.iter_entity("invoices", ids=per_entity["invoices"].changed):
        ...                                               # canonical records, with lines
    save_cursor(batch.next_seq)
"""

from __future__ import annotations

import operator
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast

import sqlalchemy as sa

from qbo_pipelines import entities as catalogue
from qbo_pipelines.canonical import (
    CanonicalAddress,
    CanonicalBill,
    CanonicalBillLine,
    CanonicalCustomer,
    CanonicalItem,
    CanonicalPaymentMethod,
    CanonicalReceipt,
    CanonicalSale,
    CanonicalSaleLine,
    CanonicalTaxRate,
    CanonicalVendor,
    ChangeEvent,
    ChangeOp,
    ChangeOrigin,
    CustomerTransaction,
    InvalidValue,
    QboContact,
    QboId,
    QboReceipt,
    QboSale,
    SourceEntity,
    SourceId,
    record_maker,
)
from qbo_pipelines.quality.rules import name_key, normalise_email
from qbo_pipelines.source_app import queries

T = TypeVar("T")

DEFAULT_CHUNK = 5000


@dataclass(frozen=True, slots=True)
class ChangeBatch:
    """A slice of the change log.

    Attributes:
        events: the real (``origin='app'``) changes, oldest first.
        next_seq: the cursor to store after processing: the last seq read, echoes included.
        echoes: how many of the sync's own writes were skipped (R35).
        has_more: True when ``limit`` rows were read (call again from ``next_seq``).
    """

    events: tuple[ChangeEvent, ...]
    next_seq: int
    echoes: int
    has_more: bool


@dataclass(frozen=True, slots=True)
class PendingChanges:
    """Real changes waiting after a cursor: what a debounce sensor needs (R27), in one query."""

    pending: int
    last_seq: int
    first_at: datetime | None
    last_at: datetime | None


@dataclass(frozen=True, slots=True)
class EntityChanges:
    """Per entity: ids to (re)read and ids whose latest change is a hard delete."""

    changed: frozenset[SourceId] = field(default_factory=frozenset)
    deleted: frozenset[SourceId] = field(default_factory=frozenset)


def summarize(events: Iterable[ChangeEvent]) -> dict[str, EntityChanges]:
    """Collapse change events into changed / deleted id sets per entity (pure).

    The latest event per record wins: inserted-then-deleted is a delete, deleted-then-reinserted
    is a change. Echo events (the sync's own writes) are ignored.

    Args:
        events: change events in sequence order.

    Returns:
        entity name -> :class:`EntityChanges`; entities with no events are absent.
    """
    latest: dict[tuple[str, SourceId], ChangeOp] = {}
    for event in sorted(events, key=lambda e: e.seq):
        if not event.is_echo:
            latest[(event.entity, event.source_id)] = event.op
    changed: dict[str, set[SourceId]] = defaultdict(set)
    deleted: dict[str, set[SourceId]] = defaultdict(set)
    for (entity, source_id), op in latest.items():
        (deleted if op == "delete" else changed)[entity].add(source_id)
    return {
        entity: EntityChanges(
            frozenset(changed.get(entity, ())), frozenset(deleted.get(entity, ()))
        )
        for entity in set(changed) | set(deleted)
    }


def _sid(value: Any) -> SourceId:
    return SourceId(str(value))


def _chunks(values: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _name(value: str | None) -> str | None:
    """A name as QBO keeps it: surrounding blanks trimmed (QBO trims names itself, so the
    canonical value, the written value and what QBO holds stay equal); blank parts are None."""
    if value is None:
        return None
    return value.strip() or None


def _display_name(value: str | None) -> str:
    """A display name trimmed like :func:`_name`; blank stays ``''`` so the rules hold it."""
    return (value or "").strip()


DATE_PROBLEM = "is not a date (QBO and the sync take years 1 to 9999 only)"
"""Why a date the reader could not represent is unusable (see :func:`_date`)."""


def _date(
    value: date | None, raw: Any, name: str, invalid: list[InvalidValue], *, required: bool
) -> date | None:
    """A date column read safely, with the ``<name>_invalid`` companion of the query (``raw``).

    The queries select a date Python cannot hold (year 10000, ``infinity``, BC) as NULL and its
    text in ``<name>_invalid``. Such a date, or a missing required one, gets a stand-in
    (``date.min`` for ``-infinity`` / BC, else ``date.max``) and an :class:`InvalidValue`
    marker, so the record reaches the quality rules and is held back (R40) instead of the read
    crashing with a DataError.
    """
    if raw is not None:
        text = str(raw)
        invalid.append(InvalidValue(field=name, raw=text, problem=DATE_PROBLEM))
        early = text.startswith("-") or text.upper().endswith(" BC")
        return date.min if early else date.max
    if value is None and required:
        invalid.append(InvalidValue(field=name, raw="", problem="is empty"))
        return date.max
    return value


# Row builders. A page is read as plain DBAPI tuples (no per-row mapping objects) and each
# builder is made once per page from the page's column names, so an adapted query may order its
# columns as it likes; a missing column fails the read (KeyError) except the optional
# ``<date>_invalid`` companions, which read as None.

Columns = Mapping[str, int]
Page = tuple[dict[str, int], list[Sequence[Any]], tuple[dict[str, int], list[Sequence[Any]]] | None]
"""A page: its column positions, its rows and (for records with lines) its lines' columns and
rows."""
Picker = Callable[[Sequence[Any]], tuple[Any, ...]]

_as_sid: Callable[[Any], SourceId] = str  # type: ignore[assignment]  # SourceId is a str


_ADDRESS = record_maker(CanonicalAddress)
_CUSTOMER = record_maker(CanonicalCustomer)
_ITEM = record_maker(CanonicalItem)
_SALE_LINE = record_maker(CanonicalSaleLine)
_SALE = record_maker(CanonicalSale)
_RECEIPT = record_maker(CanonicalReceipt)
"""Positional constructors (:func:`~qbo_pipelines.canonical.record_maker`) of the records read
in bulk; the field order is the dataclass's."""


def _picker(cols: Columns, names: Sequence[str]) -> Picker:
    """The values of ``names`` from a row tuple, in that order (one C call when all exist)."""
    index = [cols.get(n, -1) if n.endswith("_invalid") else cols[n] for n in names]
    if -1 not in index:
        return cast(Picker, operator.itemgetter(*index))
    return lambda row: tuple(None if i < 0 else row[i] for i in index)


def _opt_sid(value: Any) -> SourceId | None:
    return None if value is None else _as_sid(value)


Builder = Callable[[Columns], Callable[..., T]]
"""Made once per page from its column positions: row tuple (and, for a record with lines, its
lines) -> canonical record."""


def _builder(names: tuple[str, ...], make: Callable[..., T]) -> Builder[T]:
    """A builder passing the values of ``names`` (in that order) to ``make``; a record with
    lines gets them as the last argument."""

    def for_page(cols: Columns) -> Callable[..., T]:
        pick = _picker(cols, names)
        return lambda row, *lines: make(*pick(row), *lines)

    return for_page


def _customer(
    sid: Any,
    display: str | None,
    company: str | None,
    given: str | None,
    family: str | None,
    email: str | None,
    phone: str | None,
    billing_name: str | None,
    billing_email: str | None,
    line1: str | None,
    line2: str | None,
    city: str | None,
    region: str | None,
    postal: str | None,
    country: str | None,
    has_sale: Any,
    org: Any,
    represented_by: Any,
    origin: Any,
    updated: datetime | None,
) -> CanonicalCustomer:
    addr = (
        _ADDRESS(line1, line2, city, region, postal, country)
        if line1 or line2 or city or region or postal or country
        else None
    )
    return _CUSTOMER(
        _as_sid(sid),
        _display_name(display),
        _name(company),
        _name(given),
        _name(family),
        normalise_email(email),
        phone,
        _name(billing_name),
        normalise_email(billing_email),
        addr,
        bool(has_sale),
        _opt_sid(org),
        _opt_sid(represented_by),
        origin,
        updated,
    )


_customer_builder = _builder(
    (
        "source_id",
        "display_name",
        "company_name",
        "given_name",
        "family_name",
        "email",
        "phone",
        "billing_name",
        "billing_email",
        "address_line1",
        "address_line2",
        "city",
        "region",
        "postal_code",
        "country",
        "has_sale",
        "organisation_id",
        "represented_by",
        "origin",
        "updated_at",
    ),
    _customer,
)

_item_builder = _builder(
    ("source_id", "name", "kind", "description", "unit_price", "active", "updated_at"),
    lambda sid, name, kind, description, unit_price, active, updated: _ITEM(
        _as_sid(sid),
        _display_name(name),
        kind,
        description,
        unit_price,
        bool(active),
        updated,
    ),
)

_tax_rate_builder = _builder(
    ("source_id", "name", "rate", "updated_at"),
    lambda sid, name, rate, updated: CanonicalTaxRate(
        source_id=_as_sid(sid), name=name, rate=Decimal(rate), updated_at=updated
    ),
)

_payment_method_builder = _builder(
    ("source_id", "name", "updated_at"),
    lambda sid, name, updated: CanonicalPaymentMethod(
        source_id=_as_sid(sid), name=name, updated_at=updated
    ),
)

_sale_line_builder = _builder(
    (
        "line_no",
        "kind",
        "description",
        "item_source_id",
        "qty",
        "unit_price",
        "amount",
        "tax_rate_source_id",
        "discount_percent",
        "group_name",
    ),
    lambda line_no, kind, description, item, qty, unit_price, amount, rate, percent, group: (
        _SALE_LINE(
            int(line_no),
            kind,
            description,
            None if item is None else _as_sid(item),
            qty,
            unit_price,
            amount,
            None if rate is None else _as_sid(rate),
            percent,
            group,
        )
    ),
)


def _dates(
    txn_date: date | None,
    txn_raw: Any,
    due_date: date | None,
    due_raw: Any,
    invalid: list[InvalidValue],
) -> tuple[date, date | None]:
    """A document's date (required) and due date, through :func:`_date` when in doubt."""
    if txn_raw is not None or txn_date is None:
        txn_date = _date(txn_date, txn_raw, "txn_date", invalid, required=True)
    if due_raw is not None:
        due_date = _date(due_date, due_raw, "due_date", invalid, required=False)
    return txn_date or date.max, due_date


def _sale(
    sid: Any,
    doc_number: str | None,
    customer: Any,
    txn_date: date | None,
    txn_raw: Any,
    due_date: date | None,
    due_raw: Any,
    currency: str | None,
    memo: str | None,
    billing_email: str | None,
    send: Any,
    subtotal: Decimal,
    discount: Decimal,
    tax: Decimal,
    total: Decimal,
    detail: str | None,
    grouping: str | None,
    origin: Any,
    updated: datetime | None,
    lines: tuple[CanonicalSaleLine, ...],
) -> CanonicalSale:
    invalid: list[InvalidValue] = []
    txn, due = _dates(txn_date, txn_raw, due_date, due_raw, invalid)
    return _SALE(
        _as_sid(sid),
        doc_number,
        None if customer is None else _as_sid(customer),
        txn,
        due,
        currency,
        memo,
        normalise_email(billing_email),
        bool(send),
        lines,
        subtotal,
        discount,
        tax,
        total,
        detail,
        grouping,
        origin,
        tuple(invalid),
        updated,
    )


_sale_builder = _builder(
    (
        "source_id",
        "doc_number",
        "customer_source_id",
        "txn_date",
        "txn_date_invalid",
        "due_date",
        "due_date_invalid",
        "currency",
        "memo",
        "billing_email",
        "send_requested",
        "subtotal",
        "discount_total",
        "tax_total",
        "total",
        "detail_level",
        "grouping",
        "origin",
        "updated_at",
    ),
    _sale,
)


def _receipt(
    sid: Any,
    sale: Any,
    customer: Any,
    amount: Decimal,
    received_on: date | None,
    received_raw: Any,
    method: Any,
    reference: str | None,
    origin: Any,
    updated: datetime | None,
) -> CanonicalReceipt:
    invalid: list[InvalidValue] = []
    if received_raw is not None or received_on is None:
        received_on = _date(received_on, received_raw, "received_on", invalid, required=True)
    return _RECEIPT(
        _as_sid(sid),
        _opt_sid(sale),
        _opt_sid(customer),
        amount,
        received_on or date.max,
        _opt_sid(method),
        reference,
        origin,
        tuple(invalid),
        updated,
    )


_receipt_builder = _builder(
    (
        "source_id",
        "sale_source_id",
        "customer_source_id",
        "amount",
        "received_on",
        "received_on_invalid",
        "payment_method_source_id",
        "reference",
        "origin",
        "updated_at",
    ),
    _receipt,
)

_vendor_builder = _builder(
    (
        "source_id",
        "display_name",
        "given_name",
        "family_name",
        "email",
        "phone",
        "country",
        "updated_at",
    ),
    lambda sid, display, given, family, email, phone, country, updated: CanonicalVendor(
        source_id=_as_sid(sid),
        display_name=_display_name(display),
        given_name=_name(given),
        family_name=_name(family),
        email=normalise_email(email),
        phone=phone,
        country=country,
        updated_at=updated,
    ),
)

_bill_line_builder = _builder(
    ("line_no", "concept", "description", "amount"),
    lambda line_no, concept, description, amount: CanonicalBillLine(
        line_no=int(line_no), concept=concept, description=description, amount=amount
    ),
)


def _bill(
    sid: Any,
    vendor: Any,
    doc_number: str | None,
    txn_date: date | None,
    txn_raw: Any,
    due_date: date | None,
    due_raw: Any,
    memo: str | None,
    total: Decimal,
    updated: datetime | None,
    lines: tuple[CanonicalBillLine, ...],
) -> CanonicalBill:
    invalid: list[InvalidValue] = []
    txn, due = _dates(txn_date, txn_raw, due_date, due_raw, invalid)
    return CanonicalBill(
        source_id=_as_sid(sid),
        vendor_source_id=_as_sid(vendor),
        doc_number=doc_number,
        txn_date=txn,
        due_date=due,
        memo=memo,
        lines=lines,
        total=total,
        invalid=tuple(invalid),
        updated_at=updated,
    )


_bill_builder = _builder(
    (
        "source_id",
        "vendor_source_id",
        "doc_number",
        "txn_date",
        "txn_date_invalid",
        "due_date",
        "due_date_invalid",
        "memo",
        "total",
        "updated_at",
    ),
    _bill,
)


def _contact_params(contact: QboContact) -> dict[str, Any]:
    addr = contact.bill_addr or CanonicalAddress()
    return {
        "given_name": contact.given_name,
        "family_name": contact.family_name,
        "email": contact.email,
        "phone": contact.phone,
        "line1": addr.line1,
        "line2": addr.line2,
        "city": addr.city,
        "region": addr.region,
        "postal_code": addr.postal_code,
        "country": addr.country,
        "realm_id": contact.realm_id,
        "qbo_id": contact.qbo_id,
        "display_name": contact.display_name,
        "company_name": contact.company_name,
        "active": contact.active,
    }


def _sale_params(sale: QboSale) -> dict[str, Any]:
    subtotal = sum((ln.amount for ln in sale.lines if ln.kind == "item"), Decimal("0"))
    discount = sum((ln.amount for ln in sale.lines if ln.kind == "discount"), Decimal("0"))
    return {
        "doc_number": sale.doc_number,
        "contact_id": sale.customer_source_id,
        "txn_date": sale.txn_date,
        "due_date": sale.due_date,
        "currency": sale.currency,
        "memo": sale.memo,
        "subtotal": subtotal,
        "discount_total": discount,
        "tax_total": sale.tax_total,
        "total": sale.total,
        "balance": sale.balance,
        "realm_id": sale.realm_id,
        "qbo_id": sale.qbo_id,
        "customer_qbo_id": sale.customer_qbo_id,
        "email_status": sale.email_status,
        "deleted": sale.deleted,
    }


def _receipt_params(receipt: QboReceipt) -> dict[str, Any]:
    return {
        "sale_id": receipt.sale_source_id,
        "contact_id": receipt.customer_source_id,
        "amount": receipt.amount,
        "received_on": receipt.received_on,
        "payment_method_name": receipt.payment_method_name,
        "reference": receipt.reference,
        "realm_id": receipt.realm_id,
        "qbo_id": receipt.qbo_id,
        "deleted": receipt.deleted,
    }


@dataclass(frozen=True, slots=True)
class Lines:
    """How a document's lines are read.

    Attributes:
        query: the line query (``read_sale_lines``), param ``:ids`` (parent ids).
        parent_key: its column holding the parent's id.
        build: the line builder (made once per page from its columns: row -> line).
        hash_query: one hash of all lines per parent in ``(:after, :last]`` (row hashes).
    """

    query: str
    parent_key: str
    build: Builder[Any]
    hash_query: str


@dataclass(frozen=True, slots=True)
class Reader:
    """How one entity is read from the source app (named by its catalogue row's ``reader``).

    Attributes:
        query: the read query (``sql/source_app/queries/<query>.sql``), params ``:after``,
            ``:limit``, ``:read_all``, ``:ids``, ordered by ``source_id`` (keyset pages); its
            row hash (``md5`` of the row) wraps it, so the two never drift apart.
        build: the record builder, made once per page from its columns: row -> the canonical
            record; with ``lines``, ``(row, lines)`` -> the record.
        lines: the entity's lines, if it has any.
    """

    query: str
    build: Builder[Any]
    lines: Lines | None = None


CUSTOMERS = Reader("read_customers", _customer_builder)
ITEMS = Reader("read_items", _item_builder)
TAX_RATES = Reader("read_tax_rates", _tax_rate_builder)
PAYMENT_METHODS = Reader("read_payment_methods", _payment_method_builder)
SALES = Reader(
    "read_sales",
    _sale_builder,
    Lines("read_sale_lines", "sale_id", _sale_line_builder, "row_hash_lines_invoices"),
)
RECEIPTS = Reader("read_receipts", _receipt_builder)
VENDORS = Reader("read_vendors", _vendor_builder)
BILLS = Reader(
    "read_bills",
    _bill_builder,
    Lines("read_bill_lines", "bill_id", _bill_line_builder, "row_hash_lines_bills"),
)


P = TypeVar("P")


def _read_ahead(fetch: Callable[[P], T], following: Callable[[T | None], P | None]) -> Iterator[T]:
    """Pages read one ahead: while the caller works on a page, the next one (``following``
    gives its parameters from the page before, None at the end) is fetched in a background
    thread, so Postgres runs and sends it meanwhile (the read and the caller's work overlap on
    two cores). At most two pages are held; a reader closed early waits for the page in flight.
    """
    params = following(None)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="source-read") as pool:
        pending = pool.submit(fetch, params) if params is not None else None
        while pending is not None:
            page = pending.result()
            params = following(page)
            pending = pool.submit(fetch, params) if params is not None else None
            yield page


def _header_and_lines(
    first_key: object,
    chunk: int,
    headers: Callable[[object], list[tuple[Any, str]]],
    lines: Callable[[object, object], dict[str, str]] | None,
) -> Iterator[tuple[list[tuple[Any, str]], dict[str, str]]]:
    """Row-hash pages as (header rows, lines hash per parent), three queries in flight: while
    the caller compares page n, Postgres hashes page n+1's lines and page n+2's headers on
    other connections (the two hash queries of a page run on two cores instead of one after
    the other). At most three pages are held; a reader closed early waits for what is in flight.
    """
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="source-hash") as pool:
        after = first_key
        header = pool.submit(headers, after)
        ready: tuple[list[tuple[Any, str]], Future[dict[str, str]] | None] | None = None
        while True:
            rows = header.result()
            full = len(rows) >= chunk
            if full:
                header = pool.submit(headers, rows[-1][0])
            line_page = pool.submit(lines, after, rows[-1][0]) if rows and lines else None
            if ready is not None:
                yield ready[0], ready[1].result() if ready[1] is not None else {}
            ready = (rows, line_page)
            if not full:
                break
            after = rows[-1][0]
        if ready[0]:
            yield ready[0], ready[1].result() if ready[1] is not None else {}


class SourceAppConnector:
    """Reads the source app's changes and records, and writes back what comes from QBO.

    Args:
        engine: any SQLAlchemy engine for the source app's database.
        queries_dir: directory of the ``*.sql`` files to run (default: the demo app's).
        first_key: the value below every primary key, where keyset pagination starts.
    """

    def __init__(
        self,
        engine: sa.Engine,
        queries_dir: Path = queries.DEFAULT_QUERIES_DIR,
        first_key: object = 0,
    ) -> None:
        self.engine = engine
        self.queries_dir = queries_dir
        self.first_key = first_key

    def _q(self, name: str) -> sa.TextClause:
        return queries.load(name, self.queries_dir)

    def _mark_sync(self, conn: sa.Connection) -> None:
        if conn.dialect.name == "postgresql":
            conn.execute(self._q("mark_sync_origin"))

    # ---------------------------------------------------------------- change capture

    def changes_since(self, seq: int, limit: int = 10_000) -> list[ChangeEvent]:
        """Change-log entries after ``seq`` (oldest first), echoes included (see ``is_echo``).

        Args:
            seq: the last sequence number already processed (0 for the start).
            limit: the maximum number of entries to return.
        """
        with self.engine.connect() as conn:
            rows = conn.execute(self._q("changes_since"), {"after": seq, "limit": limit})
            return [
                ChangeEvent(
                    seq=int(r["seq"]),
                    entity=r["entity"],
                    source_id=_sid(r["row_id"]),
                    op=cast(ChangeOp, r["op"]),
                    at=r["at"],
                    origin=cast(ChangeOrigin, r["origin"]),
                )
                for r in rows.mappings()
            ]

    def read_changes(self, seq: int, limit: int = 10_000) -> ChangeBatch:
        """Like :meth:`changes_since` but with echoes removed and the next cursor computed."""
        events = self.changes_since(seq, limit)
        real = tuple(e for e in events if not e.is_echo)
        next_seq = events[-1].seq if events else seq
        return ChangeBatch(real, next_seq, len(events) - len(real), len(events) >= limit)

    def feed_horizon(self) -> int:
        """The change feed's commit-safe horizon (``feed_horizon.sql``): no change below it can
        still appear, so a reader that covers ``[previous horizon, horizon)`` loses nothing to
        a slow transaction that took a lower sequence number and committed later."""
        with self.engine.connect() as conn:
            return int(conn.execute(self._q("feed_horizon")).scalar_one())

    def feed_blocker(self) -> FeedBlocker | None:
        """Changes committed beyond the feed's horizon and the open transaction holding it
        there (a session of the app left idle in a transaction stalls the sync), or None."""
        with self.engine.connect() as conn:
            horizon = int(conn.execute(self._q("feed_horizon")).scalar_one())
            row = conn.execute(self._q("feed_blocker"), {"horizon": horizon}).one()
        if not row.waiting or row.pid is None:
            return None
        return FeedBlocker(int(row.waiting), int(row.pid), row.xact_start, str(row.state or ""))

    def feed_changes(self, entity: str, lo: int, hi: int) -> EntityChanges:
        """Records of ``entity`` the app changed in the window ``[lo, hi)`` of the feed, split
        into changed and deleted by their latest operation; the sync's own writes skipped (R35).
        """
        changed: set[SourceId] = set()
        deleted: set[SourceId] = set()
        with self.engine.connect() as conn:
            rows = conn.execute(self._q("feed_changes"), {"entity": entity, "lo": lo, "hi": hi})
            for row_id, op in rows:
                (deleted if op == "delete" else changed).add(_sid(row_id))
        return EntityChanges(frozenset(changed), frozenset(deleted))

    def iter_row_hashes(
        self, entity: str, chunk: int = 10_000
    ) -> Iterator[list[tuple[SourceId, str]]]:
        """Every record of ``entity`` as (source id, row hash), in keyset pages.

        The row hash is computed by Postgres over the record's read query row (and its lines),
        so a full re-plan compares it with the hash stored at the last sync and builds only
        the records that changed. It is a cheap pre-filter: any change to the row (even one the
        sync ignores) changes it, and the content hash still decides.
        """
        reader = catalogue.source_entity(entity).source_reader
        read_sql = queries.strip_comments(queries.load_text(reader.query, self.queries_dir))
        header = sa.text(
            "SELECT x.source_id AS source_id, md5(x::text) AS row_hash FROM (\n"  # noqa: S608
            f"{read_sql}\n) x"
        ).bindparams(sa.bindparam("ids", expanding=True))

        def headers(after: object) -> list[tuple[Any, str]]:
            params = {"after": after, "limit": chunk, "read_all": True, "ids": []}
            with self.engine.connect() as conn:
                return [(r[0], str(r[1])) for r in conn.execute(header, params)]

        lines = (
            partial(self._line_hashes, self._q(reader.lines.hash_query))
            if reader.lines is not None
            else None
        )
        for rows, line_hashes in _header_and_lines(self.first_key, chunk, headers, lines):
            yield [(_sid(key), row_hash + line_hashes.get(str(key), "")) for key, row_hash in rows]

    def _line_hashes(self, query: sa.TextClause, after: object, last: object) -> dict[str, str]:
        """Parent id -> one hash of all its lines, for parents in ``(after, last]``."""
        with self.engine.connect() as conn:
            return {str(p): str(h) for p, h in conn.execute(query, {"after": after, "last": last})}

    def max_seq(self) -> int:
        """The newest change-log sequence number (0 when the log is empty)."""
        with self.engine.connect() as conn:
            return int(conn.execute(self._q("max_seq")).scalar_one())

    def pending_since(self, seq: int) -> PendingChanges:
        """Count and time span of real changes after ``seq`` (one aggregate query)."""
        with self.engine.connect() as conn:
            row = conn.execute(self._q("pending_since"), {"after": seq}).mappings().one()
        return PendingChanges(
            pending=int(row["pending"]),
            last_seq=int(row["last_seq"]),
            first_at=row["first_at"],
            last_at=row["last_at"],
        )

    def deleted_since(self, entity: SourceEntity | str, seq: int) -> list[SourceId]:
        """Ids of ``entity`` whose latest change after ``seq`` is a hard delete."""
        with self.engine.connect() as conn:
            rows = conn.execute(self._q("deleted_since"), {"entity": entity, "after": seq})
            return [_sid(r[0]) for r in rows]

    def mapping_usage(self) -> list[dict[str, Any]]:
        """Every source value needing a QBO mapping, with usage (``mapping_usage.sql``).

        Returns:
            dicts with ``kind`` (``tax-rate``, ``item``, ``payment-method``,
            ``expense-concept``), ``source_id``, ``name``, ``records`` (how many sales,
            receipts or worker invoices use it) and ``examples`` (up to 5 record ids).
        """
        with self.engine.connect() as conn:
            return [
                {
                    "kind": r["kind"],
                    "source_id": str(r["source_id"]),
                    "name": r["name"],
                    "records": int(r["records"]),
                    "examples": tuple(str(x) for x in (r["examples"] or ())),
                }
                for r in conn.execute(self._q("mapping_usage")).mappings()
            ]

    # ---------------------------------------------------------------- readers

    def _fetch(
        self, stmt: sa.TextClause, params: Mapping[str, Any]
    ) -> tuple[dict[str, int], list[Sequence[Any]]]:
        """One query in its own short transaction: its column positions and its rows as the
        driver's plain tuples (no per-row mapping objects: the hot path of planning)."""
        with self.engine.connect() as conn:
            cursor = conn.execute(stmt, params).cursor
            cols = {d[0]: i for i, d in enumerate(cursor.description or ())}
            return cols, list(cursor.fetchall())

    def _iter_rows(
        self, query: str, ids: Iterable[str] | None, chunk: int, lines_query: str | None = None
    ) -> Iterator[Page]:
        """Chunks of rows (keyset pages, or chunks of ``ids``), each read in its own short
        transaction: nothing stays open while the caller works on a chunk (e.g. calls QBO
        between chunks). With ``lines_query``, each page comes with its records' lines (one
        array of ids).

        Pages are read one ahead (:func:`_read_ahead`).
        """
        stmt = self._q(query)
        lines_stmt = self._q(lines_query) if lines_query is not None else None

        def fetch(params: dict[str, Any]) -> Page:
            cols, rows = self._fetch(stmt, params)
            lines = None
            if lines_stmt is not None and rows:
                key = cols["source_id"]
                lines = self._fetch(lines_stmt, {"ids": [r[key] for r in rows]})
            return cols, rows, lines

        parts = (
            None
            if ids is None
            else iter(_chunks(sorted(set(ids), key=lambda v: (len(v), v)), chunk))
        )

        def following(page: Page | None) -> dict[str, Any] | None:
            """The parameters of the page after ``page`` (None: the first), or None at the end."""
            if parts is not None:
                part = next(parts, None)
                if part is None:
                    return None
                return {
                    "after": self.first_key,
                    "limit": len(part),
                    "read_all": False,
                    "ids": list(part),
                }
            if page is None:
                return {"after": self.first_key, "limit": chunk, "read_all": True, "ids": []}
            cols, rows, _ = page
            if len(rows) < chunk:
                return None
            return {
                "after": rows[-1][cols["source_id"]],
                "limit": chunk,
                "read_all": True,
                "ids": [],
            }

        for page in _read_ahead(fetch, following):
            if page[1]:
                yield page

    def _iter_simple(
        self, query: str, builder: Builder[T], ids: Iterable[str] | None, chunk: int
    ) -> Iterator[list[T]]:
        for cols, rows, _ in self._iter_rows(query, ids, chunk):
            build = builder(cols)
            yield [build(r) for r in rows]

    def _iter_with_lines(
        self,
        query: str,
        builder: Builder[T],
        lines_query: str,
        parent: str,
        line_builder: Builder[Any],
        ids: Iterable[str] | None,
        chunk: int,
    ) -> Iterator[list[T]]:
        """Records with their lines: per page, the lines of its records in one query (one
        array of ids), built and grouped by parent id."""
        for cols, rows, lines in self._iter_rows(query, ids, chunk, lines_query):
            key = cols["source_id"]
            grouped: dict[str, list[Any]] = {}
            line_cols, line_rows = lines or ({parent: 0}, [])
            build_line = line_builder(line_cols)
            at = line_cols[parent]
            for row in line_rows:
                grouped.setdefault(str(row[at]), []).append(build_line(row))
            build = builder(cols)
            yield [build(r, tuple(grouped.get(str(r[key]), ()))) for r in rows]

    def iter_entity(
        self,
        entity: SourceEntity | str,
        ids: Iterable[str] | None = None,
        chunk: int = DEFAULT_CHUNK,
    ) -> Iterator[list[Any]]:
        """Canonical records of a catalogue entity (``customers``, ``invoices``, ``bills`` ...):
        all of them, or those with ``ids``, in chunks of ``chunk``, read by the entity's
        :class:`Reader` (one query per chunk, lines in one more, the next chunk read ahead).
        Contacts without a sale are included with ``has_sale=False``; R4 is the push's filter."""
        try:
            reader = catalogue.source_entity(entity).source_reader
        except KeyError:
            raise ValueError(f"unknown source entity {entity!r}") from None
        if reader.lines is None:
            return self._iter_simple(reader.query, reader.build, ids, chunk)
        lines = reader.lines
        return self._iter_with_lines(
            reader.query, reader.build, lines.query, lines.parent_key, lines.build, ids, chunk
        )

    # ------------------------------------------------ write-backs (R7, R8, R16, R20, R26)

    def _ids_for(
        self, conn: sa.Connection, query: str, realm_id: str, qbo_ids: list[str]
    ) -> dict[QboId, SourceId]:
        found: dict[QboId, SourceId] = {}
        for part in _chunks(qbo_ids, DEFAULT_CHUNK):
            params = {"realm_id": realm_id, "qbo_ids": list(part)}
            for row in conn.execute(self._q(query), params).mappings():
                found[QboId(str(row["qbo_id"]))] = _sid(row["source_id"])
        return found

    def contacts_named(self, names: Sequence[str]) -> dict[str, list[SourceId]]:
        """Source contacts (not QBO-origin) by display name as QBO compares names
        (:func:`qbo_pipelines.quality.rules.name_key`: blanks collapsed, case ignored), oldest
        first: the ones a QBO customer of that name may be matched to before the pull makes a
        contact of it. Keyed by that name key."""
        found: dict[str, list[SourceId]] = {}
        keys = {name_key(n) for n in names if n.strip()}
        wanted = sorted({" ".join(n.split()).lower() for n in names if n.strip()})
        if not wanted:
            return found
        with self.engine.connect() as conn:
            for part in _chunks(wanted, DEFAULT_CHUNK):
                for row in conn.execute(self._q("contacts_named"), {"keys": list(part)}):
                    key = name_key(str(row.display_name))
                    if key in keys:
                        found.setdefault(key, []).append(_sid(row.source_id))
        return found

    def upsert_contacts_from_qbo(
        self, contacts: Sequence[QboContact], links: Mapping[str, str] | None = None
    ) -> dict[QboId, SourceId]:
        """Write QBO Customers into the source as contacts (R7, R8), as the sync (R35).

        Args:
            contacts: the QBO customers (any mix of realms).
            links: QBO id -> source contact id for customers already linked (from the id map);
                those contacts are updated in place, the others are inserted or updated as
                QBO-origin contacts keyed on realm + QBO id.

        Returns:
            QBO id -> source contact id for every contact written.
        """
        return self._write_from_qbo("contact", contacts, links, _contact_params)

    def upsert_sales_from_qbo(
        self, sales: Sequence[QboSale], links: Mapping[str, str] | None = None
    ) -> dict[QboId, SourceId]:
        """Write QBO Invoices into the source as sales (R16), as the sync (R35).

        Invoices linked to a source-created sale (``links``) only update its QBO-side header
        fields (balance, email status, due date, memo); the others become QBO-origin sales whose
        lines are replaced by the invoice's. A deleted invoice is flagged, never removed.

        Returns:
            QBO id -> source sale id for every sale written.
        """
        own = links or {}

        def lines(conn: sa.Connection, written: dict[QboId, SourceId]) -> None:
            """The lines of the QBO-origin sales written, replaced by their invoices'."""
            for part in _chunks(list(written.values()), DEFAULT_CHUNK):
                conn.execute(self._q("delete_sale_lines"), {"ids": list(part)})
            line_rows = [
                {
                    "sale_id": written[s.qbo_id],
                    "line_no": ln.line_no,
                    "kind": ln.kind,
                    "description": ln.description,
                    "item_name": ln.item_name,
                    "qty": ln.qty,
                    "unit_price": ln.unit_price,
                    "amount": ln.amount,
                }
                for s in sales
                if s.qbo_id in written and s.qbo_id not in own
                for ln in s.lines
            ]
            if line_rows:
                conn.execute(self._q("insert_sale_line"), line_rows)

        return self._write_from_qbo("sale", sales, links, _sale_params, lines)

    def upsert_receipts_from_qbo(
        self,
        receipts: Sequence[QboReceipt],
        links: Mapping[str, str] | None = None,
        *,
        unapplied: Sequence[QboId] = (),
    ) -> dict[QboId, SourceId]:
        """Write QBO Payments into the source as receipts against the synced sale (R20).

        Payments linked to a source-created receipt only record their QBO id / deleted flag;
        the others become QBO-origin receipts. Deleting a QBO payment never deletes in the
        source (R22): it is flagged. The QBO-origin receipts of ``unapplied`` payments (applied
        to no invoice in QBO) pay no sale any more; a payment whose invoice is not in the
        source keeps the sale it was on.

        Returns:
            QBO id -> source receipt id for every receipt written.
        """
        gone = {i for i in unapplied if i not in (links or {})}

        def unapply(conn: sa.Connection, written: dict[QboId, SourceId]) -> None:
            """The QBO-origin receipts of payments applied to no invoice pay no sale."""
            for realm in {r.realm_id for r in receipts if r.qbo_id in gone}:
                ids = [r.qbo_id for r in receipts if r.realm_id == realm and r.qbo_id in gone]
                conn.execute(
                    self._q("unapply_receipts_from_qbo"), {"realm_id": realm, "qbo_ids": ids}
                )

        return self._write_from_qbo("receipt", receipts, links, _receipt_params, unapply)

    def _write_from_qbo(
        self,
        kind: str,
        objects: Sequence[Any],
        links: Mapping[str, str] | None,
        params: Callable[[Any], dict[str, Any]],
        then: Callable[[sa.Connection, dict[QboId, SourceId]], None] | None = None,
    ) -> dict[QboId, SourceId]:
        """Write QBO objects into the source as ``kind`` rows, as the sync (R35), in one
        transaction: those linked to a source row (``links``: QBO id -> source id) updated in
        place (``update_<kind>_from_qbo``), the others inserted or updated as QBO-origin rows
        keyed on realm + QBO id (``upsert_<kind>_from_qbo``); ``then`` runs in the same
        transaction with the QBO-origin rows written (QBO id -> source id).

        Returns:
            QBO id -> source id for every row written.
        """
        links = links or {}
        linked = [o for o in objects if o.qbo_id in links]
        unlinked = [o for o in objects if o.qbo_id not in links]
        result: dict[QboId, SourceId] = {o.qbo_id: SourceId(links[o.qbo_id]) for o in linked}
        if not objects:
            return result
        with self.engine.begin() as conn:
            self._mark_sync(conn)
            if linked:
                conn.execute(
                    self._q(f"update_{kind}_from_qbo"),
                    [{**params(o), "source_id": links[o.qbo_id]} for o in linked],
                )
            written: dict[QboId, SourceId] = {}
            if unlinked:
                conn.execute(self._q(f"upsert_{kind}_from_qbo"), [params(o) for o in unlinked])
                for realm in {o.realm_id for o in unlinked}:
                    written.update(
                        self._ids_for(
                            conn,
                            f"{kind}_ids_for_qbo",
                            realm,
                            [o.qbo_id for o in unlinked if o.realm_id == realm],
                        )
                    )
                if then is not None:
                    then(conn, written)
            result.update(written)
        return result

    def upsert_customer_transactions(self, transactions: Sequence[CustomerTransaction]) -> int:
        """Write each customer's QBO transactions with their QBO links (R26); returns the count."""
        if not transactions:
            return 0
        rows = [
            {
                "contact_id": t.customer_source_id,
                "realm_id": t.realm_id,
                "txn_type": t.txn_type,
                "qbo_id": t.qbo_id,
                "customer_qbo_id": t.customer_qbo_id,
                "doc_number": t.doc_number,
                "txn_date": t.txn_date,
                "total": t.total,
                "balance": t.balance,
                "status": t.status,
                "url": t.url,
                "deleted": t.deleted,
            }
            for t in transactions
        ]
        with self.engine.begin() as conn:
            self._mark_sync(conn)
            conn.execute(self._q("upsert_customer_transaction"), rows)
        return len(rows)

    # ------------------------------------------------ field-level write-back (R7, R42)

    def read_rows(self, table: str, ids: Sequence[str]) -> dict[SourceId, dict[str, Any]]:
        """The current columns of ``ids`` in one of the tables the pull writes (absent ids are
        rows deleted in the source)."""
        name = _writable_table(table)
        found: dict[SourceId, dict[str, Any]] = {}
        for part in _chunks(sorted({str(i) for i in ids}), DEFAULT_CHUNK):
            sql = sa.text(f"SELECT * FROM app.{name} WHERE id = ANY(CAST(:ids AS bigint[]))")
            with self.engine.connect() as conn:
                for row in conn.execute(sql, {"ids": [int(i) for i in part]}).mappings():
                    found[_sid(row["id"])] = dict(row)
        return found

    def existing_ids(self, table: str, ids: Iterable[str]) -> set[SourceId]:
        """The ``ids`` still present in one of the tables the pull writes (a row deleted in the
        source meanwhile is not: the pull never points a new row at it)."""
        name = _writable_table(table)
        wanted = sorted({int(i) for i in ids})
        if not wanted:
            return set()
        sql = sa.text(f"SELECT id FROM app.{name} WHERE id = ANY(:ids)")  # noqa: S608 - fixed
        with self.engine.connect() as conn:
            found: Iterable[Any] = conn.execute(sql, {"ids": wanted}).scalars()
            return {_sid(i) for i in found}

    def mirrored_sales_billed_to(self, contact_ids: Iterable[str]) -> list[SourceId]:
        """The sales pulled from QBO (origin ``qbo``) whose billing email follows these
        contacts: their own, and those of the contacts of an organisation one of them is the
        billing contact of (the rule of the change capture's billing feed)."""
        wanted = sorted({int(i) for i in contact_ids})
        if not wanted:
            return []
        sql = sa.text(
            "SELECT s.id FROM app.sales s WHERE s.origin = 'qbo' AND (s.contact_id = ANY(:ids)"
            " OR s.contact_id IN (SELECT c.id FROM app.contacts c WHERE c.organisation_id IN ("
            "  SELECT b.organisation_id FROM app.contacts b WHERE b.id = ANY(:ids)"
            "  AND b.is_billing_contact AND b.organisation_id IS NOT NULL))) ORDER BY s.id"
        )
        with self.engine.connect() as conn:
            found: Iterable[Any] = conn.execute(sql, {"ids": wanted}).scalars()
            return [_sid(i) for i in found]

    def apply_fields(self, table: str, updates: Sequence[FieldUpdate]) -> set[SourceId]:
        """Write exactly the columns each update names, as the sync (R35), in one transaction,
        each only if the row still holds the values the update was planned against
        (compare-and-set): a row a person changed meanwhile is left alone and re-planned by
        the next run, so a concurrent edit is never overwritten (R42).

        Returns:
            The ids whose update was applied.
        """
        name = _writable_table(table)
        allowed = WRITABLE_COLUMNS[name]
        applied: set[SourceId] = set()
        if not updates:
            return applied
        with self.engine.begin() as conn:
            self._mark_sync(conn)
            for up in updates:
                cols = sorted(up.new)
                bad = [c for c in cols if c not in allowed]
                if bad:
                    raise ValueError(f"app.{name} columns not writable by the pull: {bad}")
                if not cols:
                    continue
                sets = ", ".join(f"{c} = :n_{c}" for c in cols)
                guards = " AND ".join(
                    f"{c} IS NOT DISTINCT FROM :o_{c}" for c in sorted(up.old) if c in allowed
                )
                sql = f"UPDATE app.{name} SET {sets} WHERE id = :id"
                if guards:
                    sql += f" AND {guards}"
                params: dict[str, Any] = {"id": int(up.source_id)}
                params.update({f"n_{c}": up.new[c] for c in cols})
                params.update({f"o_{c}": v for c, v in up.old.items() if c in allowed})
                if conn.execute(sa.text(sql), params).rowcount:
                    applied.add(SourceId(up.source_id))
        return applied


@dataclass(frozen=True)
class FeedBlocker:
    """Source changes the feed cannot read yet and the transaction that holds them back."""

    waiting: int
    pid: int
    since: datetime | None
    state: str


@dataclass(frozen=True)
class FieldUpdate:
    """Columns to set on one source row (``new``), guarded by the values it held when the
    update was planned (``old``)."""

    source_id: str
    new: Mapping[str, Any]
    old: Mapping[str, Any] = field(default_factory=dict)


WRITABLE_COLUMNS: dict[str, frozenset[str]] = {
    "contacts": frozenset(
        {
            "given_name",
            "family_name",
            "email",
            "phone",
            "address_line1",
            "address_line2",
            "city",
            "region",
            "postal_code",
            "country",
            "qbo_display_name",
            "qbo_company_name",
            "qbo_active",
            "qbo_realm_id",
            "qbo_id",
        }
    ),
    "sales": frozenset(
        {
            "contact_id",
            "doc_number",
            "txn_date",
            "due_date",
            "memo",
            "balance",
            "qbo_email_status",
            "qbo_deleted",
            "qbo_realm_id",
            "qbo_id",
            "qbo_customer_id",
        }
    ),
    "receipts": frozenset(
        {
            "contact_id",
            "amount",
            "received_on",
            "reference",
            "qbo_deleted",
            "qbo_realm_id",
            "qbo_id",
        }
    ),
}
"""The only source tables and columns the pull's field-level writes may touch."""


def _writable_table(table: str) -> str:
    if table not in WRITABLE_COLUMNS:
        known = sorted(WRITABLE_COLUMNS)
        raise ValueError(f"app.{table} is not written by the pull; one of {known}")
    return table
