"""Issue 9 ("Sync engine v2"): each observation 1-12 as a named test over the product path
(``pipeline.push_all``, the function the Dagster assets and the CLI call), the sandbox over
real HTTP and real Postgres. Each failed on the engine before v2.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa
from pushbed import PushBed

from qbo_pipelines import status
from qbo_pipelines.marts import run as marts_run
from qbo_pipelines.quality import gx_suites
from qbo_pipelines.sync import pipeline, push


def _sql(engine: sa.Engine, text: str, **params: object) -> list[Any]:
    with engine.begin() as conn:
        result = conn.execute(sa.text(text), params)
        return list(result) if result.returns_rows else []


def _state(bed: PushBed, entity: str, source_id: str) -> dict[str, Any]:
    rows = _sql(
        bed.env.warehouse,
        "SELECT * FROM sync.record_state WHERE realm_id = :r AND entity = :e AND source_id = :s",
        r=bed.realm,
        e=entity,
        s=str(source_id),
    )
    return dict(rows[0]._mapping) if rows else {}


def _qbo(bed: PushBed, kind: str, qbo_id: str) -> dict[str, Any]:
    return {e["Id"]: e for e in bed.sandbox.control.entities(bed.realm, kind)}[qbo_id]


def _synced_contact(bed: PushBed, n: int = 0) -> tuple[str, str]:
    rows = _sql(
        bed.env.warehouse,
        "SELECT source_id, qbo_id FROM sync.record_state WHERE realm_id = :r AND entity ="
        " 'customers' AND status = 'synced' AND created_by = 'sync'"
        " ORDER BY length(source_id), source_id",
        r=bed.realm,
    )
    return str(rows[n][0]), str(rows[n][1])


def _plain_invoice(bed: PushBed, with_payment: bool | None = None) -> tuple[str, str]:
    rows = _sql(
        bed.env.warehouse,
        "SELECT source_id, qbo_id FROM sync.record_state WHERE realm_id = :r AND entity ="
        " 'invoices' AND qbo_entity = 'Invoice' AND status = 'synced'"
        " ORDER BY length(source_id), source_id",
        r=bed.realm,
    )
    paid = {
        str(r[0])
        for r in _sql(
            bed.env.source, "SELECT DISTINCT sale_id FROM app.receipts WHERE sale_id IS NOT NULL"
        )
    }
    for sid, qid in rows:
        if with_payment is None or (str(sid) in paid) == with_payment:
            return str(sid), str(qid)
    raise AssertionError("no such invoice")


@pytest.fixture
def pushed(push_bed: PushBed) -> PushBed:
    pipeline.push_all(push_bed.env, push_bed.realm, run_id="first")
    return push_bed


# ------------------------------------------------------------------------------------ 1


def test_obs1_a_slow_transaction_with_a_lower_seq_is_never_skipped(pushed: PushBed) -> None:
    """The feed reads up to a commit-safe horizon: a transaction that took a lower change-log
    seq and commits after a later one is pushed by the next run, not skipped forever."""
    (slow_id, slow_qbo), (fast_id, fast_qbo) = (
        _synced_contact(pushed, 0),
        _synced_contact(pushed, 1),
    )
    slow = pushed.env.source.connect()
    tx = slow.begin()
    slow.execute(
        sa.text("UPDATE app.contacts SET phone = '+1 555 0001' WHERE id = :i"), {"i": int(slow_id)}
    )  # takes the lower seq, stays open
    _sql(
        pushed.env.source,
        "UPDATE app.contacts SET phone = '+1 555 0002' WHERE id = :i",
        i=int(fast_id),
    )
    # While the slow transaction runs, the feed's horizon stays below it: later changes wait
    # for it (a delay, never a loss), and status says what they wait for.
    pipeline.push_all(pushed.env, pushed.realm, run_id="during", only=["customers"])
    [report] = status.company_status(pushed.env.warehouse, pushed.env.source, pushed.realm)
    pid = slow.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    assert report.feed_blocked is not None
    assert f"pid {pid}" in report.feed_blocked
    assert "source changes wait behind a transaction still open" in status.render([report])
    tx.commit()
    slow.close()
    [report] = status.company_status(pushed.env.warehouse, pushed.env.source, pushed.realm)
    assert report.feed_blocked is None
    pipeline.push_all(pushed.env, pushed.realm, run_id="after", only=["customers"])
    assert _qbo(pushed, "Customer", slow_qbo)["PrimaryPhone"]["FreeFormNumber"] == "+1 555 0001"
    assert _qbo(pushed, "Customer", fast_qbo)["PrimaryPhone"]["FreeFormNumber"] == "+1 555 0002"


@pytest.mark.parametrize("mode", ["incremental", "full"])
def test_obs1_a_sale_deleted_in_the_source_loses_its_invoice(pushed: PushBed, mode: str) -> None:
    """Deletes are state-driven: a sale deleted in the source (with its receipts) has its QBO
    invoice and payments deleted, in incremental and in full mode (R17, R22)."""
    sale, invoice = _plain_invoice(pushed, with_payment=True)
    receipts = [
        str(r[0])
        for r in _sql(
            pushed.env.source, "SELECT id FROM app.receipts WHERE sale_id = :s", s=int(sale)
        )
    ]
    _sql(pushed.env.source, "DELETE FROM app.receipts WHERE sale_id = :s", s=int(sale))
    _sql(pushed.env.source, "DELETE FROM app.sale_lines WHERE sale_id = :s", s=int(sale))
    _sql(pushed.env.source, "DELETE FROM app.sales WHERE id = :s", s=int(sale))
    for run in range(2):  # the invoice delete waits for its payments' deletes at most one run
        _sql(
            pushed.env.warehouse,
            "UPDATE sync.record_state SET retry_at = now() - interval"
            " '1 second' WHERE realm_id = :r AND retry_at IS NOT NULL",
            r=pushed.realm,
        )
        pipeline.push_all(pushed.env, pushed.realm, run_id=f"del{run}", mode=mode)  # type: ignore[arg-type]
    ids = {e["Id"] for e in pushed.sandbox.control.entities(pushed.realm, "Invoice")}
    assert invoice not in ids
    payment_ids = {_state(pushed, "payments", r).get("qbo_id") for r in receipts}
    assert not payment_ids & {
        e["Id"] for e in pushed.sandbox.control.entities(pushed.realm, "Payment")
    }
    assert _state(pushed, "invoices", sale)["status"] == "deleted"


# ------------------------------------------------------------------------------------ 2


def _contact_with_sale(bed: PushBed, name: str) -> str:
    rows = _sql(
        bed.env.source,
        "WITH o AS (INSERT INTO app.organisations (name) VALUES (:n) RETURNING id),"
        " c AS (INSERT INTO app.contacts (organisation_id, given_name, family_name, email)"
        " SELECT id, 'Ann', 'Lee', 'ann@example.com' FROM o RETURNING id)"
        " SELECT id FROM c",
        n=name,
    )
    contact = str(rows[0][0])
    template = _sql(bed.env.source, "SELECT id FROM app.sales ORDER BY id LIMIT 1")[0][0]
    _sql(
        bed.env.source,
        "WITH s AS (INSERT INTO app.sales (doc_number, contact_id, txn_date, due_date, currency,"
        " memo, send_requested, subtotal, discount_total, tax_total, total)"
        " SELECT 'X-' || :c, :c, txn_date, due_date, currency, 'collision', false, subtotal,"
        " discount_total, tax_total, total FROM app.sales WHERE id = :t RETURNING id)"
        " INSERT INTO app.sale_lines (sale_id, line_no, kind, description, product_id, qty,"
        " unit_price, amount, tax_rate_id, discount_percent, group_name)"
        " SELECT s.id, l.line_no, l.kind, l.description, l.product_id, l.qty, l.unit_price,"
        " l.amount, l.tax_rate_id, l.discount_percent, l.group_name"
        " FROM app.sale_lines l, s WHERE l.sale_id = :t",
        c=int(contact),
        t=template,
    )
    return contact


@pytest.mark.parametrize("chunk", [2000, 3])
def test_obs2_a_name_collision_is_held_never_a_crash(
    pushed: PushBed, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two records QBO treats as one name (case, spaces): the second is held with a reason
    and a fix, every later run completes, invoices still run; across chunks and in full mode."""
    monkeypatch.setattr(push, "CHUNK", chunk)
    first = _contact_with_sale(pushed, "Acme Collision Ltd")
    second = _contact_with_sale(pushed, "  ACME collision LTD ")
    for run, mode in enumerate(["incremental", "incremental", "full"]):
        report = pipeline.push_all(pushed.env, pushed.realm, run_id=f"c{run}", mode=mode)  # type: ignore[arg-type]
        assert report.totals()["failed"] == 0
    assert _state(pushed, "customers", first)["status"] == "synced"
    held = _state(pushed, "customers", second)
    assert held["status"] == "held"
    assert held["qbo_id"] is None
    rule, fix = _sql(
        pushed.env.warehouse,
        "SELECT rule, fix FROM sync.quarantine WHERE"
        " realm_id = :r AND entity = 'customers' AND source_id = :s"
        " AND resolved_at IS NULL",
        r=pushed.realm,
        s=second,
    )[0]
    assert rule == "customer.display_name.duplicate"
    assert "Rename" in fix
    names = [
        c["DisplayName"].strip().casefold()
        for c in pushed.sandbox.control.entities(pushed.realm, "Customer")
    ]
    assert names.count("acme collision ltd") == 1


def test_obs2_a_name_the_chunk_before_is_still_writing_is_held_not_refused(
    pushed: PushBed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A push is one stream of calls: a chunk is admitted while the creates of the chunk
    before are still in flight (QBO answers slowly here), so neither our records nor QBO hold
    the name yet. The name a record is still being written under counts as that record's:
    the second record is held with the reason and the fix, not sent to be refused with 6240."""
    monkeypatch.setattr(push, "CHUNK", 1)
    first = _contact_with_sale(pushed, "Inflight Collision Ltd")
    second = _contact_with_sale(pushed, " INFLIGHT collision ltd")
    pushed.sandbox.control.set_latency(0.5)
    try:
        [report] = pipeline.push_all(
            pushed.env, pushed.realm, run_id="inflight", only=["customers"]
        ).reports
    finally:
        pushed.sandbox.control.set_latency(0)
    counts = report.as_metadata()
    assert counts["failed"] == 0, report.failures
    assert counts["created"] == 1, counts
    assert _state(pushed, "customers", first)["status"] == "synced"
    assert _state(pushed, "customers", second)["status"] == "held"
    rule, reason = _sql(
        pushed.env.warehouse,
        "SELECT rule, reason FROM sync.quarantine WHERE"
        " realm_id = :r AND entity = 'customers' AND source_id = :s AND resolved_at IS NULL",
        r=pushed.realm,
        s=second,
    )[0]
    assert rule == "customer.display_name.duplicate"
    assert f"#{first}" in reason
    names = [
        c["DisplayName"].strip().casefold()
        for c in pushed.sandbox.control.entities(pushed.realm, "Customer")
    ]
    assert names.count("inflight collision ltd") == 1


# ------------------------------------------------------------------------------------ 3


def test_obs3_a_lost_answer_then_a_different_batch_makes_no_duplicate(push_bed: PushBed) -> None:
    """QBO commits a batch whose answer is lost (every retry too); before the next run, other
    receipts change, so a re-planned batch would differ. The open intent is replayed verbatim:
    no duplicate payment, none missing (R33)."""
    bed = push_bed
    pipeline.push_all(bed.env, bed.realm, run_id="prep", only=["customers", "items", "invoices"])
    # QBO commits the first batch and the answer is lost; every retry meets a 503.
    bed.sandbox.control.inject_fault(
        kind="drop_after_commit", realm_id=bed.realm, path="batch", count=1
    )
    bed.sandbox.control.inject_fault(
        kind="server_error", realm_id=bed.realm, path="batch", count=50, status=503
    )
    lost = pipeline.push_all(bed.env, bed.realm, run_id="lost", only=["payments"])
    assert lost.totals()["pending"] > 0
    bed.sandbox.control.clear_faults()
    _sql(
        bed.env.source,
        "UPDATE app.receipts SET reference = 'changed' WHERE id IN"
        " (SELECT id FROM app.receipts ORDER BY id DESC LIMIT 3)",
    )
    again = pipeline.push_all(bed.env, bed.realm, run_id="again", only=["payments"])
    assert again.totals()["replayed"] > 0
    refs = Counter(
        p.get("PaymentRefNum") or p["Id"]
        for p in bed.sandbox.control.entities(bed.realm, "Payment")
    )
    ours = _sql(
        bed.env.warehouse,
        "SELECT count(*) FROM sync.record_state WHERE realm_id = :r"
        " AND entity = 'payments' AND qbo_id IS NOT NULL",
        r=bed.realm,
    )[0][0]
    payments = bed.sandbox.control.entities(bed.realm, "Payment")
    assert len(payments) == ours, "every QBO payment is one of ours, none twice"
    assert len({p["Id"] for p in payments}) == len(payments)
    assert sum(refs.values()) == len(payments)


# ------------------------------------------------------------------------------------ 4


def test_obs4_update_requestids_include_the_base_version(pushed: PushBed) -> None:
    """A field going A -> B -> A makes three real writes (the third is not a replay)."""
    sale, invoice = _plain_invoice(pushed)
    for run, memo in enumerate(["A", "B", "A"]):
        _sql(pushed.env.source, "UPDATE app.sales SET memo = :m WHERE id = :s", m=memo, s=int(sale))
        pipeline.push_all(pushed.env, pushed.realm, run_id=f"memo{run}", only=["invoices"])
        assert _qbo(pushed, "Invoice", invoice)["PrivateNote"] == memo


# ------------------------------------------------------------------------------------ 6


def test_obs6_a_cleared_field_reaches_qbo(pushed: PushBed) -> None:
    """A phone set to NULL in the source is cleared in QBO (not "unchanged")."""
    contact, customer = _synced_contact(pushed)
    _sql(
        pushed.env.source,
        "UPDATE app.contacts SET phone = '+1 555 0303' WHERE id = :i",
        i=int(contact),
    )
    pipeline.push_all(pushed.env, pushed.realm, run_id="set", only=["customers"])
    assert _qbo(pushed, "Customer", customer)["PrimaryPhone"]["FreeFormNumber"] == "+1 555 0303"
    _sql(pushed.env.source, "UPDATE app.contacts SET phone = NULL WHERE id = :i", i=int(contact))
    report = pipeline.push_all(pushed.env, pushed.realm, run_id="clear", only=["customers"])
    assert report.totals()["updated"] == 1
    assert not (_qbo(pushed, "Customer", customer).get("PrimaryPhone") or {}).get("FreeFormNumber")


# ------------------------------------------------------------------------------------ 7


def test_obs7_a_contact_whose_first_sale_comes_later_is_pushed(pushed: PushBed) -> None:
    """R4: a contact is pushed once it has a sale, even when the sale comes later."""
    lonely = _sql(
        pushed.env.source,
        "SELECT id FROM app.contacts c WHERE NOT EXISTS"
        " (SELECT 1 FROM app.sales s WHERE s.contact_id = c.id)"
        " AND organisation_id IS NULL ORDER BY id LIMIT 1",
    )
    contact = str(lonely[0][0])
    assert not _state(pushed, "customers", contact).get("qbo_id")
    sale = _sql(
        pushed.env.source,
        "SELECT id FROM app.sales s WHERE NOT EXISTS (SELECT 1 FROM"
        " app.sale_lines l JOIN app.tax_rates t ON t.id = l.tax_rate_id WHERE"
        " l.sale_id = s.id AND t.name = 'Luxury 25%') ORDER BY id LIMIT 1",
    )[0][0]
    new = _sql(
        pushed.env.source,
        "INSERT INTO app.sales (doc_number, contact_id, txn_date, due_date, currency,"
        " memo, send_requested, subtotal, discount_total, tax_total, total)"
        " SELECT 'LATER-1', :c, txn_date, due_date, currency, memo, false, subtotal,"
        " discount_total, tax_total, total FROM app.sales WHERE id = :t RETURNING id",
        c=int(contact),
        t=sale,
    )[0][0]
    _sql(
        pushed.env.source,
        "INSERT INTO app.sale_lines (sale_id, line_no, kind, description, product_id, qty,"
        " unit_price, amount, tax_rate_id, discount_percent, group_name)"
        " SELECT :n, line_no, kind, description, product_id, qty, unit_price, amount,"
        " tax_rate_id, discount_percent, group_name FROM app.sale_lines WHERE sale_id = :t",
        n=new,
        t=sale,
    )
    pipeline.push_all(pushed.env, pushed.realm, run_id="later")
    assert _state(pushed, "customers", contact)["status"] == "synced"
    assert _state(pushed, "invoices", str(new))["status"] == "synced"


# ------------------------------------------------------------------------------------ 8


def test_obs8_refused_records_are_reported_with_a_fix_and_retried(pushed: PushBed) -> None:
    """A write QBO refuses is failed with a fix (one open problem per record), retried when
    due, and its notification is resolved once it syncs (R31)."""
    sale, invoice = _plain_invoice(pushed, with_payment=False)
    pushed.sandbox.control.inject_fault(
        kind="fault",
        realm_id=pushed.realm,
        path="batch",
        count=1,
        status=400,
        code="6000",
        message="A business validation error has occurred",
    )
    _sql(pushed.env.source, "UPDATE app.sales SET memo = 'refused once' WHERE id = :s", s=int(sale))
    refused = pipeline.push_all(pushed.env, pushed.realm, run_id="refused", only=["invoices"])
    assert refused.totals()["failed"] == 1
    st = _state(pushed, "invoices", sale)
    assert st["status"] == "failed"
    assert st["fix"]
    assert st["retry_at"] is not None
    built = marts_run.run("run", pushed.env.warehouse.url, select=["+open_problems"])
    assert built.success, built.summary()  # a dbt view: it follows sync.* from now on
    problems = _sql(
        pushed.env.warehouse,
        "SELECT kind, fix FROM marts.open_problems WHERE"
        " realm_id = :r AND entity = 'invoices' AND record_id = :s",
        r=pushed.realm,
        s=sale,
    )
    assert len(problems) == 1
    assert problems[0][1]
    again = pipeline.push_all(pushed.env, pushed.realm, run_id="not-due", only=["invoices"])
    assert again.totals()["updated"] == 0  # not due yet: no call
    _sql(
        pushed.env.warehouse,
        "UPDATE sync.record_state SET retry_at = now() WHERE"
        " realm_id = :r AND entity = 'invoices' AND source_id = :s",
        r=pushed.realm,
        s=sale,
    )
    retried = pipeline.push_all(pushed.env, pushed.realm, run_id="retried", only=["invoices"])
    assert retried.totals()["updated"] == 1
    assert _qbo(pushed, "Invoice", invoice)["PrivateNote"] == "refused once"
    assert not _sql(
        pushed.env.warehouse,
        "SELECT 1 FROM sync.notifications WHERE realm_id = :r"
        " AND entity = 'invoices' AND record_id = :s AND resolved_at IS NULL",
        r=pushed.realm,
        s=sale,
    )


def test_obs8_a_payment_over_the_open_balance_fails_with_its_likely_cause_and_the_rest_sync(
    pushed: PushBed,
) -> None:
    """QBO refuses a payment larger than what is still open on its invoice with its generic
    business fault (6000). Only QBO knows the open balance (payments entered there count too),
    so the write is made; the refusal names the likely cause and the fix, and a good receipt
    in the same batch syncs."""
    over_sale, _ = _plain_invoice(pushed, with_payment=False)
    unpaid = [
        s
        for (s,) in _sql(
            pushed.env.warehouse,
            "SELECT source_id FROM sync.record_state WHERE realm_id = :r AND entity = 'invoices'"
            " AND qbo_entity = 'Invoice' AND status = 'synced' AND source_id <> :s",
            r=pushed.realm,
            s=over_sale,
        )
        if not _sql(pushed.env.source, "SELECT 1 FROM app.receipts WHERE sale_id = :s", s=int(s))
    ]
    ids = {}
    for label, sale, extra in (("over", over_sale, 100), ("good", unpaid[0], 0)):
        ids[label] = _sql(
            pushed.env.source,
            "INSERT INTO app.receipts (sale_id, amount, received_on)"
            " SELECT id, CASE WHEN :x > 0 THEN total + :x ELSE round(total / 2, 2) END,"
            " txn_date FROM app.sales WHERE id = :s RETURNING id",
            s=int(sale),
            x=extra,
        )[0][0]
    report = pipeline.push_all(pushed.env, pushed.realm, run_id="over", only=["payments"])
    assert report.totals()["created"] == 1
    assert report.totals()["failed"] == 1
    assert _state(pushed, "payments", str(ids["good"]))["status"] == "synced"
    st = _state(pushed, "payments", str(ids["over"]))
    assert (st["status"], st["error_code"]) == ("failed", "6000")
    assert "larger than what is still open" in st["fix"]
    [(message, fix)] = _sql(
        pushed.env.warehouse,
        "SELECT error_message, details ->> 'fix' FROM sync.ledger WHERE run_id = 'over'"
        " AND entity = 'payments' AND source_id = :s AND outcome = 'failed'",
        s=str(ids["over"]),
    )
    assert "open balance" in message  # QBO's own words are kept beside the fix
    assert fix == st["fix"]
    # The person deletes the refused receipt instead: nothing of it is in QBO, so the next
    # push records the delete at once (not after the refused create's backoff), no call made.
    _sql(pushed.env.source, "DELETE FROM app.receipts WHERE id = :i", i=ids["over"])
    writes = pushed.write_calls()
    pipeline.push_all(pushed.env, pushed.realm, run_id="deleted", only=["payments"])
    assert _state(pushed, "payments", str(ids["over"]))["status"] == "deleted"
    assert pushed.write_calls() == writes
    assert not _sql(
        pushed.env.warehouse,
        "SELECT 1 FROM sync.notifications WHERE realm_id = :r AND entity = 'payments'"
        " AND record_id = :s AND resolved_at IS NULL",
        r=pushed.realm,
        s=str(ids["over"]),
    )


# ------------------------------------------------------------------------------------ 9


def test_obs9_two_pushes_of_one_company_never_interleave(push_bed: PushBed) -> None:
    """Two pushes of one company at once (e.g. the CLI during a sensor's run): the company's
    writer lock serialises them; nothing is created twice."""
    errors: list[BaseException] = []

    def run(tag: str) -> None:
        try:
            pipeline.push_all(push_bed.env, push_bed.realm, run_id=tag)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(f"t{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for kind, entity in (
        ("Invoice", "invoices"),
        ("Payment", "payments"),
        ("Customer", "customers"),
    ):
        ours = _sql(
            push_bed.env.warehouse,
            "SELECT count(*) FROM sync.record_state WHERE"
            " realm_id = :r AND entity = :e AND qbo_id IS NOT NULL AND created_by ="
            " 'sync'",
            r=push_bed.realm,
            e=entity,
        )[0][0]
        docs = [x.get("DocNumber") for x in push_bed.sandbox.control.entities(push_bed.realm, kind)]
        assert len([d for d in docs if d]) == len({d for d in docs if d}), kind
        created = _sql(
            push_bed.env.warehouse,
            "SELECT count(*) FROM sync.ledger WHERE"
            " realm_id = :r AND entity = :e AND operation = 'create' AND outcome ="
            " 'ok'",
            r=push_bed.realm,
            e=entity,
        )[0][0]
        assert ours == created, (kind, ours, created)


def test_obs9_R40_a_stage_whose_batch_a_concurrent_run_took_meanwhile_checks_nothing(
    push_bed: PushBed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two pushes of one company at once (two `make demo` at once did it): run A staged its
    bills and counted its batch; run B then read and staged the same bills, which moves their
    staging rows to B; A's Great Expectations checkpoint then found no batch of A's and the
    step failed (NoAvailableBatchesError), failing A's run. A's batch is B's to check now: A's
    stage checks nothing and passes, B's checks the bills, and A's push writes nothing of
    them (they are no longer its own). The interleaving is made exact by running B's extract
    and stage, the real ones, at the moment A's checkpoint is built, after A counted its
    batch."""
    env, realm = push_bed.env, push_bed.realm
    pipeline.extract(env, realm, "bills", run_id="A", mode="full")
    real = gx_suites._checkpoint
    interleaved: list[str] = []

    def b_runs_first(engine: sa.Engine, entity: str) -> Any:
        if entity == "bills" and not interleaved:
            interleaved.append("B")
            pipeline.extract(env, realm, "bills", run_id="B", mode="full")
            b_stage = pipeline.stage(env, "bills", run_id="B", realm_id=realm)
            interleaved.append(f"B staged {b_stage.staged}")
        return real(engine, entity)

    monkeypatch.setattr(gx_suites, "_checkpoint", b_runs_first)
    a_stage = pipeline.stage(env, "bills", run_id="A", realm_id=realm)
    assert interleaved[0] == "B", interleaved
    assert interleaved[1] != "B staged 0", interleaved
    assert a_stage.staged > 0, "A staged its bills before B took them"
    assert a_stage.suite.success
    assert a_stage.suite.batch_rows == 0, "nothing of A's batch was left to check"
    ledger = _sql(
        env.warehouse,
        "SELECT count(*) FROM sync.ledger WHERE realm_id = :r AND entity = 'bills'",
        r=realm,
    )[0][0]
    a_push = pipeline.push_staged(env, realm, "bills", run_id="A")
    assert a_push.counts.get("created", 0) == 0
    assert (
        _sql(
            env.warehouse,
            "SELECT count(*) FROM sync.ledger WHERE realm_id = :r AND entity = 'bills'",
            r=realm,
        )[0][0]
        == ledger
    ), "A's push wrote nothing of the bills B owns"


# ------------------------------------------------------------------------------------ 10


def test_obs10_no_source_transaction_stays_open_across_http(push_bed: PushBed) -> None:
    """While QBO calls are in flight (slowed down), no source-database session of ours is
    idle in a transaction."""
    push_bed.sandbox.control.inject_fault(
        kind="timeout",
        realm_id=push_bed.realm,
        path="batch",
        count=3,
        delay_seconds=0.5,
        status=200,
    )
    seen: list[str] = []
    stop = threading.Event()
    db = push_bed.env.source.url.database

    def watch() -> None:
        with push_bed.env.warehouse.connect() as conn:
            while not stop.is_set():
                rows = conn.execute(
                    sa.text(
                        "SELECT state FROM pg_stat_activity WHERE datname = :d"
                        " AND state = 'idle in transaction'"
                        " AND now() - state_change > interval '300 milliseconds'"
                    ),
                    {"d": db},
                ).all()
                seen.extend(r[0] for r in rows)
                conn.rollback()
                time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        pipeline.push_all(push_bed.env, push_bed.realm, run_id="watched")
    finally:
        stop.set()
        watcher.join()
    assert seen == []


# ------------------------------------------------------------------------------------ 11


def test_obs11_hostile_values_hold_one_record_never_the_company(pushed: PushBed) -> None:
    """A control character in a name and a sale dated in year 10000 are held with a reason
    and a fix; the run completes and other records keep syncing."""
    contact, _ = _synced_contact(pushed)
    bell = _contact_with_sale(pushed, "Bell\x07 Ltd")
    sale, invoice = _plain_invoice(pushed)
    _sql(
        pushed.env.source,
        "UPDATE app.sales SET txn_date = '10000-01-01' WHERE id = (SELECT max(id) FROM app.sales)",
    )
    _sql(
        pushed.env.source, "UPDATE app.sales SET memo = 'still syncing' WHERE id = :s", s=int(sale)
    )
    report = pipeline.push_all(pushed.env, pushed.realm, run_id="hostile")
    assert report.totals()["held_back"] >= 2
    assert _state(pushed, "customers", bell)["status"] == "held"
    assert _qbo(pushed, "Invoice", invoice)["PrivateNote"] == "still syncing"
    rows = _sql(
        pushed.env.warehouse,
        "SELECT fix FROM sync.quarantine WHERE realm_id = :r"
        " AND source_id = :s AND entity = 'customers' AND resolved_at IS NULL",
        r=pushed.realm,
        s=bell,
    )
    assert rows
    assert all(r[0] for r in rows)
    assert contact


# ------------------------------------------------------------------------------------ 12


def _pay(bed: PushBed, sale: str) -> None:
    """A receipt of 10.00 moved onto ``sale`` in the source, pushed: QBO's payment now applies
    to the sale's invoice (its Balance and LinkedTxn move)."""
    receipt = _sql(bed.env.source, "SELECT id FROM app.receipts ORDER BY id LIMIT 1")[0][0]
    _sql(
        bed.env.source,
        "UPDATE app.receipts SET sale_id = :s, amount = 10, contact_id = (SELECT"
        " contact_id FROM app.sales WHERE id = :s) WHERE id = :r",
        s=int(sale),
        r=receipt,
    )
    assert pipeline.push_all(bed.env, bed.realm, run_id="payment").totals()["updated"] == 1


def test_obs12_a_bookkeeper_edit_after_a_payment_is_not_overwritten(pushed: PushBed) -> None:
    """Refreshing invoice SyncTokens after payments never adopts a bookkeeper's concurrent edit:
    the next source change meets it as a conflict (recorded), not a silent overwrite."""
    sale, invoice = _plain_invoice(pushed, with_payment=False)
    pushed.sandbox.control.user_update(
        pushed.realm, "Invoice", {"Id": invoice, "sparse": True, "PrivateNote": "bk"}
    )
    _pay(pushed, sale)
    _sql(pushed.env.source, "UPDATE app.sales SET memo = 'source memo' WHERE id = :s", s=int(sale))
    report = pipeline.push_all(pushed.env, pushed.realm, run_id="edit")
    assert report.totals()["conflicts"] == 1
    assert (
        _sql(
            pushed.env.warehouse,
            "SELECT count(*) FROM sync.ledger WHERE run_id = 'edit'"
            " AND outcome = 'conflict' AND source_id = :s",
            s=sale,
        )[0][0]
        == 1
    )


def test_obs12_an_invoice_a_payment_moved_takes_its_new_synctoken(pushed: PushBed) -> None:
    """The other half: with no edit in QBO, the invoice a pushed payment moved (its Balance and
    LinkedTxn; its SyncToken too where QBO bumps it) keeps QBO's current SyncToken in the
    sync's state, so the next source change updates it cleanly (no conflict, no 5010)."""
    sale, invoice = _plain_invoice(pushed, with_payment=False)
    _pay(pushed, sale)
    now = {e["Id"]: e for e in pushed.sandbox.control.entities(pushed.realm, "Invoice")}[invoice]
    token = _sql(
        pushed.env.warehouse,
        "SELECT sync_token FROM sync.record_state WHERE realm_id = :r AND entity = 'invoices'"
        " AND source_id = :s",
        r=pushed.realm,
        s=sale,
    )[0][0]
    assert now["Balance"] < now["TotalAmt"]
    assert token == now["SyncToken"]
    _sql(pushed.env.source, "UPDATE app.sales SET memo = 'source memo' WHERE id = :s", s=int(sale))
    report = pipeline.push_all(pushed.env, pushed.realm, run_id="edit")
    assert report.totals()["conflicts"] == 0
    assert report.totals()["updated"] == 1
    now = {e["Id"]: e for e in pushed.sandbox.control.entities(pushed.realm, "Invoice")}[invoice]
    assert now["PrivateNote"] == "source memo"
