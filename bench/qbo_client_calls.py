"""Benchmark: QBO API calls the client makes per operation, against the theoretical minimum.

Usage: ``.venv/bin/python bench/qbo_client_calls.py [N] [--realistic-limits]``

Starts a local sandbox, then for N customers (default 5000):

* batch create: ``batch_write`` of N creates; minimum ``ceil(N / 30)`` batch calls;
* re-run of the same batch (idempotent replay): same minimum, and no new records;
* read all: ``query_all``; minimum ``ceil(N / 1000)`` query calls. QBO gives no end-of-data
  signal, so when N is an exact multiple of 1000 the client needs one more (empty) page.

Calls are counted from the sandbox's request log, not by the client. Target ratio <= 1.05.
Without ``--realistic-limits`` the client's batch limiter is relaxed (the sandbox does not
throttle by default), otherwise QBO's 40 batch calls/min make N=5000 take over 4 minutes.
Prints figures only; never asserts.
"""

from __future__ import annotations

import argparse
import math
import time

from qbo_pipelines.qbo import BatchOp, QboClient, RealmId, Secret, StaticTokenProvider
from qbo_pipelines.qbo.client import request_id_for
from qbo_pipelines.qbo.limiter import Limits, RateLimiter
from qbo_pipelines.sandbox.testing import run_sandbox


def _calls(control: object, realm: str, endpoint: str) -> int:
    log = control.requests(realm)  # type: ignore[attr-defined]
    return sum(1 for r in log if r["endpoint"] == endpoint)


def _row(name: str, made: int, minimum: int, seconds: float) -> str:
    ratio = made / minimum if minimum else float("nan")
    verdict = "ok" if ratio <= 1.05 else "over target"
    return f"{name:<28} {made:>7} {minimum:>9} {ratio:>7.3f}  {seconds:>7.2f}s  {verdict}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("n", nargs="?", type=int, default=5000)
    parser.add_argument("--realistic-limits", action="store_true")
    args = parser.parse_args()
    n: int = args.n

    limits = Limits() if args.realistic_limits else Limits(batch_per_minute=100_000)
    with run_sandbox() as sandbox:
        control = sandbox.control
        realm = RealmId(control.create_company(name="Bench Co", seed=False))
        token = control.mint_tokens(realm)["access_token"]
        client = QboClient(
            sandbox.base_url, realm, StaticTokenProvider(Secret(token)), limiter=RateLimiter(limits)
        )
        ops = [
            BatchOp.create(
                "Customer",
                {"DisplayName": f"Bench {i:06d}"},
                request_id_for(realm, "Customer", f"b{i}", "v1", "create"),
            )
            for i in range(n)
        ]
        print(f"N = {n} customers; sandbox {sandbox.base_url}")
        print(f"{'operation':<28} {'calls':>7} {'minimum':>9} {'ratio':>7}  {'time':>8}")

        control.reset_requests()
        started = time.perf_counter()
        results = client.batch_write(ops)
        elapsed = time.perf_counter() - started
        failed = sum(1 for r in results if not r.ok)
        print(_row("batch create", _calls(control, realm, "batch"), math.ceil(n / 30), elapsed))

        control.reset_requests()
        started = time.perf_counter()
        client.batch_write(ops)
        elapsed = time.perf_counter() - started
        print(
            _row(
                "batch create (re-run)", _calls(control, realm, "batch"), math.ceil(n / 30), elapsed
            )
        )

        control.reset_requests()
        started = time.perf_counter()
        rows = sum(1 for _ in client.query_all("Customer"))
        elapsed = time.perf_counter() - started
        print(
            _row(
                "read all (query_all)",
                _calls(control, realm, "query"),
                math.ceil(n / 1000),
                elapsed,
            )
        )

        stored = control.count(realm, "Customer")
        print(
            f"records in sandbox: {stored} (expected {n}); read back: {rows}; failed ops: {failed}"
        )
        if n % 1000 == 0 and n:
            print(
                "note: N is a multiple of 1000, so the last full page needs one empty page "
                "to prove the end (QBO sends no total with SELECT *)."
            )


if __name__ == "__main__":
    main()
