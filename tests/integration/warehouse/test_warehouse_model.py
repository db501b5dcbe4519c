"""The warehouse model: idempotent DDL, mart views, raw_qbo and staging loaders (R26, R36, R37)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa

from qbo_pipelines.canonical import (
    CanonicalSale,
    CanonicalSaleLine,
    SourceId,
)
from qbo_pipelines.marts import run as marts_run
from qbo_pipelines.warehouse import loaders, migrations, raw_qbo

MART_VIEWS = ("customers", "invoices", "invoice_lines", "payments", "vendors", "bills",
              "customer_transactions", "sync_status", "open_problems")


@pytest.fixture(scope="module")
def marts_built(warehouse_engine: sa.Engine) -> sa.Engine:
    """The marts are dbt views (sql/marts): built once, they follow the tables they read."""
    outcome = marts_run.run("run", warehouse_engine.url)
    assert outcome.success, outcome.summary()
    return warehouse_engine


def _schema_fingerprint(engine: sa.Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            "SELECT table_schema, table_name, column_name, data_type "
            "FROM information_schema.columns "
            "WHERE table_schema IN ('raw_source', 'raw_qbo', 'staging', 'mapping', 'sync', 'marts')"
            " ORDER BY 1, 2, 3"))]


def test_applying_sql_to_a_fresh_warehouse_twice_is_a_no_op(
    make_database: Callable[[str], sa.Engine],
) -> None:
    engine = make_database("wh_fresh")
    first = migrations.migrate_warehouse(engine)
    assert first
    before = _schema_fingerprint(engine)
    assert migrations.migrate_warehouse(engine) == []
    assert _schema_fingerprint(engine) == before
    # the numbered files are idempotent on their own too: apply them again under a new scope
    migrations.apply(engine, migrations.settings.SQL_DIR / "warehouse", "reapply_check",
                     migrations.settings.SQL_DIR / "views")
    assert _schema_fingerprint(engine) == before


def test_every_mart_view_selects_cleanly_and_has_column_comments(
    marts_built: sa.Engine,
) -> None:
    with marts_built.connect() as conn:
        for view in MART_VIEWS:
            conn.execute(sa.text(f"SELECT * FROM marts.{view} LIMIT 5")).all()
        missing = conn.execute(sa.text(
            "SELECT c.relname || '.' || a.attname FROM pg_class c "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
            "WHERE c.relnamespace = 'marts'::regnamespace AND c.relkind = 'v' "
            "  AND col_description(c.oid, a.attnum) IS NULL"
        )).scalars().all()
    assert missing == []


def test_R36_raw_qbo_upsert_flatten_and_deletes(
    warehouse_engine: sa.Engine, marts_built: sa.Engine
) -> None:
    realm = "realm-raw-1"
    invoice = {
        "Id": "239", "SyncToken": "0", "DocNumber": "1070", "TxnDate": "2015-07-24",
        "DueDate": "2015-08-23", "CustomerRef": {"name": "Amy's Bird Sanctuary", "value": "1"},
        "TotalAmt": Decimal("150.00"), "Balance": 150.0, "EmailStatus": "NotSet",
        "TxnTaxDetail": {"TotalTax": 0},
        "Line": [
            {"Id": "1", "Amount": 150.0, "DetailType": "SalesItemLineDetail",
             "Description": "Rock Fountain",
             "SalesItemLineDetail": {"ItemRef": {"value": "5", "name": "Rock Fountain"},
                                     "Qty": 1, "UnitPrice": 150}},
            {"Amount": 150.0, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}},
        ],
        "MetaData": {"CreateTime": "2015-07-24T10:35:08-07:00",
                     "LastUpdatedTime": "2015-07-24T10:35:08-07:00"},
    }
    customer = {"Id": "1", "DisplayName": "Amy's Bird Sanctuary", "Active": True,
                "PrimaryEmailAddr": {"Address": "Birds@Intuit.com"}}
    assert raw_qbo.upsert_objects(warehouse_engine, realm, "Customer", [customer]) == 1
    # the reference reads (connect, items, accounts) load through the same rows as the pull:
    # a U+0000 QBO kept is dropped there too, never a failed load
    pasted = {"Id": "2", "DisplayName": "Pasted\x00 Name", "Notes": "a\x00b"}
    assert raw_qbo.upsert_objects(warehouse_engine, realm, "Customer", [pasted]) == 1
    with warehouse_engine.connect() as conn:
        name, notes = conn.execute(
            sa.text("SELECT name, data->>'Notes' FROM raw_qbo.customers"
                    " WHERE realm_id = :r AND qbo_id = '2'"),
            {"r": realm},
        ).one()
    assert (name, notes) == ("Pasted Name", "ab")
    with warehouse_engine.begin() as conn:  # the pull's merge: the row and its line table
        raw_qbo.merge(conn, realm, "Invoice", [invoice], run_id="r1")
    assert raw_qbo.upsert_objects(warehouse_engine, realm, "Invoice", [invoice], run_id="r2") == 1
    with warehouse_engine.connect() as conn:
        row = conn.execute(sa.text(
            "SELECT * FROM marts.invoices WHERE realm_id = :r"), {"r": realm}).mappings().one()
        lines = conn.execute(sa.text(
            "SELECT * FROM marts.invoice_lines WHERE realm_id = :r"), {"r": realm}).mappings().all()
        txns = conn.execute(sa.text(
            "SELECT * FROM marts.customer_transactions WHERE realm_id = :r"),
            {"r": realm}).mappings().all()
    assert row["doc_number"] == "1070"
    assert row["customer_name"] == "Amy's Bird Sanctuary"
    assert row["total_amt"] == Decimal("150.00")
    assert row["qbo_url"] == "https://app.qbo.intuit.com/app/invoice?txnId=239"
    assert [ln["item_name"] for ln in lines] == ["Rock Fountain"]
    assert [(t["txn_type"], t["customer_name"]) for t in txns] == [
        ("Invoice", "Amy's Bird Sanctuary")]

    stubs = [{"Id": i, "status": "Deleted"} for i in ("239", "999", "5")]  # CDC's delete stubs
    assert raw_qbo.upsert_objects(warehouse_engine, realm, "Invoice", stubs) == 3
    with warehouse_engine.connect() as conn:
        rows = {
            r["qbo_id"]: r
            for r in conn.execute(
                sa.text("SELECT qbo_id, doc_number, deleted, deleted_at FROM raw_qbo.invoices"
                        " WHERE realm_id = :r"),
                {"r": realm},
            ).mappings()
        }
    assert all(r["deleted"] and r["deleted_at"] is not None for r in rows.values())
    assert set(rows) == {"239", "999", "5"}
    assert rows["239"]["doc_number"] == "1070"  # the last known object is kept


def test_staging_and_raw_source_loaders_merge_by_id(warehouse_engine: sa.Engine) -> None:
    sale = CanonicalSale(
        source_id=SourceId("s-load-1"), doc_number="S-1", customer_source_id=SourceId("c1"),
        txn_date=date(2024, 1, 2), total=Decimal("10.00"),
        lines=(CanonicalSaleLine(line_no=1, kind="item", amount=Decimal("10.00")),),
        updated_at=datetime(2024, 1, 2, tzinfo=UTC),
    )
    with warehouse_engine.begin() as conn:
        assert loaders.load_staging(conn, "invoices", [sale, sale], run_id="run-1",
                                    realm_id="r-stage") == 1
        rows = loaders.raw_source_rows("invoices", [sale], realm_id="r-stage")
        assert loaders.write_raw_source(conn, "invoices", rows) == 1
        assert loaders.mark_source_deleted(conn, "invoices", ["s-load-1"],
                                           realm_id="r-stage") == 1
        data, digest = conn.execute(sa.text(
            "SELECT data, content_hash FROM staging.invoices WHERE source_id = 's-load-1'"
        )).one()
    assert digest == sale.content_hash()
    assert data["lines"][0]["amount"] == "10"
    assert data["total"] == "10"


def test_the_column_schemas_dagster_shows_are_the_tables_columns(
    warehouse_engine: sa.Engine,
) -> None:
    """raw/source/<entity>, staged/qbo/<entity> and raw/qbo/<entity> describe their tables in
    the Dagster UI (``dagster/column_schema``): exactly the columns each table has."""
    from qbo_pipelines.defs import pull as pull_defs
    from qbo_pipelines.defs import push as push_defs

    def actual(schema: str, table: str) -> dict[str, str]:
        with warehouse_engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT column_name, data_type FROM information_schema.columns"
                    " WHERE table_schema = :s AND table_name = :t"
                ),
                {"s": schema, "t": table},
            ).tuples()
            return {str(name): str(kind) for name, kind in rows}

    def shown(table_schema: object) -> dict[str, str]:
        columns = table_schema.columns
        return {c.name: c.type for c in columns}

    def same_types(columns: dict[str, str], numeric: str = "numeric") -> dict[str, str]:
        aliases = {"timestamp with time zone": "timestamptz", "numeric": numeric}
        return {name: aliases.get(kind, kind) for name, kind in columns.items()}

    for entity in ("customers", "items", "invoices", "payments", "vendors", "bills"):
        assert same_types(actual("raw_source", entity)) == shown(push_defs.RAW_SOURCE_SCHEMA)
        assert same_types(actual("staging", entity)) == shown(push_defs.staging_schema(entity))
    for table in pull_defs.RAW_TABLES.values():
        raw_qbo = same_types(actual("raw_qbo", table), numeric="numeric(18,5)")
        assert raw_qbo == shown(pull_defs.RAW_QBO_SCHEMA), table


@pytest.mark.parametrize("schema", ["raw_source", "staging"])
def test_a_runs_keyset_page_is_read_in_index_order_never_sorted(
    warehouse_engine: sa.Engine, schema: str
) -> None:
    """The stage and the push read one run's rows in keyset pages (realm_id, run_id,
    source_id): each page is one range of an index in that order, not every row of the run
    found and sorted again (as when only (realm_id, run_id) was indexed)."""
    with warehouse_engine.connect() as conn:
        conn.exec_driver_sql("SET enable_seqscan = off")
        plan = "\n".join(
            str(row[0])
            for row in conn.execute(
                sa.text(
                    f"EXPLAIN SELECT source_id FROM {schema}.invoices"  # noqa: S608
                    " WHERE realm_id = :r AND run_id = :run AND source_id > :after"
                    " ORDER BY source_id LIMIT 2000"
                ),
                {"r": "1", "run": "run", "after": ""},
            )
        )
    assert "invoices_run_page_idx" in plan, plan
    assert "Sort" not in plan, plan
