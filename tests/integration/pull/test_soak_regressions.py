"""Defects the push + pull soak (``bench/soak.py --mode both``) found, each driven through the
product path: ``pipeline.push_all`` / ``pipeline.pull_all`` over the sandbox (real HTTP) and
real Postgres, checking what lands on both sides."""

from decimal import Decimal
from typing import Any

import pytest
from pushbed import PushBed

from qbo_pipelines.sync import pipeline


def _cycle(bed: PushBed, run: str) -> None:
    pipeline.push_all(bed.env, bed.realm, run_id=f"push-{run}")
    pipeline.pull_all(bed.env, bed.realm, run_id=f"pull-{run}")


@pytest.fixture
def synced(push_bed: PushBed) -> PushBed:
    _cycle(push_bed, "1")
    return push_bed


def _source_balances(bed: PushBed) -> dict[str, Decimal | None]:
    rows = bed.sql(
        bed.env.warehouse,
        "SELECT source_id, qbo_id FROM sync.record_state WHERE realm_id = :r"
        " AND entity = 'invoices' AND qbo_entity = 'Invoice' AND created_by = 'sync'",
        r=bed.realm,
    )
    qbo_of = {str(s): str(q) for s, q in rows}
    sales = bed.sql(
        bed.env.source,
        "SELECT id, balance FROM app.sales WHERE id = ANY(CAST(:ids AS bigint[]))",
        ids=[int(s) for s in qbo_of],
    )
    return {qbo_of[str(i)]: b for i, b in sales}


def test_R16_R20_sale_balance_follows_qbo_after_the_push_pays_its_own_invoice(
    synced: PushBed,
) -> None:
    """The push records its receipts as QBO payments and adopts the invoices' new SyncToken
    (their managed fields unchanged); the pull must still bring QBO's Balance into the sale
    (before: the sale kept balance NULL, or the balance before the payment, for good)."""
    qbo = {i["Id"]: i for i in synced.sandbox.control.entities(synced.realm, "Invoice")}
    balances = _source_balances(synced)
    assert balances, "the demo company pushes invoices"
    paid = [
        q for q in balances if Decimal(str(qbo[q]["Balance"])) != Decimal(str(qbo[q]["TotalAmt"]))
    ]
    assert paid, "the demo company pays some invoices"
    wrong = {
        q: (b, qbo[q]["Balance"])
        for q, b in balances.items()
        if b is None or Decimal(str(b)) != Decimal(str(qbo[q]["Balance"]))
    }
    assert wrong == {}
    # and the fixed point holds: nothing more to write on either side
    writes = synced.write_calls()
    log: Any = synced.sql(synced.env.source, "SELECT count(*) FROM app.change_log")[0][0]
    _cycle(synced, "2")
    assert synced.write_calls() == writes
    assert synced.sql(synced.env.source, "SELECT count(*) FROM app.change_log")[0][0] == log


def test_R20_R42_payment_in_qbo_for_a_sale_deleted_in_the_source_never_stops_the_pull(
    synced: PushBed,
) -> None:
    """The bookkeeper records a payment against an invoice whose sale was just deleted in the
    source (the deletion not yet pushed): the receipt lands without a sale and the sale is not
    revived (before: a foreign-key violation stopped every pull of the company, for good)."""
    rows = synced.sql(
        synced.env.warehouse,
        "SELECT source_id, qbo_id FROM sync.record_state WHERE realm_id = :r"
        " AND entity = 'invoices' AND qbo_entity = 'Invoice' AND created_by = 'sync'"
        " ORDER BY source_id::int",
        r=synced.realm,
    )
    qbo = {i["Id"]: i for i in synced.sandbox.control.entities(synced.realm, "Invoice")}
    sale, invoice = next(
        (int(s), q) for s, q in rows if q in qbo and Decimal(str(qbo[q]["Balance"])) > 0
    )
    made = synced.sandbox.control.bulk_create(
        synced.realm,
        "Payment",
        [
            {
                "CustomerRef": qbo[invoice]["CustomerRef"],
                "TotalAmt": 1,
                "Line": [{"Amount": 1, "LinkedTxn": [{"TxnId": invoice, "TxnType": "Invoice"}]}],
            }
        ],
    )[0]
    synced.sql(synced.env.source, "DELETE FROM app.receipts WHERE sale_id = :i", i=sale)
    synced.sql(synced.env.source, "DELETE FROM app.sales WHERE id = :i", i=sale)
    out = pipeline.pull_all(synced.env, synced.realm, run_id="pull-race")
    assert out["payments"].counts["created"] >= 1
    receipt = synced.sql(
        synced.env.source,
        "SELECT sale_id, amount FROM app.receipts WHERE qbo_id = :q",
        q=made["Id"],
    )
    assert [(r.sale_id, r.amount) for r in receipt] == [(None, Decimal("1.00"))]
    assert synced.sql(synced.env.source, "SELECT 1 FROM app.sales WHERE id = :i", i=sale) == []
    _cycle(synced, "after")  # the next cycles go on
    assert synced.sql(synced.env.source, "SELECT 1 FROM app.sales WHERE id = :i", i=sale) == []
