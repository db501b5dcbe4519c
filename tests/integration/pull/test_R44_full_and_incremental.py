"""The extract reads only what changed (R44): a full read first, then one CDC call per cycle;
edits are picked up, repeats change nothing; lines land typed (R26)."""

from __future__ import annotations

import math
from decimal import Decimal

from extract_helpers import PullCompany

from qbo_pipelines.sync.extract import CDC_ENTITIES, CURSOR_NAME, ENTITIES, extract_qbo
from qbo_pipelines.sync.state import get_cursor
from qbo_pipelines.warehouse import raw_qbo


def _count(company: PullCompany, entity: str, live_only: bool = True) -> int:
    table = raw_qbo.table_for(entity)
    extra = " AND NOT deleted" if live_only else ""
    return int(company.scalar(f"SELECT count(*) FROM {table} WHERE realm_id = :r{extra}"))


def test_R44_first_extract_is_a_full_read_that_matches_the_sandbox(
    pull_company: PullCompany,
) -> None:
    company = pull_company
    made = company.seed_transactions()
    company.control.reset_requests()
    report = extract_qbo(company.client(), company.engine, company.realm_id, run_id="run-1")

    assert report.full
    expected = {e: company.control.count(company.realm_id, e) for e in ENTITIES}
    assert all(n > 0 for n in expected.values()), expected
    assert report.rows == expected
    assert {e: _count(company, e) for e in ENTITIES} == expected
    assert {e: len(ids) for e, ids in report.changed.items()} == expected
    assert report.deleted == {}
    # one query page per entity (each < 1000 rows), nothing else
    pages = sum(max(1, math.ceil(n / 1000)) for n in expected.values())
    assert company.endpoints() == ["query"] * pages
    assert report.calls == pages
    assert report.cursor is not None
    assert get_cursor(company.engine, company.realm_id, CURSOR_NAME) == report.cursor

    # line tables: one typed row per QBO line
    invoices = company.control.entities(company.realm_id, "Invoice")
    assert _count_lines(company, "invoice_lines") == sum(len(i["Line"]) for i in invoices)
    first = invoices[0]
    rows = _lines(company, "invoice_lines", first["Id"])
    assert [r["detail_type"] for r in rows] == [ln["DetailType"] for ln in first["Line"]]
    assert rows[0]["item_id"] == "2"
    assert rows[0]["amount"] == Decimal(str(first["Line"][0]["Amount"]))
    assert rows[1]["qty"] == 2
    assert rows[1]["unit_price"] == 25
    payment = made["Payment"][0]
    applied = _lines(company, "payment_lines", payment["Id"])
    assert [(r["linked_txn_type"], r["linked_txn_id"]) for r in applied] == [
        ("Invoice", payment["Line"][0]["LinkedTxn"][0]["TxnId"])
    ]
    je = _lines(company, "journal_entry_lines", made["JournalEntry"][0]["Id"])
    assert [(r["posting_type"], r["account_id"]) for r in je] == [("Debit", "11"), ("Credit", "1")]
    bill_pay = _lines(company, "bill_payment_lines", made["BillPayment"][0]["Id"])
    assert bill_pay[0]["linked_txn_type"] == "Bill"
    for table in raw_qbo.LINE_TABLES.values():
        assert _count_lines(company, table) > 0, table


def test_R44_second_extract_with_nothing_changed_is_one_cdc_call(
    pull_company: PullCompany,
) -> None:
    company = pull_company
    company.seed_transactions(3)
    client = company.client()
    first = extract_qbo(client, company.engine, company.realm_id)
    loaded = company.scalar("SELECT max(loaded_at) FROM raw_qbo.invoices WHERE realm_id = :r")
    company.control.reset_requests()

    again = extract_qbo(client, company.engine, company.realm_id)

    assert company.endpoints() == ["cdc"]
    assert again.calls == 1
    assert not again.full
    assert again.changed == {}
    assert again.deleted == {}
    assert set(again.rows) == set(CDC_ENTITIES)
    assert (
        company.scalar("SELECT max(loaded_at) FROM raw_qbo.invoices WHERE realm_id = :r") == loaded
    )
    assert again.cursor is not None
    assert first.cursor is not None
    assert again.cursor >= first.cursor


def test_R44_an_edit_in_qbo_is_picked_up_by_the_cdc_call(pull_company: PullCompany) -> None:
    company = pull_company
    made = company.seed_transactions(3)
    client = company.client()
    extract_qbo(client, company.engine, company.realm_id)
    invoice = made["Invoice"][0]
    company.control.advance_clock(5)
    company.control.user_update(
        company.realm_id,
        "Invoice",
        {
            "Id": invoice["Id"],
            "sparse": True,
            "PrivateNote": "changed in QBO",
            "Line": [
                {
                    "Amount": 300,
                    "DetailType": "SalesItemLineDetail",
                    "Description": "Redo",
                    "SalesItemLineDetail": {"ItemRef": {"value": "3"}, "Qty": 6, "UnitPrice": 50},
                }
            ],
        },
    )
    company.control.user_update(
        company.realm_id, "Customer", {"Id": "2", "sparse": True, "Notes": "new notes"}
    )
    company.control.reset_requests()

    report = extract_qbo(client, company.engine, company.realm_id)

    assert company.endpoints() == ["cdc"]
    # the invoice and the edited customer; QBO also moved the invoice's customer balance and
    # the A/R account's balance, and nothing else changed
    assert report.changed["Invoice"] == (invoice["Id"],)
    assert set(report.changed["Customer"]) == {"2", invoice["CustomerRef"]["value"]}
    assert set(report.changed) == {"Invoice", "Customer", "Account"}
    assert report.deleted == {}
    data = company.scalar(
        "SELECT data FROM raw_qbo.invoices WHERE realm_id = :r AND qbo_id = :i", i=invoice["Id"]
    )
    assert data["PrivateNote"] == "changed in QBO"
    lines = _lines(company, "invoice_lines", invoice["Id"])
    sales = [r for r in lines if r["detail_type"] == "SalesItemLineDetail"]
    assert [(r["item_id"], r["qty"], r["amount"]) for r in sales] == [("3", 6, 300)]
    assert (
        company.scalar(
            "SELECT data->>'Notes' FROM raw_qbo.customers WHERE realm_id = :r AND qbo_id = '2'"
        )
        == "new notes"
    )
    # and the cycle after that is quiet again
    company.control.reset_requests()
    quiet = extract_qbo(client, company.engine, company.realm_id)
    assert (company.endpoints(), quiet.changed) == (["cdc"], {})


def _count_lines(company: PullCompany, table: str) -> int:
    return int(company.scalar(f"SELECT count(*) FROM raw_qbo.{table} WHERE realm_id = :r"))


def _lines(company: PullCompany, table: str, qbo_id: str) -> list[dict[str, object]]:
    import sqlalchemy as sa

    with company.engine.connect() as conn:
        return [
            dict(r)
            for r in conn.execute(
                sa.text(
                    f"SELECT * FROM raw_qbo.{table} WHERE realm_id = :r AND qbo_id = :i "
                    "ORDER BY line_seq"
                ),
                {"r": company.realm_id, "i": qbo_id},
            ).mappings()
        ]
