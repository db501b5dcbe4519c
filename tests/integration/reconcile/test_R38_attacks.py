"""R38 attacked: a reconciliation killed with SIGKILL in the middle of a repair, QBO failing
during it (429, 5xx, timeouts through the sandbox's fault injection), two reconciliations and a
push of one company at once, and hostile data. Over the sandbox's HTTP and real Postgres."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from reconcilebed import (
    ReconcileBed,
    findings,
    inject_drift,
    one,
    qbo_invoices_numbered,
    unseen_sale,
)

from qbo_pipelines.cli import main
from qbo_pipelines.reconcile import ReconcileFailed, Result, reconcile_company
from qbo_pipelines.sync import pipeline

WRITE = r"batch|invoice$"  # the repair's create: in a batch call or a single one


def _cli(console: Path, *argv: str) -> subprocess.Popen[bytes]:
    """``qbo-pipelines ARGV`` from a terminal of its own (a new session: its code server and
    run worker are in its process group), its console written to ``console``."""
    with console.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "qbo_pipelines.cli", *argv],
            env=dict(os.environ),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _until(check: Any, what: str, limit: float = 180.0) -> None:
    deadline = time.monotonic() + limit
    while not check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.2)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _state(bed: ReconcileBed, sale: str) -> Any:
    return one(
        bed,
        "SELECT status, qbo_id, intent IS NOT NULL AS open FROM sync.record_state"
        " WHERE realm_id = :r AND entity = 'invoices' AND source_id = :s",
        r=bed.realm,
        s=sale,
    )


def _creates(bed: ReconcileBed, sale: str) -> int:
    """QBO creates the engine recorded for the sale's invoice."""
    return int(
        one(
            bed,
            "SELECT count(*) FROM sync.ledger WHERE realm_id = :r AND entity = 'invoices'"
            " AND source_id = :s AND operation = 'create' AND outcome = 'ok'",
            r=bed.realm,
            s=sale,
        )[0]
    )


def _recorded_runs(bed: ReconcileBed) -> int:
    return int(one(bed, "SELECT count(*) FROM marts.reconciliation_runs")[0])


@pytest.mark.slow
def test_R38_a_run_killed_mid_repair_is_finished_by_the_next_one_with_no_duplicate(
    bed: ReconcileBed, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    sale = unseen_sale(bed, "KILL-1")
    before = _recorded_runs(bed)
    # QBO commits the repair's create and the answer is lost; the retry hangs: the run is in
    # the middle of its repair when the machine dies.
    ctl = bed.sandbox.control
    ctl.inject_fault(kind="drop_after_commit", realm_id=bed.realm, method="POST", path=WRITE)
    ctl.inject_fault(
        kind="timeout",
        realm_id=bed.realm,
        method="POST",
        path=WRITE,
        count=None,
        delay_seconds=600,
    )
    proc = _cli(tmp_path / "console.txt", "reconcile", "--realm", bed.realm)
    try:
        _until(lambda: bool(qbo_invoices_numbered(bed, "KILL-1")), "QBO committed the repair")
        state = _state(bed, sale)
        assert state.open  # the intent was stored before the call
        assert state.status == "pending"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    _until(lambda: not _group_alive(proc.pid), "every process of the run is gone")
    ctl.clear_faults()
    assert _recorded_runs(bed) == before  # a killed run records nothing: nothing to double
    # The run's process is gone: the daemon's run monitor (or a person, in the UI) marks it.
    [dead] = bed.instance.get_runs(
        dg.RunsFilter(tags={"dagster/partition": bed.realm}, statuses=[dg.DagsterRunStatus.STARTED])
    )
    bed.instance.report_run_failed(dead)

    capsys.readouterr()
    assert main(["reconcile", "--realm", bed.realm]) == 0
    out = capsys.readouterr().out
    run_id = next(ln for ln in out.splitlines() if ln.startswith(f"{bed.realm}: run ")).split()[2]
    found = findings(bed, run_id)
    assert found[("invoices", sale, "unfinished_write", "")].repaired
    assert [k for k in found if k[1] == sale] == [("invoices", sale, "unfinished_write", "")]
    [made] = qbo_invoices_numbered(bed, "KILL-1")  # replayed: QBO made it once
    state = _state(bed, sale)
    assert (state.status, state.qbo_id, state.open) == ("synced", made["Id"], False)
    assert _creates(bed, sale) == 1
    # Once finished, it is no difference at all.
    assert bed.run_job().success
    latest = one(
        bed,
        "SELECT run_id FROM marts.reconciliation_runs ORDER BY finished_at DESC LIMIT 1",
    )[0]
    assert not [k for k in findings(bed, latest) if k[1] == sale]


def test_R38_transient_qbo_faults_during_the_run_are_retried_and_change_nothing(
    bed: ReconcileBed,
) -> None:
    sale = unseen_sale(bed, "FAULT-1")
    ctl = bed.sandbox.control
    ctl.inject_fault(kind="server_error", realm_id=bed.realm, path="query", count=2, status=503)
    ctl.inject_fault(kind="server_error", realm_id=bed.realm, path="reports", count=1, status=502)
    ctl.inject_fault(kind="timeout", realm_id=bed.realm, path="batch", count=1, delay_seconds=0.2)
    ctl.inject_fault(kind="drop_after_commit", realm_id=bed.realm, path="batch", count=1)
    result = bed.run_job()
    assert result.success
    answered = {r["status"] for r in ctl.requests(bed.realm)}
    assert {503, 502, 504} <= answered  # every fault was met, and retried
    run = one(bed, "SELECT * FROM marts.reconciliation_runs WHERE run_id = :r", r=result.run_id)
    assert run.status == "repaired"
    assert set(findings(bed, result.run_id)) == {("invoices", sale, "not_in_qbo", "")}
    assert len(qbo_invoices_numbered(bed, "FAULT-1")) == 1
    figures = bed.rows(
        bed.env.warehouse,
        "SELECT agrees FROM marts.reconciliation_figures WHERE run_id = :r"
        " AND measure IN ('records', 'open_balance')",
        r=result.run_id,
    )
    assert figures
    assert all(f.agrees for f in figures)


@pytest.mark.parametrize(
    ("kind", "path", "said"),
    [
        ("throttle", "query", "rate limit (429)"),
        ("server_error", "reports", "HTTP 503"),
        ("timeout", "query", "QBO kept failing (HTTP 504"),
    ],
)
def test_reconcile_records_a_clear_failure_when_qbo_keeps_failing(
    bed: ReconcileBed, kind: str, path: str, said: str
) -> None:
    """The library the job calls (with the tests' fast retries): never a wrong "clean"."""
    inject_drift(bed)
    bed.sandbox.control.inject_fault(
        kind=kind,
        realm_id=bed.realm,
        path=path,
        count=None,
        status=503 if kind == "server_error" else None,
        delay_seconds=0.05,
    )
    with pytest.raises(ReconcileFailed) as failed:
        reconcile_company(bed.env, bed.realm, run_id=f"fail-{kind}")  # type: ignore[arg-type]
    message = str(failed.value)
    assert said in message
    assert "\n" not in message
    assert "Bearer" not in message
    run = one(bed, "SELECT * FROM marts.reconciliation_runs WHERE run_id = :r", r=f"fail-{kind}")
    assert run.status == "failed"
    assert run.summary == message
    assert not findings(bed, f"fail-{kind}")
    bed.sandbox.control.clear_faults()
    again = reconcile_company(bed.env, bed.realm, run_id=f"after-{kind}")  # type: ignore[arg-type]
    assert again.run.status == "problems"


@pytest.mark.slow
def test_R38_reconcile_cli_when_qbo_keeps_failing_says_why_in_a_line_never_a_traceback(
    bed: ReconcileBed, capfd: pytest.CaptureFixture[str]
) -> None:
    bed.sandbox.control.inject_fault(
        kind="server_error", realm_id=bed.realm, path="reports", count=None, status=503
    )
    assert main(["reconcile", "--realm", bed.realm]) == 1
    captured = capfd.readouterr()  # what the terminal shows, the run's processes too
    shown = captured.out + captured.err
    assert "Traceback" not in shown
    assert "Stack Trace" not in shown  # Dagster's own rendering of one
    assert 'File "' not in shown
    [line] = [ln for ln in captured.out.splitlines() if ln.startswith(f"{bed.realm}: run ")]
    assert line.endswith("FAILURE")
    run_id = line.split()[2]
    run = one(bed, "SELECT * FROM marts.reconciliation_runs WHERE run_id = :r", r=run_id)
    assert run.status == "failed"
    assert "HTTP 503" in run.summary
    assert run.summary in captured.out
    assert "report: qbo-pipelines report" not in captured.out


@pytest.mark.slow
def test_R30_a_push_started_by_hand_that_fails_says_why_in_a_line_never_a_stack_trace(
    bed: ReconcileBed, capfd: pytest.CaptureFixture[str]
) -> None:
    with bed.env.source.begin() as conn:  # a change the push's feed sees: one update to write
        conn.exec_driver_sql(
            "UPDATE app.contacts SET phone = '555-0142' WHERE id = (SELECT contact_id FROM"
            " app.sales ORDER BY id LIMIT 1)"
        )
    bed.sandbox.control.inject_fault(
        kind="server_error", realm_id=bed.realm, count=None, status=503, delay_seconds=0.05
    )
    assert main(["sync", "push", "--realm", bed.realm]) == 1
    shown = capfd.readouterr()
    said = shown.out + shown.err
    for trace in ("Traceback", "Stack Trace", 'File "'):
        assert trace not in said
    [line] = [ln for ln in shown.out.splitlines() if ln.startswith(f"{bed.realm}: run ")]
    assert line.endswith("FAILURE")
    [why] = [ln for ln in shown.out.splitlines() if ln.startswith("  why: ")]
    assert "503" in why or "wait" in why
    assert "Bearer" not in said
    bed.sandbox.control.clear_faults()
    assert main(["sync", "push", "--realm", bed.realm]) == 0
    assert "why:" not in capfd.readouterr().out


@pytest.mark.slow
def test_R30_a_push_that_could_not_ask_qbo_about_names_fails_and_the_next_run_creates(
    bed: ReconcileBed, capfd: pytest.CaptureFixture[str]
) -> None:
    """QBO failing every query (its name checks) after the client's retries: the new customer
    is held, and the run is a failed run saying why (it was a success, exit 0)."""
    with bed.env.source.begin() as conn:  # a new contact with a sale: a customer to create
        run = conn.exec_driver_sql
        contact = run(
            "INSERT INTO app.contacts (given_name, family_name) VALUES ('Ulla', 'Unasked')"
            " RETURNING id"
        ).scalar_one()
        run(
            "INSERT INTO app.sales (doc_number, contact_id, txn_date, subtotal, total)"
            " VALUES ('UNASKED-1', %s, current_date, 10, 10)",
            (contact,),
        )
    bed.sandbox.control.inject_fault(
        kind="server_error",
        realm_id=bed.realm,
        path="query",
        count=None,
        status=503,
        delay_seconds=0.05,
    )
    assert main(["sync", "push", "--realm", bed.realm]) == 1
    out = capfd.readouterr().out
    [why] = [ln for ln in out.splitlines() if ln.startswith("  why: ")]
    assert "could not be asked" in why
    [(outcome,)] = bed.rows(
        bed.env.warehouse,
        "SELECT outcome FROM sync.ledger WHERE entity = 'customers'"
        " AND source_id = :s ORDER BY id DESC LIMIT 1",
        s=str(contact),
    )
    assert outcome == "held"
    bed.sandbox.control.clear_faults()
    assert main(["sync", "push", "--realm", bed.realm]) == 0
    made = [
        c
        for c in bed.sandbox.control.entities(bed.realm, "Customer")
        if c.get("DisplayName") == "Ulla Unasked"
    ]
    assert len(made) == 1


def test_two_reconciliations_and_a_push_of_one_company_at_once_repair_each_record_once(
    bed: ReconcileBed,
) -> None:
    """Three threads, as three processes would (the nightly run, a terminal, the sensor's
    push): the company's writer lock serialises them."""
    sales = [unseen_sale(bed, f"TWICE-{i}") for i in range(3)]
    with bed.env.source.begin() as conn:  # a change the push's feed sees
        conn.exec_driver_sql(
            "UPDATE app.contacts SET phone = '555-0199' WHERE id = (SELECT contact_id FROM"
            " app.sales WHERE origin = 'source' ORDER BY id LIMIT 1)"
        )
    results: dict[str, Result] = {}
    errors: list[BaseException] = []

    def reconcile(name: str) -> None:
        try:
            results[name] = reconcile_company(bed.env, bed.realm, run_id=name)  # type: ignore[arg-type]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def push() -> None:
        try:
            pipeline.push_all(bed.env, bed.realm, run_id="push-at-once")  # type: ignore[arg-type]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=reconcile, args=("rc-a",)),
        threading.Thread(target=reconcile, args=("rc-b",)),
        threading.Thread(target=push),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i, sale in enumerate(sales):
        assert len(qbo_invoices_numbered(bed, f"TWICE-{i}")) == 1
        repaired_by = [
            name
            for name, result in results.items()
            for o in result.outcomes
            if o.finding.record_id == sale and o.finding.entity == "invoices" and o.repaired
        ]
        assert len(repaired_by) == 1, repaired_by
        assert _creates(bed, sale) == 1
    statuses = sorted(r.run.status for r in results.values())
    assert statuses == ["clean", "repaired"]


def test_hostile_source_amounts_and_a_qbo_customer_made_inactive_never_break_the_run(
    bed: ReconcileBed,
) -> None:
    nan = unseen_sale(bed, "HOSTILE-NAN", "NaN")
    huge = unseen_sale(bed, "HOSTILE-HUGE", "9999999999999.99")
    negative_zero = unseen_sale(bed, "HOSTILE-ZERO", "-0.00")
    invoice = bed.rows(
        bed.env.warehouse,
        "SELECT data->'CustomerRef'->>'value' FROM raw_qbo.invoices WHERE realm_id = :r"
        " AND NOT deleted ORDER BY qbo_id LIMIT 1",
        r=bed.realm,
    )
    [(customer,)] = invoice
    bed.sandbox.control.user_update(
        bed.realm, "Customer", {"Id": customer, "Active": False, "sparse": True}
    )
    result = bed.run_job()
    assert result.success
    run = one(bed, "SELECT * FROM marts.reconciliation_runs WHERE run_id = :r", r=result.run_id)
    found = findings(bed, result.run_id)
    for sale in (nan, huge):
        [(key, row)] = [(k, v) for k, v in found.items() if k[1] == sale]
        assert key[2] == "not_in_qbo"
        assert not row.repaired  # held by the quality checks, with a reason: a problem
        assert row.fix
        [(reason,)] = bed.rows(
            bed.env.warehouse,
            "SELECT reason FROM marts.reconciliation_findings WHERE run_id = :r AND record_id = :s",
            r=result.run_id,
            s=sale,
        )
        assert "the push held back by the quality checks" in reason
    assert not qbo_invoices_numbered(bed, "HOSTILE-NAN")
    assert run.status == "problems"
    assert run.drift_amount.is_finite()
    assert negative_zero  # pushed like any sale (a zero invoice) or held: never a crash
    assert Decimal(str(run.drift_amount)) >= 0


def test_R38_a_company_disconnected_while_its_run_waited_is_refused_before_anything_is_written(
    bed: ReconcileBed,
) -> None:
    """`disconnect` while the company's reconciliation waits in the queue: the run used to go
    on, fail with "needs reconnecting: run connect" (wrong advice for a company disconnected
    on purpose) and write a failed run row. It is refused, saying the company is not
    connected, and writes nothing."""
    with bed.env.warehouse.begin() as conn:
        conn.exec_driver_sql(
            f"UPDATE sync.companies SET status = 'disconnected' WHERE realm_id = '{bed.realm}'"
        )
    before = bed.rows(bed.env.warehouse, "SELECT count(*) FROM marts.reconciliation_runs")
    with pytest.raises(ReconcileFailed) as refused:
        reconcile_company(bed.env, bed.realm, run_id="after-disconnect")  # type: ignore[arg-type]
    assert "is not connected" in str(refused.value)
    assert "reconnect" not in str(refused.value)
    assert bed.rows(bed.env.warehouse, "SELECT count(*) FROM marts.reconciliation_runs") == before
