"""Start the pipeline's jobs from the CLI on the project's Dagster instance.

:func:`submit` is how a terminal starts a run: the run is created from the code location in
``workspace.yaml`` (exactly as the UI's launchpad creates it), tagged with its company, trigger
and direction, and handed to the instance's run coordinator, so it waits in the same queue as
sensor and UI runs, under the same one-run-per-company limit (``dagster_home/dagster.yaml``).

Who takes it out of the queue:

* a running ``dagster-daemon`` (``qbo-pipelines dev``), when its queued-run-coordinator heartbeat
  is fresh: :func:`submit` only waits;
* otherwise this process: once no other run of the company is in progress (and the instance's
  ``max_concurrent_runs`` allows), it launches the **oldest** queued run of the company through
  the instance's run launcher, as the daemon would, under a warehouse advisory lock so two
  terminals never launch twice. A queued run is therefore never stranded while some terminal of
  that company waits.

:func:`push_company` materializes the push in-process (the demo uses it: no code server and no
run subprocess to start); its run carries the same tags, so queued runs of the company wait for
it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import sqlalchemy as sa
from dagster._core.launcher import DefaultRunLauncher

from qbo_pipelines import companies, settings
from qbo_pipelines.defs.push import COMPANIES, PUSH_ASSETS, PushMode
from qbo_pipelines.defs.resources import (
    DIRECTION_TAG,
    PARTITION_TAG,
    REALM_TAG,
    TRIGGER_TAG,
    shared_resources,
)
from qbo_pipelines.status import RunInfo, ScheduledRun

LOCATION_NAME = "qbo_pipelines"
DAEMON_HEARTBEAT_MAX_AGE = 60.0  # seconds: the daemon beats every ~20 s
FINISHED = frozenset({"SUCCESS", "FAILURE", "CANCELED"})
IN_PROGRESS = [
    dg.DagsterRunStatus.NOT_STARTED,  # created by an in-process materialize, about to start
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


@dataclass(frozen=True)
class RunOutcome:
    """What became of a submitted run.

    Attributes:
        status: the Dagster run status name when :func:`submit` returned (``QUEUED``,
            ``STARTING``, ``STARTED`` with ``wait=False``; ``SUCCESS``, ``FAILURE`` or
            ``CANCELED`` after waiting).
        launched_by: ``daemon`` (the dagster-daemon dequeued it), ``cli`` (this process did,
            no daemon running) or ``""`` (still queued).
        counts: per asset key, the integer metadata of its materialization (created, updated,
            held_back, api_calls, ...); empty until the run has materialized something.
        checks: ``"<asset key>:<check name>"`` -> passed.
        failure: why the run failed, in one line (:func:`failure_reason`); "" otherwise.
    """

    run_id: str
    job_name: str
    realm_id: str
    status: str
    launched_by: str
    tags: Mapping[str, str] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)
    failure: str = ""

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def success(self) -> bool:
        return self.status == "SUCCESS"


Announce = Callable[[str], None]


def _warehouse() -> sa.Engine:
    from qbo_pipelines.warehouse import db

    return db.warehouse_engine()


def require_company(realm_id: str, warehouse: sa.Engine | None = None) -> companies.Company:
    """The connected company, else :class:`~qbo_pipelines.companies.NotConnectedError`."""
    engine = warehouse or _warehouse()
    try:
        return companies.require_connected(engine, realm_id)
    finally:
        if warehouse is None:
            engine.dispose()


def ensure_partition(
    realm_id: str,
    *,
    instance: dg.DagsterInstance | None = None,
    warehouse: sa.Engine | None = None,
) -> None:
    """Add the company's partition (only for a connected company: never a stray one)."""
    require_company(realm_id, warehouse)
    own = instance is None
    instance = instance or dg.DagsterInstance.get()
    try:
        if not instance.has_dynamic_partition(COMPANIES, realm_id):
            instance.add_dynamic_partitions(COMPANIES, [realm_id])
    finally:
        if own:
            instance.dispose()


_SHOWN = 60
"""Characters of a selection an error echoes."""


def _families(graph: Any) -> list[str]:
    """The asset keys by family: ``raw/source/<name>``, ``marts/<name>``, ``raw_qbo``."""
    out: set[str] = set()
    for key in graph.get_all_asset_keys():
        path = key.path
        out.add("/".join([*path[:-1], "<name>"]) if len(path) > 1 else path[0])
    return sorted(out)


def selection_problem(selection: str, partition: str | None) -> str | None:
    """Why ``dagster asset materialize --select selection [--partition P]`` cannot run, in one
    line (None: it can): no asset matches, per-company assets without a company, or a push
    asset without the stage whose snapshot it writes."""
    from qbo_pipelines.defs.definitions import defs

    graph = defs.resolve_asset_graph()
    try:
        keys = dg.AssetSelection.from_coercible(selection.split(",")).resolve(graph)
    except Exception:  # noqa: BLE001 - Dagster's many selection errors: what a user needs instead
        keys = set()
    if not keys:
        named = companies.shown(selection, _SHOWN)
        return (
            f"no asset matches {named!r}; the assets are {', '.join(_families(graph))}"
            " (`.venv/bin/dagster asset list -m qbo_pipelines.defs.definitions` lists each)"
        )
    names = {k.to_user_string() for k in keys}
    for name in sorted(names):
        if name.startswith("pushed/qbo/"):
            entity = name.removeprefix("pushed/qbo/")
            if f"staged/qbo/{entity}" not in names:
                return (
                    f"{name} writes the snapshot staged/qbo/{entity} takes in the same run:"
                    f" select 'raw/source/{entity},staged/qbo/{entity},{name}'"
                )
    partitioned = sorted(k.to_user_string() for k in keys if graph.get(k).is_partitioned)
    by_day = sorted(
        k.to_user_string()
        for k in keys
        if isinstance(graph.get(k).partitions_def, dg.MultiPartitionsDefinition)
    )
    by_company = [name for name in partitioned if name not in by_day]
    if by_day and by_company:
        return (
            f"{by_day[0]} runs per day and company, {by_company[0]} per company: materialize "
            "them separately"
        )
    if partitioned and partition is None:
        return (
            f"{_some(partitioned)} run per company{' and day' if by_day else ''}: add "
            + ("--partition '<realm id>|<YYYY-MM-DD>'" if by_day else "--partition <realm id>")
            + " (`qbo-pipelines companies` lists them)"
        )
    day = (partition or "").partition("|")[2]
    if by_day:
        return _day_problem(day)
    if day:
        return (
            f"--partition takes a day only for the backfill/* assets: give {selection!r} the "
            "realm id alone"
        )
    return None


def _some(names: Sequence[str]) -> str:
    return f"{', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"


def _day_problem(day: str) -> str | None:
    """Why ``day`` is not a backfill day (None: it is): a date from the first day a backfill
    can select to tomorrow (QBO's today ahead of ours), as ``YYYY-MM-DD``."""
    from qbo_pipelines.defs.backfill import BACKFILL_START

    first = date.fromisoformat(BACKFILL_START)
    last = datetime.now(UTC).date() + timedelta(days=1)
    try:
        when = date.fromisoformat(day) if len(day) == 10 else None
    except ValueError:
        when = None
    if when is None:
        return f"a backfill partition is '<realm id>|<YYYY-MM-DD>', not a day {day[:40]!r}"
    if not first <= when <= last:
        return f"a backfill day is from {first} to {last}, not {when}"
    return None


def push_run_config(mode: str = "incremental", *, delete_missing: bool = False) -> dict[str, Any]:
    """Run config of ``push_job``: every asset that takes ``PushConfig`` gets ``mode`` (and
    ``delete_missing``: records gone from the source behind its change log are deleted, however
    many)."""
    try:
        PushMode(mode)
    except ValueError:
        known = ", ".join(repr(m.value) for m in PushMode)
        raise ValueError(f"mode must be one of {known}, not {mode!r}") from None
    return {
        "ops": {
            a.node_def.name: {"config": {"mode": mode, "delete_missing": delete_missing}}
            for a in PUSH_ASSETS
            if a.key.path[0] in ("raw", "pushed")  # the assets that take PushConfig
        }
    }


def _with_defaults(job_name: str, run_config: Mapping[str, Any]) -> dict[str, Any]:
    """A company run in one process (one import of the pipeline, not one per step: an empty
    push takes seconds, not a minute) and a quiet console (the full log is in the UI), unless
    the caller or the job chose otherwise."""
    from qbo_pipelines.defs import build_definitions

    config = dict(run_config)
    executor = build_definitions().resolve_job_def(job_name).executor_def
    if "execution" not in config and executor.name == "multi_or_in_process_executor":
        config["execution"] = {"config": {"in_process": {}}}
    config.setdefault("loggers", quiet_console())
    return config


# ---------------------------------------------------------------------------------------------
# In-process (the demo)


def push_company(
    realm_id: str,
    *,
    mode: str = "incremental",
    trigger: str = "cli",
    instance: dg.DagsterInstance | None = None,
    warehouse: sa.Engine | None = None,
) -> dict[str, Any]:
    """Materialize every push asset for one company in this process; returns the run id and
    counts per asset. Refuses a company that is not connected before anything is written."""
    return materialize_company(
        PUSH_ASSETS,
        realm_id,
        run_config=push_run_config(mode),
        tags={TRIGGER_TAG: trigger, DIRECTION_TAG: "push"},
        instance=instance,
        warehouse=warehouse,
    )


def materialize_company(
    assets: list[dg.AssetsDefinition],
    realm_id: str,
    *,
    run_config: Mapping[str, Any],
    tags: Mapping[str, str],
    instance: dg.DagsterInstance | None = None,
    warehouse: sa.Engine | None = None,
) -> dict[str, Any]:
    """Materialize ``assets`` for one connected company in this process (a quiet console: the
    full log is in the UI); the run id, success, counts per asset and check results."""
    instance = instance or dg.DagsterInstance.get()
    ensure_partition(realm_id, instance=instance, warehouse=warehouse)
    result = dg.materialize(
        assets,
        partition_key=realm_id,
        instance=instance,
        resources=shared_resources(),
        run_config={
            **run_config,
            "loggers": quiet_console(),
        },
        tags={**tags, REALM_TAG: realm_id},
        raise_on_error=False,
    )
    counts, checks = run_counts(instance, result.run_id)
    return {
        "run_id": result.run_id,
        "success": result.success,
        "counts": counts,
        "checks": checks,
        "failure": "" if result.success else failure_reason(instance, result.run_id),
    }


# ---------------------------------------------------------------------------------------------
# Through the run queue


def daemon_alive(instance: dg.DagsterInstance, max_age: float = DAEMON_HEARTBEAT_MAX_AGE) -> bool:
    """True when a dagster-daemon's queued-run coordinator has beaten within ``max_age`` s."""
    beat = instance.get_daemon_heartbeats().get("QUEUED_RUN_COORDINATOR")
    return beat is not None and time.time() - beat.timestamp < max_age


@contextmanager
def _workspace(instance: dg.DagsterInstance) -> Iterator[Any]:
    """The code location of ``workspace.yaml`` (a code server process, as the UI uses)."""
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    target = WorkspaceFileTarget(paths=[str(settings.PROJECT_ROOT / "workspace.yaml")])
    with WorkspaceProcessContext(
        instance=instance,
        workspace_load_target=target,
        version=dg.__version__,
        read_only=False,
        code_server_log_level="WARNING",
    ) as process_context:
        yield process_context.create_request_context()


def _create_run(
    instance: dg.DagsterInstance,
    workspace: Any,
    job_name: str,
    run_config: Mapping[str, Any],
    tags: Mapping[str, str],
) -> dg.DagsterRun:
    """The run as the launchpad creates it: from the remote job, with its execution plan."""
    from dagster._core.definitions.selector import JobSubsetSelector

    location = workspace.get_code_location(LOCATION_NAME)
    [repo] = location.get_repositories().values()
    selector = JobSubsetSelector(
        location_name=location.name,
        repository_name=repo.name,
        job_name=job_name,
        op_selection=None,
    )
    remote_job = location.get_job(selector)
    plan = location.get_execution_plan(
        remote_job,
        dict(run_config),
        step_keys_to_execute=None,
        known_state=None,
        instance=instance,
    )
    return instance.create_run(
        job_name=job_name,
        run_id=None,
        run_config=dict(run_config),
        resolved_op_selection=None,
        step_keys_to_execute=plan.execution_plan_snapshot.step_keys_to_execute,
        op_selection=None,
        status=None,
        root_run_id=None,
        parent_run_id=None,
        tags={**remote_job.tags, **tags},
        job_snapshot=remote_job.job_snapshot,
        execution_plan_snapshot=plan.execution_plan_snapshot,
        parent_job_snapshot=remote_job.parent_job_snapshot,
        remote_job_origin=remote_job.get_remote_origin(),
        job_code_origin=remote_job.get_python_origin(),
        asset_selection=None,
        asset_check_selection=None,
        asset_graph=repo.asset_graph,
    )


def _company_runs(
    instance: dg.DagsterInstance,
    realm_id: str,
    statuses: list[dg.DagsterRunStatus],
    created_after: datetime | None = None,
) -> list[dg.DagsterRun]:
    seen: dict[str, dg.DagsterRun] = {}
    for tag in (REALM_TAG, PARTITION_TAG):
        runs = instance.get_runs(
            dg.RunsFilter(tags={tag: realm_id}, statuses=statuses, created_after=created_after)
        )
        for run in runs:
            seen[run.run_id] = run
    return list(seen.values())


def _max_concurrent(instance: dg.DagsterInstance) -> int:
    config = getattr(instance.run_coordinator, "get_run_queue_config", None)
    value = getattr(config(), "max_concurrent_runs", -1) if callable(config) else -1
    return int(value)


def _run_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The pid of a run's process, or None: the first engine event of the run naming one (the
    run launcher's "Started process for run (pid: N)", or, for a run executed in the process
    that asked for it (``materialize``, the demo), "Executing steps in process (pid: N)";
    later events may name step processes, which end before the run)."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ENGINE_EVENT, ascending=True, limit=100
    ).records
    for record in records:
        data = getattr(record.event_log_entry.dagster_event, "event_specific_data", None)
        pid = getattr(data, "metadata", {}).get("pid") if data is not None else None
        text = str(getattr(pid, "value", "") or "")
        if text.isdigit():
            return int(text)
    return None


def _starting_since(instance: dg.DagsterInstance, run: dg.DagsterRun) -> float | None:
    """When a run that never named its process began starting (epoch seconds), or None."""
    if run.status not in (dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.NOT_STARTED):
        return None
    events = instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.RUN_STARTING, limit=1
    ).records
    if events:
        return float(events[0].timestamp)
    record = instance.get_run_record_by_id(run.run_id)
    return record.create_timestamp.timestamp() if record is not None else None


def _process_alive(pid: int) -> bool:
    """Whether a process of this machine runs (a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]


def _reaped(instance: dg.DagsterInstance, run: dg.DagsterRun, say: Announce) -> bool:
    """A run in progress that nothing will ever finish is marked failed, so the company's
    queued runs go on instead of waiting for it forever; the next run replays what it left
    open (its stored write intents). Judged: runs of this machine's local run launcher or run
    in a local process (its pid reported) whose process is gone (killed, crashed), and runs
    that never named a process and are still starting after the instance's start timeout
    (``run_monitoring.start_timeout_seconds``: the command launching them was killed)."""
    if not isinstance(instance.run_launcher, DefaultRunLauncher):
        return False
    pid = _run_pid(instance, run.run_id)
    if pid is not None:
        if _process_alive(pid):
            return False
        why = (
            f"its process (pid {pid}) is gone (killed or crashed): marked failed so the "
            "company's next run can start; that run replays what this one left open"
        )
    else:
        since = _starting_since(instance, run)
        timeout = float(instance.run_monitoring_start_timeout_seconds)
        if since is None or time.time() - since < timeout:
            return False
        why = (
            f"it has been starting for over {timeout:.0f} s without a process (the command "
            "that launched it was stopped): marked failed so the company's next run can start"
        )
    instance.report_run_failed(run, why)
    say(f"run {run.run_id} ({run.job_name}) {why}")
    return True


def _dequeue_for_company(
    instance: dg.DagsterInstance,
    workspace: Any,
    warehouse: sa.Engine,
    realm_id: str,
    say: Announce,
    waiting: set[str],
) -> str | None:
    """Launch the company's oldest queued run when the company is free; its run id, or None.
    The run holding the company is named once (``waiting``: the runs named already).
    A run in progress whose process is gone no longer holds the company (:func:`_reaped`).

    Serialised per company by an advisory lock in the warehouse, so two terminals never launch
    the same run or two runs of one company."""
    with warehouse.connect() as conn:
        key = f"qbo_pipelines/dequeue/{realm_id}"
        conn.execute(sa.text("SELECT pg_advisory_lock(hashtextextended(:k, 0))"), {"k": key})
        try:
            running = _company_runs(instance, realm_id, IN_PROGRESS)
            holding = [r for r in running if not _reaped(instance, r, say)]
            for run in holding:
                if run.run_id not in waiting:
                    waiting.add(run.run_id)
                    say(
                        f"waiting for run {run.run_id} ({run.job_name}, {run.status.value}) "
                        "of this company to finish"
                    )
            if holding:
                return None
            limit = _max_concurrent(instance)
            if limit >= 0 and len(instance.get_runs(dg.RunsFilter(statuses=IN_PROGRESS))) >= limit:
                return None
            queued = _company_runs(instance, realm_id, [dg.DagsterRunStatus.QUEUED])
            if not queued:
                return None
            oldest = min(
                queued,
                key=lambda r: (
                    instance.get_run_record_by_id(r.run_id).create_timestamp  # type: ignore[union-attr]
                ),
            )
            instance.launch_run(oldest.run_id, workspace)
            return oldest.run_id
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(hashtextextended(:k, 0))"), {"k": key})
            conn.commit()


def quiet_console() -> dict[str, Any]:
    """The console logger of the runs this package starts: silent (Dagster writes a failed
    step with its stack trace there); the command prints the reason instead
    (:func:`failure_reason`), and the full log, stack traces included, is in the UI."""
    return {"console": {"config": {"log_level": "CRITICAL"}}}


def describe_failure(message: str | None, step_failures: Sequence[Any]) -> str:
    """A failed run in one line: its failure message plus the first failed step's own error
    (the innermost cause, class and message; no stack trace)."""
    parts = [" ".join((message or "the run failed").split())]
    for event in step_failures[:1]:
        error = getattr(event.event_specific_data, "error", None)
        while error is not None and error.cause is not None:  # the user code's own error
            error = error.cause
        if error is not None:
            said = " ".join(error.message.split())
            parts.append(f"step {event.step_key}: {error.cls_name}: {said}")
    return " ".join(parts)


def failure_reason(instance: dg.DagsterInstance, run_id: str) -> str:
    """Why a run failed, in one line (:func:`describe_failure`), from its event log; "" when
    it did not fail."""
    runs = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.RUN_FAILURE, limit=1
    ).records
    steps = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.STEP_FAILURE, limit=1
    ).records
    if not runs and not steps:
        return ""
    message = runs[0].event_log_entry.dagster_event.message if runs else None  # type: ignore[union-attr]
    return describe_failure(message, [r.event_log_entry.dagster_event for r in steps])


def run_counts(
    instance: dg.DagsterInstance, run_id: str
) -> tuple[dict[str, dict[str, int]], dict[str, bool]]:
    """Per-asset integer metadata of a run's materializations, and its check results."""
    counts: dict[str, dict[str, int]] = {}
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, limit=10_000
    ).records
    for record in records:
        mat = record.asset_materialization
        if mat is None:
            continue
        counts[mat.asset_key.to_user_string()] = {
            k: int(v.value)
            for k, v in mat.metadata.items()
            if isinstance(v.value, int) and not isinstance(v.value, bool)
        }
    checks: dict[str, bool] = {}
    evaluations = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION, limit=10_000
    ).records
    for record in evaluations:
        event = record.event_log_entry.dagster_event
        data = getattr(event, "event_specific_data", None) if event else None
        if data is not None and hasattr(data, "check_name"):
            checks[f"{data.asset_key.to_user_string()}:{data.check_name}"] = bool(data.passed)
    return counts, checks


def submit(
    job_name: str,
    realm_id: str,
    *,
    run_config: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    wait: bool = True,
    timeout: float | None = None,
    poll_interval: float = 1.0,
    instance: dg.DagsterInstance | None = None,
    warehouse: sa.Engine | None = None,
    announce: Announce | None = None,
) -> RunOutcome:
    """Submit a run of ``job_name`` for one company partition through the instance's queue.

    The company must be connected (checked before anything is created). The run is tagged
    ``qbo_pipelines/realm`` and ``dagster/partition`` = ``realm_id`` plus ``tags`` (give
    ``qbo_pipelines/trigger`` and ``qbo_pipelines/direction``; the trigger defaults to
    ``cli``). With no dagster-daemon alive, this process dequeues the company's runs itself
    (see the module docstring).

    Args:
        wait: wait until the run finishes (default). ``False`` returns once it is queued while
            a daemon is alive, or once this process launched it otherwise.
        timeout: give up waiting after this many seconds (the run goes on; status as seen).
        announce: called with one line when the run is queued and when it is launched.
    """
    own_warehouse, own_instance = warehouse is None, instance is None
    engine = warehouse or _warehouse()
    instance = instance or dg.DagsterInstance.get()
    say = announce or (lambda _line: None)
    try:
        companies.require_connected(engine, realm_id)
        if not instance.has_dynamic_partition(COMPANIES, realm_id):
            instance.add_dynamic_partitions(COMPANIES, [realm_id])
        run_tags = {
            TRIGGER_TAG: "cli",
            **dict(tags or {}),
            REALM_TAG: realm_id,
            PARTITION_TAG: realm_id,
        }
        config = _with_defaults(job_name, run_config or {})
        with _workspace(instance) as workspace:
            run = _create_run(instance, workspace, job_name, config, run_tags)
            instance.submit_run(run.run_id, workspace)
            say(f"run {run.run_id} queued ({job_name}, company {realm_id})")
            launched_by = ""
            waiting: set[str] = set()  # runs holding the company, named once
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                current = instance.get_run_by_id(run.run_id)
                assert current is not None
                status = current.status.value
                if status == "QUEUED" and daemon_alive(instance):
                    # the daemon dequeues, but a dead run would hold the company for hours
                    for other in _company_runs(instance, realm_id, IN_PROGRESS):
                        _reaped(instance, other, say)
                elif status == "QUEUED":
                    started = _dequeue_for_company(
                        instance, workspace, engine, realm_id, say, waiting
                    )
                    if started is not None:
                        say(f"run {started} launched by this process (no dagster-daemon)")
                    if started == run.run_id:
                        launched_by = "cli"
                        continue
                elif status != "QUEUED" and not launched_by:
                    launched_by = "daemon"
                if status in FINISHED or (
                    not wait and (status != "QUEUED" or daemon_alive(instance))
                ):
                    break
                if deadline is not None and time.monotonic() > deadline:
                    break
                time.sleep(poll_interval)
        counts, checks = run_counts(instance, run.run_id)
        return RunOutcome(
            run_id=run.run_id,
            job_name=job_name,
            realm_id=realm_id,
            status=status,
            launched_by=launched_by,
            tags=run_tags,
            counts=counts,
            checks=checks,
            failure=failure_reason(instance, run.run_id) if status == "FAILURE" else "",
        )
    finally:
        if own_warehouse:
            engine.dispose()
        if own_instance:
            instance.dispose()


def finish(
    outcome: RunOutcome,
    *,
    poll_interval: float = 1.0,
    instance: dg.DagsterInstance | None = None,
) -> RunOutcome:
    """Wait until a run :func:`submit` returned (``wait=False``) has finished; its outcome
    then, with the counts of what it materialized. Submitting every company first and then
    finishing each lets their runs go at once, under the instance's limits."""
    own_instance = instance is None
    instance = instance or dg.DagsterInstance.get()
    try:
        while True:
            run = instance.get_run_by_id(outcome.run_id)
            assert run is not None
            status = run.status.value
            if status in FINISHED:
                break
            time.sleep(poll_interval)
        counts, checks = run_counts(instance, outcome.run_id)
        launched_by = outcome.launched_by or "daemon"
        failure = failure_reason(instance, outcome.run_id) if status == "FAILURE" else ""
        return replace(
            outcome,
            status=status,
            launched_by=launched_by,
            counts=counts,
            checks=checks,
            failure=failure,
        )
    finally:
        if own_instance:
            instance.dispose()


OUTLIVE_MAX = 3600.0
"""Seconds at most a command that serves the demo's sandbox waits, before stopping it, for the
company runs other commands queued meanwhile."""


def await_company_runs(
    realms: Sequence[str],
    *,
    since: datetime,
    exclude: Sequence[str] = (),
    say: Announce = print,
    poll_interval: float = 1.0,
    max_wait: float = OUTLIVE_MAX,
    instance: dg.DagsterInstance | None = None,
) -> list[str]:
    """Wait until the runs of ``realms`` created since ``since`` (other than ``exclude``) have
    finished, at most ``max_wait`` seconds; the runs waited for.

    A command that serves the demo's sandbox (``sync push`` after ``make demo``) stops it when
    it ends. Another command started meanwhile found it answering and queued its run to use
    it: stopped under it, that run's writes would get no answer. So the serving command
    outlives them (runs queued before it began are not its to wait for)."""
    own = instance is None
    instance = instance or dg.DagsterInstance.get()
    waited: list[str] = []
    deadline = time.monotonic() + max_wait
    try:
        while time.monotonic() < deadline:
            active = {
                run.run_id
                for realm in realms
                for run in _company_runs(
                    instance, realm, [dg.DagsterRunStatus.QUEUED, *IN_PROGRESS], since
                )
                if run.run_id not in exclude
            }
            if not active:
                break
            for run_id in sorted(active - set(waited)):
                say(
                    f"run {run_id} (another command's) still uses the QBO sandbox served "
                    "here: waiting for it to end"
                )
                waited.append(run_id)
            time.sleep(poll_interval)
        return waited
    finally:
        if own:
            instance.dispose()


# ---------------------------------------------------------------------------------------------
# Run history and schedules for ``qbo-pipelines status``


def company_runs(
    realm_id: str, *, limit: int = 20, instance: dg.DagsterInstance | None = None
) -> list[RunInfo]:
    """The company's latest runs (newest first) from the instance's run storage."""
    instance = instance or dg.DagsterInstance.get()
    out: dict[str, RunInfo] = {}
    for tag in (REALM_TAG, PARTITION_TAG):
        for record in instance.get_run_records(dg.RunsFilter(tags={tag: realm_id}), limit=limit):
            run = record.dagster_run
            out[run.run_id] = RunInfo(
                run_id=run.run_id,
                job_name=run.job_name,
                status=run.status.value,
                direction=run.tags.get(DIRECTION_TAG)
                or ("push" if run.job_name.startswith("push") else None),
                started_at=_ts(record.start_time) or record.create_timestamp,
                ended_at=_ts(record.end_time),
            )
    newest_first = sorted(out.values(), key=lambda r: r.started_at or _EPOCH, reverse=True)
    return newest_first[:limit]


_EPOCH = datetime.fromtimestamp(0, UTC)


class InstanceHistory:
    """:class:`qbo_pipelines.status.RunHistory` over the Dagster instance."""

    def __init__(self, instance: dg.DagsterInstance | None = None) -> None:
        self.instance = instance or dg.DagsterInstance.get()
        self._ticks: list[tuple[str, datetime]] | None = None

    def runs(self, realm_id: str) -> list[RunInfo]:
        return company_runs(realm_id, instance=self.instance)

    def close(self) -> None:
        self.instance.dispose()

    def next_runs(self, realm_id: str) -> list[ScheduledRun]:
        if self._ticks is None:
            self._ticks = next_schedule_ticks()
        return [ScheduledRun(name, at) for name, at in self._ticks]


def _ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def next_schedule_ticks(now: datetime | None = None) -> list[tuple[str, datetime]]:
    """The next tick of every schedule in the code location (empty when there is none)."""
    from dagster._utils.schedules import cron_string_iterator

    from qbo_pipelines.defs import build_definitions

    now = now or datetime.now(UTC)
    ticks: list[tuple[str, datetime]] = []
    for schedule in build_definitions().schedules or []:
        if not isinstance(schedule, dg.ScheduleDefinition):
            continue
        crons = schedule.cron_schedule
        for cron in [crons] if isinstance(crons, str) else list(crons):
            it = cron_string_iterator(now.timestamp(), cron, schedule.execution_timezone or "UTC")
            ticks.append((schedule.name, next(it).astimezone(UTC)))
    return sorted(ticks, key=lambda t: t[1])
