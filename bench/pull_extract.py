"""Benchmark: the QBO extract (``qbo_pipelines.sync.extract.extract_qbo``) at scale.

Usage: ``.venv/bin/python bench/pull_extract.py [--n 100000]``

Starts a QBO sandbox in a child process (QBO's limits on: 500 requests/min, 10/s), seeds a
company with N transactions with lines (60% invoices, 25% payments applied to them, 15% bills),
then into a throw-away warehouse database runs:

1. a full extract (no cursor yet): QBO reads against the minimum, ``ceil(rows / 1000)`` query
   pages per entity (one more page when an entity holds an exact multiple of 1000: QBO gives no
   other end-of-data signal), records/s of the whole extract (HTTP + load), peak RSS;
2. an incremental extract after 20 edits in QBO: reads against the minimum of one CDC call;
3. the same with nothing changed.

Reads are counted from the sandbox's request log, not by the client. The sandbox runs in its
own process, so the RSS printed is the extract's alone. Prints figures only; never asserts.
"""

from __future__ import annotations

import argparse
import math
import resource
import subprocess
import sys
import time
import uuid
from collections import Counter
from typing import Any

import sqlalchemy as sa

from qbo_pipelines.qbo import QboClient, RealmId, Secret, StaticTokenProvider
from qbo_pipelines.qbo.ids import QboId, SyncToken
from qbo_pipelines.sandbox.control import SandboxControl
from qbo_pipelines.sync.extract import ENTITIES, extract_qbo
from qbo_pipelines.warehouse import migrations, postgres, raw_qbo

_SERVE = """
import sys, time
from qbo_pipelines.sandbox.testing import run_sandbox
with run_sandbox() as sb:
    print(sb.base_url, sb.control_token, flush=True)
    sys.stdin.read()
"""


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sale(amount: float) -> dict[str, Any]:
    return {
        "Amount": amount,
        "DetailType": "SalesItemLineDetail",
        "Description": "Consulting",
        "SalesItemLineDetail": {"ItemRef": {"value": "2"}, "Qty": 1, "UnitPrice": amount},
    }


def _expense(amount: float, account: str) -> dict[str, Any]:
    return {
        "Amount": amount,
        "DetailType": "AccountBasedExpenseLineDetail",
        "AccountBasedExpenseLineDetail": {"AccountRef": {"value": account}},
    }


def seed(control: SandboxControl, realm: str, n: int, chunk: int = 2000) -> Counter[str]:
    """N transactions with lines; returns how many of each were created."""
    made: Counter[str] = Counter()
    n_invoices, n_payments = int(n * 0.6), int(n * 0.25)
    n_bills = n - n_invoices - n_payments
    invoice_ids: list[tuple[str, str, float]] = []
    for start in range(0, n_invoices, chunk):
        size = min(chunk, n_invoices - start)
        bodies = [
            {
                "CustomerRef": {"value": str(1 + (start + i) % 4)},
                "Line": [_sale(100 + (start + i) % 50), _sale(25)],
            }
            for i in range(size)
        ]
        for inv in control.bulk_create(realm, "Invoice", bodies):
            invoice_ids.append((inv["Id"], inv["CustomerRef"]["value"], float(inv["TotalAmt"])))
        made["Invoice"] += size
    for start in range(0, n_payments, chunk):
        batch = invoice_ids[start : start + min(chunk, n_payments - start)]
        bodies = [
            {
                "CustomerRef": {"value": cust},
                "TotalAmt": total,
                "Line": [{"Amount": total, "LinkedTxn": [{"TxnId": iid, "TxnType": "Invoice"}]}],
            }
            for iid, cust, total in batch
        ]
        control.bulk_create(realm, "Payment", bodies)
        made["Payment"] += len(bodies)
    for start in range(0, n_bills, chunk):
        size = min(chunk, n_bills - start)
        bodies = [
            {"VendorRef": {"value": "2"}, "Line": [_expense(90, "10"), _expense(10, "12")]}
            for _ in range(size)
        ]
        control.bulk_create(realm, "Bill", bodies)
        made["Bill"] += size
    return made


class _LoadTimer:
    """Seconds spent in ``raw_qbo.merge`` (the warehouse load), apart from QBO's reads."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.merge = raw_qbo.merge

    def __call__(self, *args: Any, **kwargs: Any) -> raw_qbo.MergeResult:
        started = time.perf_counter()
        try:
            return self.merge(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started


def _client(control: SandboxControl, base_url: str, realm: str, engine: sa.Engine) -> QboClient:
    token = control.mint_tokens(realm)["access_token"]
    return QboClient(base_url, RealmId(realm), StaticTokenProvider(Secret(token)), budget=engine)


def _reads(control: SandboxControl, realm: str) -> Counter[str]:
    return Counter(r["endpoint"] for r in control.requests(realm))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000, help="transactions to seed")
    args = parser.parse_args()

    server = subprocess.Popen(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", _SERVE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert server.stdout is not None
    base_url, token = server.stdout.readline().split()
    control = SandboxControl(base_url, token=token, timeout=600)
    pg = postgres.server()
    name = f"bench{uuid.uuid4().hex[:8]}_warehouse"
    postgres.create_database(pg, name)
    engine = sa.create_engine(pg.url(name))
    try:
        migrations.migrate_warehouse(engine)
        realm = control.create_company(name="Pull Bench", seed=True)
        started = time.perf_counter()
        made = seed(control, realm, args.n)
        print(
            f"seeded {sum(made.values()):,} transactions {dict(made)} "
            f"in {time.perf_counter() - started:.1f}s"
        )
        counts = {e: control.count(realm, e) for e in ENTITIES}
        minimum = sum(
            max(1, math.ceil(c / 1000)) + (1 if c and c % 1000 == 0 else 0) for c in counts.values()
        )

        control.advance_clock(60)  # the data exists well before the first pull, as in life
        control.reset_requests()
        rss_before = _rss_mib()
        client = _client(control, base_url, realm, engine)
        timer = _LoadTimer()
        raw_qbo.merge = timer  # type: ignore[assignment]
        started = time.perf_counter()
        full = extract_qbo(client, engine, realm, run_id="bench-full")
        seconds = time.perf_counter() - started
        raw_qbo.merge = timer.merge
        reads = _reads(control, realm)
        rows = sum(full.rows.values())
        with engine.connect() as conn:
            lines = sum(
                int(conn.execute(sa.text(f"SELECT count(*) FROM raw_qbo.{t}")).scalar_one())
                for t in raw_qbo.LINE_TABLES.values()
            )
        print(
            f"full extract: {rows:,} objects ({lines:,} line rows) of {len(ENTITIES)} "
            f"entities in {seconds:.1f}s = {rows / seconds:,.0f} records/s"
        )
        print(
            f"  load into raw_qbo (merge + lines, in Postgres): {timer.seconds:.1f}s = "
            f"{rows / timer.seconds:,.0f} records/s; the rest is QBO's pages at <= 10/s"
        )
        print(
            f"  reads {sum(reads.values())} ({dict(reads)}) against a minimum of {minimum} "
            f"query pages: ratio {sum(reads.values()) / minimum:.3f}"
        )
        print(f"  peak RSS {_rss_mib():.0f} MiB (before the extract: {rss_before:.0f} MiB)")

        control.advance_clock(2)
        for iid in range(1, 21):  # edits through the API (the control API's user_update
            # reads every invoice to find one SyncToken, which would swell this process)
            current = client.read("Invoice", QboId(str(iid)))
            client.update(
                "Invoice",
                QboId(str(iid)),
                SyncToken(str(current["SyncToken"])),
                {"PrivateNote": "edited in QBO"},
                request_id=f"bench-edit-{iid}-{uuid.uuid4().hex[:8]}",
            )
        control.advance_clock(2)
        control.reset_requests()
        started = time.perf_counter()
        inc = extract_qbo(client, engine, realm, run_id="bench-inc")
        seconds = time.perf_counter() - started
        reads = _reads(control, realm)
        changed = {e: len(v) for e, v in inc.changed.items()}
        print(
            f"incremental after 20 invoice edits: reads {sum(reads.values())} "
            f"({dict(reads)}) against a minimum of 1 CDC call; changed {changed}; "
            f"{seconds:.2f}s"
        )
        control.reset_requests()
        quiet = extract_qbo(client, engine, realm, run_id="bench-quiet")
        reads = _reads(control, realm)
        print(
            f"incremental with nothing changed: reads {sum(reads.values())} ({dict(reads)}); "
            f"changed {quiet.changed}"
        )
        print(f"peak RSS {_rss_mib():.0f} MiB")
    finally:
        engine.dispose()
        postgres.drop_database(pg, name)
        control.close()
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
