"""The demo source app's data: a deterministic bulk generator and a live change simulator.

``seed()`` fills the demo schema (``sql/source_app/schema``) with a small services business,
bulk-loaded through psycopg 3 ``COPY`` (never row by row), with the mess real data has:

* names with apostrophes and accents (O'Brien, Zoë Müller, Dvořák);
* organisation names duplicated up to case or spacing ("Acme Ltd", "ACME LTD", "Acme  Ltd ");
* missing and malformed emails; contacts with no sales;
* zero-amount and credit (negative) lines, percentage discounts, several tax rates, and one tax
  rate, ``Luxury 25%``, that the demo deliberately leaves unmapped (R12);
* workers (contractors) with invoices whose lines span several concepts (R23).

The same ``seed`` value always produces the same rows (ids follow the table's current sequence).
``simulate()`` keeps creating, editing and deleting records at a chosen rate, so the change log
and the sensors watching it have something to react to.
"""

from __future__ import annotations

import random
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

UNMAPPED_TAX_RATE = "Luxury 25%"
"""The tax rate the demo leaves without a QBO mapping on purpose (R12)."""

TAX_RATES: tuple[tuple[str, Decimal], ...] = (
    ("GST 10%", Decimal("10")),
    ("Reduced 5%", Decimal("5")),
    ("Zero rated", Decimal("0")),
    (UNMAPPED_TAX_RATE, Decimal("25")),
)
_TAX_WEIGHTS = (70, 15, 13, 2)

PAYMENT_METHODS: tuple[str, ...] = ("Cash", "Cheque", "Credit Card", "Direct Deposit")

PRODUCTS: tuple[tuple[str, str, Decimal], ...] = (
    ("Consulting", "service", Decimal("150.00")),
    ("Design", "service", Decimal("120.00")),
    ("Support Hours", "service", Decimal("85.00")),
    ("Training Session", "service", Decimal("450.00")),
    ("Travel", "service", Decimal("60.00")),
    ("On-site Visit", "service", Decimal("220.00")),
    ("Café Catering", "service", Decimal("35.50")),
    ("Hardware Kit", "product", Decimal("899.99")),
    ("Software Licence", "product", Decimal("49.00")),
    ("O'Reilly Handbook", "product", Decimal("39.95")),
)

CONCEPTS: tuple[str, ...] = (
    "Development", "Design work", "Travel expenses", "Equipment", "Bonus", "Reimbursement",
)

GIVEN = (
    "Zoë", "Ann", "Seán", "José", "Łukasz", "Amélie", "Björn", "Chloé", "Mary-Kate", "Noël",
    "Olivia", "Liam", "Emma", "Noah", "Ava", "Lucas", "Mia", "Ethan", "Sofía", "Mateo", "Aoife",
    "Ingrid", "Renée", "François", "Dmitri", "Priya", "Kenji", "Fatima", "Jürgen", "Siobhán",
)
FAMILY = (
    "O'Brien", "Müller", "D'Angelo", "Dvořák", "García", "Núñez", "Smith", "Jones", "Nguyen",
    "O'Connor", "Schröder", "Brown", "Kowalski", "Lefèvre", "MacDonald", "Øster", "Patel",
    "Rossi", "Svensson", "Taylor", "Williams", "Ødegård", "Fernández", "Yılmaz", "Kim",
)
ORG_WORDS = (
    "Acme", "Northwind", "Bluebird", "Harbour", "Summit", "Maple", "Granite", "Orchid",
    "Pioneer", "Riverside", "Sterling", "Willow", "Crescent", "Falcon", "Juniper", "Lighthouse",
    "Meridian", "Oakwood", "Quartz", "Redwood", "Zenith", "Café Müller", "O'Hara's",
)
ORG_SUFFIX = ("Ltd", "LLC", "& Co", "Group", "Studio", "Partners", "Inc.", "GmbH", "Pty Ltd")
COUNTRIES = ("US", "GB", "IE", "DE", "FR", "ES", "IN", "BR", "AU", "CA")
CURRENCIES = ("USD",) * 8 + ("EUR", "GBP")

BASE_DATE = date(2025, 6, 30)
"""Dates are generated relative to this fixed day (determinism)."""

_CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class SeedReport:
    """What ``seed()`` wrote, and how fast."""

    counts: dict[str, int]
    seconds: float

    @property
    def rows(self) -> int:
        """Total rows written."""
        return sum(self.counts.values())


@dataclass(slots=True)
class _Ids:
    tax_rates: list[tuple[int, Decimal]] = field(default_factory=list)
    products: list[tuple[int, Decimal]] = field(default_factory=list)
    payment_methods: list[int] = field(default_factory=list)


def _money(value: Decimal) -> Decimal:
    return value.quantize(_CENT)


def _email(rng: random.Random, given: str, family: str, domain: str) -> str | None:
    roll = rng.random()
    # Mailboxes are ASCII in practice (Zoë's address is zoe.muller@...); the mess is elsewhere.
    folded = unicodedata.normalize("NFKD", given + "." + family)
    local = folded.encode("ascii", "ignore").decode().lower().replace("'", "").replace(" ", "")
    if roll < 0.08:
        return None
    if roll < 0.10:
        return f"{local}@"  # malformed
    if roll < 0.12:
        return f"{local}.{domain}"  # malformed: no @
    if roll < 0.13:
        return f" {local}@{domain} "  # stray spaces
    return f"{local}@{domain}"


def _phone(rng: random.Random) -> str | None:
    if rng.random() < 0.15:
        return None
    return f"+1 ({rng.randint(200, 999)}) 555-{rng.randint(0, 9999):04d}"


def _org_names(rng: random.Random, count: int) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < count:
        if names and rng.random() < 0.03:
            base = rng.choice(names)  # messy duplicate: same name up to case or spacing
            variant = rng.choice((base.upper(), base.lower(), f" {base}", f"{base} ",
                                  base.replace(" ", "  ", 1)))
            names.append(variant)
            continue
        name = f"{rng.choice(ORG_WORDS)} {rng.choice(ORG_SUFFIX)}"
        if name in seen:
            name = f"{name} {len(names) + 1}"
        seen.add(name)
        names.append(name)
    return names


def _copy(conn: sa.Connection, table: str, columns: Sequence[str],
          rows: Iterable[Sequence[Any]]) -> int:
    """Bulk-load rows through psycopg 3 ``COPY ... FROM STDIN``; returns the row count."""
    raw: Any = conn.connection.driver_connection
    count = 0
    cols = ", ".join(f'"{c}"' for c in columns)
    with raw.cursor() as cur, cur.copy(f"COPY app.{table} ({cols}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def _reserve_ids(conn: sa.Connection, table: str, count: int) -> int:
    """Reserve ``count`` ids of ``app.<table>``; returns the first. Caller holds a table lock."""
    first = int(conn.execute(sa.text(f"SELECT coalesce(max(id), 0) + 1 FROM app.{table}"))
                .scalar_one())
    if count:
        conn.execute(
            sa.text("SELECT setval(pg_get_serial_sequence(:t, 'id'), :v)"),
            {"t": f"app.{table}", "v": first + count - 1},
        )
    return first


_TABLES = ("organisations", "contacts", "products", "tax_rates", "payment_methods", "sales",
           "sale_lines", "receipts", "workers", "worker_invoices", "worker_invoice_lines")


def reset(engine: sa.Engine) -> None:
    """Empty every demo table and the change log, restarting ids (destructive)."""
    with engine.begin() as conn:
        conn.execute(sa.text(
            "TRUNCATE app.customer_transactions, app.change_log, "
            + ", ".join(f"app.{t}" for t in _TABLES) + " RESTART IDENTITY CASCADE"))


def _reference_data(conn: sa.Connection) -> _Ids:
    for name, rate in TAX_RATES:
        conn.execute(sa.text("INSERT INTO app.tax_rates (name, rate) VALUES (:n, :r) "
                             "ON CONFLICT (name) DO NOTHING"), {"n": name, "r": rate})
    for name in PAYMENT_METHODS:
        conn.execute(sa.text("INSERT INTO app.payment_methods (name) VALUES (:n) "
                             "ON CONFLICT (name) DO NOTHING"), {"n": name})
    for name, kind, price in PRODUCTS:
        conn.execute(sa.text("INSERT INTO app.products (name, kind, unit_price, description) "
                             "VALUES (:n, :k, :p, :d) ON CONFLICT (name) DO NOTHING"),
                     {"n": name, "k": kind, "p": price, "d": f"{name} ({kind})"})
    ids = _Ids()
    by_name: dict[str, int] = dict(
        conn.execute(sa.text("SELECT name, id FROM app.tax_rates")).tuples().all())
    ids.tax_rates = [(int(by_name[n]), r) for n, r in TAX_RATES]
    prices: dict[str, int] = dict(
        conn.execute(sa.text("SELECT name, id FROM app.products")).tuples().all())
    ids.products = [(int(prices[n]), p) for n, _, p in PRODUCTS]
    methods: dict[str, int] = dict(
        conn.execute(sa.text("SELECT name, id FROM app.payment_methods")).tuples().all())
    ids.payment_methods = [int(methods[n]) for n in PAYMENT_METHODS]
    return ids


def _sale_lines(
    rng: random.Random, ids: _Ids, sale_id: int, line_rows: list[tuple[Any, ...]]
) -> tuple[Decimal, Decimal, Decimal]:
    """Append one sale's lines to ``line_rows``; returns (subtotal, discount, tax)."""
    by_rate: dict[int, Decimal] = {}
    rates = dict(ids.tax_rates)
    subtotal = Decimal("0")
    line_no = 0
    group = rng.choice(("Phase 1", "Phase 2", "Retainer", None))
    for _ in range(rng.randint(1, 5)):
        line_no += 1
        product_id, price = rng.choice(ids.products)
        qty = Decimal(rng.choice((1, 1, 1, 2, 3, 5, 10)))
        roll = rng.random()
        if roll < 0.03:
            price = Decimal("0.00")  # zero-amount line
        elif roll < 0.06:
            qty = -qty  # credit line
        amount = _money(qty * price)
        tax_id: int | None = rng.choices(ids.tax_rates, weights=_TAX_WEIGHTS)[0][0]
        if rng.random() < 0.05:
            tax_id = None  # no tax rate on the line: the default tax code applies (R13)
        subtotal += amount
        if tax_id is not None:
            by_rate[tax_id] = by_rate.get(tax_id, Decimal("0")) + amount
        line_rows.append((sale_id, line_no, "item", None, product_id, qty, price, amount,
                          tax_id, None, group))
    discount = Decimal("0")
    if rng.random() < 0.15 and subtotal > 0:
        pct = Decimal(rng.choice((5, 10, 15)))
        discount = -_money(subtotal * pct / 100)
        line_no += 1
        line_rows.append((sale_id, line_no, "discount", f"Discount {pct}%", None, None, None,
                          discount, None, pct, None))
    tax_total = Decimal("0")
    for tax_id, base in sorted(by_rate.items()):
        rate = rates[tax_id]
        if rate == 0:
            continue
        tax = _money(base * rate / 100)
        tax_total += tax
        line_no += 1
        line_rows.append((sale_id, line_no, "tax", None, None, None, None, tax, tax_id, None,
                          None))
    return subtotal, discount, tax_total


_SALE_COLS = ("id", "doc_number", "contact_id", "txn_date", "due_date", "currency", "memo",
              "detail_level", "grouping_label", "send_requested", "subtotal", "discount_total",
              "tax_total", "total")
_LINE_COLS = ("sale_id", "line_no", "kind", "description", "product_id", "qty", "unit_price",
              "amount", "tax_rate_id", "discount_percent", "group_name")


def seed(
    engine: sa.Engine,
    contacts: int = 200,
    sales: int = 500,
    workers: int | None = None,
    seed_value: int = 7,
    reset_first: bool = False,
) -> SeedReport:
    """Generate the demo business in bulk (one transaction, COPY per table).

    Args:
        engine: the source app's engine (PostgreSQL with psycopg 3).
        contacts: how many contacts; about 20 % of them get no sale.
        sales: how many sales (each with 1-5 item lines, maybe a discount, tax lines).
        workers: how many workers (default: contacts // 20, at least 3).
        seed_value: the RNG seed; the same seed gives the same data.
        reset_first: empty the demo tables and change log first.

    Returns:
        row counts per table and the elapsed seconds.
    """
    for label, count in (("contacts", contacts), ("sales", sales), ("workers", workers or 0)):
        if count < 0:  # would move an id sequence below rows that exist
            raise ValueError(f"{label} must be 0 or more, not {count}")
    started = time.perf_counter()
    rng = random.Random(seed_value)
    if reset_first:
        reset(engine)
    n_workers = max(3, contacts // 20) if workers is None else workers
    counts: dict[str, int] = {}
    with engine.begin() as conn:
        conn.execute(sa.text("LOCK TABLE " + ", ".join(f"app.{t}" for t in _TABLES)
                             + " IN SHARE ROW EXCLUSIVE MODE"))
        ids = _reference_data(conn)

        n_orgs = max(1, int(contacts * 0.6)) if contacts else 0
        org_first = _reserve_ids(conn, "organisations", n_orgs)
        org_names = _org_names(rng, n_orgs)
        counts["organisations"] = _copy(conn, "organisations", ("id", "name"),
                                        ((org_first + i, n) for i, n in enumerate(org_names)))

        contact_first = _reserve_ids(conn, "contacts", contacts)
        buyers: list[int] = []
        org_has_buyer: set[int] = set()
        contact_rows: list[tuple[Any, ...]] = []
        for i in range(contacts):
            cid = contact_first + i
            given, family = rng.choice(GIVEN), rng.choice(FAMILY)
            org = org_first + rng.randrange(n_orgs) if rng.random() < 0.7 else None
            is_billing = org is not None and org not in org_has_buyer
            # one buyer per organisation (its billing contact); 15 % of the rest buy nothing
            if org is None:
                if rng.random() < 0.85:
                    buyers.append(cid)
            elif is_billing:
                org_has_buyer.add(org)
                buyers.append(cid)
            domain = "example.com" if org is None else f"org{org}.example.com"
            contact_rows.append((
                cid, org, given, family, _email(rng, given, family, domain), _phone(rng),
                f"{rng.randint(1, 999)} {rng.choice(FAMILY)} Street", None,
                rng.choice(("Dublin", "Berlin", "Austin", "Zürich", "São Paulo", "Cork")),
                None, f"{rng.randint(10000, 99999)}", rng.choice(COUNTRIES), is_billing,
            ))
        counts["contacts"] = _copy(conn, "contacts", (
            "id", "organisation_id", "given_name", "family_name", "email", "phone",
            "address_line1", "address_line2", "city", "region", "postal_code", "country",
            "is_billing_contact"), contact_rows)

        sale_first = _reserve_ids(conn, "sales", sales if buyers else 0)
        sale_rows: list[tuple[Any, ...]] = []
        line_rows: list[tuple[Any, ...]] = []
        receipt_rows: list[tuple[Any, ...]] = []
        for i in range(sales if buyers else 0):
            sid = sale_first + i
            txn = BASE_DATE - timedelta(days=rng.randrange(365))
            subtotal, discount, tax = _sale_lines(rng, ids, sid, line_rows)
            total = subtotal + discount + tax
            contact = rng.choice(buyers)
            sale_rows.append((
                sid, f"S-{sid:06d}", contact, txn, txn + timedelta(days=30),
                rng.choice(CURRENCIES), "Thanks for your business" if rng.random() < 0.2 else None,
                rng.choice(("summary", "detailed")), rng.choice(("By task", "By ticket", None)),
                rng.random() < 0.3, subtotal, discount, tax, total,
            ))
            if total > 0 and rng.random() < 0.6:
                paid = total if rng.random() < 0.8 else _money(total / 2)
                receipt_rows.append((
                    sid, contact, paid, txn + timedelta(days=rng.randint(0, 40)),
                    rng.choice(ids.payment_methods), f"R-{sid:06d}",
                ))
        counts["sales"] = _copy(conn, "sales", _SALE_COLS, sale_rows)
        counts["sale_lines"] = _copy(conn, "sale_lines", _LINE_COLS, line_rows)
        counts["receipts"] = _copy(conn, "receipts", (
            "sale_id", "contact_id", "amount", "received_on", "payment_method_id", "reference"),
            receipt_rows)

        worker_first = _reserve_ids(conn, "workers", n_workers)
        worker_rows = []
        for i in range(n_workers):
            given, family = rng.choice(GIVEN), rng.choice(FAMILY)
            trading = f"{family} Contracting" if rng.random() < 0.3 else None
            worker_rows.append((worker_first + i, given, family, trading,
                                _email(rng, given, family, "contractor.example.com"),
                                _phone(rng), rng.choice(COUNTRIES)))
        counts["workers"] = _copy(conn, "workers", (
            "id", "given_name", "family_name", "trading_name", "email", "phone", "country"),
            worker_rows)

        invoice_plan = [rng.randint(1, 6) for _ in range(n_workers)]
        inv_first = _reserve_ids(conn, "worker_invoices", sum(invoice_plan))
        inv_rows: list[tuple[Any, ...]] = []
        inv_line_rows: list[tuple[Any, ...]] = []
        inv_id = inv_first
        for w, n_inv in enumerate(invoice_plan):
            for k in range(n_inv):
                issued = BASE_DATE - timedelta(days=rng.randrange(180))
                total = Decimal("0")
                for line_no, concept in enumerate(rng.sample(CONCEPTS, rng.randint(1, 4)), 1):
                    amount = _money(Decimal(rng.randint(5000, 500000)) / 100)
                    total += amount
                    inv_line_rows.append((inv_id, line_no, concept, f"{concept} - period {k + 1}",
                                          amount))
                inv_rows.append((inv_id, worker_first + w, f"W{worker_first + w}-{k + 1:03d}",
                                 issued, issued + timedelta(days=14), None, total))
                inv_id += 1
        counts["worker_invoices"] = _copy(conn, "worker_invoices", (
            "id", "worker_id", "number", "issued_on", "due_on", "memo", "total"), inv_rows)
        counts["worker_invoice_lines"] = _copy(conn, "worker_invoice_lines", (
            "worker_invoice_id", "line_no", "concept", "description", "amount"), inv_line_rows)
    _analyze(engine)
    return SeedReport(counts, time.perf_counter() - started)


def _analyze(engine: sa.Engine) -> None:
    """Statistics for what a bulk load wrote, as a loader should leave them: until
    autovacuum's next pass the planner would take the tables for empty and plan the reads'
    joins as passes over every row (a page of receipts joined every sale by hash)."""
    with engine.connect() as conn:
        conn.execute(sa.text("ANALYZE " + ", ".join(f"app.{t}" for t in _TABLES)))
        conn.commit()


# ------------------------------------------------------------------------------------ simulate


@dataclass(slots=True)
class SimulationReport:
    """What ``simulate()`` did, per action."""

    actions: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def _one(conn: sa.Connection, sql: str, **params: Any) -> Any:
    return conn.execute(sa.text(sql), params).scalar()


def _pick(conn: sa.Connection, rng: random.Random, table: str, where: str = "true") -> Any:
    """A row id of ``app.<table>`` chosen by the seeded RNG (None when there is none)."""
    count = int(_one(conn, f"SELECT count(*) FROM app.{table} WHERE {where}"))
    if count == 0:
        return None
    return _one(conn, f"SELECT id FROM app.{table} WHERE {where} ORDER BY id LIMIT 1 OFFSET :o",
                o=rng.randrange(count))


def _act_create_sale(conn: sa.Connection, rng: random.Random, ids: _Ids) -> bool:
    contact = _pick(conn, rng, "contacts")
    if contact is None:
        return False
    sale_id = int(_one(conn, "SELECT nextval(pg_get_serial_sequence('app.sales', 'id'))"))
    lines: list[tuple[Any, ...]] = []
    subtotal, discount, tax = _sale_lines(rng, ids, sale_id, lines)
    conn.execute(sa.text(
        "INSERT INTO app.sales (id, doc_number, contact_id, txn_date, due_date, subtotal, "
        "discount_total, tax_total, total, send_requested) VALUES "
        "(:id, :doc, :c, current_date, current_date + 30, :s, :d, :t, :tot, :send)"),
        {"id": sale_id, "doc": f"S-{sale_id:06d}", "c": contact, "s": subtotal, "d": discount,
         "t": tax, "tot": subtotal + discount + tax, "send": rng.random() < 0.3})
    conn.execute(sa.text(
        "INSERT INTO app.sale_lines (" + ", ".join(_LINE_COLS) + ") VALUES ("
        + ", ".join(f":{c}" for c in _LINE_COLS) + ")"),
        [dict(zip(_LINE_COLS, row, strict=True)) for row in lines])
    return True


def _act_edit_sale(conn: sa.Connection, rng: random.Random, ids: _Ids) -> bool:
    sale = _pick(conn, rng, "sales", "origin = 'source'")
    if sale is None:
        return False
    conn.execute(sa.text("UPDATE app.sales SET memo = :m WHERE id = :id"),
                 {"m": f"Edited {rng.randint(1, 10**6)}", "id": sale})
    return True


def _act_delete_sale(conn: sa.Connection, rng: random.Random, ids: _Ids) -> bool:
    sale = _pick(conn, rng, "sales", "origin = 'source'")
    if sale is None:
        return False
    conn.execute(sa.text("DELETE FROM app.sales WHERE id = :id"), {"id": sale})
    return True


def _act_edit_contact(conn: sa.Connection, rng: random.Random, ids: _Ids) -> bool:
    contact = _pick(conn, rng, "contacts")
    if contact is None:
        return False
    conn.execute(sa.text("UPDATE app.contacts SET phone = :p WHERE id = :id"),
                 {"p": _phone(rng) or "+1 555 0000", "id": contact})
    return True


def _act_create_contact(conn: sa.Connection, rng: random.Random, ids: _Ids) -> bool:
    given, family = rng.choice(GIVEN), rng.choice(FAMILY)
    conn.execute(sa.text("INSERT INTO app.contacts (given_name, family_name, email) "
                         "VALUES (:g, :f, :e)"),
                 {"g": given, "f": family, "e": _email(rng, given, family, "example.com")})
    return True


def _act_create_receipt(conn: sa.Connection, rng: random.Random, ids: _Ids) -> bool:
    sale = _pick(conn, rng, "sales", "total > 0")
    row = conn.execute(sa.text("SELECT id, contact_id, total FROM app.sales WHERE id = :i"),
                       {"i": sale}).first()
    if row is None or not ids.payment_methods:
        return False
    conn.execute(sa.text(
        "INSERT INTO app.receipts (sale_id, contact_id, amount, received_on, payment_method_id) "
        "VALUES (:s, :c, :a, current_date, :m)"),
        {"s": row[0], "c": row[1], "a": row[2], "m": rng.choice(ids.payment_methods)})
    return True


_ACTIONS: tuple[tuple[str, int, Callable[[sa.Connection, random.Random, _Ids], bool]], ...] = (
    ("create_sale", 30, _act_create_sale),
    ("edit_sale", 20, _act_edit_sale),
    ("delete_sale", 5, _act_delete_sale),
    ("edit_contact", 20, _act_edit_contact),
    ("create_contact", 10, _act_create_contact),
    ("create_receipt", 15, _act_create_receipt),
)


def simulate(
    engine: sa.Engine,
    rate: float = 1.0,
    duration: float = 60.0,
    seed_value: int = 11,
    sleep: Callable[[float], None] = time.sleep,
    on_action: Callable[[str], None] | None = None,
) -> SimulationReport:
    """Keep creating, editing and deleting records at about ``rate`` actions per second.

    Args:
        engine: the source app's engine.
        rate: actions per second (> 0).
        duration: seconds to run.
        seed_value: the RNG seed (which actions, on which records).
        sleep: injectable sleep (tests pass a no-op).
        on_action: called with each action's name after it committed.

    Returns:
        how many of each action were performed.
    """
    if rate <= 0:
        raise ValueError("rate must be positive")
    rng = random.Random(seed_value)
    report = SimulationReport()
    with engine.begin() as conn:
        ids = _reference_data(conn)
    started = time.perf_counter()
    interval = 1.0 / rate
    names = [a[0] for a in _ACTIONS]
    weights = [a[1] for a in _ACTIONS]
    funcs = {a[0]: a[2] for a in _ACTIONS}
    stream = _action_stream(rng, names, weights, max(1, round(rate * duration)))
    for performed, name in enumerate(stream, 1):
        with engine.begin() as conn:
            done = funcs[name](conn, rng, ids)
        if done:
            report.actions[name] = report.actions.get(name, 0) + 1
            if on_action is not None:
                on_action(name)
        wait = started + performed * interval - time.perf_counter()
        if wait > 0:
            sleep(wait)
    report.seconds = time.perf_counter() - started
    return report


def _action_stream(
    rng: random.Random, names: list[str], weights: list[int], count: int
) -> Iterator[str]:
    for _ in range(count):
        yield rng.choices(names, weights=weights)[0]
