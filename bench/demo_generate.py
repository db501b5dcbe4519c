"""Benchmark: generate the demo business with 100k sales (bulk COPY) and print rows/s.

Usage: ``.venv/bin/python bench/demo_generate.py [--sales 100000] [--contacts 20000]``.
Runs in a throw-away database on the configured Postgres (embedded unless QBO_PIPELINES_PG_URL).
Prints figures only; never asserts on time.
"""

from __future__ import annotations

import argparse
import uuid

import sqlalchemy as sa

from qbo_pipelines.source_app.connector import SourceAppConnector
from qbo_pipelines.source_app.demo import seed
from qbo_pipelines.warehouse import migrations, postgres


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sales", type=int, default=100_000)
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    pg = postgres.server()
    name = f"bench{uuid.uuid4().hex[:8]}_source_app"
    postgres.create_database(pg, name)
    engine = sa.create_engine(pg.url(name))
    try:
        migrations.migrate_source_app(engine)
        report = seed(engine, contacts=args.contacts, sales=args.sales, seed_value=args.seed)
        print(f"generated {report.rows:,} rows in {report.seconds:.2f}s "
              f"({report.rows / report.seconds:,.0f} rows/s)")
        for table, count in report.counts.items():
            print(f"  {table:22s} {count:>10,}")
        print(f"sales: {report.counts['sales']:,} in {report.seconds:.2f}s "
              f"({report.counts['sales'] / report.seconds:,.0f} sales/s with lines)")
        connector = SourceAppConnector(engine)
        print(f"change log entries: {connector.max_seq():,}")
        import time

        started = time.perf_counter()
        read = sum(len(chunk) for chunk in connector.iter_entity("invoices"))
        elapsed = time.perf_counter() - started
        print(f"read back {read:,} canonical sales with lines in {elapsed:.2f}s "
              f"({read / elapsed:,.0f}/s)")
    finally:
        engine.dispose()
        postgres.drop_database(pg, name)


if __name__ == "__main__":
    main()
