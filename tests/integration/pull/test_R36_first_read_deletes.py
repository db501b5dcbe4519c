"""R36 on a company's first pull: a record the push created and QBO deleted before the first read
is flagged deleted (a full read cannot return it, and CDC before the first cursor never
reported it), and the source record is marked, not removed, in that same pull."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from pushbed import PushBed

from qbo_pipelines.sync import pipeline


def _rows(engine: sa.Engine, sql: str, **params: object) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(sql), params))


def test_R36_invoice_deleted_in_qbo_before_the_first_pull_is_flagged_by_that_pull(
    push_bed: PushBed,
) -> None:
    bed = push_bed
    pipeline.push_all(bed.env, bed.realm, run_id="push-1")
    [(sale, qbo_id)] = _rows(
        bed.env.warehouse,
        "SELECT source_id, qbo_id FROM sync.record_state WHERE realm_id = :r"
        " AND entity = 'invoices' AND qbo_entity = 'Invoice' AND status = 'synced'"
        " AND qbo_id NOT IN (SELECT qbo_id FROM sync.record_state WHERE realm_id = :r"
        "   AND entity = 'payments' AND qbo_id IS NOT NULL)"  # no payment ids clash: QBO's own
        " ORDER BY source_id::int LIMIT 1",
        r=bed.realm,
    )
    paid = [
        p["Id"]
        for p in bed.sandbox.control.entities(bed.realm, "Payment")
        for line in p.get("Line", [])
        for link in line.get("LinkedTxn", [])
        if link.get("TxnId") == qbo_id
    ]
    for pid in paid:  # QBO refuses to delete an invoice with payments applied
        bed.sandbox.control.user_delete(bed.realm, "Payment", pid)
    bed.sandbox.control.user_delete(bed.realm, "Invoice", qbo_id)

    report = pipeline.pull_all(bed.env, bed.realm, run_id="pull-1")  # the first: a full read

    assert report is not None
    assert _rows(
        bed.env.warehouse,
        "SELECT deleted FROM raw_qbo.invoices WHERE realm_id = :r AND qbo_id = :q",
        r=bed.realm,
        q=qbo_id,
    ) == [(True,)]
    assert _rows(
        bed.env.source, "SELECT qbo_deleted FROM app.sales WHERE id = :i", i=int(sale)
    ) == [(True,)]
    # Marked once: the next pulls find nothing to do for it (the delete has no SyncToken).
    pipeline.pull_all(bed.env, bed.realm, run_id="pull-2")
    pipeline.pull_all(bed.env, bed.realm, run_id="pull-3")
    assert _rows(
        bed.env.warehouse,
        "SELECT run_id FROM sync.ledger WHERE realm_id = :r AND entity = 'invoices'"
        " AND source_id = :s AND operation = 'delete'",
        r=bed.realm,
        s=str(sale),
    ) == [("pull-1",)]
    for pid in paid:
        assert _rows(
            bed.env.warehouse,
            "SELECT deleted FROM raw_qbo.payments WHERE realm_id = :r AND qbo_id = :q",
            r=bed.realm,
            q=pid,
        ) == [(True,)]
