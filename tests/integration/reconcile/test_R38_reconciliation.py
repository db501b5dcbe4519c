"""R38: the nightly reconciliation, through the Dagster job and the CLI, over the sandbox's real
HTTP and real Postgres, after a full two-way sync.

Drift is injected the ways it happens: in QBO by a person (a payment deleted, an invoice's
amount changed: the sandbox's user edits, seen by CDC like any change, but not pulled yet), and
in the source app by writes the sync's change feed never saw (a bulk fix made in the sync's own
session: an amount changed and a missing invoice), plus a source invoice whose QBO twin a
person deleted. The run repairs what the engine may (re-push, re-pull; checked on both sides),
reports the rest (findings, notifications, marts.open_problems), and a second run repairs
nothing and writes nothing to QBO.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from reconcilebed import ReconcileBed

from qbo_pipelines.canonical import RealmId
from qbo_pipelines.cli import main
from qbo_pipelines.defs.reconcile import nightly_reconciliation_schedule
from qbo_pipelines.demo import setup


def _one(bed: ReconcileBed, sql: str, **params: object) -> Any:
    rows = bed.rows(bed.env.warehouse, sql, **params)
    return rows[0] if rows else None


def _unpaid_invoices(bed: ReconcileBed, n: int) -> list[tuple[str, str]]:
    rows = bed.rows(
        bed.env.warehouse,
        "SELECT s.source_id, s.qbo_id FROM sync.record_state s JOIN raw_qbo.invoices i"
        " ON i.realm_id = s.realm_id AND i.qbo_id = s.qbo_id WHERE s.realm_id = :r"
        " AND s.entity = 'invoices' AND s.status = 'synced' AND s.created_by = 'sync'"
        " AND i.balance = i.total_amt ORDER BY s.source_id::int LIMIT :n",
        r=bed.realm,
        n=n,
    )
    return [(str(a), str(b)) for a, b in rows]


def _inject(bed: ReconcileBed) -> dict[str, str]:
    ctl, realm = bed.sandbox.control, bed.realm
    changed_qbo, twin_deleted = _unpaid_invoices(bed, 2)
    payment = _one(
        bed,
        "SELECT source_id, qbo_id FROM sync.record_state WHERE realm_id = :r"
        " AND entity = 'payments' AND status = 'synced' AND created_by = 'sync'"
        " ORDER BY source_id::int LIMIT 1",
        r=realm,
    )
    # In QBO: a payment deleted; an invoice's first line raised by 100.
    ctl.user_delete(realm, "Payment", str(payment[1]))
    invoice = next(o for o in ctl.entities(realm, "Invoice") if o["Id"] == changed_qbo[1])
    lines = invoice["Line"]
    first = next(ln for ln in lines if ln.get("DetailType") == "SalesItemLineDetail")
    first["Amount"] = float(first["Amount"]) + 100
    first["SalesItemLineDetail"].pop("UnitPrice", None)
    first["SalesItemLineDetail"].pop("Qty", None)
    ctl.user_update(realm, "Invoice", {"Id": invoice["Id"], "Line": lines, "sparse": True})
    # A source invoice's QBO twin deleted by a person.
    ctl.user_delete(realm, "Invoice", twin_deleted[1])
    # In the source, in the sync's own session (the change feed skips it, R35): an untaxed
    # sale's amount changed, and a sale inserted.
    untaxed = bed.rows(
        bed.env.source,
        "SELECT l.sale_id, l.id FROM app.sale_lines l JOIN app.sales s ON s.id = l.sale_id"
        " WHERE l.kind = 'item' AND l.tax_rate_id IS NULL AND l.amount > 0"
        " AND s.origin = 'source' AND s.total > 0 AND s.id <> ALL(:skip) AND NOT EXISTS"
        " (SELECT 1 FROM app.receipts r WHERE r.sale_id = s.id) ORDER BY s.id, l.id",
        skip=[int(changed_qbo[0]), int(twin_deleted[0])],
    )
    synced = {
        str(r[0])
        for r in bed.rows(
            bed.env.warehouse,
            "SELECT source_id FROM sync.record_state WHERE realm_id = :r AND entity ="
            " 'invoices' AND status = 'synced'",
            r=realm,
        )
    }
    amount_sale, line = next((str(r[0]), int(r[1])) for r in untaxed if str(r[0]) in synced)
    with bed.env.source.begin() as conn:
        run = conn.exec_driver_sql
        run("SELECT set_config('qbo_pipelines.origin', 'sync', true)")
        run(
            "UPDATE app.sale_lines SET amount = amount + 7, unit_price = NULL, qty = NULL"
            " WHERE id = %s",
            (line,),
        )
        run(
            "UPDATE app.sales SET subtotal = subtotal + 7, total = total + 7 WHERE id = %s",
            (int(amount_sale),),
        )
        missing: object = run(
            "INSERT INTO app.sales (doc_number, contact_id, txn_date, subtotal, total)"
            " SELECT 'RECON-1', contact_id, txn_date, 50, 50 FROM app.sales WHERE id = %s"
            " RETURNING id",
            (int(amount_sale),),
        ).scalar_one()
        run(
            "INSERT INTO app.sale_lines (sale_id, line_no, kind, description, product_id, qty,"
            " unit_price, amount) SELECT %s, 1, 'item', 'reconciled', product_id, 1, 50, 50"
            " FROM app.sale_lines WHERE id = %s",
            (missing, line),
        )
    return {
        "payment": str(payment[0]),
        "payment_qbo": str(payment[1]),
        "changed_qbo": changed_qbo[0],
        "changed_qbo_id": changed_qbo[1],
        "twin_deleted": twin_deleted[0],
        "amount_sale": amount_sale,
        "missing": str(missing),
    }


def _findings(bed: ReconcileBed, run_id: str) -> dict[tuple[str, str, str, str], Any]:
    rows = bed.rows(
        bed.env.warehouse,
        "SELECT entity, record_id, kind, field, action, repaired, fix FROM"
        " marts.reconciliation_findings WHERE run_id = :run",
        run=run_id,
    )
    return {(r.entity, r.record_id, r.kind, r.field): r for r in rows}


def _qbo_invoice(bed: ReconcileBed, sale: str) -> dict[str, Any] | None:
    qbo_id = _one(
        bed,
        "SELECT qbo_id FROM sync.record_state WHERE realm_id = :r AND entity = 'invoices'"
        " AND source_id = :s AND status = 'synced'",
        r=bed.realm,
        s=sale,
    )
    if qbo_id is None:
        return None
    found = [o for o in bed.sandbox.control.entities(bed.realm, "Invoice") if o["Id"] == qbo_id[0]]
    return found[0] if found else None


def test_R38_reconcile_job_repairs_the_safe_drift_reports_the_rest_and_reruns_clean(
    bed: ReconcileBed, tmp_path: Path
) -> None:
    clean = bed.run_job()
    assert clean.success
    first = _one(bed, "SELECT * FROM marts.reconciliation_runs WHERE run_id = :r", r=clean.run_id)
    assert first.status == "clean"
    assert first.differences == 0
    assert first.qbo_writes == 0

    ids = _inject(bed)
    bed.sandbox.control.reset_requests()
    result = bed.run_job()
    assert result.success
    run = _one(bed, "SELECT * FROM marts.reconciliation_runs WHERE run_id = :r", r=result.run_id)
    found = _findings(bed, result.run_id)

    # Repaired through the engine, and verified on both sides.
    assert found[("invoices", ids["missing"], "not_in_qbo", "")].repaired
    made = _qbo_invoice(bed, ids["missing"])
    assert made is not None
    assert Decimal(str(made["TotalAmt"])) == Decimal("50")
    assert found[("invoices", ids["amount_sale"], "source_changed", "")].repaired
    total = bed.rows(
        bed.env.source, "SELECT total FROM app.sales WHERE id = :i", i=int(ids["amount_sale"])
    )[0][0]
    changed = _qbo_invoice(bed, ids["amount_sale"])
    assert changed is not None
    assert Decimal(str(changed["TotalAmt"])) == total
    # The QBO changes the warehouse had not seen were re-pulled (R36 flags on both sides).
    assert found[("payments", ids["payment"], "stale_in_warehouse", "")].repaired
    assert _one(
        bed,
        "SELECT deleted FROM raw_qbo.payments WHERE realm_id = :r AND qbo_id = :q",
        r=bed.realm,
        q=ids["payment_qbo"],
    )[0]
    assert bed.rows(
        bed.env.source, "SELECT qbo_deleted FROM app.receipts WHERE id = :i", i=int(ids["payment"])
    )[0][0]

    # Reported: what only a person can decide.
    reported = {k: v for k, v in found.items() if not v.repaired}
    assert ("invoices", ids["changed_qbo"], "differs", "total") in reported
    assert ("invoices", ids["twin_deleted"], "deleted_in_qbo", "") in reported
    assert ("payments", ids["payment"], "deleted_in_qbo", "") in reported
    assert all(v.fix for v in reported.values())
    assert run.status == "problems"
    assert run.problems == len(reported)
    assert run.repaired >= 4
    problems = bed.rows(  # what marts.open_problems lists and the channels send (R31)
        bed.env.warehouse,
        "SELECT entity, record_id, title FROM sync.notifications WHERE realm_id = :r"
        " AND resolved_at IS NULL AND title LIKE 'Reconciliation:%%'",
        r=bed.realm,
    )
    assert {(p.entity, p.record_id) for p in problems} >= {
        ("invoices", ids["changed_qbo"]),
        ("invoices", ids["twin_deleted"]),
        ("payments", ids["payment"]),
    }
    figures = {
        (f.entity, f.measure): f
        for f in bed.rows(
            bed.env.warehouse,
            "SELECT * FROM marts.reconciliation_figures WHERE run_id = :r",
            r=result.run_id,
        )
    }
    assert figures[("invoices", "records")].agrees  # QBO's COUNT = the warehouse after repairs
    assert figures[("ar", "open_balance")].agrees  # QBO's CustomerBalance report ties out
    assert not figures[("invoices", "linked_total")].agrees  # the amount changed in QBO
    mats = result.get_asset_materialization_events()
    keys = {e.materialization.asset_key.to_user_string() for e in mats}
    assert "reconciled/invoices" in keys
    assert "reconciled/bills" in keys
    meta = next(
        e.materialization.metadata
        for e in mats
        if e.materialization.asset_key.to_user_string() == "reconciled/invoices"
    )
    assert isinstance(meta["findings"], dg.TableMetadataValue)
    assert "reconciliation of" in str(meta["summary"].value)

    # Again, nothing changed: nothing repaired, no QBO write, the same problems, still open.
    bed.sandbox.control.reset_requests()
    again = bed.run_job()
    second = _one(bed, "SELECT * FROM marts.reconciliation_runs WHERE run_id = :r", r=again.run_id)
    assert second.repaired == 0
    assert second.qbo_writes == 0
    assert not second.refreshed
    assert bed.qbo_writes() == 0
    assert set(bed.sandbox.control.request_counts(bed.realm)) <= {"query", "report:CustomerBalance"}
    assert set(_findings(bed, again.run_id)) == set(reported)
    open_now = _one(
        bed,
        "SELECT count(*) FROM sync.notifications WHERE realm_id = :r AND resolved_at IS"
        " NULL AND title LIKE 'Reconciliation:%%'",
        r=bed.realm,
    )[0]
    assert open_now == len(reported)

    # The person deletes the sale whose twin is gone: that problem resolves on the next run.
    with bed.env.source.begin() as conn:
        conn.exec_driver_sql(
            "DELETE FROM app.sale_lines WHERE sale_id = %s", (int(ids["twin_deleted"]),)
        )
        conn.exec_driver_sql("DELETE FROM app.sales WHERE id = %s", (int(ids["twin_deleted"]),))
    third = bed.run_job()
    assert ("invoices", ids["twin_deleted"], "deleted_in_qbo", "") not in _findings(
        bed, third.run_id
    )
    assert (
        _one(
            bed,
            "SELECT count(*) FROM sync.notifications WHERE realm_id = :r AND record_id = :s"
            " AND entity = 'invoices' AND resolved_at IS NULL AND title LIKE 'Reconciliation:%%'",
            r=bed.realm,
            s=ids["twin_deleted"],
        )[0]
        == 0
    )

    # The HTML report, as a user writes it.
    out = tmp_path / "report.html"
    assert main(["report", "--out", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert page.count("<svg") == 3
    assert "<script" not in page
    assert "http" not in page.split("<body>")[0]
    assert "Drift over time" in page
    assert "Records per state" in page
    assert "Problems by reason" in page
    assert "differs (total)" in page
    assert f"Company {bed.realm}" in page


def test_R38_nightly_schedule_requests_each_connected_company_but_not_a_paused_one(
    bed: ReconcileBed,
) -> None:
    second = RealmId(bed.sandbox.control.create_company("Second Company"))
    setup.connect_with_tokens(
        bed.env, second, bed.sandbox.control.mint_tokens(second), bed.sandbox.base_url
    )
    context = dg.build_schedule_context(
        instance=bed.instance,
        resources=bed.resources(),
        scheduled_execution_time=datetime(2026, 12, 1, 2, 30, tzinfo=UTC),
    )
    requests = nightly_reconciliation_schedule(context)
    assert isinstance(requests, list)
    assert sorted(str(r.partition_key) for r in requests) == sorted([bed.realm, second])
    assert all(r.tags["qbo_pipelines/direction"] == "reconcile" for r in requests)
    assert {r.run_key for r in requests} == {
        f"reconcile:{bed.realm}:2026-12-01",
        f"reconcile:{second}:2026-12-01",
    }
    assert main(["sync", "pause", "--realm", second]) == 0
    requests = nightly_reconciliation_schedule(context)
    assert isinstance(requests, list)
    assert [str(r.partition_key) for r in requests] == [bed.realm]
    assert main(["sync", "auto", "off", "--realm", bed.realm]) == 0
    skipped = nightly_reconciliation_schedule(context)
    assert isinstance(skipped, dg.SkipReason)
    assert "paused" in str(skipped.skip_message)
    assert "automatic" in str(skipped.skip_message)
    # The run the schedule requests reconciles that company (the partition exists).
    assert bed.run_job(bed.realm).success


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["report", "--realm", "123"], "not connected"),
        (["report", "--out", "/nonexistent-folder/r.html"], "does not exist"),
        (["report", "--history", "0"], "at least 1"),
    ],
)
def test_report_refuses_bad_input_in_one_line(
    bed: ReconcileBed, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
