"""R40: the bad-input corpus. No hostile source record crashes a run or stops the others.

One demo source app is seeded, then one record per hostile class is inserted next to good
records, and the push runs through the product path (:func:`pipeline.push_all`, what the
Dagster assets and the CLI call) against the QBO sandbox over real HTTP. Per class the record
is either

* **held** back: an open ``sync.quarantine`` row with the expected rule, a reason and a
  non-empty fix, and a ``held`` ledger row naming the rule; or
* **synced** correctly: linked in ``sync.id_map`` and read back from the sandbox over HTTP with
  the expected field values.

The run never raises (a second run neither), and the good records of the same batch sync.

The source schema's numeric columns are widened to plain ``numeric`` here, to stand for a
source app without precision limits: that is how NaN, Infinity and fractions of a cent reach
the sync. NUL cannot be stored in a PostgreSQL text column at all (its own test).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from qbo_pipelines.canonical import RealmId
from qbo_pipelines.demo import setup
from qbo_pipelines.qbo.auth import ENV_TOKEN_KEY
from qbo_pipelines.qbo.secret import Secret
from qbo_pipelines.sandbox.testing import SandboxHandle, run_sandbox
from qbo_pipelines.source_app import demo
from qbo_pipelines.sync import pipeline
from qbo_pipelines.sync.env import QboApp, SyncEnv
from qbo_pipelines.warehouse import migrations

QBO_ENTITY = {
    "customers": "Customer", "items": "Item", "invoices": "Invoice", "payments": "Payment",
    "vendors": "Vendor", "bills": "Bill",
}
FAST_CLIENT = {"backoff_base": 0.01, "throttle_backoff_base": 0.01, "backoff_max": 0.05}


@dataclass(frozen=True)
class Case:
    """One hostile class: how to insert it and what must happen to it."""

    name: str
    entity: str
    expect: str  # "held" or "synced"
    insert: Callable[[Source], str]
    rule: str | None = None
    qbo: dict[str, Any] = field(default_factory=dict)  # expected QBO fields when synced
    qbo_entity: str | None = None  # when not the entity's usual QBO type
    check: Callable[[dict[str, Any]], None] | None = None
    xfail: str | None = None


class Source:
    """Inserts into the demo source app (one connection, one transaction)."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn
        self.collisions: set[tuple[str, str]] = set()  # records of the name-collision cases
        one = self.one
        self.product = one("SELECT id FROM app.products WHERE name = 'Consulting'")
        self.cash = one("SELECT id FROM app.payment_methods WHERE name = 'Cash'")
        self.good_contact = self.contact("Good", "Person", email="good.person@example.com")
        self.good_worker = self.worker(trading_name="Good Contracting Co")

    def one(self, sql: str, **params: Any) -> str:
        return str(self.conn.execute(sa.text(sql), params).scalar_one())

    def org(self, name: str) -> str:
        return self.one("INSERT INTO app.organisations (name) VALUES (:n) RETURNING id", n=name)

    def contact(
        self, given: str | None, family: str | None, *, email: str | None = None,
        org: str | None = None, phone: str | None = None, line1: str | None = None,
    ) -> str:
        org_id = self.org(org) if org is not None else None
        return self.one(
            "INSERT INTO app.contacts (organisation_id, given_name, family_name, email, phone,"
            " address_line1) VALUES (:o, :g, :f, :e, :p, :l) RETURNING id",
            o=org_id, g=given, f=family, e=email, p=phone, l=line1,
        )

    def customer(self, **kw: Any) -> str:
        """A contact with one good sale (R4: only contacts with a sale are pushed)."""
        given = kw.pop("given", "Case")
        family = kw.pop("family", "Contact")
        contact_id = self.contact(given, family, **kw)
        self.sale(contact_id)
        return contact_id

    def sale(
        self, contact_id: str | None, *, txn: str = "2025-05-01", due: str | None = None,
        lines: list[tuple[str, str, str]] | None = None, total: str | None = None,
        memo: str | None = None, doc: str | None = None, updated_at: str | None = None,
        description: str | None = None,
    ) -> str:
        lines = lines if lines is not None else [("1", "150", "150.00")]
        amounts = [Decimal(a) for _, _, a in lines]
        subtotal = str(sum(amounts, Decimal(0))) if total is None else total
        sale_id = self.one(
            "INSERT INTO app.sales (doc_number, contact_id, txn_date, due_date, memo, subtotal,"
            " total, updated_at) VALUES (:doc, :c, CAST(:txn AS date), CAST(:due AS date), :memo,"
            " CAST(:sub AS numeric), CAST(:sub AS numeric),"
            " coalesce(CAST(:upd AS timestamptz), now())) RETURNING id",
            doc=doc, c=contact_id, txn=txn, due=due, memo=memo, sub=subtotal, upd=updated_at,
        )
        self.conn.execute(
            sa.text(
                "INSERT INTO app.sale_lines (sale_id, line_no, kind, description, product_id,"
                " qty, unit_price, amount) VALUES (:s, :n, 'item', :d, :p, CAST(:q AS numeric),"
                " CAST(:u AS numeric), CAST(:a AS numeric))"
            ),
            [
                {"s": sale_id, "n": n, "d": description, "p": self.product, "q": q, "u": u,
                 "a": a}
                for n, (q, u, a) in enumerate(lines, 1)
            ],
        )
        return sale_id

    def receipt(
        self, *, sale_id: str | None, contact_id: str | None, amount: str = "150.00",
        received_on: str = "2025-05-10", reference: str | None = None,
    ) -> str:
        return self.one(
            "INSERT INTO app.receipts (sale_id, contact_id, amount, received_on,"
            " payment_method_id, reference) VALUES (:s, :c, CAST(:a AS numeric),"
            " CAST(:r AS date), :m, :ref) RETURNING id",
            s=sale_id, c=contact_id, a=amount, r=received_on, m=self.cash, ref=reference,
        )

    def good_sale(self) -> str:
        return self.sale(self.good_contact)

    def worker(self, *, trading_name: str, email: str | None = None) -> str:
        return self.one(
            "INSERT INTO app.workers (trading_name, email) VALUES (:t, :e) RETURNING id",
            t=trading_name, e=email,
        )

    def bill(
        self, *, issued: str = "2025-05-02", due: str | None = None, memo: str | None = None,
        amount: str = "300.00",
    ) -> str:
        bill_id = self.one(
            "INSERT INTO app.worker_invoices (worker_id, number, issued_on, due_on, memo, total)"
            " VALUES (:w, NULL, CAST(:i AS date), CAST(:d AS date), :m, CAST(:t AS numeric))"
            " RETURNING id",
            w=self.good_worker, i=issued, d=due, m=memo, t=amount,
        )
        self.conn.execute(
            sa.text(
                "INSERT INTO app.worker_invoice_lines (worker_invoice_id, line_no, concept,"
                " amount) VALUES (:b, 1, 'Development', CAST(:a AS numeric))"
            ),
            {"b": bill_id, "a": amount},
        )
        return bill_id

    def duplicate_customers(self, first: str, second: str) -> str:
        ids = (self.customer(org=first), self.customer(org=second))
        self.collisions |= {("customers", i) for i in ids}
        return ids[1]

    def customer_and_vendor(self, name: str) -> str:
        customer_id, vendor_id = self.customer(org=name), self.worker(trading_name=name)
        self.collisions |= {("customers", customer_id), ("vendors", vendor_id)}
        return vendor_id

    def product_named(self, name: str) -> str:
        return self.one(
            "INSERT INTO app.products (name, kind, unit_price) VALUES (:n, 'service', 10)"
            " RETURNING id",
            n=name,
        )

    def deleted_sale_receipt(self, *, with_contact: bool) -> str:
        sale_id = self.good_sale()
        receipt_id = self.receipt(
            sale_id=sale_id, contact_id=self.good_contact if with_contact else None
        )
        self.conn.execute(sa.text("DELETE FROM app.sales WHERE id = :s"), {"s": sale_id})
        return receipt_id


def _display(name: str) -> Callable[[Source], str]:
    return lambda s: s.customer(org=name)


def _no_line_link(payment: dict[str, Any]) -> None:
    assert not payment.get("Line"), payment  # an unapplied payment: its sale is gone


def _lines_described(text: str) -> Callable[[dict[str, Any]], None]:
    def check(invoice: dict[str, Any]) -> None:
        described = [ln.get("Description") for ln in invoice["Line"]]
        assert text in described, described

    return check


QUOTED = "O'Brien \"Quoted\" \\ Backslash & Sons"
MATCHED = "Match O'Neil \\ Partners"
C = Case
CASES: list[Case] = [
    # --- good records of the same batch -----------------------------------------------------
    C("good_customer", "customers", "synced", lambda s: s.good_contact,
      qbo={"DisplayName": "Good Person"}),
    C("good_sale", "invoices", "synced", lambda s: s.good_sale(), qbo={"TotalAmt": 150.0}),
    C("good_receipt", "payments", "synced",
      lambda s: s.receipt(sale_id=s.good_sale(), contact_id=None), qbo={"TotalAmt": 150.0}),
    C("good_vendor", "vendors", "synced", lambda s: s.good_worker,
      qbo={"DisplayName": "Good Contracting Co"}),
    C("good_bill", "bills", "synced", lambda s: s.bill(), qbo={"TotalAmt": 300.0}),
    # --- names: control characters ------------------------------------------------------------
    C("name_bel", "customers", "held", lambda s: s.customer(given="Bel\x07la", family="Ring"),
      "customer.display_name.control_character"),
    C("name_esc", "customers", "held", _display("Esc\x1b[31mRed Ltd"),
      "customer.display_name.control_character"),
    C("name_del", "customers", "held", lambda s: s.customer(given="Del\x7f", family="Ete"),
      "customer.display_name.control_character"),
    C("name_c1_control", "customers", "held", _display("Next\x85Line Co"),
      "customer.display_name.control_character"),
    C("name_colon", "customers", "held", _display("Parent:Child Ltd"),
      "customer.display_name.forbidden_character"),
    C("name_tab", "customers", "held", _display("Tab\tCo"),
      "customer.display_name.forbidden_character"),
    C("phone_control", "customers", "held", lambda s: s.customer(phone="555\x070100"),
      "customer.phone.control_character"),
    C("address_control", "customers", "held", lambda s: s.customer(line1="1 Main\x1bSt"),
      "customer.address.line1.control_character"),
    # --- names: lengths -------------------------------------------------------------------------
    C("name_over_500", "customers", "held", _display("L" * 501),
      "customer.display_name.too_long"),
    C("given_name_over_100", "customers", "held",
      lambda s: s.customer(given="G" * 101, family="Long"), "customer.given_name.too_long"),
    C("name_emoji_over_500_utf16", "customers", "held", _display("🎉" * 251),
      "customer.display_name.too_long"),
    # --- names QBO accepts: synced as they are (surrounding blanks trimmed, as QBO does) -------
    C("name_surrounding_spaces", "customers", "synced", _display("  Spacey Trading  "),
      qbo={"DisplayName": "Spacey Trading"}),
    C("name_emoji", "customers", "synced", _display("Party 🎉 Café Ltd"),
      qbo={"DisplayName": "Party 🎉 Café Ltd"}),
    C("name_rtl_arabic", "customers", "synced", _display("شركة الأمل للتجارة"),
      qbo={"DisplayName": "شركة الأمل للتجارة"}),
    C("name_rtl_hebrew_mixed", "customers", "synced", _display("חברת אור Ltd"),
      qbo={"DisplayName": "חברת אור Ltd"}),
    C("name_quotes_backslash", "customers", "synced", _display(QUOTED),
      qbo={"DisplayName": QUOTED}),
    C("name_trailing_backslash", "customers", "synced", _display("Ends With Backslash \\"),
      qbo={"DisplayName": "Ends With Backslash \\"}),
    C("name_quotes_matched_by_query", "customers", "synced", _display(MATCHED),
      qbo={"DisplayName": MATCHED, "Notes": "pre-existing"}),
    # --- emails -------------------------------------------------------------------------------
    C("email_double_at", "customers", "held", lambda s: s.customer(email="bob@@example..com"),
      "customer.email.format"),
    C("email_space_inside", "customers", "held",
      lambda s: s.customer(email="bob smith@example.com"), "customer.email.format"),
    # --- duplicates QBO treats as one name ---------------------------------------------------
    C("duplicate_case_only", "customers", "held",
      lambda s: s.duplicate_customers("Case Dupe Ltd", "CASE DUPE LTD"),
      "customer.display_name.duplicate"),
    C("duplicate_space_only", "customers", "held",
      lambda s: s.duplicate_customers("Space Dupe Ltd", "Space  Dupe   Ltd"),
      "customer.display_name.duplicate"),
    C("duplicate_customer_vendor", "vendors", "held",
      lambda s: s.customer_and_vendor("Shared Name Co"),
      "vendor.display_name.duplicate"),
    # --- items --------------------------------------------------------------------------------
    C("item_name_bel", "items", "held", lambda s: s.product_named("Widget\x07"),
      "item.name.control_character"),
    C("item_name_over_100", "items", "held", lambda s: s.product_named("P" * 101),
      "item.name.too_long"),
    C("item_name_quotes_backslash", "items", "synced",
      lambda s: s.product_named("12\" Pipe \\ O'Ring"), qbo={"Name": "12\" Pipe \\ O'Ring"}),
    C("item_name_emoji", "items", "synced", lambda s: s.product_named("Cake 🎂"),
      qbo={"Name": "Cake 🎂"}),
    # --- sale dates Python cannot hold, and dates out of the accepted window ------------------
    C("sale_year_10000", "invoices", "held",
      lambda s: s.sale(s.good_contact, txn="10000-01-01"), "sale.txn_date.out_of_range"),
    C("sale_infinity", "invoices", "held", lambda s: s.sale(s.good_contact, txn="infinity"),
      "sale.txn_date.out_of_range"),
    C("sale_minus_infinity", "invoices", "held",
      lambda s: s.sale(s.good_contact, txn="-infinity"), "sale.txn_date.out_of_range"),
    C("sale_bc", "invoices", "held", lambda s: s.sale(s.good_contact, txn="0044-03-15 BC"),
      "sale.txn_date.out_of_range"),
    C("sale_due_infinity", "invoices", "held",
      lambda s: s.sale(s.good_contact, due="infinity"), "sale.due_date.out_of_range"),
    C("sale_year_1", "invoices", "held", lambda s: s.sale(s.good_contact, txn="0001-01-01"),
      "sale.txn_date.out_of_range"),
    C("sale_year_9999", "invoices", "held", lambda s: s.sale(s.good_contact, txn="9999-12-31"),
      "sale.txn_date.out_of_range"),
    C("sale_updated_at_infinity", "invoices", "synced",
      lambda s: s.sale(s.good_contact, updated_at="infinity"), qbo={"TotalAmt": 150.0}),
    # --- sale references ------------------------------------------------------------------------
    C("sale_no_contact", "invoices", "held", lambda s: s.sale(None), "sale.customer.required"),
    C("sale_of_held_customer", "invoices", "held",
      lambda s: s.sale(s.contact("Held\x07", "Customer")), "reference.customer.unresolved"),
    # --- sale amounts -------------------------------------------------------------------------
    C("sale_huge_amount", "invoices", "held",
      lambda s: s.sale(s.good_contact, lines=[("1", "20000000000", "20000000000.00")]),
      "sale.total.invalid"),
    C("sale_zero_total", "invoices", "synced",
      lambda s: s.sale(s.good_contact, lines=[("1", "0", "0.00")]), qbo={"TotalAmt": 0.0}),
    C("sale_negative_total_is_credit_memo", "invoices", "synced",
      lambda s: s.sale(s.good_contact, lines=[("-1", "150", "-150.00")]),
      qbo={"TotalAmt": 150.0}, qbo_entity="CreditMemo"),
    C("sale_fraction_of_cent", "invoices", "held",
      lambda s: s.sale(s.good_contact, lines=[("1", "10.005", "10.005")]),
      "sale.lines.amount_invalid"),
    C("sale_nan_total", "invoices", "held",
      lambda s: s.sale(s.good_contact, lines=[("1", "150", "NaN")], total="NaN"),
      "sale.total.invalid"),
    C("sale_infinite_line", "invoices", "held",
      lambda s: s.sale(s.good_contact, lines=[("1", "150", "Infinity")], total="150"),
      "sale.lines.amount_invalid"),
    C("sale_1000_lines", "invoices", "held",
      lambda s: s.sale(s.good_contact, lines=[("1", "1", "1.00")] * 1000),
      "sale.lines.too_many"),
    # --- sale text ------------------------------------------------------------------------------
    C("sale_memo_control", "invoices", "held",
      lambda s: s.sale(s.good_contact, memo="Call me\x07"), "sale.memo.control_character"),
    C("sale_memo_multiline", "invoices", "synced",
      lambda s: s.sale(s.good_contact, memo="Line one\nLine two\ttabbed"),
      qbo={"PrivateNote": "Line one\nLine two\ttabbed"}),
    C("sale_doc_number_over_21", "invoices", "held",
      lambda s: s.sale(s.good_contact, doc="D" * 22), "sale.doc_number.too_long"),
    C("sale_line_unicode_quotes", "invoices", "synced",
      lambda s: s.sale(s.good_contact, description="Naïve \"café\" \\ 🎉 עברית"),
      check=_lines_described("Naïve \"café\" \\ 🎉 עברית")),
    # --- receipts -------------------------------------------------------------------------------
    C("receipt_infinity", "payments", "held",
      lambda s: s.receipt(sale_id=s.good_sale(), contact_id=None, received_on="infinity"),
      "receipt.received_on.out_of_range"),
    C("receipt_year_10000", "payments", "held",
      lambda s: s.receipt(sale_id=s.good_sale(), contact_id=None, received_on="10000-02-01"),
      "receipt.received_on.out_of_range"),
    C("receipt_bc", "payments", "held",
      lambda s: s.receipt(sale_id=s.good_sale(), contact_id=None, received_on="0200-01-01 BC"),
      "receipt.received_on.out_of_range"),
    C("receipt_no_contact", "payments", "held",
      lambda s: s.receipt(sale_id=None, contact_id=None), "receipt.customer.required"),
    C("receipt_zero", "payments", "held",
      lambda s: s.receipt(sale_id=s.good_sale(), contact_id=None, amount="0"),
      "receipt.amount.not_positive"),
    C("receipt_negative", "payments", "held",
      lambda s: s.receipt(sale_id=s.good_sale(), contact_id=None, amount="-5.00"),
      "receipt.amount.not_positive"),
    C("receipt_huge", "payments", "held",
      lambda s: s.receipt(sale_id=s.good_sale(), contact_id=None, amount="99999999999.99"),
      "receipt.amount.invalid"),
    C("receipt_nan", "payments", "held",
      lambda s: s.receipt(sale_id=s.good_sale(), contact_id=None, amount="NaN"),
      "receipt.amount.invalid"),
    C("receipt_reference_control", "payments", "held",
      lambda s: s.receipt(sale_id=s.good_sale(), contact_id=None, reference="CHK\x1b1"),
      "receipt.reference.control_character"),
    C("receipt_of_deleted_sale_with_contact", "payments", "synced",
      lambda s: s.deleted_sale_receipt(with_contact=True), qbo={"TotalAmt": 150.0},
      check=_no_line_link),
    C("receipt_of_deleted_sale_no_contact", "payments", "held",
      lambda s: s.deleted_sale_receipt(with_contact=False), "receipt.customer.required"),
    # --- vendors and bills ----------------------------------------------------------------------
    C("vendor_name_esc", "vendors", "held",
      lambda s: s.worker(trading_name="Esc\x1bape Contracting"),
      "vendor.display_name.control_character"),
    C("vendor_name_over_500", "vendors", "held", lambda s: s.worker(trading_name="V" * 501),
      "vendor.display_name.too_long"),
    C("vendor_name_emoji_rtl", "vendors", "synced",
      lambda s: s.worker(trading_name="מוסך 🚗 Garage"), qbo={"DisplayName": "מוסך 🚗 Garage"}),
    C("vendor_email_malformed", "vendors", "held",
      lambda s: s.worker(trading_name="No At Sign Co", email="no-at-sign.example.com"),
      "vendor.email.format"),
    C("bill_infinity", "bills", "held", lambda s: s.bill(issued="infinity"),
      "bill.txn_date.out_of_range"),
    C("bill_bc", "bills", "held", lambda s: s.bill(issued="0100-01-01 BC"),
      "bill.txn_date.out_of_range"),
    C("bill_due_year_10000", "bills", "held", lambda s: s.bill(due="10000-06-01"),
      "bill.due_date.out_of_range"),
    C("bill_memo_control", "bills", "held", lambda s: s.bill(memo="Ref\x1b[0m"),
      "bill.memo.control_character"),
]


@dataclass
class Corpus:
    env: SyncEnv
    sandbox: SandboxHandle
    realm: RealmId
    ids: dict[str, str]
    errors: list[BaseException]
    matched_qbo_id: str
    collisions: set[tuple[str, str]]
    credit_notes: set[tuple[str, str]]

    @property
    def engine_cases(self) -> set[tuple[str, str]]:
        """Records whose outcome waits on the engine (see the xfail reasons)."""
        return self.collisions | self.credit_notes

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.env.warehouse.connect() as conn:
            return list(conn.execute(sa.text(sql), {"r": self.realm, **params}))

    def held(self, entity: str, source_id: str) -> dict[str, tuple[str, str | None]]:
        rows = self.rows(
            "SELECT rule, reason, fix FROM sync.quarantine WHERE realm_id = :r AND entity = :e"
            " AND source_id = :s AND resolved_at IS NULL",
            e=entity, s=source_id,
        )
        return {str(rule): (str(reason), fix) for rule, reason, fix in rows}

    def held_ledger_rules(self, entity: str, source_id: str) -> set[str]:
        rows = self.rows(
            "SELECT details FROM sync.ledger WHERE realm_id = :r AND entity = :e"
            " AND source_id = :s AND outcome = 'held'",
            e=entity, s=source_id,
        )
        rules: set[str] = set()
        for (details,) in rows:
            data = details if isinstance(details, dict) else json.loads(details or "{}")
            rules |= {str(v["rule"]) for v in data.get("violations", [])}
        return rules

    def qbo_id(self, entity: str, source_id: str) -> tuple[str, str] | None:
        rows = self.rows(
            "SELECT qbo_id, created_by FROM sync.id_map WHERE realm_id = :r AND entity = :e"
            " AND source_id = :s AND qbo_id IS NOT NULL",
            e=entity, s=source_id,
        )
        return (str(rows[0][0]), str(rows[0][1])) if rows else None

    def in_qbo(self, qbo_entity: str, qbo_id: str) -> dict[str, Any] | None:
        for e in self.sandbox.control.entities(self.realm, qbo_entity):
            if str(e["Id"]) == qbo_id:
                return e
        return None


def _widen_numerics(conn: sa.Connection) -> None:
    """Stand for a source app without numeric precision limits (NaN, Infinity, 10.005)."""
    for table, column in (
        ("sales", "subtotal"), ("sales", "total"), ("sale_lines", "amount"),
        ("sale_lines", "qty"), ("sale_lines", "unit_price"), ("receipts", "amount"),
    ):
        conn.execute(sa.text(f"ALTER TABLE app.{table} ALTER COLUMN {column} TYPE numeric"))


@pytest.fixture(scope="module")
def corpus(make_database: Callable[[str], sa.Engine]) -> Iterator[Corpus]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ENV_TOKEN_KEY, Fernet.generate_key().decode())
        warehouse = make_database("corpuswh")
        migrations.migrate_warehouse(warehouse)
        source = make_database("corpussrc")
        migrations.migrate_source_app(source)
        demo.seed(source, contacts=8, sales=10, workers=2, seed_value=11)
        with source.begin() as conn:
            _widen_numerics(conn)
            src = Source(conn)
            ids = {case.name: case.insert(src) for case in CASES}
            collisions = src.collisions
            credit_notes = {
                ("invoices", str(i))
                for i in conn.execute(sa.text("SELECT id FROM app.sales WHERE total < 0")).scalars()
            }
        with run_sandbox(throttle=False) as sb:
            app = QboApp(
                client_id=sb.client_id, client_secret=Secret(sb.client_secret),
                api_url=sb.base_url, oauth_url=sb.base_url, redirect_uri=sb.redirect_uri,
            )
            env = SyncEnv(warehouse, source, app, client_options=FAST_CLIENT)
            realm = RealmId(sb.realm_id)
            setup.prepare_sandbox_company(sb.control, realm)
            setup.connect_with_tokens(env, realm, sb.control.mint_tokens(realm), sb.base_url)
            setup.apply_demo_mappings(env, realm)
            matched = sb.control.bulk_create(
                realm, "Customer", [{"DisplayName": MATCHED, "Notes": "pre-existing"}]
            )
            errors: list[BaseException] = []
            for run in ("corpus-1", "corpus-2"):  # the second run retries every held record
                try:
                    pipeline.push_all(env, realm, run_id=run)
                except Exception as exc:  # noqa: BLE001 - the assertion is that none happens
                    errors.append(exc)
            yield Corpus(
                env, sb, realm, ids, errors, str(matched[0]["Id"]), collisions, credit_notes
            )


def test_R40_bad_input_corpus_never_crashes_a_run(corpus: Corpus) -> None:
    assert corpus.errors == []


def _failed(corpus: Corpus) -> list[tuple[str, str, str]]:
    rows = corpus.rows(
        "SELECT entity, source_id, error_code FROM sync.ledger"
        " WHERE realm_id = :r AND outcome = 'failed'"
    )
    return [(str(e), str(s), str(c)) for e, s, c in rows]


def test_R40_bad_input_corpus_nothing_fails_in_qbo(corpus: Corpus) -> None:
    """Every hostile record is caught before the write: QBO refuses nothing (name collisions
    and credit notes aside: their own test below)."""
    assert [f for f in _failed(corpus) if f[:2] not in corpus.engine_cases] == []


def test_R40_bad_input_corpus_collisions_and_credit_notes_not_refused(corpus: Corpus) -> None:
    assert [f for f in _failed(corpus) if f[:2] in corpus.engine_cases] == []


def test_R40_bad_input_corpus_nul_cannot_enter_the_source(
    make_database: Callable[[str], sa.Engine],
) -> None:
    """NUL never reaches the sync from PostgreSQL: a text column refuses it outright (the rule
    ``*.control_character`` still holds it for a source that can store it, unit-tested)."""
    engine = make_database("corpusnul")
    migrations.migrate_source_app(engine)
    with pytest.raises(sa.exc.DataError), engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO app.contacts (given_name) VALUES (:g)"), {"g": "Nul\x00l"}
        )


def _param(case: Case) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
    return pytest.param(case, id=case.name, marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CASES if c.expect == "held"])
def test_R40_bad_input_corpus_held_with_rule_and_fix(corpus: Corpus, case: Case) -> None:
    source_id = corpus.ids[case.name]
    held = corpus.held(case.entity, source_id)
    assert case.rule in held, (case.name, held)
    reason, fix = held[case.rule or ""]
    assert reason.strip(), reason
    assert fix is not None, reason
    assert fix.strip(), reason
    assert "#None" not in reason
    assert case.rule in corpus.held_ledger_rules(case.entity, source_id)
    assert corpus.qbo_id(case.entity, source_id) is None


@pytest.mark.parametrize("case", [_param(c) for c in CASES if c.expect == "synced"])
def test_R40_bad_input_corpus_synced_correctly(corpus: Corpus, case: Case) -> None:
    source_id = corpus.ids[case.name]
    assert corpus.held(case.entity, source_id) == {}
    linked = corpus.qbo_id(case.entity, source_id)
    assert linked is not None, f"{case.name}: not in sync.id_map"
    qbo_id, created_by = linked
    entity = corpus.in_qbo(case.qbo_entity or QBO_ENTITY[case.entity], qbo_id)
    assert entity is not None, f"{case.name}: QBO has no {case.qbo_entity} {qbo_id}"
    for key, value in case.qbo.items():
        assert entity.get(key) == value, (key, entity.get(key), value)
    if case.check is not None:
        case.check(entity)
    if case.name == "name_quotes_matched_by_query":
        assert (qbo_id, created_by) == (corpus.matched_qbo_id, "matched")
