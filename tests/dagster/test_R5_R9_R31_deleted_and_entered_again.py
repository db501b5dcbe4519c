"""A record deleted in the source and entered again, through the push job (Dagster) over the
sandbox: the run carries out the delete before it writes the new record, so what the delete
frees (an invoice's open balance, a document number, a name) is free for it, and one run
brings both sides in step with no failure (R9, R5, R31)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import dagster as dg
import sqlalchemy as sa
from pushbed import PushBed
from test_R6_R10_edits_after_create import _push

from qbo_pipelines.defs.push import companies


def _state(bed: PushBed, entity: str, source_id: object) -> dict[str, Any]:
    rows = bed.sql(
        bed.env.warehouse,
        "SELECT * FROM sync.record_state WHERE realm_id = :r AND entity = :e AND source_id = :s",
        r=bed.realm,
        e=entity,
        s=str(source_id),
    )
    return dict(rows[0]._mapping) if rows else {}


def _failures(bed: PushBed) -> list[Any]:
    return bed.sql(
        bed.env.warehouse,
        "SELECT entity, source_id, operation, error_code, error_message FROM sync.ledger"
        " WHERE realm_id = :r AND outcome = 'failed'",
        r=bed.realm,
    )


def _live(bed: PushBed, entity: str) -> dict[str, dict[str, Any]]:
    return {
        o["Id"]: o
        for o in bed.sandbox.control.entities(bed.realm, entity)
        if o.get("status") != "Deleted"
    }


_SALE_COLUMNS = (
    "doc_number, contact_id, txn_date, due_date, currency, memo, detail_level,"
    " grouping_label, send_requested, subtotal, discount_total, tax_total, total"
)
_LINE_COLUMNS = (
    "line_no, kind, description, product_id, qty, unit_price, amount, tax_rate_id,"
    " discount_percent, group_name"
)


def _entered_again(conn: sa.Connection, old: object) -> int:
    """Sale ``old`` deleted and entered again as it was (its number and lines), on ``conn``'s
    transaction; the new sale's id."""
    new = conn.execute(
        sa.text(
            f"INSERT INTO app.sales ({_SALE_COLUMNS}) SELECT {_SALE_COLUMNS}"  # noqa: S608
            " FROM app.sales WHERE id = :o RETURNING id"
        ),
        {"o": old},
    ).scalar_one()
    conn.execute(
        sa.text(
            f"INSERT INTO app.sale_lines (sale_id, {_LINE_COLUMNS})"  # noqa: S608
            f" SELECT :n, {_LINE_COLUMNS} FROM app.sale_lines WHERE sale_id = :o"
        ),
        {"n": new, "o": old},
    )
    conn.execute(sa.text("DELETE FROM app.sales WHERE id = :o"), {"o": old})
    return int(new)


def _settled(bed: PushBed, instance: dg.DagsterInstance) -> None:
    """A run more changes nothing and makes no write call."""
    bed.sandbox.control.reset_requests()
    again = _push(bed, instance)
    assert all(c.get("created", 0) == c.get("updated", 0) == 0 for c in again.values()), again
    assert bed.write_calls() == 0


def test_R31_a_receipt_deleted_and_entered_again_syncs_in_one_run(
    push_bed: PushBed, dagster_instance: dg.DagsterInstance
) -> None:
    bed, src = push_bed, push_bed.env.source
    dagster_instance.add_dynamic_partitions(companies.name, [bed.realm])
    _push(bed, dagster_instance)
    # a receipt paying its sale in full: its payment holds the invoice's whole balance
    [(old, sale)] = bed.sql(
        src,
        "SELECT r.id, r.sale_id FROM app.receipts r JOIN app.sales s ON s.id = r.sale_id"
        " WHERE r.amount = s.total AND NOT EXISTS (SELECT 1 FROM app.receipts o"
        " WHERE o.sale_id = r.sale_id AND o.id <> r.id) ORDER BY r.id LIMIT 1",
    )
    old_payment = _state(bed, "payments", old)["qbo_id"]
    [(new,)] = bed.sql(
        src,
        "INSERT INTO app.receipts (sale_id, contact_id, amount, received_on, payment_method_id,"
        " reference) SELECT sale_id, contact_id, amount, received_on, payment_method_id,"
        " reference FROM app.receipts WHERE id = :o RETURNING id",
        o=old,
    )
    bed.sql(src, "DELETE FROM app.receipts WHERE id = :o", o=old)

    counts = _push(bed, dagster_instance)["pushed/qbo/payments"]
    assert (counts.get("deleted"), counts.get("created"), counts.get("failed")) == (1, 1, 0), counts
    assert _failures(bed) == []
    payments = _live(bed, "Payment")
    assert old_payment not in payments
    new_payment = payments[_state(bed, "payments", new)["qbo_id"]]
    invoice = _state(bed, "invoices", sale)["qbo_id"]
    assert [t["TxnId"] for line in new_payment["Line"] for t in line["LinkedTxn"]] == [invoice]
    _settled(bed, dagster_instance)


def test_R31_a_sale_deleted_and_entered_again_under_its_number_syncs_in_one_run(
    push_bed: PushBed, dagster_instance: dg.DagsterInstance
) -> None:
    bed, src = push_bed, push_bed.env.source
    dagster_instance.add_dynamic_partitions(companies.name, [bed.realm])
    _push(bed, dagster_instance)
    [(old, number)] = bed.sql(
        src,
        "SELECT s.id, s.doc_number FROM app.sales s WHERE s.total > 0 AND s.doc_number IS NOT"
        " NULL AND NOT EXISTS (SELECT 1 FROM app.receipts r WHERE r.sale_id = s.id)"
        " ORDER BY s.id LIMIT 1",
    )
    old_invoice = _state(bed, "invoices", old)["qbo_id"]
    assert old_invoice in _live(bed, "Invoice")
    with src.begin() as conn:
        new = _entered_again(conn, old)

    counts = _push(bed, dagster_instance)["pushed/qbo/invoices"]
    assert (counts.get("deleted"), counts.get("created"), counts.get("failed")) == (1, 1, 0), counts
    assert _failures(bed) == []
    invoices = _live(bed, "Invoice")
    assert old_invoice not in invoices
    assert invoices[_state(bed, "invoices", new)["qbo_id"]]["DocNumber"] == number
    _settled(bed, dagster_instance)


def test_R5_R9_a_contact_deleted_and_entered_again_takes_over_its_qbo_customer(
    push_bed: PushBed, dagster_instance: dg.DagsterInstance
) -> None:
    """R9 keeps the QBO customer of a deleted contact. A contact entered again under the same
    name matches it (R5): the link moves to the new contact, never a hold naming a record that
    no longer exists, never a second customer."""
    bed, src = push_bed, push_bed.env.source
    dagster_instance.add_dynamic_partitions(companies.name, [bed.realm])
    _push(bed, dagster_instance)
    [(old, org)] = bed.sql(
        src,
        "SELECT c.id, c.organisation_id FROM app.contacts c WHERE c.organisation_id IS NOT NULL"
        " AND EXISTS (SELECT 1 FROM app.sales s WHERE s.contact_id = c.id)"
        " AND (SELECT count(*) FROM app.contacts o WHERE o.organisation_id = c.organisation_id)"
        " = 1 ORDER BY c.id LIMIT 1",
    )
    customer = _state(bed, "customers", old)["qbo_id"]
    customers_before = len(_live(bed, "Customer"))
    # the contact is replaced by an equal one (a re-import, a merge undone): its sales and
    # receipts move to the new row and the old one is deleted, in one source transaction
    with src.begin() as conn:
        new = conn.execute(
            sa.text(
                "INSERT INTO app.contacts (organisation_id, given_name, family_name, email,"
                " phone, address_line1, address_line2, city, region, postal_code, country)"
                " SELECT organisation_id, given_name, family_name, email, phone, address_line1,"
                " address_line2, city, region, postal_code, country FROM app.contacts"
                " WHERE id = :o RETURNING id"
            ),
            {"o": old},
        ).scalar_one()
        for table in ("sales", "receipts"):
            conn.execute(
                sa.text(f"UPDATE app.{table} SET contact_id = :n WHERE contact_id = :o"),  # noqa: S608
                {"n": new, "o": old},
            )
        conn.execute(sa.text("DELETE FROM app.contacts WHERE id = :o"), {"o": old})
    assert org is not None

    counts = _push(bed, dagster_instance)["pushed/qbo/customers"]
    assert counts["failed"] == 0, counts
    assert _failures(bed) == []
    moved = _state(bed, "customers", new)
    assert (moved["qbo_id"], moved["status"]) == (customer, "synced")
    assert moved["created_by"] == "matched"
    retired = _state(bed, "customers", old)
    assert (retired["qbo_id"], retired["status"], retired["name_key"]) == (None, "deleted", None)
    assert len(_live(bed, "Customer")) == customers_before  # no second customer
    [(message,)] = bed.sql(
        bed.env.warehouse,
        "SELECT error_message FROM sync.ledger WHERE realm_id = :r AND entity = 'customers'"
        " AND source_id = :s AND operation = 'match'",
        r=bed.realm,
        s=str(new),
    )
    assert f"#{old}" in message
    _settled(bed, dagster_instance)


def test_R31_a_sale_deleted_while_qbo_holds_a_payment_on_it_gets_a_fix_that_can_be_followed(
    push_bed: PushBed, dagster_instance: dg.DagsterInstance
) -> None:
    """A bookkeeper recorded a payment in QBO on an invoice; the sale is then deleted in the
    source. QBO refuses the delete (and the void): the fix says what to do in QBO, not to
    correct a sale that no longer exists."""
    bed, src = push_bed, push_bed.env.source
    dagster_instance.add_dynamic_partitions(companies.name, [bed.realm])
    _push(bed, dagster_instance)
    [(sale, total)] = bed.sql(
        src,
        "SELECT s.id, s.total FROM app.sales s WHERE s.total > 1 AND NOT EXISTS"
        " (SELECT 1 FROM app.receipts r WHERE r.sale_id = s.id) ORDER BY s.id LIMIT 1",
    )
    invoice = _live(bed, "Invoice")[_state(bed, "invoices", sale)["qbo_id"]]
    bed.sandbox.control.bulk_create(
        bed.realm,
        "Payment",
        [
            {
                "CustomerRef": invoice["CustomerRef"],
                "TotalAmt": 1.0,
                "Line": [
                    {"Amount": 1.0, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}
                ],
            }
        ],
    )
    bed.sql(src, "DELETE FROM app.sales WHERE id = :s", s=sale)
    assert total > 1

    _push(bed, dagster_instance)
    st = _state(bed, "invoices", sale)
    assert (st["status"], st["error_code"]) == ("failed", "6000")
    assert "in QBO" in st["fix"]
    assert "unlink or delete those in QBO" in st["fix"]
    assert invoice["Id"] in _live(bed, "Invoice")  # nothing removed behind the payment

    # Retried (the sensor starts the run once due) against the version QBO holds, with a
    # growing backoff: one call, then a wait (found by an attack: each run re-read a stale
    # version and reset the attempt, so the retry was due at once and the sensor looped).
    bed.sandbox.control.reset_requests()
    _push(bed, dagster_instance)
    assert bed.write_calls() == 1
    again = _state(bed, "invoices", sale)
    assert (again["status"], again["attempt"]) == ("failed", st["attempt"] + 1)
    assert again["retry_at"] > st["retry_at"] + timedelta(minutes=4)
    assert again["sync_token"] == str(_live(bed, "Invoice")[invoice["Id"]]["SyncToken"])


def test_R31_a_push_whose_writes_get_no_answer_fails_and_the_next_replays_them(
    push_bed: PushBed, dagster_instance: dg.DagsterInstance
) -> None:
    """QBO unreachable for a whole push: every write's call ends without an answer. The run
    fails, saying how many writes wait, why and what to do (before, it ended SUCCESS with the
    records silently pending and `status` saying nothing); `status` lists the writes awaiting
    QBO; once QBO answers again, the next run replays them, each written once."""
    from test_push_assets import _resources

    from qbo_pipelines.defs.push import PUSH_ASSETS
    from qbo_pipelines.status import company_status, render

    bed, src = push_bed, push_bed.env.source
    dagster_instance.add_dynamic_partitions(companies.name, [bed.realm])
    _push(bed, dagster_instance)
    edited = [
        r[0]
        for r in bed.sql(
            src,
            "UPDATE app.contacts SET phone = '555-0199' WHERE id IN (SELECT DISTINCT contact_id"
            " FROM app.sales ORDER BY contact_id LIMIT 3) RETURNING id",
        )
    ]
    before = len(_live(bed, "Customer"))
    bed.sandbox.control.inject_fault(kind="server_error", realm_id=bed.realm, method="POST",
                                     count=None, status=503)
    try:
        failed = dg.materialize(
            PUSH_ASSETS, partition_key=bed.realm, instance=dagster_instance,
            resources=_resources(bed), raise_on_error=False,
        )
    finally:
        bed.sandbox.control.clear_faults()
    assert not failed.success
    [failure] = [e for e in failed.all_events if e.event_type_value == "STEP_FAILURE"]
    text = str(failure.event_specific_data.error.message)  # type: ignore[union-attr]
    assert "customers write(s) got no answer from QBO" in text, text
    assert "replays the same call" in text
    assert "sync push" in text
    waiting = bed.sql(
        bed.env.warehouse,
        "SELECT source_id FROM sync.record_state WHERE realm_id = :r AND entity = 'customers'"
        " AND intent IS NOT NULL",
        r=bed.realm,
    )
    assert sorted(int(r[0]) for r in waiting) == sorted(edited)
    [report] = company_status(bed.env.warehouse, src, bed.realm)
    assert report.unanswered == {"customers": len(edited)}
    assert f"awaiting QBO:    {len(edited)} (customers {len(edited)})" in render([report])

    counts = _push(bed, dagster_instance)["pushed/qbo/customers"]
    assert counts["replayed"] == len(edited), counts
    assert len(_live(bed, "Customer")) == before
    for sid in edited:
        state = _state(bed, "customers", sid)
        assert (state["status"], state["intent"]) == ("synced", None), state
    [report] = company_status(bed.env.warehouse, src, bed.realm)
    assert report.unanswered == {}
    _settled(bed, dagster_instance)


def _quarantined(bed: PushBed, entity: str, source_id: object) -> list[str]:
    """The reasons a record is held back for now (``sync.quarantine``, unresolved)."""
    rows = bed.sql(
        bed.env.warehouse,
        "SELECT reason FROM sync.quarantine WHERE realm_id = :r AND entity = :e"
        " AND source_id = :s AND resolved_at IS NULL",
        r=bed.realm,
        e=entity,
        s=str(source_id),
    )
    return [str(r[0]) for r in rows]


def _due_now(bed: PushBed, entity: str) -> None:
    """The failed records' backoff elapsed (as hours later)."""
    bed.sql(
        bed.env.warehouse,
        "UPDATE sync.record_state SET retry_at = now() WHERE realm_id = :r AND entity = :e"
        " AND status = 'failed'",
        r=bed.realm,
        e=entity,
    )


def test_R31_a_paid_sale_entered_again_with_its_receipt_moved_gets_in_step_by_itself(
    push_bed: PushBed, dagster_instance: dg.DagsterInstance
) -> None:
    """A paid sale deleted and entered again under its number, its receipt moved to the new
    sale (found by an attack). QBO refuses to delete the old invoice while the sync's payment
    is applied to it, so the new invoice is refused its number (6140), so the receipt waits
    for it: before, a cycle no run broke (the receipt held, its payment applied to the old
    invoice for good). Now the held receipt's payment is unapplied meanwhile (R20: it no
    longer pays that invoice), so the next run removes the old invoice, creates the new one
    under the number and applies the payment to it: both sides in step, nothing by hand."""
    bed, src = push_bed, push_bed.env.source
    dagster_instance.add_dynamic_partitions(companies.name, [bed.realm])
    _push(bed, dagster_instance)
    [(old, number, receipt)] = bed.sql(
        src,
        "SELECT s.id, s.doc_number, r.id FROM app.sales s JOIN app.receipts r"
        " ON r.sale_id = s.id WHERE s.total > 0 AND s.doc_number IS NOT NULL AND NOT EXISTS"
        " (SELECT 1 FROM app.receipts o WHERE o.sale_id = s.id AND o.id <> r.id)"
        " ORDER BY s.id LIMIT 1",
    )
    old_invoice = _state(bed, "invoices", old)["qbo_id"]
    payment = _state(bed, "payments", receipt)["qbo_id"]
    assert payment in _live(bed, "Payment")
    with src.begin() as conn:
        new = _entered_again(conn, old)
        conn.execute(
            sa.text("UPDATE app.receipts SET sale_id = :n WHERE id = :r"), {"n": new, "r": receipt}
        )

    counts = _push(bed, dagster_instance)
    gone, fresh = _state(bed, "invoices", old), _state(bed, "invoices", new)
    assert (gone["status"], gone["error_code"]) == ("failed", "6000")
    assert "or moved to another sale, are unapplied" in gone["fix"]
    assert (fresh["status"], fresh["error_code"]) == ("failed", "6140")
    assert "the number is free once it is removed" in fresh["fix"]
    paying = _state(bed, "payments", receipt)
    assert (paying["status"], paying["intent"]) == ("held", None), paying
    assert counts["pushed/qbo/payments"]["updated"] == 1, counts
    assert not _live(bed, "Payment")[payment].get("Line")  # it pays no invoice meanwhile
    [reason] = _quarantined(bed, "payments", receipt)
    assert f"invoice #{new} is not in QBO yet" in reason

    _due_now(bed, "invoices")  # the refused create's backoff elapsed
    _push(bed, dagster_instance)
    invoices = _live(bed, "Invoice")
    assert old_invoice not in invoices
    created = _state(bed, "invoices", new)
    assert created["status"] == "synced", created
    assert [i["Id"] for i in invoices.values() if i["DocNumber"] == number] == [created["qbo_id"]]
    paid = _live(bed, "Payment")[payment]
    assert [t["TxnId"] for ln in paid["Line"] for t in ln["LinkedTxn"]] == [created["qbo_id"]]
    assert _state(bed, "payments", receipt)["status"] == "synced"
    assert _quarantined(bed, "payments", receipt) == []
    _settled(bed, dagster_instance)
