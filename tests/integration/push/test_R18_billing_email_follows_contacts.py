"""A sale's billing email comes from its contacts (R18: the organisation's billing contact's
email, else the contact's own), so a contact change that moves it must reach the invoice's
BillEmail in QBO on the next push when a person made it in the source app (before: the sale row
itself did not change, so the change feed never offered the sale; only the nightly
reconciliation noticed). A contact's email the pull wrote (a bookkeeper changed the customer
in QBO) reaches its invoices too, on the next push, not at the nightly reconciliation.

Driven through ``pipeline.push_all`` / ``pipeline.pull_all`` (what the push and pull jobs run)
over the sandbox and real Postgres."""

from __future__ import annotations

import pytest
from pushbed import PushBed

from qbo_pipelines.sync import pipeline


@pytest.fixture
def synced(push_bed: PushBed) -> PushBed:
    pipeline.push_all(push_bed.env, push_bed.realm, run_id="push-1")
    pipeline.pull_all(push_bed.env, push_bed.realm, run_id="pull-1")
    return push_bed


def _bill_emails(bed: PushBed, sales: list[int], *, held: bool = False) -> dict[int, str | None]:
    """BillEmail in QBO of the synced invoices of ``sales`` (with ``held``, of those held back
    too)."""
    rows = bed.sql(
        bed.env.warehouse,
        "SELECT source_id, qbo_id FROM sync.record_state WHERE realm_id = :r"
        " AND entity = 'invoices' AND source_id = ANY(:ids)"
        " AND status IN ('synced', CASE WHEN :held THEN 'held' END)",
        held=held,
        r=bed.realm,
        ids=[str(s) for s in sales],
    )
    qbo = {i["Id"]: i for i in bed.sandbox.control.entities(bed.realm, "Invoice")}
    return {
        int(s): (qbo[str(q)].get("BillEmail") or {}).get("Address")
        for s, q in rows
        if str(q) in qbo
    }


def _sales_of(bed: PushBed, *, organisation: bool) -> tuple[int, list[int]]:
    """A contact with pushed sales whose billing email is its own (``organisation`` False), or
    an organisation's billing contact, and the sales its email bills."""
    if organisation:
        contact = bed.sql(
            bed.env.source,
            "SELECT min(c.id) FROM app.contacts c WHERE c.is_billing_contact AND EXISTS ("
            " SELECT 1 FROM app.sales s JOIN app.contacts m ON m.id = s.contact_id"
            " WHERE m.organisation_id = c.organisation_id AND s.total > 0)",
        )[0][0]
        sales = bed.sql(
            bed.env.source,
            "SELECT s.id FROM app.sales s JOIN app.contacts m ON m.id = s.contact_id"
            " WHERE m.organisation_id = (SELECT organisation_id FROM app.contacts WHERE id = :c)"
            " AND s.total > 0",
            c=contact,
        )
    else:
        contact = bed.sql(
            bed.env.source,
            "SELECT min(c.id) FROM app.contacts c WHERE c.organisation_id IS NULL"
            " AND EXISTS (SELECT 1 FROM app.sales s WHERE s.contact_id = c.id AND s.total > 0)",
        )[0][0]
        sales = bed.sql(
            bed.env.source,
            "SELECT id FROM app.sales WHERE contact_id = :c AND total > 0",
            c=contact,
        )
    assert contact is not None, "the demo company has such a contact"
    return int(contact), [int(s) for (s,) in sales]


def _email_in_qbo(bed: PushBed, contact: int, email: str) -> None:
    """The bookkeeper changes the email of the contact's customer in QBO."""
    [(customer,)] = bed.sql(
        bed.env.warehouse,
        "SELECT qbo_id FROM sync.record_state WHERE realm_id = :r AND entity = 'customers'"
        " AND source_id = :c",
        r=bed.realm,
        c=str(contact),
    )
    bed.sandbox.control.user_update(
        bed.realm,
        "Customer",
        {"Id": customer, "PrimaryEmailAddr": {"Address": email}, "sparse": True},
    )


@pytest.mark.parametrize("organisation", [False, True], ids=["own-email", "billing-contact"])
def test_R18_a_contact_email_changed_in_the_source_reaches_its_invoices(
    synced: PushBed, organisation: bool
) -> None:
    contact, sales = _sales_of(synced, organisation=organisation)
    pushed = _bill_emails(synced, sales)
    assert pushed
    assert "moved@example.com" not in pushed.values()
    synced.sql(
        synced.env.source,
        "UPDATE app.contacts SET email = 'moved@example.com' WHERE id = :c",
        c=contact,
    )
    pipeline.push_all(synced.env, synced.realm, run_id="push-2")
    assert set(_bill_emails(synced, sales).values()) == {"moved@example.com"}
    writes = synced.write_calls()
    pipeline.push_all(synced.env, synced.realm, run_id="push-3")
    assert synced.write_calls() == writes


def test_R18_a_customer_email_changed_in_qbo_reaches_its_invoices_after_the_pull(
    synced: PushBed,
) -> None:
    contact, sales = _sales_of(synced, organisation=False)
    _email_in_qbo(synced, contact, "bookkeeper@example.com")
    pipeline.pull_all(synced.env, synced.realm, run_id="pull-2")
    [(email,)] = synced.sql(
        synced.env.source, "SELECT email FROM app.contacts WHERE id = :c", c=contact
    )
    assert email == "bookkeeper@example.com"
    pipeline.push_all(synced.env, synced.realm, run_id="push-2")
    assert set(_bill_emails(synced, sales).values()) == {"bookkeeper@example.com"}
    writes = synced.write_calls()
    pipeline.pull_all(synced.env, synced.realm, run_id="pull-3")
    pipeline.push_all(synced.env, synced.realm, run_id="push-3")
    assert synced.write_calls() == writes  # settled: no echo between the two directions


def test_R18_R34_an_email_that_lost_a_conflict_never_reaches_the_invoices(
    synced: PushBed,
) -> None:
    """The contact's email is changed in the source and its customer's in QBO before the next
    push. Customers are ``qbo_wins``: the push keeps QBO's address on the customer, and the
    source's address lost. The contact's invoices must not take the losing address as their
    BillEmail (nor be emailed to it) in that push: they wait for the pull to bring QBO's
    address into the source (with the reason on record), then take it."""
    contact, sales = _sales_of(synced, organisation=False)
    before = _bill_emails(synced, sales)
    _email_in_qbo(synced, contact, "winner@example.com")
    synced.sql(
        synced.env.source,
        "UPDATE app.contacts SET email = 'loser@example.com' WHERE id = :c",
        c=contact,
    )
    [(new,)] = synced.sql(  # a new sale to be emailed, entered with the edit
        synced.env.source,
        "INSERT INTO app.sales (doc_number, contact_id, txn_date, send_requested, subtotal,"
        " total) SELECT 'R34-1', contact_id, txn_date, true, subtotal, total FROM app.sales"
        " WHERE id = :s RETURNING id",
        s=sales[0],
    )
    synced.sql(
        synced.env.source,
        "INSERT INTO app.sale_lines (sale_id, line_no, kind, description, product_id, qty,"
        " unit_price, amount, tax_rate_id, discount_percent) SELECT :n, line_no, kind,"
        " description, product_id, qty, unit_price, amount, tax_rate_id, discount_percent"
        " FROM app.sale_lines WHERE sale_id = :s",
        n=new,
        s=sales[0],
    )
    synced.sql(
        synced.env.source,
        "UPDATE app.sales SET tax_total = o.tax_total, discount_total = o.discount_total"
        " FROM app.sales o WHERE o.id = :s AND app.sales.id = :n",
        n=new,
        s=sales[0],
    )
    pipeline.push_all(synced.env, synced.realm, run_id="push-2")
    assert _bill_emails(synced, sales, held=True) == before
    held = synced.sql(
        synced.env.warehouse,
        "SELECT source_id, rule, fix FROM sync.quarantine WHERE realm_id = :r"
        " AND entity = 'invoices' AND resolved_at IS NULL AND source_id = ANY(:ids)",
        r=synced.realm,
        ids=[str(s) for s in (*sales, new)],
    )
    assert {int(h.source_id) for h in held} == {*sales, new}
    assert {h.rule for h in held} == {"reference.customer.awaiting_pull"}
    assert all("next pull" in h.fix for h in held)
    sent = list(synced.sandbox.control.emails(synced.realm))
    assert not [m for m in sent if "loser@example.com" in repr(m)], sent
    pipeline.pull_all(synced.env, synced.realm, run_id="pull-2")
    pipeline.push_all(synced.env, synced.realm, run_id="push-3")
    assert set(_bill_emails(synced, [*sales, new]).values()) == {"winner@example.com"}
    assert not synced.sql(
        synced.env.warehouse,
        "SELECT 1 FROM sync.quarantine WHERE realm_id = :r AND entity = 'invoices'"
        " AND resolved_at IS NULL AND source_id = ANY(:ids)",
        r=synced.realm,
        ids=[str(s) for s in (*sales, new)],
    )
    sent = list(synced.sandbox.control.emails(synced.realm))
    assert [m for m in sent if "winner@example.com" in repr(m)], sent
    assert not [m for m in sent if "loser@example.com" in repr(m)], sent
    writes = synced.write_calls()
    pipeline.pull_all(synced.env, synced.realm, run_id="pull-3")
    pipeline.push_all(synced.env, synced.realm, run_id="push-4")
    assert synced.write_calls() == writes
