"""R38 as a user runs it: ``qbo-pipelines reconcile [--realm] [--no-wait]`` submits a
``reconcile_job`` run per company through the Dagster instance's run queue; with no daemon the
command launches the run itself (runner self-dequeues), waits, prints the run's summary, and the
results land in ``marts.reconciliation_*`` while the repairs land on both sides."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest
from reconcilebed import ReconcileBed, findings, inject_drift, one, qbo_invoice

from qbo_pipelines.cli import main
from qbo_pipelines.defs import runner


def _wait_finished(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRun:
    while True:
        run = instance.get_run_by_id(run_id)
        assert run is not None
        if run.is_finished:
            return run
        time.sleep(0.5)


def test_R38_reconcile_cli_queues_a_run_repairs_both_sides_and_records_the_results(
    bed: ReconcileBed, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = inject_drift(bed)
    assert not runner.daemon_alive(bed.instance)
    assert main(["reconcile", "--realm", bed.realm]) == 0
    out = capsys.readouterr().out
    assert "launched by this process (no dagster-daemon)" in out
    [line] = [ln for ln in out.splitlines() if ln.startswith(f"{bed.realm}: run ")]
    run_id = line.split()[2]
    assert line.endswith("SUCCESS")
    assert f"reconciliation of {bed.realm}: problems;" in out
    assert "report: qbo-pipelines report" in out
    run = bed.instance.get_run_by_id(run_id)
    assert run is not None
    assert run.tags["qbo_pipelines/trigger"] == "cli"
    assert run.tags["qbo_pipelines/direction"] == "reconcile"
    assert run.tags["dagster/partition"] == bed.realm

    recorded = one(bed, "SELECT * FROM marts.reconciliation_runs WHERE run_id = :r", r=run_id)
    assert recorded.trigger == "cli"
    assert recorded.status == "problems"
    assert recorded.summary in out
    found = findings(bed, run_id)
    assert found[("invoices", ids["missing"], "not_in_qbo", "")].repaired
    assert found[("invoices", ids["amount_sale"], "source_changed", "")].repaired
    assert not found[("invoices", ids["changed_qbo"], "differs", "total")].repaired
    assert recorded.problems == sum(1 for f in found.values() if not f.repaired)
    states = bed.rows(
        bed.env.warehouse,
        "SELECT entity, state, records FROM marts.reconciliation_states WHERE run_id = :r",
        r=run_id,
    )
    assert ("invoices", "synced") in {(s.entity, s.state) for s in states}
    # Both sides: the missing sale is an invoice in QBO; the QBO payment deleted by a person
    # is flagged in the source app; the source's changed amount is QBO's total.
    made = qbo_invoice(bed, ids["missing"])
    assert made is not None
    assert Decimal(str(made["TotalAmt"])) == Decimal("50")
    [(flag,)] = bed.rows(
        bed.env.source, "SELECT qbo_deleted FROM app.receipts WHERE id = :i", i=int(ids["payment"])
    )
    assert flag
    [(total,)] = bed.rows(
        bed.env.source, "SELECT total FROM app.sales WHERE id = :i", i=int(ids["amount_sale"])
    )
    changed = qbo_invoice(bed, ids["amount_sale"])
    assert changed is not None
    assert Decimal(str(changed["TotalAmt"])) == total

    # What needs a person is listed in marts.open_problems (the dbt model), one row a record,
    # with the reconciliation's reason and fix.
    assert main(["marts", "build", "--select", "+open_problems"]) == 0
    capsys.readouterr()
    listed = {
        (p.entity, p.record_id): p
        for p in bed.rows(
            bed.env.warehouse,
            "SELECT entity, record_id, problem, reason, fix FROM marts.open_problems"
            " WHERE realm_id = :r",
            r=bed.realm,
        )
    }
    for (entity, record, _kind, _field), finding in found.items():
        if not finding.repaired:
            shown = listed[(entity, record)]
            assert "Reconciliation:" in shown.problem
            assert shown.fix

    # --no-wait: back once this process launched it; the run finishes on its own and repairs
    # nothing more (no QBO write), the same problems still reported.
    bed.sandbox.control.reset_requests()
    assert main(["reconcile", "--realm", bed.realm, "--no-wait"]) == 0
    out = capsys.readouterr().out
    [line] = [ln for ln in out.splitlines() if ln.startswith(f"{bed.realm}: run ")]
    again = _wait_finished(bed.instance, line.split()[2])
    assert again.status == dg.DagsterRunStatus.SUCCESS
    second = one(bed, "SELECT * FROM marts.reconciliation_runs WHERE run_id = :r", r=again.run_id)
    assert second.repaired == 0
    assert second.qbo_writes == 0
    assert bed.qbo_writes() == 0
    assert set(findings(bed, again.run_id)) == {k for k, v in found.items() if not v.repaired}


def test_R38_reconcile_cli_every_company_and_the_documented_queries_and_report(
    bed: ReconcileBed, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """docs/reconciliation.md, as written."""
    assert main(["reconcile"]) == 0
    out = capsys.readouterr().out
    assert f"{bed.realm}: run " in out
    assert f"reconciliation of {bed.realm}: clean;" in out
    doc = (Path(__file__).parents[3] / "docs" / "reconciliation.md").read_text(encoding="utf-8")
    sql = doc.split("```sql\n", 1)[1].split("```", 1)[0]
    latest, unrepaired = (q.strip() for q in sql.split(";") if q.strip())
    [run] = bed.rows(bed.env.warehouse, latest)
    assert run.status == "clean"
    assert bed.rows(bed.env.warehouse, unrepaired) == []
    out_file = tmp_path / "recon.html"
    argv = ["report", "--realm", bed.realm, "--out", str(out_file), "--history", "30"]
    assert main(argv) == 0
    assert "Drift over time" in out_file.read_text(encoding="utf-8")


def test_R38_reconcile_cli_refuses_an_unknown_company_and_leaves_nothing_behind(
    bed: ReconcileBed, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["reconcile", "--realm", "123"]) == 2
    err = capsys.readouterr().err
    assert "123" in err
    assert bed.realm in err  # the connected companies are listed
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not bed.instance.has_dynamic_partition("companies", "123")
    assert not bed.instance.get_runs(dg.RunsFilter(tags={"dagster/partition": "123"}))
    for table in ("runs", "figures", "findings", "states"):
        assert (
            one(
                bed,
                f"SELECT count(*) FROM marts.reconciliation_{table} WHERE realm_id = '123'",  # noqa: S608
            )[0]
            == 0
        )
    assert one(bed, "SELECT count(*) FROM sync.notifications WHERE realm_id = '123'")[0] == 0
