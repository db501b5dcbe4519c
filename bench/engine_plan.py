"""Benchmark: the push engine's non-API stages at 100k sales (read, quality, plan), and peak RSS.

Usage: ``.venv/bin/python bench/engine_plan.py [--sales 100000] [--contacts 20000]``.

Seeds the demo source app in a throw-away database, gives every contact, item and sale a
synced ``sync.record_state`` row (as after an initial push: the steady state where a full
re-plan must find nothing to write), then times, per entity, reading the source records in
keyset pages, the per-record quality rules and transforms, and the three-way plan against the
stored base. Prints figures only; never asserts on time.
"""

from __future__ import annotations

import argparse
import resource
import time
import uuid
from collections import Counter
from datetime import UTC, datetime

import sqlalchemy as sa

from qbo_pipelines.canonical import RealmId, SourceId
from qbo_pipelines.source_app.connector import SourceAppConnector
from qbo_pipelines.source_app.demo import seed
from qbo_pipelines.sync import context as push_context
from qbo_pipelines.sync.engine import records
from qbo_pipelines.sync.engine.records import RecordState
from qbo_pipelines.sync.push import plan_record
from qbo_pipelines.sync.specs import SPECS
from qbo_pipelines.transforms.to_qbo import PushContext
from qbo_pipelines.warehouse import migrations, postgres

REALM = RealmId("9130000000000001")


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sales", type=int, default=100_000)
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--chunk", type=int, default=2000)
    args = parser.parse_args()
    pg = postgres.server()
    tag = uuid.uuid4().hex[:8]
    names = (f"bench{tag}_src", f"bench{tag}_wh")
    for n in names:
        postgres.create_database(pg, n)
    source = sa.create_engine(pg.url(names[0]))
    warehouse = sa.create_engine(pg.url(names[1]))
    try:
        migrations.migrate_source_app(source)
        migrations.migrate_warehouse(warehouse)
        seed(source, contacts=args.contacts, sales=args.sales, seed_value=7)
        reader = SourceAppConnector(source)
        # Every record synced once, mapped to itself: the plan must find nothing to write.
        ctx0 = push_context.load(warehouse, reader, REALM)
        for entity in ("customers", "items", "invoices"):
            spec = SPECS[entity]
            rows: list[RecordState] = []
            for chunk in reader.iter_entity(entity, None, 5000):
                for r in chunk:
                    built = spec.fields(r, ctx0) if entity != "invoices" else None
                    rows.append(
                        RecordState(
                            REALM,
                            entity,
                            SourceId(r.source_id),
                            spec.qbo_entity_of(r),
                            SourceId(r.source_id),
                            source_hash=r.content_hash(),
                            source_base=getattr(built, "body", None),
                            status="synced",
                        )
                    )
            with warehouse.begin() as conn:
                records.save(conn, rows, "bench")
        ctx = push_context.load(warehouse, reader, REALM)
        for phase in (
            "initial (every record built, checked and planned as a create)",
            "steady state (full re-plan against the stored base)",
        ):
            print(phase)
            _plan_all(warehouse, reader, ctx, args.chunk, initial=phase.startswith("initial"))
        print("steady state through the row-hash pre-filter (what a full re-plan does)")
        for entity in ("customers", "items", "invoices"):
            rows = []
            for page in reader.iter_row_hashes(entity):
                rows += page
            records.set_row_hashes(warehouse, REALM, entity, dict(rows))
        started_all = time.perf_counter()
        total = 0
        for entity in ("customers", "items", "invoices"):
            started = time.perf_counter()
            seen = moved = 0
            for page in reader.iter_row_hashes(entity):
                hashes = dict(page)
                steady = records.in_step(warehouse, REALM, entity, hashes)
                seen += len(hashes)
                moved += len(hashes) - len(steady)
            elapsed = time.perf_counter() - started
            total += seen
            print(
                f"{entity:10} {seen:>8,} records in {elapsed:6.2f}s ({seen / elapsed:>9,.0f}/s)"
                f"  to re-plan: {moved}"
            )
        elapsed = time.perf_counter() - started_all
        print(f"all        {total:>8,} records in {elapsed:6.2f}s ({total / elapsed:>9,.0f}/s)")
        print(f"peak RSS   {_rss_mib():,.0f} MiB")
    finally:
        source.dispose()
        warehouse.dispose()
        for n in names:
            postgres.drop_database(pg, n)


def _plan_all(
    warehouse: sa.Engine,
    reader: SourceAppConnector,
    ctx: PushContext,
    chunk_size: int,
    *,
    initial: bool,
) -> None:
    total = 0
    started_all = time.perf_counter()
    for entity in ("customers", "items", "invoices"):
        spec = SPECS[entity]
        actions: Counter[str] = Counter()
        started = time.perf_counter()
        read = 0
        now = datetime.now(UTC)
        for chunk in reader.iter_entity(entity, None, chunk_size):
            read += len(chunk)
            states = (
                {}
                if initial
                else records.load(warehouse, REALM, entity, [r.source_id for r in chunk])
            )
            for r in chunk:
                actions[
                    plan_record(spec, r, states.get(SourceId(r.source_id)), ctx, now).action
                ] += 1
        elapsed = time.perf_counter() - started
        total += read
        print(
            f"{entity:10} {read:>8,} records in {elapsed:6.2f}s "
            f"({read / elapsed:>9,.0f}/s)  plans: {dict(actions)}"
        )
    elapsed = time.perf_counter() - started_all
    print(f"all        {total:>8,} records in {elapsed:6.2f}s ({total / elapsed:>9,.0f}/s)")


if __name__ == "__main__":
    main()
