"""Pull end to end: QBO (the sandbox, over real HTTP) -> warehouse -> the demo source app.

Each test pushes the demo company first (the usual state of a two-way sync), then changes QBO
the way a person would (the sandbox's user edits, which also fire its webhooks), runs the pull
as the product does (:func:`qbo_pipelines.sync.pipeline.pull_all`: extract into ``raw_qbo``,
then write back through the engine) and checks what lands on both sides.
"""

from typing import Any

import pytest
import sqlalchemy as sa
from extract_helpers import linked_contact
from pushbed import PushBed

from qbo_pipelines import entities as catalogue
from qbo_pipelines.demo import setup
from qbo_pipelines.sync import pipeline


def _rows(engine: sa.Engine, sql: str, **params: object) -> list[Any]:
    with engine.begin() as conn:
        result = conn.execute(sa.text(sql), params)
        return list(result) if result.returns_rows else []


def _writes(bed: PushBed) -> int:
    return bed.write_calls()


def _cycle(bed: PushBed) -> dict[str, Any]:
    """One push and one pull of the company, as the schedules run them."""
    pipeline.push_all(bed.env, bed.realm, run_id="push")
    return pipeline.pull_all(bed.env, bed.realm, run_id="pull")


def _qbo_customer_of(bed: PushBed, contact_id: int) -> str:
    rows = _rows(
        bed.env.warehouse,
        "SELECT qbo_id FROM sync.record_state WHERE realm_id = :r AND entity = 'customers'"
        " AND source_id = :s",
        r=bed.realm,
        s=str(contact_id),
    )
    return str(rows[0][0])


@pytest.fixture
def synced(push_bed: PushBed) -> PushBed:
    pipeline.push_all(push_bed.env, push_bed.realm, run_id="push-1")
    pipeline.pull_all(push_bed.env, push_bed.realm, run_id="pull-1")
    return push_bed


def test_R35_push_then_pull_reaches_a_fixed_point(synced: PushBed) -> None:
    """After push then pull, the next cycle writes nothing on either side (R35)."""
    before_qbo = _writes(synced)
    before_src = _rows(synced.env.source, "SELECT count(*) FROM app.change_log")[0][0]
    _cycle(synced)
    assert _writes(synced) == before_qbo
    assert _rows(synced.env.source, "SELECT count(*) FROM app.change_log")[0][0] == before_src


def test_R7_customer_email_changed_in_qbo_reaches_the_source_contact(synced: PushBed) -> None:
    contact, qbo_id = linked_contact(synced.env.warehouse, synced.realm)
    synced.sandbox.control.user_update(
        synced.realm,
        "Customer",
        {"Id": qbo_id, "PrimaryEmailAddr": {"Address": "new.address@example.com"}, "sparse": True},
    )
    pipeline.pull_all(synced.env, synced.realm, run_id="pull-2")
    email = _rows(synced.env.source, "SELECT email FROM app.contacts WHERE id = :i", i=contact)
    assert email[0][0] == "new.address@example.com"
    token = _customer(synced, qbo_id)["SyncToken"]
    # no echo: the next push writes nothing back to the Customer (its invoices' BillEmail
    # follows the contact's new address, R18), and the one after writes nothing at all
    pipeline.push_all(synced.env, synced.realm, run_id="push-2")
    assert _customer(synced, qbo_id)["SyncToken"] == token
    before = _writes(synced)
    pipeline.push_all(synced.env, synced.realm, run_id="push-3")
    assert _writes(synced) == before


def _customer(bed: PushBed, qbo_id: str) -> dict[str, Any]:
    return next(c for c in bed.sandbox.control.entities(bed.realm, "Customer") if c["Id"] == qbo_id)


def test_R8_customer_created_in_qbo_becomes_a_source_contact(synced: PushBed) -> None:
    made = synced.sandbox.control.bulk_create(
        synced.realm,
        "Customer",
        [{"DisplayName": "Made In QBO Ltd", "PrimaryEmailAddr": {"Address": "q@example.com"}}],
    )[0]
    pipeline.pull_all(synced.env, synced.realm, run_id="pull-2")
    rows = _rows(
        synced.env.source,
        "SELECT origin, email, qbo_display_name FROM app.contacts WHERE qbo_id = :q",
        q=made["Id"],
    )
    assert [(r.origin, r.email, r.qbo_display_name) for r in rows] == [
        ("qbo", "q@example.com", "Made In QBO Ltd")
    ]
    # pulled twice: still one contact
    pipeline.pull_all(synced.env, synced.realm, run_id="pull-3", full=True)
    assert (
        len(_rows(synced.env.source, "SELECT 1 FROM app.contacts WHERE qbo_id = :q", q=made["Id"]))
        == 1
    )


def _linked(bed: PushBed, entity: str, qbo_entity: str) -> tuple[int, str]:
    rows = _rows(
        bed.env.warehouse,
        "SELECT source_id, qbo_id FROM sync.record_state WHERE realm_id = :r AND entity = :e"
        " AND qbo_entity = :q AND created_by = 'sync' AND status = 'synced'"
        " ORDER BY source_id::int LIMIT 1",
        r=bed.realm,
        e=entity,
        q=qbo_entity,
    )
    return int(rows[0][0]), str(rows[0][1])


def _ledger(bed: PushBed, entity: str, operation: str) -> list[Any]:
    return _rows(
        bed.env.warehouse,
        "SELECT direction, source_id, outcome, details FROM sync.ledger WHERE realm_id = :r"
        " AND entity = :e AND operation = :o ORDER BY id",
        r=bed.realm,
        e=entity,
        o=operation,
    )


def test_R16_R36_invoice_deleted_in_qbo_is_flagged_and_the_sale_kept_and_marked(
    synced: PushBed,
) -> None:
    # a sale with a receipt synced: its payment is deleted in QBO too (R22 below)
    [(sale, qbo_id)] = _rows(
        synced.env.warehouse,
        "SELECT s.source_id::int, s.qbo_id FROM sync.record_state s WHERE s.realm_id = :r"
        " AND s.entity = 'invoices' AND s.qbo_entity = 'Invoice' AND s.created_by = 'sync'"
        " AND s.status = 'synced' AND s.source_id = ANY(CAST(:paid AS text[]))"
        " ORDER BY s.source_id::int LIMIT 1",
        r=synced.realm,
        paid=[
            str(r[0])
            for r in _rows(
                synced.env.source,
                "SELECT DISTINCT sale_id FROM app.receipts WHERE sale_id IS NOT NULL",
            )
        ],
    )
    payments = [
        p["Id"]
        for p in synced.sandbox.control.entities(synced.realm, "Payment")
        if any(
            link.get("TxnId") == qbo_id
            for line in p.get("Line", [])
            for link in line.get("LinkedTxn", [])
        )
    ]
    assert payments
    for pid in payments:  # QBO refuses to delete an invoice with payments applied
        synced.sandbox.control.user_delete(synced.realm, "Payment", pid)
    synced.sandbox.control.user_delete(synced.realm, "Invoice", qbo_id)
    _cycle(synced)
    flagged = _rows(
        synced.env.warehouse,
        "SELECT deleted FROM raw_qbo.invoices WHERE realm_id = :r AND qbo_id = :q",
        r=synced.realm,
        q=qbo_id,
    )
    assert flagged[0][0] is True
    kept = _rows(synced.env.source, "SELECT qbo_deleted FROM app.sales WHERE id = :i", i=sale)
    assert kept == [(True,)]
    # not revived by later edits of the sale in the source (R42)
    with synced.env.source.begin() as conn:
        conn.execute(
            sa.text("UPDATE app.sales SET memo = 'edited after' WHERE id = :i"), {"i": sale}
        )
    invoices = synced.count("Invoice")
    _cycle(synced)
    assert synced.count("Invoice") == invoices
    for pid in payments:  # deleted QBO payments mark their receipts, which are kept (R22)
        [(receipt,)] = _rows(
            synced.env.warehouse,
            "SELECT source_id FROM sync.record_state WHERE realm_id = :r AND entity = 'payments'"
            " AND qbo_id = :q",
            r=synced.realm,
            q=pid,
        )
        rows = _rows(
            synced.env.source, "SELECT qbo_deleted FROM app.receipts WHERE id = :i", i=int(receipt)
        )
        assert rows == [(True,)]


def test_R20_payment_recorded_in_qbo_becomes_a_receipt_on_the_synced_sale(
    synced: PushBed,
) -> None:
    sale, invoice = _linked(synced, "invoices", "Invoice")
    inv = next(
        i for i in synced.sandbox.control.entities(synced.realm, "Invoice") if i["Id"] == invoice
    )
    made = synced.sandbox.control.bulk_create(
        synced.realm,
        "Payment",
        [
            {
                "CustomerRef": inv["CustomerRef"],
                "TotalAmt": 1.5,
                "Line": [{"Amount": 1.5, "LinkedTxn": [{"TxnId": invoice, "TxnType": "Invoice"}]}],
            }
        ],
    )[0]
    _cycle(synced)
    rows = _rows(
        synced.env.source,
        "SELECT sale_id, amount, origin FROM app.receipts WHERE qbo_id = :q",
        q=made["Id"],
    )
    assert [(r.sale_id, str(r.amount), r.origin) for r in rows] == [(sale, "1.50", "qbo")]
    # the sale's balance follows QBO's
    balance = _rows(synced.env.source, "SELECT balance FROM app.sales WHERE id = :i", i=sale)
    qbo_balance = next(
        i for i in synced.sandbox.control.entities(synced.realm, "Invoice") if i["Id"] == invoice
    )["Balance"]
    assert float(balance[0][0]) == float(qbo_balance)


@pytest.mark.parametrize("order", ["pull_first", "push_first"])
def test_R34_customer_changed_on_both_sides_one_conflict_policy_outcome_no_ping_pong(
    synced: PushBed, order: str
) -> None:
    contact, qbo_id = _linked(synced, "customers", "Customer")
    synced.sandbox.control.user_update(
        synced.realm,
        "Customer",
        {"Id": qbo_id, "PrimaryEmailAddr": {"Address": "qbo.side@example.com"}, "sparse": True},
    )
    with synced.env.source.begin() as conn:
        conn.execute(
            sa.text("UPDATE app.contacts SET email = 'source.side@example.com' WHERE id = :i"),
            {"i": contact},
        )
    before = len(_ledger(synced, "customers", "conflict"))
    if order == "pull_first":
        pipeline.pull_all(synced.env, synced.realm, run_id="p")
        pipeline.push_all(synced.env, synced.realm, run_id="q")
    else:
        pipeline.push_all(synced.env, synced.realm, run_id="q")
        pipeline.pull_all(synced.env, synced.realm, run_id="p")
    conflicts = _ledger(synced, "customers", "conflict")[before:]
    assert len(conflicts) == 1
    # customers: qbo_wins -> QBO's value on both sides
    email = _rows(synced.env.source, "SELECT email FROM app.contacts WHERE id = :i", i=contact)
    assert email[0][0] == "qbo.side@example.com"
    qbo = next(
        c for c in synced.sandbox.control.entities(synced.realm, "Customer") if c["Id"] == qbo_id
    )
    assert qbo["PrimaryEmailAddr"]["Address"] == "qbo.side@example.com"
    _cycle(synced)  # the contact's invoices take its final address as BillEmail (R18)
    writes = _writes(synced)
    log = _rows(synced.env.source, "SELECT count(*) FROM app.change_log")[0][0]
    _cycle(synced)
    _cycle(synced)
    assert _writes(synced) == writes
    assert _rows(synced.env.source, "SELECT count(*) FROM app.change_log")[0][0] == log


def test_R42_five_edits_in_qbo_write_only_the_last_value_into_the_source(
    synced: PushBed,
) -> None:
    contact, qbo_id = _linked(synced, "customers", "Customer")
    with synced.env.source.begin() as conn:
        conn.execute(sa.text("CREATE TABLE app.email_audit (email text)"))
        conn.execute(
            sa.text(
                "CREATE FUNCTION app.audit_email() RETURNS trigger LANGUAGE plpgsql AS $$"
                " BEGIN INSERT INTO app.email_audit VALUES (NEW.email); RETURN NEW; END $$"
            )
        )
        conn.execute(
            sa.text(
                "CREATE TRIGGER email_audit AFTER UPDATE OF email ON app.contacts"
                " FOR EACH ROW WHEN (OLD.email IS DISTINCT FROM NEW.email)"
                " EXECUTE FUNCTION app.audit_email()"
            )
        )
    for n in range(5):
        synced.sandbox.control.user_update(
            synced.realm,
            "Customer",
            {"Id": qbo_id, "PrimaryEmailAddr": {"Address": f"v{n}@example.com"}, "sparse": True},
        )
    _cycle(synced)
    _cycle(synced)
    audit = [r[0] for r in _rows(synced.env.source, "SELECT email FROM app.email_audit")]
    assert audit == ["v4@example.com"]


def test_R42_five_edits_in_the_source_write_only_the_last_value_to_qbo(synced: PushBed) -> None:
    contact, qbo_id = _linked(synced, "customers", "Customer")

    def token() -> int:
        return int(
            next(
                c
                for c in synced.sandbox.control.entities(synced.realm, "Customer")
                if c["Id"] == qbo_id
            )["SyncToken"]
        )

    start = token()
    for n in range(5):
        with synced.env.source.begin() as conn:
            conn.execute(
                sa.text("UPDATE app.contacts SET phone = :p WHERE id = :i"),
                {"p": f"555-010{n}", "i": contact},
            )
    _cycle(synced)
    _cycle(synced)
    assert token() == start + 1  # one version in QBO: the last value, nothing in between
    qbo = next(
        c for c in synced.sandbox.control.entities(synced.realm, "Customer") if c["Id"] == qbo_id
    )
    assert qbo["PrimaryPhone"]["FreeFormNumber"] == "555-0104"


def test_R42_sale_deleted_in_the_source_and_edited_in_qbo_is_not_revived(
    synced: PushBed,
) -> None:
    sale, qbo_id = _linked(synced, "invoices", "Invoice")
    synced.sandbox.control.user_update(
        synced.realm, "Invoice", {"Id": qbo_id, "PrivateNote": "edited in QBO", "sparse": True}
    )
    with synced.env.source.begin() as conn:
        conn.execute(sa.text("DELETE FROM app.receipts WHERE sale_id = :i"), {"i": sale})
        conn.execute(sa.text("DELETE FROM app.sales WHERE id = :i"), {"i": sale})
    pipeline.pull_all(synced.env, synced.realm, run_id="p")  # the QBO edit arrives first
    assert (
        _rows(
            synced.env.source,
            "SELECT 1 FROM app.sales WHERE id = :i OR qbo_id = :q",
            i=sale,
            q=qbo_id,
        )
        == []
    )
    _cycle(synced)
    _cycle(synced)
    assert (
        _rows(
            synced.env.source,
            "SELECT 1 FROM app.sales WHERE id = :i OR qbo_id = :q",
            i=sale,
            q=qbo_id,
        )
        == []
    )
    live = [i["Id"] for i in synced.sandbox.control.entities(synced.realm, "Invoice")]
    assert qbo_id not in live  # invoices: source_wins, the sync created it -> deleted (R17)


def test_R29_a_lost_webhook_is_caught_by_the_cdc_safety_net(synced: PushBed) -> None:
    """No webhook was received at all (the inbox is empty): the pull's one CDC call finds the
    change anyway."""
    contact, qbo_id = _linked(synced, "customers", "Customer")
    synced.sandbox.control.user_update(
        synced.realm,
        "Customer",
        {"Id": qbo_id, "PrimaryPhone": {"FreeFormNumber": "555-9999"}, "sparse": True},
    )
    synced.sandbox.control.reset_requests()
    pipeline.pull_all(synced.env, synced.realm, run_id="p")
    assert synced.sandbox.control.request_counts(synced.realm).get("cdc") == 1
    phone = _rows(synced.env.source, "SELECT phone FROM app.contacts WHERE id = :i", i=contact)
    assert phone[0][0] == "555-9999"


def test_R8_hostile_qbo_side_data_is_pulled_without_a_crash(synced: PushBed) -> None:
    """Names and notes with quotes, emoji and RTL text, the longest notes QBO takes, custom fields
    the source has no place for: every record lands or is held with a reason; nothing crashes."""
    bodies = [
        {"DisplayName": 'O\'Brien "Quotes" & Sons', "Notes": "x" * 2000},
        {"DisplayName": "Emoji 🧾 Ltd", "PrimaryEmailAddr": {"Address": "emoji@example.com"}},
        {
            "DisplayName": "שלום Trading",
            "PrimaryPhone": {"FreeFormNumber": "+972 3 555 0100"},
        },
    ]
    made = synced.sandbox.control.bulk_create(synced.realm, "Customer", bodies)
    out = pipeline.pull_all(synced.env, synced.realm, run_id="hostile")
    assert out["customers"].counts["created"] == len(made)
    names = {
        r[0]
        for r in _rows(
            synced.env.source,
            "SELECT qbo_display_name FROM app.contacts WHERE qbo_id = ANY(:ids)",
            ids=[m["Id"] for m in made],
        )
    }
    assert names == {b["DisplayName"] for b in bodies}
    before = _writes(synced)
    _cycle(synced)
    assert _writes(synced) == before  # pulled records are not pushed back


def test_R31_what_refers_to_an_invoice_deleted_in_qbo_says_so_and_promises_no_retry(
    synced: PushBed,
) -> None:
    """An invoice the bookkeeper deleted in QBO is never brought back. An edit of its sale
    pushed before the pull knows is refused (610) with a fix that says so (not "re-activate it
    there"), and a receipt entered on that sale afterwards is held with that reason, not "the
    invoice is not in QBO yet; this record then syncs on the next run"."""
    sale, qbo_id = _linked(synced, "invoices", "Invoice")
    control = synced.sandbox.control
    for p in control.entities(synced.realm, "Payment"):
        if any(
            link.get("TxnId") == qbo_id
            for line in p.get("Line", [])
            for link in line.get("LinkedTxn", [])
        ):
            control.user_delete(synced.realm, "Payment", p["Id"])
    control.user_delete(synced.realm, "Invoice", qbo_id)
    with synced.env.source.begin() as conn:
        conn.execute(sa.text("UPDATE app.sales SET memo = 'edited' WHERE id = :i"), {"i": sale})
    pipeline.push_all(synced.env, synced.realm, run_id="edit", only=["invoices"])
    [failed] = _rows(
        synced.env.warehouse,
        "SELECT status, error_code, fix FROM sync.record_state WHERE realm_id = :r"
        " AND entity = 'invoices' AND source_id = :s",
        r=synced.realm,
        s=str(sale),
    )
    assert (failed.status, failed.error_code) == ("failed", "610")
    assert "deleted in QBO" in failed.fix
    assert "re-activate" not in failed.fix

    pipeline.pull_all(synced.env, synced.realm, run_id="pull-deleted")
    with synced.env.source.begin() as conn:
        receipt = conn.execute(
            sa.text(
                "INSERT INTO app.receipts (sale_id, contact_id, amount, received_on)"
                " SELECT id, contact_id, 5, txn_date FROM app.sales WHERE id = :i RETURNING id"
            ),
            {"i": sale},
        ).scalar_one()
    pipeline.push_all(synced.env, synced.realm, run_id="late-receipt", only=["payments"])
    held = _rows(
        synced.env.warehouse,
        "SELECT reason, fix FROM sync.quarantine WHERE realm_id = :r AND entity = 'payments'"
        " AND source_id = :s AND resolved_at IS NULL",
        r=synced.realm,
        s=str(receipt),
    )
    assert len(held) == 1
    assert f"invoice #{sale} was deleted in QBO" in held[0].reason
    assert "link this record to another invoice or delete it" in held[0].fix
    assert "next run" not in held[0].fix


def test_R9_a_customer_deleted_in_qbo_stays_a_contact_and_is_not_revived(synced: PushBed) -> None:
    """A bookkeeper "deletes" a synced customer in QBO: QBO makes it inactive and renames it
    "<name> (deleted)". The pull keeps the source contact (R9: never deleted on the other
    side), with its own name and details, marked inactive in QBO; the pushes after it write
    nothing to that customer (neither reactivated nor renamed back), even after an unrelated
    edit of another contact."""
    contact, qbo_id = linked_contact(synced.env.warehouse, synced.realm)
    sql = (
        "SELECT o.name, c.given_name, c.family_name, c.email, c.phone, c.qbo_active"
        " FROM app.contacts c LEFT JOIN app.organisations o ON o.id = c.organisation_id"
        " WHERE c.id = :i"
    )
    [before] = _rows(synced.env.source, sql, i=contact)
    synced.sandbox.control.user_update(
        synced.realm, "Customer", {"Id": qbo_id, "Active": False, "sparse": True}
    )
    gone = _customer(synced, qbo_id)
    assert gone["Active"] is False
    assert gone["DisplayName"].endswith("(deleted)")
    pipeline.pull_all(synced.env, synced.realm, run_id="pull-2")
    [after] = _rows(synced.env.source, sql, i=contact)
    assert after[:5] == before[:5]
    assert after.qbo_active is False
    other, _ = linked_contact(synced.env.warehouse, synced.realm, skip=[contact])
    _rows(synced.env.source, "UPDATE app.contacts SET phone = '+1 555 0142' WHERE id = :i", i=other)
    pipeline.push_all(synced.env, synced.realm, run_id="push-2")
    pipeline.push_all(synced.env, synced.realm, run_id="push-3")
    assert _customer(synced, qbo_id) == _customer(synced, qbo_id) | {
        "SyncToken": gone["SyncToken"],
        "Active": False,
        "DisplayName": gone["DisplayName"],
    }
    assert len(_rows(synced.env.source, "SELECT 1 FROM app.contacts WHERE id = :i", i=contact))


def test_R26_every_transaction_type_of_a_customer_is_listed_with_the_link_that_opens_it(
    synced: PushBed,
) -> None:
    """Invoices, payments, estimates, sales receipts, credit memos and refund receipts a
    bookkeeper enters in QBO for a synced customer are each listed once for its contact, with
    the QBO web link of that transaction type (R26)."""
    contact, customer = linked_contact(synced.env.warehouse, synced.realm)
    control, realm = synced.sandbox.control, synced.realm
    ref = {"value": customer}
    line = {
        "Amount": 40,
        "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": {"ItemRef": {"value": "2"}, "Qty": 1, "UnitPrice": 40},
    }
    bank = {"value": setup.choice_id(synced.env.warehouse, realm, "accounts", "Checking")}
    made: dict[str, str] = {}
    for kind, extra in {
        "Invoice": {},
        "Estimate": {},
        "SalesReceipt": {"DepositToAccountRef": bank},
        "CreditMemo": {},
        "RefundReceipt": {"DepositToAccountRef": bank},
    }.items():
        body = {"CustomerRef": ref, "Line": [line], **extra}
        made[kind] = str(control.bulk_create(realm, kind, [body])[0]["Id"])
    paid = {"TxnId": made["Invoice"], "TxnType": "Invoice"}
    payment = {"CustomerRef": ref, "TotalAmt": 40, "Line": [{"Amount": 40, "LinkedTxn": [paid]}]}
    made["Payment"] = str(control.bulk_create(realm, "Payment", [payment])[0]["Id"])
    pipeline.pull_all(synced.env, realm, run_id="pull-2")
    listed = {
        (r.txn_type, r.qbo_id): r
        for r in _rows(
            synced.env.source,
            "SELECT txn_type, qbo_id, contact_id, qbo_url, total FROM app.customer_transactions"
            " WHERE qbo_realm_id = :r",
            r=realm,
        )
    }
    paths = {
        "Invoice": "invoice",
        "Payment": "recvpayment",
        "Estimate": "estimate",
        "SalesReceipt": "salesreceipt",
        "CreditMemo": "creditmemo",
        "RefundReceipt": "refundreceipt",
    }
    for kind, qbo_id in made.items():
        row = listed[(kind, qbo_id)]
        assert row.contact_id == contact, (kind, row)
        assert row.qbo_url.endswith(f"/app/{paths[kind]}?txnId={qbo_id}"), row.qbo_url
        assert row.total == 40, (kind, row)


@pytest.mark.parametrize("in_qbo", ["Quiet Harbour Ltd", "quiet  HARBOUR ltd"])
def test_R5_R8_a_qbo_customer_named_like_an_unpushed_contact_is_matched_not_duplicated(
    synced: PushBed, in_qbo: str
) -> None:
    """A contact without a sale is not pushed (R4). When the bookkeeper then creates a QBO
    customer of its name (as QBO compares names: case and blanks aside), the pull matches that
    contact (R5, the push's rule, from QBO's side) instead of making a second contact of the
    same name (R8); the contact's own details stay as they are, and its first sale later
    becomes an invoice of that customer."""
    src, realm = synced.env.source, synced.realm
    [(contact,)] = _rows(
        src,
        "WITH o AS (INSERT INTO app.organisations (name) VALUES ('Quiet Harbour Ltd')"
        " RETURNING id) INSERT INTO app.contacts (organisation_id, given_name, email)"
        " SELECT id, 'Ines', 'ines@quiet.example' FROM o RETURNING id",
    )
    pipeline.push_all(synced.env, realm, run_id="push-2")  # R4: no sale, not pushed
    made = synced.sandbox.control.bulk_create(
        realm,
        "Customer",
        [{"DisplayName": in_qbo, "PrimaryEmailAddr": {"Address": "ap@quiet.example"}}],
    )[0]
    pipeline.pull_all(synced.env, realm, run_id="pull-2")
    named = _rows(
        src,
        "SELECT c.id, c.email FROM app.contacts c"
        " LEFT JOIN app.organisations o ON o.id = c.organisation_id"
        " WHERE o.name = 'Quiet Harbour Ltd' OR c.qbo_display_name = :q",
        q=in_qbo,
    )
    assert [(r.id, r.email) for r in named] == [(contact, "ines@quiet.example")]
    [(created_by, status)] = _rows(
        synced.env.warehouse,
        "SELECT created_by, status FROM sync.record_state WHERE realm_id = :r"
        " AND entity = 'customers' AND source_id = :s AND qbo_id = :q",
        r=realm,
        s=str(contact),
        q=made["Id"],
    )
    assert (created_by, status) == ("matched", "synced")
    _rows(
        src,
        "INSERT INTO app.sales (doc_number, contact_id, txn_date) VALUES ('QH-1', :c, now())",
        c=contact,
    )
    _rows(
        src,
        "INSERT INTO app.sale_lines (sale_id, line_no, description, amount, qty, unit_price,"
        " product_id) SELECT id, 1, 'Survey', 50, 1, 50, (SELECT min(id) FROM app.products)"
        " FROM app.sales WHERE doc_number = 'QH-1'",
    )
    _rows(src, "UPDATE app.sales SET subtotal = 50, total = 50 WHERE doc_number = 'QH-1'")
    pipeline.push_all(synced.env, realm, run_id="push-3")
    invoices = [
        i for i in synced.sandbox.control.entities(realm, "Invoice") if i.get("DocNumber") == "QH-1"
    ]
    assert [i["CustomerRef"]["value"] for i in invoices] == [made["Id"]]
    customers = [
        c
        for c in synced.sandbox.control.entities(realm, "Customer")
        if " ".join(c["DisplayName"].split()).casefold() == "quiet harbour ltd"
    ]
    assert len(customers) == 1
    assert customers[0]["PrimaryEmailAddr"]["Address"] == "ap@quiet.example"  # R6


def test_R17_R42_an_invoice_voided_in_qbo_is_never_revived_by_a_source_edit(
    synced: PushBed,
) -> None:
    """The bookkeeper voids a synced invoice in QBO (it stays, zeroed, "Voided" in its note).
    The pull keeps the sale as it is (not zeroed, its memo its own) and records the void; a
    later edit of the sale in the source is not written to the voided invoice (QBO would
    take the update and revive it)."""
    sale, qbo_id = _unpaid_invoice(synced)
    [before] = _rows(synced.env.source, "SELECT memo, total FROM app.sales WHERE id = :s", s=sale)
    synced.sandbox.control.user_void(synced.realm, "Invoice", qbo_id)
    voided = _invoice(synced, qbo_id)
    assert float(voided["TotalAmt"]) == 0
    pipeline.pull_all(synced.env, synced.realm, run_id="pull-void")
    [after] = _rows(synced.env.source, "SELECT memo, total FROM app.sales WHERE id = :s", s=sale)
    assert tuple(after) == tuple(before)
    [(flag,)] = _rows(
        synced.env.warehouse,
        "SELECT deleted_in_qbo FROM sync.record_state WHERE realm_id = :r"
        " AND entity = 'invoices' AND source_id = :s",
        r=synced.realm,
        s=str(sale),
    )
    assert flag is True
    _rows(
        synced.env.source, "UPDATE app.sales SET memo = 'edited after void' WHERE id = :s", s=sale
    )
    _rows(
        synced.env.source,
        "UPDATE app.sale_lines SET amount = amount + 1 WHERE sale_id = :s AND line_no = 1",
        s=sale,
    )
    pipeline.push_all(synced.env, synced.realm, run_id="push-void")
    now = _invoice(synced, qbo_id)
    assert now["SyncToken"] == voided["SyncToken"]
    assert float(now["TotalAmt"]) == 0
    # Full re-reads plan the voided record again (it is never "in step"), but its history
    # already says it was voided: no run adds a skip row of its own each time.
    for n in range(2):
        pipeline.push_all(synced.env, synced.realm, run_id=f"push-void-full-{n}", mode="full")
    history = _rows(
        synced.env.warehouse,
        "SELECT operation, outcome FROM sync.ledger WHERE realm_id = :r AND entity = 'invoices'"
        " AND source_id = :s AND run_id LIKE 'push-void%'",
        r=synced.realm,
        s=str(sale),
    )
    assert history == []
    assert _invoice(synced, qbo_id)["SyncToken"] == voided["SyncToken"]


def _unpaid_invoice(bed: PushBed, skip: int = 0) -> tuple[int, str]:
    """A synced sale and its invoice, no receipt on it (QBO voids a paid invoice too; the
    cases stay simple)."""
    return [
        (int(s), str(q))
        for s, q in _rows(
            bed.env.warehouse,
            "SELECT source_id, qbo_id FROM sync.record_state WHERE realm_id = :r"
            " AND entity = 'invoices' AND qbo_entity = 'Invoice' AND created_by = 'sync'"
            " AND status = 'synced' ORDER BY source_id::int",
            r=bed.realm,
        )
        if not _rows(bed.env.source, "SELECT 1 FROM app.receipts WHERE sale_id = :s", s=int(s))
    ][skip]


def _state(bed: PushBed, entity: str, source_id: int) -> tuple[str, bool, str | None]:
    [row] = _rows(
        bed.env.warehouse,
        "SELECT status, deleted_in_qbo, sync_token FROM sync.record_state WHERE realm_id = :r"
        " AND entity = :e AND source_id = :s",
        r=bed.realm,
        e=entity,
        s=str(source_id),
    )
    return str(row[0]), bool(row[1]), row[2]


def test_R42_a_void_in_qbo_is_not_undone_by_a_push_that_runs_before_the_pull(
    synced: PushBed,
) -> None:
    """The bookkeeper voids an invoice and a payment in QBO; before any pull, the sale's line
    and memo and the receipt's amount are edited in the source and the push runs. Its updates
    meet QBO's newer version (5010) and re-read it: a voided record is final, so nothing is
    written to it (before: the merge wrote the source's lines and amount over the void, the
    invoice was owed again and the payment applied again, both still noted "Voided"). The
    records are recorded as voided in QBO; later pushes and the pull leave them alone, and
    the source keeps its own values."""
    env, realm, control = synced.env, synced.realm, synced.sandbox.control
    sale, invoice = _unpaid_invoice(synced)
    receipt, payment = _linked(synced, "payments", "Payment")
    control.user_void(realm, "Invoice", invoice)
    control.user_void(realm, "Payment", payment)
    voided = {"Invoice": _invoice(synced, invoice), "Payment": _payment(synced, payment)}
    _rows(env.source, "UPDATE app.sales SET memo = 'edited after void' WHERE id = :s", s=sale)
    _rows(
        env.source,
        "UPDATE app.sale_lines SET description = 'changed after void'"
        " WHERE sale_id = :s AND line_no = 1",
        s=sale,
    )
    _rows(env.source, "UPDATE app.receipts SET amount = amount + 5 WHERE id = :i", i=receipt)
    report = pipeline.push_all(env, realm, run_id="push-after-void")
    now = {"Invoice": _invoice(synced, invoice), "Payment": _payment(synced, payment)}
    for kind, obj in now.items():
        assert float(obj["TotalAmt"]) == 0, (kind, obj)
        assert str(obj.get("PrivateNote", "")).startswith("Voided"), (kind, obj)
        assert obj["SyncToken"] == voided[kind]["SyncToken"], kind  # not written
    assert float(now["Invoice"]["Balance"]) == 0
    assert _state(synced, "invoices", sale)[:2] == ("deleted", True)
    assert _state(synced, "payments", receipt)[:2] == ("deleted", True)
    skips = _rows(
        env.warehouse,
        "SELECT entity, operation, outcome, error_message FROM sync.ledger WHERE realm_id = :r"
        " AND run_id = 'push-after-void' AND error_message LIKE 'voided in QBO%'",
        r=realm,
    )
    assert sorted((e, o, c) for e, o, c, _ in skips) == [
        ("invoices", "skip", "skipped"),
        ("payments", "skip", "skipped"),
    ], (skips, report)
    # Later edits, pushes (a full one too) and the pull: nothing is written to either side.
    _rows(env.source, "UPDATE app.sales SET memo = 'edited again' WHERE id = :s", s=sale)
    writes = synced.write_calls()
    pipeline.push_all(env, realm, run_id="push-after-void-2")
    pipeline.push_all(env, realm, run_id="push-after-void-3", mode="full")
    pipeline.pull_all(env, realm, run_id="pull-after-void")
    assert synced.write_calls() == writes
    [(memo,)] = _rows(env.source, "SELECT memo FROM app.sales WHERE id = :s", s=sale)
    assert memo == "edited again"
    assert _state(synced, "invoices", sale)[:2] == ("deleted", True)


def test_R42_a_void_stands_when_the_bookkeeper_edits_the_voided_invoice_afterwards(
    synced: PushBed,
) -> None:
    """QBO lets a voided invoice be edited (its note, say). The pull recorded the void; the
    edit's new version is not taken for the invoice coming back (before: the pull set it
    synced again, deleted_in_qbo false, and the next source edit wrote the lines back over
    the void: the customer owed the money again)."""
    env, realm, control = synced.env, synced.realm, synced.sandbox.control
    sale, invoice = _unpaid_invoice(synced)
    control.user_void(realm, "Invoice", invoice)
    pipeline.pull_all(env, realm, run_id="pull-void")
    assert _state(synced, "invoices", sale)[:2] == ("deleted", True)
    control.user_update(
        realm,
        "Invoice",
        {"Id": invoice, "PrivateNote": "duplicate of an earlier invoice", "sparse": True},
    )
    edited = _invoice(synced, invoice)
    pipeline.pull_all(env, realm, run_id="pull-void-edited")
    status, deleted, token = _state(synced, "invoices", sale)
    assert (status, deleted, token) == ("deleted", True, edited["SyncToken"])
    _rows(
        env.source,
        "UPDATE app.sale_lines SET description = 'changed after void'"
        " WHERE sale_id = :s AND line_no = 1",
        s=sale,
    )
    writes = synced.write_calls()
    pipeline.push_all(env, realm, run_id="push-void-edited")
    pipeline.pull_all(env, realm, run_id="pull-void-edited-2")
    assert synced.write_calls() == writes
    now = _invoice(synced, invoice)
    assert (float(now["TotalAmt"]), now["SyncToken"]) == (0, edited["SyncToken"])


def _payment(bed: PushBed, qbo_id: str) -> dict[str, Any]:
    return next(p for p in bed.sandbox.control.entities(bed.realm, "Payment") if p["Id"] == qbo_id)


def _invoice(bed: PushBed, qbo_id: str) -> dict[str, Any]:
    return next(i for i in bed.sandbox.control.entities(bed.realm, "Invoice") if i["Id"] == qbo_id)


def test_R42_a_pull_between_the_push_jobs_extract_and_its_push_is_not_undone(
    synced: PushBed,
) -> None:
    """The push job extracts and stages (a contact's phone and a sale's memo edited in the
    source); before its push step runs, the bookkeeper changes the customer's email and the
    invoice's due date in QBO and a pull writes them into the source. The push step sends
    the phone and the memo only: QBO keeps the bookkeeper's values (before, the older
    snapshot sent the previous email and due date back over them, and no cycle noticed)."""
    env, realm, control = synced.env, synced.realm, synced.sandbox.control
    contact, customer = _linked(synced, "customers", "Customer")
    sale, invoice = _linked(synced, "invoices", "Invoice")
    _rows(env.source, "UPDATE app.contacts SET phone = '+1 555 0177' WHERE id = :i", i=contact)
    _rows(env.source, "UPDATE app.sales SET memo = 'source memo' WHERE id = :i", i=sale)
    snapshot = "push-job-run"
    entities = [e.name for e in catalogue.push_order()]
    for entity in entities:
        pipeline.extract(env, realm, entity, run_id=snapshot)
    for entity in entities:
        pipeline.stage(env, entity, run_id=snapshot, realm_id=realm)
    control.user_update(
        realm,
        "Customer",
        {"Id": customer, "PrimaryEmailAddr": {"Address": "bookkeeper@new.example"}, "sparse": True},
    )
    control.user_update(realm, "Invoice", {"Id": invoice, "DueDate": "2031-03-03", "sparse": True})
    pipeline.pull_all(env, realm, run_id="pull-between")
    for entity in entities:
        pipeline.push_staged(env, realm, entity, run_id=snapshot)
    qbo_customer = _customer(synced, customer)
    assert qbo_customer["PrimaryEmailAddr"]["Address"] == "bookkeeper@new.example"
    assert "0177" in qbo_customer["PrimaryPhone"]["FreeFormNumber"]
    qbo_invoice = _invoice(synced, invoice)
    assert qbo_invoice["DueDate"] == "2031-03-03"
    assert qbo_invoice["PrivateNote"] == "source memo"
    [(email,)] = _rows(env.source, "SELECT email FROM app.contacts WHERE id = :i", i=contact)
    assert email == "bookkeeper@new.example"
    _cycle(synced)  # the contact's invoices take the new address (R18)
    writes = _writes(synced)
    _cycle(synced)
    _cycle(synced)
    assert _writes(synced) == writes


def test_R5_R8_a_qbo_customer_whose_name_a_pending_push_holds_waits_noted_once(
    synced: PushBed,
) -> None:
    """The bookkeeper creates a QBO customer under the name a contact of ours is being created
    under (its write waits for QBO's answer): the pull holds the QBO customer with the reason and
    a fix, notes it in the ledger once per QBO version however often the pull runs, and links
    it once the name is free."""
    src, wh, realm = synced.env.source, synced.env.warehouse, synced.realm
    [(contact,)] = _rows(
        src,
        "INSERT INTO app.contacts (given_name, family_name) VALUES ('Zed', 'Holdings')"
        " RETURNING id",
    )
    _rows(
        wh,
        "INSERT INTO sync.record_state (realm_id, entity, source_id, status, name_key)"
        " VALUES (:r, 'customers', :s, 'pending', 'party:zed holdings')",
        r=realm,
        s=str(contact),
    )
    made = synced.sandbox.control.bulk_create(realm, "Customer", [{"DisplayName": "ZED Holdings"}])[
        0
    ]
    for run in ("pull-2", "pull-3", "pull-4"):
        pipeline.pull_all(synced.env, realm, run_id=run, full=run == "pull-4")
    [(reason, fix)] = _rows(
        wh,
        "SELECT reason, fix FROM sync.quarantine WHERE realm_id = :r AND entity = 'customers'"
        " AND source_id = :q AND resolved_at IS NULL",
        r=realm,
        q=f"qbo:{made['Id']}",
    )
    assert f"customers #{contact}" in reason
    assert "Rename one of them" in fix
    holds = _rows(
        wh,
        "SELECT count(*) FROM sync.ledger WHERE realm_id = :r AND entity = 'customers'"
        " AND direction = 'pull' AND operation = 'hold' AND qbo_id = :q",
        r=realm,
        q=made["Id"],
    )
    assert holds[0][0] == 1  # noted once, not once per pull
    assert not _rows(src, "SELECT 1 FROM app.contacts WHERE qbo_id = :q", q=made["Id"])

    # The name is free again (our write was refused, say): the next pull links it ...
    _rows(
        wh,
        "UPDATE sync.record_state SET name_key = NULL, status = 'failed' WHERE realm_id = :r"
        " AND entity = 'customers' AND source_id = :s",
        r=realm,
        s=str(contact),
    )
    pipeline.pull_all(synced.env, realm, run_id="pull-5")
    # ... matched to the contact whose name it carries (R5 from QBO's side), not a new one
    [(qbo_id, created_by)] = _rows(
        wh,
        "SELECT qbo_id, created_by FROM sync.record_state WHERE realm_id = :r"
        " AND entity = 'customers' AND source_id = :s",
        r=realm,
        s=str(contact),
    )
    assert (qbo_id, created_by) == (made["Id"], "matched")
    assert not _rows(src, "SELECT 1 FROM app.contacts WHERE qbo_id = :q", q=made["Id"])
    assert not _rows(
        wh,
        "SELECT 1 FROM sync.quarantine WHERE realm_id = :r AND source_id = :q"
        " AND resolved_at IS NULL",
        r=realm,
        q=f"qbo:{made['Id']}",
    )


def test_R16_R31_a_qbo_born_sale_edited_in_the_source_app_is_held_once_with_a_fix_until_qbo_rules(
    synced: PushBed,
) -> None:
    """A sale QBO created mirrors its invoice (R16: QBO owns it). An edit of it in the source
    app is never written to QBO, and is not skipped in silence either: it is held back with a
    reason and a fix, once however many runs re-plan it (R37), until the pull brings QBO's
    version back, which releases it."""
    env, realm, control = synced.env, synced.realm, synced.sandbox.control
    _, customer = linked_contact(env.warehouse, realm)
    line = {
        "Amount": 12,
        "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": {"ItemRef": {"value": "2"}, "Qty": 1, "UnitPrice": 12},
    }
    made = control.bulk_create(
        realm, "Invoice", [{"CustomerRef": {"value": customer}, "Line": [line]}]
    )[0]
    pipeline.pull_all(env, realm, run_id="pull-made")
    sale = _rows(env.source, "SELECT id FROM app.sales WHERE qbo_id = :q", q=made["Id"])[0][0]
    pipeline.push_all(env, realm, run_id="push-made")
    before = _writes(synced)
    _rows(env.source, "UPDATE app.sales SET memo = 'typed in the source' WHERE id = :i", i=sale)
    for run in ("push-edited", "push-again", "push-third"):
        pipeline.push_all(env, realm, run_id=run)
    assert _writes(synced) == before  # QBO owns it: nothing written there
    holds = _rows(
        env.warehouse,
        "SELECT error_code AS code, details FROM sync.ledger WHERE realm_id = :r"
        " AND entity = 'invoices'"
        " AND source_id = :s AND operation = 'hold'",
        r=realm,
        s=str(sale),
    )
    assert [h.code for h in holds] == ["invoices.mirror.edited_in_source"]  # once, not per run
    fix = holds[0].details["violations"][0]["fix"]
    assert "Make the change in QBO" in fix
    problems = _rows(
        env.warehouse,
        "SELECT rule FROM sync.quarantine WHERE realm_id = :r AND entity = 'invoices'"
        " AND source_id = :s AND resolved_at IS NULL",
        r=realm,
        s=str(sale),
    )
    assert [p.rule for p in problems] == ["invoices.mirror.edited_in_source"]
    # the bookkeeper edits the invoice in QBO: the pull replaces the source's version, and the
    # next push finds the sale in step again and releases the hold
    edit = {"Id": made["Id"], "PrivateNote": "QBO's", "sparse": True}
    control.user_update(realm, "Invoice", edit)
    pipeline.pull_all(env, realm, run_id="pull-qbo-edit")
    pipeline.push_all(env, realm, run_id="push-released")
    assert _writes(synced) == before
    memo = _rows(env.source, "SELECT memo FROM app.sales WHERE id = :i", i=sale)[0][0]
    assert memo != "typed in the source"
    status = _state(synced, "invoices", sale)[0]
    assert status == "synced"
    assert not _rows(
        env.warehouse,
        "SELECT 1 FROM sync.quarantine WHERE realm_id = :r AND entity = 'invoices'"
        " AND source_id = :s AND resolved_at IS NULL",
        r=realm,
        s=str(sale),
    )


def test_R7_R40_a_qbo_born_customer_whose_name_has_a_control_character_still_takes_source_edits(
    synced: PushBed,
) -> None:
    """QBO holds a customer named with a bell character; the pull brings it into the source
    app as QBO has it. An edit of its phone in the source is a sparse update that does not
    write the name, so the name's rule does not hold it back: the phone reaches QBO, the name
    is left as QBO has it, and nothing is held."""
    env, realm, control = synced.env, synced.realm, synced.sandbox.control
    made = control.bulk_create(realm, "Customer", [{"DisplayName": "Bel\x07la Trading"}])[0]
    pipeline.pull_all(env, realm, run_id="pull-bell")
    [contact] = _rows(env.source, "SELECT id FROM app.contacts WHERE qbo_id = :q", q=made["Id"])
    _rows(env.source, "UPDATE app.contacts SET phone = '555-0199' WHERE id = :i", i=contact.id)
    pipeline.push_all(env, realm, run_id="push-phone")
    customer = _customer(synced, made["Id"])
    assert customer["PrimaryPhone"]["FreeFormNumber"] == "555-0199"
    assert customer["DisplayName"] == "Bel\x07la Trading"
    assert not _rows(
        env.warehouse,
        "SELECT rule FROM sync.quarantine WHERE realm_id = :r AND entity = 'customers'"
        " AND source_id = :s",
        r=realm,
        s=str(contact.id),
    )


def test_R34_a_line_added_in_qbo_is_a_conflict_when_the_source_edits_its_lines_later(
    synced: PushBed,
) -> None:
    """The bookkeeper adds a line to a synced invoice in QBO; the pull keeps the sale's own
    lines (the source has no place for QBO's) and says QBO keeps QBO's. When the sale's lines
    are edited in the source later, the push's write replaces QBO's line set: both sides
    changed the lines since they last agreed, so that is a conflict recorded in the ledger
    with its policy (transactions: the source wins), never a silent overwrite (R34)."""
    sale, qbo_id = _unpaid_invoice(synced)
    invoice = _invoice(synced, qbo_id)
    lines = [line for line in invoice["Line"] if line["DetailType"] == "SalesItemLineDetail"]
    added = {k: v for k, v in lines[0].items() if k not in {"Id", "LineNum"}}
    added["Description"] = "added in QBO"
    synced.sandbox.control.user_update(
        synced.realm, "Invoice", {"Id": qbo_id, "sparse": True, "Line": [*lines, added]}
    )
    pipeline.pull_all(synced.env, synced.realm, run_id="pull-line")
    assert "added in QBO" in [line.get("Description") for line in _invoice(synced, qbo_id)["Line"]]
    _rows(
        synced.env.source,
        "UPDATE app.sale_lines SET description = 'edited in the source' WHERE sale_id = :s"
        " AND line_no = 1",
        s=sale,
    )
    pipeline.push_all(synced.env, synced.realm, run_id="push-line")
    after = [line.get("Description") for line in _invoice(synced, qbo_id)["Line"]]
    assert "edited in the source" in after  # the source wins the lines (its policy)
    conflicts = _rows(
        synced.env.warehouse,
        "SELECT details FROM sync.ledger WHERE realm_id = :r AND entity = 'invoices'"
        " AND source_id = :s AND run_id = 'push-line' AND operation = 'conflict'",
        r=synced.realm,
        s=str(sale),
    )
    assert len(conflicts) == 1
    assert "Line" in conflicts[0][0]["fields"]
    # once recorded, the next cycle writes nothing, and a later edit of the lines in the
    # source (QBO holds the source's lines now) is no conflict
    before = _writes(synced)
    _cycle(synced)
    assert _writes(synced) == before
    _rows(
        synced.env.source,
        "UPDATE app.sale_lines SET description = 'edited again' WHERE sale_id = :s"
        " AND line_no = 1",
        s=sale,
    )
    pipeline.push_all(synced.env, synced.realm, run_id="push-line-again")
    assert "edited again" in [line.get("Description") for line in _invoice(synced, qbo_id)["Line"]]
    again = _rows(
        synced.env.warehouse,
        "SELECT 1 FROM sync.ledger WHERE realm_id = :r AND entity = 'invoices'"
        " AND source_id = :s AND run_id = 'push-line-again' AND operation = 'conflict'",
        r=synced.realm,
        s=str(sale),
    )
    assert again == []


def test_R16_an_invoice_moved_to_another_customer_in_qbo_moves_its_sale_to_that_contact(
    synced: PushBed,
) -> None:
    """The bookkeeper moves a synced invoice to another customer in QBO: the pull moves the
    sale to the source contact that customer is linked to (the source has a place for it,
    ``contact_id``), so the sale and the contact's transaction list agree; the push after it
    writes nothing back (R35)."""
    env, realm, control = synced.env, synced.realm, synced.sandbox.control
    sale, invoice = _unpaid_invoice(synced)
    [before] = _rows(env.source, "SELECT contact_id FROM app.sales WHERE id = :i", i=sale)
    now = _invoice(synced, invoice)["CustomerRef"]["value"]
    other, customer = next(
        (int(s), str(q))
        for s, q in _rows(
            env.warehouse,
            "SELECT source_id, qbo_id FROM sync.record_state WHERE realm_id = :r"
            " AND entity = 'customers' AND status = 'synced' AND qbo_id <> :q"
            " ORDER BY source_id::int",
            r=realm,
            q=now,
        )
    )
    assert other != before.contact_id
    control.user_update(
        realm, "Invoice", {"Id": invoice, "CustomerRef": {"value": customer}, "sparse": True}
    )
    pipeline.pull_all(env, realm, run_id="pull-moved")
    [after] = _rows(env.source, "SELECT contact_id FROM app.sales WHERE id = :i", i=sale)
    assert after.contact_id == other
    listed = _rows(
        env.source,
        "SELECT contact_id FROM app.customer_transactions WHERE qbo_id = :q AND txn_type ="
        " 'Invoice'",
        q=invoice,
    )
    assert [r.contact_id for r in listed] == [other]
    token = _invoice(synced, invoice)["SyncToken"]
    writes = _writes(synced)
    pipeline.push_all(env, realm, run_id="push-after-move")
    assert _writes(synced) == writes
    assert _invoice(synced, invoice)["SyncToken"] == token
    assert _invoice(synced, invoice)["CustomerRef"]["value"] == customer


def test_R20_a_payment_moved_to_another_customer_in_qbo_moves_its_receipt_to_that_contact(
    synced: PushBed,
) -> None:
    """The bookkeeper moves a synced payment to another customer in QBO (QBO takes it only
    unapplied from the old customer's invoice, so its lines go too). Receipts have a contact
    of their own (``receipts.contact_id``; empty, a receipt follows its sale's), so the source
    has a place for it: the pull moves the receipt to the source contact that customer is
    linked to, as it moves a sale (R16), and the contact's transaction list names it there;
    the receipt keeps its sale (the source app has no place for QBO's unapplied lines). The
    push after it writes nothing back (R35)."""
    env, realm, control = synced.env, synced.realm, synced.sandbox.control
    receipt, payment = _linked(synced, "payments", "Payment")
    [before] = _rows(
        env.source,
        "SELECT coalesce(r.contact_id, s.contact_id) AS contact_id, r.sale_id FROM"
        " app.receipts r LEFT JOIN app.sales s ON s.id = r.sale_id WHERE r.id = :i",
        i=receipt,
    )
    now = _payment(synced, payment)["CustomerRef"]["value"]
    other, customer = next(
        (int(s), str(q))
        for s, q in _rows(
            env.warehouse,
            "SELECT source_id, qbo_id FROM sync.record_state WHERE realm_id = :r"
            " AND entity = 'customers' AND status = 'synced' AND qbo_id <> :q"
            " ORDER BY source_id::int",
            r=realm,
            q=now,
        )
    )
    assert other != before.contact_id
    control.user_update(
        realm,
        "Payment",
        {"Id": payment, "CustomerRef": {"value": customer}, "Line": [], "sparse": True},
    )
    pipeline.pull_all(env, realm, run_id="pull-moved")
    [after] = _rows(
        env.source, "SELECT contact_id, sale_id FROM app.receipts WHERE id = :i", i=receipt
    )
    assert (after.contact_id, after.sale_id) == (other, before.sale_id)
    listed = _rows(
        env.source,
        "SELECT contact_id FROM app.customer_transactions WHERE qbo_id = :q AND txn_type ="
        " 'Payment'",
        q=payment,
    )
    assert [r.contact_id for r in listed] == [other]
    token = _payment(synced, payment)["SyncToken"]
    writes = _writes(synced)
    pipeline.push_all(env, realm, run_id="push-after-move")
    assert _writes(synced) == writes
    assert _payment(synced, payment)["SyncToken"] == token
    assert _payment(synced, payment)["CustomerRef"]["value"] == customer
    assert not _rows(
        env.warehouse,
        "SELECT 1 FROM sync.ledger WHERE realm_id = :r AND entity = 'payments'"
        " AND source_id = :s AND outcome = 'failed'",
        r=realm,
        s=str(receipt),
    )


def test_R16_R31_a_held_sale_deleted_in_qbo_is_released_by_the_pull_that_takes_the_delete(
    synced: PushBed,
) -> None:
    """Two sales are held back from QBO: one QBO created, edited in the source app (QBO owns
    it), and one the sync created, whose document number the source made too long. The
    bookkeeper deletes both invoices in QBO. The pull takes the deletes (the source keeps both
    sales, R16) and releases both holds: no push writes either record again (a delete in QBO
    is never revived, R42), so no fix the holds ask for (make the change in QBO, shorten the
    number) can sync them, and the operator is not left with a problem no action resolves
    (R31). Before, both stayed open for ever. The pushes after write nothing and hold nothing."""
    env, realm, control = synced.env, synced.realm, synced.sandbox.control
    _, customer = linked_contact(env.warehouse, realm)
    line = {
        "Amount": 12,
        "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": {"ItemRef": {"value": "2"}, "Qty": 1, "UnitPrice": 12},
    }
    made = control.bulk_create(
        realm, "Invoice", [{"CustomerRef": {"value": customer}, "Line": [line]}]
    )[0]
    pipeline.pull_all(env, realm, run_id="pull-made")
    mirror = _rows(env.source, "SELECT id FROM app.sales WHERE qbo_id = :q", q=made["Id"])[0][0]
    own, invoice = _unpaid_invoice(synced)
    pipeline.push_all(env, realm, run_id="push-made")
    _rows(env.source, "UPDATE app.sales SET memo = 'typed here' WHERE id = :i", i=mirror)
    _rows(env.source, "UPDATE app.sales SET doc_number = :d WHERE id = :i", i=own, d="N" * 40)
    pipeline.push_all(env, realm, run_id="push-held")
    held = (
        "SELECT source_id, rule FROM sync.quarantine WHERE realm_id = :r AND entity = 'invoices'"
        " AND source_id IN (:a, :b) AND resolved_at IS NULL ORDER BY source_id"
    )
    assert {r.rule for r in _rows(env.warehouse, held, r=realm, a=str(mirror), b=str(own))} == {
        "invoices.mirror.edited_in_source",
        "sale.doc_number.too_long",
    }
    control.user_delete(realm, "Invoice", made["Id"])
    control.user_delete(realm, "Invoice", invoice)
    pipeline.pull_all(env, realm, run_id="pull-deletes")
    assert _rows(env.warehouse, held, r=realm, a=str(mirror), b=str(own)) == []
    for sale in (mirror, own):
        assert _state(synced, "invoices", sale)[:2] == ("deleted", True)
        assert _rows(env.source, "SELECT 1 FROM app.sales WHERE id = :i", i=sale)  # R16
    writes = _writes(synced)
    holds = "SELECT count(*) FROM sync.ledger WHERE realm_id = :r AND operation = 'hold'"
    logged = _rows(env.warehouse, holds, r=realm)[0][0]
    for run in ("push-after", "push-again"):
        pipeline.push_all(env, realm, run_id=run)
    pipeline.pull_all(env, realm, run_id="pull-after")
    assert _writes(synced) == writes
    assert _rows(env.warehouse, holds, r=realm)[0][0] == logged
    assert _rows(env.warehouse, held, r=realm, a=str(mirror), b=str(own)) == []


def test_R37_a_qbo_change_to_a_sale_held_back_is_recorded_once_not_on_every_pull(
    synced: PushBed,
) -> None:
    """A synced sale is held back from QBO (a tax rate with no QBO mapping, R12) when the
    bookkeeper edits its invoice in QBO. The pull cannot compare the two versions while the sale
    is held, so it leaves QBO's change for later and says so in the ledger: once for that QBO
    version, not again on every pull (the CDC pull runs every few minutes; before, each added
    the same row). A further QBO change is a new version and is told once again; once the
    mapping is added the change reaches the source."""
    env, realm, control = synced.env, synced.realm, synced.sandbox.control
    sale, invoice = _unpaid_invoice(synced)
    [(rate,)] = _rows(
        env.source, "INSERT INTO app.tax_rates (name, rate) VALUES ('Unmapped 9%', 9) RETURNING id"
    )
    _rows(
        env.source, "UPDATE app.sale_lines SET tax_rate_id = :t WHERE sale_id = :s", t=rate, s=sale
    )
    pipeline.push_all(env, realm, run_id="push-held")
    skips = (
        "SELECT run_id FROM sync.ledger WHERE realm_id = :r AND entity = 'invoices'"
        " AND source_id = :s AND direction = 'pull' AND operation = 'skip' ORDER BY id"
    )
    control.user_update(realm, "Invoice", {"Id": invoice, "PrivateNote": "QBO's", "sparse": True})
    for run in ("pull-a", "pull-b", "pull-c"):
        pipeline.pull_all(env, realm, run_id=run)
        pipeline.push_all(env, realm, run_id=f"push-{run}")
    assert [r.run_id for r in _rows(env.warehouse, skips, r=realm, s=str(sale))] == ["pull-a"]
    control.user_update(realm, "Invoice", {"Id": invoice, "PrivateNote": "QBO's 2", "sparse": True})
    for run in ("pull-d", "pull-e"):
        pipeline.pull_all(env, realm, run_id=run)
    assert [r.run_id for r in _rows(env.warehouse, skips, r=realm, s=str(sale))] == [
        "pull-a",
        "pull-d",
    ]
