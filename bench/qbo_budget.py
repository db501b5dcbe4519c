"""Benchmark: write throughput within one company's budget against QBO's combined bound.

Usage: ``.venv/bin/python bench/qbo_budget.py [N] [--prefer fastest|fewest_calls|both]
[--no-db]``

Starts a local sandbox enforcing QBO's limits (500 calls/min, 10/s, 10 in flight, 40 batch
calls/min: it answers 429 past any of them) and a throw-away warehouse database holding the
shared budget (``--no-db``: the in-process budget instead). For each preference it creates N
customers in a fresh company with ``QboClient.execute(plan_dispatches(ops, prefer=...))`` and
prints:

* calls made (batch / single) as the sandbox logged them, and 429s (should be 0);
* wall time and writes per minute;
* QBO's combined bound: per minute at most 40 batch calls of 30 writes plus 460 single calls,
  i.e. 1,660 writes/min, so N writes need at least ``60 * N / 1660`` seconds in steady state
  (the first minute starts with empty windows, so small N can beat it);
* ``fewest_calls`` (batches only) is bounded by 1,200 writes/min.

Figures are printed, never asserted. N = 1660 takes about a minute per preference.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections import Counter

import sqlalchemy as sa

from qbo_pipelines.qbo import BatchOp, QboClient, RealmId, Secret, StaticTokenProvider
from qbo_pipelines.qbo.client import BATCH_SIZE, plan_dispatches, request_id_for
from qbo_pipelines.qbo.limiter import Limits, RateLimiter
from qbo_pipelines.sandbox.testing import run_sandbox
from qbo_pipelines.warehouse import migrations, postgres

LIMITS = Limits()
COMBINED_PER_MINUTE = (
    LIMITS.batch_per_minute * BATCH_SIZE + LIMITS.per_minute - LIMITS.batch_per_minute
)
BATCH_ONLY_PER_MINUTE = LIMITS.batch_per_minute * BATCH_SIZE


def run(sandbox: object, db_url: str | None, n: int, prefer: str) -> None:
    control = sandbox.control  # type: ignore[attr-defined]
    base_url: str = sandbox.base_url  # type: ignore[attr-defined]
    realm = RealmId(control.create_company(name=f"Budget {prefer}", seed=False))
    token = control.mint_tokens(realm)["access_token"]
    client = QboClient(
        base_url,
        realm,
        StaticTokenProvider(Secret(token)),
        budget=db_url,
        limiter=None if db_url else RateLimiter(LIMITS),
        max_retries=10,
    )
    ops = [
        BatchOp.create(
            "Customer",
            {"DisplayName": f"Bench {i:06d}"},
            request_id_for(realm, "Customer", f"b{i}", "v1", "create"),
        )
        for i in range(n)
    ]
    plan = plan_dispatches(ops, prefer=prefer)  # type: ignore[arg-type]
    started = time.perf_counter()
    failed = 0
    for _, results in client.execute(plan):
        failed += sum(1 for r in results if not r.ok)
    wall = time.perf_counter() - started
    log = control.requests(realm)
    kinds = Counter("batch" if r["endpoint"] == "batch" else "single" for r in log)
    throttled = sum(1 for r in log if r["status"] == 429)
    per_minute = COMBINED_PER_MINUTE if prefer == "fastest" else BATCH_ONLY_PER_MINUTE
    bound = 60.0 * n / per_minute
    combined = 60.0 * n / COMBINED_PER_MINUTE
    print(
        f"{prefer:<13} {n:>7} {kinds['batch']:>7} {kinds['single']:>7} {throttled:>5} "
        f"{failed:>6} {wall:>8.1f}s {60 * n / wall:>9.0f} {bound:>8.1f}s {wall / bound:>6.2f} "
        f"{wall / combined:>6.2f}  in-flight<={control.max_in_flight(realm)}"
    )
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("n", nargs="?", type=int, default=1660)
    parser.add_argument("--prefer", choices=["fastest", "fewest_calls", "both"], default="both")
    parser.add_argument("--no-db", action="store_true", help="in-process budget, no Postgres")
    args = parser.parse_args()
    prefers = ["fastest", "fewest_calls"] if args.prefer == "both" else [args.prefer]

    pg = None if args.no_db else postgres.server()
    name = f"bench_budget_{uuid.uuid4().hex[:8]}"
    db_url: str | None = None
    if pg is not None:
        postgres.create_database(pg, name)
        db_url = pg.url_str(name)
        engine = sa.create_engine(db_url)
        migrations.migrate_warehouse(engine)
        engine.dispose()
    try:
        with run_sandbox() as sandbox:
            sandbox.control.set_throttle(
                True, per_minute=500, in_flight=10, batch_per_minute=40, per_second=10
            )
            print(
                f"QBO combined bound: {COMBINED_PER_MINUTE} writes/min "
                f"({LIMITS.batch_per_minute} batch calls x {BATCH_SIZE} + "
                f"{LIMITS.per_minute - LIMITS.batch_per_minute} single calls); "
                f"budget: {'warehouse (shared)' if db_url else 'in-process'}"
            )
            print(
                f"{'prefer':<13} {'writes':>7} {'batch':>7} {'single':>7} {'429':>5} "
                f"{'failed':>6} {'wall':>9} {'writes/min':>9} {'bound':>9} {'/bound':>6} "
                f"{'/comb.':>6}"
            )
            for prefer in prefers:
                run(sandbox, db_url, args.n, prefer)
    finally:
        if pg is not None:
            postgres.drop_database(pg, name)


if __name__ == "__main__":
    main()
