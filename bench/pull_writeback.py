"""Benchmark: the pull's write-back into the source app (``pushed/source/*``) at scale.

Usage: ``.venv/bin/python bench/pull_writeback.py [--customers 10000] [--invoices 55000]
[--payments 35000]`` (100k QBO-side records by default).

A QBO sandbox in a child process is seeded directly (the control API's bulk create, as
``bench/pull_extract.py`` does) with customers, invoices with two lines each, and payments
applied to them; none of them exists in the source app. The QBO extract fills ``raw_qbo``
(timed apart: ``bench/pull_extract.py`` measures it), then the write-back runs as the product
runs it - ``pipeline.pull`` per entity (customers, invoices, payments, customer_transactions:
what the ``pushed/source/*`` assets and ``pull_all`` call) - in a child process of its own, so
the figures are the write-back's alone:

* records/s per entity and in total;
* peak RSS of the write-back process;
* SQL statements per 1000 records on the warehouse and on the source app (an ``executemany``
  counts once: psycopg pipelines its rows);
* then an incremental cycle: 20 customers and 20 invoices edited in QBO, CDC extract, and the
  same write-back again (its statements and seconds).

Prints figures only; never asserts.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from qbo_pipelines.canonical import RealmId
from qbo_pipelines.qbo import QboClient, Secret, StaticTokenProvider
from qbo_pipelines.qbo.ids import QboId, SyncToken
from qbo_pipelines.sandbox.control import SandboxControl
from qbo_pipelines.sync import pipeline
from qbo_pipelines.sync.extract import extract_qbo
from qbo_pipelines.warehouse import migrations, postgres

sys.path.insert(0, str(Path(__file__).parent))
from pull_extract import _sale as _line  # noqa: E402 - the same invoice line as that bench
from soak import _env  # noqa: E402 - the same environment as the soak

_SERVE = """
import sys
from qbo_pipelines.sandbox.testing import run_sandbox
with run_sandbox(throttle=False) as sb:
    print(sb.base_url, sb.control_token, flush=True)
    sys.stdin.read()
"""
ENTITIES = ("customers", "invoices", "payments", "customer_transactions")


def seed(control: SandboxControl, realm: str, args: argparse.Namespace) -> Counter[str]:
    made: Counter[str] = Counter()
    chunk = 2000
    bodies: list[dict[str, Any]]
    customers: list[str] = []
    for start in range(0, args.customers, chunk):
        size = min(chunk, args.customers - start)
        bodies = [
            {
                "DisplayName": f"Bench Customer {start + i:06d}",
                "PrimaryEmailAddr": {"Address": f"c{start + i}@example.com"},
                "PrimaryPhone": {"FreeFormNumber": f"555-{(start + i) % 10000:04d}"},
            }
            for i in range(size)
        ]
        customers += [c["Id"] for c in control.bulk_create(realm, "Customer", bodies)]
        made["Customer"] += size
    invoices: list[tuple[str, str, float]] = []
    for start in range(0, args.invoices, chunk):
        size = min(chunk, args.invoices - start)
        bodies = [
            {
                "CustomerRef": {"value": customers[(start + i) % len(customers)]},
                "Line": [_line(100 + (start + i) % 50), _line(25)],
                "PrivateNote": "made in QBO",
            }
            for i in range(size)
        ]
        for inv in control.bulk_create(realm, "Invoice", bodies):
            invoices.append((inv["Id"], inv["CustomerRef"]["value"], float(inv["TotalAmt"])))
        made["Invoice"] += size
    for start in range(0, args.payments, chunk):
        batch = invoices[start : start + min(chunk, args.payments - start)]
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
    return made


def _count_statements(engine: sa.Engine, counter: Counter[str], label: str) -> None:
    def count(*_args: Any, **_kw: Any) -> None:
        counter[label] += 1

    sa.event.listen(engine, "before_cursor_execute", count)


def writeback(args: argparse.Namespace) -> None:
    """The child: ``pipeline.pull`` per entity; prints one JSON line of figures."""
    env = _env(args.warehouse, args.source, args.sandbox)
    statements: Counter[str] = Counter()
    _count_statements(env.warehouse, statements, "warehouse")
    _count_statements(env.source, statements, "source")
    figures: dict[str, Any] = {}
    for entity in ENTITIES:
        before = Counter(statements)
        started = time.perf_counter()
        report = pipeline.pull(env, RealmId(args.realm), entity, run_id=args.run_id)
        seconds = time.perf_counter() - started
        counts = {k: v for k, v in report.as_metadata().items() if v}
        figures[entity] = {
            "seconds": seconds,
            "counts": counts,
            "records": sum(counts.values()),
            "warehouse": statements["warehouse"] - before["warehouse"],
            "source": statements["source"] - before["source"],
        }
    figures["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(figures))


def _run_child(
    args: argparse.Namespace, wh: str, src: str, base_url: str, realm: str, run_id: str
) -> dict[str, Any]:
    out = subprocess.run(  # noqa: S603 - our own interpreter and script
        [
            sys.executable,
            __file__,
            "--writeback",
            "--warehouse",
            wh,
            "--source",
            src,
            "--sandbox",
            base_url,
            "--realm",
            realm,
            "--run-id",
            run_id,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _print(title: str, figures: dict[str, Any]) -> None:
    total_records = sum(figures[e]["records"] for e in ENTITIES)
    total_seconds = sum(figures[e]["seconds"] for e in ENTITIES)
    print(title)
    for e in ENTITIES:
        f = figures[e]
        per = 1000 / f["records"] if f["records"] else 0
        print(
            f"  {e}: {f['records']:,} records {f['counts']} in {f['seconds']:.1f}s = "
            f"{f['records'] / f['seconds'] if f['seconds'] else 0:,.0f} records/s; statements "
            f"warehouse {f['warehouse']:,} ({f['warehouse'] * per:.1f}/1000), source "
            f"{f['source']:,} ({f['source'] * per:.1f}/1000)"
        )
    print(
        f"  total: {total_records:,} records in {total_seconds:.1f}s = "
        f"{total_records / total_seconds if total_seconds else 0:,.0f} records/s; peak RSS of "
        f"the write-back process {figures['rss_mib']:.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--invoices", type=int, default=55_000)
    parser.add_argument("--payments", type=int, default=35_000)
    parser.add_argument("--writeback", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--warehouse", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--sandbox", help=argparse.SUPPRESS)
    parser.add_argument("--realm", help=argparse.SUPPRESS)
    parser.add_argument("--run-id", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.writeback:
        writeback(args)
        return
    server = subprocess.Popen(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", _SERVE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert server.stdout is not None
    base_url, token = server.stdout.readline().split()
    control = SandboxControl(base_url, token=token, timeout=600)
    pg = postgres.server()
    tag = uuid.uuid4().hex[:8]
    names = (f"bench{tag}_wh", f"bench{tag}_src")
    for n in names:
        postgres.create_database(pg, n)
    wh, src = (pg.url_str(n) for n in names)
    env = _env(wh, src, base_url)
    try:
        migrations.migrate_warehouse(env.warehouse)
        migrations.migrate_source_app(env.source)
        realm = control.create_company(name="Write-back Bench", seed=True)
        started = time.perf_counter()
        made = seed(control, realm, args)
        print(
            f"seeded {sum(made.values()):,} QBO records {dict(made)} in "
            f"{time.perf_counter() - started:.0f}s"
        )
        control.advance_clock(60)
        access = control.mint_tokens(realm)["access_token"]
        client = QboClient(
            base_url, RealmId(realm), StaticTokenProvider(Secret(access)), budget=env.warehouse
        )
        started = time.perf_counter()
        extract_qbo(client, env.warehouse, realm, run_id="bench-extract")
        print(f"extract into raw_qbo (not the write-back): {time.perf_counter() - started:.0f}s")
        _print(
            "initial write-back (everything is new to the source):",
            _run_child(args, wh, src, base_url, realm, "bench-initial"),
        )
        control.advance_clock(2)
        with env.warehouse.connect() as conn:
            found: Any = conn.execute(
                sa.text(
                    "SELECT qbo_id FROM raw_qbo.customers WHERE realm_id = :r AND name LIKE"
                    " 'Bench Customer %' ORDER BY name LIMIT 20"
                ),
                {"r": realm},
            ).scalars()
            customers = [str(q) for q in found]
        edits: list[tuple[str, str, dict[str, Any]]] = [
            ("Customer", c, {"PrimaryEmailAddr": {"Address": f"new{c}@example.com"}})
            for c in customers
        ] + [("Invoice", str(i), {"PrivateNote": "edited in QBO"}) for i in range(1, 21)]
        for entity, qid, change in edits:
            current = client.read(entity, QboId(qid))
            client.update(
                entity,
                QboId(qid),
                SyncToken(str(current["SyncToken"])),
                change,
                request_id=f"bench-{entity}-{qid}-{uuid.uuid4().hex[:6]}",
            )
        control.advance_clock(2)
        extract_qbo(client, env.warehouse, realm, run_id="bench-cdc")
        _print(
            "incremental cycle (20 customers and 20 invoices edited in QBO, one CDC read):",
            _run_child(args, wh, src, base_url, realm, "bench-incremental"),
        )
        _print(
            "a cycle with nothing changed:",
            _run_child(args, wh, src, base_url, realm, "bench-quiet"),
        )
    finally:
        env.warehouse.dispose()
        env.source.dispose()
        for n in names:
            postgres.drop_database(pg, n)
        control.close()
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
