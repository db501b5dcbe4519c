"""R39: a date-range backfill launched through Dagster's GraphQL API (``launchPartitionBackfill``,
what the UI sends), processed by the backfill daemon's and the run queue's own iterations, runs
out of the code location of workspace.yaml in a run worker, over real Postgres databases and the
QBO sandbox over HTTP."""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
from pushbed import UserStack, demo_company

from qbo_pipelines import settings
from qbo_pipelines.canonical import RealmId
from qbo_pipelines.defs import runner
from qbo_pipelines.defs.backfill import BACKFILL_ASSETS
from qbo_pipelines.defs.pull import pull_company
from qbo_pipelines.sandbox.testing import SandboxHandle
from qbo_pipelines.source_app import demo
from qbo_pipelines.sync import settings as sync_settings
from qbo_pipelines.sync.env import SyncEnv

WINDOW_END = demo.BASE_DATE  # the demo's transactions lie in the year before it
DAYS = 90
WRITE_LABELS = ("batch", "create", "update", "delete", "send", "void")


@dataclass
class Stack:
    """What a user has after ``make demo``: its own databases, a Dagster home, a connected
    sandbox company, the source app seeded and synced once."""

    env: SyncEnv
    sandbox: SandboxHandle
    realm: RealmId

    def rows(self, engine: sa.Engine, sql: str, **params: object) -> list[Any]:
        with engine.begin() as conn:
            result = conn.execute(sa.text(sql), params)
            return list(result) if result.returns_rows else []

    def writes(self) -> int:
        counts = self.sandbox.control.request_counts(self.realm)
        return sum(n for label, n in counts.items() if label.startswith(WRITE_LABELS))

    def snapshot(self) -> dict[str, Any]:
        """Both sides and the warehouse, as comparable values."""
        wh, src = self.env.warehouse, self.env.source
        return {
            "qbo": {
                e: sorted(
                    (o["Id"], o.get("SyncToken"), str(o.get("TotalAmt")))
                    for o in self.sandbox.control.entities(self.realm, e)
                )
                for e in ("Invoice", "Payment", "Bill", "Customer", "CreditMemo")
            },
            "source": {
                t: self.rows(src, f"SELECT count(*), count(DISTINCT qbo_id) FROM app.{t}")  # noqa: S608
                for t in ("sales", "receipts", "contacts")
            },
            "raw_qbo": {
                t: self.rows(
                    wh,
                    f"SELECT qbo_id, sync_token, deleted FROM raw_qbo.{t}"  # noqa: S608
                    " WHERE realm_id = :r ORDER BY qbo_id",
                    r=self.realm,
                )
                for t in ("invoices", "payments", "bills", "credit_memos")
            },
            "record_state": self.rows(
                wh,
                "SELECT entity, source_id, qbo_id, status FROM sync.record_state"
                " WHERE realm_id = :r ORDER BY 1, 2",
                r=self.realm,
            ),
        }


@pytest.fixture
def stack(user_stack: UserStack) -> Stack:
    demo.seed(user_stack.source, contacts=30, sales=45, workers=4, seed_value=11)
    bed = demo_company(user_stack.warehouse, user_stack.source, user_stack.sandbox)
    return Stack(bed.env, bed.sandbox, bed.realm)


LAUNCH = """
mutation($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on PartitionKeysNotFoundError { message }
  }
}
"""


def _workspace(instance: dg.DagsterInstance) -> Any:
    """The code location of workspace.yaml, as the webserver and the daemons load it."""
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    target = WorkspaceFileTarget(paths=[str(settings.PROJECT_ROOT / "workspace.yaml")])
    return WorkspaceProcessContext(instance, target, read_only=False)


def _launch(process: Any, realm: str, first: date, last: date) -> str:
    """Launch the backfill of every backfill asset over [first, last] as the UI does."""
    from dagster_graphql.test.utils import execute_dagster_graphql

    days = (last - first).days + 1
    keys = [f"{realm}|{(first + timedelta(days=i)).isoformat()}" for i in range(days)]
    answer = execute_dagster_graphql(
        process.create_request_context(),
        LAUNCH,
        {
            "backfillParams": {
                "assetSelection": [{"path": list(a.key.path)} for a in BACKFILL_ASSETS],
                "partitionNames": keys,
            }
        },
    ).data["launchPartitionBackfill"]
    assert answer["__typename"] == "LaunchBackfillSuccess", answer
    return str(answer["backfillId"])


def _backfill_through_graphql(
    instance: dg.DagsterInstance,
    realm: str,
    first: date,
    last: date,
    timeout: float = 600,
    blocked: Callable[[dg.DagsterRun], None] | None = None,
) -> tuple[str, list[dg.DagsterRun]]:
    """Launch the backfill as the UI does and let the daemons' iterations carry it out; with
    ``blocked``, first let the run queue see its run while the company is busy (``blocked``
    is called with the run, and frees the company)."""
    from dagster._core.execution.backfill import BulkActionStatus
    from dagster._daemon.backfill import execute_backfill_iteration
    from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
        QueuedRunCoordinatorDaemon,
    )

    log = logging.getLogger("backfill-test")
    with _workspace(instance) as process:
        backfill_id = _launch(process, realm, first, last)
        coordinator = QueuedRunCoordinatorDaemon(interval_seconds=1)
        if blocked is not None:
            # the backfill's run is queued, and the run queue holds it while another run of
            # its company is in progress
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not _backfill_runs(instance, backfill_id):
                list(execute_backfill_iteration(process, log))
                time.sleep(0.5)
            for _ in range(3):
                list(coordinator.run_iteration(process))
                time.sleep(1)
            [waiting] = _backfill_runs(instance, backfill_id)
            blocked(waiting)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            list(execute_backfill_iteration(process, log))
            list(coordinator.run_iteration(process))
            backfill = instance.get_backfill(backfill_id)
            assert backfill is not None
            if backfill.status != BulkActionStatus.REQUESTED:
                break
            time.sleep(1)
        assert backfill.status == BulkActionStatus.COMPLETED_SUCCESS, backfill.status
    return backfill_id, _backfill_runs(instance, backfill_id)


def _backfill_runs(instance: dg.DagsterInstance, backfill_id: str) -> list[dg.DagsterRun]:
    return list(instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill_id})))


def test_R39_R30_a_backfill_run_waits_in_the_queue_while_its_company_has_a_run_in_progress(
    stack: Stack,
) -> None:
    """Dagster gives a backfill's runs only a partition range; the project's run coordinator
    tags each with its company as it is queued, so the one-run-per-company limit holds it back
    like any run of the company, and it runs once the company is free."""
    from dagster._core.storage.dagster_run import DagsterRun

    instance = dg.DagsterInstance.get()
    try:
        runner.ensure_partition(stack.realm, instance=instance, warehouse=stack.env.warehouse)
        blocker = instance.add_run(
            DagsterRun(
                job_name="push_job",
                run_id=str(uuid.uuid4()),
                status=dg.DagsterRunStatus.STARTED,
                tags={runner.REALM_TAG: stack.realm, runner.PARTITION_TAG: stack.realm},
            )
        )
        seen: list[dg.DagsterRun] = []

        def blocked(run: dg.DagsterRun) -> None:
            seen.append(run)
            assert run.status == dg.DagsterRunStatus.QUEUED
            assert run.tags[runner.REALM_TAG] == stack.realm  # from the moment it is queued
            assert run.tags[runner.TRIGGER_TAG] == "backfill"
            instance.report_run_failed(blocker)  # the company's run ends

        first = WINDOW_END - timedelta(days=1)
        _, [run] = _backfill_through_graphql(
            instance, stack.realm, first, WINDOW_END, blocked=blocked
        )
        assert [r.run_id for r in seen] == [run.run_id]
        assert run.status == dg.DagsterRunStatus.SUCCESS
    finally:
        instance.dispose()


@pytest.mark.slow
def test_R39_a_90_day_backfill_through_graphql_is_one_run_and_changes_nothing_in_sync(
    stack: Stack,
) -> None:
    instance = dg.DagsterInstance.get()
    try:
        # A normal sync first: push, then pull.
        assert runner.push_company(stack.realm, instance=instance)["success"]
        assert pull_company(stack.realm)["success"]
        before = stack.snapshot()
        stack.sandbox.control.reset_requests()

        first = WINDOW_END - timedelta(days=DAYS - 1)
        in_window = stack.rows(
            stack.env.source,
            "SELECT count(*) FROM app.sales WHERE txn_date BETWEEN :a AND :b",
            a=first,
            b=WINDOW_END,
        )[0][0]
        assert in_window > 0  # the window holds real transactions

        backfill_id, runs = _backfill_through_graphql(instance, stack.realm, first, WINDOW_END)

        # One run for the company, for the 90 days, tagged as every run is.
        [run] = runs
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags["dagster/asset_partition_range_start"] == f"{stack.realm}|{first}"
        assert run.tags["dagster/asset_partition_range_end"] == f"{stack.realm}|{WINDOW_END}"
        assert run.tags[runner.REALM_TAG] == stack.realm
        assert run.tags[runner.TRIGGER_TAG] == "backfill"
        assert run.tags[runner.DIRECTION_TAG] == "both"
        counts, _ = runner.run_counts(instance, run.run_id)
        invoices = counts["backfill/source/invoices"]
        assert invoices["in_window"] == in_window
        looked_at = invoices["unchanged"] + invoices["held_back"] + invoices["skipped"]
        assert looked_at == in_window, invoices  # every record of the window looked at
        assert invoices["unchanged"] > 0, invoices
        assert invoices["created"] == invoices["updated"] == 0, invoices
        assert counts["backfill/qbo/invoices"]["read"] > 0

        # Identical to the normal sync: nothing duplicated or changed on either side, and the
        # unchanged records cost no QBO write (the sandbox's request log), only reads.
        assert stack.snapshot() == before
        assert stack.writes() == 0
        reads = stack.sandbox.control.request_counts(stack.realm)
        assert reads.get("query", 0) > 0
        ledger = stack.rows(
            stack.env.warehouse,
            "SELECT operation, count(*) FROM sync.ledger WHERE run_id = :run GROUP BY 1",
            run=run.run_id,
        )
        assert {op for op, _ in ledger} <= {"skip", "hold"}, ledger

        # A source edit inside the window: the backfill pushes exactly that record, and the
        # push sensor then sees the change as already pushed (no no-op run).
        window_sales = [
            str(i)
            for (i,) in stack.rows(
                stack.env.source,
                "SELECT id FROM app.sales WHERE txn_date BETWEEN :a AND :b",
                a=first,
                b=WINDOW_END,
            )
        ]
        sale, qbo_id = stack.rows(
            stack.env.warehouse,
            "SELECT source_id, qbo_id FROM sync.record_state WHERE realm_id = :r AND entity ="
            " 'invoices' AND status = 'synced' AND source_id = ANY(:ids) ORDER BY 1 LIMIT 1",
            r=stack.realm,
            ids=window_sales,
        )[0]
        stack.rows(
            stack.env.source, "UPDATE app.sales SET memo = 'backfilled' WHERE id = :i", i=int(sale)
        )
        _, [again] = _backfill_through_graphql(instance, stack.realm, first, WINDOW_END)
        assert again.status == dg.DagsterRunStatus.SUCCESS
        counts, _ = runner.run_counts(instance, again.run_id)
        assert counts["backfill/source/invoices"]["pending.updated"] == 1
        assert stack.writes() >= 1
        [invoice] = [
            o for o in stack.sandbox.control.entities(stack.realm, "Invoice") if o["Id"] == qbo_id
        ]
        assert invoice.get("PrivateNote") == "backfilled"
        # The edit is covered by the backfill's push: the sensor will not push it again.
        position = sync_settings.push_positions(stack.env.warehouse, stack.realm)["invoices"]
        uncovered = stack.rows(
            stack.env.source,
            "SELECT count(*) FROM app.change_log WHERE entity = 'invoices' AND origin <> 'sync'"
            " AND txid >= :pos",
            pos=position,
        )[0][0]
        assert uncovered == 0
    finally:
        instance.dispose()


def _copy_sales(stack: Stack, ids: list[int], prefix: str) -> list[int]:
    """New source sales (with their lines) copied from ``ids``: records the backfill creates."""
    made: list[int] = []
    with stack.env.source.begin() as conn:
        for sid in ids:
            new = conn.execute(
                sa.text(
                    "INSERT INTO app.sales (doc_number, contact_id, txn_date, due_date, subtotal,"
                    " discount_total, tax_total, total, send_requested)"
                    " SELECT :doc, contact_id, txn_date, due_date, subtotal, discount_total,"
                    " tax_total, total, false FROM app.sales WHERE id = :i RETURNING id"
                ),
                {"doc": f"{prefix}-{sid}", "i": sid},
            ).scalar_one()
            cols = [
                c
                for (c,) in conn.execute(
                    sa.text(
                        "SELECT column_name FROM information_schema.columns WHERE table_schema ="
                        " 'app' AND table_name = 'sale_lines' AND column_name NOT IN ('id',"
                        " 'sale_id') AND is_generated = 'NEVER'"
                    )
                )
            ]
            listed = ", ".join(cols)
            conn.execute(
                sa.text(
                    f"INSERT INTO app.sale_lines (sale_id, {listed})"  # noqa: S608 - catalog
                    f" SELECT :new, {listed} FROM app.sale_lines WHERE sale_id = :i"
                ),
                {"new": new, "i": sid},
            )
            made.append(int(new))
    return made


def _run_workers(run_id: str) -> list[Any]:
    """The processes executing ``run_id`` (the run worker the code server started)."""
    import psutil

    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if run_id in " ".join(proc.cmdline()) or "execute_run" in " ".join(proc.cmdline()):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def _stop_code_servers(mark: str) -> None:
    """Stop the code servers this test started (their command line names its Dagster home,
    ``mark``): one whose run worker was killed -9 waits for that run to end before
    it shuts down, and never would."""
    import psutil

    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            line = " ".join(proc.cmdline())
            if "api grpc" in line and mark in line:
                proc.terminate()
                try:
                    proc.wait(10)
                except psutil.TimeoutExpired:
                    proc.kill()


@pytest.mark.slow
def test_R39_a_backfill_run_killed_9_after_qbo_committed_is_finished_by_the_next_with_no_duplicate(
    stack: Stack,
) -> None:
    """Kill -9 of a backfill's run worker while QBO has committed a batch whose answer never
    arrived (the intent is stored, the outcome unknown): launching the backfill again replays
    that batch with its requestids and finishes the window; nothing lost, nothing duplicated."""
    from dagster._core.execution.backfill import BulkActionStatus
    from dagster._daemon.backfill import execute_backfill_iteration
    from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
        QueuedRunCoordinatorDaemon,
    )

    instance = dg.DagsterInstance.get()
    try:
        assert runner.push_company(stack.realm, instance=instance)["success"]
        assert pull_company(stack.realm)["success"]
        first = WINDOW_END - timedelta(days=DAYS - 1)
        window = [
            int(i)
            for (i,) in stack.rows(
                stack.env.source,
                "SELECT id FROM app.sales WHERE txn_date BETWEEN :a AND :b AND total > 0"
                " ORDER BY id LIMIT 8",
                a=first,
                b=WINDOW_END,
            )
        ]
        assert len(window) >= 4
        made = _copy_sales(stack, window, "KILL")  # created by the backfill
        stack.rows(
            stack.env.source,
            "UPDATE app.sales SET memo = 'kill-9 edit' WHERE id = ANY(:ids)",
            ids=window,
        )
        invoices_before = len(stack.sandbox.control.entities(stack.realm, "Invoice"))
        # QBO commits the first batch and its answer is lost; the retry then hangs until the
        # run worker is killed -9.
        control = stack.sandbox.control
        control.reset_requests()
        control.inject_fault(kind="drop_after_commit", realm_id=stack.realm, path="batch")
        control.inject_fault(
            kind="timeout", realm_id=stack.realm, path="batch", delay_seconds=30, count=None
        )
        log = logging.getLogger("backfill-kill-test")
        with _workspace(instance) as process:
            backfill_id = _launch(process, stack.realm, first, WINDOW_END)
            coordinator = QueuedRunCoordinatorDaemon(interval_seconds=1)
            deadline = time.monotonic() + 300
            killed: list[Any] = []
            while time.monotonic() < deadline and not killed:
                list(execute_backfill_iteration(process, log))
                list(coordinator.run_iteration(process))
                runs = instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
                committed = control.request_counts(stack.realm).get("batch", 0)
                if runs and committed >= 1:  # the lost batch; its retry hangs
                    time.sleep(3)
                    killed = _run_workers(runs[0].run_id)
                    for proc in killed:
                        proc.kill()  # SIGKILL
                time.sleep(0.5)
            assert killed, "the backfill's run worker was found and killed"
            [dead] = runs
            # what an operator does in the UI for a run whose process died (run monitoring does
            # it after max_runtime_seconds): mark it failed
            instance.report_run_failed(instance.get_run_by_id(dead.run_id))  # type: ignore[arg-type]
            for _ in range(30):
                list(execute_backfill_iteration(process, log))
                backfill = instance.get_backfill(backfill_id)
                assert backfill is not None
                if backfill.status != BulkActionStatus.REQUESTED:
                    break
                time.sleep(0.5)
        open_intents = stack.rows(
            stack.env.warehouse,
            "SELECT count(*) FROM sync.record_state WHERE realm_id = :r AND intent IS NOT NULL",
            r=stack.realm,
        )[0][0]
        assert open_intents >= 1  # the killed run left its committed batch unanswered
        control.clear_faults()

        # The operator launches the same backfill again.
        _, [again] = _backfill_through_graphql(instance, stack.realm, first, WINDOW_END)
        assert again.status == dg.DagsterRunStatus.SUCCESS
        qbo = stack.sandbox.control.entities(stack.realm, "Invoice")
        assert len(qbo) == invoices_before + len(made)  # each new sale once, no duplicate
        docs = [i.get("DocNumber") for i in qbo]
        assert len(docs) == len(set(docs))
        for sid in made:
            assert docs.count(f"KILL-{window[made.index(sid)]}") == 1
        edited = {
            str(q)
            for (q,) in stack.rows(
                stack.env.warehouse,
                "SELECT qbo_id FROM sync.record_state WHERE realm_id = :r AND entity ="
                " 'invoices' AND source_id = ANY(:ids)",
                r=stack.realm,
                ids=[str(i) for i in window],
            )
        }
        assert {i["Id"] for i in qbo if i.get("PrivateNote") == "kill-9 edit"} == edited
        assert (
            stack.rows(
                stack.env.warehouse,
                "SELECT count(*) FROM sync.record_state WHERE realm_id = :r AND intent IS NOT NULL",
                r=stack.realm,
            )[0][0]
            == 0
        )
    finally:
        instance.dispose()
        _stop_code_servers(os.environ["DAGSTER_HOME"])


def test_R39_any_range_of_days_is_backfilled_by_the_range_job_and_bad_ranges_refused_in_a_line(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """The date partitions run from 2015 to tomorrow; ``backfill_range_job`` (the launchpad's
    config, or ``sync backfill --from --to``) takes any range, here 0001-01-01..9999-12-31:
    an invoice QBO holds dated 2009 and another dated 2099 reach raw_qbo and the source app,
    a second backfill changes nothing on either side, and bad ranges are refused in one line
    (by the CLI before a run is queued; by the run, not retried, when typed in the launchpad)."""
    from qbo_pipelines.cli import main

    instance = dg.DagsterInstance.get()
    try:
        assert runner.push_company(stack.realm, instance=instance)["success"]
        assert pull_company(stack.realm)["success"]
        control = stack.sandbox.control
        customer = stack.rows(
            stack.env.warehouse,
            "SELECT qbo_id FROM sync.record_state WHERE realm_id = :r AND entity = 'customers'"
            " AND status = 'synced' ORDER BY source_id LIMIT 1",
            r=stack.realm,
        )[0][0]
        line = {
            "Amount": 40,
            "DetailType": "SalesItemLineDetail",
            "SalesItemLineDetail": {"ItemRef": {"value": "2"}, "Qty": 1, "UnitPrice": 40},
        }
        old, late = control.bulk_create(
            stack.realm,
            "Invoice",
            [
                {"CustomerRef": {"value": customer}, "TxnDate": day, "Line": [line]}
                for day in ("2009-03-04", "2099-12-31")
            ],
        )
        argv = ["sync", "backfill", "--realm", stack.realm, "--from", "0001-01-01"]
        assert main([*argv, "--to", "9999-12-31", "--qbo", "Invoice", "--source"]) == 0
        out = capsys.readouterr().out
        assert "SUCCESS" in out, out
        for made in (old, late):
            assert stack.rows(
                stack.env.warehouse,
                "SELECT 1 FROM raw_qbo.invoices WHERE realm_id = :r AND qbo_id = :q",
                r=stack.realm,
                q=made["Id"],
            )
            [sale] = stack.rows(
                stack.env.source, "SELECT txn_date FROM app.sales WHERE qbo_id = :q", q=made["Id"]
            )
            assert sale.txn_date.isoformat() == made["TxnDate"]
        [run] = instance.get_runs(dg.RunsFilter(job_name="backfill_range_job"))
        assert run.tags[runner.REALM_TAG] == stack.realm
        assert run.tags[runner.DIRECTION_TAG] == "both"

        # again, both sides: nothing written anywhere
        before = stack.snapshot()
        log = stack.rows(stack.env.source, "SELECT count(*) FROM app.change_log")[0][0]
        control.reset_requests()
        assert main([*argv, "--to", "9999-12-31"]) == 0
        assert stack.snapshot() == before
        assert stack.writes() == 0
        assert stack.rows(stack.env.source, "SELECT count(*) FROM app.change_log")[0][0] == log

        # bad ranges: one line each, exit 2, no run queued
        capsys.readouterr()
        for first, last, *more in (
            ("0001-01-01", "2000-13-01"),
            ("2020-01-02", "2020-01-01"),
            ("2020-01-01", "2020-01-01", "--qbo", "Nope"),
        ):
            args = ["sync", "backfill", "--realm", stack.realm, "--from", first, "--to", last]
            assert main([*args, *more]) == 2
            err = capsys.readouterr().err
            assert len(err.strip().splitlines()) == 1, err
            assert "Traceback" not in err
        assert len(instance.get_runs(dg.RunsFilter(job_name="backfill_range_job"))) == 2

        # typed in the launchpad: the run refuses it in one line, not retried
        config = {"first_day": "2020-01-02", "last_day": "2019-12-31"}
        outcome = runner.submit(
            "backfill_range_job",
            stack.realm,
            run_config={"ops": {"backfill_range": {"config": config}}},
            tags={runner.TRIGGER_TAG: "ui", runner.DIRECTION_TAG: "both"},
            instance=instance,
            warehouse=stack.env.warehouse,
        )
        assert not outcome.success
        assert "the first day 2020-01-02 is after the last day 2019-12-31" in (
            outcome.failure or ""
        )
    finally:
        instance.dispose()


def test_R39_entities_named_after_a_repeated_option_are_all_backfilled(stack: Stack) -> None:
    """``sync backfill --qbo Invoice --qbo Payment --source invoices --source bills`` backfills
    the four entities named, as ``--qbo Invoice Payment --source invoices bills`` does (before,
    the last --qbo and the last --source replaced the earlier ones: a data engineer got a
    backfill of Payment and bills alone, with nothing saying the others were dropped)."""
    from qbo_pipelines.cli import main

    instance = dg.DagsterInstance.get()
    try:
        argv = ["sync", "backfill", "--realm", stack.realm, "--from", "2020-01-01"]
        argv += ["--to", "2020-01-31", "--qbo", "Invoice", "--qbo", "Payment"]
        assert main([*argv, "--source", "invoices", "--source", "bills"]) == 0
        [run] = instance.get_runs(dg.RunsFilter(job_name="backfill_range_job"))
        config = run.run_config["ops"]["backfill_range"]["config"]  # type: ignore[index]
        assert config["qbo_entities"] == ["Invoice", "Payment"]
        assert config["source_entities"] == ["invoices", "bills"]
    finally:
        instance.dispose()
