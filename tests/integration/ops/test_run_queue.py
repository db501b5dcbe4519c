"""``sync push`` submits runs through the Dagster instance's queue, one run per company at a
time, companies independent; ``status`` reports them (SPEC R3, R30; issue 9 point 9)."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._core.events import EngineEventData
from dagster._core.storage.dagster_run import DagsterRun
from opsbed import OpsStack

from qbo_pipelines.cli import main
from qbo_pipelines.defs import runner
from qbo_pipelines.source_app import demo


def _blocker(instance: dg.DagsterInstance, realm: str) -> DagsterRun:
    """A run of the company in progress (as one the daemon or the UI started would be)."""
    run = DagsterRun(
        job_name="push_job",
        run_id=str(uuid.uuid4()),
        status=dg.DagsterRunStatus.STARTED,
        tags={runner.REALM_TAG: realm, runner.PARTITION_TAG: realm},
    )
    return instance.add_run(run)


@pytest.mark.slow
def test_R3_R30_push_runs_are_queued_one_per_company_and_companies_are_independent(
    ops: OpsStack, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = ops.sandbox.realm_id, ops.second_realm
    for realm in (first, second):
        assert ops.connect_by_consent(realm).returncode == 0
    demo.seed(ops.source, contacts=10, sales=12, workers=2, seed_value=5)
    instance = dg.DagsterInstance.get()
    try:
        assert not runner.daemon_alive(instance)
        blocker = _blocker(instance, first)
        # The first company is busy: its submitted run waits in the queue (no daemon: this
        # process would launch it, but not while another run of the company is in progress).
        queued = runner.submit(
            "push_job",
            first,
            run_config=runner.push_run_config(),
            timeout=3,
            tags={runner.TRIGGER_TAG: "cli", runner.DIRECTION_TAG: "push"},
            warehouse=ops.warehouse,
            instance=instance,
        )
        assert (queued.status, queued.launched_by) == ("QUEUED", "")
        # ... which does not hold the second company back.
        capsys.readouterr()
        assert main(["sync", "push", "--realm", second]) == 0
        out = capsys.readouterr().out
        assert f"{second}: run " in out
        assert "SUCCESS" in out
        assert "pushed/qbo/customers: created" in out

        # The company is free again: the next `sync push` launches the older queued run first.
        instance.report_run_failed(blocker)
        assert main(["sync", "push", "--realm", first]) == 0
        out = capsys.readouterr().out
        assert f"run {queued.run_id} launched by this process" in out
        done = instance.get_run_by_id(queued.run_id)
        assert done is not None
        assert done.status == dg.DagsterRunStatus.SUCCESS
        runs = instance.get_runs(dg.RunsFilter(tags={runner.REALM_TAG: first}))
        mine = [r for r in runs if r.run_id != blocker.run_id]
        assert len(mine) == 2
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in mine)
        for run in mine:
            assert run.tags[runner.TRIGGER_TAG] == "cli"
            assert run.tags[runner.DIRECTION_TAG] == "push"
            assert run.tags[runner.PARTITION_TAG] == first
        counts, _ = runner.run_counts(instance, queued.run_id)
        assert counts["pushed/qbo/customers"]["created"] > 0
    finally:
        instance.dispose()

    # Each company has its own records, in its own QBO company.
    with ops.warehouse.connect() as conn:
        per_realm = dict(
            conn.execute(
                sa.text(
                    "SELECT realm_id, count(*) FROM sync.record_state WHERE entity = 'customers'"
                    " AND qbo_id IS NOT NULL GROUP BY realm_id"
                )
            ).all()
        )
    assert per_realm[first] > 0
    assert per_realm[first] == per_realm[second]
    for realm in (first, second):
        names = {c["DisplayName"] for c in ops.sandbox.control.entities(realm, "Customer")}
        assert len(names) >= per_realm[realm]

    # status: last push from the run history, held and failed records by reason.
    with ops.warehouse.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE sync.record_state SET status = 'failed', error_code = '6240',"
                " error_message = 'Duplicate Name Exists Error',"
                " fix = 'Rename it in the source app'"
                " WHERE realm_id = :r AND entity = 'customers'"
                " AND source_id = (SELECT min(source_id) FROM sync.record_state"
                "   WHERE realm_id = :r AND entity = 'customers')"
            ),
            {"r": first},
        )
    capsys.readouterr()
    assert main(["status", "--realm", first, "--json"]) == 0
    [report] = json.loads(capsys.readouterr().out)
    assert report["connection"] == "connected"
    assert report["last_push"]["run_status"] == "SUCCESS"
    assert report["last_push"]["at"]
    assert report["last_pull"]["at"] is None
    assert report["pending_changes"] == 0
    assert report["held_total"] > 0
    assert all(h["reason"] for h in report["held"])
    with ops.warehouse.connect() as conn:  # each example is shown with its own record's fix
        pairs = {
            (str(r.reason), str(r.fix))
            for r in conn.execute(
                sa.text("SELECT reason, fix FROM sync.quarantine WHERE realm_id = :r"),
                {"r": first},
            )
        }
    assert all((h["example"], h["fix"]) in pairs for h in report["held"]), report["held"]
    assert [(f["entity"], f["reason"], f["count"]) for f in report["failed"]] == [
        ("customers", "6240", 1)
    ]
    assert main(["status"]) == 0
    text = capsys.readouterr().out
    assert f"company {first}" in text
    assert f"company {second}" in text
    assert "QBO 6240: e.g. Duplicate Name Exists Error" in text


@pytest.mark.slow
def test_R30_a_run_whose_process_was_killed_no_longer_holds_its_company(
    ops: OpsStack, capsys: pytest.CaptureFixture[str]
) -> None:
    """A `sync push` killed -9 leaves its run STARTED for good (nothing is left to finish it).
    The next `sync push` of the company finds that run's process gone, marks the run failed
    with the reason, says so, and runs (before, it waited forever, silently). A run whose
    process is alive still holds the company."""
    realm = ops.sandbox.realm_id
    assert ops.connect_by_consent(realm).returncode == 0
    demo.seed(ops.source, contacts=6, sales=8, workers=1, seed_value=5)
    instance = dg.DagsterInstance.get()

    def started(pid: int) -> DagsterRun:
        run = _blocker(instance, realm)
        instance.report_engine_event(
            f"Started process for run (pid: {pid}).", run, EngineEventData.in_process(pid)
        )
        return run

    try:
        alive = started(os.getpid())
        waiting = runner.submit(
            "push_job",
            realm,
            run_config=runner.push_run_config(),
            timeout=3,
            tags={runner.TRIGGER_TAG: "cli", runner.DIRECTION_TAG: "push"},
            warehouse=ops.warehouse,
            instance=instance,
        )
        assert waiting.status == "QUEUED"
        assert instance.get_run_by_id(alive.run_id).status == dg.DagsterRunStatus.STARTED  # type: ignore[union-attr]
        instance.report_run_failed(alive)
        gone = subprocess.Popen(["true"])
        gone.wait()
        killed = started(gone.pid)
        capsys.readouterr()
        assert main(["sync", "push", "--realm", realm]) == 0
        out = capsys.readouterr().out
        assert f"run {killed.run_id} (push_job) its process (pid {gone.pid}) is gone" in out
        dead = instance.get_run_by_id(killed.run_id)
        assert dead is not None
        assert dead.status == dg.DagsterRunStatus.FAILURE
        assert f"run {waiting.run_id} launched by this process" in out
        done = instance.get_run_by_id(waiting.run_id)
        assert done is not None
        assert done.status == dg.DagsterRunStatus.SUCCESS
    finally:
        instance.dispose()


def test_R30_a_command_serving_the_sandbox_outlives_the_runs_other_commands_queued(
    ops: OpsStack,
) -> None:
    """`sync push` after `make demo` serves the demo's sandbox and stops it when it ends. A
    second `sync push` started meanwhile finds it answering and queues a run that uses it: the
    first command now waits for that run before stopping the sandbox (before, it stopped it
    under the run, whose writes then got no answer). A run queued before the command began,
    and the command's own runs, are not waited for."""
    from datetime import UTC, datetime

    realm = ops.sandbox.realm_id
    instance = dg.DagsterInstance.get()
    try:
        older = _blocker(instance, realm)
        began = datetime.now(UTC)
        own = _blocker(instance, realm)
        other = _blocker(instance, realm)
        said: list[str] = []
        ended: list[str] = []

        def say(text: str) -> None:  # the other command's run ends once announced
            said.append(text)
            instance.report_run_failed(other)
            ended.append(other.run_id)

        waited = runner.await_company_runs(
            [realm], since=began, exclude=[own.run_id], say=say, poll_interval=0.05,
            max_wait=30, instance=instance,
        )
        assert waited == [other.run_id]
        assert ended == [other.run_id]
        assert said == [
            f"run {other.run_id} (another command's) still uses the QBO sandbox served here:"
            " waiting for it to end"
        ]
        assert older.run_id not in waited
        assert runner.await_company_runs(
            [realm], since=began, exclude=[own.run_id], say=say, instance=instance
        ) == []
    finally:
        instance.dispose()


@pytest.mark.slow
def test_R30_a_run_killed_in_the_process_that_ran_it_or_while_starting_no_longer_holds_its_company(
    ops: OpsStack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs killed -9 that named no launched process (found by an attack; each wedged the
    company for good without a daemon): one run in the process that asked for it
    (``qbo-pipelines materialize``, the demo), killed mid-run; one whose launching command was
    killed while it was starting. The next ``sync push`` marks each failed and runs."""
    import signal
    import sys
    import time

    realm = ops.sandbox.realm_id
    assert ops.connect_by_consent(realm).returncode == 0
    demo.seed(ops.source, contacts=6, sales=8, workers=1, seed_value=5)
    instance = dg.DagsterInstance.get()
    try:
        selection = "raw/source/invoices,staged/qbo/invoices,pushed/qbo/invoices"
        proc = subprocess.Popen(
            [sys.executable, "-m", "qbo_pipelines.cli", "materialize", "--select", selection,
             "--partition", realm],
            env=ops.env, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        mid: list[DagsterRun] = []
        while not mid and time.monotonic() < deadline and proc.poll() is None:
            mid = instance.get_runs(
                dg.RunsFilter(tags={runner.PARTITION_TAG: realm}, statuses=[
                    dg.DagsterRunStatus.STARTED])  # fmt: skip
            )
            time.sleep(0.2)
        assert mid, "the materialize run never started"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        [killed] = mid
        assert instance.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.STARTED  # type: ignore[union-attr]

        starting = DagsterRun(
            job_name="pull_job",
            run_id=str(uuid.uuid4()),
            status=dg.DagsterRunStatus.STARTING,
            tags={runner.REALM_TAG: realm, runner.PARTITION_TAG: realm},
        )
        instance.add_run(starting)
        later = time.time() + instance.run_monitoring_start_timeout_seconds + 1
        monkeypatch.setattr(runner.time, "time", lambda: later)  # the start timeout passed

        capsys.readouterr()
        assert main(["sync", "push", "--realm", realm]) == 0
        out = capsys.readouterr().out
        assert f"run {killed.run_id} (__ASSET_JOB) its process (pid" in out
        assert f"run {starting.run_id} (pull_job) it has been starting for over" in out
        for run_id in (killed.run_id, starting.run_id):
            assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE  # type: ignore[union-attr]
    finally:
        instance.dispose()
