"""Benchmark: many QBO companies on one Dagster instance, synced through the run queue (issue 12).

Usage: ``.venv/bin/python bench/companies.py [--companies 50] [--contacts 12] [--sales 15]``

What it does, as a data engineer would:

1. throw-away databases on the configured Postgres (``QBO_PIPELINES_DB_PREFIX``), a Dagster home
   with this repository's ``dagster_home/dagster.yaml`` (run queue: one run per company, four in
   all), a QBO sandbox in a child process with QBO's limits on;
2. N sandbox companies connected (tokens stored encrypted, as the OAuth callback stores them),
   each with the demo mappings; a small demo source app that every company receives; automatic
   sync off for every company, so the only runs are the ones submitted here;
3. a ``dagster-daemon`` (what ``qbo-pipelines dev`` runs), then one queued ``push_job`` run per
   company, created and submitted exactly as ``runner.submit`` (``qbo-pipelines sync push``)
   does it but from one code location for all of them; ``--cli`` runs ``qbo-pipelines sync push
   --no-wait`` itself, which starts a code server per company (about a minute each when the
   machine is busy); the daemon dequeues under the instance's limits (one run per company, four
   in all);
4. once every run has finished, the same again with nothing changed (an idle cycle).

Printed per pass: companies synced per hour on this machine, records/s, API calls per company
(from the sandbox's request log), peak concurrent runs and the most runs of one company at once
(from Dagster's run history), failures; then QBO's budget per company from the sandbox's request
log (most calls in any 60 s, most in flight, 429s) and the load average sampled meanwhile (the
machine is shared). Prints figures only; never asserts.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from qbo_pipelines import settings
from qbo_pipelines.canonical import RealmId
from qbo_pipelines.demo import setup
from qbo_pipelines.mapping import repository
from qbo_pipelines.qbo.app import ENV_API_URL, ENV_CLIENT_ID, ENV_CLIENT_SECRET, ENV_OAUTH_URL
from qbo_pipelines.qbo.auth import ENV_TOKEN_KEY
from qbo_pipelines.sandbox.control import SandboxControl
from qbo_pipelines.sandbox.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from qbo_pipelines.source_app import demo
from qbo_pipelines.sync import env as sync_env
from qbo_pipelines.warehouse import db, postgres

_SERVE = """
import sys
from qbo_pipelines.sandbox.testing import run_sandbox
with run_sandbox() as sb:
    print(sb.base_url, sb.control_token, flush=True)
    sys.stdin.read()
"""

REALM_TAG = "qbo_pipelines/realm"
WRITTEN = ("created", "updated", "matched", "deleted")


class LoadSampler(threading.Thread):
    """The 1-minute load average every few seconds (the machine is shared)."""

    def __init__(self, every: float = 5.0) -> None:
        super().__init__(daemon=True)
        self.every = every
        self.samples: list[float] = []
        self._stop = threading.Event()

    def run(self) -> None:
        while not self._stop.wait(self.every):
            self.samples.append(os.getloadavg()[0])

    def stop(self) -> list[float]:
        self._stop.set()
        return self.samples

    def since(self, start: int) -> str:
        window = self.samples[start:] or [os.getloadavg()[0]]
        return f"load average (1 min) mean {statistics.fmean(window):.1f}, max {max(window):.1f}"


@dataclass
class PassResult:
    name: str
    seconds: float
    submit_seconds: float
    runs: list[Any] = field(default_factory=list)  # dagster RunRecord
    counts: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)  # run -> asset


def _environment(tmp: Path, prefix: str) -> postgres.PgServer:
    """What a data engineer's terminal exports: databases (throw-away ones on the configured
    server), data dir, token key, Dagster home."""
    pg = postgres.server()  # before the data dir moves: the embedded server stays the usual one
    os.environ[settings.ENV_PG_URL] = pg.url_str("postgres").replace(
        "postgresql+psycopg", "postgresql"
    )
    home = tmp / "dagster_home"
    home.mkdir()
    shutil.copy(settings.DAGSTER_HOME / "dagster.yaml", home / "dagster.yaml")
    os.environ[settings.ENV_DB_PREFIX] = prefix
    os.environ[settings.ENV_DATA_DIR] = str(tmp / "data")
    os.environ[ENV_TOKEN_KEY] = Fernet.generate_key().decode()
    os.environ["DAGSTER_HOME"] = str(home)
    return pg


def _connect(
    env: sync_env.SyncEnv, control: SandboxControl, base_url: str, n: int, auto: bool
) -> list[str]:
    """N sandbox companies, connected with the demo mappings (automatic sync off unless auto)."""
    realms: list[str] = []
    for i in range(n):
        name = f"Bench Company {i + 1:03d}"
        realm = control.create_company(name, seed=True)
        setup.prepare_sandbox_company(control, realm)
        setup.connect_with_tokens(
            env, RealmId(realm), control.mint_tokens(realm), base_url, company_name=name
        )
        setup.apply_demo_mappings(env, RealmId(realm))
        if not auto:
            repository.set_setting(env.warehouse, realm, "sync-enabled", "false", by="bench")
        realms.append(realm)
    return realms


def _push_all(log: Path) -> float:
    """``qbo-pipelines sync push --no-wait`` (every connected company); seconds it took."""
    started = time.perf_counter()
    with log.open("a") as out:
        done = subprocess.run(
            [sys.executable, "-m", "qbo_pipelines.cli", "sync", "push", "--no-wait"],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
            timeout=3600,
        )
    if done.returncode != 0:
        raise SystemExit(f"`qbo-pipelines sync push --no-wait` exited {done.returncode}: see {log}")
    return time.perf_counter() - started


def _submit_shared(instance: Any, warehouse: Any, realms: list[str]) -> float:
    """What ``runner.submit`` does per company (connected check, partition, the run created from
    the code location as the launchpad creates it, handed to the run coordinator), with one code
    location for every company instead of a code server started per call; seconds it took."""
    from qbo_pipelines import companies
    from qbo_pipelines.defs import runner

    started = time.perf_counter()
    config = runner._with_defaults("push_job", runner.push_run_config())
    with runner._workspace(instance) as workspace:
        for realm in realms:
            companies.require_connected(warehouse, realm)
            if not instance.has_dynamic_partition(runner.COMPANIES, realm):
                instance.add_dynamic_partitions(runner.COMPANIES, [realm])
            tags = {
                runner.TRIGGER_TAG: "cli",
                runner.DIRECTION_TAG: "push",
                runner.REALM_TAG: realm,
                runner.PARTITION_TAG: realm,
            }
            run = runner._create_run(instance, workspace, "push_job", config, tags)
            instance.submit_run(run.run_id, workspace)
    return time.perf_counter() - started


def _wait_for_runs(instance: Any, realms: list[str], known: set[str], timeout: float) -> list[Any]:
    """The run records of ``realms`` not in ``known``, once every one of them has finished."""
    import dagster as dg

    finished = {"SUCCESS", "FAILURE", "CANCELED"}
    deadline = time.monotonic() + timeout
    wanted = set(realms)
    while True:
        records = [
            r
            for r in instance.get_run_records(dg.RunsFilter(tags={REALM_TAG: list(wanted)}))
            if r.dagster_run.run_id not in known
        ]
        per_realm = Counter(r.dagster_run.tags.get(REALM_TAG) for r in records)
        done = all(r.dagster_run.status.value in finished for r in records)
        if (done and all(per_realm[realm] for realm in realms)) or time.monotonic() > deadline:
            return records
        time.sleep(2)


def _overlaps(records: list[Any]) -> tuple[int, int]:
    """(most runs in progress at once, most runs of one company in progress at once)."""
    events: list[tuple[float, int, str]] = []
    for r in records:
        if r.start_time is None:
            continue
        end = r.end_time or time.time()
        realm = r.dagster_run.tags.get(REALM_TAG, "")
        events += [(r.start_time, 1, realm), (end, -1, realm)]
    events.sort(key=lambda e: (e[0], e[1]))  # an end before a start at the same instant
    peak = running = 0
    per: Counter[str] = Counter()
    peak_one = 0
    for _, step, realm in events:
        running += step
        per[realm] += step
        peak = max(peak, running)
        peak_one = max(peak_one, per[realm])
    return peak, peak_one


def _budget(control: SandboxControl, realms: list[str]) -> dict[str, tuple[int, int, int, int]]:
    """Per company from the sandbox's request log: (calls, most in any 60 s, 429s, in flight)."""
    out: dict[str, tuple[int, int, int, int]] = {}
    for realm in realms:
        entries = control.requests(realm)
        times = sorted(datetime.fromisoformat(e["time"]).timestamp() for e in entries)
        most = lo = 0
        for hi, t in enumerate(times):
            while times[lo] <= t - 60.0:
                lo += 1
            most = max(most, hi - lo + 1)
        throttled = sum(1 for e in entries if e["status"] == 429)
        out[realm] = (len(entries), most, throttled, control.max_in_flight(realm))
    return out


def _report(
    result: PassResult,
    control: SandboxControl,
    realms: list[str],
    load: str,
    instance: Any,
) -> None:
    runs = result.runs
    ok = [r for r in runs if r.dagster_run.status.value == "SUCCESS"]
    failed = [r for r in runs if r.dagster_run.status.value != "SUCCESS"]
    synced = {r.dagster_run.tags.get(REALM_TAG) for r in ok}
    durations = [r.end_time - r.start_time for r in runs if r.start_time and r.end_time]
    queued = [
        r.start_time - r.create_timestamp.timestamp() for r in runs if r.start_time is not None
    ]
    written = read = 0
    for assets in result.counts.values():
        for key, values in assets.items():
            if key.startswith("pushed/"):
                written += sum(values.get(k, 0) for k in WRITTEN)
            elif key.startswith("raw/"):
                read += values.get("read", 0)
    peak, peak_one = _overlaps(runs)
    budget = _budget(control, realms)
    calls = [b[0] for b in budget.values()]
    print(f"\n== {result.name}: {len(realms)} companies, {len(runs)} runs ==")
    print(
        f"  wall {result.seconds:.0f} s from the first submit to the last run's end "
        f"(submitting alone: {result.submit_seconds:.0f} s); {load}"
    )
    print(
        f"  companies synced per hour on this machine: {len(synced) / result.seconds * 3600:,.0f}"
        f" ({len(synced)} of {len(realms)} succeeded)"
    )
    if durations:
        print(
            f"  run time per company: median {statistics.median(durations):.1f} s, "
            f"max {max(durations):.1f} s; waited in the queue: median "
            f"{statistics.median(queued):.1f} s, max {max(queued):.1f} s"
        )
    print(
        f"  records: {read:,} read from the source, {written:,} created/updated/matched/deleted "
        f"in QBO = {read / result.seconds:,.1f} read/s, {written / result.seconds:,.1f} written/s"
    )
    print(
        f"  API calls per company: min {min(calls)}, median {statistics.median(calls):g}, "
        f"max {max(calls)} (total {sum(calls):,})"
    )
    print(
        f"  peak concurrent runs {peak}; most runs of one company at once {peak_one} "
        "(Dagster run history)"
    )
    worst_minute = max(b[1] for b in budget.values())
    worst_flight = max(b[3] for b in budget.values())
    throttled = sum(b[2] for b in budget.values())
    print(
        f"  QBO budget (sandbox request log): most calls of one company in any 60 s "
        f"{worst_minute} (limit 500), most in flight {worst_flight} (limit 10), 429s {throttled}"
    )
    for r in failed:
        run = r.dagster_run
        print(f"  FAILED: run {run.run_id} company {run.tags.get(REALM_TAG)} {run.status.value}")
        for line in _failure_lines(instance, run.run_id):
            print(f"    {line}")
    if not failed:
        print("  failures: none")


def _failure_lines(instance: Any, run_id: str) -> list[str]:
    import dagster as dg

    records = instance.get_records_for_run(
        run_id, of_type={dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE}
    ).records
    lines = []
    for record in records[:3]:
        event = record.event_log_entry.dagster_event
        lines.append(f"{event.event_type_value}: {(event.message or '')[:300]}")
    return lines


def _pass(
    name: str,
    instance: Any,
    control: SandboxControl,
    realms: list[str],
    log: Path,
    sampler: LoadSampler,
    timeout: float,
    warehouse: Any,
    via_cli: bool,
) -> PassResult:
    how = (
        f"`qbo-pipelines sync push --no-wait` (output: {log})"
        if via_cli
        else ("one queued push_job run per company, created as runner.submit creates it")
    )
    print(f"\n{name}: {how}", flush=True)
    from qbo_pipelines.defs import runner

    known = {r.dagster_run.run_id for r in instance.get_run_records()}
    control.reset_requests()
    started, first_sample = time.perf_counter(), len(sampler.samples)
    submit_seconds = _push_all(log) if via_cli else _submit_shared(instance, warehouse, realms)
    runs = _wait_for_runs(instance, realms, known, timeout)
    result = PassResult(name, time.perf_counter() - started, submit_seconds, runs)
    for r in runs:
        result.counts[r.dagster_run.run_id], _ = runner.run_counts(instance, r.dagster_run.run_id)
    _report(result, control, realms, sampler.since(first_sample), instance)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--companies", type=int, default=50)
    parser.add_argument("--contacts", type=int, default=12, help="demo source app contacts")
    parser.add_argument("--sales", type=int, default=15, help="demo source app sales")
    parser.add_argument("--workers", type=int, default=2, help="demo source app workers")
    parser.add_argument("--timeout", type=float, default=3600, help="per pass, seconds")
    parser.add_argument("--keep-auto", action="store_true", help="leave automatic (sensor) sync on")
    parser.add_argument(
        "--cli",
        action="store_true",
        help="submit with `qbo-pipelines sync push --no-wait` (a code server per company: slow)",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    warnings.simplefilter("ignore")  # Dagster's beta warnings, once per asset
    sampler = LoadSampler()
    sampler.start()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-companies-"))
    prefix = f"bench{uuid.uuid4().hex[:6]}_"
    pg = _environment(tmp, prefix)
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert server.stdout is not None
    base_url, token = server.stdout.readline().split()
    for key, value in (
        (ENV_CLIENT_ID, DEFAULT_CLIENT_ID),
        (ENV_CLIENT_SECRET, DEFAULT_CLIENT_SECRET),
        (ENV_API_URL, base_url),
        (ENV_OAUTH_URL, base_url),
    ):
        os.environ[key] = value
    control = SandboxControl(base_url, token=token, timeout=600)
    stack = db.bootstrap()
    os.environ["QBO_PIPELINES_DAGSTER_PG_URL"] = stack.dagster_url
    warehouse = db.make_engine(stack.warehouse_url)
    source = db.make_engine(stack.source_app_url)
    daemon: subprocess.Popen[bytes] | None = None
    log = tmp / "sync-push.log"
    daemon_log = tmp / "dagster-daemon.log"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up when terminated
    try:
        env = sync_env.SyncEnv(warehouse, source, sync_env.QboApp.from_env())
        seeded = demo.seed(source, args.contacts, args.sales, args.workers)
        started = time.perf_counter()
        realms = _connect(env, control, base_url, args.companies, args.keep_auto)
        print(
            f"{len(realms)} companies connected to one sandbox with the demo mappings in "
            f"{time.perf_counter() - started:.0f} s; source app: {seeded.rows} rows "
            f"({args.contacts} contacts, {args.sales} sales, {args.workers} workers) for each",
            flush=True,
        )
        with daemon_log.open("w") as out:
            daemon = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dagster._daemon",
                    "run",
                    "-w",
                    str(settings.PROJECT_ROOT / "workspace.yaml"),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=settings.PROJECT_ROOT,
            )
        import dagster as dg

        from qbo_pipelines.defs import runner

        instance = dg.DagsterInstance.get()
        while not runner.daemon_alive(instance):
            if daemon.poll() is not None:
                raise SystemExit(f"dagster-daemon exited; see {daemon_log}")
            time.sleep(1)
        print(f"dagster-daemon up (log: {daemon_log})", flush=True)
        for name in ("first sync", "idle cycle (nothing changed)"):
            _pass(name, instance, control, realms, log, sampler, args.timeout, warehouse, args.cli)
        instance.dispose()
        print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        sampler.stop()
        if daemon is not None:
            daemon.terminate()
            try:
                daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                daemon.kill()
        warehouse.dispose()
        source.dispose()
        control.close()
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=60)
        for logical in postgres.LOGICAL_DATABASES:
            postgres.drop_database(pg, f"{prefix}{logical}")
        if not args.keep_logs:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
