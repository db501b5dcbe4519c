"""Benchmark: the push's QBO API calls and speed for the demo app, against the minimum.

Usage: ``.venv/bin/python bench/push_calls.py [SALES]`` (default 3000 sales, contacts = sales/3).

Seeds the demo source app into throw-away databases on the configured Postgres, starts a local
sandbox in its own process (as QBO is its own service; state in memory, no journal) that
enforces QBO's limits (500/min, 10/s, 10 in flight, 40 batch calls/min), connects,
maps, and pushes everything once, then again with nothing changed. For each entity it prints
records written (attempted; invoice sends counted in the calls and the bound, each its own
call), write calls made (batch and single), the fewest calls QBO's
combined bound allows (b batches of 30 at 40/min plus s single calls in the rest of the
500/min, b and s chosen to finish soonest), their ratio (target <= 1.05), the seconds taken and
QBO's bound in seconds for that many writes, and their ratio (target <= 1.1); then the reads
the push made in that phase (name checks, invoice refreshes after payments: single calls that
share the 500/min), the bound counting them too, and the seconds against it; then the calls of
the second run (target 0), and after each phase the peak RSS of the push process (target < 512
MiB; the sandbox runs in its own process). Prints figures only; never asserts.
"""

from __future__ import annotations

import math
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from cryptography.fernet import Fernet
from sandbox_process import SandboxProcess

from qbo_pipelines.canonical import RealmId
from qbo_pipelines.demo import setup
from qbo_pipelines.qbo.auth import ENV_TOKEN_KEY
from qbo_pipelines.qbo.client import batches_for_fastest
from qbo_pipelines.qbo.secret import Secret
from qbo_pipelines.sandbox.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from qbo_pipelines.source_app import demo
from qbo_pipelines.sync import pipeline
from qbo_pipelines.sync.env import QboApp, SyncEnv
from qbo_pipelines.warehouse import migrations, postgres


def _write_calls(counts: dict[str, int]) -> int:
    return sum(
        n
        for label, n in counts.items()
        if label == "batch" or label.startswith(("create", "update", "delete", "send", "void"))
    )


def _bound_seconds(batchable: int, sends: int, reads: int) -> float:
    """QBO's combined bound for ``batchable`` writes, ``sends`` and ``reads`` (single calls):
    the least over the number of full batches b of max(b / 40, all calls / 500) minutes."""
    best = float("inf")
    for b in range(math.ceil(batchable / 30) + 1):
        singles = max(batchable - 30 * b, 0) + sends + reads
        best = min(best, 60 * max(b / 40, (b + singles) / 500, (b + singles) / 600))
    return best


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _stamp(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def _stream(entries: list[dict[str, object]]) -> str:
    """How the phase's calls used the stream, from the sandbox's request log: the seconds from
    its first call to its last answer (the rest of the phase is planning before the first call
    and finishing after the last), batch calls' median and 90th-percentile time in the
    sandbox, and the seconds in which no batch call / no call at all was in flight between the
    first call and the last answer (the stream drained, e.g. between chunks)."""
    spans = [
        (_stamp(str(e["started"])), _stamp(str(e["time"])), e["endpoint"] == "batch")
        for e in entries
        if e.get("started")
    ]
    if not spans:
        return ""
    batch = sorted(end - start for start, end, is_batch in spans if is_batch)

    def idle(kept: list[tuple[float, float, bool]]) -> float:
        gaps, reach = 0.0, None
        for start, end, _ in sorted(kept):
            if reach is not None and start > reach:
                gaps += start - reach
            reach = end if reach is None else max(reach, end)
        return gaps

    quantile = (
        f"batch call {statistics.median(batch):.2f}s median,"
        f" {batch[int(0.9 * (len(batch) - 1))]:.2f}s p90; "
        if batch
        else ""
    )
    first, last = min(start for start, _, _ in spans), max(end for _, end, _ in spans)
    minutes = [
        [s for s in spans if first + 60 * m <= s[0] < first + 60 * (m + 1)]
        for m in range(int((last - first) // 60))
    ]
    per_minute = (
        f"whole minutes: median {statistics.median(len(m) for m in minutes):.0f} calls"
        f" ({statistics.median(sum(1 for s in m if s[2]) for m in minutes):.0f} batch),"
        f" fewest {min(len(m) for m in minutes)}; "
        if minutes
        else ""
    )
    return (
        f"  calls from first to last answer {last - first:.1f}s; {per_minute}{quantile}"
        f"no batch in flight {idle([s for s in spans if s[2]]):.1f}s,"
        f" no call in flight {idle(spans):.1f}s"
    )


def main(sales: int) -> None:
    os.environ.setdefault(ENV_TOKEN_KEY, Fernet.generate_key().decode())
    pg = postgres.server()
    tag = f"bench{uuid.uuid4().hex[:6]}"
    names = [f"{tag}_wh", f"{tag}_src"]
    for name in names:
        postgres.create_database(pg, name)
    warehouse, source = (sa.create_engine(pg.url(n)) for n in names)
    try:
        migrations.migrate_warehouse(warehouse)
        migrations.migrate_source_app(source)
        started = time.perf_counter()
        demo.seed(source, contacts=max(sales // 3, 10), sales=sales, workers=max(sales // 50, 3))
        print(f"seeded {sales} sales in {time.perf_counter() - started:.1f}s")
        sandbox = SandboxProcess(Path(tempfile.mkdtemp(prefix="qbo-bench-")), journal=False)
        sandbox.start()
        try:
            control = sandbox.control()
            app = QboApp(DEFAULT_CLIENT_ID, Secret(DEFAULT_CLIENT_SECRET), sandbox.url,
                         sandbox.url)
            env = SyncEnv(warehouse, source, app)
            realm = RealmId(str(control.info()["realm_id"]))
            setup.prepare_sandbox_company(control, realm)
            setup.connect_with_tokens(env, realm, control.mint_tokens(realm), sandbox.url)
            setup.apply_demo_mappings(env, realm)
            control.reset_requests()
            print(f"{'entity':<10} {'written':>8} {'calls':>7} {'minimum':>8} {'ratio':>6}"
                  f" {'seconds':>8} {'bound s':>8} {'ratio':>6} {'reads':>6} {'+reads s':>8}"
                  f" {'ratio':>6} {'records/s':>10}")
            for entity in ("customers", "items", "vendors", "invoices", "bills", "payments"):
                counted = control.request_counts(realm)
                logged = sum(counted.values())
                before, reads_before = _write_calls(counted), sum(counted.values())
                t0 = time.perf_counter()
                report = pipeline.push(env, realm, entity, run_id="bench")
                seconds = time.perf_counter() - t0
                counted = control.request_counts(realm)
                calls = _write_calls(counted) - before
                reads = sum(counted.values()) - reads_before - calls
                counts = report.as_metadata()
                # Attempts count: a create QBO refuses (e.g. 6240) still took its call.
                written = sum(counts[k] for k in ("created", "updated", "deleted", "failed"))
                sends = counts["sent"] + counts["send_failed"]  # one call each, never batched
                b = batches_for_fastest(written, written + sends)
                singles = max(written - 30 * b, 0) + sends
                minimum = b + singles
                bound = _bound_seconds(written, sends, 0)
                with_reads = _bound_seconds(written, sends, reads)
                ratio = calls / minimum if minimum else 0.0
                print(f"{entity:<10} {written:>8} {calls:>7} {minimum:>8} {ratio:>6.2f}"
                      f" {seconds:>8.2f} {bound:>8.2f} {seconds / bound if bound else 0:>6.2f}"
                      f" {reads:>6} {with_reads:>8.2f}"
                      f" {seconds / with_reads if with_reads else 0:>6.2f}"
                      f" {written / seconds if seconds else 0:>10.0f}")
                print(_stream(control.requests(realm)[logged:]))
                print(f"  peak RSS of the push process so far: {_peak_rss_mib():,.0f} MiB")
            control.reset_requests()
            t0 = time.perf_counter()
            pipeline.push_all(env, realm, run_id="bench-again")
            again = control.request_counts(realm)
            print(f"second run, nothing changed: {sum(again.values())} API calls"
                  f" ({dict(again) or 'none'}) in {time.perf_counter() - t0:.2f}s (target 0)")
        finally:
            sandbox.stop()
    finally:
        warehouse.dispose()
        source.dispose()
        for name in names:
            postgres.drop_database(pg, name)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000)
