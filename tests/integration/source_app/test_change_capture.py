"""Change capture and the connector against the real demo schema (R4, R8, R16, R20, R26, R35)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa

from qbo_pipelines import settings
from qbo_pipelines.canonical import (
    CanonicalAddress,
    CustomerTransaction,
    QboContact,
    QboId,
    QboReceipt,
    QboSale,
    QboSaleLine,
    RealmId,
)
from qbo_pipelines.source_app.connector import SourceAppConnector, summarize
from qbo_pipelines.warehouse import migrations


@pytest.fixture
def source(make_database: Callable[[str], sa.Engine]) -> sa.Engine:
    engine = make_database("src")
    migrations.migrate_source_app(engine)
    return engine


def _exec(engine: sa.Engine, sql: str, **params: object) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(sql), params)


def test_R35_change_capture_sees_insert_update_and_hard_delete_exactly_once(
    source: sa.Engine,
) -> None:
    conn = SourceAppConnector(source)
    start = conn.max_seq()
    _exec(source, "INSERT INTO app.contacts (given_name, family_name) VALUES ('Zoë', 'Müller')")
    _exec(source, "UPDATE app.contacts SET email = 'zoe@example.com'")
    _exec(source, "UPDATE app.contacts SET email = 'zoe@example.com'")  # no-op: not recorded
    _exec(source, "DELETE FROM app.contacts")
    events = conn.changes_since(start)
    assert [(e.entity, e.op) for e in events] == [
        ("customers", "insert"),
        ("customers", "update"),
        ("customers", "delete"),
    ]
    assert len({e.source_id for e in events}) == 1
    assert all(e.at.tzinfo is not None and not e.is_echo for e in events)
    assert summarize(events)["customers"].deleted == {events[0].source_id}
    assert conn.deleted_since("customers", start) == [events[0].source_id]


def test_sale_with_lines_is_one_event_and_line_edits_report_the_sale(source: sa.Engine) -> None:
    conn = SourceAppConnector(source)
    with source.begin() as c:
        contact = c.execute(
            sa.text("INSERT INTO app.contacts (given_name) VALUES ('Ann') RETURNING id")
        ).scalar_one()
        sale = c.execute(
            sa.text(
                "INSERT INTO app.sales (contact_id, txn_date, subtotal, total) "
                "VALUES (:c, '2024-01-02', 30, 30) RETURNING id"
            ),
            {"c": contact},
        ).scalar_one()
        c.execute(
            sa.text(
                "INSERT INTO app.sale_lines (sale_id, line_no, amount)"
                " VALUES (:s, 1, 10), (:s, 2, 20)"
            ),
            {"s": sale},
        )
    start = conn.max_seq()
    _exec(
        source, "UPDATE app.sale_lines SET amount = 11 WHERE sale_id = :s AND line_no = 1", s=sale
    )
    events = conn.changes_since(start)
    assert [(e.entity, e.source_id, e.op) for e in events] == [("invoices", str(sale), "update")]
    [[canonical]] = list(conn.iter_entity("invoices", ids=[str(sale)]))
    assert [ln.amount for ln in canonical.lines] == [Decimal("11.00"), Decimal("20.00")]
    [[customer]] = list(conn.iter_entity("customers", ids=[str(contact)]))
    assert customer.has_sale
    assert customer.display_name == "Ann"
    start = conn.max_seq()
    _exec(source, "DELETE FROM app.sales WHERE id = :s", s=sale)
    assert [(e.entity, e.op) for e in conn.changes_since(start)] == [("invoices", "delete")]


def _one(engine: sa.Engine, sql: str, **params: object) -> int:
    with engine.begin() as c:
        return int(c.execute(sa.text(sql), params).scalar_one())


def _changed(conn: SourceAppConnector, start: int) -> set[tuple[str, str]]:
    return {(e.entity, e.source_id) for e in conn.changes_since(start)}


def test_R5_one_customer_per_organisation_its_lowest_contact_stands_for_it(
    source: sa.Engine,
) -> None:
    conn = SourceAppConnector(source)
    org = _one(source, "INSERT INTO app.organisations (name) VALUES ('Acme') RETURNING id")
    other = _one(source, "INSERT INTO app.organisations (name) VALUES ('Bolt') RETURNING id")
    first, second = (
        _one(
            source,
            "INSERT INTO app.contacts (organisation_id, given_name) VALUES (:o, :g) RETURNING id",
            o=org,
            g=g,
        )
        for g in ("Ann", "Bob")
    )
    bolt = _one(
        source,
        "INSERT INTO app.contacts (organisation_id, given_name) VALUES (:o, 'Cy') RETURNING id",
        o=other,
    )
    start = conn.max_seq()
    sale = _one(
        source,
        "INSERT INTO app.sales (contact_id, txn_date, total)"
        " VALUES (:c, '2024-01-02', 30) RETURNING id",
        c=second,
    )
    receipt = _one(
        source,
        "INSERT INTO app.receipts (sale_id, amount, received_on)"
        " VALUES (:s, 30, '2024-01-03') RETURNING id",
        s=sale,
    )
    # Bob's first sale: Ann, who stands for Acme, now has one (R4) and is reported.
    assert {("customers", str(first)), ("customers", str(second))} <= _changed(conn, start)

    def read() -> tuple[dict[str, object], object, object]:
        ids = [str(first), str(second), str(bolt)]
        people = {c.source_id: c for chunk in conn.iter_entity("customers", ids) for c in chunk}
        [[s]] = list(conn.iter_entity("invoices", [str(sale)]))
        [[r]] = list(conn.iter_entity("payments", [str(receipt)]))
        return people, s.customer_source_id, r.customer_source_id

    people, billed, paid = read()
    ann, bob = people[str(first)], people[str(second)]
    assert (ann.has_sale, ann.represented_by) == (True, None)  # type: ignore[attr-defined]
    assert bob.represented_by == str(first)  # type: ignore[attr-defined]
    assert billed == paid == str(first)

    # Ann leaves Acme for Bolt: Bob stands for Acme, Cy still for Bolt; everything that bills
    # either organisation or belongs to Ann is reported.
    start = conn.max_seq()
    _exec(source, "UPDATE app.contacts SET organisation_id = :o WHERE id = :c", o=other, c=first)
    assert {
        ("customers", str(first)),
        ("customers", str(second)),
        ("customers", str(bolt)),
        ("invoices", str(sale)),
        ("payments", str(receipt)),
    } <= _changed(conn, start)
    people, billed, paid = read()
    assert people[str(second)].represented_by is None  # type: ignore[attr-defined]
    assert people[str(first)].represented_by is None  # type: ignore[attr-defined]
    assert people[str(bolt)].represented_by == str(first)  # type: ignore[attr-defined]
    assert billed == paid == str(second)

    # A contact with a lower id joins Acme: it stands for Acme from now on.
    start = conn.max_seq()
    lower = second - 1 if second - 1 not in (first, bolt) else 0
    _exec(
        source,
        "INSERT INTO app.contacts (id, organisation_id, given_name) VALUES (:i, :o, 'Al')",
        i=lower,
        o=org,
    )
    assert {
        ("customers", str(second)),
        ("invoices", str(sale)),
        ("payments", str(receipt)),
    } <= _changed(conn, start)
    assert read()[1] == str(lower)

    # ... and is deleted again: Bob stands for Acme once more.
    start = conn.max_seq()
    _exec(source, "DELETE FROM app.contacts WHERE id = :i", i=lower)
    assert {
        ("customers", str(second)),
        ("invoices", str(sale)),
        ("payments", str(receipt)),
    } <= _changed(conn, start)
    assert read()[1:] == (str(second), str(second))


def test_R35_write_backs_are_marked_as_sync_and_skipped(source: sa.Engine) -> None:
    conn = SourceAppConnector(source)
    start = conn.max_seq()
    realm = RealmId("r-echo")
    ids = conn.upsert_contacts_from_qbo(
        [
            QboContact(
                realm_id=realm,
                qbo_id=QboId("58"),
                display_name="Amy's Bird Sanctuary",
                given_name="Amy",
                email="birds@example.com",
                bill_addr=CanonicalAddress(city="Bayshore"),
                updated_at=datetime(2024, 1, 1, tzinfo=UTC),
            ),
        ]
    )
    contact_id = ids[QboId("58")]
    sale_ids = conn.upsert_sales_from_qbo(
        [
            QboSale(
                realm_id=realm,
                qbo_id=QboId("130"),
                doc_number="1037",
                customer_qbo_id=QboId("58"),
                customer_source_id=contact_id,
                txn_date=date(2024, 1, 5),
                total=Decimal("362.07"),
                balance=Decimal("362.07"),
                lines=(
                    QboSaleLine(
                        line_no=1,
                        item_name="Rocks",
                        qty=Decimal("1"),
                        unit_price=Decimal("362.07"),
                        amount=Decimal("362.07"),
                    ),
                ),
            ),
        ]
    )
    receipt_ids = conn.upsert_receipts_from_qbo(
        [
            QboReceipt(
                realm_id=realm,
                qbo_id=QboId("7"),
                customer_qbo_id=QboId("58"),
                customer_source_id=contact_id,
                sale_source_id=sale_ids[QboId("130")],
                amount=Decimal("100"),
                received_on=date(2024, 1, 6),
            ),
        ]
    )
    assert (
        conn.upsert_customer_transactions(
            [
                CustomerTransaction(
                    realm_id=realm,
                    txn_type="Invoice",
                    qbo_id=QboId("130"),
                    customer_qbo_id=QboId("58"),
                    customer_source_id=contact_id,
                ),
            ]
        )
        == 1
    )
    # repeat: updates in place, same ids
    again = conn.upsert_contacts_from_qbo(
        [
            QboContact(
                realm_id=realm,
                qbo_id=QboId("58"),
                display_name="Amy's Bird Sanctuary",
                given_name="Amy",
                email="amy@example.com",
            )
        ]
    )
    assert again == ids
    batch = conn.read_changes(start)
    assert batch.events == ()
    assert batch.echoes >= 3
    assert batch.next_seq == conn.max_seq()
    assert conn.pending_since(start).pending == 0
    [[customer]] = list(conn.iter_entity("customers", ids=[contact_id]))
    assert customer.origin == "qbo"
    assert customer.display_name == "Amy's Bird Sanctuary"
    assert customer.email == "amy@example.com"
    [[receipt]] = list(conn.iter_entity("payments", ids=[receipt_ids[QboId("7")]]))
    assert receipt.origin == "qbo"
    assert receipt.sale_source_id == sale_ids[QboId("130")]
    with source.connect() as c:
        url = c.execute(sa.text("SELECT qbo_url FROM app.customer_transactions")).scalar_one()
    assert url == "https://app.qbo.intuit.com/app/invoice?txnId=130"
    # a real app edit after the write-back is seen
    _exec(source, "UPDATE app.contacts SET phone = '555' WHERE id = :i", i=int(contact_id))
    assert [e.op for e in conn.read_changes(start).events] == ["update"]


def test_feed_horizon_waits_for_a_slow_transaction_here_never_for_one_in_another_database(
    source: sa.Engine, make_database: Callable[[str], sa.Engine]
) -> None:
    """The change feed's horizon (R27's commit-safe window) stays below a transaction of the
    source database that is still running, and is not held back by a long transaction of
    another database on the same server (the warehouse, Dagster's storage, another app:
    txids are cluster-wide, and the whole cluster's oldest once delayed every push)."""
    reader = SourceAppConnector(source)
    other = make_database("other")
    _exec(other, "CREATE TABLE t (x int)")
    elsewhere = other.connect()
    here = source.connect()
    try:
        tx_other = elsewhere.begin()
        elsewhere.execute(sa.text("INSERT INTO t VALUES (1)"))  # holds a txid, never ends
        other_xid = int(elsewhere.execute(sa.text("SELECT txid_current()")).scalar_one())
        _exec(source, "INSERT INTO app.contacts (given_name, family_name) VALUES ('A', 'B')")
        after = reader.feed_horizon()
        assert after > other_xid  # another database's open transaction: no delay
        changed = reader.feed_changes("customers", 0, after).changed
        assert len(changed) == 1  # the committed change is inside the window

        tx_here = here.begin()
        here.execute(
            sa.text("INSERT INTO app.contacts (given_name, family_name) VALUES ('C', 'D')")
        )
        slow_xid = int(here.execute(sa.text("SELECT txid_current()")).scalar_one())
        _exec(source, "INSERT INTO app.contacts (given_name, family_name) VALUES ('E', 'F')")
        held = reader.feed_horizon()
        assert held <= slow_xid  # a slow transaction of the source app: the window waits
        tx_here.commit()
        done = reader.feed_horizon()
        assert done > slow_xid
        late = reader.feed_changes("customers", held, done).changed
        assert len(late) == 2  # the slow one and the one after it, none skipped
        tx_other.rollback()
    finally:
        here.close()
        elsewhere.close()


_BILLING_SCENARIOS = {
    "an email": ["UPDATE app.contacts SET email = 'new@x.example' WHERE id = {buyer}"],
    "a phone only": ["UPDATE app.contacts SET phone = '+1 555 0100' WHERE id = {buyer}"],
    "the billing flag": [
        "UPDATE app.contacts SET is_billing_contact = NOT is_billing_contact WHERE id = {member}"
    ],
    "a move": ["UPDATE app.contacts SET organisation_id = {other_org} WHERE id = {member}"],
    "many rows": ["UPDATE app.contacts SET email = 'm' || id || '@x.example' WHERE id <= 40"],
    "two statements": [
        "UPDATE app.contacts SET email = 'a@x.example' WHERE id = {buyer}",
        "UPDATE app.contacts SET email = 'b@x.example' WHERE id IN ({buyer}, {member})",
    ],
    "a new billing contact": [
        "INSERT INTO app.contacts (id, given_name, organisation_id, is_billing_contact, email)"
        " VALUES (90001, 'New', {org}, true, 'n@x.example')"
    ],
    "a deleted billing contact": [
        "UPDATE app.contacts SET is_billing_contact = true WHERE id = {idle}",
        "DELETE FROM app.contacts WHERE id = {idle}",
    ],
    "the sync's write": [
        "SET LOCAL qbo_pipelines.origin = 'sync'",
        "UPDATE app.sales SET origin = 'qbo' WHERE contact_id = {buyer} AND mod(id, 2) = 0",
        "UPDATE app.contacts SET email = 's@x.example', is_billing_contact = true"
        " WHERE id IN ({buyer}, {member})",
    ],
}


def _feed_rows(engine: sa.Engine, function_file: str, statements: list[str]) -> list[tuple]:
    """The change-log rows the statements add with ``function_file``'s billing feed installed
    (everything rolled back after)."""
    path = settings.SQL_DIR / "source_app" / "schema" / function_file
    with engine.connect() as conn:
        conn.exec_driver_sql(path.read_text(encoding="utf-8"))
        start = conn.exec_driver_sql("SELECT coalesce(max(seq), 0) FROM app.change_log").scalar()
        for sql in statements:
            conn.exec_driver_sql(sql)
        rows = conn.execute(
            sa.text(
                "SELECT entity, table_name, row_id, op, origin FROM app.change_log"
                " WHERE seq > :s ORDER BY seq"
            ),
            {"s": start},
        ).all()
        conn.rollback()
    return [tuple(r) for r in rows]


@pytest.mark.parametrize("scenario", list(_BILLING_SCENARIOS))
def test_R18_the_billing_feed_by_index_reports_what_the_scan_did(
    source: sa.Engine, scenario: str
) -> None:
    """Migration 007 finds the sales whose billing email a contact statement moves through the
    sales' contact index instead of a scan of every sale: the same change-log rows as 005's
    function, statement for statement."""
    from qbo_pipelines.source_app import demo

    demo.seed(source, contacts=60, sales=300, workers=2, seed_value=3)
    with source.connect() as conn:
        org, member = conn.exec_driver_sql(
            "SELECT c.organisation_id, max(c.id) FROM app.contacts c"
            " JOIN app.sales s ON s.contact_id = c.id WHERE c.organisation_id IS NOT NULL"
            " GROUP BY c.organisation_id ORDER BY count(DISTINCT c.id) DESC, 1 LIMIT 1"
        ).one()
        buyer = conn.exec_driver_sql(
            f"SELECT min(contact_id) FROM app.sales s JOIN app.contacts c ON c.id = s.contact_id"
            f" WHERE c.organisation_id = {org}"
        ).scalar()
        other_org = conn.exec_driver_sql(
            f"SELECT min(id) FROM app.organisations WHERE id <> {org}"
        ).scalar()
        idle = conn.exec_driver_sql(
            "SELECT min(c.id) FROM app.contacts c WHERE c.organisation_id IS NOT NULL"
            " AND NOT EXISTS (SELECT 1 FROM app.sales s WHERE s.contact_id = c.id)"
            " AND NOT EXISTS (SELECT 1 FROM app.receipts r WHERE r.contact_id = c.id)"
        ).scalar()
    values = {"org": org, "member": member, "buyer": buyer, "other_org": other_org, "idle": idle}
    statements = [s.format(**values) for s in _BILLING_SCENARIOS[scenario]]
    scanned = _feed_rows(source, "005_billing_feed_follows_pulls.sql", statements)
    by_index = _feed_rows(source, "007_billing_feed_by_index.sql", statements)
    assert by_index == scanned
    if scenario not in ("a phone only",):
        assert any(r[0] == "invoices" for r in scanned), "the scenario reports a sale"
