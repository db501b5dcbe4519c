"""The demo generator: sales with lines, the mess real data has, determinism; the simulator."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
import sqlalchemy as sa

from qbo_pipelines.source_app import demo
from qbo_pipelines.source_app.connector import SourceAppConnector, summarize
from qbo_pipelines.warehouse import migrations


@pytest.fixture(scope="module")
def seeded(make_database: Callable[[str], sa.Engine]) -> sa.Engine:
    engine = make_database("demo")
    migrations.migrate_source_app(engine)
    demo.seed(engine, contacts=300, sales=600, workers=10, seed_value=3)
    return engine


def _scalar(engine: sa.Engine, sql: str) -> object:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql)).scalar()


def test_generator_makes_sales_with_lines_and_consistent_totals(seeded: sa.Engine) -> None:
    assert _scalar(seeded, "SELECT count(*) FROM app.sales") == 600
    assert _scalar(seeded, "SELECT count(*) FROM app.sales s WHERE NOT EXISTS "
                           "(SELECT 1 FROM app.sale_lines l WHERE l.sale_id = s.id)") == 0
    connector = SourceAppConnector(seeded)
    sales = [s for chunk in connector.iter_entity("invoices", chunk=128) for s in chunk]
    assert len(sales) == 600
    for sale in sales:
        items = sum((ln.amount for ln in sale.lines if ln.kind == "item"), Decimal(0))
        disc = sum((ln.amount for ln in sale.lines if ln.kind == "discount"), Decimal(0))
        tax = sum((ln.amount for ln in sale.lines if ln.kind == "tax"), Decimal(0))
        assert (items, disc, tax) == (sale.subtotal, sale.discount_total, sale.tax_total)
        assert sale.total == items + disc + tax


def test_generator_has_the_mess_of_real_data(seeded: sa.Engine) -> None:
    assert _scalar(seeded, "SELECT count(*) FROM app.contacts WHERE family_name LIKE '%''%'")
    assert _scalar(seeded, "SELECT count(*) FROM app.contacts WHERE given_name ~ '[^ -~]'")
    assert _scalar(seeded, "SELECT count(*) FROM app.contacts WHERE email IS NULL")
    assert _scalar(seeded, "SELECT count(*) FROM app.contacts WHERE email NOT LIKE '%_@_%._%'")
    assert _scalar(seeded, "SELECT count(*) FROM (SELECT lower(regexp_replace(trim(name), "
                           "'\\s+', ' ', 'g')) FROM app.organisations GROUP BY 1 "
                           "HAVING count(DISTINCT name) > 1) d")
    assert _scalar(seeded, "SELECT count(*) FROM app.sale_lines WHERE kind = 'item' AND amount = 0")
    assert _scalar(seeded, "SELECT count(*) FROM app.sale_lines WHERE amount < 0 AND kind = 'item'")
    assert _scalar(seeded, "SELECT count(*) FROM app.sale_lines WHERE kind = 'discount'")
    assert _scalar(seeded, "SELECT count(DISTINCT tax_rate_id) FROM app.sale_lines") >= 3  # type: ignore[operator]
    assert _scalar(seeded, "SELECT count(*) FROM app.sale_lines l JOIN app.tax_rates t "
                           f"ON t.id = l.tax_rate_id WHERE t.name = '{demo.UNMAPPED_TAX_RATE}'")
    assert _scalar(seeded, "SELECT count(*) FROM app.contacts c WHERE NOT EXISTS "
                           "(SELECT 1 FROM app.sales s WHERE s.contact_id = c.id)")
    assert _scalar(seeded, "SELECT count(DISTINCT concept) FROM app.worker_invoice_lines") >= 3  # type: ignore[operator]
    customers = [c for chunk in SourceAppConnector(seeded).iter_entity("customers") for c in chunk]
    assert any(not c.has_sale for c in customers)
    assert all(c.display_name for c in customers)


def test_generator_is_deterministic(make_database: Callable[[str], sa.Engine]) -> None:
    digests = []
    for _ in range(2):
        engine = make_database("demo_det")
        migrations.migrate_source_app(engine)
        demo.seed(engine, contacts=50, sales=80, seed_value=42)
        digests.append(_scalar(engine, "SELECT md5(string_agg(s::text, '|' ORDER BY s.id)) "
                                       "FROM (SELECT id, contact_id, total, txn_date "
                                       "FROM app.sales) s"))
    assert digests[0] == digests[1]


def test_simulator_creates_edits_and_deletes(seeded: sa.Engine) -> None:
    connector = SourceAppConnector(seeded)
    start = connector.max_seq()
    report = demo.simulate(seeded, rate=1000, duration=0.06, seed_value=5, sleep=lambda _: None)
    assert sum(report.actions.values()) >= 30
    changes = summarize(connector.changes_since(start))
    assert changes["invoices"].changed
    assert changes["customers"].changed
    assert changes["invoices"].deleted
