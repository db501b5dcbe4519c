"""Defects the push + pull soak (``bench/soak.py --mode both``) found, each driven through the
product path: ``pipeline.push_all`` / ``pipeline.pull_all`` over the sandbox (real HTTP) and
real Postgres, checking what lands on both sides."""

from decimal import Decimal
from typing import Any

import pytest
from extract_helpers import linked_contact
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


# ---------------------------------------------------------------- a customer edited on both sides


def _linked_contact(bed: PushBed) -> tuple[int, str]:
    return linked_contact(bed.env.warehouse, bed.realm)


def _edit_source(bed: PushBed, contact: int, column: str, value: str) -> None:
    bed.sql(
        bed.env.source, f"UPDATE app.contacts SET {column} = :v WHERE id = :i", v=value, i=contact
    )


def _edit_qbo(bed: PushBed, customer: str, change: dict[str, Any]) -> None:
    bed.sandbox.control.user_update(
        bed.realm, "Customer", {"Id": customer, **change, "sparse": True}
    )


def _email_on_both_sides(bed: PushBed, contact: int, customer: str) -> None:
    """The soak's race: the email changed in QBO, then in the source (customers: qbo_wins)."""
    _edit_qbo(bed, customer, {"PrimaryEmailAddr": {"Address": "qbo.side@example.com"}})
    _edit_source(bed, contact, "email", "source.side@example.com")


def _both_sides(bed: PushBed, contact: int, customer: str) -> tuple[tuple[Any, Any], ...]:
    """(email, phone) of the source contact and of its QBO customer."""
    row = bed.sql(bed.env.source, "SELECT email, phone FROM app.contacts WHERE id = :i", i=contact)[
        0
    ]
    qbo = next(
        c for c in bed.sandbox.control.entities(bed.realm, "Customer") if c["Id"] == customer
    )
    return (
        (row.email, row.phone),
        (
            (qbo.get("PrimaryEmailAddr") or {}).get("Address"),
            (qbo.get("PrimaryPhone") or {}).get("FreeFormNumber"),
        ),
    )


def _conflicts(bed: PushBed, contact: int) -> int:
    return int(
        bed.sql(
            bed.env.warehouse,
            "SELECT count(*) FROM sync.ledger WHERE realm_id = :r AND entity = 'customers'"
            " AND source_id = :s AND operation = 'conflict'",
            r=bed.realm,
            s=str(contact),
        )[0][0]
    )


def _unanswered_writes(bed: PushBed) -> None:
    """Every write call to QBO gets no answer (503 on each retry, nothing committed): the push
    stores its intent and stops there, as a push killed before it sent the call does."""
    bed.sandbox.control.inject_fault(
        kind="server_error",
        realm_id=bed.realm,
        method="POST",
        path="batch|customer",
        count=None,
        status=503,
    )


def _assert_fixed_point(bed: PushBed) -> None:
    writes = bed.write_calls()
    log: Any = bed.sql(bed.env.source, "SELECT count(*) FROM app.change_log")[0][0]
    _cycle(bed, "fixed-point")
    assert bed.write_calls() == writes
    assert bed.sql(bed.env.source, "SELECT count(*) FROM app.change_log")[0][0] == log


def test_R34_R42_a_replayed_update_meeting_a_two_sided_edit_ends_with_qbo_wins_and_one_conflict(
    synced: PushBed,
) -> None:
    """The soak's lasting disagreement. A phone edit's update is stored and never answered (a
    push killed before it sent it); then the customer's email is changed in QBO and in the
    source, and one more run meets QBO still failing (the update still waiting, the record
    skipped). When QBO answers, the replay meets 5010 and is merged. Customers are
    ``qbo_wins``: QBO's email on both sides, the phone on both, one conflict recorded (before:
    the merge used the update's old source snapshot, so no conflict; QBO's email became the
    QBO side of the base and the source's email was taken as synced: QBO's email in QBO, the
    source's in the source, for good, and neither direction wrote again)."""
    bed = synced
    contact, customer = _linked_contact(bed)
    _edit_source(bed, contact, "phone", "+1 555 0101")
    _unanswered_writes(bed)
    stored = pipeline.push_all(bed.env, bed.realm, run_id="push-unanswered")
    assert stored.totals()["pending"] == 1
    _email_on_both_sides(bed, contact, customer)
    pipeline.push_all(bed.env, bed.realm, run_id="push-still-unanswered")
    bed.sandbox.control.clear_faults()
    _cycle(bed, "2")
    _cycle(bed, "3")
    want = ("qbo.side@example.com", "+1 555 0101")
    assert _both_sides(bed, contact, customer) == (want, want)
    assert _conflicts(bed, contact) == 1
    _assert_fixed_point(bed)


def test_R42_a_source_edit_made_while_an_update_waits_for_qbo_is_pushed_after_it(
    synced: PushBed,
) -> None:
    """A source edit made while an earlier update of the record waits for QBO's answer (the
    run that sees it skips the record) reaches QBO once the waiting update is answered (before:
    the change feed moved past it and the replay recorded the older source version as synced:
    the source's email never reached QBO)."""
    bed = synced
    contact, customer = _linked_contact(bed)
    _edit_source(bed, contact, "phone", "+1 555 0102")
    _unanswered_writes(bed)
    pipeline.push_all(bed.env, bed.realm, run_id="push-unanswered")
    _edit_source(bed, contact, "email", "later@example.com")
    pipeline.push_all(bed.env, bed.realm, run_id="push-still-unanswered")
    bed.sandbox.control.clear_faults()
    _cycle(bed, "2")
    want = ("later@example.com", "+1 555 0102")
    assert _both_sides(bed, contact, customer) == (want, want)
    assert _conflicts(bed, contact) == 0
    _assert_fixed_point(bed)


def test_R7_R34_a_qbo_edit_of_another_field_merged_by_the_push_still_reaches_the_source(
    synced: PushBed,
) -> None:
    """QBO changes a customer's phone while the source changes its email: the push meets 5010,
    merges (no conflict: different fields) and sends the email; QBO's phone must still reach the
    source (before: the push took QBO's whole answer, phone included, as the QBO side of the
    base, so the pull saw nothing to bring: QBO's phone in QBO, the old one in the source)."""
    bed = synced
    contact, customer = _linked_contact(bed)
    _edit_qbo(bed, customer, {"PrimaryPhone": {"FreeFormNumber": "(555) 111-2222"}})
    _edit_source(bed, contact, "email", "src@example.com")
    _cycle(bed, "2")
    want = ("src@example.com", "(555) 111-2222")
    assert _both_sides(bed, contact, customer) == (want, want)
    assert _conflicts(bed, contact) == 0
    _assert_fixed_point(bed)


def test_R34_a_conflict_qbo_won_survives_a_later_update_of_another_field(synced: PushBed) -> None:
    """The soak's lasting disagreement (seed 42, contact #20): the email is changed on both
    sides; the push meets 5010 and records the conflict (QBO kept, the pull to bring QBO's
    value); before any pull, the source changes the phone and the push's update of it is a
    plain ``update ok``. QBO's email must still reach the source (before: that update took
    QBO's whole answer as the QBO side of the base, so the pull saw nothing to bring: QBO's
    email in QBO, the source's in the source, for good)."""
    bed = synced
    contact, customer = _linked_contact(bed)
    _email_on_both_sides(bed, contact, customer)
    pipeline.push_all(bed.env, bed.realm, run_id="push-conflict")
    assert _conflicts(bed, contact) == 1
    _edit_source(bed, contact, "phone", "+1 555 0103")
    pipeline.push_all(bed.env, bed.realm, run_id="push-phone")
    _cycle(bed, "2")
    want = ("qbo.side@example.com", "+1 555 0103")
    assert _both_sides(bed, contact, customer) == (want, want)
    assert _conflicts(bed, contact) == 1
    _cycle(bed, "3")  # the pulled email reaches the contact's invoices as BillEmail (R18)
    _assert_fixed_point(bed)


def test_R16_R36_invoice_deleted_in_qbo_after_a_push_update_no_pull_saw_still_marks_the_sale(
    synced: PushBed,
) -> None:
    """The soak's sale #114 (seed 41): the push updates an invoice (its SyncToken moves on in
    the state) and QBO deletes the invoice before any pull reads that new version. The delete
    stub carries no version, so raw_qbo keeps the last object it read, older than the state's:
    the pull took the delete for a late delivery and never marked the sale (before: the sale
    stayed unmarked for good, the sync's own delete candidate skipped on every pull)."""
    rows = synced.sql(
        synced.env.warehouse,
        "SELECT source_id, qbo_id FROM sync.record_state WHERE realm_id = :r"
        " AND entity = 'invoices' AND qbo_entity = 'Invoice' AND created_by = 'sync'"
        " AND status = 'synced' ORDER BY source_id::int",
        r=synced.realm,
    )
    paid = {
        str(link.get("TxnId"))
        for p in synced.sandbox.control.entities(synced.realm, "Payment")
        for line in p.get("Line", [])
        for link in line.get("LinkedTxn", [])
    }
    sale, qbo_id = next((int(s), str(q)) for s, q in rows if str(q) not in paid)
    synced.sql(synced.env.source, "UPDATE app.sales SET memo = 'first' WHERE id = :i", i=sale)
    pipeline.push_all(synced.env, synced.realm, run_id="push-2")  # token moves, no pull
    token = synced.sql(
        synced.env.warehouse,
        "SELECT s.sync_token, r.data->>'SyncToken' FROM sync.record_state s"
        " JOIN raw_qbo.invoices r ON r.realm_id = s.realm_id AND r.qbo_id = s.qbo_id"
        " WHERE s.realm_id = :r AND s.entity = 'invoices' AND s.source_id = :s",
        r=synced.realm,
        s=str(sale),
    )
    assert int(token[0][0]) > int(token[0][1]), "the state is ahead of raw_qbo"
    synced.sandbox.control.user_delete(synced.realm, "Invoice", qbo_id)
    synced.sql(synced.env.source, "UPDATE app.sales SET memo = 'second' WHERE id = :i", i=sale)
    _cycle(synced, "3")
    marked = synced.sql(
        synced.env.source, "SELECT qbo_deleted FROM app.sales WHERE id = :i", i=sale
    )
    assert marked == [(True,)]
    st = synced.sql(
        synced.env.warehouse,
        "SELECT status, deleted_in_qbo FROM sync.record_state WHERE realm_id = :r"
        " AND entity = 'invoices' AND source_id = :s",
        r=synced.realm,
        s=str(sale),
    )
    assert st == [("deleted", True)]
    # never revived, and nothing left to do on either side
    assert not [
        i for i in synced.sandbox.control.entities(synced.realm, "Invoice") if i.get("Id") == qbo_id
    ]
    writes = synced.write_calls()
    _cycle(synced, "4")
    assert synced.write_calls() == writes


def test_R36_a_read_refused_with_qbo_s_generic_fault_does_not_end_the_pull(
    synced: PushBed,
) -> None:
    """The soak's stopped pull run: a CDC read and a query answered with QBO's generic
    business fault (6000, as XML) are sent again (a read changes nothing) and the pull runs
    to its end, bringing the change in (a write refused with 6000 stays refused: obs8)."""
    bed = synced
    contact, customer = linked_contact(bed.env.warehouse, bed.realm)
    bed.sandbox.control.user_update(
        bed.realm,
        "Customer",
        {"Id": customer, "PrimaryEmailAddr": {"Address": "after.refusal@example.com"},
         "sparse": True},
    )
    bed.sandbox.control.reset_requests()
    for path in ("cdc", "query"):
        bed.sandbox.control.inject_fault(
            kind="xml", realm_id=bed.realm, method="GET", path=path, count=1
        )
    pipeline.pull_all(bed.env, bed.realm, run_id="pull-refused")
    email = bed.sql(bed.env.source, "SELECT email FROM app.contacts WHERE id = :i", i=contact)
    assert email[0][0] == "after.refusal@example.com"
    refused = [r for r in bed.sandbox.control.requests(bed.realm) if r.get("status") == 400]
    assert {r["endpoint"] for r in refused} >= {"cdc"}
